/* device.cu: opening and closing a CUDA device for the kernels: stream, cuBLAS and cuDNN
 * handles bound to it, device facts, scratch buffers.  Everything a kernel needs besides its
 * arguments is made here, so that no kernel allocates. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cuda_internal.h"

extern "C" int sn__cuda_count(void) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        (void)cudaGetLastError();   /* no driver or no device: not an error, just none */
        return 0;
    }
    return n;
}

/* Releases whatever open created, in reverse; NULL members are skipped. */
static void cuda_release(struct sn__cuda *c) {
    if (!c) return;
    if (c->stream) (void)cudaStreamSynchronize(c->stream);
    if (c->copy_stream) (void)cudaStreamSynchronize(c->copy_stream);
    sn__cuda_plans_free(c);
    if (c->cudnn) (void)cudnnDestroy(c->cudnn);
    if (c->cublas) (void)cublasDestroy(c->cublas);
    if (c->cublas_ws) (void)cudaFree(c->cublas_ws);
    if (c->scratch) (void)cudaFree(c->scratch);
    if (c->flag_host) (void)cudaFreeHost(c->flag_host);
    for (int i = 0; i < SN__CUDA_STAGE_SLOTS; i++) {
        if (c->stage[i].host) (void)cudaFreeHost(c->stage[i].host);
        if (c->stage[i].dev) (void)cudaFree(c->stage[i].dev);
        if (c->stage[i].h2d) (void)cudaEventDestroy(c->stage[i].h2d);
        if (c->stage[i].d2d) (void)cudaEventDestroy(c->stage[i].d2d);
    }
    if (c->copy_stream) (void)cudaStreamDestroy(c->copy_stream);
    if (c->stream) (void)cudaStreamDestroy(c->stream);
    (void)cudaGetLastError();
    free(c);
}

extern "C" sn_status sn__cuda_open(sn__dev *d, int index) {
    if (!d) return SN_ERR_INVALID_ARG;
    int n = sn__cuda_count();
    if (index < 0 || index >= n)
        return sn__fail(d->ctx, SN_ERR_NO_DEVICE, "CUDA device %d requested, %d present", index,
                        n);
    struct sn__cuda *c = (struct sn__cuda *)calloc(1, sizeof *c);
    if (!c) return sn__fail(d->ctx, SN_ERR_NOMEM, "sn__cuda_open: out of host memory");
    c->device = index;
    c->allow_tf32 = 1;
    c->find_algos = 1;
    c->dw_cudnn = 0;
    c->cublas_tf32 = -1;
    c->last_plan = -1;

    sn_status st = SN_OK;
#define OPEN_TRY(expr)                          \
    do {                                        \
        st = (expr);                            \
        if (st != SN_OK) goto fail;             \
    } while (0)

    OPEN_TRY(sn__cuda_rt(d, cudaSetDevice(index), "cudaSetDevice"));
    {
        cudaDeviceProp prop;
        OPEN_TRY(sn__cuda_rt(d, cudaGetDeviceProperties(&prop, index),
                             "cudaGetDeviceProperties"));
        snprintf(c->name, sizeof c->name, "%s", prop.name);
        c->cc_major = prop.major;
        c->cc_minor = prop.minor;
        c->sm_count = prop.multiProcessorCount;
        c->max_threads_per_sm = prop.maxThreadsPerMultiProcessor;
        c->l2_bytes = (size_t)prop.l2CacheSize;
        c->smem_per_block_optin = prop.sharedMemPerBlockOptin;
        c->total_mem = prop.totalGlobalMem;
        int pools = 0;
        if (cudaDeviceGetAttribute(&pools, cudaDevAttrMemoryPoolsSupported, index) !=
            cudaSuccess)
            pools = 0;
        (void)cudaGetLastError();
        c->mempool = pools != 0;
    }
    if (c->mempool) {
        /* Keep freed blocks in the pool instead of returning them to the driver at every
         * synchronization: allocation then stays cheap after the first step. */
        cudaMemPool_t pool;
        if (cudaDeviceGetDefaultMemPool(&pool, index) == cudaSuccess) {
            uint64_t keep = UINT64_MAX;
            (void)cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep);
        }
        (void)cudaGetLastError();
    }
    OPEN_TRY(sn__cuda_rt(d, cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking),
                         "cudaStreamCreateWithFlags"));
    OPEN_TRY(sn__cuda_rt(d, cudaStreamCreateWithFlags(&c->copy_stream, cudaStreamNonBlocking),
                         "cudaStreamCreateWithFlags(copy)"));
    for (int i = 0; i < SN__CUDA_STAGE_SLOTS; i++) {
        OPEN_TRY(sn__cuda_rt(d, cudaEventCreateWithFlags(&c->stage[i].h2d,
                                                         cudaEventDisableTiming),
                             "cudaEventCreateWithFlags"));
        OPEN_TRY(sn__cuda_rt(d, cudaEventCreateWithFlags(&c->stage[i].d2d,
                                                         cudaEventDisableTiming),
                             "cudaEventCreateWithFlags"));
    }
    OPEN_TRY(sn__cuda_rt(d, cudaMalloc(&c->scratch, SN__CUDA_SCRATCH_BYTES), "cudaMalloc"));
    c->scratch_bytes = SN__CUDA_SCRATCH_BYTES;
    OPEN_TRY(sn__cuda_rt(d, cudaMallocHost((void **)&c->flag_host, sizeof(int)),
                         "cudaMallocHost"));
    OPEN_TRY(sn__cuda_rt(d, cudaMalloc(&c->cublas_ws, SN__CUDA_CUBLAS_WS_BYTES), "cudaMalloc"));

    OPEN_TRY(sn__cuda_blas(d, cublasCreate(&c->cublas), "cublasCreate"));
    OPEN_TRY(sn__cuda_blas(d, cublasSetStream(c->cublas, c->stream), "cublasSetStream"));
    OPEN_TRY(sn__cuda_blas(d, cublasSetWorkspace(c->cublas, c->cublas_ws,
                                                 SN__CUDA_CUBLAS_WS_BYTES),
                           "cublasSetWorkspace"));
    OPEN_TRY(sn__cuda_blas(d, cublasSetPointerMode(c->cublas, CUBLAS_POINTER_MODE_HOST),
                           "cublasSetPointerMode"));
    OPEN_TRY(sn__cuda_blas(d, cublasSetMathMode(c->cublas, CUBLAS_TF32_TENSOR_OP_MATH),
                           "cublasSetMathMode"));
    c->cublas_tf32 = 1;

    OPEN_TRY(sn__cuda_dnn(d, cudnnCreate(&c->cudnn), "cudnnCreate"));
    OPEN_TRY(sn__cuda_dnn(d, cudnnSetStream(c->cudnn, c->stream), "cudnnSetStream"));
