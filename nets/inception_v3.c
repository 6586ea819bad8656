/* inception_v3.c: TF-slim's inception_v3 (nets/inception_v3.py).
 *
 * Stem, VALID stride 1 unless noted: Conv2d_1a_3x3 32/2 -> Conv2d_2a_3x3 32 -> Conv2d_2b_3x3
 * 64 SAME -> MaxPool_3a_3x3 /2 -> Conv2d_3b_1x1 80 -> Conv2d_4a_3x3 192 -> MaxPool_5a_3x3 /2
 * (299 -> 35).  Then SAME stride 1: Mixed_5b, 5c, 5d (35x35), Mixed_6a (reduction to 17x17),
 * Mixed_6b..6e, Mixed_7a (reduction to 8x8), Mixed_7b, 7c.  Branch average pools count only
 * in-bounds cells (TF's SAME).  Scope names carry TF-slim's quirks (Mixed_5c's
 * Conv2d_0b_1x1 / Conv_1_0c_5x5, Mixed_6a's 3x3 convs named Conv2d_1a_1x1, Mixed_7b's
 * Conv2d_0b_3x1 against Mixed_7c's Conv2d_0c_3x1).
 * AuxLogits on Mixed_6e: AvgPool_1a_5x5 /3 VALID -> Conv2d_1b_1x1 128 -> Conv2d_2a_{k}x{k} 768
 * VALID (k = min(5, map), trunc 0.01) -> Conv2d_2b_1x1 (linear, biases, trunc 0.001) ->
 * SpatialSqueeze.  Logits: AvgPool_1a_{k}x{k} (k = min(8, map), VALID, stride 2) or
 * global_pool -> Dropout_1b (keep 0.8; end point PreLogits) -> Conv2d_1c_1x1 (linear, biases)
 * -> SpatialSqueeze.  inception_arg_scope (nets.h); depth_multiplier 1, so depth(d) = d. */
#include <stdio.h>
#include "nets.h"

/* slim.conv2d(x, k, [kh, kw], stride, padding) under the block's scope. */
static sn_node conv(sn_graph *g, sn_node x, int k, int kh, int kw, int stride, sn_padding pad,
                    const char *scope) {
    return sn__conv(g, x, k, kh, kw, stride, pad, scope);
}

static sn_node same(sn_graph *g, sn_node x, int k, int kh, int kw, const char *scope) {
    return sn__conv(g, x, k, kh, kw, 1, SN_PAD_SAME, scope);
}

static sn_node avg_branch(sn_graph *g, sn_node x, int k) {
    sn_scope_push(g, "Branch_3");
    x = sn_avg_pool2d(g, x, 3, 1, SN_PAD_SAME, "AvgPool_0a_3x3");
    x = same(g, x, k, 1, 1, "Conv2d_0b_1x1");
    sn_scope_pop(g);
    return x;
}

static sn_node finish_block(sn_graph *g, int n, const sn_node *br, const char *name) {
    sn_node y = sn_op_concat(g, n, br);
    sn_scope_pop(g);
    sn_graph_end_point(g, y, name);
    return y;
}

/* Mixed_5b/5c/5d: 64 | 48 -> 64 5x5 | 64 -> 96 -> 96 | avg pool -> pool_k. */
static sn_node block_35(sn_graph *g, sn_node x, const char *name, int pool_k, int quirk) {
    sn_scope_push(g, name);
    sn_node br[4];
    sn_scope_push(g, "Branch_0");
    br[0] = same(g, x, 64, 1, 1, "Conv2d_0a_1x1");
    sn_scope_pop(g);
    sn_scope_push(g, "Branch_1");
    br[1] = same(g, x, 48, 1, 1, quirk ? "Conv2d_0b_1x1" : "Conv2d_0a_1x1");
    br[1] = same(g, br[1], 64, 5, 5, quirk ? "Conv_1_0c_5x5" : "Conv2d_0b_5x5");
    sn_scope_pop(g);
    sn_scope_push(g, "Branch_2");
    br[2] = same(g, x, 64, 1, 1, "Conv2d_0a_1x1");
    br[2] = same(g, br[2], 96, 3, 3, "Conv2d_0b_3x3");
    br[2] = same(g, br[2], 96, 3, 3, "Conv2d_0c_3x3");
    sn_scope_pop(g);
    br[3] = avg_branch(g, x, pool_k);
    return finish_block(g, 4, br, name);
}

/* Mixed_6a: 384 3x3/2 V | 64 -> 96 3x3 -> 96 3x3/2 V | max pool 3x3/2 V. */
static sn_node reduction_6a(sn_graph *g, sn_node x) {
    sn_scope_push(g, "Mixed_6a");
    sn_node br[3];
    sn_scope_push(g, "Branch_0");
    br[0] = conv(g, x, 384, 3, 3, 2, SN_PAD_VALID, "Conv2d_1a_1x1");
    sn_scope_pop(g);
    sn_scope_push(g, "Branch_1");
    br[1] = same(g, x, 64, 1, 1, "Conv2d_0a_1x1");
    br[1] = same(g, br[1], 96, 3, 3, "Conv2d_0b_3x3");
    br[1] = conv(g, br[1], 96, 3, 3, 2, SN_PAD_VALID, "Conv2d_1a_1x1");
    sn_scope_pop(g);
    sn_scope_push(g, "Branch_2");
    br[2] = sn_max_pool2d(g, x, 3, 2, SN_PAD_VALID, "MaxPool_1a_3x3");
    sn_scope_pop(g);
    return finish_block(g, 3, br, "Mixed_6a");
}

