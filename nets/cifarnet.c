/* cifarnet.c: TF-slim's CifarNet (nets/cifarnet.py): conv1 5x5x64 -> pool1 2x2/2 -> LRN ->
 * conv2 5x5x64 -> LRN -> pool2 -> flatten -> fc3 384 -> dropout3 -> fc4 192 -> logits.
 * cifarnet_arg_scope: conv2d truncated normal(5e-2), relu, zero biases, NO regularizer;
 * fully_connected truncated normal(0.04), biases 0.1, l2(weight decay 0.004), relu.  The
 * logits layer has its own: truncated normal(1/192), zero biases, no regularizer. */
#include "nets.h"

/* tf.nn.lrn(net, 4, bias=1.0, alpha=0.001/9.0, beta=0.75) */
static sn_node lrn(sn_graph *g, sn_node x) {
    return sn_op_lrn(g, x, 4, 1.0f, (float)(0.001 / 9.0), 0.75f);
}

sn_status sn__net_cifarnet(sn_graph *g, sn_node images, const sn_model_params *p,
                           sn_model *out) {
    sn_defaults *d = sn_graph_defaults(g);
    d->activation = SN_ACT_RELU;
    d->biases_init = sn_init_zeros();
    float wd = sn__wd(p, 0.004f);
    float keep = sn__keep(p, 0.5f);
    out->scope = "CifarNet";

    sn_scope_push(g, "CifarNet");
    sn_conv_params cp = sn_conv_params_from(g, 64, 5, 5, 1);
    cp.weights_init = sn_init_truncated_normal(0.0f, 5e-2f);
    cp.weight_decay = 0.0f;
    sn_node x = sn_conv2d_p(g, images, &cp, "conv1");
    sn_graph_end_point(g, x, "conv1");
    x = sn_max_pool2d(g, x, 2, 2, SN_PAD_VALID, "pool1");
    sn_graph_end_point(g, x, "pool1");
    x = lrn(g, x);
    x = sn_conv2d_p(g, x, &cp, "conv2");
    sn_graph_end_point(g, x, "conv2");
    x = lrn(g, x);
    x = sn_max_pool2d(g, x, 2, 2, SN_PAD_VALID, "pool2");
    sn_graph_end_point(g, x, "pool2");
    x = sn_op_flatten(g, x);
    sn_graph_end_point(g, x, "Flatten");

    sn_conv_params fp = sn_conv_params_from(g, 384, 1, 1, 1);
    fp.weights_init = sn_init_truncated_normal(0.0f, 0.04f);
    fp.biases_init = sn_init_constant(0.1f);
    fp.weight_decay = wd;
    x = sn_fully_connected_p(g, x, &fp, "fc3");
    sn_graph_end_point(g, x, "fc3");
    x = sn_dropout(g, x, keep, "dropout3");
    fp.num_outputs = 192;
    x = sn_fully_connected_p(g, x, &fp, "fc4");
    sn_graph_end_point(g, x, "fc4");
    sn_node logits = x;   /* without logits: the features, as TF-slim */
    if (p->num_classes > 0) {
        sn_conv_params lp = sn_conv_params_from(g, p->num_classes, 1, 1, 1);
        lp.weights_init = sn_init_truncated_normal(0.0f, (float)(1.0 / 192.0));
        lp.biases_init = sn_init_zeros();
        lp.weight_decay = 0.0f;
        lp.activation = SN_ACT_NONE;
        logits = sn_fully_connected_p(g, x, &lp, "logits");
        sn_graph_end_point(g, logits, "Logits");
    }
    sn_scope_pop(g);
    return sn__net_finish(g, p, logits, SN_NO_NODE, "Predictions", out);
}
