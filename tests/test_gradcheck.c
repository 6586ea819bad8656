/* test_gradcheck.c: a finite-difference gradient check of every op through the graph,
 * for each option that changes the math (stride, padding, odd sizes, dilation, training).
 *
 * Each check builds the op on trainable variables, reduces its output to a scalar with a
 * fixed random projection, loss = sum((flatten(y) @ R)^2) / 2, so that every output element
 * matters with a different weight, runs backward once, and compares every variable's
 * gradient with central differences of the forward pass. */
#include <stdio.h>
#include <string.h>
#include "testutil.h"

typedef void (*gc_prepare)(sn_net *net, void *user);

typedef struct gc_opts {
    double eps;          /* finite-difference step */
    double tol;          /* |analytic - numeric| <= tol * max(1e-2, max|numeric|) */
    gc_prepare prepare;  /* sets inputs or kink-free variable values after compile */
    void *user;
} gc_opts;

static gc_opts gc_default(void) { return (gc_opts){.eps = 1e-2, .tol = 2e-2}; }

/* A trainable variable with uniform [-1, 1) values. */
static sn_node gc_var(sn_graph *g, const char *name, int rank, const int64_t *dims) {
    sn_init init = sn_init_random_uniform(-1.0f, 1.0f);
    return sn_variable(g, name, rank, dims, &init, SN_VAR_TRAINABLE | SN_VAR_MODEL);
}

static sn_node gc_var4(sn_graph *g, const char *name, int64_t a, int64_t b, int64_t c,
                       int64_t d) {
    int64_t dims[4] = {a, b, c, d};
    return gc_var(g, name, 4, dims);
}

static float loss_value(sn_net *net, sn_node loss) {
    ck_assert_int_eq(sn_net_forward(net), SN_OK);
    sn_tensor *t = NULL;
    ck_assert_int_eq(sn_net_get_output(net, loss, &t), SN_OK);
    float v = ((float *)sn_tensor_data(t))[0];
    sn_tensor_free(t);
    return v;
}

/* Checks d(loss)/d(v) for every trainable variable v of g; y is the op's output. */
static void gradcheck(sn_graph *g, sn_node y, gc_opts o) {
    sn_ctx *ctx = sn_graph_ctx(g);
    sn_node loss = y;
    if (sn_node_rank(g, y) != 0) {
        sn_node f = sn_node_rank(g, y) == 2 ? y : sn_op_flatten(g, y);
        int64_t rd[2] = {sn_node_dim(g, f, 1), 3};
        float s = 1.0f / sqrtf((float)rd[0]);
        sn_init ri = sn_init_random_uniform(-s, s);
        sn_node r = sn_variable(g, "gc_projection", 2, rd, &ri, SN_VAR_MODEL);
        loss = sn_op_l2_loss(g, sn_op_matmul(g, f, r), 1.0f);
    }
    ck_assert_msg(sn_graph_status(g) == SN_OK, "graph: %s", sn_graph_errmsg(g));
    sn_net *net = NULL;
    sn_compile_params cp = sn_compile_params_default();
    ck_assert_msg(sn_net_compile(g, &cp, &net) == SN_OK, "compile: %s", sn_ctx_errmsg(ctx));
    if (o.prepare) o.prepare(net, o.user);
    (void)loss_value(net, loss);
    ck_assert_msg(sn_net_backward(net, loss) == SN_OK, "backward: %s", sn_ctx_errmsg(ctx));
    int checked = 0;
    for (int v = 0; v < sn_graph_num_vars(g); v++) {
        sn_var_info vi;
        ck_assert_int_eq(sn_graph_var(g, v, &vi), SN_OK);
        if (!(vi.flags & SN_VAR_TRAINABLE)) continue;
        sn_tensor *val = NULL, *grad = NULL;
        ck_assert_int_eq(sn_net_get_var(net, vi.name, &val), SN_OK);
        ck_assert_int_eq(sn_net_get_grad(net, vi.name, &grad), SN_OK);
        float *x = sn_tensor_data(val), *ga = sn_tensor_data(grad);
        int64_t n = sn_tensor_numel(val);
        double *gn = malloc((size_t)n * sizeof *gn), scale = 1e-2;
        for (int64_t k = 0; k < n; k++) {
            float keep = x[k];
            x[k] = keep + (float)o.eps;
            ck_assert_int_eq(sn_net_set_var(net, vi.name, val), SN_OK);
            double lp = loss_value(net, loss);
            x[k] = keep - (float)o.eps;
            ck_assert_int_eq(sn_net_set_var(net, vi.name, val), SN_OK);
            double lm = loss_value(net, loss);
            x[k] = keep;
            gn[k] = (lp - lm) / (2.0 * o.eps);
            if (fabs(gn[k]) > scale) scale = fabs(gn[k]);
        }
        ck_assert_int_eq(sn_net_set_var(net, vi.name, val), SN_OK);
        for (int64_t k = 0; k < n; k++) {
            double err = fabs(ga[k] - gn[k]) / scale;
            ck_assert_msg(err <= o.tol, "%s[%lld]: analytic %.6g numeric %.6g (err %.3g > %.3g)",
                          vi.name, (long long)k, ga[k], gn[k], err, o.tol);
        }
        checked++;
        free(gn);
        sn_tensor_free(val);
        sn_tensor_free(grad);
    }
    ck_assert_int_gt(checked, 0);
    sn_net_free(net);
}

