/* test_kernels_conv.c: the CPU gemm, conv2d and dwconv2d kernels against naive references,
 * and their fused forwards (the _ep kernels) against the unfused kernels.
 *
 * Shapes: x (N,H,W,C), w (R,S,C,K) or depthwise (R,S,C,M) with K = C*M, y (N,P,Q,K).
 * The references are the definitions written as plain loops in double precision; the
 * kernels must agree to 1e-5 of the largest reference value.  Backward kernels accumulate,
 * so their outputs start as random data and must end as that data plus the gradient.
 * Every kernel is called directly on a bare sn__dev (no context: sn__fail accepts NULL). */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "testutil.h"
#include "../kernels/kernels.h"

#define TOL 1e-5

/* One test geometry.  pad: PAD_SAME or PAD_VALID resolve as TensorFlow does (SAME puts
 * the odd pixel at the bottom/right); a value >= 0 pads that much on each side and then
 * runs VALID, as slim's conv2d_same does for strided convolutions. */
enum { PAD_SAME = -1, PAD_VALID = -2 };
typedef struct geom {
    int64_t N, H, W, C, K, R, S, sh, sw, dh, dw;
    int pad;
} geom;

static const geom geoms[] = {
    /*N  H   W   C  K  R  S  sh sw dh dw pad */
    {1, 8, 8, 3, 5, 1, 1, 1, 1, 1, 1, PAD_VALID},   /* pointwise: plain GEMM */
    {3, 7, 9, 5, 7, 1, 1, 1, 1, 1, 1, PAD_SAME},    /* pointwise, batch 3 */
    {3, 9, 9, 5, 7, 1, 1, 2, 2, 1, 1, PAD_VALID},   /* strided 1x1: im2col */
    {1, 10, 9, 3, 4, 1, 1, 2, 2, 1, 1, PAD_SAME},
    {3, 8, 8, 5, 7, 3, 3, 1, 1, 1, 1, PAD_SAME},
    {1, 9, 11, 3, 5, 3, 3, 1, 1, 1, 1, PAD_VALID},
    {3, 10, 10, 5, 3, 3, 3, 2, 2, 1, 1, PAD_SAME},  /* asymmetric SAME: 0 top, 1 bottom */
    {3, 11, 11, 3, 7, 3, 3, 2, 2, 1, 1, 1},         /* conv2d_same, stride 2 */
    {1, 13, 13, 3, 5, 5, 5, 3, 3, 1, 1, PAD_SAME},  /* stride 3 */
    {3, 12, 12, 3, 4, 7, 7, 2, 2, 1, 1, 3},         /* ResNet's conv1, scaled down */
    {1, 11, 11, 5, 3, 7, 7, 1, 1, 1, 1, PAD_SAME},
    {3, 9, 9, 5, 7, 1, 7, 1, 1, 1, 1, PAD_SAME},    /* 1x7 */
    {1, 9, 10, 5, 7, 7, 1, 1, 1, 1, 1, PAD_SAME},   /* 7x1 */
    {3, 11, 11, 5, 3, 3, 3, 1, 1, 2, 2, PAD_SAME},  /* dilation 2 */
    {1, 12, 12, 3, 5, 3, 3, 2, 2, 2, 2, PAD_VALID},
    {1, 10, 7, 5, 3, 5, 3, 3, 2, 1, 1, PAD_SAME},   /* unequal strides */
    {3, 6, 6, 4, 6, 3, 3, 1, 1, 1, 1, PAD_VALID},
    {1, 3, 3, 3, 5, 5, 5, 1, 1, 1, 1, PAD_SAME},    /* window larger than the image */
    {3, 5, 5, 3, 3, 3, 3, 3, 3, 1, 1, PAD_SAME},    /* stride 3, asymmetric SAME */
    {1, 7, 7, 5, 3, 3, 3, 2, 2, 1, 1, 2},           /* more padding than SAME */
    {3, 13, 5, 7, 9, 3, 5, 2, 1, 1, 2, PAD_SAME},   /* everything unequal */
    {2, 9, 9, 40, 5, 3, 3, 2, 2, 1, 1, PAD_SAME},   /* C past one depthwise channel block */
    {1, 11, 11, 33, 3, 3, 3, 1, 1, 2, 2, PAD_SAME}, /* one block and one channel, dilated */
};
enum { N_GEOMS = (int)(sizeof geoms / sizeof geoms[0]) };

/* TensorFlow's output size and padding for one axis. */
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

