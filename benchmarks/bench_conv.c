/* bench_conv.c: the CPU convolution kernels on every convolution shape of ResNet-50 v1,
 * measured against OpenBLAS sgemm in the same run.
 *
 * Shapes: x (N,H,W,C), w (R,S,C,K), y (N,P,Q,K), batch N = 8 at 224x224, as slim's
 * resnet_v1_50 builds them: conv1 7x7/2 by conv2d_same (explicit pad 3, then VALID), then
 * four blocks of bottleneck units (1x1, 3x3, 1x1, plus a 1x1 projection shortcut where the
 * depth changes), with the stride in the 3x3 conv2 of the LAST unit of blocks 1-3.  Each
 * distinct shape is timed once and weighted by how often it occurs in the network.
 *
 * A convolution's flops are counted as its GEMM's, 2*N*P*Q*K*R*S*C, padding taps included,
 * the same for forward, backward data and backward filter.
 *
 * Usage: bench_conv [threads]   (default: $SN_THREADS, else 2) */
#include <cblas.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "../kernels/kernels.h"

#define BATCH 8
#define MAX_SHAPES 64

typedef struct shape {
    char name[48];          /* scope of its first occurrence */
    sn__conv2d_dims cd;
    int count;
    double fwd_s, bwd_data_s, bwd_filter_s, gemm_s;   /* median seconds per call */
} shape;

typedef struct shape_list {
    shape s[MAX_SHAPES];
    int n;
} shape_list;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double flops(const sn__conv2d_dims *cd) {
    return 2.0 * (double)(cd->N * cd->P * cd->Q) * (double)cd->K *
           (double)(cd->R * cd->S * cd->C);
}

/* Adds one convolution of slim's resnet_v1, square kernel k, to the list (or counts it
 * again).  same_fixed: slim's conv2d_same, i.e. SAME at stride 1, else explicit padding of
 * k-1 split floor/ceil followed by VALID.  Otherwise slim.conv2d's SAME.  Returns the
 * output size. */
static int64_t add_conv(shape_list *l, const char *name, int64_t H, int64_t C, int64_t K,
                        int64_t k, int64_t stride, int same_fixed) {
    sn__conv2d_dims cd = {.N = BATCH, .H = H, .W = H, .C = C, .K = K, .R = k, .S = k,
                          .stride_h = stride, .stride_w = stride, .dil_h = 1, .dil_w = 1};
    if (same_fixed && stride > 1) {
        cd.pad_top = cd.pad_left = (k - 1) / 2;
        cd.P = (H + k - 1 - k) / stride + 1;
    } else {                /* TF's SAME */
        cd.P = (H + stride - 1) / stride;
        int64_t total = (cd.P - 1) * stride + k - H;
        cd.pad_top = cd.pad_left = total > 0 ? total / 2 : 0;
    }
    cd.Q = cd.P;
    for (int i = 0; i < l->n; i++) {
        if (memcmp(&l->s[i].cd, &cd, sizeof cd) == 0) {
            l->s[i].count++;
            return cd.P;
        }
    }
    if (l->n == MAX_SHAPES) {
        fprintf(stderr, "bench_conv: more than %d shapes\n", MAX_SHAPES);
        exit(1);
    }
    shape *s = &l->s[l->n++];
    memset(s, 0, sizeof *s);
    snprintf(s->name, sizeof s->name, "%s", name);
    s->cd = cd;
    s->count = 1;
    return cd.P;
}

/* resnet_v1_50's convolutions, in network order. */
static void resnet50_shapes(shape_list *l) {
    static const struct { int64_t base, units, stride; } blocks[4] = {
        {64, 3, 2}, {128, 4, 2}, {256, 6, 2}, {512, 3, 1}};
    char name[48];
    int64_t H = add_conv(l, "conv1", 224, 3, 64, 7, 2, 1);
    H = (H + 1) / 2;        /* pool1: 3x3 max pool, stride 2, SAME */
    int64_t depth_in = 64;
    for (int b = 0; b < 4; b++) {
        for (int64_t u = 1; u <= blocks[b].units; u++) {
            int64_t depth = blocks[b].base * 4, base = blocks[b].base;
            int64_t stride = u == blocks[b].units ? blocks[b].stride : 1;
#define UNIT_NAME(part) \
    snprintf(name, sizeof name, "block%d/unit_%lld/%s", b + 1, (long long)u, part)
            if (depth != depth_in) {    /* else the shortcut is a subsample, not a conv */
                UNIT_NAME("shortcut");
                add_conv(l, name, H, depth_in, depth, 1, stride, 0);
            }
            UNIT_NAME("conv1");
            add_conv(l, name, H, depth_in, base, 1, 1, 0);
            UNIT_NAME("conv2");
            int64_t H2 = add_conv(l, name, H, base, base, 3, stride, 1);
            UNIT_NAME("conv3");
            add_conv(l, name, H2, base, depth, 1, 1, 0);
#undef UNIT_NAME
            depth_in = depth;
            H = H2;
        }
    }
}

