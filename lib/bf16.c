/* bf16.c: mixed precision (sn_compile_params.precision = SN_PRECISION_BF16).
 *
 * Storage.  Every float32 activation is stored in bfloat16, and so is its gradient, except
 * the values a loss or softmax reads, those ops' own outputs, and what reaches them through
 * reshapes and bias adds (logits, probabilities and losses stay float32: a bf16 logit has 8
 * bits of mantissa, and the cross entropy of near-equal logits would be noise).  Leaves (inputs, variables) stay float32; optimizer
 * state and the ops' saved state (batch moments, dropout masks) are float32 too.
 *
 * Kernels.  An op whose backend has bf16 kernels for it (kernels.def's bfloat16 section; on
 * CUDA: convolutions, depthwise convolutions, training batch norm and bias chains, max and
 * average pooling, padding, concat) calls them
 * itself: sn__bf16_native(net, i).  Every other op with a bf16 buffer runs emulated: its
 * bf16 inputs are decoded into float32 copies in a scratch block, the float32 kernel runs on
 * the copies, and its bf16 outputs are encoded back (gradients it adds to are decoded first,
 * unless the net lets it set them).  The float32 weights of convolutions and matmuls are
 * rounded through bf16 for the emulated kernel, as the native ones round them (depthwise
 * convolutions keep theirs: their bf16 kernels read float32 weights).  So an
 * emulated op computes what a bf16 kernel would: float32 arithmetic on bf16 values, one
 * rounding per output; the CPU backend, which has no bf16 kernels, is the reference the CUDA
 * kernels are tested against (tests/test_cuda.c, tests/test_cuda_net.c).  Two places where
 * the CUDA kernels round once more: cuDNN's bf16 configuration returns a convolution's weight
 * gradient in bf16 (rounded before its float32 accumulation; the 1x1 cuBLAS route and the
 * CPU accumulate in float32), and on the padded route (conv.cu) an accumulated input gradient
 * is rounded in the padded scratch and again after the addition: 2^-9 relative each, inside
 * the tests' tolerances.  A convolution cuDNN refuses in bf16 (at its workspace query or its
 * trial run at compile time, sn__bf16_confirm) runs emulated. */
#include <stdlib.h>
#include <string.h>
#include "graph.h"

#define ALIGN 256

static size_t align_up(size_t b) { return (b + ALIGN - 1) / ALIGN * ALIGN; }

static bool is_leaf(const sn__node *nd) {
    return nd->op == SN__OP_input || nd->op == SN__OP_variable;
}

/* Ops whose inputs and outputs stay float32 in a bf16 net. */
static bool f32_op(sn__op op) {
    return op == SN__OP_xent || op == SN__OP_softmax || op == SN__OP_l2 || op == SN__OP_add_n;
}

/* Ops whose float32 operands (weights, or an image) the emulation rounds through bf16: those
 * whose bf16 kernels are tensor-core products of bf16 operands (cuDNN, cuBLAS).  Depthwise
 * convolutions are our own kernels, which multiply the decoded inputs by the float32
 * weights. */
static bool product_op(sn__op op) { return op == SN__OP_conv2d || op == SN__OP_matmul; }

static bool bf(const sn_net *net, int x) { return net->bf16[x] != 0; }

/* The node whose buffer node i's kernel writes: its fused chain's tail, or itself. */
static int tail_of(const sn_net *net, int i) { return net->fuse ? net->fuse[i].tail : i; }

/* The other operand of the add folded into head i's chain, or -1. */
static int residual_of(const sn_net *net, int i) {
    if (!net->fuse || net->fuse[i].residual < 0) return -1;
    const sn__fusion *f = &net->fuse[i];
    const sn__node *a = &net->g->nodes[f->residual];
    int chain = f->affine >= 0 ? f->affine : i;
    return a->in[0] == chain ? a->in[1] : a->in[0];
}

