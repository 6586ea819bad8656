/* net.c: compiling a graph into a net (shapes, memory plan, variable initialization) and
 * running it: forward in node order, backward in reverse, gradients accumulated.
 *
 * Memory: parameters and their gradients live in one contiguous block each (one
 * all-reduce moves every gradient).  Activations, gradients of activations and the ops'
 * saved state live in one arena; each buffer has a live interval on a timeline where the
 * forward pass of node i is time i and its backward time 2n-1-i, and buffers whose
 * intervals do not overlap share memory (greedy best-offset placement, largest first). */
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <time.h>
#include "graph.h"

#define ALIGN 256

static size_t align_up(size_t b) { return (b + ALIGN - 1) / ALIGN * ALIGN; }

sn_compile_params sn_compile_params_default(void) {
    sn_compile_params p = {0};
    p.batch_size = 1;
    p.backward = 1;
    p.fuse = 1;
    p.precision = SN_PRECISION_FP32;
    return p;
}

/* ---- the liveness planner ------------------------------------------------------------------ */

typedef struct plan_buf {
    size_t bytes, off;
    int start, end;     /* inclusive live interval on the 2n timeline */
    void **slot;        /* where the planned pointer goes */
} plan_buf;

static int by_size_desc(const void *a, const void *b) {
    const plan_buf *x = *(plan_buf *const *)a, *y = *(plan_buf *const *)b;
    if (x->bytes != y->bytes) return x->bytes < y->bytes ? 1 : -1;
    return x->start - y->start;
}

/* Places every buffer at an offset such that buffers live at the same time never overlap;
 * returns the arena size.  O(B^2), fine for the few thousand buffers of the largest nets. */
static sn_status plan(sn_ctx *ctx, plan_buf *b, int nb, size_t *total) {
    plan_buf **order = malloc((size_t)nb * sizeof *order);
    plan_buf **placed = malloc((size_t)nb * sizeof *placed);   /* sorted by offset */
    if (nb && (!order || !placed)) {
        free(order);
        free(placed);
        return sn__fail(ctx, SN_ERR_NOMEM, "compile: out of memory planning the arena");
    }
    for (int i = 0; i < nb; i++) order[i] = &b[i];
    if (nb > 1) qsort(order, (size_t)nb, sizeof *order, by_size_desc);
    int np = 0;
    size_t top = 0;
    for (int i = 0; i < nb; i++) {
        plan_buf *x = order[i];
        size_t off = 0;
        for (int j = 0; j < np; j++) {
            plan_buf *p = placed[j];
            if (p->end < x->start || p->start > x->end) continue;   /* not live together */
            if (off + x->bytes <= p->off) break;                     /* fits in the gap */
            if (p->off + p->bytes > off) off = p->off + p->bytes;
        }
        x->off = off;
        if (off + x->bytes > top) top = off + x->bytes;
        int pos = np;
        while (pos > 0 && placed[pos - 1]->off > off) {
            placed[pos] = placed[pos - 1];
            pos--;
        }
        placed[pos] = x;
        np++;
    }
    free(order);
    free(placed);
    *total = top;
    return SN_OK;
}

/* ---- compile ------------------------------------------------------------------------------- */

static sn_status net_alloc_arrays(sn_net *net) {
    int n = net->n;
    net->dims = calloc((size_t)n, sizeof *net->dims);
    net->numel = calloc((size_t)n, sizeof *net->numel);
    net->val = calloc((size_t)n, sizeof *net->val);
    net->grad = calloc((size_t)n, sizeof *net->grad);
    net->aux = calloc((size_t)n, sizeof *net->aux);
    net->aux_floats = calloc((size_t)n, sizeof *net->aux_floats);
    net->needs_grad = calloc((size_t)n, sizeof *net->needs_grad);
    net->keep = calloc((size_t)n, sizeof *net->keep);
    net->first_writer = calloc((size_t)n, sizeof *net->first_writer);
    if (n && (!net->dims || !net->numel || !net->val || !net->grad || !net->aux ||
              !net->aux_floats || !net->needs_grad || !net->keep || !net->first_writer))
        return sn__fail(net->ctx, SN_ERR_NOMEM, "compile: out of memory");
    return SN_OK;
}

static sn_status resolve_shapes(sn_net *net) {
    const sn_graph *g = net->g;
    for (int i = 0; i < net->n; i++) {
        const sn__node *nd = &g->nodes[i];
        for (int d = 0; d < nd->rank; d++)
            net->dims[i][d] = nd->dims[d] == SN_BATCH ? net->batch : nd->dims[d];
        size_t cnt;
        if (!sn__numel(nd->rank, net->dims[i], &cnt) || cnt > ((size_t)1 << 40)) {
            char buf[64], s[128];
            return sn__fail(net->ctx, SN_ERR_SHAPE, "compile: %s has shape %s, too large at "
                            "batch %lld", sn__node_label(g, i, buf, sizeof buf),
                            sn__dims_str(nd->rank, net->dims[i], s, sizeof s),
                            (long long)net->batch);
        }
        net->numel[i] = cnt;
    }
    return SN_OK;
}

static bool is_leaf(const sn__node *nd) {
    return nd->op == SN__OP_input || nd->op == SN__OP_variable;
}

/* Persistent blocks: parameters, their gradients (trainable variables), inputs. */
static sn_status alloc_persistent(sn_net *net) {
    const sn_graph *g = net->g;
    size_t pbytes = 0, gbytes = 0, ibytes = 0;
    for (int i = 0; i < net->n; i++) {
        const sn__node *nd = &g->nodes[i];
        size_t b = align_up(net->numel[i] * sn_dtype_size(nd->dtype));
        if (nd->op == SN__OP_variable) {
            pbytes += b;
            if (net->needs_grad[i]) gbytes += b;
        } else if (nd->op == SN__OP_input) {
            ibytes += b;
        }
    }
    SN_TRY(SN__CALL(net, alloc, &net->params, pbytes));
    SN_TRY(SN__CALL(net, alloc, &net->grads, gbytes));
    SN_TRY(SN__CALL(net, alloc, &net->inputs, ibytes));
    net->mem.params = pbytes;
    net->mem.grads = gbytes;
    char *p = net->params, *gr = net->grads, *in = net->inputs;
    for (int i = 0; i < net->n; i++) {
        const sn__node *nd = &g->nodes[i];
        size_t b = align_up(net->numel[i] * sn_dtype_size(nd->dtype));
        if (nd->op == SN__OP_variable) {
            net->val[i] = p;
            p += b;
            if (net->needs_grad[i]) {
                net->grad[i] = (float *)gr;
                gr += b;
            }
        } else if (nd->op == SN__OP_input) {
            net->val[i] = in;
            in += b;
        }
    }
    if (gbytes) SN_TRY(SN__CALL(net, zero, net->grads, gbytes));
    if (ibytes) SN_TRY(SN__CALL(net, zero, net->inputs, ibytes));
    return SN_OK;
}

