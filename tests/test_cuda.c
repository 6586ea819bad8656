/* test_cuda.c: CPU-vs-CUDA parity of every kernel in kernels.def.
 *
 * Each test fills inputs with the same random data on both backends, runs the CPU kernel
 * (sn__kernels_cpu, 2 threads) and the CUDA kernel (sn__kernels_cuda), copies the CUDA
 * result back and requires max|cuda - cpu| <= tol * max(1, max|cpu|).  Backward kernels get
 * the same random prefill on both sides, so accumulation (+=) is checked too; forward outputs
 * start as NaN on the device, so a kernel that reads instead of overwriting fails.
 *
 * Tolerances.  TF32 is off (allow_tf32 = 0) for the parity runs: everything is fp32 and
 * differs only by summation order, so TOL = 1e-5.  Two exceptions:
 *   CONV_TOL = 1e-4 for convolutions through cuDNN: its heuristics may pick Winograd or FFT
 *     algorithms, which transform inputs and filters and round in the transformed domain;
 *     in fp32 their error is of order 1e-5 of the output scale, above direct summation's.
 *   TF32_TOL = 1e-2 for the TF32 runs of gemm and conv2d: TF32 keeps 10 mantissa bits of each
 *     input (relative rounding 2^-11 ~ 5e-4 per factor), accumulating in fp32.
 * Pooling, dropout, relu and the moving statistics are compared exactly (tolerance 0): the
 * CUDA kernels perform the same float operations in the same order.
 *
 * Without a CUDA build or without a device (sn__cuda_count() == 0) each test prints a skip
 * note and passes, so `make test` passes on CPU-only machines.  No CUDA call is made outside
 * a test body: Check forks a child per test, and a parent that had initialized CUDA would
 * leave its children unable to use it. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "testutil.h"
#include "../kernels/kernels.h"
#ifdef SN_WITH_CUDA
#include "../kernels/cuda/cuda_internal.h"
#endif

#ifdef SN_WITH_CUDA

#define TOL 1e-5
#define CONV_TOL 1e-4
#define TF32_TOL 1e-2

/* ---- the two devices ----------------------------------------------------------------------- */

typedef struct env {
    sn_ctx *ctx;                /* only for error messages */
    sn__dev cpu, gpu;
    const sn__kernels *kc, *kg;
    double worst;               /* largest relative error seen, for the test's summary */
    double worst16;             /* bf16 outputs: largest fraction of BF16_TOL's bound */
} env;

/* Opens both devices; 0 (after a note) when there is no CUDA device to test. */
static int env_open(env *e, const char *test) {
    memset(e, 0, sizeof *e);
    if (sn__cuda_count() <= 0) {
        printf("[cuda] %s skipped: no CUDA device\n", test);
        return 0;
    }
    e->ctx = tu_ctx();
    e->cpu.ctx = e->gpu.ctx = e->ctx;
    e->cpu.backend = SN__BACKEND_CPU;
    e->cpu.threads = 2;
    e->kc = &sn__kernels_cpu;
    e->kg = &sn__kernels_cuda;
    sn_status st = sn__cuda_open(&e->gpu, 0);
    ck_assert_msg(st == SN_OK, "sn__cuda_open: %s: %s", sn_status_name(st),
                  sn_ctx_errmsg(e->ctx));
    ((struct sn__cuda *)e->gpu.cuda)->allow_tf32 = 0;
    return 1;
}

static void tf32(env *e, int on) { ((struct sn__cuda *)e->gpu.cuda)->allow_tf32 = on; }

/* Workspaces of the given sizes on both devices (replacing any earlier ones). */
static void env_ws(env *e, size_t cpu_bytes, size_t gpu_bytes) {
    free(e->cpu.ws);
    e->cpu.ws = malloc(cpu_bytes ? cpu_bytes : 1);
    ck_assert_ptr_nonnull(e->cpu.ws);
    e->cpu.ws_bytes = cpu_bytes;
    if (e->gpu.ws) e->kg->free(&e->gpu, e->gpu.ws);
    e->gpu.ws = NULL;
    e->gpu.ws_bytes = 0;
    if (gpu_bytes) {
        ck_assert_int_eq(e->kg->alloc(&e->gpu, &e->gpu.ws, gpu_bytes), SN_OK);
        e->gpu.ws_bytes = gpu_bytes;
    }
}

static void env_close(env *e, const char *test) {
    if (e->gpu.ws) e->kg->free(&e->gpu, e->gpu.ws);
    free(e->cpu.ws);
    sn__cuda_close(&e->gpu);
    ck_assert_ptr_null(e->gpu.cuda);
    printf("[cuda] %s: worst relative difference %.3g\n", test, e->worst);
    sn_ctx_free(e->ctx);
}

/* Fails the test with the context's message when a kernel does not return SN_OK. */
#define CK(e, call)                                                                      \
    do {                                                                                 \
        sn_status st_ = (call);                                                          \
        ck_assert_msg(st_ == SN_OK, "%s -> %s: %s", #call, sn_status_name(st_),          \
                      sn_ctx_errmsg((e)->ctx));                                          \
    } while (0)

/* ---- mirrored buffers ------------------------------------------------------------------ */

/* The same n floats on both backends: h for the CPU kernels, d for the CUDA ones.  `off`
 * shifts both pointers by that many floats, to exercise the unaligned (scalar) paths. */
typedef struct buf {
    float *h, *d;
    float *hbase, *dbase;
    size_t n;
} buf;

static buf mk_from(env *e, const float *src, size_t n, size_t off) {
    buf b = {0};
    b.n = n;
    b.hbase = malloc((n + off + 1) * sizeof(float));
    ck_assert_ptr_nonnull(b.hbase);
    b.h = b.hbase + off;
    if (n) memcpy(b.h, src, n * sizeof(float));
    void *p = NULL;
    CK(e, e->kg->alloc(&e->gpu, &p, (n + off + 1) * sizeof(float)));
    b.dbase = p;
    b.d = b.dbase + off;
    CK(e, e->kg->to_dev(&e->gpu, b.d, src, n * sizeof(float)));
    return b;
}

/* Random values in [-scale, scale) (tu_fill), shifted by `shift`. */
static buf mk_rand(env *e, size_t n, uint64_t seed, float scale, float shift, size_t off) {
    float *t = malloc((n + 1) * sizeof(float));
    ck_assert_ptr_nonnull(t);
    tu_fill(t, n, seed);
    for (size_t i = 0; i < n; i++) t[i] = t[i] * scale + shift;
    buf b = mk_from(e, t, n, off);
    free(t);
    return b;
}
static buf mk(env *e, size_t n, uint64_t seed) { return mk_rand(e, n, seed, 1.0f, 0.0f, 0); }

/* An output: NaN on both sides, so a forward that reads it before writing shows up. */
static buf mk_out(env *e, size_t n, size_t off) {
    float *t = malloc((n + 1) * sizeof(float));
    ck_assert_ptr_nonnull(t);
    for (size_t i = 0; i < n; i++) t[i] = NAN;
    buf b = mk_from(e, t, n, off);
    free(t);
    return b;
}

static void rm(env *e, buf *b) {
    if (b->dbase) e->kg->free(&e->gpu, b->dbase);
    free(b->hbase);
    memset(b, 0, sizeof *b);
}

/* Copies b.d back and compares it with b.h; tol 0 demands identical bits. */
static void cmp(env *e, const char *what, const buf *b, double tol) {
    float *g = malloc((b->n + 1) * sizeof(float));
    ck_assert_ptr_nonnull(g);
    CK(e, e->kg->to_host(&e->gpu, g, b->d, b->n * sizeof(float)));
    double err = tu_max_rel_err(g, b->h, b->n);
    if (tol == 0) {
        size_t bad = b->n;
        for (size_t i = 0; i < b->n && bad == b->n; i++)
            if (memcmp(&g[i], &b->h[i], sizeof(float)) != 0) bad = i;
        ck_assert_msg(bad == b->n, "%s: element %zu differs: cuda %.9g, cpu %.9g", what, bad,
                      bad < b->n ? (double)g[bad] : 0.0, bad < b->n ? (double)b->h[bad] : 0.0);
    }
    ck_assert_msg(err <= tol, "%s: relative difference %.3g > %.3g", what, err, tol);
    if (err > e->worst) e->worst = err;
    free(g);
}

/* ---- convolution geometry (TensorFlow's SAME/VALID, as in test_kernels_conv.c) ----------- */

enum { PAD_SAME = -1, PAD_VALID = -2 };
typedef struct geom {
    int64_t N, H, W, C, K, R, S, sh, sw, dh, dw;
    int pad;
} geom;

static const geom conv_geoms[] = {
    /*N  H   W   C   K  R  S  sh sw dh dw pad */
    {2, 8, 8, 3, 5, 1, 1, 1, 1, 1, 1, PAD_VALID},     /* 1x1: the cuBLAS route */
    {3, 7, 9, 16, 24, 1, 1, 1, 1, 1, 1, PAD_SAME},
    {3, 9, 9, 5, 7, 1, 1, 2, 2, 1, 1, PAD_SAME},      /* strided 1x1 (ResNet shortcut) */
    {2, 8, 8, 5, 7, 3, 3, 1, 1, 1, 1, PAD_SAME},      /* symmetric SAME */
    {2, 10, 10, 5, 3, 3, 3, 2, 2, 1, 1, PAD_SAME},    /* asymmetric SAME: 0 top, 1 bottom */
    {2, 11, 11, 3, 7, 3, 3, 2, 2, 1, 1, 1},           /* conv2d_same, stride 2 */
    {2, 16, 16, 3, 8, 7, 7, 2, 2, 1, 1, PAD_SAME},    /* 7x7 stride 2, asymmetric (2,3) */
    {2, 12, 12, 3, 4, 7, 7, 2, 2, 1, 1, 3},           /* ResNet's conv1, scaled down */
    {2, 9, 9, 5, 7, 1, 7, 1, 1, 1, 1, PAD_SAME},      /* 1x7 */
    {1, 9, 10, 5, 7, 7, 1, 1, 1, 1, 1, PAD_SAME},     /* 7x1 */
    {2, 11, 11, 5, 3, 3, 3, 1, 1, 2, 2, PAD_SAME},    /* dilation 2 */
    {1, 12, 12, 3, 5, 3, 3, 2, 2, 2, 2, PAD_VALID},   /* dilation and stride */
    {1, 10, 7, 5, 3, 5, 3, 3, 2, 1, 1, PAD_SAME},     /* unequal strides, asymmetric */
    {1, 3, 3, 3, 5, 5, 5, 1, 1, 1, 1, PAD_SAME},      /* window larger than the image */
    {2, 5, 5, 3, 3, 3, 3, 3, 3, 1, 1, PAD_SAME},      /* stride 3, asymmetric SAME */
    {1, 7, 7, 5, 3, 3, 3, 2, 2, 1, 1, 2},             /* more padding than SAME */
    {2, 13, 5, 7, 9, 3, 5, 2, 1, 1, 2, PAD_SAME},     /* everything unequal, odd channels */
    {4, 14, 14, 32, 64, 3, 3, 1, 1, 1, 1, PAD_SAME},  /* a ResNet-like 3x3 block */
    {2, 16, 16, 17, 33, 3, 3, 2, 2, 1, 1, PAD_SAME},  /* odd channels, asymmetric (0,1) */
};
enum { N_CONV = (int)(sizeof conv_geoms / sizeof conv_geoms[0]) };

static const geom dw_geoms[] = {
    {2, 8, 8, 3, 0, 3, 3, 1, 1, 1, 1, PAD_SAME},
    {2, 10, 10, 8, 0, 3, 3, 2, 2, 1, 1, PAD_SAME},    /* asymmetric SAME */
    {2, 11, 11, 5, 0, 3, 3, 2, 2, 1, 1, 1},
    {1, 11, 11, 5, 0, 3, 3, 1, 1, 2, 2, PAD_SAME},    /* dilation 2 */
    {2, 9, 9, 7, 0, 5, 5, 1, 1, 1, 1, PAD_VALID},
    {1, 9, 9, 4, 0, 1, 7, 1, 1, 1, 1, PAD_SAME},      /* 1x7 */
    {2, 13, 5, 7, 0, 3, 5, 2, 1, 1, 2, PAD_SAME},     /* everything unequal */
    {4, 32, 32, 16, 0, 3, 3, 1, 1, 1, 1, PAD_SAME},   /* enough positions for slices */
    {1, 11, 11, 8, 0, 3, 3, 1, 1, 2, 2, PAD_SAME},    /* dilation 2, 4 channels a thread */
    {2, 29, 29, 12, 0, 3, 3, 2, 2, 1, 1, PAD_SAME},   /* stride 2, odd, float4 path */
};
enum { N_DW = (int)(sizeof dw_geoms / sizeof dw_geoms[0]) };

static void resolve_axis(int64_t in, int64_t k, int64_t stride, int64_t dil, int pad,
                         int64_t *out, int64_t *before) {
    int64_t eff = (k - 1) * dil + 1;
    if (pad == PAD_SAME) {
        *out = (in + stride - 1) / stride;
        int64_t total = (*out - 1) * stride + eff - in;
        *before = total > 0 ? total / 2 : 0;
    } else {
        int64_t b = pad == PAD_VALID ? 0 : pad;
        *out = (in + 2 * b - eff) / stride + 1;
        *before = b;
    }
}

static sn__conv2d_dims make_dims(const geom *g, int64_t M) {
    sn__conv2d_dims cd = {
        .N = g->N, .H = g->H, .W = g->W, .C = g->C, .K = M ? g->C * M : g->K,
        .R = g->R, .S = g->S, .M = M,
        .stride_h = g->sh, .stride_w = g->sw, .dil_h = g->dh, .dil_w = g->dw,
    };
    resolve_axis(g->H, g->R, g->sh, g->dh, g->pad, &cd.P, &cd.pad_top);
    resolve_axis(g->W, g->S, g->sw, g->dw, g->pad, &cd.Q, &cd.pad_left);
    return cd;
}

