/* mobilenet_v3.c: TF-slim's mobilenet_v3_small, mobilenet_v3_large, their _minimalistic
 * variants, mobilenet_edgetpu and mobilenet_edgetpu_075 (nets/mobilenet/mobilenet_v3.py,
 * mobilenet.py, conv_blocks.py).
 *
 * Each network is a list of layers (the conv_defs' spec), built in order under the top scope
 * (MobilenetV3, or MobilenetEdgeTPU), each layer's output the end point layer_<i>:
 *   conv       slim.conv2d: batch norm (center, scale) and the layer's activation, or with
 *              normalizer_fn=None (the last layer of V3) biases instead; unnamed, so
 *              uniquified: Conv, Conv_1, Conv_2;
 *   block      conv_blocks.expanded_conv (expanded_conv, expanded_conv_1, ...):
 *                expand     1x1 convolution to _make_divisible(in * ef, 8) channels, only
 *                           when that exceeds the input width; in the EdgeTPU's "fused"
 *                           blocks a k x k convolution with the block's stride instead, and
 *                           no depthwise convolution after it;
 *                depthwise  k x k depthwise convolution with the block's stride;
 *                squeeze_excite (the "se" blocks), on the depthwise output:
 *                           x * hard_sigmoid(Conv_1(relu(Conv(mean over H, W of x)))), Conv
 *                           1x1 to _make_divisible(C / 4, 8) and Conv_1 1x1 back to C, both
 *                           with biases and no batch norm; hard_sigmoid(x) =
 *                           relu6(x + 3) * 0.16667;
 *                project    1x1 convolution to the block's width, batch norm, no activation;
 *                residual   input + output when the stride is 1, the widths match and the
 *                           block does not say residual=False (one EdgeTPU block does);
 *              expand and depthwise use the block's activation (relu, or hard_swish(x) =
 *              x * relu6(x + 3) / 6);
 *   pool       mobilenet_v3.reduce_to_1x1: an average pool over the whole map when it is
 *              square (else 7x7), VALID.
 * Widths: _make_divisible(d * depth_multiplier, 8, min 8) for every layer's num_outputs;
 * with finegrain_classification_mode (mobilenet_edgetpu_075) the last layer keeps its width.
 * Logits: global average pool (end point global_pool) -> Dropout (keep 0.8) ->
 * Conv2d_1c_1x1 (linear, zero biases) -> squeeze.  training_scope: truncated normal(0.09)
 * weights, batch norm decay 0.997 (epsilon 0.001), l2(weight decay 4e-5) on conv2d weights,
 * the squeeze-excite convolutions' included, none on the depthwise weights; the conv_defs'
 * DEFAULTS: relu, batch norm with center and scale.  End points: layer_1..layer_<n>,
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

enum { CONV, BLOCK, FUSED, POOL, END };
enum { R = SN_ACT_RELU, HS = SN_ACT_HARD_SWISH };

/* One entry of a spec: kind; for conv/block/fused the output width n, kernel k, stride s and
 * activation; for blocks the expansion factor ef, squeeze-excite, and no_residual; for conv
 * no_bn (normalizer_fn=None: biases). */
typedef struct layer_def {
    int kind;
    double ef;
    int n, k, s, act, se, no_residual, no_bn;
} layer_def;

#define C_(n, k, s, act) {CONV, 0, n, k, s, act, 0, 0, 0}
#define C_NOBN(n, act) {CONV, 0, n, 1, 1, act, 0, 0, 1}
#define B_(ef, n, k, s, act) {BLOCK, ef, n, k, s, act, 0, 0, 0}
#define BSE(ef, n, k, s, act) {BLOCK, ef, n, k, s, act, 1, 0, 0}
#define F_(ef, n, k, s) {FUSED, ef, n, k, s, R, 0, 0, 0}
#define POOL_ {POOL, 0, 0, 0, 0, 0, 0, 0, 0}
#define END_ {END, 0, 0, 0, 0, 0, 0, 0, 0}