/* Intervals of every activation, gradient and saved-state buffer; then the arena. */
static sn_status plan_arena(sn_net *net, bool backward) {
    const sn_graph *g = net->g;
    int n = net->n, T = 2 * n;
    plan_buf *bufs = calloc((size_t)(3 * n + 1), sizeof *bufs);
    int *last_fwd = malloc((size_t)n * sizeof *last_fwd);
    int *last_bwd = malloc((size_t)n * sizeof *last_bwd);
    if (!bufs || !last_fwd || !last_bwd) {
        free(bufs); free(last_fwd); free(last_bwd);
        return sn__fail(net->ctx, SN_ERR_NOMEM, "compile: out of memory");
    }
    for (int i = 0; i < n; i++) {
        last_fwd[i] = i;
        last_bwd[i] = -1;
        net->first_writer[i] = -1;
    }
    for (int j = 0; j < n; j++) {
        const sn__node *nd = &g->nodes[j];
        for (int k = 0; k < nd->n_in; k++) {
            int x = nd->in[k];
            if (j > last_fwd[x]) last_fwd[x] = j;
            if (backward && net->needs_grad[j]) {
                if (sn__ops[nd->op].bwd_needs_inputs && T - 1 - j > last_bwd[x])
                    last_bwd[x] = T - 1 - j;
                /* The latest consumer runs its backward first: it zeroes the gradient. */
                if (net->needs_grad[x] && j > net->first_writer[x]) net->first_writer[x] = j;
            }
        }
    }
    /* Inside a fused chain only the tail has a gradient: the head's backward reads it. */
    for (int i = 0; net->fuse && i < n; i++) {
        int h = net->fuse[i].head;
        if (net->fuse[i].tail != i || (h >= 0 && net->fuse[h].tail != i))
            net->first_writer[i] = -1;
    }
    int nb = 0;
    size_t unplanned = 0;
    for (int i = 0; i < n; i++) {
        const sn__node *nd = &g->nodes[i];
        if (is_leaf(nd)) continue;
        if (net->fuse && net->fuse[i].head >= 0) continue;   /* its head computes it */
        /* A fused head writes its tail's buffer, which is then live from the head on; in a
         * training net its backward (at the head's time, after the folded nodes' slots) reads
         * the tail's gradient, and with an activation the tail's value. */
        int o = net->fuse ? net->fuse[i].tail : i;
        bool bwd_i = backward && net->needs_grad[i];
        bool needs_out = sn__ops[nd->op].bwd_needs_output || (o != i && net->fuse[i].act >= 0);
        plan_buf *v = &bufs[nb++];
        v->bytes = align_up(net->numel[o] * sn__esize(net, o));
        v->start = i;
        v->end = last_fwd[o] > last_bwd[o] ? last_fwd[o] : last_bwd[o];
        if (bwd_i && needs_out && T - 1 - i > v->end) v->end = T - 1 - i;
        if (net->keep[o]) v->end = T;
        v->slot = &net->val[o];
        unplanned += v->bytes;
        net->aux_floats[i] = sn__op_aux_floats(net, i);
        if (net->aux_floats[i]) {
            plan_buf *a = &bufs[nb++];
            a->bytes = align_up(net->aux_floats[i] * sizeof(float));
            a->start = i;
            a->end = bwd_i ? T - 1 - i : i;
            a->slot = (void **)&net->aux[i];
            unplanned += a->bytes;
        }
        if (bwd_i) {
            plan_buf *gb = &bufs[nb++];
            gb->bytes = v->bytes;
            gb->start = net->first_writer[o] >= 0 ? T - 1 - net->first_writer[o] : n;
            gb->end = T - 1 - i;
            gb->slot = (void **)&net->grad[o];
            unplanned += gb->bytes;
        }
    }
    size_t total = 0;
    sn_status st = plan(net->ctx, bufs, nb, &total);
    if (st == SN_OK) st = SN__CALL(net, alloc, &net->arena, total);
    if (st == SN_OK)
        for (int b = 0; b < nb; b++) *bufs[b].slot = (char *)net->arena + bufs[b].off;
    net->mem.arena = total;
    net->mem.arena_unplanned = unplanned;
    free(bufs);
    free(last_fwd);
    free(last_bwd);
    return st;
}

/* ---- fusion ------------------------------------------------------------------------------- */

/* The one consumer of node t's value, or -1 when it has several or none, or when the value
 * is kept (an end point, a scalar: sn_net_get_output may read it). */
static int sole_user(const sn_net *net, const int *uses, const int *user, int t) {
    return uses[t] == 1 && !net->keep[t] ? user[t] : -1;
}

/* Whether a node strictly between a and b reads o. */
static bool read_between(const sn_graph *g, int o, int a, int b) {
    for (int c = a + 1; c < b; c++)
        for (int k = 0; k < g->nodes[c].n_in; k++)
            if (g->nodes[c].in[k] == o) return true;
    return false;
}

/* Folds chains into their head (sn__fusion in graph.h), whose kernel then applies the folded
 * nodes as an epilogue on its output while that is still in cache or in registers:
 *  - in a net without backward (inference), conv2d/dwconv2d/matmul -> [batch_norm
 *    (inference) | bias_add] -> [add] -> [relu | relu6 | hard_swish].  ResNet's units end
 *    in the whole chain: conv, batch norm, the shortcut added, relu; MobileNet v3's layers
 *    in conv, batch norm, hard swish.
 *  The training chains below end before a hard_swish: their backward masks the gradient by
 *  reading the activation's output, and hard swish's derivative is not a function of it.
 *  - in any net, batch_norm (training) -> [add] -> [relu | relu6]: its forward writes the
 *    tail, its backward reads the tail's value and gradient and writes the gradients of x,
 *    gamma, beta and the residual: three passes over memory each way become one.
 *  - in a training net, bias_add -> [add] -> [relu | relu6] likewise (VGG's and AlexNet's
 *    conv -> bias -> relu, whose convolutions a training net does not fuse).  In an
 *    inference net a bias_add after a convolution or matmul is folded into that instead.
 *
 * A link is folded only where nothing but the next link could ever see the value it skips:
 * that value has exactly one consumer and is not kept, so sn_net_get_output refuses it
 * anyway (its memory would have been reused).  The folded node's other inputs (gamma, beta,
 * the moving statistics, the bias, the add's other operand) must exist when the head runs:
 * leaves, or nodes computed before the head.  (So of two chains meeting in one add, only the
 * later one can take it.)  A batch norm chain also keeps every gradient bit for bit the
 * unfused net's, and so does a bias_add chain in a training net: the residual's gradient is
 * accumulated in the same order only if no node between the head and the add reads the
 * residual (its backward would run between the two slots), the residual is not the head's
 * own input (dx and dres would alias; for bias_add, nor its bias), and the head needs a
 * gradient exactly when the tail does.  Convolutions are not fused in training
 * nets: their backward reads the intermediate values. */
