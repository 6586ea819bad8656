/* inception_v1.c: TF-slim's inception_v1 (nets/inception_v1.py), GoogLeNet with batch norm.
 *
 * Stem (SAME, stride 1 unless noted): Conv2d_1a_7x7 64/2 -> MaxPool_2a_3x3 /2 ->
 * Conv2d_2b_1x1 64 -> Conv2d_2c_3x3 192 -> MaxPool_3a_3x3 /2, then Mixed_3b, 3c,
 * MaxPool_4a_3x3 /2, Mixed_4b..4f, MaxPool_5a_2x2 /2, Mixed_5b, 5c.  Each Mixed block is
 * four branches concatenated on channels: 1x1 | 1x1 -> 3x3 | 1x1 -> 3x3 | max pool 3x3 ->
 * 1x1.  Inside the base, conv weights start from truncated normal(0.01).  Logits:
 * AvgPool_0a_7x7 (VALID, stride 1) or global_pool -> Dropout_0b (keep 0.8) -> Conv2d_0c_1x1
 * (linear, biases) -> SpatialSqueeze.  Arg scope: inception_arg_scope (nets.h). */
#include "nets.h"

typedef struct mixed {
    const char *name;
    int b0, b1a, b1b, b2a, b2b, b3;
    const char *b2b_scope;   /* Mixed_5b names its second branch-2 conv Conv2d_0a_3x3 */
} mixed;

static sn_node mixed_block(sn_graph *g, sn_node x, const mixed *m) {
    sn_scope_push(g, m->name);
    sn_node br[4];
    sn_scope_push(g, "Branch_0");
    br[0] = sn_conv2d(g, x, m->b0, 1, 1, 1, "Conv2d_0a_1x1");
    sn_scope_pop(g);
    sn_scope_push(g, "Branch_1");
    br[1] = sn_conv2d(g, x, m->b1a, 1, 1, 1, "Conv2d_0a_1x1");
    br[1] = sn_conv2d(g, br[1], m->b1b, 3, 3, 1, "Conv2d_0b_3x3");
    sn_scope_pop(g);
    sn_scope_push(g, "Branch_2");
    br[2] = sn_conv2d(g, x, m->b2a, 1, 1, 1, "Conv2d_0a_1x1");
    br[2] = sn_conv2d(g, br[2], m->b2b, 3, 3, 1, m->b2b_scope ? m->b2b_scope : "Conv2d_0b_3x3");
    sn_scope_pop(g);
    sn_scope_push(g, "Branch_3");
    br[3] = sn_max_pool2d(g, x, 3, 1, SN_PAD_SAME, "MaxPool_0a_3x3");
    br[3] = sn_conv2d(g, br[3], m->b3, 1, 1, 1, "Conv2d_0b_1x1");
    sn_scope_pop(g);
    sn_node y = sn_op_concat(g, 4, br);
    sn_scope_pop(g);
    sn_graph_end_point(g, y, m->name);
    return y;
}

static sn_node pool(sn_graph *g, sn_node x, int k, const char *name) {
    x = sn_max_pool2d(g, x, k, 2, SN_PAD_SAME, name);
    sn_graph_end_point(g, x, name);
    return x;
}

static sn_node conv(sn_graph *g, sn_node x, int depth, int k, int stride, const char *name) {
    x = sn_conv2d(g, x, depth, k, k, stride, name);
    sn_graph_end_point(g, x, name);
    return x;
}

sn_status sn__net_inception_v1(sn_graph *g, sn_node images, const sn_model_params *p,
                               sn_model *out) {
    static const mixed m3[2] = {
        {"Mixed_3b", 64, 96, 128, 16, 32, 32, NULL},
        {"Mixed_3c", 128, 128, 192, 32, 96, 64, NULL},
    };
    static const mixed m4[5] = {
        {"Mixed_4b", 192, 96, 208, 16, 48, 64, NULL},
        {"Mixed_4c", 160, 112, 224, 24, 64, 64, NULL},
        {"Mixed_4d", 128, 128, 256, 24, 64, 64, NULL},
        {"Mixed_4e", 112, 144, 288, 32, 64, 64, NULL},
        {"Mixed_4f", 256, 160, 320, 32, 128, 128, NULL},
    };
    static const mixed m5[2] = {
        {"Mixed_5b", 256, 160, 320, 32, 128, 128, "Conv2d_0a_3x3"},
        {"Mixed_5c", 384, 192, 384, 48, 128, 128, NULL},
    };
    sn__inception_arg_scope(g, p);
    float keep = sn__keep(p, 0.8f);
    out->scope = "InceptionV1";

    sn_scope_push(g, "InceptionV1");
    sn_defaults_push(g);   /* inception_v1_base: trunc_normal(0.01), stride 1, SAME */
    sn_graph_defaults(g)->weights_init = sn_init_truncated_normal(0.0f, 0.01f);
    sn_node x = conv(g, images, 64, 7, 2, "Conv2d_1a_7x7");
    x = pool(g, x, 3, "MaxPool_2a_3x3");
    x = conv(g, x, 64, 1, 1, "Conv2d_2b_1x1");
    x = conv(g, x, 192, 3, 1, "Conv2d_2c_3x3");
    x = pool(g, x, 3, "MaxPool_3a_3x3");
    for (int i = 0; i < 2; i++) x = mixed_block(g, x, &m3[i]);
    x = pool(g, x, 3, "MaxPool_4a_3x3");
    for (int i = 0; i < 5; i++) x = mixed_block(g, x, &m4[i]);
    x = pool(g, x, 2, "MaxPool_5a_2x2");
    for (int i = 0; i < 2; i++) x = mixed_block(g, x, &m5[i]);
    sn_defaults_pop(g);

    sn_scope_push(g, "Logits");
    if (p->global_pool) {
        x = sn_op_spatial_mean(g, x, 1);
        sn_graph_end_point(g, x, "global_pool");
    } else {
        x = sn_avg_pool2d(g, x, 7, 1, SN_PAD_VALID, "AvgPool_0a_7x7");
        sn_graph_end_point(g, x, "AvgPool_0a_7x7");
    }
    sn_node logits = x;
    if (p->num_classes > 0) {
        x = sn_dropout(g, x, keep, "Dropout_0b");
        logits = sn__conv_linear(g, x, p->num_classes, 1, 1, SN_PAD_SAME, "Conv2d_0c_1x1");
        if (p->spatial_squeeze) logits = sn_op_squeeze(g, logits);
        sn_graph_end_point(g, logits, "Logits");
    }
    sn_scope_pop(g);
    sn_scope_pop(g);
    return sn__net_finish(g, p, logits, SN_NO_NODE, "Predictions", out);
}
