/* test_preprocess.c: TF-slim's preprocessing (lib/io/preprocess.c).
 *
 *  - against TensorFlow itself: tests/reference/preprocess.json + preprocess.bin, written by
 *    tests/reference/make_preprocess_fixtures.py with the pinned TensorFlow: every kind, train
 *    (replaying the fixture's draws) and eval, with and without use_grayscale, on a color, a
 *    gray and a small image; resize_bilinear up, down and same size; and the statistics of
 *    TF's sample_distorted_bounding_box, which slimnet's own generator must reproduce;
 *  - the draws: deterministic, in TF-slim's ranges, covering them;
 *  - bad arguments: a status and a message, never a crash. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>
#include "testutil.h"

/* ---- the fixture -------------------------------------------------------------------------- */

typedef struct fixture {
    cJSON *j;
    float *data;
    size_t n;
} fixture;

static char *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s (run from the repository root, or set "
                  "SN_PREPROCESS_FIXTURE; regenerate with "
                  "tests/reference/make_preprocess_fixtures.py)", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    ck_assert_ptr_nonnull(buf);
    ck_assert_uint_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static fixture load_fixture(void) {
    const char *path = getenv("SN_PREPROCESS_FIXTURE");
    if (!path || !path[0]) path = "tests/reference/preprocess.json";
    size_t len;
    char *text = read_all(path, &len);
    fixture fx;
    fx.j = cJSON_Parse(text);
    free(text);
    ck_assert_msg(fx.j != NULL, "%s: not valid JSON", path);
    /* the .bin lies beside the .json */
    const cJSON *bin = cJSON_GetObjectItemCaseSensitive(fx.j, "bin");
    ck_assert(cJSON_IsString(bin));
    char bpath[1024];
    const char *slash = strrchr(path, '/');
    int dir = slash ? (int)(slash - path + 1) : 0;
    snprintf(bpath, sizeof bpath, "%.*s%s", dir, path, bin->valuestring);
    char *raw = read_all(bpath, &len);
    fx.n = len / sizeof(float);
    const cJSON *nf = cJSON_GetObjectItemCaseSensitive(fx.j, "bin_floats");
    ck_assert_msg(cJSON_IsNumber(nf) && (size_t)nf->valuedouble == fx.n && len % 4 == 0,
                  "%s: %zu bytes, the manifest says %g floats", bpath, len,
                  cJSON_IsNumber(nf) ? nf->valuedouble : -1.0);
    fx.data = malloc(fx.n * sizeof(float));
    ck_assert_ptr_nonnull(fx.data);
    for (size_t i = 0; i < fx.n; i++) {   /* little-endian float32, whatever the host */
        const uint8_t *b = (const uint8_t *)raw + 4 * i;
        uint32_t u = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
                     (uint32_t)b[3] << 24;
        memcpy(&fx.data[i], &u, 4);
    }
    free(raw);
    return fx;
}

static void free_fixture(fixture *fx) {
    cJSON_Delete(fx->j);
    free(fx->data);
}

static const cJSON *jget(const cJSON *o, const char *key) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, key);
    ck_assert_msg(x != NULL, "fixture: missing \"%s\"", key);
    return x;
}

static double jnum(const cJSON *o, const char *key) {
    const cJSON *x = jget(o, key);
    ck_assert_msg(cJSON_IsNumber(x), "fixture: \"%s\" is not a number", key);
    return x->valuedouble;
}

static int jint(const cJSON *o, const char *key) { return (int)jnum(o, key); }

/* n floats at the manifest's offset, bounds checked. */
static const float *fx_at(const fixture *fx, const cJSON *o, const char *key, size_t n) {
    size_t off = (size_t)jnum(o, key);
    ck_assert_msg(off + n <= fx->n, "fixture: %zu floats at %zu run past the file", n, off);
    return fx->data + off;
}

static size_t jshape(const cJSON *o, const char *key, int *dims, int rank) {
    const cJSON *a = jget(o, key);
    ck_assert_int_eq(cJSON_GetArraySize(a), rank);
    size_t n = 1;
    for (int i = 0; i < rank; i++) {
        dims[i] = cJSON_GetArrayItem(a, i)->valueint;
        n *= (size_t)dims[i];
    }
    return n;
}