static sn_status plan_fusion(sn_net *net, bool inference) {
    const sn_graph *g = net->g;
    int n = net->n;
    int *uses = calloc((size_t)n + 1, sizeof *uses);
    int *user = malloc(((size_t)n + 1) * sizeof *user);
    net->fuse = malloc(((size_t)n + 1) * sizeof *net->fuse);
    if (!uses || !user || !net->fuse) {
        free(uses);
        free(user);
        return sn__fail(net->ctx, SN_ERR_NOMEM, "compile: out of memory");
    }
    for (int i = 0; i < n; i++) {
        net->fuse[i] = (sn__fusion){.head = -1, .affine = -1, .residual = -1, .act = -1,
                                    .tail = i};
        user[i] = -1;
    }
    for (int j = 0; j < n; j++)
        for (int k = 0; k < g->nodes[j].n_in; k++) {
            uses[g->nodes[j].in[k]]++;
            user[g->nodes[j].in[k]] = j;
        }
    for (int i = 0; i < n; i++) {
        sn__op op = g->nodes[i].op;
        const sn__node *hn = &g->nodes[i];
        /* Training heads: their backward is fused too.  A bias_add another head folded
         * (inference) is not one; one adding x to itself would have dx alias db. */
        bool train_head = (op == SN__OP_batch_norm && hn->p.bn.training) ||
                          (op == SN__OP_bias_add && !inference && net->fuse[i].head < 0 &&
                           hn->in[0] != hn->in[1]);
        if (!train_head && !(inference && (op == SN__OP_conv2d || op == SN__OP_dwconv2d ||
                                           op == SN__OP_matmul)))
            continue;
        sn__fusion *f = &net->fuse[i];
        int t = i, j = sole_user(net, uses, user, t);
        if (!train_head && j >= 0 && g->nodes[j].in[0] == t) {
            const sn__node *c = &g->nodes[j];
            bool ok = (c->op == SN__OP_batch_norm && !c->p.bn.training) ||
                      c->op == SN__OP_bias_add;
            for (int k = 1; ok && k < c->n_in; k++)
                ok = is_leaf(&g->nodes[c->in[k]]) || c->in[k] < i;
            if (ok) {
                f->affine = t = j;
                j = sole_user(net, uses, user, t);
            }
        }
        if (j >= 0 && g->nodes[j].op == SN__OP_add && net->fuse[j].head < 0) {
            const sn__node *c = &g->nodes[j];
            int o = c->in[0] == t ? c->in[1] : c->in[0];    /* t's sole user: o != t */
            bool ok = is_leaf(&g->nodes[o]) || o < i;
            /* The residual's gradient may alias none of the head's (dx, or db, which a
             * rank-1 residual could be). */
            for (int k = 0; train_head && k < (op == SN__OP_batch_norm ? 1 : hn->n_in); k++)
                ok = ok && o != hn->in[k];
            if (train_head) ok = ok && !read_between(g, o, i, j);
            if (ok) {
                f->residual = t = j;
                j = sole_user(net, uses, user, t);
            }
        }
        /* hard swish only ends an inference chain: a training head's backward takes the
         * activation's derivative from the chain's output, and hard swish's is not a
         * function of its output (kernels.h, sn__act). */
        if (j >= 0 && (g->nodes[j].op == SN__OP_relu || g->nodes[j].op == SN__OP_relu6 ||
                       (!train_head && g->nodes[j].op == SN__OP_hard_swish)))
            f->act = t = j;
        if (t == i || (train_head && net->needs_grad[i] != net->needs_grad[t])) {
            *f = (sn__fusion){.head = -1, .affine = -1, .residual = -1, .act = -1, .tail = i};
            continue;
        }
        f->tail = t;
        const int links[3] = {f->affine, f->residual, f->act};
        for (int k = 0; k < 3; k++) {
            if (links[k] < 0) continue;
            net->fuse[links[k]].head = i;
            net->n_fused++;
        }
    }
    free(uses);
    free(user);
    if (net->n_fused == 0) {   /* nothing to look up at run time */
        free(net->fuse);
        net->fuse = NULL;
    }
    return SN_OK;
}

bool sn__fused_chain(const sn_net *net, int i, sn__chain *c) {
    if (!net->fuse || net->fuse[i].tail == i) return false;
    const sn__fusion *f = &net->fuse[i];
    memset(c, 0, sizeof *c);
    if (f->residual >= 0) {   /* the add's operand that is not the head */
        const sn__node *a = &net->g->nodes[f->residual];
        int o = a->in[0] == i ? a->in[1] : a->in[0];
        c->residual = (const float *)net->val[o];
        c->dres = net->grad[o];
    }
    if (f->act >= 0)
        c->act = net->g->nodes[f->act].op == SN__OP_relu ? SN__ACT_RELU : SN__ACT_RELU6;
    c->y = (float *)net->val[f->tail];
    c->dy = net->grad[f->tail];
    return true;
}

bool sn__fused_epilogue(const sn_net *net, int i, sn__epilogue *ep, float **y) {
    if (!net->fuse || net->fuse[i].tail == i) return false;
    const sn__fusion *f = &net->fuse[i];
    memset(ep, 0, sizeof *ep);
    if (f->affine >= 0) {
        if (net->g->nodes[f->affine].op == SN__OP_batch_norm) sn__bn_epilogue(net, f->affine, ep);
        else ep->bias = SN__X(net, f->affine, 1);
    }
    if (f->residual >= 0) {   /* the add's operand that is not the chain */
        const sn__node *a = &net->g->nodes[f->residual];
        int chain = f->affine >= 0 ? f->affine : i;
        ep->residual = (const float *)net->val[a->in[0] == chain ? a->in[1] : a->in[0]];
    }
    if (f->act >= 0) {
        sn__op a = net->g->nodes[f->act].op;
        ep->act = a == SN__OP_relu ? SN__ACT_RELU
                  : a == SN__OP_relu6 ? SN__ACT_RELU6 : SN__ACT_HARD_SWISH;
    }
    *y = (float *)net->val[f->tail];
    return true;
}

