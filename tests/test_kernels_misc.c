/* test_kernels_misc.c: the CPU kernels other than GEMM and the convolutions.
 * Every forward is compared with a naive double-precision reference on random data and with
 * hand-worked cases; every backward with central differences of its forward (double
 * objective sum(forward * random weights)), starting from a random dx so that a kernel that
 * overwrites instead of accumulating fails.  Shapes are small and odd on purpose; a few
 * larger ones take the OpenMP paths, and test_threads_agree runs every kernel on 1 and 4
 * threads. */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../kernels/kernels.h"
#include "../lib/sn_internal.h"
#include "testutil.h"

/* Finite-difference step, and the tolerance on the relative gradient error (check_grad). */
#define FD_EPS 1e-3
#define FD_TOL 1e-3

static sn__dev cpu_dev(void) {
    sn__dev d = {0};
    d.threads = 2;
    return d;
}

/* n random floats in [-1, 1) (seed 0: zeros); freed with free(). */
static float *frand(size_t n, uint64_t seed) {
    float *p = calloc(n ? n : 1, sizeof *p);
    ck_assert_ptr_nonnull(p);
    if (seed) tu_fill(p, n, seed);
    return p;
}

static float *fdup(const float *src, size_t n) {
    float *p = frand(n, 0);
    memcpy(p, src, n * sizeof *p);
    return p;
}

static double *dalloc(size_t n) {
    double *p = calloc(n ? n : 1, sizeof *p);
    ck_assert_ptr_nonnull(p);
    return p;
}

static double dotw(const float *y, const float *w, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += (double)y[i] * w[i];
    return s;
}

/* Distinct values `gap` apart, shuffled: no ties, and no max changes under a perturbation
 * smaller than gap/2. */
static void fill_distinct(float *p, size_t n, double gap, uint64_t seed) {
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < n; i++) p[i] = (float)(((double)i - (double)n / 2) * gap);
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)((tu_rand(&s) + 1.0f) * 0.5f * (float)i) % i;
        float t = p[i - 1];
        p[i - 1] = p[j];
        p[j] = t;
    }
}

static void check_close(const char *what, const float *got, const double *want, size_t n,
                        double tol) {
    double diff = 0.0, scale = 1.0;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)got[i] - want[i]);
        if (!(e <= diff)) { diff = e; at = i; }
        if (fabs(want[i]) > scale) scale = fabs(want[i]);
    }
    ck_assert_msg(diff / scale <= tol, "%s: element %zu is %.9g, want %.9g (rel err %.3g)",
                  what, at, (double)got[at], want[at], diff / scale);
}

/* The objective of a gradient check: sum(forward(inputs) * weights) in double, with the
 * inputs and weights in the struct behind arg. */
typedef double (*objective_fn)(void *arg);

/* g[i] = d f / d x[i] by central differences; divides by the step actually taken in float. */
static void numeric_grad(double *g, float *x, size_t n, objective_fn f, void *arg) {
    for (size_t i = 0; i < n; i++) {
        float x0 = x[i];
        x[i] = (float)(x0 + FD_EPS);
        double xp = x[i], fp = f(arg);
        x[i] = (float)(x0 - FD_EPS);
        double xm = x[i], fm = f(arg);
        x[i] = x0;
        g[i] = (fp - fm) / (xp - xm);
    }
}

/* The gradient a bwd kernel added (after - before) against the numeric one, relative to
 * max(1, max|numeric|) as tu_max_rel_err does: the float forward leaves about 1e-4 of noise
 * in a central difference with step 1e-3, too much for a purely relative test of small
 * gradients. */
static void check_grad(const char *what, const float *after, const float *before,
                       const double *num, size_t n, double tol) {
    double diff = 0.0, scale = 1.0;
    size_t at = 0;
    for (size_t i = 0; i < n; i++)
        if (fabs(num[i]) > scale) scale = fabs(num[i]);
    for (size_t i = 0; i < n; i++) {
        double e = fabs(((double)after[i] - before[i]) - num[i]);
        if (!(e <= diff)) { diff = e; at = i; }
    }
    ck_assert_msg(diff / scale <= tol,
                  "%s: gradient %zu: analytic %.7g, numeric %.7g (err %.3g of scale %.3g)", what,
                  at, (double)after[at] - before[at], num[at], diff, scale);
}

/* Runs a bwd kernel's result check for one input: x is perturbed in place. */
static void gradcheck_input(const char *what, float *x, size_t n, const float *dx_after,
                            const float *dx_before, objective_fn f, void *arg, double tol) {
    double *num = dalloc(n);
    numeric_grad(num, x, n, f, arg);
    check_grad(what, dx_after, dx_before, num, n, tol);
    free(num);
}

/* ---- memory --------------------------------------------------------------------------- */

START_TEST(test_memory) {
    sn__dev d = cpu_dev();
    size_t sizes[] = {0, 1, 100, 4096};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        void *p = NULL;
        ck_assert_int_eq(sn__alloc_cpu(&d, &p, sizes[k]), SN_OK);
        ck_assert_ptr_nonnull(p);
        ck_assert_uint_eq((uintptr_t)p % 64, 0);
        ck_assert_int_eq(sn__free_cpu(&d, p), SN_OK);
    }
    ck_assert_int_eq(sn__free_cpu(&d, NULL), SN_OK);

    float host[37], back[37];
    void *va = NULL, *vb = NULL;
    tu_fill(host, 37, 1);
    ck_assert_int_eq(sn__alloc_cpu(&d, &va, sizeof host), SN_OK);
    ck_assert_int_eq(sn__alloc_cpu(&d, &vb, sizeof host), SN_OK);
    float *a = va, *b = vb;
    ck_assert_int_eq(sn__to_dev_cpu(&d, a, host, sizeof host), SN_OK);
    ck_assert_int_eq(sn__copy_cpu(&d, b, a, sizeof host), SN_OK);
    ck_assert_int_eq(sn__copy_cpu(&d, b, b, sizeof host), SN_OK);
    ck_assert_int_eq(sn__to_host_cpu(&d, back, b, sizeof host), SN_OK);
    ck_assert_int_eq(sn__sync_cpu(&d), SN_OK);
    ck_assert_mem_eq(back, host, sizeof host);
    ck_assert_int_eq(sn__zero_cpu(&d, b + 1, 5 * sizeof(float)), SN_OK);
    ck_assert_int_eq(sn__to_host_cpu(&d, back, b, sizeof host), SN_OK);
    for (int i = 0; i < 37; i++) ck_assert(back[i] == (i >= 1 && i < 6 ? 0.0f : host[i]));
    ck_assert_int_eq(sn__to_dev_cpu(&d, a, host, 0), SN_OK);
    sn__free_cpu(&d, a);
    sn__free_cpu(&d, b);
}
END_TEST

START_TEST(test_memory_nomem) {
    sn__dev d = cpu_dev();
    struct sn_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    d.ctx = &ctx;
    void *p = &d;
    ck_assert_int_eq(sn__alloc_cpu(&d, &p, SIZE_MAX - 8), SN_ERR_NOMEM);
    ck_assert_ptr_null(p);
    char want[64];
    snprintf(want, sizeof want, "%zu bytes", (size_t)(SIZE_MAX - 8));
    ck_assert_ptr_nonnull(strstr(ctx.errmsg, want));
}
END_TEST

/* ---- pooling --------------------------------------------------------------------------- */

/* TF's SAME (pad_before = floor(total/2), the rest after) or VALID geometry. */
static sn__pool_dims pool_geom(int64_t N, int64_t H, int64_t W, int64_t C, int64_t R, int64_t S,
                               int64_t sh, int64_t sw, int same) {
    sn__pool_dims pd = {.N = N, .H = H, .W = W, .C = C, .R = R, .S = S,
                        .stride_h = sh, .stride_w = sw};
    if (same) {
        pd.P = (H + sh - 1) / sh;
        pd.Q = (W + sw - 1) / sw;
        int64_t ph = (pd.P - 1) * sh + R - H, pw = (pd.Q - 1) * sw + S - W;
        pd.pad_top = ph > 0 ? ph / 2 : 0;
        pd.pad_left = pw > 0 ? pw / 2 : 0;
    } else {
        pd.P = (H - R) / sh + 1;
        pd.Q = (W - S) / sw + 1;
    }
    return pd;
}

static const struct pool_case {
    int64_t N, H, W, C, R, S, sh, sw;
    int same;
} pool_cases[] = {
    {2, 7, 7, 3, 3, 3, 2, 2, 0},   /* VALID */
    {1, 7, 6, 5, 3, 3, 2, 2, 1},   /* SAME, W padded 0 left and 1 right */
    {3, 5, 5, 7, 3, 3, 1, 1, 1},   /* SAME stride 1: Inception's 3x3 pools */
    {2, 8, 9, 3, 2, 2, 2, 2, 1},   /* SAME 2x2, only W padded */
    {1, 9, 8, 5, 3, 2, 2, 1, 1},   /* rectangular window and strides */
    {2, 6, 7, 3, 1, 1, 2, 2, 0},   /* 1x1 stride 2: resnet's subsample */
    {1, 5, 9, 17, 3, 3, 2, 2, 1},  /* C > one channel block */
    {4, 33, 31, 24, 3, 3, 2, 2, 1}, /* big enough for the parallel path: no finite differences */
};
enum { N_POOL_CASES = sizeof pool_cases / sizeof pool_cases[0] };

static sn__pool_dims pool_case_dims(int i) {
    const struct pool_case *c = &pool_cases[i];
    return pool_geom(c->N, c->H, c->W, c->C, c->R, c->S, c->sh, c->sw, c->same);
}

static size_t pool_in_n(const sn__pool_dims *pd) { return (size_t)(pd->N * pd->H * pd->W * pd->C); }
static size_t pool_out_n(const sn__pool_dims *pd) {
    return (size_t)(pd->N * pd->P * pd->Q * pd->C);
}

/* The naive pool: explicit bounds test per tap, in double. */
static void pool_ref(double *y, const float *x, const sn__pool_dims *pd, int is_max) {
    for (int64_t n = 0; n < pd->N; n++)
        for (int64_t p = 0; p < pd->P; p++)
            for (int64_t q = 0; q < pd->Q; q++)
                for (int64_t c = 0; c < pd->C; c++) {
                    double acc = is_max ? -INFINITY : 0.0;
                    int count = 0;
                    for (int64_t r = 0; r < pd->R; r++)
                        for (int64_t s = 0; s < pd->S; s++) {
                            int64_t h = p * pd->stride_h - pd->pad_top + r;
                            int64_t w = q * pd->stride_w - pd->pad_left + s;
                            if (h < 0 || h >= pd->H || w < 0 || w >= pd->W) continue;
                            double v = x[((n * pd->H + h) * pd->W + w) * pd->C + c];
                            acc = is_max ? (v > acc ? v : acc) : acc + v;
                            count++;
                        }
                    y[((n * pd->P + p) * pd->Q + q) * pd->C + c] = is_max ? acc : acc / count;
                }
}

/* The naive pool backward: max routes to the first strictly greater in-bounds tap. */
static void pool_bwd_ref(double *dx, const float *dy, const float *x, const sn__pool_dims *pd,
                         int is_max) {
    for (int64_t n = 0; n < pd->N; n++)
        for (int64_t p = 0; p < pd->P; p++)
            for (int64_t q = 0; q < pd->Q; q++)
                for (int64_t c = 0; c < pd->C; c++) {
                    int64_t at = -1, count = 0;
                    for (int64_t r = 0; r < pd->R; r++)
                        for (int64_t s = 0; s < pd->S; s++) {
                            int64_t h = p * pd->stride_h - pd->pad_top + r;
                            int64_t w = q * pd->stride_w - pd->pad_left + s;
                            if (h >= 0 && h < pd->H && w >= 0 && w < pd->W) count++;
                        }
                    double g = dy[((n * pd->P + p) * pd->Q + q) * pd->C + c];
                    for (int64_t r = 0; r < pd->R; r++)
                        for (int64_t s = 0; s < pd->S; s++) {
                            int64_t h = p * pd->stride_h - pd->pad_top + r;
                            int64_t w = q * pd->stride_w - pd->pad_left + s;
                            if (h < 0 || h >= pd->H || w < 0 || w >= pd->W) continue;
                            int64_t i = ((n * pd->H + h) * pd->W + w) * pd->C + c;
                            if (!is_max) dx[i] += g / count;
                            else if (at < 0 || x[i] > x[at]) at = i;
                        }
                    if (is_max) dx[at] += g;
                }
}