/* mobilenet_v3.V3_LARGE */
static const layer_def v3_large[] = {
    C_(16, 3, 2, HS),
    B_(1, 16, 3, 1, R), B_(4, 24, 3, 2, R), B_(3, 24, 3, 1, R),
    BSE(3, 40, 5, 2, R), BSE(3, 40, 5, 1, R), BSE(3, 40, 5, 1, R),
    B_(6, 80, 3, 2, HS), B_(2.5, 80, 3, 1, HS), B_(184 / 80., 80, 3, 1, HS),
    B_(184 / 80., 80, 3, 1, HS),
    BSE(6, 112, 3, 1, HS), BSE(6, 112, 3, 1, HS),
    BSE(6, 160, 5, 2, HS), BSE(6, 160, 5, 1, HS), BSE(6, 160, 5, 1, HS),
    C_(960, 1, 1, HS), POOL_, C_NOBN(1280, HS), END_,
};

/* mobilenet_v3.V3_LARGE_MINIMALISTIC: no squeeze-excite, no hard swish, no 5x5. */
static const layer_def v3_large_min[] = {
    C_(16, 3, 2, R),
    B_(1, 16, 3, 1, R), B_(4, 24, 3, 2, R), B_(3, 24, 3, 1, R),
    B_(3, 40, 3, 2, R), B_(3, 40, 3, 1, R), B_(3, 40, 3, 1, R),
    B_(6, 80, 3, 2, R), B_(2.5, 80, 3, 1, R), B_(184 / 80., 80, 3, 1, R),
    B_(184 / 80., 80, 3, 1, R),
    B_(6, 112, 3, 1, R), B_(6, 112, 3, 1, R),
    B_(6, 160, 3, 2, R), B_(6, 160, 3, 1, R), B_(6, 160, 3, 1, R),
    C_(960, 1, 1, R), POOL_, C_NOBN(1280, R), END_,
};

/* mobilenet_v3.V3_SMALL */
static const layer_def v3_small[] = {
    C_(16, 3, 2, HS),
    BSE(1, 16, 3, 2, R), B_(72. / 16, 24, 3, 2, R), B_(88. / 24, 24, 3, 1, R),
    BSE(4, 40, 5, 2, HS), BSE(6, 40, 5, 1, HS), BSE(6, 40, 5, 1, HS),
    BSE(3, 48, 5, 1, HS), BSE(3, 48, 5, 1, HS),
    BSE(6, 96, 5, 2, HS), BSE(6, 96, 5, 1, HS), BSE(6, 96, 5, 1, HS),
    C_(576, 1, 1, HS), POOL_, C_NOBN(1024, HS), END_,
};

/* mobilenet_v3.V3_SMALL_MINIMALISTIC */
static const layer_def v3_small_min[] = {
    C_(16, 3, 2, R),
    B_(1, 16, 3, 2, R), B_(72. / 16, 24, 3, 2, R), B_(88. / 24, 24, 3, 1, R),
    B_(4, 40, 3, 2, R), B_(6, 40, 3, 1, R), B_(6, 40, 3, 1, R),
    B_(3, 48, 3, 1, R), B_(3, 48, 3, 1, R),
    B_(6, 96, 3, 2, R), B_(6, 96, 3, 1, R), B_(6, 96, 3, 1, R),
    C_(576, 1, 1, R), POOL_, C_NOBN(1024, R), END_,
};