static sn_status alloc_workspace(sn_net *net) {
    size_t ws = 0;
    for (int i = 0; i < net->n; i++) {
        size_t b = 0;
        SN_TRY(sn__op_ws_bytes(net, i, &b));
        if (b > ws) ws = b;
    }
    SN_TRY(SN__CALL(net, alloc, &net->ws, ws));
    net->dev.ws = net->ws;
    net->dev.ws_bytes = ws;
    net->mem.workspace = ws + net->emu_bytes;   /* with the bf16 scratch (lib/bf16.c) */
    return SN_OK;
}

/* Each variable's values depend only on the context seed, its initializer, shape and name. */
static sn_status init_variables(sn_net *net) {
    const sn_graph *g = net->g;
    size_t maxn = 0;
    for (int v = 0; v < g->n_vars; v++)
        if (net->numel[g->vars[v]] > maxn) maxn = net->numel[g->vars[v]];
    float *host = malloc((maxn ? maxn : 1) * sizeof(float));
    if (!host) return sn__fail(net->ctx, SN_ERR_NOMEM, "compile: out of memory");
    sn_status st = SN_OK;
    for (int v = 0; v < g->n_vars && st == SN_OK; v++) {
        int i = g->vars[v];
        const sn__node *nd = &g->nodes[i];
        uint64_t seed = sn__hash_str(nd->name, 0) ^ (net->ctx->p.seed * 0x9E3779B97F4A7C15ull);
        st = sn_init_fill(net->ctx, &nd->p.var.init, nd->rank, net->dims[i], seed, host);
        if (st == SN_OK) st = SN__CALL(net, to_dev, net->val[i], host, net->numel[i] * sizeof(float));
    }
    free(host);
    return st;
}

sn_status sn_net_compile(sn_graph *g, const sn_compile_params *p, sn_net **out) {
    if (!g || !out) return SN_ERR_INVALID_ARG;
    *out = NULL;
    sn_ctx *ctx = g->ctx;
    sn_compile_params cp = p ? *p : sn_compile_params_default();
    if (g->err != SN_OK)
        return sn__fail(ctx, g->err, "compile: the graph has an error: %s", g->errmsg);
    if (g->scope_depth != 0)
        return sn__fail(ctx, SN_ERR_STATE, "compile: scope '%s' was pushed and never popped",
                        g->scope);
    if (cp.precision != SN_PRECISION_FP32 && cp.precision != SN_PRECISION_BF16)
        return sn__fail(ctx, SN_ERR_INVALID_ARG, "compile: precision %d is not "
                        "SN_PRECISION_FP32 (0) or SN_PRECISION_BF16 (1)", cp.precision);
    if (cp.batch_size < 1 || cp.batch_size > (1 << 24))
        return sn__fail(ctx, SN_ERR_INVALID_ARG, "compile: batch_size %lld outside [1, 2^24]",
                        (long long)cp.batch_size);
    sn_net *net = calloc(1, sizeof *net);
    if (!net) return sn__fail(ctx, SN_ERR_NOMEM, "compile: out of memory");
    net->g = g;
    net->ctx = ctx;
    net->k = ctx->k;
    net->dev = ctx->dev;
    net->dev.ws = NULL;
    net->dev.ws_bytes = 0;
    net->batch = cp.batch_size;
    net->n = g->n_nodes;
    net->backward_ok = cp.backward != 0;
    sn_status st = net_alloc_arrays(net);
    if (st == SN_OK) st = resolve_shapes(net);
    if (st == SN_OK) {
        for (int i = 0; i < net->n; i++) {
            const sn__node *nd = &g->nodes[i];
            net->keep[i] = nd->end_point || nd->rank == 0 || is_leaf(nd);
            if (!net->backward_ok) continue;
            if (nd->op == SN__OP_variable) {
                net->needs_grad[i] = (nd->p.var.flags & SN_VAR_TRAINABLE) != 0;
            } else {
                for (int k = 0; k < nd->n_in; k++)
                    if (net->needs_grad[nd->in[k]]) net->needs_grad[i] = true;
            }
        }
        st = alloc_persistent(net);
    }
    if (st == SN_OK && cp.fuse) st = plan_fusion(net, !net->backward_ok);
    if (st == SN_OK && cp.precision == SN_PRECISION_BF16) st = sn__bf16_plan(net);
    if (st == SN_OK) st = plan_arena(net, net->backward_ok);
    if (st == SN_OK && net->bf16) st = sn__bf16_alloc(net);
    if (st == SN_OK) st = alloc_workspace(net);
    if (st == SN_OK && net->bf16) st = sn__bf16_confirm(net);
    if (st == SN_OK) st = init_variables(net);
    if (st != SN_OK) {
        sn_net_free(net);
        return st;
    }
    *out = net;
    return SN_OK;
}

void sn_net_free(sn_net *net) {
    if (!net) return;
    if (net->k) {
        void *blocks[6] = {net->params, net->grads, net->inputs, net->arena, net->ws, net->emu};
        for (int b = 0; b < 6; b++)
            if (blocks[b]) net->k->free(&net->dev, blocks[b]);
    }
    free(net->dims);
    free(net->numel);
    free(net->val);
    free(net->grad);
    free(net->aux);
    free(net->aux_floats);
    free(net->needs_grad);
    free(net->keep);
    free(net->first_writer);
    free(net->fuse);
    free(net->bf16);
    free(net->native16);
    free(net->dist_host);
    free(net->buckets);
    free(net);
}

/* ---- data parallelism -------------------------------------------------------------------------
 * The gradient block in buckets of about DIST_BUCKET bytes (a variable larger than that is a
 * bucket of its own).  A bucket is whole once the backward has run every node that reads
 * its variables: its slot is the smallest (the last run) of those nodes' slots (a folded
 * node's backward runs at its head's).  The buckets are cut from the end of the block,
 * where the last variables are, whose gradients the backward finishes first; they go to
 * the group's background thread (a GPU net in an NCCL group: NCCL's stream) in slot order,
 * the same order on every rank. */
#define DIST_BUCKET ((size_t)4 << 20)

typedef struct sn__bucket {
    size_t lo, hi;      /* bytes of the gradient block */
    int slot;           /* launched once the backward has passed this node */
} sn__bucket;

