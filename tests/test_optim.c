/* test_optim.c: optimizers, learning-rate schedules and moving averages (suite "optim").
 *
 * Two kinds of checks:
 *  - against references written here in double precision from TF1's formulas (several
 *    steps, every optimizer, slots included), plus slot names, trainable_scopes, schedules,
 *    the moving average and bad input;
 *  - against TensorFlow itself: tests/reference/optim_steps.json, written by
 *    tests/reference/make_optim_fixtures.py with the pinned TensorFlow (tf.compat.v1
 *    optimizers configured as train_image_classifier does, three steps each,
 *    ExponentialMovingAverage, exponential_decay / polynomial_decay).  Every variable and
 *    optimizer variable must agree within 1e-6 relative (max|ours - TF| / max|TF| per
 *    tensor).  SN_OPTIM_FIXTURE overrides the file's path.
 * The CPU backend only; tests/test_cuda_optim.c compares the CUDA kernels with these. */
#include <check.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "testutil.h"
#include "../lib/graph.h"

#define TF_TOL 1e-6
#define DOUBLE_TOL 1e-5

/* ---- a net of bare variables, with gradients set by hand ------------------------------- */

typedef struct rig_var {
    const char *scope, *leaf, *name;
    int rank;
    int64_t dims[2];
    unsigned flags;
} rig_var;

enum { TRAIN = SN_VAR_TRAINABLE | SN_VAR_MODEL };
static const rig_var rig_vars[] = {
    {"net", "w", "net/w", 2, {3, 4}, TRAIN},
    {"net", "b", "net/b", 1, {5, 0}, TRAIN},
    {"frozen", "v", "frozen/v", 1, {2, 0}, TRAIN},
    {"net/BatchNorm", "moving_mean", "net/BatchNorm/moving_mean", 1, {5, 0},
     SN_VAR_MODEL | SN_VAR_MOVING},
};
enum { N_RIG = (int)(sizeof rig_vars / sizeof rig_vars[0]), N_TRAIN = 3 };

typedef struct rig {
    sn_ctx *ctx;
    sn_graph *g;
    sn_net *net;
} rig;

static size_t rig_numel(int v) {
    size_t n = 1;
    for (int d = 0; d < rig_vars[v].rank; d++) n *= (size_t)rig_vars[v].dims[d];
    return n;
}

static rig rig_open(int backward) {
    rig r = {0};
    r.ctx = tu_ctx();
    ck_assert_int_eq(sn_graph_new(r.ctx, &r.g), SN_OK);
    sn_init zeros = sn_init_zeros();
    for (int v = 0; v < N_RIG; v++) {
        sn_scope_push(r.g, rig_vars[v].scope);
        sn_variable(r.g, rig_vars[v].leaf, rig_vars[v].rank, rig_vars[v].dims, &zeros,
                    rig_vars[v].flags);
        sn_scope_pop(r.g);
    }
    sn_compile_params cp = sn_compile_params_default();
    cp.backward = backward;
    ck_assert_msg(sn_net_compile(r.g, &cp, &r.net) == SN_OK, "%s", sn_ctx_errmsg(r.ctx));
    return r;
}

static void rig_close(rig *r) {
    sn_net_free(r->net);
    sn_graph_free(r->g);
    sn_ctx_free(r->ctx);
}

static int rig_index(const char *name) {
    for (int v = 0; v < N_RIG; v++)
        if (strcmp(rig_vars[v].name, name) == 0) return v;
    ck_abort_msg("no rig variable '%s'", name);
    return -1;
}

static void set_var(rig *r, int v, const float *x) {
    sn_tensor *t = NULL;
    ck_assert_int_eq(sn_tensor_wrap(r->ctx, (void *)x, SN_DTYPE_F32, rig_vars[v].rank,
                                    rig_vars[v].dims, SN_BORROW, &t), SN_OK);
    ck_assert_int_eq(sn_net_set_var(r->net, rig_vars[v].name, t), SN_OK);
    sn_tensor_free(t);
}

static void get_var(rig *r, int v, float *x) {
    sn_tensor *t = NULL;
    ck_assert_int_eq(sn_net_get_var(r->net, rig_vars[v].name, &t), SN_OK);
    memcpy(x, sn_tensor_data(t), rig_numel(v) * sizeof(float));
    sn_tensor_free(t);
}

/* What sn_net_backward would leave: the gradient of a trainable variable. */
static void set_grad(rig *r, int v, const float *g) {
    sn_node n = sn_graph_find(r->g, rig_vars[v].name);
    ck_assert_int_ge(n, 0);
    ck_assert_ptr_nonnull(r->net->grad[n]);
    ck_assert_int_eq(r->net->k->to_dev(&r->net->dev, r->net->grad[n], g,
                                       rig_numel(v) * sizeof(float)), SN_OK);
}

static void get_slot(sn_optim *opt, const char *name, float *x, size_t n) {
    sn_tensor *t = NULL;
    ck_assert_msg(sn_optim_get_slot(opt, name, &t) == SN_OK, "get_slot %s", name);
    ck_assert_int_eq(sn_tensor_numel(t), (int64_t)n);
    memcpy(x, sn_tensor_data(t), n * sizeof(float));
    sn_tensor_free(t);
}

/* max|a - b| / max|b| over one tensor (absolute when b is all zeros). */
static double norm_rel_err(const float *a, const double *b, size_t n) {
    double diff = 0, scale = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (d > diff || d != d) diff = d != d ? INFINITY : d;
        if (fabs(b[i]) > scale) scale = fabs(b[i]);
    }
    return scale > 0 ? diff / scale : diff;
}

static double norm_rel_err_f(const float *a, const float *b, size_t n) {
    double *bd = malloc((n ? n : 1) * sizeof *bd);
    ck_assert_ptr_nonnull(bd);
    for (size_t i = 0; i < n; i++) bd[i] = b[i];
    double e = norm_rel_err(a, bd, n);
    free(bd);
    return e;
}

/* ---- names and parameters ---------------------------------------------------------------- */

