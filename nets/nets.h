/* nets.h: the zoo builders, shared by the files of nets/.  They use only slimnet.h, as a user
 * program would; the factory (nets_factory.c) is their one caller. */
#ifndef SN_NETS_H
#define SN_NETS_H

#include "../lib/slimnet.h"

#define SN_MODEL(name, size, prep)                                                   \
    sn_status sn__net_##name(sn_graph *g, sn_node images, const sn_model_params *p,   \
                             sn_model *out);
#include "models.def"
#undef SN_MODEL

/* The family default unless the caller overrides it (p->weight_decay >= 0). */
static inline float sn__wd(const sn_model_params *p, float family_default) {
    return p->weight_decay >= 0.0f ? p->weight_decay : family_default;
}

/* ---- small helpers shared by the zoo files: slim idioms, one line each ----------------- */

/* The caller's dropout_keep_prob, or the network's default when it is < 0. */
static inline float sn__keep(const sn_model_params *p, float family_default) {
    return p->dropout_keep_prob >= 0.0f ? p->dropout_keep_prob : family_default;
}

/* slim.conv2d(x, k, [kh, kw], stride=stride, padding=pad, scope=scope), the rest from the
 * current defaults (arg_scope). */
static inline sn_node sn__conv(sn_graph *g, sn_node x, int k, int kh, int kw, int stride,
                               sn_padding pad, const char *scope) {
    sn_conv_params cp = sn_conv_params_from(g, k, kh, kw, stride);
    cp.padding = pad;
    return sn_conv2d_p(g, x, &cp, scope);
}

/* As sn__conv, with weights_initializer=init. */
static inline sn_node sn__conv_init(sn_graph *g, sn_node x, int k, int kh, int kw, int stride,
                                    sn_padding pad, sn_init init, const char *scope) {
    sn_conv_params cp = sn_conv_params_from(g, k, kh, kw, stride);
    cp.padding = pad;
    cp.weights_init = init;
    return sn_conv2d_p(g, x, &cp, scope);
}

/* slim.conv2d(x, k, [kh, kw], activation_fn=None, normalizer_fn=None, padding=pad): a linear
 * convolution with biases, as the logits layers and residual up-projections are. */
static inline sn_node sn__conv_linear(sn_graph *g, sn_node x, int k, int kh, int kw,
                                      sn_padding pad, const char *scope) {
    sn_conv_params cp = sn_conv_params_from(g, k, kh, kw, 1);
    cp.padding = pad;
    cp.activation = SN_ACT_NONE;
    cp.batch_norm = 0;
    cp.biases = 1;
    return sn_conv2d_p(g, x, &cp, scope);
}

/* slim.fully_connected(x, k, activation_fn=None): the fc logits layers (no normalizer: the
 * arg_scopes give fully_connected none). */
static inline sn_node sn__fc_linear(sn_graph *g, sn_node x, int k, const char *scope) {
    sn_conv_params cp = sn_conv_params_from(g, k, 1, 1, 1);
    cp.activation = SN_ACT_NONE;
    cp.batch_norm = 0;
    cp.biases = 1;
    return sn_fully_connected_p(g, x, &cp, scope);
}

/* resnet_utils.conv2d_same: SAME for stride 1; otherwise explicit symmetric zero padding
 * (k_eff-1)/2 before and the rest after, then VALID, so the output does not depend on the
 * parity of the input size as TF's SAME would.  Activation and normalizer from cp. */
static inline sn_node sn__conv2d_same(sn_graph *g, sn_node x, const sn_conv_params *cp,
                                      const char *scope) {
    sn_conv_params p = *cp;
    if (p.stride_h == 1 && p.stride_w == 1) {
        p.padding = SN_PAD_SAME;
        return sn_conv2d_p(g, x, &p, scope);
    }
    int kh = p.kh + (p.kh - 1) * (p.rate - 1), kw = p.kw + (p.kw - 1) * (p.rate - 1);
    x = sn_op_pad(g, x, (kh - 1) / 2, kh - 1 - (kh - 1) / 2, (kw - 1) / 2, kw - 1 - (kw - 1) / 2);
    p.padding = SN_PAD_VALID;
    return sn_conv2d_p(g, x, &p, scope);
}

/* Units per block of the 50/101/152/200-layer ResNets, v1 and v2 alike. */
static const int sn__resnet_units[4][4] = {
    {3, 4, 6, 3}, {3, 4, 23, 3}, {3, 8, 36, 3}, {3, 24, 36, 3}};

/* resnet_utils.resnet_arg_scope: weight decay 1e-4, He init (variance scaling, factor 2, fan
 * in, truncated normal), relu, batch norm (decay 0.997, epsilon 1e-5, scale), SAME max pools. */
static inline void sn__resnet_arg_scope(sn_graph *g, const sn_model_params *p) {
    sn_defaults *d = sn_graph_defaults(g);
    d->weight_decay = sn__wd(p, 1e-4f);
    d->weights_init = sn_init_variance_scaling(2.0f, SN_FAN_IN, 0);
    d->activation = SN_ACT_RELU;
    d->batch_norm = 1;
    d->bn_decay = 0.997f;
    d->bn_epsilon = 1e-5f;
    d->bn_scale = 1;
    d->pool_padding = SN_PAD_SAME;
}

/* TF-slim's depth(d) in inception and mobilenet_v1: max(int(d * multiplier), min_depth). */
static inline int sn__depth(int d, double multiplier, int min_depth) {
    int v = (int)(d * multiplier);
    return v > min_depth ? v : min_depth;
}

/* _reduced_kernel_size_for_small_input: min(k, the feature map's size) per axis. */
static inline int sn__reduced_k(const sn_graph *g, sn_node x, int axis, int k) {
    int64_t s = sn_node_dim(g, x, axis);
    return s > 0 && s < k ? (int)s : k;
}

/* inception_utils.inception_arg_scope (inception_v1..v4): conv2d with variance scaling
 * (factor 2, fan in, truncated normal), relu and batch norm (decay 0.9997, epsilon 0.001,
 * center, NO scale: no gamma); l2(weight decay 4e-5) on conv2d and fully_connected weights. */
static inline void sn__inception_arg_scope(sn_graph *g, const sn_model_params *p) {
    sn_defaults *d = sn_graph_defaults(g);
    d->weight_decay = sn__wd(p, 4e-5f);
    d->weights_init = sn_init_variance_scaling(2.0f, SN_FAN_IN, 0);
    d->activation = SN_ACT_RELU;
    d->batch_norm = 1;
    d->bn_decay = 0.9997f;
    d->bn_epsilon = 0.001f;
    d->bn_center = 1;
    d->bn_scale = 0;
}

/* Marks logits and aux logits as end points, adds the softmax end point pred_name
 * ("predictions" or "Predictions", as the family names it) unless p->num_classes is 0 (a
 * net built without logits has no predictions), fills out; returns the graph status. */
sn_status sn__net_finish(sn_graph *g, const sn_model_params *p, sn_node logits, sn_node aux,
                         const char *pred_name, sn_model *out);

#endif
