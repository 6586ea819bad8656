/* slimnet.h: the one public header of libslimnet.
 *
 * slimnet is TF-slim's image-classification stack in C11: a static graph of TF-slim layers
 * with TF-slim's variable names, compiled for a device (CPU or CUDA) and a batch size, run
 * forward and backward.  Layout is TensorFlow's: activations NHWC, conv weights HWIO,
 * depthwise weights (kh, kw, in, multiplier), dense weights [in, out], so a checkpoint
 * tensor is used exactly as TensorFlow stores it.
 *
 * A whole program, in short:
 *
 *     sn_ctx *ctx;  sn_ctx_params cp = sn_ctx_params_default();
 *     sn_ctx_new(&cp, &ctx);
 *     sn_graph *g;  sn_graph_new(ctx, &g);
 *     int64_t in_dims[4] = {SN_BATCH, 28, 28, 1};
 *     sn_node x = sn_input(g, "images", SN_DTYPE_F32, 4, in_dims);
 *     sn_scope_push(g, "LeNet");
 *     sn_node h = sn_conv2d(g, x, 32, 5, 5, 1, "conv1");     // LeNet/conv1/weights, biases
 *     ...
 *     sn_scope_pop(g);
 *     if (sn_graph_status(g) != SN_OK) puts(sn_ctx_errmsg(ctx));  // first builder error
 *     sn_net *net;  sn_compile_params pp = sn_compile_params_default();
 *     pp.batch_size = 32;
 *     sn_net_compile(g, &pp, &net);
 *     sn_net_set_input(net, x, images);  sn_net_forward(net);  sn_net_backward(net, loss);
 *
 * Conventions
 *  - Every fallible call returns sn_status (SN_OK = 0, errors negative).  The detail is in
 *    sn_ctx_errmsg(ctx), owned by the context, valid until the next failing call on it.
 *  - The library never exits, aborts or prints; it logs through the callback in
 *    sn_ctx_params (silent by default).  It holds no global state: contexts are independent,
 *    and one context with its graphs and nets is used from one thread at a time.
 *  - Objects are created by the _new and _compile calls into an out-parameter and released by _free;
 *    every _free accepts NULL.
 *  - Graph builders return an sn_node and record the FIRST error in the graph (sticky, like
 *    a stream's error flag): after an error, builders return SN_NO_NODE and do nothing, and
 *    sn_graph_status() / sn_net_compile() report it.  Network code therefore reads like
 *    TF-slim's Python, one layer a line, and checks once.
 */
#ifndef SLIMNET_H
#define SLIMNET_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define SN_API __declspec(dllexport)
#elif defined(__GNUC__)
#define SN_API __attribute__((visibility("default")))
#else
#define SN_API
#endif

#define SN_VERSION_MAJOR 0
#define SN_VERSION_MINOR 1
#define SN_VERSION_PATCH 0
/* "MAJOR.MINOR.PATCH" of the library actually loaded. */
SN_API const char *sn_version(void);

/* ---- status ------------------------------------------------------------------------------ */

#define SN_STATUS_LIST(X)                                                   \
    X(SN_OK,               0, "ok")                                         \
    X(SN_ERR_NOMEM,       -1, "out of memory")                              \
    X(SN_ERR_INVALID_ARG, -2, "invalid argument")                           \
    X(SN_ERR_SHAPE,       -3, "shape mismatch")                             \
    X(SN_ERR_IO,          -4, "I/O error")                                  \
    X(SN_ERR_FORMAT,      -5, "malformed data")                             \
    X(SN_ERR_UNSUPPORTED, -6, "not supported on this backend")              \
    X(SN_ERR_CUDA,        -7, "CUDA error")                                 \
    X(SN_ERR_NO_DEVICE,   -8, "no CUDA device")                             \
    X(SN_ERR_NOT_FOUND,   -9, "not found")                                  \
    X(SN_ERR_STATE,      -10, "call not valid in this state")               \
    X(SN_ERR_NUMERIC,    -11, "non-finite value")                           \
    X(SN_ERR_TIMEOUT,    -12, "timed out")

typedef enum sn_status {
#define SN__STATUS_ENUM(name, value, text) name = value,
    SN_STATUS_LIST(SN__STATUS_ENUM)
#undef SN__STATUS_ENUM
} sn_status;

/* "SN_ERR_SHAPE" and "shape mismatch"; "SN_UNKNOWN"/"unknown status" for other values. */
SN_API const char *sn_status_name(sn_status st);
SN_API const char *sn_status_str(sn_status st);

/* ---- context ----------------------------------------------------------------------------- */

typedef enum sn_device { SN_DEVICE_CPU = 0, SN_DEVICE_CUDA = 1 } sn_device;
typedef enum sn_log_level {
    SN_LOG_DEBUG = 0, SN_LOG_INFO = 1, SN_LOG_WARN = 2, SN_LOG_ERROR = 3
} sn_log_level;
/* msg is a single line without a trailing newline, valid during the call only. */
typedef void (*sn_log_fn)(void *user, sn_log_level level, const char *msg);

typedef struct sn_ctx sn_ctx;

typedef struct sn_ctx_params {
    sn_device device;     /* SN_DEVICE_CPU (default) or SN_DEVICE_CUDA */
    int device_index;     /* CUDA device ordinal, default 0 */
    int threads;          /* CPU threads; 0 (default) = all cores */
    uint64_t seed;        /* variable initialization and dropout; default 0 */
    sn_log_fn log;        /* NULL (default): silent */
    void *log_user;
    sn_log_level log_level; /* messages below this level are dropped; default SN_LOG_INFO */
    int allow_tf32;       /* CUDA: float32 convolutions and matmuls may use TF32 tensor cores
                           * (10-bit mantissa inputs, float32 accumulation), as TensorFlow
                           * does by default on Ampere and later; 0 = strict float32.
                           * Default 1.  No effect on CPU. */
    int deterministic;    /* CUDA: choose cuDNN algorithms by heuristics instead of timing
                           * them, and only those cuDNN reports deterministic (none that add
                           * with atomics), so the same inputs give the same bits every run;
                           * slimnet's own kernels always are.  Default 0. */
} sn_ctx_params;

/* Defaults as documented above; new fields keep their defaults in old programs. */
SN_API sn_ctx_params sn_ctx_params_default(void);
/* Creates a context.  SN_ERR_NO_DEVICE when CUDA is asked for and no usable device exists
 * (or the library was built without CUDA), SN_ERR_INVALID_ARG for bad parameters.  As
 * SQLite's open does, a failed call other than SN_ERR_NOMEM still returns a context in *out
 * so that sn_ctx_errmsg() can explain; free it with sn_ctx_free(). */
SN_API sn_status sn_ctx_new(const sn_ctx_params *p, sn_ctx **out);
SN_API void sn_ctx_free(sn_ctx *ctx);
/* Message of the last failure on ctx ("" if none).  Owned by ctx. */
SN_API const char *sn_ctx_errmsg(const sn_ctx *ctx);
SN_API sn_device sn_ctx_device(const sn_ctx *ctx);
/* Number of usable CUDA devices: 0 without a GPU, a driver, or CUDA support in this build. */
SN_API int sn_cuda_device_count(void);
/* One line about the context's device: "CPU, N threads" or, for CUDA,
 * "driver 13.0, runtime 13.0, cuDNN 9.x, NVIDIA H100, compute capability 9.0". */
SN_API sn_status sn_ctx_device_info(sn_ctx *ctx, char *buf, size_t len);

/* ---- tensors (host memory) --------------------------------------------------------------- */

typedef enum sn_dtype {
    SN_DTYPE_F32 = 0, SN_DTYPE_I32 = 1, SN_DTYPE_I64 = 2, SN_DTYPE_U8 = 3
} sn_dtype;
#define SN_MAX_RANK 8
/* Size in bytes of one element; "float32", "int32", "int64", "uint8". */
SN_API size_t sn_dtype_size(sn_dtype dt);
SN_API const char *sn_dtype_name(sn_dtype dt);

typedef struct sn_tensor sn_tensor;
typedef enum sn_ownership {
    SN_BORROW = 0,   /* the tensor points at the caller's memory, which must outlive it */
    SN_COPY = 1      /* the tensor copies the data now and owns the copy */
} sn_ownership;

/* New zero-filled host tensor.  rank 0..SN_MAX_RANK, every dim >= 0.
 * SN_ERR_INVALID_ARG (rank, dims, dtype), SN_ERR_NOMEM. */
SN_API sn_status sn_tensor_new(sn_ctx *ctx, sn_dtype dt, int rank, const int64_t *dims,
                               sn_tensor **out);
/* sn_tensor_new in memory ctx's device reads directly: page-locked host memory on a CUDA
 * context (ordinary memory when the system has none to give, or on a CPU context).  Feed a
 * batch through one: sn_net_set_input then starts the device's copy from it at once, on a
 * copy stream that overlaps the device's work, instead of first copying it into a staging
 * buffer (~12 ms for a 77 MB batch on one H200 machine).  Free it before its context. */
SN_API sn_status sn_tensor_new_pinned(sn_ctx *ctx, sn_dtype dt, int rank, const int64_t *dims,
                                      sn_tensor **out);
/* Tensor over caller memory (SN_BORROW) or a copy of it (SN_COPY). */
SN_API sn_status sn_tensor_wrap(sn_ctx *ctx, void *data, sn_dtype dt, int rank,
                                const int64_t *dims, sn_ownership own, sn_tensor **out);
SN_API void sn_tensor_free(sn_tensor *t);
SN_API void *sn_tensor_data(const sn_tensor *t);
SN_API sn_dtype sn_tensor_dtype(const sn_tensor *t);
SN_API int sn_tensor_rank(const sn_tensor *t);
SN_API int64_t sn_tensor_dim(const sn_tensor *t, int i);   /* 0 if i is out of range */
SN_API int64_t sn_tensor_numel(const sn_tensor *t);
SN_API size_t sn_tensor_nbytes(const sn_tensor *t);
/* Copies src into dst: same dtype and element count (shapes may differ, as a reshape).
 * SN_ERR_SHAPE otherwise, reported on dst's context. */
SN_API sn_status sn_tensor_copy(sn_tensor *dst, const sn_tensor *src);

/* ---- initializers (TensorFlow's definitions) -------------------------------------------- */

typedef enum sn_init_kind {
    SN_INIT_ZEROS, SN_INIT_ONES, SN_INIT_CONSTANT,
    SN_INIT_TRUNCATED_NORMAL,   /* N(mean, stddev), redrawn beyond 2 stddev */
    SN_INIT_RANDOM_NORMAL,
    SN_INIT_RANDOM_UNIFORM,     /* U[minval, maxval) */
    SN_INIT_VARIANCE_SCALING    /* TF-slim's variance_scaling_initializer, see below */
} sn_init_kind;
typedef enum sn_fan_mode { SN_FAN_IN = 0, SN_FAN_OUT = 1, SN_FAN_AVG = 2 } sn_fan_mode;

/* Variance scaling (tf_slim.layers.variance_scaling_initializer), with fan_in = product of
 * all dims but the last (kh*kw*in for conv weights), fan_out = kh*kw*out:
 *   n = fan_in, fan_out or their mean by mode;
 *   uniform:  U(-sqrt(3*factor/n), +sqrt(3*factor/n));
 *   normal:   truncated normal with stddev sqrt(1.3*factor/n).
 * xavier_initializer(uniform) is variance scaling with factor 1, SN_FAN_AVG. */
typedef struct sn_init {
    sn_init_kind kind;
    float value;            /* CONSTANT */
    float mean, stddev;     /* TRUNCATED_NORMAL, RANDOM_NORMAL */
    float minval, maxval;   /* RANDOM_UNIFORM */
    float factor;           /* VARIANCE_SCALING */
    sn_fan_mode mode;       /* VARIANCE_SCALING */
    int uniform;            /* VARIANCE_SCALING */
} sn_init;

SN_API sn_init sn_init_zeros(void);
SN_API sn_init sn_init_ones(void);
SN_API sn_init sn_init_constant(float value);
SN_API sn_init sn_init_truncated_normal(float mean, float stddev);
SN_API sn_init sn_init_random_normal(float mean, float stddev);
SN_API sn_init sn_init_random_uniform(float minval, float maxval);
SN_API sn_init sn_init_variance_scaling(float factor, sn_fan_mode mode, int uniform);
/* xavier_initializer / glorot: variance scaling with factor 1 and SN_FAN_AVG. */
SN_API sn_init sn_init_xavier(int uniform);

/* Fills data (numel floats, shape dims) as init says, deterministically from seed.
 * The same (init, dims, seed) gives the same values on every machine. */
SN_API sn_status sn_init_fill(sn_ctx *ctx, const sn_init *init, int rank, const int64_t *dims,
                              uint64_t seed, float *data);

/* ---- graph ------------------------------------------------------------------------------- */

typedef struct sn_graph sn_graph;
typedef int32_t sn_node;          /* index of a node in its graph */
#define SN_NO_NODE ((sn_node)-1)
#define SN_BATCH ((int64_t)-1)    /* the batch dimension, fixed at sn_net_compile() */

typedef enum sn_padding { SN_PAD_SAME = 0, SN_PAD_VALID = 1 } sn_padding;
/* A layer's activation_fn: none, tf.nn.relu, tf.nn.relu6, or MobileNet v3's hard swish and
 * hard sigmoid (sn_op_hard_swish, sn_op_hard_sigmoid). */
typedef enum sn_activation {
    SN_ACT_NONE = 0, SN_ACT_RELU = 1, SN_ACT_RELU6 = 2, SN_ACT_HARD_SWISH = 3,
    SN_ACT_HARD_SIGMOID = 4
} sn_activation;

/* Variable collections, as TF's graph collections.  A variable may be in several. */
enum {
    SN_VAR_TRAINABLE = 1,   /* TRAINABLE_VARIABLES: receives gradients */
    SN_VAR_MODEL = 2,       /* MODEL_VARIABLES: weights, biases, BN statistics */
    SN_VAR_MOVING = 4,      /* batch-norm moving_mean / moving_variance */
    SN_VAR_GLOBAL = 8       /* GLOBAL_VARIABLES only (global_step, optimizer slots) */
};

/* A graph is built once, by code, and compiled into nets.  It borrows ctx. */
SN_API sn_status sn_graph_new(sn_ctx *ctx, sn_graph **out);
SN_API void sn_graph_free(sn_graph *g);
/* SN_OK, or the first error a builder met (its message is in sn_graph_errmsg). */
SN_API sn_status sn_graph_status(const sn_graph *g);
SN_API const char *sn_graph_errmsg(const sn_graph *g);
SN_API sn_ctx *sn_graph_ctx(const sn_graph *g);
/* Records an error found by the caller's own builder code (first error wins, as for the
 * library's builders); returns SN_NO_NODE. */
SN_API sn_node sn_graph_fail(sn_graph *g, sn_status st, const char *msg);

/* Name scopes.  Variables are named "<scope>/<scope>/.../<name>", exactly TF-slim's
 * variable_scope path, e.g. "resnet_v1_50/block1/unit_1/bottleneck_v1/conv1/weights".
 * A scope name may itself contain '/'.  push/pop must pair. */
SN_API void sn_scope_push(sn_graph *g, const char *name);
SN_API void sn_scope_pop(sn_graph *g);
/* The current scope path ("" at top level), owned by g, valid until the next push/pop. */
SN_API const char *sn_scope_current(const sn_graph *g);

