/* resize.c: TensorFlow's image resizes as TF-slim's preprocessing calls them, with TF's float
 * arithmetic: TF1's resize_bilinear (align_corners and half_pixel_centers false: the source
 * coordinate is out_index * float(in / out), lerped top row, bottom row, then between them;
 * each source row lerped horizontally once and cached, TF's own order of operations), and
 * for inception's full mode resize_nearest_neighbor, resize_bicubic (a = -0.75 table) and
 * resize_area.  Rows come from a source window and go to a sink (resize.h), so that a crop,
 * a cast, a gray conversion, a flip and a normalization cost no extra pass. */
#include "resize.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- TF1's resize_bilinear ----------------------------------------------------------------- */

typedef struct lerp {
    int lo, hi;               /* source indices (x: times the channels) */
    float t;
} lerp;

/* ResizeBilinear's CachedInterpolation for output index i with the legacy scaler. */
static lerp lerp_at(int i, float scale, int in_size, int mult) {
    const float in = (float)i * scale;
    const float f = floorf(in);
    int lo = (int)f, hi = (int)ceilf(in);
    if (lo < 0) lo = 0;
    if (lo > in_size - 1) lo = in_size - 1;   /* never in TF's range; memory safety only */
    if (hi > in_size - 1) hi = in_size - 1;
    lerp l = {lo * mult, hi * mult, in - f};
    return l;
}

/* top = left + (right - left) * t along a source row, TF's first step. */
static void lerp_row(float *restrict dst, const float *restrict src, const lerp *xt, int n,
                     int c) {
    if (c == 3) {
        for (int x = 0; x < n; x++) {
            const float *a = src + xt[x].lo, *b = src + xt[x].hi;
            const float t = xt[x].t;
            dst[3 * x] = a[0] + (b[0] - a[0]) * t;
            dst[3 * x + 1] = a[1] + (b[1] - a[1]) * t;
            dst[3 * x + 2] = a[2] + (b[2] - a[2]) * t;
        }
    } else if (c == 1) {
        for (int x = 0; x < n; x++) {
            const float a = src[xt[x].lo], b = src[xt[x].hi];
            dst[x] = a + (b - a) * xt[x].t;
        }
    } else {
        for (int x = 0; x < n; x++)
            for (int k = 0; k < c; k++) {
                const float a = src[xt[x].lo + k], b = src[xt[x].hi + k];
                dst[x * c + k] = a + (b - a) * xt[x].t;
            }
    }
}

static size_t align_up(size_t n) { return (n + 63) & ~(size_t)63; }

/* Rows [r0, r0 + ph) x columns [c0, c0 + pw) of the resize of the source window to (oh, ow);
 * result row i goes to k's row i.  Each source row is lerped horizontally once (into one of
 * two cached rows), then each output row is top + (bottom - top) * t: TF's arithmetic. */
sn_status sn__resize_bilinear(sn_ctx *ctx, source *s, int oh, int ow, int r0, int c0, int ph,
                              int pw, const sink *k) {
    const int c = source_channels(s);
    const size_t row = (size_t)pw * (size_t)c;
    const int plain = sink_plain(k);
    const size_t b_xt = align_up((size_t)pw * sizeof(lerp));
    const size_t b_src = s->u8 ? align_up((size_t)s->w * (size_t)s->c * sizeof(float)) : 0;
    const size_t b_row = align_up(row * sizeof(float));
    char *mem = malloc(b_xt + b_src + b_row * (plain ? 2 : 3));
    if (!mem) return sn__fail(ctx, SN_ERR_NOMEM, "preprocess: out of memory (resize to %dx%d)",
                              ow, oh);
    lerp *xt = (lerp *)mem;
    s->buf = (float *)(mem + b_xt);
    float *cache[2] = {(float *)(mem + b_xt + b_src), (float *)(mem + b_xt + b_src + b_row)};
    float *tmp = (float *)(mem + b_xt + b_src + 2 * b_row);
    int cached[2] = {-1, -1};

    const float xscale = (float)s->w / (float)ow, yscale = (float)s->h / (float)oh;
    for (int x = 0; x < pw; x++) xt[x] = lerp_at(c0 + x, xscale, s->w, c);
    for (int i = 0; i < ph; i++) {
        const lerp ly = lerp_at(r0 + i, yscale, s->h, 1);
        const float *rows[2];
        const int want[2] = {ly.lo, ly.hi};
        for (int j = 0; j < 2; j++) {
            int slot = cached[0] == want[j] ? 0 : cached[1] == want[j] ? 1 : -1;
            if (slot < 0) {   /* replace the slot the other row of this pair does not use */
                slot = cached[0] == want[1 - j] ? 1 : 0;
                lerp_row(cache[slot], source_row(s, want[j]), xt, pw, c);
                cached[slot] = want[j];
            }
            rows[j] = cache[slot];
        }
        float *restrict o = plain ? k->out + (size_t)i * row : tmp;
        const float *restrict top = rows[0], *restrict bot = rows[1];
        const float t = ly.t;
        for (size_t e = 0; e < row; e++) o[e] = top[e] + (bot[e] - top[e]) * t;
        if (!plain) sink_row(k, i, o);
    }
    free(mem);
    return SN_OK;
}

