/* layers.c: TF-slim's layers (conv2d, separable_conv2d, fully_connected, batch_norm, pools,
 * dropout) composed from ops, with TF-slim's variable names, creation order and arg_scope
 * defaults.  Each layer's output node is named after its scope, as slim's end points are. */
#include <string.h>
#include "graph.h"

sn_conv_params sn_conv_params_from(const sn_graph *g, int num_outputs, int kh, int kw,
                                   int stride) {
    const sn_defaults *d = &g->defs[g->defs_depth];
    sn_conv_params p;
    memset(&p, 0, sizeof p);
    p.num_outputs = num_outputs;
    p.kh = kh;
    p.kw = kw;
    p.stride_h = p.stride_w = stride;
    p.rate = 1;
    p.depth_multiplier = 1;
    p.padding = d->conv_padding;
    p.activation = d->activation;
    p.batch_norm = d->batch_norm;
    p.biases = !d->batch_norm;
    p.weights_init = d->weights_init;
    p.biases_init = d->biases_init;
    p.weight_decay = d->weight_decay;
    p.trainable = d->trainable;
    return p;
}

static unsigned var_flags(int trainable) {
    return SN_VAR_MODEL | (trainable ? SN_VAR_TRAINABLE : 0);
}

static void regularize(sn_graph *g, sn_node w, float scale) {
    if (scale > 0.0f) sn__graph_add_reg(g, sn_op_l2_loss(g, w, scale));
}

static sn_node activate(sn_graph *g, sn_node y, sn_activation act) {
    switch (act) {
    case SN_ACT_RELU: return sn_op_relu(g, y);
    case SN_ACT_RELU6: return sn_op_relu6(g, y);
    case SN_ACT_HARD_SWISH: return sn_op_hard_swish(g, y);
    case SN_ACT_HARD_SIGMOID: return sn_op_hard_sigmoid(g, y);
    case SN_ACT_NONE: return y;
    }
    return sn__graph_fail(g, SN_ERR_INVALID_ARG, "unknown activation %d in '%s'", (int)act,
                          g->scope);
}

/* The part every conv-like layer shares after its linear op: biases or batch norm, then
 * the activation; the output is named after the layer scope. */
static sn_node finish(sn_graph *g, sn_node y, const sn_conv_params *p) {
    if (g->err != SN_OK) return SN_NO_NODE;
    int64_t K = g->nodes[y].dims[g->nodes[y].rank - 1];
    if (p->batch_norm) {
        y = sn_batch_norm(g, y, "BatchNorm");
    } else if (p->biases) {
        int64_t bd[1] = {K};
        sn_node b = sn_variable(g, "biases", 1, bd, &p->biases_init, var_flags(p->trainable));
        if (g->defs[g->defs_depth].regularize_biases) regularize(g, b, p->weight_decay);
        y = sn_op_bias_add(g, y, b);
    }
    y = activate(g, y, p->activation);
    sn__graph_name(g, y, NULL);
    return y;
}

static bool check_x(sn_graph *g, sn_node x, int rank, const char *what, const char *scope) {
    if (!sn__graph_check(g, x, what)) return false;
    if (g->nodes[x].rank != rank) {
        char s[128];
        sn__graph_fail(g, SN_ERR_SHAPE, "%s '%s/%s': input must have rank %d, got %s", what,
                       g->scope, scope, rank,
                       sn__dims_str(g->nodes[x].rank, g->nodes[x].dims, s, sizeof s));
        return false;
    }
    return true;
}

sn_node sn_conv2d_p(sn_graph *g, sn_node x, const sn_conv_params *p, const char *scope) {
    if (!check_x(g, x, 4, "conv2d", scope)) return SN_NO_NODE;
    if (p->num_outputs < 1 || p->kh < 1 || p->kw < 1)
        return sn__graph_fail(g, SN_ERR_INVALID_ARG, "conv2d '%s/%s': %d outputs, kernel %dx%d",
                              g->scope, scope, p->num_outputs, p->kh, p->kw);
    sn_scope_push(g, scope);
    int64_t wd[4] = {p->kh, p->kw, g->nodes[x].dims[3], p->num_outputs};
    sn_node w = sn_variable(g, "weights", 4, wd, &p->weights_init, var_flags(p->trainable));
    regularize(g, w, p->weight_decay);
    sn_node y = sn_op_conv2d(g, x, w, p->stride_h, p->stride_w, p->rate, p->padding);
    y = finish(g, y, p);
    sn_scope_pop(g);
    return y;
}

sn_node sn_conv2d(sn_graph *g, sn_node x, int num_outputs, int kh, int kw, int stride,
                  const char *scope) {
    sn_conv_params p = sn_conv_params_from(g, num_outputs, kh, kw, stride);
    return sn_conv2d_p(g, x, &p, scope);
}