/* Node facts.  Shapes use SN_BATCH for the batch dimension until compiled. */
SN_API int sn_node_rank(const sn_graph *g, sn_node n);
SN_API int64_t sn_node_dim(const sn_graph *g, sn_node n, int i);
SN_API sn_dtype sn_node_dtype(const sn_graph *g, sn_node n);
/* The node's full name: a variable's checkpoint name, or the scope path of a layer output. */
SN_API const char *sn_node_name(const sn_graph *g, sn_node n);
/* The node named `name` (a variable, an input, or a layer output registered as an end
 * point), or SN_NO_NODE. */
SN_API sn_node sn_graph_find(const sn_graph *g, const char *name);
/* Marks n as an end point under `name` (full name, e.g. "resnet_v1_50/block1"): the node
 * is then kept alive by the memory planner and readable with sn_net_get_output(). */
SN_API void sn_graph_end_point(sn_graph *g, sn_node n, const char *name);
/* The end points in creation order (inputs included): returns how many there are and
 * writes the first min(count, cap) into out (out may be NULL to count). */
SN_API int sn_graph_end_points(const sn_graph *g, sn_node *out, int cap);

/* A graph input.  dims[0] may be SN_BATCH.  dtype SN_DTYPE_F32 (images) or SN_DTYPE_I32
 * (labels).  The name is not scoped. */
SN_API sn_node sn_input(sn_graph *g, const char *name, sn_dtype dt, int rank,
                        const int64_t *dims);
/* A float32 variable "<current scope>/<name>".  flags from SN_VAR_*.  A second variable of
 * the same full name is an error (SN_ERR_INVALID_ARG). */
SN_API sn_node sn_variable(sn_graph *g, const char *name, int rank, const int64_t *dims,
                           const sn_init *init, unsigned flags);

/* Variables, in creation order (the order TF-slim creates them). */
typedef struct sn_var_info {
    const char *name;       /* full name, owned by the graph */
    int rank;
    int64_t dims[SN_MAX_RANK];
    unsigned flags;         /* SN_VAR_* */
    sn_node node;
} sn_var_info;
SN_API int sn_graph_num_vars(const sn_graph *g);
SN_API sn_status sn_graph_var(const sn_graph *g, int i, sn_var_info *info);

/* ---- ops: one graph node each, with TensorFlow's semantics ------------------------------- */

/* Convolution, x (N,H,W,C) with w (kh,kw,C,K).  SAME pads as TF (total padding
 * max((out-1)*stride + kh_eff - in, 0), the odd cell at the bottom/right); VALID does not.
 * rate > 1 is atrous (dilated) convolution, TF requires stride 1 then. */
SN_API sn_node sn_op_conv2d(sn_graph *g, sn_node x, sn_node w, int stride_h, int stride_w,
                            int rate, sn_padding pad);
/* Depthwise convolution, w (kh,kw,C,M): output channel c*M+m. */
SN_API sn_node sn_op_depthwise_conv2d(sn_graph *g, sn_node x, sn_node w, int stride_h,
                                      int stride_w, int rate, sn_padding pad);
/* x (N, in) @ w (in, out). */
SN_API sn_node sn_op_matmul(sn_graph *g, sn_node x, sn_node w);
/* x (..., C) + b (C). */
SN_API sn_node sn_op_bias_add(sn_graph *g, sn_node x, sn_node b);
SN_API sn_node sn_op_relu(sn_graph *g, sn_node x);
SN_API sn_node sn_op_relu6(sn_graph *g, sn_node x);
/* MobileNet v3's activations, as research/slim's mobilenet_v3.py defines them:
 * hard_swish(x) = x * relu6(x + 3) * (1/6), and the squeeze-excite gate
 * hard_sigmoid(x) = relu6(x + 3) * 0.16667 (TF-slim's literal constant, not 1/6).  Their
 * gradients are TensorFlow's of those expressions (none through relu6 where x + 3 is at or
 * outside [0, 6]). */
SN_API sn_node sn_op_hard_swish(sn_graph *g, sn_node x);
SN_API sn_node sn_op_hard_sigmoid(sn_graph *g, sn_node x);
/* The squeeze-excite product x * gate: x (N,H,W,C), gate (N,1,1,C), one factor per example
 * and channel, broadcast over H and W (TF's x * gate). */
SN_API sn_node sn_op_channel_gate(sn_graph *g, sn_node x, sn_node gate);
SN_API sn_node sn_op_max_pool(sn_graph *g, sn_node x, int kh, int kw, int stride_h,
                              int stride_w, sn_padding pad);
/* SAME average pooling divides by the number of in-bounds cells, as TF does. */
SN_API sn_node sn_op_avg_pool(sn_graph *g, sn_node x, int kh, int kw, int stride_h,
                              int stride_w, sn_padding pad);
/* Batch normalization over all axes but the last.  gamma/beta may be SN_NO_NODE (scale or
 * center off).  training: normalize with the batch mean and biased variance and update the
 * moving statistics in place during each forward pass (moving = moving*decay +
 * batch*(1-decay), the variance Bessel-corrected as TF's fused batch norm does); otherwise
 * normalize with the moving statistics. */
SN_API sn_node sn_op_batch_norm(sn_graph *g, sn_node x, sn_node gamma, sn_node beta,
                                sn_node moving_mean, sn_node moving_var, float decay,
                                float epsilon, int training);
/* Inverted dropout when training (keep with probability keep_prob, scale by 1/keep_prob);
 * identity otherwise.  The mask is drawn from the context seed, the node and the step. */
SN_API sn_node sn_op_dropout(sn_graph *g, sn_node x, float keep_prob, int training);
/* Concatenation along the last axis (channels); all other dims equal. */
SN_API sn_node sn_op_concat(sn_graph *g, int n, const sn_node *xs);
SN_API sn_node sn_op_add(sn_graph *g, sn_node a, sn_node b);
/* alpha * x. */
SN_API sn_node sn_op_scale(sn_graph *g, sn_node x, float alpha);
/* Zero padding of H and W of an NHWC tensor. */
SN_API sn_node sn_op_pad(sn_graph *g, sn_node x, int top, int bottom, int left, int right);
/* Same data, new shape (element count must match; dims[0] may be SN_BATCH). */
SN_API sn_node sn_op_reshape(sn_graph *g, sn_node x, int rank, const int64_t *dims);
/* (N, H, W, C) -> (N, H*W*C), in NHWC order as slim.flatten. */
SN_API sn_node sn_op_flatten(sn_graph *g, sn_node x);
/* (N, 1, 1, C) -> (N, C); SN_ERR_SHAPE if H or W is not 1. */
SN_API sn_node sn_op_squeeze(sn_graph *g, sn_node x);
/* Mean over H and W: (N,H,W,C) -> (N,1,1,C) with keepdims, else (N,C). */
SN_API sn_node sn_op_spatial_mean(sn_graph *g, sn_node x, int keepdims);
/* Local response normalization (tf.nn.lrn): depth_radius, bias, alpha, beta. */
SN_API sn_node sn_op_lrn(sn_graph *g, sn_node x, int depth_radius, float bias, float alpha,
                         float beta);
/* Softmax over the last axis of (N, C). */
SN_API sn_node sn_op_softmax(sn_graph *g, sn_node logits);
/* Scalar: batch mean of the softmax cross-entropy of logits (N, C) against int32 labels
 * (N), with label smoothing ls (targets onehot*(1-ls) + ls/C), as
 * tf.losses.softmax_cross_entropy. */
SN_API sn_node sn_op_softmax_xent(sn_graph *g, sn_node logits, sn_node labels, float ls);
/* Scalar: scale * sum(w^2) / 2, slim.l2_regularizer(scale). */
SN_API sn_node sn_op_l2_loss(sn_graph *g, sn_node w, float scale);
/* Scalar: sum of n scalar nodes (total loss). */
SN_API sn_node sn_op_add_n(sn_graph *g, int n, const sn_node *xs);

/* ---- layers: TF-slim's, with arg_scope defaults ------------------------------------------ */

/* The defaults a layer takes when the call does not say otherwise: TF-slim's arg_scope.
 * sn_defaults_push() saves the current defaults (an arg_scope opening), the caller changes
 * them through sn_graph_defaults(), sn_defaults_pop() restores them. */
typedef struct sn_defaults {
    sn_init weights_init;       /* conv, separable, fully_connected.  xavier uniform */
    sn_init biases_init;        /* zeros */
    float weight_decay;         /* l2 regularizer scale on weights; 0 = none */
    int regularize_biases;      /* also regularize biases (inception_resnet_v2); 0 */
    int regularize_depthwise;   /* regularize depthwise_weights too; 1 (MobileNet sets 0) */
    sn_activation activation;   /* relu */
    int batch_norm;             /* normalizer_fn = batch_norm: no biases then; 0 */
    float bn_decay;             /* 0.999 */
    float bn_epsilon;           /* 0.001 */
    int bn_center;              /* beta; 1 */
    int bn_scale;               /* gamma; 0 */
    sn_padding conv_padding;    /* SAME */
    sn_padding pool_padding;    /* VALID */
    int pool_stride;            /* 2 */
    int is_training;            /* batch norm and dropout; 1 */
    int trainable;              /* 1 */
} sn_defaults;

/* TF-slim's own defaults, as listed above. */
SN_API sn_defaults sn_defaults_slim(void);
/* The graph's current defaults; change fields to change what later layers get. */
SN_API sn_defaults *sn_graph_defaults(sn_graph *g);
SN_API void sn_defaults_push(sn_graph *g);
SN_API void sn_defaults_pop(sn_graph *g);

/* Per-call settings of a convolution-like layer; *_from() fills them from the current
 * defaults, the caller overrides fields (as keyword arguments in slim). */
typedef struct sn_conv_params {
    int num_outputs;            /* K; for separable convolutions 0 = depthwise only */
    int kh, kw;
    int stride_h, stride_w;
    int rate;                   /* dilation */
    int depth_multiplier;       /* separable only */
    sn_padding padding;
    sn_activation activation;
    int batch_norm;             /* normalizer_fn = batch_norm */
    int biases;                 /* create biases (default: !batch_norm) */
    sn_init weights_init;
    sn_init biases_init;
    float weight_decay;
    int trainable;
} sn_conv_params;
SN_API sn_conv_params sn_conv_params_from(const sn_graph *g, int num_outputs, int kh, int kw,
                                          int stride);

/* slim.conv2d under scope `scope`: conv (weights [kh,kw,C,K]), then biases or batch norm
 * ("<scope>/BatchNorm/..."), then the activation.  Returns the activation output. */
SN_API sn_node sn_conv2d(sn_graph *g, sn_node x, int num_outputs, int kh, int kw, int stride,
                         const char *scope);
SN_API sn_node sn_conv2d_p(sn_graph *g, sn_node x, const sn_conv_params *p,
                           const char *scope);
/* slim.separable_conv2d: depthwise_weights [kh,kw,C,mult], then pointwise_weights
 * [1,1,C*mult,K] unless num_outputs is 0; then biases or batch norm; then activation. */
SN_API sn_node sn_separable_conv2d_p(sn_graph *g, sn_node x, const sn_conv_params *p,
                                     const char *scope);
/* slim.fully_connected: weights [in, out] on a rank-2 input. */
SN_API sn_node sn_fully_connected(sn_graph *g, sn_node x, int num_outputs, const char *scope);
SN_API sn_node sn_fully_connected_p(sn_graph *g, sn_node x, const sn_conv_params *p,
                                    const char *scope);
/* slim.batch_norm under `scope` with the current defaults (decay, epsilon, center, scale,
 * is_training): variables <scope>/{beta,gamma,moving_mean,moving_variance}. */
SN_API sn_node sn_batch_norm(sn_graph *g, sn_node x, const char *scope);
/* slim.max_pool2d / avg_pool2d with the default padding (VALID) unless told. */
SN_API sn_node sn_max_pool2d(sn_graph *g, sn_node x, int k, int stride, sn_padding pad,
                             const char *scope);
SN_API sn_node sn_avg_pool2d(sn_graph *g, sn_node x, int k, int stride, sn_padding pad,
                             const char *scope);
/* slim.dropout with the current is_training. */
SN_API sn_node sn_dropout(sn_graph *g, sn_node x, float keep_prob, const char *scope);
/* The regularization losses the layers added so far (REGULARIZATION_LOSSES), as scalar
 * nodes; *n receives the count.  Owned by the graph; valid until the next builder call. */
SN_API const sn_node *sn_graph_regularization_losses(const sn_graph *g, int *n);

/* ---- compiled nets ----------------------------------------------------------------------- */

typedef struct sn_net sn_net;

/* How a compiled net stores activations.
 *  SN_PRECISION_FP32: everything float32 (on CUDA, products on TF32 tensor cores where the
 *    context allows it: sn_ctx_params.allow_tf32).
 *  SN_PRECISION_BF16: mixed precision.  Activations and their gradients are stored in
 *    bfloat16 (8-bit mantissa, float32's exponent range, so no loss scaling is needed);
 *    convolutions and matmuls multiply bf16 operands (the float32 weights rounded to bf16 on
 *    the way in) and accumulate in float32 (depthwise ones keep float32 weights); every other op computes in float32 on the decoded values and
 *    rounds its output once.  Variables, their gradients, optimizer slots, batch statistics and
 *    losses stay float32, as do the logits and whatever feeds a loss or softmax.  Outputs read
 *    with sn_net_get_output are decoded to float32.  On CUDA the convolutions, depthwise
 *    convolutions, training batch norm and bias chains, pooling, padding and concat have bf16
 *    kernels; every other op (and every op on the CPU) runs its float32 kernel on decoded
 *    copies, which gives the same values. */
typedef enum sn_precision { SN_PRECISION_FP32 = 0, SN_PRECISION_BF16 = 1 } sn_precision;

typedef struct sn_compile_params {
    int64_t batch_size;     /* replaces SN_BATCH; default 1 */
    int backward;           /* allocate gradients, allow sn_net_backward(); default 1 */
    int fuse;               /* default 1: run chains of nodes as one kernel, forward and
                             * backward, wherever the values in between have no other
                             * consumer and are not end points, so nothing readable
                             * changes (on the CPU, every value and gradient is the unfused
                             * net's bit for bit).  Any net: a batch norm in training mode
                             * followed by an add and/or a relu or relu6.  With backward 0
                             * also: a convolution, depthwise convolution or matmul followed
                             * by an inference batch norm or a bias add, an add and/or a
                             * relu or relu6.  0: every node runs alone (tests, A/B). */
    int precision;          /* sn_precision; default SN_PRECISION_FP32 */
} sn_compile_params;
SN_API sn_compile_params sn_compile_params_default(void);

/* Compiles g for the context's device: resolves the batch size, checks every shape,
 * plans activation memory (one arena, buffers reused by liveness), allocates parameters
 * and gradients as one contiguous block each, and initializes every variable from the
 * context seed and the variable's name (so adding a layer does not change the others).
 * The graph must stay alive and unchanged while the net exists.
 * Errors: the graph's sticky error, SN_ERR_SHAPE, SN_ERR_NOMEM, SN_ERR_UNSUPPORTED (an op
 * without a kernel on this device), SN_ERR_CUDA. */
SN_API sn_status sn_net_compile(sn_graph *g, const sn_compile_params *p, sn_net **out);
SN_API void sn_net_free(sn_net *net);
SN_API const sn_graph *sn_net_graph(const sn_net *net);

/* Memory the net holds, in bytes, on its device. */
typedef struct sn_net_memory {
    size_t params, grads, arena, workspace;
    size_t arena_unplanned;  /* what the activations would take without reuse */
} sn_net_memory;
SN_API sn_net_memory sn_net_memory_info(const sn_net *net);