START_TEST(test_optim_names) {
    const char *flags[] = {"sgd", "momentum", "rmsprop", "adam", "adagrad", "adadelta", "ftrl"};
    for (int k = 0; k < 7; k++) {
        sn_optim_kind kind = (sn_optim_kind)99;
        ck_assert_int_eq(sn_optim_kind_from_name(flags[k], &kind), SN_OK);
        ck_assert_int_eq(kind, k);
        ck_assert_str_eq(sn_optim_kind_name(kind), flags[k]);
    }
    sn_optim_kind kind;
    ck_assert_int_eq(sn_optim_kind_from_name("Adam", &kind), SN_ERR_NOT_FOUND);
    ck_assert_int_eq(sn_optim_kind_from_name(NULL, &kind), SN_ERR_NOT_FOUND);
    ck_assert_ptr_null(sn_optim_kind_name((sn_optim_kind)7));
    const char *lr[] = {"fixed", "exponential", "polynomial"};
    for (int k = 0; k < 3; k++) {
        sn_lr_decay t = (sn_lr_decay)9;
        ck_assert_int_eq(sn_lr_decay_from_name(lr[k], &t), SN_OK);
        ck_assert_int_eq(t, k);
        ck_assert_str_eq(sn_lr_decay_name(t), lr[k]);
    }
    sn_lr_decay t;
    ck_assert_int_eq(sn_lr_decay_from_name("cosine", &t), SN_ERR_NOT_FOUND);
    ck_assert_ptr_null(sn_lr_decay_name((sn_lr_decay)3));

    /* train_image_classifier's flags, then TF1's constructor defaults. */
    sn_optim_params p = sn_optim_params_default(SN_OPTIM_RMSPROP);
    ck_assert_int_eq(p.kind, SN_OPTIM_RMSPROP);
    ck_assert(p.epsilon == 1.0f && p.rmsprop_decay == 0.9f && p.rmsprop_momentum == 0.9f);
    ck_assert(p.momentum == 0.9f && p.nesterov == 0);
    ck_assert(p.adam_beta1 == 0.9f && p.adam_beta2 == 0.999f && p.adadelta_rho == 0.95f);
    ck_assert(p.adagrad_initial_accumulator == 0.1f && p.ftrl_initial_accumulator == 0.1f);
    ck_assert(p.ftrl_lr_power == -0.5f && p.ftrl_l1 == 0.0f && p.ftrl_l2 == 0.0f);
    ck_assert(p.name == NULL && p.trainable_scopes == NULL);
    p = sn_optim_params_tf1(SN_OPTIM_RMSPROP);
    ck_assert(p.epsilon == 1e-10f && p.rmsprop_momentum == 0.0f && p.rmsprop_decay == 0.9f);
    ck_assert(sn_optim_params_tf1(SN_OPTIM_ADAM).epsilon == 1e-8f);
    ck_assert(sn_optim_params_tf1(SN_OPTIM_ADADELTA).epsilon == 1e-8f);
}
END_TEST

/* ---- every optimizer against a double-precision reference ------------------------------ */

typedef struct dcase {
    const char *label;
    sn_optim_kind kind;
    int tf1;                /* TF1's defaults instead of TF-slim's flags */
    int nesterov;
    float l1, l2, lr_power; /* FTRL overrides when lr_power != 0 */
} dcase;

static const dcase dcases[] = {
    {"sgd", SN_OPTIM_SGD, 0, 0, 0, 0, 0},
    {"momentum", SN_OPTIM_MOMENTUM, 0, 0, 0, 0, 0},
    {"momentum nesterov", SN_OPTIM_MOMENTUM, 0, 1, 0, 0, 0},
    {"rmsprop", SN_OPTIM_RMSPROP, 0, 0, 0, 0, 0},
    {"rmsprop tf1", SN_OPTIM_RMSPROP, 1, 0, 0, 0, 0},
    {"adam", SN_OPTIM_ADAM, 0, 0, 0, 0, 0},
    {"adam tf1", SN_OPTIM_ADAM, 1, 0, 0, 0, 0},
    {"adagrad", SN_OPTIM_ADAGRAD, 0, 0, 0, 0, 0},
    {"adadelta", SN_OPTIM_ADADELTA, 0, 0, 0, 0, 0},
    {"adadelta tf1", SN_OPTIM_ADADELTA, 1, 0, 0, 0, 0},
    {"ftrl", SN_OPTIM_FTRL, 0, 0, 0, 0, 0},
    {"ftrl l1 l2", SN_OPTIM_FTRL, 0, 0, 0.02f, 0.05f, -0.5f},
    {"ftrl power -0.7", SN_OPTIM_FTRL, 0, 0, 0.01f, 0.1f, -0.7f},
    {"ftrl power 0", SN_OPTIM_FTRL, 0, 0, 0.0f, 0.0f, -1e-30f},
};
enum { N_DCASES = (int)(sizeof dcases / sizeof dcases[0]) };

/* State of one variable in double: w and up to two slots. */
typedef struct dstate {
    double *w, *s0, *s1;
} dstate;

/* One TF1 update of n elements, in double, written from the papers' / TF1's documented
 * formulas (not from the kernels).  t is the 1-based step (Adam's bias correction). */
static void ref_step(const sn_optim_params *p, dstate *x, const float *g, size_t n, double lr,
                     int t) {
    for (size_t i = 0; i < n; i++) {
        double gi = g[i], *w = &x->w[i];
        switch (p->kind) {
        case SN_OPTIM_SGD:
            *w -= lr * gi;
            break;
        case SN_OPTIM_MOMENTUM: {
            double mu = p->momentum, *a = &x->s0[i];
            *a = mu * *a + gi;
            *w -= p->nesterov ? lr * gi + lr * mu * *a : lr * *a;
            break;
        }
        case SN_OPTIM_RMSPROP: {
            double rho = p->rmsprop_decay, *ms = &x->s0[i], *mom = &x->s1[i];
            *ms = rho * *ms + (1 - rho) * gi * gi;
            *mom = p->rmsprop_momentum * *mom + lr * gi / sqrt(*ms + p->epsilon);
            *w -= *mom;
            break;
        }
        case SN_OPTIM_ADAM: {
            double b1 = p->adam_beta1, b2 = p->adam_beta2, *m = &x->s0[i], *v = &x->s1[i];
            double lr_t = lr * sqrt(1 - pow(b2, t)) / (1 - pow(b1, t));
            *m = b1 * *m + (1 - b1) * gi;
            *v = b2 * *v + (1 - b2) * gi * gi;
            *w -= lr_t * *m / (sqrt(*v) + p->epsilon);
            break;
        }
        case SN_OPTIM_ADAGRAD: {
            double *acc = &x->s0[i];
            *acc += gi * gi;
            *w -= lr * gi / sqrt(*acc);
            break;
        }
        case SN_OPTIM_ADADELTA: {
            double rho = p->adadelta_rho, eps = p->epsilon, *acc = &x->s0[i], *up = &x->s1[i];
            *acc = rho * *acc + (1 - rho) * gi * gi;
            double u = sqrt(*up + eps) / sqrt(*acc + eps) * gi;
            *w -= lr * u;
            *up = rho * *up + (1 - rho) * u * u;
            break;
        }
        case SN_OPTIM_FTRL: {
            double q = -(double)p->ftrl_lr_power, l1 = p->ftrl_l1, l2 = p->ftrl_l2;
            double *nacc = &x->s0[i], *z = &x->s1[i];
            double n1 = *nacc + gi * gi;
            double sigma = (pow(n1, q) - pow(*nacc, q)) / lr;
            *z += gi - sigma * *w;
            double sgn = *z > 0 ? 1 : (*z < 0 ? -1 : 0);
            *w = fabs(*z) > l1 ? (sgn * l1 - *z) / (pow(n1, q) / lr + 2 * l2) : 0.0;
            *nacc = n1;
            break;
        }
        }
    }
}

