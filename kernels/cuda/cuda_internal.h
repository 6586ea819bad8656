/* cuda_internal.h: what the CUDA kernels share: the per-device state behind sn__dev.cuda,
 * status mapping for the CUDA runtime, cuBLAS and cuDNN, and launch helpers.
 *
 * Shape letters as in kernels.h: N batch, H/W input, C input channels, K output channels,
 * R/S filter, P/Q output, M depthwise multiplier.  Activations NHWC.
 *
 * The struct is plain C so that tests (and lib/, should it need to) can read device facts or
 * switch allow_tf32; everything below `#ifdef __CUDACC__` is for the .cu files only.
 * Nothing here exits, aborts or prints: every failure becomes an sn_status with a message
 * "<call>: <error string>" set through sn__fail. */
#ifndef SN_CUDA_INTERNAL_H
#define SN_CUDA_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cuda_runtime_api.h>
#include <cublas_v2.h>
#include <cudnn.h>
#include "../kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One cached convolution set-up (conv.cu): descriptors and chosen algorithms per shape. */
typedef struct sn__conv_plan sn__conv_plan;

/* Upper bound for a convolution's cuDNN workspace: algorithms needing more are skipped. */
#define SN__CUDA_CONV_WS_LIMIT ((size_t)256 << 20)
/* Scratch for the reductions' partial sums (batch norm, bias, losses), allocated at open. */
#define SN__CUDA_SCRATCH_BYTES ((size_t)16 << 20)
/* Host-to-device copies of at least this many bytes go through pinned staging. */
#define SN__CUDA_STAGE_MIN ((size_t)1 << 20)
#define SN__CUDA_STAGE_SLOTS 2
/* cuBLAS workspace, given to the handle at open so that no GEMM allocates (32 MiB is
 * NVIDIA's recommendation for Hopper). */
#define SN__CUDA_CUBLAS_WS_BYTES ((size_t)32 << 20)

struct sn__cuda {
    int device;                 /* CUDA ordinal */
    cudaStream_t stream;        /* every kernel, copy, cuBLAS and cuDNN call runs on it */
    cublasHandle_t cublas;      /* bound to stream */
    cudnnHandle_t cudnn;        /* bound to stream */

    /* 1 (default): cuBLAS and cuDNN may run fp32 products on TF32 tensor cores (10-bit
     * mantissa inputs, fp32 accumulation).  0: full fp32 (FMA) everywhere; the parity tests
     * set 0.  Read at every call, so it may be switched between calls. */
    int allow_tf32;
    int cublas_tf32;            /* the math mode currently set on the cuBLAS handle */
    /* 1 (default): the first run of a convolution shape times cuDNN's algorithms
     * (cudnnFind*AlgorithmEx) and keeps the fastest, as cudnn.benchmark does; 0: cuDNN's
     * heuristics only (no timing runs; the choice is then reproducible). */
    int find_algos;
    /* 1: only algorithms cuDNN reports deterministic (set with find_algos = 0). */
    int deterministic;
    /* 1: depthwise convolutions run as cuDNN grouped convolutions where cuDNN takes the
     * shape (conv.cu); 0 (default): dwconv.cu's own kernels.  Measured on an H200 (cuDNN
     * 9.14, mobilenet_v1 at batch 128, TF32 allowed): cuDNN's grouped NHWC forward took 14.3
     * ms over the 13 layers against 4.7 ms for ours, its backward 16.9 against 18.4. */
    int dw_cudnn;

    /* Device facts, read once at open. */
    char name[256];
    int cc_major, cc_minor;
    int sm_count;
    int max_threads_per_sm;
    size_t l2_bytes;
    size_t smem_per_block_optin;
    size_t total_mem;
    int mempool;                /* cudaMallocAsync usable (else cudaMalloc) */

    void *cublas_ws;            /* SN__CUDA_CUBLAS_WS_BYTES, owned */
    void *scratch;              /* SN__CUDA_SCRATCH_BYTES, owned; stream-ordered use */
    size_t scratch_bytes;
    int *flag_host;             /* pinned int: xent's bad-label flag copied back */
    /* Large host-to-device copies (memory.cu): a ring of slots, each a pinned host buffer
     * and a device buffer grown to the largest copy it took; the DMA into the device buffer
     * runs on copy_stream, then a device-to-device copy on the stream puts the data in
     * place.  h2d: the slot's DMA is done (host buffer free); d2d: its device buffer has
     * been copied out (free for the next DMA). */
    cudaStream_t copy_stream;
    struct {
        void *host, *dev;
        size_t bytes;
        cudaEvent_t h2d, d2d;
    } stage[SN__CUDA_STAGE_SLOTS];
    int stage_next;

    /* Convolution plans, one per (dims, tf32) seen; freed at close. */
    sn__conv_plan **plans;
    int n_plans, cap_plans;
    int last_plan;              /* index of the last hit, tried first */
};