/* Arithmetic of one step of the net, in floating-point operations (a multiply-add counts 2):
 * the convolutions', depthwise convolutions' and matmuls' forward, and their backward as the
 * compiled net runs it (an input's gradient where the input has one, the weights' where they
 * are trainable).  The other ops are memory-bound and not counted.  Images/s x this / batch
 * is the achieved FLOP rate, against a device's tensor-core peak (bench_train prints both). */
typedef struct sn_net_flops {
    double forward, backward;
} sn_net_flops;
SN_API sn_net_flops sn_net_flop_count(const sn_net *net);

/* Copies a host tensor into input node `in` (dtype and shape, with the compiled batch). */
SN_API sn_status sn_net_set_input(sn_net *net, sn_node in, const sn_tensor *t);
/* Runs the forward pass (training-mode batch norm also updates its moving statistics). */
SN_API sn_status sn_net_forward(sn_net *net);
/* Backward pass from the scalar node `loss`: zeroes the gradients, seeds dloss = 1 and
 * accumulates d(loss)/d(variable) for every trainable variable.  SN_ERR_STATE without a
 * forward pass or with backward = 0 at compile time. */
SN_API sn_status sn_net_backward(sn_net *net, sn_node loss);
/* Copies the value of node n (after a forward pass) into a new host tensor *out. */
SN_API sn_status sn_net_get_output(sn_net *net, sn_node n, sn_tensor **out);
/* Variables by full name: value or gradient into a new host tensor; set copies in
 * (shape must match exactly: SN_ERR_SHAPE names both shapes).  SN_ERR_NOT_FOUND names the
 * missing variable. */
SN_API sn_status sn_net_get_var(sn_net *net, const char *name, sn_tensor **out);
SN_API sn_status sn_net_set_var(sn_net *net, const char *name, const sn_tensor *t);
SN_API sn_status sn_net_get_grad(sn_net *net, const char *name, sn_tensor **out);
/* Plain gradient descent (TF's GradientDescentOptimizer): w -= lr * dw for every
 * trainable variable, on the net's device, after sn_net_backward(). */
SN_API sn_status sn_net_sgd_step(sn_net *net, float lr);
/* Profiling: while on, every node's forward and backward waits for the device and its
 * wall time is added to a total per op type (conv2d, batch_norm, ...).  Slows the step;
 * for finding where the time goes, not for measuring throughput. */
SN_API void sn_net_set_profile(sn_net *net, int on);
/* The totals so far as a text table (op, calls, forward ms, backward ms, share of the
 * total), most expensive first; truncated to len. */
SN_API sn_status sn_net_profile_report(const sn_net *net, char *buf, size_t len);
/* Dropout draws a new mask each step; the step counter enters the seed. */
SN_API void sn_net_set_step(sn_net *net, int64_t step);

/* ---- the model zoo (nets/): TF-slim's nets_factory --------------------------------------- */

/* What a network builder gets, as nets_factory's get_network_fn arguments. */
typedef struct sn_model_params {
    int num_classes;          /* logits width; 0 = no logits layer (pre-logits features) */
    int is_training;          /* batch norm in training mode, dropout on; default 1 */
    float dropout_keep_prob;  /* < 0 (default): the network's own default */
    int spatial_squeeze;      /* squeeze (N,1,1,C) logits to (N,C); default 1 */
    int global_pool;          /* mean over H,W before the logits, where the net has the switch.
                               * Default 1 for every net (TF-slim's default is 0 for alexnet,
                               * overfeat, vgg, inception_v1-v3, mobilenet_v1): identical at
                               * the default image size, and any other size still classifies
                               * instead of failing at the spatial squeeze. */
    float weight_decay;       /* the arg_scope's L2 scale; < 0 (default): the family's */
} sn_model_params;
SN_API sn_model_params sn_model_params_default(void);

/* What a built network returns.  Every node here is also a graph end point. */
typedef struct sn_model {
    sn_node logits;           /* (N, num_classes), or the features when num_classes is 0 */
    sn_node aux_logits;       /* SN_NO_NODE where the network has none */
    sn_node predictions;      /* softmax of logits (SN_NO_NODE without logits) */
    const char *scope;        /* top scope, e.g. "resnet_v1_50" */
    int default_image_size;   /* e.g. 224 */
    const char *preprocessing;/* preprocessing_factory name: "vgg", "inception", "lenet";
                               * "" where TF-slim maps none (alexnet_v2, overfeat) */
} sn_model;

/* Builds model `name` (as --model_name) on images (N,H,W,3) float32 into g, under the
 * family's arg_scope defaults and TF-slim's variable names.  SN_ERR_NOT_FOUND for an
 * unknown name (the message lists the known ones); shape errors as for any builder. */
SN_API sn_status sn_model_build(sn_graph *g, const char *name, sn_node images,
                                const sn_model_params *p, sn_model *out);
/* Number of known models and the i-th name (NULL past the end). */
SN_API int sn_model_count(void);
SN_API const char *sn_model_name(int i);
/* Default image size of a model, 0 if unknown. */
SN_API int sn_model_default_image_size(const char *name);


/* ---- TFRecord files ---------------------------------------------------------------------- */

/* A TFRecord file is a sequence of records, each framed as
 *     uint64 length | masked crc32c(length) | data | masked crc32c(data)      (little-endian)
 * exactly as TensorFlow's TFRecordWriter writes it; ZLIB and GZIP compress the whole framed
 * stream.  Readers check both CRCs of every record and bound every length before
 * allocating.  Errors name the file and the byte offset of the record (in the uncompressed
 * stream for a compressed file), e.g.
 *     "data/fer_train.tfrecord: record at offset 1234: data crc mismatch (...)". */
typedef enum sn_compression {
    SN_COMPRESSION_NONE = 0,
    SN_COMPRESSION_ZLIB = 1,   /* RFC 1950 (TF's "ZLIB"); never guessed, as in TF */
    SN_COMPRESSION_GZIP = 2,   /* RFC 1952 (TF's "GZIP") */
    SN_COMPRESSION_AUTO = 3    /* readers only: GZIP if the file starts with 1f 8b, else NONE */
} sn_compression;

/* Records longer than this are refused as corrupt unless the reader is told otherwise. */
#define SN_TFRECORD_DEFAULT_MAX_RECORD ((uint64_t)1 << 30)

typedef struct sn_tfrecord_writer sn_tfrecord_writer;

/* Creates (truncates) path for writing records.  compression NONE, ZLIB or GZIP (not AUTO).
 * The writer borrows ctx.  SN_ERR_IO (cannot create; the message has strerror),
 * SN_ERR_INVALID_ARG, SN_ERR_NOMEM. */
SN_API sn_status sn_tfrecord_writer_open(sn_ctx *ctx, const char *path,
                                         sn_compression compression,
                                         sn_tfrecord_writer **out);
/* Appends one record of len bytes (len may be 0; data may be NULL then).  SN_ERR_IO on a
 * write error (e.g. disk full); the writer then refuses further writes with SN_ERR_STATE. */
SN_API sn_status sn_tfrecord_write(sn_tfrecord_writer *w, const void *data, size_t len);
/* Pushes everything written so far to the file (a zlib sync flush when compressed), so
 * that a reader sees complete records, e.g. for event files read while training runs. */
SN_API sn_status sn_tfrecord_writer_flush(sn_tfrecord_writer *w);
/* Finishes the compressed stream, flushes, closes and frees w (also after an error).
 * Returns the first error of the writer's life, SN_OK if none.  NULL gives SN_OK. */
SN_API sn_status sn_tfrecord_writer_close(sn_tfrecord_writer *w);

typedef struct sn_tfrecord_reader sn_tfrecord_reader;

/* Opens path for reading.  compression NONE, ZLIB, GZIP or AUTO.  The reader borrows ctx.
 * SN_ERR_NOT_FOUND (no such file), SN_ERR_IO, SN_ERR_INVALID_ARG, SN_ERR_NOMEM. */
SN_API sn_status sn_tfrecord_reader_open(sn_ctx *ctx, const char *path,
                                         sn_compression compression,
                                         sn_tfrecord_reader **out);
/* Largest record length accepted (default SN_TFRECORD_DEFAULT_MAX_RECORD); a record
 * declaring more is SN_ERR_FORMAT, found before anything is allocated for it. */
SN_API void sn_tfrecord_reader_set_max_record(sn_tfrecord_reader *r, uint64_t max_bytes);
/* Reads the next record: *data (len bytes) is owned by the reader and valid until the next
 * read or close.  Returns
 *   SN_OK               a record, both CRCs verified;
 *   SN_ERR_NOT_FOUND    clean end of file (no more records; not an error to report);
 *   SN_ERR_FORMAT       corrupt or truncated record, bad compressed stream, over-long length;
 *   SN_ERR_IO           read error.
 * After an error the reader stays failed: later reads return the same status. */
SN_API sn_status sn_tfrecord_read(sn_tfrecord_reader *r, const uint8_t **data, size_t *len);
/* Offset of the next record in the (uncompressed) record stream: after an error, the
 * offset of the record that failed.  Equals the bytes of records read so far. */
SN_API uint64_t sn_tfrecord_reader_offset(const sn_tfrecord_reader *r);
/* The path given at open, owned by the reader. */
SN_API const char *sn_tfrecord_reader_path(const sn_tfrecord_reader *r);
SN_API void sn_tfrecord_reader_close(sn_tfrecord_reader *r);

/* ---- file patterns and multi-file reading ------------------------------------------------ */

typedef struct sn_file_list sn_file_list;

/* Expands a glob(3) pattern (`*`, `?`, `[...]`) into the sorted list of matching files,
 * e.g. "flowers_train_*.tfrecord", "train-?????-of-01024", or one plain path.  TF-style
 * shard names "<name>-00003-of-00005" in the result are checked: when some shards of a set
 * are missing, a warning is logged through the context (the files found are still
 * returned).  SN_ERR_NOT_FOUND when nothing matches (the message names the pattern),
 * SN_ERR_IO, SN_ERR_NOMEM. */
SN_API sn_status sn_tfrecord_files(sn_ctx *ctx, const char *pattern, sn_file_list **out);
SN_API size_t sn_file_list_count(const sn_file_list *l);
/* The i-th path (sorted by strcmp), owned by the list; NULL when i is out of range. */
SN_API const char *sn_file_list_path(const sn_file_list *l, size_t i);
SN_API void sn_file_list_free(sn_file_list *l);

typedef struct sn_tfrecord_multi sn_tfrecord_multi;

/* Reads the records of n files as one stream.  cycle_length files are open at a time and
 * give one record each in turn, as tf.data's interleave(cycle_length, block_length=1):
 * when a file ends, the next unopened file takes its place in the cycle.
 *   cycle_length 1: sequential, file after file, in the given order;
 *   cycle_length 0: all files at once (each open file holds a read buffer: with many large
 *                   shards, prefer a bounded cycle such as 16).
 * The paths are copied.  Files are opened when they enter the cycle, so a missing file is
 * reported by sn_tfrecord_multi_read, as SN_ERR_IO (SN_ERR_NOT_FOUND means the end).
 * SN_ERR_INVALID_ARG (n == 0, cycle_length < 0), SN_ERR_NOMEM. */
SN_API sn_status sn_tfrecord_multi_open(sn_ctx *ctx, const char *const *paths, size_t n,
                                        sn_compression compression, int cycle_length,
                                        sn_tfrecord_multi **out);
/* As sn_tfrecord_read, over all files: SN_ERR_NOT_FOUND once every file has ended.  The
 * record is valid until the next read or close.  Errors name the file and offset. */
SN_API sn_status sn_tfrecord_multi_read(sn_tfrecord_multi *m, const uint8_t **data,
                                        size_t *len);
/* File and offset of the record last returned (NULL / 0 before the first). */
SN_API const char *sn_tfrecord_multi_path(const sn_tfrecord_multi *m);
SN_API uint64_t sn_tfrecord_multi_offset(const sn_tfrecord_multi *m);
SN_API void sn_tfrecord_multi_set_max_record(sn_tfrecord_multi *m, uint64_t max_bytes);
SN_API void sn_tfrecord_multi_close(sn_tfrecord_multi *m);

/* ---- tf.train.Example -------------------------------------------------------------------- */

/* An Example: a map from string keys to a bytes, float or int64 list, as TF's proto.
 * Values are copied in; everything returned points into the sn_example and is valid until
 * the next parse, clear or free (a set of the same key only replaces that key's values). */
typedef struct sn_example sn_example;

typedef enum sn_feature_kind {
    SN_FEATURE_NONE = 0,    /* a Feature with no list set: every getter reads it as empty */
    SN_FEATURE_BYTES = 1,
    SN_FEATURE_FLOAT = 2,
    SN_FEATURE_INT64 = 3
} sn_feature_kind;

/* "none", "bytes_list", "float_list", "int64_list". */
SN_API const char *sn_feature_kind_name(sn_feature_kind kind);

/* An empty Example borrowing ctx.  SN_ERR_NOMEM. */
SN_API sn_status sn_example_new(sn_ctx *ctx, sn_example **out);
SN_API void sn_example_free(sn_example *ex);
/* Removes every feature (keeps the memory for the next use). */
SN_API void sn_example_clear(sn_example *ex);

/* Sets feature `key` to a list of n values, replacing any previous value of that key.
 * Bytes values are values[i] of lens[i] bytes each.  SN_ERR_INVALID_ARG, SN_ERR_NOMEM. */
SN_API sn_status sn_example_set_bytes(sn_example *ex, const char *key,
                                      const void *const *values, const size_t *lens, size_t n);
SN_API sn_status sn_example_set_int64(sn_example *ex, const char *key,
                                      const int64_t *values, size_t n);
SN_API sn_status sn_example_set_float(sn_example *ex, const char *key,
                                      const float *values, size_t n);

/* Serializes ex (proto3 wire format, packed numeric lists) into a buffer owned by ex, valid
 * until the next serialize, change or free.  SN_ERR_NOMEM. */
SN_API sn_status sn_example_serialize(sn_example *ex, const uint8_t **data, size_t *len);
/* Replaces the content of ex by the Example serialized in data.  Packed and unpacked
 * numeric lists are both accepted; a repeated key keeps its last value, as in TF.
 * SN_ERR_FORMAT for a malformed message (ex is then empty), SN_ERR_NOMEM. */
SN_API sn_status sn_example_parse(sn_example *ex, const void *data, size_t len);

/* Number of feature entries and the key of the i-th, in stored order (NULL out of range). */
SN_API size_t sn_example_num_features(const sn_example *ex);
SN_API const char *sn_example_key(const sn_example *ex, size_t i);
/* Kind and number of values of feature `key`; either output may be NULL.
 * SN_ERR_NOT_FOUND (the message names the key). */
SN_API sn_status sn_example_feature(const sn_example *ex, const char *key,
                                    sn_feature_kind *kind, size_t *n);
/* The values of feature `key`.  SN_ERR_NOT_FOUND (missing key), SN_ERR_FORMAT when the
 * feature holds another kind (the message names the key and the kind it holds). */
SN_API sn_status sn_example_get_int64(const sn_example *ex, const char *key,
                                      const int64_t **values, size_t *n);
SN_API sn_status sn_example_get_float(const sn_example *ex, const char *key,
                                      const float **values, size_t *n);
/* The i-th value of a bytes feature (not NUL-terminated).  SN_ERR_NOT_FOUND also when i is
 * past the end of the list.  The getters give a valid pointer also for an empty list or
 * value (n or len 0). */
SN_API sn_status sn_example_get_bytes(const sn_example *ex, const char *key, size_t i,
                                      const uint8_t **data, size_t *len);

/* One image of an image-classification dataset, in TF-slim's keys
 * (datasets/dataset_utils.py image_to_tfexample):
 *   image/encoded (bytes), image/format (bytes), image/class/label, image/height and
 *   image/width (int64). */
