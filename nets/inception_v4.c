/* inception_v4.c: TF-slim's inception_v4 (nets/inception_v4.py).
 *
 * SAME stride 1 unless noted ("V" = VALID).  Stem: Conv2d_1a_3x3 32/2 V -> Conv2d_2a_3x3 32 V
 * -> Conv2d_2b_3x3 64 -> Mixed_3a (max pool 3x3/2 V | 96 3x3/2 V) -> Mixed_4a (64 -> 96 3x3 V |
 * 64 -> 64 1x7 -> 64 7x1 -> 96 3x3 V) -> Mixed_5a (192 3x3/2 V | max pool /2 V).  Then 4
 * Inception-A blocks Mixed_5b..5e, Reduction-A Mixed_6a, 7 Inception-B blocks Mixed_6b..6h,
 * Reduction-B Mixed_7a, 3 Inception-C blocks Mixed_7b..7d.
 * AuxLogits on Mixed_6h: AvgPool_1a_5x5 /3 V -> Conv2d_1b_1x1 128 -> Conv2d_2a 768 with the
 * whole map as kernel, V -> flatten -> Aux_logits (fully connected, linear).  Logits:
 * AvgPool_1a over the whole map (end point global_pool) -> Dropout_1b (keep 0.8) ->
 * PreLogitsFlatten -> Logits (fully connected, linear).  inception_arg_scope (nets.h); the
 * fully connected layers keep slim's xavier initializer.  No global_pool or spatial_squeeze
 * arguments in TF-slim: pooling is always global. */
#include <stdio.h>
#include "nets.h"

static sn_node same(sn_graph *g, sn_node x, int k, int kh, int kw, const char *scope) {
    return sn__conv(g, x, k, kh, kw, 1, SN_PAD_SAME, scope);
}

static sn_node valid(sn_graph *g, sn_node x, int k, int ksize, int stride, const char *scope) {
    return sn__conv(g, x, k, ksize, ksize, stride, SN_PAD_VALID, scope);
}

static sn_node ep(sn_graph *g, sn_node x, const char *name) {
    sn_graph_end_point(g, x, name);
    return x;
}

static sn_node finish_block(sn_graph *g, int n, const sn_node *br, const char *name) {
    sn_node y = sn_op_concat(g, n, br);
    sn_scope_pop(g);
    return ep(g, y, name);
}

static sn_node avg_branch(sn_graph *g, sn_node x, int k) {
    sn_scope_push(g, "Branch_3");
    x = sn_avg_pool2d(g, x, 3, 1, SN_PAD_SAME, "AvgPool_0a_3x3");
    x = same(g, x, k, 1, 1, "Conv2d_0b_1x1");
    sn_scope_pop(g);
    return x;
}

/* Inception-A: 96 | 64 -> 96 3x3 | 64 -> 96 3x3 -> 96 3x3 | avg pool -> 96. */
static sn_node block_a(sn_graph *g, sn_node x, const char *name) {
    sn_scope_push(g, name);
    sn_node br[4];
    sn_scope_push(g, "Branch_0");
    br[0] = same(g, x, 96, 1, 1, "Conv2d_0a_1x1");
    sn_scope_pop(g);
    sn_scope_push(g, "Branch_1");
    br[1] = same(g, x, 64, 1, 1, "Conv2d_0a_1x1");
    br[1] = same(g, br[1], 96, 3, 3, "Conv2d_0b_3x3");
    sn_scope_pop(g);
    sn_scope_push(g, "Branch_2");
    br[2] = same(g, x, 64, 1, 1, "Conv2d_0a_1x1");
    br[2] = same(g, br[2], 96, 3, 3, "Conv2d_0b_3x3");
    br[2] = same(g, br[2], 96, 3, 3, "Conv2d_0c_3x3");
    sn_scope_pop(g);
    br[3] = avg_branch(g, x, 96);
    return finish_block(g, 4, br, name);
}

/* Reduction-A: 384 3x3/2 V | 192 -> 224 3x3 -> 256 3x3/2 V | max pool 3x3/2 V. */
static sn_node reduction_a(sn_graph *g, sn_node x, const char *name) {
    sn_scope_push(g, name);
    sn_node br[3];
    sn_scope_push(g, "Branch_0");
    br[0] = valid(g, x, 384, 3, 2, "Conv2d_1a_3x3");
    sn_scope_pop(g);
    sn_scope_push(g, "Branch_1");
    br[1] = same(g, x, 192, 1, 1, "Conv2d_0a_1x1");
    br[1] = same(g, br[1], 224, 3, 3, "Conv2d_0b_3x3");
    br[1] = valid(g, br[1], 256, 3, 2, "Conv2d_1a_3x3");
    sn_scope_pop(g);
    sn_scope_push(g, "Branch_2");
    br[2] = sn_max_pool2d(g, x, 3, 2, SN_PAD_VALID, "MaxPool_1a_3x3");
    sn_scope_pop(g);
    return finish_block(g, 3, br, name);
}