START_TEST(test_optim_vs_double) {
    const dcase *c = &dcases[_i];
    rig r = rig_open(1);
    sn_optim_params p = c->tf1 ? sn_optim_params_tf1(c->kind) : sn_optim_params_default(c->kind);
    p.nesterov = c->nesterov;
    if (c->lr_power != 0) {
        p.ftrl_l1 = c->l1;
        p.ftrl_l2 = c->l2;
        p.ftrl_lr_power = c->lr_power;
    }
    float init[N_TRAIN][12];
    dstate x[N_TRAIN];
    double s_init0 = c->kind == SN_OPTIM_RMSPROP ? 1.0
                     : c->kind == SN_OPTIM_ADAGRAD ? p.adagrad_initial_accumulator
                     : c->kind == SN_OPTIM_FTRL    ? p.ftrl_initial_accumulator : 0.0;
    for (int v = 0; v < N_TRAIN; v++) {
        size_t n = rig_numel(v);
        tu_fill(init[v], n, 100 + (uint64_t)v);
        set_var(&r, v, init[v]);
        x[v].w = calloc(n, sizeof(double));
        x[v].s0 = calloc(n, sizeof(double));
        x[v].s1 = calloc(n, sizeof(double));
        for (size_t i = 0; i < n; i++) {
            x[v].w[i] = init[v][i];
            x[v].s0[i] = s_init0;
        }
    }
    sn_optim *opt = NULL;
    ck_assert_msg(sn_optim_new(r.net, &p, &opt) == SN_OK, "%s", sn_ctx_errmsg(r.ctx));
    ck_assert_int_eq(sn_optim_num_vars(opt), N_TRAIN);
    const int steps = 6;
    double worst = 0;
    for (int t = 1; t <= steps; t++) {
        float lr = 0.05f * (float)t;   /* a changing rate, as a schedule gives */
        for (int v = 0; v < N_TRAIN; v++) {
            float g[12];
            size_t n = rig_numel(v);
            tu_fill(g, n, 1000 * (uint64_t)t + (uint64_t)v);
            if (t == 3) g[0] = 0.0f;   /* a zero gradient on the way */
            set_grad(&r, v, g);
            ref_step(&p, &x[v], g, n, lr, t);
        }
        ck_assert_int_eq(sn_optim_step(opt, lr), SN_OK);
        ck_assert_int_eq(sn_optim_global_step(opt), t);
        for (int v = 0; v < N_TRAIN; v++) {
            size_t n = rig_numel(v);
            float got[12];
            get_var(&r, v, got);
            double e = norm_rel_err(got, x[v].w, n);
            ck_assert_msg(e <= DOUBLE_TOL, "%s step %d %s: rel err %.3g", c->label, t,
                          rig_vars[v].name, e);
            if (e > worst) worst = e;
            sn_slot_info info;
            for (int k = 0; k < sn_optim_num_slots(opt); k++) {
                ck_assert_int_eq(sn_optim_slot(opt, k, &info), SN_OK);
                if (!info.var || strcmp(info.var, rig_vars[v].name) != 0) continue;
                size_t len = strlen(info.name);
                int which = len > 2 && strcmp(info.name + len - 2, "_1") == 0;
                get_slot(opt, info.name, got, n);
                e = norm_rel_err(got, which ? x[v].s1 : x[v].s0, n);
                ck_assert_msg(e <= DOUBLE_TOL, "%s step %d %s: rel err %.3g", c->label, t,
                              info.name, e);
                if (e > worst) worst = e;
            }
        }
        if (c->kind == SN_OPTIM_ADAM) {
            float bp;
            get_slot(opt, "beta1_power", &bp, 1);
            ck_assert_double_le(fabs(bp - pow(p.adam_beta1, t + 1)), 1e-6);
            get_slot(opt, "beta2_power", &bp, 1);
            ck_assert_double_le(fabs(bp - pow(p.adam_beta2, t + 1)), 1e-6);
        }
    }
    /* The variable outside the trainable set is untouched. */
    float mm[5];
    get_var(&r, 3, mm);
    for (int i = 0; i < 5; i++) ck_assert(mm[i] == 0.0f);
    printf("[optim] %-18s vs double, %d steps: max rel err %.2g\n", c->label, steps, worst);
    sn_optim_free(opt);
    for (int v = 0; v < N_TRAIN; v++) {
        free(x[v].w);
        free(x[v].s0);
        free(x[v].s1);
    }
    rig_close(&r);
}
END_TEST

/* ---- slots: names, order, initial values, get/set --------------------------------------- */

