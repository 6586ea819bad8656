/* test_cuda_optim.c: CPU-vs-CUDA parity of the optimizer kernels and of sn_optim / sn_ema
 * (suite "cuda_optim").
 *
 * kernels: each optimizer kernel and ema_apply runs on the same random variable, gradient
 *   and slots on both backends (sizes 1, 1000 and 1234567, and a pointer offset by one
 *   float so that no access may assume alignment); every output array (the variable and
 *   each slot) must agree within TOL = 1e-5 of max(1, max|cpu|).  The kernels do the same
 *   float operations; nvcc may fuse a multiply and an add into an FMA, a difference of an
 *   ulp or so per operation.
 * optimizer: the same net of bare variables compiled on a CPU and a CUDA context, every
 *   optimizer run five steps with the same gradients through sn_optim_step (so Adam's beta
 *   powers are read from device memory and scaled there), and an EMA updated on top;
 *   variables, slots and shadows compared with the same tolerance.
 *
 * Without a CUDA build or device each test prints a skip note and passes.  No CUDA call is
 * made outside a test body (Check forks a child per test). */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "testutil.h"
#include "../lib/graph.h"

#ifdef SN_WITH_CUDA

#define TOL 1e-5

/* ---- kernels --------------------------------------------------------------------------- */

typedef struct dev2 {
    sn_ctx *ctx;
    sn__dev cpu, gpu;
    const sn__kernels *kc, *kg;
    double worst;
} dev2;

#define CK(e, call)                                                                      \
    do {                                                                                 \
        sn_status st_ = (call);                                                          \
        ck_assert_msg(st_ == SN_OK, "%s -> %s: %s", #call, sn_status_name(st_),          \
                      sn_ctx_errmsg((e)->ctx));                                          \
    } while (0)

static int dev2_open(dev2 *e, const char *test) {
    memset(e, 0, sizeof *e);
    if (sn__cuda_count() <= 0) {
        printf("[cuda_optim] %s skipped: no CUDA device\n", test);
        return 0;
    }
    e->ctx = tu_ctx();
    e->cpu.ctx = e->gpu.ctx = e->ctx;
    e->cpu.backend = SN__BACKEND_CPU;
    e->cpu.threads = 2;
    e->kc = &sn__kernels_cpu;
    e->kg = &sn__kernels_cuda;
    CK(e, sn__cuda_open(&e->gpu, 0));
    return 1;
}

static void dev2_close(dev2 *e, const char *test) {
    sn__cuda_close(&e->gpu);
    printf("[cuda_optim] %s: worst relative difference %.3g\n", test, e->worst);
    sn_ctx_free(e->ctx);
}

/* n floats on both sides (h for the CPU, d for CUDA), shifted by `off` floats. */
typedef struct mbuf {
    float *h, *d, *hbase, *dbase;
    size_t n;
} mbuf;

/* Random values: |u| * scale + shift when positive (accumulators), else u * scale. */
static mbuf mk(dev2 *e, size_t n, uint64_t seed, float scale, float shift, int positive,
               size_t off) {
    mbuf b = {0};
    b.n = n;
    b.hbase = malloc((n + off + 1) * sizeof(float));
    ck_assert_ptr_nonnull(b.hbase);
    b.h = b.hbase + off;
    tu_fill(b.h, n, seed);
    for (size_t i = 0; i < n; i++)
        b.h[i] = positive ? fabsf(b.h[i]) * scale + shift : b.h[i] * scale;
    void *p = NULL;
    CK(e, e->kg->alloc(&e->gpu, &p, (n + off + 1) * sizeof(float)));
    b.dbase = p;
    b.d = b.dbase + off;
    CK(e, e->kg->to_dev(&e->gpu, b.d, b.h, n * sizeof(float)));
    return b;
}

static void rm(dev2 *e, mbuf *b) {
    e->kg->free(&e->gpu, b->dbase);
    free(b->hbase);
}

static void cmp(dev2 *e, const char *what, size_t n, const mbuf *b) {
    float *g = malloc((b->n + 1) * sizeof(float));
    ck_assert_ptr_nonnull(g);
    CK(e, e->kg->to_host(&e->gpu, g, b->d, b->n * sizeof(float)));
    double err = tu_max_rel_err(g, b->h, b->n);
    ck_assert_msg(err <= TOL, "%s (n = %zu): relative difference %.3g > %g", what, n, err, TOL);
    if (err > e->worst) e->worst = err;
    free(g);
}