/* Inception-B: 384 | 192 -> 224 1x7 -> 256 7x1 | 192 -> 192 7x1 -> 224 1x7 -> 224 7x1 ->
 * 256 1x7 | avg pool -> 128. */
static sn_node block_b(sn_graph *g, sn_node x, const char *name) {
    sn_scope_push(g, name);
    sn_node br[4];
    sn_scope_push(g, "Branch_0");
    br[0] = same(g, x, 384, 1, 1, "Conv2d_0a_1x1");
    sn_scope_pop(g);
    sn_scope_push(g, "Branch_1");
    br[1] = same(g, x, 192, 1, 1, "Conv2d_0a_1x1");
    br[1] = same(g, br[1], 224, 1, 7, "Conv2d_0b_1x7");
    br[1] = same(g, br[1], 256, 7, 1, "Conv2d_0c_7x1");
    sn_scope_pop(g);
    sn_scope_push(g, "Branch_2");
    br[2] = same(g, x, 192, 1, 1, "Conv2d_0a_1x1");
    br[2] = same(g, br[2], 192, 7, 1, "Conv2d_0b_7x1");
    br[2] = same(g, br[2], 224, 1, 7, "Conv2d_0c_1x7");
    br[2] = same(g, br[2], 224, 7, 1, "Conv2d_0d_7x1");
    br[2] = same(g, br[2], 256, 1, 7, "Conv2d_0e_1x7");
    sn_scope_pop(g);
    br[3] = avg_branch(g, x, 128);
    return finish_block(g, 4, br, name);
}

/* Reduction-B: 192 -> 192 3x3/2 V | 256 -> 256 1x7 -> 320 7x1 -> 320 3x3/2 V | max pool. */
static sn_node reduction_b(sn_graph *g, sn_node x, const char *name) {
    sn_scope_push(g, name);
    sn_node br[3];
    sn_scope_push(g, "Branch_0");
    br[0] = same(g, x, 192, 1, 1, "Conv2d_0a_1x1");
    br[0] = valid(g, br[0], 192, 3, 2, "Conv2d_1a_3x3");
    sn_scope_pop(g);
    sn_scope_push(g, "Branch_1");
    br[1] = same(g, x, 256, 1, 1, "Conv2d_0a_1x1");
    br[1] = same(g, br[1], 256, 1, 7, "Conv2d_0b_1x7");
    br[1] = same(g, br[1], 320, 7, 1, "Conv2d_0c_7x1");
    br[1] = valid(g, br[1], 320, 3, 2, "Conv2d_1a_3x3");
    sn_scope_pop(g);
    sn_scope_push(g, "Branch_2");
    br[2] = sn_max_pool2d(g, x, 3, 2, SN_PAD_VALID, "MaxPool_1a_3x3");
    sn_scope_pop(g);
    return finish_block(g, 3, br, name);
}

/* Inception-C: 256 | 384 -> (256 1x3, 256 3x1) | 384 -> 448 3x1 -> 512 1x3 -> (256 1x3,
 * 256 3x1) | avg pool -> 256. */
static sn_node block_c(sn_graph *g, sn_node x, const char *name) {
    sn_scope_push(g, name);
    sn_node br[4], pair[2];
    sn_scope_push(g, "Branch_0");
    br[0] = same(g, x, 256, 1, 1, "Conv2d_0a_1x1");
    sn_scope_pop(g);
    sn_scope_push(g, "Branch_1");
    br[1] = same(g, x, 384, 1, 1, "Conv2d_0a_1x1");
    pair[0] = same(g, br[1], 256, 1, 3, "Conv2d_0b_1x3");
    pair[1] = same(g, br[1], 256, 3, 1, "Conv2d_0c_3x1");
    br[1] = sn_op_concat(g, 2, pair);
    sn_scope_pop(g);
    sn_scope_push(g, "Branch_2");
    br[2] = same(g, x, 384, 1, 1, "Conv2d_0a_1x1");
    br[2] = same(g, br[2], 448, 3, 1, "Conv2d_0b_3x1");
    br[2] = same(g, br[2], 512, 1, 3, "Conv2d_0c_1x3");
    pair[0] = same(g, br[2], 256, 1, 3, "Conv2d_0d_1x3");
    pair[1] = same(g, br[2], 256, 3, 1, "Conv2d_0e_3x1");
    br[2] = sn_op_concat(g, 2, pair);
    sn_scope_pop(g);
    br[3] = avg_branch(g, x, 256);
    return finish_block(g, 4, br, name);
}

/* slim.fully_connected(x, k, activation_fn=None): inception_arg_scope gives fully_connected
 * only the regularizer, so its weights keep slim's xavier initializer. */
static sn_node fc_linear(sn_graph *g, sn_node x, int k, const char *scope) {
    sn_conv_params cp = sn_conv_params_from(g, k, 1, 1, 1);
    cp.activation = SN_ACT_NONE;
    cp.batch_norm = 0;
    cp.biases = 1;
    cp.weights_init = sn_init_xavier(1);
    return sn_fully_connected_p(g, x, &cp, scope);
}