static int by_slot_desc(const void *a, const void *b) {
    const sn__bucket *x = a, *y = b;
    return x->slot != y->slot ? (x->slot < y->slot) - (x->slot > y->slot)
                              : (x->lo < y->lo) - (x->lo > y->lo);
}

static sn_status plan_buckets(sn_net *net) {
    const sn_graph *g = net->g;
    int *whole = malloc((size_t)net->n * sizeof *whole);   /* per variable: its slot */
    sn__bucket *b = calloc((size_t)net->n + 1, sizeof *b);
    if (!whole || !b) {
        free(whole);
        free(b);
        return sn__fail(net->ctx, SN_ERR_NOMEM, "set_dist: out of memory");
    }
    for (int i = 0; i < net->n; i++) whole[i] = net->n;   /* no reader: whole at once */
    for (int j = 0; j < net->n; j++) {
        int slot = net->fuse && net->fuse[j].head >= 0 ? net->fuse[j].head : j;
        for (int k = 0; k < g->nodes[j].n_in; k++) {
            int x = g->nodes[j].in[k];
            if (slot < whole[x]) whole[x] = slot;
        }
    }
    int nb = 0;
    size_t hi = net->mem.grads;
    for (int i = net->n - 1; i >= 0; i--) {
        if (g->nodes[i].op != SN__OP_variable || !net->grad[i]) continue;
        size_t lo = (size_t)((char *)net->grad[i] - (char *)net->grads);
        if (nb == 0 || b[nb - 1].hi - b[nb - 1].lo >= DIST_BUCKET) {
            b[nb++] = (sn__bucket){lo, hi, whole[i] < net->n ? whole[i] : net->n};
        } else {
            b[nb - 1].lo = lo;
            if (whole[i] < b[nb - 1].slot) b[nb - 1].slot = whole[i];
        }
        hi = lo;
    }
    if (nb) b[nb - 1].lo = 0;   /* the padding before the first variable, if any */
    qsort(b, (size_t)nb, sizeof *b, by_slot_desc);
    free(whole);
    free(net->buckets);
    net->buckets = b;
    net->n_buckets = nb;
    return SN_OK;
}

/* Hands the buckets whose slot is at least `slot` to the group, from *next on. */
static sn_status launch_buckets(sn_net *net, int slot, int *next) {
    sn_status st = SN_OK;
    for (; st == SN_OK && *next < net->n_buckets && net->buckets[*next].slot >= slot; (*next)++) {
        const sn__bucket *b = &net->buckets[*next];
        float *p = (float *)((char *)net->grads + b->lo);
        size_t n = (b->hi - b->lo) / sizeof(float);
        if (net->grad_hook) {
            st = net->grad_hook(net->grad_arg, b->lo, b->hi);
            continue;
        }
        st = net->dev.backend == SN__BACKEND_CPU ? sn__dist_sum_f32_async(net->dist, p, n)
                                                 : sn__dist_dev_mean_async(net->dist, &net->dev,
                                                                           p, n);
    }
    return st;
}

/* The block at dev (bytes long) in host memory: itself on the CPU, else staged through
 * dist_host (to_host first when fetch). */
static sn_status dist_host(sn_net *net, void *dev, size_t bytes, bool fetch, void **host) {
    if (net->dev.backend == SN__BACKEND_CPU) {
        *host = dev;
        return SN_OK;
    }
    *host = net->dist_host;
    return fetch ? SN__CALL(net, to_host, *host, dev, bytes) : SN_OK;
}

sn_status sn__net_set_grad_hook(sn_net *net, sn_status (*hook)(void *, size_t, size_t),
                                void *arg) {
    free(net->buckets);
    net->buckets = NULL;
    net->n_buckets = 0;
    net->grad_hook = NULL;
    net->grad_arg = NULL;
    if (!hook) return SN_OK;
    if (net->dist || net->dev.backend != SN__BACKEND_CPU || !net->mem.grads)
        return sn__fail(net->ctx, SN_ERR_INVALID_ARG, "grad_hook: a CPU net with gradients "
                        "and no data-parallel group");
    SN_TRY(plan_buckets(net));
    net->grad_hook = hook;
    net->grad_arg = arg;
    return SN_OK;
}

int sn__net_buckets(const sn_net *net, size_t *lo, size_t *hi, int cap) {
    for (int i = 0; i < net->n_buckets && i < cap; i++) {
        lo[i] = net->buckets[i].lo;
        hi[i] = net->buckets[i].hi;
    }
    return net->n_buckets;
}

sn_status sn_net_set_dist(sn_net *net, sn_dist *d) {
    net->grad_hook = NULL;
    net->grad_arg = NULL;
    net->dist = NULL;
    net->example_offset = 0;
    free(net->dist_host);
    net->dist_host = NULL;
    free(net->buckets);
    net->buckets = NULL;
    net->n_buckets = 0;
    /* An NCCL group moves a GPU net's blocks on the device (a group of one too, so that the
     * path runs); a CPU net has no business there. */
    bool nccl = sn__dist_has_nccl(d), cpu = net->dev.backend == SN__BACKEND_CPU;
    if (nccl && cpu)
        return sn__fail(net->ctx, SN_ERR_INVALID_ARG, "set_dist: the group's backend is nccl "
                        "(GPU buffers) and the net is on the CPU: use a gloo group");
    if (!d || (sn_dist_size(d) == 1 && !nccl)) {
        net->dist = d;
        return SN_OK;
    }
    net->example_offset = (int64_t)sn_dist_rank(d) * net->batch;
    if (cpu || nccl) SN_TRY(plan_buckets(net));
    if (nccl) {   /* every rank starts from the chief's variables */
        SN_TRY(sn__dist_dev_broadcast(d, &net->dev, net->params, net->mem.params));
        net->dist = d;
        return SN_OK;
    }
    size_t big = net->mem.params > net->mem.grads ? net->mem.params : net->mem.grads;
    if (!cpu && !(net->dist_host = malloc(big ? big : 1)))
        return sn__fail(net->ctx, SN_ERR_NOMEM, "set_dist: out of memory (%zu bytes)", big);
    void *host;
    SN_TRY(dist_host(net, net->params, net->mem.params, true, &host));
    SN_TRY(sn__dist_broadcast_bytes(d, host, net->mem.params));
    if (host != net->params) SN_TRY(SN__CALL(net, to_dev, net->params, host, net->mem.params));
    net->dist = d;
    return SN_OK;
}

/* After a device net's backward pass: every gradient becomes the mean over the group (the
 * padding between variables is zero on every rank and stays so). */