/* Mixed_6b..6e: 192 | c -> c 1x7 -> 192 7x1 | c -> c 7x1 -> c 1x7 -> c 7x1 -> 192 1x7 |
 * avg pool -> 192. */
static sn_node block_17(sn_graph *g, sn_node x, const char *name, int c) {
    sn_scope_push(g, name);
    sn_node br[4];
    sn_scope_push(g, "Branch_0");
    br[0] = same(g, x, 192, 1, 1, "Conv2d_0a_1x1");
    sn_scope_pop(g);
    sn_scope_push(g, "Branch_1");
    br[1] = same(g, x, c, 1, 1, "Conv2d_0a_1x1");
    br[1] = same(g, br[1], c, 1, 7, "Conv2d_0b_1x7");
    br[1] = same(g, br[1], 192, 7, 1, "Conv2d_0c_7x1");
    sn_scope_pop(g);
    sn_scope_push(g, "Branch_2");
    br[2] = same(g, x, c, 1, 1, "Conv2d_0a_1x1");
    br[2] = same(g, br[2], c, 7, 1, "Conv2d_0b_7x1");
    br[2] = same(g, br[2], c, 1, 7, "Conv2d_0c_1x7");
    br[2] = same(g, br[2], c, 7, 1, "Conv2d_0d_7x1");
    br[2] = same(g, br[2], 192, 1, 7, "Conv2d_0e_1x7");
    sn_scope_pop(g);
    br[3] = avg_branch(g, x, 192);
    return finish_block(g, 4, br, name);
}

/* Mixed_7a: 192 -> 320 3x3/2 V | 192 -> 192 1x7 -> 192 7x1 -> 192 3x3/2 V | max pool /2 V. */
static sn_node reduction_7a(sn_graph *g, sn_node x) {
    sn_scope_push(g, "Mixed_7a");
    sn_node br[3];
    sn_scope_push(g, "Branch_0");
    br[0] = same(g, x, 192, 1, 1, "Conv2d_0a_1x1");
    br[0] = conv(g, br[0], 320, 3, 3, 2, SN_PAD_VALID, "Conv2d_1a_3x3");
    sn_scope_pop(g);
    sn_scope_push(g, "Branch_1");
    br[1] = same(g, x, 192, 1, 1, "Conv2d_0a_1x1");
    br[1] = same(g, br[1], 192, 1, 7, "Conv2d_0b_1x7");
    br[1] = same(g, br[1], 192, 7, 1, "Conv2d_0c_7x1");
    br[1] = conv(g, br[1], 192, 3, 3, 2, SN_PAD_VALID, "Conv2d_1a_3x3");
    sn_scope_pop(g);
    sn_scope_push(g, "Branch_2");
    br[2] = sn_max_pool2d(g, x, 3, 2, SN_PAD_VALID, "MaxPool_1a_3x3");
    sn_scope_pop(g);
    return finish_block(g, 3, br, "Mixed_7a");
}

/* Mixed_7b/7c: 320 | 384 -> (384 1x3, 384 3x1) | 448 -> 384 3x3 -> (384 1x3, 384 3x1) |
 * avg pool -> 192.  Branch_1's 3x1 is Conv2d_0b_3x1 in 7b and Conv2d_0c_3x1 in 7c. */
static sn_node block_8(sn_graph *g, sn_node x, const char *name, const char *b1_3x1) {
    sn_scope_push(g, name);
    sn_node br[4], pair[2];
    sn_scope_push(g, "Branch_0");
    br[0] = same(g, x, 320, 1, 1, "Conv2d_0a_1x1");
    sn_scope_pop(g);
    sn_scope_push(g, "Branch_1");
    br[1] = same(g, x, 384, 1, 1, "Conv2d_0a_1x1");
    pair[0] = same(g, br[1], 384, 1, 3, "Conv2d_0b_1x3");
    pair[1] = same(g, br[1], 384, 3, 1, b1_3x1);
    br[1] = sn_op_concat(g, 2, pair);
    sn_scope_pop(g);
    sn_scope_push(g, "Branch_2");
    br[2] = same(g, x, 448, 1, 1, "Conv2d_0a_1x1");
    br[2] = same(g, br[2], 384, 3, 3, "Conv2d_0b_3x3");
    pair[0] = same(g, br[2], 384, 1, 3, "Conv2d_0c_1x3");
    pair[1] = same(g, br[2], 384, 3, 1, "Conv2d_0d_3x1");
    br[2] = sn_op_concat(g, 2, pair);
    sn_scope_pop(g);
    br[3] = avg_branch(g, x, 192);
    return finish_block(g, 4, br, name);
}