sn_status sn__net_inception_v4(sn_graph *g, sn_node images, const sn_model_params *p,
                               sn_model *out) {
    sn__inception_arg_scope(g, p);
    float keep = sn__keep(p, 0.8f);
    out->scope = "InceptionV4";
    char name[16];

    sn_scope_push(g, "InceptionV4");
    sn_node x = ep(g, valid(g, images, 32, 3, 2, "Conv2d_1a_3x3"), "Conv2d_1a_3x3");
    x = ep(g, valid(g, x, 32, 3, 1, "Conv2d_2a_3x3"), "Conv2d_2a_3x3");
    x = ep(g, same(g, x, 64, 3, 3, "Conv2d_2b_3x3"), "Conv2d_2b_3x3");

    sn_node br[2];
    sn_scope_push(g, "Mixed_3a");
    sn_scope_push(g, "Branch_0");
    br[0] = sn_max_pool2d(g, x, 3, 2, SN_PAD_VALID, "MaxPool_0a_3x3");
    sn_scope_pop(g);
    sn_scope_push(g, "Branch_1");
    br[1] = valid(g, x, 96, 3, 2, "Conv2d_0a_3x3");
    sn_scope_pop(g);
    x = finish_block(g, 2, br, "Mixed_3a");

    sn_scope_push(g, "Mixed_4a");
    sn_scope_push(g, "Branch_0");
    br[0] = same(g, x, 64, 1, 1, "Conv2d_0a_1x1");
    br[0] = valid(g, br[0], 96, 3, 1, "Conv2d_1a_3x3");
    sn_scope_pop(g);
    sn_scope_push(g, "Branch_1");
    br[1] = same(g, x, 64, 1, 1, "Conv2d_0a_1x1");
    br[1] = same(g, br[1], 64, 1, 7, "Conv2d_0b_1x7");
    br[1] = same(g, br[1], 64, 7, 1, "Conv2d_0c_7x1");
    br[1] = valid(g, br[1], 96, 3, 1, "Conv2d_1a_3x3");
    sn_scope_pop(g);
    x = finish_block(g, 2, br, "Mixed_4a");

    sn_scope_push(g, "Mixed_5a");
    sn_scope_push(g, "Branch_0");
    br[0] = valid(g, x, 192, 3, 2, "Conv2d_1a_3x3");
    sn_scope_pop(g);
    sn_scope_push(g, "Branch_1");
    br[1] = sn_max_pool2d(g, x, 3, 2, SN_PAD_VALID, "MaxPool_1a_3x3");
    sn_scope_pop(g);
    x = finish_block(g, 2, br, "Mixed_5a");

    for (int i = 0; i < 4; i++) {
        snprintf(name, sizeof name, "Mixed_5%c", 'b' + i);
        x = block_a(g, x, name);
    }
    x = reduction_a(g, x, "Mixed_6a");
    for (int i = 0; i < 7; i++) {
        snprintf(name, sizeof name, "Mixed_6%c", 'b' + i);
        x = block_b(g, x, name);
    }
    sn_node mixed_6h = x;
    x = reduction_b(g, x, "Mixed_7a");
    for (int i = 0; i < 3; i++) {
        snprintf(name, sizeof name, "Mixed_7%c", 'b' + i);
        x = block_c(g, x, name);
    }

    sn_node aux = SN_NO_NODE;
    if (p->num_classes > 0) {   /* create_aux_logits=True */
        sn_scope_push(g, "AuxLogits");
        aux = sn_avg_pool2d(g, mixed_6h, 5, 3, SN_PAD_VALID, "AvgPool_1a_5x5");
        aux = same(g, aux, 128, 1, 1, "Conv2d_1b_1x1");
        aux = sn__conv(g, aux, 768, (int)sn_node_dim(g, aux, 1), (int)sn_node_dim(g, aux, 2), 1,
                       SN_PAD_VALID, "Conv2d_2a");
        aux = sn_op_flatten(g, aux);
        aux = ep(g, fc_linear(g, aux, p->num_classes, "Aux_logits"), "AuxLogits");
        sn_scope_pop(g);
    }

    sn_scope_push(g, "Logits");
    x = sn_op_avg_pool(g, x, (int)sn_node_dim(g, x, 1), (int)sn_node_dim(g, x, 2), 2, 2,
                       SN_PAD_VALID);   /* AvgPool_1a: the whole map */
    x = ep(g, x, "global_pool");
    sn_node logits = x;
    if (p->num_classes > 0) {
        x = sn_dropout(g, x, keep, "Dropout_1b");
        x = ep(g, sn_op_flatten(g, x), "PreLogitsFlatten");
        logits = ep(g, fc_linear(g, x, p->num_classes, "Logits"), "Logits");
    }
    sn_scope_pop(g);
    sn_scope_pop(g);
    return sn__net_finish(g, p, logits, aux, "Predictions", out);
}
