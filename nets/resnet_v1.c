/* resnet_v1.c: TF-slim's resnet_v1_{50,101,152,200} (nets/resnet_v1.py, resnet_utils.py).
 *
 * conv1 (7x7/2, conv2d_same) -> pool1 (max 3x3/2 SAME) -> block1..block4 of bottleneck_v1
 * units (the stride sits in the LAST unit of a block, in its 3x3 conv2) -> pool5 (global
 * mean) -> logits (1x1 conv, biases) -> SpatialSqueeze.  resnet_arg_scope: weight decay
 * 1e-4, He (variance scaling, factor 2, fan in, truncated normal) init, relu, batch norm
 * with decay 0.997, epsilon 1e-5, scale. */
#include <stdio.h>
#include "nets.h"

/* resnet_utils.conv2d_same (sn__conv2d_same in nets.h) with the current defaults. */
static sn_node conv2d_same(sn_graph *g, sn_node x, int num_outputs, int k, int stride,
                           const char *scope) {
    sn_conv_params p = sn_conv_params_from(g, num_outputs, k, k, stride);
    return sn__conv2d_same(g, x, &p, scope);
}

/* resnet_v1.bottleneck under scope "bottleneck_v1". */
static sn_node bottleneck(sn_graph *g, sn_node x, int depth, int depth_bottleneck, int stride) {
    sn_scope_push(g, "bottleneck_v1");
    int64_t depth_in = sn_node_dim(g, x, 3);
    sn_node shortcut;
    if (depth == depth_in) {
        shortcut = stride == 1 ? x : sn_op_max_pool(g, x, 1, 1, stride, stride, SN_PAD_SAME);
    } else {
        sn_conv_params p = sn_conv_params_from(g, depth, 1, 1, stride);
        p.activation = SN_ACT_NONE;
        shortcut = sn_conv2d_p(g, x, &p, "shortcut");
    }
    sn_node r = sn_conv2d(g, x, depth_bottleneck, 1, 1, 1, "conv1");
    r = conv2d_same(g, r, depth_bottleneck, 3, stride, "conv2");
    sn_conv_params p3 = sn_conv_params_from(g, depth, 1, 1, 1);
    p3.activation = SN_ACT_NONE;
    r = sn_conv2d_p(g, r, &p3, "conv3");
    sn_node y = sn_op_relu(g, sn_op_add(g, shortcut, r));
    sn_scope_pop(g);
    return y;
}

static sn_status resnet_v1(sn_graph *g, sn_node images, const sn_model_params *p,
                           const char *scope, const int units[4], sn_model *out) {
    static const int base[4] = {64, 128, 256, 512}, strides[4] = {2, 2, 2, 1};
    sn__resnet_arg_scope(g, p);
    out->scope = scope;

    sn_scope_push(g, scope);
    sn_node x = conv2d_same(g, images, 64, 7, 2, "conv1");
    x = sn_max_pool2d(g, x, 3, 2, SN_PAD_SAME, "pool1");
    char name[32];
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
    }
    if (p->global_pool) x = sn_op_spatial_mean(g, x, 1);
    sn_node logits = x;
    if (p->num_classes > 0) {
        sn_conv_params lp = sn_conv_params_from(g, p->num_classes, 1, 1, 1);
        lp.activation = SN_ACT_NONE;
        lp.batch_norm = 0;
        lp.biases = 1;
        logits = sn_conv2d_p(g, x, &lp, "logits");
        if (p->spatial_squeeze) logits = sn_op_squeeze(g, logits);
    }
    sn_scope_pop(g);
    return sn__net_finish(g, p, logits, SN_NO_NODE, "predictions", out);
}

sn_status sn__net_resnet_v1_50(sn_graph *g, sn_node images, const sn_model_params *p,
                               sn_model *out) {
    return resnet_v1(g, images, p, "resnet_v1_50", sn__resnet_units[0], out);
}

sn_status sn__net_resnet_v1_101(sn_graph *g, sn_node images, const sn_model_params *p,
                                sn_model *out) {
    return resnet_v1(g, images, p, "resnet_v1_101", sn__resnet_units[1], out);
}

sn_status sn__net_resnet_v1_152(sn_graph *g, sn_node images, const sn_model_params *p,
                                sn_model *out) {
    return resnet_v1(g, images, p, "resnet_v1_152", sn__resnet_units[2], out);
}

sn_status sn__net_resnet_v1_200(sn_graph *g, sn_node images, const sn_model_params *p,
                                sn_model *out) {
    return resnet_v1(g, images, p, "resnet_v1_200", sn__resnet_units[3], out);
}
