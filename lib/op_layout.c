/* op_layout.c: inputs, variables, concat, pad, reshape (flatten, squeeze). */
#include <stdio.h>
#include "graph.h"

/* Inputs and variables hold their values; the net writes them. */
sn_status sn__op_input_fwd(sn_net *net, int i) { (void)net; (void)i; return SN_OK; }
sn_status sn__op_input_bwd(sn_net *net, int i) { (void)net; (void)i; return SN_OK; }
sn_status sn__op_variable_fwd(sn_net *net, int i) { (void)net; (void)i; return SN_OK; }
sn_status sn__op_variable_bwd(sn_net *net, int i) { (void)net; (void)i; return SN_OK; }

/* ---- concat along the last axis ------------------------------------------------------------- */

sn_node sn_op_concat(sn_graph *g, int n, const sn_node *xs) {
    if (g->err != SN_OK) return SN_NO_NODE;
    if (n < 1) return sn__graph_fail(g, SN_ERR_INVALID_ARG, "concat in '%s': no inputs", g->scope);
    for (int j = 0; j < n; j++)
        if (!sn__graph_check(g, xs[j], "concat")) return SN_NO_NODE;
    const sn__node *x0 = &g->nodes[xs[0]];
    int64_t dims[SN_MAX_RANK];
    for (int d = 0; d < x0->rank; d++) dims[d] = x0->dims[d];
    if (x0->rank < 1) return sn__graph_fail(g, SN_ERR_SHAPE, "concat in '%s': scalar input", g->scope);
    int last = x0->rank - 1;
    dims[last] = 0;
    for (int j = 0; j < n; j++) {
        const sn__node *xj = &g->nodes[xs[j]];
        bool ok = xj->rank == x0->rank && xj->dtype == SN_DTYPE_F32;
        for (int d = 0; ok && d < last; d++) ok = xj->dims[d] == x0->dims[d];
        if (!ok) {
            char a[128], b[128];
            return sn__graph_fail(g, SN_ERR_SHAPE, "concat in '%s': input %d has shape %s, "
                                  "input 0 has %s (only the last axis may differ)", g->scope, j,
                                  sn__dims_str(xj->rank, xj->dims, a, 128),
                                  sn__dims_str(x0->rank, x0->dims, b, 128));
        }
        dims[last] += xj->dims[last];
    }
    return sn__graph_add(g, SN__OP_concat, SN_DTYPE_F32, x0->rank, dims, n, xs);
}

sn_status sn__op_concat_fwd(sn_net *net, int i) {
    const sn__node *n = &net->g->nodes[i];
    int last = n->rank - 1;
    int64_t Cy = net->dims[i][last], rows = (int64_t)net->numel[i] / (Cy ? Cy : 1), off = 0;
    for (int j = 0; j < n->n_in; j++) {
        int64_t Cx = net->dims[n->in[j]][last];
        if (sn__bf16_native(net, i))
            SN_TRY(SN__CALL(net, concat_fwd_bf16, SN__V16(net, i), SN__V16(net, n->in[j]), rows,
                            Cx, Cy, off));
        else
            SN_TRY(SN__CALL(net, concat_fwd, SN__Y(net, i), SN__X(net, i, j), rows, Cx, Cy,
                            off));
        off += Cx;
    }
    return SN_OK;
}

sn_status sn__op_concat_bwd(sn_net *net, int i) {
    const sn__node *n = &net->g->nodes[i];
    int last = n->rank - 1;
    int64_t Cy = net->dims[i][last], rows = (int64_t)net->numel[i] / (Cy ? Cy : 1), off = 0;
    for (int j = 0; j < n->n_in; j++) {
        int64_t Cx = net->dims[n->in[j]][last];
        if (SN__DX(net, i, j) && sn__bf16_native(net, i))
            SN_TRY(SN__CALL(net, concat_bwd_bf16, SN__G16(net, n->in[j]), SN__G16(net, i), rows,
                            Cx, Cy, off));
        else if (SN__DX(net, i, j))
            SN_TRY(SN__CALL(net, concat_bwd, SN__DX(net, i, j), SN__DY(net, i), rows, Cx, Cy,
                            off));
        off += Cx;
    }
    return SN_OK;
}

/* ---- pad ------------------------------------------------------------------------------------- */

sn_node sn_op_pad(sn_graph *g, sn_node x, int top, int bottom, int left, int right) {
    if (!sn__graph_check(g, x, "pad")) return SN_NO_NODE;
    const sn__node *xn = &g->nodes[x];
    if (xn->rank != 4 || top < 0 || bottom < 0 || left < 0 || right < 0)
        return sn__graph_fail(g, SN_ERR_INVALID_ARG, "pad in '%s': needs (N,H,W,C) and "
                              "paddings >= 0", g->scope);
    int64_t dims[4] = {xn->dims[0], xn->dims[1] + top + bottom, xn->dims[2] + left + right,
                       xn->dims[3]};
    sn_node y = sn__graph_add(g, SN__OP_pad, SN_DTYPE_F32, 4, dims, 1, &x);
    if (y < 0) return y;
    g->nodes[y].p.pad.top = top; g->nodes[y].p.pad.bottom = bottom;
    g->nodes[y].p.pad.left = left; g->nodes[y].p.pad.right = right;
    return y;
}