static sn_status dist_average(sn_net *net) {
    if (!net->dist || !net->mem.grads || net->buckets) return SN_OK;
    void *host;
    SN_TRY(dist_host(net, net->grads, net->mem.grads, true, &host));
    SN_TRY(sn__dist_mean_f32(net->dist, host, net->mem.grads / sizeof(float)));
    if (host != net->grads) SN_TRY(SN__CALL(net, to_dev, net->grads, host, net->mem.grads));
    return SN_OK;
}

const sn_graph *sn_net_graph(const sn_net *net) { return net->g; }
sn_net_memory sn_net_memory_info(const sn_net *net) { return net->mem; }

sn_net_flops sn_net_flop_count(const sn_net *net) {
    sn_net_flops f = {0, 0};
    for (int i = 0; i < net->n; i++) {
        const sn__node *nd = &net->g->nodes[i];
        double per;   /* one pass: forward, or one of the two gradients */
        if (nd->op == SN__OP_conv2d || nd->op == SN__OP_dwconv2d) {
            sn__conv2d_dims cd;
            sn__conv_dims(net, i, &cd);
            per = 2.0 * (double)(cd.N * cd.P * cd.Q) * (double)cd.K * (double)(cd.R * cd.S) *
                  (nd->op == SN__OP_conv2d ? (double)cd.C : 1.0);
        } else if (nd->op == SN__OP_matmul) {
            const int64_t *xd = net->dims[nd->in[0]];
            per = 2.0 * (double)xd[0] * (double)xd[1] * (double)net->dims[i][1];
        } else {
            continue;
        }
        f.forward += per;
        for (int k = 0; k < 2; k++)
            if (net->grad[nd->in[k]]) f.backward += per;
    }
    return f;
}
void sn_net_set_step(sn_net *net, int64_t step) { net->step = step; }

/* ---- running ------------------------------------------------------------------------------ */

/* Prefixes the context's message with the node that failed. */
static sn_status node_failed(sn_net *net, int i, const char *pass, sn_status st) {
    char buf[64], msg[SN_ERRMSG_LEN];
    snprintf(msg, sizeof msg, "%s", net->ctx->errmsg);
    return sn__fail(net->ctx, st, "%s of %s (%s): %s", pass,
                    sn__node_label(net->g, i, buf, sizeof buf), sn__ops[net->g->nodes[i].op].name,
                    msg);
}