START_TEST(test_pool_fwd) {
    sn__dev d = cpu_dev();
    for (int i = 0; i < N_POOL_CASES; i++) {
        sn__pool_dims pd = pool_case_dims(i);
        size_t nx = pool_in_n(&pd), ny = pool_out_n(&pd);
        float *x = frand(nx, 10 + i), *y = frand(ny, 99);
        double *want = dalloc(ny);
        ck_assert_int_eq(sn__maxpool_fwd_cpu(&d, y, x, &pd), SN_OK);
        pool_ref(want, x, &pd, 1);
        check_close("maxpool_fwd", y, want, ny, 0.0);
        ck_assert_int_eq(sn__avgpool_fwd_cpu(&d, y, x, &pd), SN_OK);
        pool_ref(want, x, &pd, 0);
        check_close("avgpool_fwd", y, want, ny, 1e-6);

        /* Backward against the naive one, from a random dx; x gets ties to route. */
        float *dy = frand(ny, 70 + i), *dx = frand(nx, 80 + i);
        double *wdx = dalloc(nx);
        for (size_t j = 0; j < nx; j++) x[j] = roundf(x[j] * 4.0f);
        for (int is_max = 0; is_max < 2; is_max++) {
            float *dx0 = fdup(dx, nx);
            for (size_t j = 0; j < nx; j++) wdx[j] = dx0[j];
            pool_bwd_ref(wdx, dy, x, &pd, is_max);
            if (is_max) ck_assert_int_eq(sn__maxpool_bwd_cpu(&d, dx0, dy, x, &pd), SN_OK);
            else ck_assert_int_eq(sn__avgpool_bwd_cpu(&d, dx0, dy, &pd), SN_OK);
            check_close(is_max ? "maxpool_bwd" : "avgpool_bwd", dx0, wdx, nx, 1e-6);
            free(dx0);
        }
        free(x), free(y), free(want), free(dy), free(dx), free(wdx);
    }
}
END_TEST

/* 1x1 windows without padding take the strided-copy path (pool.c); it must give the general
 * definition bit for bit: forward max and average (a -0 input stays -0 under max and becomes
 * +0 under the average, 0 + x), and the backwards from a zero dx (dy lands on the sampled
 * cells, nothing elsewhere) and from a random one.  Odd sizes, unequal strides, stride 1,
 * C = 1, and a case big enough for the threaded loop. */
START_TEST(test_pool_subsample) {
    static const struct pool_case cases[] = {
        {2, 6, 7, 3, 1, 1, 2, 2, 0}, {1, 7, 7, 5, 1, 1, 2, 2, 1}, {2, 9, 10, 3, 1, 1, 3, 2, 0},
        {1, 4, 5, 1, 1, 1, 1, 1, 1}, {8, 28, 28, 64, 1, 1, 2, 2, 1},
    };
    sn__dev d = cpu_dev();
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct pool_case *c = &cases[i];
        sn__pool_dims pd = pool_geom(c->N, c->H, c->W, c->C, 1, 1, c->sh, c->sw, c->same);
        size_t nx = pool_in_n(&pd), ny = pool_out_n(&pd);
        float *x = frand(nx, 30 + i), *y = frand(ny, 0), *dy = frand(ny, 40 + i);
        float *dx = frand(nx, 0), *dxr = frand(nx, 50 + i), *dxr0 = fdup(dxr, nx);
        double *want = dalloc(ny), *wdx = dalloc(nx);
        x[0] = -0.0f;
        for (int is_max = 0; is_max < 2; is_max++) {
            if (is_max) ck_assert_int_eq(sn__maxpool_fwd_cpu(&d, y, x, &pd), SN_OK);
            else ck_assert_int_eq(sn__avgpool_fwd_cpu(&d, y, x, &pd), SN_OK);
            pool_ref(want, x, &pd, is_max);
            for (size_t j = 0; j < ny; j++) {
                float w = (float)want[j];
                ck_assert_msg(memcmp(&y[j], &w, sizeof w) == 0, "case %zu %s: y[%zu] = %.9g, "
                              "want %.9g", i, is_max ? "max" : "avg", j, (double)y[j],
                              (double)w);
            }
            memset(dx, 0, nx * sizeof *dx);
            memset(wdx, 0, nx * sizeof *wdx);
            pool_bwd_ref(wdx, dy, x, &pd, is_max);
            if (is_max) ck_assert_int_eq(sn__maxpool_bwd_cpu(&d, dx, dy, x, &pd), SN_OK);
            else ck_assert_int_eq(sn__avgpool_bwd_cpu(&d, dx, dy, &pd), SN_OK);
            check_close(is_max ? "maxpool_bwd 1x1" : "avgpool_bwd 1x1", dx, wdx, nx, 0.0);
            memcpy(dxr, dxr0, nx * sizeof *dxr);
            for (size_t j = 0; j < nx; j++) wdx[j] = dxr0[j];
            pool_bwd_ref(wdx, dy, x, &pd, is_max);
            if (is_max) ck_assert_int_eq(sn__maxpool_bwd_cpu(&d, dxr, dy, x, &pd), SN_OK);
            else ck_assert_int_eq(sn__avgpool_bwd_cpu(&d, dxr, dy, &pd), SN_OK);
            check_close(is_max ? "maxpool_bwd 1x1 +=" : "avgpool_bwd 1x1 +=", dxr, wdx, nx,
                        1e-7);
        }
        free(x), free(y), free(dy), free(dx), free(dxr), free(dxr0), free(want), free(wdx);
    }
}
END_TEST

/* 3x3 stride 1 SAME on a 3x3 image of 0..8: the avg corners divide by 4, edges by 6. */
START_TEST(test_pool_same_hand) {
    sn__dev d = cpu_dev();
    sn__pool_dims pd = pool_geom(1, 3, 3, 1, 3, 3, 1, 1, 1);
    ck_assert_int_eq(pd.pad_top, 1);
    float x[9], y[9];
    for (int i = 0; i < 9; i++) x[i] = (float)i;
    const float avg[9] = {2, 2.5f, 3, 3.5f, 4, 4.5f, 5, 5.5f, 6};
    const float max[9] = {4, 5, 5, 7, 8, 8, 7, 8, 8};
    ck_assert_int_eq(sn__avgpool_fwd_cpu(&d, y, x, &pd), SN_OK);
    for (int i = 0; i < 9; i++) ck_assert_float_eq_tol(y[i], avg[i], 1e-6f);
    ck_assert_int_eq(sn__maxpool_fwd_cpu(&d, y, x, &pd), SN_OK);
    for (int i = 0; i < 9; i++) ck_assert_float_eq(y[i], max[i]);
    /* avg backward: each cell gets the sum of 1/count over the windows covering it. */
    float dx[9] = {0}, dy[9];
    for (int i = 0; i < 9; i++) dy[i] = 1.0f;
    ck_assert_int_eq(sn__avgpool_bwd_cpu(&d, dx, dy, &pd), SN_OK);
    ck_assert_float_eq_tol(dx[0], 1 / 4.f + 2 / 6.f + 1 / 9.f, 1e-6f);
    ck_assert_float_eq_tol(dx[4], 4 / 4.f + 4 / 6.f + 1 / 9.f, 1e-6f);
}
END_TEST

/* Ties go to the first maximal cell in row-major window order. */
START_TEST(test_maxpool_ties) {
    sn__dev d = cpu_dev();
    /* One 2x2 window, two channels: ch0 {0.5, 2, 2, 2} -> cell 1, ch1 {3, 3, -1, 3} -> 0. */
    sn__pool_dims pd = pool_geom(1, 2, 2, 2, 2, 2, 2, 2, 0);
    const float x[8] = {0.5f, 3, 2, 3, 2, -1, 2, 3};
    float dx[8] = {0}, dy[2] = {1, 10};
    ck_assert_int_eq(sn__maxpool_bwd_cpu(&d, dx, dy, x, &pd), SN_OK);
    const float want[8] = {0, 10, 1, 0, 0, 0, 0, 0};
    for (int i = 0; i < 8; i++) ck_assert_float_eq(dx[i], want[i]);

    /* 3x3 stride 1 SAME over a constant 3x3 image: output (p,q) routes to its first
     * in-bounds cell (max(p-1,0), max(q-1,0)). */
    pd = pool_geom(1, 3, 3, 1, 3, 3, 1, 1, 1);
    float xc[9], dxc[9] = {0}, dyc[9];
    for (int i = 0; i < 9; i++) xc[i] = 1.0f, dyc[i] = 1.0f;
    ck_assert_int_eq(sn__maxpool_bwd_cpu(&d, dxc, dyc, xc, &pd), SN_OK);
    const float wantc[9] = {4, 2, 0, 2, 1, 0, 0, 0, 0};
    for (int i = 0; i < 9; i++) ck_assert_float_eq(dxc[i], wantc[i]);
}
END_TEST

struct pool_obj {
    sn__dev *d;
    const sn__pool_dims *pd;
    float *x, *y;
    const float *w;
    int is_max;
};

static double pool_objective(void *arg) {
    struct pool_obj *o = arg;
    if (o->is_max) sn__maxpool_fwd_cpu(o->d, o->y, o->x, o->pd);
    else sn__avgpool_fwd_cpu(o->d, o->y, o->x, o->pd);
    return dotw(o->y, o->w, pool_out_n(o->pd));
}

START_TEST(test_pool_grad) {
    sn__dev d = cpu_dev();
    for (int i = 0; i < N_POOL_CASES; i++) {
        sn__pool_dims pd = pool_case_dims(i);
        size_t nx = pool_in_n(&pd), ny = pool_out_n(&pd);
        if (nx > 2000) continue;   /* the big case is checked against pool_bwd_ref */
        for (int is_max = 0; is_max < 2; is_max++) {
            float *x = frand(nx, 20 + i), *y = frand(ny, 0), *dy = frand(ny, 30 + i);
            if (is_max) fill_distinct(x, nx, 1e-2, 40 + i);
            float *dx0 = frand(nx, 50 + i), *dx = fdup(dx0, nx);
            if (is_max) ck_assert_int_eq(sn__maxpool_bwd_cpu(&d, dx, dy, x, &pd), SN_OK);
            else ck_assert_int_eq(sn__avgpool_bwd_cpu(&d, dx, dy, &pd), SN_OK);
            struct pool_obj o = {&d, &pd, x, y, dy, is_max};
            gradcheck_input(is_max ? "maxpool_bwd" : "avgpool_bwd", x, nx, dx, dx0,
                            pool_objective, &o, FD_TOL);
            free(x), free(y), free(dy), free(dx0), free(dx);
        }
    }
}
END_TEST

/* ---- batch norm ------------------------------------------------------------------------ */

static void bn_ref(double *y, double *mean, double *var, const float *x, const float *gamma,
                   const float *beta, double eps, int64_t rows, int64_t C) {
    for (int64_t c = 0; c < C; c++) {
        double s = 0, ss = 0;
        for (int64_t r = 0; r < rows; r++) s += x[r * C + c];
        mean[c] = s / rows;
        for (int64_t r = 0; r < rows; r++) ss += pow(x[r * C + c] - mean[c], 2);
        var[c] = ss / rows;
    }
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < C; c++)
            y[r * C + c] = (gamma ? gamma[c] : 1.0) * (x[r * C + c] - mean[c]) /
                               sqrt(var[c] + eps) + (beta ? beta[c] : 0.0);
}

/* rows > 256 spans several row tiles; 1100 x 20 takes the parallel path. */
static const int64_t bn_shapes[][2] = {{37, 5}, {50, 19}, {1, 3}, {12, 33}, {600, 19},
                                       {1100, 20}};