/* The kernel dims of g; M = 0 for a dense convolution, else the depthwise multiplier. */
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

static size_t x_len(const sn__conv2d_dims *cd) {
    return (size_t)(cd->N * cd->H * cd->W * cd->C);
}
static size_t y_len(const sn__conv2d_dims *cd) {
    return (size_t)(cd->N * cd->P * cd->Q * cd->K);
}
static size_t w_len(const sn__conv2d_dims *cd, int depthwise) {
    return (size_t)(cd->R * cd->S * cd->C * (depthwise ? cd->M : cd->K));
}

/* The definitions, in double: y = conv(x, w), dx = d(y.dy)/dx, dw = d(y.dy)/dw, each as a
 * plain sum over every (output cell, tap) pair that reads a real input cell.  The three
 * outputs must start zeroed. */
static void naive_conv(double *y, double *dx, double *dw, const float *x, const float *w,
                       const float *dy, const sn__conv2d_dims *cd, int depthwise) {
    const int64_t C = cd->C, K = cd->K, M = cd->M;
    for (int64_t n = 0; n < cd->N; n++)
    for (int64_t p = 0; p < cd->P; p++)
    for (int64_t q = 0; q < cd->Q; q++)
    for (int64_t r = 0; r < cd->R; r++)
    for (int64_t s = 0; s < cd->S; s++) {
        int64_t h = p * cd->stride_h - cd->pad_top + r * cd->dil_h;
        int64_t wi = q * cd->stride_w - cd->pad_left + s * cd->dil_w;
        if (h < 0 || h >= cd->H || wi < 0 || wi >= cd->W) continue;
        int64_t xo = ((n * cd->H + h) * cd->W + wi) * C;
        int64_t yo = ((n * cd->P + p) * cd->Q + q) * K;
        for (int64_t c = 0; c < C; c++) {
            for (int64_t j = 0; j < (depthwise ? M : K); j++) {
                int64_t k = depthwise ? c * M + j : j;
                int64_t wo = depthwise ? (r * cd->S + s) * K + k
                                       : ((r * cd->S + s) * C + c) * K + k;
                y[yo + k] += (double)x[xo + c] * w[wo];
                dx[xo + c] += (double)dy[yo + k] * w[wo];
                dw[wo] += (double)x[xo + c] * dy[yo + k];
            }
        }
    }
}

/* max |got - (base + ref)| / max |base + ref|; base may be NULL (zero). */
static double rel_err(const float *got, const float *base, const double *ref, size_t n) {
    double diff = 0, scale = 0;
    for (size_t i = 0; i < n; i++) {
        double want = (base ? (double)base[i] : 0.0) + ref[i];
        double e = fabs((double)got[i] - want);
        if (e > diff || e != e) diff = e != e ? INFINITY : e;
        if (fabs(want) > scale) scale = fabs(want);
    }
    return scale > 0 ? diff / scale : diff;
}

static float *rand_buf(size_t n, uint64_t seed) {
    float *p = malloc((n ? n : 1) * sizeof(float));
    ck_assert_ptr_nonnull(p);
    tu_fill(p, n, seed);
    return p;
}

/* Runs fwd, bwd_data and bwd_filter of one geometry (dense when M == 0) with a workspace
 * of ws_bytes (SIZE_MAX: what the _ws kernel asks for) and compares with naive_conv. */