typedef struct sn_image_example {
    const uint8_t *encoded;   /* the encoded file (JPEG or PNG), borrowed */
    size_t encoded_len;
    char format[16];          /* "png", "jpeg", "jpg", NUL-terminated */
    int64_t label;            /* class id */
    int64_t height, width;    /* pixels as recorded; 0 when absent on parse */
} sn_image_example;

/* Sets the five keys of img (copies the bytes).  SN_ERR_INVALID_ARG, SN_ERR_NOMEM. */
SN_API sn_status sn_example_set_image(sn_example *ex, const sn_image_example *img);
/* Reads them back; encoded points into ex.  image/encoded and image/class/label (one value
 * each) are required: SN_ERR_NOT_FOUND names a missing key, SN_ERR_FORMAT a wrong kind or
 * count.  image/format may be absent ("" then) and must be shorter than 16 bytes. */
SN_API sn_status sn_example_get_image(const sn_example *ex, sn_image_example *img);

/* ---- images: JPEG (libjpeg-turbo) and PNG (libpng) --------------------------------------- */

typedef enum sn_image_format {
    SN_IMAGE_UNKNOWN = 0, SN_IMAGE_JPEG = 1, SN_IMAGE_PNG = 2
} sn_image_format;

/* The format by its magic bytes (ff d8 ff; 89 'P' 'N' 'G' 0d 0a 1a 0a). */
SN_API sn_image_format sn_image_sniff(const void *data, size_t len);

/* Default bound on height * width for decoding: 64 Mi pixels. */
#define SN_IMAGE_DEFAULT_MAX_PIXELS ((uint64_t)64 << 20)

typedef struct sn_image_params {
    int channels;            /* 0 (default): 1 for a grayscale file, else 3; 1: gray; 3: RGB
                              * (a gray image is replicated into 3 channels, as TF's
                              * decode_image(channels=3)).  Alpha is dropped. */
    uint64_t max_pixels;     /* height * width above this is SN_ERR_FORMAT before any
                              * allocation; default SN_IMAGE_DEFAULT_MAX_PIXELS */
    int fast_dct;            /* JPEG IDCT.  1 (default): fast integer (JDCT_IFAST), what TF
                              * decodes with by default (decode_jpeg's dct_method "", also
                              * decode_image and TF-slim's tfexample_decoder.Image, so every
                              * TF-slim training and eval); 0: accurate integer (JDCT_ISLOW),
                              * TF's dct_method="INTEGER_ACCURATE".  Both equal TF's pixels
                              * exactly; they differ from each other by a few levels on noisy
                              * images (make parity checks both). */
} sn_image_params;
SN_API sn_image_params sn_image_params_default(void);

/* Reads the header only: format, height, width and stored channels (1 gray, 2 gray with
 * alpha, 3 color, 4 CMYK or RGBA); any output may be NULL.  SN_ERR_FORMAT (unknown format, bad
 * header). */
SN_API sn_status sn_image_info(sn_ctx *ctx, const void *data, size_t len,
                               sn_image_format *format, int *height, int *width,
                               int *channels);
/* Decodes a JPEG or PNG file (format sniffed) into a new uint8 tensor (H, W, C), C = 1 or
 * 3 as p says (NULL: defaults).  JPEG decoding uses fancy upsampling as TF and the IDCT
 * p->fast_dct selects (by default TF's own); CMYK JPEGs are converted as TF does (Adobe's
 * inverted CMYK, and plain CMYK without Adobe's marker); 16-bit PNGs are reduced to 8 bits
 * (rounded; TF truncates, a difference of at most 1).  As in TF, libjpeg's warnings
 * (extraneous bytes) still decode, while any fatal error, also one after a warning, fails.
 * SN_ERR_FORMAT for unknown, corrupt or truncated data, for dimensions over the bound and
 * for a JPEG of more than 500 progressive scans (the message says which),
 * SN_ERR_INVALID_ARG, SN_ERR_NOMEM. */
SN_API sn_status sn_image_decode(sn_ctx *ctx, const void *data, size_t len,
                                 const sn_image_params *p, sn_tensor **out);
/* As sn_image_decode, into the caller's buffer of cap bytes (reused across images by an
 * input pipeline).  *height, *width, *channels receive the shape.  SN_ERR_SHAPE when the
 * image needs more than cap bytes (nothing is decoded; *height etc. are set, so the caller
 * can grow the buffer and retry). */
SN_API sn_status sn_image_decode_into(sn_ctx *ctx, const void *data, size_t len,
                                      const sn_image_params *p, uint8_t *buf, size_t cap,
                                      int *height, int *width, int *channels);
/* Encodes a uint8 tensor (H, W, C), C = 1 or 3, into a new uint8 tensor (nbytes) holding
 * the file.  JPEG: quality 1..100, 4:2:0 chroma subsampling for color (TF's encode_jpeg
 * default), accurate DCT.  PNG: lossless, zlib's default level.
 * SN_ERR_INVALID_ARG (dtype, rank, channels, quality), SN_ERR_FORMAT (codec failure),
 * SN_ERR_NOMEM. */
SN_API sn_status sn_image_encode_jpeg(sn_ctx *ctx, const sn_tensor *img, int quality,
                                      sn_tensor **out);
SN_API sn_status sn_image_encode_png(sn_ctx *ctx, const sn_tensor *img, sn_tensor **out);


/* ---- preprocessing: TF-slim's preprocessing_factory -------------------------------------- */

/* The four preprocessing functions of preprocessing_factory.py.  Every function takes a
 * decoded uint8 image (H, W, C), C = 1 or 3, row-major HWC, and writes float32
 * (out_height, out_width, C') with C' = C (or 1 with use_grayscale).
 *   lenet      float; resize_image_with_crop_or_pad; (x - 128) / 128 (train = eval)
 *   cifarnet   train: float; zero-pad 4; random crop; flip; random_brightness 63;
 *              random_contrast [0.2, 1.8]; per_image_standardization.
 *              eval: resize_image_with_crop_or_pad; per_image_standardization
 *   vgg        train: aspect-preserving bilinear resize of the shorter side to a random
 *              side in [256, 512]; random crop; flip; subtract R 123.68 G 116.78 B 103.94.
 *              eval: shorter side to 256; central crop; subtract the means
 *   inception  train: to [0,1]; sample_distorted_bounding_box (min_object_covered 0.1,
 *              aspect [0.75, 1.33], area [0.05, 1], 100 attempts, whole image fallback);
 *              crop; bilinear resize (full mode: one of bilinear, nearest, bicubic, area at
 *              random); flip; distort_color (fast mode: brightness 32/255, saturation
 *              [0.5, 1.5]; full mode: one of 4 orderings with hue 0.2 and contrast
 *              [0.5, 1.5]); clip [0,1]; (x - 0.5) * 2.
 *              eval: to [0,1]; central_crop 0.875; bilinear resize; (x - 0.5) * 2
 * use_grayscale applies tf.image.rgb_to_grayscale where TF-slim does (right after the float
 * conversion; inception train: after distort_color); on a 1-channel image it is a no-op.
 * Where TF-slim itself fails, slimnet chooses:
 *   - 1-channel images (or use_grayscale) with vgg: the means' gray value,
 *     0.2989 * 123.68 + 0.5870 * 116.78 + 0.1140 * 103.94, is subtracted;
 *   - 1-channel images with inception: saturation and hue (color operations) are skipped,
 *     brightness and contrast apply;
 *   - lenet and cifarnet eval crop or pad to (out_height, out_width): TF-slim passes
 *     (out_width, out_height), which differs only for non-square sizes, which its tools
 *     never ask for.
 * An image too small for the crop a kind needs (cifarnet train: H + 8 or W + 8 below the
 * output; vgg: the resized image below it) is SN_ERR_INVALID_ARG, as TF fails there too.
 * Bilinear resizing is TF1's resize_bilinear (align_corners and half_pixel_centers false).
 * The deterministic parts equal TensorFlow's within 1e-5 (tests/reference fixtures); the
 * random draws come from a counter-based generator seeded per image, so a pipeline gives
 * the same images for the same seed whatever its thread count. */
typedef enum sn_preprocess_kind {
    SN_PREPROCESS_LENET = 0, SN_PREPROCESS_CIFARNET = 1, SN_PREPROCESS_VGG = 2,
    SN_PREPROCESS_INCEPTION = 3
} sn_preprocess_kind;

/* "lenet", "cifarnet", "vgg", "inception"; NULL for an unknown kind. */
SN_API const char *sn_preprocess_kind_name(sn_preprocess_kind kind);
/* preprocessing_factory's map from a --preprocessing_name or --model_name: cifarnet;
 * inception* mobilenet* nasnet* pnasnet* -> inception; resnet_v1_* resnet_v2_* vgg* -> vgg;
 * lenet; also the four kind names themselves.  SN_ERR_NOT_FOUND for anything else (the
 * caller names the flag), SN_ERR_INVALID_ARG for NULL. */
SN_API sn_status sn_preprocess_kind_for(const char *name, sn_preprocess_kind *kind);

typedef struct sn_preprocess_params {
    sn_preprocess_kind kind; /* default inception (train_image_classifier's inception_v3) */
    int is_training;         /* 1: the random training path; 0 (default): eval */
    int out_height, out_width;  /* > 0; the net's image size (default 0: must be set) */
    int fast_mode;           /* inception train: 1 (default, as TF-slim) or 0 */
    int use_grayscale;       /* 1: tf.image.rgb_to_grayscale, C' = 1 */
    int resize_side_min, resize_side_max;  /* vgg: 256, 512 (eval uses min) */
} sn_preprocess_params;
SN_API sn_preprocess_params sn_preprocess_params_default(void);

/* The random choices of one training image, explicit so that a test can make the same
 * choices in TensorFlow.  Eval ignores them, and so does lenet. */
typedef struct sn_preprocess_draw {
    int resize_side;          /* vgg: the shorter side after resizing */
    int crop_y, crop_x, crop_h, crop_w;  /* the crop (inception: the distorted box, in the
                                            input; vgg/cifarnet: the random crop, in the
                                            resized / padded image, crop_h x crop_w =
                                            out_height x out_width) */
    int flip;                 /* 1: left-right flip */
    int color_ordering;       /* inception: distort_color's ordering, 0..3 (fast mode: 0 is
                                 brightness then saturation, others the reverse) */
    float brightness;         /* additive delta (cifarnet: in 0..255 units) */
    float saturation, hue, contrast;  /* factors / hue delta (in [-1, 1]); inception's fast
                                         mode uses brightness and saturation only */
    int resize_method;        /* inception: TF's ResizeMethodV1, 0 bilinear (fast mode's
                                 only one), 1 nearest, 2 bicubic, 3 area */
} sn_preprocess_draw;

/* Draws the choices for an h x w image from seed (pure: same inputs, same draw).  In eval
 * (and for lenet) the draw is neutral: the whole image, no flip, factors 1, deltas 0.
 * SN_ERR_INVALID_ARG (bad params, sizes, an image too small for the training crop; there is
 * no ctx, so no message: sn_preprocess with d = NULL says why). */
SN_API sn_status sn_preprocess_draw_random(const sn_preprocess_params *p, int h, int w,
                                           uint64_t seed, sn_preprocess_draw *d);
/* Preprocesses img (h, w, c) into out (out_height * out_width * C' floats, caller's).
 * d: the training choices (NULL: drawn from seed as sn_preprocess_draw_random); unused in
 * eval.  Thread-safe for distinct ctx (ctx only receives the error message; NULL: none).
 * Allocates only small work buffers (rows of the image, index tables) and, for inception
 * train with use_grayscale or a non-bilinear method, one image-sized buffer.
 * SN_ERR_INVALID_ARG (sizes, channels, a draw outside the image or out of range),
 * SN_ERR_NOMEM. */
SN_API sn_status sn_preprocess(sn_ctx *ctx, const sn_preprocess_params *p, const uint8_t *img,
                               int h, int w, int c, const sn_preprocess_draw *d,
                               uint64_t seed, float *out);
/* TF1's tf.image.resize_bilinear (align_corners=False, half_pixel_centers=False) of a float
 * (h, w, c) image into (oh, ow, c), c >= 1; in and out must not overlap.  Exposed for users'
 * own preprocessing.  SN_ERR_INVALID_ARG, SN_ERR_NOMEM. */
SN_API sn_status sn_resize_bilinear(sn_ctx *ctx, const float *in, int h, int w, int c,
                                    float *out, int oh, int ow);

/* ---- datasets: TF-slim's dataset_factory, the vendor's fer, any converted folder -------- */

/* A dataset descriptor: where each split's TFRecord files are, how many samples each has,
 * the class count and the class names (labels.txt, "<id>:<name>" lines, split at the first
 * ':').  Built-in: "fer" (fer_%s*.tfrecord, splits train/test, counts and num_class from
 * info.json, which is required), "mnist" (mnist_%s*.tfrecord, train 60000 / test 10000, 10
 * classes, 1 channel), "cifar10" (cifar10_%s*.tfrecord, 50000 / 10000, 10), "flowers"
 * (flowers_%s_*.tfrecord, train 3320 / validation 350, 5), "imagenet" (%s-*, train 1281167
 * / validation 50000, 1001).  The '*' also matches the sharded names slimnet-convert writes
 * ("fer_train_00000-of-00004.tfrecord").  When the folder has an info.json (slimnet-convert
 * writes one for every dataset) its "num_class" and "num_sample_<split>" replace TF-slim's
 * constants.  A NULL or "" name, or "folder", describes any folder that slimnet-convert
 * wrote: info.json names the file prefix ("dataset", default "fer") and the splits (every
 * "num_sample_<split>" key); the UAI fork's own info.json works too. */
typedef struct sn_dataset sn_dataset;

typedef struct sn_dataset_params {
    /* fer, and a "folder" of fer files (info.json's "dataset" absent or "fer"): 1 = the
     * vendor's num_classes = num_class + 1 (an always-empty extra class, which their
     * checkpoints have; needed to load one).  0 (default): num_class. */
    int fer_extra_class;
} sn_dataset_params;
SN_API sn_dataset_params sn_dataset_params_default(void);

/* Opens the descriptor of dataset `name` in dir.  Reads info.json and labels.txt when
 * present (their sizes bounded: 1 MiB, 16 MiB; label ids must be below the class count and
 * appear once).  SN_ERR_NOT_FOUND (unknown name, with the known ones in the message; fer or
 * folder without info.json), SN_ERR_FORMAT (bad info.json / labels.txt, naming the file and
 * line), SN_ERR_IO, SN_ERR_NOMEM. */
SN_API sn_status sn_dataset_open(sn_ctx *ctx, const char *name, const char *dir,
                                 const sn_dataset_params *p, sn_dataset **out);
SN_API void sn_dataset_free(sn_dataset *ds);
SN_API const char *sn_dataset_name(const sn_dataset *ds);
SN_API int sn_dataset_num_classes(const sn_dataset *ds);
/* Channels the images are decoded to: 1 for mnist, else 3 (TF-slim's decoders). */
SN_API int sn_dataset_channels(const sn_dataset *ds);
/* The name of class id (labels.txt), or NULL when unknown. */
SN_API const char *sn_dataset_label_name(const sn_dataset *ds, int id);
SN_API int sn_dataset_num_splits(const sn_dataset *ds);
SN_API const char *sn_dataset_split_name(const sn_dataset *ds, int i);
/* A split's file pattern ("<dir>/fer_train.tfrecord", for sn_tfrecord_files) and sample
 * count.  SN_ERR_NOT_FOUND names the split and lists the dataset's splits. */