static float *rand_buf(size_t n, uint32_t seed) {
    float *p = malloc((n ? n : 1) * sizeof(float));
    if (!p) {
        fprintf(stderr, "bench_conv: out of memory (%zu floats)\n", n);
        exit(1);
    }
    uint32_t s = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        p[i] = (float)(s >> 8) / 8388608.0f - 1.0f;
    }
    return p;
}

static void check(sn_status st, const char *what) {
    if (st != SN_OK) {
        fprintf(stderr, "bench_conv: %s failed: %s\n", what, sn_status_name(st));
        exit(1);
    }
}

/* Which of the four measured operations a timing loop runs. */
enum { OP_FWD, OP_BWD_DATA, OP_BWD_FILTER, OP_GEMM };

typedef struct bufs {
    float *x, *w, *y, *dy, *dx, *dw, *patches;
} bufs;

static void run_op(sn__dev *d, int op, const bufs *b, const sn__conv2d_dims *cd) {
    int64_t rows = cd->N * cd->P * cd->Q, cols = cd->R * cd->S * cd->C;
    switch (op) {
    case OP_FWD: check(sn__conv2d_fwd_cpu(d, b->y, b->x, b->w, cd), "conv2d_fwd"); break;
    case OP_BWD_DATA:
        check(sn__conv2d_bwd_data_cpu(d, b->dx, b->dy, b->w, 1.0f, cd), "conv2d_bwd_data");
        break;
    case OP_BWD_FILTER:
        check(sn__conv2d_bwd_filter_cpu(d, b->dw, b->dy, b->x, cd), "conv2d_bwd_filter");
        break;
    default:    /* the GEMM the forward reduces to, on a ready-made patches matrix */
        check(sn__gemm_cpu(d, 0, 0, rows, cd->K, cols, 1.0f, b->patches, cols, b->w, cd->K,
                           0.0f, b->y, cd->K), "gemm");
    }
}

/* Median seconds of one call, after a warm-up call; repetitions scale down for slow
 * shapes so the whole run stays short. */
static double time_op(sn__dev *d, int op, const bufs *b, const sn__conv2d_dims *cd) {
    double t0 = now();
    run_op(d, op, b, cd);
    double warm = now() - t0;
    int reps = warm > 0 ? (int)(0.25 / warm) : 15;
    reps = reps < 3 ? 3 : reps > 15 ? 15 : reps;
    double t[15];
    for (int i = 0; i < reps; i++) {
        t0 = now();
        run_op(d, op, b, cd);
        t[i] = now() - t0;
    }
    qsort(t, (size_t)reps, sizeof t[0], cmp_double);
    return t[reps / 2];
}

/* One n x n x n sgemm: through the kernel (OpenMP blocks of single-threaded OpenBLAS,
 * see kernels/cpu/gemm.c), or straight to OpenBLAS with its own pthreads pool. */
static void square_gemm(sn__dev *d, int native, int64_t n, const float *a, const float *b,
                        float *c) {
    if (native)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)n, (int)n, 1.0f,
                    a, (int)n, b, (int)n, 0.0f, c, (int)n);
    else
        check(sn__gemm_cpu(d, 0, 0, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n), "gemm");
}

/* sgemm GFLOP/s of a square n x n x n product, median of a few calls after a warm-up. */
static double sgemm_gflops(sn__dev *d, int native, int64_t n) {
    float *a = rand_buf((size_t)(n * n), 1), *b = rand_buf((size_t)(n * n), 2),
          *c = rand_buf((size_t)(n * n), 3);
    double t[9];
    square_gemm(d, native, n, a, b, c);
    for (int i = 0; i < 9; i++) {
        double t0 = now();
        square_gemm(d, native, n, a, b, c);
        t[i] = now() - t0;
    }
    qsort(t, 9, sizeof t[0], cmp_double);
    free(a); free(b); free(c);
    return 2.0 * (double)n * (double)n * (double)n / t[4] * 1e-9;
}

