/* op_norm.c: batch normalization and local response normalization.
 * Both work per channel on x viewed as (rows, C), rows = N*H*W. */
#include "graph.h"

/* Inputs: x, [gamma], [beta], moving_mean, moving_var; which are present is in p.bn. */
enum { BN_HAS_GAMMA = 1, BN_HAS_BETA = 2 };

sn_node sn_op_batch_norm(sn_graph *g, sn_node x, sn_node gamma, sn_node beta,
                         sn_node moving_mean, sn_node moving_var, float decay, float epsilon,
                         int training) {
    if (!sn__graph_check(g, x, "batch_norm") || !sn__graph_check(g, moving_mean, "batch_norm") ||
        !sn__graph_check(g, moving_var, "batch_norm"))
        return SN_NO_NODE;
    if ((gamma != SN_NO_NODE && !sn__graph_check(g, gamma, "batch_norm")) ||
        (beta != SN_NO_NODE && !sn__graph_check(g, beta, "batch_norm")))
        return SN_NO_NODE;
    const sn__node *xn = &g->nodes[x];
    int64_t C = xn->dims[xn->rank - 1];
    sn_node params[4] = {gamma, beta, moving_mean, moving_var};
    const char *pname[4] = {"gamma", "beta", "moving_mean", "moving_variance"};
    for (int j = 0; j < 4; j++) {
        if (params[j] == SN_NO_NODE) continue;
        const sn__node *pn = &g->nodes[params[j]];
        if (pn->rank != 1 || pn->dims[0] != C)
            return sn__graph_fail(g, SN_ERR_SHAPE, "batch_norm in '%s': %s has %lld elements "
                                  "(rank %d), x has C=%lld", g->scope, pname[j],
                                  (long long)(pn->rank ? pn->dims[0] : 1), pn->rank,
                                  (long long)C);
    }
    if (xn->rank < 2 || !(epsilon > 0) || !(decay >= 0 && decay <= 1))
        return sn__graph_fail(g, SN_ERR_INVALID_ARG, "batch_norm in '%s': rank %d, epsilon %g, "
                              "decay %g (need rank >= 2, epsilon > 0, decay in [0,1])", g->scope,
                              xn->rank, epsilon, decay);
    sn_node in[5];
    int n_in = 0, flags = 0;
    in[n_in++] = x;
    if (gamma != SN_NO_NODE) { in[n_in++] = gamma; flags |= BN_HAS_GAMMA; }
    if (beta != SN_NO_NODE) { in[n_in++] = beta; flags |= BN_HAS_BETA; }
    in[n_in++] = moving_mean;
    in[n_in++] = moving_var;
    int64_t dims[SN_MAX_RANK];
    for (int d = 0; d < xn->rank; d++) dims[d] = xn->dims[d];
    sn_node y = sn__graph_add(g, SN__OP_batch_norm, SN_DTYPE_F32, xn->rank, dims, n_in, in);
    if (y < 0) return y;
    g->nodes[y].p.bn.decay = decay;
    g->nodes[y].p.bn.eps = epsilon;
    g->nodes[y].p.bn.training = training ? 1 : 0;
    g->nodes[y].p.bn.has = flags;
    return y;
}

typedef struct bn_args {
    int64_t rows, C;
    int gamma, beta, mean, var;   /* input slots; -1 when absent */
    bool training;
} bn_args;

static bn_args bn_unpack(const sn_net *net, int i) {
    const sn__node *n = &net->g->nodes[i];
    bn_args a;
    int flags = n->p.bn.has, j = 1;
    a.training = n->p.bn.training;
    a.gamma = (flags & BN_HAS_GAMMA) ? j++ : -1;
    a.beta = (flags & BN_HAS_BETA) ? j++ : -1;
    a.mean = j++;
    a.var = j;
    a.C = net->dims[i][n->rank - 1];
    a.rows = (int64_t)(net->numel[i] / (size_t)(a.C ? a.C : 1));
    return a;
}

