/* op_eltwise.c: bias_add, relu, relu6, hard_swish, hard_sigmoid, channel_gate, dropout, add,
 * scale, add_n. */
#include <stdio.h>
#include "graph.h"

static bool same_shape(const sn__node *a, const sn__node *b) {
    if (a->rank != b->rank) return false;
    for (int d = 0; d < a->rank; d++)
        if (a->dims[d] != b->dims[d]) return false;
    return true;
}

static sn_node unary(sn_graph *g, sn__op op, sn_node x, const char *what) {
    if (!sn__graph_check(g, x, what)) return SN_NO_NODE;
    const sn__node *xn = &g->nodes[x];
    if (xn->dtype != SN_DTYPE_F32)
        return sn__graph_fail(g, SN_ERR_INVALID_ARG, "%s in '%s': x must be float32", what,
                              g->scope);
    return sn__graph_add(g, op, SN_DTYPE_F32, xn->rank, xn->dims, 1, &x);
}

/* ---- bias_add ------------------------------------------------------------------------------ */

sn_node sn_op_bias_add(sn_graph *g, sn_node x, sn_node b) {
    if (!sn__graph_check(g, x, "bias_add") || !sn__graph_check(g, b, "bias_add"))
        return SN_NO_NODE;
    const sn__node *xn = &g->nodes[x], *bn = &g->nodes[b];
    if (xn->rank < 1 || bn->rank != 1 || bn->dims[0] != xn->dims[xn->rank - 1])
        return sn__graph_fail(g, SN_ERR_SHAPE, "bias_add in '%s': bias has %lld elements, x "
                              "has %lld channels", g->scope,
                              (long long)(bn->rank ? bn->dims[0] : 0),
                              (long long)(xn->rank ? xn->dims[xn->rank - 1] : 0));
    sn_node in[2] = {x, b};
    return sn__graph_add(g, SN__OP_bias_add, SN_DTYPE_F32, xn->rank, xn->dims, 2, in);
}

static int64_t channels(const sn_net *net, int i) {
    return net->dims[i][net->g->nodes[i].rank - 1];
}

/* In a training net a bias_add may head a fused chain (net.c's plan_fusion): its forward
 * then writes the chain's tail, act(x + b [+ residual]), and its backward takes the tail's
 * gradient down to x, b and the residual in one pass. */
sn_status sn__op_bias_add_fwd(sn_net *net, int i) {
    int64_t C = channels(net, i), rows = (int64_t)net->numel[i] / C;
    sn__chain ch;
    if (sn__bf16_native(net, i)) {      /* bf16: one kernel, fused or not */
        bool fused = sn__fused_chain(net, i, &ch);
        return SN__CALL(net, bias_fwd_ep_bf16, fused ? (sn_bf16 *)ch.y : SN__V16(net, i),
                        SN__V16(net, net->g->nodes[i].in[0]), SN__X(net, i, 1),
                        fused ? (const sn_bf16 *)ch.residual : NULL,
                        fused ? ch.act : SN__ACT_NONE, rows, C);
    }
    if (sn__fused_chain(net, i, &ch))
        return SN__CALL(net, bias_fwd_ep, ch.y, SN__X(net, i, 0), SN__X(net, i, 1),
                        ch.residual, ch.act, rows, C);
    return SN__CALL(net, bias_fwd, SN__Y(net, i), SN__X(net, i, 0), SN__X(net, i, 1), rows, C);
}

sn_status sn__grad_pass(sn_net *net, int i, int k, int64_t n) {
    if (SN__DX_SET(net, k))
        return SN__CALL(net, copy, SN__DX(net, i, k), SN__DY(net, i), (size_t)n * sizeof(float));
    return SN__CALL(net, accum, SN__DX(net, i, k), SN__DY(net, i), 1.0f, n);
}