int main(int argc, char **argv) {
    int threads = 2;
    const char *env = getenv("SN_THREADS");
    if (argc > 1) threads = atoi(argv[1]);
    else if (env) threads = atoi(env);
    if (threads < 1) threads = 1;
    sn__dev d = {0};
    d.threads = threads;

    shape_list l;
    l.n = 0;
    resnet50_shapes(&l);

    /* OpenBLAS's own threading first, before any OpenMP pool exists to disturb it. */
    openblas_set_num_threads(threads);
    double native = sgemm_gflops(&d, 1, 1024);
    double split = sgemm_gflops(&d, 0, 1024);
    printf("threads %d, batch %d; sgemm 1024x1024x1024: OpenBLAS threads %.1f GFLOP/s, "
           "sn__gemm_cpu %.1f GFLOP/s\n", threads, BATCH, native, split);
    printf("%-24s %3s %-22s %7s %7s %7s %8s %8s\n", "first use", "cnt",
           "HxWxC -> PxQxK  RxS/s", "GFLOP", "gemm", "fwd", "bwd_data", "bwd_filt");
    printf("%-24s %3s %-22s %7s %7s %7s %8s %8s\n", "", "", "", "(1 call)",
           "GFLOP/s", "GFLOP/s", "GFLOP/s", "GFLOP/s");

    double tot_flops = 0, t_fwd = 0, t_bwd = 0, t_gemm = 0;
    for (int i = 0; i < l.n; i++) {
        shape *s = &l.s[i];
        const sn__conv2d_dims *cd = &s->cd;
        size_t nx = (size_t)(cd->N * cd->H * cd->W * cd->C),
               ny = (size_t)(cd->N * cd->P * cd->Q * cd->K),
               nw = (size_t)(cd->R * cd->S * cd->C * cd->K),
               np = (size_t)(cd->N * cd->P * cd->Q * cd->R * cd->S * cd->C);
        bufs b = {rand_buf(nx, 10), rand_buf(nw, 11), rand_buf(ny, 12), rand_buf(ny, 13),
                  rand_buf(nx, 14), rand_buf(nw, 15), rand_buf(np, 16)};
        size_t ws = 0;
        check(sn__conv2d_ws_cpu(&d, cd, &ws), "conv2d_ws");
        d.ws = malloc(ws ? ws : 1);
        d.ws_bytes = ws;
        if (!d.ws) check(SN_ERR_NOMEM, "workspace");

        s->gemm_s = time_op(&d, OP_GEMM, &b, cd);
        s->fwd_s = time_op(&d, OP_FWD, &b, cd);
        s->bwd_data_s = time_op(&d, OP_BWD_DATA, &b, cd);
        s->bwd_filter_s = time_op(&d, OP_BWD_FILTER, &b, cd);

        double f = flops(cd) * 1e-9;
        char geo[64];
        snprintf(geo, sizeof geo, "%lldx%lldx%lld->%lldx%lldx%lld %lldx%lld/%lld",
                 (long long)cd->H, (long long)cd->W, (long long)cd->C, (long long)cd->P,
                 (long long)cd->Q, (long long)cd->K, (long long)cd->R, (long long)cd->S,
                 (long long)cd->stride_h);
        printf("%-24s %3d %-22s %7.3f %7.1f %7.1f %8.1f %8.1f   ws %.1f MB\n", s->name,
               s->count, geo, f, f / s->gemm_s, f / s->fwd_s, f / s->bwd_data_s,
               f / s->bwd_filter_s, (double)ws / 1048576.0);
        fflush(stdout);

        tot_flops += s->count * flops(cd);
        t_fwd += s->count * s->fwd_s;
        t_bwd += s->count * (s->bwd_data_s + s->bwd_filter_s);
        t_gemm += s->count * s->gemm_s;
        free(b.x); free(b.w); free(b.y); free(b.dy); free(b.dx); free(b.dw); free(b.patches);
        free(d.ws);
        d.ws = NULL;
    }

    /* The reference for the ratios is the fastest sgemm seen, at the start or the end, by
     * OpenBLAS's threads or ours: on a shared machine the clock and the neighbours vary. */
    openblas_set_num_threads(threads);
    double native_end = sgemm_gflops(&d, 1, 1024);
    double split_end = sgemm_gflops(&d, 0, 1024);
    printf("\nsgemm 1024x1024x1024 again: OpenBLAS threads %.1f GFLOP/s, sn__gemm_cpu %.1f "
           "GFLOP/s\n", native_end, split_end);
    double sgemm = native;
    if (split > sgemm) sgemm = split;
    if (native_end > sgemm) sgemm = native_end;
    if (split_end > sgemm) sgemm = split_end;

    int convs = 0;
    for (int i = 0; i < l.n; i++) convs += l.s[i].count;
    double fwd = tot_flops / t_fwd * 1e-9, bwd = 2 * tot_flops / t_bwd * 1e-9,
           gemm = tot_flops / t_gemm * 1e-9;
    printf("%d distinct shapes, %d convolutions, %.1f GFLOP per forward pass (batch %d)\n",
           l.n, convs, tot_flops * 1e-9, BATCH);
    printf("same GEMMs without im2col (sgemm on the patches): %.1f GFLOP/s = %.0f%% of sgemm\n",
           gemm, 100 * gemm / sgemm);
    printf("resnet50 conv fwd: %.1f GFLOP/s = %.0f%% of sgemm %.1f GFLOP/s (%.0f ms)\n", fwd,
           100 * fwd / sgemm, sgemm, t_fwd * 1e3);
    printf("resnet50 conv bwd (data+filter): %.1f GFLOP/s = %.0f%% of sgemm %.1f GFLOP/s "
           "(%.0f ms)\n", bwd, 100 * bwd / sgemm, sgemm, t_bwd * 1e3);
    return 0;
}