static void describe(char *buf, size_t len, const char *kind, const sn__conv2d_dims *cd) {
    snprintf(buf, len, "%s %lldx%lldx%lldx%lld K=%lld M=%lld %lldx%lld s%lldx%lld d%lldx%lld "
             "pad %lld,%lld -> %lldx%lld", kind, (long long)cd->N, (long long)cd->H,
             (long long)cd->W, (long long)cd->C, (long long)cd->K, (long long)cd->M,
             (long long)cd->R, (long long)cd->S, (long long)cd->stride_h,
             (long long)cd->stride_w, (long long)cd->dil_h, (long long)cd->dil_w,
             (long long)cd->pad_top, (long long)cd->pad_left, (long long)cd->P,
             (long long)cd->Q);
}

/* fwd, bwd_data and bwd_filter of one geometry on both backends (depthwise when M > 0).
 * gpu_ws: SIZE_MAX for what the _ws kernel asks, else that many bytes. */
static void conv_case(env *e, const sn__conv2d_dims *cd, int fwd_only, size_t gpu_ws,
                      double tol, uint64_t seed) {
    int dwise = cd->M > 0;
    size_t nx = (size_t)(cd->N * cd->H * cd->W * cd->C);
    size_t ny = (size_t)(cd->N * cd->P * cd->Q * cd->K);
    size_t nw = (size_t)(cd->R * cd->S * cd->C * (dwise ? cd->M : cd->K));
    size_t cws = 0, gws = 0;
    CK(e, (dwise ? e->kc->dwconv2d_ws : e->kc->conv2d_ws)(&e->cpu, cd, &cws));
    CK(e, (dwise ? e->kg->dwconv2d_ws : e->kg->conv2d_ws)(&e->gpu, cd, &gws));
    env_ws(e, cws, gpu_ws == SIZE_MAX ? gws : gpu_ws);
    buf x = mk(e, nx, seed), w = mk(e, nw, seed + 1), dy = mk(e, ny, seed + 2);
    buf y = mk_out(e, ny, 0), dx = mk(e, nx, seed + 3), dw = mk(e, nw, seed + 4);
    char what[256], name[320];
    describe(what, sizeof what, dwise ? "dwconv2d" : "conv2d", cd);
    if (dwise) {
        CK(e, e->kc->dwconv2d_fwd(&e->cpu, y.h, x.h, w.h, cd));
        CK(e, e->kg->dwconv2d_fwd(&e->gpu, y.d, x.d, w.d, cd));
    } else {
        CK(e, e->kc->conv2d_fwd(&e->cpu, y.h, x.h, w.h, cd));
        CK(e, e->kg->conv2d_fwd(&e->gpu, y.d, x.d, w.d, cd));
    }
    snprintf(name, sizeof name, "%s fwd", what);
    cmp(e, name, &y, tol);
    if (!fwd_only) {
        if (dwise) {
            CK(e, e->kc->dwconv2d_bwd_data(&e->cpu, dx.h, dy.h, w.h, cd));
            CK(e, e->kg->dwconv2d_bwd_data(&e->gpu, dx.d, dy.d, w.d, cd));
            CK(e, e->kc->dwconv2d_bwd_filter(&e->cpu, dw.h, dy.h, x.h, cd));
            CK(e, e->kg->dwconv2d_bwd_filter(&e->gpu, dw.d, dy.d, x.d, cd));
        } else {
            CK(e, e->kc->conv2d_bwd_data(&e->cpu, dx.h, dy.h, w.h, 1.0f, cd));
            CK(e, e->kg->conv2d_bwd_data(&e->gpu, dx.d, dy.d, w.d, 1.0f, cd));
            CK(e, e->kc->conv2d_bwd_filter(&e->cpu, dw.h, dy.h, x.h, cd));
            CK(e, e->kg->conv2d_bwd_filter(&e->gpu, dw.d, dy.d, x.d, cd));
        }
        snprintf(name, sizeof name, "%s bwd_data", what);
        cmp(e, name, &dx, tol);
        if (!dwise) {   /* beta 0 sets dx: prefilled with NaN on both sides, never read */
            buf dxs = mk_out(e, (size_t)(cd->N * cd->H * cd->W * cd->C), 0);
            CK(e, e->kc->conv2d_bwd_data(&e->cpu, dxs.h, dy.h, w.h, 0.0f, cd));
            CK(e, e->kg->conv2d_bwd_data(&e->gpu, dxs.d, dy.d, w.d, 0.0f, cd));
            snprintf(name, sizeof name, "%s bwd_data beta 0", what);
            cmp(e, name, &dxs, tol);
            rm(e, &dxs);
        }
        snprintf(name, sizeof name, "%s bwd_filter", what);
        cmp(e, name, &dw, tol);
    }
    rm(e, &x); rm(e, &w); rm(e, &dy); rm(e, &y); rm(e, &dx); rm(e, &dw);
}

/* ---- tests ------------------------------------------------------------------------------- */

START_TEST(test_cuda_device) {
    env e;
    if (!env_open(&e, "device")) return;
    char info[512] = "";
    CK(&e, sn__cuda_info(&e.gpu, info, sizeof info));
    ck_assert_msg(strstr(info, "compute capability") != NULL, "info: '%s'", info);
    printf("[cuda] %s\n", info);

    /* A second open of a device that does not exist. */
    sn__dev bad = {0};
    ck_assert_int_eq(sn__cuda_open(&bad, sn__cuda_count()), SN_ERR_NO_DEVICE);
    ck_assert_ptr_null(bad.cuda);
    sn__cuda_close(&bad);
    sn__cuda_close(NULL);

    /* Round trip, device copy, zero, sync. */
    enum { n = 1000 };
    float h[n], g[n];
    tu_fill(h, n, 7);
    void *a = NULL, *b = NULL;
    CK(&e, e.kg->alloc(&e.gpu, &a, n * sizeof(float)));
    CK(&e, e.kg->alloc(&e.gpu, &b, n * sizeof(float)));
    CK(&e, e.kg->to_dev(&e.gpu, a, h, n * sizeof(float)));
    CK(&e, e.kg->copy(&e.gpu, b, a, n * sizeof(float)));
    CK(&e, e.kg->zero(&e.gpu, a, n / 2 * sizeof(float)));
    CK(&e, e.kg->sync(&e.gpu));
    CK(&e, e.kg->to_host(&e.gpu, g, b, n * sizeof(float)));
    ck_assert(memcmp(g, h, sizeof h) == 0);
    CK(&e, e.kg->to_host(&e.gpu, g, a, n * sizeof(float)));
    for (int i = 0; i < n; i++) ck_assert(g[i] == (i < n / 2 ? 0.0f : h[i]));
    CK(&e, e.kg->free(&e.gpu, a));
    CK(&e, e.kg->free(&e.gpu, b));
    CK(&e, e.kg->free(&e.gpu, NULL));
    void *z = &e;
    CK(&e, e.kg->alloc(&e.gpu, &z, 0));
    ck_assert_ptr_null(z);

    /* Large copies go through the pinned staging ring: ten copies of growing size into ten
     * buffers with no synchronization in between, the host buffer overwritten after each
     * call (to_dev returns once the source may be reused); then every buffer read back. */
    enum { NB = 10 };
    size_t big = SN__CUDA_STAGE_MIN / sizeof(float) + 1000;
    float *hb = malloc((big + NB * 4096) * sizeof(float)), *gb = malloc((big + NB * 4096) *
                                                                          sizeof(float));
    void *db[NB];
    ck_assert(hb && gb);
    for (int k = 0; k < NB; k++) {
        size_t nk = big + (size_t)k * 4096;
        CK(&e, e.kg->alloc(&e.gpu, &db[k], nk * sizeof(float)));
        for (size_t i = 0; i < nk; i++) hb[i] = (float)(k * 7 + (int)(i % 1001));
        CK(&e, e.kg->to_dev(&e.gpu, db[k], hb, nk * sizeof(float)));
    }
    for (int k = 0; k < NB; k++) {
        size_t nk = big + (size_t)k * 4096;
        CK(&e, e.kg->to_host(&e.gpu, gb, db[k], nk * sizeof(float)));
        for (size_t i = 0; i < nk; i++)
            ck_assert_msg(gb[i] == (float)(k * 7 + (int)(i % 1001)), "staged copy %d, [%zu]",
                          k, i);
        CK(&e, e.kg->free(&e.gpu, db[k]));
    }
    /* Ordering: kernels between staged copies into the same buffer see the copy queued
     * before them, never a later one (the DMA runs ahead on the copy stream). */
    size_t nb = big;
    void *src = NULL, *o1 = NULL, *o2 = NULL;
    CK(&e, e.kg->alloc(&e.gpu, &src, nb * sizeof(float)));
    CK(&e, e.kg->alloc(&e.gpu, &o1, nb * sizeof(float)));
    CK(&e, e.kg->alloc(&e.gpu, &o2, nb * sizeof(float)));
    for (size_t i = 0; i < nb; i++) hb[i] = -1.0f - (float)(i % 7);
    CK(&e, e.kg->to_dev(&e.gpu, src, hb, nb * sizeof(float)));
    CK(&e, e.kg->relu_fwd(&e.gpu, (float *)o1, (const float *)src, (int64_t)nb));   /* all 0 */
    for (size_t i = 0; i < nb; i++) hb[i] = 1.0f + (float)(i % 5);
    CK(&e, e.kg->to_dev(&e.gpu, src, hb, nb * sizeof(float)));
    CK(&e, e.kg->relu_fwd(&e.gpu, (float *)o2, (const float *)src, (int64_t)nb));
    CK(&e, e.kg->to_host(&e.gpu, gb, o1, nb * sizeof(float)));
    for (size_t i = 0; i < nb; i++) ck_assert_msg(gb[i] == 0.0f, "first copy, [%zu]", i);
    CK(&e, e.kg->to_host(&e.gpu, gb, o2, nb * sizeof(float)));
    for (size_t i = 0; i < nb; i++)
        ck_assert_msg(gb[i] == 1.0f + (float)(i % 5), "second copy, [%zu]", i);
    /* The same from page-locked memory (sn_tensor_new_pinned's): DMA'd without the host
     * copy; the source may be overwritten as soon as to_dev returns. */
    void *pin = NULL;
    CK(&e, e.kg->host_alloc(&e.gpu, &pin, nb * sizeof(float)));
    float *ph = pin;
    for (size_t i = 0; i < nb; i++) ph[i] = -2.0f;
    CK(&e, e.kg->to_dev(&e.gpu, src, ph, nb * sizeof(float)));
    CK(&e, e.kg->relu_fwd(&e.gpu, (float *)o1, (const float *)src, (int64_t)nb));
    for (size_t i = 0; i < nb; i++) ph[i] = 3.0f + (float)(i % 3);
    CK(&e, e.kg->to_dev(&e.gpu, src, ph, nb * sizeof(float)));
    for (size_t i = 0; i < nb; i++) ph[i] = NAN;   /* to_dev returned: no longer read */
    CK(&e, e.kg->relu_fwd(&e.gpu, (float *)o2, (const float *)src, (int64_t)nb));
    CK(&e, e.kg->to_host(&e.gpu, gb, o1, nb * sizeof(float)));
    for (size_t i = 0; i < nb; i++) ck_assert_msg(gb[i] == 0.0f, "pinned first, [%zu]", i);
    CK(&e, e.kg->to_host(&e.gpu, gb, o2, nb * sizeof(float)));
    for (size_t i = 0; i < nb; i++)
        ck_assert_msg(gb[i] == 3.0f + (float)(i % 3), "pinned second, [%zu]", i);
    CK(&e, e.kg->host_free(&e.gpu, pin));
    CK(&e, e.kg->free(&e.gpu, src));
    CK(&e, e.kg->free(&e.gpu, o1));
    CK(&e, e.kg->free(&e.gpu, o2));
    free(hb);
    free(gb);

    /* Out of memory is a status, not a crash, and leaves the device usable. */
    void *huge = &e;
    ck_assert_int_eq(e.kg->alloc(&e.gpu, &huge, (size_t)1 << 50), SN_ERR_NOMEM);
    ck_assert_ptr_null(huge);
    ck_assert_msg(strlen(sn_ctx_errmsg(e.ctx)) > 0, "no message after NOMEM");
    buf x = mk(&e, 100, 3), y = mk_out(&e, 100, 0);
    CK(&e, e.kc->relu_fwd(&e.cpu, y.h, x.h, 100));
    CK(&e, e.kg->relu_fwd(&e.gpu, y.d, x.d, 100));
    cmp(&e, "relu after NOMEM", &y, 0);
    rm(&e, &x);
    rm(&e, &y);
    env_close(&e, "device");
}
END_TEST

/* One gemm case on both backends; C prefilled (beta != 0 reads it). */
static void gemm_case(env *e, int ta, int tb, int64_t m, int64_t n, int64_t k, int64_t pad,
                      float alpha, float beta, double tol, uint64_t seed) {
    /* BLAS wants leading dimensions of at least 1, also for an empty (k = 0) operand. */
    int64_t lda = ((ta ? m : k) > 0 ? (ta ? m : k) : 1) + pad;
    int64_t ldb = ((tb ? k : n) > 0 ? (tb ? k : n) : 1) + pad, ldc = n + pad;
    size_t na = (size_t)((ta ? k : m) * lda), nb = (size_t)((tb ? n : k) * ldb);
    size_t nc = (size_t)(m * ldc);
    buf a = mk(e, na, seed), b = mk(e, nb, seed + 1), c = mk(e, nc, seed + 2);
    CK(e, e->kc->gemm(&e->cpu, ta, tb, m, n, k, alpha, a.h, lda, b.h, ldb, beta, c.h, ldc));
    CK(e, e->kg->gemm(&e->gpu, ta, tb, m, n, k, alpha, a.d, lda, b.d, ldb, beta, c.d, ldc));
    char what[128];
    snprintf(what, sizeof what, "gemm ta=%d tb=%d m=%lld n=%lld k=%lld pad=%lld", ta, tb,
             (long long)m, (long long)n, (long long)k, (long long)pad);
    cmp(e, what, &c, tol);
    rm(e, &a); rm(e, &b); rm(e, &c);
}