sn_status sn__op_bias_add_bwd(sn_net *net, int i) {
    int64_t C = channels(net, i), n = (int64_t)net->numel[i];
    sn__chain ch;
    if (sn__bf16_native(net, i)) {      /* dx, dy, y, dres bf16; db float32 */
        bool fused = sn__fused_chain(net, i, &ch);
        sn_bf16 *dx = SN__DX(net, i, 0) ? SN__G16(net, net->g->nodes[i].in[0]) : NULL;
        sn_bf16 *dres = fused ? (sn_bf16 *)(void *)ch.dres : NULL;
        float *db = SN__DX(net, i, 1);
        if (!dx && !db && !dres) return SN_OK;
        unsigned set = (SN__DX_SET(net, 0) ? 1u : 0u) | (SN__DRES_SET(net) ? 2u : 0u);
        return SN__CALL(net, bias_bwd_ep_bf16, dx, db, dres,
                        fused ? (const sn_bf16 *)(void *)ch.dy : SN__G16(net, i),
                        fused ? (const sn_bf16 *)ch.y : SN__V16(net, i),
                        fused ? ch.act : SN__ACT_NONE, set, n / C, C);
    }
    if (sn__fused_chain(net, i, &ch)) {
        float *dx = SN__DX(net, i, 0), *db = SN__DX(net, i, 1);
        if (!dx && !db && !ch.dres) return SN_OK;
        unsigned set = (SN__DX_SET(net, 0) ? 1u : 0u) | (SN__DRES_SET(net) ? 2u : 0u);
        return SN__CALL(net, bias_bwd_ep, dx, db, ch.dres, ch.dy, ch.y, ch.act, set, n / C, C);
    }
    if (SN__DX(net, i, 0)) SN_TRY(sn__grad_pass(net, i, 0, n));
    if (SN__DX(net, i, 1))
        SN_TRY(SN__CALL(net, bias_bwd, SN__DX(net, i, 1), SN__DY(net, i), n / C, C));
    return SN_OK;
}

/* ---- activations ----------------------------------------------------------------------------- */

sn_node sn_op_relu(sn_graph *g, sn_node x) { return unary(g, SN__OP_relu, x, "relu"); }
sn_node sn_op_relu6(sn_graph *g, sn_node x) { return unary(g, SN__OP_relu6, x, "relu6"); }

sn_status sn__op_relu_fwd(sn_net *net, int i) {
    return SN__CALL(net, relu_fwd, SN__Y(net, i), SN__X(net, i, 0), (int64_t)net->numel[i]);
}
sn_status sn__op_relu_bwd(sn_net *net, int i) {
    if (!SN__DX(net, i, 0)) return SN_OK;
    return SN__CALL(net, relu_bwd, SN__DX(net, i, 0), SN__DY(net, i), SN__Y(net, i),
                    (int64_t)net->numel[i]);
}
sn_status sn__op_relu6_fwd(sn_net *net, int i) {
    return SN__CALL(net, relu6_fwd, SN__Y(net, i), SN__X(net, i, 0), (int64_t)net->numel[i]);
}
sn_status sn__op_relu6_bwd(sn_net *net, int i) {
    if (!SN__DX(net, i, 0)) return SN_OK;
    return SN__CALL(net, relu6_bwd, SN__DX(net, i, 0), SN__DY(net, i), SN__Y(net, i),
                    (int64_t)net->numel[i]);
}

/* MobileNet v3's: their backwards read the input (ops.def), the kernels' gradients being
 * TF's of x * relu6(x + 3) / 6 and relu6(x + 3) * 0.16667 (kernels.def). */
sn_node sn_op_hard_swish(sn_graph *g, sn_node x) {
    return unary(g, SN__OP_hard_swish, x, "hard_swish");
}
sn_node sn_op_hard_sigmoid(sn_graph *g, sn_node x) {
    return unary(g, SN__OP_hard_sigmoid, x, "hard_sigmoid");
}

sn_status sn__op_hard_swish_fwd(sn_net *net, int i) {
    return SN__CALL(net, hard_swish_fwd, SN__Y(net, i), SN__X(net, i, 0),
                    (int64_t)net->numel[i]);
}
sn_status sn__op_hard_swish_bwd(sn_net *net, int i) {
    if (!SN__DX(net, i, 0)) return SN_OK;
    return SN__CALL(net, hard_swish_bwd, SN__DX(net, i, 0), SN__DY(net, i), SN__X(net, i, 0),
                    (int64_t)net->numel[i]);
}
sn_status sn__op_hard_sigmoid_fwd(sn_net *net, int i) {
    return SN__CALL(net, hard_sigmoid_fwd, SN__Y(net, i), SN__X(net, i, 0),
                    (int64_t)net->numel[i]);
}
sn_status sn__op_hard_sigmoid_bwd(sn_net *net, int i) {
    if (!SN__DX(net, i, 0)) return SN_OK;
    return SN__CALL(net, hard_sigmoid_bwd, SN__DX(net, i, 0), SN__DY(net, i),
                    SN__X(net, i, 0), (int64_t)net->numel[i]);
}