SN_API sn_status sn_dataset_split(const sn_dataset *ds, const char *split,
                                  const char **pattern, int64_t *num_samples);

/* What sn_dataset_convert writes (download_and_convert_data.py, from local files only). */
typedef struct sn_convert_params {
    const char *dataset_name;  /* "fer" (or "folder": the same), "mnist", "cifar10", "flowers" */
    const char *source;        /* fer/flowers: a folder of class folders (--pic_path);
                                  mnist: folder of the idx files (plain or .gz); cifar10:
                                  folder of data_batch_{1..5}.bin + test_batch.bin */
    const char *dataset_dir;   /* output folder, created if missing */
    uint64_t seed;             /* shuffle of fer/flowers images before the split; default 0 */
    double test_fraction;      /* 0 (default): the dataset's own split, fer 0.3 (train =
                                  the first round(0.7 N) of the shuffled images), flowers
                                  350 validation images; else in (0, 1).  mnist/cifar10:
                                  fixed by the source, must stay 0 */
    int num_shards;            /* files per split; 0 (default): 1, flowers 5 */
    int overwrite;             /* 0 (default): SN_ERR_STATE if an output file exists */
} sn_convert_params;
SN_API sn_convert_params sn_convert_params_default(void);

typedef struct sn_convert_report {
    int num_classes;
    int64_t num_train, num_test;     /* test = "validation" for flowers */
    int num_files;                   /* files written, including labels.txt / info.json */
    int64_t bytes;                   /* bytes written */
    int64_t num_skipped;             /* fer/flowers: files skipped as not images (neither
                                        a JPEG/PNG signature nor an image name, or beside
                                        the class folders); hidden names are not counted */
} sn_convert_report;
/* Converts.  Files: "<prefix>_<split>.tfrecord", or with num_shards > 1 (and always for
 * flowers) "<prefix>_<split>_0000K-of-0000N.tfrecord" (records split evenly, ceil(n/N) per
 * shard); labels.txt; info.json ({"num_class": K, "num_sample_train": N,
 * "num_sample_test": M, "dataset": "<prefix>"}).  fer/flowers: class ids come from the
 * sorted folder names; files are sorted, then shuffled with seed (our own generator, the
 * same order on every machine); every image is checked to decode (height/width recorded
 * from the file); JPEG/PNG bytes are stored unchanged, image/format "jpg" or "png" from the
 * magic bytes.  A file is an image when its magic bytes say JPEG/PNG or its name ends in
 * .jpg/.jpeg/.jpe/.png; hidden files and other files are skipped.  mnist/cifar10: records in
 * the source's order, PNG-encoded, TF-slim's class names (mnist's 'size' for six included).
 * Writes to hidden temp names and renames at the end (info.json last); on failure nothing
 * of an older dataset is changed.  report may be NULL.  Errors name the file:
 * SN_ERR_NOT_FOUND (unknown dataset, missing source files), SN_ERR_FORMAT (an image that
 * does not decode, a bad idx/cifar file), SN_ERR_STATE (an output exists, overwrite = 0),
 * SN_ERR_INVALID_ARG, SN_ERR_IO, SN_ERR_NOMEM. */
SN_API sn_status sn_dataset_convert(sn_ctx *ctx, const sn_convert_params *p,
                                    sn_convert_report *report);

/* ---- input pipeline: TFRecords -> Examples -> images -> preprocessed batches ------------- */

/* Reader, decode and preprocessing threads feeding a bounded queue of ready batches, as
 * TF-slim's DatasetDataProvider + tf.train.batch, but reproducible: the record order
 * (files interleaved, then a shuffle buffer) and every random preprocessing draw depend
 * only on seed, never on the thread count or timing. */
typedef struct sn_pipeline sn_pipeline;

typedef struct sn_pipeline_params {
    const char *pattern;        /* TFRecord files (sn_tfrecord_files pattern), required */
    int batch_size;             /* > 0 */
    int channels;               /* decode channels: 3 (default) or 1 */
    sn_preprocess_params preprocess;
    int shuffle;                /* 1 (default): files and records shuffled; 0: file order */
    int shuffle_buffer;         /* records; 0 (default): 20 * the global batch (batch_size *
                                   num_shards) as TF-slim */
    int num_epochs;             /* 0 (default): endless; else the data ends after them */
    int num_threads;            /* decode + preprocess threads; 0 (default): 4 */
    int queue_batches;          /* ready batches kept; 0 (default): 4 */
    uint64_t seed;
    int labels_offset;          /* subtracted from every label (--labels_offset) */
    int num_classes;            /* > 0: a label outside [0, num_classes) after the offset is
                                   bad input; 0: unchecked */
    int skip_bad;               /* 0 (default): bad input stops with an error naming file and
                                   offset; 1: the record is skipped and counted (see below) */
    int64_t skip_batches;       /* start after this many batches (resuming a run: the same
                                   batches follow as if it had never stopped); global batches
                                   when sharded */
    int num_shards;             /* synchronous data parallelism: N > 1 pipelines with the same
                                   params but shard_index, each batch_size, together give the
                                   batches of one with batch_size * N (see below); 0 (default)
                                   or 1: unsharded */
    int shard_index;            /* this pipeline's shard, in [0, num_shards); 0 unsharded */
    int64_t skip_records;       /* start this many stream records further, after skip_batches'
                                   (resuming a run whose global batch was different, e.g. with
                                   another number of workers); any number >= 0 */
} sn_pipeline_params;
SN_API sn_pipeline_params sn_pipeline_params_default(void);

/* The stream, exactly: per epoch e the files are shuffled (from seed and e; shuffle = 0: the
 * sorted order) and read 4 at a time interleaved (shuffle = 0: one after the other); the
 * records pass a shuffle buffer of shuffle_buffer records that is drained at the end of each
 * epoch, so every record appears once per epoch and epoch e fills stream positions
 * [e*N, (e+1)*N).  Stream record k is preprocessed with seed sn_pipeline_image_seed(seed, k).
 * With G = batch_size * max(num_shards, 1) (the global batch) and S = skip_batches * G +
 * skip_records, the first S records are read and checked but not decoded, and global batch
 * g is stream records [S + g*G, S + (g+1)*G) in order (unsharded: the batches returned).
 * Sharded (num_shards > 1): every shard makes the stream of the unsharded pipeline with batch
 * G (the same files, order, shuffle buffer, whose default is 20 * G, and image seeds) and
 * returns, as its batch g, shard_index's part of global batch g: the batch_size records from
 * S + g*G + shard_index * batch_size.  So the shards' batches g, shard 0 first, are that
 * pipeline's batch g.  Every shard reads and checks every record (so a bad record below
 * shifts every shard's stream alike) but decodes and preprocesses only its own.  The last
 * global batch of a finite run is split the same way: a shard's part may be short or empty
 * (n = 0: that shard's end one batch before the others).
 * Bad input, with skip_bad:
 *  - a record whose Example, label (kind, count, range) or image header (format, size over
 *    SN_IMAGE_DEFAULT_MAX_PIXELS) is bad takes no stream position: the next good record
 *    takes it, so batches stay full (sharded: on every shard, as they all check it);
 *  - a truncated or corrupt record (length or data CRC) ends its file: the rest of that file
 *    is not read, the break counts as one skipped record, the next file takes its place
 *    (a file that cannot be opened: the same);
 *  - an image whose header is good but whose data does not decode (found by a decode
 *    thread, after its position was given) is replaced in its batch by the nearest good
 *    image of the same batch (image and label copied; sharded: of the same shard's batch, so
 *    the shards' batches then differ from the unsharded one's in that slot where the nearest
 *    good image lies in another shard's part); a batch in which every image failed is
 *    dropped, but on a sharded pipeline, where dropping would put the shards out of step,
 *    it is SN_ERR_FORMAT (as without skip_bad, below).
 * Each counts in stats.skipped (the decode failures only on the shard that owns them).  An
 * epoch with no good record ends an endless run with SN_ERR_NOT_FOUND.  Without skip_bad,
 * sharded: a bad record found before decoding stops every shard at the batch that holds its
 * position; an image that does not decode stops only the shard that owns it.  The threads
 * log nothing: ctx's log callback is only called from the calling thread.
 * Starts the threads.  SN_ERR_NOT_FOUND (no file matches), SN_ERR_INVALID_ARG, SN_ERR_IO,
 * SN_ERR_NOMEM. */
SN_API sn_status sn_pipeline_new(sn_ctx *ctx, const sn_pipeline_params *p,
                                 sn_pipeline **out);
/* Waits for the next batch.  *images: (n, out_height, out_width, C') float32, *labels: n
 * int32, both owned by the pipeline and valid until the next call or free.  The images are
 * in memory ctx's device copies from directly (as sn_tensor_new_pinned's: page-locked on
 * CUDA), so sn_net_set_input from a tensor wrapping them needs no host copy.  n is
 * batch_size, except the last batch of a finite run (n < batch_size) and at the end (n = 0,
 * SN_OK).  Bad input without skip_bad: SN_ERR_FORMAT (or the reader's status) with
 * "file: record at offset N: ..." in ctx's message, and the pipeline is finished (later
 * calls repeat the error).  The error comes after every batch before the bad record's
 * batch, in stream order: the first bad record of the stream is the one reported. */
SN_API sn_status sn_pipeline_next(sn_pipeline *pl, const float **images,
                                  const int32_t **labels, int *n);

/* The preprocessing seed of stream record k (pure), to reproduce any image of the stream
 * with sn_preprocess. */
SN_API uint64_t sn_pipeline_image_seed(uint64_t seed, int64_t k);

typedef struct sn_pipeline_stats {
    int64_t records;            /* records read (sharded: every shard reads them all) */
    int64_t skipped;            /* bad records skipped (skip_bad) */
    int64_t batches;            /* batches returned */
    int64_t epoch;              /* the epoch the reader is in, from 0 */
    double wait_seconds;        /* time sn_pipeline_next spent waiting */
} sn_pipeline_stats;
SN_API sn_pipeline_stats sn_pipeline_get_stats(const sn_pipeline *pl);
/* Stops and joins every thread, frees everything.  NULL is a no-op. */
SN_API void sn_pipeline_free(sn_pipeline *pl);

/* ---- classification: a trained checkpoint as a function (the vendor's sliminfer) --------- */

/* A zoo network in inference mode with a checkpoint's variables and the class names of its
 * training data.  Images are decoded (grayscale replicated to 3 channels where the net
 * takes 3), eval-preprocessed exactly as slimnet-eval does, and classified. */
typedef struct sn_classifier sn_classifier;

typedef struct sn_classifier_params {
    const char *model_name;        /* required, as --model_name */
    const char *checkpoint_path;   /* required: a prefix, V1 file, or folder (its newest) */
    /* Folder with labels.txt and/or info.json (slimnet-train copies the dataset's into its
     * train_dir).  NULL (default): the checkpoint's folder. */
    const char *labels_dir;
    int num_classes;               /* 0 (default): from info.json, else the highest id of
                                      labels.txt + 1 (a labels.txt alone is enough: TF-slim's
                                      "0:background\n1:tench, Tinca tinca\n...") */
    int labels_offset;             /* class id c of the net is label c + offset */
    int fer_extra_class;           /* the vendor's num_class + 1 logits */
    const char *preprocessing_name;/* NULL (default): from model_name */
    int image_size;                /* 0 (default): the model's default */
    int use_moving_averages;       /* 1: "<var>/ExponentialMovingAverage" where present */
    int channels;                  /* images are decoded to 3 (default) or 1 channels */
    int use_grayscale;             /* 1: as --use_grayscale: decoded to 3 channels, then
                                      preprocessing ends with rgb_to_grayscale (1-channel net) */
    int batch_size;                /* images per forward pass of sn_classify_batch; the net is
                                      compiled for it.  Default 1 */
    int precision;                 /* sn_precision of the compiled net; default FP32 */
} sn_classifier_params;
SN_API sn_classifier_params sn_classifier_params_default(void);

/* Builds and restores.  SN_ERR_INVALID_ARG (missing model or checkpoint), SN_ERR_NOT_FOUND
 * (unknown model, no checkpoint, no class count), SN_ERR_SHAPE (the checkpoint's logits
 * have another class count: the message names the variable and both shapes), checkpoint
 * and dataset errors. */
SN_API sn_status sn_classifier_new(sn_ctx *ctx, const sn_classifier_params *p,
                                   sn_classifier **out);
SN_API void sn_classifier_free(sn_classifier *c);
SN_API int sn_classifier_num_classes(const sn_classifier *c);
/* What sn_classifier_new restored (sn_net_restore's report: every variable of the net is
 * restored, or the classifier would not exist; checkpoint tensors no variable took are
 * listed as unused; the struct is defined with sn_net_restore below), owned by the
 * classifier.  NULL for a NULL c. */
SN_API const struct sn_restore_report *sn_classifier_restore_report(const sn_classifier *c);
/* The name of class id (labels.txt, with the offset applied), or NULL. */
SN_API const char *sn_classifier_label(const sn_classifier *c, int id);

typedef struct sn_prediction {
    int id;                  /* class id (label = id + labels_offset) */
    float probability;       /* softmax of the logits */
    const char *label;       /* its name, or NULL; owned by the classifier */
} sn_prediction;

/* Classifies one encoded image (JPEG or PNG): top[0..*n) receive the min(k, classes) most
 * probable classes, most probable first.  SN_ERR_FORMAT (undecodable image), SN_ERR_*. */
SN_API sn_status sn_classify(sn_classifier *c, const void *data, size_t len, int k,
                             sn_prediction *top, int *n);
/* The same for decoded pixels: uint8 (h, w, ch), ch = 1 or 3. */
SN_API sn_status sn_classify_pixels(sn_classifier *c, const uint8_t *img, int h, int w,
                                    int ch, int k, sn_prediction *top, int *n);

/* Batched use, for a server that gathers requests: images are prepared (decoded and
 * preprocessed) on any thread, then run through the net batch_size at a time.
 * sn_classifier_batch_size: the params' batch_size.  sn_classifier_input_numel: floats in one
 * prepared image (size * size * the net's channels).  0 for a NULL c. */
SN_API int sn_classifier_batch_size(const sn_classifier *c);
SN_API size_t sn_classifier_input_numel(const sn_classifier *c);
/* Decodes an encoded image (JPEG or PNG) into the channels c wants and applies c's eval
 * preprocessing, exactly as sn_classify does, into out (sn_classifier_input_numel floats).
 * It only reads c: several threads may call it at once, and while another runs
 * sn_classify_batch, each with its own ctx (which receives the error message and does the
 * work; a CPU context of one thread will do).  max_pixels bounds height * width before
 * anything is allocated (0: SN_IMAGE_DEFAULT_MAX_PIXELS).  SN_ERR_FORMAT (not a JPEG or
 * PNG, damaged, or more than max_pixels), SN_ERR_INVALID_ARG, SN_ERR_NOMEM. */
SN_API sn_status sn_classifier_prepare(const sn_classifier *c, sn_ctx *ctx, const void *data,
                                       size_t len, uint64_t max_pixels, float *out);
/* One forward pass of n prepared images x (n * sn_classifier_input_numel floats),
 * 1 <= n <= batch size.  The rest of the batch is zero-filled and the net always runs its
 * whole batch, so an image's results do not depend on n or on the other images: they are
 * the same bits alone or in a full batch.  logits and probabilities (the softmax, computed as
 * sn_classify does) receive n * classes floats each; either may be NULL.  Not to be called
 * concurrently with sn_classify on the same c.  SN_ERR_INVALID_ARG (n), the net's errors. */
SN_API sn_status sn_classify_batch(sn_classifier *c, const float *x, int n, float *logits,
                                   float *probabilities);