/* Moves every value of variable `name` at least `gap` away from each kink in kinks[]. */
typedef struct kinks { const char *name; float at[2]; int n; float gap; } kinks;
static void avoid_kinks(sn_net *net, void *user) {
    const kinks *k = user;
    sn_tensor *t = NULL;
    ck_assert_int_eq(sn_net_get_var(net, k->name, &t), SN_OK);
    float *x = sn_tensor_data(t);
    for (int64_t i = 0; i < sn_tensor_numel(t); i++)
        for (int j = 0; j < k->n; j++)
            if (fabsf(x[i] - k->at[j]) < k->gap) x[i] = k->at[j] + (x[i] < k->at[j] ? -k->gap : k->gap);
    ck_assert_int_eq(sn_net_set_var(net, k->name, t), SN_OK);
    sn_tensor_free(t);
}

/* Values that are distinct by far more than eps: a shuffled ramp (max-pool ties). */
static void distinct_values(sn_net *net, void *user) {
    const char *name = user;
    sn_tensor *t = NULL;
    ck_assert_int_eq(sn_net_get_var(net, name, &t), SN_OK);
    float *x = sn_tensor_data(t);
    int64_t n = sn_tensor_numel(t);
    for (int64_t i = 0; i < n; i++) x[i] = (float)i * 0.05f - (float)n * 0.025f;
    uint64_t s = 7;
    for (int64_t i = n - 1; i > 0; i--) {
        tu_rand(&s);
        int64_t j = (int64_t)(s % (uint64_t)(i + 1));
        float tmp = x[i]; x[i] = x[j]; x[j] = tmp;
    }
    ck_assert_int_eq(sn_net_set_var(net, name, t), SN_OK);
    sn_tensor_free(t);
}

#define GC_BEGIN()                      \
    sn_ctx *ctx = tu_ctx();             \
    sn_graph *g = NULL;                 \
    ck_assert_int_eq(sn_graph_new(ctx, &g), SN_OK)
#define GC_END()                        \
    sn_graph_free(g);                   \
    sn_ctx_free(ctx)

/* ---- convolutions ------------------------------------------------------------------------ */

typedef struct conv_case {
    int64_t N, H, W, C, K, kh, kw;
    int sh, sw, rate;
    sn_padding pad;
    int depthwise;   /* multiplier when > 0 */
} conv_case;