/* ---- channel_gate: the squeeze-excite product ------------------------------------------------ */

sn_node sn_op_channel_gate(sn_graph *g, sn_node x, sn_node gate) {
    if (!sn__graph_check(g, x, "channel_gate") || !sn__graph_check(g, gate, "channel_gate"))
        return SN_NO_NODE;
    const sn__node *xn = &g->nodes[x], *sn = &g->nodes[gate];
    char s1[128], s2[128];
    if (xn->rank != 4 || sn->rank != 4 || sn->dims[0] != xn->dims[0] || sn->dims[1] != 1 ||
        sn->dims[2] != 1 || sn->dims[3] != xn->dims[3] || xn->dtype != SN_DTYPE_F32 ||
        sn->dtype != SN_DTYPE_F32)
        return sn__graph_fail(g, SN_ERR_SHAPE, "channel_gate in '%s': x %s and gate %s: want "
                              "float32 (N,H,W,C) and (N,1,1,C)", g->scope,
                              sn__dims_str(xn->rank, xn->dims, s1, 128),
                              sn__dims_str(sn->rank, sn->dims, s2, 128));
    sn_node in[2] = {x, gate};
    return sn__graph_add(g, SN__OP_channel_gate, SN_DTYPE_F32, 4, xn->dims, 2, in);
}

static void gate_dims(const sn_net *net, int i, int64_t *N, int64_t *HW, int64_t *C) {
    *N = net->dims[i][0];
    *HW = net->dims[i][1] * net->dims[i][2];
    *C = net->dims[i][3];
}

sn_status sn__op_channel_gate_fwd(sn_net *net, int i) {
    int64_t N, HW, C;
    gate_dims(net, i, &N, &HW, &C);
    return SN__CALL(net, channel_gate_fwd, SN__Y(net, i), SN__X(net, i, 0), SN__X(net, i, 1),
                    N, HW, C);
}

sn_status sn__op_channel_gate_bwd(sn_net *net, int i) {
    float *dx = SN__DX(net, i, 0), *ds = SN__DX(net, i, 1);
    if (!dx && !ds) return SN_OK;
    int64_t N, HW, C;
    gate_dims(net, i, &N, &HW, &C);
    return SN__CALL(net, channel_gate_bwd, dx, ds, SN__DY(net, i), SN__X(net, i, 0),
                    SN__X(net, i, 1), N, HW, C);
}

/* ---- dropout --------------------------------------------------------------------------------- */

sn_node sn_op_dropout(sn_graph *g, sn_node x, float keep_prob, int training) {
    if (!(keep_prob > 0.0f && keep_prob <= 1.0f))
        return sn__graph_fail(g, SN_ERR_INVALID_ARG, "dropout in '%s': keep_prob %g outside "
                              "(0, 1]", g->scope, keep_prob);
    sn_node y = unary(g, SN__OP_dropout, x, "dropout");
    if (y < 0) return y;
    g->nodes[y].p.dropout.keep = keep_prob;
    g->nodes[y].p.dropout.training = training && keep_prob < 1.0f;
    return y;
}

static uint64_t dropout_seed(const sn_net *net, int i) {
    /* A distinct stream per (context seed, node, step): resuming at step s redraws the
     * masks step s drew the first time. */
    uint64_t h = net->ctx->p.seed * 0x9E3779B97F4A7C15ull;
    h ^= (uint64_t)i * 0xBF58476D1CE4E5B9ull;
    h ^= (uint64_t)net->step * 0x94D049BB133111EBull;
    return h;
}

sn_status sn__op_dropout_fwd(sn_net *net, int i) {
    const sn__node *n = &net->g->nodes[i];
    int64_t cnt = (int64_t)net->numel[i];
    if (!n->p.dropout.training)
        return SN__CALL(net, copy, SN__Y(net, i), SN__X(net, i, 0), (size_t)cnt * sizeof(float));
    /* a data-parallel rank's examples are examples offset.. of the global batch: the masks
     * are theirs there */
    uint64_t first = (uint64_t)net->example_offset * ((uint64_t)cnt / (uint64_t)net->batch);
    return SN__CALL(net, dropout_fwd, SN__Y(net, i), net->aux[i], SN__X(net, i, 0),
                    n->p.dropout.keep, dropout_seed(net, i), first, cnt);
}

