/* preprocess.c: TF-slim's preprocessing_factory (lenet, cifarnet, vgg, inception), train and
 * eval, on decoded uint8 (H, W, C) images, C = 1 or 3.
 *
 * Every step is TensorFlow's own operation, reproduced with its float arithmetic: the cast
 * and convert_image_dtype (x * float(1/255)), rgb_to_grayscale (0.2989 R + 0.5870 G + 0.1140 B),
 * resize_image_with_crop_or_pad and central_crop offsets, vgg's _smallest_size_at_least
 * (float32, rint), the resizes (resize.c: TF1's resize_bilinear; resize_nearest_neighbor,
 * resize_bicubic and resize_area for inception's full mode), adjust_brightness,
 * adjust_saturation and adjust_hue (their CPU kernels' RGB<->HSV code), adjust_contrast
 * (per-channel mean), clip_by_value,
 * per_image_standardization (max(std, 1/sqrt(N))).  Means are summed in double: TensorFlow
 * sums in float in its own order, so means may differ from its in the last bits.
 *
 * sample_distorted_bounding_box is TF's algorithm (SampleDistortedBoundingBoxV2's kernel)
 * driven by our own counter-based generator: the distribution is TF's, the stream is not.
 *
 * Speed: nothing is computed outside the crop that is kept (vgg resizes only the window its
 * crop keeps), bilinear rows are interpolated horizontally once per source row and cached
 * (TF's own order of operations, so the result is the same), and the work buffers are small
 * allocations per call (rows and index tables; none for lenet and cifarnet). */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "../sn_internal.h"
#include "resize.h"

/* ---- TF-slim's constants ----------------------------------------------------------------- */

#define VGG_R_MEAN 123.68f      /* vgg_preprocessing._R_MEAN etc. */
#define VGG_G_MEAN 116.78f
#define VGG_B_MEAN 103.94f

#define CIFAR_PADDING 4         /* cifarnet_preprocessing._PADDING */
#define CIFAR_BRIGHTNESS 63.0f
#define CIFAR_CONTRAST_LO 0.2f
#define CIFAR_CONTRAST_HI 1.8f

#define INC_CENTRAL_FRACTION 0.875   /* a Python float: central_crop computes in double */
#define INC_MIN_COVERED 0.1f
#define INC_ASPECT_LO 0.75f
#define INC_ASPECT_HI 1.33f
#define INC_AREA_LO 0.05f
#define INC_AREA_HI 1.0f
#define INC_ATTEMPTS 100
#define INC_BRIGHTNESS ((float)(32.0 / 255.0))
#define INC_SATURATION_LO 0.5f
#define INC_SATURATION_HI 1.5f
#define INC_HUE 0.2f
#define INC_CONTRAST_LO 0.5f
#define INC_CONTRAST_HI 1.5f

/* ---- names ------------------------------------------------------------------------------- */

static const char *const kind_names[] = {"lenet", "cifarnet", "vgg", "inception"};
#define N_KINDS ((int)(sizeof kind_names / sizeof kind_names[0]))

/* preprocessing_factory's map, by prefix where its keys are one family's many names. */
static const struct {
    const char *name;
    int prefix;                 /* 1: any name starting with it */
    sn_preprocess_kind kind;
} name_map[] = {
    {"lenet", 0, SN_PREPROCESS_LENET},
    {"cifarnet", 0, SN_PREPROCESS_CIFARNET},
    {"vgg", 1, SN_PREPROCESS_VGG},
    {"resnet_v1_", 1, SN_PREPROCESS_VGG},
    {"resnet_v2_", 1, SN_PREPROCESS_VGG},
    {"inception", 1, SN_PREPROCESS_INCEPTION},
    {"mobilenet", 1, SN_PREPROCESS_INCEPTION},
    {"nasnet", 1, SN_PREPROCESS_INCEPTION},
    {"pnasnet", 1, SN_PREPROCESS_INCEPTION},
};

const char *sn_preprocess_kind_name(sn_preprocess_kind kind) {
    return (int)kind >= 0 && (int)kind < N_KINDS ? kind_names[kind] : NULL;
}

sn_status sn_preprocess_kind_for(const char *name, sn_preprocess_kind *kind) {
    if (!name || !kind) return SN_ERR_INVALID_ARG;
    for (size_t i = 0; i < sizeof name_map / sizeof name_map[0]; i++) {
        size_t n = strlen(name_map[i].name);
        if (name_map[i].prefix ? strncmp(name, name_map[i].name, n) == 0
                               : strcmp(name, name_map[i].name) == 0) {
            *kind = name_map[i].kind;
            return SN_OK;
        }
    }
    return SN_ERR_NOT_FOUND;
}