/* ---- TensorBoard event files -------------------------------------------------------------- */

/* "<logdir>/events.out.tfevents.<seconds>.<hostname>": TFRecord-framed Event protos, the
 * first holding file_version "brain.Event:2", as tf.summary.FileWriter writes them; each
 * later event has wall_time (seconds since the epoch, microsecond resolution) and the step.
 * Every event is flushed to the file as soon as it is written, so TensorBoard sees it while
 * training runs.  One sn_events is for one thread at a time. */
typedef struct sn_events sn_events;
/* Creates logdir (and its parents) when missing, then a new event file in it, written
 * through with the first event.  A file of the same name (same second, same host) is never
 * clobbered: ".1", ".2", ... is appended instead.  The sn_events borrows ctx.
 * SN_ERR_IO (the message names the directory or file and has strerror),
 * SN_ERR_INVALID_ARG (NULL or empty logdir), SN_ERR_NOMEM. */
SN_API sn_status sn_events_open(sn_ctx *ctx, const char *logdir, sn_events **out);
/* The file's path ("<logdir>/events.out.tfevents...."), owned by ev. */
SN_API const char *sn_events_path(const sn_events *ev);
/* A scalar summary (simple_value), as tf.summary.scalar.  NaN and infinities are written as
 * they are (TensorBoard shows them).  SN_ERR_IO, SN_ERR_STATE after an earlier write error,
 * SN_ERR_INVALID_ARG (NULL tag). */
SN_API sn_status sn_events_scalar(sn_events *ev, const char *tag, int64_t step, float value);
/* A histogram summary of values[0..n), as tf.compat.v1.summary.histogram makes it: a
 * HistogramProto with TF's default bucket limits (+-1e-12 * 1.1^k, 0, +-DBL_MAX), each run of
 * empty buckets written as one, min/max/num/sum/sum_squares in double; the same proto, bit
 * for bit, as TF's.  n = 0 gives TF's empty histogram (min DBL_MAX, max -DBL_MAX, one empty
 * bucket).  SN_ERR_NUMERIC when a value is NaN or infinite (the message names the file, the
 * tag and the index; TF's op refuses them too), and then nothing is written; SN_ERR_IO,
 * SN_ERR_STATE, SN_ERR_INVALID_ARG (NULL tag, or NULL values with n > 0). */
SN_API sn_status sn_events_histogram(sn_events *ev, const char *tag, int64_t step,
                                     const float *values, size_t n);
/* Pushes everything to the file (events are flushed as written: this is for symmetry with
 * TF's FileWriter.flush).  SN_ERR_IO, SN_ERR_STATE. */
SN_API sn_status sn_events_flush(sn_events *ev);
/* Flushes, closes and frees ev (also after an error); returns the first write error of its
 * life, SN_OK if none.  NULL is a no-op. */
SN_API sn_status sn_events_close(sn_events *ev);


/* ---- checkpoints: TensorFlow's files, read and written without TensorFlow ---------------- */

/* A checkpoint opened for reading: a V2 tensor bundle ("<prefix>.index" +
 * "<prefix>.data-SSSSS-of-NNNNN") or a V1 file (one table of tensor slices, as the 2016-2017
 * TF-slim tarballs ship, snappy-compressed or not; sharded "<path>-SSSSS-of-NNNNN" too).
 * Tensors are listed in name order; partitioned variables appear once, under their full
 * name and full shape, and are reassembled when read.  Every length, offset and dimension
 * in the files is checked against the file sizes before anything is allocated, and every
 * checksum (block trailers, V2 tensor CRC32C) is verified. */
typedef struct sn_ckpt sn_ckpt;

/* What the checkpoint says about one tensor. */
typedef struct sn_ckpt_info {
    const char *name;        /* e.g. "resnet_v2_50/conv1/weights"; owned by the reader */
    int tf_dtype;            /* TensorFlow's DataType value: 1 float, 2 double, 3 int32,
                                4 uint8, 7 string, 9 int64, 10 bool, 19 half, ... */
    const char *dtype_name;  /* "float32", "int64", "string", ...; "unknown" otherwise */
    int has_sn_dtype;        /* 1 when sn_ckpt_read() can return it (float32, int32, int64,
                                uint8); `dtype` is valid only then */
    sn_dtype dtype;
    int rank;                /* 0 for a scalar */
    int64_t dims[SN_MAX_RANK];
    uint64_t nbytes;         /* bytes sn_ckpt_read_raw() fills: numel * element size, or for
                                a V2 string tensor its stored encoding (see there); 0 for a
                                V1 string tensor, which is listed but not decoded */
    int num_slices;          /* pieces of a partitioned variable; 0 for a plain V2 tensor */
} sn_ckpt_info;

/* Opens a checkpoint.  path is, in this order of tries:
 *   a folder: its latest checkpoint, from the `checkpoint` state file (sn_ckpt_latest);
 *   a V2 prefix: "<path>.index" exists ("train/model.ckpt-1000"); a bundle's own file
 *   ("train/model.ckpt-1000.index" or ".data-00000-of-00001") stands for its prefix;
 *   a V1 file: path itself is a table ("inception_v3.ckpt");
 *   a sharded V1 prefix: "<path>-00000-of-0000N" exists, or the glob pattern TF's state
 *   file names for one ("model.ckpt-7-?????-of-00002").
 * Reads the whole index (V2) or the meta record (V1) and checks each entry: dtype, shape
 * (0 <= dims, rank <= SN_MAX_RANK, no overflow), data shard and byte range within its file.
 * *out borrows ctx.  Errors, with the file (and tensor, and offset) named in the message:
 * SN_ERR_NOT_FOUND (no such checkpoint), SN_ERR_IO, SN_ERR_FORMAT (corrupt: bad magic,
 * checksum, truncation, an entry that does not fit its data file),
 * SN_ERR_UNSUPPORTED (big-endian bundle, rank above SN_MAX_RANK, a future format version),
 * SN_ERR_NOMEM. */
SN_API sn_status sn_ckpt_open(sn_ctx *ctx, const char *path, sn_ckpt **out);
SN_API void sn_ckpt_close(sn_ckpt *ck);
/* 1 or 2. */
SN_API int sn_ckpt_version(const sn_ckpt *ck);
/* The prefix (V2) or file (V1) actually opened, after resolving a folder.  Owned by ck. */
SN_API const char *sn_ckpt_path(const sn_ckpt *ck);
/* Number of tensors (the V2 header and the pieces of partitioned tensors not counted). */
SN_API int sn_ckpt_count(const sn_ckpt *ck);
/* Facts about tensor i, 0 <= i < count, in name order.  SN_ERR_INVALID_ARG out of range. */
SN_API sn_status sn_ckpt_info_at(const sn_ckpt *ck, int i, sn_ckpt_info *info);
/* Index of the tensor named `name`, or -1. */
SN_API int sn_ckpt_find(const sn_ckpt *ck, const char *name);

/* Reads tensor `name` into a new host tensor *out (dtype and shape as stored).
 * SN_ERR_NOT_FOUND (no such tensor), SN_ERR_UNSUPPORTED (a dtype sn_tensor lacks: use
 * sn_ckpt_read_raw), SN_ERR_FORMAT (checksum mismatch, truncated data), SN_ERR_IO,
 * SN_ERR_NOMEM. */
SN_API sn_status sn_ckpt_read(sn_ckpt *ck, const char *name, sn_tensor **out);
/* Reads tensor `name` into dst, which must have its dtype and exactly its shape
 * (SN_ERR_SHAPE otherwise, both shapes named).  dst's memory is written in place. */
SN_API sn_status sn_ckpt_read_into(sn_ckpt *ck, const char *name, sn_tensor *dst);
/* Copies the tensor's bytes into buf (len must be info.nbytes, else SN_ERR_INVALID_ARG):
 * any fixed-size dtype as little-endian row-major elements (bool 1 byte, half/bfloat16 the
 * 16-bit patterns).  A V2 DT_STRING tensor comes as stored: each length as a varint64, a
 * 4-byte masked CRC32C of the lengths, then the bytes; its checksum is verified.  V1 string
 * tensors: SN_ERR_UNSUPPORTED. */
SN_API sn_status sn_ckpt_read_raw(sn_ckpt *ck, const char *name, void *buf, size_t len);

/* One tensor to write: borrowed. */
typedef struct sn_ckpt_entry {
    const char *name;
    const sn_tensor *tensor;
} sn_ckpt_entry;

/* Writes n tensors as a V2 checkpoint "<prefix>.data-00000-of-00001" + "<prefix>.index",
 * byte for byte as TensorFlow's BundleWriter: tensors sorted by name (the order need not
 * be), raw little-endian data, index uncompressed.  Atomic: each file is written under a
 * temporary name, fsynced, then renamed (data first, index last), so a reader never sees
 * an index without its data.  The folder must exist.  SN_ERR_INVALID_ARG (empty or
 * duplicate name), SN_ERR_IO, SN_ERR_NOMEM. */
SN_API sn_status sn_ckpt_write(sn_ctx *ctx, const char *prefix, int n,
                               const sn_ckpt_entry *entries);

/* The latest checkpoint of a training folder, from its `checkpoint` state file
 * (model_checkpoint_path; a relative path is taken relative to dir), written into buf as a
 * path (the V2 prefix or the V1 file).  A path outside dir (TF1 writes absolute paths, so a
 * moved or copied folder names the original's files) is taken by its basename in dir when
 * that exists, else as it is; either is logged as a warning.
 * SN_ERR_NOT_FOUND only when dir has no state file (nothing was saved there: start afresh);
 * SN_ERR_FORMAT when the state file is damaged, names no checkpoint or one that does not
 * exist (sn_ckpt_newest then finds what the folder holds); SN_ERR_INVALID_ARG when buf is
 * too small; SN_ERR_IO. */
SN_API sn_status sn_ckpt_latest(sn_ctx *ctx, const char *dir, char *buf, size_t len);
/* The newest complete V2 checkpoint in dir, found by listing it: of the "<name>.index"
 * files, by the global step after the name's last '-', the newest that sn_ckpt_open
 * accepts (its index reads and every tensor fits its data file).  The recovery when the
 * state file is damaged.  SN_ERR_NOT_FOUND when there is none; SN_ERR_INVALID_ARG when buf
 * is too small; SN_ERR_IO when dir cannot be listed. */
SN_API sn_status sn_ckpt_newest(sn_ctx *ctx, const char *dir, char *buf, size_t len);
/* Records `prefix` (a checkpoint in dir: relative to dir, "<dir>/<name>" with dir as given,
 * or absolute) as the latest in dir's state file, as
 * tf.train.Saver does: it goes last in all_model_checkpoint_paths, and beyond max_to_keep
 * entries (0: keep all) the oldest are dropped from the list and their files deleted, but
 * only files directly in dir: an entry naming a checkpoint elsewhere is dropped from the
 * list and its files left alone.  Checkpoints in dir are written relative to it (an
 * absolute path outside dir whose basename is in dir, too: the folder was moved or
 * copied).  A damaged state file is replaced by one listing the folder's checkpoints
 * (logged as a warning).  The file is replaced atomically.  Then temporary files that
 * writers killed mid-write left in dir ("<file>.tmp<pid>" of the state file, an index or a
 * data shard, whose process no longer exists) are removed. */
SN_API sn_status sn_ckpt_state_update(sn_ctx *ctx, const char *dir, const char *prefix,
                                      int max_to_keep);

/* ---- restoring and saving a net ----------------------------------------------------------- */

/* train_image_classifier's warm-start rules (--checkpoint_exclude_scopes,
 * --ignore_missing_vars). */
typedef struct sn_restore_params {
    /* Comma-separated scopes ("InceptionV3/Logits, InceptionV3/AuxLogits"); whitespace
     * around entries is stripped; a variable whose name starts with an entry (plain string
     * prefix, as TF-slim) is not restored.  NULL or "": none. */
    const char *exclude_scopes;
    /* 1: variables absent from the checkpoint keep their values (listed as missing).
     * 0 (default): any missing variable fails with SN_ERR_NOT_FOUND. */
    int ignore_missing_vars;
    /* 1: consider only model variables (SN_VAR_MODEL), as the fine-tuning warm start does;
     * 0 (default): every variable of the net. */
    int model_vars_only;
    /* 1: a variable takes the checkpoint's "<name>/ExponentialMovingAverage" where it has
     * one (eval_image_classifier with --moving_average_decay), else "<name>".  0 (default):
     * "<name>" only. */
    int use_moving_averages;
} sn_restore_params;
SN_API sn_restore_params sn_restore_params_default(void);

/* What a restore did.  Every list is an array of n strings owned by the report. */
typedef struct sn_restore_report {
    char *checkpoint;        /* the prefix or file restored from */
    int n_restored, n_excluded, n_missing, n_unused, n_mismatched;
    char **restored;         /* variables given the checkpoint's value */
    char **excluded;         /* variables skipped by exclude_scopes (or not model variables) */
    char **missing;          /* variables the checkpoint lacks */
    char **unused;           /* checkpoint tensors no variable took (global_step, slots...) */
    char **mismatched;       /* "name: net [3,3,64,10] float32, checkpoint [3,3,64,5] float32" */
} sn_restore_report;

/* Restores the net's variables from a checkpoint: path is a file prefix, a V1 file, or a
 * folder (its latest checkpoint).  Every variable is matched by exact name; names, shapes
 * and dtypes are checked for all of them BEFORE any value is changed, so a mismatch or a
 * missing variable leaves the net as it was (only corrupt tensor data, found while reading,
 * can stop a restore halfway).  Values go through one host buffer the size of the largest
 * variable.  p may be NULL (defaults); report may be NULL, otherwise it is filled (also on
 * SN_ERR_SHAPE / SN_ERR_NOT_FOUND, for the tool to print) and must be released with
 * sn_restore_report_free().
 * Errors: SN_ERR_SHAPE (first mismatched variable named with both shapes),
 * SN_ERR_NOT_FOUND (missing variable without ignore_missing_vars, or no checkpoint), and
 * sn_ckpt_open/read's errors. */
SN_API sn_status sn_net_restore(sn_net *net, const char *path, const sn_restore_params *p,
                                sn_restore_report *report);
SN_API void sn_restore_report_free(sn_restore_report *r);

typedef struct sn_save_params {
    int max_to_keep;              /* checkpoints listed in the state file; 5 as
                                     tf.train.Saver; 0 = all */
    int n_extra;                  /* more tensors to save (optimizer slots...) */
    const sn_ckpt_entry *extra;   /* borrowed; names must not clash with variables */
} sn_save_params;
SN_API sn_save_params sn_save_params_default(void);

/* Saves every variable of the net plus "global_step" (int64 scalar = step) as the V2
 * checkpoint "<dir>/model.ckpt-<step>" and makes it the latest in dir's `checkpoint` state
 * file (sn_ckpt_state_update).  dir is created if missing.  p may be NULL (defaults).
 * prefix_out (may be NULL) receives the prefix written.  Errors as sn_ckpt_write. */
SN_API sn_status sn_net_save(sn_net *net, const char *dir, int64_t step,
                             const sn_save_params *p, char *prefix_out, size_t prefix_len);


/* ---- optimizers: TF1's tf.train.*Optimizer, as train_image_classifier configures them ---- */