START_TEST(test_cuda_gemm) {
    env e;
    if (!env_open(&e, "gemm")) return;
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            gemm_case(&e, ta, tb, 37, 45, 29, 0, 1.0f, 0.0f, TOL, 10);
            gemm_case(&e, ta, tb, 33, 17, 65, 3, 0.7f, 0.3f, TOL, 20);
            gemm_case(&e, ta, tb, 256, 384, 512, 0, 1.0f, 1.0f, TOL, 30);
        }
    gemm_case(&e, 0, 0, 5, 7, 0, 0, 1.0f, 0.5f, TOL, 40);    /* k = 0: C = beta*C */
    gemm_case(&e, 0, 0, 1, 1000, 1, 0, 2.0f, 0.0f, TOL, 50);
    tf32(&e, 1);
    gemm_case(&e, 0, 0, 256, 384, 512, 0, 1.0f, 0.0f, TF32_TOL, 60);
    gemm_case(&e, 1, 1, 129, 65, 300, 1, 1.0f, 1.0f, TF32_TOL, 70);
    env_close(&e, "gemm");
}
END_TEST

START_TEST(test_cuda_conv) {
    env e;
    if (!env_open(&e, "conv2d")) return;
    for (int i = 0; i < N_CONV; i++) {
        sn__conv2d_dims cd = make_dims(&conv_geoms[i], 0);
        conv_case(&e, &cd, 0, SIZE_MAX, CONV_TOL, 100 + (uint64_t)i);
    }
    /* A workspace far larger than asked changes nothing. */
    sn__conv2d_dims cd = make_dims(&conv_geoms[6], 0);
    conv_case(&e, &cd, 0, (size_t)64 << 20, CONV_TOL, 300);
    /* TF32 tensor cores, at the looser tolerance. */
    tf32(&e, 1);
    const int tf32_cases[] = {0, 3, 6, 17};
    for (size_t i = 0; i < sizeof tf32_cases / sizeof tf32_cases[0]; i++) {
        cd = make_dims(&conv_geoms[tf32_cases[i]], 0);
        conv_case(&e, &cd, 0, SIZE_MAX, TF32_TOL, 400 + (uint64_t)i);
    }
    env_close(&e, "conv2d");
}
END_TEST

/* Depthwise twice: as cuDNN grouped convolutions (dw_cudnn = 1; CONV_TOL, as any cuDNN
 * convolution) and through dwconv.cu's own kernels (the default, TOL). */
START_TEST(test_cuda_dwconv) {
    env e;
    if (!env_open(&e, "dwconv2d")) return;
    struct sn__cuda *c = (struct sn__cuda *)e.gpu.cuda;
    for (int own = 0; own < 2; own++) {
        c->dw_cudnn = !own;
        for (int i = 0; i < N_DW; i++)
            for (int64_t M = 1; M <= 3; M += 2) {
                sn__conv2d_dims cd = make_dims(&dw_geoms[i], M);
                if (!own && M == 1)   /* MobileNet's case: cuDNN must take it */
                    ck_assert_msg(sn__cuda_dw_usable(&e.gpu, &cd), "dw geometry %d: cuDNN "
                                  "refuses the grouped convolution: %s", i,
                                  sn_ctx_errmsg(e.ctx));
                conv_case(&e, &cd, 0, SIZE_MAX, own ? TOL : CONV_TOL,
                          500 + (uint64_t)(i * 4 + M + 100 * own));
            }
    }
    /* Own kernels without workspace: the filter gradient takes its single-slice path. */
    sn__conv2d_dims cd = make_dims(&dw_geoms[N_DW - 1], 2);
    conv_case(&e, &cd, 0, 0, TOL, 600);
    env_close(&e, "dwconv2d");
}
END_TEST

/* The fused forwards of inference nets (the _ep kernels): each epilogue kind (batch norm
 * with and without gamma/beta, bias, none; with and without a residual; relu, relu6 or none
 * by turns, and hard swish) on the 1x1 (cuBLAS), strided 1x1, 3x3 and stride-2 convolution routes, two
 * depthwise geometries and a matmul.  prm holds gamma, beta, mean and var (variances
 * positive), res a tensor of the output's size. */
/* Kinds 9 and 10 end in hard swish (MobileNet v3's conv -> batch norm -> hard swish; with a
 * residual and a bias too). */
enum { N_EP = 11 };
static sn__epilogue ep_of(int kind, const float *prm, const float *res, int64_t K) {
    sn__epilogue ep = {0};
    ep.act = kind < 9 ? kind % 3 : SN__ACT_HARD_SWISH;
    if (kind == 0 || kind == 1 || kind == 6 || kind == 9) {
        ep.gamma = prm;
        ep.beta = prm + K;
    }
    if (kind <= 2 || kind == 6 || kind == 7 || kind == 9) {
        ep.mean = prm + 2 * K;
        ep.var = prm + 3 * K;
        ep.eps = 1e-3f;
    } else if (kind == 3 || kind == 4 || kind == 10) {
        ep.bias = prm + K;
    }
    if (kind >= 6) ep.residual = res;
    return ep;
}

static buf mk_ep_params(env *e, int64_t K, uint64_t seed) {
    float *t = malloc((size_t)(4 * K + 1) * sizeof(float));
    ck_assert_ptr_nonnull(t);
    tu_fill(t, (size_t)(4 * K), seed);
    for (int64_t i = 3 * K; i < 4 * K; i++) t[i] = 0.25f + t[i] * t[i];
    buf b = mk_from(e, t, (size_t)(4 * K), 0);
    free(t);
    return b;
}

static void fused_case(env *e, const sn__conv2d_dims *cd, int kind, double tol, uint64_t seed) {
    int dwise = cd->M > 0;
    size_t nx = (size_t)(cd->N * cd->H * cd->W * cd->C);
    size_t ny = (size_t)(cd->N * cd->P * cd->Q * cd->K);
    size_t nw = (size_t)(cd->R * cd->S * cd->C * (dwise ? cd->M : cd->K));
    size_t cws = 0, gws = 0;
    CK(e, (dwise ? e->kc->dwconv2d_ws : e->kc->conv2d_ws)(&e->cpu, cd, &cws));
    CK(e, (dwise ? e->kg->dwconv2d_ws : e->kg->conv2d_ws)(&e->gpu, cd, &gws));
    env_ws(e, cws, gws);
    buf x = mk(e, nx, seed), w = mk(e, nw, seed + 1), prm = mk_ep_params(e, cd->K, seed + 2);
    buf y = mk_out(e, ny, 0), res = mk(e, ny, seed + 3);
    sn__epilogue eh = ep_of(kind, prm.h, res.h, cd->K), ed = ep_of(kind, prm.d, res.d, cd->K);
    if (dwise) {
        CK(e, e->kc->dwconv2d_fwd_ep(&e->cpu, y.h, x.h, w.h, &eh, cd));
        CK(e, e->kg->dwconv2d_fwd_ep(&e->gpu, y.d, x.d, w.d, &ed, cd));
    } else {
        CK(e, e->kc->conv2d_fwd_ep(&e->cpu, y.h, x.h, w.h, &eh, cd));
        CK(e, e->kg->conv2d_fwd_ep(&e->gpu, y.d, x.d, w.d, &ed, cd));
    }
    char what[256], name[320];
    describe(what, sizeof what, dwise ? "dwconv2d_fwd_ep" : "conv2d_fwd_ep", cd);
    snprintf(name, sizeof name, "%s epilogue %d", what, kind);
    cmp(e, name, &y, tol);
    rm(e, &x); rm(e, &w); rm(e, &prm); rm(e, &y); rm(e, &res);
}

START_TEST(test_cuda_fused) {
    env e;
    if (!env_open(&e, "fused")) return;
    static const int conv_pick[] = {0, 2, 3, 5, 17};
    for (int kind = 0; kind < N_EP; kind++) {
        for (size_t i = 0; i < sizeof conv_pick / sizeof conv_pick[0]; i++) {
            sn__conv2d_dims cd = make_dims(&conv_geoms[conv_pick[i]], 0);
            fused_case(&e, &cd, kind, CONV_TOL, 2000 + (uint64_t)(kind * 10) + i);
        }
        sn__conv2d_dims dw1 = make_dims(&dw_geoms[1], 1), dw2 = make_dims(&dw_geoms[7], 2);
        fused_case(&e, &dw1, kind, TOL, 2100 + (uint64_t)kind);
        fused_case(&e, &dw2, kind, TOL, 2200 + (uint64_t)kind);
        const int64_t m = 300, n = 70, k = 50;
        buf a = mk(&e, (size_t)(m * k), 2300), b = mk(&e, (size_t)(k * n), 2301);
        buf prm = mk_ep_params(&e, n, 2302 + (uint64_t)kind);
        buf c = mk_out(&e, (size_t)(m * n), 0), res = mk(&e, (size_t)(m * n), 2303);
        sn__epilogue eh = ep_of(kind, prm.h, res.h, n), ed = ep_of(kind, prm.d, res.d, n);
        CK(&e, e.kc->gemm_ep(&e.cpu, c.h, a.h, b.h, &eh, m, n, k));
        CK(&e, e.kg->gemm_ep(&e.gpu, c.d, a.d, b.d, &ed, m, n, k));
        cmp(&e, "gemm_ep", &c, TOL);
        rm(&e, &a); rm(&e, &b); rm(&e, &prm); rm(&e, &c); rm(&e, &res);
    }
    env_close(&e, "fused");
}
END_TEST

typedef struct pgeom {
    int64_t N, H, W, C, R, S, sh, sw;
    int pad;
} pgeom;

static const pgeom pool_geoms[] = {
    {2, 9, 9, 5, 3, 3, 2, 2, PAD_SAME},     /* symmetric SAME */
    {2, 10, 10, 5, 3, 3, 2, 2, PAD_SAME},   /* asymmetric SAME */
    {2, 8, 8, 8, 2, 2, 2, 2, PAD_VALID},
    {1, 7, 9, 3, 3, 3, 1, 1, PAD_SAME},     /* stride 1: 9 windows per cell */
    {2, 7, 9, 8, 3, 3, 1, 1, PAD_SAME},     /* the same, 4 channels per thread */
    {2, 11, 11, 4, 3, 3, 2, 2, 1},          /* explicit padding */
    {1, 3, 3, 2, 5, 5, 1, 1, PAD_SAME},     /* window larger than the image */
    {2, 7, 7, 33, 7, 7, 1, 1, PAD_VALID},   /* global pooling */
    {2, 12, 10, 6, 3, 2, 3, 2, PAD_SAME},   /* unequal everything; windows never overlap */
    {2, 9, 7, 5, 2, 2, 2, 2, PAD_SAME},     /* VGG's 2x2/2 on odd sizes: scatter path */
    {2, 8, 8, 6, 1, 1, 2, 2, PAD_VALID},    /* ResNet v1's 1x1/2 subsampling */
};

static sn__pool_dims make_pool(const pgeom *g) {
    sn__pool_dims pd = {.N = g->N, .H = g->H, .W = g->W, .C = g->C, .R = g->R, .S = g->S,
                        .stride_h = g->sh, .stride_w = g->sw};
    resolve_axis(g->H, g->R, g->sh, 1, g->pad, &pd.P, &pd.pad_top);
    resolve_axis(g->W, g->S, g->sw, 1, g->pad, &pd.Q, &pd.pad_left);
    return pd;
}

START_TEST(test_cuda_pool) {
    env e;
    if (!env_open(&e, "pool")) return;
    for (size_t i = 0; i < sizeof pool_geoms / sizeof pool_geoms[0]; i++) {
        sn__pool_dims pd = make_pool(&pool_geoms[i]);
        size_t nx = (size_t)(pd.N * pd.H * pd.W * pd.C), ny = (size_t)(pd.N * pd.P * pd.Q * pd.C);
        for (int ties = 0; ties < 2; ties++) {
            buf x = mk(&e, nx, 700 + i);
            if (ties) {   /* values in {-1, 0, 1}: many equal maxima, the tie rule decides */
                for (size_t j = 0; j < nx; j++) x.h[j] = roundf(x.h[j]);
                CK(&e, e.kg->to_dev(&e.gpu, x.d, x.h, nx * sizeof(float)));
            }
            buf dy = mk(&e, ny, 710 + i), y = mk_out(&e, ny, 0), dx = mk(&e, nx, 720 + i);
            char what[128];
            snprintf(what, sizeof what, "pool case %zu ties=%d", i, ties);
            CK(&e, e.kc->maxpool_fwd(&e.cpu, y.h, x.h, &pd));
            CK(&e, e.kg->maxpool_fwd(&e.gpu, y.d, x.d, &pd));
            cmp(&e, what, &y, 0);
            CK(&e, e.kc->maxpool_bwd(&e.cpu, dx.h, dy.h, x.h, &pd));
            CK(&e, e.kg->maxpool_bwd(&e.gpu, dx.d, dy.d, x.d, &pd));
            cmp(&e, what, &dx, 0);
            /* again with the workspace: the two-pass backward (winners' taps), identical */
            size_t gws = 0;
            CK(&e, e.kg->maxpool_ws(&e.gpu, &pd, &gws));   /* none where windows can't overlap */
            ck_assert_uint_eq(gws, pd.stride_h >= pd.R && pd.stride_w >= pd.S ? 0 : ny);
            env_ws(&e, 0, gws);
            buf dx2 = mk(&e, nx, 730 + i);
            CK(&e, e.kc->maxpool_bwd(&e.cpu, dx2.h, dy.h, x.h, &pd));
            CK(&e, e.kg->maxpool_bwd(&e.gpu, dx2.d, dy.d, x.d, &pd));
            snprintf(what, sizeof what, "pool case %zu ties=%d, workspace", i, ties);
            cmp(&e, what, &dx2, 0);
            env_ws(&e, 0, 0);
            rm(&e, &dx2);
            CK(&e, e.kc->avgpool_fwd(&e.cpu, y.h, x.h, &pd));
            CK(&e, e.kg->avgpool_fwd(&e.gpu, y.d, x.d, &pd));
            cmp(&e, what, &y, 0);
            CK(&e, e.kc->avgpool_bwd(&e.cpu, dx.h, dy.h, &pd));
            CK(&e, e.kg->avgpool_bwd(&e.gpu, dx.d, dy.d, &pd));
            cmp(&e, what, &dx, 0);
            rm(&e, &x); rm(&e, &dy); rm(&e, &y); rm(&e, &dx);
        }
    }
    env_close(&e, "pool");
}
END_TEST