static bool native(const sn_net *net, int i) {
    const sn__kernels *k = net->k;
    const sn__node *nd = &net->g->nodes[i];
    int t = tail_of(net, i), r = residual_of(net, i);
    if (!bf(net, t)) return false;
    /* The kernels take weights, biases and batch-norm parameters in float32: inputs past the
     * first (concat aside) must not be bf16 activations. */
    for (int j = 1; j < nd->n_in && nd->op != SN__OP_concat; j++)
        if (bf(net, nd->in[j])) return false;
    switch (nd->op) {
    case SN__OP_conv2d: {       /* no epilogue; x bf16, or an image (a leaf: no gradient) */
        int x = nd->in[0];
        return k->conv2d_fwd_bf16 && k->conv2d_bwd_data_bf16 && k->conv2d_bwd_filter_bf16 &&
               k->conv2d_ws_bf16 && t == i &&
               (bf(net, x) || (is_leaf(&net->g->nodes[x]) && !net->grad[x]));
    }
    case SN__OP_batch_norm:     /* training, fused or alone */
        return nd->p.bn.training && k->bn_train_fwd_ep_bf16 && k->bn_train_bwd_ep_bf16 &&
               bf(net, nd->in[0]) && (r < 0 || bf(net, r));
    case SN__OP_bias_add:       /* a training head or alone; not an inference conv's link */
        return k->bias_fwd_ep_bf16 && k->bias_bwd_ep_bf16 && bf(net, nd->in[0]) &&
               (r < 0 || bf(net, r)) && (!net->fuse || net->fuse[i].affine < 0);
    case SN__OP_dwconv2d:       /* no epilogue (training nets do not fuse it) */
        return k->dwconv2d_fwd_bf16 && k->dwconv2d_bwd_data_bf16 &&
               k->dwconv2d_bwd_filter_bf16 && t == i && bf(net, nd->in[0]);
    case SN__OP_maxpool:
        return k->maxpool_fwd_bf16 && k->maxpool_bwd_bf16 && bf(net, nd->in[0]);
    case SN__OP_avgpool:
        return k->avgpool_fwd_bf16 && k->avgpool_bwd_bf16 && bf(net, nd->in[0]);
    case SN__OP_pad:
        return k->pad_fwd_bf16 && k->pad_bwd_bf16 && bf(net, nd->in[0]);
    case SN__OP_concat:         /* an input taken twice would round its gradient twice */
        for (int j = 0; j < nd->n_in; j++) {
            if (!bf(net, nd->in[j])) return false;
            for (int j2 = 0; j2 < j; j2++)
                if (nd->in[j2] == nd->in[j]) return false;
        }
        return k->concat_fwd_bf16 && k->concat_bwd_bf16;
    default:
        return false;
    }
}

/* ---- the emulation ------------------------------------------------------------------------ */

typedef struct slot {
    void **ptr;         /* &net->val[x] or &net->grad[x]: swapped for tmp while fn runs */
    void *orig;
    float *tmp;
    int64_t n;
    bool decode;        /* tmp = decoded orig before (or, for `round`, orig rounded) */
    bool encode;        /* orig = encoded tmp after */
    bool round;         /* orig is float32 weights: tmp = decode(encode(orig)) */
} slot;

enum { MAX_SLOTS = 64 };

typedef struct slots {
    slot s[MAX_SLOTS];
    int n;
    bool overflow;
} slots;

static void add_slot(slots *L, void **ptr, int64_t n, bool decode, bool encode, bool round) {
    for (int j = 0; j < L->n; j++)
        if (L->s[j].ptr == ptr) {           /* the same buffer twice (add(x, x)): once */
            L->s[j].decode = L->s[j].decode || decode;
            L->s[j].encode = L->s[j].encode || encode;
            return;
        }
    if (L->n == MAX_SLOTS) {
        L->overflow = true;
        return;
    }
    L->s[L->n++] = (slot){.ptr = ptr, .orig = *ptr, .n = n, .decode = decode, .encode = encode,
                          .round = round};
}