START_TEST(test_bn_train_fwd) {
    sn__dev d = cpu_dev();
    for (size_t k = 0; k < sizeof bn_shapes / sizeof bn_shapes[0]; k++) {
        int64_t rows = bn_shapes[k][0], C = bn_shapes[k][1];
        size_t n = (size_t)(rows * C);
        /* An offset of 3 exercises the two-pass variance. */
        float *x = frand(n, 60 + k), *y = frand(n, 0), *g = frand(C, 61), *b = frand(C, 62);
        float *mean = frand(C, 0), *var = frand(C, 0);
        for (size_t i = 0; i < n; i++) x[i] += 3.0f;
        double *wy = dalloc(n), *wm = dalloc(C), *wv = dalloc(C);
        for (int affine = 0; affine < 2; affine++) {
            const float *gg = affine ? g : NULL, *bb = affine ? b : NULL;
            ck_assert_int_eq(sn__bn_train_fwd_cpu(&d, y, mean, var, x, gg, bb, 1e-3f, rows, C),
                             SN_OK);
            bn_ref(wy, wm, wv, x, gg, bb, 1e-3, rows, C);
            check_close("bn_train_fwd mean", mean, wm, C, 1e-6);
            check_close("bn_train_fwd var", var, wv, C, 1e-6);
            check_close("bn_train_fwd y", y, wy, n, 1e-5);
        }
        free(x), free(y), free(g), free(b), free(mean), free(var), free(wy), free(wm), free(wv);
    }
}
END_TEST

struct bn_obj {
    sn__dev *d;
    float *y, *mean, *var, *x, *gamma, *beta;
    const float *w;
    int64_t rows, C;
    int train;
};

static double bn_objective(void *arg) {
    struct bn_obj *o = arg;
    if (o->train)
        sn__bn_train_fwd_cpu(o->d, o->y, o->mean, o->var, o->x, o->gamma, o->beta, 1e-3f,
                             o->rows, o->C);
    else
        sn__bn_infer_fwd_cpu(o->d, o->y, o->x, o->gamma, o->beta, o->mean, o->var, 1e-3f,
                             o->rows, o->C);
    return dotw(o->y, o->w, (size_t)(o->rows * o->C));
}

/* Gradients of bn_{train,infer}_fwd w.r.t. x, gamma and beta; `affine` 0 passes NULL gamma,
 * beta, dgamma and dbeta. */
static void bn_gradcheck(int train, int affine, int64_t rows, int64_t C, uint64_t seed) {
    sn__dev d = cpu_dev();
    size_t n = (size_t)(rows * C);
    float *x = frand(n, seed), *y = frand(n, 0), *dy = frand(n, seed + 1);
    float *g = affine ? frand(C, seed + 2) : NULL, *b = affine ? frand(C, seed + 3) : NULL;
    float *mean = frand(C, seed + 4), *var = frand(C, seed + 5);
    for (int64_t c = 0; c < C; c++) var[c] = 0.3f + fabsf(var[c]);
    if (g) for (int64_t c = 0; c < C; c++) g[c] += 1.5f;
    float *dx0 = frand(n, seed + 6), *dx = fdup(dx0, n);
    float *dg0 = frand(C, seed + 7), *dg = fdup(dg0, C), *db0 = frand(C, seed + 8);
    float *db = fdup(db0, C);
    if (train) {
        ck_assert_int_eq(sn__bn_train_fwd_cpu(&d, y, mean, var, x, g, b, 1e-3f, rows, C), SN_OK);
        ck_assert_int_eq(sn__bn_train_bwd_cpu(&d, dx, affine ? dg : NULL, affine ? db : NULL,
                                              dy, x, g, mean, var, 1e-3f, rows, C), SN_OK);
    } else {
        ck_assert_int_eq(sn__bn_infer_bwd_cpu(&d, dx, affine ? dg : NULL, affine ? db : NULL,
                                              dy, x, g, mean, var, 1e-3f, rows, C), SN_OK);
    }
    struct bn_obj o = {&d, y, mean, var, x, g, b, dy, rows, C, train};
    const char *what = train ? "bn_train_bwd" : "bn_infer_bwd";
    gradcheck_input(what, x, n, dx, dx0, bn_objective, &o, FD_TOL);
    if (affine) {
        gradcheck_input(what, g, C, dg, dg0, bn_objective, &o, FD_TOL);
        gradcheck_input(what, b, C, db, db0, bn_objective, &o, FD_TOL);
    }
    free(x), free(y), free(dy), free(g), free(b), free(mean), free(var);
    free(dx0), free(dx), free(dg0), free(dg), free(db0), free(db);
}

START_TEST(test_bn_train_grad) {
    bn_gradcheck(1, 1, 12, 3, 70);
    bn_gradcheck(1, 0, 7, 5, 80);
    bn_gradcheck(1, 1, 9, 18, 90);
    bn_gradcheck(1, 1, 2, 7, 100);
}
END_TEST

START_TEST(test_bn_infer) {
    sn__dev d = cpu_dev();
    int64_t rows = 23, C = 17;
    size_t n = (size_t)(rows * C);
    float *x = frand(n, 110), *y = frand(n, 0), *g = frand(C, 111), *b = frand(C, 112);
    float *mean = frand(C, 113), *var = frand(C, 114);
    for (int64_t c = 0; c < C; c++) var[c] = 0.1f + fabsf(var[c]);
    double *want = dalloc(n);
    for (int affine = 0; affine < 2; affine++) {
        const float *gg = affine ? g : NULL, *bb = affine ? b : NULL;
        ck_assert_int_eq(sn__bn_infer_fwd_cpu(&d, y, x, gg, bb, mean, var, 1e-3f, rows, C),
                         SN_OK);
        for (int64_t r = 0; r < rows; r++)
            for (int64_t c = 0; c < C; c++)
                want[r * C + c] = (gg ? gg[c] : 1.0) * (x[r * C + c] - (double)mean[c]) /
                                      sqrt(var[c] + 1e-3) + (bb ? bb[c] : 0.0);
        check_close("bn_infer_fwd", y, want, n, 1e-6);
    }
    free(x), free(y), free(g), free(b), free(mean), free(var), free(want);
    bn_gradcheck(0, 1, 11, 5, 120);
    bn_gradcheck(0, 0, 6, 19, 130);
}
END_TEST

/* bn_train_bwd at a size that takes the parallel path, against the formula in double. */
START_TEST(test_bn_train_bwd_large) {
    sn__dev d = cpu_dev();
    int64_t rows = 1500, C = 21;
    size_t n = (size_t)(rows * C);
    float *x = frand(n, 300), *y = frand(n, 0), *dy = frand(n, 301), *g = frand(C, 302);
    float *mean = frand(C, 0), *var = frand(C, 0), *dx = frand(n, 303), *dg = frand(C, 304);
    float *db = frand(C, 305);
    double *wdx = dalloc(n), *wdg = dalloc(C), *wdb = dalloc(C);
    ck_assert_int_eq(sn__bn_train_fwd_cpu(&d, y, mean, var, x, g, NULL, 1e-3f, rows, C), SN_OK);
    for (int64_t c = 0; c < C; c++) {
        double is = 1.0 / sqrt(var[c] + 1e-3), sdy = 0, sdyx = 0;
        for (int64_t r = 0; r < rows; r++) {
            sdy += dy[r * C + c];
            sdyx += dy[r * C + c] * (x[r * C + c] - (double)mean[c]) * is;
        }
        for (int64_t r = 0; r < rows; r++) {
            double xhat = (x[r * C + c] - (double)mean[c]) * is;
            wdx[r * C + c] = dx[r * C + c] + g[c] * is * (dy[r * C + c] - sdy / rows -
                                                           xhat * sdyx / rows);
        }
        wdg[c] = dg[c] + sdyx;
        wdb[c] = db[c] + sdy;
    }
    ck_assert_int_eq(sn__bn_train_bwd_cpu(&d, dx, dg, db, dy, x, g, mean, var, 1e-3f, rows, C),
                     SN_OK);
    check_close("bn_train_bwd dx", dx, wdx, n, 1e-5);
    check_close("bn_train_bwd dgamma", dg, wdg, C, 1e-5);
    check_close("bn_train_bwd dbeta", db, wdb, C, 1e-5);
    free(x), free(y), free(dy), free(g), free(mean), free(var), free(dx), free(dg), free(db);
    free(wdx), free(wdg), free(wdb);
}
END_TEST

/* The fused training chain (bn_train_fwd_ep, bn_train_bwd_ep) against the unfused kernel
 * sequence a training net runs: bn_train_fwd -> add_fwd -> relu_fwd/relu6_fwd forward, and
 * backward relu_bwd/relu6_bwd into a zeroed buffer -> add_bwd (accum into a zeroed buffer and
 * into the residual's) -> bn_train_bwd.  Bit for bit, for every residual/act combination,
 * with and without gamma/beta, odd C and C % 4 == 0, serial and parallel sizes.  Channels 0
 * and 1 are constant (bn gives exactly beta), beta 0 and 6 there, so the
 * activations' kinks are hit exactly; with a residual, some elements are made to sum to
 * exactly 0 or 6; dy holds -0.0 entries.  No finite-difference check is needed: the fused
 * kernels are the unfused ones' operations, whose gradients test_bn_train_grad and
 * test_relu check. */