/* The fixture's uint8 image named name (stored as float32 0..255). */
static uint8_t *fx_image(const fixture *fx, const char *name, int *h, int *w, int *c) {
    const cJSON *im;
    cJSON_ArrayForEach(im, jget(fx->j, "images")) {
        if (strcmp(jget(im, "name")->valuestring, name) != 0) continue;
        int d[3];
        size_t n = jshape(im, "shape", d, 3);
        const float *f = fx_at(fx, im, "offset", n);
        uint8_t *img = malloc(n);
        ck_assert_ptr_nonnull(img);
        for (size_t i = 0; i < n; i++) img[i] = (uint8_t)f[i];
        *h = d[0];
        *w = d[1];
        *c = d[2];
        return img;
    }
    ck_abort_msg("fixture: no image %s", name);
    return NULL;
}

static sn_preprocess_draw fx_draw(const cJSON *d) {
    sn_preprocess_draw r;
    memset(&r, 0, sizeof r);
    r.resize_side = jint(d, "resize_side");
    r.crop_y = jint(d, "crop_y");
    r.crop_x = jint(d, "crop_x");
    r.crop_h = jint(d, "crop_h");
    r.crop_w = jint(d, "crop_w");
    r.flip = jint(d, "flip");
    r.color_ordering = jint(d, "color_ordering");
    r.resize_method = jint(d, "resize_method");
    r.brightness = (float)jnum(d, "brightness");   /* float32 values, written exactly */
    r.saturation = (float)jnum(d, "saturation");
    r.hue = (float)jnum(d, "hue");
    r.contrast = (float)jnum(d, "contrast");
    return r;
}

static double max_abs_err(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (d > m || d != d) m = d != d ? INFINITY : d;
    }
    return m;
}

/* ---- against TensorFlow ------------------------------------------------------------------- */

START_TEST(test_preprocess_tf_fixture) {
    fixture fx = load_fixture();
    sn_ctx *ctx = tu_ctx();
    int n_cases = 0, n_train = 0, kinds[4] = {0, 0, 0, 0};
    const cJSON *cs;
    cJSON_ArrayForEach(cs, jget(fx.j, "cases")) {
        const char *name = jget(cs, "name")->valuestring;
        sn_preprocess_params p = sn_preprocess_params_default();
        ck_assert_msg(sn_preprocess_kind_for(jget(cs, "kind")->valuestring, &p.kind) == SN_OK,
                      "%s: kind", name);
        p.is_training = jint(cs, "is_training");
        p.fast_mode = jint(cs, "fast_mode");
        p.use_grayscale = jint(cs, "use_grayscale");
        p.out_height = jint(cs, "out_height");
        p.out_width = jint(cs, "out_width");
        p.resize_side_min = jint(cs, "resize_side_min");
        p.resize_side_max = jint(cs, "resize_side_max");
        int h, w, c, shape[3];
        uint8_t *img = fx_image(&fx, jget(cs, "image")->valuestring, &h, &w, &c);
        size_t n = jshape(cs, "shape", shape, 3);
        ck_assert_int_eq(shape[0], p.out_height);
        ck_assert_int_eq(shape[1], p.out_width);
        ck_assert_int_eq(shape[2], p.use_grayscale ? 1 : c);
        const float *want = fx_at(&fx, cs, "offset", n);
        const cJSON *jd = jget(cs, "draw");
        sn_preprocess_draw d;
        if (cJSON_IsObject(jd)) {
            d = fx_draw(jd);
            n_train++;
        } else {   /* eval: any draw is ignored */
            memset(&d, 0x5a, sizeof d);
        }
        float *got = malloc(n * sizeof(float));
        ck_assert_ptr_nonnull(got);
        ck_assert_msg(sn_preprocess(ctx, &p, img, h, w, c, &d, 0, got) == SN_OK, "%s: %s",
                      name, sn_ctx_errmsg(ctx));
        /* vgg's outputs are pixel values (0..255 minus the means), where float32's own
         * resolution is up to 1.5e-5: its bound is 1e-5 of that 255 scale.  Every other
         * kind's outputs are of order 1 ([-1, 1], or standardized): 1e-5 absolute. */
        double tol = p.kind == SN_PREPROCESS_VGG ? 1e-5 * 255 : 1e-5;
        double err = max_abs_err(got, want, n);
        ck_assert_msg(err <= tol, "%s (%s): max |slimnet - TF| = %g > %g", name,
                      jget(cs, "source")->valuestring, err, tol);
        kinds[p.kind]++;
        n_cases++;
        free(got);
        free(img);
    }
    ck_assert_int_ge(n_cases, 40);
    ck_assert_int_ge(n_train, 20);
    for (int k = 0; k < 4; k++) ck_assert_int_ge(kinds[k], 5);
    sn_ctx_free(ctx);
    free_fixture(&fx);
}
END_TEST

