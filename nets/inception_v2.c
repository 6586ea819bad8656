/* inception_v2.c: TF-slim's inception_v2 (nets/inception_v2.py), BN-Inception.
 *
 * Everything is SAME, stride 1 unless noted.  Stem: Conv2d_1a_7x7, a separable convolution
 * 64/2 (depthwise multiplier min(64/3, 8) = 8, truncated normal(1.0)); inception_arg_scope
 * covers only conv2d, so this layer has biases, relu and no batch norm or regularizer.  Then
 * MaxPool_2a_3x3 /2, Conv2d_2b_1x1 64 (trunc 0.1), Conv2d_2c_3x3 192, MaxPool_3a_3x3 /2,
 * Mixed_3b, 3c, 4a (reduction), 4b..4e, 5a (reduction), 5b, 5c.  A Mixed block is
 *   1x1 | 1x1 (trunc 0.09) -> 3x3 | 1x1 (trunc 0.09) -> 3x3 -> 3x3 | pool 3x3 -> 1x1 (trunc 0.1)
 * with an average pool, except Mixed_5c's max pool.  Logits: AvgPool_1a_{k}x{k} (VALID,
 * stride 2, k = min(7, map)) or global_pool -> Dropout_1b (keep 0.8, end point PreLogits) ->
 * Conv2d_1c_1x1 (linear, biases) -> SpatialSqueeze.  nets_factory builds it with
 * depth_multiplier 1 and min_depth 16, so every depth(d) is d. */
#include "nets.h"

static sn_node conv_t(sn_graph *g, sn_node x, int k, int ksize, int stride, float stddev,
                      const char *scope) {
    return sn__conv_init(g, x, k, ksize, ksize, stride, SN_PAD_SAME,
                         sn_init_truncated_normal(0.0f, stddev), scope);
}

static sn_node conv(sn_graph *g, sn_node x, int k, int ksize, int stride, const char *scope) {
    return sn_conv2d(g, x, k, ksize, ksize, stride, scope);
}

typedef struct mixed {
    const char *name;
    int b0, b1a, b1b, b2a, b2b, b3;
    int max_pool;            /* branch 3 pools with max (Mixed_5c) instead of average */
} mixed;

static sn_node mixed_block(sn_graph *g, sn_node x, const mixed *m) {
    sn_scope_push(g, m->name);
    sn_node br[4];
    sn_scope_push(g, "Branch_0");
    br[0] = conv(g, x, m->b0, 1, 1, "Conv2d_0a_1x1");
    sn_scope_pop(g);
    sn_scope_push(g, "Branch_1");
    br[1] = conv_t(g, x, m->b1a, 1, 1, 0.09f, "Conv2d_0a_1x1");
    br[1] = conv(g, br[1], m->b1b, 3, 1, "Conv2d_0b_3x3");
    sn_scope_pop(g);
    sn_scope_push(g, "Branch_2");
    br[2] = conv_t(g, x, m->b2a, 1, 1, 0.09f, "Conv2d_0a_1x1");
    br[2] = conv(g, br[2], m->b2b, 3, 1, "Conv2d_0b_3x3");
    br[2] = conv(g, br[2], m->b2b, 3, 1, "Conv2d_0c_3x3");
    sn_scope_pop(g);
    sn_scope_push(g, "Branch_3");
    br[3] = m->max_pool ? sn_max_pool2d(g, x, 3, 1, SN_PAD_SAME, "MaxPool_0a_3x3")
                        : sn_avg_pool2d(g, x, 3, 1, SN_PAD_SAME, "AvgPool_0a_3x3");
    br[3] = conv_t(g, br[3], m->b3, 1, 1, 0.1f, "Conv2d_0b_1x1");
    sn_scope_pop(g);
    sn_node y = sn_op_concat(g, 4, br);
    sn_scope_pop(g);
    sn_graph_end_point(g, y, m->name);
    return y;
}