sn_status sn__op_dropout_bwd(sn_net *net, int i) {
    if (!SN__DX(net, i, 0)) return SN_OK;
    int64_t cnt = (int64_t)net->numel[i];
    if (!net->g->nodes[i].p.dropout.training)
        return SN__CALL(net, accum, SN__DX(net, i, 0), SN__DY(net, i), 1.0f, cnt);
    return SN__CALL(net, dropout_bwd, SN__DX(net, i, 0), SN__DY(net, i), net->aux[i], cnt);
}

/* ---- add, scale, add_n ---------------------------------------------------------------------- */

sn_node sn_op_add(sn_graph *g, sn_node a, sn_node b) {
    if (!sn__graph_check(g, a, "add") || !sn__graph_check(g, b, "add")) return SN_NO_NODE;
    const sn__node *an = &g->nodes[a], *bn = &g->nodes[b];
    char s1[128], s2[128];
    if (!same_shape(an, bn) || an->dtype != SN_DTYPE_F32 || bn->dtype != SN_DTYPE_F32)
        return sn__graph_fail(g, SN_ERR_SHAPE, "add in '%s': shapes %s and %s differ", g->scope,
                              sn__dims_str(an->rank, an->dims, s1, 128),
                              sn__dims_str(bn->rank, bn->dims, s2, 128));
    sn_node in[2] = {a, b};
    return sn__graph_add(g, SN__OP_add, SN_DTYPE_F32, an->rank, an->dims, 2, in);
}

sn_status sn__op_add_fwd(sn_net *net, int i) {
    return SN__CALL(net, add_fwd, SN__Y(net, i), SN__X(net, i, 0), SN__X(net, i, 1),
                    (int64_t)net->numel[i]);
}

sn_status sn__op_add_bwd(sn_net *net, int i) {
    for (int j = 0; j < 2; j++)
        if (SN__DX(net, i, j)) SN_TRY(sn__grad_pass(net, i, j, (int64_t)net->numel[i]));
    return SN_OK;
}

sn_node sn_op_scale(sn_graph *g, sn_node x, float alpha) {
    sn_node y = unary(g, SN__OP_scale, x, "scale");
    if (y >= 0) g->nodes[y].p.scale.alpha = alpha;
    return y;
}

sn_status sn__op_scale_fwd(sn_net *net, int i) {
    return SN__CALL(net, scale_fwd, SN__Y(net, i), SN__X(net, i, 0),
                    net->g->nodes[i].p.scale.alpha, (int64_t)net->numel[i]);
}

sn_status sn__op_scale_bwd(sn_net *net, int i) {
    if (!SN__DX(net, i, 0)) return SN_OK;
    return SN__CALL(net, accum, SN__DX(net, i, 0), SN__DY(net, i),
                    net->g->nodes[i].p.scale.alpha, (int64_t)net->numel[i]);
}

sn_node sn_op_add_n(sn_graph *g, int n, const sn_node *xs) {
    if (g->err != SN_OK) return SN_NO_NODE;
    if (n < 1) return sn__graph_fail(g, SN_ERR_INVALID_ARG, "add_n in '%s': no inputs", g->scope);
    for (int j = 0; j < n; j++) {
        if (!sn__graph_check(g, xs[j], "add_n")) return SN_NO_NODE;
        const sn__node *xn = &g->nodes[xs[j]];
        if (xn->rank != 0)
            return sn__graph_fail(g, SN_ERR_SHAPE, "add_n in '%s': input %d is not a scalar",
                                  g->scope, j);
    }
    return sn__graph_add(g, SN__OP_add_n, SN_DTYPE_F32, 0, NULL, n, xs);
}

sn_status sn__op_add_n_fwd(sn_net *net, int i) {
    const sn__node *n = &net->g->nodes[i];
    SN_TRY(SN__CALL(net, copy, SN__Y(net, i), SN__X(net, i, 0), sizeof(float)));
    for (int j = 1; j < n->n_in; j++)
        SN_TRY(SN__CALL(net, accum, SN__Y(net, i), SN__X(net, i, j), 1.0f, 1));
    return SN_OK;
}

sn_status sn__op_add_n_bwd(sn_net *net, int i) {
    const sn__node *n = &net->g->nodes[i];
    for (int j = 0; j < n->n_in; j++)
        if (SN__DX(net, i, j)) SN_TRY(SN__CALL(net, accum, SN__DX(net, i, j), SN__DY(net, i), 1.0f, 1));
    return SN_OK;
}