START_TEST(test_resize_bilinear_tf_fixture) {
    fixture fx = load_fixture();
    sn_ctx *ctx = tu_ctx();
    int n_cases = 0;
    const cJSON *cs;
    cJSON_ArrayForEach(cs, jget(fx.j, "resize_bilinear")) {
        int in[3], out[3];
        size_t ni = jshape(cs, "in_shape", in, 3), no = jshape(cs, "out_shape", out, 3);
        const float *x = fx_at(&fx, cs, "in_offset", ni), *want = fx_at(&fx, cs, "offset", no);
        float *got = malloc(no * sizeof(float));
        ck_assert_ptr_nonnull(got);
        ck_assert_int_eq(sn_resize_bilinear(ctx, x, in[0], in[1], in[2], got, out[0], out[1]),
                         SN_OK);
        double err = max_abs_err(got, want, no);   /* inputs in [-1, 2) */
        ck_assert_msg(err <= 1e-6, "%s: max |slimnet - TF| = %g", jget(cs, "name")->valuestring,
                      err);
        free(got);
        n_cases++;
    }
    ck_assert_int_ge(n_cases, 5);
    sn_ctx_free(ctx);
    free_fixture(&fx);
}
END_TEST

/* slimnet's boxes against TF's sample_distorted_bounding_box, by their statistics: means
 * within 5 standard errors of the difference, frequencies likewise. */
static void cmp_stat(const char *what, int H, int W, double ours, double ours_sd, double tf,
                     double tf_sd, double n_ours, double n_tf) {
    double se = sqrt(ours_sd * ours_sd / n_ours + tf_sd * tf_sd / n_tf);
    ck_assert_msg(fabs(ours - tf) <= 5 * se + 1e-9, "%dx%d box %s: slimnet %.4f, TF %.4f "
                  "(standard error %.4f)", W, H, what, ours, tf, se);
}

START_TEST(test_distorted_box_matches_tf) {
    fixture fx = load_fixture();
    const cJSON *bs;
    int n_sizes = 0;
    cJSON_ArrayForEach(bs, jget(fx.j, "boxes")) {
        const int H = jint(bs, "height"), W = jint(bs, "width"), N = 20000;
        const double n_tf = jnum(bs, "samples");
        sn_preprocess_params p = sn_preprocess_params_default();
        p.kind = SN_PREPROCESS_INCEPTION;
        p.is_training = 1;
        p.out_height = p.out_width = 8;
        double sum[4] = {0}, sq[4] = {0}, whole = 0, bottom = 0, right = 0;
        for (int i = 0; i < N; i++) {
            sn_preprocess_draw d;
            ck_assert_int_eq(sn_preprocess_draw_random(&p, H, W, (uint64_t)i, &d), SN_OK);
            ck_assert(d.crop_y >= 0 && d.crop_x >= 0 && d.crop_h >= 1 && d.crop_w >= 1 &&
                      d.crop_y + d.crop_h <= H && d.crop_x + d.crop_w <= W);
            const double v[4] = {d.crop_y, d.crop_x, d.crop_h, d.crop_w};
            for (int k = 0; k < 4; k++) {
                sum[k] += v[k];
                sq[k] += v[k] * v[k];
            }
            whole += d.crop_h == H && d.crop_w == W;
            bottom += d.crop_y + d.crop_h == H && d.crop_h < H;
            right += d.crop_x + d.crop_w == W && d.crop_w < W;
        }
        static const char *names[4] = {"y", "x", "h", "w"};
        for (int k = 0; k < 4; k++) {
            char key[16];
            double mean = sum[k] / N, sd = sqrt(fmax(sq[k] / N - mean * mean, 0));
            snprintf(key, sizeof key, "mean_%s", names[k]);
            double tf_mean = jnum(bs, key);
            snprintf(key, sizeof key, "std_%s", names[k]);
            double tf_sd = jnum(bs, key);
            cmp_stat(names[k], H, W, mean, sd, tf_mean, tf_sd, N, n_tf);
        }
        const double ours[3] = {whole / N, bottom / N, right / N};
        const double tfp[3] = {jnum(bs, "p_whole"), jnum(bs, "p_touch_bottom"),
                               jnum(bs, "p_touch_right")};
        static const char *fnames[3] = {"P(whole image)", "P(touches the bottom)",
                                        "P(touches the right)"};
        for (int k = 0; k < 3; k++)
            cmp_stat(fnames[k], H, W, ours[k], sqrt(ours[k] * (1 - ours[k])), tfp[k],
                     sqrt(tfp[k] * (1 - tfp[k])), N, n_tf);
        n_sizes++;
    }
    ck_assert_int_ge(n_sizes, 6);
    free_fixture(&fx);
}
END_TEST

/* ---- names and defaults ------------------------------------------------------------------- */

