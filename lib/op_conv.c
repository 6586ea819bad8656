/* op_conv.c: conv2d, depthwise conv2d and matmul: builders, forward, backward.
 * Shapes: x (N,H,W,C), w (R,S,C,K) or depthwise (R,S,C,M), y (N,P,Q,K). */
#include <stdio.h>
#include "graph.h"

static sn_node conv_build(sn_graph *g, sn__op op, sn_node x, sn_node w, int stride_h,
                          int stride_w, int rate, sn_padding pad, const char *what) {
    if (!sn__graph_check(g, x, what) || !sn__graph_check(g, w, what)) return SN_NO_NODE;
    const sn__node *xn = &g->nodes[x], *wn = &g->nodes[w];
    char a[128], b[128];
    if (xn->rank != 4 || wn->rank != 4 || xn->dtype != SN_DTYPE_F32)
        return sn__graph_fail(g, SN_ERR_SHAPE, "%s in '%s': x must be float32 (N,H,W,C) and "
                              "weights (kh,kw,C,out), got x %s and weights %s", what, g->scope,
                              sn__dims_str(xn->rank, xn->dims, a, 128),
                              sn__dims_str(wn->rank, wn->dims, b, 128));
    if (xn->dims[3] != wn->dims[2])
        return sn__graph_fail(g, SN_ERR_SHAPE, "%s in '%s': x has C=%lld, weights %s expect "
                              "C=%lld", what, g->scope, (long long)xn->dims[3],
                              sn__dims_str(4, wn->dims, b, 128), (long long)wn->dims[2]);
    if (stride_h < 1 || stride_w < 1 || rate < 1 || (rate > 1 && (stride_h > 1 || stride_w > 1)))
        return sn__graph_fail(g, SN_ERR_INVALID_ARG, "%s in '%s': strides %dx%d with rate %d "
                              "(all >= 1, and rate > 1 needs stride 1 as in TF)", what, g->scope,
                              stride_h, stride_w, rate);
    int64_t dims[4], pt, pl;
    if (!sn__tf_padding(xn->dims[1], wn->dims[0], stride_h, rate, pad, &dims[1], &pt) ||
        !sn__tf_padding(xn->dims[2], wn->dims[1], stride_w, rate, pad, &dims[2], &pl))
        return sn__graph_fail(g, SN_ERR_SHAPE, "%s in '%s': VALID %lldx%lld kernel does not fit "
                              "input %s", what, g->scope, (long long)wn->dims[0],
                              (long long)wn->dims[1], sn__dims_str(4, xn->dims, a, 128));
    dims[0] = xn->dims[0];
    dims[3] = op == SN__OP_dwconv2d ? wn->dims[2] * wn->dims[3] : wn->dims[3];
    sn_node in[2] = {x, w};
    sn_node y = sn__graph_add(g, op, SN_DTYPE_F32, 4, dims, 2, in);
    if (y < 0) return y;
    g->nodes[y].p.conv.stride_h = stride_h;
    g->nodes[y].p.conv.stride_w = stride_w;
    g->nodes[y].p.conv.dil_h = g->nodes[y].p.conv.dil_w = rate;
    g->nodes[y].p.conv.pad_top = pt;
    g->nodes[y].p.conv.pad_left = pl;
    return y;
}

sn_node sn_op_conv2d(sn_graph *g, sn_node x, sn_node w, int stride_h, int stride_w, int rate,
                     sn_padding pad) {
    return conv_build(g, SN__OP_conv2d, x, w, stride_h, stride_w, rate, pad, "conv2d");
}

sn_node sn_op_depthwise_conv2d(sn_graph *g, sn_node x, sn_node w, int stride_h, int stride_w,
                               int rate, sn_padding pad) {
    return conv_build(g, SN__OP_dwconv2d, x, w, stride_h, stride_w, rate, pad,
                      "depthwise_conv2d");
}