static const conv_case conv_cases[] = {
    {2, 5, 5, 3, 4, 3, 3, 1, 1, 1, SN_PAD_SAME, 0},   /* plain SAME */
    {1, 6, 7, 2, 3, 3, 3, 2, 2, 1, SN_PAD_SAME, 0},   /* stride 2, asymmetric SAME padding */
    {2, 7, 6, 3, 2, 5, 5, 2, 2, 1, SN_PAD_VALID, 0},  /* VALID, stride 2, odd sizes */
    {1, 7, 7, 2, 3, 3, 3, 1, 1, 2, SN_PAD_SAME, 0},   /* dilation 2 */
    {2, 4, 5, 5, 3, 1, 1, 1, 1, 1, SN_PAD_SAME, 0},   /* 1x1: the plain GEMM path */
    {1, 5, 6, 3, 2, 1, 3, 1, 1, 1, SN_PAD_SAME, 0},   /* 1x3 (as Inception's 1x7) */
    {1, 8, 8, 2, 2, 2, 2, 3, 1, 1, SN_PAD_SAME, 0},   /* stride 3x1, even kernel */
    {2, 5, 5, 3, 0, 3, 3, 1, 1, 1, SN_PAD_SAME, 2},   /* depthwise, multiplier 2 */
    {1, 7, 6, 4, 0, 3, 3, 2, 2, 1, SN_PAD_SAME, 1},   /* depthwise, stride 2 */
    {1, 7, 7, 2, 0, 3, 3, 1, 1, 2, SN_PAD_VALID, 1},  /* depthwise, dilation 2, VALID */
};

START_TEST(test_grad_conv) {
    const conv_case *c = &conv_cases[_i];
    GC_BEGIN();
    sn_node x = gc_var4(g, "x", c->N, c->H, c->W, c->C);
    sn_node y;
    if (c->depthwise) {
        sn_node w = gc_var4(g, "w", c->kh, c->kw, c->C, c->depthwise);
        y = sn_op_depthwise_conv2d(g, x, w, c->sh, c->sw, c->rate, c->pad);
    } else {
        sn_node w = gc_var4(g, "w", c->kh, c->kw, c->C, c->K);
        y = sn_op_conv2d(g, x, w, c->sh, c->sw, c->rate, c->pad);
    }
    gradcheck(g, y, gc_default());
    GC_END();
} END_TEST

START_TEST(test_grad_matmul_bias) {
    GC_BEGIN();
    int64_t xd[2] = {3, 5}, wd[2] = {5, 4}, bd[1] = {4};
    sn_node x = gc_var(g, "x", 2, xd), w = gc_var(g, "w", 2, wd), b = gc_var(g, "b", 1, bd);
    gradcheck(g, sn_op_bias_add(g, sn_op_matmul(g, x, w), b), gc_default());
    GC_END();
} END_TEST

START_TEST(test_grad_bias4d) {
    GC_BEGIN();
    int64_t bd[1] = {3};
    sn_node x = gc_var4(g, "x", 2, 3, 3, 3), b = gc_var(g, "b", 1, bd);
    gradcheck(g, sn_op_bias_add(g, x, b), gc_default());
    GC_END();
} END_TEST

/* ---- activations --------------------------------------------------------------------------- */

START_TEST(test_grad_relu) {
    GC_BEGIN();
    sn_node x = gc_var4(g, "x", 2, 3, 3, 3);
    kinks k = {"x", {0.0f}, 1, 0.05f};
    gc_opts o = gc_default();
    o.prepare = avoid_kinks;
    o.user = &k;
    gradcheck(g, sn_op_relu(g, x), o);
    GC_END();
} END_TEST

static void relu6_values(sn_net *net, void *user) {
    (void)user;
    sn_tensor *t = NULL;
    ck_assert_int_eq(sn_net_get_var(net, "x", &t), SN_OK);
    float *x = sn_tensor_data(t);
    for (int64_t i = 0; i < sn_tensor_numel(t); i++) x[i] *= 8.0f;   /* spans both kinks */
    ck_assert_int_eq(sn_net_set_var(net, "x", t), SN_OK);
    sn_tensor_free(t);
    kinks k = {"x", {0.0f, 6.0f}, 2, 0.1f};
    avoid_kinks(net, &k);
}

START_TEST(test_grad_relu6) {
    GC_BEGIN();
    sn_node x = gc_var4(g, "x", 2, 3, 3, 3);
    gc_opts o = gc_default();
    o.prepare = relu6_values;
    gradcheck(g, sn_op_relu6(g, x), o);
    GC_END();
} END_TEST