sn_preprocess_params sn_preprocess_params_default(void) {
    sn_preprocess_params p;
    memset(&p, 0, sizeof p);
    p.kind = SN_PREPROCESS_INCEPTION;   /* train_image_classifier's default model inception_v3 */
    p.fast_mode = 1;
    p.resize_side_min = 256;
    p.resize_side_max = 512;
    return p;
}

/* ---- the generator: splitmix64's finalizer over (key, counter) --------------------------- */

typedef struct rng {
    uint64_t key, n;
} rng;


/* The seed is mixed first, so that neighbouring seeds give unrelated streams. */
static rng rng_new(uint64_t seed) {
    rng r = {sn__mix64(seed ^ 0x70726570726f63ull), 0};
    return r;
}

static uint64_t rng_next(rng *r) { return sn__mix64(r->key + ++r->n * SN__GOLDEN64); }

/* [0, 1) with 24 random bits. */
static float rng_unit(rng *r) { return (float)(rng_next(r) >> 40) * 0x1.0p-24f; }

/* [0, n), n >= 1; the modulo bias of a 64-bit draw is below 2^-32 for any int n. */
static int rng_int(rng *r, int n) { return (int)(rng_next(r) % (uint64_t)n); }

/* tf.random_uniform([], lo, hi): u * (hi - lo) + lo in float. */
static float rng_range(rng *r, float lo, float hi) { return rng_unit(r) * (hi - lo) + lo; }

/* ---- geometry ---------------------------------------------------------------------------- */

/* vgg_preprocessing._smallest_size_at_least, in float32 as TF computes it. */
static sn_status smallest_size(sn_ctx *ctx, int h, int w, int side, int *nh, int *nw) {
    const float hf = (float)h, wf = (float)w, sf = (float)side;
    const float scale = hf > wf ? sf / wf : sf / hf;
    const float rh = rintf(hf * scale), rw = rintf(wf * scale);
    if (!(rh <= (float)(INT_MAX / 4)) || !(rw <= (float)(INT_MAX / 4)))
        return sn__fail(ctx, SN_ERR_INVALID_ARG, "preprocess: vgg resize of a %dx%d image to "
                        "a shorter side of %d is too large", w, h, side);
    *nh = (int)rh;
    *nw = (int)rw;
    return SN_OK;
}

/* One try of SampleDistortedBoundingBoxV2's GenerateRandomCrop (float32 as its kernel);
 * box = {y, x, h, w}.  Returns 0 when the constraints cannot be met. */
static int random_crop_try(rng *r, int W, int H, float aspect, int box[4]) {
    const float min_area = INC_AREA_LO * (float)W * (float)H;
    const float max_area = INC_AREA_HI * (float)W * (float)H;
    int height = (int)lrintf(sqrtf(min_area / aspect));
    int max_height = (int)lrintf(sqrtf(max_area / aspect));
    if (lrintf((float)max_height * aspect) > W) {
        /* the largest max_height with round(max_height * aspect) <= W (in double, as TF) */
        const float eps = 0.0000001f;
        max_height = (int)(((double)W + 0.5 - (double)eps) / (double)aspect);
        if (lrintf((float)max_height * aspect) > W) max_height -= 1;
    }
    if (max_height > H) max_height = H;
    if (height >= max_height) height = max_height;
    if (height < max_height) height += rng_int(r, max_height - height + 1);
    int width = (int)lrintf((float)height * aspect);
    float area = (float)((int64_t)width * height);
    if (area < min_area) {      /* rounding: try one row more, then one less */
        height += 1;
        width = (int)lrintf((float)height * aspect);
        area = (float)((int64_t)width * height);
    }
    if (area > max_area) {
        height -= 1;
        width = (int)lrintf((float)height * aspect);
        area = (float)((int64_t)width * height);
    }
    if (area < min_area || area > max_area || width > W || height > H || width <= 0 ||
        height <= 0)
        return 0;
    /* TF's Uniform(n) is [0, n): a crop smaller than the image never touches its far edge */
    box[0] = height < H ? rng_int(r, H - height) : 0;
    box[1] = width < W ? rng_int(r, W - width) : 0;
    box[2] = height;
    box[3] = width;
    return 1;
}

/* inception's distorted_bounding_box_crop with bbox None: the object is the whole image, so
 * the overlap constraint is crop area / image area >= min_object_covered. */