START_TEST(test_bn_train_ep_bit_exact) {
    sn__dev d = cpu_dev();
    const int64_t shapes[][2] = {{37, 5}, {50, 12}, {300, 64}, {1, 3}};
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        int64_t rows = shapes[si][0], C = shapes[si][1];
        size_t n = (size_t)(rows * C);
        uint64_t s = 900 + 10 * si;
        float *x = frand(n, s), *dy = frand(n, s + 1), *g = frand(C, s + 2);
        float *b = frand(C, s + 3), *res = frand(n, s + 4);
        for (int64_t c = 0; c < C; c++) g[c] = 1.0f + 0.5f * g[c];
        b[0] = 0.0f;
        if (C > 1) b[1] = 6.0f;
        for (int64_t r = 0; r < rows; r++) {
            x[r * C] = 0.75f;                 /* constant channels: bn gives beta */
            if (C > 1) x[r * C + 1] = 0.5f;
        }
        for (size_t e = 0; e < n; e += 7) dy[e] = -0.0f;
        /* Make some sums exactly 0 and 6: residual = target - bn(x) where that is exact. */
        float *ybn = frand(n, 0), *mean = frand(C, 0), *var = frand(C, 0);
        ck_assert_int_eq(sn__bn_train_fwd_cpu(&d, ybn, mean, var, x, g, b, 1e-3f, rows, C),
                         SN_OK);
        for (size_t e = 0; e < n; e += 5) res[e] = (e / 5) % 2 ? 6.0f - ybn[e] : -ybn[e];
        for (int with = 0; with < 2; with++) {
            const float *gg = with ? g : NULL, *bb = with ? b : NULL;
            for (int has_res = 0; has_res < 2; has_res++) {
                for (int act = SN__ACT_NONE; act <= SN__ACT_RELU6; act++) {
                    char what[96];
                    snprintf(what, sizeof what, "rows=%lld C=%lld gamma/beta=%d res=%d act=%d",
                             (long long)rows, (long long)C, with, has_res, act);
                    const float *r = has_res ? res : NULL;
                    /* Unfused forward. */
                    float *y1 = frand(n, 0), *m1 = frand(C, 0), *v1 = frand(C, 0);
                    float *t = frand(n, 0), *y2 = frand(n, 0), *m2 = frand(C, 0);
                    float *v2 = frand(C, 0);
                    ck_assert_int_eq(sn__bn_train_fwd_cpu(&d, y1, m1, v1, x, gg, bb, 1e-3f,
                                                          rows, C), SN_OK);
                    if (r) {
                        ck_assert_int_eq(sn__add_fwd_cpu(&d, t, r, y1, (int64_t)n), SN_OK);
                        memcpy(y1, t, n * sizeof *t);
                    }
                    if (act == SN__ACT_RELU)
                        ck_assert_int_eq(sn__relu_fwd_cpu(&d, y1, y1, (int64_t)n), SN_OK);
                    if (act == SN__ACT_RELU6)
                        ck_assert_int_eq(sn__relu6_fwd_cpu(&d, y1, y1, (int64_t)n), SN_OK);
                    ck_assert_int_eq(sn__bn_train_fwd_ep_cpu(&d, y2, m2, v2, x, gg, bb, 1e-3f,
                                                             r, act, rows, C), SN_OK);
                    ck_assert_msg(memcmp(m1, m2, C * sizeof *m1) == 0, "%s: mean", what);
                    ck_assert_msg(memcmp(v1, v2, C * sizeof *v1) == 0, "%s: var", what);
                    ck_assert_msg(memcmp(y1, y2, n * sizeof *y1) == 0, "%s: y", what);
                    if (with) {   /* the kinks were hit: pre-activation values 0 and 6 */
                        const float *pre = r ? t : ybn;
                        size_t at0 = 0, at6 = 0;
                        for (size_t e = 0; e < n; e++) {
                            at0 += pre[e] == 0.0f;
                            at6 += pre[e] == 6.0f;
                        }
                        ck_assert_msg(at0 > 0, "%s: no pre-activation value is 0", what);
                        ck_assert_msg(C < 2 || n < 10 || at6 > 0, "%s: none is 6", what);
                    }
                    /* Unfused backward; the accumulated gradients start random. */
                    float *dx1 = frand(n, s + 5), *dg1 = frand(C, s + 6), *db1 = frand(C, s + 7);
                    float *dr1 = frand(n, s + 8), *gadd = frand(n, 0), *gbn = frand(n, 0);
                    if (act == SN__ACT_RELU)
                        ck_assert_int_eq(sn__relu_bwd_cpu(&d, gadd, dy, y1, (int64_t)n), SN_OK);
                    else if (act == SN__ACT_RELU6)
                        ck_assert_int_eq(sn__relu6_bwd_cpu(&d, gadd, dy, y1, (int64_t)n), SN_OK);
                    else
                        memcpy(gadd, dy, n * sizeof *dy);
                    ck_assert_int_eq(sn__accum_cpu(&d, gbn, gadd, 1.0f, (int64_t)n), SN_OK);
                    if (r) ck_assert_int_eq(sn__accum_cpu(&d, dr1, gadd, 1.0f, (int64_t)n), SN_OK);
                    ck_assert_int_eq(sn__bn_train_bwd_cpu(&d, dx1, with ? dg1 : NULL,
                                                          with ? db1 : NULL, gbn, x, gg, m1, v1,
                                                          1e-3f, rows, C), SN_OK);
                    float *dx2 = frand(n, s + 5), *dg2 = frand(C, s + 6), *db2 = frand(C, s + 7);
                    float *dr2 = frand(n, s + 8);
                    ck_assert_int_eq(sn__bn_train_bwd_ep_cpu(&d, dx2, with ? dg2 : NULL,
                                                             with ? db2 : NULL, r ? dr2 : NULL,
                                                             dy, y2, x, gg, m2, v2, 1e-3f, act,
                                                             0u, rows, C), SN_OK);
                    ck_assert_msg(memcmp(dx1, dx2, n * sizeof *dx1) == 0, "%s: dx", what);
                    ck_assert_msg(memcmp(dg1, dg2, C * sizeof *dg1) == 0, "%s: dgamma", what);
                    ck_assert_msg(memcmp(db1, db2, C * sizeof *db1) == 0, "%s: dbeta", what);
                    ck_assert_msg(memcmp(dr1, dr2, n * sizeof *dr1) == 0, "%s: dres", what);
                    /* dx NULL: the parameter and residual gradients alone. */
                    float *dg3 = frand(C, s + 6), *db3 = frand(C, s + 7), *dr3 = frand(n, s + 8);
                    ck_assert_int_eq(sn__bn_train_bwd_ep_cpu(&d, NULL, dg3, db3, r ? dr3 : NULL,
                                                             dy, y2, x, gg, m2, v2, 1e-3f, act,
                                                             0u, rows, C), SN_OK);
                    /* set = 3: dx and dres SET (NaN before, never read) equal adding into
                     * zeros, bit for bit. */
                    float *dx4 = frand(n, 0), *dr4 = frand(n, 0), *dx5 = frand(n, 0);
                    float *dr5 = frand(n, 0), *dg4 = frand(C, 0);
                    for (size_t q = 0; q < n; q++) {
                        dx4[q] = dr4[q] = NAN;
                        dx5[q] = dr5[q] = 0.0f;
                    }
                    ck_assert_int_eq(sn__bn_train_bwd_ep_cpu(&d, dx4, dg4, NULL, r ? dr4 : NULL,
                                                             dy, y2, x, gg, m2, v2, 1e-3f, act,
                                                             3u, rows, C), SN_OK);
                    ck_assert_int_eq(sn__bn_train_bwd_ep_cpu(&d, dx5, dg4, NULL, r ? dr5 : NULL,
                                                             dy, y2, x, gg, m2, v2, 1e-3f, act,
                                                             0u, rows, C), SN_OK);
                    ck_assert_msg(memcmp(dx4, dx5, n * sizeof *dx4) == 0, "%s: set dx", what);
                    if (r)
                        ck_assert_msg(memcmp(dr4, dr5, n * sizeof *dr4) == 0, "%s: set dres",
                                      what);
                    free(dx4), free(dr4), free(dx5), free(dr5), free(dg4);
                    if (with) {
                        ck_assert_msg(memcmp(dg1, dg3, C * sizeof *dg1) == 0, "%s: dg NULL dx",
                                      what);
                        ck_assert_msg(memcmp(db1, db3, C * sizeof *db1) == 0, "%s: db NULL dx",
                                      what);
                    }
                    ck_assert_msg(memcmp(dr1, dr3, n * sizeof *dr1) == 0, "%s: dres NULL dx",
                                  what);
                    free(y1), free(m1), free(v1), free(t), free(y2), free(m2), free(v2);
                    free(dx1), free(dg1), free(db1), free(dr1), free(gadd), free(gbn);
                    free(dx2), free(dg2), free(db2), free(dr2), free(dg3), free(db3), free(dr3);
                }
            }
        }
        free(x), free(dy), free(g), free(b), free(res), free(ybn), free(mean), free(var);
    }
}
END_TEST

/* bias_fwd_ep / bias_bwd_ep against the unfused kernel sequence a training net runs for
 * bias_add -> [add] -> [relu | relu6], bit for bit: pre-activation values exactly 0 and 6,
 * -0.0 in x and dy, NULL outputs, and set bits with NaN-prefilled outputs (the unfused
 * net's first writers copy: -0.0 must stay -0.0). */
START_TEST(test_bias_ep_bit_exact) {
    sn__dev d = cpu_dev();
    const int64_t shapes[][2] = {{37, 5}, {50, 12}, {1, 3}, {700, 64}};   /* last: parallel */
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        int64_t rows = shapes[si][0], C = shapes[si][1];
        size_t n = (size_t)(rows * C);
        uint64_t s = 1900 + 10 * si;
        float *x = frand(n, s), *dy = frand(n, s + 1), *b = frand(C, s + 2);
        float *res = frand(n, s + 3);
        for (size_t e = 0; e < n; e++) x[e] *= 8.0f;   /* reach past 6 */
        b[0] = 0.0f;
        if (C > 1) b[1] = 2.0f;
        for (int64_t r = 0; r < rows; r++) {   /* x + b exactly 0, -0 + 0, 6 */
            x[r * C] = r % 3 == 0 ? 0.0f : r % 3 == 1 ? -0.0f : 6.0f;
            if (C > 1) x[r * C + 1] = r % 2 ? 4.0f : -2.0f;
        }
        for (size_t e = 0; e < n; e += 7) dy[e] = -0.0f;
        /* Sums exactly 0 and 6 with a residual: t + -t is +0; 6 - t where exact. */
        for (size_t e = 2; e < n; e += 5) {
            float t = x[e] + b[e % (size_t)C];
            res[e] = (e / 5) % 2 ? 6.0f - t : -t;
        }
        for (int has_res = 0; has_res < 2; has_res++) {
            for (int act = SN__ACT_NONE; act <= SN__ACT_RELU6; act++) {
                char what[96];
                snprintf(what, sizeof what, "rows=%lld C=%lld res=%d act=%d", (long long)rows,
                         (long long)C, has_res, act);
                const float *r = has_res ? res : NULL;
                /* Unfused forward. */
                float *t = frand(n, 0), *y1 = frand(n, 0), *y2 = frand(n, 0);
                ck_assert_int_eq(sn__bias_fwd_cpu(&d, t, x, b, rows, C), SN_OK);
                memcpy(y1, t, n * sizeof *t);
                if (r) ck_assert_int_eq(sn__add_fwd_cpu(&d, y1, r, t, (int64_t)n), SN_OK);
                float *pre = fdup(y1, n);
                if (act == SN__ACT_RELU)
                    ck_assert_int_eq(sn__relu_fwd_cpu(&d, y1, y1, (int64_t)n), SN_OK);
                if (act == SN__ACT_RELU6)
                    ck_assert_int_eq(sn__relu6_fwd_cpu(&d, y1, y1, (int64_t)n), SN_OK);
                ck_assert_int_eq(sn__bias_fwd_ep_cpu(&d, y2, x, b, r, act, rows, C), SN_OK);
                ck_assert_msg(memcmp(y1, y2, n * sizeof *y1) == 0, "%s: y", what);
                size_t at0 = 0, at6 = 0;
                for (size_t e = 0; e < n; e++) {
                    at0 += pre[e] == 0.0f;
                    at6 += pre[e] == 6.0f;
                }
                ck_assert_msg(at0 > 0 && (rows < 3 || at6 > 0),
                              "%s: kinks not hit (%zu at 0, %zu at 6)", what, at0, at6);
                /* Unfused backward: relu_bwd into a zeroed buffer (or the tail's dy), the
                 * add's copy to the bias_add's gradient, then bias_add's backward. */
                float *gadd = frand(n, 0), *gbias = frand(n, 0);
                if (act == SN__ACT_RELU)
                    ck_assert_int_eq(sn__relu_bwd_cpu(&d, gadd, dy, y1, (int64_t)n), SN_OK);
                else if (act == SN__ACT_RELU6)
                    ck_assert_int_eq(sn__relu6_bwd_cpu(&d, gadd, dy, y1, (int64_t)n), SN_OK);
                else
                    memcpy(gadd, dy, n * sizeof *dy);
                memcpy(gbias, gadd, n * sizeof *gadd);
                /* Accumulating: gradients start random. */
                float *dx1 = frand(n, s + 5), *db1 = frand(C, s + 6), *dr1 = frand(n, s + 7);
                if (r) ck_assert_int_eq(sn__accum_cpu(&d, dr1, gadd, 1.0f, (int64_t)n), SN_OK);
                ck_assert_int_eq(sn__accum_cpu(&d, dx1, gbias, 1.0f, (int64_t)n), SN_OK);
                ck_assert_int_eq(sn__bias_bwd_cpu(&d, db1, gbias, rows, C), SN_OK);
                float *dx2 = frand(n, s + 5), *db2 = frand(C, s + 6), *dr2 = frand(n, s + 7);
                ck_assert_int_eq(sn__bias_bwd_ep_cpu(&d, dx2, db2, r ? dr2 : NULL, dy, y2, act,
                                                     0u, rows, C), SN_OK);
                ck_assert_msg(memcmp(dx1, dx2, n * sizeof *dx1) == 0, "%s: dx", what);
                ck_assert_msg(memcmp(db1, db2, C * sizeof *db1) == 0, "%s: db", what);
                ck_assert_msg(memcmp(dr1, dr2, n * sizeof *dr1) == 0, "%s: dres", what);
                /* NULL outputs: each of the others alone. */
                float *dx3 = frand(n, s + 5), *db3 = frand(C, s + 6), *dr3 = frand(n, s + 7);
                ck_assert_int_eq(sn__bias_bwd_ep_cpu(&d, NULL, db3, r ? dr3 : NULL, dy, y2, act,
                                                     0u, rows, C), SN_OK);
                ck_assert_int_eq(sn__bias_bwd_ep_cpu(&d, dx3, NULL, NULL, dy, y2, act, 0u,
                                                     rows, C), SN_OK);
                ck_assert_int_eq(sn__bias_bwd_ep_cpu(&d, NULL, NULL, NULL, dy, y2, act, 3u,
                                                     rows, C), SN_OK);
                ck_assert_msg(memcmp(dx1, dx3, n * sizeof *dx1) == 0, "%s: dx alone", what);
                ck_assert_msg(memcmp(db1, db3, C * sizeof *db1) == 0, "%s: db NULL dx", what);
                ck_assert_msg(memcmp(dr1, dr3, n * sizeof *dr1) == 0, "%s: dres NULL dx", what);
                /* set = 3: dx and dres (NaN before, never read) are the copies the unfused
                 * first writers make: gbias and gadd, -0.0 included. */
                float *dx4 = frand(n, 0), *dr4 = frand(n, 0), *db4 = frand(C, s + 6);
                for (size_t q = 0; q < n; q++) dx4[q] = dr4[q] = NAN;
                ck_assert_int_eq(sn__bias_bwd_ep_cpu(&d, dx4, db4, r ? dr4 : NULL, dy, y2, act,
                                                     3u, rows, C), SN_OK);
                ck_assert_msg(memcmp(dx4, gbias, n * sizeof *dx4) == 0, "%s: set dx", what);
                ck_assert_msg(memcmp(db4, db1, C * sizeof *db4) == 0, "%s: db with set", what);
                if (r)
                    ck_assert_msg(memcmp(dr4, gadd, n * sizeof *dr4) == 0, "%s: set dres", what);
                /* Only one of the two set: the other still adds. */
                float *dx5 = frand(n, s + 5), *dr5 = frand(n, 0);
                for (size_t q = 0; q < n; q++) dr5[q] = NAN;
                ck_assert_int_eq(sn__bias_bwd_ep_cpu(&d, dx5, NULL, r ? dr5 : NULL, dy, y2, act,
                                                     2u, rows, C), SN_OK);
                ck_assert_msg(memcmp(dx5, dx1, n * sizeof *dx5) == 0, "%s: dx, set 2", what);
                if (r)
                    ck_assert_msg(memcmp(dr5, gadd, n * sizeof *dr5) == 0, "%s: dres, set 2",
                                  what);
                if (act == SN__ACT_NONE) {   /* -0.0 in dy reached the copies */
                    size_t negz = 0;
                    for (size_t q = 0; q < n; q++) negz += signbit(dx4[q]) && dx4[q] == 0.0f;
                    ck_assert_msg(negz > 0, "%s: no -0.0 copied", what);
                }
                free(t), free(y1), free(y2), free(pre), free(gadd), free(gbias);
                free(dx1), free(db1), free(dr1), free(dx2), free(db2), free(dr2);
                free(dx3), free(db3), free(dr3), free(dx4), free(dr4), free(db4);
                free(dx5), free(dr5);
            }
        }
        free(x), free(dy), free(b), free(res);
    }
}
END_TEST