static void check_conv(const geom *g, int64_t M, size_t ws_bytes, int threads, uint64_t seed) {
    int dwise = M > 0;
    sn__conv2d_dims cd = make_dims(g, M);
    size_t nx = x_len(&cd), ny = y_len(&cd), nw = w_len(&cd, dwise);
    float *x = rand_buf(nx, seed), *w = rand_buf(nw, seed + 1), *dy = rand_buf(ny, seed + 2);
    float *dx = rand_buf(nx, seed + 3), *dw = rand_buf(nw, seed + 4);
    float *dx0 = rand_buf(nx, seed + 3), *dw0 = rand_buf(nw, seed + 4);
    float *y = malloc(ny * sizeof(float));
    double *ry = calloc(ny, sizeof(double)), *rdx = calloc(nx, sizeof(double)),
           *rdw = calloc(nw, sizeof(double));
    ck_assert(y && ry && rdx && rdw);
    for (size_t i = 0; i < ny; i++) y[i] = NAN;      /* fwd must overwrite, never read */
    naive_conv(ry, rdx, rdw, x, w, dy, &cd, dwise);

    sn__dev d = {0};
    d.threads = threads;
    if (ws_bytes == SIZE_MAX)
        ck_assert_int_eq((dwise ? sn__dwconv2d_ws_cpu : sn__conv2d_ws_cpu)(&d, &cd, &ws_bytes),
                         SN_OK);
    d.ws = malloc(ws_bytes ? ws_bytes : 1);
    d.ws_bytes = ws_bytes;
    ck_assert_ptr_nonnull(d.ws);

    sn_status st_f, st_d, st_w;
    if (dwise) {
        st_f = sn__dwconv2d_fwd_cpu(&d, y, x, w, &cd);
        st_d = sn__dwconv2d_bwd_data_cpu(&d, dx, dy, w, &cd);
        st_w = sn__dwconv2d_bwd_filter_cpu(&d, dw, dy, x, &cd);
    } else {
        st_f = sn__conv2d_fwd_cpu(&d, y, x, w, &cd);
        st_d = sn__conv2d_bwd_data_cpu(&d, dx, dy, w, 1.0f, &cd);
        st_w = sn__conv2d_bwd_filter_cpu(&d, dw, dy, x, &cd);
    }
    ck_assert_int_eq(st_f, SN_OK);
    ck_assert_int_eq(st_d, SN_OK);
    ck_assert_int_eq(st_w, SN_OK);
    double ef = rel_err(y, NULL, ry, ny), ed = rel_err(dx, dx0, rdx, nx),
           ew = rel_err(dw, dw0, rdw, nw);
    if (!dwise) {   /* beta 0 sets dx without reading it: NaN before, the gradient after */
        for (size_t i = 0; i < nx; i++) dx[i] = NAN;
        ck_assert_int_eq(sn__conv2d_bwd_data_cpu(&d, dx, dy, w, 0.0f, &cd), SN_OK);
        double es = rel_err(dx, NULL, rdx, nx);
        if (es > ed) ed = es;
    }
    ck_assert_msg(ef <= TOL && ed <= TOL && ew <= TOL,
                  "%s M=%lld %lldx%lldx%lldx%lld K=%lld %lldx%lld s%lldx%lld d%lldx%lld "
                  "pad %lld,%lld -> %lldx%lld ws=%zu: fwd %.3g bwd_data %.3g bwd_filter %.3g",
                  dwise ? "dwconv" : "conv", (long long)M, (long long)cd.N, (long long)cd.H,
                  (long long)cd.W, (long long)cd.C, (long long)cd.K, (long long)cd.R,
                  (long long)cd.S, (long long)cd.stride_h, (long long)cd.stride_w,
                  (long long)cd.dil_h, (long long)cd.dil_w, (long long)cd.pad_top,
                  (long long)cd.pad_left, (long long)cd.P, (long long)cd.Q, ws_bytes, ef, ed,
                  ew);
    free(x); free(w); free(dy); free(dx); free(dw); free(dx0); free(dw0); free(y);
    free(ry); free(rdx); free(rdw); free(d.ws);
}

/* Bytes of im2col patches for `lines` output lines of a dense geometry. */
static size_t lines_bytes(const geom *g, int64_t lines) {
    sn__conv2d_dims cd = make_dims(g, 0);
    return (size_t)(lines * cd.Q * cd.R * cd.S * cd.C) * sizeof(float);
}

START_TEST(test_conv_geoms) {
    const geom *g = &geoms[_i];
    check_conv(g, 0, SIZE_MAX, 2, 100 + (uint64_t)_i);
    /* Workspaces of one and two output lines force many chunks, some crossing images. */
    check_conv(g, 0, lines_bytes(g, 1), 2, 200 + (uint64_t)_i);
    check_conv(g, 0, lines_bytes(g, 2) + 7, 2, 300 + (uint64_t)_i);
    check_conv(g, 0, SIZE_MAX, 1, 400 + (uint64_t)_i);
} END_TEST

START_TEST(test_dwconv_geoms) {
    const geom *g = &geoms[_i];
    for (int64_t M = 1; M <= 3; M++)
        check_conv(g, M, SIZE_MAX, 2, 500 + 10 * (uint64_t)_i + (uint64_t)M);
    /* Three threads with room for two accumulators (a double sum and a float line buffer of
     * one filter each): two partitions; room for one: one thread. */
    sn__conv2d_dims cd = make_dims(g, 2);
    size_t part = (size_t)(cd.R * cd.S * cd.K) * (sizeof(double) + sizeof(float));
    check_conv(g, 2, 2 * part + 5, 3, 600 + (uint64_t)_i);
    check_conv(g, 2, SIZE_MAX, 3, 700 + (uint64_t)_i);
    cd = make_dims(g, 1);
    check_conv(g, 1, (size_t)(cd.R * cd.S * cd.K) * (sizeof(double) + sizeof(float)), 2,
               800 + (uint64_t)_i);
} END_TEST