START_TEST(test_optim_slots) {
    rig r = rig_open(1);
    static const struct {
        sn_optim_kind kind;
        const char *s0, *s1;
        float init0;
    } kinds[] = {
        {SN_OPTIM_SGD, NULL, NULL, 0},
        {SN_OPTIM_MOMENTUM, "Momentum", NULL, 0},
        {SN_OPTIM_RMSPROP, "RMSProp", "RMSProp_1", 1.0f},
        {SN_OPTIM_ADAM, "Adam", "Adam_1", 0},
        {SN_OPTIM_ADAGRAD, "Adagrad", NULL, 0.1f},
        {SN_OPTIM_ADADELTA, "Adadelta", "Adadelta_1", 0},
        {SN_OPTIM_FTRL, "Ftrl", "Ftrl_1", 0.1f},
    };
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        sn_optim_params p = sn_optim_params_default(kinds[k].kind);
        sn_optim *opt = NULL;
        ck_assert_int_eq(sn_optim_new(r.net, &p, &opt), SN_OK);
        ck_assert_str_eq(sn_optim_get_params(opt)->name,
                         kinds[k].s0 ? kinds[k].s0 : "GradientDescent");
        int per = kinds[k].s1 ? 2 : kinds[k].s0 ? 1 : 0;
        int non = kinds[k].kind == SN_OPTIM_ADAM ? 2 : 0;
        ck_assert_int_eq(sn_optim_num_slots(opt), non + per * N_TRAIN);
        sn_slot_info info;
        if (non) {
            ck_assert_int_eq(sn_optim_slot(opt, 0, &info), SN_OK);
            ck_assert_str_eq(info.name, "beta1_power");
            ck_assert_ptr_null(info.var);
            ck_assert_int_eq(info.rank, 0);
            ck_assert_int_eq(sn_optim_slot(opt, 1, &info), SN_OK);
            ck_assert_str_eq(info.name, "beta2_power");
            float b[1];
            get_slot(opt, "beta1_power", b, 1);
            ck_assert(b[0] == 0.9f);
            get_slot(opt, "beta2_power", b, 1);
            ck_assert(b[0] == 0.999f);
        }
        for (int v = 0; v < N_TRAIN && per; v++) {
            char want[128];
            ck_assert_int_eq(sn_optim_slot(opt, non + v * per, &info), SN_OK);
            snprintf(want, sizeof want, "%s/%s", rig_vars[v].name, kinds[k].s0);
            ck_assert_str_eq(info.name, want);
            ck_assert_str_eq(info.var, rig_vars[v].name);
            ck_assert_int_eq(info.rank, rig_vars[v].rank);
            for (int d = 0; d < info.rank; d++) ck_assert_int_eq(info.dims[d], rig_vars[v].dims[d]);
            ck_assert_int_eq(sn_optim_find_slot(opt, want), non + v * per);
            float s[12];
            get_slot(opt, want, s, rig_numel(v));
            for (size_t i = 0; i < rig_numel(v); i++) ck_assert(s[i] == kinds[k].init0);
            if (per == 2) {
                ck_assert_int_eq(sn_optim_slot(opt, non + v * per + 1, &info), SN_OK);
                snprintf(want, sizeof want, "%s/%s", rig_vars[v].name, kinds[k].s1);
                ck_assert_str_eq(info.name, want);
                get_slot(opt, want, s, rig_numel(v));
                for (size_t i = 0; i < rig_numel(v); i++) ck_assert(s[i] == 0.0f);
            }
        }
        ck_assert_int_eq(sn_optim_slot(opt, sn_optim_num_slots(opt), &info),
                         SN_ERR_INVALID_ARG);
        ck_assert_int_eq(sn_optim_slot(opt, -1, &info), SN_ERR_INVALID_ARG);
        ck_assert_int_eq(sn_optim_find_slot(opt, "net/w/Nope"), -1);
        if (per == 0) ck_assert_uint_eq(sn_optim_memory(opt), 0);
        else ck_assert_uint_ge(sn_optim_memory(opt), (non + per * 19) * sizeof(float));
        sn_optim_free(opt);
    }

    /* A custom name renames the slots; set/get round trip; shape and name errors. */
    sn_optim_params p = sn_optim_params_default(SN_OPTIM_RMSPROP);
    p.name = "MyRMS";
    sn_optim *opt = NULL;
    ck_assert_int_eq(sn_optim_new(r.net, &p, &opt), SN_OK);
    ck_assert_int_ge(sn_optim_find_slot(opt, "net/b/MyRMS"), 0);
    ck_assert_int_ge(sn_optim_find_slot(opt, "net/b/MyRMS_1"), 0);
    float vals[5] = {1, 2, 3, 4, 5};
    int64_t d5[1] = {5}, d4[1] = {4};
    sn_tensor *t = NULL, *back = NULL;
    ck_assert_int_eq(sn_tensor_wrap(r.ctx, vals, SN_DTYPE_F32, 1, d5, SN_BORROW, &t), SN_OK);
    ck_assert_int_eq(sn_optim_set_slot(opt, "net/b/MyRMS_1", t), SN_OK);
    ck_assert_int_eq(sn_optim_get_slot(opt, "net/b/MyRMS_1", &back), SN_OK);
    ck_assert_int_eq(sn_tensor_rank(back), 1);
    ck_assert_int_eq(sn_tensor_dim(back, 0), 5);
    ck_assert_mem_eq(sn_tensor_data(back), vals, sizeof vals);
    sn_tensor_free(back);
    ck_assert_int_eq(sn_optim_set_slot(opt, "net/w/MyRMS", t), SN_ERR_SHAPE);
    ck_assert_ptr_nonnull(strstr(sn_ctx_errmsg(r.ctx), "[3,4]"));
    ck_assert_int_eq(sn_optim_set_slot(opt, "net/b/RMSProp", t), SN_ERR_NOT_FOUND);
    ck_assert_int_eq(sn_optim_get_slot(opt, "nope", &back), SN_ERR_NOT_FOUND);
    ck_assert_ptr_null(back);
    sn_tensor_free(t);
    ck_assert_int_eq(sn_tensor_wrap(r.ctx, vals, SN_DTYPE_F32, 1, d4, SN_BORROW, &t), SN_OK);
    ck_assert_int_eq(sn_optim_set_slot(opt, "net/b/MyRMS", t), SN_ERR_SHAPE);
    sn_tensor_free(t);
    int32_t ivals[5] = {0};
    ck_assert_int_eq(sn_tensor_wrap(r.ctx, ivals, SN_DTYPE_I32, 1, d5, SN_BORROW, &t), SN_OK);
    ck_assert_int_eq(sn_optim_set_slot(opt, "net/b/MyRMS", t), SN_ERR_SHAPE);
    sn_tensor_free(t);
    sn_optim_set_global_step(opt, 41);
    float g[12] = {0};
    for (int v = 0; v < N_TRAIN; v++) set_grad(&r, v, g);
    ck_assert_int_eq(sn_optim_step(opt, 0.1f), SN_OK);
    ck_assert_int_eq(sn_optim_global_step(opt), 42);
    sn_optim_free(opt);
    sn_optim_free(NULL);
    rig_close(&r);
}
END_TEST

/* ---- trainable_scopes ----------------------------------------------------------------------- */

/* The trainable set for `scopes` as a comma-joined list of names, or the status. */
static sn_status scoped(rig *r, const char *scopes, char *out, size_t len) {
    sn_optim_params p = sn_optim_params_default(SN_OPTIM_MOMENTUM);
    p.trainable_scopes = scopes;
    sn_optim *opt = NULL;
    sn_status st = sn_optim_new(r->net, &p, &opt);
    out[0] = '\0';
    if (st != SN_OK) return st;
    ck_assert_ptr_null(sn_optim_var_name(opt, sn_optim_num_vars(opt)));
    for (int i = 0; i < sn_optim_num_vars(opt); i++) {
        if (i) strncat(out, ",", len - strlen(out) - 1);
        strncat(out, sn_optim_var_name(opt, i), len - strlen(out) - 1);
    }
    ck_assert_int_eq(sn_optim_num_slots(opt), sn_optim_num_vars(opt));
    sn_optim_free(opt);
    return SN_OK;
}