#undef OPEN_TRY

    d->cuda = c;
    d->backend = SN__BACKEND_CUDA;
    return SN_OK;

fail:
    cuda_release(c);
    return st;
}

extern "C" void sn__cuda_close(sn__dev *d) {
    if (!d || !d->cuda) return;
    struct sn__cuda *c = (struct sn__cuda *)d->cuda;
    (void)cudaSetDevice(c->device);
    cuda_release(c);
    d->cuda = NULL;
}

extern "C" sn_status sn__cuda_info(sn__dev *d, char *buf, size_t len) {
    if (!buf || len == 0) return sn__fail(d ? d->ctx : NULL, SN_ERR_INVALID_ARG,
                                          "sn__cuda_info: no buffer");
    SN__CU_BEGIN(d, c);
    int drv = 0, rt = 0;
    SN__CU_TRY(sn__cuda_rt(d, cudaDriverGetVersion(&drv), "cudaDriverGetVersion"));
    SN__CU_TRY(sn__cuda_rt(d, cudaRuntimeGetVersion(&rt), "cudaRuntimeGetVersion"));
    size_t dnn = cudnnGetVersion();
    snprintf(buf, len,
             "driver %d.%d, runtime %d.%d, cuDNN %d.%d.%d, %s, compute capability %d.%d",
             drv / 1000, (drv % 1000) / 10, rt / 1000, (rt % 1000) / 10, (int)(dnn / 10000),
             (int)(dnn % 10000 / 100), (int)(dnn % 100), c->name, c->cc_major, c->cc_minor);
    return SN_OK;
}

/* Shared by gemm.cu and conv.cu: cuBLAS math mode follows allow_tf32. */
extern "C" sn_status sn__cuda_blas_mode(sn__dev *d, struct sn__cuda *c) {
    int want = c->allow_tf32 ? 1 : 0;
    if (c->cublas_tf32 == want) return SN_OK;
    SN__CU_TRY(sn__cuda_blas(d, cublasSetMathMode(c->cublas, want ? CUBLAS_TF32_TENSOR_OP_MATH
                                                                  : CUBLAS_DEFAULT_MATH),
                             "cublasSetMathMode"));
    c->cublas_tf32 = want;
    return SN_OK;
}

/* The context's precision and determinism settings (sn_ctx_params), applied after open. */
extern "C" void sn__cuda_configure(sn__dev *d, int allow_tf32, int deterministic) {
    struct sn__cuda *c = (struct sn__cuda *)d->cuda;
    if (!c) return;
    c->allow_tf32 = allow_tf32 ? 1 : 0;
    c->find_algos = deterministic ? 0 : 1;
    c->deterministic = deterministic ? 1 : 0;
}