sn_status sn__op_pad_fwd(sn_net *net, int i) {
    const sn__node *n = &net->g->nodes[i];
    const int64_t *xd = net->dims[n->in[0]];
    if (sn__bf16_native(net, i))
        return SN__CALL(net, pad_fwd_bf16, SN__V16(net, i), SN__V16(net, n->in[0]), xd[0], xd[1],
                        xd[2], xd[3], n->p.pad.top, n->p.pad.bottom, n->p.pad.left,
                        n->p.pad.right);
    return SN__CALL(net, pad_fwd, SN__Y(net, i), SN__X(net, i, 0), xd[0], xd[1], xd[2], xd[3],
                    n->p.pad.top, n->p.pad.bottom, n->p.pad.left, n->p.pad.right);
}

sn_status sn__op_pad_bwd(sn_net *net, int i) {
    if (!SN__DX(net, i, 0)) return SN_OK;
    const sn__node *n = &net->g->nodes[i];
    const int64_t *xd = net->dims[n->in[0]];
    if (sn__bf16_native(net, i))
        return SN__CALL(net, pad_bwd_bf16, SN__G16(net, n->in[0]), SN__G16(net, i), xd[0],
                        xd[1], xd[2], xd[3], n->p.pad.top, n->p.pad.bottom, n->p.pad.left,
                        n->p.pad.right);
    return SN__CALL(net, pad_bwd, SN__DX(net, i, 0), SN__DY(net, i), xd[0], xd[1], xd[2], xd[3],
                    n->p.pad.top, n->p.pad.bottom, n->p.pad.left, n->p.pad.right);
}

/* ---- reshape ------------------------------------------------------------------------------ */

sn_node sn_op_reshape(sn_graph *g, sn_node x, int rank, const int64_t *dims) {
    if (!sn__graph_check(g, x, "reshape")) return SN_NO_NODE;
    const sn__node *xn = &g->nodes[x];
    /* Element counts per batch item must agree (the batch dim is unknown until compile). */
    int64_t a = 1, b = 1;
    bool xb = xn->rank > 0 && xn->dims[0] == SN_BATCH, yb = rank > 0 && dims[0] == SN_BATCH;
    for (int d = xb ? 1 : 0; d < xn->rank; d++) a *= xn->dims[d];
    for (int d = yb ? 1 : 0; d < rank; d++) b *= dims[d];
    if (xb != yb || a != b) {
        char s1[128], s2[128];
        return sn__graph_fail(g, SN_ERR_SHAPE, "reshape in '%s': %s into %s changes the element "
                              "count", g->scope, sn__dims_str(xn->rank, xn->dims, s1, 128),
                              sn__dims_str(rank, dims, s2, 128));
    }
    return sn__graph_add(g, SN__OP_reshape, xn->dtype, rank, dims, 1, &x);
}

sn_node sn_op_flatten(sn_graph *g, sn_node x) {
    if (!sn__graph_check(g, x, "flatten")) return SN_NO_NODE;
    const sn__node *xn = &g->nodes[x];
    int64_t dims[2] = {xn->rank ? xn->dims[0] : 1, 1};
    for (int d = 1; d < xn->rank; d++) dims[1] *= xn->dims[d];
    return sn_op_reshape(g, x, 2, dims);
}

sn_node sn_op_squeeze(sn_graph *g, sn_node x) {
    if (!sn__graph_check(g, x, "squeeze")) return SN_NO_NODE;
    const sn__node *xn = &g->nodes[x];
    if (xn->rank != 4 || xn->dims[1] != 1 || xn->dims[2] != 1) {
        char s[128];
        return sn__graph_fail(g, SN_ERR_SHAPE, "squeeze in '%s': spatial dims of %s are not 1x1 "
                              "(the input is larger than the net's default image size?)",
                              g->scope, sn__dims_str(xn->rank, xn->dims, s, 128));
    }
    int64_t dims[2] = {xn->dims[0], xn->dims[3]};
    return sn_op_reshape(g, x, 2, dims);
}

sn_status sn__op_reshape_fwd(sn_net *net, int i) {
    return SN__CALL(net, copy, SN__Y(net, i), SN__X(net, i, 0),
                    net->numel[i] * sn_dtype_size(net->g->nodes[i].dtype));
}

sn_status sn__op_reshape_bwd(sn_net *net, int i) {
    if (!SN__DX(net, i, 0)) return SN_OK;
    return sn__grad_pass(net, i, 0, (int64_t)net->numel[i]);
}