START_TEST(test_cuda_optim_kernels) {
    dev2 e;
    if (!dev2_open(&e, "kernels")) return;
    static const size_t sizes[] = {1, 1000, 1234567};
    for (size_t k = 0; k < 3; k++) {
        size_t n = sizes[k], off = k == 1 ? 1 : 0;
        int64_t ni = (int64_t)n;
        uint64_t s = 100 * k;
        /* Slots carry over from kernel to kernel, identical on both sides up to TOL. */
        mbuf w = mk(&e, n, s + 1, 1, 0, 0, off), g = mk(&e, n, s + 2, 0.5f, 0, 0, off);
        mbuf a = mk(&e, n, s + 3, 1, 0, 0, off), b = mk(&e, n, s + 4, 0.1f, 0.01f, 1, off);
        mbuf c = mk(&e, n, s + 5, 1, 0.1f, 1, off);
        const float powers_h[2] = {0.9f * 0.9f * 0.9f, 0.999f * 0.999f * 0.999f};
        mbuf pw = mk(&e, 2, 0, 0, 0, 0, 0);
        memcpy(pw.h, powers_h, sizeof powers_h);
        CK(&e, e.kg->to_dev(&e.gpu, pw.d, powers_h, sizeof powers_h));

        for (int nesterov = 0; nesterov < 2; nesterov++) {
            CK(&e, e.kc->momentum_apply(&e.cpu, w.h, a.h, g.h, 0.1f, 0.9f, nesterov, ni));
            CK(&e, e.kg->momentum_apply(&e.gpu, w.d, a.d, g.d, 0.1f, 0.9f, nesterov, ni));
            cmp(&e, "momentum_apply w", n, &w);
            cmp(&e, "momentum_apply accum", n, &a);
        }
        /* ms (c) positive; mom (a) any sign. */
        CK(&e, e.kc->rmsprop_apply(&e.cpu, w.h, c.h, a.h, g.h, 0.05f, 0.9f, 0.9f, 1e-10f, ni));
        CK(&e, e.kg->rmsprop_apply(&e.gpu, w.d, c.d, a.d, g.d, 0.05f, 0.9f, 0.9f, 1e-10f, ni));
        cmp(&e, "rmsprop_apply w", n, &w);
        cmp(&e, "rmsprop_apply ms", n, &c);
        cmp(&e, "rmsprop_apply mom", n, &a);
        /* m (a) any sign, v (b) positive. */
        CK(&e, e.kc->adam_apply(&e.cpu, w.h, a.h, b.h, g.h, pw.h, 0.01f, 0.9f, 0.999f, 1e-8f,
                                ni));
        CK(&e, e.kg->adam_apply(&e.gpu, w.d, a.d, b.d, g.d, pw.d, 0.01f, 0.9f, 0.999f, 1e-8f,
                                ni));
        cmp(&e, "adam_apply w", n, &w);
        cmp(&e, "adam_apply m", n, &a);
        cmp(&e, "adam_apply v", n, &b);
        CK(&e, e.kc->adagrad_apply(&e.cpu, w.h, c.h, g.h, 0.1f, ni));
        CK(&e, e.kg->adagrad_apply(&e.gpu, w.d, c.d, g.d, 0.1f, ni));
        cmp(&e, "adagrad_apply w", n, &w);
        cmp(&e, "adagrad_apply accum", n, &c);
        CK(&e, e.kc->adadelta_apply(&e.cpu, w.h, c.h, b.h, g.h, 1.0f, 0.95f, 1e-6f, ni));
        CK(&e, e.kg->adadelta_apply(&e.gpu, w.d, c.d, b.d, g.d, 1.0f, 0.95f, 1e-6f, ni));
        cmp(&e, "adadelta_apply w", n, &w);
        cmp(&e, "adadelta_apply accum", n, &c);
        cmp(&e, "adadelta_apply accum_update", n, &b);
        /* accum (c) positive; linear (a) any sign; both power paths, with and without l1. */
        static const float ftrl[][3] = {{-0.5f, 0, 0}, {-0.5f, 0.05f, 0.1f}, {-0.7f, 0.01f, 0}};
        for (int f = 0; f < 3; f++) {
            CK(&e, e.kc->ftrl_apply(&e.cpu, w.h, c.h, a.h, g.h, 0.1f, ftrl[f][1], ftrl[f][2],
                                    ftrl[f][0], ni));
            CK(&e, e.kg->ftrl_apply(&e.gpu, w.d, c.d, a.d, g.d, 0.1f, ftrl[f][1], ftrl[f][2],
                                    ftrl[f][0], ni));
            cmp(&e, "ftrl_apply w", n, &w);
            cmp(&e, "ftrl_apply accum", n, &c);
            cmp(&e, "ftrl_apply linear", n, &a);
        }
        CK(&e, e.kc->ema_apply(&e.cpu, a.h, w.h, 0.01f, ni));
        CK(&e, e.kg->ema_apply(&e.gpu, a.d, w.d, 0.01f, ni));
        cmp(&e, "ema_apply", n, &a);
        rm(&e, &w); rm(&e, &g); rm(&e, &a); rm(&e, &b); rm(&e, &c); rm(&e, &pw);
    }
    /* n = 0 is a no-op, n < 0 an error. */
    CK(&e, e.kg->ema_apply(&e.gpu, NULL, NULL, 0.5f, 0));
    ck_assert_int_eq(e.kg->ema_apply(&e.gpu, NULL, NULL, 0.5f, -1), SN_ERR_INVALID_ARG);
    dev2_close(&e, "kernels");
}
END_TEST