/* (rows, C) shapes for the per-channel kernels, with a pointer offset (0: float4 paths). */
static const struct { int64_t rows, C; size_t off; } rc_cases[] = {
    {1000, 3, 0},     /* odd channels */
    {257, 64, 0},     /* vectorized */
    {257, 64, 1},     /* same, unaligned: scalar path */
    {9, 37, 0},       /* few rows */
    {20000, 16, 0},   /* many rows: many slices */
    {33, 2048, 0},    /* wide */
};

START_TEST(test_cuda_bias_bn) {
    env e;
    if (!env_open(&e, "bias/batchnorm")) return;
    for (size_t i = 0; i < sizeof rc_cases / sizeof rc_cases[0]; i++) {
        int64_t rows = rc_cases[i].rows, C = rc_cases[i].C;
        size_t off = rc_cases[i].off, n = (size_t)(rows * C);
        uint64_t s = 800 + 20 * i;
        char what[160], name[200];
        /* x has a large mean: the moments must not cancel. */
        buf x = mk_rand(&e, n, s, 2.0f, 50.0f, off), dy = mk_rand(&e, n, s + 1, 1.0f, 0.0f, off);
        buf y = mk_out(&e, n, off), dx = mk_rand(&e, n, s + 2, 1.0f, 0.0f, off);
        buf b = mk(&e, (size_t)C, s + 3), db = mk(&e, (size_t)C, s + 4);
        buf gamma = mk_rand(&e, (size_t)C, s + 5, 0.5f, 1.0f, 0);
        buf beta = mk(&e, (size_t)C, s + 6), dgamma = mk(&e, (size_t)C, s + 7);
        buf dbeta = mk(&e, (size_t)C, s + 8);
        buf mean = mk_out(&e, (size_t)C, 0), var = mk_out(&e, (size_t)C, 0);
        snprintf(what, sizeof what, "rows=%lld C=%lld off=%zu", (long long)rows, (long long)C,
                 off);
#define NAME(k) (snprintf(name, sizeof name, "%s %s", k, what), name)

        CK(&e, e.kc->bias_fwd(&e.cpu, y.h, x.h, b.h, rows, C));
        CK(&e, e.kg->bias_fwd(&e.gpu, y.d, x.d, b.d, rows, C));
        cmp(&e, NAME("bias_fwd"), &y, 0);
        CK(&e, e.kc->bias_bwd(&e.cpu, db.h, dy.h, rows, C));
        CK(&e, e.kg->bias_bwd(&e.gpu, db.d, dy.d, rows, C));
        cmp(&e, NAME("bias_bwd"), &db, TOL);

        for (int with = 1; with >= 0; with--) {   /* with gamma/beta, then both NULL */
            const float *gh = with ? gamma.h : NULL, *gd = with ? gamma.d : NULL;
            const float *bh = with ? beta.h : NULL, *bd = with ? beta.d : NULL;
            CK(&e, e.kc->bn_train_fwd(&e.cpu, y.h, mean.h, var.h, x.h, gh, bh, 1e-3f, rows, C));
            CK(&e, e.kg->bn_train_fwd(&e.gpu, y.d, mean.d, var.d, x.d, gd, bd, 1e-3f, rows, C));
            cmp(&e, NAME("bn_train_fwd mean"), &mean, TOL);
            cmp(&e, NAME("bn_train_fwd var"), &var, TOL);
            cmp(&e, NAME("bn_train_fwd y"), &y, TOL);
            /* The backward takes the CPU's moments on both sides, so only it is compared. */
            CK(&e, e.kg->to_dev(&e.gpu, mean.d, mean.h, (size_t)C * sizeof(float)));
            CK(&e, e.kg->to_dev(&e.gpu, var.d, var.h, (size_t)C * sizeof(float)));
            CK(&e, e.kc->bn_train_bwd(&e.cpu, dx.h, with ? dgamma.h : NULL,
                                      with ? dbeta.h : NULL, dy.h, x.h, gh, mean.h, var.h,
                                      1e-3f, rows, C));
            CK(&e, e.kg->bn_train_bwd(&e.gpu, dx.d, with ? dgamma.d : NULL,
                                      with ? dbeta.d : NULL, dy.d, x.d, gd, mean.d, var.d,
                                      1e-3f, rows, C));
            cmp(&e, NAME("bn_train_bwd dx"), &dx, TOL);
            cmp(&e, NAME("bn_train_bwd dgamma"), &dgamma, TOL);
            cmp(&e, NAME("bn_train_bwd dbeta"), &dbeta, TOL);

            CK(&e, e.kc->bn_infer_fwd(&e.cpu, y.h, x.h, gh, bh, mean.h, var.h, 1e-3f, rows, C));
            CK(&e, e.kg->bn_infer_fwd(&e.gpu, y.d, x.d, gd, bd, mean.d, var.d, 1e-3f, rows, C));
            cmp(&e, NAME("bn_infer_fwd"), &y, TOL);
            CK(&e, e.kc->bn_infer_bwd(&e.cpu, dx.h, with ? dgamma.h : NULL,
                                      with ? dbeta.h : NULL, dy.h, x.h, gh, mean.h, var.h,
                                      1e-3f, rows, C));
            CK(&e, e.kg->bn_infer_bwd(&e.gpu, dx.d, with ? dgamma.d : NULL,
                                      with ? dbeta.d : NULL, dy.d, x.d, gd, mean.d, var.d,
                                      1e-3f, rows, C));
            cmp(&e, NAME("bn_infer_bwd dx"), &dx, TOL);
            cmp(&e, NAME("bn_infer_bwd dgamma"), &dgamma, TOL);
            cmp(&e, NAME("bn_infer_bwd dbeta"), &dbeta, TOL);
        }
        /* dx may be NULL: only the parameter gradients. */
        CK(&e, e.kc->bn_train_bwd(&e.cpu, NULL, dgamma.h, dbeta.h, dy.h, x.h, gamma.h, mean.h,
                                  var.h, 1e-3f, rows, C));
        CK(&e, e.kg->bn_train_bwd(&e.gpu, NULL, dgamma.d, dbeta.d, dy.d, x.d, gamma.d, mean.d,
                                  var.d, 1e-3f, rows, C));
        cmp(&e, NAME("bn_train_bwd(dx NULL) dgamma"), &dgamma, TOL);
        cmp(&e, NAME("bn_train_bwd(dx NULL) dbeta"), &dbeta, TOL);
        CK(&e, e.kc->bn_infer_bwd(&e.cpu, NULL, dgamma.h, NULL, dy.h, x.h, gamma.h, mean.h,
                                  var.h, 1e-3f, rows, C));
        CK(&e, e.kg->bn_infer_bwd(&e.gpu, NULL, dgamma.d, NULL, dy.d, x.d, gamma.d, mean.d,
                                  var.d, 1e-3f, rows, C));
        cmp(&e, NAME("bn_infer_bwd(dx NULL) dgamma"), &dgamma, TOL);
        buf mm = mk(&e, (size_t)C, s + 9), mv = mk_rand(&e, (size_t)C, s + 10, 1.0f, 2.0f, 0);
        CK(&e, e.kc->bn_update_moving(&e.cpu, mm.h, mv.h, mean.h, var.h, 0.997f,
                                      (float)rows / (float)(rows - 1), C));
        CK(&e, e.kg->bn_update_moving(&e.gpu, mm.d, mv.d, mean.d, var.d, 0.997f,
                                      (float)rows / (float)(rows - 1), C));
        cmp(&e, NAME("bn_update_moving mean"), &mm, 0);
        cmp(&e, NAME("bn_update_moving var"), &mv, 0);
        rm(&e, &x); rm(&e, &dy); rm(&e, &y); rm(&e, &dx); rm(&e, &b); rm(&e, &db);
        rm(&e, &gamma); rm(&e, &beta); rm(&e, &dgamma); rm(&e, &dbeta); rm(&e, &mean);
        rm(&e, &var); rm(&e, &mm); rm(&e, &mv);
#undef NAME
    }
    env_close(&e, "bias/batchnorm");
}
END_TEST

/* The fused training chain (bn_train_fwd_ep, bn_train_bwd_ep): every residual/activation
 * combination, with and without gamma/beta, on the per-channel shapes.  The backward gets
 * the CPU's moments and chain output on both sides, so the activation masks agree and the
 * residual's gradient (dres += masked dy) must be identical; dx, dgamma and dbeta differ by
 * summation order only.  (Their exactness against the unfused kernels is the CPU's
 * test_bn_train_ep_bit_exact.) */
START_TEST(test_cuda_bn_ep) {
    env e;
    if (!env_open(&e, "batchnorm chain")) return;
    for (size_t i = 0; i < sizeof rc_cases / sizeof rc_cases[0]; i++) {
        int64_t rows = rc_cases[i].rows, C = rc_cases[i].C;
        size_t off = rc_cases[i].off, n = (size_t)(rows * C);
        uint64_t s = 1800 + 20 * i;
        char what[160], name[200];
        buf x = mk_rand(&e, n, s, 2.0f, 50.0f, off), dy = mk_rand(&e, n, s + 1, 1.0f, 0.0f, off);
        buf res = mk_rand(&e, n, s + 2, 4.0f, 1.0f, off), y = mk_out(&e, n, off);
        buf dx = mk_rand(&e, n, s + 3, 1.0f, 0.0f, off), dres = mk_rand(&e, n, s + 4, 1, 0, off);
        buf gamma = mk_rand(&e, (size_t)C, s + 5, 0.5f, 1.0f, 0);
        buf beta = mk_rand(&e, (size_t)C, s + 6, 3.0f, 2.0f, 0);
        buf dgamma = mk(&e, (size_t)C, s + 7), dbeta = mk(&e, (size_t)C, s + 8);
        buf mean = mk_out(&e, (size_t)C, 0), var = mk_out(&e, (size_t)C, 0);
        for (int with = 0; with < 2; with++) {
            const float *gh = with ? gamma.h : NULL, *gd = with ? gamma.d : NULL;
            const float *bh = with ? beta.h : NULL, *bd = with ? beta.d : NULL;
            for (int has_res = 0; has_res < 2; has_res++) {
                for (int act = SN__ACT_NONE; act <= SN__ACT_RELU6; act++) {
                    snprintf(what, sizeof what, "rows=%lld C=%lld off=%zu gamma/beta=%d res=%d "
                             "act=%d", (long long)rows, (long long)C, off, with, has_res, act);
#define NAME(k) (snprintf(name, sizeof name, "%s %s", k, what), name)
                    const float *rh = has_res ? res.h : NULL, *rd = has_res ? res.d : NULL;
                    CK(&e, e.kc->bn_train_fwd_ep(&e.cpu, y.h, mean.h, var.h, x.h, gh, bh, 1e-3f,
                                                 rh, act, rows, C));
                    CK(&e, e.kg->bn_train_fwd_ep(&e.gpu, y.d, mean.d, var.d, x.d, gd, bd, 1e-3f,
                                                 rd, act, rows, C));
                    cmp(&e, NAME("bn_train_fwd_ep mean"), &mean, TOL);
                    cmp(&e, NAME("bn_train_fwd_ep var"), &var, TOL);
                    cmp(&e, NAME("bn_train_fwd_ep y"), &y, TOL);
                    CK(&e, e.kg->to_dev(&e.gpu, mean.d, mean.h, (size_t)C * sizeof(float)));
                    CK(&e, e.kg->to_dev(&e.gpu, var.d, var.h, (size_t)C * sizeof(float)));
                    CK(&e, e.kg->to_dev(&e.gpu, y.d, y.h, n * sizeof(float)));
                    float *drh = has_res ? dres.h : NULL, *drd = has_res ? dres.d : NULL;
                    CK(&e, e.kc->bn_train_bwd_ep(&e.cpu, dx.h, with ? dgamma.h : NULL,
                                                 with ? dbeta.h : NULL, drh, dy.h, y.h, x.h, gh,
                                                 mean.h, var.h, 1e-3f, act, 0u, rows, C));
                    CK(&e, e.kg->bn_train_bwd_ep(&e.gpu, dx.d, with ? dgamma.d : NULL,
                                                 with ? dbeta.d : NULL, drd, dy.d, y.d, x.d, gd,
                                                 mean.d, var.d, 1e-3f, act, 0u, rows, C));
                    cmp(&e, NAME("bn_train_bwd_ep dx"), &dx, TOL);
                    cmp(&e, NAME("bn_train_bwd_ep dgamma"), &dgamma, TOL);
                    cmp(&e, NAME("bn_train_bwd_ep dbeta"), &dbeta, TOL);
                    cmp(&e, NAME("bn_train_bwd_ep dres"), &dres, 0);
                    /* dx NULL: the parameter and residual gradients alone. */
                    CK(&e, e.kc->bn_train_bwd_ep(&e.cpu, NULL, dgamma.h, NULL, drh, dy.h, y.h,
                                                 x.h, gh, mean.h, var.h, 1e-3f, act, 0u, rows,
                                                 C));
                    CK(&e, e.kg->bn_train_bwd_ep(&e.gpu, NULL, dgamma.d, NULL, drd, dy.d, y.d,
                                                 x.d, gd, mean.d, var.d, 1e-3f, act, 0u, rows,
                                                 C));
                    cmp(&e, NAME("bn_train_bwd_ep(dx NULL) dgamma"), &dgamma, TOL);
                    cmp(&e, NAME("bn_train_bwd_ep(dx NULL) dres"), &dres, 0);
                    /* set = 3: dx and dres written, never read (NaN before on both sides) */
                    buf dxs = mk_out(&e, n, off), drs = mk_out(&e, n, off);
                    CK(&e, e.kc->bn_train_bwd_ep(&e.cpu, dxs.h, NULL, NULL,
                                                 has_res ? drs.h : NULL, dy.h, y.h, x.h, gh,
                                                 mean.h, var.h, 1e-3f, act, 3u, rows, C));
                    CK(&e, e.kg->bn_train_bwd_ep(&e.gpu, dxs.d, NULL, NULL,
                                                 has_res ? drs.d : NULL, dy.d, y.d, x.d, gd,
                                                 mean.d, var.d, 1e-3f, act, 3u, rows, C));
                    cmp(&e, NAME("bn_train_bwd_ep(set) dx"), &dxs, TOL);
                    if (has_res) cmp(&e, NAME("bn_train_bwd_ep(set) dres"), &drs, 0);
                    rm(&e, &dxs);
                    rm(&e, &drs);
#undef NAME
                }
            }
        }
        rm(&e, &x); rm(&e, &dy); rm(&e, &res); rm(&e, &y); rm(&e, &dx); rm(&e, &dres);
        rm(&e, &gamma); rm(&e, &beta); rm(&e, &dgamma); rm(&e, &dbeta); rm(&e, &mean);
        rm(&e, &var);
    }
    env_close(&e, "batchnorm chain");
}
END_TEST