START_TEST(test_bn_update_moving) {
    sn__dev d = cpu_dev();
    float mm[2] = {1, -1}, mv[2] = {2, 1};
    const float mean[2] = {3, 1}, var[2] = {4, 0};
    ck_assert_int_eq(sn__bn_update_moving_cpu(&d, mm, mv, mean, var, 0.9f, 1.5f, 2), SN_OK);
    ck_assert_float_eq_tol(mm[0], 1.2f, 1e-6f);   /* 1 + 0.1*(3 - 1) */
    ck_assert_float_eq_tol(mm[1], -0.8f, 1e-6f);
    ck_assert_float_eq_tol(mv[0], 2.4f, 1e-6f);   /* 2 + 0.1*(4*1.5 - 2) */
    ck_assert_float_eq_tol(mv[1], 0.9f, 1e-6f);
}
END_TEST

/* ---- elementwise ----------------------------------------------------------------------- */

struct bias_obj {
    sn__dev *d;
    float *y, *x, *b;
    const float *w;
    int64_t rows, C;
};

static double bias_objective(void *arg) {
    struct bias_obj *o = arg;
    sn__bias_fwd_cpu(o->d, o->y, o->x, o->b, o->rows, o->C);
    return dotw(o->y, o->w, (size_t)(o->rows * o->C));
}

START_TEST(test_bias) {
    sn__dev d = cpu_dev();
    int64_t rows = 15, C = 19;
    size_t n = (size_t)(rows * C);
    float *x = frand(n, 140), *y = frand(n, 0), *b = frand(C, 141), *dy = frand(n, 142);
    double *want = dalloc(n);
    ck_assert_int_eq(sn__bias_fwd_cpu(&d, y, x, b, rows, C), SN_OK);
    for (size_t i = 0; i < n; i++) want[i] = (double)x[i] + b[i % C];
    check_close("bias_fwd", y, want, n, 1e-7);
    float *db0 = frand(C, 143), *db = fdup(db0, C);
    ck_assert_int_eq(sn__bias_bwd_cpu(&d, db, dy, rows, C), SN_OK);
    struct bias_obj o = {&d, y, x, b, dy, rows, C};
    gradcheck_input("bias_bwd", b, C, db, db0, bias_objective, &o, FD_TOL);
    free(x), free(y), free(b), free(dy), free(want), free(db0), free(db);
}
END_TEST

struct act_obj {
    sn__dev *d;
    float *y, *x;
    const float *w;
    int64_t n;
    int six;
};

static double act_objective(void *arg) {
    struct act_obj *o = arg;
    if (o->six) sn__relu6_fwd_cpu(o->d, o->y, o->x, o->n);
    else sn__relu_fwd_cpu(o->d, o->y, o->x, o->n);
    return dotw(o->y, o->w, (size_t)o->n);
}

START_TEST(test_relu) {
    sn__dev d = cpu_dev();
    int64_t n = 301;
    for (int six = 0; six < 2; six++) {
        float *x = frand(n, 150 + six), *y = frand(n, 0), *dy = frand(n, 152);
        /* Spread over [-8, 8) and keep every point 0.05 away from the kinks at 0 and 6. */
        for (int64_t i = 0; i < n; i++) {
            x[i] *= 8.0f;
            if (fabsf(x[i]) < 0.05f) x[i] = x[i] < 0 ? -0.05f : 0.05f;
            if (fabsf(x[i] - 6.0f) < 0.05f) x[i] = x[i] < 6.0f ? 5.95f : 6.05f;
        }
        double *want = dalloc(n);
        if (six) ck_assert_int_eq(sn__relu6_fwd_cpu(&d, y, x, n), SN_OK);
        else ck_assert_int_eq(sn__relu_fwd_cpu(&d, y, x, n), SN_OK);
        for (int64_t i = 0; i < n; i++)
            want[i] = fmin(fmax(x[i], 0.0), six ? 6.0 : INFINITY);
        check_close(six ? "relu6_fwd" : "relu_fwd", y, want, n, 0.0);
        float *dx0 = frand(n, 153), *dx = fdup(dx0, n);
        if (six) ck_assert_int_eq(sn__relu6_bwd_cpu(&d, dx, dy, y, n), SN_OK);
        else ck_assert_int_eq(sn__relu_bwd_cpu(&d, dx, dy, y, n), SN_OK);
        struct act_obj o = {&d, y, x, dy, n, six};
        gradcheck_input(six ? "relu6_bwd" : "relu_bwd", x, n, dx, dx0, act_objective, &o,
                        FD_TOL);
        free(x), free(y), free(dy), free(want), free(dx0), free(dx);
    }
    /* At the kinks themselves TF passes no gradient: y = 0 and y = 6 block it. */
    const float yk[3] = {0, 6, 3}, dyk[3] = {1, 1, 1};
    float dxk[3] = {0, 0, 0};
    ck_assert_int_eq(sn__relu6_bwd_cpu(&d, dxk, dyk, yk, 3), SN_OK);
    ck_assert(dxk[0] == 0 && dxk[1] == 0 && dxk[2] == 1);
    dxk[2] = 0;
    ck_assert_int_eq(sn__relu_bwd_cpu(&d, dxk, dyk, yk, 3), SN_OK);
    ck_assert(dxk[0] == 0 && dxk[1] == 1 && dxk[2] == 1);
}
END_TEST

/* hard_swish and hard_sigmoid (kernels.h): the forward against the formula in double with
 * TF-slim's float32 constants, the backward against central differences away from the kinks
 * at x = -3 and 3, and at the kinks TF's Relu6Grad rule (no gradient through relu6 there). */
struct hard_obj {
    sn__dev *d;
    float *y, *x;
    const float *w;
    int64_t n;
    int sigmoid;
};

static double hard_objective(void *arg) {
    struct hard_obj *o = arg;
    if (o->sigmoid) sn__hard_sigmoid_fwd_cpu(o->d, o->y, o->x, o->n);
    else sn__hard_swish_fwd_cpu(o->d, o->y, o->x, o->n);
    return dotw(o->y, o->w, (size_t)o->n);
}

START_TEST(test_hard_act) {
    sn__dev d = cpu_dev();
    int64_t n = 301;
    for (int sig = 0; sig < 2; sig++) {
        float *x = frand(n, 160 + sig), *y = frand(n, 0), *dy = frand(n, 162);
        for (int64_t i = 0; i < n; i++) {   /* [-6, 6), 0.05 away from -3 and 3 */
            x[i] *= 6.0f;
            for (float k = -3.0f; k <= 3.0f; k += 6.0f)
                if (fabsf(x[i] - k) < 0.05f) x[i] = x[i] < k ? k - 0.05f : k + 0.05f;
        }
        double *want = dalloc(n);
        if (sig) ck_assert_int_eq(sn__hard_sigmoid_fwd_cpu(&d, y, x, n), SN_OK);
        else ck_assert_int_eq(sn__hard_swish_fwd_cpu(&d, y, x, n), SN_OK);
        for (int64_t i = 0; i < n; i++) {
            double r = fmin(fmax((double)x[i] + 3.0, 0.0), 6.0);
            want[i] = sig ? r * (double)0.16667f : (double)x[i] * r * (double)(1.0f / 6.0f);
        }
        check_close(sig ? "hard_sigmoid_fwd" : "hard_swish_fwd", y, want, n, 1e-6);
        float *dx0 = frand(n, 163), *dx = fdup(dx0, n);
        if (sig) ck_assert_int_eq(sn__hard_sigmoid_bwd_cpu(&d, dx, dy, x, n), SN_OK);
        else ck_assert_int_eq(sn__hard_swish_bwd_cpu(&d, dx, dy, x, n), SN_OK);
        struct hard_obj o = {&d, y, x, dy, n, sig};
        gradcheck_input(sig ? "hard_sigmoid_bwd" : "hard_swish_bwd", x, n, dx, dx0,
                        hard_objective, &o, FD_TOL);
        free(x), free(y), free(dy), free(want), free(dx0), free(dx);
    }
    /* The exact constants: hard_sigmoid(0) = 3 * 0.16667f, not 0.5; hard_swish(3) = 3. */
    const float xs[4] = {-3.0f, 3.0f, 0.0f, -1.5f};
    float ys[4], dxk[4] = {0, 0, 0, 0};
    const float dyk[4] = {1, 1, 1, 1};
    ck_assert_int_eq(sn__hard_sigmoid_fwd_cpu(&d, ys, xs, 4), SN_OK);
    ck_assert(ys[0] == 0.0f && ys[1] == 6.0f * 0.16667f && ys[2] == 3.0f * 0.16667f);
    ck_assert(ys[2] != 0.5f);
    ck_assert_int_eq(sn__hard_swish_fwd_cpu(&d, ys, xs, 4), SN_OK);
    ck_assert(ys[0] == 0.0f && ys[1] == 3.0f && ys[2] == 0.0f);
    ck_assert(ys[3] == (-1.5f * 1.5f) * (1.0f / 6.0f));
    /* At x = -3 and 3 (x + 3 = 0 and 6) relu6 passes nothing: hard sigmoid's gradient is 0,
     * hard swish's the product term alone, g * relu6(x + 3) = 0 and 1. */
    ck_assert_int_eq(sn__hard_sigmoid_bwd_cpu(&d, dxk, dyk, xs, 4), SN_OK);
    ck_assert(dxk[0] == 0.0f && dxk[1] == 0.0f && dxk[2] == 0.16667f);
    memset(dxk, 0, sizeof dxk);
    ck_assert_int_eq(sn__hard_swish_bwd_cpu(&d, dxk, dyk, xs, 4), SN_OK);
    ck_assert(dxk[0] == 0.0f && dxk[1] == 1.0f && dxk[2] == 0.5f && dxk[3] == 0.0f);
}
END_TEST