static bool in_chain(const int *m, int nm, int x) {
    for (int j = 0; j < nm; j++)
        if (m[j] == x) return true;
    return false;
}

/* The buffers node i's forward (dir 0) or backward (dir 1) reads or writes that are bf16 (or
 * weights to round), as float32 copies to make.  dx_set: the backward's set bits (SN__DX_SET,
 * bit 31 for the chain's residual): those gradients are written, not read. */
static void enumerate(const sn_net *net, int i, int dir, unsigned dx_set, slots *L) {
    const sn_graph *g = net->g;
    int m[4] = {i, -1, -1, -1}, nm = 1, t = tail_of(net, i), r = residual_of(net, i);
    if (net->fuse && t != i) {
        const sn__fusion *f = &net->fuse[i];
        if (f->affine >= 0) m[nm++] = f->affine;
        if (f->residual >= 0) m[nm++] = f->residual;
        if (f->act >= 0) m[nm++] = f->act;
    }
    L->n = 0;
    L->overflow = false;
    for (int a = 0; a < nm; a++) {
        const sn__node *nd = &g->nodes[m[a]];
        bool reads = dir == 0 || sn__ops[nd->op].bwd_needs_inputs;
        for (int k = 0; k < nd->n_in; k++) {
            int x = nd->in[k];
            if (in_chain(m, nm, x)) continue;
            if (bf(net, x)) {
                if (reads) add_slot(L, &net->val[x], (int64_t)net->numel[x], true, false, false);
                if (dir == 1 && net->grad[x]) {
                    bool set = (a == 0 && k < 31 && ((dx_set >> k) & 1u)) ||
                               (x == r && ((dx_set >> 31) & 1u));
                    add_slot(L, (void **)&net->grad[x], (int64_t)net->numel[x], !set, true,
                             false);
                }
            } else if (reads && a == 0 && k < 2 && product_op(nd->op) &&
                       g->nodes[x].dtype == SN_DTYPE_F32) {
                /* A float32 operand of a product (weights, an image) is rounded: the native
                 * kernels multiply bf16 operands only. */
                add_slot(L, &net->val[x], (int64_t)net->numel[x], true, false, true);
            }
        }
    }
    if (!bf(net, t)) return;
    if (dir == 0) {
        add_slot(L, &net->val[t], (int64_t)net->numel[t], false, true, false);
        return;
    }
    if (sn__ops[g->nodes[i].op].bwd_needs_output || (t != i && net->fuse[i].act >= 0))
        add_slot(L, &net->val[t], (int64_t)net->numel[t], true, false, false);
    if (net->grad[t]) add_slot(L, (void **)&net->grad[t], (int64_t)net->numel[t], true, false,
                               false);
}

/* A slot's scratch: the float32 copy, and for a rounded one the bf16 step after it. */
static size_t slot_bytes(const slot *s) {
    return align_up((size_t)s->n * sizeof(float)) +
           (s->round ? align_up((size_t)s->n * sizeof(sn_bf16)) : 0);
}

static size_t slots_bytes(const slots *L) {
    size_t b = 0;
    for (int j = 0; j < L->n; j++) b += slot_bytes(&L->s[j]);
    return b;
}

/* Whether node i runs at all (folded nodes and leaves do not). */
static bool runs(const sn_net *net, int i) {
    return !is_leaf(&net->g->nodes[i]) && !(net->fuse && net->fuse[i].head >= 0);
}

