/* vgg.c: TF-slim's vgg_a, vgg_16, vgg_19 (nets/vgg.py): five blocks of 3x3 SAME convolutions
 * built with slim.repeat (conv1/conv1_1, conv1/conv1_2, ...) each followed by a 2x2/2 max
 * pool, then the fully connected layers as convolutions:
 *   fc6 7x7 VALID 4096 -> dropout6 -> fc7 1x1 4096 [-> global_pool] -> dropout7 ->
 *   fc8 1x1 (linear) -> fc8/squeezed.
 * vgg_arg_scope: relu, l2(weight decay 5e-4), zero biases, conv SAME, default xavier init.
 * End points are the layers' full scopes ("vgg_16/conv1/conv1_1", "vgg_16/pool1", ...,
 * "vgg_16/fc8"). */
#include <stdio.h>
#include "nets.h"

static sn_status vgg(sn_graph *g, sn_node images, const sn_model_params *p, const char *scope,
                     const int reps[5], sn_model *out) {
    static const int width[5] = {64, 128, 256, 512, 512};
    sn_defaults *d = sn_graph_defaults(g);
    d->activation = SN_ACT_RELU;
    d->weight_decay = sn__wd(p, 5e-4f);
    d->biases_init = sn_init_zeros();
    d->conv_padding = SN_PAD_SAME;
    float keep = sn__keep(p, 0.5f);
    out->scope = scope;

    sn_scope_push(g, scope);
    sn_node x = images;
    char block[16], layer[24];
    for (int b = 0; b < 5; b++) {
        snprintf(block, sizeof block, "conv%d", b + 1);
        sn_scope_push(g, block);   /* slim.repeat(net, n, conv2d, ..., scope='convB') */
        for (int r = 0; r < reps[b]; r++) {
            snprintf(layer, sizeof layer, "conv%d_%d", b + 1, r + 1);
            x = sn_conv2d(g, x, width[b], 3, 3, 1, layer);
            sn_graph_end_point(g, x, NULL);
        }
        sn_scope_pop(g);
        snprintf(block, sizeof block, "pool%d", b + 1);
        x = sn_max_pool2d(g, x, 2, 2, SN_PAD_VALID, block);
        sn_graph_end_point(g, x, NULL);
    }
    x = sn__conv(g, x, 4096, 7, 7, 1, SN_PAD_VALID, "fc6");   /* fc_conv_padding='VALID' */
    sn_graph_end_point(g, x, NULL);
    x = sn_dropout(g, x, keep, "dropout6");
    x = sn_conv2d(g, x, 4096, 1, 1, 1, "fc7");
    sn_graph_end_point(g, x, NULL);
    if (p->global_pool) {
        x = sn_op_spatial_mean(g, x, 1);
        sn_graph_end_point(g, x, "global_pool");
    }
    sn_node logits = x;
    if (p->num_classes > 0) {
        x = sn_dropout(g, x, keep, "dropout7");
        logits = sn__conv_linear(g, x, p->num_classes, 1, 1, SN_PAD_SAME, "fc8");
        if (p->spatial_squeeze) logits = sn_op_squeeze(g, logits);
        char name[32];
        snprintf(name, sizeof name, "%s/fc8", scope);
        sn_graph_end_point(g, logits, name);
    }
    sn_scope_pop(g);
    return sn__net_finish(g, p, logits, SN_NO_NODE, "predictions", out);
}

sn_status sn__net_vgg_a(sn_graph *g, sn_node images, const sn_model_params *p, sn_model *out) {
    static const int reps[5] = {1, 1, 2, 2, 2};
    return vgg(g, images, p, "vgg_a", reps, out);
}

sn_status sn__net_vgg_16(sn_graph *g, sn_node images, const sn_model_params *p,
                         sn_model *out) {
    static const int reps[5] = {2, 2, 3, 3, 3};
    return vgg(g, images, p, "vgg_16", reps, out);
}

sn_status sn__net_vgg_19(sn_graph *g, sn_node images, const sn_model_params *p,
                         sn_model *out) {
    static const int reps[5] = {2, 2, 4, 4, 4};
    return vgg(g, images, p, "vgg_19", reps, out);
}