/* The weight gradient is a sum over every output cell (N*P*Q = 18,432 terms here).  Summed
 * in float32 it drifts by ~1e-5 of the result; line sums added in double keep it at float
 * rounding of the result.  Without a workspace for one accumulator it is an error. */
START_TEST(test_dwconv_long_sum) {
    geom g = {2, 96, 96, 8, 8, 3, 3, 1, 1, 1, 1, PAD_SAME};
    sn__conv2d_dims cd = make_dims(&g, 1);
    size_t nx = x_len(&cd), ny = y_len(&cd), nw = w_len(&cd, 1);
    float *x = rand_buf(nx, 31), *dy = rand_buf(ny, 32), *dw = calloc(nw, sizeof(float));
    double *ry = calloc(ny, sizeof(double)), *rdx = calloc(nx, sizeof(double)),
           *rdw = calloc(nw, sizeof(double));
    float *w = rand_buf(nw, 33);
    ck_assert(dw && ry && rdx && rdw);
    /* a bias in x and dy, so the terms do not cancel on average: a long sum of one sign */
    for (size_t i = 0; i < nx; i++) x[i] += 1.0f;
    for (size_t i = 0; i < ny; i++) dy[i] += 1.0f;
    naive_conv(ry, rdx, rdw, x, w, dy, &cd, 1);
    sn__dev d = {0};
    d.threads = 2;
    size_t bytes = 0;
    ck_assert_int_eq(sn__dwconv2d_ws_cpu(&d, &cd, &bytes), SN_OK);
    d.ws = malloc(bytes);
    d.ws_bytes = bytes;
    ck_assert_int_eq(sn__dwconv2d_bwd_filter_cpu(&d, dw, dy, x, &cd), SN_OK);
    double e = rel_err(dw, NULL, rdw, nw);
    ck_assert_msg(e <= 3e-7, "depthwise weight gradient of 18,432 terms: relative error %.3g", e);
    d.ws_bytes = 0;
    ck_assert_int_eq(sn__dwconv2d_bwd_filter_cpu(&d, dw, dy, x, &cd), SN_ERR_INVALID_ARG);
    free(x); free(dy); free(dw); free(w); free(ry); free(rdx); free(rdw); free(d.ws);
} END_TEST

/* The ResNet-50 conv1 geometry at full size, batch 1: the default chunk plan. */
START_TEST(test_conv_resnet_conv1) {
    geom g = {1, 64, 64, 3, 16, 7, 7, 2, 2, 1, 1, 3};
    check_conv(&g, 0, SIZE_MAX, 2, 900);
} END_TEST

START_TEST(test_conv_ws) {
    sn__dev d = {0};
    d.threads = 2;
    size_t bytes = 1;
    sn__conv2d_dims pw = make_dims(&geoms[1], 0);
    ck_assert_int_eq(sn__conv2d_ws_cpu(&d, &pw, &bytes), SN_OK);
    ck_assert_uint_eq(bytes, 0);                     /* pointwise: no patches */
    /* Large layers get a bounded chunk, not the whole batch of patches. */
    geom big = {8, 56, 56, 64, 64, 3, 3, 1, 1, 1, 1, PAD_SAME};
    sn__conv2d_dims cd = make_dims(&big, 0);
    ck_assert_int_eq(sn__conv2d_ws_cpu(&d, &cd, &bytes), SN_OK);
    ck_assert_uint_gt(bytes, 0);
    ck_assert_uint_le(bytes, (size_t)64 << 20);
    ck_assert_uint_lt(bytes, (size_t)(8 * 56 * 56 * 9 * 64) * sizeof(float));
    ck_assert_uint_eq(bytes % lines_bytes(&big, 1), 0);
    sn__conv2d_dims dd = make_dims(&big, 1);
    ck_assert_int_eq(sn__dwconv2d_ws_cpu(&d, &dd, &bytes), SN_OK);
    ck_assert_uint_eq(bytes, (size_t)(2 * 3 * 3 * 64) * (sizeof(double) + sizeof(float)));
} END_TEST