static void sample_box(rng *r, int H, int W, int box[4]) {
    const float image_area = (float)((int64_t)W * H);
    for (int i = 0; i < INC_ATTEMPTS; i++) {
        const float aspect = rng_unit(r) * (INC_ASPECT_HI - INC_ASPECT_LO) + INC_ASPECT_LO;
        if (random_crop_try(r, W, H, aspect, box) &&
            (float)((int64_t)box[2] * box[3]) / image_area >= INC_MIN_COVERED)
            return;
    }
    box[0] = box[1] = 0;        /* no sample: the whole image */
    box[2] = H;
    box[3] = W;
}

/* ---- parameters and draws ---------------------------------------------------------------- */

static sn_status check_params(sn_ctx *ctx, const sn_preprocess_params *p) {
    if (!p) return sn__fail(ctx, SN_ERR_INVALID_ARG, "preprocess: params is NULL");
    if (!sn_preprocess_kind_name(p->kind))
        return sn__fail(ctx, SN_ERR_INVALID_ARG, "preprocess: unknown kind %d", (int)p->kind);
    if (p->out_height <= 0 || p->out_width <= 0)
        return sn__fail(ctx, SN_ERR_INVALID_ARG, "preprocess: out_height and out_width must "
                        "be > 0 (the net's image size), not %dx%d", p->out_height,
                        p->out_width);
    if (p->kind == SN_PREPROCESS_VGG &&
        (p->resize_side_min <= 0 || (p->is_training && p->resize_side_max < p->resize_side_min)))
        return sn__fail(ctx, SN_ERR_INVALID_ARG, "preprocess: vgg needs 0 < resize_side_min "
                        "<= resize_side_max, not %d and %d", p->resize_side_min,
                        p->resize_side_max);
    return SN_OK;
}

static sn_status check_size(sn_ctx *ctx, int h, int w, int c) {
    if (h <= 0 || w <= 0)
        return sn__fail(ctx, SN_ERR_INVALID_ARG, "preprocess: invalid image size %dx%d", w, h);
    if (c != 1 && c != 3)
        return sn__fail(ctx, SN_ERR_INVALID_ARG, "preprocess: images have 1 or 3 channels, "
                        "not %d", c);
    return SN_OK;
}

static void neutral_draw(int h, int w, sn_preprocess_draw *d) {
    memset(d, 0, sizeof *d);
    d->crop_h = h;
    d->crop_w = w;
    d->saturation = 1.0f;
    d->contrast = 1.0f;
}

static sn_status draw(sn_ctx *ctx, const sn_preprocess_params *p, int h, int w, uint64_t seed,
                      sn_preprocess_draw *d) {
    const int oh = p->out_height, ow = p->out_width;
    rng r = rng_new(seed);
    neutral_draw(h, w, d);
    if (!p->is_training) return SN_OK;
    switch (p->kind) {
    case SN_PREPROCESS_LENET:
        return SN_OK;
    case SN_PREPROCESS_CIFARNET: {
        /* tf.random_crop of the zero-padded image: offsets uniform in [0, padded - out] */
        const int ph = h + 2 * CIFAR_PADDING, pw = w + 2 * CIFAR_PADDING;
        if (ph < oh || pw < ow)
            return sn__fail(ctx, SN_ERR_INVALID_ARG, "preprocess: cifarnet cannot crop %dx%d "
                            "from a %dx%d image padded to %dx%d", ow, oh, w, h, pw, ph);
        d->crop_y = rng_int(&r, ph - oh + 1);
        d->crop_x = rng_int(&r, pw - ow + 1);
        d->crop_h = oh;
        d->crop_w = ow;
        d->flip = rng_unit(&r) < 0.5f;
        d->brightness = rng_range(&r, -CIFAR_BRIGHTNESS, CIFAR_BRIGHTNESS);
        d->contrast = rng_range(&r, CIFAR_CONTRAST_LO, CIFAR_CONTRAST_HI);
        return SN_OK;
    }
    case SN_PREPROCESS_VGG: {
        int nh = 0, nw = 0;
        d->resize_side = p->resize_side_min +
                         rng_int(&r, p->resize_side_max - p->resize_side_min + 1);
        SN_TRY(smallest_size(ctx, h, w, d->resize_side, &nh, &nw));
        if (nh < oh || nw < ow)
            return sn__fail(ctx, SN_ERR_INVALID_ARG, "preprocess: vgg cannot crop %dx%d from "
                            "a %dx%d image resized to %dx%d", ow, oh, w, h, nw, nh);
        d->crop_y = rng_int(&r, nh - oh + 1);
        d->crop_x = rng_int(&r, nw - ow + 1);
        d->crop_h = oh;
        d->crop_w = ow;
        d->flip = rng_unit(&r) < 0.5f;
        return SN_OK;
    }
    case SN_PREPROCESS_INCEPTION: {
        int box[4];
        sample_box(&r, h, w, box);
        d->crop_y = box[0];
        d->crop_x = box[1];
        d->crop_h = box[2];
        d->crop_w = box[3];
        d->flip = rng_unit(&r) < 0.5f;
        /* apply_with_random_selector over 1 case in fast mode, 4 otherwise */
        d->resize_method = p->fast_mode ? RESIZE_BILINEAR : rng_int(&r, 4);
        d->color_ordering = p->fast_mode ? 0 : rng_int(&r, 4);
        d->brightness = rng_range(&r, -INC_BRIGHTNESS, INC_BRIGHTNESS);
        d->saturation = rng_range(&r, INC_SATURATION_LO, INC_SATURATION_HI);
        if (!p->fast_mode) {
            d->hue = rng_range(&r, -INC_HUE, INC_HUE);
            d->contrast = rng_range(&r, INC_CONTRAST_LO, INC_CONTRAST_HI);
        }
        return SN_OK;
    }
    }
    return sn__fail(ctx, SN_ERR_INVALID_ARG, "preprocess: unknown kind %d", (int)p->kind);
}