/* The squeeze-excite gate: x (N, HW, C) * s (N, C). */
struct gate_obj {
    sn__dev *d;
    float *y, *x, *s;
    const float *w;
    int64_t N, HW, C;
};

static double gate_objective(void *arg) {
    struct gate_obj *o = arg;
    sn__channel_gate_fwd_cpu(o->d, o->y, o->x, o->s, o->N, o->HW, o->C);
    return dotw(o->y, o->w, (size_t)(o->N * o->HW * o->C));
}

START_TEST(test_channel_gate) {
    sn__dev d = cpu_dev();
    const int64_t shapes[2][3] = {{3, 35, 5}, {2, 49, 37}};
    for (int k = 0; k < 2; k++) {
        int64_t N = shapes[k][0], HW = shapes[k][1], C = shapes[k][2];
        size_t nx = (size_t)(N * HW * C), ns = (size_t)(N * C);
        float *x = frand(nx, 230 + k), *s = frand(ns, 232 + k), *y = frand(nx, 0);
        float *dy = frand(nx, 234 + k);
        double *want = dalloc(nx);
        ck_assert_int_eq(sn__channel_gate_fwd_cpu(&d, y, x, s, N, HW, C), SN_OK);
        for (int64_t n = 0; n < N; n++)
            for (int64_t p = 0; p < HW; p++)
                for (int64_t c = 0; c < C; c++) {
                    int64_t e = (n * HW + p) * C + c;
                    want[e] = (double)x[e] * s[n * C + c];
                }
        check_close("channel_gate_fwd", y, want, nx, 1e-7);
        float *dx0 = frand(nx, 236 + k), *dx = fdup(dx0, nx);
        float *ds0 = frand(ns, 238 + k), *ds = fdup(ds0, ns);
        ck_assert_int_eq(sn__channel_gate_bwd_cpu(&d, dx, ds, dy, x, s, N, HW, C), SN_OK);
        struct gate_obj o = {&d, y, x, s, dy, N, HW, C};
        gradcheck_input("channel_gate_bwd dx", x, nx, dx, dx0, gate_objective, &o, FD_TOL);
        gradcheck_input("channel_gate_bwd ds", s, ns, ds, ds0, gate_objective, &o, FD_TOL);
        /* Either gradient alone: the other is not touched. */
        float *dx1 = fdup(dx0, nx), *ds1 = fdup(ds0, ns);
        ck_assert_int_eq(sn__channel_gate_bwd_cpu(&d, dx1, NULL, dy, x, s, N, HW, C), SN_OK);
        ck_assert_int_eq(sn__channel_gate_bwd_cpu(&d, NULL, ds1, dy, x, s, N, HW, C), SN_OK);
        ck_assert(memcmp(dx1, dx, nx * sizeof *dx) == 0 && memcmp(ds1, ds, ns * sizeof *ds) == 0);
        free(x), free(s), free(y), free(dy), free(want), free(dx0), free(dx), free(ds0);
        free(ds), free(dx1), free(ds1);
    }
}
END_TEST

struct lin_obj {
    sn__dev *d;
    float *y, *a, *b;
    const float *w;
    float alpha;
    int64_t n;
};

static double add_objective(void *arg) {
    struct lin_obj *o = arg;
    sn__add_fwd_cpu(o->d, o->y, o->a, o->b, o->n);
    return dotw(o->y, o->w, (size_t)o->n);
}

static double scale_objective(void *arg) {
    struct lin_obj *o = arg;
    sn__scale_fwd_cpu(o->d, o->y, o->a, o->alpha, o->n);
    return dotw(o->y, o->w, (size_t)o->n);
}

/* add and scale forward; accum is their backward. */
START_TEST(test_add_scale_accum) {
    sn__dev d = cpu_dev();
    int64_t n = 77;
    float *a = frand(n, 160), *b = frand(n, 161), *y = frand(n, 0), *dy = frand(n, 162);
    double *want = dalloc(n);
    ck_assert_int_eq(sn__add_fwd_cpu(&d, y, a, b, n), SN_OK);
    for (int64_t i = 0; i < n; i++) want[i] = (double)a[i] + b[i];
    check_close("add_fwd", y, want, n, 1e-7);
    ck_assert_int_eq(sn__scale_fwd_cpu(&d, y, a, -2.5f, n), SN_OK);
    for (int64_t i = 0; i < n; i++) want[i] = -2.5 * a[i];
    check_close("scale_fwd", y, want, n, 1e-7);

    float *dx0 = frand(n, 163), *dx = fdup(dx0, n);
    struct lin_obj o = {&d, y, a, b, dy, -2.5f, n};
    ck_assert_int_eq(sn__accum_cpu(&d, dx, dy, 1.0f, n), SN_OK);
    gradcheck_input("accum (add, a)", a, n, dx, dx0, add_objective, &o, FD_TOL);
    gradcheck_input("accum (add, b)", b, n, dx, dx0, add_objective, &o, FD_TOL);
    memcpy(dx, dx0, n * sizeof *dx);
    ck_assert_int_eq(sn__accum_cpu(&d, dx, dy, -2.5f, n), SN_OK);
    gradcheck_input("accum (scale)", a, n, dx, dx0, scale_objective, &o, FD_TOL);
    free(a), free(b), free(y), free(dy), free(want), free(dx0), free(dx);
}
END_TEST

START_TEST(test_dropout_fwd) {
    sn__dev d = cpu_dev();
    int64_t n = 100003;
    const float keep = 0.8f, inv = 1.0f / keep;
    float *x = frand(n, 170), *y = frand(n, 0), *m1 = frand(n, 0), *m2 = frand(n, 0);
    ck_assert_int_eq(sn__dropout_fwd_cpu(&d, y, m1, x, keep, 1234, 0, n), SN_OK);
    int64_t kept = 0;
    for (int64_t i = 0; i < n; i++) {
        ck_assert(m1[i] == 0.0f || m1[i] == inv);
        ck_assert(m1[i] == (sn__uniform01(1234, (uint64_t)i) < keep ? inv : 0.0f));
        ck_assert(y[i] == x[i] * m1[i]);
        kept += m1[i] != 0.0f;
    }
    /* Binomial std is sqrt(0.16/n) ~ 0.0013: 0.01 is about 8 sigma. */
    ck_assert_double_eq_tol((double)kept / n, keep, 0.01);
    /* Same seed, same mask, whatever the thread count. */
    d.threads = 3;
    ck_assert_int_eq(sn__dropout_fwd_cpu(&d, y, m2, x, keep, 1234, 0, n), SN_OK);
    ck_assert_mem_eq(m1, m2, (size_t)n * sizeof *m1);
    ck_assert_int_eq(sn__dropout_fwd_cpu(&d, y, m2, x, keep, 1235, 0, n), SN_OK);
    int64_t differ = 0;
    for (int64_t i = 0; i < n; i++) differ += m1[i] != m2[i];
    ck_assert_int_gt(differ, n / 10);   /* independent masks differ in ~32% of places */
    /* A tensor split in two (a batch shared by two processes): the second half drawn from
     * first = its offset has the whole tensor's mask. */
    int64_t half = n / 2;
    ck_assert_int_eq(sn__dropout_fwd_cpu(&d, y, m2, x, keep, 1234, 0, half), SN_OK);
    ck_assert_int_eq(sn__dropout_fwd_cpu(&d, y + half, m2 + half, x + half, keep, 1234,
                                         (uint64_t)half, n - half), SN_OK);
    ck_assert_mem_eq(m1, m2, (size_t)n * sizeof *m1);
    /* keep = 1 keeps everything unscaled. */
    ck_assert_int_eq(sn__dropout_fwd_cpu(&d, y, m2, x, 1.0f, 7, 0, n), SN_OK);
    for (int64_t i = 0; i < n; i++) ck_assert(m2[i] == 1.0f && y[i] == x[i]);
    free(x), free(y), free(m1), free(m2);
}
END_TEST

struct dropout_obj {
    sn__dev *d;
    float *y, *mask, *x;
    const float *w;
    int64_t n;
};

static double dropout_objective(void *arg) {
    struct dropout_obj *o = arg;
    sn__dropout_fwd_cpu(o->d, o->y, o->mask, o->x, 0.6f, 99, 0, o->n);
    return dotw(o->y, o->w, (size_t)o->n);
}

START_TEST(test_dropout_grad) {
    sn__dev d = cpu_dev();
    int64_t n = 203;
    float *x = frand(n, 180), *y = frand(n, 0), *mask = frand(n, 0), *dy = frand(n, 181);
    float *dx0 = frand(n, 182), *dx = fdup(dx0, n);
    ck_assert_int_eq(sn__dropout_fwd_cpu(&d, y, mask, x, 0.6f, 99, 0, n), SN_OK);
    ck_assert_int_eq(sn__dropout_bwd_cpu(&d, dx, dy, mask, n), SN_OK);
    struct dropout_obj o = {&d, y, mask, x, dy, n};
    gradcheck_input("dropout_bwd", x, n, dx, dx0, dropout_objective, &o, FD_TOL);
    free(x), free(y), free(mask), free(dy), free(dx0), free(dx);
}
END_TEST

struct sum_obj {
    sn__dev *d;
    float *x;
    int64_t n;
};

static double sum_objective(void *arg) {
    struct sum_obj *o = arg;
    float y;
    sn__sum_fwd_cpu(o->d, &y, o->x, o->n);
    return 0.75 * y;
}

START_TEST(test_sum) {
    sn__dev d = cpu_dev();
    int64_t n = 5;
    float *x = frand(n, 190), y = 0, dy = 0.75f;
    ck_assert_int_eq(sn__sum_fwd_cpu(&d, &y, x, n), SN_OK);
    double want = 0;
    for (int64_t i = 0; i < n; i++) want += x[i];
    ck_assert_double_eq_tol(y, want, 1e-6);
    float *dx0 = frand(n, 191), *dx = fdup(dx0, n);
    ck_assert_int_eq(sn__sum_bwd_cpu(&d, dx, &dy, n), SN_OK);
    struct sum_obj o = {&d, x, n};
    gradcheck_input("sum_bwd", x, n, dx, dx0, sum_objective, &o, FD_TOL);
    free(x), free(dx0), free(dx);
}
END_TEST

/* ---- layout ---------------------------------------------------------------------------- */

struct concat_obj {
    sn__dev *d;
    float *y, *x;
    const float *w;
    int64_t rows, Cx, Cy, off;
};

static double concat_objective(void *arg) {
    struct concat_obj *o = arg;
    sn__concat_fwd_cpu(o->d, o->y, o->x, o->rows, o->Cx, o->Cy, o->off);
    return dotw(o->y, o->w, (size_t)(o->rows * o->Cy));
}

START_TEST(test_concat) {
    sn__dev d = cpu_dev();
    int64_t rows = 2 * 5 * 3, C1 = 3, C2 = 5, Cy = 8;
    float *x1 = frand(rows * C1, 200), *x2 = frand(rows * C2, 201), *y = frand(rows * Cy, 0);
    for (int64_t i = 0; i < rows * Cy; i++) y[i] = 42.0f;
    /* Only channels [3, 8) are written by the first call; the rest stay untouched. */
    ck_assert_int_eq(sn__concat_fwd_cpu(&d, y, x2, rows, C2, Cy, C1), SN_OK);
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < C1; c++) ck_assert(y[r * Cy + c] == 42.0f);
    ck_assert_int_eq(sn__concat_fwd_cpu(&d, y, x1, rows, C1, Cy, 0), SN_OK);
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < Cy; c++)
            ck_assert(y[r * Cy + c] == (c < C1 ? x1[r * C1 + c] : x2[r * C2 + c - C1]));

    float *dy = frand(rows * Cy, 202), *dx0 = frand(rows * C2, 203), *dx = fdup(dx0, rows * C2);
    ck_assert_int_eq(sn__concat_bwd_cpu(&d, dx, dy, rows, C2, Cy, C1), SN_OK);
    struct concat_obj o = {&d, y, x2, dy, rows, C2, Cy, C1};
    gradcheck_input("concat_bwd", x2, rows * C2, dx, dx0, concat_objective, &o, FD_TOL);
    free(x1), free(x2), free(y), free(dy), free(dx0), free(dx);
}
END_TEST