/* Maps a runtime error to SN_ERR_NOMEM (allocation) or SN_ERR_CUDA with "what: string", and
 * clears the runtime's last-error slot so the next launch check does not see it again. */
static inline sn_status sn__cuda_rt(sn__dev *d, cudaError_t e, const char *what) {
    if (e == cudaSuccess) return SN_OK;
    (void)cudaGetLastError();
    return sn__fail(d ? d->ctx : NULL,
                    e == cudaErrorMemoryAllocation ? SN_ERR_NOMEM : SN_ERR_CUDA, "%s: %s",
                    what, cudaGetErrorString(e));
}

static inline sn_status sn__cuda_blas(sn__dev *d, cublasStatus_t st, const char *what) {
    if (st == CUBLAS_STATUS_SUCCESS) return SN_OK;
    return sn__fail(d ? d->ctx : NULL,
                    st == CUBLAS_STATUS_ALLOC_FAILED ? SN_ERR_NOMEM : SN_ERR_CUDA, "%s: %s",
                    what, cublasGetStatusString(st));
}

static inline sn_status sn__cuda_dnn(sn__dev *d, cudnnStatus_t st, const char *what) {
    if (st == CUDNN_STATUS_SUCCESS) return SN_OK;
    int nomem = st == CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED ||
                st == CUDNN_STATUS_INTERNAL_ERROR_DEVICE_ALLOCATION_FAILED;
    return sn__fail(d ? d->ctx : NULL, nomem ? SN_ERR_NOMEM : SN_ERR_CUDA, "%s: %s", what,
                    cudnnGetErrorString(st));
}

/* After a launch: the launch's own error (bad configuration, sticky fault), if any. */
static inline sn_status sn__cuda_launched(sn__dev *d, const char *what) {
    return sn__cuda_rt(d, cudaGetLastError(), what);
}

/* Every CUDA kernel starts here: checks d, makes d's device current for this thread. */
static inline sn_status sn__cuda_enter(sn__dev *d, struct sn__cuda **out, const char *what) {
    if (!d || !d->cuda)
        return sn__fail(d ? d->ctx : NULL, SN_ERR_INVALID_ARG, "%s: no CUDA device open",
                        what);
    struct sn__cuda *c = (struct sn__cuda *)d->cuda;
    int cur = -1;
    if (cudaGetDevice(&cur) != cudaSuccess || cur != c->device) {
        sn_status st = sn__cuda_rt(d, cudaSetDevice(c->device), "cudaSetDevice");
        if (st != SN_OK) return st;
    }
    *out = c;
    return SN_OK;
}

/* Sets the cuBLAS math mode from allow_tf32 when it changed (conv.cu and gemm.cu). */
sn_status sn__cuda_blas_mode(sn__dev *d, struct sn__cuda *c);
/* Releases every convolution plan (conv.cu); used by sn__cuda_close. */
void sn__cuda_plans_free(struct sn__cuda *c);
/* Applies the fused forwards' epilogue ep (kernels.h) in place to y (rows, C), on the
 * stream (eltwise.cu); ep NULL does nothing.  The CUDA _ep kernels are their forward, then
 * this. */
sn_status sn__cuda_epilogue(sn__dev *d, float *y, const sn__epilogue *ep, int64_t rows,
                            int64_t C);
/* Depthwise convolution as a cuDNN grouped convolution (conv.cu), with dwconv2d_*'s
 * semantics and workspace.  Usable: dw_cudnn is on and cuDNN has an algorithm for every one
 * of the three operations on this shape (asked once per shape). */
bool sn__cuda_dw_usable(sn__dev *d, const sn__conv2d_dims *cd);
sn_status sn__cuda_dw_ws(sn__dev *d, const sn__conv2d_dims *cd, size_t *bytes);
sn_status sn__cuda_dw_fwd(sn__dev *d, float *y, const float *x, const float *w,
                          const sn__conv2d_dims *cd);
sn_status sn__cuda_dw_bwd_data(sn__dev *d, float *dx, const float *dy, const float *w,
                               const sn__conv2d_dims *cd);
sn_status sn__cuda_dw_bwd_filter(sn__dev *d, float *dw, const float *dy, const float *x,
                                 const sn__conv2d_dims *cd);

#ifdef __cplusplus
}
#endif

#define SN__CU_TRY(expr)                                \
    do {                                                \
        sn_status sn__cu_st_ = (expr);                  \
        if (sn__cu_st_ != SN_OK) return sn__cu_st_;     \
    } while (0)

/* Declares `struct sn__cuda *c` for the kernel's device, or returns the failure. */
#define SN__CU_BEGIN(d, c)                               \
    struct sn__cuda *c = NULL;                          \
    SN__CU_TRY(sn__cuda_enter((d), &c, __func__))

#ifdef __CUDACC__
/* ---- device-side helpers (CUDA translation units only) -------------------------------- */

#define SN__BLOCK 256