START_TEST(test_preprocess_names) {
    static const struct { const char *name; sn_preprocess_kind kind; } ok[] = {
        {"lenet", SN_PREPROCESS_LENET},          {"cifarnet", SN_PREPROCESS_CIFARNET},
        {"vgg", SN_PREPROCESS_VGG},              {"vgg_16", SN_PREPROCESS_VGG},
        {"vgg_19", SN_PREPROCESS_VGG},           {"vgg_a", SN_PREPROCESS_VGG},
        {"resnet_v1_50", SN_PREPROCESS_VGG},     {"resnet_v2_152", SN_PREPROCESS_VGG},
        {"inception", SN_PREPROCESS_INCEPTION},  {"inception_v3", SN_PREPROCESS_INCEPTION},
        {"inception_resnet_v2", SN_PREPROCESS_INCEPTION},
        {"mobilenet_v1", SN_PREPROCESS_INCEPTION}, {"mobilenet_v2_140", SN_PREPROCESS_INCEPTION},
        {"nasnet_large", SN_PREPROCESS_INCEPTION}, {"pnasnet_mobile", SN_PREPROCESS_INCEPTION},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        sn_preprocess_kind k = (sn_preprocess_kind)-1;
        ck_assert_msg(sn_preprocess_kind_for(ok[i].name, &k) == SN_OK, "%s", ok[i].name);
        ck_assert_msg(k == ok[i].kind, "%s -> %d", ok[i].name, (int)k);
    }
    static const char *bad[] = {"alexnet_v2", "overfeat", "", "LeNet", "resnet_v1", "lenet5",
                                "cifar", "xinception"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sn_preprocess_kind k;
        ck_assert_msg(sn_preprocess_kind_for(bad[i], &k) == SN_ERR_NOT_FOUND, "%s", bad[i]);
    }
    sn_preprocess_kind k;
    ck_assert_int_eq(sn_preprocess_kind_for(NULL, &k), SN_ERR_INVALID_ARG);
    ck_assert_int_eq(sn_preprocess_kind_for("vgg", NULL), SN_ERR_INVALID_ARG);
    ck_assert_str_eq(sn_preprocess_kind_name(SN_PREPROCESS_LENET), "lenet");
    ck_assert_str_eq(sn_preprocess_kind_name(SN_PREPROCESS_CIFARNET), "cifarnet");
    ck_assert_str_eq(sn_preprocess_kind_name(SN_PREPROCESS_VGG), "vgg");
    ck_assert_str_eq(sn_preprocess_kind_name(SN_PREPROCESS_INCEPTION), "inception");
    ck_assert_ptr_null(sn_preprocess_kind_name((sn_preprocess_kind)4));
    ck_assert_ptr_null(sn_preprocess_kind_name((sn_preprocess_kind)-1));

    sn_preprocess_params p = sn_preprocess_params_default();
    ck_assert_int_eq(p.kind, SN_PREPROCESS_INCEPTION);
    ck_assert_int_eq(p.is_training, 0);
    ck_assert_int_eq(p.fast_mode, 1);
    ck_assert_int_eq(p.use_grayscale, 0);
    ck_assert_int_eq(p.resize_side_min, 256);
    ck_assert_int_eq(p.resize_side_max, 512);
    ck_assert_int_eq(p.out_height, 0);   /* must be set: the net decides */
}
END_TEST

/* ---- the draws ---------------------------------------------------------------------------- */

static sn_preprocess_params train_params(sn_preprocess_kind kind, int oh, int ow) {
    sn_preprocess_params p = sn_preprocess_params_default();
    p.kind = kind;
    p.is_training = 1;
    p.out_height = oh;
    p.out_width = ow;
    return p;
}

