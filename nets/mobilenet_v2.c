/* mobilenet_v2.c: TF-slim's mobilenet_v2, mobilenet_v2_140 and mobilenet_v2_035
 * (nets/mobilenet/mobilenet_v2.py, mobilenet.py, conv_blocks.py).
 *
 * V2_DEF: Conv (3x3/2, 32), 17 expanded_conv blocks, Conv_1 (1x1, 1280).  Every layer is
 * batch norm (center, scale) + relu6 with SAME padding, except each block's linear
 * projection.  Unnamed slim layers take uniquified default scopes: Conv, Conv_1;
 * expanded_conv, expanded_conv_1, ..., expanded_conv_16.  An expanded_conv block:
 *   expand    1x1 to _make_divisible(in * 6, 8) channels, only when that exceeds the input
 *             width (the first block expands by 1 and so has none);
 *   depthwise 3x3 depthwise conv with the block's stride (depthwise_weights);
 *   project   1x1 to the block's width, batch norm, no activation;
 *   residual  input + output when the stride is 1 and the widths match.
 * Widths: _make_divisible(d * depth_multiplier, 8, min 8) for every layer; with
 * finegrain_classification_mode (mobilenet_v2_035) the last layer is divided by the
 * multiplier first, so it keeps 1280.  Logits: global average pool (end point global_pool) ->
 * Dropout (keep 0.8, training_scope) -> Conv2d_1c_1x1 (linear, zero biases) -> squeeze.
 * training_scope: truncated normal(0.09) weights, batch norm decay 0.997 (epsilon 0.001),
 * l2(weight decay 4e-5) on conv2d weights, none on the depthwise weights.  use_explicit_padding
 * is off in the zoo, so there is no fixed padding.  End points: layer_1..layer_19,
 * global_pool, Logits, Predictions. */
#include <stdio.h>
#include "nets.h"

/* mobilenet._make_divisible(v, divisor, min_value): v rounded to the nearest multiple of
 * divisor (halves up), at least min_value, and never more than 10% below v. */
static int make_divisible(double v, int divisor, int min_value) {
    int new_v = (int)(v + divisor / 2.0) / divisor * divisor;
    if (new_v < min_value) new_v = min_value;
    if (new_v < 0.9 * v) new_v += divisor;
    return new_v;
}

typedef struct block_def { int stride, depth; } block_def;

static sn_node expanded_conv(sn_graph *g, sn_node x, int depth, int stride, int factor,
                             int divisible_by, const char *scope) {
    sn_scope_push(g, scope);
    int64_t in = sn_node_dim(g, x, 3);
    int inner = make_divisible((double)in * factor, divisible_by, divisible_by);
    sn_node y = x;
    if (inner > in) y = sn_conv2d(g, y, inner, 1, 1, 1, "expand");
    sn_conv_params dp = sn_conv_params_from(g, 0, 3, 3, stride);   /* num_outputs None */
    dp.depth_multiplier = 1;
    dp.padding = SN_PAD_SAME;
    y = sn_separable_conv2d_p(g, y, &dp, "depthwise");
    sn_conv_params pp = sn_conv_params_from(g, depth, 1, 1, 1);
    pp.activation = SN_ACT_NONE;   /* project_activation_fn = tf.identity */
    y = sn_conv2d_p(g, y, &pp, "project");
    if (stride == 1 && depth == in) y = sn_op_add(g, y, x);
    sn_scope_pop(g);
    return y;
}

static sn_status mobilenet_v2(sn_graph *g, sn_node images, const sn_model_params *p,
                              double multiplier, int finegrain, sn_model *out) {
    static const block_def blocks[17] = {
        {1, 16}, {2, 24}, {1, 24}, {2, 32}, {1, 32}, {1, 32}, {2, 64}, {1, 64}, {1, 64},
        {1, 64}, {1, 96}, {1, 96}, {1, 96}, {2, 160}, {1, 160}, {1, 160}, {1, 320},
    };
    sn_defaults *d = sn_graph_defaults(g);
    d->weights_init = sn_init_truncated_normal(0.0f, 0.09f);
    d->activation = SN_ACT_RELU6;
    d->batch_norm = 1;
    d->bn_center = 1;
    d->bn_scale = 1;
    d->bn_decay = 0.997f;
    d->bn_epsilon = 0.001f;
    d->weight_decay = sn__wd(p, 4e-5f);
    d->regularize_depthwise = 0;
    d->conv_padding = SN_PAD_SAME;
    float keep = sn__keep(p, 0.8f);
    out->scope = "MobilenetV2";

    sn_scope_push(g, "MobilenetV2");
    char name[32];
    sn_node x = sn_conv2d(g, images, make_divisible(32 * multiplier, 8, 8), 3, 3, 2, "Conv");
    sn_graph_end_point(g, x, "layer_1");
    for (int i = 0; i < 17; i++) {
        char scope[32];
        if (i == 0) snprintf(scope, sizeof scope, "expanded_conv");
        else snprintf(scope, sizeof scope, "expanded_conv_%d", i);
        /* the first block: expansion_size=expand_input(1, divisible_by=1) */
        x = expanded_conv(g, x, make_divisible(blocks[i].depth * multiplier, 8, 8),
                          blocks[i].stride, i == 0 ? 1 : 6, i == 0 ? 1 : 8, scope);
        snprintf(name, sizeof name, "layer_%d", i + 2);
        sn_graph_end_point(g, x, name);
    }
    double last = 1280;
    if (finegrain && multiplier < 1.0) last /= multiplier;
    x = sn_conv2d(g, x, make_divisible(last * multiplier, 8, 8), 1, 1, 1, "Conv_1");
    sn_graph_end_point(g, x, "layer_19");

    sn_scope_push(g, "Logits");
    x = sn_op_avg_pool(g, x, (int)sn_node_dim(g, x, 1), (int)sn_node_dim(g, x, 2), 1, 1,
                       SN_PAD_VALID);   /* mobilenet.global_pool: the whole map */
    sn_graph_end_point(g, x, "global_pool");
    sn_node logits = x;
    if (p->num_classes > 0) {
        x = sn_dropout(g, x, keep, "Dropout");
        logits = sn__conv_linear(g, x, p->num_classes, 1, 1, SN_PAD_SAME, "Conv2d_1c_1x1");
        logits = sn_op_squeeze(g, logits);
        sn_graph_end_point(g, logits, "Logits");
    }
    sn_scope_pop(g);
    sn_scope_pop(g);
    return sn__net_finish(g, p, logits, SN_NO_NODE, "Predictions", out);
}

sn_status sn__net_mobilenet_v2(sn_graph *g, sn_node images, const sn_model_params *p,
                               sn_model *out) {
    return mobilenet_v2(g, images, p, 1.0, 0, out);
}

sn_status sn__net_mobilenet_v2_140(sn_graph *g, sn_node images, const sn_model_params *p,
                                   sn_model *out) {
    return mobilenet_v2(g, images, p, 1.4, 0, out);
}

sn_status sn__net_mobilenet_v2_035(sn_graph *g, sn_node images, const sn_model_params *p,
                                   sn_model *out) {
    return mobilenet_v2(g, images, p, 0.35, 1, out);
}