#define BN_IN(net, i, slot) ((slot) < 0 ? NULL : SN__X(net, i, slot))
#define BN_DIN(net, i, slot) ((slot) < 0 ? NULL : SN__DX(net, i, slot))

sn_status sn__op_batch_norm_fwd(sn_net *net, int i) {
    bn_args a = bn_unpack(net, i);
    const sn__node *n = &net->g->nodes[i];
    float eps = n->p.bn.eps;
    if (!a.training)
        return SN__CALL(net, bn_infer_fwd, SN__Y(net, i), SN__X(net, i, 0),
                        BN_IN(net, i, a.gamma), BN_IN(net, i, a.beta), SN__X(net, i, a.mean),
                        SN__X(net, i, a.var), eps, a.rows, a.C);
    float *mean = net->aux[i], *var = net->aux[i] + a.C;
    sn__chain ch;
    if (sn__bf16_native(net, i)) {      /* bf16: one kernel, fused or not */
        bool fused = sn__fused_chain(net, i, &ch);
        SN_TRY(SN__CALL(net, bn_train_fwd_ep_bf16, fused ? (sn_bf16 *)ch.y : SN__V16(net, i),
                        mean, var, SN__V16(net, n->in[0]), BN_IN(net, i, a.gamma),
                        BN_IN(net, i, a.beta), eps, fused ? (const sn_bf16 *)ch.residual : NULL,
                        fused ? ch.act : SN__ACT_NONE, a.rows, a.C));
    } else if (sn__fused_chain(net, i, &ch))   /* writes the chain's tail */
        SN_TRY(SN__CALL(net, bn_train_fwd_ep, ch.y, mean, var, SN__X(net, i, 0),
                        BN_IN(net, i, a.gamma), BN_IN(net, i, a.beta), eps, ch.residual,
                        ch.act, a.rows, a.C));
    else
        SN_TRY(SN__CALL(net, bn_train_fwd, SN__Y(net, i), mean, var, SN__X(net, i, 0),
                        BN_IN(net, i, a.gamma), BN_IN(net, i, a.beta), eps, a.rows, a.C));
    /* The moving statistics are variables updated in place, as TF's UPDATE_OPS do once per
     * training step; fused batch norm feeds the Bessel-corrected variance. */
    float factor = a.rows > 1 ? (float)a.rows / (float)(a.rows - 1) : 1.0f;
    return SN__CALL(net, bn_update_moving, (float *)net->val[n->in[a.mean]],
                    (float *)net->val[n->in[a.var]], mean, var, n->p.bn.decay, factor, a.C);
}

sn_status sn__op_batch_norm_bwd(sn_net *net, int i) {
    bn_args a = bn_unpack(net, i);
    const sn__node *n = &net->g->nodes[i];
    float *dx = SN__DX(net, i, 0), *dgamma = BN_DIN(net, i, a.gamma);
    float *dbeta = BN_DIN(net, i, a.beta);
    sn__chain ch;
    if (sn__bf16_native(net, i)) {      /* training; dy, y, x, dx, dres bf16 */
        bool fused = sn__fused_chain(net, i, &ch);
        sn_bf16 *dres = fused ? (sn_bf16 *)(void *)ch.dres : NULL;
        if (!dx && !dgamma && !dbeta && !dres) return SN_OK;
        unsigned set = (SN__DX_SET(net, 0) ? 1u : 0u) | (SN__DRES_SET(net) ? 2u : 0u);
        return SN__CALL(net, bn_train_bwd_ep_bf16, (sn_bf16 *)(void *)dx, dgamma, dbeta, dres,
                        fused ? (const sn_bf16 *)(void *)ch.dy : SN__G16(net, i),
                        fused ? (const sn_bf16 *)ch.y : SN__V16(net, i),
                        SN__V16(net, n->in[0]), BN_IN(net, i, a.gamma), net->aux[i],
                        net->aux[i] + a.C, n->p.bn.eps, fused ? ch.act : SN__ACT_NONE, set,
                        a.rows, a.C);
    }
    if (a.training && sn__fused_chain(net, i, &ch)) {
        if (!dx && !dgamma && !dbeta && !ch.dres) return SN_OK;
        unsigned set = (SN__DX_SET(net, 0) ? 1u : 0u) | (SN__DRES_SET(net) ? 2u : 0u);
        return SN__CALL(net, bn_train_bwd_ep, dx, dgamma, dbeta, ch.dres, ch.dy, ch.y,
                        SN__X(net, i, 0), BN_IN(net, i, a.gamma), net->aux[i],
                        net->aux[i] + a.C, n->p.bn.eps, ch.act, set, a.rows, a.C);
    }
    if (!dx && !dgamma && !dbeta) return SN_OK;
    if (a.training)
        return SN__CALL(net, bn_train_bwd, dx, dgamma, dbeta, SN__DY(net, i), SN__X(net, i, 0),
                        BN_IN(net, i, a.gamma), net->aux[i], net->aux[i] + a.C, n->p.bn.eps,
                        a.rows, a.C);
    return SN__CALL(net, bn_infer_bwd, dx, dgamma, dbeta, SN__DY(net, i), SN__X(net, i, 0),
                    BN_IN(net, i, a.gamma), SN__X(net, i, a.mean), SN__X(net, i, a.var),
                    n->p.bn.eps, a.rows, a.C);
}

