/* mobilenet_v1.c: TF-slim's mobilenet_v1 and its _075, _050, _025 depth multipliers
 * (nets/mobilenet_v1.py).
 *
 * Conv2d_0 (3x3/2, 32) then 13 depthwise-separable pairs: Conv2d_i_depthwise (3x3 depthwise
 * only, multiplier 1, carries the stride) and Conv2d_i_pointwise (1x1); widths
 * max(int(d * depth_multiplier), 8).  Every layer: batch norm (center, scale, decay 0.9997,
 * epsilon 0.001) and relu6, SAME padding (mobilenet_v1() does not expose
 * use_explicit_padding, so its fixed padding never applies here).  Logits: AvgPool_1a (VALID,
 * kernel min(7, map), slim's default stride 2) or global_pool -> Dropout_1b (keep 0.999) ->
 * Conv2d_1c_1x1 (linear, biases) -> SpatialSqueeze.
 * mobilenet_v1_arg_scope: truncated normal(0.09) weights; l2(weight decay 4e-5) on conv2d
 * weights only: depthwise weights are not regularized (regularize_depthwise=False). */
#include <stdio.h>
#include "nets.h"

static sn_status mobilenet_v1(sn_graph *g, sn_node images, const sn_model_params *p,
                              double multiplier, sn_model *out) {
    /* MOBILENETV1_CONV_DEFS after Conv2d_0: (stride, depth) of each separable pair */
    static const int stride[13] = {1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1};
    static const int depth[13] = {64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024,
                                  1024};
    enum { MIN_DEPTH = 8 };
    sn_defaults *d = sn_graph_defaults(g);
    d->weights_init = sn_init_truncated_normal(0.0f, 0.09f);
    d->activation = SN_ACT_RELU6;
    d->batch_norm = 1;
    d->bn_center = 1;
    d->bn_scale = 1;
    d->bn_decay = 0.9997f;
    d->bn_epsilon = 0.001f;
    d->weight_decay = sn__wd(p, 4e-5f);
    d->regularize_depthwise = 0;
    d->conv_padding = SN_PAD_SAME;
    float keep = sn__keep(p, 0.999f);
    out->scope = "MobilenetV1";

    sn_scope_push(g, "MobilenetV1");
    sn_node x = sn_conv2d(g, images, sn__depth(32, multiplier, MIN_DEPTH), 3, 3, 2, "Conv2d_0");
    sn_graph_end_point(g, x, "Conv2d_0");
    char name[32];
    for (int i = 0; i < 13; i++) {
        snprintf(name, sizeof name, "Conv2d_%d_depthwise", i + 1);
        sn_conv_params dp = sn_conv_params_from(g, 0, 3, 3, stride[i]);   /* num_outputs None */
        dp.depth_multiplier = 1;
        x = sn_separable_conv2d_p(g, x, &dp, name);
        sn_graph_end_point(g, x, name);
        snprintf(name, sizeof name, "Conv2d_%d_pointwise", i + 1);
        x = sn_conv2d(g, x, sn__depth(depth[i], multiplier, MIN_DEPTH), 1, 1, 1, name);
        sn_graph_end_point(g, x, name);
    }

    sn_scope_push(g, "Logits");
    if (p->global_pool) {
        x = sn_op_spatial_mean(g, x, 1);
        sn_graph_end_point(g, x, "global_pool");
    } else {
        int kh = sn__reduced_k(g, x, 1, 7), kw = sn__reduced_k(g, x, 2, 7);
        x = sn_op_avg_pool(g, x, kh, kw, 2, 2, SN_PAD_VALID);
        sn_graph_end_point(g, x, "AvgPool_1a");
    }
    sn_node logits = x;
    if (p->num_classes > 0) {
        x = sn_dropout(g, x, keep, "Dropout_1b");
        logits = sn__conv_linear(g, x, p->num_classes, 1, 1, SN_PAD_SAME, "Conv2d_1c_1x1");
        if (p->spatial_squeeze) logits = sn_op_squeeze(g, logits);
        sn_graph_end_point(g, logits, "Logits");
    }
    sn_scope_pop(g);
    sn_scope_pop(g);
    return sn__net_finish(g, p, logits, SN_NO_NODE, "Predictions", out);
}

sn_status sn__net_mobilenet_v1(sn_graph *g, sn_node images, const sn_model_params *p,
                               sn_model *out) {
    return mobilenet_v1(g, images, p, 1.0, out);
}

sn_status sn__net_mobilenet_v1_075(sn_graph *g, sn_node images, const sn_model_params *p,
                                   sn_model *out) {
    return mobilenet_v1(g, images, p, 0.75, out);
}

sn_status sn__net_mobilenet_v1_050(sn_graph *g, sn_node images, const sn_model_params *p,
                                   sn_model *out) {
    return mobilenet_v1(g, images, p, 0.50, out);
}

sn_status sn__net_mobilenet_v1_025(sn_graph *g, sn_node images, const sn_model_params *p,
                                   sn_model *out) {
    return mobilenet_v1(g, images, p, 0.25, out);
}
