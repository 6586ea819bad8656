/* test_graph.c: the graph builder (names, scopes, defaults, collections, sticky errors),
 * compile (shapes, memory plan), forward values on cases worked out by hand, and the net's
 * variable API. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include "testutil.h"
#include "../lib/graph.h"   /* sn_net's n_fused and fuse[]: what the compiler folded */

static sn_graph *new_graph(sn_ctx *ctx) {
    sn_graph *g = NULL;
    ck_assert_int_eq(sn_graph_new(ctx, &g), SN_OK);
    return g;
}

static sn_tensor *wrap(float *data, int rank, const int64_t *dims) {
    sn_tensor *t = NULL;
    ck_assert_int_eq(sn_tensor_wrap(NULL, data, SN_DTYPE_F32, rank, dims, SN_BORROW, &t), SN_OK);
    return t;
}

static sn_net *compile_f(sn_graph *g, int64_t batch, int backward, int fuse) {
    sn_compile_params p = sn_compile_params_default();
    p.batch_size = batch;
    p.backward = backward;
    p.fuse = fuse;
    sn_net *net = NULL;
    ck_assert_msg(sn_net_compile(g, &p, &net) == SN_OK, "compile: %s",
                  sn_ctx_errmsg(sn_graph_ctx(g)));
    return net;
}

static sn_net *compile(sn_graph *g, int64_t batch, int backward) {
    return compile_f(g, batch, backward, 1);
}

/* ---- names and collections -------------------------------------------------------------- */

START_TEST(test_slim_names) {
    sn_ctx *ctx = tu_ctx();
    sn_graph *g = new_graph(ctx);
    int64_t in[4] = {SN_BATCH, 8, 8, 3};
    sn_node x = sn_input(g, "images", SN_DTYPE_F32, 4, in);
    sn_scope_push(g, "resnet_v1_50");
    sn_defaults_push(g);
    sn_graph_defaults(g)->batch_norm = 1;
    sn_graph_defaults(g)->bn_scale = 1;
    sn_node y = sn_conv2d(g, x, 4, 3, 3, 1, "conv1");
    ck_assert_str_eq(sn_node_name(g, y), "resnet_v1_50/conv1");
    sn_scope_push(g, "block1/unit_1/bottleneck_v1");
    y = sn_conv2d(g, y, 4, 1, 1, 1, "conv2");
    sn_scope_pop(g);
    sn_defaults_pop(g);
    ck_assert_int_eq(sn_graph_defaults(g)->batch_norm, 0);   /* arg_scope closed */
    y = sn_conv2d(g, y, 5, 1, 1, 1, "logits");
    sn_scope_pop(g);
    ck_assert_str_eq(sn_scope_current(g), "");
    ck_assert_int_eq(sn_graph_status(g), SN_OK);

    const char *want[] = {
        "resnet_v1_50/conv1/weights", "resnet_v1_50/conv1/BatchNorm/gamma",
        "resnet_v1_50/conv1/BatchNorm/beta", "resnet_v1_50/conv1/BatchNorm/moving_mean",
        "resnet_v1_50/conv1/BatchNorm/moving_variance",
        "resnet_v1_50/block1/unit_1/bottleneck_v1/conv2/weights",
        "resnet_v1_50/block1/unit_1/bottleneck_v1/conv2/BatchNorm/gamma",
        "resnet_v1_50/block1/unit_1/bottleneck_v1/conv2/BatchNorm/beta",
        "resnet_v1_50/block1/unit_1/bottleneck_v1/conv2/BatchNorm/moving_mean",
        "resnet_v1_50/block1/unit_1/bottleneck_v1/conv2/BatchNorm/moving_variance",
        "resnet_v1_50/logits/weights", "resnet_v1_50/logits/biases"};
    int n = (int)(sizeof want / sizeof want[0]);
    ck_assert_int_eq(sn_graph_num_vars(g), n);
    for (int i = 0; i < n; i++) {
        sn_var_info vi;
        ck_assert_int_eq(sn_graph_var(g, i, &vi), SN_OK);
        ck_assert_str_eq(vi.name, want[i]);
        bool moving = strstr(vi.name, "moving_") != NULL;
        ck_assert_int_eq((vi.flags & SN_VAR_TRAINABLE) != 0, !moving);
        ck_assert_int_eq((vi.flags & SN_VAR_MOVING) != 0, moving);
        ck_assert(vi.flags & SN_VAR_MODEL);
    }
    sn_var_info vi;
    sn_graph_var(g, 0, &vi);
    ck_assert_int_eq(vi.rank, 4);
    ck_assert_int_eq(vi.dims[2], 3);
    ck_assert_int_eq(vi.dims[3], 4);
    ck_assert_int_eq(sn_graph_find(g, "resnet_v1_50/logits"), y);
    ck_assert_int_eq(sn_graph_find(g, "nope"), SN_NO_NODE);
    ck_assert_int_eq(sn_graph_var(g, 99, &vi), SN_ERR_INVALID_ARG);
    sn_graph_free(g);
    sn_ctx_free(ctx);
} END_TEST

START_TEST(test_regularization_losses) {
    sn_ctx *ctx = tu_ctx();
    sn_graph *g = new_graph(ctx);
    int64_t in[4] = {SN_BATCH, 4, 4, 2};
    sn_node x = sn_input(g, "x", SN_DTYPE_F32, 4, in);
    sn_graph_defaults(g)->weight_decay = 0.0004f;
    sn_node y = sn_conv2d(g, x, 3, 3, 3, 1, "c1");
    sn_graph_defaults(g)->weight_decay = 0.0f;
    y = sn_conv2d(g, y, 3, 3, 3, 1, "c2");
    int n = 0;
    const sn_node *reg = sn_graph_regularization_losses(g, &n);
    ck_assert_int_eq(n, 1);   /* only c1/weights: biases are not regularized by default */
    sn_net *net = compile(g, 2, 0);
    ck_assert_int_eq(sn_net_forward(net), SN_OK);
    sn_tensor *w = NULL, *l = NULL;
    ck_assert_int_eq(sn_net_get_var(net, "c1/weights", &w), SN_OK);
    ck_assert_int_eq(sn_net_get_output(net, reg[0], &l), SN_OK);
    double s = 0;
    float *wv = sn_tensor_data(w);
    for (int64_t i = 0; i < sn_tensor_numel(w); i++) s += (double)wv[i] * wv[i];
    ck_assert_double_eq_tol(((float *)sn_tensor_data(l))[0], 0.0004 * s / 2, 1e-9);
    sn_tensor_free(w);
    sn_tensor_free(l);
    sn_net_free(net);
    sn_graph_free(g);
    sn_ctx_free(ctx);
} END_TEST

/* ---- sticky errors -------------------------------------------------------------------- */

START_TEST(test_shape_mismatch_is_sticky) {
    sn_ctx *ctx = tu_ctx();
    sn_graph *g = new_graph(ctx);
    int64_t in[4] = {SN_BATCH, 8, 8, 3}, wd[4] = {3, 3, 4, 8};
    sn_node x = sn_input(g, "x", SN_DTYPE_F32, 4, in);
    sn_init z = sn_init_zeros();
    sn_node w = sn_variable(g, "w", 4, wd, &z, SN_VAR_TRAINABLE);
    sn_node y = sn_op_conv2d(g, x, w, 1, 1, 1, SN_PAD_SAME);
    ck_assert_int_eq(y, SN_NO_NODE);
    ck_assert_int_eq(sn_graph_status(g), SN_ERR_SHAPE);
    ck_assert_ptr_nonnull(strstr(sn_graph_errmsg(g), "C=3"));
    /* Later builders do nothing and keep the first message. */
    ck_assert_int_eq(sn_op_relu(g, y), SN_NO_NODE);
    ck_assert_ptr_nonnull(strstr(sn_graph_errmsg(g), "C=3"));
    sn_net *net = NULL;
    sn_compile_params p = sn_compile_params_default();
    ck_assert_int_eq(sn_net_compile(g, &p, &net), SN_ERR_SHAPE);
    ck_assert_ptr_null(net);
    ck_assert_ptr_nonnull(strstr(sn_ctx_errmsg(ctx), "C=3"));
    sn_graph_free(g);
    sn_ctx_free(ctx);
} END_TEST

