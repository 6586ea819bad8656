/* inception_resnet_v2.c: TF-slim's inception_resnet_v2 (nets/inception_resnet_v2.py).
 *
 * SAME stride 1 unless noted ("V" = VALID; align_feature_maps=False).  Stem as inception_v3:
 * Conv2d_1a_3x3 32/2 V, Conv2d_2a_3x3 32 V, Conv2d_2b_3x3 64, MaxPool_3a_3x3 /2 V,
 * Conv2d_3b_1x1 80 V, Conv2d_4a_3x3 192 V, MaxPool_5a_3x3 /2 V.  Mixed_5b (320), 10 x
 * block35 (Repeat/block35_1..10, scale 0.17), Mixed_6a (1088, 17x17), 20 x block17
 * (Repeat_1/block17_1..20, scale 0.10; end point PreAuxLogits), Mixed_7a (2080, 8x8), 9 x
 * block8 (Repeat_2/block8_1..9, scale 0.20), Block8 (scale 1, no activation),
 * Conv2d_7b_1x1 1536.  A residual block concatenates its branches into Conv2d_1x1 back to the
 * input width (biases, no batch norm, no activation), then net = relu(net + scale * up).
 * AuxLogits on PreAuxLogits: 5x5/3 V average pool (scoped Conv2d_1a_3x3) -> Conv2d_1b_1x1 128
 * -> Conv2d_2a_5x5 768 V, kernel = the whole map -> flatten -> Logits (fully connected).
 * Logits: AvgPool_1a_8x8 over the whole map (end point global_pool) -> flatten -> Dropout
 * (keep 0.8; PreLogitsFlatten) -> Logits (fully connected, linear).
 * inception_resnet_v2_arg_scope: l2(weight decay 4e-5) on weights AND biases of conv2d and
 * fully_connected; conv2d relu + batch norm (0.9997, 0.001, no gamma); initializers are
 * slim's defaults (xavier, zero biases). */
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

/* The end of block35/17/8: up = Conv2d_1x1(concat(branches)) (linear, biases),
 * net += scale * up, then relu unless activate is 0. */
static sn_node residual(sn_graph *g, sn_node x, int n, const sn_node *br, float scale,
                        int activate) {
    sn_node mixed = sn_op_concat(g, n, br);
    sn_node up = sn__conv_linear(g, mixed, (int)sn_node_dim(g, x, 3), 1, 1, SN_PAD_SAME,
                                 "Conv2d_1x1");
    sn_node y = sn_op_add(g, x, sn_op_scale(g, up, scale));
    return activate ? sn_op_relu(g, y) : y;
}

/* block35: 32 | 32 -> 32 3x3 | 32 -> 48 3x3 -> 64 3x3. */
static sn_node block35(sn_graph *g, sn_node x, float scale, const char *scope) {
    sn_scope_push(g, scope);
    sn_node br[3];
    sn_scope_push(g, "Branch_0");
    br[0] = same(g, x, 32, 1, 1, "Conv2d_1x1");
    sn_scope_pop(g);
    sn_scope_push(g, "Branch_1");
    br[1] = same(g, x, 32, 1, 1, "Conv2d_0a_1x1");
    br[1] = same(g, br[1], 32, 3, 3, "Conv2d_0b_3x3");
    sn_scope_pop(g);
    sn_scope_push(g, "Branch_2");
    br[2] = same(g, x, 32, 1, 1, "Conv2d_0a_1x1");
    br[2] = same(g, br[2], 48, 3, 3, "Conv2d_0b_3x3");
    br[2] = same(g, br[2], 64, 3, 3, "Conv2d_0c_3x3");
    sn_scope_pop(g);
    sn_node y = residual(g, x, 3, br, scale, 1);
    sn_scope_pop(g);
    return y;
}

/* block17: 192 | 128 -> 160 1x7 -> 192 7x1. */
static sn_node block17(sn_graph *g, sn_node x, float scale, const char *scope) {
    sn_scope_push(g, scope);
    sn_node br[2];
    sn_scope_push(g, "Branch_0");
    br[0] = same(g, x, 192, 1, 1, "Conv2d_1x1");
    sn_scope_pop(g);
    sn_scope_push(g, "Branch_1");
    br[1] = same(g, x, 128, 1, 1, "Conv2d_0a_1x1");
    br[1] = same(g, br[1], 160, 1, 7, "Conv2d_0b_1x7");
    br[1] = same(g, br[1], 192, 7, 1, "Conv2d_0c_7x1");
    sn_scope_pop(g);
    sn_node y = residual(g, x, 2, br, scale, 1);
    sn_scope_pop(g);
    return y;
}