void sn__conv_dims(const sn_net *net, int i, sn__conv2d_dims *cd) {
    const sn__node *n = &net->g->nodes[i];
    const int64_t *xd = net->dims[n->in[0]], *wd = net->dims[n->in[1]], *yd = net->dims[i];
    cd->N = xd[0]; cd->H = xd[1]; cd->W = xd[2]; cd->C = xd[3];
    cd->R = wd[0]; cd->S = wd[1];
    cd->M = n->op == SN__OP_dwconv2d ? wd[3] : 0;
    cd->K = yd[3]; cd->P = yd[1]; cd->Q = yd[2];
    cd->stride_h = n->p.conv.stride_h; cd->stride_w = n->p.conv.stride_w;
    cd->dil_h = n->p.conv.dil_h; cd->dil_w = n->p.conv.dil_w;
    cd->pad_top = n->p.conv.pad_top; cd->pad_left = n->p.conv.pad_left;
}

/* Forwards of the three ops that can head a fused chain (net.c's plan_fusion): with one,
 * the fused kernel writes the chain's last value. */
sn_status sn__op_conv2d_fwd(sn_net *net, int i) {
    sn__conv2d_dims cd;
    sn__conv_dims(net, i, &cd);
    if (sn__bf16_native(net, i)) {
        const sn_bf16 *x;
        SN_TRY(sn__bf16_input(net, net->g->nodes[i].in[0], &x));
        return SN__CALL(net, conv2d_fwd_bf16, SN__V16(net, i), x, SN__X(net, i, 1), &cd);
    }
    sn__epilogue ep;
    float *y;
    if (sn__fused_epilogue(net, i, &ep, &y))
        return SN__CALL(net, conv2d_fwd_ep, y, SN__X(net, i, 0), SN__X(net, i, 1), &ep, &cd);
    return SN__CALL(net, conv2d_fwd, SN__Y(net, i), SN__X(net, i, 0), SN__X(net, i, 1), &cd);
}

sn_status sn__op_conv2d_bwd(sn_net *net, int i) {
    sn__conv2d_dims cd;
    sn__conv_dims(net, i, &cd);
    if (sn__bf16_native(net, i)) {
        const sn__node *n = &net->g->nodes[i];
        if (SN__DX(net, i, 0))
            SN_TRY(SN__CALL(net, conv2d_bwd_data_bf16, SN__G16(net, n->in[0]), SN__G16(net, i),
                            SN__X(net, i, 1), SN__DX_SET(net, 0) ? 0.0f : 1.0f, &cd));
        if (SN__DX(net, i, 1)) {
            const sn_bf16 *x;
            SN_TRY(sn__bf16_input(net, n->in[0], &x));
            SN_TRY(SN__CALL(net, conv2d_bwd_filter_bf16, SN__DX(net, i, 1), SN__G16(net, i), x,
                            &cd));
        }
        return SN_OK;
    }
    if (SN__DX(net, i, 0))
        SN_TRY(SN__CALL(net, conv2d_bwd_data, SN__DX(net, i, 0), SN__DY(net, i),
                        SN__X(net, i, 1), SN__DX_SET(net, 0) ? 0.0f : 1.0f, &cd));
    if (SN__DX(net, i, 1))
        SN_TRY(SN__CALL(net, conv2d_bwd_filter, SN__DX(net, i, 1), SN__DY(net, i),
                        SN__X(net, i, 0), &cd));
    return SN_OK;
}

sn_status sn__op_dwconv2d_fwd(sn_net *net, int i) {
    sn__conv2d_dims cd;
    sn__conv_dims(net, i, &cd);
    if (sn__bf16_native(net, i))
        return SN__CALL(net, dwconv2d_fwd_bf16, SN__V16(net, i),
                        SN__V16(net, net->g->nodes[i].in[0]), SN__X(net, i, 1), &cd);
    sn__epilogue ep;
    float *y;
    if (sn__fused_epilogue(net, i, &ep, &y))
        return SN__CALL(net, dwconv2d_fwd_ep, y, SN__X(net, i, 0), SN__X(net, i, 1), &ep, &cd);
    return SN__CALL(net, dwconv2d_fwd, SN__Y(net, i), SN__X(net, i, 0), SN__X(net, i, 1), &cd);
}