/* hard_swish and hard_sigmoid over [-8, 8), 0.1 away from their kinks at x = -3 and 3. */
static void hard_values(sn_net *net, void *user) {
    (void)user;
    sn_tensor *t = NULL;
    ck_assert_int_eq(sn_net_get_var(net, "x", &t), SN_OK);
    float *x = sn_tensor_data(t);
    for (int64_t i = 0; i < sn_tensor_numel(t); i++) x[i] *= 8.0f;
    ck_assert_int_eq(sn_net_set_var(net, "x", t), SN_OK);
    sn_tensor_free(t);
    kinks k = {"x", {-3.0f, 3.0f}, 2, 0.1f};
    avoid_kinks(net, &k);
}

START_TEST(test_grad_hard_swish_sigmoid) {
    GC_BEGIN();
    sn_node x = gc_var4(g, "x", 2, 3, 3, 4);
    gc_opts o = gc_default();
    o.prepare = hard_values;
    gradcheck(g, _i ? sn_op_hard_sigmoid(g, x) : sn_op_hard_swish(g, x), o);
    GC_END();
} END_TEST

START_TEST(test_grad_channel_gate) {
    GC_BEGIN();
    sn_node x = gc_var4(g, "x", 2, 3, 5, 4), s = gc_var4(g, "s", 2, 1, 1, 4);
    gradcheck(g, sn_op_channel_gate(g, x, s), gc_default());
    GC_END();
} END_TEST

/* MobileNet v3's squeeze-excite block as research/slim's conv_blocks.squeeze_excite builds
 * it: x * hard_sigmoid(conv1x1(relu(conv1x1(mean_hw(x))))), both 1x1 convolutions with
 * biases; x itself a hard swish.  Biases keep the relu and the gate away from their kinks at
 * these values (checked by the tolerance: a flip would fail it). */
START_TEST(test_grad_squeeze_excite) {
    GC_BEGIN();
    sn_node x = sn_op_hard_swish(g, gc_var4(g, "x", 2, 4, 4, 8));
    sn_defaults *d = sn_graph_defaults(g);
    d->batch_norm = 0;
    d->activation = SN_ACT_RELU;
    d->biases_init = sn_init_constant(0.5f);
    sn_node p = sn_op_spatial_mean(g, x, 1);
    sn_node sq = sn_conv2d(g, p, 8, 1, 1, 1, "Conv");
    sn_conv_params cp = sn_conv_params_from(g, 8, 1, 1, 1);
    cp.activation = SN_ACT_HARD_SIGMOID;
    sn_node ex = sn_conv2d_p(g, sq, &cp, "Conv_1");
    gc_opts o = gc_default();
    o.eps = 5e-3;
    gradcheck(g, sn_op_channel_gate(g, x, ex), o);
    GC_END();
} END_TEST

/* ---- pooling ------------------------------------------------------------------------------- */

typedef struct pool_case { int64_t H, W; int k, s; sn_padding pad; int max; } pool_case;
static const pool_case pool_cases[] = {
    {5, 5, 3, 1, SN_PAD_SAME, 1}, {6, 7, 3, 2, SN_PAD_SAME, 1}, {7, 6, 3, 2, SN_PAD_VALID, 1},
    {6, 6, 2, 2, SN_PAD_VALID, 1},
    {5, 5, 3, 1, SN_PAD_SAME, 0}, {6, 7, 3, 2, SN_PAD_SAME, 0}, {7, 6, 3, 2, SN_PAD_VALID, 0},
    {5, 6, 5, 3, SN_PAD_SAME, 0},
};

START_TEST(test_grad_pool) {
    const pool_case *c = &pool_cases[_i];
    GC_BEGIN();
    sn_node x = gc_var4(g, "x", 2, c->H, c->W, 3);
    sn_node y = c->max ? sn_op_max_pool(g, x, c->k, c->k, c->s, c->s, c->pad)
                       : sn_op_avg_pool(g, x, c->k, c->k, c->s, c->s, c->pad);
    gc_opts o = gc_default();
    if (c->max) {
        o.prepare = distinct_values;
        o.user = "x";
    }
    gradcheck(g, y, o);
    GC_END();
} END_TEST

START_TEST(test_grad_spatial_mean) {
    GC_BEGIN();
    sn_node x = gc_var4(g, "x", 2, 3, 4, 3);
    gradcheck(g, sn_op_spatial_mean(g, x, _i), gc_default());
    GC_END();
} END_TEST