sn_status sn_preprocess_draw_random(const sn_preprocess_params *p, int h, int w, uint64_t seed,
                                    sn_preprocess_draw *d) {
    if (!d) return SN_ERR_INVALID_ARG;
    SN_TRY(check_params(NULL, p));
    if (h <= 0 || w <= 0) return SN_ERR_INVALID_ARG;
    return draw(NULL, p, h, w, seed, d);
}

/* A caller's draw for a training image: inside the image, the choices the kind uses in
 * range (those it does not use are not looked at). */
static sn_status check_draw(sn_ctx *ctx, const sn_preprocess_params *p, int h, int w,
                            const sn_preprocess_draw *d) {
    const char *kname = sn_preprocess_kind_name(p->kind);
    const int inception = p->kind == SN_PREPROCESS_INCEPTION;
    int64_t lim_h = h, lim_w = w;
    const char *in = "image";
    if (d->flip != 0 && d->flip != 1)
        return sn__fail(ctx, SN_ERR_INVALID_ARG, "preprocess: draw flip must be 0 or 1, not %d",
                        d->flip);
    if (!isfinite(d->brightness) || !isfinite(d->contrast) ||
        (inception && (!isfinite(d->saturation) || !(d->hue >= -1.0f && d->hue <= 1.0f))))
        return sn__fail(ctx, SN_ERR_INVALID_ARG, "preprocess: draw brightness %g, saturation "
                        "%g, contrast %g must be finite and hue %g in [-1, 1]",
                        (double)d->brightness, (double)d->saturation, (double)d->contrast,
                        (double)d->hue);
    if (p->kind == SN_PREPROCESS_CIFARNET) {
        lim_h = (int64_t)h + 2 * CIFAR_PADDING;
        lim_w = (int64_t)w + 2 * CIFAR_PADDING;
        in = "padded image";
    } else if (p->kind == SN_PREPROCESS_VGG) {
        int nh = 0, nw = 0;
        if (d->resize_side <= 0)
            return sn__fail(ctx, SN_ERR_INVALID_ARG, "preprocess: vgg draw resize_side %d must "
                            "be > 0", d->resize_side);
        SN_TRY(smallest_size(ctx, h, w, d->resize_side, &nh, &nw));
        lim_h = nh;
        lim_w = nw;
        in = "resized image";
    } else if (d->color_ordering < 0 || d->color_ordering > 3 || d->resize_method < 0 ||
               d->resize_method > 3) {
        return sn__fail(ctx, SN_ERR_INVALID_ARG, "preprocess: inception draw color_ordering "
                        "%d and resize_method %d must be in 0..3", d->color_ordering,
                        d->resize_method);
    }
    if (!inception && (d->crop_h != p->out_height || d->crop_w != p->out_width))
        return sn__fail(ctx, SN_ERR_INVALID_ARG, "preprocess: %s draw crop %dx%d must be the "
                        "output size %dx%d", kname, d->crop_w, d->crop_h, p->out_width,
                        p->out_height);
    if (d->crop_y < 0 || d->crop_x < 0 || d->crop_h <= 0 || d->crop_w <= 0 ||
        (int64_t)d->crop_y + d->crop_h > lim_h || (int64_t)d->crop_x + d->crop_w > lim_w)
        return sn__fail(ctx, SN_ERR_INVALID_ARG, "preprocess: %s draw crop %dx%d at (y %d, "
                        "x %d) is outside the %lldx%lld %s", kname, d->crop_w, d->crop_h,
                        d->crop_y, d->crop_x, (long long)lim_w, (long long)lim_h, in);
    return SN_OK;
}