/* Blocks for a grid-stride loop over `work` items: enough to fill the GPU a few times over,
 * no more (each thread then handles several items and the tail wave is short). */
static inline unsigned sn__grid(const struct sn__cuda *c, int64_t work, int block) {
    int64_t want = (work + block - 1) / block;
    int64_t cap = (int64_t)c->sm_count * (c->max_threads_per_sm / block) * 4;
    if (cap < 1) cap = 1;
    if (want > cap) want = cap;
    return (unsigned)(want < 1 ? 1 : want);
}

/* Whether 32-bit indices are safe for n items, grid-stride overshoot included. */
static inline bool sn__small_index(int64_t n) { return n <= (int64_t)INT32_MAX - (1 << 26); }

/* 16-byte alignment of a device pointer, for float4 paths. */
static inline bool sn__aligned16(const void *p) { return ((uintptr_t)p & 15u) == 0; }

/* V = 4: one float4 load or store (p 16-byte aligned); V = 1: one float.  The per-channel
 * and pooling kernels take V consecutive channels per thread with these. */
template <int V>
static __device__ __forceinline__ void sn__ld(float (&v)[V], const float *p) {
    if (V == 4) {
        float4 q = *(const float4 *)p;
        v[0] = q.x;
        v[V > 1 ? 1 : 0] = q.y;
        v[V > 2 ? 2 : 0] = q.z;
        v[V > 3 ? 3 : 0] = q.w;
    } else {
        v[0] = *p;
    }
}
template <int V>
static __device__ __forceinline__ void sn__st(float *p, const float (&v)[V]) {
    if (V == 4) *(float4 *)p = make_float4(v[0], v[V > 1 ? 1 : 0], v[V > 2 ? 2 : 0],
                                           v[V > 3 ? 3 : 0]);
    else *p = v[0];
}

/* The same on bf16 storage (kernels.def's bfloat16 section): V = 4 moves 8 bytes (p 8-byte
 * aligned: a 16-byte aligned base plus a multiple of 4 elements), values decoded exactly and
 * encoded with sn__bf16_encode, as the CPU's emulation does. */
template <int V>
static __device__ __forceinline__ void sn__ld(float (&v)[V], const sn_bf16 *p) {
    if (V == 4) {
        uint2 q = *(const uint2 *)p;
        v[0] = __uint_as_float(q.x << 16);
        v[V > 1 ? 1 : 0] = __uint_as_float(q.x & 0xffff0000u);
        v[V > 2 ? 2 : 0] = __uint_as_float(q.y << 16);
        v[V > 3 ? 3 : 0] = __uint_as_float(q.y & 0xffff0000u);
    } else {
        v[0] = sn__bf16_decode(*p);
    }
}
template <int V>
static __device__ __forceinline__ void sn__st(sn_bf16 *p, const float (&v)[V]) {
    if (V == 4) {
        uint2 q;
        q.x = (uint32_t)sn__bf16_encode(v[0]) | ((uint32_t)sn__bf16_encode(v[V > 1 ? 1 : 0]) << 16);
        q.y = (uint32_t)sn__bf16_encode(v[V > 2 ? 2 : 0]) |
              ((uint32_t)sn__bf16_encode(v[V > 3 ? 3 : 0]) << 16);
        *(uint2 *)p = q;
    } else {
        *p = sn__bf16_encode(v[0]);
    }
}
/* One element of either storage as a float; one float stored into either. */
static __device__ __forceinline__ float sn__ldf(const float *p) { return *p; }
static __device__ __forceinline__ float sn__ldf(const sn_bf16 *p) { return sn__bf16_decode(*p); }
static __device__ __forceinline__ void sn__stf(float *p, float v) { *p = v; }
static __device__ __forceinline__ void sn__stf(sn_bf16 *p, float v) { *p = sn__bf16_encode(v); }

/* Sum over a block (blockDim.x a multiple of 32, at most 1024) of one value per thread.
 * `sh` holds 32 values; every thread gets the total.  T is float or double. */
template <typename T>
static __device__ __forceinline__ T sn__warp_sum(T v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
template <typename T>
static __device__ __forceinline__ T sn__warp_max(T v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        T u = __shfl_xor_sync(0xffffffffu, v, o);
        v = u > v ? u : v;
    }
    return v;
}
template <typename T>
static __device__ T sn__block_sum(T v, T *sh) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
    v = sn__warp_sum(v);
    __syncthreads();                    /* sh may still be read from a previous call */
    if (lane == 0) sh[warp] = v;
    __syncthreads();
    v = lane < nw ? sh[lane] : (T)0;
    return sn__warp_sum(v);
}
template <typename T>
static __device__ T sn__block_max(T v, T *sh) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
    v = sn__warp_max(v);
    __syncthreads();
    if (lane == 0) sh[warp] = v;
    __syncthreads();
    v = lane < nw ? sh[lane] : sh[0];
    return sn__warp_max(v);
}
#endif /* __CUDACC__ */

#endif