/* ---- normalization -------------------------------------------------------------------------- */

/* _i: bit 0 training, bit 1 with gamma (scale), bit 2 with beta (center). */
START_TEST(test_grad_batch_norm) {
    int training = _i & 1, scale = (_i >> 1) & 1, center = (_i >> 2) & 1;
    GC_BEGIN();
    int64_t cd[1] = {3};
    sn_node x = gc_var4(g, "x", 2, 3, 3, 3);
    sn_node gamma = scale ? gc_var(g, "gamma", 1, cd) : SN_NO_NODE;
    sn_node beta = center ? gc_var(g, "beta", 1, cd) : SN_NO_NODE;
    sn_init mi = sn_init_random_uniform(-0.5f, 0.5f), vi = sn_init_random_uniform(0.5f, 1.5f);
    sn_node mm = sn_variable(g, "mm", 1, cd, &mi, SN_VAR_MODEL | SN_VAR_MOVING);
    sn_node mv = sn_variable(g, "mv", 1, cd, &vi, SN_VAR_MODEL | SN_VAR_MOVING);
    sn_node y = sn_op_batch_norm(g, x, gamma, beta, mm, mv, 0.9f, 0.001f, training);
    gc_opts o = gc_default();
    o.eps = 5e-3;
    gradcheck(g, y, o);
    GC_END();
} END_TEST

START_TEST(test_grad_lrn) {
    GC_BEGIN();
    sn_node x = gc_var4(g, "x", 2, 2, 2, 7);
    gradcheck(g, sn_op_lrn(g, x, 2, 1.0f, 0.3f, 0.75f), gc_default());
    GC_END();
} END_TEST

/* ---- dropout: with a fixed step the mask is fixed, so the op is linear ---------------------- */

START_TEST(test_grad_dropout) {
    GC_BEGIN();
    sn_node x = gc_var4(g, "x", 2, 3, 3, 4);
    gradcheck(g, sn_op_dropout(g, x, 0.6f, _i), gc_default());
    GC_END();
} END_TEST

/* ---- layout and arithmetic ---------------------------------------------------------------- */

START_TEST(test_grad_concat) {
    GC_BEGIN();
    sn_node xs[3] = {gc_var4(g, "a", 2, 3, 3, 2), gc_var4(g, "b", 2, 3, 3, 3),
                     gc_var4(g, "c", 2, 3, 3, 1)};
    gradcheck(g, sn_op_concat(g, 3, xs), gc_default());
    GC_END();
} END_TEST

START_TEST(test_grad_add_scale) {
    GC_BEGIN();
    sn_node a = gc_var4(g, "a", 2, 3, 3, 2), b = gc_var4(g, "b", 2, 3, 3, 2);
    /* a is used twice: its gradient must be the sum of both paths. */
    sn_node y = sn_op_add(g, sn_op_scale(g, a, 0.17f), sn_op_add(g, a, b));
    gradcheck(g, y, gc_default());
    GC_END();
} END_TEST

START_TEST(test_grad_pad) {
    GC_BEGIN();
    sn_node x = gc_var4(g, "x", 2, 3, 4, 2);
    gradcheck(g, sn_op_pad(g, x, 1, 2, 3, 0), gc_default());
    GC_END();
} END_TEST

START_TEST(test_grad_reshape_squeeze) {
    GC_BEGIN();
    sn_node x = gc_var4(g, "x", 2, 1, 1, 5);
    sn_node y = sn_op_squeeze(g, x);
    int64_t rd[4] = {2, 5, 1, 1};
    y = sn_op_flatten(g, sn_op_reshape(g, y, 4, rd));
    gradcheck(g, y, gc_default());
    GC_END();
} END_TEST

/* ---- losses -------------------------------------------------------------------------------- */

static void set_labels(sn_net *net, void *user) {
    sn_node labels = *(sn_node *)user;
    int32_t lab[4] = {2, 0, 4, 1};
    int64_t d[1] = {4};
    sn_tensor *t = NULL;
    ck_assert_int_eq(sn_tensor_wrap(NULL, lab, SN_DTYPE_I32, 1, d, SN_BORROW, &t), SN_OK);
    ck_assert_int_eq(sn_net_set_input(net, labels, t), SN_OK);
    sn_tensor_free(t);
}