/* ---- sn_optim and sn_ema on both devices ----------------------------------------------- */

typedef struct side {
    sn_ctx *ctx;
    sn_graph *g;
    sn_net *net;
} side;

static const struct { const char *scope, *leaf; int rank; int64_t dims[4]; } vars[] = {
    {"net/conv1", "weights", 4, {3, 3, 8, 16}},
    {"net/conv1", "biases", 1, {16, 0, 0, 0}},
    {"net/logits", "weights", 2, {300, 7, 0, 0}},
};
enum { NV = (int)(sizeof vars / sizeof vars[0]) };

static size_t numel(int v) {
    size_t n = 1;
    for (int d = 0; d < vars[v].rank; d++) n *= (size_t)vars[v].dims[d];
    return n;
}

static side side_open(sn_device dev) {
    side s = {0};
    sn_ctx_params p = sn_ctx_params_default();
    p.device = dev;
    p.threads = 2;
    p.seed = 7;
    ck_assert_int_eq(sn_ctx_new(&p, &s.ctx), SN_OK);
    ck_assert_int_eq(sn_graph_new(s.ctx, &s.g), SN_OK);
    sn_init init = sn_init_random_uniform(-1.0f, 1.0f);
    for (int v = 0; v < NV; v++) {
        sn_scope_push(s.g, vars[v].scope);
        sn_variable(s.g, vars[v].leaf, vars[v].rank, vars[v].dims, &init,
                    SN_VAR_TRAINABLE | SN_VAR_MODEL);
        sn_scope_pop(s.g);
    }
    sn_compile_params cp = sn_compile_params_default();
    ck_assert_msg(sn_net_compile(s.g, &cp, &s.net) == SN_OK, "%s", sn_ctx_errmsg(s.ctx));
    return s;
}

static void side_close(side *s) {
    sn_net_free(s->net);
    sn_graph_free(s->g);
    sn_ctx_free(s->ctx);
}

static void side_grads(side *s, uint64_t seed) {
    for (int v = 0; v < NV; v++) {
        size_t n = numel(v);
        float *g = malloc(n * sizeof(float));
        ck_assert_ptr_nonnull(g);
        tu_fill(g, n, seed + (uint64_t)v);
        sn_node node = s->g->vars[v];
        ck_assert_int_eq(s->net->k->to_dev(&s->net->dev, s->net->grad[node], g,
                                           n * sizeof(float)), SN_OK);
        free(g);
    }
}

static double cmp_tensors(const char *what, const sn_tensor *gpu, const sn_tensor *cpu) {
    ck_assert_int_eq(sn_tensor_numel(gpu), sn_tensor_numel(cpu));
    double err = tu_max_rel_err(sn_tensor_data(gpu), sn_tensor_data(cpu),
                                (size_t)sn_tensor_numel(cpu));
    ck_assert_msg(err <= TOL, "%s: relative difference %.3g > %g", what, err, TOL);
    return err;
}

