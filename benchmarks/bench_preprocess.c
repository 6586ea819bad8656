/* bench_preprocess.c: sn_preprocess per image on one core, for the sizes the input pipeline
 * sees: FER's 48x48 grayscale JPEGs (decoded to 3 channels, as TF-slim's decoder does) into
 * lenet and vgg, and an ImageNet-sized 500x375 image into inception (train and eval).
 *
 * Each row: microseconds per call, the best and the median of 7 rounds of enough calls for
 * ~0.1 s, in the thread's CPU time (the machines these run on are shared: wall time would
 * count other processes), and the images per second one core reaches at the best time.  The "decode + " rows include sn_image_decode_into of
 * the JPEG.  Training rows draw a new choice per image (seed = the image's index), so crops
 * and resize sizes vary as in training.
 *
 * Usage: bench_preprocess */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "../lib/slimnet.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef struct bench {
    const char *name;
    sn_preprocess_params p;
    const uint8_t *img;       /* decoded image, or NULL: decode jpeg each call */
    int h, w, c;
    const uint8_t *jpeg;
    size_t jpeg_len;
} bench;

static uint8_t decoded[48 * 48 * 3];

static int run_once(sn_ctx *ctx, const bench *b, uint64_t i, float *out) {
    const uint8_t *img = b->img;
    int h = b->h, w = b->w, c = b->c;
    if (!img) {
        sn_image_params ip = sn_image_params_default();
        ip.channels = 3;
        if (sn_image_decode_into(ctx, b->jpeg, b->jpeg_len, &ip, decoded, sizeof decoded, &h,
                                 &w, &c) != SN_OK)
            return 1;
        img = decoded;
    }
    return sn_preprocess(ctx, &b->p, img, h, w, c, NULL, i, out) != SN_OK;
}

static void run(sn_ctx *ctx, const bench *b, float *out) {
    enum { ROUNDS = 7 };
    double t[ROUNDS];
    uint64_t seed = 0;
    int n = 1;
    for (;;) {      /* calibrate: ~0.1 s a round */
        double t0 = now();
        for (int i = 0; i < n; i++)
            if (run_once(ctx, b, seed++, out)) {
                fprintf(stderr, "%s: %s\n", b->name, sn_ctx_errmsg(ctx));
                exit(1);
            }
        if (now() - t0 > 0.05 || n > (1 << 20)) break;
        n *= 2;
    }
    n *= 2;
    for (int r = 0; r < ROUNDS; r++) {
        double t0 = now();
        for (int i = 0; i < n; i++) run_once(ctx, b, seed++, out);
        t[r] = (now() - t0) / n;
    }
    qsort(t, ROUNDS, sizeof t[0], cmp_double);
    printf("%-44s %9.1f %9.1f %9.0f\n", b->name, t[0] * 1e6, t[ROUNDS / 2] * 1e6, 1.0 / t[0]);
}

static sn_preprocess_params params(sn_preprocess_kind kind, int train, int size) {
    sn_preprocess_params p = sn_preprocess_params_default();
    p.kind = kind;
    p.is_training = train;
    p.out_height = p.out_width = size;
    return p;
}

int main(void) {
    sn_ctx_params cp = sn_ctx_params_default();
    cp.threads = 1;
    sn_ctx *ctx = NULL;
    if (sn_ctx_new(&cp, &ctx) != SN_OK) {
        fprintf(stderr, "bench_preprocess: no context\n");
        return 1;
    }
    /* a 48x48 face-like gray image and a 500x375 color one: smooth shapes plus noise */
    uint8_t *fer3 = malloc(48 * 48 * 3), *fer1 = malloc(48 * 48), *big = malloc(375 * 500 * 3);
    float *out = malloc(299 * 299 * 3 * sizeof(float));
    if (!fer3 || !fer1 || !big || !out) return 1;
    uint64_t s = 1;
    for (int i = 0; i < 48 * 48; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        int v = 128 + (int)(60.0 * ((i % 48) / 48.0 - (i / 48) / 48.0)) + (int)(s >> 60);
        fer1[i] = (uint8_t)v;
        fer3[3 * i] = fer3[3 * i + 1] = fer3[3 * i + 2] = (uint8_t)v;
    }
    for (int i = 0; i < 375 * 500 * 3; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        big[i] = (uint8_t)((i / 3 % 500) / 2 + (i / 1500) / 3 + (int)(s >> 59));
    }
    sn_tensor *gray = NULL, *jpeg = NULL;
    int64_t dims[3] = {48, 48, 1};
    if (sn_tensor_wrap(ctx, fer1, SN_DTYPE_U8, 3, dims, SN_BORROW, &gray) != SN_OK ||
        sn_image_encode_jpeg(ctx, gray, 95, &jpeg) != SN_OK) {
        fprintf(stderr, "bench_preprocess: %s\n", sn_ctx_errmsg(ctx));
        return 1;
    }
    const uint8_t *jp = sn_tensor_data(jpeg);
    size_t jl = (size_t)sn_tensor_numel(jpeg);

    bench b[] = {
        {"lenet 48x48x3 -> 48x48", params(SN_PREPROCESS_LENET, 0, 48), fer3, 48, 48, 3, 0, 0},
        {"lenet 48x48x3 -> 28x28", params(SN_PREPROCESS_LENET, 0, 28), fer3, 48, 48, 3, 0, 0},
        {"decode + lenet 48x48 jpeg -> 48x48x3", params(SN_PREPROCESS_LENET, 0, 48), NULL, 0,
         0, 0, jp, jl},
        {"cifarnet train 48x48x3 -> 32x32", params(SN_PREPROCESS_CIFARNET, 1, 32), fer3, 48,
         48, 3, 0, 0},
        {"vgg eval 48x48x3 -> 224x224", params(SN_PREPROCESS_VGG, 0, 224), fer3, 48, 48, 3, 0,
         0},
        {"vgg train 48x48x3 -> 224x224", params(SN_PREPROCESS_VGG, 1, 224), fer3, 48, 48, 3, 0,
         0},
        {"decode + vgg eval 48x48 jpeg -> 224x224x3", params(SN_PREPROCESS_VGG, 0, 224), NULL,
         0, 0, 0, jp, jl},
        {"inception eval 500x375x3 -> 299x299", params(SN_PREPROCESS_INCEPTION, 0, 299), big,
         375, 500, 3, 0, 0},
        {"inception train 500x375x3 -> 299x299 (fast)", params(SN_PREPROCESS_INCEPTION, 1, 299),
         big, 375, 500, 3, 0, 0},
        {"inception train 500x375x3 -> 299x299 (full)", params(SN_PREPROCESS_INCEPTION, 1, 299),
         big, 375, 500, 3, 0, 0},
    };
    b[9].p.fast_mode = 0;
    printf("bench_preprocess: one thread, CPU time per image\n");
    printf("%-44s %9s %9s %9s\n", "", "best us", "median us", "images/s");
    for (size_t i = 0; i < sizeof b / sizeof b[0]; i++) run(ctx, &b[i], out);
    sn_tensor_free(jpeg);
    sn_tensor_free(gray);
    free(fer3);
    free(fer1);
    free(big);
    free(out);
    sn_ctx_free(ctx);
    return 0;
}