START_TEST(test_optim_scopes) {
    rig r = rig_open(1);
    char got[256];
    static const struct { const char *scopes, *want; } ok[] = {
        {NULL, "net/w,net/b,frozen/v"},
        {"", "net/w,net/b,frozen/v"},
        {"net", "net/w,net/b"},            /* the non-trainable moving_mean is never in */
        {"frozen", "frozen/v"},
        {" frozen ,\tnet/b ", "net/b,frozen/v"},   /* stripped; creation order */
        {"net/w,net/w,net/.", "net/w,net/b"},       /* a union: each variable once */
        {"net/b:0", "net/b"},              /* TF matches "<name>:0" */
        {"net/b$,frozen", "frozen/v"},     /* so "$" after the name never matches */
        {"(net|frozen)/[vw]", "net/w,frozen/v"},
        {",,net/b,", "net/b"},
    };
    for (size_t k = 0; k < sizeof ok / sizeof ok[0]; k++) {
        ck_assert_msg(scoped(&r, ok[k].scopes, got, sizeof got) == SN_OK, "scopes '%s': %s",
                      ok[k].scopes ? ok[k].scopes : "(null)", sn_ctx_errmsg(r.ctx));
        ck_assert_msg(strcmp(got, ok[k].want) == 0, "scopes '%s': got %s, want %s",
                      ok[k].scopes ? ok[k].scopes : "(null)", got, ok[k].want);
    }
    /* Anchored at the start: "w" and "b" occur inside names but never at their start. */
    ck_assert_int_eq(scoped(&r, "w,b", got, sizeof got), SN_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(sn_ctx_errmsg(r.ctx), "no variables to optimize"));
    ck_assert_int_eq(scoped(&r, "net/BatchNorm", got, sizeof got), SN_ERR_INVALID_ARG);
    ck_assert_int_eq(scoped(&r, "net/(w", got, sizeof got), SN_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(sn_ctx_errmsg(r.ctx), "net/(w"));

    /* Only the selected variables move. */
    sn_optim_params p = sn_optim_params_default(SN_OPTIM_SGD);
    p.trainable_scopes = "net/b";
    sn_optim *opt = NULL;
    ck_assert_int_eq(sn_optim_new(r.net, &p, &opt), SN_OK);
    float ones[12], got_v[12];
    for (int i = 0; i < 12; i++) ones[i] = 1.0f;
    for (int v = 0; v < N_TRAIN; v++) set_grad(&r, v, ones);
    ck_assert_int_eq(sn_optim_step(opt, 0.5f), SN_OK);
    for (int v = 0; v < N_TRAIN; v++) {
        get_var(&r, v, got_v);
        for (size_t i = 0; i < rig_numel(v); i++)
            ck_assert(got_v[i] == (v == 1 ? -0.5f : 0.0f));
    }
    sn_optim_free(opt);
    rig_close(&r);
}
END_TEST

/* ---- bad input ------------------------------------------------------------------------------ */

START_TEST(test_optim_bad_params) {
    rig r = rig_open(1);
    sn_optim *opt = (sn_optim *)&r;
    sn_optim_params p = sn_optim_params_default((sn_optim_kind)7);
    ck_assert_int_eq(sn_optim_new(r.net, &p, &opt), SN_ERR_INVALID_ARG);
    ck_assert_ptr_null(opt);
    p = sn_optim_params_default(SN_OPTIM_ADAGRAD);
    p.adagrad_initial_accumulator = 0.0f;
    ck_assert_int_eq(sn_optim_new(r.net, &p, &opt), SN_ERR_INVALID_ARG);
    p = sn_optim_params_default(SN_OPTIM_FTRL);
    p.ftrl_lr_power = 0.5f;
    ck_assert_int_eq(sn_optim_new(r.net, &p, &opt), SN_ERR_INVALID_ARG);
    p = sn_optim_params_default(SN_OPTIM_FTRL);
    p.ftrl_initial_accumulator = -1.0f;
    ck_assert_int_eq(sn_optim_new(r.net, &p, &opt), SN_ERR_INVALID_ARG);
    p = sn_optim_params_default(SN_OPTIM_FTRL);
    p.ftrl_l1 = -0.1f;
    ck_assert_int_eq(sn_optim_new(r.net, &p, &opt), SN_ERR_INVALID_ARG);
    p = sn_optim_params_default(SN_OPTIM_ADAM);
    p.name = "";
    ck_assert_int_eq(sn_optim_new(r.net, &p, &opt), SN_ERR_INVALID_ARG);
    ck_assert_int_eq(sn_optim_new(NULL, &p, &opt), SN_ERR_INVALID_ARG);
    ck_assert_int_eq(sn_optim_new(r.net, NULL, &opt), SN_ERR_INVALID_ARG);
    ck_assert_int_eq(sn_optim_step(NULL, 0.1f), SN_ERR_INVALID_ARG);
    rig_close(&r);

    /* Without gradients there is nothing to optimize. */
    r = rig_open(0);
    p = sn_optim_params_default(SN_OPTIM_SGD);
    ck_assert_int_eq(sn_optim_new(r.net, &p, &opt), SN_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(sn_ctx_errmsg(r.ctx), "backward = 0"));
    rig_close(&r);
}
END_TEST

/* ---- learning-rate schedules ---------------------------------------------------------------- */

START_TEST(test_lr_schedules) {
    /* decay_steps as train_image_classifier: int(samples * epochs / batch) [/ replicas]. */
    ck_assert_double_eq(sn_lr_decay_steps(3320, 2.0, 32, 1), 207.0);
    ck_assert_double_eq(sn_lr_decay_steps(3320, 2.0, 32, 2), 103.5);
    ck_assert_double_eq(sn_lr_decay_steps(28709, 2.5, 64, 1), 1121.0);
    ck_assert_double_eq(sn_lr_decay_steps(1000, 0.03, 32, 1), 0.0);
    ck_assert_double_eq(sn_lr_decay_steps(1000, 2.0, 0, 1), 0.0);

    sn_lr_params p = sn_lr_params_default();
    ck_assert_int_eq(p.type, SN_LR_EXPONENTIAL);
    ck_assert(p.learning_rate == 0.01f && p.end_learning_rate == 0.0001f);
    ck_assert(p.decay_factor == 0.94f && p.power == 1.0f && p.staircase == 1 && p.cycle == 0);
    ck_assert(isnan(sn_learning_rate(&p, 5)));       /* decay_steps not set yet */
    /* A power of two: 1/decay_steps is exact, so the float32 reciprocal TF's graph uses
     * (see sn_learning_rate) agrees with the true division here. */
    const double ds = 128, lr = p.learning_rate, f = p.decay_factor, end = p.end_learning_rate;
    p.decay_steps = ds;
    static const int64_t steps[] = {0, 1, 127, 128, 129, 250, 1000, 100000};
    for (size_t k = 0; k < sizeof steps / sizeof steps[0]; k++) {
        int64_t s = steps[k];
        double e = lr * pow(f, floor((double)s / ds));
        p.type = SN_LR_EXPONENTIAL;
        p.staircase = 1;
        ck_assert_double_le(fabs(sn_learning_rate(&p, s) - e), 1e-6 * e);
        p.staircase = 0;
        e = lr * pow(f, (double)s / ds);
        ck_assert_double_le(fabs(sn_learning_rate(&p, s) - e), 1e-5 * e);
        p.type = SN_LR_POLYNOMIAL;
        double q = (double)(s < ds ? s : ds) / ds;
        e = (lr - end) * (1 - q) + end;
        ck_assert_double_le(fabs(sn_learning_rate(&p, s) - e), 1e-6 * e);
        p.power = 2.0f;
        e = (lr - end) * (1 - q) * (1 - q) + end;
        ck_assert_double_le(fabs(sn_learning_rate(&p, s) - e), 1e-6 * e);
        p.cycle = 1;   /* the horizon grows to the next multiple of decay_steps */
        double d = s == 0 ? ds : ds * ceil((double)s / ds);
        e = (lr - end) * (1 - s / d) * (1 - s / d) + end;
        ck_assert_double_le(fabs(sn_learning_rate(&p, s) - e), 1e-6 * e);
        p.cycle = 0;
        p.power = 1.0f;
        p.type = SN_LR_FIXED;
        ck_assert(sn_learning_rate(&p, s) == 0.01f);
    }
    /* TF's graph multiplies by the float32 reciprocal of decay_steps: 41 * (1/41) < 1, so
     * the staircase first steps down at 42 (as the fixture from TensorFlow shows too). */
    p.type = SN_LR_EXPONENTIAL;
    p.staircase = 1;
    p.decay_steps = 41;
    ck_assert(sn_learning_rate(&p, 41) == 0.01f);
    ck_assert(sn_learning_rate(&p, 42) == 0.01f * 0.94f);
    ck_assert(isnan(sn_learning_rate(&p, -1)));
    ck_assert(isnan(sn_learning_rate(NULL, 1)));
    p.type = (sn_lr_decay)7;
    ck_assert(isnan(sn_learning_rate(&p, 1)));
    p.type = SN_LR_FIXED;
    p.decay_steps = 0;   /* fixed needs no decay_steps */
    ck_assert(sn_learning_rate(&p, 3) == 0.01f);
}
END_TEST