/* block8: 192 | 192 -> 224 1x3 -> 256 3x1. */
static sn_node block8(sn_graph *g, sn_node x, float scale, int activate, const char *scope) {
    sn_scope_push(g, scope);
    sn_node br[2];
    sn_scope_push(g, "Branch_0");
    br[0] = same(g, x, 192, 1, 1, "Conv2d_1x1");
    sn_scope_pop(g);
    sn_scope_push(g, "Branch_1");
    br[1] = same(g, x, 192, 1, 1, "Conv2d_0a_1x1");
    br[1] = same(g, br[1], 224, 1, 3, "Conv2d_0b_1x3");
    br[1] = same(g, br[1], 256, 3, 1, "Conv2d_0c_3x1");
    sn_scope_pop(g);
    sn_node y = residual(g, x, 2, br, scale, activate);
    sn_scope_pop(g);
    return y;
}

typedef sn_node (*block_fn)(sn_graph *, sn_node, float, const char *);

/* slim.repeat(net, n, block, scale=s): scope `outer`, blocks "<name>_1".."<name>_n". */
static sn_node repeat(sn_graph *g, sn_node x, int n, block_fn fn, float scale,
                      const char *outer, const char *name) {
    char scope[32];
    sn_scope_push(g, outer);
    for (int i = 0; i < n; i++) {
        snprintf(scope, sizeof scope, "%s_%d", name, i + 1);
        x = fn(g, x, scale, scope);
    }
    sn_scope_pop(g);
    return x;
}

static sn_node block8_relu(sn_graph *g, sn_node x, float scale, const char *scope) {
    return block8(g, x, scale, 1, scope);
}

static sn_node base(sn_graph *g, sn_node images, sn_node *pre_aux) {
    sn_node x = ep(g, valid(g, images, 32, 3, 2, "Conv2d_1a_3x3"), "Conv2d_1a_3x3");
    x = ep(g, valid(g, x, 32, 3, 1, "Conv2d_2a_3x3"), "Conv2d_2a_3x3");
    x = ep(g, same(g, x, 64, 3, 3, "Conv2d_2b_3x3"), "Conv2d_2b_3x3");
    x = ep(g, sn_max_pool2d(g, x, 3, 2, SN_PAD_VALID, "MaxPool_3a_3x3"), "MaxPool_3a_3x3");
    x = ep(g, valid(g, x, 80, 1, 1, "Conv2d_3b_1x1"), "Conv2d_3b_1x1");
    x = ep(g, valid(g, x, 192, 3, 1, "Conv2d_4a_3x3"), "Conv2d_4a_3x3");
    x = ep(g, sn_max_pool2d(g, x, 3, 2, SN_PAD_VALID, "MaxPool_5a_3x3"), "MaxPool_5a_3x3");

    sn_node br[4];
    sn_scope_push(g, "Mixed_5b");
    sn_scope_push(g, "Branch_0");
    br[0] = same(g, x, 96, 1, 1, "Conv2d_1x1");
    sn_scope_pop(g);
    sn_scope_push(g, "Branch_1");
    br[1] = same(g, x, 48, 1, 1, "Conv2d_0a_1x1");
    br[1] = same(g, br[1], 64, 5, 5, "Conv2d_0b_5x5");
    sn_scope_pop(g);
    sn_scope_push(g, "Branch_2");
    br[2] = same(g, x, 64, 1, 1, "Conv2d_0a_1x1");
    br[2] = same(g, br[2], 96, 3, 3, "Conv2d_0b_3x3");
    br[2] = same(g, br[2], 96, 3, 3, "Conv2d_0c_3x3");
    sn_scope_pop(g);
    sn_scope_push(g, "Branch_3");
    br[3] = sn_avg_pool2d(g, x, 3, 1, SN_PAD_SAME, "AvgPool_0a_3x3");
    br[3] = same(g, br[3], 64, 1, 1, "Conv2d_0b_1x1");
    sn_scope_pop(g);
    x = sn_op_concat(g, 4, br);
    sn_scope_pop(g);
    x = ep(g, x, "Mixed_5b");

    x = repeat(g, x, 10, block35, 0.17f, "Repeat", "block35");

    sn_scope_push(g, "Mixed_6a");   /* output_stride 16: no atrous convolution */
    sn_scope_push(g, "Branch_0");
    br[0] = valid(g, x, 384, 3, 2, "Conv2d_1a_3x3");
    sn_scope_pop(g);
    sn_scope_push(g, "Branch_1");
    br[1] = same(g, x, 256, 1, 1, "Conv2d_0a_1x1");
    br[1] = same(g, br[1], 256, 3, 3, "Conv2d_0b_3x3");
    br[1] = valid(g, br[1], 384, 3, 2, "Conv2d_1a_3x3");
    sn_scope_pop(g);
    sn_scope_push(g, "Branch_2");
    br[2] = sn_max_pool2d(g, x, 3, 2, SN_PAD_VALID, "MaxPool_1a_3x3");
    sn_scope_pop(g);
    x = sn_op_concat(g, 3, br);
    sn_scope_pop(g);
    x = ep(g, x, "Mixed_6a");

    x = repeat(g, x, 20, block17, 0.10f, "Repeat_1", "block17");
    *pre_aux = ep(g, x, "PreAuxLogits");

    sn_scope_push(g, "Mixed_7a");
    sn_scope_push(g, "Branch_0");
    br[0] = same(g, x, 256, 1, 1, "Conv2d_0a_1x1");
    br[0] = valid(g, br[0], 384, 3, 2, "Conv2d_1a_3x3");
    sn_scope_pop(g);
    sn_scope_push(g, "Branch_1");
    br[1] = same(g, x, 256, 1, 1, "Conv2d_0a_1x1");
    br[1] = valid(g, br[1], 288, 3, 2, "Conv2d_1a_3x3");
    sn_scope_pop(g);
    sn_scope_push(g, "Branch_2");
    br[2] = same(g, x, 256, 1, 1, "Conv2d_0a_1x1");
    br[2] = same(g, br[2], 288, 3, 3, "Conv2d_0b_3x3");
    br[2] = valid(g, br[2], 320, 3, 2, "Conv2d_1a_3x3");
    sn_scope_pop(g);
    sn_scope_push(g, "Branch_3");
    br[3] = sn_max_pool2d(g, x, 3, 2, SN_PAD_VALID, "MaxPool_1a_3x3");
    sn_scope_pop(g);
    x = sn_op_concat(g, 4, br);
    sn_scope_pop(g);
    x = ep(g, x, "Mixed_7a");

    x = repeat(g, x, 9, block8_relu, 0.20f, "Repeat_2", "block8");
    x = block8(g, x, 1.0f, 0, "Block8");
    return ep(g, same(g, x, 1536, 1, 1, "Conv2d_7b_1x1"), "Conv2d_7b_1x1");
}

