/* ops.c: the op table generated from ops.def, and the per-op memory facts the planner
 * needs (saved state, workspace). */
#include <stdio.h>
#include "graph.h"

const sn__opdef sn__ops[SN__OP_COUNT] = {
#define SN_OP(name, bwd_in, bwd_out) \
    [SN__OP_##name] = {#name, sn__op_##name##_fwd, sn__op_##name##_bwd, bwd_in, bwd_out},
#include "ops.def"
#undef SN_OP
};

size_t sn__bn_aux_floats(const sn_net *net, int i);

size_t sn__op_aux_floats(const sn_net *net, int i) {
    const sn__node *n = &net->g->nodes[i];
    switch (n->op) {
    case SN__OP_batch_norm: return sn__bn_aux_floats(net, i);
    case SN__OP_dropout: return n->p.dropout.training ? net->numel[i] : 0;
    case SN__OP_xent: return net->numel[n->in[0]];      /* the softmax of the logits */
    default: return 0;
    }
}

sn_status sn__op_ws_bytes(sn_net *net, int i, size_t *bytes) {
    const sn__node *n = &net->g->nodes[i];
    sn__conv2d_dims cd;
    *bytes = 0;
    switch (n->op) {
    case SN__OP_conv2d:
        sn__conv_dims(net, i, &cd);
        SN_TRY(SN__CALL(net, conv2d_ws, &cd, bytes));
        if (sn__bf16_native(net, i)) {   /* bf16, with room to fall back to float32 */
            size_t b16 = 0;
            SN_TRY(SN__CALL(net, conv2d_ws_bf16, &cd, &b16));
            if (b16 > *bytes) *bytes = b16;
        }
        return SN_OK;
    case SN__OP_dwconv2d:
        sn__conv_dims(net, i, &cd);
        return SN__CALL(net, dwconv2d_ws, &cd, bytes);
    case SN__OP_maxpool: {   /* only its backward uses one */
        if (!net->backward_ok) return SN_OK;
        sn__pool_dims pd;
        sn__pool_geometry(net, i, &pd);
        return SN__CALL(net, maxpool_ws, &pd, bytes);
    }
    default:
        return SN_OK;
    }
}

const char *sn__node_label(const sn_graph *g, sn_node n, char *buf, size_t len) {
    if (n >= 0 && n < g->n_nodes && g->nodes[n].name) return g->nodes[n].name;
    snprintf(buf, len, "%s node #%d", n >= 0 && n < g->n_nodes ? sn__ops[g->nodes[n].op].name : "?",
             (int)n);
    return buf;
}