/* ---- moving averages ------------------------------------------------------------------------ */

START_TEST(test_ema) {
    ck_assert(sn_ema_decay_at(0.9999f, 0) == 0.1f);
    ck_assert(sn_ema_decay_at(0.9999f, -1) == 0.9999f);
    ck_assert(sn_ema_decay_at(0.5f, 100) == 0.5f);
    ck_assert(fabsf(sn_ema_decay_at(0.9999f, 90) - 0.91f) < 1e-7f);

    rig r = rig_open(1);
    float init[N_RIG][12];
    for (int v = 0; v < N_RIG; v++) {
        tu_fill(init[v], rig_numel(v), 300 + (uint64_t)v);
        set_var(&r, v, init[v]);
    }
    sn_ema *ema = (sn_ema *)&r;
    ck_assert_int_eq(sn_ema_new(r.net, 1.5f, SN_VAR_MODEL, &ema), SN_ERR_INVALID_ARG);
    ck_assert_ptr_null(ema);
    ck_assert_int_eq(sn_ema_new(r.net, 0.9f, SN_VAR_GLOBAL, &ema), SN_ERR_INVALID_ARG);
    /* slim.get_model_variables(): the moving statistics too. */
    ck_assert_int_eq(sn_ema_new(r.net, 0.99f, SN_VAR_MODEL, &ema), SN_OK);
    ck_assert_int_eq(sn_ema_num_slots(ema), N_RIG);
    sn_slot_info info;
    for (int v = 0; v < N_RIG; v++) {
        char want[128];
        snprintf(want, sizeof want, "%s/ExponentialMovingAverage", rig_vars[v].name);
        ck_assert_int_eq(sn_ema_slot(ema, v, &info), SN_OK);
        ck_assert_str_eq(info.name, want);
        ck_assert_str_eq(info.var, rig_vars[v].name);
        ck_assert_int_eq(sn_ema_find_slot(ema, want), v);
    }
    ck_assert_int_eq(sn_ema_slot(ema, N_RIG, &info), SN_ERR_INVALID_ARG);

    double shadow[N_RIG][12];
    for (int v = 0; v < N_RIG; v++)
        for (size_t i = 0; i < rig_numel(v); i++) shadow[v][i] = init[v][i];
    static const int64_t updates[] = {0, 1, 5, 50, 5000, -1};
    for (size_t k = 0; k < sizeof updates / sizeof updates[0]; k++) {
        int64_t nu = updates[k];
        double d = nu < 0 ? 0.99 : fmin(0.99, (1.0 + (double)nu) / (10.0 + (double)nu));
        for (int v = 0; v < N_RIG; v++) {
            float x[12];
            tu_fill(x, rig_numel(v), 400 + 10 * k + (uint64_t)v);
            set_var(&r, v, x);
            for (size_t i = 0; i < rig_numel(v); i++)
                shadow[v][i] = d * shadow[v][i] + (1 - d) * x[i];
        }
        ck_assert_int_eq(sn_ema_update(ema, nu), SN_OK);
        for (int v = 0; v < N_RIG; v++) {
            char name[128];
            snprintf(name, sizeof name, "%s/ExponentialMovingAverage", rig_vars[v].name);
            sn_tensor *t = NULL;
            ck_assert_int_eq(sn_ema_get_slot(ema, name, &t), SN_OK);
            double e = norm_rel_err(sn_tensor_data(t), shadow[v], rig_numel(v));
            ck_assert_msg(e <= DOUBLE_TOL, "ema %s num_updates %lld: rel err %.3g", name,
                          (long long)nu, e);
            sn_tensor_free(t);
        }
    }
    /* Evaluating with the averages: the shadows go into the variables. */
    ck_assert_int_eq(sn_ema_assign_to_net(ema), SN_OK);
    for (int v = 0; v < N_RIG; v++) {
        float x[12];
        get_var(&r, v, x);
        ck_assert_double_le(norm_rel_err(x, shadow[v], rig_numel(v)), DOUBLE_TOL);
    }
    /* set/get and errors. */
    float vals[2] = {7, 8};
    int64_t d2[1] = {2};
    sn_tensor *t = NULL, *back = NULL;
    ck_assert_int_eq(sn_tensor_wrap(r.ctx, vals, SN_DTYPE_F32, 1, d2, SN_BORROW, &t), SN_OK);
    ck_assert_int_eq(sn_ema_set_slot(ema, "frozen/v/ExponentialMovingAverage", t), SN_OK);
    ck_assert_int_eq(sn_ema_get_slot(ema, "frozen/v/ExponentialMovingAverage", &back), SN_OK);
    ck_assert_mem_eq(sn_tensor_data(back), vals, sizeof vals);
    sn_tensor_free(back);
    ck_assert_int_eq(sn_ema_set_slot(ema, "net/b/ExponentialMovingAverage", t), SN_ERR_SHAPE);
    ck_assert_int_eq(sn_ema_set_slot(ema, "frozen/v", t), SN_ERR_NOT_FOUND);
    sn_tensor_free(t);
    sn_ema_free(ema);

    /* Trainable variables only. */
    ck_assert_int_eq(sn_ema_new(r.net, 0.9f, SN_VAR_TRAINABLE, &ema), SN_OK);
    ck_assert_int_eq(sn_ema_num_slots(ema), N_TRAIN);
    sn_ema_free(ema);
    sn_ema_free(NULL);
    rig_close(&r);
}
END_TEST