sn_status sn__net_inception_resnet_v2(sn_graph *g, sn_node images, const sn_model_params *p,
                                      sn_model *out) {
    sn_defaults *d = sn_graph_defaults(g);
    d->weight_decay = sn__wd(p, 4e-5f);
    d->regularize_biases = 1;
    d->activation = SN_ACT_RELU;
    d->batch_norm = 1;
    d->bn_decay = 0.9997f;
    d->bn_epsilon = 0.001f;
    d->bn_center = 1;
    d->bn_scale = 0;
    float keep = sn__keep(p, 0.8f);
    out->scope = "InceptionResnetV2";

    sn_scope_push(g, "InceptionResnetV2");
    sn_node pre_aux = SN_NO_NODE;
    sn_node x = base(g, images, &pre_aux);

    sn_node aux = SN_NO_NODE;
    if (p->num_classes > 0) {   /* create_aux_logits=True */
        sn_scope_push(g, "AuxLogits");
        aux = sn_avg_pool2d(g, pre_aux, 5, 3, SN_PAD_VALID, "Conv2d_1a_3x3");
        aux = same(g, aux, 128, 1, 1, "Conv2d_1b_1x1");
        aux = sn__conv(g, aux, 768, (int)sn_node_dim(g, aux, 1), (int)sn_node_dim(g, aux, 2), 1,
                       SN_PAD_VALID, "Conv2d_2a_5x5");
        aux = sn_op_flatten(g, aux);
        aux = ep(g, sn__fc_linear(g, aux, p->num_classes, "Logits"), "AuxLogits");
        sn_scope_pop(g);
    }

    sn_scope_push(g, "Logits");
    x = sn_op_avg_pool(g, x, (int)sn_node_dim(g, x, 1), (int)sn_node_dim(g, x, 2), 2, 2,
                       SN_PAD_VALID);   /* AvgPool_1a_8x8: the whole map */
    x = ep(g, x, "global_pool");
    sn_node logits = x;
    if (p->num_classes > 0) {
        x = sn_op_flatten(g, x);
        x = ep(g, sn_dropout(g, x, keep, "Dropout"), "PreLogitsFlatten");
        logits = ep(g, sn__fc_linear(g, x, p->num_classes, "Logits"), "Logits");
    }
    sn_scope_pop(g);
    sn_scope_pop(g);
    return sn__net_finish(g, p, logits, aux, "Predictions", out);
}