/* The fused bias chain (bias_fwd_ep, bias_bwd_ep): every residual/activation combination on
 * the per-channel shapes, -0.0 in dy, NULL outputs, set bits over NaN.  Everything but db is
 * elementwise float arithmetic, so equal bit for bit; db differs by summation order only.
 * (Exactness against the unfused kernels is the CPU's test_bias_ep_bit_exact.) */
START_TEST(test_cuda_bias_ep) {
    env e;
    if (!env_open(&e, "bias chain")) return;
    for (size_t i = 0; i < sizeof rc_cases / sizeof rc_cases[0]; i++) {
        int64_t rows = rc_cases[i].rows, C = rc_cases[i].C;
        size_t off = rc_cases[i].off, n = (size_t)(rows * C);
        uint64_t s = 2800 + 20 * i;
        char what[160], name[200];
        float *t = malloc((n + 1) * sizeof *t);
        ck_assert_ptr_nonnull(t);
        tu_fill(t, n, s + 1);
        for (size_t q = 0; q < n; q += 7) t[q] = -0.0f;
        buf dy = mk_from(&e, t, n, off);
        free(t);
        buf x = mk_rand(&e, n, s, 8.0f, 0.0f, off), b = mk_rand(&e, (size_t)C, s + 2, 1, 0, 0);
        buf res = mk_rand(&e, n, s + 3, 4.0f, 1.0f, off), y = mk_out(&e, n, off);
        buf dx = mk_rand(&e, n, s + 4, 1, 0, off), dres = mk_rand(&e, n, s + 5, 1, 0, off);
        buf db = mk(&e, (size_t)C, s + 6);
        for (int has_res = 0; has_res < 2; has_res++) {
            for (int act = SN__ACT_NONE; act <= SN__ACT_RELU6; act++) {
                snprintf(what, sizeof what, "rows=%lld C=%lld off=%zu res=%d act=%d",
                         (long long)rows, (long long)C, off, has_res, act);
#define NAME(k) (snprintf(name, sizeof name, "%s %s", k, what), name)
                const float *rh = has_res ? res.h : NULL, *rd = has_res ? res.d : NULL;
                CK(&e, e.kc->bias_fwd_ep(&e.cpu, y.h, x.h, b.h, rh, act, rows, C));
                CK(&e, e.kg->bias_fwd_ep(&e.gpu, y.d, x.d, b.d, rd, act, rows, C));
                cmp(&e, NAME("bias_fwd_ep y"), &y, 0);
                float *drh = has_res ? dres.h : NULL, *drd = has_res ? dres.d : NULL;
                CK(&e, e.kc->bias_bwd_ep(&e.cpu, dx.h, db.h, drh, dy.h, y.h, act, 0u, rows, C));
                CK(&e, e.kg->bias_bwd_ep(&e.gpu, dx.d, db.d, drd, dy.d, y.d, act, 0u, rows, C));
                cmp(&e, NAME("bias_bwd_ep dx"), &dx, 0);
                cmp(&e, NAME("bias_bwd_ep db"), &db, TOL);
                cmp(&e, NAME("bias_bwd_ep dres"), &dres, 0);
                /* db NULL (the elementwise pass), then db alone. */
                CK(&e, e.kc->bias_bwd_ep(&e.cpu, dx.h, NULL, drh, dy.h, y.h, act, 0u, rows, C));
                CK(&e, e.kg->bias_bwd_ep(&e.gpu, dx.d, NULL, drd, dy.d, y.d, act, 0u, rows, C));
                cmp(&e, NAME("bias_bwd_ep(db NULL) dx"), &dx, 0);
                cmp(&e, NAME("bias_bwd_ep(db NULL) dres"), &dres, 0);
                CK(&e, e.kc->bias_bwd_ep(&e.cpu, NULL, db.h, NULL, dy.h, y.h, act, 0u, rows, C));
                CK(&e, e.kg->bias_bwd_ep(&e.gpu, NULL, db.d, NULL, dy.d, y.d, act, 0u, rows, C));
                cmp(&e, NAME("bias_bwd_ep(db alone) db"), &db, TOL);
                /* set = 3 over NaN, with and without db: written, never read; -0.0 kept. */
                for (int with_db = 0; with_db < 2; with_db++) {
                    buf dxs = mk_out(&e, n, off), drs = mk_out(&e, n, off);
                    CK(&e, e.kc->bias_bwd_ep(&e.cpu, dxs.h, with_db ? db.h : NULL,
                                             has_res ? drs.h : NULL, dy.h, y.h, act, 3u, rows,
                                             C));
                    CK(&e, e.kg->bias_bwd_ep(&e.gpu, dxs.d, with_db ? db.d : NULL,
                                             has_res ? drs.d : NULL, dy.d, y.d, act, 3u, rows,
                                             C));
                    cmp(&e, NAME("bias_bwd_ep(set) dx"), &dxs, 0);
                    if (has_res) cmp(&e, NAME("bias_bwd_ep(set) dres"), &drs, 0);
                    if (with_db) cmp(&e, NAME("bias_bwd_ep(set) db"), &db, TOL);
                    rm(&e, &dxs);
                    rm(&e, &drs);
                }
#undef NAME
            }
        }
        rm(&e, &x); rm(&e, &dy); rm(&e, &b); rm(&e, &res); rm(&e, &y); rm(&e, &dx);
        rm(&e, &dres); rm(&e, &db);
    }
    env_close(&e, "bias chain");
}
END_TEST

START_TEST(test_cuda_eltwise) {
    env e;
    if (!env_open(&e, "eltwise")) return;
    const int64_t sizes[] = {100003, 4096, 1};
    for (size_t si = 0; si < 3; si++)
        for (size_t off = 0; off < 2; off++) {
            int64_t n = sizes[si];
            size_t un = (size_t)n;
            uint64_t s = 900 + 10 * si + off;
            /* [-8, 8): both relu6 kinks are crossed. */
            buf x = mk_rand(&e, un, s, 8.0f, 0.0f, off), b = mk_rand(&e, un, s + 1, 1, 0, off);
            buf y = mk_out(&e, un, off), dy = mk_rand(&e, un, s + 2, 1, 0, off);
            buf dx = mk_rand(&e, un, s + 3, 1, 0, off), mask = mk_out(&e, un, off);
            CK(&e, e.kc->relu_fwd(&e.cpu, y.h, x.h, n));
            CK(&e, e.kg->relu_fwd(&e.gpu, y.d, x.d, n));
            cmp(&e, "relu_fwd", &y, 0);
            CK(&e, e.kc->relu_bwd(&e.cpu, dx.h, dy.h, y.h, n));
            CK(&e, e.kg->relu_bwd(&e.gpu, dx.d, dy.d, y.d, n));
            cmp(&e, "relu_bwd", &dx, 0);
            CK(&e, e.kc->relu6_fwd(&e.cpu, y.h, x.h, n));
            CK(&e, e.kg->relu6_fwd(&e.gpu, y.d, x.d, n));
            cmp(&e, "relu6_fwd", &y, 0);
            CK(&e, e.kc->relu6_bwd(&e.cpu, dx.h, dy.h, y.h, n));
            CK(&e, e.kg->relu6_bwd(&e.gpu, dx.d, dy.d, y.d, n));
            cmp(&e, "relu6_bwd", &dx, 0);
            /* MobileNet v3's: the same expressions and roundings on both (kinks at -3, 3). */
            CK(&e, e.kc->hard_swish_fwd(&e.cpu, y.h, x.h, n));
            CK(&e, e.kg->hard_swish_fwd(&e.gpu, y.d, x.d, n));
            cmp(&e, "hard_swish_fwd", &y, 0);
            CK(&e, e.kc->hard_swish_bwd(&e.cpu, dx.h, dy.h, x.h, n));
            CK(&e, e.kg->hard_swish_bwd(&e.gpu, dx.d, dy.d, x.d, n));
            cmp(&e, "hard_swish_bwd", &dx, 0);
            CK(&e, e.kc->hard_sigmoid_fwd(&e.cpu, y.h, x.h, n));
            CK(&e, e.kg->hard_sigmoid_fwd(&e.gpu, y.d, x.d, n));
            cmp(&e, "hard_sigmoid_fwd", &y, 0);
            CK(&e, e.kc->hard_sigmoid_bwd(&e.cpu, dx.h, dy.h, x.h, n));
            CK(&e, e.kg->hard_sigmoid_bwd(&e.gpu, dx.d, dy.d, x.d, n));
            cmp(&e, "hard_sigmoid_bwd", &dx, 0);
            CK(&e, e.kc->add_fwd(&e.cpu, y.h, x.h, b.h, n));
            CK(&e, e.kg->add_fwd(&e.gpu, y.d, x.d, b.d, n));
            cmp(&e, "add_fwd", &y, 0);
            CK(&e, e.kc->scale_fwd(&e.cpu, y.h, x.h, -0.37f, n));
            CK(&e, e.kg->scale_fwd(&e.gpu, y.d, x.d, -0.37f, n));
            cmp(&e, "scale_fwd", &y, 0);
            CK(&e, e.kc->accum(&e.cpu, dx.h, dy.h, 0.61f, n));
            CK(&e, e.kg->accum(&e.gpu, dx.d, dy.d, 0.61f, n));
            cmp(&e, "accum", &dx, TOL);     /* the GPU fuses multiply and add */
            CK(&e, e.kc->dropout_fwd(&e.cpu, y.h, mask.h, x.h, 0.7f, 12345 + s, 77 * s, n));
            CK(&e, e.kg->dropout_fwd(&e.gpu, y.d, mask.d, x.d, 0.7f, 12345 + s, 77 * s, n));
            cmp(&e, "dropout_fwd mask", &mask, 0);
            cmp(&e, "dropout_fwd y", &y, 0);
            CK(&e, e.kc->dropout_bwd(&e.cpu, dx.h, dy.h, mask.h, n));
            CK(&e, e.kg->dropout_bwd(&e.gpu, dx.d, dy.d, mask.d, n));
            cmp(&e, "dropout_bwd", &dx, TOL);
            rm(&e, &x); rm(&e, &b); rm(&e, &y); rm(&e, &dy); rm(&e, &dx); rm(&e, &mask);
        }
    env_close(&e, "eltwise");
}
END_TEST

/* The bf16 conversions (kernels.def's bfloat16 section) are one shared function on both
 * backends: identical bits, with and without the 4-wide path (offsets 0 and 1), on values
 * that include ties, subnormals, infinities and NaNs. */
START_TEST(test_cuda_bf16_cast) {
    env e;
    if (!env_open(&e, "bf16_cast")) return;
    const int64_t sizes[] = {100003, 4096, 3};
    for (size_t si = 0; si < 3; si++)
        for (size_t off = 0; off < 2; off++) {
            int64_t n = sizes[si];
            size_t un = (size_t)n;
            float *t = malloc(un * sizeof *t);
            ck_assert_ptr_nonnull(t);
            uint64_t s = 700 + si;
            for (size_t i = 0; i < un; i++) {
                uint32_t u = (uint32_t)(int32_t)(tu_rand(&s) * 2147483647.0f) ^ (uint32_t)i << 20;
                if (i % 7 == 0) u = (u & 0xffff0000u) | 0x8000u;      /* exact ties */
                memcpy(&t[i], &u, sizeof u);                          /* any pattern: NaN too */
            }
            buf x = mk_from(&e, t, un, off), h = mk_out(&e, un, off), z = mk_out(&e, un, off);
            CK(&e, e.kc->cast_to_bf16(&e.cpu, (sn_bf16 *)h.h, x.h, n));
            CK(&e, e.kg->cast_to_bf16(&e.gpu, (sn_bf16 *)h.d, x.d, n));
            sn_bf16 *g = malloc(un * sizeof *g);
            ck_assert_ptr_nonnull(g);
            CK(&e, e.kg->to_host(&e.gpu, g, h.d, un * sizeof *g));
            ck_assert_msg(memcmp(g, h.h, un * sizeof *g) == 0, "cast_to_bf16 differs (n %lld)",
                          (long long)n);
            CK(&e, e.kc->cast_from_bf16(&e.cpu, z.h, (const sn_bf16 *)h.h, n));
            CK(&e, e.kg->cast_from_bf16(&e.gpu, z.d, (const sn_bf16 *)h.d, n));
            float *gz = malloc(un * sizeof *gz);
            ck_assert_ptr_nonnull(gz);
            CK(&e, e.kg->to_host(&e.gpu, gz, z.d, un * sizeof *gz));
            ck_assert_msg(memcmp(gz, z.h, un * sizeof *gz) == 0, "cast_from_bf16 differs");
            free(g);
            free(gz);
            free(t);
            rm(&e, &x); rm(&e, &h); rm(&e, &z);
        }
    env_close(&e, "bf16_cast");
}
END_TEST

