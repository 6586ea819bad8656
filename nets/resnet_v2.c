/* resnet_v2.c: TF-slim's resnet_v2_{50,101,152,200} (nets/resnet_v2.py, resnet_utils.py),
 * the pre-activation ResNet.
 *
 * conv1 (7x7/2 conv2d_same, no batch norm and no activation, so it has biases) -> pool1 (max
 * 3x3/2 SAME) -> block1..block4 of bottleneck_v2 units (the stride sits in the LAST unit of a
 * block) -> postnorm (batch norm + relu) -> pool5 (global mean) -> logits (1x1 conv, biases)
 * -> SpatialSqueeze.  A bottleneck_v2 unit:
 *   preact   = relu(batch_norm(x))                      (variables right under "preact/")
 *   shortcut = x subsampled (max pool 1x1/stride) when the depth is unchanged, else a 1x1
 *              conv of preact with the stride, biases, no batch norm, no activation;
 *   residual = conv1 1x1 (bn, relu) -> conv2 3x3 conv2d_same with the stride (bn, relu) ->
 *              conv3 1x1 (biases, no bn, no activation);
 *   output   = shortcut + residual.
 * resnet_arg_scope: weight decay 1e-4, He init (variance scaling 2, fan in, truncated normal),
 * relu, batch norm decay 0.997, epsilon 1e-5, scale; max pool SAME.  End points:
 * "resnet_v2_50/blockN", global_pool, "resnet_v2_50/logits", "resnet_v2_50/spatial_squeeze",
 * predictions. */
#include <stdio.h>
#include "nets.h"

static sn_node bottleneck(sn_graph *g, sn_node x, int depth, int depth_bottleneck, int stride) {
    sn_scope_push(g, "bottleneck_v2");
    int64_t depth_in = sn_node_dim(g, x, 3);
    sn_node preact = sn_op_relu(g, sn_batch_norm(g, x, "preact"));
    sn_node shortcut;
    if (depth == depth_in) {
        shortcut = stride == 1 ? x : sn_op_max_pool(g, x, 1, 1, stride, stride, SN_PAD_SAME);
    } else {
        sn_conv_params sp = sn_conv_params_from(g, depth, 1, 1, stride);
        sp.activation = SN_ACT_NONE;
        sp.batch_norm = 0;
        sp.biases = 1;
        shortcut = sn_conv2d_p(g, preact, &sp, "shortcut");
    }
    sn_node r = sn_conv2d(g, preact, depth_bottleneck, 1, 1, 1, "conv1");
    sn_conv_params p2 = sn_conv_params_from(g, depth_bottleneck, 3, 3, stride);
    r = sn__conv2d_same(g, r, &p2, "conv2");
    r = sn__conv_linear(g, r, depth, 1, 1, SN_PAD_SAME, "conv3");
    sn_node y = sn_op_add(g, shortcut, r);
    sn_scope_pop(g);
    return y;
}

static sn_status resnet_v2(sn_graph *g, sn_node images, const sn_model_params *p,
                           const char *scope, const int units[4], sn_model *out) {
    static const int base[4] = {64, 128, 256, 512}, strides[4] = {2, 2, 2, 1};
    sn__resnet_arg_scope(g, p);
    out->scope = scope;

    sn_scope_push(g, scope);
    sn_conv_params cp = sn_conv_params_from(g, 64, 7, 7, 2);   /* root: no bn, no relu */
    cp.activation = SN_ACT_NONE;
    cp.batch_norm = 0;
    cp.biases = 1;
    sn_node x = sn__conv2d_same(g, images, &cp, "conv1");
    x = sn_max_pool2d(g, x, 3, 2, SN_PAD_SAME, "pool1");
    char name[48];
    for (int b = 0; b < 4; b++) {
        snprintf(name, sizeof name, "block%d", b + 1);
        sn_scope_push(g, name);
        for (int u = 0; u < units[b]; u++) {
            snprintf(name, sizeof name, "unit_%d", u + 1);
            sn_scope_push(g, name);
            x = bottleneck(g, x, base[b] * 4, base[b], u == units[b] - 1 ? strides[b] : 1);
            sn_scope_pop(g);
        }
        sn_scope_pop(g);
        snprintf(name, sizeof name, "%s/block%d", scope, b + 1);
        sn_graph_end_point(g, x, name);
    }
    x = sn_op_relu(g, sn_batch_norm(g, x, "postnorm"));
    if (p->global_pool) {
        x = sn_op_spatial_mean(g, x, 1);
        sn_graph_end_point(g, x, "global_pool");
    }
    sn_node logits = x;
    if (p->num_classes > 0) {
        logits = sn__conv_linear(g, x, p->num_classes, 1, 1, SN_PAD_SAME, "logits");
        snprintf(name, sizeof name, "%s/logits", scope);
        sn_graph_end_point(g, logits, name);
        if (p->spatial_squeeze) {
            logits = sn_op_squeeze(g, logits);
            snprintf(name, sizeof name, "%s/spatial_squeeze", scope);
            sn_graph_end_point(g, logits, name);
        }
    }
    sn_scope_pop(g);
    return sn__net_finish(g, p, logits, SN_NO_NODE, "predictions", out);
}

sn_status sn__net_resnet_v2_50(sn_graph *g, sn_node images, const sn_model_params *p,
                               sn_model *out) {
    return resnet_v2(g, images, p, "resnet_v2_50", sn__resnet_units[0], out);
}

sn_status sn__net_resnet_v2_101(sn_graph *g, sn_node images, const sn_model_params *p,
                                sn_model *out) {
    return resnet_v2(g, images, p, "resnet_v2_101", sn__resnet_units[1], out);
}

sn_status sn__net_resnet_v2_152(sn_graph *g, sn_node images, const sn_model_params *p,
                                sn_model *out) {
    return resnet_v2(g, images, p, "resnet_v2_152", sn__resnet_units[2], out);
}

sn_status sn__net_resnet_v2_200(sn_graph *g, sn_node images, const sn_model_params *p,
                                sn_model *out) {
    return resnet_v2(g, images, p, "resnet_v2_200", sn__resnet_units[3], out);
}
