/* resize.h: internal.  The image resizes TF-slim's preprocessing uses (resize.c) and the
 * row plumbing they share with preprocess.c: a source window read row by row as float and
 * a sink that scales, shifts, gray-converts or flips each row it is given.  Nothing here is
 * public (sn_resize_bilinear in slimnet.h is). */
#ifndef SN_IO_RESIZE_H
#define SN_IO_RESIZE_H

#include <stddef.h>
#include <stdint.h>
#include "../sn_internal.h"

#define GRAY_R 0.2989f          /* tf.image.rgb_to_grayscale */
#define GRAY_G 0.5870f
#define GRAY_B 0.1140f

/* ResizeMethodV1, the index apply_with_random_selector passes to resize_images. */
enum { RESIZE_BILINEAR = 0, RESIZE_NEAREST = 1, RESIZE_BICUBIC = 2, RESIZE_AREA = 3 };

/* ---- rows in and out of a resize ------------------------------------------------------ */

static inline float sn__gray3(float r, float g, float b) {
    return r * GRAY_R + g * GRAY_G + b * GRAY_B;
}

/* Where output rows go: out row y = (v - sub[c]) * mul of the incoming row, after an optional
 * rgb_to_grayscale (3 -> 1 channels) and left-right flip.  sub 0, mul 1 is a plain copy. */
typedef struct sink {
    float *out;
    int ow, cin;              /* row length in pixels, channels of the incoming rows */
    int gray, flip;
    float sub[3], mul;
} sink;

static inline int sink_plain(const sink *k) {
    return !k->gray && !k->flip && k->mul == 1.0f && k->sub[0] == 0.0f && k->sub[1] == 0.0f &&
           k->sub[2] == 0.0f;
}

static inline void sink_row(const sink *k, int y, const float *restrict row) {
    const int c = k->gray ? 1 : k->cin, ow = k->ow;
    float *restrict o = k->out + (size_t)y * (size_t)ow * (size_t)c;
    const float mul = k->mul;
    /* the flip is the write order: step -1 from the row's end */
    const ptrdiff_t step = k->flip ? -c : c;
    if (k->flip) o += (size_t)(ow - 1) * (size_t)c;
    if (k->gray) {
        const float sub = k->sub[0];
        for (int x = 0; x < ow; x++)
            o[x * step] = (sn__gray3(row[3 * x], row[3 * x + 1], row[3 * x + 2]) - sub) * mul;
    } else if (c == 1) {
        const float sub = k->sub[0];
        if (!k->flip) {
            for (int x = 0; x < ow; x++) o[x] = (row[x] - sub) * mul;
        } else {
            for (int x = 0; x < ow; x++) o[-x] = (row[x] - sub) * mul;
        }
    } else {
        const float s0 = k->sub[0], s1 = k->sub[1], s2 = k->sub[2];
        if (!k->flip) {
            for (int x = 0; x < ow; x++) {
                o[3 * x] = (row[3 * x] - s0) * mul;
                o[3 * x + 1] = (row[3 * x + 1] - s1) * mul;
                o[3 * x + 2] = (row[3 * x + 2] - s2) * mul;
            }
        } else {
            for (int x = 0; x < ow; x++) {
                o[-3 * x] = (row[3 * x] - s0) * mul;
                o[-3 * x + 1] = (row[3 * x + 1] - s1) * mul;
                o[-3 * x + 2] = (row[3 * x + 2] - s2) * mul;
            }
        }
    }
}

/* A window (y0, x0, h, w) of the input read row by row as float: a float image as it is, or
 * a uint8 one cast, times scale (1, or convert_image_dtype's 1/255), and reduced to gray. */
typedef struct source {
    const uint8_t *u8;
    const float *f32;
    size_t stride;            /* elements per image row */
    int c;                    /* image channels */
    int y0, x0, h, w;
    float scale;
    int gray;                 /* u8 with c == 3: rows come out with one channel */
    float *buf;               /* u8: w * channels floats */
} source;

static inline int source_channels(const source *s) { return s->gray ? 1 : s->c; }

static inline const float *source_row(const source *s, int y) {
    const size_t off = (size_t)(s->y0 + y) * s->stride + (size_t)s->x0 * (size_t)s->c;
    if (s->f32) return s->f32 + off;
    const uint8_t *p = s->u8 + off;
    const float sc = s->scale;
    float *b = s->buf;
    if (s->gray) {
        for (int x = 0; x < s->w; x++)
            b[x] = sn__gray3((float)p[3 * x] * sc, (float)p[3 * x + 1] * sc,
                             (float)p[3 * x + 2] * sc);
    } else {
        const int n = s->w * s->c;
        for (int i = 0; i < n; i++) b[i] = (float)p[i] * sc;
    }
    return b;
}

/* Rows [r0, r0 + ph) x columns [c0, c0 + pw) of TF1's resize_bilinear of the source window
 * to (oh, ow), into k. */
sn_status sn__resize_bilinear(sn_ctx *ctx, source *s, int oh, int ow, int r0, int c0, int ph,
                              int pw, const sink *k);
/* resize_nearest_neighbor, resize_bicubic or resize_area (method: RESIZE_*) of a float
 * (h, w, c) image to (oh, ow), into k. */
sn_status sn__resize_other(sn_ctx *ctx, int method, const float *img, int h, int w, int c,
                           int oh, int ow, const sink *k);

#endif