/* ---- bf16 kernels: the CPU's float32 kernel on the decoded values, rounded ----------------
 * A bf16 kernel (kernels.def's bfloat16 section) computes what the CPU's float32 kernel
 * computes on its decoded inputs, with one rounding per output: lib/bf16.c's emulation, the
 * CPU reference of every bf16 op.  Inputs are drawn as bf16 values (host h holds the decoded
 * float, device d the bf16 bits); accumulating outputs start from the same bf16 values on both
 * sides.  The two sides differ by summation order only, which can carry a float32 result
 * across a rounding boundary: one bf16 ulp (2^-8 relative).  BF16_TOL allows two, plus an
 * absolute floor of 1e-5 of the output's largest value for sums that cancel.  Float32 outputs
 * (statistics, parameter gradients) keep their float tolerances, except dw of cuDNN's bf16
 * routes, which cuDNN returns in bf16 (BF16_TOL against the scale). */
#define BF16_TOL (1.0 / 128.0)

typedef struct buf16 {
    float *h;       /* the decoded values (CPU side) */
    sn_bf16 *d;     /* their bits on the GPU */
    size_t n;
} buf16;

static buf16 mk16_from(env *e, const float *v, size_t n) {
    buf16 b = {0};
    b.n = n;
    b.h = malloc((n + 1) * sizeof(float));
    sn_bf16 *t = malloc((n + 1) * sizeof *t);
    ck_assert(b.h && t);
    for (size_t i = 0; i < n; i++) {
        t[i] = sn__bf16_encode(v[i]);
        b.h[i] = sn__bf16_decode(t[i]);
    }
    void *p = NULL;
    CK(e, e->kg->alloc(&e->gpu, &p, (n + 4) * sizeof(sn_bf16)));
    b.d = p;
    CK(e, e->kg->to_dev(&e->gpu, b.d, t, n * sizeof *t));
    free(t);
    return b;
}

static buf16 mk16(env *e, size_t n, uint64_t seed, float scale, float shift) {
    float *t = malloc((n + 1) * sizeof(float));
    ck_assert_ptr_nonnull(t);
    tu_fill(t, n, seed);
    for (size_t i = 0; i < n; i++) t[i] = t[i] * scale + shift;
    buf16 b = mk16_from(e, t, n);
    free(t);
    return b;
}

/* An output: NaN on both sides. */
static buf16 mk16_out(env *e, size_t n) {
    float *t = malloc((n + 1) * sizeof(float));
    ck_assert_ptr_nonnull(t);
    for (size_t i = 0; i < n; i++) t[i] = NAN;
    buf16 b = mk16_from(e, t, n);
    free(t);
    return b;
}

static void rm16(env *e, buf16 *b) {
    if (b->d) e->kg->free(&e->gpu, b->d);
    free(b->h);
    memset(b, 0, sizeof *b);
}

/* The GPU's bf16 output against the CPU's float32 result rounded to bf16. */
static void cmp16(env *e, const char *what, const buf16 *b) {
    sn_bf16 *g = malloc((b->n + 1) * sizeof *g);
    ck_assert_ptr_nonnull(g);
    CK(e, e->kg->to_host(&e->gpu, g, b->d, b->n * sizeof *g));
    double scale = 0, worst = 0;
    for (size_t i = 0; i < b->n; i++) {
        double c = fabs((double)sn__bf16_decode(sn__bf16_encode(b->h[i])));
        if (c > scale) scale = c;
    }
    size_t at = 0;
    for (size_t i = 0; i < b->n; i++) {
        double c = sn__bf16_decode(sn__bf16_encode(b->h[i])), v = sn__bf16_decode(g[i]);
        double r = fabs(v - c) / (BF16_TOL * fabs(c) + 1e-5 * scale + 1e-30);
        if (r != r) r = INFINITY;
        if (r > worst) {
            worst = r;
            at = i;
        }
    }
    if (worst > e->worst16) e->worst16 = worst;
    ck_assert_msg(worst <= 1.0, "%s: element %zu is %g on the GPU, %g on the CPU (%.3g of the "
                  "tolerance)", what, at, (double)sn__bf16_decode(g[at]), (double)b->h[at],
                  worst);
    free(g);
}

/* Continues from the CPU's rounded values on both sides (the input of a next kernel). */
static void sync16(env *e, buf16 *b) {
    sn_bf16 *t = malloc((b->n + 1) * sizeof *t);
    ck_assert_ptr_nonnull(t);
    for (size_t i = 0; i < b->n; i++) {
        t[i] = sn__bf16_encode(b->h[i]);
        b->h[i] = sn__bf16_decode(t[i]);
    }
    CK(e, e->kg->to_dev(&e->gpu, b->d, t, b->n * sizeof *t));
    free(t);
}

/* The float32 weights as the bf16 kernels use them: rounded (host copy). */
static float *rounded(const float *w, size_t n) {
    float *r = malloc((n + 1) * sizeof *r);
    ck_assert_ptr_nonnull(r);
    for (size_t i = 0; i < n; i++) r[i] = sn__bf16_decode(sn__bf16_encode(w[i]));
    return r;
}

/* One convolution in bf16 against the CPU; false (after a note) when cuDNN refuses the
 * shape in bf16 at workspace time (the net then runs it emulated, lib/bf16.c) or, where
 * may_refuse, when its forward is refused at run time. */
static bool conv16_case(env *e, const sn__conv2d_dims *cd, uint64_t seed, bool may_refuse) {
    int dwise = cd->M > 0;
    size_t nx = (size_t)(cd->N * cd->H * cd->W * cd->C);
    size_t ny = (size_t)(cd->N * cd->P * cd->Q * cd->K);
    size_t nw = (size_t)(cd->R * cd->S * cd->C * (dwise ? cd->M : cd->K));
    size_t cws = 0, gws = 0;
    char what[256], name[320];
    describe(what, sizeof what, dwise ? "dwconv2d bf16" : "conv2d bf16", cd);
    CK(e, (dwise ? e->kc->dwconv2d_ws : e->kc->conv2d_ws)(&e->cpu, cd, &cws));
    sn_status st = (dwise ? e->kg->dwconv2d_ws : e->kg->conv2d_ws_bf16)(&e->gpu, cd, &gws);
    if (st != SN_OK && !dwise) {
        printf("[cuda] %s: refused (%s: %s): emulated in nets\n", what, sn_status_name(st),
               sn_ctx_errmsg(e->ctx));
        return false;
    }
    CK(e, st);
    env_ws(e, cws, gws);
    buf16 x = mk16(e, nx, seed, 1, 0), dy = mk16(e, ny, seed + 2, 1, 0);
    buf16 y = mk16_out(e, ny), dx = mk16(e, nx, seed + 3, 1, 0), dxs = mk16_out(e, nx);
    buf w = mk(e, nw, seed + 1), dw = mk(e, nw, seed + 4);
    float *wr = rounded(w.h, nw);
    if (dwise) {   /* depthwise bf16 kernels read the float32 weights as they are */
        CK(e, e->kc->dwconv2d_fwd(&e->cpu, y.h, x.h, w.h, cd));
        CK(e, e->kg->dwconv2d_fwd_bf16(&e->gpu, y.d, x.d, w.d, cd));
        CK(e, e->kc->dwconv2d_bwd_data(&e->cpu, dx.h, dy.h, w.h, cd));
        CK(e, e->kg->dwconv2d_bwd_data_bf16(&e->gpu, dx.d, dy.d, w.d, cd));
        CK(e, e->kc->dwconv2d_bwd_filter(&e->cpu, dw.h, dy.h, x.h, cd));
        CK(e, e->kg->dwconv2d_bwd_filter_bf16(&e->gpu, dw.d, dy.d, x.d, cd));
    } else {
        CK(e, e->kc->conv2d_fwd(&e->cpu, y.h, x.h, wr, cd));
        st = e->kg->conv2d_fwd_bf16(&e->gpu, y.d, x.d, w.d, cd);
        if (st != SN_OK && may_refuse) {
            printf("[cuda] %s: refused at run time (%s: %s)\n", what, sn_status_name(st),
                   sn_ctx_errmsg(e->ctx));
            free(wr);
            rm16(e, &x); rm16(e, &dy); rm16(e, &y); rm16(e, &dx); rm16(e, &dxs);
            rm(e, &w); rm(e, &dw);
            env_ws(e, 0, 0);
            return false;
        }
        CK(e, st);
        CK(e, e->kc->conv2d_bwd_data(&e->cpu, dx.h, dy.h, wr, 1.0f, cd));
        CK(e, e->kg->conv2d_bwd_data_bf16(&e->gpu, dx.d, dy.d, w.d, 1.0f, cd));
        CK(e, e->kc->conv2d_bwd_data(&e->cpu, dxs.h, dy.h, wr, 0.0f, cd));
        CK(e, e->kg->conv2d_bwd_data_bf16(&e->gpu, dxs.d, dy.d, w.d, 0.0f, cd));
        snprintf(name, sizeof name, "%s bwd_data beta 0", what);
        cmp16(e, name, &dxs);
        CK(e, e->kc->conv2d_bwd_filter(&e->cpu, dw.h, dy.h, x.h, cd));
        CK(e, e->kg->conv2d_bwd_filter_bf16(&e->gpu, dw.d, dy.d, x.d, cd));
    }
    snprintf(name, sizeof name, "%s fwd", what);
    cmp16(e, name, &y);
    snprintf(name, sizeof name, "%s bwd_data", what);
    cmp16(e, name, &dx);
    snprintf(name, sizeof name, "%s bwd_filter", what);
    cmp(e, name, &dw, dwise ? TOL : BF16_TOL);
    free(wr);
    rm16(e, &x); rm16(e, &dy); rm16(e, &y); rm16(e, &dx); rm16(e, &dxs);
    rm(e, &w); rm(e, &dw);
    env_ws(e, 0, 0);
    return true;
}

/* bf16 shapes: every route with channel counts cuDNN's bf16 kernels take (multiples of 8,
 * no dilation: the shapes of the benchmark nets; these must run), and odd ones (C = 3 as
 * ResNet's conv1, 5, 7; dilation) that may be refused. */
static const geom conv16_geoms[] = {
    /*N  H   W   C   K  R  S  sh sw dh dw pad */
    {2, 8, 8, 8, 16, 1, 1, 1, 1, 1, 1, PAD_VALID},    /* 1x1: cuBLAS GemmEx */
    {3, 9, 9, 16, 8, 1, 1, 2, 2, 1, 1, PAD_SAME},     /* strided 1x1 */
    {2, 8, 8, 16, 24, 3, 3, 1, 1, 1, 1, PAD_SAME},    /* symmetric SAME: DIRECT */
    {2, 10, 10, 8, 16, 3, 3, 2, 2, 1, 1, PAD_SAME},   /* asymmetric SAME: PADDED */
    {2, 16, 16, 8, 16, 7, 7, 2, 2, 1, 1, PAD_SAME},   /* 7x7 stride 2, PADDED */
    {4, 14, 14, 32, 64, 3, 3, 1, 1, 1, 1, PAD_SAME},  /* a ResNet-like 3x3 block */
    {2, 11, 11, 16, 16, 3, 3, 1, 1, 2, 2, PAD_SAME},  /* dilation 2 */
    {2, 12, 12, 3, 8, 7, 7, 2, 2, 1, 1, 3},           /* ResNet's conv1, scaled down */
    {2, 8, 8, 5, 7, 3, 3, 1, 1, 1, 1, PAD_SAME},      /* odd channels */
    {2, 13, 5, 7, 9, 3, 5, 2, 1, 1, 2, PAD_SAME},     /* everything unequal */
};

/* Every convolution route (1x1 cuBLAS, strided 1x1, symmetric and padded cuDNN, 7x7/2) and
 * the depthwise geometries, in bf16. */
START_TEST(test_cuda_bf16_conv) {
    env e;
    if (!env_open(&e, "bf16 conv")) return;
    int refused = 0;
    for (size_t i = 0; i < sizeof conv16_geoms / sizeof conv16_geoms[0]; i++) {
        const geom *g = &conv16_geoms[i];
        sn__conv2d_dims cd = make_dims(g, 0);
        bool must = g->C % 8 == 0 && g->K % 8 == 0 && g->dh == 1 && g->dw == 1;
        bool ran = conv16_case(&e, &cd, 2000 + 10 * (uint64_t)i, !must);
        ck_assert_msg(ran || !must, "cuDNN refused bf16 geometry %zu", i);
        refused += !ran;
    }
    for (int i = 0; i < N_DW; i++)
        for (int64_t M = 1; M <= 2; M++) {
            sn__conv2d_dims cd = make_dims(&dw_geoms[i], M);
            conv16_case(&e, &cd, 2500 + 10 * (uint64_t)(i * 2 + M), false);
        }
    printf("[cuda] bf16 conv: worst %.3g of the tolerance; %d odd-channel shapes refused\n",
           e.worst16, refused);
    env_close(&e, "bf16 conv");
}
END_TEST

/* The training batch norm and bias chains in bf16: every residual/activation combination,
 * accumulating and set gradients. */
