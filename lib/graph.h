/* graph.h: the graph and compiled-net structures shared by lib/graph.c, lib/net.c and the
 * op files lib/op_*.c.  Private to the library. */
#ifndef SN_GRAPH_H
#define SN_GRAPH_H

#include "sn_internal.h"

typedef enum sn__op {
#define SN_OP(name, bwd_in, bwd_out) SN__OP_##name,
#include "ops.def"
#undef SN_OP
    SN__OP_COUNT
} sn__op;

#define SN__MAX_SCOPE_DEPTH 64
#define SN__MAX_DEFAULTS_DEPTH 32
#define SN__SCOPE_LEN 1024

/* Per-op parameters, fixed at build time (the batch size is not known yet). */
typedef union sn__params {
    struct { int64_t stride_h, stride_w, dil_h, dil_w, pad_top, pad_left; } conv;
    struct { int64_t kh, kw, stride_h, stride_w, pad_top, pad_left; } pool;
    struct { float decay, eps; int training, has; } bn;   /* has: BN_HAS_* */
    struct { float keep; int training; } dropout;
    struct { float alpha; } scale;
    struct { int64_t top, bottom, left, right; } pad;
    struct { int radius; float bias, alpha, beta; } lrn;
    struct { float ls; } xent;
    struct { sn_init init; unsigned flags; int index; } var;
} sn__params;

typedef struct sn__node {
    sn__op op;
    sn_dtype dtype;
    int rank;
    int64_t dims[SN_MAX_RANK];     /* dims[0] may be SN_BATCH */
    int n_in;
    sn_node *in;                   /* points at in_small or a heap array */
    sn_node in_small[4];
    char *name;                    /* variables, inputs, layer outputs, end points */
    bool end_point;
    sn__params p;
} sn__node;

struct sn_graph {
    sn_ctx *ctx;
    sn__node *nodes;
    int n_nodes, cap_nodes;
    sn_status err;
    char errmsg[SN_ERRMSG_LEN];
    char scope[SN__SCOPE_LEN];
    int scope_len[SN__MAX_SCOPE_DEPTH];
    int scope_depth;
    sn_defaults defs[SN__MAX_DEFAULTS_DEPTH];
    int defs_depth;                /* defs[defs_depth] is current */
    sn_node *vars;
    int n_vars, cap_vars;
    sn_node *reg;
    int n_reg, cap_reg;
};