START_TEST(test_conv_bad_args) {
    sn__dev d = {0};
    d.threads = 2;
    float buf[64] = {0};
    d.ws = buf;
    d.ws_bytes = sizeof buf;
    sn__conv2d_dims cd = make_dims(&geoms[4], 0);
    /* A workspace smaller than one output line of patches is an error, not an overrun. */
    ck_assert_int_eq(sn__conv2d_fwd_cpu(&d, buf, buf, buf, &cd), SN_ERR_INVALID_ARG);
    ck_assert_int_eq(sn__conv2d_bwd_data_cpu(&d, buf, buf, buf, 1.0f, &cd), SN_ERR_INVALID_ARG);
    ck_assert_int_eq(sn__conv2d_bwd_filter_cpu(&d, buf, buf, buf, &cd), SN_ERR_INVALID_ARG);
    sn__conv2d_dims bad = cd;
    bad.stride_h = 0;
    size_t bytes;
    ck_assert_int_eq(sn__conv2d_ws_cpu(&d, &bad, &bytes), SN_ERR_INVALID_ARG);
    bad = cd;
    bad.C = -1;
    ck_assert_int_eq(sn__conv2d_fwd_cpu(&d, buf, buf, buf, &bad), SN_ERR_INVALID_ARG);
    sn__conv2d_dims dwb = make_dims(&geoms[4], 2);
    dwb.K = dwb.C * 3;                               /* K must be C*M */
    ck_assert_int_eq(sn__dwconv2d_fwd_cpu(&d, buf, buf, buf, &dwb), SN_ERR_INVALID_ARG);
    ck_assert_int_eq(sn__gemm_cpu(&d, 0, 0, 4, 4, 4, 1.0f, buf, 3, buf, 4, 0.0f, buf, 4),
                     SN_ERR_INVALID_ARG);            /* lda < k */
    ck_assert_int_eq(sn__gemm_cpu(&d, 0, 0, -1, 4, 4, 1.0f, buf, 4, buf, 4, 0.0f, buf, 4),
                     SN_ERR_INVALID_ARG);
} END_TEST

/* Empty sums: C = 0 zeroes y, and nothing else is touched. */
START_TEST(test_conv_empty) {
    sn__dev d = {0};
    d.threads = 2;
    geom g = {1, 4, 4, 0, 3, 3, 3, 1, 1, 1, 1, PAD_SAME};
    sn__conv2d_dims cd = make_dims(&g, 0);
    float y[48], dw[1] = {5.0f};
    for (int i = 0; i < 48; i++) y[i] = NAN;
    ck_assert_int_eq(sn__conv2d_fwd_cpu(&d, y, dw, dw, &cd), SN_OK);
    for (int i = 0; i < 48; i++) ck_assert(y[i] == 0.0f);
    ck_assert_int_eq(sn__conv2d_bwd_filter_cpu(&d, dw, y, y, &cd), SN_OK);
    ck_assert(dw[0] == 5.0f);
} END_TEST

/* C = alpha*op(A)@op(B) + beta*C against a double loop, all four transposes, with leading
 * dimensions wider than the rows.  Three sizes: one small enough for a single OpenBLAS call,
 * and two large enough to be split between threads, by rows (m > n) and by columns. */
START_TEST(test_gemm) {
    static const int64_t sizes[3][3] = {{13, 17, 19}, {157, 37, 211}, {29, 301, 131}};
    int ta = _i & 1, tb = (_i >> 1) & 1;
    const int64_t m = sizes[_i / 4][0], n = sizes[_i / 4][1], k = sizes[_i / 4][2];
    const int64_t lda = (ta ? m : k) + 3, ldb = (tb ? k : n) + 2, ldc = n + 5;
    float *a = rand_buf((size_t)((ta ? k : m) * lda), 1000 + (uint64_t)_i);
    float *b = rand_buf((size_t)((tb ? n : k) * ldb), 1100 + (uint64_t)_i);
    float *c = rand_buf((size_t)(m * ldc), 1200 + (uint64_t)_i);
    float *c0 = rand_buf((size_t)(m * ldc), 1200 + (uint64_t)_i);
    double *ref = calloc((size_t)(m * ldc), sizeof(double));
    ck_assert_ptr_nonnull(ref);
    const float alpha = 0.7f, beta = 0.3f;
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < ldc; j++) {
            if (j >= n) { ref[i * ldc + j] = c0[i * ldc + j]; continue; }  /* untouched */
            double acc = 0;
            for (int64_t l = 0; l < k; l++)
                acc += (double)(ta ? a[l * lda + i] : a[i * lda + l]) *
                       (tb ? b[j * ldb + l] : b[l * ldb + j]);
            ref[i * ldc + j] = alpha * acc + beta * (double)c0[i * ldc + j];
        }
    sn__dev d = {0};
    d.threads = 2;
    ck_assert_int_eq(sn__gemm_cpu(&d, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc),
                     SN_OK);
    double e = rel_err(c, NULL, ref, (size_t)(m * ldc));
    ck_assert_msg(e <= TOL, "gemm %lldx%lldx%lld ta=%d tb=%d: rel err %.3g", (long long)m,
                  (long long)n, (long long)k, ta, tb, e);
    /* beta 0 overwrites: NaN in C must not survive. */
    for (int64_t i = 0; i < m * ldc; i++) c[i] = (i % ldc) < n ? NAN : c0[i];
    ck_assert_int_eq(sn__gemm_cpu(&d, ta, tb, m, n, k, 1.0f, a, lda, b, ldb, 0.0f, c, ldc),
                     SN_OK);
    for (int64_t i = 0; i < m * ldc; i++)
        if ((i % ldc) < n) ref[i] = (ref[i] - beta * (double)c0[i]) / alpha;
    e = rel_err(c, NULL, ref, (size_t)(m * ldc));
    ck_assert_msg(e <= TOL, "gemm beta=0 %lldx%lldx%lld ta=%d tb=%d: rel err %.3g",
                  (long long)m, (long long)n, (long long)k, ta, tb, e);
    free(a); free(b); free(c); free(c0); free(ref);
} END_TEST