START_TEST(test_grad_xent) {
    float ls = _i ? 0.1f : 0.0f;
    GC_BEGIN();
    int64_t ld[2] = {4, 5}, nd[1] = {4};
    sn_node logits = gc_var(g, "logits", 2, ld);
    sn_node labels = sn_input(g, "labels", SN_DTYPE_I32, 1, nd);
    gc_opts o = gc_default();
    o.prepare = set_labels;
    o.user = &labels;
    gradcheck(g, sn_op_softmax_xent(g, logits, labels, ls), o);
    GC_END();
} END_TEST

START_TEST(test_grad_softmax) {
    GC_BEGIN();
    int64_t ld[2] = {3, 6};
    gradcheck(g, sn_op_softmax(g, gc_var(g, "logits", 2, ld)), gc_default());
    GC_END();
} END_TEST

START_TEST(test_grad_l2_add_n) {
    GC_BEGIN();
    int64_t d1[2] = {3, 4}, d2[1] = {5};
    sn_node terms[2] = {sn_op_l2_loss(g, gc_var(g, "w1", 2, d1), 0.01f),
                        sn_op_l2_loss(g, gc_var(g, "w2", 1, d2), 0.5f)};
    gradcheck(g, sn_op_add_n(g, 2, terms), gc_default());
    GC_END();
} END_TEST

/* ---- a slim layer stack: conv + batch norm + relu6, separable conv, fully connected ----------- */

START_TEST(test_grad_layers) {
    GC_BEGIN();
    sn_node x = gc_var4(g, "x", 2, 5, 5, 3);
    sn_defaults *d = sn_graph_defaults(g);
    d->batch_norm = 1;
    d->bn_scale = 1;
    d->activation = SN_ACT_NONE;   /* smooth, so random values never sit on a kink */
    sn_conv_params p = sn_conv_params_from(g, 4, 3, 3, 2);
    sn_node y = sn_conv2d_p(g, x, &p, "conv1");
    p = sn_conv_params_from(g, 3, 3, 3, 1);
    p.depth_multiplier = 2;
    y = sn_separable_conv2d_p(g, y, &p, "sep");
    y = sn_op_flatten(g, y);
    d->batch_norm = 0;
    y = sn_fully_connected(g, y, 3, "fc");
    gc_opts o = gc_default();
    o.eps = 5e-3;
    gradcheck(g, y, o);
    GC_END();
} END_TEST

Suite *suite_gradcheck(void) {
    Suite *s = suite_create("gradcheck");
    TCase *tc = tcase_create("ops");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_grad_conv, 0, (int)(sizeof conv_cases / sizeof conv_cases[0]));
    tcase_add_test(tc, test_grad_matmul_bias);
    tcase_add_test(tc, test_grad_bias4d);
    tcase_add_test(tc, test_grad_relu);
    tcase_add_test(tc, test_grad_relu6);
    tcase_add_loop_test(tc, test_grad_hard_swish_sigmoid, 0, 2);
    tcase_add_test(tc, test_grad_channel_gate);
    tcase_add_test(tc, test_grad_squeeze_excite);
    tcase_add_loop_test(tc, test_grad_pool, 0, (int)(sizeof pool_cases / sizeof pool_cases[0]));
    tcase_add_loop_test(tc, test_grad_spatial_mean, 0, 2);
    tcase_add_loop_test(tc, test_grad_batch_norm, 0, 8);
    tcase_add_test(tc, test_grad_lrn);
    tcase_add_loop_test(tc, test_grad_dropout, 0, 2);
    tcase_add_test(tc, test_grad_concat);
    tcase_add_test(tc, test_grad_add_scale);
    tcase_add_test(tc, test_grad_pad);
    tcase_add_test(tc, test_grad_reshape_squeeze);
    tcase_add_loop_test(tc, test_grad_xent, 0, 2);
    tcase_add_test(tc, test_grad_softmax);
    tcase_add_test(tc, test_grad_l2_add_n);
    tcase_add_test(tc, test_grad_layers);
    suite_add_tcase(s, tc);
    return s;
}