sn_status sn__op_dwconv2d_bwd(sn_net *net, int i) {
    sn__conv2d_dims cd;
    sn__conv_dims(net, i, &cd);
    if (sn__bf16_native(net, i)) {
        int x = net->g->nodes[i].in[0];
        if (SN__DX(net, i, 0))
            SN_TRY(SN__CALL(net, dwconv2d_bwd_data_bf16, SN__G16(net, x), SN__G16(net, i),
                            SN__X(net, i, 1), &cd));
        if (SN__DX(net, i, 1))
            SN_TRY(SN__CALL(net, dwconv2d_bwd_filter_bf16, SN__DX(net, i, 1), SN__G16(net, i),
                            SN__V16(net, x), &cd));
        return SN_OK;
    }
    if (SN__DX(net, i, 0))
        SN_TRY(SN__CALL(net, dwconv2d_bwd_data, SN__DX(net, i, 0), SN__DY(net, i),
                        SN__X(net, i, 1), &cd));
    if (SN__DX(net, i, 1))
        SN_TRY(SN__CALL(net, dwconv2d_bwd_filter, SN__DX(net, i, 1), SN__DY(net, i),
                        SN__X(net, i, 0), &cd));
    return SN_OK;
}

/* ---- matmul: y (N,out) = x (N,in) @ w (in,out) ------------------------------------------ */

sn_node sn_op_matmul(sn_graph *g, sn_node x, sn_node w) {
    if (!sn__graph_check(g, x, "matmul") || !sn__graph_check(g, w, "matmul")) return SN_NO_NODE;
    const sn__node *xn = &g->nodes[x], *wn = &g->nodes[w];
    char a[128], b[128];
    if (xn->rank != 2 || wn->rank != 2 || xn->dims[1] != wn->dims[0])
        return sn__graph_fail(g, SN_ERR_SHAPE, "matmul in '%s': x %s and weights %s do not "
                              "multiply (need (N,in) and (in,out))", g->scope,
                              sn__dims_str(xn->rank, xn->dims, a, 128),
                              sn__dims_str(wn->rank, wn->dims, b, 128));
    int64_t dims[2] = {xn->dims[0], wn->dims[1]};
    sn_node in[2] = {x, w};
    return sn__graph_add(g, SN__OP_matmul, SN_DTYPE_F32, 2, dims, 2, in);
}

sn_status sn__op_matmul_fwd(sn_net *net, int i) {
    const int64_t *xd = net->dims[net->g->nodes[i].in[0]], *yd = net->dims[i];
    int64_t N = xd[0], in = xd[1], out = yd[1];
    sn__epilogue ep;
    float *y;
    if (sn__fused_epilogue(net, i, &ep, &y))
        return SN__CALL(net, gemm_ep, y, SN__X(net, i, 0), SN__X(net, i, 1), &ep, N, out, in);
    return SN__CALL(net, gemm, 0, 0, N, out, in, 1.0f, SN__X(net, i, 0), in, SN__X(net, i, 1),
                    out, 0.0f, SN__Y(net, i), out);
}

sn_status sn__op_matmul_bwd(sn_net *net, int i) {
    const int64_t *xd = net->dims[net->g->nodes[i].in[0]], *yd = net->dims[i];
    int64_t N = xd[0], in = xd[1], out = yd[1];
    if (SN__DX(net, i, 0))   /* dx (N,in) += dy (N,out) @ w^T */
        SN_TRY(SN__CALL(net, gemm, 0, 1, N, in, out, 1.0f, SN__DY(net, i), out,
                        SN__X(net, i, 1), out, 1.0f, SN__DX(net, i, 0), in));
    if (SN__DX(net, i, 1))   /* dw (in,out) += x^T @ dy */
        SN_TRY(SN__CALL(net, gemm, 1, 0, in, out, N, 1.0f, SN__X(net, i, 0), in,
                        SN__DY(net, i), out, 1.0f, SN__DX(net, i, 1), out));
    return SN_OK;
}