/* k = 0: C = beta*C, as BLAS defines the empty product. */
START_TEST(test_gemm_k0) {
    sn__dev d = {0};
    d.threads = 2;
    float c[6] = {1, 2, 3, 4, 5, 6}, dummy = 0.0f;
    ck_assert_int_eq(sn__gemm_cpu(&d, 0, 0, 2, 3, 0, 1.0f, &dummy, 1, &dummy, 3, 0.5f, c, 3),
                     SN_OK);
    for (int i = 0; i < 6; i++) ck_assert(c[i] == 0.5f * (float)(i + 1));
} END_TEST

/* ---- fused forwards (the epilogue of inference nets) ------------------------------------- */

/* The epilogue kinds a net can fold: batch norm with and without gamma/beta, bias, none;
 * with and without a residual; relu, relu6 or no activation by turns.  params holds 4*K
 * floats (gamma, beta, mean, var), res a tensor of the output's size. */
enum { N_EP = 9 };
static sn__epilogue make_ep(int kind, const float *params, const float *res, int64_t K) {
    sn__epilogue ep = {0};
    ep.act = kind % 3;                              /* none, relu, relu6 by turns */
    if (kind == 0 || kind == 1 || kind == 6) {      /* batch norm with gamma and beta */
        ep.gamma = params;
        ep.beta = params + K;
    }
    if (kind <= 2 || kind == 6 || kind == 7) {      /* batch norm */
        ep.mean = params + 2 * K;
        ep.var = params + 3 * K;
        ep.eps = 1e-3f;
    } else if (kind == 3 || kind == 4) {
        ep.bias = params + K;
    }
    if (kind >= 6) ep.residual = res;
    return ep;
}

/* Random epilogue parameters: variances in [0.25, 1.25), the rest in [-2, 2). */
static float *ep_params(int64_t K, uint64_t seed) {
    float *p = rand_buf((size_t)(4 * K), seed);
    for (int64_t c = 0; c < 4 * K; c++) p[c] = c >= 3 * K ? 0.25f + p[c] * p[c] : 2.0f * p[c];
    return p;
}

/* The unfused sequence an inference net would otherwise run on y (rows, K), in place. */
static void ep_unfused(sn__dev *d, float *y, int64_t rows, int64_t K, const sn__epilogue *ep) {
    if (ep->mean)
        ck_assert_int_eq(sn__bn_infer_fwd_cpu(d, y, y, ep->gamma, ep->beta, ep->mean, ep->var,
                                              ep->eps, rows, K), SN_OK);
    else if (ep->bias)
        ck_assert_int_eq(sn__bias_fwd_cpu(d, y, y, ep->bias, rows, K), SN_OK);
    if (ep->residual)
        ck_assert_int_eq(sn__add_fwd_cpu(d, y, ep->residual, y, rows * K), SN_OK);
    if (ep->act == SN__ACT_RELU) ck_assert_int_eq(sn__relu_fwd_cpu(d, y, y, rows * K), SN_OK);
    if (ep->act == SN__ACT_RELU6) ck_assert_int_eq(sn__relu6_fwd_cpu(d, y, y, rows * K), SN_OK);
}