void sn__bn_epilogue(const sn_net *net, int i, sn__epilogue *ep) {
    bn_args a = bn_unpack(net, i);
    ep->gamma = BN_IN(net, i, a.gamma);
    ep->beta = BN_IN(net, i, a.beta);
    ep->mean = SN__X(net, i, a.mean);
    ep->var = SN__X(net, i, a.var);
    ep->eps = net->g->nodes[i].p.bn.eps;
}

size_t sn__bn_aux_floats(const sn_net *net, int i) {
    bn_args a = bn_unpack(net, i);
    return a.training ? (size_t)(2 * a.C) : 0;
}

/* ---- LRN ----------------------------------------------------------------------------------- */

sn_node sn_op_lrn(sn_graph *g, sn_node x, int depth_radius, float bias, float alpha,
                  float beta) {
    if (!sn__graph_check(g, x, "lrn")) return SN_NO_NODE;
    const sn__node *xn = &g->nodes[x];
    if (xn->rank != 4 || depth_radius < 0)
        return sn__graph_fail(g, SN_ERR_INVALID_ARG, "lrn in '%s': needs (N,H,W,C) and "
                              "depth_radius >= 0", g->scope);
    sn_node y = sn__graph_add(g, SN__OP_lrn, SN_DTYPE_F32, 4, xn->dims, 1, &x);
    if (y < 0) return y;
    g->nodes[y].p.lrn.radius = depth_radius;
    g->nodes[y].p.lrn.bias = bias;
    g->nodes[y].p.lrn.alpha = alpha;
    g->nodes[y].p.lrn.beta = beta;
    return y;
}

sn_status sn__op_lrn_fwd(sn_net *net, int i) {
    const sn__node *n = &net->g->nodes[i];
    int64_t C = net->dims[i][3], rows = (int64_t)net->numel[i] / C;
    return SN__CALL(net, lrn_fwd, SN__Y(net, i), SN__X(net, i, 0), rows, C, n->p.lrn.radius,
                    n->p.lrn.bias, n->p.lrn.alpha, n->p.lrn.beta);
}

sn_status sn__op_lrn_bwd(sn_net *net, int i) {
    if (!SN__DX(net, i, 0)) return SN_OK;
    const sn__node *n = &net->g->nodes[i];
    int64_t C = net->dims[i][3], rows = (int64_t)net->numel[i] / C;
    return SN__CALL(net, lrn_bwd, SN__DX(net, i, 0), SN__DY(net, i), SN__X(net, i, 0), rows, C,
                    n->p.lrn.radius, n->p.lrn.bias, n->p.lrn.alpha, n->p.lrn.beta);
}