START_TEST(test_draw_ranges) {
    enum { N = 4000 };
    /* vgg: resize_side uniform in [min, max] inclusive; the crop inside the resized image */
    sn_preprocess_params p = train_params(SN_PREPROCESS_VGG, 224, 224);
    p.resize_side_min = 256;
    p.resize_side_max = 259;
    int side_seen[4] = {0}, flips = 0, y_max = 0;
    for (int i = 0; i < N; i++) {
        sn_preprocess_draw d, e;
        ck_assert_int_eq(sn_preprocess_draw_random(&p, 48, 48, (uint64_t)i, &d), SN_OK);
        ck_assert_int_eq(sn_preprocess_draw_random(&p, 48, 48, (uint64_t)i, &e), SN_OK);
        ck_assert(memcmp(&d, &e, sizeof d) == 0);   /* pure */
        ck_assert(d.resize_side >= 256 && d.resize_side <= 259);
        side_seen[d.resize_side - 256]++;
        ck_assert_int_eq(d.crop_h, 224);
        ck_assert_int_eq(d.crop_w, 224);
        ck_assert(d.crop_y >= 0 && d.crop_y + 224 <= d.resize_side);   /* square image */
        ck_assert(d.crop_x >= 0 && d.crop_x + 224 <= d.resize_side);
        if (d.crop_y > y_max) y_max = d.crop_y;
        flips += d.flip;
    }
    for (int k = 0; k < 4; k++) ck_assert_msg(side_seen[k] > N / 4 - 200, "side %d", 256 + k);
    ck_assert_int_eq(y_max, 259 - 224);      /* the last offset is reachable */
    ck_assert(flips > N / 2 - 200 && flips < N / 2 + 200);

    /* cifarnet: offsets in the padded image, brightness [-63, 63), contrast [0.2, 1.8) */
    p = train_params(SN_PREPROCESS_CIFARNET, 32, 32);
    double bsum = 0, csum = 0;
    int at_end = 0;
    for (int i = 0; i < N; i++) {
        sn_preprocess_draw d;
        ck_assert_int_eq(sn_preprocess_draw_random(&p, 32, 32, (uint64_t)i, &d), SN_OK);
        ck_assert(d.crop_y >= 0 && d.crop_y <= 8 && d.crop_x >= 0 && d.crop_x <= 8);
        at_end += d.crop_y == 8;
        ck_assert(d.brightness >= -63.0f && d.brightness <= 63.0f);
        ck_assert(d.contrast >= 0.2f && d.contrast <= 1.8f);
        bsum += d.brightness;
        csum += d.contrast;
    }
    ck_assert(at_end > 0);
    ck_assert(fabs(bsum / N) < 3.0);            /* sd 36 / sqrt(4000) = 0.6 */
    ck_assert(fabs(csum / N - 1.0) < 0.04);

    /* inception: fast mode draws only brightness and saturation, the full mode all */
    p = train_params(SN_PREPROCESS_INCEPTION, 299, 299);
    int orders[4] = {0}, methods[4] = {0};
    for (int fast = 1; fast >= 0; fast--) {
        p.fast_mode = fast;
        for (int i = 0; i < N; i++) {
            sn_preprocess_draw d;
            ck_assert_int_eq(sn_preprocess_draw_random(&p, 375, 500, (uint64_t)i, &d), SN_OK);
            ck_assert(fabsf(d.brightness) <= 32.0f / 255.0f);
            ck_assert(d.saturation >= 0.5f && d.saturation <= 1.5f);
            if (fast) {
                ck_assert_int_eq(d.color_ordering, 0);
                ck_assert_int_eq(d.resize_method, 0);
                ck_assert(d.hue == 0.0f && d.contrast == 1.0f);
            } else {
                orders[d.color_ordering]++;
                methods[d.resize_method]++;
                ck_assert(fabsf(d.hue) <= 0.2f);
                ck_assert(d.contrast >= 0.5f && d.contrast <= 1.5f);
            }
        }
    }
    for (int k = 0; k < 4; k++) ck_assert(orders[k] > N / 4 - 200 && methods[k] > N / 4 - 200);

    /* eval and lenet: neutral */
    sn_preprocess_draw d;
    p = train_params(SN_PREPROCESS_LENET, 28, 28);
    ck_assert_int_eq(sn_preprocess_draw_random(&p, 30, 40, 5, &d), SN_OK);
    ck_assert(d.crop_h == 30 && d.crop_w == 40 && d.flip == 0 && d.saturation == 1.0f);
    p = train_params(SN_PREPROCESS_VGG, 224, 224);
    p.is_training = 0;
    ck_assert_int_eq(sn_preprocess_draw_random(&p, 10, 10, 5, &d), SN_OK);   /* no crop */
    ck_assert(d.crop_y == 0 && d.flip == 0 && d.contrast == 1.0f);
}
END_TEST

