/* kernels.h: the internal contract between lib/ and the backends (kernels/cpu, kernels/cuda).
 *
 * Shape letters, used in every kernel file:
 *   N batch, H/W input height/width, C input channels, K output channels,
 *   R/S filter height/width, P/Q output height/width, M depthwise multiplier.
 * Layout: activations NHWC, conv weights HWIO (R,S,C,K), depthwise weights (R,S,C,M).
 *
 * The kernel list itself is kernels.def; this header turns it into prototypes and the
 * struct of function pointers that lib/ dispatches through.  Not installed, not public. */
#ifndef SN_KERNELS_H
#define SN_KERNELS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include "../lib/slimnet.h"

#ifdef __cplusplus
extern "C" {
#endif

#ifdef __CUDACC__
#define SN__HD __host__ __device__
#else
#define SN__HD
#endif

/* One backend device: what a kernel may use besides its arguments.  The context's
 * (lib/ctx.c), copied into each net with the net's workspace (lib/net.c, sn_net_compile);
 * kernels never free or replace its members. */
typedef struct sn__dev {
    sn_ctx *ctx;        /* for sn__fail(): error status and message */
    int backend;        /* SN__BACKEND_CPU or SN__BACKEND_CUDA */
    int threads;        /* CPU: worker threads for OpenMP loops and OpenBLAS */
    void *ws;           /* scratch, ws_bytes long, in the backend's memory */
    size_t ws_bytes;
    void *cuda;         /* CUDA: struct sn__cuda (stream, cuBLAS, cuDNN); NULL on CPU */
} sn__dev;

enum { SN__BACKEND_CPU = 0, SN__BACKEND_CUDA = 1, SN__BACKEND_COUNT = 2 };

/* Convolution geometry.  Output (N,P,Q,K); for depthwise K = C*M.  Padding is explicit:
 * the layer resolves TF's SAME/VALID into pad_top/pad_left (bottom/right padding is implied
 * by P, Q).  Input cell of output (p,q), tap (r,s):
 *   h = p*stride_h - pad_top + r*dil_h,  w = q*stride_w - pad_left + s*dil_w. */
typedef struct sn__conv2d_dims {
    int64_t N, H, W, C;
    int64_t K, R, S, M;
    int64_t P, Q;
    int64_t stride_h, stride_w, dil_h, dil_w, pad_top, pad_left;
} sn__conv2d_dims;

/* Pooling geometry: window R x S, output (N,P,Q,C).  Input cell as for convolutions
 * with dilation 1; cells outside the input are ignored. */
typedef struct sn__pool_dims {
    int64_t N, H, W, C;
    int64_t R, S, P, Q;
    int64_t stride_h, stride_w, pad_top, pad_left;
} sn__pool_dims;

/* The per-output-channel epilogue of the fused forward kernels (gemm_ep, conv2d_fwd_ep,
 * dwconv2d_fwd_ep): what an inference net's batch_norm or bias_add, residual add and
 * relu/relu6 after the convolution would have done, applied to each output value v of
 * channel k while the kernel's output is still in cache:
 *   batch norm (mean != NULL): v = (v - mean[k]) * (gamma[k] / sqrt(var[k] + eps)) + beta[k],
 *                              gamma NULL meaning 1 and beta NULL 0: bn_infer_fwd's formula,
 *                              operation for operation, so fused and unfused agree bit for
 *                              bit on the CPU;
 *   else bias (bias != NULL):  v = v + bias[k], as bias_fwd;
 *   then residual (!= NULL):   v = v + residual[i], i the value's index in the output (a
 *                              tensor of the output's shape), as add_fwd;
 *   then act:                  relu_fwd's or relu6_fwd's expression.
 * The struct is in host memory, the arrays in the backend's (K floats each; the residual as
 * large as the output, and never the output itself).  hard swish is sn__hard_swish below.  The scale is formed from the variables
 * on every call, never cached, so a restore or set_var between two runs is always seen. */
typedef enum sn__act {
    SN__ACT_NONE = 0, SN__ACT_RELU = 1, SN__ACT_RELU6 = 2,
    /* Only in the inference epilogue above (gemm_ep, conv2d_fwd_ep, dwconv2d_fwd_ep), never
     * in a training chain (bias_*_ep, bn_train_*_ep): their backward reads the derivative of
     * the activation from its output, and hard swish is not a function of its output. */
    SN__ACT_HARD_SWISH = 3
} sn__act;
typedef struct sn__epilogue {
    const float *gamma, *beta, *mean, *var;
    float eps;
    const float *bias;
    const float *residual;
    int act;            /* sn__act */
} sn__epilogue;

/* splitmix64 (Vigna): its increment, and its finalizer, the one mixer behind every seeded
 * generator of the library (dropout here; initializers, the converters' split, the input
 * pipeline's order and preprocessing draws in lib/). */
#define SN__GOLDEN64 0x9E3779B97F4A7C15ull
static inline SN__HD uint64_t sn__mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* The dropout generator: a counter-based hash (splitmix64 finalizer) so that CPU and CUDA
 * draw the same uniform for (seed, i).  Returns a float in [0,1) with 24 random bits. */
static inline SN__HD float sn__uniform01(uint64_t seed, uint64_t i) {
    uint64_t z = sn__mix64(seed + (i + 1) * SN__GOLDEN64);
    return (float)(z >> 40) * (1.0f / 16777216.0f);
}

/* MobileNet v3's activations, as research/slim's mobilenet_v3.py writes them, on one float
 * (every backend computes them with these, so CPU and CUDA agree bit for bit):
 *   hard_swish(x)   = x * relu6(x + 3) * (1/6):  (x * relu6(x + 3)) * float32(1/6), in that
 *                     order (mobilenet_v3.hard_swish: np.float32(3), np.float32(1. / 6.));
 *   hard_sigmoid(x) = relu6(x + 3) * 0.16667:    the squeeze-excite gate, whose constant in
 *                     TF-slim is the literal 0.16667 (float32 0.166670009), not 1/6.
 * No fused multiply-add can form in either (no product is added to), so nvcc computes the
 * same roundings as the C compiler. */
#define SN__HARD_SWISH_SCALE (1.0f / 6.0f)
#define SN__HARD_SIGMOID_SCALE 0.16667f
static inline SN__HD float sn__relu6f(float t) { return t > 0.0f ? (t < 6.0f ? t : 6.0f) : 0.0f; }
static inline SN__HD float sn__hard_swish(float x) {
    return (x * sn__relu6f(x + 3.0f)) * SN__HARD_SWISH_SCALE;
}
static inline SN__HD float sn__hard_sigmoid(float x) {
    return sn__relu6f(x + 3.0f) * SN__HARD_SIGMOID_SCALE;
}

/* A bfloat16 value's bits: the upper 16 bits of the float32 it stands for. */
typedef uint16_t sn_bf16;

/* float32 -> bfloat16, round to nearest even (TensorFlow's and CUDA's __float2bfloat16_rn
 * rounding); a NaN stays a quiet NaN with its sign.  Every backend encodes with this. */
static inline SN__HD sn_bf16 sn__bf16_encode(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (sn_bf16)((u >> 16) | 0x0040u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (sn_bf16)(u >> 16);
}
static inline SN__HD float sn__bf16_decode(sn_bf16 h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Prototypes: sn__<name>_cpu always (none for SN_KERNEL_GPU), sn__<name>_cuda in CUDA
 * builds. */
#define SN_KERNEL(name, params) sn_status sn__##name##_cpu params;
#define SN_KERNEL_GPU(name, params)
#include "kernels.def"
#undef SN_KERNEL_GPU
#undef SN_KERNEL
#define SN_KERNEL(name, params) sn_status sn__##name##_cuda params;
#include "kernels.def"
#undef SN_KERNEL

/* The dispatch table of one backend.  A NULL member means the backend lacks that kernel:
 * callers return SN_ERR_UNSUPPORTED, never fall back to another backend. */
typedef struct sn__kernels {
#define SN_KERNEL(name, params) sn_status (*name) params;
#include "kernels.def"
#undef SN_KERNEL
} sn__kernels;

extern const sn__kernels sn__kernels_cpu;
/* CUDA device set-up, in kernels/cuda/device.cu (CUDA builds only):
 * sn__cuda_count returns the number of usable devices (0 without a driver or GPU, never an
 * error); sn__cuda_open creates the stream and handles of device `index` into d->cuda;
 * sn__cuda_close releases them (NULL-safe). */
extern const sn__kernels sn__kernels_cuda;
int sn__cuda_count(void);
sn_status sn__cuda_open(sn__dev *d, int index);
void sn__cuda_close(sn__dev *d);
/* Applies sn_ctx_params.allow_tf32 and .deterministic (no timed algorithm search). */
void sn__cuda_configure(sn__dev *d, int allow_tf32, int deterministic);
/* Fills buf with "driver X, runtime Y, cuDNN Z, <GPU name>, compute capability A.B". */
sn_status sn__cuda_info(sn__dev *d, char *buf, size_t len);

/* Error reporting for kernels (lib/error.c): sets ctx's message, returns status. */
sn_status sn__fail(sn_ctx *ctx, sn_status st, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

#ifdef __cplusplus
}
#endif
#endif