static sn_node ep(sn_graph *g, sn_node x, const char *name) {
    sn_graph_end_point(g, x, name);
    return x;
}

/* AuxLogits on Mixed_6e (inside an arg_scope of stride 1, SAME). */
static sn_node aux_logits(sn_graph *g, sn_node x, const sn_model_params *p) {
    sn_scope_push(g, "AuxLogits");
    x = sn_avg_pool2d(g, x, 5, 3, SN_PAD_VALID, "AvgPool_1a_5x5");
    x = same(g, x, 128, 1, 1, "Conv2d_1b_1x1");
    int kh = sn__reduced_k(g, x, 1, 5), kw = sn__reduced_k(g, x, 2, 5);
    char name[32];
    snprintf(name, sizeof name, "Conv2d_2a_%dx%d", kh, kw);
    x = sn__conv_init(g, x, 768, kh, kw, 1, SN_PAD_VALID, sn_init_truncated_normal(0.0f, 0.01f),
                      name);
    sn_conv_params lp = sn_conv_params_from(g, p->num_classes, 1, 1, 1);
    lp.activation = SN_ACT_NONE;
    lp.batch_norm = 0;
    lp.biases = 1;
    lp.weights_init = sn_init_truncated_normal(0.0f, 0.001f);
    x = sn_conv2d_p(g, x, &lp, "Conv2d_2b_1x1");
    if (p->spatial_squeeze) x = sn_op_squeeze(g, x);
    sn_scope_pop(g);
    return ep(g, x, "AuxLogits");
}

sn_status sn__net_inception_v3(sn_graph *g, sn_node images, const sn_model_params *p,
                               sn_model *out) {
    sn__inception_arg_scope(g, p);
    float keep = sn__keep(p, 0.8f);
    out->scope = "InceptionV3";

    sn_scope_push(g, "InceptionV3");
    sn_node x = ep(g, conv(g, images, 32, 3, 3, 2, SN_PAD_VALID, "Conv2d_1a_3x3"),
                   "Conv2d_1a_3x3");
    x = ep(g, conv(g, x, 32, 3, 3, 1, SN_PAD_VALID, "Conv2d_2a_3x3"), "Conv2d_2a_3x3");
    x = ep(g, same(g, x, 64, 3, 3, "Conv2d_2b_3x3"), "Conv2d_2b_3x3");
    x = ep(g, sn_max_pool2d(g, x, 3, 2, SN_PAD_VALID, "MaxPool_3a_3x3"), "MaxPool_3a_3x3");
    x = ep(g, conv(g, x, 80, 1, 1, 1, SN_PAD_VALID, "Conv2d_3b_1x1"), "Conv2d_3b_1x1");
    x = ep(g, conv(g, x, 192, 3, 3, 1, SN_PAD_VALID, "Conv2d_4a_3x3"), "Conv2d_4a_3x3");
    x = ep(g, sn_max_pool2d(g, x, 3, 2, SN_PAD_VALID, "MaxPool_5a_3x3"), "MaxPool_5a_3x3");
    x = block_35(g, x, "Mixed_5b", 32, 0);
    x = block_35(g, x, "Mixed_5c", 64, 1);
    x = block_35(g, x, "Mixed_5d", 64, 0);
    x = reduction_6a(g, x);
    x = block_17(g, x, "Mixed_6b", 128);
    x = block_17(g, x, "Mixed_6c", 160);
    x = block_17(g, x, "Mixed_6d", 160);
    x = block_17(g, x, "Mixed_6e", 192);
    sn_node mixed_6e = x;
    x = reduction_7a(g, x);
    x = block_8(g, x, "Mixed_7b", "Conv2d_0b_3x1");
    x = block_8(g, x, "Mixed_7c", "Conv2d_0c_3x1");

    sn_node aux = SN_NO_NODE;
    if (p->num_classes > 0) aux = aux_logits(g, mixed_6e, p);   /* create_aux_logits=True */

    sn_scope_push(g, "Logits");
    if (p->global_pool) {
        x = ep(g, sn_op_spatial_mean(g, x, 1), "global_pool");
    } else {
        /* AvgPool_1a_{k}x{k}, k = min(8, map size), VALID, slim's default stride 2 */
        int kh = sn__reduced_k(g, x, 1, 8), kw = sn__reduced_k(g, x, 2, 8);
        x = ep(g, sn_op_avg_pool(g, x, kh, kw, 2, 2, SN_PAD_VALID), "AvgPool_1a");
    }
    sn_node logits = x;
    if (p->num_classes > 0) {
        x = ep(g, sn_dropout(g, x, keep, "Dropout_1b"), "PreLogits");
        logits = sn__conv_linear(g, x, p->num_classes, 1, 1, SN_PAD_SAME, "Conv2d_1c_1x1");
        if (p->spatial_squeeze) logits = sn_op_squeeze(g, logits);
        sn_graph_end_point(g, logits, "Logits");
    }
    sn_scope_pop(g);
    sn_scope_pop(g);
    return sn__net_finish(g, p, logits, aux, "Predictions", out);
}
