/* overfeat.c: TF-slim's overfeat (nets/overfeat.py), fully connected layers as convolutions:
 *   conv1 11x11/4 VALID 64 -> pool1 2x2/2 -> conv2 5x5 VALID 256 -> pool2 -> conv3 512 ->
 *   conv4 1024 -> conv5 1024 -> pool5 -> fc6 6x6 VALID 3072 -> dropout6 -> fc7 1x1 4096
 *   [-> global_pool] -> dropout7 -> fc8 1x1 (linear, zero biases) -> fc8/squeezed.
 * overfeat_arg_scope: relu, l2(weight decay 5e-4), zero biases, conv SAME, max pool VALID;
 * fc6..fc8 use truncated normal(0.005) weights and biases 0.1 (fc8: zero biases).  Default
 * image size 231.  End points are the layers' full scopes, as in alexnet_v2. */
#include "nets.h"

static sn_node ep(sn_graph *g, sn_node x) {
    sn_graph_end_point(g, x, NULL);
    return x;
}

sn_status sn__net_overfeat(sn_graph *g, sn_node images, const sn_model_params *p,
                           sn_model *out) {
    sn_defaults *d = sn_graph_defaults(g);
    d->activation = SN_ACT_RELU;
    d->biases_init = sn_init_zeros();
    d->weight_decay = sn__wd(p, 5e-4f);
    d->conv_padding = SN_PAD_SAME;
    float keep = sn__keep(p, 0.5f);
    out->scope = "overfeat";

    sn_scope_push(g, "overfeat");
    sn_node x = ep(g, sn__conv(g, images, 64, 11, 11, 4, SN_PAD_VALID, "conv1"));
    x = ep(g, sn_max_pool2d(g, x, 2, 2, SN_PAD_VALID, "pool1"));
    x = ep(g, sn__conv(g, x, 256, 5, 5, 1, SN_PAD_VALID, "conv2"));
    x = ep(g, sn_max_pool2d(g, x, 2, 2, SN_PAD_VALID, "pool2"));
    x = ep(g, sn_conv2d(g, x, 512, 3, 3, 1, "conv3"));
    x = ep(g, sn_conv2d(g, x, 1024, 3, 3, 1, "conv4"));
    x = ep(g, sn_conv2d(g, x, 1024, 3, 3, 1, "conv5"));
    x = ep(g, sn_max_pool2d(g, x, 2, 2, SN_PAD_VALID, "pool5"));

    sn_defaults_push(g);   /* arg_scope([conv2d], trunc_normal(0.005), biases 0.1) */
    d = sn_graph_defaults(g);
    d->weights_init = sn_init_truncated_normal(0.0f, 0.005f);
    d->biases_init = sn_init_constant(0.1f);
    x = ep(g, sn__conv(g, x, 3072, 6, 6, 1, SN_PAD_VALID, "fc6"));
    x = sn_dropout(g, x, keep, "dropout6");
    x = ep(g, sn_conv2d(g, x, 4096, 1, 1, 1, "fc7"));
    if (p->global_pool) {
        x = sn_op_spatial_mean(g, x, 1);
        sn_graph_end_point(g, x, "global_pool");
    }
    sn_node logits = x;
    if (p->num_classes > 0) {
        x = sn_dropout(g, x, keep, "dropout7");
        sn_graph_defaults(g)->biases_init = sn_init_zeros();
        logits = sn__conv_linear(g, x, p->num_classes, 1, 1, SN_PAD_SAME, "fc8");
        if (p->spatial_squeeze) logits = sn_op_squeeze(g, logits);
        sn_graph_end_point(g, logits, "overfeat/fc8");
    }
    sn_defaults_pop(g);
    sn_scope_pop(g);
    return sn__net_finish(g, p, logits, SN_NO_NODE, "predictions", out);
}