START_TEST(test_bad_arguments) {
    sn_ctx *ctx = tu_ctx();
    struct { const char *what; sn_status want; } cases[] = {
        {"rank", SN_ERR_SHAPE}, {"matmul", SN_ERR_SHAPE}, {"dup", SN_ERR_INVALID_ARG},
        {"node", SN_ERR_INVALID_ARG}, {"valid", SN_ERR_SHAPE}, {"pop", SN_ERR_STATE},
        {"squeeze", SN_ERR_SHAPE}, {"keep", SN_ERR_INVALID_ARG}, {"concat", SN_ERR_SHAPE},
        {"labels", SN_ERR_SHAPE},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        sn_graph *g = new_graph(ctx);
        int64_t in[4] = {SN_BATCH, 5, 5, 3}, d2[2] = {4, 7};
        sn_node x = sn_input(g, "x", SN_DTYPE_F32, 4, in);
        sn_init z = sn_init_zeros();
        const char *w = cases[c].what;
        if (!strcmp(w, "rank")) sn_fully_connected(g, x, 3, "fc");
        if (!strcmp(w, "matmul")) {
            sn_node a = sn_variable(g, "a", 2, d2, &z, 0);
            sn_op_matmul(g, a, a);
        }
        if (!strcmp(w, "dup")) {
            sn_variable(g, "a", 2, d2, &z, 0);
            sn_variable(g, "a", 2, d2, &z, 0);
        }
        if (!strcmp(w, "node")) sn_op_relu(g, 12345);
        if (!strcmp(w, "valid")) sn_op_max_pool(g, x, 7, 7, 1, 1, SN_PAD_VALID);
        if (!strcmp(w, "pop")) sn_scope_pop(g);
        if (!strcmp(w, "squeeze")) sn_op_squeeze(g, x);
        if (!strcmp(w, "keep")) sn_op_dropout(g, x, 1.5f, 1);
        if (!strcmp(w, "concat")) {
            sn_node y = sn_op_max_pool(g, x, 2, 2, 2, 2, SN_PAD_VALID);
            sn_node xs[2] = {x, y};
            sn_op_concat(g, 2, xs);
        }
        if (!strcmp(w, "labels")) {
            int64_t ld[1] = {SN_BATCH};
            sn_node lab = sn_input(g, "labels", SN_DTYPE_F32, 1, ld);
            sn_op_softmax_xent(g, sn_op_flatten(g, x), lab, 0.0f);
        }
        ck_assert_msg(sn_graph_status(g) == cases[c].want, "%s: got %s (%s)", w,
                      sn_status_name(sn_graph_status(g)), sn_graph_errmsg(g));
        ck_assert_msg(strlen(sn_graph_errmsg(g)) > 10, "%s: message too short", w);
        sn_graph_free(g);
    }
    sn_ctx_free(ctx);
} END_TEST

START_TEST(test_net_api_errors) {
    sn_ctx *ctx = tu_ctx();
    sn_graph *g = new_graph(ctx);
    int64_t in[2] = {SN_BATCH, 3};
    sn_node x = sn_input(g, "x", SN_DTYPE_F32, 2, in);
    sn_node h = sn_fully_connected(g, x, 4, "fc1");
    sn_node y = sn_fully_connected(g, h, 2, "fc2");
    sn_node l = sn_op_l2_loss(g, y, 1.0f);
    sn_graph_end_point(g, y, NULL);
    sn_net *net = compile(g, 5, 1);
    sn_tensor *t = NULL;
    ck_assert_int_eq(sn_net_get_var(net, "fc1/nope", &t), SN_ERR_NOT_FOUND);
    ck_assert_ptr_nonnull(strstr(sn_ctx_errmsg(ctx), "fc1/nope"));
    ck_assert_int_eq(sn_net_backward(net, l), SN_ERR_STATE);   /* no forward yet */
    float bad[12] = {0};
    int64_t bd[2] = {4, 3};
    sn_tensor *bt = wrap(bad, 2, bd);
    ck_assert_int_eq(sn_net_set_input(net, x, bt), SN_ERR_SHAPE);   /* batch is 5 */
    ck_assert_ptr_nonnull(strstr(sn_ctx_errmsg(ctx), "[5,3]"));
    ck_assert_int_eq(sn_net_set_var(net, "fc1/weights", bt), SN_ERR_SHAPE);
    ck_assert_int_eq(sn_net_forward(net), SN_OK);
    ck_assert_int_eq(sn_net_get_output(net, h, &t), SN_ERR_STATE);   /* memory reused */
    ck_assert_int_eq(sn_net_get_output(net, y, &t), SN_OK);          /* end point: kept */
    sn_tensor_free(t);
    ck_assert_int_eq(sn_net_backward(net, y), SN_ERR_INVALID_ARG);   /* not a scalar */
    ck_assert_int_eq(sn_net_backward(net, l), SN_OK);
    sn_tensor_free(bt);
    sn_net_free(net);
    sn_graph_free(g);
    sn_ctx_free(ctx);
} END_TEST

/* ---- forward values worked out by hand -------------------------------------------------- */

/* A 3x3 input 1..9, 2x2 ones kernel, stride 2, SAME: TF pads only bottom/right (total 1),
 * so the outputs are 1+2+4+5, 3+6, 7+8, 9. */