/* ---- per-image adjustments ---------------------------------------------------------------- */

/* out(y, x) = image(y + dy, x' + dx) as float (gray when asked), zero outside the image,
 * x' = ow - 1 - x when flipped: resize_image_with_crop_or_pad and cifarnet's pad-and-crop. */
static void place(float *out, int oh, int ow, const uint8_t *img, int h, int w, int c, int gray,
                  int dy, int dx, int flip) {
    const int oc = gray ? 1 : c;
    for (int y = 0; y < oh; y++) {
        float *o = out + (size_t)y * (size_t)ow * (size_t)oc;
        const int sy = y + dy;
        if (sy < 0 || sy >= h) {
            for (int i = 0; i < ow * oc; i++) o[i] = 0.0f;
            continue;
        }
        const uint8_t *src = img + (size_t)sy * (size_t)w * (size_t)c;
        for (int x = 0; x < ow; x++) {
            const int sx = (flip ? ow - 1 - x : x) + dx;
            float *d = o + (size_t)x * oc;
            if (sx < 0 || sx >= w) {
                for (int j = 0; j < oc; j++) d[j] = 0.0f;
            } else {
                const uint8_t *q = src + (size_t)sx * c;
                if (gray) d[0] = sn__gray3((float)q[0], (float)q[1], (float)q[2]);
                else for (int j = 0; j < oc; j++) d[j] = (float)q[j];
            }
        }
    }
}

/* resize_image_with_crop_or_pad's offsets along one axis: crop (size > target) or pad. */
static int crop_or_pad_shift(int size, int target) {
    const int diff = target - size;
    const int crop = diff < 0 ? -diff / 2 : 0;   /* max(-diff // 2, 0) */
    const int pad = diff > 0 ? diff / 2 : 0;     /* max(diff // 2, 0) */
    return crop - pad;
}

static void adjust_brightness(float *x, size_t n, float delta) {
    for (size_t i = 0; i < n; i++) x[i] = x[i] + delta;
}

/* AdjustContrastv2: mean + factor * (x - mean) per channel. */
static void adjust_contrast(float *x, size_t npix, int c, float factor) {
    double sum[3] = {0, 0, 0};
    float mean[3];
    for (size_t p = 0; p < npix; p++)
        for (int j = 0; j < c; j++) sum[j] += x[p * c + j];
    for (int j = 0; j < c; j++) mean[j] = (float)sum[j] * (1.0f / (float)npix);
    for (size_t p = 0; p < npix; p++)
        for (int j = 0; j < c; j++) x[p * c + j] = mean[j] + factor * (x[p * c + j] - mean[j]);
}

#define MAXF(a, b) ((a) < (b) ? (b) : (a))   /* std::max, std::min */
#define MINF(a, b) ((b) < (a) ? (b) : (a))

/* AdjustSaturation's CPU kernel: RGB -> HSV, s = clamp(s * factor), HSV -> RGB. */
static void adjust_saturation(float *x, size_t npix, float factor) {
    for (size_t p = 0; p < npix; p++) {
        float *q = x + 3 * p;
        const float r = q[0], g = q[1], b = q[2];
        const float v = MAXF(r, MAXF(g, b));
        const float range = v - MINF(r, MINF(g, b));
        float s = v > 0 ? range / v : 0.0f, h = 0.0f;
        if (range > 0) {
            const float norm = 1.0f / (6.0f * range);
            if (r == v) h = norm * (g - b);
            else if (g == v) h = (float)((double)(norm * (b - r)) + 2.0 / 6.0);
            else h = (float)((double)(norm * (r - g)) + 4.0 / 6.0);
        }
        if (h < 0) h = h + 1;
        s = MINF(1.0f, MAXF(0.0f, s * factor));
        const float cc = s * v, m = v - cc, dh = h * 6;
        const int cat = (int)dh;
        float fm = dh;
        while (fm <= 0) fm += 2.0f;
        while (fm >= 2.0f) fm -= 2.0f;
        const float xx = cc * (1 - fabsf(fm - 1));
        float rr = 0, gg = 0, bb = 0;
        switch (cat) {
        case 0: rr = cc; gg = xx; break;
        case 1: rr = xx; gg = cc; break;
        case 2: gg = cc; bb = xx; break;
        case 3: gg = xx; bb = cc; break;
        case 4: rr = xx; bb = cc; break;
        case 5: rr = cc; bb = xx; break;
        default: break;
        }
        q[0] = rr + m;
        q[1] = gg + m;
        q[2] = bb + m;
    }
}