sn_status sn__bf16_plan(sn_net *net) {
    const sn_graph *g = net->g;
    int n = net->n;
    net->bf16 = calloc((size_t)n + 1, 1);
    net->native16 = calloc((size_t)n + 1, 1);
    if (!net->bf16 || !net->native16)
        return sn__fail(net->ctx, SN_ERR_NOMEM, "compile: out of memory");
    for (int i = 0; i < n; i++) {
        const sn__node *nd = &g->nodes[i];
        net->bf16[i] = !is_leaf(nd) && nd->dtype == SN_DTYPE_F32 && nd->rank >= 1 &&
                       !f32_op(nd->op);
    }
    for (int j = 0; j < n; j++)
        if (f32_op(g->nodes[j].op))
            for (int k = 0; k < g->nodes[j].n_in; k++) net->bf16[g->nodes[j].in[k]] = 0;
    /* Float32 reaches back through reshapes and bias adds: the logits of slim's nets are
     * conv -> bias_add -> squeeze, and their pre-squeeze value is the logits too.  A fused
     * head has no buffer: it writes its tail's, in the tail's storage. */
    for (bool changed = true; changed;) {
        changed = false;
        for (int i = 0; net->fuse && i < n; i++)
            if (net->fuse[i].head < 0 && net->fuse[i].tail != i &&
                net->bf16[i] != net->bf16[net->fuse[i].tail]) {
                net->bf16[i] = net->bf16[net->fuse[i].tail];
                changed = true;
            }
        for (int j = n - 1; j >= 0; j--) {
            const sn__node *nd = &g->nodes[j];
            if ((nd->op != SN__OP_reshape && nd->op != SN__OP_bias_add) || net->bf16[j] ||
                is_leaf(nd) || (net->fuse && net->fuse[j].head >= 0) || !net->bf16[nd->in[0]])
                continue;
            net->bf16[nd->in[0]] = 0;
            changed = true;
        }
    }
    return SN_OK;
}

/* After the arena (grad[] is known): which ops are native, and the scratch size. */
sn_status sn__bf16_alloc(sn_net *net) {
    size_t most = 0;
    slots *L = malloc(sizeof *L);
    if (!L) return sn__fail(net->ctx, SN_ERR_NOMEM, "compile: out of memory");
    for (int i = 0; i < net->n; i++) {
        if (!runs(net, i)) continue;
        const sn__node *nd = &net->g->nodes[i];
        net->native16[i] = native(net, i);
        if (net->native16[i] && nd->op == SN__OP_conv2d) {
            /* A shape the backend has no bf16 algorithm for (cuDNN's bf16 configuration
             * does not take every channel count) runs emulated instead. */
            sn__conv2d_dims cd;
            size_t ws = 0;
            sn__conv_dims(net, i, &cd);
            sn_status st = SN__CALL(net, conv2d_ws_bf16, &cd, &ws);
            if (st == SN_ERR_NOMEM) {
                free(L);
                return st;
            }
            if (st != SN_OK) net->native16[i] = 0;   /* UNSUPPORTED, or cuDNN refusing */
        }
        size_t b = 0;
        if (net->native16[i]) {
            int x = nd->in[0];
            if (nd->op == SN__OP_conv2d && !bf(net, x))   /* the image as bf16 */
                b = align_up(net->numel[x] * sizeof(sn_bf16));
        }
        /* A native convolution may still be refused at its trial run (sn__bf16_confirm)
         * and then runs emulated: room for that too. */
        if (!net->native16[i] || nd->op == SN__OP_conv2d) {
            for (int dir = 0; dir < (net->backward_ok ? 2 : 1); dir++) {
                /* Worst case: no gradient set, every one decoded (same bytes either way). */
                enumerate(net, i, dir, 0u, L);
                if (L->overflow) {
                    char buf[64];
                    free(L);
                    return sn__fail(net->ctx, SN_ERR_UNSUPPORTED, "compile: %s has more than "
                                    "%d bf16 buffers to emulate",
                                    sn__node_label(net->g, i, buf, sizeof buf), MAX_SLOTS);
                }
                size_t s = slots_bytes(L);
                if (s > b) b = s;
            }
        }
        if (b > most) most = b;
    }
    free(L);
    net->emu_bytes = most;
    return most ? SN__CALL(net, alloc, &net->emu, most) : SN_OK;
}