START_TEST(test_cuda_optim_steps) {
    if (sn_cuda_device_count() <= 0) {
        printf("[cuda_optim] optimizer steps skipped: no CUDA device\n");
        return;
    }
    double worst = 0;
    for (int kind = SN_OPTIM_SGD; kind <= SN_OPTIM_FTRL; kind++) {
        side c = side_open(SN_DEVICE_CPU), g = side_open(SN_DEVICE_CUDA);
        sn_optim_params p = sn_optim_params_tf1((sn_optim_kind)kind);
        p.nesterov = kind == SN_OPTIM_MOMENTUM;
        sn_optim *oc = NULL, *og = NULL;
        ck_assert_int_eq(sn_optim_new(c.net, &p, &oc), SN_OK);
        ck_assert_msg(sn_optim_new(g.net, &p, &og) == SN_OK, "%s", sn_ctx_errmsg(g.ctx));
        sn_ema *ec = NULL, *eg = NULL;
        ck_assert_int_eq(sn_ema_new(c.net, 0.99f, SN_VAR_MODEL, &ec), SN_OK);
        ck_assert_int_eq(sn_ema_new(g.net, 0.99f, SN_VAR_MODEL, &eg), SN_OK);
        for (int t = 1; t <= 5; t++) {
            side_grads(&c, 50 * (uint64_t)t);
            side_grads(&g, 50 * (uint64_t)t);
            float lr = 0.02f * (float)t;
            ck_assert_int_eq(sn_optim_step(oc, lr), SN_OK);
            ck_assert_msg(sn_optim_step(og, lr) == SN_OK, "%s", sn_ctx_errmsg(g.ctx));
            ck_assert_int_eq(sn_ema_update(ec, sn_optim_global_step(oc)), SN_OK);
            ck_assert_int_eq(sn_ema_update(eg, sn_optim_global_step(og)), SN_OK);
        }
        char what[160];
        for (int v = 0; v < NV; v++) {
            const char *name = sn_node_name(c.g, c.g->vars[v]);
            sn_tensor *tc = NULL, *tg = NULL;
            ck_assert_int_eq(sn_net_get_var(c.net, name, &tc), SN_OK);
            ck_assert_int_eq(sn_net_get_var(g.net, name, &tg), SN_OK);
            snprintf(what, sizeof what, "%s %s", sn_optim_kind_name(p.kind), name);
            worst = fmax(worst, cmp_tensors(what, tg, tc));
            sn_tensor_free(tc);
            sn_tensor_free(tg);
        }
        ck_assert_int_eq(sn_optim_num_slots(og), sn_optim_num_slots(oc));
        for (int s = 0; s < sn_optim_num_slots(oc); s++) {
            sn_slot_info info;
            ck_assert_int_eq(sn_optim_slot(oc, s, &info), SN_OK);
            sn_tensor *tc = NULL, *tg = NULL;
            ck_assert_int_eq(sn_optim_get_slot(oc, info.name, &tc), SN_OK);
            ck_assert_int_eq(sn_optim_get_slot(og, info.name, &tg), SN_OK);
            snprintf(what, sizeof what, "%s %s", sn_optim_kind_name(p.kind), info.name);
            worst = fmax(worst, cmp_tensors(what, tg, tc));
            sn_tensor_free(tc);
            sn_tensor_free(tg);
        }
        for (int s = 0; s < sn_ema_num_slots(ec); s++) {
            sn_slot_info info;
            ck_assert_int_eq(sn_ema_slot(ec, s, &info), SN_OK);
            sn_tensor *tc = NULL, *tg = NULL;
            ck_assert_int_eq(sn_ema_get_slot(ec, info.name, &tc), SN_OK);
            ck_assert_int_eq(sn_ema_get_slot(eg, info.name, &tg), SN_OK);
            worst = fmax(worst, cmp_tensors(info.name, tg, tc));
            sn_tensor_free(tc);
            sn_tensor_free(tg);
        }
        sn_ema_free(ec);
        sn_ema_free(eg);
        sn_optim_free(oc);
        sn_optim_free(og);
        side_close(&c);
        side_close(&g);
    }
    printf("[cuda_optim] optimizer steps: worst relative difference %.3g\n", worst);
}
END_TEST

Suite *suite_cuda_optim(void) {
    Suite *s = suite_create("cuda_optim");
    TCase *tc = tcase_create("parity");
    tcase_set_timeout(tc, 300);   /* the first CUDA call loads the runtime */
    tcase_add_test(tc, test_cuda_optim_kernels);
    tcase_add_test(tc, test_cuda_optim_steps);
    suite_add_tcase(s, tc);
    return s;
}

#else /* !SN_WITH_CUDA */

START_TEST(test_cuda_optim_skipped) {
    printf("[cuda_optim] parity tests skipped: built without CUDA (make CUDA=1)\n");
}
END_TEST

Suite *suite_cuda_optim(void) {
    Suite *s = suite_create("cuda_optim");
    TCase *tc = tcase_create("parity");
    tcase_add_test(tc, test_cuda_optim_skipped);
    suite_add_tcase(s, tc);
    return s;
}

#endif