/* ---- TensorFlow's numbers (tests/reference/optim_steps.json) --------------------------------- */

static cJSON *load_fixture(void) {
    const char *path = getenv("SN_OPTIM_FIXTURE");
    if (!path || !path[0]) path = "tests/reference/optim_steps.json";
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s (run from the repository root, or set "
                  "SN_OPTIM_FIXTURE; regenerate with tests/reference/make_optim_fixtures.py)",
                  path);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = malloc((size_t)len + 1);
    ck_assert_ptr_nonnull(text);
    ck_assert_uint_eq(fread(text, 1, (size_t)len, f), (size_t)len);
    text[len] = '\0';
    fclose(f);
    cJSON *j = cJSON_Parse(text);
    free(text);
    ck_assert_msg(j != NULL, "%s: not valid JSON", path);
    return j;
}

static cJSON *jget(const cJSON *o, const char *key) {
    cJSON *x = cJSON_GetObjectItemCaseSensitive(o, key);
    ck_assert_msg(x != NULL, "fixture: missing \"%s\"", key);
    return x;
}

static double jnum(const cJSON *o, const char *key) {
    cJSON *x = jget(o, key);
    ck_assert_msg(cJSON_IsNumber(x), "fixture: \"%s\" is not a number", key);
    return x->valuedouble;
}

/* A JSON array of n numbers into floats (each is a float32 value written exactly). */
static void jfloats(const cJSON *arr, float *out, size_t n) {
    ck_assert_msg(cJSON_IsArray(arr) && (size_t)cJSON_GetArraySize(arr) == n,
                  "fixture: expected an array of %zu numbers", n);
    size_t i = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, arr) out[i++] = (float)x->valuedouble;
}

/* The fixture's optimizer parameters, named as sn_optim_params' fields. */
static sn_optim_params fixture_params(const cJSON *c) {
    sn_optim_params p;
    sn_optim_kind kind;
    const char *opt = jget(c, "optimizer")->valuestring;
    ck_assert_msg(sn_optim_kind_from_name(opt, &kind) == SN_OK, "fixture optimizer %s", opt);
    p = sn_optim_params_default(kind);
    const cJSON *q = jget(c, "params");
    p.momentum = (float)jnum(q, "momentum");
    p.nesterov = (int)jnum(q, "nesterov");
    p.rmsprop_decay = (float)jnum(q, "rmsprop_decay");
    p.rmsprop_momentum = (float)jnum(q, "rmsprop_momentum");
    p.epsilon = (float)jnum(q, "epsilon");
    p.adam_beta1 = (float)jnum(q, "adam_beta1");
    p.adam_beta2 = (float)jnum(q, "adam_beta2");
    p.adadelta_rho = (float)jnum(q, "adadelta_rho");
    p.adagrad_initial_accumulator = (float)jnum(q, "adagrad_initial_accumulator");
    p.ftrl_lr_power = (float)jnum(q, "ftrl_lr_power");
    p.ftrl_initial_accumulator = (float)jnum(q, "ftrl_initial_accumulator");
    p.ftrl_l1 = (float)jnum(q, "ftrl_l1");
    p.ftrl_l2 = (float)jnum(q, "ftrl_l2");
    const cJSON *sc = jget(c, "trainable_scopes");
    p.trainable_scopes = cJSON_IsString(sc) ? sc->valuestring : NULL;
    return p;
}

/* Compares a host tensor of n floats with the fixture's array; returns the error. */
static double cmp_fixture(const float *got, const cJSON *arr, size_t n) {
    float want[64];
    ck_assert_uint_le(n, 64);
    jfloats(arr, want, n);
    return norm_rel_err_f(got, want, n);
}

START_TEST(test_optim_tf_fixture) {
    cJSON *j = load_fixture();
    const cJSON *vars = jget(j, "variables"), *grads = jget(j, "grads"), *lrs = jget(j, "lr");
    ck_assert_int_eq(cJSON_GetArraySize(vars), N_TRAIN);
    const cJSON *c;
    int n_cases = 0;
    cJSON_ArrayForEach(c, jget(j, "optimizers")) {
        const char *label = jget(c, "case")->valuestring;
        sn_optim_params p = fixture_params(c);
        rig r = rig_open(1);
        const cJSON *v;
        cJSON_ArrayForEach(v, vars) {
            int k = rig_index(jget(v, "name")->valuestring);
            float x[12];
            jfloats(jget(v, "init"), x, rig_numel(k));
            set_var(&r, k, x);
        }
        sn_optim *opt = NULL;
        ck_assert_msg(sn_optim_new(r.net, &p, &opt) == SN_OK, "%s: %s", label,
                      sn_ctx_errmsg(r.ctx));
        /* The same trainable set and the same optimizer variables, by TF's names. */
        const cJSON *trained = jget(c, "trained"), *names = jget(c, "slot_names");
        ck_assert_int_eq(sn_optim_num_vars(opt), cJSON_GetArraySize(trained));
        int i = 0;
        cJSON_ArrayForEach(v, trained)
            ck_assert_str_eq(sn_optim_var_name(opt, i++), v->valuestring);
        ck_assert_msg(sn_optim_num_slots(opt) == cJSON_GetArraySize(names),
                      "%s: %d slots, TensorFlow has %d", label, sn_optim_num_slots(opt),
                      cJSON_GetArraySize(names));
        cJSON_ArrayForEach(v, names) {
            int s = sn_optim_find_slot(opt, v->valuestring);
            ck_assert_msg(s >= 0, "%s: no slot %s", label, v->valuestring);
            sn_slot_info info;
            ck_assert_int_eq(sn_optim_slot(opt, s, &info), SN_OK);
            const cJSON *shape = jget(jget(c, "slot_shapes"), v->valuestring);
            ck_assert_int_eq(info.rank, cJSON_GetArraySize(shape));
            int d = 0;
            const cJSON *dim;
            cJSON_ArrayForEach(dim, shape) ck_assert_int_eq(info.dims[d++], dim->valueint);
        }
        double worst_var = 0, worst_slot = 0;
        int k = 0;
        const cJSON *step;
        cJSON_ArrayForEach(step, jget(c, "steps")) {
            const cJSON *gk = cJSON_GetArrayItem(grads, k);
            for (int q = 0; q < N_TRAIN; q++) {
                float g[12];
                jfloats(jget(gk, rig_vars[q].name), g, rig_numel(q));
                set_grad(&r, q, g);
            }
            float lr = (float)cJSON_GetArrayItem(lrs, k)->valuedouble;
            ck_assert_int_eq(sn_optim_step(opt, lr), SN_OK);
            ck_assert_int_eq(sn_optim_global_step(opt), (int64_t)jnum(step, "global_step"));
            for (int q = 0; q < N_TRAIN; q++) {
                float x[12];
                get_var(&r, q, x);
                double e = cmp_fixture(x, jget(jget(step, "vars"), rig_vars[q].name),
                                       rig_numel(q));
                ck_assert_msg(e <= TF_TOL, "%s step %d %s: rel err %.3g vs TensorFlow", label,
                              k + 1, rig_vars[q].name, e);
                if (e > worst_var) worst_var = e;
            }
            const cJSON *sv;
            cJSON_ArrayForEach(sv, jget(step, "slots")) {
                int s = sn_optim_find_slot(opt, sv->string);
                sn_slot_info info;
                ck_assert_int_eq(sn_optim_slot(opt, s, &info), SN_OK);
                size_t n = (size_t)cJSON_GetArraySize(sv);
                float x[12];
                get_slot(opt, sv->string, x, n);
                double e = cmp_fixture(x, sv, n);
                ck_assert_msg(e <= TF_TOL, "%s step %d %s: rel err %.3g vs TensorFlow", label,
                              k + 1, sv->string, e);
                if (e > worst_slot) worst_slot = e;
            }
            k++;
        }
        ck_assert_int_gt(k, 0);
        printf("[optim] %-18s vs TensorFlow, %d steps: max rel err %.2g (variables), "
               "%.2g (slots)\n", label, k, worst_var, worst_slot);
        sn_optim_free(opt);
        rig_close(&r);
        n_cases++;
    }
    ck_assert_int_ge(n_cases, 8);
    cJSON_Delete(j);
}
END_TEST