/* conv2d_fwd_ep and dwconv2d_fwd_ep against the forward then the separate kernels (batch
 * norm or bias, add, relu or relu6), for every geometry and epilogue kind, with the full
 * workspace and with one line of it (many chunks).  They perform the same float operations
 * in the same order, so the outputs are identical bit for bit. */
static void check_conv_ep(const geom *g, int64_t M, int kind, size_t ws_bytes, uint64_t seed) {
    int dwise = M > 0;
    sn__conv2d_dims cd = make_dims(g, M);
    size_t nx = x_len(&cd), ny = y_len(&cd), nw = w_len(&cd, dwise);
    float *x = rand_buf(nx, seed), *w = rand_buf(nw, seed + 1), *prm = ep_params(cd.K, seed + 2);
    float *res = rand_buf(ny, seed + 3);
    float *y = malloc((ny ? ny : 1) * sizeof(float)), *ref = malloc((ny ? ny : 1) * sizeof(float));
    ck_assert(y && ref);
    for (size_t i = 0; i < ny; i++) y[i] = NAN;
    sn__dev d = {0};
    d.threads = 2;
    if (ws_bytes == SIZE_MAX)
        ck_assert_int_eq((dwise ? sn__dwconv2d_ws_cpu : sn__conv2d_ws_cpu)(&d, &cd, &ws_bytes),
                         SN_OK);
    d.ws = malloc(ws_bytes ? ws_bytes : 1);
    d.ws_bytes = ws_bytes;
    sn__epilogue ep = make_ep(kind, prm, res, cd.K);
    if (dwise) {
        ck_assert_int_eq(sn__dwconv2d_fwd_cpu(&d, ref, x, w, &cd), SN_OK);
        ck_assert_int_eq(sn__dwconv2d_fwd_ep_cpu(&d, y, x, w, &ep, &cd), SN_OK);
    } else {
        ck_assert_int_eq(sn__conv2d_fwd_cpu(&d, ref, x, w, &cd), SN_OK);
        ck_assert_int_eq(sn__conv2d_fwd_ep_cpu(&d, y, x, w, &ep, &cd), SN_OK);
    }
    ep_unfused(&d, ref, cd.N * cd.P * cd.Q, cd.K, &ep);
    size_t bad = ny;
    for (size_t i = 0; i < ny && bad == ny; i++)
        if (memcmp(&y[i], &ref[i], sizeof(float)) != 0) bad = i;
    ck_assert_msg(bad == ny, "%s M=%lld kind %d ws %zu: element %zu is %.9g fused, %.9g not",
                  dwise ? "dwconv" : "conv", (long long)M, kind, ws_bytes, bad,
                  bad < ny ? (double)y[bad] : 0.0, bad < ny ? (double)ref[bad] : 0.0);
    free(x); free(w); free(prm); free(res); free(y); free(ref); free(d.ws);
}

START_TEST(test_conv_ep) {
    const geom *g = &geoms[_i];
    for (int kind = 0; kind < N_EP; kind++) {
        check_conv_ep(g, 0, kind, SIZE_MAX, 1300 + (uint64_t)(_i * N_EP + kind));
        check_conv_ep(g, 0, kind, lines_bytes(g, 1), 1400 + (uint64_t)(_i * N_EP + kind));
        check_conv_ep(g, 1 + kind % 2, kind, SIZE_MAX, 1500 + (uint64_t)(_i * N_EP + kind));
    }
} END_TEST

/* gemm_ep on products big enough to be split between two threads, by rows and by columns
 * (the second thread's block starts at a channel > 0), and on a small one, against the
 * definition in double; and ep NULL is the plain product, bit for bit. */