START_TEST(test_cuda_bf16_chains) {
    env e;
    if (!env_open(&e, "bf16 chains")) return;
    for (size_t i = 0; i < sizeof rc_cases / sizeof rc_cases[0]; i++) {
        int64_t rows = rc_cases[i].rows, C = rc_cases[i].C;
        size_t n = (size_t)(rows * C);
        uint64_t s = 2800 + 20 * i;
        char what[160], name[200];
        buf16 x = mk16(&e, n, s, 2.0f, 5.0f), dy = mk16(&e, n, s + 1, 1.0f, 0.0f);
        buf16 res = mk16(&e, n, s + 2, 4.0f, 1.0f), y = mk16_out(&e, n);
        buf gamma = mk_rand(&e, (size_t)C, s + 5, 0.5f, 1.0f, 0);
        buf beta = mk_rand(&e, (size_t)C, s + 6, 3.0f, 2.0f, 0);
        buf dgamma = mk(&e, (size_t)C, s + 7), dbeta = mk(&e, (size_t)C, s + 8);
        buf mean = mk_out(&e, (size_t)C, 0), var = mk_out(&e, (size_t)C, 0);
        for (int has_res = 0; has_res < 2; has_res++)
            for (int act = SN__ACT_NONE; act <= SN__ACT_RELU6; act++)
                for (unsigned set = 0; set < 4; set += 3) {
                    snprintf(what, sizeof what, "rows=%lld C=%lld res=%d act=%d set=%u",
                             (long long)rows, (long long)C, has_res, act, set);
#define NAME16(k) (snprintf(name, sizeof name, "%s %s", k, what), name)
                    const float *rh = has_res ? res.h : NULL;
                    const sn_bf16 *rd = has_res ? res.d : NULL;
                    buf16 dx = set ? mk16_out(&e, n) : mk16(&e, n, s + 3, 1, 0);
                    buf16 dres = set ? mk16_out(&e, n) : mk16(&e, n, s + 4, 1, 0);
                    /* batch norm */
                    CK(&e, e.kc->bn_train_fwd_ep(&e.cpu, y.h, mean.h, var.h, x.h, gamma.h,
                                                 beta.h, 1e-3f, rh, act, rows, C));
                    CK(&e, e.kg->bn_train_fwd_ep_bf16(&e.gpu, y.d, mean.d, var.d, x.d, gamma.d,
                                                      beta.d, 1e-3f, rd, act, rows, C));
                    cmp(&e, NAME16("bn_train_fwd_ep_bf16 mean"), &mean, TOL);
                    cmp(&e, NAME16("bn_train_fwd_ep_bf16 var"), &var, TOL);
                    cmp16(&e, NAME16("bn_train_fwd_ep_bf16 y"), &y);
                    CK(&e, e.kg->to_dev(&e.gpu, mean.d, mean.h, (size_t)C * sizeof(float)));
                    CK(&e, e.kg->to_dev(&e.gpu, var.d, var.h, (size_t)C * sizeof(float)));
                    sync16(&e, &y);
                    CK(&e, e.kc->bn_train_bwd_ep(&e.cpu, dx.h, dgamma.h, dbeta.h,
                                                 has_res ? dres.h : NULL, dy.h, y.h, x.h,
                                                 gamma.h, mean.h, var.h, 1e-3f, act,
                                                 has_res ? set : set & 1u, rows, C));
                    CK(&e, e.kg->bn_train_bwd_ep_bf16(&e.gpu, dx.d, dgamma.d, dbeta.d,
                                                      has_res ? dres.d : NULL, dy.d, y.d, x.d,
                                                      gamma.d, mean.d, var.d, 1e-3f, act,
                                                      has_res ? set : set & 1u, rows, C));
                    cmp16(&e, NAME16("bn_train_bwd_ep_bf16 dx"), &dx);
                    if (has_res) cmp16(&e, NAME16("bn_train_bwd_ep_bf16 dres"), &dres);
                    cmp(&e, NAME16("bn_train_bwd_ep_bf16 dgamma"), &dgamma, TOL);
                    cmp(&e, NAME16("bn_train_bwd_ep_bf16 dbeta"), &dbeta, TOL);
                    /* bias */
                    CK(&e, e.kc->bias_fwd_ep(&e.cpu, y.h, x.h, beta.h, rh, act, rows, C));
                    CK(&e, e.kg->bias_fwd_ep_bf16(&e.gpu, y.d, x.d, beta.d, rd, act, rows, C));
                    cmp16(&e, NAME16("bias_fwd_ep_bf16"), &y);
                    sync16(&e, &y);
                    sync16(&e, &dx);
                    if (has_res) sync16(&e, &dres);
                    for (int with_db = 0; with_db < 2; with_db++) {
                        CK(&e, e.kc->bias_bwd_ep(&e.cpu, dx.h, with_db ? dbeta.h : NULL,
                                                 has_res ? dres.h : NULL, dy.h, y.h, act,
                                                 with_db ? 0u : set, rows, C));
                        CK(&e, e.kg->bias_bwd_ep_bf16(&e.gpu, dx.d, with_db ? dbeta.d : NULL,
                                                      has_res ? dres.d : NULL, dy.d, y.d, act,
                                                      with_db ? 0u : set, rows, C));
                        cmp16(&e, NAME16("bias_bwd_ep_bf16 dx"), &dx);
                        if (has_res) cmp16(&e, NAME16("bias_bwd_ep_bf16 dres"), &dres);
                        if (with_db) cmp(&e, NAME16("bias_bwd_ep_bf16 db"), &dbeta, TOL);
                        sync16(&e, &dx);
                        if (has_res) sync16(&e, &dres);
                    }
#undef NAME16
                    rm16(&e, &dx); rm16(&e, &dres);
                }
        rm16(&e, &x); rm16(&e, &dy); rm16(&e, &res); rm16(&e, &y);
        rm(&e, &gamma); rm(&e, &beta); rm(&e, &dgamma); rm(&e, &dbeta); rm(&e, &mean);
        rm(&e, &var);
    }
    printf("[cuda] bf16 chains: worst %.3g of the tolerance\n", e.worst16);
    env_close(&e, "bf16 chains");
}
END_TEST

/* Pooling (both backward paths of max pooling, ties included), padding and concat in bf16:
 * the same float operations in the same order as the CPU, so identical after rounding up to
 * the summation order of overlapping windows. */
START_TEST(test_cuda_bf16_pool_layout) {
    env e;
    if (!env_open(&e, "bf16 pool/layout")) return;
    for (size_t i = 0; i < sizeof pool_geoms / sizeof pool_geoms[0]; i++) {
        sn__pool_dims pd = make_pool(&pool_geoms[i]);
        size_t nx = (size_t)(pd.N * pd.H * pd.W * pd.C), ny = (size_t)(pd.N * pd.P * pd.Q * pd.C);
        for (int ties = 0; ties < 2; ties++) {
            buf16 x = mk16(&e, nx, 3000 + i, ties ? 2.0f : 1.0f, 0.0f);
            if (ties) {   /* few distinct values: the tie rule decides */
                for (size_t j = 0; j < nx; j++) x.h[j] = roundf(x.h[j]);
                sync16(&e, &x);
            }
            buf16 dy = mk16(&e, ny, 3010 + i, 1, 0), y = mk16_out(&e, ny);
            char what[128];
            for (int ws = 0; ws < 2; ws++) {
                size_t gws = 0;
                if (ws) CK(&e, e.kg->maxpool_ws(&e.gpu, &pd, &gws));
                env_ws(&e, 0, gws);
                buf16 dx = mk16(&e, nx, 3020 + i, 1, 0);
                snprintf(what, sizeof what, "bf16 pool case %zu ties=%d ws=%d", i, ties, ws);
                CK(&e, e.kc->maxpool_fwd(&e.cpu, y.h, x.h, &pd));
                CK(&e, e.kg->maxpool_fwd_bf16(&e.gpu, y.d, x.d, &pd));
                cmp16(&e, what, &y);
                CK(&e, e.kc->maxpool_bwd(&e.cpu, dx.h, dy.h, x.h, &pd));
                CK(&e, e.kg->maxpool_bwd_bf16(&e.gpu, dx.d, dy.d, x.d, &pd));
                cmp16(&e, what, &dx);
                rm16(&e, &dx);
            }
            env_ws(&e, 0, 0);
            buf16 dx = mk16(&e, nx, 3030 + i, 1, 0);
            CK(&e, e.kc->avgpool_fwd(&e.cpu, y.h, x.h, &pd));
            CK(&e, e.kg->avgpool_fwd_bf16(&e.gpu, y.d, x.d, &pd));
            cmp16(&e, "avgpool_fwd_bf16", &y);
            CK(&e, e.kc->avgpool_bwd(&e.cpu, dx.h, dy.h, &pd));
            CK(&e, e.kg->avgpool_bwd_bf16(&e.gpu, dx.d, dy.d, &pd));
            cmp16(&e, "avgpool_bwd_bf16", &dx);
            rm16(&e, &x); rm16(&e, &dy); rm16(&e, &y); rm16(&e, &dx);
        }
    }
    const struct { int64_t rows, Cx, Cy, off; } cc[] = {{300, 16, 48, 8}, {301, 5, 13, 3},
                                                         {7, 1, 1, 0}};
    for (size_t i = 0; i < 3; i++) {
        size_t nx = (size_t)(cc[i].rows * cc[i].Cx), ny = (size_t)(cc[i].rows * cc[i].Cy);
        buf16 x = mk16(&e, nx, 3100 + i, 1, 0), y = mk16(&e, ny, 3110 + i, 1, 0);
        buf16 dx = mk16(&e, nx, 3120 + i, 1, 0);
        CK(&e, e.kc->concat_fwd(&e.cpu, y.h, x.h, cc[i].rows, cc[i].Cx, cc[i].Cy, cc[i].off));
        CK(&e, e.kg->concat_fwd_bf16(&e.gpu, y.d, x.d, cc[i].rows, cc[i].Cx, cc[i].Cy,
                                     cc[i].off));
        cmp16(&e, "concat_fwd_bf16", &y);
        CK(&e, e.kc->concat_bwd(&e.cpu, dx.h, y.h, cc[i].rows, cc[i].Cx, cc[i].Cy, cc[i].off));
        CK(&e, e.kg->concat_bwd_bf16(&e.gpu, dx.d, y.d, cc[i].rows, cc[i].Cx, cc[i].Cy,
                                     cc[i].off));
        cmp16(&e, "concat_bwd_bf16", &dx);
        rm16(&e, &x); rm16(&e, &y); rm16(&e, &dx);
    }
    const int64_t pc[][8] = {{2, 5, 6, 8, 1, 1, 1, 1}, {2, 7, 5, 3, 0, 1, 2, 3},
                             {1, 4, 4, 5, 0, 0, 0, 0}, {3, 6, 3, 4, 3, 2, 0, 1}};
    for (size_t i = 0; i < 4; i++) {
        const int64_t *p = pc[i];
        int64_t Hy = p[1] + p[4] + p[5], Wy = p[2] + p[6] + p[7];
        size_t nx = (size_t)(p[0] * p[1] * p[2] * p[3]), ny = (size_t)(p[0] * Hy * Wy * p[3]);
        buf16 x = mk16(&e, nx, 3200 + i, 1, 0), y = mk16_out(&e, ny);
        buf16 dy = mk16(&e, ny, 3210 + i, 1, 0), dx = mk16(&e, nx, 3220 + i, 1, 0);
        CK(&e, e.kc->pad_fwd(&e.cpu, y.h, x.h, p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7]));
        CK(&e, e.kg->pad_fwd_bf16(&e.gpu, y.d, x.d, p[0], p[1], p[2], p[3], p[4], p[5], p[6],
                                  p[7]));
        cmp16(&e, "pad_fwd_bf16", &y);
        CK(&e, e.kc->pad_bwd(&e.cpu, dx.h, dy.h, p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7]));
        CK(&e, e.kg->pad_bwd_bf16(&e.gpu, dx.d, dy.d, p[0], p[1], p[2], p[3], p[4], p[5], p[6],
                                  p[7]));
        cmp16(&e, "pad_bwd_bf16", &dx);
        rm16(&e, &x); rm16(&e, &y); rm16(&e, &dy); rm16(&e, &dx);
    }
    printf("[cuda] bf16 pool/layout: worst %.3g of the tolerance\n", e.worst16);
    env_close(&e, "bf16 pool/layout");
}
END_TEST