START_TEST(test_ema_tf_fixture) {
    cJSON *j = load_fixture();
    const cJSON *vars = jget(j, "variables"), *e;
    cJSON_ArrayForEach(e, jget(j, "ema")) {
        float decay = (float)jnum(e, "decay");
        rig r = rig_open(1);
        const cJSON *v;
        cJSON_ArrayForEach(v, vars) {
            int k = rig_index(jget(v, "name")->valuestring);
            float x[12];
            jfloats(jget(v, "init"), x, rig_numel(k));
            set_var(&r, k, x);
        }
        sn_ema *ema = NULL;
        ck_assert_int_eq(sn_ema_new(r.net, decay, SN_VAR_TRAINABLE, &ema), SN_OK);
        ck_assert_int_eq(sn_ema_num_slots(ema), cJSON_GetArraySize(jget(e, "shadow_names")));
        cJSON_ArrayForEach(v, jget(e, "shadow_names"))
            ck_assert_int_ge(sn_ema_find_slot(ema, v->valuestring), 0);
        double worst = 0;
        const cJSON *step;
        cJSON_ArrayForEach(step, jget(e, "steps")) {
            cJSON_ArrayForEach(v, jget(step, "values")) {
                int k = rig_index(v->string);
                float x[12];
                jfloats(v, x, rig_numel(k));
                set_var(&r, k, x);
            }
            ck_assert_int_eq(sn_ema_update(ema, (int64_t)jnum(step, "num_updates")), SN_OK);
            cJSON_ArrayForEach(v, jget(step, "shadows")) {
                sn_tensor *t = NULL;
                ck_assert_int_eq(sn_ema_get_slot(ema, v->string, &t), SN_OK);
                double err = cmp_fixture(sn_tensor_data(t), v, (size_t)sn_tensor_numel(t));
                ck_assert_msg(err <= TF_TOL, "ema decay %g, num_updates %lld, %s: rel err %.3g",
                              (double)decay, (long long)jnum(step, "num_updates"), v->string,
                              err);
                if (err > worst) worst = err;
                sn_tensor_free(t);
            }
        }
        printf("[optim] ema decay %-8g%s vs TensorFlow: max rel err %.2g\n", (double)decay,
               cJSON_IsTrue(jget(e, "with_num_updates")) ? " (num_updates)" : "", worst);
        sn_ema_free(ema);
        rig_close(&r);
    }
    cJSON_Delete(j);
}
END_TEST

START_TEST(test_lr_tf_fixture) {
    cJSON *j = load_fixture();
    const cJSON *s;
    double worst = 0;
    cJSON_ArrayForEach(s, jget(j, "schedules")) {
        double ds = sn_lr_decay_steps((int64_t)jnum(s, "num_samples"),
                                      jnum(s, "num_epochs_per_decay"),
                                      (int64_t)jnum(s, "batch_size"),
                                      (int)jnum(s, "replicas_to_aggregate"));
        ck_assert_double_eq(ds, jnum(s, "decay_steps"));
        sn_lr_params p = sn_lr_params_default();
        p.learning_rate = (float)jnum(s, "learning_rate");
        p.decay_factor = (float)jnum(s, "decay_factor");
        p.end_learning_rate = (float)jnum(s, "end_learning_rate");
        p.decay_steps = ds;
        const cJSON *row;
        cJSON_ArrayForEach(row, jget(s, "rows")) {
            int64_t step = (int64_t)jnum(row, "step");
            static const struct { sn_lr_decay type; const char *key; } types[] = {
                {SN_LR_FIXED, "fixed"}, {SN_LR_EXPONENTIAL, "exponential"},
                {SN_LR_POLYNOMIAL, "polynomial"}};
            for (int t = 0; t < 3; t++) {
                p.type = types[t].type;
                double want = jnum(row, types[t].key), got = sn_learning_rate(&p, step);
                /* Exact zero when both underflow (0.94^3011). */
                double err = want == 0 ? fabs(got) : fabs(got - want) / fabs(want);
                ck_assert_msg(err <= TF_TOL, "%s, decay_steps %g, step %lld: %.9g, TensorFlow "
                              "%.9g", types[t].key, ds, (long long)step, got, want);
                if (err > worst) worst = err;
            }
        }
    }
    printf("[optim] learning-rate schedules vs TensorFlow: max rel err %.2g\n", worst);
    cJSON_Delete(j);
}
END_TEST

Suite *suite_optim(void) {
    Suite *s = suite_create("optim");
    TCase *tc = tcase_create("optim");
    tcase_add_test(tc, test_optim_names);
    tcase_add_loop_test(tc, test_optim_vs_double, 0, N_DCASES);
    tcase_add_test(tc, test_optim_slots);
    tcase_add_test(tc, test_optim_scopes);
    tcase_add_test(tc, test_optim_bad_params);
    tcase_add_test(tc, test_lr_schedules);
    tcase_add_test(tc, test_ema);
    tcase_add_test(tc, test_optim_tf_fixture);
    tcase_add_test(tc, test_ema_tf_fixture);
    tcase_add_test(tc, test_lr_tf_fixture);
    suite_add_tcase(s, tc);
    return s;
}