struct pad_obj {
    sn__dev *d;
    float *y, *x;
    const float *w;
    int64_t N, H, W, C, t, b, l, r;
};

static double pad_objective(void *arg) {
    struct pad_obj *o = arg;
    sn__pad_fwd_cpu(o->d, o->y, o->x, o->N, o->H, o->W, o->C, o->t, o->b, o->l, o->r);
    return dotw(o->y, o->w, (size_t)(o->N * (o->H + o->t + o->b) * (o->W + o->l + o->r) * o->C));
}

START_TEST(test_pad) {
    sn__dev d = cpu_dev();
    int64_t N = 2, H = 5, W = 6, C = 3, t = 1, b = 2, l = 0, r = 3;
    int64_t Hp = H + t + b, Wp = W + l + r, nx = N * H * W * C, ny = N * Hp * Wp * C;
    float *x = frand(nx, 210), *y = frand(ny, 211), *dy = frand(ny, 212);
    double *want = dalloc(ny);
    ck_assert_int_eq(sn__pad_fwd_cpu(&d, y, x, N, H, W, C, t, b, l, r), SN_OK);
    for (int64_t n = 0; n < N; n++)
        for (int64_t h = 0; h < Hp; h++)
            for (int64_t w = 0; w < Wp; w++)
                for (int64_t c = 0; c < C; c++) {
                    int64_t hi = h - t, wi = w - l;
                    int in = hi >= 0 && hi < H && wi >= 0 && wi < W;
                    want[((n * Hp + h) * Wp + w) * C + c] =
                        in ? x[((n * H + hi) * W + wi) * C + c] : 0.0;
                }
    check_close("pad_fwd", y, want, ny, 0.0);
    float *dx0 = frand(nx, 213), *dx = fdup(dx0, nx);
    ck_assert_int_eq(sn__pad_bwd_cpu(&d, dx, dy, N, H, W, C, t, b, l, r), SN_OK);
    struct pad_obj o = {&d, y, x, dy, N, H, W, C, t, b, l, r};
    gradcheck_input("pad_bwd", x, nx, dx, dx0, pad_objective, &o, FD_TOL);
    free(x), free(y), free(dy), free(want), free(dx0), free(dx);
}
END_TEST

struct mean_obj {
    sn__dev *d;
    float *y, *x;
    const float *w;
    int64_t N, HW, C;
};

static double mean_objective(void *arg) {
    struct mean_obj *o = arg;
    sn__mean_hw_fwd_cpu(o->d, o->y, o->x, o->N, o->HW, o->C);
    return dotw(o->y, o->w, (size_t)(o->N * o->C));
}

START_TEST(test_mean_hw) {
    sn__dev d = cpu_dev();
    int64_t N = 3, HW = 7 * 5, C = 5;
    float *x = frand(N * HW * C, 220), *y = frand(N * C, 0), *dy = frand(N * C, 221);
    double *want = dalloc(N * C);
    ck_assert_int_eq(sn__mean_hw_fwd_cpu(&d, y, x, N, HW, C), SN_OK);
    for (int64_t n = 0; n < N; n++)
        for (int64_t c = 0; c < C; c++) {
            for (int64_t i = 0; i < HW; i++) want[n * C + c] += x[(n * HW + i) * C + c];
            want[n * C + c] /= HW;
        }
    check_close("mean_hw_fwd", y, want, N * C, 1e-6);
    float *dx0 = frand(N * HW * C, 222), *dx = fdup(dx0, N * HW * C);
    ck_assert_int_eq(sn__mean_hw_bwd_cpu(&d, dx, dy, N, HW, C), SN_OK);
    struct mean_obj o = {&d, y, x, dy, N, HW, C};
    gradcheck_input("mean_hw_bwd", x, N * HW * C, dx, dx0, mean_objective, &o, FD_TOL);
    free(x), free(y), free(dy), free(want), free(dx0), free(dx);
}
END_TEST

/* ---- local response normalization ----------------------------------------------------- */

static const struct lrn_case {
    int64_t rows, C;
    int radius;
    float bias, alpha, beta;
} lrn_cases[] = {
    {10, 7, 2, 1.0f, 0.3f, 0.75f},
    {6, 5, 5, 1.0f, 0.5f, 0.75f},    /* window wider than C */
    {8, 3, 0, 2.0f, 0.4f, 0.5f},
    {4, 18, 3, 0.5f, 0.2f, 1.0f},
    {3, 64, 4, 1.0f, 0.001f / 9, 0.75f},   /* CifarNet's norm1 */
};

struct lrn_obj {
    sn__dev *d;
    float *y, *x;
    const float *w;
    const struct lrn_case *c;
};

static double lrn_objective(void *arg) {
    struct lrn_obj *o = arg;
    const struct lrn_case *c = o->c;
    sn__lrn_fwd_cpu(o->d, o->y, o->x, c->rows, c->C, c->radius, c->bias, c->alpha, c->beta);
    return dotw(o->y, o->w, (size_t)(c->rows * c->C));
}

START_TEST(test_lrn) {
    sn__dev d = cpu_dev();
    for (size_t k = 0; k < sizeof lrn_cases / sizeof lrn_cases[0]; k++) {
        const struct lrn_case *lc = &lrn_cases[k];
        int64_t rows = lc->rows, C = lc->C;
        size_t n = (size_t)(rows * C);
        float *x = frand(n, 230 + k), *y = frand(n, 0), *dy = frand(n, 240 + k);
        for (size_t i = 0; i < n; i++) x[i] *= 2.0f;
        double *want = dalloc(n);
        ck_assert_int_eq(sn__lrn_fwd_cpu(&d, y, x, rows, C, lc->radius, lc->bias, lc->alpha,
                                         lc->beta), SN_OK);
        for (int64_t r = 0; r < rows; r++)
            for (int64_t c = 0; c < C; c++) {
                double s = 0;
                for (int64_t j = c - lc->radius; j <= c + lc->radius; j++)
                    if (j >= 0 && j < C) s += (double)x[r * C + j] * x[r * C + j];
                want[r * C + c] = x[r * C + c] * pow(lc->bias + lc->alpha * s, -lc->beta);
            }
        check_close("lrn_fwd", y, want, n, 1e-6);
        float *dx0 = frand(n, 250 + k), *dx = fdup(dx0, n);
        ck_assert_int_eq(sn__lrn_bwd_cpu(&d, dx, dy, x, rows, C, lc->radius, lc->bias,
                                         lc->alpha, lc->beta), SN_OK);
        struct lrn_obj o = {&d, y, x, dy, lc};
        gradcheck_input("lrn_bwd", x, n, dx, dx0, lrn_objective, &o, FD_TOL);
        free(x), free(y), free(dy), free(want), free(dx0), free(dx);
    }
}
END_TEST

/* ---- softmax and losses ---------------------------------------------------------------- */

static void softmax_ref(double *y, const float *x, int64_t rows, int64_t C) {
    for (int64_t r = 0; r < rows; r++) {
        double m = x[r * C], s = 0;
        for (int64_t c = 1; c < C; c++) m = fmax(m, x[r * C + c]);
        for (int64_t c = 0; c < C; c++) s += exp(x[r * C + c] - m);
        for (int64_t c = 0; c < C; c++) y[r * C + c] = exp(x[r * C + c] - m) / s;
    }
}

struct softmax_obj {
    sn__dev *d;
    float *y, *x;
    const float *w;
    int64_t rows, C;
};

static double softmax_objective(void *arg) {
    struct softmax_obj *o = arg;
    sn__softmax_fwd_cpu(o->d, o->y, o->x, o->rows, o->C);
    return dotw(o->y, o->w, (size_t)(o->rows * o->C));
}

START_TEST(test_softmax) {
    sn__dev d = cpu_dev();
    int64_t rows = 3, C = 7;
    size_t n = (size_t)(rows * C);
    float *x = frand(n, 260), *y = frand(n, 0), *dy = frand(n, 261);
    for (size_t i = 0; i < n; i++) x[i] *= 3.0f;
    double *want = dalloc(n);
    ck_assert_int_eq(sn__softmax_fwd_cpu(&d, y, x, rows, C), SN_OK);
    softmax_ref(want, x, rows, C);
    check_close("softmax_fwd", y, want, n, 1e-6);
    /* Logits of 1000 would overflow expf without the max subtraction. */
    float *xb = fdup(x, n), *yb = frand(n, 0);
    for (size_t i = 0; i < n; i++) xb[i] += 1000.0f;
    ck_assert_int_eq(sn__softmax_fwd_cpu(&d, yb, xb, rows, C), SN_OK);
    softmax_ref(want, xb, rows, C);
    check_close("softmax_fwd (logits ~1000)", yb, want, n, 1e-4);

    float *dx0 = frand(n, 262), *dx = fdup(dx0, n);
    ck_assert_int_eq(sn__softmax_bwd_cpu(&d, dx, dy, y, rows, C), SN_OK);
    struct softmax_obj o = {&d, y, x, dy, rows, C};
    gradcheck_input("softmax_bwd", x, n, dx, dx0, softmax_objective, &o, FD_TOL);
    free(x), free(y), free(dy), free(want), free(xb), free(yb), free(dx0), free(dx);
}
END_TEST

/* ls = 0: a row's loss is log-sum-exp minus the label's logit. */
START_TEST(test_xent_hand) {
    sn__dev d = cpu_dev();
    const float logits[6] = {1, 2, 3, 0, 0, 0};
    const int32_t labels[2] = {2, 0};
    float loss = 0, prob[6];
    ck_assert_int_eq(sn__xent_fwd_cpu(&d, &loss, prob, logits, labels, 0.0f, 2, 3), SN_OK);
    double want = (log(exp(1.0) + exp(2.0) + exp(3.0)) - 3.0 + log(3.0)) / 2;
    ck_assert_double_eq_tol(loss, want, 1e-6);
    ck_assert_float_eq_tol(prob[4], 1.0f / 3, 1e-7f);
}
END_TEST

START_TEST(test_xent_bad_label) {
    sn__dev d = cpu_dev();
    const float logits[10] = {0};
    float loss = 0, prob[10];
    const int32_t high[2] = {0, 5}, low[2] = {-1, 1};
    ck_assert_int_eq(sn__xent_fwd_cpu(&d, &loss, prob, logits, high, 0.0f, 2, 5),
                     SN_ERR_INVALID_ARG);
    /* With a context (a bare one: no logger) the message names the label and the row. */
    struct sn_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    d.ctx = &ctx;
    ck_assert_int_eq(sn__xent_fwd_cpu(&d, &loss, prob, logits, low, 0.1f, 2, 5),
                     SN_ERR_INVALID_ARG);
    ck_assert_str_eq(ctx.errmsg, "xent: label -1 at row 0 outside [0, 5)");
}
END_TEST

struct xent_obj {
    sn__dev *d;
    float *prob, *x;
    const int32_t *labels;
    float ls, dloss;
    int64_t rows, C;
};

static double xent_objective(void *arg) {
    struct xent_obj *o = arg;
    float loss;
    sn__xent_fwd_cpu(o->d, &loss, o->prob, o->x, o->labels, o->ls, o->rows, o->C);
    return (double)o->dloss * loss;
}

