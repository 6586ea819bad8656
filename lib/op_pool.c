/* op_pool.c: max and average pooling, spatial mean.  x (N,H,W,C), y (N,P,Q,C). */
#include "graph.h"

static sn_node pool_build(sn_graph *g, sn__op op, sn_node x, int kh, int kw, int stride_h,
                          int stride_w, sn_padding pad, const char *what) {
    if (!sn__graph_check(g, x, what)) return SN_NO_NODE;
    const sn__node *xn = &g->nodes[x];
    char a[128];
    if (xn->rank != 4 || xn->dtype != SN_DTYPE_F32)
        return sn__graph_fail(g, SN_ERR_SHAPE, "%s in '%s': x must be float32 (N,H,W,C), got %s",
                              what, g->scope, sn__dims_str(xn->rank, xn->dims, a, 128));
    if (kh < 1 || kw < 1 || stride_h < 1 || stride_w < 1)
        return sn__graph_fail(g, SN_ERR_INVALID_ARG, "%s in '%s': window %dx%d stride %dx%d",
                              what, g->scope, kh, kw, stride_h, stride_w);
    int64_t dims[4], pt, pl;
    if (!sn__tf_padding(xn->dims[1], kh, stride_h, 1, pad, &dims[1], &pt) ||
        !sn__tf_padding(xn->dims[2], kw, stride_w, 1, pad, &dims[2], &pl))
        return sn__graph_fail(g, SN_ERR_SHAPE, "%s in '%s': VALID %dx%d window does not fit %s",
                              what, g->scope, kh, kw, sn__dims_str(4, xn->dims, a, 128));
    dims[0] = xn->dims[0];
    dims[3] = xn->dims[3];
    sn_node y = sn__graph_add(g, op, SN_DTYPE_F32, 4, dims, 1, &x);
    if (y < 0) return y;
    sn__node *n = &g->nodes[y];
    n->p.pool.kh = kh; n->p.pool.kw = kw;
    n->p.pool.stride_h = stride_h; n->p.pool.stride_w = stride_w;
    n->p.pool.pad_top = pt; n->p.pool.pad_left = pl;
    return y;
}

sn_node sn_op_max_pool(sn_graph *g, sn_node x, int kh, int kw, int stride_h, int stride_w,
                       sn_padding pad) {
    return pool_build(g, SN__OP_maxpool, x, kh, kw, stride_h, stride_w, pad, "max_pool");
}

sn_node sn_op_avg_pool(sn_graph *g, sn_node x, int kh, int kw, int stride_h, int stride_w,
                       sn_padding pad) {
    return pool_build(g, SN__OP_avgpool, x, kh, kw, stride_h, stride_w, pad, "avg_pool");
}

void sn__pool_geometry(const sn_net *net, int i, sn__pool_dims *pd) {
    const sn__node *n = &net->g->nodes[i];
    const int64_t *xd = net->dims[n->in[0]], *yd = net->dims[i];
    pd->N = xd[0]; pd->H = xd[1]; pd->W = xd[2]; pd->C = xd[3];
    pd->R = n->p.pool.kh; pd->S = n->p.pool.kw; pd->P = yd[1]; pd->Q = yd[2];
    pd->stride_h = n->p.pool.stride_h; pd->stride_w = n->p.pool.stride_w;
    pd->pad_top = n->p.pool.pad_top; pd->pad_left = n->p.pool.pad_left;
}

sn_status sn__op_maxpool_fwd(sn_net *net, int i) {
    sn__pool_dims pd;
    sn__pool_geometry(net, i, &pd);
    if (sn__bf16_native(net, i))
        return SN__CALL(net, maxpool_fwd_bf16, SN__V16(net, i),
                        SN__V16(net, net->g->nodes[i].in[0]), &pd);
    return SN__CALL(net, maxpool_fwd, SN__Y(net, i), SN__X(net, i, 0), &pd);
}

sn_status sn__op_maxpool_bwd(sn_net *net, int i) {
    if (!SN__DX(net, i, 0)) return SN_OK;
    sn__pool_dims pd;
    sn__pool_geometry(net, i, &pd);
    if (sn__bf16_native(net, i)) {
        int x = net->g->nodes[i].in[0];
        return SN__CALL(net, maxpool_bwd_bf16, SN__G16(net, x), SN__G16(net, i), SN__V16(net, x),
                        &pd);
    }
    return SN__CALL(net, maxpool_bwd, SN__DX(net, i, 0), SN__DY(net, i), SN__X(net, i, 0), &pd);
}

sn_status sn__op_avgpool_fwd(sn_net *net, int i) {
    sn__pool_dims pd;
    sn__pool_geometry(net, i, &pd);
    if (sn__bf16_native(net, i))
        return SN__CALL(net, avgpool_fwd_bf16, SN__V16(net, i),
                        SN__V16(net, net->g->nodes[i].in[0]), &pd);
    return SN__CALL(net, avgpool_fwd, SN__Y(net, i), SN__X(net, i, 0), &pd);
}

sn_status sn__op_avgpool_bwd(sn_net *net, int i) {
    if (!SN__DX(net, i, 0)) return SN_OK;
    sn__pool_dims pd;
    sn__pool_geometry(net, i, &pd);
    if (sn__bf16_native(net, i))
        return SN__CALL(net, avgpool_bwd_bf16, SN__G16(net, net->g->nodes[i].in[0]),
                        SN__G16(net, i), &pd);
    return SN__CALL(net, avgpool_bwd, SN__DX(net, i, 0), SN__DY(net, i), &pd);
}

/* ---- spatial mean ----------------------------------------------------------------------- */

sn_node sn_op_spatial_mean(sn_graph *g, sn_node x, int keepdims) {
    if (!sn__graph_check(g, x, "spatial_mean")) return SN_NO_NODE;
    const sn__node *xn = &g->nodes[x];
    char a[128];
    if (xn->rank != 4)
        return sn__graph_fail(g, SN_ERR_SHAPE, "spatial_mean in '%s': x must be (N,H,W,C), "
                              "got %s", g->scope, sn__dims_str(xn->rank, xn->dims, a, 128));
    int64_t dims[4] = {xn->dims[0], 1, 1, xn->dims[3]};
    if (!keepdims) dims[1] = xn->dims[3];
    return sn__graph_add(g, SN__OP_mean_hw, SN_DTYPE_F32, keepdims ? 4 : 2, dims, 1, &x);
}

sn_status sn__op_mean_hw_fwd(sn_net *net, int i) {
    const int64_t *xd = net->dims[net->g->nodes[i].in[0]];
    return SN__CALL(net, mean_hw_fwd, SN__Y(net, i), SN__X(net, i, 0), xd[0], xd[1] * xd[2],
                    xd[3]);
}

sn_status sn__op_mean_hw_bwd(sn_net *net, int i) {
    if (!SN__DX(net, i, 0)) return SN_OK;
    const int64_t *xd = net->dims[net->g->nodes[i].in[0]];
    return SN__CALL(net, mean_hw_bwd, SN__DX(net, i, 0), SN__DY(net, i), xd[0], xd[1] * xd[2],
                    xd[3]);
}
