/* op_loss.c: softmax, softmax cross-entropy with label smoothing, L2 regularization. */
#include <stdio.h>
#include "graph.h"

sn_node sn_op_softmax(sn_graph *g, sn_node logits) {
    if (!sn__graph_check(g, logits, "softmax")) return SN_NO_NODE;
    const sn__node *xn = &g->nodes[logits];
    if (xn->rank != 2 || xn->dtype != SN_DTYPE_F32)
        return sn__graph_fail(g, SN_ERR_SHAPE, "softmax in '%s': logits must be float32 (N,C)",
                              g->scope);
    return sn__graph_add(g, SN__OP_softmax, SN_DTYPE_F32, 2, xn->dims, 1, &logits);
}

sn_status sn__op_softmax_fwd(sn_net *net, int i) {
    const int64_t *d = net->dims[i];
    return SN__CALL(net, softmax_fwd, SN__Y(net, i), SN__X(net, i, 0), d[0], d[1]);
}

sn_status sn__op_softmax_bwd(sn_net *net, int i) {
    if (!SN__DX(net, i, 0)) return SN_OK;
    const int64_t *d = net->dims[i];
    return SN__CALL(net, softmax_bwd, SN__DX(net, i, 0), SN__DY(net, i), SN__Y(net, i), d[0], d[1]);
}

sn_node sn_op_softmax_xent(sn_graph *g, sn_node logits, sn_node labels, float ls) {
    if (!sn__graph_check(g, logits, "softmax_xent") || !sn__graph_check(g, labels, "softmax_xent"))
        return SN_NO_NODE;
    const sn__node *xn = &g->nodes[logits], *ln = &g->nodes[labels];
    char a[128], b[128];
    if (xn->rank != 2 || xn->dtype != SN_DTYPE_F32 || ln->rank != 1 ||
        ln->dtype != SN_DTYPE_I32 || ln->dims[0] != xn->dims[0])
        return sn__graph_fail(g, SN_ERR_SHAPE, "softmax_xent in '%s': need float32 logits "
                              "(N,C) and int32 labels (N), got %s %s and %s %s", g->scope,
                              sn_dtype_name(xn->dtype), sn__dims_str(xn->rank, xn->dims, a, 128),
                              sn_dtype_name(ln->dtype), sn__dims_str(ln->rank, ln->dims, b, 128));
    if (!(ls >= 0.0f && ls <= 1.0f))
        return sn__graph_fail(g, SN_ERR_INVALID_ARG, "softmax_xent in '%s': label smoothing %g "
                              "outside [0, 1]", g->scope, ls);
    sn_node in[2] = {logits, labels};
    sn_node y = sn__graph_add(g, SN__OP_xent, SN_DTYPE_F32, 0, NULL, 2, in);
    if (y >= 0) g->nodes[y].p.xent.ls = ls;
    return y;
}

sn_status sn__op_xent_fwd(sn_net *net, int i) {
    const int64_t *d = net->dims[net->g->nodes[i].in[0]];
    return SN__CALL(net, xent_fwd, SN__Y(net, i), net->aux[i], SN__X(net, i, 0),
                    (const int32_t *)net->val[net->g->nodes[i].in[1]],
                    net->g->nodes[i].p.xent.ls, d[0], d[1]);
}

sn_status sn__op_xent_bwd(sn_net *net, int i) {
    if (!SN__DX(net, i, 0)) return SN_OK;
    const int64_t *d = net->dims[net->g->nodes[i].in[0]];
    return SN__CALL(net, xent_bwd, SN__DX(net, i, 0), SN__DY(net, i), net->aux[i],
                    (const int32_t *)net->val[net->g->nodes[i].in[1]],
                    net->g->nodes[i].p.xent.ls, d[0], d[1]);
}

sn_node sn_op_l2_loss(sn_graph *g, sn_node w, float scale) {
    if (!sn__graph_check(g, w, "l2_loss")) return SN_NO_NODE;
    if (g->nodes[w].dtype != SN_DTYPE_F32)
        return sn__graph_fail(g, SN_ERR_INVALID_ARG, "l2_loss in '%s': float32 only", g->scope);
    sn_node y = sn__graph_add(g, SN__OP_l2, SN_DTYPE_F32, 0, NULL, 1, &w);
    if (y >= 0) g->nodes[y].p.scale.alpha = scale;
    return y;
}

sn_status sn__op_l2_fwd(sn_net *net, int i) {
    int w = net->g->nodes[i].in[0];
    return SN__CALL(net, l2_fwd, SN__Y(net, i), SN__X(net, i, 0), net->g->nodes[i].p.scale.alpha,
                    (int64_t)net->numel[w]);
}

sn_status sn__op_l2_bwd(sn_net *net, int i) {
    if (!SN__DX(net, i, 0)) return SN_OK;
    int w = net->g->nodes[i].in[0];
    return SN__CALL(net, l2_bwd, SN__DX(net, i, 0), SN__DY(net, i), SN__X(net, i, 0),
                    net->g->nodes[i].p.scale.alpha, (int64_t)net->numel[w]);
}