START_TEST(test_xent) {
    sn__dev d = cpu_dev();
    int64_t rows = 3, C = 5;
    size_t n = (size_t)(rows * C);
    const int32_t labels[3] = {4, 0, 2};
    float *x = frand(n, 270), *prob = frand(n, 0);
    for (size_t i = 0; i < n; i++) x[i] *= 2.0f;
    double *p = dalloc(n);
    softmax_ref(p, x, rows, C);
    for (int k = 0; k < 2; k++) {
        float ls = k ? 0.1f : 0.0f, loss = 0;
        ck_assert_int_eq(sn__xent_fwd_cpu(&d, &loss, prob, x, labels, ls, rows, C), SN_OK);
        check_close("xent_fwd prob", prob, p, n, 1e-6);
        double want = 0;
        for (int64_t r = 0; r < rows; r++)
            for (int64_t c = 0; c < C; c++)
                want -= ((c == labels[r]) * (1.0 - ls) + ls / (double)C) * log(p[r * C + c]);
        ck_assert_double_eq_tol(loss, want / rows, 1e-6);

        float dloss = 2.5f, *dx0 = frand(n, 271), *dx = fdup(dx0, n);
        ck_assert_int_eq(sn__xent_bwd_cpu(&d, dx, &dloss, prob, labels, ls, rows, C), SN_OK);
        struct xent_obj o = {&d, prob, x, labels, ls, dloss, rows, C};
        gradcheck_input("xent_bwd", x, n, dx, dx0, xent_objective, &o, FD_TOL);
        free(dx0), free(dx);
    }
    free(x), free(prob), free(p);
}
END_TEST

struct l2_obj {
    sn__dev *d;
    float *w;
    int64_t n;
};

static double l2_objective(void *arg) {
    struct l2_obj *o = arg;
    float loss;
    sn__l2_fwd_cpu(o->d, &loss, o->w, 0.04f, o->n);
    return 3.0 * loss;
}

START_TEST(test_l2) {
    sn__dev d = cpu_dev();
    const float w3[3] = {1, -2, 3};
    float loss = 0, dloss = 3.0f;
    ck_assert_int_eq(sn__l2_fwd_cpu(&d, &loss, w3, 0.5f, 3), SN_OK);
    ck_assert_float_eq_tol(loss, 3.5f, 1e-6f);   /* 0.5 * 14 / 2 */
    int64_t n = 57;
    float *w = frand(n, 280), *dw0 = frand(n, 281), *dw = fdup(dw0, n);
    ck_assert_int_eq(sn__l2_bwd_cpu(&d, dw, &dloss, w, 0.04f, n), SN_OK);
    struct l2_obj o = {&d, w, n};
    gradcheck_input("l2_bwd", w, n, dw, dw0, l2_objective, &o, FD_TOL);
    free(w), free(dw0), free(dw);
}
END_TEST

/* ---- serial and parallel agree ------------------------------------------------------ */

/* Buffers for every kernel at a size past every PAR_MIN: N=4, H=W=32, C=24. */
struct big {
    sn__pool_dims pd;
    int64_t rows, C;
    float *x, *x2, *dy, *g, *b, *mean, *var, *mask;
    int32_t *labels;
};

enum { N_BIG = 40 };

/* Runs kernel k of the list on b, writing `out`; returns how many floats it wrote. */
static size_t run_big(sn__dev *d, int k, struct big *b, float *out) {
    const int64_t rows = b->rows, C = b->C, n = rows * C;
    const sn__pool_dims *pd = &b->pd;
    sn_status st = SN_OK;
    size_t written = (size_t)n;
    switch (k) {
    case 0: st = sn__maxpool_fwd_cpu(d, out, b->x, pd); written = pool_out_n(pd); break;
    case 1: st = sn__maxpool_bwd_cpu(d, out, b->dy, b->x, pd); break;
    case 2: st = sn__avgpool_fwd_cpu(d, out, b->x, pd); written = pool_out_n(pd); break;
    case 3: st = sn__avgpool_bwd_cpu(d, out, b->dy, pd); break;
    case 4: st = sn__bn_train_fwd_cpu(d, out, out + n, out + n + C, b->x, b->g, b->b, 1e-3f,
                                      rows, C);
            written = (size_t)(n + 2 * C); break;
    case 5: st = sn__bn_train_bwd_cpu(d, out, out + n, out + n + C, b->dy, b->x, b->g, b->mean,
                                      b->var, 1e-3f, rows, C);
            written = (size_t)(n + 2 * C); break;
    case 6: st = sn__bn_infer_fwd_cpu(d, out, b->x, b->g, b->b, b->mean, b->var, 1e-3f, rows, C);
            break;
    case 7: st = sn__bn_infer_bwd_cpu(d, out, out + n, out + n + C, b->dy, b->x, b->g, b->mean,
                                      b->var, 1e-3f, rows, C);
            written = (size_t)(n + 2 * C); break;
    case 8: st = sn__bias_fwd_cpu(d, out, b->x, b->b, rows, C); break;
    case 9: st = sn__bias_bwd_cpu(d, out, b->dy, rows, C); written = (size_t)C; break;
    case 10: st = sn__relu_fwd_cpu(d, out, b->x, n); break;
    case 11: st = sn__relu_bwd_cpu(d, out, b->dy, b->x, n); break;
    case 12: st = sn__relu6_fwd_cpu(d, out, b->x2, n); break;
    case 13: st = sn__relu6_bwd_cpu(d, out, b->dy, b->x2, n); break;
    case 14: st = sn__add_fwd_cpu(d, out, b->x, b->x2, n); break;
    case 15: st = sn__accum_cpu(d, out, b->dy, 0.3f, n); break;
    case 16: st = sn__dropout_fwd_cpu(d, out, out + n, b->x, 0.7f, 5, 0, n); written *= 2; break;
    case 17: st = sn__concat_fwd_cpu(d, out, b->x, rows / 2, C, 2 * C, C); break;
    case 18: st = sn__concat_bwd_cpu(d, out, b->dy, rows / 2, C, 2 * C, C); break;
    case 19: st = sn__pad_fwd_cpu(d, out, b->x, 2, 30, 30, C, 1, 0, 1, 0);
             written = (size_t)(2 * 31 * 31 * C); break;
    case 20: st = sn__pad_bwd_cpu(d, out, b->dy, 2, 30, 30, C, 1, 0, 1, 0); break;
    case 21: st = sn__mean_hw_bwd_cpu(d, out, b->dy, 4, 1024, C); break;
    case 22: st = sn__lrn_bwd_cpu(d, out, b->dy, b->x, rows, C, 3, 1.0f, 0.2f, 0.75f); break;
    case 23: st = sn__softmax_bwd_cpu(d, out, b->dy, b->x, rows, C); break;
    case 24: st = sn__mean_hw_fwd_cpu(d, out, b->x, 4, 1024, C); written = (size_t)(4 * C); break;
    case 25: st = sn__scale_fwd_cpu(d, out, b->x, -1.7f, n); break;
    case 26: st = sn__dropout_bwd_cpu(d, out, b->dy, b->x2, n); break;
    case 27: st = sn__sum_bwd_cpu(d, out, b->dy, n); break;
    case 28: st = sn__lrn_fwd_cpu(d, out, b->x, rows, C, 2, 2.0f, 0.3f, 0.5f); break;
    case 29: st = sn__softmax_fwd_cpu(d, out, b->x, rows, C); break;
    case 30: st = sn__xent_bwd_cpu(d, out, b->dy, b->x, b->labels, 0.1f, rows, C); break;
    case 31: st = sn__l2_bwd_cpu(d, out, b->dy, b->x, 0.5f, n); break;
    case 32: st = sn__hard_swish_fwd_cpu(d, out, b->x2, n); break;
    case 33: st = sn__hard_swish_bwd_cpu(d, out, b->dy, b->x2, n); break;
    case 34: st = sn__hard_sigmoid_fwd_cpu(d, out, b->x2, n); break;
    case 35: st = sn__hard_sigmoid_bwd_cpu(d, out, b->dy, b->x2, n); break;
    case 36: st = sn__channel_gate_fwd_cpu(d, out, b->x, b->x2, 4, 1024, C); break;
    case 37: st = sn__channel_gate_bwd_cpu(d, out, out + n, b->dy, b->x, b->x2, 4, 1024, C);
             written = (size_t)(n + 4 * C); break;
    /* The two reductions last: test_threads_agree compares them with a tolerance. */
    case 38: st = sn__xent_fwd_cpu(d, out + 1, out + 2, b->x, b->labels, 0.1f, rows, C);
             out[0] = out[1]; written = 1; break;
    case 39: st = sn__l2_fwd_cpu(d, out, b->x, 0.5f, n); written = 1; break;
    }
    ck_assert_int_eq(st, SN_OK);
    return written;
}

/* Every kernel gives the same result on 1 and 4 threads: the parallel split has no races and
 * no dependence on the thread count (bitwise, but for the reduction clauses of the losses). */
START_TEST(test_threads_agree) {
    struct big b = {.rows = 4 * 32 * 32, .C = 24};
    b.pd = pool_geom(4, 32, 32, 24, 3, 3, 2, 2, 1);
    const size_t n = (size_t)(b.rows * b.C), len = 2 * n + 2;
    b.x = frand(n, 310), b.x2 = frand(n, 311), b.dy = frand(n, 312), b.g = frand(b.C, 313);
    b.b = frand(b.C, 314), b.mean = frand(b.C, 315), b.var = frand(b.C, 316);
    b.labels = malloc(b.rows * sizeof *b.labels);
    for (int64_t r = 0; r < b.rows; r++) b.labels[r] = (int32_t)(r * 7 % b.C);
    for (int64_t c = 0; c < b.C; c++) b.var[c] = 0.2f + fabsf(b.var[c]);
    for (size_t i = 0; i < n; i++) b.x2[i] *= 8.0f;
    float *init = frand(len, 317), *one = frand(len, 0), *four = frand(len, 0);
    for (int k = 0; k < N_BIG; k++) {
        sn__dev d = cpu_dev();
        memcpy(one, init, len * sizeof *one);
        memcpy(four, init, len * sizeof *four);
        d.threads = 1;
        size_t m = run_big(&d, k, &b, one);
        d.threads = 4;
        run_big(&d, k, &b, four);
        if (k >= N_BIG - 2) {
            ck_assert_msg(fabsf(one[0] - four[0]) <= 1e-6f * fabsf(one[0]),
                          "kernel %d: %.9g on 1 thread, %.9g on 4", k, one[0], four[0]);
        } else {
            ck_assert_msg(memcmp(one, four, m * sizeof *one) == 0,
                          "kernel %d differs between 1 and 4 threads", k);
        }
    }
    free(b.x), free(b.x2), free(b.dy), free(b.g), free(b.b), free(b.mean), free(b.var);
    free(b.labels), free(init), free(one), free(four);
}
END_TEST

Suite *suite_kernels_misc(void) {
    Suite *s = suite_create("kernels_misc");
    TCase *tc = tcase_create("cpu");
    tcase_add_test(tc, test_memory);
    tcase_add_test(tc, test_memory_nomem);
    tcase_add_test(tc, test_pool_fwd);
    tcase_add_test(tc, test_pool_subsample);
    tcase_add_test(tc, test_pool_same_hand);
    tcase_add_test(tc, test_maxpool_ties);
    tcase_add_test(tc, test_pool_grad);
    tcase_add_test(tc, test_bn_train_fwd);
    tcase_add_test(tc, test_bn_train_grad);
    tcase_add_test(tc, test_bn_infer);
    tcase_add_test(tc, test_bn_train_bwd_large);
    tcase_add_test(tc, test_bn_train_ep_bit_exact);
    tcase_add_test(tc, test_bias_ep_bit_exact);
    tcase_add_test(tc, test_bn_update_moving);
    tcase_add_test(tc, test_bias);
    tcase_add_test(tc, test_relu);
    tcase_add_test(tc, test_hard_act);
    tcase_add_test(tc, test_channel_gate);
    tcase_add_test(tc, test_add_scale_accum);
    tcase_add_test(tc, test_dropout_fwd);
    tcase_add_test(tc, test_dropout_grad);
    tcase_add_test(tc, test_sum);
    tcase_add_test(tc, test_concat);
    tcase_add_test(tc, test_pad);
    tcase_add_test(tc, test_mean_hw);
    tcase_add_test(tc, test_lrn);
    tcase_add_test(tc, test_softmax);
    tcase_add_test(tc, test_xent_hand);
    tcase_add_test(tc, test_xent_bad_label);
    tcase_add_test(tc, test_xent);
    tcase_add_test(tc, test_l2);
    tcase_add_test(tc, test_threads_agree);
    suite_add_tcase(s, tc);
    return s;
}