/* AdjustHue's CPU kernel: hue in [0, 6) from the sorted channels, shifted, and back. */
static void adjust_hue(float *x, size_t npix, float delta) {
    const float shift = delta * 6;
    for (size_t p = 0; p < npix; p++) {
        float *q = x + 3 * p;
        const float r = q[0], g = q[1], b = q[2];
        float vmax, vmid, vmin;
        int cat;
        if (r < g) {
            if (b < r) { vmax = g; vmid = r; vmin = b; cat = 1; }
            else if (b > g) { vmax = b; vmid = g; vmin = r; cat = 3; }
            else { vmax = g; vmid = b; vmin = r; cat = 2; }
        } else {
            if (b < g) { vmax = r; vmid = g; vmin = b; cat = 0; }
            else if (b > r) { vmax = b; vmid = r; vmin = g; cat = 4; }
            else { vmax = r; vmid = b; vmin = g; cat = 5; }
        }
        float h = 0.0f;
        if (vmax != vmin) {
            const float ratio = (vmid - vmin) / (vmax - vmin);
            h = (float)cat + ((cat & 1) == 0 ? ratio : 1 - ratio);
        }
        h += shift;
        while (h < 0) h += 6;
        while (h >= 6) h -= 6;
        const int hc = (int)h;
        float ratio = h - (float)hc;
        if (hc & 1) ratio = 1 - ratio;
        const float mid = vmin + ratio * (vmax - vmin);
        switch (hc) {
        case 0: q[0] = vmax; q[1] = mid; q[2] = vmin; break;
        case 1: q[0] = mid; q[1] = vmax; q[2] = vmin; break;
        case 2: q[0] = vmin; q[1] = vmax; q[2] = mid; break;
        case 3: q[0] = vmin; q[1] = mid; q[2] = vmax; break;
        case 4: q[0] = mid; q[1] = vmin; q[2] = vmax; break;
        default: q[0] = vmax; q[1] = vmin; q[2] = mid; break;
        }
    }
}

/* tf.image.per_image_standardization: (x - mean) / max(std, 1 / sqrt(N)). */
static void standardize(float *x, size_t n) {
    double sum = 0, var = 0;
    for (size_t i = 0; i < n; i++) sum += x[i];
    const float mean = (float)(sum / (double)n);
    for (size_t i = 0; i < n; i++) {
        const float d = x[i] - mean;
        var += (double)(d * d);
    }
    const float std = sqrtf((float)(var / (double)n));
    const float min_std = 1.0f / sqrtf((float)n);
    const float adj = MAXF(std, min_std);
    for (size_t i = 0; i < n; i++) x[i] = (x[i] - mean) / adj;
}

/* ---- the four functions --------------------------------------------------------------------- */

typedef struct job {
    sn_ctx *ctx;
    const sn_preprocess_params *p;
    const uint8_t *img;
    int h, w, c;
    int gray;                 /* rgb_to_grayscale applies (use_grayscale on 3 channels) */
    const sn_preprocess_draw *d;
    float *out;
} job;

/* lenet: float, crop or pad, (x - 128) / 128.  cifarnet: float, crop or pad (eval) or pad 4
 * and crop (train), flip, brightness, contrast, per_image_standardization. */
static sn_status run_small(const job *j) {
    const sn_preprocess_params *p = j->p;
    const int oh = p->out_height, ow = p->out_width, oc = j->gray ? 1 : j->c;
    const size_t n = (size_t)oh * (size_t)ow * (size_t)oc;
    const int train = p->is_training && p->kind == SN_PREPROCESS_CIFARNET;
    /* TF-slim passes (out_width, out_height) to resize_image_with_crop_or_pad; for the square
     * sizes its tools use that is the same, and (out_height, out_width) is the shape asked. */
    const int dy = train ? j->d->crop_y - CIFAR_PADDING : crop_or_pad_shift(j->h, oh);
    const int dx = train ? j->d->crop_x - CIFAR_PADDING : crop_or_pad_shift(j->w, ow);
    place(j->out, oh, ow, j->img, j->h, j->w, j->c, j->gray, dy, dx, train && j->d->flip);
    if (p->kind == SN_PREPROCESS_LENET) {
        for (size_t i = 0; i < n; i++) j->out[i] = (j->out[i] - 128.0f) / 128.0f;
        return SN_OK;
    }
    if (train) {
        adjust_brightness(j->out, n, j->d->brightness);
        adjust_contrast(j->out, (size_t)oh * (size_t)ow, oc, j->d->contrast);
    }
    standardize(j->out, n);
    return SN_OK;
}