START_TEST(test_conv_same_asymmetric_by_hand) {
    sn_ctx *ctx = tu_ctx();
    sn_graph *g = new_graph(ctx);
    int64_t in[4] = {SN_BATCH, 3, 3, 1}, wd[4] = {2, 2, 1, 1};
    sn_node x = sn_input(g, "x", SN_DTYPE_F32, 4, in);
    sn_init ones = sn_init_ones();
    sn_node w = sn_variable(g, "w", 4, wd, &ones, SN_VAR_TRAINABLE);
    sn_node y = sn_op_conv2d(g, x, w, 2, 2, 1, SN_PAD_SAME);
    sn_graph_end_point(g, y, "y");
    ck_assert_int_eq(sn_node_dim(g, y, 1), 2);
    sn_net *net = compile(g, 1, 0);
    float xv[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    int64_t xd[4] = {1, 3, 3, 1};
    sn_tensor *xt = wrap(xv, 4, xd), *yt = NULL;
    ck_assert_int_eq(sn_net_set_input(net, x, xt), SN_OK);
    ck_assert_int_eq(sn_net_forward(net), SN_OK);
    ck_assert_int_eq(sn_net_get_output(net, sn_graph_find(g, "y"), &yt), SN_OK);
    float *yv = sn_tensor_data(yt);
    ck_assert_float_eq(yv[0], 12.0f);
    ck_assert_float_eq(yv[1], 9.0f);
    ck_assert_float_eq(yv[2], 15.0f);
    ck_assert_float_eq(yv[3], 9.0f);
    sn_tensor_free(xt);
    sn_tensor_free(yt);
    sn_net_free(net);
    sn_graph_free(g);
    sn_ctx_free(ctx);
} END_TEST

/* SAME 3x3 stride-1 average pooling on a 3x3 ones-and-index input divides each output by
 * the number of in-bounds cells: corner 4, edge 6, centre 9. */
START_TEST(test_avg_pool_same_by_hand) {
    sn_ctx *ctx = tu_ctx();
    sn_graph *g = new_graph(ctx);
    int64_t in[4] = {SN_BATCH, 3, 3, 1};
    sn_node x = sn_input(g, "x", SN_DTYPE_F32, 4, in);
    sn_node y = sn_avg_pool2d(g, x, 3, 1, SN_PAD_SAME, "pool");
    sn_graph_end_point(g, y, NULL);
    sn_net *net = compile(g, 1, 0);
    float xv[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    int64_t xd[4] = {1, 3, 3, 1};
    sn_tensor *xt = wrap(xv, 4, xd), *yt = NULL;
    sn_net_set_input(net, x, xt);
    ck_assert_int_eq(sn_net_forward(net), SN_OK);
    ck_assert_int_eq(sn_net_get_output(net, y, &yt), SN_OK);
    float *yv = sn_tensor_data(yt);
    ck_assert_float_eq_tol(yv[0], (1 + 2 + 4 + 5) / 4.0f, 1e-6f);
    ck_assert_float_eq_tol(yv[1], (1 + 2 + 3 + 4 + 5 + 6) / 6.0f, 1e-6f);
    ck_assert_float_eq_tol(yv[4], 5.0f, 1e-6f);
    sn_tensor_free(xt);
    sn_tensor_free(yt);
    sn_net_free(net);
    sn_graph_free(g);
    sn_ctx_free(ctx);
} END_TEST

/* Training batch norm: output normalized by batch moments; moving statistics move toward
 * the batch mean and the Bessel-corrected variance by (1-decay). */
START_TEST(test_batch_norm_training_updates) {
    sn_ctx *ctx = tu_ctx();
    sn_graph *g = new_graph(ctx);
    int64_t in[2] = {SN_BATCH, 1};
    sn_node x = sn_input(g, "x", SN_DTYPE_F32, 2, in);
    sn_graph_defaults(g)->bn_decay = 0.9f;
    sn_node y = sn_batch_norm(g, x, "BatchNorm");
    sn_graph_end_point(g, y, NULL);
    sn_net *net = compile(g, 4, 0);
    float xv[4] = {1, 2, 3, 6};   /* mean 3, biased var 3.5, unbiased 14/3 */
    int64_t xd[2] = {4, 1};
    sn_tensor *xt = wrap(xv, 2, xd), *yt = NULL, *mm = NULL, *mv = NULL;
    sn_net_set_input(net, x, xt);
    ck_assert_int_eq(sn_net_forward(net), SN_OK);
    sn_net_get_output(net, y, &yt);
    ck_assert_float_eq_tol(((float *)sn_tensor_data(yt))[3], 3.0f / sqrtf(3.5f + 0.001f), 1e-5f);
    sn_net_get_var(net, "BatchNorm/moving_mean", &mm);
    sn_net_get_var(net, "BatchNorm/moving_variance", &mv);
    ck_assert_float_eq_tol(((float *)sn_tensor_data(mm))[0], 0.1f * 3.0f, 1e-6f);
    ck_assert_float_eq_tol(((float *)sn_tensor_data(mv))[0], 0.9f + 0.1f * 14.0f / 3.0f, 1e-5f);
    sn_tensor_free(xt);
    sn_tensor_free(yt);
    sn_tensor_free(mm);
    sn_tensor_free(mv);
    sn_net_free(net);
    sn_graph_free(g);
    sn_ctx_free(ctx);
} END_TEST

/* Label smoothing 0.3 over 3 classes, logits (0, ln 2, 0): p = (1/4, 1/2, 1/4), targets
 * (0.1, 0.8, 0.1) for label 1: loss = -(0.1 ln 1/4 + 0.8 ln 1/2 + 0.1 ln 1/4). */
START_TEST(test_xent_by_hand) {
    sn_ctx *ctx = tu_ctx();
    sn_graph *g = new_graph(ctx);
    int64_t ld[2] = {SN_BATCH, 3}, nd[1] = {SN_BATCH};
    sn_node logits = sn_input(g, "logits", SN_DTYPE_F32, 2, ld);
    sn_node labels = sn_input(g, "labels", SN_DTYPE_I32, 1, nd);
    sn_node loss = sn_op_softmax_xent(g, logits, labels, 0.3f);
    sn_net *net = compile(g, 1, 0);
    float lv[3] = {0.0f, logf(2.0f), 0.0f};
    int32_t lab[1] = {1};
    int64_t d2[2] = {1, 3}, d1[1] = {1};
    sn_tensor *lt = wrap(lv, 2, d2), *bt = NULL, *out = NULL;
    sn_tensor_wrap(ctx, lab, SN_DTYPE_I32, 1, d1, SN_BORROW, &bt);
    sn_net_set_input(net, logits, lt);
    sn_net_set_input(net, labels, bt);
    ck_assert_int_eq(sn_net_forward(net), SN_OK);
    sn_net_get_output(net, loss, &out);
    double want = -(0.2 * log(0.25) + 0.8 * log(0.5));
    ck_assert_double_eq_tol(((float *)sn_tensor_data(out))[0], want, 1e-6);
    /* A label outside [0, 3) is an error naming it, not a crash. */
    lab[0] = 3;
    sn_net_set_input(net, labels, bt);
    ck_assert_int_eq(sn_net_forward(net), SN_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(sn_ctx_errmsg(ctx), "label"));
    sn_tensor_free(lt);
    sn_tensor_free(bt);
    sn_tensor_free(out);
    sn_net_free(net);
    sn_graph_free(g);
    sn_ctx_free(ctx);
} END_TEST

/* ---- memory plan and determinism ------------------------------------------------------------- */

static sn_node small_convnet(sn_graph *g, sn_node *xo) {
    int64_t in[4] = {SN_BATCH, 16, 16, 3};
    sn_node x = sn_input(g, "x", SN_DTYPE_F32, 4, in);
    *xo = x;
    sn_graph_defaults(g)->batch_norm = 1;
    sn_node y = x;
    char name[16];
    for (int i = 0; i < 6; i++) {
        snprintf(name, sizeof name, "conv%d", i);
        y = sn_conv2d(g, y, 8, 3, 3, i % 2 ? 2 : 1, name);
    }
    y = sn_op_spatial_mean(g, y, 0);
    sn_graph_defaults(g)->batch_norm = 0;
    sn_graph_defaults(g)->activation = SN_ACT_NONE;
    y = sn_fully_connected(g, y, 5, "logits");
    return sn_op_l2_loss(g, y, 1.0f);
}

START_TEST(test_arena_reuse) {
    sn_ctx *ctx = tu_ctx();
    sn_graph *g = new_graph(ctx);
    sn_node x;
    small_convnet(g, &x);
    /* Unfused: the ratios below are of buffers planned one per node. */
    sn_net *inf = compile_f(g, 4, 0, 0), *tr = compile_f(g, 4, 1, 0);
    sn_net_memory mi = sn_net_memory_info(inf), mt = sn_net_memory_info(tr);
    /* Inference keeps about two activations alive (here 2 of the 16x16x8 ones: 64 KiB of
     * 160 KiB); training keeps what backward reads. */
    ck_assert_msg(mi.arena * 2 < mi.arena_unplanned, "inference arena %zu of %zu", mi.arena,
                  mi.arena_unplanned);
    ck_assert_msg(mt.arena < mt.arena_unplanned, "training arena %zu of %zu", mt.arena,
                  mt.arena_unplanned);
    ck_assert_int_eq(mi.grads, 0);
    ck_assert_int_gt(mt.grads, 0);
    /* Fusing batch norm and relu (training mode here) never needs more memory. */
    sn_net *finf = compile(g, 4, 0), *ftr = compile(g, 4, 1);
    ck_assert_int_eq(finf->n_fused, 7);   /* 6 relus; without backward also the logits' bias */
    ck_assert_int_eq(ftr->n_fused, 6);
    ck_assert_uint_le(sn_net_memory_info(finf).arena, mi.arena);
    ck_assert_uint_le(sn_net_memory_info(ftr).arena, mt.arena);
    sn_net_free(finf);
    sn_net_free(ftr);
    sn_net_free(inf);
    sn_net_free(tr);
    sn_graph_free(g);
    sn_ctx_free(ctx);
} END_TEST

/* The same seed gives the same variables and the same loss bit for bit; a reused arena
 * gives the same gradients as a net that computes them again. */
START_TEST(test_determinism) {
    float loss[2];
    sn_tensor *grads[2];
    for (int r = 0; r < 2; r++) {
        sn_ctx *ctx = tu_ctx();
        sn_graph *g = new_graph(ctx);
        sn_node x;
        sn_node l = small_convnet(g, &x);
        sn_net *net = compile(g, 2, 1);
        float *xv = malloc(2 * 16 * 16 * 3 * sizeof *xv);
        tu_fill(xv, 2 * 16 * 16 * 3, 5);
        int64_t xd[4] = {2, 16, 16, 3};
        sn_tensor *xt = wrap(xv, 4, xd), *lt = NULL;
        sn_net_set_input(net, x, xt);
        for (int step = 0; step < 2; step++) {   /* twice: stale buffers must not leak in */
            ck_assert_int_eq(sn_net_forward(net), SN_OK);
            ck_assert_int_eq(sn_net_backward(net, l), SN_OK);
        }
        sn_net_get_output(net, l, &lt);
        loss[r] = ((float *)sn_tensor_data(lt))[0];
        ck_assert_int_eq(sn_net_get_grad(net, "conv0/weights", &grads[r]), SN_OK);
        sn_tensor_free(lt);
        sn_tensor_free(xt);
        free(xv);
        sn_net_free(net);
        sn_graph_free(g);
        sn_ctx_free(ctx);
    }
    ck_assert_mem_eq(&loss[0], &loss[1], sizeof(float));
    ck_assert_mem_eq(sn_tensor_data(grads[0]), sn_tensor_data(grads[1]), sn_tensor_nbytes(grads[0]));
    sn_tensor_free(grads[0]);
    sn_tensor_free(grads[1]);
} END_TEST

/* ---- fusion (inference nets) ---------------------------------------------------------------- */

/* Every chain the compiler may fold, and the cases where it must not: conv+BN+relu,
 * strided conv+BN(gamma)+relu6, 1x1 conv+bias+relu6, 1x1 conv+BN+hard_swish, depthwise (M=2)+BN+relu6, conv+BN+
 * residual add+relu, two conv+BN chains meeting in one add (only the later one takes it),
 * conv+BN whose BN output is an end point (the relu after it must stay), a conv whose output
 * has two consumers (nothing folds), matmul+bias+relu and matmul+bias (the logits).
 * Returns the logits; *bn_ep is the end point, *c7a and *c7b the two chains' BN outputs. */
static sn_node fusion_net(sn_graph *g, sn_node *xo, sn_node *bn_ep, sn_node *c7a,
                          sn_node *c7b, int *expect_folded) {
    int64_t in[4] = {SN_BATCH, 12, 12, 5};
    sn_node x = sn_input(g, "x", SN_DTYPE_F32, 4, in);
    *xo = x;
    sn_defaults *d = sn_graph_defaults(g);
    d->is_training = 0;
    d->batch_norm = 1;
    sn_node h = sn_conv2d(g, x, 8, 3, 3, 1, "c1");                    /* BN, relu: 2 */
    d->bn_scale = 1;
    sn_conv_params p = sn_conv_params_from(g, 16, 3, 3, 2);
    p.activation = SN_ACT_RELU6;
    h = sn_conv2d_p(g, h, &p, "c2");                                   /* BN, relu6: 2 */
    d->bn_scale = 0;
    p = sn_conv_params_from(g, 12, 1, 1, 1);
    p.batch_norm = 0;
    p.biases = 1;
    p.activation = SN_ACT_RELU6;
    h = sn_conv2d_p(g, h, &p, "c3");                                   /* bias, relu6: 2 */
    p = sn_conv_params_from(g, 12, 1, 1, 1);
    p.activation = SN_ACT_HARD_SWISH;
    h = sn_conv2d_p(g, h, &p, "c3h");                                  /* BN, hard_swish: 2 */
    p = sn_conv_params_from(g, 0, 3, 3, 1);
    p.depth_multiplier = 2;
    p.activation = SN_ACT_RELU6;
    h = sn_separable_conv2d_p(g, h, &p, "dw");                         /* BN, relu6: 2 */
    p = sn_conv_params_from(g, 24, 1, 1, 1);
    p.activation = SN_ACT_NONE;
    sn_node r = sn_conv2d_p(g, h, &p, "c4");                           /* BN, add, relu: 3 */
    h = sn_op_relu(g, sn_op_add(g, r, h));
    *c7a = sn_conv2d_p(g, h, &p, "c7a");                               /* BN: 1 */
    *c7b = sn_conv2d_p(g, h, &p, "c7b");                               /* BN, add, relu: 3 */
    h = sn_op_relu(g, sn_op_add(g, *c7a, *c7b));
    p = sn_conv_params_from(g, 24, 3, 3, 1);
    p.activation = SN_ACT_NONE;
    *bn_ep = sn_conv2d_p(g, h, &p, "c5");                              /* BN: 1 */
    sn_graph_end_point(g, *bn_ep, "c5_bn");
    h = sn_op_relu(g, *bn_ep);
    int64_t wd[4] = {1, 1, 24, 24};
    sn_init xavier = sn_init_xavier(1);
    sn_node w = sn_variable(g, "c6/weights", 4, wd, &xavier, SN_VAR_TRAINABLE);
    sn_node c6 = sn_op_conv2d(g, h, w, 1, 1, 1, SN_PAD_SAME);          /* two users: 0 */
    h = sn_op_add(g, sn_op_relu(g, c6), c6);
    h = sn_op_spatial_mean(g, h, 0);
    d->batch_norm = 0;
    h = sn_fully_connected(g, h, 10, "fc");                            /* bias, relu: 2 */
    d->activation = SN_ACT_NONE;
    sn_node logits = sn_fully_connected(g, h, 7, "logits");            /* bias: 1 */
    sn_graph_end_point(g, logits, "logits");
    *expect_folded = 21;
    return logits;
}

/* Every variable of g set to the same random values in both nets: batch norm statistics
 * far from 0 and 1 and biases far from 0, so that a dropped or misplaced epilogue term
 * shows. */
static void randomize_vars(sn_graph *g, sn_net *a, sn_net *b, uint64_t seed) {
    for (int v = 0; v < sn_graph_num_vars(g); v++) {
        sn_var_info vi;
        ck_assert_int_eq(sn_graph_var(g, v, &vi), SN_OK);
        size_t n = 1;
        for (int k = 0; k < vi.rank; k++) n *= (size_t)vi.dims[k];
        float *val = malloc(n * sizeof *val);
        tu_fill(val, n, seed + (uint64_t)v);
        for (size_t i = 0; i < n; i++) {
            if (strstr(vi.name, "moving_variance")) val[i] = 0.25f + val[i] * val[i];
            else if (strstr(vi.name, "gamma")) val[i] = 1.0f + 0.5f * val[i];
            else if (!strstr(vi.name, "weights")) val[i] *= 2.0f;   /* beta, mean, biases */
        }
        sn_tensor *t = wrap(val, vi.rank, vi.dims);
        ck_assert_int_eq(sn_net_set_var(a, vi.name, t), SN_OK);
        ck_assert_int_eq(sn_net_set_var(b, vi.name, t), SN_OK);
        sn_tensor_free(t);
        free(val);
    }
}

/* Runs both nets and compares node n.  On the CPU the fused kernels run the unfused ones'
 * products and then their float operations in their order, so the outputs must be equal bit
 * for bit, which also bounds any relative difference by 0. */
static void compare_nets(sn_net *fused, sn_net *plain, sn_node n, const char *what) {
    sn_tensor *a = NULL, *b = NULL;
    ck_assert_int_eq(sn_net_forward(fused), SN_OK);
    ck_assert_int_eq(sn_net_forward(plain), SN_OK);
    ck_assert_int_eq(sn_net_get_output(fused, n, &a), SN_OK);
    ck_assert_int_eq(sn_net_get_output(plain, n, &b), SN_OK);
    size_t cnt = sn_tensor_nbytes(b) / sizeof(float);
    double err = tu_max_rel_err(sn_tensor_data(a), sn_tensor_data(b), cnt);
    ck_assert_msg(memcmp(sn_tensor_data(a), sn_tensor_data(b), sn_tensor_nbytes(b)) == 0,
                  "%s: fused differs from unfused (max relative difference %.3g)", what, err);
    sn_tensor_free(a);
    sn_tensor_free(b);
}

START_TEST(test_fusion_inference) {
    sn_ctx *ctx = tu_ctx();
    sn_graph *g = new_graph(ctx);
    sn_node x, bn_ep, c7a, c7b;
    int expect = 0;
    sn_node logits = fusion_net(g, &x, &bn_ep, &c7a, &c7b, &expect);
    ck_assert_int_eq(sn_graph_status(g), SN_OK);
    sn_net *fused = compile(g, 3, 0), *plain = compile_f(g, 3, 0, 0);
    ck_assert_int_eq(plain->n_fused, 0);
    ck_assert_ptr_null(plain->fuse);
    ck_assert_int_eq(fused->n_fused, expect);
    /* conv+BN of c5 fold with the end point as their tail; the relu reading the end point
     * and the conv with two users stay separate. */
    const sn_graph *gi = fused->g;
    int c5 = gi->nodes[bn_ep].in[0], c6 = -1, relu5 = -1;
    for (int i = 0; i < fused->n; i++) {
        if (gi->nodes[i].op == SN__OP_conv2d && gi->nodes[gi->nodes[i].in[1]].name &&
            strcmp(gi->nodes[gi->nodes[i].in[1]].name, "c6/weights") == 0)
            c6 = i;
        if (gi->nodes[i].op == SN__OP_relu && gi->nodes[i].in[0] == bn_ep) relu5 = i;
    }
    ck_assert_int_ge(c6, 0);
    ck_assert_int_ge(relu5, 0);
    ck_assert_int_eq(fused->fuse[c5].tail, bn_ep);
    ck_assert_int_eq(fused->fuse[bn_ep].head, c5);
    ck_assert_int_eq(fused->fuse[relu5].head, -1);
    ck_assert_int_eq(fused->fuse[c6].tail, c6);
    int h7a = gi->nodes[c7a].in[0], h7b = gi->nodes[c7b].in[0];
    ck_assert_int_eq(fused->fuse[h7a].tail, c7a);
    ck_assert_int_eq(fused->fuse[h7a].residual, -1);
    ck_assert_int_ge(fused->fuse[h7b].residual, 0);
    ck_assert_int_ge(fused->fuse[h7b].act, 0);
    randomize_vars(g, fused, plain, 11);
    float *xv = malloc(3 * 12 * 12 * 5 * sizeof *xv);
    tu_fill(xv, 3 * 12 * 12 * 5, 3);
    int64_t xd[4] = {3, 12, 12, 5};
    sn_tensor *xt = wrap(xv, 4, xd);
    ck_assert_int_eq(sn_net_set_input(fused, x, xt), SN_OK);
    ck_assert_int_eq(sn_net_set_input(plain, x, xt), SN_OK);
    compare_nets(fused, plain, logits, "logits");
    compare_nets(fused, plain, bn_ep, "end point c5_bn");
    /* New variables between two runs (a restore, set_var) are used: nothing is cached. */
    randomize_vars(g, fused, plain, 12);
    compare_nets(fused, plain, logits, "logits after set_var");
    /* The profile shows what was folded, and no batch_norm or bias_add runs alone. */
    sn_net_set_profile(fused, 1);
    ck_assert_int_eq(sn_net_forward(fused), SN_OK);
    char rep[2048];
    ck_assert_int_eq(sn_net_profile_report(fused, rep, sizeof rep), SN_OK);
    ck_assert_msg(strstr(rep, "folded into the convolution, matmul, batch norm or bias_add "
                         "before them:") &&
                  strstr(rep, " 8 batch_norm") && strstr(rep, " 3 bias_add") &&
                  strstr(rep, " 1 hard_swish") &&
                  strstr(rep, " 4 relu,") && strstr(rep, " 3 relu6") && strstr(rep, " 2 add"),
                  "%s", rep);
    ck_assert_msg(strstr(rep, "\nbatch_norm ") == NULL && strstr(rep, "\nbias_add ") == NULL,
                  "%s", rep);
    sn_tensor_free(xt);
    free(xv);
    sn_net_free(fused);
    sn_net_free(plain);
    sn_graph_free(g);
    sn_ctx_free(ctx);
} END_TEST

/* ---- fusion (training nets) ------------------------------------------------------------------ */

/* Reads node n of net into a new tensor (sn_net_get_output). */
static sn_tensor *output(sn_net *net, sn_node n) {
    sn_tensor *t = NULL;
    ck_assert_msg(sn_net_get_output(net, n, &t) == SN_OK, "%s", sn_ctx_errmsg(net->ctx));
    return t;
}

static void same_bits(sn_tensor *a, sn_tensor *b, const char *what, int step) {
    ck_assert_uint_eq(sn_tensor_nbytes(a), sn_tensor_nbytes(b));
    size_t cnt = sn_tensor_nbytes(b) / sizeof(float);
    ck_assert_msg(memcmp(sn_tensor_data(a), sn_tensor_data(b), sn_tensor_nbytes(b)) == 0,
                  "step %d, %s: fused differs from unfused (max relative difference %.3g)",
                  step, what, tu_max_rel_err(sn_tensor_data(a), sn_tensor_data(b), cnt));
    sn_tensor_free(a);
    sn_tensor_free(b);
}

/* Trains a fused and an unfused (fuse = 0) net of g for two momentum steps on one random
 * batch and requires the losses, every end point, every trainable variable's gradient and
 * every variable (weights, optimizer slots aside, and the batch norms' moving statistics)
 * to be equal bit for bit: on the CPU the fused kernels run the unfused ones' float
 * operations in their order, and the fused backward accumulates each gradient in the
 * unfused order.  Also: no kept value (end point, scalar) is ever folded away, and the
 * profile report names what was folded.  Returns the fused net's folded node count. */
static int train_fused_vs_plain(sn_graph *g, sn_node images, sn_node labels, sn_node loss,
                                int64_t batch, int classes) {
    sn_net *fused = compile_f(g, batch, 1, 1), *plain = compile_f(g, batch, 1, 0);
    ck_assert_int_eq(plain->n_fused, 0);
    ck_assert_ptr_null(plain->fuse);
    for (int i = 0; fused->fuse && i < fused->n; i++) {
        int h = fused->fuse[i].head;
        if (fused->keep[i])   /* readable: computed, in its own buffer */
            ck_assert_msg(h < 0 || fused->fuse[h].tail == i, "kept node %d folded", i);
        if (h >= 0)
            ck_assert(fused->g->nodes[h].op == SN__OP_batch_norm ||
                      fused->g->nodes[h].op == SN__OP_bias_add);
    }
    size_t nx = 1;
    for (int d = 0; d < 4; d++) nx *= (size_t)fused->dims[images][d];
    float *xv = malloc(nx * sizeof *xv);
    tu_fill(xv, nx, 17);
    int32_t *yv = malloc((size_t)batch * sizeof *yv);
    for (int64_t b = 0; b < batch; b++) yv[b] = (int32_t)((b * 7 + 3) % classes);
    sn_tensor *xt = wrap(xv, 4, fused->dims[images]), *yt = NULL;
    ck_assert_int_eq(sn_tensor_wrap(NULL, yv, SN_DTYPE_I32, 1, &batch, SN_BORROW, &yt), SN_OK);
    sn_net *nets[2] = {fused, plain};
    sn_optim *opt[2];
    for (int k = 0; k < 2; k++) {
        ck_assert_int_eq(sn_net_set_input(nets[k], images, xt), SN_OK);
        ck_assert_int_eq(sn_net_set_input(nets[k], labels, yt), SN_OK);
        sn_optim_params op = sn_optim_params_default(SN_OPTIM_MOMENTUM);
        ck_assert_int_eq(sn_optim_new(nets[k], &op, &opt[k]), SN_OK);
    }
    sn_net_set_profile(fused, 1);
    sn_node eps[512];
    int n_eps = sn_graph_end_points(g, eps, 512);
    ck_assert_int_le(n_eps, 512);
    for (int step = 0; step < 2; step++) {
        for (int k = 0; k < 2; k++) {
            ck_assert_msg(sn_net_forward(nets[k]) == SN_OK, "%s", sn_ctx_errmsg(nets[k]->ctx));
            ck_assert_msg(sn_net_backward(nets[k], loss) == SN_OK, "%s",
                          sn_ctx_errmsg(nets[k]->ctx));
        }
        same_bits(output(fused, loss), output(plain, loss), "loss", step);
        for (int e = 0; e < n_eps; e++) {
            char buf[64];
            same_bits(output(fused, eps[e]), output(plain, eps[e]),
                      sn__node_label(g, eps[e], buf, sizeof buf), step);
        }
        for (int v = 0; v < sn_graph_num_vars(g); v++) {
            sn_var_info vi;
            ck_assert_int_eq(sn_graph_var(g, v, &vi), SN_OK);
            sn_tensor *a = NULL, *b = NULL;
            if (sn_net_get_grad(fused, vi.name, &a) == SN_OK) {
                ck_assert_int_eq(sn_net_get_grad(plain, vi.name, &b), SN_OK);
                same_bits(a, b, vi.name, step);
            }
        }
        for (int k = 0; k < 2; k++) ck_assert_int_eq(sn_optim_step(opt[k], 0.05f), SN_OK);
        for (int v = 0; v < sn_graph_num_vars(g); v++) {
            sn_var_info vi;
            ck_assert_int_eq(sn_graph_var(g, v, &vi), SN_OK);
            sn_tensor *a = NULL, *b = NULL;
            ck_assert_int_eq(sn_net_get_var(fused, vi.name, &a), SN_OK);
            ck_assert_int_eq(sn_net_get_var(plain, vi.name, &b), SN_OK);
            same_bits(a, b, vi.name, step);
        }
    }
    if (fused->n_fused) {
        char rep[4096];
        ck_assert_int_eq(sn_net_profile_report(fused, rep, sizeof rep), SN_OK);
        ck_assert_msg(strstr(rep, "folded into the convolution, matmul, batch norm or "
                                  "bias_add before them:") != NULL, "%s", rep);
    }
    int folded = fused->n_fused;
    for (int k = 0; k < 2; k++) {
        sn_optim_free(opt[k]);
        sn_net_free(nets[k]);
    }
    sn_tensor_free(xt);
    sn_tensor_free(yt);
    free(xv);
    free(yv);
    return folded;
}

/* Conv + BN (no activation), the way slim layers build a residual branch's last layer. */
static sn_node conv_bn(sn_graph *g, sn_node x, int k, int kh, int stride, const char *name) {
    sn_conv_params p = sn_conv_params_from(g, k, kh, kh, stride);
    p.activation = SN_ACT_NONE;
    return sn_conv2d_p(g, x, &p, name);
}

/* ResNet- and Inception-like: every chain a training net folds and the cases it must not.
 * Returns the loss; *expect is the number of nodes the compiler should fold. */
static sn_node training_fusion_net(sn_graph *g, sn_node *images, sn_node *labels,
                                   sn_node *bn_ep, int *expect) {
    int64_t in[4] = {SN_BATCH, 9, 9, 3}, ld[1] = {SN_BATCH};
    *images = sn_input(g, "images", SN_DTYPE_F32, 4, in);
    *labels = sn_input(g, "labels", SN_DTYPE_I32, 1, ld);
    sn_defaults *d = sn_graph_defaults(g);
    d->is_training = 1;
    d->batch_norm = 1;
    d->weight_decay = 1e-3f;
    sn_node h = sn_conv2d(g, *images, 8, 3, 3, 1, "stem");              /* BN+relu: 1 */
    /* Identity shortcut: h + BN(conv), relu. */
    sn_node r = sn_conv2d(g, h, 8, 3, 3, 1, "u1/conv1");                /* 1 */
    r = conv_bn(g, r, 8, 3, 1, "u1/conv2");
    h = sn_op_relu(g, sn_op_add(g, h, r));                              /* add, relu: 2 */
    /* Projection shortcut, operands the other way round, relu6, gamma. */
    d->bn_scale = 1;
    sn_node sc = conv_bn(g, h, 16, 1, 2, "u2/shortcut");                /* later add: 0 */
    r = conv_bn(g, h, 16, 3, 2, "u2/conv1");
    h = sn_op_relu6(g, sn_op_add(g, r, sc));                            /* 2 */
    /* A residual read between the head and the add: the add stays, and so does the relu
     * after it (folded, the residual's gradient would be summed in another order: the
     * readers' backward would run before the head's). */
    r = conv_bn(g, h, 16, 1, 1, "u3/conv1");                            /* 0 */
    sn_node side1 = sn_op_scale(g, h, 0.37f), side2 = sn_op_scale(g, h, -1.3f);
    h = sn_op_relu(g, sn_op_add(g, r, h));
    h = sn_op_add(g, sn_op_add(g, h, side1), side2);
    /* BN output that is an end point: the relu reading it stays. */
    *bn_ep = conv_bn(g, h, 16, 3, 1, "u4/conv1");                       /* 0 */
    sn_graph_end_point(g, *bn_ep, "u4_bn");
    h = sn_op_relu(g, *bn_ep);
    /* BN output with two consumers: nothing folds. */
    sn_node two = conv_bn(g, h, 16, 1, 1, "u5/conv1");                  /* 0 */
    h = sn_op_add(g, sn_op_relu(g, two), two);
    /* BN with its own input as the residual: left alone (dx and dres would alias). */
    sn_node bnx = sn_batch_norm(g, h, "u6/BatchNorm");                  /* 0 */
    h = sn_op_relu(g, sn_op_add(g, bnx, h));
    /* BN + add with no activation, the sum an end point (the tail may be read). */
    r = conv_bn(g, h, 16, 1, 1, "u7/conv1");
    h = sn_op_add(g, h, r);                                             /* 1 */
    sn_graph_end_point(g, h, "u7_out");
    /* Inception-like: branches of conv+BN+relu, concatenated. */
    sn_node b0 = sn_conv2d(g, h, 8, 1, 1, 1, "mixed/b0");               /* 1 */
    sn_node b1 = sn_conv2d(g, h, 8, 1, 1, 1, "mixed/b1a");              /* 1 */
    b1 = sn_conv2d(g, b1, 8, 3, 3, 1, "mixed/b1b");                     /* 1 */
    sn_node b2 = sn_avg_pool2d(g, h, 3, 1, SN_PAD_SAME, "mixed/pool");
    d->activation = SN_ACT_RELU6;
    b2 = sn_conv2d(g, b2, 8, 1, 1, 1, "mixed/b2");                      /* 1 */
    sn_node br[3] = {b0, b1, b2};
    h = sn_op_concat(g, 3, br);
    h = sn_op_spatial_mean(g, h, 0);
    d->batch_norm = 0;
    d->activation = SN_ACT_NONE;
    sn_node logits = sn_fully_connected(g, h, 5, "logits");
    sn_graph_end_point(g, logits, "logits");
    sn_node loss = sn_op_softmax_xent(g, logits, *labels, 0.1f);
    int nr = 0;
    const sn_node *rl = sn_graph_regularization_losses(g, &nr);
    ck_assert_int_gt(nr, 0);
    ck_assert_int_lt(nr, 63);
    sn_node regs[64];
    memcpy(regs, rl, (size_t)nr * sizeof *regs);
    regs[nr++] = loss;
    *expect = 11;
    return sn_op_add_n(g, nr, regs);
}

START_TEST(test_fusion_training) {
    sn_ctx *ctx = tu_ctx();
    sn_graph *g = new_graph(ctx);
    sn_node images, labels, bn_ep;
    int expect = 0;
    sn_node loss = training_fusion_net(g, &images, &labels, &bn_ep, &expect);
    ck_assert_msg(sn_graph_status(g) == SN_OK, "%s", sn_graph_errmsg(g));
    ck_assert_int_eq(train_fused_vs_plain(g, images, labels, loss, 3, 5), expect);
    /* The end point's batch norm heads nothing; a forward-only net folds the same chains,
     * and the logits' bias into their matmul. */
    sn_net *fwd = compile(g, 3, 0), *fwd0 = compile_f(g, 3, 0, 0);
    ck_assert_int_eq(fwd->n_fused, expect + 1);
    ck_assert_int_eq(fwd->fuse[bn_ep].tail, bn_ep);
    ck_assert_int_eq(fwd->fuse[bn_ep].head, -1);
    ck_assert_ptr_null(fwd0->fuse);
    int64_t xd[4] = {3, 9, 9, 3};
    float xv[3 * 9 * 9 * 3];
    tu_fill(xv, 3 * 9 * 9 * 3, 23);
    sn_tensor *xt = wrap(xv, 4, xd);
    ck_assert_int_eq(sn_net_set_input(fwd, images, xt), SN_OK);
    ck_assert_int_eq(sn_net_set_input(fwd0, images, xt), SN_OK);
    sn_node eps[16];
    int n_eps = sn_graph_end_points(g, eps, 16);
    for (int e = 0; e < n_eps; e++) compare_nets(fwd, fwd0, eps[e], "forward-only end point");
    sn_tensor_free(xt);
    sn_net_free(fwd);
    sn_net_free(fwd0);
    sn_graph_free(g);
    sn_ctx_free(ctx);
} END_TEST

/* Conv + biases, no activation: conv -> bias_add. */
static sn_node conv_lin(sn_graph *g, sn_node x, int k, const char *name) {
    sn_conv_params p = sn_conv_params_from(g, k, 3, 3, 1);
    p.activation = SN_ACT_NONE;
    return sn_conv2d_p(g, x, &p, name);
}

/* VGG- and ResNet-without-batch-norm-like: the bias_add chains a training net folds and the
 * cases it must not.  Returns the loss; *expect is the number of nodes the compiler should
 * fold. */
static sn_node bias_fusion_net(sn_graph *g, sn_node *images, sn_node *labels, int *expect) {
    int64_t in[4] = {SN_BATCH, 8, 8, 3}, ld[1] = {SN_BATCH};
    *images = sn_input(g, "images", SN_DTYPE_F32, 4, in);
    *labels = sn_input(g, "labels", SN_DTYPE_I32, 1, ld);
    sn_defaults *d = sn_graph_defaults(g);
    d->is_training = 1;
    d->weight_decay = 1e-3f;
    d->biases_init = sn_init_random_uniform(-0.3f, 0.3f);
    /* A bias nothing trains on the images: a chain without gradients.              1 */
    int64_t c3[1] = {3};
    sn_init bi = sn_init_random_uniform(-0.5f, 0.5f);
    sn_node h = sn_op_relu(g, sn_op_bias_add(g, *images, sn_variable(g, "shift", 1, c3, &bi,
                                                                      SN_VAR_MODEL)));
    /* VGG: conv -> bias_add -> relu, twice; the second's output an end point.      1 + 1 */
    h = sn_conv2d(g, h, 8, 3, 3, 1, "conv1");
    h = sn_conv2d(g, h, 8, 3, 3, 1, "conv2");
    sn_graph_end_point(g, h, "conv2");
    /* Identity shortcut: relu(h + bias(conv(h))); the add first writes h's gradient, so the
     * head sets it.                                                                 2 */
    h = sn_op_relu(g, sn_op_add(g, h, conv_lin(g, h, 8, "u1")));
    /* Operands the other way round, relu6; h is read after the add too, so the head adds
     * to h's gradient.                                                              2 */
    sn_node hp = h;
    h = sn_op_relu6(g, sn_op_add(g, conv_lin(g, hp, 8, "u2"), hp));
    h = sn_op_add(g, h, sn_op_scale(g, hp, 0.5f));
    /* The residual read between the head and the add: nothing folds.                0 */
    sn_node r = conv_lin(g, h, 8, "u3");
    sn_node side = sn_op_scale(g, h, 0.37f);
    h = sn_op_add(g, sn_op_relu(g, sn_op_add(g, r, h)), side);
    /* The bias_add's output an end point: the relu reading it stays.                0 */
    sn_node bo = conv_lin(g, h, 8, "u4");
    sn_graph_end_point(g, bo, "u4_bias");
    h = sn_op_relu(g, bo);
    /* Two consumers: nothing folds.                                                 0 */
    sn_node two = conv_lin(g, h, 8, "u5");
    h = sn_op_add(g, sn_op_relu(g, two), two);
    /* The bias_add's own input as the residual: left alone (dx and dres alias).     0 */
    int64_t c8[1] = {8};
    sn_node bx = sn_op_bias_add(g, h, sn_variable(g, "u6/biases", 1, c8, &bi,
                                                  SN_VAR_TRAINABLE | SN_VAR_MODEL));
    h = sn_op_relu(g, sn_op_add(g, bx, h));
    /* Add, no activation, the sum an end point.                                     1 */
    h = sn_op_add(g, h, conv_lin(g, h, 8, "u7"));
    sn_graph_end_point(g, h, "u7_out");
    /* Fully connected: matmul -> bias_add -> relu, the matmul's output read after the chain
     * (the head adds to its gradient instead of setting it).                        1 */
    h = sn_op_spatial_mean(g, h, 0);
    int64_t wd[2] = {8, 8};
    sn_init wi = sn_init_xavier(1);
    sn_node mm = sn_op_matmul(g, h, sn_variable(g, "fc/weights", 2, wd, &wi,
                                                SN_VAR_TRAINABLE | SN_VAR_MODEL));
    h = sn_op_relu(g, sn_op_bias_add(g, mm, sn_variable(g, "fc/biases", 1, c8, &bi,
                                                        SN_VAR_TRAINABLE | SN_VAR_MODEL)));
    h = sn_op_add(g, h, sn_op_scale(g, mm, -0.5f));
    d->activation = SN_ACT_NONE;
    sn_node logits = sn_fully_connected(g, h, 5, "logits");             /* 0 */
    sn_graph_end_point(g, logits, "logits");
    sn_node loss = sn_op_softmax_xent(g, logits, *labels, 0.1f);
    int nr = 0;
    const sn_node *rl = sn_graph_regularization_losses(g, &nr);
    ck_assert_int_gt(nr, 0);
    ck_assert_int_lt(nr, 63);
    sn_node regs[64];
    memcpy(regs, rl, (size_t)nr * sizeof *regs);
    regs[nr++] = loss;
    *expect = 9;
    return sn_op_add_n(g, nr, regs);
}

START_TEST(test_fusion_training_bias) {
    sn_ctx *ctx = tu_ctx();
    sn_graph *g = new_graph(ctx);
    sn_node images, labels;
    int expect = 0;
    sn_node loss = bias_fusion_net(g, &images, &labels, &expect);
    ck_assert_msg(sn_graph_status(g) == SN_OK, "%s", sn_graph_errmsg(g));
    ck_assert_int_eq(train_fused_vs_plain(g, images, labels, loss, 3, 5), expect);
    /* A forward-only net folds the biases into their convolutions and matmuls instead: no
     * bias_add heads a chain there, and its end points are the unfused net's. */
    sn_net *fwd = compile(g, 3, 0), *fwd0 = compile_f(g, 3, 0, 0);
    ck_assert_ptr_nonnull(fwd->fuse);
    int conv_heads = 0;
    for (int i = 0; i < fwd->n; i++) {
        if (fwd->g->nodes[i].op == SN__OP_bias_add)
            ck_assert_msg(fwd->fuse[i].tail == i, "bias_add %d heads a chain", i);
        conv_heads += fwd->fuse[i].tail != i;
    }
    ck_assert_int_ge(conv_heads, 8);
    int64_t xd[4] = {3, 8, 8, 3};
    float xv[3 * 8 * 8 * 3];
    tu_fill(xv, 3 * 8 * 8 * 3, 29);
    sn_tensor *xt = wrap(xv, 4, xd);
    ck_assert_int_eq(sn_net_set_input(fwd, images, xt), SN_OK);
    ck_assert_int_eq(sn_net_set_input(fwd0, images, xt), SN_OK);
    sn_node eps[16];
    int n_eps = sn_graph_end_points(g, eps, 16);
    for (int e = 0; e < n_eps; e++) compare_nets(fwd, fwd0, eps[e], "forward-only end point");
    sn_tensor_free(xt);
    sn_net_free(fwd);
    sn_net_free(fwd0);
    sn_graph_free(g);
    sn_ctx_free(ctx);
} END_TEST

/* Zoo nets at a small size: every residual unit of resnet_v1_50 and every expanded
 * convolution of mobilenet_v2 is a batch norm chain, every layer of vgg_a but the logits a
 * bias_add chain; mobilenet_v3_large has batch norm chains with relu or a residual add
 * (its hard swish layers end theirs), and bias_add -> relu in every squeeze-excite. */
START_TEST(test_fusion_training_zoo) {
    static const char *models[] = {"resnet_v1_50", "mobilenet_v2", "vgg_a", "mobilenet_v3_large"};
    static const int min_folded[] = {16 * 2 + 33, 30, 10, 29};
    static const int64_t size[] = {32, 32, 224, 32};   /* vgg's fc6 is 7x7 VALID after 5 pools */
    static const int64_t batch[] = {2, 2, 1, 2};
    sn_ctx *ctx = tu_ctx();
    sn_graph *g = new_graph(ctx);
    int64_t in[4] = {SN_BATCH, size[_i], size[_i], 3}, ld[1] = {SN_BATCH};
    sn_node images = sn_input(g, "images", SN_DTYPE_F32, 4, in);
    sn_node labels = sn_input(g, "labels", SN_DTYPE_I32, 1, ld);
    sn_model_params mp = sn_model_params_default();
    mp.num_classes = 6;
    sn_model m;
    ck_assert_msg(sn_model_build(g, models[_i], images, &mp, &m) == SN_OK, "%s",
                  sn_graph_errmsg(g));
    sn_node loss = sn_op_softmax_xent(g, m.logits, labels, 0.0f);
    int folded = train_fused_vs_plain(g, images, labels, loss, batch[_i], 6);
    ck_assert_msg(folded >= min_folded[_i], "%s: %d nodes folded", models[_i], folded);
    sn_graph_free(g);
    sn_ctx_free(ctx);
} END_TEST

START_TEST(test_dropout_steps) {
    sn_ctx *ctx = tu_ctx();
    sn_graph *g = new_graph(ctx);
    int64_t in[2] = {SN_BATCH, 1000};
    sn_node x = sn_input(g, "x", SN_DTYPE_F32, 2, in);
    sn_node y = sn_dropout(g, x, 0.8f, "Dropout");
    sn_graph_end_point(g, y, NULL);
    sn_net *net = compile(g, 10, 0);
    float *xv = malloc(10000 * sizeof *xv);
    for (int i = 0; i < 10000; i++) xv[i] = 1.0f;
    int64_t xd[2] = {10, 1000};
    sn_tensor *xt = wrap(xv, 2, xd), *a = NULL, *b = NULL, *c = NULL;
    sn_net_set_input(net, x, xt);
    sn_net_set_step(net, 1);
    sn_net_forward(net);
    sn_net_get_output(net, y, &a);
    sn_net_forward(net);
    sn_net_get_output(net, y, &b);
    sn_net_set_step(net, 2);
    sn_net_forward(net);
    sn_net_get_output(net, y, &c);
    ck_assert_mem_eq(sn_tensor_data(a), sn_tensor_data(b), 40000);   /* same step, same mask */
    ck_assert(memcmp(sn_tensor_data(a), sn_tensor_data(c), 40000) != 0);
    int kept = 0;
    for (int i = 0; i < 10000; i++) {
        float v = ((float *)sn_tensor_data(a))[i];
        ck_assert(v == 0.0f || fabsf(v - 1.25f) < 1e-6f);
        kept += v != 0.0f;
    }
    ck_assert_int_gt(kept, 7800);
    ck_assert_int_lt(kept, 8200);
    sn_tensor_free(a);
    sn_tensor_free(b);
    sn_tensor_free(c);
    sn_tensor_free(xt);
    free(xv);
    sn_net_free(net);
    sn_graph_free(g);
    sn_ctx_free(ctx);
} END_TEST

/* Thousands of nodes: the node array moves while builders read their inputs' shapes
 * (inception_resnet_v2 crashed here once). */
START_TEST(test_many_nodes) {
    sn_ctx *ctx = tu_ctx();
    sn_graph *g = new_graph(ctx);
    int64_t in[4] = {SN_BATCH, 3, 5, 7};
    sn_node y = sn_input(g, "x", SN_DTYPE_F32, 4, in);
    for (int i = 0; i < 5000; i++) y = sn_op_relu(g, y);
    ck_assert_int_eq(sn_graph_status(g), SN_OK);
    ck_assert_int_eq(sn_node_dim(g, y, 0), SN_BATCH);
    ck_assert_int_eq(sn_node_dim(g, y, 3), 7);
    sn_graph_free(g);
    sn_ctx_free(ctx);
} END_TEST

/* A node with more inputs than the backward's set mask has bits (32): add_n of 40 L2 terms,
 * the regularization loss of a deep net.  Each term's gradient comes back whole (the mask's
 * shifts stay below 32: UBSan, in CI's sanitizer run, checks them). */
START_TEST(test_add_n_many_inputs) {
    sn_ctx *ctx = tu_ctx();
    sn_graph *g = new_graph(ctx);
    enum { N = 40 };
    sn_node terms[N];
    for (int i = 0; i < N; i++) {
        char name[16];
        snprintf(name, sizeof name, "w%d", i);
        int64_t d = 3;
        sn_init init = sn_init_constant((float)(i + 1));
        sn_node w = sn_variable(g, name, 1, &d, &init, SN_VAR_TRAINABLE);
        terms[i] = sn_op_l2_loss(g, w, 0.5f);
    }
    sn_node loss = sn_op_add_n(g, N, terms);
    ck_assert_int_eq(sn_graph_status(g), SN_OK);
    sn_net *net = compile(g, 1, 1);
    ck_assert_int_eq(sn_net_forward(net), SN_OK);
    ck_assert_int_eq(sn_net_backward(net, loss), SN_OK);
    for (int i = 0; i < N; i += 13) {   /* d/dw (0.5 * sum(w^2) / 2) = 0.5 w */
        char name[16];
        snprintf(name, sizeof name, "w%d", i);
        sn_tensor *gr = NULL;
        ck_assert_int_eq(sn_net_get_grad(net, name, &gr), SN_OK);
        for (int k = 0; k < 3; k++)
            ck_assert_float_eq(((float *)sn_tensor_data(gr))[k], 0.5f * (float)(i + 1));
        sn_tensor_free(gr);
    }
    sn_net_free(net);
    sn_graph_free(g);
    sn_ctx_free(ctx);
} END_TEST

/* sn_net_flop_count against the sizes by hand: a 3x3 convolution on an input (no input
 * gradient: backward = the weight gradient only), a depthwise one and a matmul whose input
 * has a gradient (backward = both), a frozen matmul (backward = its input's gradient). */
START_TEST(test_flop_count) {
    sn_ctx *ctx = tu_ctx();
    sn_graph *g = NULL;
    ck_assert_int_eq(sn_graph_new(ctx, &g), SN_OK);
    int64_t in[4] = {SN_BATCH, 8, 8, 3}, wd[4] = {3, 3, 3, 4}, dd[4] = {3, 3, 4, 2};
    int64_t md[2] = {512, 10}, fd[2] = {10, 6};
    sn_init z = sn_init_zeros();
    sn_node x = sn_input(g, "x", SN_DTYPE_F32, 4, in);
    sn_node c = sn_op_conv2d(g, x, sn_variable(g, "w", 4, wd, &z, SN_VAR_TRAINABLE), 1, 1, 1,
                             SN_PAD_SAME);
    sn_node d = sn_op_depthwise_conv2d(g, c, sn_variable(g, "dw", 4, dd, &z, SN_VAR_TRAINABLE),
                                       1, 1, 1, SN_PAD_SAME);
    sn_node m = sn_op_matmul(g, sn_op_flatten(g, d),
                             sn_variable(g, "m", 2, md, &z, SN_VAR_TRAINABLE));
    sn_node f = sn_op_matmul(g, m, sn_variable(g, "f", 2, fd, &z, 0));
    (void)f;
    ck_assert_int_eq(sn_graph_status(g), SN_OK);
    sn_compile_params pp = sn_compile_params_default();
    pp.batch_size = 2;
    sn_net *net = NULL;
    ck_assert_int_eq(sn_net_compile(g, &pp, &net), SN_OK);
    sn_net_flops fl = sn_net_flop_count(net);
    double conv = 2.0 * 2 * 8 * 8 * 4 * 9 * 3, dw = 2.0 * 2 * 8 * 8 * 8 * 9;
    double mm = 2.0 * 2 * 512 * 10, fz = 2.0 * 2 * 10 * 6;
    ck_assert(fl.forward == conv + dw + mm + fz);
    ck_assert(fl.backward == conv + 2 * dw + 2 * mm + fz);
    sn_net_free(net);
    pp.backward = 0;   /* an inference net: no backward at all */
    ck_assert_int_eq(sn_net_compile(g, &pp, &net), SN_OK);
    fl = sn_net_flop_count(net);
    ck_assert(fl.forward == conv + dw + mm + fz && fl.backward == 0);
    sn_net_free(net);
    sn_graph_free(g);
    sn_ctx_free(ctx);
}
END_TEST

Suite *suite_graph(void) {
    Suite *s = suite_create("graph");
    TCase *tc = tcase_create("graph");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_slim_names);
    tcase_add_test(tc, test_regularization_losses);
    tcase_add_test(tc, test_shape_mismatch_is_sticky);
    tcase_add_test(tc, test_bad_arguments);
    tcase_add_test(tc, test_net_api_errors);
    tcase_add_test(tc, test_conv_same_asymmetric_by_hand);
    tcase_add_test(tc, test_avg_pool_same_by_hand);
    tcase_add_test(tc, test_batch_norm_training_updates);
    tcase_add_test(tc, test_xent_by_hand);
    tcase_add_test(tc, test_arena_reuse);
    tcase_add_test(tc, test_determinism);
    tcase_add_test(tc, test_fusion_inference);
    tcase_add_test(tc, test_fusion_training);
    tcase_add_test(tc, test_fusion_training_bias);
    tcase_add_loop_test(tc, test_fusion_training_zoo, 0, 4);
    tcase_add_test(tc, test_dropout_steps);
    tcase_add_test(tc, test_many_nodes);
    tcase_add_test(tc, test_add_n_many_inputs);
    tcase_add_test(tc, test_flop_count);
    suite_add_tcase(s, tc);
    return s;
}