/* train_image_classifier's --optimizer values. */
typedef enum sn_optim_kind {
    SN_OPTIM_SGD = 0,        /* "sgd":      GradientDescentOptimizer */
    SN_OPTIM_MOMENTUM = 1,   /* "momentum": MomentumOptimizer (name 'Momentum') */
    SN_OPTIM_RMSPROP = 2,    /* "rmsprop":  RMSPropOptimizer (TF-slim's default) */
    SN_OPTIM_ADAM = 3,       /* "adam":     AdamOptimizer */
    SN_OPTIM_ADAGRAD = 4,    /* "adagrad":  AdagradOptimizer */
    SN_OPTIM_ADADELTA = 5,   /* "adadelta": AdadeltaOptimizer */
    SN_OPTIM_FTRL = 6        /* "ftrl":     FtrlOptimizer */
} sn_optim_kind;

/* The flag value ("rmsprop") of a kind; NULL for an unknown kind. */
SN_API const char *sn_optim_kind_name(sn_optim_kind kind);
/* The kind named by a flag value ("sgd", "momentum", "rmsprop", "adam", "adagrad",
 * "adadelta", "ftrl").  SN_ERR_NOT_FOUND for any other string. */
SN_API sn_status sn_optim_kind_from_name(const char *name, sn_optim_kind *kind);

/* An optimizer's settings.  Each field is used by the kinds named in its comment; the
 * first default is train_image_classifier's flag (what sn_optim_params_default gives),
 * the second TF1's own constructor default (sn_optim_params_tf1) where it differs. */
typedef struct sn_optim_params {
    sn_optim_kind kind;
    float momentum;          /* MOMENTUM: --momentum 0.9 (TF1: required, no default) */
    int nesterov;            /* MOMENTUM: use_nesterov, 0 (not a TF-slim flag) */
    float rmsprop_decay;     /* RMSPROP: --rmsprop_decay 0.9 (TF1: decay 0.9) */
    float rmsprop_momentum;  /* RMSPROP: --rmsprop_momentum 0.9 (TF1: 0.0) */
    float epsilon;           /* RMSPROP, ADAM, ADADELTA: --opt_epsilon 1.0
                                (TF1: 1e-10, 1e-8, 1e-8 respectively) */
    float adam_beta1;        /* ADAM: --adam_beta1 0.9 */
    float adam_beta2;        /* ADAM: --adam_beta2 0.999 */
    float adadelta_rho;      /* ADADELTA: --adadelta_rho 0.95 */
    float adagrad_initial_accumulator;  /* ADAGRAD: 0.1; must be > 0 */
    float ftrl_lr_power;     /* FTRL: --ftrl_learning_rate_power -0.5; must be <= 0 */
    float ftrl_initial_accumulator;     /* FTRL: 0.1; must be >= 0 */
    float ftrl_l1, ftrl_l2;  /* FTRL: 0.0, 0.0; must be >= 0 */
    /* The optimizer's name, which names its slots "<var>/<name>" and "<var>/<name>_1".
     * NULL (default): TF1's default name for the kind: "GradientDescent", "Momentum",
     * "RMSProp", "Adam", "Adagrad", "Adadelta", "Ftrl".  Copied by sn_optim_new. */
    const char *name;
    /* --trainable_scopes: comma-separated regular expressions (whitespace around each
     * stripped); a trainable variable is updated when one of them matches at the START of
     * its TensorFlow name "<var>:0" (Python's re.match, as tf.get_collection(scope) does;
     * here POSIX extended syntax, which agrees for scope names).  The union keeps the
     * variables' creation order.  NULL or "" (default): every trainable variable.
     * Copied by sn_optim_new. */
    const char *trainable_scopes;
} sn_optim_params;

/* train_image_classifier's defaults for `kind` (opt_epsilon 1.0, momentum 0.9, ...). */
SN_API sn_optim_params sn_optim_params_default(sn_optim_kind kind);
/* TF1's constructor defaults for `kind` (momentum, which TF1 requires, 0.9). */
SN_API sn_optim_params sn_optim_params_tf1(sn_optim_kind kind);

typedef struct sn_optim sn_optim;

/* An optimizer for the trainable variables of net selected by p->trainable_scopes (the
 * "trainable set"), with TF1's slot variables, all in one block of the net's device memory,
 * initialized as TF1 does: RMSProp's mean square to ONES and its momentum to zeros, Adam's
 * m and v to zeros and beta1_power/beta2_power to beta1/beta2, Adagrad's accumulator and
 * FTRL's accumulator to their initial values, everything else to zeros.  global_step
 * starts at 0.  The optimizer borrows net, which must outlive it.
 * Errors: SN_ERR_INVALID_ARG (bad kind or parameter; a scope that is not a valid regular
 * expression, with regerror's text; an empty trainable set, as TF's "No variables to
 * optimize", which also comes from a net compiled with backward = 0), SN_ERR_NOMEM,
 * SN_ERR_CUDA. */
SN_API sn_status sn_optim_new(sn_net *net, const sn_optim_params *p, sn_optim **out);
SN_API void sn_optim_free(sn_optim *opt);

/* One optimizer step with learning rate lr (sn_learning_rate of the current global step,
 * typically): every variable of the trainable set is updated from its gradient in the net
 * (left by sn_net_backward) with TF1's update rule, by one fused kernel per variable on the
 * net's device; then Adam's beta powers are multiplied by beta1/beta2, and global_step is
 * incremented, as apply_gradients(global_step=...) does.  The rules, in TF1's float order:
 *   sgd       w -= g*lr
 *   momentum  a = a*mu + g;  w -= a*lr  (nesterov: w -= g*lr + a*mu*lr)
 *   rmsprop   ms += (g*g - ms)*(1-rho);  mom = mom*mu + g*lr/sqrt(ms+eps);  w -= mom
 *   adam      lr_t = lr*sqrt(1-beta2_power)/(1-beta1_power);  m += (g-m)*(1-b1);
 *             v += (g*g - v)*(1-b2);  w -= m*lr_t/(sqrt(v)+eps)
 *   adagrad   acc += g*g;  w -= g*lr*rsqrt(acc)
 *   adadelta  acc = acc*rho + g*g*(1-rho);  u = sqrt(acc_up+eps)*rsqrt(acc+eps)*g;
 *             w -= u*lr;  acc_up = acc_up*rho + u*u*(1-rho)
 *   ftrl      n' = n + g*g;  z += g - (n'^-p - n^-p)/lr*w  (p = lr_power; sqrt for -0.5);
 *             w = |z| > l1 ? (l1*sign(z) - z)/(n'^-p/lr + 2*l2) : 0;  n = n'
 * SN_ERR_UNSUPPORTED (a backend without the kernel), SN_ERR_CUDA. */
SN_API sn_status sn_optim_step(sn_optim *opt, float lr);

/* The step counter: the number of sn_optim_step calls since creation, or what was set
 * (when restoring "global_step" from a checkpoint). */
SN_API int64_t sn_optim_global_step(const sn_optim *opt);
SN_API void sn_optim_set_global_step(sn_optim *opt, int64_t step);
/* The parameters in use (name and trainable_scopes point at the optimizer's copies). */
SN_API const sn_optim_params *sn_optim_get_params(const sn_optim *opt);

/* The trainable set: number of variables and the full name of the i-th (creation order;
 * NULL out of range).  Owned by the net's graph. */
SN_API int sn_optim_num_vars(const sn_optim *opt);
SN_API const char *sn_optim_var_name(const sn_optim *opt, int i);

/* One optimizer variable: a slot of a trainable variable, or a non-slot variable
 * (beta1_power, beta2_power). */
typedef struct sn_slot_info {
    const char *name;        /* TF's name: "conv1/weights/RMSProp_1", "beta1_power" */
    const char *var;         /* the variable it belongs to; NULL for non-slot variables */
    int rank;                /* the variable's shape; 0 (scalar) for the beta powers */
    int64_t dims[SN_MAX_RANK];
} sn_slot_info;

/* Optimizer variables, in storage order: the non-slot ones first, then each variable's
 * slots (slot 0 "<var>/<name>", slot 1 "<var>/<name>_1").  SGD has none.  Every one is
 * float32.  sn_optim_slot: SN_ERR_INVALID_ARG when i is out of range. */
SN_API int sn_optim_num_slots(const sn_optim *opt);
SN_API sn_status sn_optim_slot(const sn_optim *opt, int i, sn_slot_info *info);
/* Index of the optimizer variable named `name`, or -1. */
SN_API int sn_optim_find_slot(const sn_optim *opt, const char *name);
/* Copies optimizer variable `name` into a new host tensor *out / from t (float32, exactly
 * the slot's shape), for checkpoints.
 * SN_ERR_NOT_FOUND (no such slot), SN_ERR_SHAPE (both shapes named), SN_ERR_NOMEM. */
SN_API sn_status sn_optim_get_slot(sn_optim *opt, const char *name, sn_tensor **out);
SN_API sn_status sn_optim_set_slot(sn_optim *opt, const char *name, const sn_tensor *t);
/* Bytes of device memory the optimizer variables take. */
SN_API size_t sn_optim_memory(const sn_optim *opt);

/* ---- learning-rate schedules (train_image_classifier._configure_learning_rate) ------------ */

typedef enum sn_lr_decay {
    SN_LR_FIXED = 0,         /* "fixed":       lr */
    SN_LR_EXPONENTIAL = 1,   /* "exponential": lr * factor^floor(step/decay_steps) (default) */
    SN_LR_POLYNOMIAL = 2     /* "polynomial":  (lr-end)*(1 - min(step,ds)/ds)^power + end */
} sn_lr_decay;

/* --learning_rate_decay_type value ("fixed", ...) of a schedule; NULL if unknown. */
SN_API const char *sn_lr_decay_name(sn_lr_decay type);
/* The schedule named by a flag value.  SN_ERR_NOT_FOUND for any other string. */
SN_API sn_status sn_lr_decay_from_name(const char *name, sn_lr_decay *type);

typedef struct sn_lr_params {
    sn_lr_decay type;        /* --learning_rate_decay_type, SN_LR_EXPONENTIAL */
    float learning_rate;     /* --learning_rate 0.01 */
    float end_learning_rate; /* --end_learning_rate 0.0001 (polynomial) */
    float decay_factor;      /* --learning_rate_decay_factor 0.94 (exponential) */
    double decay_steps;      /* sn_lr_decay_steps(); must be > 0 unless FIXED.  Default 0,
                                unset: the decaying schedules give NaN until it is set.
                                A double: with sync_replicas TF-slim divides it by
                                replicas_to_aggregate in Python 3, giving e.g. 103.5 */
    float power;             /* polynomial: 1.0, as TF-slim passes */
    int cycle;               /* polynomial: 0, as TF-slim passes */
    int staircase;           /* exponential: 1, as TF-slim passes */
} sn_lr_params;
SN_API sn_lr_params sn_lr_params_default(void);

/* decay_steps as train_image_classifier computes it:
 * int(num_samples * num_epochs_per_decay / batch_size), then divided (exactly, not rounded)
 * by replicas_to_aggregate when sync_replicas is on (pass 1 otherwise).  Can be 0 for small
 * datasets, which sn_learning_rate refuses for the decaying schedules.  A batch_size or
 * replicas_to_aggregate below 1 gives 0. */
SN_API double sn_lr_decay_steps(int64_t num_samples, double num_epochs_per_decay,
                                int64_t batch_size, int replicas_to_aggregate);

/* The learning rate at global_step, computed in float32 as TensorFlow's
 * exponential_decay / polynomial_decay graphs compute it (step and decay_steps cast to
 * float32), including TF's graph optimizer turning the division by the constant
 * decay_steps into a multiplication by its float32 reciprocal: with decay_steps 41, for
 * example, the staircase steps down at 42, 83, ... as in TF-slim.  A pure function.
 * Returns NaN for invalid parameters (decay_steps <= 0 for a decaying schedule, an unknown
 * type, global_step < 0), where TF would divide by zero; callers check with isnan(). */
SN_API float sn_learning_rate(const sn_lr_params *p, int64_t global_step);

/* ---- moving averages of variables (tf.train.ExponentialMovingAverage) -------------------- */

typedef struct sn_ema sn_ema;

/* Shadow copies "<var>/ExponentialMovingAverage" of the net's variables whose flags
 * include any of var_flags (SN_VAR_MODEL: slim.get_model_variables(), what
 * train_image_classifier averages with --moving_average_decay), in one block of the net's
 * device memory.  Each shadow starts as a copy of its variable's CURRENT value (TF starts it
 * at the variable's initial value: create the EMA before restoring a checkpoint to match
 * TF-slim's fine-tuning exactly).  decay in [0, 1].  The EMA borrows net.
 * SN_ERR_INVALID_ARG (decay outside [0,1], no variable selected), SN_ERR_NOMEM,
 * SN_ERR_CUDA. */
SN_API sn_status sn_ema_new(sn_net *net, float decay, unsigned var_flags, sn_ema **out);
SN_API void sn_ema_free(sn_ema *ema);

/* The decay TF uses for an update: min(decay, (1 + n)/(10 + n)) with n = num_updates as
 * float32, or decay itself when num_updates < 0 (no num_updates). */
SN_API float sn_ema_decay_at(float decay, int64_t num_updates);

/* One update of every shadow: shadow -= (shadow - var) * (1 - d), d = sn_ema_decay_at(decay,
 * num_updates), in float32 as TF's assign_moving_average (zero_debias off for variables).
 * train_image_classifier passes num_updates = global_step; its update op runs in the same
 * session call as apply_gradients with no order between them, so the step (before or after
 * its increment) and the variable values (before or after the update) it sees are not
 * defined there.  A trainer should call this after sn_optim_step, with
 * sn_optim_global_step() (the incremented step).  SN_ERR_UNSUPPORTED, SN_ERR_CUDA. */
SN_API sn_status sn_ema_update(sn_ema *ema, int64_t num_updates);

/* Copies every shadow into its variable, as evaluating with
 * variables_to_restore(moving averages) does.  The shadows stay as they were. */
SN_API sn_status sn_ema_assign_to_net(sn_ema *ema);

/* The shadow variables, as the optimizer's slots: info.var is the averaged variable.
 * get/set copy through host tensors (float32, exactly the variable's shape). */
SN_API int sn_ema_num_slots(const sn_ema *ema);
SN_API sn_status sn_ema_slot(const sn_ema *ema, int i, sn_slot_info *info);
SN_API int sn_ema_find_slot(const sn_ema *ema, const char *name);
SN_API sn_status sn_ema_get_slot(sn_ema *ema, const char *name, sn_tensor **out);
SN_API sn_status sn_ema_set_slot(sn_ema *ema, const char *name, const sn_tensor *t);

/* ---- distributed training: a process group (lib/dist/) ------------------------------------
 *
 * Data-parallel training over many processes and machines: every process (rank) runs the
 * same net on its own share of the data, and the gradients are averaged over the group
 * after each backward pass (sn_net_set_dist), as PyTorch's DDP and Horovod do.  The bytes
 * move over Gloo's TCP transport with per-operation timeouts; the processes meet at a small
 * rendezvous store that rank 0 (the chief) serves on its address, as PyTorch's TCPStore.
 * A peer that dies or stops makes every collective fail within the timeout, the message
 * naming it ("worker 2 (10.0.0.3:2222) ended"); nothing waits forever.  Gloo writes to
 * sockets without MSG_NOSIGNAL: a program in a group should ignore SIGPIPE (slimnet-train
 * does), or a peer that dies can end it with that signal instead of an error. */
typedef struct sn_dist sn_dist;

/* What moves a GPU net's gradients.  Gloo is always there: the host collectives
 * (sn_dist_allreduce, broadcast, barrier), the rendezvous and the naming of a failed peer
 * run over it.  NCCL is added for device buffers: a CUDA net in the group then broadcasts
 * its variables and all-reduces its gradient buckets with NCCL on a stream of its own
 * while the backward runs.  NCCL takes one GPU per rank; two ranks sharing a GPU use Gloo
 * (the gradients staged through host memory). */