/* mobilenet_v3.V3_EDGETPU: "fused" blocks (a full k x k expansion, no depthwise) early. */
static const layer_def v3_edgetpu[] = {
    C_(32, 3, 2, R),
    F_(1, 16, 3, 1), F_(8, 32, 3, 2), F_(4, 32, 3, 1), F_(4, 32, 3, 1), F_(4, 32, 3, 1),
    F_(8, 48, 3, 2), F_(4, 48, 3, 1), F_(4, 48, 3, 1), F_(4, 48, 3, 1),
    B_(8, 96, 3, 2, R), B_(4, 96, 3, 1, R), B_(4, 96, 3, 1, R), B_(4, 96, 3, 1, R),
    {BLOCK, 8, 96, 3, 1, R, 0, 1, 0},   /* residual=False */
    B_(4, 96, 3, 1, R), B_(4, 96, 3, 1, R), B_(4, 96, 3, 1, R),
    B_(8, 160, 5, 2, R), B_(4, 160, 5, 1, R), B_(4, 160, 5, 1, R), B_(4, 160, 5, 1, R),
    B_(8, 192, 3, 1, R),
    C_(1280, 1, 1, R), END_,
};

/* conv_blocks.squeeze_excite(squeeze_factor=4, inner relu, gate relu6(x+3)*0.16667). */
static sn_node squeeze_excite(sn_graph *g, sn_node x) {
    sn_scope_push(g, "squeeze_excite");
    int C = (int)sn_node_dim(g, x, 3);
    sn_node pooled = sn_op_spatial_mean(g, x, 1);          /* tf.reduce_mean, keepdims */
    sn_conv_params cp = sn_conv_params_from(g, make_divisible(C / 4.0, 8, 8), 1, 1, 1);
    cp.batch_norm = 0;
    cp.biases = 1;
    cp.activation = SN_ACT_RELU;
    sn_node sq = sn_conv2d_p(g, pooled, &cp, "Conv");
    cp = sn_conv_params_from(g, C, 1, 1, 1);
    cp.batch_norm = 0;
    cp.biases = 1;
    cp.activation = SN_ACT_HARD_SIGMOID;
    sn_node ex = sn_conv2d_p(g, sq, &cp, "Conv_1");
    sn_node y = sn_op_channel_gate(g, x, ex);
    sn_scope_pop(g);
    return y;
}

/* conv_blocks.expanded_conv as mobilenet_v3.mbv3_op / mbv3_fused call it. */
static sn_node expanded_conv(sn_graph *g, sn_node x, const layer_def *l, int depth,
                             const char *scope) {
    sn_scope_push(g, scope);
    int64_t in = sn_node_dim(g, x, 3);
    int inner = make_divisible((double)in * l->ef, 8, 8);
    sn_node y = x;
    if (inner > in) {   /* fused: slim.conv2d(kernel_size=k, stride=s) */
        int k = l->kind == FUSED ? l->k : 1, s = l->kind == FUSED ? l->s : 1;
        sn_conv_params ep = sn_conv_params_from(g, inner, k, k, s);
        ep.activation = (sn_activation)l->act;
        y = sn_conv2d_p(g, y, &ep, "expand");
    }
    if (l->kind == BLOCK) {   /* depthwise_location='expansion' */
        sn_conv_params dp = sn_conv_params_from(g, 0, l->k, l->k, l->s);   /* num_outputs None */
        dp.depth_multiplier = 1;
        dp.padding = SN_PAD_SAME;
        dp.activation = (sn_activation)l->act;
        y = sn_separable_conv2d_p(g, y, &dp, "depthwise");
    }
    if (l->se) y = squeeze_excite(g, y);
    sn_conv_params pp = sn_conv_params_from(g, depth, 1, 1, 1);
    pp.activation = SN_ACT_NONE;   /* project_activation_fn = tf.identity */
    y = sn_conv2d_p(g, y, &pp, "project");
    if (!l->no_residual && l->s == 1 && depth == in) y = sn_op_add(g, y, x);
    sn_scope_pop(g);
    return y;
}