/* Different seeds, different images; NULL draw = the seed's draw; eval ignores both. */
START_TEST(test_preprocess_seed_and_draw) {
    sn_ctx *ctx = tu_ctx();
    enum { H = 40, W = 56, OH = 24, OW = 20 };
    uint8_t img[H * W * 3];
    uint64_t s = 11;
    for (int i = 0; i < H * W * 3; i++) img[i] = (uint8_t)((tu_rand(&s) + 1.0f) * 127.5f);
    static const sn_preprocess_kind kinds[] = {SN_PREPROCESS_CIFARNET, SN_PREPROCESS_VGG,
                                               SN_PREPROCESS_INCEPTION};
    float a[OH * OW * 3], b[OH * OW * 3], e[OH * OW * 3];
    for (size_t k = 0; k < 3; k++) {
        sn_preprocess_params p = train_params(kinds[k], OH, OW);
        p.resize_side_min = 30;
        p.resize_side_max = 40;
        p.fast_mode = 0;
        sn_preprocess_draw d;
        ck_assert_int_eq(sn_preprocess(ctx, &p, img, H, W, 3, NULL, 77, a), SN_OK);
        ck_assert_int_eq(sn_preprocess_draw_random(&p, H, W, 77, &d), SN_OK);
        ck_assert_int_eq(sn_preprocess(ctx, &p, img, H, W, 3, &d, 12345, b), SN_OK);
        ck_assert(memcmp(a, b, sizeof a) == 0);
        ck_assert_int_eq(sn_preprocess(ctx, &p, img, H, W, 3, NULL, 78, b), SN_OK);
        ck_assert(memcmp(a, b, sizeof a) != 0);
        p.is_training = 0;
        ck_assert_int_eq(sn_preprocess(ctx, &p, img, H, W, 3, NULL, 1, a), SN_OK);
        ck_assert_int_eq(sn_preprocess(ctx, &p, img, H, W, 3, &d, 2, e), SN_OK);
        ck_assert(memcmp(a, e, sizeof a) == 0);
    }
    /* lenet: train = eval */
    sn_preprocess_params p = train_params(SN_PREPROCESS_LENET, OH, OW);
    ck_assert_int_eq(sn_preprocess(ctx, &p, img, H, W, 3, NULL, 1, a), SN_OK);
    p.is_training = 0;
    ck_assert_int_eq(sn_preprocess(ctx, &p, img, H, W, 3, NULL, 2, b), SN_OK);
    ck_assert(memcmp(a, b, sizeof a) == 0);
    sn_ctx_free(ctx);
}
END_TEST

/* Outputs stay in their documented ranges for random draws on many image sizes. */
START_TEST(test_preprocess_random_sizes) {
    sn_ctx *ctx = tu_ctx();
    uint64_t s = 5;
    float *out = malloc(40 * 36 * 3 * sizeof(float));
    ck_assert_ptr_nonnull(out);
    for (int it = 0; it < 60; it++) {
        const int h = 1 + (int)((tu_rand(&s) + 1) * 40), w = 1 + (int)((tu_rand(&s) + 1) * 40);
        const int c = it % 2 ? 3 : 1;
        uint8_t *img = malloc((size_t)h * w * c);
        ck_assert_ptr_nonnull(img);
        for (int i = 0; i < h * w * c; i++) img[i] = (uint8_t)((tu_rand(&s) + 1.0f) * 127.5f);
        sn_preprocess_params p = train_params(SN_PREPROCESS_INCEPTION, 40, 36);
        p.fast_mode = it % 3 == 0;
        p.use_grayscale = it % 5 == 0;
        ck_assert_int_eq(sn_preprocess(ctx, &p, img, h, w, c, NULL, (uint64_t)it, out), SN_OK);
        const int oc = p.use_grayscale ? 1 : c;
        for (int i = 0; i < 40 * 36 * oc; i++) ck_assert(out[i] >= -1.0f && out[i] <= 1.0f);
        p.is_training = 0;
        ck_assert_int_eq(sn_preprocess(ctx, &p, img, h, w, c, NULL, 0, out), SN_OK);
        for (int i = 0; i < 40 * 36 * oc; i++) ck_assert(out[i] >= -1.0f && out[i] <= 1.0f);
        p.kind = SN_PREPROCESS_LENET;
        ck_assert_int_eq(sn_preprocess(ctx, &p, img, h, w, c, NULL, 0, out), SN_OK);
        for (int i = 0; i < 40 * 36 * oc; i++) ck_assert(out[i] >= -1.0f && out[i] < 1.0f);
        p.kind = SN_PREPROCESS_VGG;
        p.resize_side_min = 40;
        p.resize_side_max = 50;
        for (int train = 0; train < 2; train++) {
            p.is_training = train;
            ck_assert_int_eq(sn_preprocess(ctx, &p, img, h, w, c, NULL, (uint64_t)it, out),
                             SN_OK);
            for (int i = 0; i < 40 * 36 * oc; i++)
                ck_assert(out[i] >= -123.68f && out[i] <= 255.0f - 103.94f);
        }
        free(img);
    }
    free(out);
    sn_ctx_free(ctx);
}
END_TEST

/* ---- bad arguments ------------------------------------------------------------------------ */