START_TEST(test_gemm_ep) {
    static const int64_t sizes[3][3] = {{3000, 64, 40}, {40, 600, 100}, {7, 5, 3}};
    const int64_t m = sizes[_i / N_EP][0], n = sizes[_i / N_EP][1], k = sizes[_i / N_EP][2];
    const int kind = _i % N_EP;
    float *a = rand_buf((size_t)(m * k), 1600 + (uint64_t)_i);
    float *b = rand_buf((size_t)(k * n), 1700 + (uint64_t)_i);
    float *prm = ep_params(n, 1800 + (uint64_t)_i), *res = rand_buf((size_t)(m * n), 1900);
    float *c = malloc((size_t)(m * n) * sizeof(float));
    float *plain = malloc((size_t)(m * n) * sizeof(float));
    double *ref = malloc((size_t)(m * n) * sizeof(double));
    ck_assert(c && plain && ref);
    sn__epilogue ep = make_ep(kind, prm, res, n);
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            double v = 0;
            for (int64_t l = 0; l < k; l++) v += (double)a[i * k + l] * b[l * n + j];
            if (ep.mean)
                v = (v - ep.mean[j]) * (ep.gamma ? ep.gamma[j] : 1.0) /
                    sqrt((double)ep.var[j] + ep.eps) + (ep.beta ? ep.beta[j] : 0.0);
            else if (ep.bias)
                v += ep.bias[j];
            if (ep.residual) v += ep.residual[i * n + j];
            if (ep.act != SN__ACT_NONE) v = v > 0 ? v : 0;
            if (ep.act == SN__ACT_RELU6) v = v < 6 ? v : 6;
            ref[i * n + j] = v;
        }
    sn__dev d = {0};
    d.threads = 2;
    for (int64_t i = 0; i < m * n; i++) c[i] = NAN;
    ck_assert_int_eq(sn__gemm_ep_cpu(&d, c, a, b, &ep, m, n, k), SN_OK);
    double e = rel_err(c, NULL, ref, (size_t)(m * n));
    ck_assert_msg(e <= TOL, "gemm_ep %lldx%lldx%lld kind %d: rel err %.3g", (long long)m,
                  (long long)n, (long long)k, kind, e);
    ck_assert_int_eq(sn__gemm_ep_cpu(&d, c, a, b, NULL, m, n, k), SN_OK);
    ck_assert_int_eq(sn__gemm_cpu(&d, 0, 0, m, n, k, 1.0f, a, k, b, n, 0.0f, plain, n), SN_OK);
    ck_assert(memcmp(c, plain, (size_t)(m * n) * sizeof(float)) == 0);
    free(a); free(b); free(prm); free(res); free(c); free(plain); free(ref);
} END_TEST

/* Empty sums still get the epilogue: k = 0 and C = 0 give act(shift) everywhere; bad sizes
 * are errors. */
START_TEST(test_ep_empty) {
    sn__dev d = {0};
    d.threads = 2;
    static const float want[3] = {0.0f, 2.0f, 6.0f};   /* relu6(bias) */
    float bias[3] = {-1.0f, 2.0f, 7.0f}, c[6], dummy = 0.0f;
    sn__epilogue ep = {0};
    ep.bias = bias;
    ep.act = SN__ACT_RELU6;
    for (int i = 0; i < 6; i++) c[i] = NAN;
    ck_assert_int_eq(sn__gemm_ep_cpu(&d, c, &dummy, &dummy, &ep, 2, 3, 0), SN_OK);
    for (int i = 0; i < 6; i++) ck_assert(c[i] == want[i % 3]);
    ck_assert_int_eq(sn__gemm_ep_cpu(&d, c, &dummy, &dummy, &ep, -1, 3, 2), SN_ERR_INVALID_ARG);
    geom g = {1, 2, 2, 0, 3, 3, 3, 1, 1, 1, 1, PAD_SAME};
    sn__conv2d_dims cd = make_dims(&g, 0);
    float y[12];
    for (int i = 0; i < 12; i++) y[i] = NAN;
    ck_assert_int_eq(sn__conv2d_fwd_ep_cpu(&d, y, &dummy, &dummy, &ep, &cd), SN_OK);
    for (int i = 0; i < 12; i++) ck_assert(y[i] == want[i % 3]);
} END_TEST

Suite *suite_kernels_conv(void) {
    Suite *s = suite_create("kernels_conv");
    TCase *tc = tcase_create("cpu");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_gemm, 0, 12);
    tcase_add_test(tc, test_gemm_k0);
    tcase_add_loop_test(tc, test_conv_geoms, 0, N_GEOMS);
    tcase_add_loop_test(tc, test_dwconv_geoms, 0, N_GEOMS);
    tcase_add_test(tc, test_dwconv_long_sum);
    tcase_add_test(tc, test_conv_resnet_conv1);
    tcase_add_test(tc, test_conv_ws);
    tcase_add_test(tc, test_conv_bad_args);
    tcase_add_test(tc, test_conv_empty);
    tcase_add_loop_test(tc, test_conv_ep, 0, N_GEOMS);
    tcase_add_loop_test(tc, test_gemm_ep, 0, 3 * N_EP);
    tcase_add_test(tc, test_ep_empty);
    suite_add_tcase(s, tc);
    return s;
}