static sn_status mobilenet_v3(sn_graph *g, sn_node images, const sn_model_params *p,
                              const layer_def *spec, const char *top, double multiplier,
                              int finegrain, sn_model *out) {
    sn_defaults *d = sn_graph_defaults(g);
    d->weights_init = sn_init_truncated_normal(0.0f, 0.09f);
    d->activation = SN_ACT_RELU;
    d->batch_norm = 1;
    d->bn_center = 1;
    d->bn_scale = 1;
    d->bn_decay = 0.997f;
    d->bn_epsilon = 0.001f;
    d->weight_decay = sn__wd(p, 4e-5f);
    d->regularize_depthwise = 0;
    d->conv_padding = SN_PAD_SAME;
    float keep = sn__keep(p, 0.8f);
    out->scope = top;

    int n_layers = 0;
    while (spec[n_layers].kind != END) n_layers++;
    sn_scope_push(g, top);
    sn_node x = images;
    int convs = 0, blocks = 0;
    for (int i = 0; i < n_layers; i++) {
        const layer_def *l = &spec[i];
        char scope[32], name[32];
        int depth = finegrain && i == n_layers - 1 ? l->n
                                                   : make_divisible(l->n * multiplier, 8, 8);
        if (l->kind == CONV) {
            if (convs == 0) snprintf(scope, sizeof scope, "Conv");
            else snprintf(scope, sizeof scope, "Conv_%d", convs);
            convs++;
            sn_conv_params cp = sn_conv_params_from(g, depth, l->k, l->k, l->s);
            cp.activation = (sn_activation)l->act;
            if (l->no_bn) {
                cp.batch_norm = 0;
                cp.biases = 1;
            }
            x = sn_conv2d_p(g, x, &cp, scope);
        } else if (l->kind == POOL) {   /* reduce_to_1x1(default_size=7), VALID */
            int64_t h = sn_node_dim(g, x, 1), w = sn_node_dim(g, x, 2);
            int k = h > 0 && h == w ? (int)h : 7;
            x = sn_op_avg_pool(g, x, k, k, 1, 1, SN_PAD_VALID);
        } else {
            if (blocks == 0) snprintf(scope, sizeof scope, "expanded_conv");
            else snprintf(scope, sizeof scope, "expanded_conv_%d", blocks);
            blocks++;
            x = expanded_conv(g, x, l, depth, scope);
        }
        snprintf(name, sizeof name, "layer_%d", i + 1);
        sn_graph_end_point(g, x, name);
    }

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

sn_status sn__net_mobilenet_v3_small(sn_graph *g, sn_node images, const sn_model_params *p,
                                     sn_model *out) {
    return mobilenet_v3(g, images, p, v3_small, "MobilenetV3", 1.0, 0, out);
}

sn_status sn__net_mobilenet_v3_large(sn_graph *g, sn_node images, const sn_model_params *p,
                                     sn_model *out) {
    return mobilenet_v3(g, images, p, v3_large, "MobilenetV3", 1.0, 0, out);
}

sn_status sn__net_mobilenet_v3_small_minimalistic(sn_graph *g, sn_node images,
                                                  const sn_model_params *p, sn_model *out) {
    return mobilenet_v3(g, images, p, v3_small_min, "MobilenetV3", 1.0, 0, out);
}

sn_status sn__net_mobilenet_v3_large_minimalistic(sn_graph *g, sn_node images,
                                                  const sn_model_params *p, sn_model *out) {
    return mobilenet_v3(g, images, p, v3_large_min, "MobilenetV3", 1.0, 0, out);
}

sn_status sn__net_mobilenet_edgetpu(sn_graph *g, sn_node images, const sn_model_params *p,
                                    sn_model *out) {
    return mobilenet_v3(g, images, p, v3_edgetpu, "MobilenetEdgeTPU", 1.0, 0, out);
}

/* mobilenet_v3.edge_tpu_075: depth_multiplier 0.75, finegrain_classification_mode. */
sn_status sn__net_mobilenet_edgetpu_075(sn_graph *g, sn_node images, const sn_model_params *p,
                                        sn_model *out) {
    return mobilenet_v3(g, images, p, v3_edgetpu, "MobilenetEdgeTPU", 0.75, 1, out);
}