/* Records the graph's first error (sticky) and the context message; returns SN_NO_NODE. */
sn_node sn__graph_fail(sn_graph *g, sn_status st, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif

    ;
/* Appends a node of op with inputs; copies dims.  SN_NO_NODE after an error. */
sn_node sn__graph_add(sn_graph *g, sn__op op, sn_dtype dt, int rank, const int64_t *dims,
                      int n_in, const sn_node *in);
/* True if n is a valid node of g; otherwise records an error naming `what`. */
bool sn__graph_check(sn_graph *g, sn_node n, const char *what);
/* Gives node n the name "<scope>/<leaf>" (or leaf at top level). */
void sn__graph_name(sn_graph *g, sn_node n, const char *leaf);
/* Adds a scalar regularization loss to REGULARIZATION_LOSSES. */
void sn__graph_add_reg(sn_graph *g, sn_node loss);

/* A chain of forward nodes run as one kernel call (net.c's plan_fusion).  Two kinds of head:
 *  - in an inference net (compiled without backward), a conv2d, dwconv2d or matmul, then at
 *    most one batch_norm (inference mode) or bias_add (the affine link);
 *  - in any net, a batch_norm in training mode;
 *  - in a training net (compiled with backward), a bias_add;
 * then at most one add of a value computed earlier (a residual), then at most one relu or
 * relu6 (or, for the inference heads only, hard_swish).  The head's kernel applies the folded nodes as its epilogue and writes the chain's
 * last node (the tail); the folded nodes are not run, forward or backward, and neither they
 * nor the head have a buffer of their own.  A batch norm or bias_add head's backward reads
 * the tail's value and gradient and writes the gradients of its inputs and of the
 * residual. */
typedef struct sn__fusion {
    int head;       /* folded nodes: the head that computes them; -1 for every other node */
    int affine;     /* heads: the folded batch_norm or bias_add, or -1 */
    int residual;   /* heads: the folded add, or -1 */
    int act;        /* heads: the folded relu or relu6, or -1 */
    int tail;       /* heads: the node whose buffer the head writes; i itself otherwise */
} sn__fusion;

/* A compiled net: values, gradients and saved state of every node on one device. */
struct sn_net {
    sn_graph *g;
    sn_ctx *ctx;
    const sn__kernels *k;
    sn__dev dev;                   /* the context's device with this net's workspace */
    int64_t batch;
    int64_t example_offset;        /* this net's batch starts at this example of the global
                                    * batch of a data-parallel group (sn_net_set_dist) */
    int n;                         /* node count at compile time */
    int64_t (*dims)[SN_MAX_RANK];  /* resolved dims per node */
    size_t *numel;
    void **val;                    /* value of each node (device memory) */
    float **grad;                  /* gradient, NULL where none is needed */
    float **aux;                   /* op's saved state, NULL where none */
    size_t *aux_floats;
    bool *needs_grad;              /* depends on a trainable variable */
    bool *keep;                    /* value readable after forward (not reused) */
    int *first_writer;             /* node whose backward first writes grad[i], or -1 */
    unsigned dx_set;               /* during one node's backward: bit k set when it is the
                                    * first writer of input k's gradient and should SET it
                                    * (SN__DX_SET); the buffer was not zeroed */
    sn__fusion *fuse;              /* per node; NULL when nothing is fused */
    int n_fused;                   /* nodes folded into a head */
    /* bf16 nets (sn_compile_params.precision, lib/bf16.c); all NULL in float32 nets. */
    unsigned char *bf16;           /* per node: value and gradient stored as bf16 */
    unsigned char *native16;       /* per node: its op calls bf16 kernels itself; the others
                                    * with bf16 values run emulated (sn__bf16_run) */
    void *emu;                     /* scratch of the emulation and of native ops */
    size_t emu_bytes;
    void *params, *grads, *arena, *inputs, *ws;
    sn_dist *dist;                 /* data-parallel group (sn_net_set_dist), or NULL */
    /* A parameter-server worker's hook (lib/dist/ps.c, CPU nets): called with each bucket of
     * the gradient block (bytes lo..hi) as soon as the backward has finished it, where a
     * group's all-reduce would start. */
    sn_status (*grad_hook)(void *arg, size_t lo, size_t hi);
    void *grad_arg;
    struct sn__bucket *buckets;    /* its gradient buckets in launch order (CPU nets) */
    int n_buckets;
    void *dist_host;               /* host copy of params/grads for a device net's group */
    sn_net_memory mem;
    bool backward_ok;
    bool forward_done;
    int64_t step;
    bool profile;                  /* time every node (sn_net_set_profile) */
    double prof_s[SN__OP_COUNT][2];/* seconds per op type: forward, backward */
    int64_t prof_n[SN__OP_COUNT][2];
};

typedef sn_status (*sn__op_fn)(sn_net *net, int i);
typedef struct sn__opdef {
    const char *name;
    sn__op_fn fwd, bwd;
    bool bwd_needs_inputs, bwd_needs_output;
} sn__opdef;
extern const sn__opdef sn__ops[SN__OP_COUNT];

#define SN_OP(name, bwd_in, bwd_out)              \
    sn_status sn__op_##name##_fwd(sn_net *net, int i); \
    sn_status sn__op_##name##_bwd(sn_net *net, int i);
#include "ops.def"
#undef SN_OP

/* Whether node i heads a fused chain; if so fills *ep with its epilogue and *y with the
 * buffer it writes (the tail's).  Ops with a fused kernel ask this in their forward. */
bool sn__fused_epilogue(const sn_net *net, int i, sn__epilogue *ep, float **y);
/* What a training net's fused head (batch_norm in training mode or bias_add) reads and
 * writes besides its own inputs and saved state (bn_train_fwd_ep, bn_train_bwd_ep,
 * bias_fwd_ep, bias_bwd_ep in kernels.def). */
typedef struct sn__chain {
    float *y, *dy;            /* the tail's value and gradient (dy NULL without one) */
    const float *residual;    /* the folded add's other operand, or NULL */
    float *dres;              /* its gradient, or NULL */
    int act;                  /* sn__act */
} sn__chain;
/* Whether node i heads a training net's fused chain; if so fills *c. */
bool sn__fused_chain(const sn_net *net, int i, sn__chain *c);
/* The batch-norm part of an epilogue from batch_norm node i's inputs (op_norm.c). */
void sn__bn_epilogue(const sn_net *net, int i, sn__epilogue *ep);

/* The pooling geometry of pool node i (op_pool.c). */
void sn__pool_geometry(const sn_net *net, int i, sn__pool_dims *pd);

/* Saved-state size of node i in floats (0 for most ops), given resolved dims. */
size_t sn__op_aux_floats(const sn_net *net, int i);
/* Workspace bytes node i needs on the net's device. */
sn_status sn__op_ws_bytes(sn_net *net, int i, size_t *bytes);

/* ---- bf16 storage (lib/bf16.c) ---- */
/* Bytes per element of node i's value and gradient buffers. */
static inline size_t sn__esize(const sn_net *net, int i) {
    return net->bf16 && net->bf16[i] ? 2 : sn_dtype_size(net->g->nodes[i].dtype);
}
/* Whether node i's op runs its bf16 kernels (its fwd/bwd then branch on this). */
static inline bool sn__bf16_native(const sn_net *net, int i) {
    return net->native16 && net->native16[i];
}
/* Chooses the storage of every node and which ops run bf16 kernels (after plan_fusion,
 * before the arena and workspace are planned). */
sn_status sn__bf16_plan(sn_net *net);
/* Allocates the scratch the emulation and the native ops need (after the arena). */
sn_status sn__bf16_alloc(sn_net *net);
/* Runs each native convolution once (after the workspace): one that fails runs emulated. */
sn_status sn__bf16_confirm(sn_net *net);
/* Runs node i's forward (dir 0) or backward (dir 1) through fn: directly when its op is
 * native or touches no bf16 buffer, else on float32 copies of its bf16 buffers. */
sn_status sn__bf16_run(sn_net *net, int i, int dir, sn__op_fn fn);
/* Whether node i (run emulated) has any bf16 buffer to convert, forward or backward. */
bool sn__bf16_touches(const sn_net *net, int i);
/* The bf16 scratch of a native op: node x's float32 value as bf16 (conv2d's input image). */
sn_status sn__bf16_input(sn_net *net, int x, const sn_bf16 **out);

/* Helpers for op files. */
#define SN__X(net, i, j) ((const float *)(net)->val[(net)->g->nodes[i].in[j]])
#define SN__Y(net, i) ((float *)(net)->val[i])
#define SN__DX(net, i, j) ((net)->grad[(net)->g->nodes[i].in[j]])
#define SN__DY(net, i) ((const float *)(net)->grad[i])
/* Whether the running backward must set (overwrite) input k's gradient instead of adding to
 * it: only for ops listed in net.c's set_slots, which honor it. */
#define SN__DX_SET(net, k) ((k) < 31 && (((net)->dx_set >> (k)) & 1u))
/* A training net's fused head's backward: whether it sets its chain's residual gradient (the
 * folded add was that gradient's first writer, and left it unzeroed for the head). */
#define SN__DRES_SET(net) (((net)->dx_set >> 31) & 1u)
/* Passes node i's output gradient (n floats) to input k's: a copy when set, else added. */
sn_status sn__grad_pass(sn_net *net, int i, int k, int64_t n);
#define SN__KERNEL(net, name) ((net)->k->name)
/* A node's value or gradient as bf16 storage (native bf16 ops only). */
#define SN__V16(net, n) ((sn_bf16 *)(net)->val[n])
#define SN__G16(net, n) ((sn_bf16 *)(void *)(net)->grad[n])
/* Calls kernel `name` of the net's backend, SN_ERR_UNSUPPORTED when it lacks one. */
#define SN__CALL(net, name, ...)                                                  \
    ((net)->k->name ? (net)->k->name(&(net)->dev, __VA_ARGS__)                    \
                    : sn__fail((net)->ctx, SN_ERR_UNSUPPORTED,                    \
                               "kernel %s is not implemented on this backend", #name))

const sn__kernels *sn__backend_kernels(int backend);
sn_status sn__backend_open(sn_ctx *ctx);
void sn__backend_close(sn_ctx *ctx);



/* TF's output size and leading padding for one spatial axis: SAME gives ceil(in/s) with
 * pad_total = max((out-1)*s + k_eff - in, 0) and floor(pad_total/2) before; VALID gives
 * floor((in-k_eff)/s)+1 and no padding.  False if VALID leaves no output. */
static inline bool sn__tf_padding(int64_t in, int64_t k, int64_t s, int64_t dil,
                                  sn_padding pad, int64_t *out, int64_t *before) {
    int64_t k_eff = (k - 1) * dil + 1;
    if (pad == SN_PAD_SAME) {
        *out = (in + s - 1) / s;
        int64_t total = (*out - 1) * s + k_eff - in;
        *before = total > 0 ? total / 2 : 0;
        return *out > 0;
    }
    if (in < k_eff) return false;
    *out = (in - k_eff) / s + 1;
    *before = 0;
    return true;
}

/* Name of node n for messages: its name, else "<op> node #n". */
const char *sn__node_label(const sn_graph *g, sn_node n, char *buf, size_t len);
void sn__conv_dims(const sn_net *net, int i, sn__conv2d_dims *cd);
#endif