sn_node sn_separable_conv2d_p(sn_graph *g, sn_node x, const sn_conv_params *p,
                              const char *scope) {
    if (!check_x(g, x, 4, "separable_conv2d", scope)) return SN_NO_NODE;
    if (p->num_outputs < 0 || p->kh < 1 || p->kw < 1 || p->depth_multiplier < 1)
        return sn__graph_fail(g, SN_ERR_INVALID_ARG, "separable_conv2d '%s/%s': %d outputs, "
                              "kernel %dx%d, multiplier %d", g->scope, scope, p->num_outputs,
                              p->kh, p->kw, p->depth_multiplier);
    sn_scope_push(g, scope);
    int64_t C = g->nodes[x].dims[3];
    int64_t dd[4] = {p->kh, p->kw, C, p->depth_multiplier};
    sn_node dw = sn_variable(g, "depthwise_weights", 4, dd, &p->weights_init,
                             var_flags(p->trainable));
    if (g->defs[g->defs_depth].regularize_depthwise) regularize(g, dw, p->weight_decay);
    sn_node y = SN_NO_NODE;
    if (p->num_outputs > 0) {
        int64_t pd[4] = {1, 1, C * p->depth_multiplier, p->num_outputs};
        sn_node pw = sn_variable(g, "pointwise_weights", 4, pd, &p->weights_init,
                                 var_flags(p->trainable));
        regularize(g, pw, p->weight_decay);
        y = sn_op_depthwise_conv2d(g, x, dw, p->stride_h, p->stride_w, p->rate, p->padding);
        y = sn_op_conv2d(g, y, pw, 1, 1, 1, SN_PAD_VALID);
    } else {
        y = sn_op_depthwise_conv2d(g, x, dw, p->stride_h, p->stride_w, p->rate, p->padding);
    }
    y = finish(g, y, p);
    sn_scope_pop(g);
    return y;
}

sn_node sn_fully_connected_p(sn_graph *g, sn_node x, const sn_conv_params *p,
                             const char *scope) {
    if (!check_x(g, x, 2, "fully_connected", scope)) return SN_NO_NODE;
    if (p->num_outputs < 1)
        return sn__graph_fail(g, SN_ERR_INVALID_ARG, "fully_connected '%s/%s': %d outputs",
                              g->scope, scope, p->num_outputs);
    sn_scope_push(g, scope);
    int64_t wd[2] = {g->nodes[x].dims[1], p->num_outputs};
    sn_node w = sn_variable(g, "weights", 2, wd, &p->weights_init, var_flags(p->trainable));
    regularize(g, w, p->weight_decay);
    sn_node y = sn_op_matmul(g, x, w);
    y = finish(g, y, p);
    sn_scope_pop(g);
    return y;
}

sn_node sn_fully_connected(sn_graph *g, sn_node x, int num_outputs, const char *scope) {
    sn_conv_params p = sn_conv_params_from(g, num_outputs, 1, 1, 1);
    return sn_fully_connected_p(g, x, &p, scope);
}

sn_node sn_batch_norm(sn_graph *g, sn_node x, const char *scope) {
    if (!sn__graph_check(g, x, "batch_norm")) return SN_NO_NODE;
    const sn_defaults *d = &g->defs[g->defs_depth];
    int64_t C[1] = {g->nodes[x].dims[g->nodes[x].rank - 1]};
    sn_init zeros = sn_init_zeros(), ones = sn_init_ones();
    unsigned tflags = var_flags(d->trainable);
    sn_scope_push(g, scope);
    /* TF-slim's creation order: on 4-D inputs its fused path creates gamma, then beta;
     * otherwise beta, then gamma; then moving_mean, moving_variance. */
    sn_node beta = SN_NO_NODE, gamma = SN_NO_NODE;
    bool fused = g->nodes[x].rank == 4;
    if (fused && d->bn_scale) gamma = sn_variable(g, "gamma", 1, C, &ones, tflags);
    if (d->bn_center) beta = sn_variable(g, "beta", 1, C, &zeros, tflags);
    if (!fused && d->bn_scale) gamma = sn_variable(g, "gamma", 1, C, &ones, tflags);
    sn_node mm = sn_variable(g, "moving_mean", 1, C, &zeros, SN_VAR_MODEL | SN_VAR_MOVING);
    sn_node mv = sn_variable(g, "moving_variance", 1, C, &ones, SN_VAR_MODEL | SN_VAR_MOVING);
    sn_node y = sn_op_batch_norm(g, x, gamma, beta, mm, mv, d->bn_decay, d->bn_epsilon,
                                 d->is_training);
    sn__graph_name(g, y, NULL);
    sn_scope_pop(g);
    return y;
}

sn_node sn_max_pool2d(sn_graph *g, sn_node x, int k, int stride, sn_padding pad,
                      const char *scope) {
    sn_node y = sn_op_max_pool(g, x, k, k, stride, stride, pad);
    if (scope) sn__graph_name(g, y, scope);
    return y;
}

sn_node sn_avg_pool2d(sn_graph *g, sn_node x, int k, int stride, sn_padding pad,
                      const char *scope) {
    sn_node y = sn_op_avg_pool(g, x, k, k, stride, stride, pad);
    if (scope) sn__graph_name(g, y, scope);
    return y;
}

sn_node sn_dropout(sn_graph *g, sn_node x, float keep_prob, const char *scope) {
    sn_node y = sn_op_dropout(g, x, keep_prob, g->defs[g->defs_depth].is_training);
    if (scope) sn__graph_name(g, y, scope);
    return y;
}