START_TEST(test_cuda_layout) {
    env e;
    if (!env_open(&e, "layout")) return;
    /* concat: aligned float4 case, then odd channels and offset. */
    const struct { int64_t rows, Cx, Cy, off; } cc[] = {{300, 16, 48, 8}, {301, 5, 13, 3},
                                                         {7, 1, 1, 0}};
    for (size_t i = 0; i < 3; i++) {
        size_t nx = (size_t)(cc[i].rows * cc[i].Cx), ny = (size_t)(cc[i].rows * cc[i].Cy);
        buf x = mk(&e, nx, 1000 + i), y = mk(&e, ny, 1010 + i), dx = mk(&e, nx, 1020 + i);
        CK(&e, e.kc->concat_fwd(&e.cpu, y.h, x.h, cc[i].rows, cc[i].Cx, cc[i].Cy, cc[i].off));
        CK(&e, e.kg->concat_fwd(&e.gpu, y.d, x.d, cc[i].rows, cc[i].Cx, cc[i].Cy, cc[i].off));
        cmp(&e, "concat_fwd", &y, 0);
        CK(&e, e.kc->concat_bwd(&e.cpu, dx.h, y.h, cc[i].rows, cc[i].Cx, cc[i].Cy, cc[i].off));
        CK(&e, e.kg->concat_bwd(&e.gpu, dx.d, y.d, cc[i].rows, cc[i].Cx, cc[i].Cy, cc[i].off));
        cmp(&e, "concat_bwd", &dx, 0);
        rm(&e, &x); rm(&e, &y); rm(&e, &dx);
    }
    /* pad: symmetric, asymmetric, none; C multiple of 4 and odd. */
    const int64_t pc[][8] = {{2, 5, 6, 8, 1, 1, 1, 1}, {2, 7, 5, 3, 0, 1, 2, 3},
                             {1, 4, 4, 5, 0, 0, 0, 0}, {3, 6, 3, 4, 3, 2, 0, 1}};
    for (size_t i = 0; i < 4; i++) {
        const int64_t *p = pc[i];
        int64_t Hy = p[1] + p[4] + p[5], Wy = p[2] + p[6] + p[7];
        size_t nx = (size_t)(p[0] * p[1] * p[2] * p[3]), ny = (size_t)(p[0] * Hy * Wy * p[3]);
        buf x = mk(&e, nx, 1100 + i), y = mk_out(&e, ny, 0), dy = mk(&e, ny, 1110 + i);
        buf dx = mk(&e, nx, 1120 + i);
        CK(&e, e.kc->pad_fwd(&e.cpu, y.h, x.h, p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7]));
        CK(&e, e.kg->pad_fwd(&e.gpu, y.d, x.d, p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7]));
        cmp(&e, "pad_fwd", &y, 0);
        CK(&e, e.kc->pad_bwd(&e.cpu, dx.h, dy.h, p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7]));
        CK(&e, e.kg->pad_bwd(&e.gpu, dx.d, dy.d, p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7]));
        cmp(&e, "pad_bwd", &dx, 0);
        rm(&e, &x); rm(&e, &y); rm(&e, &dy); rm(&e, &dx);
    }
    /* mean over H*W. */
    const int64_t mc[][3] = {{4, 49, 37}, {3, 1, 64}, {2, 196, 2048}, {5, 7, 1}};
    for (size_t i = 0; i < 4; i++) {
        int64_t N = mc[i][0], HW = mc[i][1], C = mc[i][2];
        size_t nx = (size_t)(N * HW * C), ny = (size_t)(N * C);
        buf x = mk(&e, nx, 1200 + i), y = mk_out(&e, ny, 0), dy = mk(&e, ny, 1210 + i);
        buf dx = mk(&e, nx, 1220 + i);
        CK(&e, e.kc->mean_hw_fwd(&e.cpu, y.h, x.h, N, HW, C));
        CK(&e, e.kg->mean_hw_fwd(&e.gpu, y.d, x.d, N, HW, C));
        cmp(&e, "mean_hw_fwd", &y, TOL);
        CK(&e, e.kc->mean_hw_bwd(&e.cpu, dx.h, dy.h, N, HW, C));
        CK(&e, e.kg->mean_hw_bwd(&e.gpu, dx.d, dy.d, N, HW, C));
        cmp(&e, "mean_hw_bwd", &dx, 0);
        rm(&e, &x); rm(&e, &y); rm(&e, &dy); rm(&e, &dx);
    }
    /* the squeeze-excite gate: x (N, HW, C) * s (N, C); ds reduced over HW. */
    const int64_t gc[][3] = {{4, 49, 37}, {3, 1, 64}, {2, 3136, 72}, {5, 7, 1}, {2, 12544, 16}};
    for (size_t i = 0; i < sizeof gc / sizeof gc[0]; i++) {
        int64_t N = gc[i][0], HW = gc[i][1], C = gc[i][2];
        size_t nx = (size_t)(N * HW * C), ns = (size_t)(N * C);
        buf x = mk(&e, nx, 1230 + i), s = mk(&e, ns, 1240 + i), y = mk_out(&e, nx, 0);
        buf dy = mk(&e, nx, 1250 + i), dx = mk(&e, nx, 1260 + i), ds = mk(&e, ns, 1270 + i);
        CK(&e, e.kc->channel_gate_fwd(&e.cpu, y.h, x.h, s.h, N, HW, C));
        CK(&e, e.kg->channel_gate_fwd(&e.gpu, y.d, x.d, s.d, N, HW, C));
        cmp(&e, "channel_gate_fwd", &y, 0);
        CK(&e, e.kc->channel_gate_bwd(&e.cpu, dx.h, ds.h, dy.h, x.h, s.h, N, HW, C));
        CK(&e, e.kg->channel_gate_bwd(&e.gpu, dx.d, ds.d, dy.d, x.d, s.d, N, HW, C));
        cmp(&e, "channel_gate_bwd dx", &dx, 0);
        cmp(&e, "channel_gate_bwd ds", &ds, TOL);   /* the sums' order differs */
        CK(&e, e.kc->channel_gate_bwd(&e.cpu, NULL, ds.h, dy.h, x.h, s.h, N, HW, C));
        CK(&e, e.kg->channel_gate_bwd(&e.gpu, NULL, ds.d, dy.d, x.d, s.d, N, HW, C));
        cmp(&e, "channel_gate_bwd ds alone", &ds, TOL);
        rm(&e, &x); rm(&e, &s); rm(&e, &y); rm(&e, &dy); rm(&e, &dx); rm(&e, &ds);
    }
    env_close(&e, "layout");
}
END_TEST

START_TEST(test_cuda_lrn) {
    env e;
    if (!env_open(&e, "lrn")) return;
    const struct { int64_t rows, C; int radius; float bias, alpha, beta; } lc[] = {
        {50, 37, 2, 1.0f, 0.1f, 0.75f},       /* alpha large enough for the cross term */
        {20, 64, 5, 2.0f, 1e-4f, 0.75f},      /* tf.nn.lrn's defaults but bias */
        {10, 3, 4, 1.0f, 0.5f, 0.5f},         /* window wider than the channels */
    };
    for (size_t i = 0; i < 3; i++) {
        size_t n = (size_t)(lc[i].rows * lc[i].C);
        buf x = mk_rand(&e, n, 1300 + i, 2.0f, 0.0f, 0), y = mk_out(&e, n, 0);
        buf dy = mk(&e, n, 1310 + i), dx = mk(&e, n, 1320 + i);
        CK(&e, e.kc->lrn_fwd(&e.cpu, y.h, x.h, lc[i].rows, lc[i].C, lc[i].radius, lc[i].bias,
                             lc[i].alpha, lc[i].beta));
        CK(&e, e.kg->lrn_fwd(&e.gpu, y.d, x.d, lc[i].rows, lc[i].C, lc[i].radius, lc[i].bias,
                             lc[i].alpha, lc[i].beta));
        cmp(&e, "lrn_fwd", &y, TOL);
        CK(&e, e.kc->lrn_bwd(&e.cpu, dx.h, dy.h, x.h, lc[i].rows, lc[i].C, lc[i].radius,
                             lc[i].bias, lc[i].alpha, lc[i].beta));
        CK(&e, e.kg->lrn_bwd(&e.gpu, dx.d, dy.d, x.d, lc[i].rows, lc[i].C, lc[i].radius,
                             lc[i].bias, lc[i].alpha, lc[i].beta));
        cmp(&e, "lrn_bwd", &dx, TOL);
        rm(&e, &x); rm(&e, &y); rm(&e, &dy); rm(&e, &dx);
    }
    env_close(&e, "lrn");
}
END_TEST

/* int32 labels on both sides. */
static int32_t *labels_to_dev(env *e, const int32_t *h, int64_t rows) {
    void *p = NULL;
    CK(e, e->kg->alloc(&e->gpu, &p, (size_t)rows * sizeof(int32_t) + 4));
    CK(e, e->kg->to_dev(&e->gpu, p, h, (size_t)rows * sizeof(int32_t)));
    return p;
}

START_TEST(test_cuda_loss) {
    env e;
    if (!env_open(&e, "loss")) return;
    const int64_t shapes[][2] = {{33, 10}, {7, 1500}, {256, 1001}};
    for (size_t i = 0; i < 3; i++) {
        int64_t rows = shapes[i][0], C = shapes[i][1];
        size_t n = (size_t)(rows * C);
        buf x = mk_rand(&e, n, 1400 + i, 4.0f, 0.0f, 0), y = mk_out(&e, n, 0);
        buf dy = mk(&e, n, 1410 + i), dx = mk(&e, n, 1420 + i);
        CK(&e, e.kc->softmax_fwd(&e.cpu, y.h, x.h, rows, C));
        CK(&e, e.kg->softmax_fwd(&e.gpu, y.d, x.d, rows, C));
        cmp(&e, "softmax_fwd", &y, TOL);
        CK(&e, e.kc->softmax_bwd(&e.cpu, dx.h, dy.h, y.h, rows, C));
        CK(&e, e.kg->softmax_bwd(&e.gpu, dx.d, dy.d, y.d, rows, C));
        cmp(&e, "softmax_bwd", &dx, TOL);

        int32_t *lab = malloc((size_t)rows * sizeof(int32_t));
        ck_assert_ptr_nonnull(lab);
        uint64_t st = 77 + i;
        for (int64_t r = 0; r < rows; r++)
            lab[r] = (int32_t)((tu_rand(&st) * 0.5f + 0.5f) * (float)C) % (int32_t)C;
        int32_t *dlab = labels_to_dev(&e, lab, rows);
        const float dloss_h = 1.7f;
        buf dloss = mk_from(&e, &dloss_h, 1, 0), loss = mk_out(&e, 1, 0);
        for (int k = 0; k < 2; k++) {
            float ls = k ? 0.1f : 0.0f;
            CK(&e, e.kc->xent_fwd(&e.cpu, loss.h, y.h, x.h, lab, ls, rows, C));
            CK(&e, e.kg->xent_fwd(&e.gpu, loss.d, y.d, x.d, dlab, ls, rows, C));
            cmp(&e, "xent_fwd loss", &loss, TOL);
            cmp(&e, "xent_fwd prob", &y, TOL);
            CK(&e, e.kc->xent_bwd(&e.cpu, dx.h, dloss.h, y.h, lab, ls, rows, C));
            CK(&e, e.kg->xent_bwd(&e.gpu, dx.d, dloss.d, y.d, dlab, ls, rows, C));
            cmp(&e, "xent_bwd", &dx, TOL);
        }
        /* A label outside [0, C) is reported after the sync. */
        lab[rows / 2] = (int32_t)C;
        CK(&e, e.kg->to_dev(&e.gpu, dlab, lab, (size_t)rows * sizeof(int32_t)));
        ck_assert_int_eq(e.kg->xent_fwd(&e.gpu, loss.d, y.d, x.d, dlab, 0.0f, rows, C),
                         SN_ERR_INVALID_ARG);
        lab[rows / 2] = -1;
        CK(&e, e.kg->to_dev(&e.gpu, dlab, lab, (size_t)rows * sizeof(int32_t)));
        ck_assert_int_eq(e.kg->xent_fwd(&e.gpu, loss.d, y.d, x.d, dlab, 0.0f, rows, C),
                         SN_ERR_INVALID_ARG);
        /* ... and the next call runs normally. */
        lab[rows / 2] = 0;
        CK(&e, e.kg->to_dev(&e.gpu, dlab, lab, (size_t)rows * sizeof(int32_t)));
        CK(&e, e.kg->xent_fwd(&e.gpu, loss.d, y.d, x.d, dlab, 0.0f, rows, C));
        CK(&e, e.kg->free(&e.gpu, dlab));
        free(lab);
        rm(&e, &x); rm(&e, &y); rm(&e, &dy); rm(&e, &dx); rm(&e, &dloss); rm(&e, &loss);
    }
    /* L2 and sum over sizes with vector tails. */
    const int64_t ln[] = {1, 1000, 1234567};
    for (size_t i = 0; i < 3; i++) {
        size_t n = (size_t)ln[i];
        const float dl_h = -0.3f;
        buf w = mk(&e, n, 1500 + i), dw = mk(&e, n, 1510 + i), out = mk_out(&e, 1, 0);
        buf dl = mk_from(&e, &dl_h, 1, 0);
        CK(&e, e.kc->l2_fwd(&e.cpu, out.h, w.h, 4e-5f, ln[i]));
        CK(&e, e.kg->l2_fwd(&e.gpu, out.d, w.d, 4e-5f, ln[i]));
        cmp(&e, "l2_fwd", &out, TOL);
        CK(&e, e.kc->l2_bwd(&e.cpu, dw.h, dl.h, w.h, 4e-5f, ln[i]));
        CK(&e, e.kg->l2_bwd(&e.gpu, dw.d, dl.d, w.d, 4e-5f, ln[i]));
        cmp(&e, "l2_bwd", &dw, TOL);
        CK(&e, e.kc->sum_fwd(&e.cpu, out.h, w.h, ln[i]));
        CK(&e, e.kg->sum_fwd(&e.gpu, out.d, w.d, ln[i]));
        cmp(&e, "sum_fwd", &out, TOL);
        CK(&e, e.kc->sum_bwd(&e.cpu, dw.h, dl.h, ln[i]));
        CK(&e, e.kg->sum_bwd(&e.gpu, dw.d, dl.d, ln[i]));
        /* dw starts from the l2_bwd results, which agree only to TOL. */
        cmp(&e, "sum_bwd", &dw, TOL);
        rm(&e, &w); rm(&e, &dw); rm(&e, &out); rm(&e, &dl);
    }
    env_close(&e, "loss");
}
END_TEST

Suite *suite_cuda(void) {
    Suite *s = suite_create("cuda");
    TCase *tc = tcase_create("parity");
    /* cuDNN's first use loads its libraries: far beyond Check's 4 s default. */
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_cuda_device);
    tcase_add_test(tc, test_cuda_gemm);
    tcase_add_test(tc, test_cuda_conv);
    tcase_add_test(tc, test_cuda_dwconv);
    tcase_add_test(tc, test_cuda_fused);
    tcase_add_test(tc, test_cuda_pool);
    tcase_add_test(tc, test_cuda_bias_bn);
    tcase_add_test(tc, test_cuda_bn_ep);
    tcase_add_test(tc, test_cuda_bias_ep);
    tcase_add_test(tc, test_cuda_eltwise);
    tcase_add_test(tc, test_cuda_bf16_cast);
    tcase_add_test(tc, test_cuda_bf16_conv);
    tcase_add_test(tc, test_cuda_bf16_chains);
    tcase_add_test(tc, test_cuda_bf16_pool_layout);
    tcase_add_test(tc, test_cuda_layout);
    tcase_add_test(tc, test_cuda_lrn);
    tcase_add_test(tc, test_cuda_loss);
    suite_add_tcase(s, tc);
    return s;
}

#else /* !SN_WITH_CUDA */

START_TEST(test_cuda_skipped) {
    printf("[cuda] parity tests skipped: built without CUDA (make CUDA=1)\n");
}
END_TEST

Suite *suite_cuda(void) {
    Suite *s = suite_create("cuda");
    TCase *tc = tcase_create("parity");
    tcase_add_test(tc, test_cuda_skipped);
    suite_add_tcase(s, tc);
    return s;
}

#endif