static double wall(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Input slots whose gradient node nd's backward can SET when it is their first writer
 * (SN__DX_SET) instead of adding to a zeroed buffer: the ops whose backward writes every
 * element of that gradient and honors the flag.  Saves a zeroing pass and a read of the
 * gradient per buffer (on the GPU, ~5 ms of a 56 ms ResNet-50 step at batch 128). */
static unsigned set_slots(const sn_net *net, int j) {
    const sn__node *nd = &net->g->nodes[j];
    switch (nd->op) {
    case SN__OP_batch_norm:                     /* dx of a fused chain's head */
        return net->fuse && net->fuse[j].tail != j && nd->p.bn.training ? 1u : 0u;
    case SN__OP_conv2d: return 1u;              /* dx: conv2d_bwd_data with beta 0 */
    case SN__OP_add: return 3u;                 /* both: a copy of dy */
    case SN__OP_bias_add: return 1u;            /* dx: a copy of dy (or, heading a fused
                                                 * chain, of the chain's gradient m) */
    case SN__OP_reshape: return 1u;             /* dx: a copy of dy */
    default: return 0u;
    }
}

/* The residual z of fused training head h's chain (batch_norm or bias_add) when the head's
 * backward can SET z's gradient: the folded add is z's first writer (so nothing wrote it
 * before, and the fusion rules keep every node between the add and the head off z) and takes
 * z once; else -1. */
static int head_sets_residual(const sn_net *net, int h, int loss) {
    sn__op op = net->g->nodes[h].op;
    if (!net->fuse || net->fuse[h].tail == h || net->fuse[h].residual < 0 ||
        (op != SN__OP_batch_norm && op != SN__OP_bias_add))
        return -1;
    int a = net->fuse[h].residual;
    const sn__node *an = &net->g->nodes[a];
    int z = an->in[0] == h ? an->in[1] : an->in[0];
    if (z == h || z == loss || is_leaf(&net->g->nodes[z]) || !net->grad[z] ||
        net->first_writer[z] != a)
        return -1;
    return z;
}

/* Runs the forward (dir 0) or backward (dir 1) of node i, timed when profiling. */
static sn_status run_node(sn_net *net, int i, int dir) {
    const sn__opdef *op = &sn__ops[net->g->nodes[i].op];
    sn__op_fn fn = dir ? op->bwd : op->fwd;
    if (!net->profile) return sn__bf16_run(net, i, dir, fn);
    double t0 = wall();
    sn_status st = sn__bf16_run(net, i, dir, fn);
    if (st == SN_OK) st = net->k->sync(&net->dev);
    net->prof_s[net->g->nodes[i].op][dir] += wall() - t0;
    net->prof_n[net->g->nodes[i].op][dir]++;
    return st;
}

void sn_net_set_profile(sn_net *net, int on) {
    if (on && !net->profile) {
        memset(net->prof_s, 0, sizeof net->prof_s);
        memset(net->prof_n, 0, sizeof net->prof_n);
    }
    net->profile = on != 0;
}

sn_status sn_net_profile_report(const sn_net *net, char *buf, size_t len) {
    if (!buf || len == 0) return SN_ERR_INVALID_ARG;
    int order[SN__OP_COUNT];
    double total = 0;
    for (int o = 0; o < SN__OP_COUNT; o++) {
        order[o] = o;
        total += net->prof_s[o][0] + net->prof_s[o][1];
    }
    for (int a = 1; a < SN__OP_COUNT; a++)   /* insertion sort, most expensive first */
        for (int b = a; b > 0; b--) {
            int x = order[b - 1], y = order[b];
            if (net->prof_s[x][0] + net->prof_s[x][1] >= net->prof_s[y][0] + net->prof_s[y][1])
                break;
            order[b - 1] = y;
            order[b] = x;
        }
    size_t used = (size_t)snprintf(buf, len, "%-12s %8s %11s %11s %6s\n", "op", "calls",
                                   "forward ms", "backward ms", "share");
    for (int k = 0; k < SN__OP_COUNT && used < len; k++) {
        int o = order[k];
        double t = net->prof_s[o][0] + net->prof_s[o][1];
        if (net->prof_n[o][0] + net->prof_n[o][1] == 0) continue;
        used += (size_t)snprintf(buf + used, len - used, "%-12s %8lld %11.2f %11.2f %5.1f%%\n",
                                 sn__ops[o].name, (long long)net->prof_n[o][0],
                                 net->prof_s[o][0] * 1e3, net->prof_s[o][1] * 1e3,
                                 total > 0 ? 100.0 * t / total : 0.0);
    }
    if (net->n_fused && used < len) {   /* their time is in their head's row */
        int64_t folded[SN__OP_COUNT] = {0};
        for (int i = 0; i < net->n; i++)
            if (net->fuse[i].head >= 0) folded[net->g->nodes[i].op]++;
        used += (size_t)snprintf(buf + used, len - used, "folded into the convolution, "
                                 "matmul, batch norm or bias_add before them:");
        for (int o = 0, first = 1; o < SN__OP_COUNT && used < len; o++) {
            if (!folded[o]) continue;
            used += (size_t)snprintf(buf + used, len - used, "%s %lld %s", first ? "" : ",",
                                     (long long)folded[o], sn__ops[o].name);
            first = 0;
        }
        if (used < len) used += (size_t)snprintf(buf + used, len - used, "\n");
    }
    if (net->bf16 && used < len) {   /* bf16 nets: the ops that ran emulated (lib/bf16.c) */
        int64_t emu[SN__OP_COUNT] = {0}, n_native = 0;
        for (int i = 0; i < net->n; i++) {
            const sn__node *nd = &net->g->nodes[i];
            if (is_leaf(nd) || (net->fuse && net->fuse[i].head >= 0)) continue;
            if (net->native16[i]) n_native++;
            else if (sn__bf16_touches(net, i)) emu[nd->op]++;
        }
        used += (size_t)snprintf(buf + used, len - used, "bf16: %lld ops on bf16 kernels; "
                                 "emulated on float32 copies:", (long long)n_native);
        int any = 0;
        for (int o = 0; o < SN__OP_COUNT && used < len; o++) {
            if (!emu[o]) continue;
            used += (size_t)snprintf(buf + used, len - used, "%s %lld %s", any ? "," : "",
                                     (long long)emu[o], sn__ops[o].name);
            any = 1;
        }
        if (used < len) snprintf(buf + used, len - used, "%s\n", any ? "" : " none");
    }
    return SN_OK;
}

sn_status sn_net_forward(sn_net *net) {
    const sn_graph *g = net->g;
    for (int i = 0; i < net->n; i++) {
        if (is_leaf(&g->nodes[i]) || (net->fuse && net->fuse[i].head >= 0)) continue;
        sn_status st = run_node(net, i, 0);
        if (st != SN_OK) return node_failed(net, i, "forward", st);
    }
    net->forward_done = true;
    return SN_OK;
}

sn_status sn_net_backward(sn_net *net, sn_node loss) {
    const sn_graph *g = net->g;
    char buf[64];
    if (!net->backward_ok)
        return sn__fail(net->ctx, SN_ERR_STATE, "backward: the net was compiled without "
                        "gradients (sn_compile_params.backward = 0)");
    if (!net->forward_done)
        return sn__fail(net->ctx, SN_ERR_STATE, "backward: run sn_net_forward first");
    if (loss < 0 || loss >= net->n || g->nodes[loss].rank != 0)
        return sn__fail(net->ctx, SN_ERR_INVALID_ARG, "backward: loss must be a scalar node, "
                        "%s is not", sn__node_label(g, loss, buf, sizeof buf));
    if (!net->needs_grad[loss])
        return sn__fail(net->ctx, SN_ERR_INVALID_ARG, "backward: %s does not depend on any "
                        "trainable variable", sn__node_label(g, loss, buf, sizeof buf));
    bool *anc = calloc((size_t)net->n, sizeof *anc);
    if (!anc) return sn__fail(net->ctx, SN_ERR_NOMEM, "backward: out of memory");
    anc[loss] = true;
    for (int j = loss; j >= 0; j--)
        if (anc[j])
            for (int k = 0; k < g->nodes[j].n_in; k++) anc[g->nodes[j].in[k]] = true;
    /* The loss's gradient seeds the backward.  Where the CPU's buckets are summed over a
     * group of N, the seed is 1/N, so that the sums are the means (no pass over the block
     * to divide it; for N a power of two, the same bits). */
    const float one = net->buckets && net->dist && net->dev.backend == SN__BACKEND_CPU
                          ? 1.0f / (float)sn_dist_size(net->dist) : 1.0f;
    sn_status st = SN_OK;
    if (net->mem.grads) st = SN__CALL(net, zero, net->grads, net->mem.grads);
    /* Gradients nobody writes (terminal nodes) start at zero, or at one for the loss. */
    for (int i = 0; i < net->n && st == SN_OK; i++) {
        if (!net->grad[i] || is_leaf(&g->nodes[i]) || net->first_writer[i] >= 0) continue;
        st = i == loss ? SN__CALL(net, to_dev, net->grad[i], &one, sizeof one)
                       : SN__CALL(net, zero, net->grad[i], net->numel[i] * sn__esize(net, i));
    }
    int next_bucket = 0;   /* data parallel: the buckets the group has */
    if (net->buckets && st == SN_OK) st = launch_buckets(net, net->n, &next_bucket);
    for (int j = net->n - 1; j >= 0 && st == SN_OK; j--) {
        if (net->buckets) {   /* nodes after j are done: their whole buckets can go */
            st = launch_buckets(net, j + 1, &next_bucket);
            if (st != SN_OK) break;
        }
        const sn__node *nd = &g->nodes[j];
        /* A folded node's backward is its head's (which runs at the head's slot). */
        bool runs = anc[j] && net->needs_grad[j] && !is_leaf(nd) && j <= loss &&
                    !(net->fuse && net->fuse[j].head >= 0);
        unsigned can_set = runs ? set_slots(net, j) : 0u;
        net->dx_set = 0;
        /* A folded add leaves the residual's gradient to its head to set, if the head runs. */
        int h = net->fuse ? net->fuse[j].head : -1, defer = -1;
        if (h >= 0 && net->fuse[h].residual == j && anc[h] && net->needs_grad[h] && h <= loss)
            defer = head_sets_residual(net, h, loss);
        if (runs && head_sets_residual(net, j, loss) >= 0) net->dx_set |= 1u << 31;
        /* The first writer of an input's gradient clears it (or seeds the loss), or, where
         * its op can, sets it outright (one pass instead of a zeroing and an addition). */
        for (int k = 0; k < nd->n_in && st == SN_OK; k++) {
            int x = nd->in[k];
            if (net->first_writer[x] != j || is_leaf(&g->nodes[x])) continue;
            bool twice = false;
            for (int k2 = 0; k2 < nd->n_in; k2++) twice = twice || (k2 != k && nd->in[k2] == x);
            /* Bits 0..30 are inputs (bit 31 is the residual): no op that sets has more. */
            if (!twice && x != loss && k < 31 && (can_set >> k & 1u)) {
                net->dx_set |= 1u << k;
                continue;
            }
            if (x == defer) continue;   /* the head sets it */
            if (k > 0 && nd->in[k - 1] == x) continue;   /* the same input twice: once */
            st = x == loss ? SN__CALL(net, to_dev, net->grad[x], &one, sizeof one)
                           : SN__CALL(net, zero, net->grad[x], net->numel[x] * sn__esize(net, x));
        }
        if (st != SN_OK || !runs) continue;
        st = run_node(net, j, 1);
        net->dx_set = 0;
        if (st != SN_OK) st = node_failed(net, j, "backward", st);
    }
    free(anc);
    if (net->buckets) {   /* the rest, then every bucket back */
        if (st == SN_OK) st = launch_buckets(net, 0, &next_bucket);
        sn_status w = next_bucket == 0 || net->grad_hook ? SN_OK
                      : net->dev.backend == SN__BACKEND_CPU ? sn__dist_wait(net->dist)
                                                            : sn__dist_dev_wait(net->dist,
                                                                                &net->dev);
        if (st == SN_OK) st = w;
    }
    if (st == SN_OK) st = dist_average(net);
    return st;
}

/* ---- inputs, outputs, variables ------------------------------------------------------------- */

static sn_status check_tensor(sn_net *net, int i, const sn_tensor *t, const char *what) {
    const sn__node *nd = &net->g->nodes[i];
    bool ok = t->dtype == nd->dtype && t->rank == nd->rank;
    for (int d = 0; ok && d < nd->rank; d++) ok = t->dims[d] == net->dims[i][d];
    if (ok) return SN_OK;
    char a[128], b[128], buf[64];
    return sn__fail(net->ctx, SN_ERR_SHAPE, "%s %s: tensor is %s %s, expected %s %s", what,
                    sn__node_label(net->g, i, buf, sizeof buf), sn_dtype_name(t->dtype),
                    sn__dims_str(t->rank, t->dims, a, 128), sn_dtype_name(nd->dtype),
                    sn__dims_str(nd->rank, net->dims[i], b, 128));
}

sn_status sn_net_set_input(sn_net *net, sn_node in, const sn_tensor *t) {
    if (in < 0 || in >= net->n || net->g->nodes[in].op != SN__OP_input)
        return sn__fail(net->ctx, SN_ERR_INVALID_ARG, "set_input: node %d is not an input",
                        (int)in);
    SN_TRY(check_tensor(net, in, t, "set_input"));
    return SN__CALL(net, to_dev, net->val[in], t->data, sn_tensor_nbytes(t));
}

static sn_status read_out(sn_net *net, int i, const void *src, sn_tensor **out) {
    const sn__node *nd = &net->g->nodes[i];
    SN_TRY(sn_tensor_new(net->ctx, nd->dtype, nd->rank, net->dims[i], out));
    sn_status st;
    if (net->bf16 && net->bf16[i]) {   /* bf16 storage: decoded on the host */
        size_t n = net->numel[i];
        sn_bf16 *h = malloc((n ? n : 1) * sizeof *h);
        st = h ? SN__CALL(net, to_host, h, src, n * sizeof *h)
               : sn__fail(net->ctx, SN_ERR_NOMEM, "get_output: out of memory");
        for (size_t e = 0; st == SN_OK && e < n; e++)
            ((float *)(*out)->data)[e] = sn__bf16_decode(h[e]);
        free(h);
    } else {
        st = SN__CALL(net, to_host, (*out)->data, src, sn_tensor_nbytes(*out));
    }
    if (st != SN_OK) {
        sn_tensor_free(*out);
        *out = NULL;
    }
    return st;
}

sn_status sn_net_get_output(sn_net *net, sn_node n, sn_tensor **out) {
    char buf[64];
    if (n < 0 || n >= net->n)
        return sn__fail(net->ctx, SN_ERR_INVALID_ARG, "get_output: invalid node %d", (int)n);
    if (!net->keep[n])
        return sn__fail(net->ctx, SN_ERR_STATE, "get_output: the memory of %s is reused; mark "
                        "it with sn_graph_end_point() before compiling",
                        sn__node_label(net->g, n, buf, sizeof buf));
    if (!net->forward_done && !is_leaf(&net->g->nodes[n]))
        return sn__fail(net->ctx, SN_ERR_STATE, "get_output: run sn_net_forward first");
    return read_out(net, n, net->val[n], out);
}

static sn_status find_var(sn_net *net, const char *name, int *node) {
    const sn_graph *g = net->g;
    for (int v = 0; v < g->n_vars; v++) {
        if (strcmp(g->nodes[g->vars[v]].name, name) == 0) {
            *node = g->vars[v];
            return SN_OK;
        }
    }
    return sn__fail(net->ctx, SN_ERR_NOT_FOUND, "no variable named '%s'", name);
}

sn_status sn_net_get_var(sn_net *net, const char *name, sn_tensor **out) {
    int i = -1;
    SN_TRY(find_var(net, name, &i));
    return read_out(net, i, net->val[i], out);
}

sn_status sn_net_get_grad(sn_net *net, const char *name, sn_tensor **out) {
    int i = -1;
    SN_TRY(find_var(net, name, &i));
    if (!net->grad[i])
        return sn__fail(net->ctx, SN_ERR_STATE, "variable '%s' has no gradient (not trainable, "
                        "or compiled without backward)", name);
    return read_out(net, i, net->grad[i], out);
}

sn_status sn_net_set_var(sn_net *net, const char *name, const sn_tensor *t) {
    int i = -1;
    SN_TRY(find_var(net, name, &i));
    SN_TRY(check_tensor(net, i, t, "set_var"));
    return SN__CALL(net, to_dev, net->val[i], t->data, sn_tensor_nbytes(t));
}

sn_status sn_net_sgd_step(sn_net *net, float lr) {
    const sn_graph *g = net->g;
    for (int v = 0; v < g->n_vars; v++) {
        int i = g->vars[v];
        if (net->grad[i])
            SN_TRY(SN__CALL(net, accum, (float *)net->val[i], net->grad[i], -lr,
                            (int64_t)net->numel[i]));
    }
    return SN_OK;
}