sn_status sn_resize_bilinear(sn_ctx *ctx, const float *in, int h, int w, int c, float *out,
                             int oh, int ow) {
    size_t n;
    if (!in || !out) return sn__fail(ctx, SN_ERR_INVALID_ARG, "resize_bilinear: NULL buffer");
    if (h <= 0 || w <= 0 || c <= 0 || oh <= 0 || ow <= 0)
        return sn__fail(ctx, SN_ERR_INVALID_ARG, "resize_bilinear: invalid sizes (%d, %d, %d) "
                        "-> (%d, %d)", h, w, c, oh, ow);
    if (!sn__mul_size((size_t)h * (size_t)w, (size_t)c, &n) ||
        !sn__mul_size((size_t)oh * (size_t)ow, (size_t)c, &n) || (size_t)w * (size_t)c > INT_MAX)
        return sn__fail(ctx, SN_ERR_INVALID_ARG, "resize_bilinear: image too large");
    source s = {NULL, in, (size_t)w * (size_t)c, c, 0, 0, h, w, 1.0f, 0, NULL};
    sink k = {out, ow, c, 0, 0, {0, 0, 0}, 1.0f};
    return sn__resize_bilinear(ctx, &s, oh, ow, 0, 0, oh, ow, &k);
}

/* ---- inception's other resize methods (full mode), on a float (h, w, c) image ------------ */

#define CUBIC_TABLE 1024

/* ResizeBicubic's legacy coefficients (a = -0.75), computed in double as TF does. */
static void cubic_table(float *tab) {
    const double a = -0.75;
    for (int i = 0; i <= CUBIC_TABLE; i++) {
        float x = (float)(i * 1.0 / CUBIC_TABLE);
        tab[2 * i] = (float)(((a + 2) * x - (a + 3)) * x * x + 1);
        x = (float)(x + 1.0);
        tab[2 * i + 1] = (float)(((a * x - 5 * a) * x + 8 * a) * x - 4 * a);
    }
}

typedef struct cubic {
    float w[4];
    int i[4];
} cubic;

static int bound(int64_t v, int limit) {
    return v < 0 ? 0 : v > limit - 1 ? limit - 1 : (int)v;
}

static cubic cubic_at(const float *tab, float scale, int out, int limit, int mult) {
    const float in_f = (float)out * scale;
    const int64_t in = (int64_t)floorf(in_f);
    const float delta = in_f - (float)in;
    const long off = lrintf(delta * (float)CUBIC_TABLE);
    cubic c = {{tab[off * 2 + 1], tab[off * 2], tab[(CUBIC_TABLE - off) * 2],
                tab[(CUBIC_TABLE - off) * 2 + 1]},
               {bound(in - 1, limit) * mult, bound(in, limit) * mult,
                bound(in + 1, limit) * mult, bound(in + 2, limit) * mult}};
    return c;
}

/* Per-axis cells of ResizeArea: the source cells [start, end) of an output cell, with the
 * covered fractions of the first and the last. */
typedef struct area_span {
    int64_t start, end;
    float start_scale, end_scale;
} area_span;

static float area_frac(int64_t v, float in0, float in1, float scale) {
    return (float)v < in0 ? ((float)(v + 1) > in1 ? scale : (float)(v + 1) - in0)
                          : ((float)(v + 1) > in1 ? in1 - (float)v : 1.0f);
}