/* vgg: aspect-preserving resize of the shorter side, crop (central or drawn), float, gray,
 * flip, minus the means.  Only the rows and columns the crop keeps are resized. */
static sn_status run_vgg(const job *j) {
    const sn_preprocess_params *p = j->p;
    const int oh = p->out_height, ow = p->out_width;
    const int side = p->is_training ? j->d->resize_side : p->resize_side_min;
    int nh = 0, nw = 0, y0, x0;
    SN_TRY(smallest_size(j->ctx, j->h, j->w, side, &nh, &nw));
    if (p->is_training) {
        y0 = j->d->crop_y;
        x0 = j->d->crop_x;
    } else {
        if (nh < oh || nw < ow)
            return sn__fail(j->ctx, SN_ERR_INVALID_ARG, "preprocess: vgg cannot crop %dx%d "
                            "from a %dx%d image resized to %dx%d", ow, oh, j->w, j->h, nw, nh);
        y0 = (nh - oh) / 2;
        x0 = (nw - ow) / 2;
    }
    /* One channel out: the means' own gray value (TF-slim's _mean_image_subtraction refuses
     * anything but 3 channels; gray(x - means) = gray(x) - gray(means) for 3). */
    const float gm = sn__gray3(VGG_R_MEAN, VGG_G_MEAN, VGG_B_MEAN);
    const int oc = j->gray ? 1 : j->c;
    sink k = {j->out, ow, j->c, j->gray, p->is_training && j->d->flip,
              {oc == 3 ? VGG_R_MEAN : gm, VGG_G_MEAN, VGG_B_MEAN}, 1.0f};
    source s = {j->img, NULL, (size_t)j->w * (size_t)j->c, j->c, 0, 0, j->h, j->w, 1.0f, 0,
                NULL};
    return sn__resize_bilinear(j->ctx, &s, nh, nw, y0, x0, oh, ow, &k);
}

/* inception eval: to [0, 1], gray, central_crop(0.875), resize, (x - 0.5) * 2. */
static sn_status run_inception_eval(const job *j) {
    const sn_preprocess_params *p = j->p;
    const int y0 = (int)(((double)j->h - (double)j->h * INC_CENTRAL_FRACTION) / 2);
    const int x0 = (int)(((double)j->w - (double)j->w * INC_CENTRAL_FRACTION) / 2);
    source s = {j->img, NULL, (size_t)j->w * (size_t)j->c, j->c, y0, x0, j->h - 2 * y0,
                j->w - 2 * x0, (float)(1.0 / 255.0), j->gray, NULL};
    sink k = {j->out, p->out_width, source_channels(&s), 0, 0, {0.5f, 0.5f, 0.5f}, 2.0f};
    return sn__resize_bilinear(j->ctx, &s, p->out_height, p->out_width, 0, 0, p->out_height,
                    p->out_width, &k);
}

/* inception train: to [0, 1], crop the box, resize (bilinear, or the drawn method in full
 * mode), flip, distort_color in the drawn ordering, clip, gray, (x - 0.5) * 2.  Saturation and
 * hue need color: a 1-channel image gets brightness and contrast only. */