typedef enum sn_dist_backend { SN_DIST_GLOO = 0, SN_DIST_NCCL = 1 } sn_dist_backend;
/* "gloo" or "nccl" into *out; SN_ERR_INVALID_ARG for anything else. */
SN_API sn_status sn_dist_backend_from_name(const char *name, sn_dist_backend *out);
SN_API const char *sn_dist_backend_name(sn_dist_backend b);

typedef struct sn_dist_params {
    int rank;                  /* this process: 0 (the chief) .. size - 1 */
    int size;                  /* processes in the group (default 1: no group) */
    int local_rank;            /* among the group's processes on this machine */
    char master_addr[256];     /* rank 0's address: it serves the rendezvous store there */
    int master_port;           /* default 29500 */
    char host[256];            /* this process's address for the others; "": 127.0.0.1 for a
                                  loopback master, else the host name */
    char name[256];            /* this process in messages ("worker 1 (10.0.0.2:2222)");
                                  "": "rank R (host)" */
    double timeout_secs;       /* the rendezvous and every collective (default 300) */
    char roster[8192];         /* every rank's name, a line each in rank order, as the
                                  environment knows them (TF_CONFIG), to name a rank that
                                  never arrived; "": "rank R" */
    sn_dist_backend backend;   /* SN_DIST_GLOO (default); SN_DIST_NCCL: also an NCCL
                                  communicator on the context's CUDA device
                                  (sn_ctx_params.device_index: one GPU per rank; slimnet-train
                                  uses local_rank), which every rank must ask for */
} sn_dist_params;
SN_API sn_dist_params sn_dist_params_default(void);

/* The group the environment describes. */
typedef struct sn_dist_env {
    int found;                 /* 1: TF_CONFIG, or a launcher with more than one process */
    char source[32];           /* "TF_CONFIG", "torchrun", "Open MPI", "MPICH/PMI", "Slurm" */
    char task_type[16];        /* TF_CONFIG's task type (chief, master, worker, ps,
                                  evaluator); "worker" for the launchers */
    int task_index;
    int num_workers;           /* the group: chief/master and workers */
    int num_ps;                /* TF_CONFIG's ps tasks (outside the group) */
    int local_size;            /* the group's processes on this machine, as the launcher
                                  says (LOCAL_WORLD_SIZE, ..._LOCAL_SIZE); 0: not known */
    sn_dist_params params;     /* rank -1 for a task outside the group (ps, evaluator) */
    sn_dist_params cluster;    /* TF_CONFIG with ps tasks: every task but an evaluator in
                                  one group, the asynchronous mode's (sn_ps_*): ps i is rank
                                  i, then the chief and the workers as in params; ps 0's
                                  address serves the rendezvous.  size 0 without ps tasks;
                                  rank -1 for an evaluator */
} sn_dist_env;
/* Reads TF_CONFIG, else torchrun's, Open MPI's, MPICH's or Slurm's variables (lib/dist/env.c
 * says which and how); found = 0 and a one-process group when there are none.
 * SN_ERR_FORMAT (a TF_CONFIG that is not what TensorFlow reads, naming what), and
 * SN_ERR_INVALID_ARG (a launcher's variable out of range; processes on several machines
 * without MASTER_ADDR). */
SN_API sn_status sn_dist_env_read(sn_ctx *ctx, sn_dist_env *env);

/* Joins the group: rank 0 starts the rendezvous store, every rank connects to it (retrying
 * until the timeout: start order does not matter) and to every other rank.  A group of one
 * needs no network and every collective returns at once.  With SN_DIST_NCCL the ranks then
 * build an NCCL communicator (rank 0's unique id passed through the store; a group of one
 * builds one too), non-blocking and polled against the timeout.  SN_ERR_INVALID_ARG (also:
 * NCCL asked for on a CPU context), SN_ERR_UNSUPPORTED (a build without NCCL),
 * SN_ERR_IO (cannot listen; the message names the address), SN_ERR_TIMEOUT (a rank never
 * arrived, named), SN_ERR_CUDA (NCCL refused, e.g. two ranks on one GPU), SN_ERR_NOMEM.
 * *out borrows ctx. */
SN_API sn_status sn_dist_new(sn_ctx *ctx, const sn_dist_params *p, sn_dist **out);
/* Leaves the group (the chief's store stops with it).  NULL is a no-op. */
SN_API void sn_dist_free(sn_dist *d);
SN_API int sn_dist_rank(const sn_dist *d);
SN_API int sn_dist_size(const sn_dist *d);
SN_API int sn_dist_local_rank(const sn_dist *d);
SN_API sn_dist_backend sn_dist_get_backend(const sn_dist *d);
/* Seconds this rank's calling thread has spent in collectives so far, or waiting for the
 * all-reduces a net's backward runs in the background (sn_net_set_dist): the time
 * communication cost the step (a trainer shows it beside the step time). */
SN_API double sn_dist_wait_seconds(const sn_dist *d);

typedef enum sn_dist_op { SN_DIST_SUM = 0, SN_DIST_MEAN = 1 } sn_dist_op;
/* In place over the group: t (a host tensor of float32, int32 or int64; MEAN: float32 only)
 * becomes the sum or the mean of every rank's t, the same bits on every rank.  Every rank
 * calls the collectives in the same order with the same shapes.  A failure names the
 * operation, its number and the peer that ended, never arrived or is behind:
 * SN_ERR_IO (a peer ended or is unreachable), SN_ERR_TIMEOUT (no progress within
 * timeout_secs), SN_ERR_INVALID_ARG, SN_ERR_NOMEM.  After a failure the group is broken:
 * every later collective fails at once with the same message. */
SN_API sn_status sn_dist_allreduce(sn_dist *d, sn_tensor *t, sn_dist_op op);
/* sn_dist_allreduce in the group's background thread: queued behind the collectives
 * already queued (a net's gradient buckets too) and returns at once; t must stay untouched
 * until sn_dist_wait has returned.  A collective that runs in the calling thread waits for
 * the queued ones first. */
SN_API sn_status sn_dist_allreduce_async(sn_dist *d, sn_tensor *t, sn_dist_op op);
/* Returns when every queued collective is done: SN_OK, or the first one's failure. */
SN_API sn_status sn_dist_wait(sn_dist *d);
/* t becomes root's t on every rank (any dtype). */
SN_API sn_status sn_dist_broadcast(sn_dist *d, sn_tensor *t, int root);
/* Returns when every rank has called it. */
SN_API sn_status sn_dist_barrier(sn_dist *d);

/* Data-parallel training of net over d: the variables are broadcast from rank 0 now (every
 * rank starts from the chief's weights), and from then on each sn_net_backward averages
 * the gradients over the group before it returns, so that each rank's optimizer applies the
 * same update.  On the CPU the gradients go in buckets of about 4 MB, each all-reduced in
 * the group's background thread as soon as the backward pass has produced it, while the
 * rest of the backward runs (as PyTorch's DDP does).  On a GPU in an NCCL group the same
 * buckets are averaged by NCCL on a communication stream, each launched once the compute
 * stream has passed its slot; the compute stream waits for the last one before
 * sn_net_backward returns, which polls NCCL's errors against the group's timeout (a group
 * of one runs through NCCL too).  On a GPU in a Gloo group the block is all-reduced after
 * the backward, staged through host memory.  Rank r's batch is taken as examples r*B ..
 * (r+1)*B-1 of one global batch of size*B (B: this net's batch): dropout draws the masks
 * those examples would get there, so that size processes of batch B train as one of batch
 * size*B would, up to the order of float sums.  Batch-norm statistics stay per rank, as TF's sync replicas keep them.  NULL
 * ends it.  The net borrows d.  Errors as sn_dist_broadcast, and SN_ERR_INVALID_ARG for a
 * CPU net in an NCCL group or a GPU net on another device than the group's; afterwards
 * sn_net_backward returns sn_dist_allreduce's errors (SN_ERR_CUDA: NCCL failed). */
SN_API sn_status sn_net_set_dist(sn_net *net, sn_dist *d);

/* ---- asynchronous training on parameter servers (lib/dist/ps.c) ----------------------------
 *
 * TF1's between-graph replication with ps tasks, as a TF_CONFIG cluster with "ps" tasks runs
 * train_image_classifier without --sync_replicas: the ps tasks hold the variables and their
 * optimizer slots and apply the updates; every worker, at its own pace, pulls the current
 * variables, runs forward and backward on its own batch, and pushes its gradients (and its
 * batch-norm batch statistics) to the ps tasks, which apply them with TF1's update rule (the
 * optimizer's own kernels, sn_optim_step) in the order they arrive.  No worker waits for
 * another: a worker that dies costs only its own pushes.
 *
 * The group (sn_dist) holds every task: the ps tasks are its ranks 0 .. num_ps-1 (ps 0 serves
 * the rendezvous: sn_dist_env.cluster), the chief (or master) and the workers the rest.  The
 * messages are Gloo's point-to-point sends over the group's mesh.  Placement is TF's
 * replica_device_setter's round robin over variables in creation order: global_step on ps 0,
 * then the graph's variable i (sn_graph_var order, batch-norm statistics included) on ps
 * (i + 1) % num_ps; a variable's optimizer slots live with it; Adam's beta powers on every
 * ps that holds a trained variable (each applies every push, so they agree).  A batch norm's
 * moving statistics are updated on their ps as TF's UPDATE_OPS do there: moving -=
 * (moving - batch value) * (1 - decay), with the worker's batch statistics.
 *
 * One worker alone against the ps tasks trains exactly as local training does, step for step
 * (its push is applied before its next pull is answered). */

typedef struct sn_ps_params {
    int num_ps;                /* the group's ranks 0 .. num_ps-1 are the ps tasks */
    /* sn_ps_serve: polled about every 0.2 s; non-zero ends serving (SIGTERM).  NULL: never. */
    int (*should_stop)(void *arg);
    /* sn_ps_serve: the server's events, a line each ("worker 1 (h:p) ended (its connection
     * closed); serving the others"), called from the server's threads.  NULL: none. */
    void (*log)(void *arg, const char *line);
    void *arg;
} sn_ps_params;
SN_API sn_ps_params sn_ps_params_default(void);

typedef struct sn_ps_stats {
    int64_t global_step;       /* ps 0's, as of the newest reply (the client), or now */
    int64_t pushes;            /* gradients pushed by this client / applied by this server */
    int64_t pulls;             /* variable pulls answered (server) or made (client) */
    double staleness_sum;      /* over the pushes ps 0 applied: global steps between the
                                  pull a gradient was computed from and its application */
    int64_t staleness_n;       /* how many pushes that sum covers (ps 0's count) */
    double wait_secs;          /* client: seconds spent waiting for the ps tasks */
    int done;                  /* the chief has ended the job (sn_ps_done) */
    int variables;             /* server: the variables it holds */
} sn_ps_stats;

/* A ps task's work: waits for the chief's variables (sn_ps_init), then answers pulls and
 * applies pushes until the job ends: every other task has left or ended, with the chief's
 * sn_ps_done received (SN_OK), or p->should_stop (SN_OK).  The variables, slots and
 * optimizer come from the chief: a ps task needs no model, dataset or flags of its own.
 * Runs on d's context (a CPU context, as TF's ps tasks).  A worker that ends is logged and
 * the others are served on.  SN_ERR_IO: every worker ended without the chief's sn_ps_done,
 * or ps 0 (the rendezvous) ended; SN_ERR_TIMEOUT: the chief's variables did not come within
 * the group's timeout; SN_ERR_FORMAT: a malformed message (named); SN_ERR_NOMEM. *stats
 * (may be NULL) says what was served. */
SN_API sn_status sn_ps_serve(sn_dist *d, const sn_ps_params *p, sn_ps_stats *stats);

/* A worker's side: net's variables live on the ps tasks of d, opt's update rule and slots
 * with them.  opt may be NULL only for a net that trains nothing.  The client borrows all
 * three.  Worker w (rank num_ps + w; the chief is worker 0) draws dropout masks as examples
 * w*B.. of a step would, so that workers at the same global step do not share them.
 * SN_ERR_INVALID_ARG (d has no ps task, or this rank is one; a bf16 net), SN_ERR_NOMEM. */
typedef struct sn_ps_client sn_ps_client;
SN_API sn_status sn_ps_client_new(sn_dist *d, int num_ps, sn_net *net, sn_optim *opt,
                                  sn_ps_client **out);
SN_API void sn_ps_client_free(sn_ps_client *c);
/* A moving average of net's variables (sn_ema_new on the same net) that lives on the ps
 * tasks with its variables: each shadow on its variable's ps, updated there after every
 * push with the global step as num_updates (TF-slim's update op, run on the ps with each
 * worker's step), given to them by sn_ps_init and read back by sn_ps_snapshot.  Every
 * worker sets one of the same decay (the manifests must agree); only the chief's is read.
 * Once, before the first sn_ps_init or sn_ps_pull.  The client borrows ema. */
SN_API sn_status sn_ps_client_set_ema(sn_ps_client *c, sn_ema *ema);
/* The chief, once, before training: its variables, optimizer slots, moving averages and
 * global step (a fresh start, a warm start or a resumed checkpoint) become the ps tasks'
 * state. */
SN_API sn_status sn_ps_init(sn_ps_client *c);
/* The ps tasks' current variables into net (waits for the chief's sn_ps_init); the global
 * step they come from into sn_ps_client_stats().global_step. */
SN_API sn_status sn_ps_pull(sn_ps_client *c);
/* Waits until the job's global step is at least step (or the chief has ended the job),
 * asking ps 0 about every 0.1 s with a message of a few bytes: TF-slim's
 * startup_delay_steps, a worker that starts only once the chief has trained alone for a
 * while.  The step into sn_ps_client_stats().global_step; net is not touched (sn_ps_pull
 * after it).  SN_ERR_TIMEOUT, naming the chief, when the step has not moved for the
 * group's timeout. */
SN_API sn_status sn_ps_wait_step(sn_ps_client *c, int64_t step);
/* After sn_net_backward: the gradients of opt's variables and the batch statistics of the
 * net's training batch norms go to their ps tasks, to be applied with learning rate lr (a
 * CPU net's gradients have left already, bucket by bucket, while its backward ran: the
 * client hooks into the net's backward; the net must not also be in sn_net_set_dist);
 * with pull, the variables after this push (and whatever else was applied before it) come
 * back into net, as sn_ps_pull.  After the chief's sn_ps_done the ps tasks apply no more:
 * stats.done says so. */
SN_API sn_status sn_ps_push(sn_ps_client *c, float lr, int pull);
/* The chief, for a checkpoint: every ps task's variables, optimizer slots, moving averages
 * and (ps 0's) global step into net, opt and ema, each ps's state between two of its
 * updates. */
SN_API sn_status sn_ps_snapshot(sn_ps_client *c);
/* The chief, at the end: the ps tasks stop applying and end once every task has left. */
SN_API sn_status sn_ps_done(sn_ps_client *c);
SN_API sn_ps_stats sn_ps_client_stats(const sn_ps_client *c);
/* Errors of every call above: SN_ERR_IO naming the ps task that ended ("ps 1 (h:p)"),
 * SN_ERR_TIMEOUT naming one that did not answer within the group's timeout, SN_ERR_FORMAT
 * (a reply that does not fit this net), SN_ERR_CUDA.  After one the client is broken. */

/* Gradient clipping: train_image_classifier has none.  optimize_clones sums the clones'
 * gradients and the script passes them to apply_gradients as they are; TF-slim's
 * create_train_op has clip_gradient_norm (default 0, off) but the script builds its own
 * train op without it.  So slimnet has none either. */

#ifdef __cplusplus
}
#endif
#endif
