/* lenet.c: TF-slim's LeNet (nets/lenet.py): conv1 5x5x32 -> pool1 2x2/2 -> conv2 5x5x64 ->
 * pool2 -> flatten -> fc3 1024 -> dropout3 -> fc4 (logits).  lenet_arg_scope: truncated
 * normal(0.1) init, relu, weight decay 0 by default. */
#include "nets.h"

sn_status sn__net_lenet(sn_graph *g, sn_node images, const sn_model_params *p, sn_model *out) {
    sn_defaults *d = sn_graph_defaults(g);
    d->weight_decay = sn__wd(p, 0.0f);
    d->weights_init = sn_init_truncated_normal(0.0f, 0.1f);
    d->activation = SN_ACT_RELU;
    out->scope = "LeNet";
    float keep = p->dropout_keep_prob >= 0.0f ? p->dropout_keep_prob : 0.5f;

    sn_scope_push(g, "LeNet");
    sn_node x = sn_conv2d(g, images, 32, 5, 5, 1, "conv1");
    x = sn_max_pool2d(g, x, 2, 2, SN_PAD_VALID, "pool1");
    x = sn_conv2d(g, x, 64, 5, 5, 1, "conv2");
    x = sn_max_pool2d(g, x, 2, 2, SN_PAD_VALID, "pool2");
    x = sn_op_flatten(g, x);
    x = sn_fully_connected(g, x, 1024, "fc3");
    sn_node logits = x;
    if (p->num_classes > 0) {
        x = sn_dropout(g, x, keep, "dropout3");
        sn_conv_params fp = sn_conv_params_from(g, p->num_classes, 1, 1, 1);
        fp.activation = SN_ACT_NONE;
        logits = sn_fully_connected_p(g, x, &fp, "fc4");
    }
    sn_scope_pop(g);
    return sn__net_finish(g, p, logits, SN_NO_NODE, "Predictions", out);
}