static area_span area_at(int i, float scale) {
    const float in0 = (float)i * scale, in1 = (float)(i + 1) * scale;
    area_span a;
    a.start = (int64_t)floorf(in0);
    a.start_scale = area_frac(a.start, in0, in1, scale);
    a.end = (int64_t)ceilf(in1);
    a.end_scale = area_frac(a.end - 1, in0, in1, scale);
    return a;
}

sn_status sn__resize_other(sn_ctx *ctx, int method, const float *img, int h, int w, int c,
                           int oh, int ow, const sink *k) {
    const float hs = (float)h / (float)oh, ws = (float)w / (float)ow;
    const size_t row = (size_t)ow * (size_t)c, stride = (size_t)w * (size_t)c;
    const size_t b_row = align_up(row * sizeof(float));
    const size_t b_x = align_up((size_t)ow * (method == RESIZE_BICUBIC ? sizeof(cubic)
                                               : method == RESIZE_AREA ? sizeof(area_span)
                                               : sizeof(int)));
    const size_t b_tab = method == RESIZE_BICUBIC ? (2 * CUBIC_TABLE + 2) * sizeof(float) : 0;
    char *mem = malloc(b_row + b_x + b_tab);
    if (!mem) return sn__fail(ctx, SN_ERR_NOMEM, "preprocess: out of memory (resize to %dx%d)",
                              ow, oh);
    float *o = (float *)mem;
    if (method == RESIZE_NEAREST) {
        int *xi = (int *)(mem + b_row);
        for (int x = 0; x < ow; x++) {
            const int i = (int)floorf((float)x * ws);
            xi[x] = (i < w - 1 ? i : w - 1) * c;
        }
        for (int y = 0; y < oh; y++) {
            const int iy = (int)floorf((float)y * hs);
            const float *src = img + (size_t)(iy < h - 1 ? iy : h - 1) * stride;
            for (int x = 0; x < ow; x++)
                for (int j = 0; j < c; j++) o[(size_t)x * c + j] = src[xi[x] + j];
            sink_row(k, y, o);
        }
    } else if (method == RESIZE_BICUBIC) {
        cubic *xc = (cubic *)(mem + b_row);
        float *tab = (float *)(mem + b_row + b_x);
        cubic_table(tab);
        for (int x = 0; x < ow; x++) xc[x] = cubic_at(tab, ws, x, w, c);
        for (int y = 0; y < oh; y++) {
            const cubic yc = cubic_at(tab, hs, y, h, 1);
            const float *r[4];
            for (int j = 0; j < 4; j++) r[j] = img + (size_t)yc.i[j] * stride;
            for (int x = 0; x < ow; x++)
                for (int ch = 0; ch < c; ch++) {
                    float v[4];   /* columns first interpolated along y, then along x */
                    for (int j = 0; j < 4; j++) {
                        const int e = xc[x].i[j] + ch;
                        v[j] = r[0][e] * yc.w[0] + r[1][e] * yc.w[1] + r[2][e] * yc.w[2] +
                               r[3][e] * yc.w[3];
                    }
                    o[(size_t)x * c + ch] = v[0] * xc[x].w[0] + v[1] * xc[x].w[1] +
                                            v[2] * xc[x].w[2] + v[3] * xc[x].w[3];
                }
            sink_row(k, y, o);
        }
    } else {
        area_span *xa = (area_span *)(mem + b_row);
        const float scale = (float)(1.0 / (double)(hs * ws));
        for (int x = 0; x < ow; x++) xa[x] = area_at(x, ws);
        for (int y = 0; y < oh; y++) {
            const area_span ya = area_at(y, hs);
            for (int x = 0; x < ow; x++) {
                const area_span *a = &xa[x];
                for (int ch = 0; ch < c; ch++) {
                    float sum = 0;
                    for (int64_t i = ya.start; i < ya.end; i++) {
                        const float ys = area_frac(i, (float)y * hs, (float)(y + 1) * hs, hs);
                        const float *src = img + (size_t)bound(i, h) * stride + ch;
                        float sy = src[(size_t)bound(a->start, w) * c] * a->start_scale;
                        if (a->start + 1 != a->end) {
                            for (int64_t j = a->start + 1; j < a->end - 1; j++)
                                sy += src[(size_t)bound(j, w) * c];
                            sy += src[(size_t)bound(a->end - 1, w) * c] * a->end_scale;
                        }
                        sum += sy * ys;
                    }
                    o[(size_t)x * c + ch] = sum * scale;
                }
            }
            sink_row(k, y, o);
        }
    }
    free(mem);
    return SN_OK;
}