bool sn__bf16_touches(const sn_net *net, int i) {
    slots L;
    for (int dir = 0; dir < (net->backward_ok ? 2 : 1); dir++) {
        enumerate(net, i, dir, 0u, &L);
        for (int j = 0; j < L.n; j++)
            if (!L.s[j].round) return true;
    }
    return false;
}

/* One run of each native convolution's kernels at compile time, on the arena's (still
 * meaningless) buffers: a shape cuDNN's heuristics offered but no bf16 algorithm can run is
 * found here, and the convolution runs emulated instead of failing in the first step.  (The
 * run also does cuDNN's timed algorithm search, which the first step would otherwise do.)
 * The weight gradients it leaves are cleared at the start of every backward. */
sn_status sn__bf16_confirm(sn_net *net) {
    for (int i = 0; i < net->n; i++) {
        if (!net->native16[i] || net->g->nodes[i].op != SN__OP_conv2d) continue;
        sn_status st = sn__op_conv2d_fwd(net, i);
        if (st == SN_OK && net->backward_ok && net->grad[i]) {
            unsigned keep = net->dx_set;
            net->dx_set = 1u;   /* bwd_data with beta 0: writes dx without reading it */
            st = sn__op_conv2d_bwd(net, i);
            net->dx_set = keep;
        }
        if (st == SN_ERR_NOMEM) return st;
        if (st != SN_OK) net->native16[i] = 0;
    }
    return net->k->sync(&net->dev);
}

sn_status sn__bf16_input(sn_net *net, int x, const sn_bf16 **out) {
    if (net->bf16[x]) {
        *out = net->val[x];
        return SN_OK;
    }
    if (net->emu_bytes < net->numel[x] * sizeof(sn_bf16))
        return sn__fail(net->ctx, SN_ERR_STATE, "bf16: no scratch for an input copy");
    *out = net->emu;
    return SN__CALL(net, cast_to_bf16, net->emu, (const float *)net->val[x],
                    (int64_t)net->numel[x]);
}

sn_status sn__bf16_run(sn_net *net, int i, int dir, sn__op_fn fn) {
    if (!net->bf16 || net->native16[i]) return fn(net, i);
    slots L;
    enumerate(net, i, dir, dir ? net->dx_set : 0u, &L);
    if (L.n == 0) return fn(net, i);
    if (L.overflow || slots_bytes(&L) > net->emu_bytes)   /* sized at compile: cannot happen */
        return sn__fail(net->ctx, SN_ERR_STATE, "bf16: emulation scratch too small");
    char *p = net->emu;
    sn_status st = SN_OK;
    for (int j = 0; j < L.n && st == SN_OK; j++) {
        slot *s = &L.s[j];
        s->tmp = (float *)p;
        p += slot_bytes(s);
        if (s->round) {   /* decode(encode(w)), the bf16 step behind the copy */
            sn_bf16 *half = (sn_bf16 *)((char *)s->tmp + align_up((size_t)s->n * sizeof(float)));
            st = SN__CALL(net, cast_to_bf16, half, (const float *)s->orig, s->n);
            if (st == SN_OK) st = SN__CALL(net, cast_from_bf16, s->tmp, half, s->n);
        } else if (s->decode) {
            st = SN__CALL(net, cast_from_bf16, s->tmp, (const sn_bf16 *)s->orig, s->n);
        }
        *s->ptr = s->tmp;
    }
    if (st == SN_OK) st = fn(net, i);
    for (int j = 0; j < L.n; j++) {
        slot *s = &L.s[j];
        *s->ptr = s->orig;
        if (st == SN_OK && s->encode)
            st = SN__CALL(net, cast_to_bf16, (sn_bf16 *)s->orig, s->tmp, s->n);
    }
    return st;
}