/* Mixed_4a / Mixed_5a: 1x1 -> 3x3/2 | 1x1 -> 3x3 -> 3x3/2 | max pool 3x3/2 (all SAME). */
static sn_node reduction(sn_graph *g, sn_node x, const char *name, int b0a, int b0b, int b1a,
                         int b1b) {
    sn_scope_push(g, name);
    sn_node br[3];
    sn_scope_push(g, "Branch_0");
    br[0] = conv_t(g, x, b0a, 1, 1, 0.09f, "Conv2d_0a_1x1");
    br[0] = conv(g, br[0], b0b, 3, 2, "Conv2d_1a_3x3");
    sn_scope_pop(g);
    sn_scope_push(g, "Branch_1");
    br[1] = conv_t(g, x, b1a, 1, 1, 0.09f, "Conv2d_0a_1x1");
    br[1] = conv(g, br[1], b1b, 3, 1, "Conv2d_0b_3x3");
    br[1] = conv(g, br[1], b1b, 3, 2, "Conv2d_1a_3x3");
    sn_scope_pop(g);
    sn_scope_push(g, "Branch_2");
    br[2] = sn_max_pool2d(g, x, 3, 2, SN_PAD_SAME, "MaxPool_1a_3x3");
    sn_scope_pop(g);
    sn_node y = sn_op_concat(g, 3, br);
    sn_scope_pop(g);
    sn_graph_end_point(g, y, name);
    return y;
}

static sn_node ep(sn_graph *g, sn_node x, const char *name) {
    sn_graph_end_point(g, x, name);
    return x;
}

sn_status sn__net_inception_v2(sn_graph *g, sn_node images, const sn_model_params *p,
                               sn_model *out) {
    static const mixed m3[2] = {
        {"Mixed_3b", 64, 64, 64, 64, 96, 32, 0},
        {"Mixed_3c", 64, 64, 96, 64, 96, 64, 0},
    };
    static const mixed m4[4] = {
        {"Mixed_4b", 224, 64, 96, 96, 128, 128, 0},
        {"Mixed_4c", 192, 96, 128, 96, 128, 128, 0},
        {"Mixed_4d", 160, 128, 160, 128, 160, 96, 0},
        {"Mixed_4e", 96, 128, 192, 160, 192, 96, 0},
    };
    static const mixed m5[2] = {
        {"Mixed_5b", 352, 192, 320, 160, 224, 128, 0},
        {"Mixed_5c", 352, 192, 320, 192, 224, 128, 1},
    };
    sn__inception_arg_scope(g, p);
    float keep = sn__keep(p, 0.8f);
    out->scope = "InceptionV2";

    sn_scope_push(g, "InceptionV2");
    /* Separable stem: separable_conv2d is outside inception_arg_scope, so slim's own
     * defaults apply: biases, relu, no normalizer, no regularizer. */
    sn_conv_params sp = sn_conv_params_from(g, 64, 7, 7, 2);
    sp.depth_multiplier = 8;   /* min(int(depth(64) / 3), 8) */
    sp.padding = SN_PAD_SAME;
    sp.weights_init = sn_init_truncated_normal(0.0f, 1.0f);
    sp.batch_norm = 0;
    sp.biases = 1;
    sp.biases_init = sn_init_zeros();
    sp.activation = SN_ACT_RELU;
    sp.weight_decay = 0.0f;
    sn_node x = ep(g, sn_separable_conv2d_p(g, images, &sp, "Conv2d_1a_7x7"), "Conv2d_1a_7x7");
    x = ep(g, sn_max_pool2d(g, x, 3, 2, SN_PAD_SAME, "MaxPool_2a_3x3"), "MaxPool_2a_3x3");
    x = ep(g, conv_t(g, x, 64, 1, 1, 0.1f, "Conv2d_2b_1x1"), "Conv2d_2b_1x1");
    x = ep(g, conv(g, x, 192, 3, 1, "Conv2d_2c_3x3"), "Conv2d_2c_3x3");
    x = ep(g, sn_max_pool2d(g, x, 3, 2, SN_PAD_SAME, "MaxPool_3a_3x3"), "MaxPool_3a_3x3");
    for (int i = 0; i < 2; i++) x = mixed_block(g, x, &m3[i]);
    x = reduction(g, x, "Mixed_4a", 128, 160, 64, 96);
    for (int i = 0; i < 4; i++) x = mixed_block(g, x, &m4[i]);
    x = reduction(g, x, "Mixed_5a", 128, 192, 192, 256);
    for (int i = 0; i < 2; i++) x = mixed_block(g, x, &m5[i]);

    sn_scope_push(g, "Logits");
    if (p->global_pool) {
        x = ep(g, sn_op_spatial_mean(g, x, 1), "global_pool");
    } else {
        /* AvgPool_1a_{k}x{k}, k = min(7, map size), VALID, slim's default stride 2 */
        int kh = sn__reduced_k(g, x, 1, 7), kw = sn__reduced_k(g, x, 2, 7);
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
    return sn__net_finish(g, p, logits, SN_NO_NODE, "Predictions", out);
}