static void expect_bad(sn_ctx *ctx, sn_status st, const char *what, const char *needle) {
    ck_assert_msg(st == SN_ERR_INVALID_ARG, "%s: status %s", what, sn_status_name(st));
    ck_assert_msg(strstr(sn_ctx_errmsg(ctx), needle) != NULL, "%s: message \"%s\" lacks "
                  "\"%s\"", what, sn_ctx_errmsg(ctx), needle);
}

START_TEST(test_preprocess_bad_args) {
    sn_ctx *ctx = tu_ctx();
    uint8_t img[20 * 30 * 3];
    memset(img, 100, sizeof img);
    float out[32 * 32 * 3], fin[12];
    sn_preprocess_params p = sn_preprocess_params_default();
    p.out_height = p.out_width = 16;

    expect_bad(ctx, sn_preprocess(ctx, NULL, img, 20, 30, 3, NULL, 0, out), "params", "NULL");
    expect_bad(ctx, sn_preprocess(ctx, &p, NULL, 20, 30, 3, NULL, 0, out), "img", "image");
    expect_bad(ctx, sn_preprocess(ctx, &p, img, 20, 30, 3, NULL, 0, NULL), "out", "output");
    expect_bad(ctx, sn_preprocess(ctx, &p, img, 0, 30, 3, NULL, 0, out), "h 0", "size");
    expect_bad(ctx, sn_preprocess(ctx, &p, img, 20, -3, 3, NULL, 0, out), "w < 0", "size");
    expect_bad(ctx, sn_preprocess(ctx, &p, img, 20, 30, 2, NULL, 0, out), "c 2", "channels");
    expect_bad(ctx, sn_preprocess(ctx, &p, img, 20, 30, 4, NULL, 0, out), "c 4", "channels");
    ck_assert_int_eq(sn_preprocess(NULL, &p, img, 20, 30, 4, NULL, 0, out), SN_ERR_INVALID_ARG);
    sn_preprocess_params q = p;
    q.out_height = 0;
    expect_bad(ctx, sn_preprocess(ctx, &q, img, 20, 30, 3, NULL, 0, out), "out 0", "out_height");
    q = p;
    q.out_width = -1;
    expect_bad(ctx, sn_preprocess(ctx, &q, img, 20, 30, 3, NULL, 0, out), "out < 0", "out_width");
    q = p;
    q.kind = (sn_preprocess_kind)9;
    expect_bad(ctx, sn_preprocess(ctx, &q, img, 20, 30, 3, NULL, 0, out), "kind", "kind");
    q = p;
    q.kind = SN_PREPROCESS_VGG;
    q.resize_side_min = 0;
    expect_bad(ctx, sn_preprocess(ctx, &q, img, 20, 30, 3, NULL, 0, out), "side 0", "resize_side");
    q.resize_side_min = 300;
    q.resize_side_max = 200;
    q.is_training = 1;
    expect_bad(ctx, sn_preprocess(ctx, &q, img, 20, 30, 3, NULL, 0, out), "min > max",
               "resize_side");
    /* images too small for the crop */
    q.is_training = 0;
    q.resize_side_min = 12;
    expect_bad(ctx, sn_preprocess(ctx, &q, img, 20, 30, 3, NULL, 0, out), "vgg eval small",
               "cannot crop");
    q = p;
    q.kind = SN_PREPROCESS_CIFARNET;
    q.is_training = 1;
    q.out_height = q.out_width = 32;
    expect_bad(ctx, sn_preprocess(ctx, &q, img, 20, 30, 3, NULL, 0, out), "cifarnet small",
               "cannot crop");
    sn_preprocess_draw d;
    ck_assert_int_eq(sn_preprocess_draw_random(&q, 20, 30, 0, &d), SN_ERR_INVALID_ARG);

    /* draws outside the image or out of range */
    q = p;
    q.kind = SN_PREPROCESS_INCEPTION;
    q.is_training = 1;
    ck_assert_int_eq(sn_preprocess_draw_random(&q, 20, 30, 3, &d), SN_OK);
    ck_assert_int_eq(sn_preprocess(ctx, &q, img, 20, 30, 3, &d, 0, out), SN_OK);
    sn_preprocess_draw e = d;
    e.crop_y = 20 - e.crop_h + 1;
    expect_bad(ctx, sn_preprocess(ctx, &q, img, 20, 30, 3, &e, 0, out), "box below", "outside");
    e = d;
    e.crop_w = 0;
    expect_bad(ctx, sn_preprocess(ctx, &q, img, 20, 30, 3, &e, 0, out), "box empty", "outside");
    e = d;
    e.crop_x = -1;
    expect_bad(ctx, sn_preprocess(ctx, &q, img, 20, 30, 3, &e, 0, out), "box left", "outside");
    e = d;
    e.color_ordering = 4;
    expect_bad(ctx, sn_preprocess(ctx, &q, img, 20, 30, 3, &e, 0, out), "ordering", "0..3");
    e = d;
    e.resize_method = -1;
    expect_bad(ctx, sn_preprocess(ctx, &q, img, 20, 30, 3, &e, 0, out), "method", "0..3");
    e = d;
    e.hue = 1.5f;
    expect_bad(ctx, sn_preprocess(ctx, &q, img, 20, 30, 3, &e, 0, out), "hue", "hue");
    e = d;
    e.saturation = NAN;
    expect_bad(ctx, sn_preprocess(ctx, &q, img, 20, 30, 3, &e, 0, out), "saturation", "finite");
    e = d;
    e.flip = 2;
    expect_bad(ctx, sn_preprocess(ctx, &q, img, 20, 30, 3, &e, 0, out), "flip", "flip");
    q.kind = SN_PREPROCESS_VGG;
    q.resize_side_min = 20;
    q.resize_side_max = 30;
    ck_assert_int_eq(sn_preprocess_draw_random(&q, 20, 30, 3, &d), SN_OK);
    ck_assert_int_eq(sn_preprocess(ctx, &q, img, 20, 30, 3, &d, 0, out), SN_OK);
    e = d;
    e.resize_side = 15;   /* resized to 15x22: the 16x16 crop does not fit */
    e.crop_y = e.crop_x = 0;
    expect_bad(ctx, sn_preprocess(ctx, &q, img, 20, 30, 3, &e, 0, out), "vgg side", "outside");
    e = d;
    e.resize_side = 0;
    expect_bad(ctx, sn_preprocess(ctx, &q, img, 20, 30, 3, &e, 0, out), "vgg side 0",
               "resize_side");
    e = d;
    e.crop_h = 15;
    expect_bad(ctx, sn_preprocess(ctx, &q, img, 20, 30, 3, &e, 0, out), "vgg crop size",
               "output size");
    q.kind = SN_PREPROCESS_CIFARNET;
    ck_assert_int_eq(sn_preprocess_draw_random(&q, 20, 30, 3, &d), SN_OK);
    e = d;
    e.crop_x = 30 + 8 - 16 + 1;
    expect_bad(ctx, sn_preprocess(ctx, &q, img, 20, 30, 3, &e, 0, out), "cifarnet crop",
               "padded");
    e = d;
    e.brightness = INFINITY;
    expect_bad(ctx, sn_preprocess(ctx, &q, img, 20, 30, 3, &e, 0, out), "brightness", "finite");

    ck_assert_int_eq(sn_preprocess_draw_random(NULL, 20, 30, 0, &d), SN_ERR_INVALID_ARG);
    ck_assert_int_eq(sn_preprocess_draw_random(&q, 20, 30, 0, NULL), SN_ERR_INVALID_ARG);
    ck_assert_int_eq(sn_preprocess_draw_random(&q, 0, 30, 0, &d), SN_ERR_INVALID_ARG);

    /* resize_bilinear */
    memset(fin, 0, sizeof fin);
    expect_bad(ctx, sn_resize_bilinear(ctx, NULL, 2, 2, 3, out, 4, 4), "resize in", "NULL");
    expect_bad(ctx, sn_resize_bilinear(ctx, fin, 2, 2, 3, NULL, 4, 4), "resize out", "NULL");
    expect_bad(ctx, sn_resize_bilinear(ctx, fin, 0, 2, 3, out, 4, 4), "resize h", "sizes");
    expect_bad(ctx, sn_resize_bilinear(ctx, fin, 2, 2, 0, out, 4, 4), "resize c", "sizes");
    expect_bad(ctx, sn_resize_bilinear(ctx, fin, 2, 2, 3, out, 4, -4), "resize ow", "sizes");
    sn_ctx_free(ctx);
}
END_TEST

Suite *suite_preprocess(void) {
    Suite *s = suite_create("preprocess");
    TCase *tc = tcase_create("preprocess");
    tcase_add_test(tc, test_preprocess_names);
    tcase_add_test(tc, test_preprocess_tf_fixture);
    tcase_add_test(tc, test_resize_bilinear_tf_fixture);
    tcase_add_test(tc, test_distorted_box_matches_tf);
    tcase_add_test(tc, test_draw_ranges);
    tcase_add_test(tc, test_preprocess_seed_and_draw);
    tcase_add_test(tc, test_preprocess_random_sizes);
    tcase_add_test(tc, test_preprocess_bad_args);
    suite_add_tcase(s, tc);
    return s;
}