static sn_status run_inception_train(const job *j) {
    const sn_preprocess_params *p = j->p;
    const sn_preprocess_draw *d = j->d;
    const int oh = p->out_height, ow = p->out_width, c = j->c;
    const size_t npix = (size_t)oh * (size_t)ow, n = npix * (size_t)c;
    const float scale = (float)(1.0 / 255.0);
    float *buf = j->out, *win = NULL;
    sn_status st = SN_OK;
    if (j->gray && !(buf = malloc(n * sizeof(float))))
        return sn__fail(j->ctx, SN_ERR_NOMEM, "preprocess: out of memory (%dx%d)", ow, oh);
    sink k = {buf, ow, c, 0, d->flip, {0, 0, 0}, 1.0f};
    if (d->resize_method == RESIZE_BILINEAR) {
        source s = {j->img, NULL, (size_t)j->w * (size_t)c, c, d->crop_y, d->crop_x, d->crop_h,
                    d->crop_w, scale, 0, NULL};
        st = sn__resize_bilinear(j->ctx, &s, oh, ow, 0, 0, oh, ow, &k);
    } else {
        const size_t wn = (size_t)d->crop_h * (size_t)d->crop_w * (size_t)c;
        if (!(win = malloc(wn * sizeof(float)))) {
            st = sn__fail(j->ctx, SN_ERR_NOMEM, "preprocess: out of memory (crop %dx%d)",
                          d->crop_w, d->crop_h);
        } else {
            for (int y = 0; y < d->crop_h; y++) {
                const uint8_t *src =
                    j->img + ((size_t)(d->crop_y + y) * (size_t)j->w + (size_t)d->crop_x) * c;
                float *dst = win + (size_t)y * (size_t)d->crop_w * c;
                for (size_t i = 0; i < (size_t)d->crop_w * c; i++) dst[i] = (float)src[i] * scale;
            }
            st = sn__resize_other(j->ctx, d->resize_method, win, d->crop_h, d->crop_w, c, oh, ow,
                              &k);
        }
    }
    if (st == SN_OK) {
        /* distort_color: fast mode brightness + saturation (ordering 0) or the reverse;
         * full mode one of the four orderings of brightness, saturation, hue, contrast. */
        static const char order[2][4][5] = {{"bs", "sb", "sb", "sb"},
                                            {"bshc", "sbch", "chbs", "hscb"}};
        const char *ops = order[!p->fast_mode][d->color_ordering];
        for (const char *op = ops; *op; op++) {
            if (*op == 'b') adjust_brightness(buf, n, d->brightness);
            else if (*op == 'c') adjust_contrast(buf, npix, c, d->contrast);
            else if (c == 3 && *op == 's') adjust_saturation(buf, npix, d->saturation);
            else if (c == 3 && *op == 'h') adjust_hue(buf, npix, d->hue);
        }
        for (size_t i = 0; i < n; i++) buf[i] = MAXF(MINF(buf[i], 1.0f), 0.0f);
        if (j->gray) {
            for (size_t i = 0; i < npix; i++)
                j->out[i] = (sn__gray3(buf[3 * i], buf[3 * i + 1], buf[3 * i + 2]) - 0.5f) * 2.0f;
        } else {
            for (size_t i = 0; i < n; i++) buf[i] = (buf[i] - 0.5f) * 2.0f;
        }
    }
    free(win);
    if (buf != j->out) free(buf);
    return st;
}

sn_status sn_preprocess(sn_ctx *ctx, const sn_preprocess_params *p, const uint8_t *img, int h,
                        int w, int c, const sn_preprocess_draw *d, uint64_t seed, float *out) {
    sn_preprocess_draw own;
    size_t n;
    SN_TRY(check_params(ctx, p));
    if (!img || !out)
        return sn__fail(ctx, SN_ERR_INVALID_ARG, "preprocess: %s is NULL",
                        !img ? "the image" : "the output");
    SN_TRY(check_size(ctx, h, w, c));
    if (!sn__mul_size((size_t)h * (size_t)w, (size_t)c, &n) ||
        !sn__mul_size((size_t)p->out_height * (size_t)p->out_width, 3, &n) ||
        (size_t)w * (size_t)c > INT_MAX || (size_t)p->out_width * 3 > INT_MAX)
        return sn__fail(ctx, SN_ERR_INVALID_ARG, "preprocess: image too large");
    const int train = p->is_training && p->kind != SN_PREPROCESS_LENET;
    if (train) {
        if (d) SN_TRY(check_draw(ctx, p, h, w, d));
        else {
            SN_TRY(draw(ctx, p, h, w, seed, &own));
            d = &own;
        }
    }
    job j = {ctx, p, img, h, w, c, p->use_grayscale && c == 3, d, out};
    switch (p->kind) {
    case SN_PREPROCESS_LENET:
    case SN_PREPROCESS_CIFARNET:
        return run_small(&j);
    case SN_PREPROCESS_VGG:
        return run_vgg(&j);
    case SN_PREPROCESS_INCEPTION:
        return train ? run_inception_train(&j) : run_inception_eval(&j);
    }
    return sn__fail(ctx, SN_ERR_INVALID_ARG, "preprocess: unknown kind %d", (int)p->kind);
}
