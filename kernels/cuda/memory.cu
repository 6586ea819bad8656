/* memory.cu: device memory and transfers.  Everything is ordered on the device's stream;
 * to_host waits for it so the host may read at once.  Allocation uses the stream-ordered
 * pool (cudaMallocAsync) where the device has one, cudaMalloc elsewhere. */
#include "cuda_internal.h"

extern "C" sn_status sn__alloc_cuda(sn__dev *d, void **p, size_t bytes) {
    SN__CU_BEGIN(d, c);
    *p = NULL;
    if (bytes == 0) return SN_OK;
    void *q = NULL;
    cudaError_t e = c->mempool ? cudaMallocAsync(&q, bytes, c->stream) : cudaMalloc(&q, bytes);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        return sn__fail(d->ctx, e == cudaErrorMemoryAllocation ? SN_ERR_NOMEM : SN_ERR_CUDA,
                        "%s(%zu bytes): %s", c->mempool ? "cudaMallocAsync" : "cudaMalloc",
                        bytes, cudaGetErrorString(e));
    }
    *p = q;
    return SN_OK;
}

extern "C" sn_status sn__free_cuda(sn__dev *d, void *p) {
    if (!p) return SN_OK;
    SN__CU_BEGIN(d, c);
    if (c->mempool) return sn__cuda_rt(d, cudaFreeAsync(p, c->stream), "cudaFreeAsync");
    return sn__cuda_rt(d, cudaFree(p), "cudaFree");
}

/* The source may be reused as soon as this returns: from pageable memory the runtime stages
 * the bytes before returning. */
extern "C" sn_status sn__to_dev_cuda(sn__dev *d, void *dst, const void *src_host,
                                     size_t bytes) {
    SN__CU_BEGIN(d, c);
    if (bytes == 0) return SN_OK;
    return sn__cuda_rt(d, cudaMemcpyAsync(dst, src_host, bytes, cudaMemcpyHostToDevice,
                                          c->stream),
                       "cudaMemcpyAsync(to device)");
}

extern "C" sn_status sn__to_host_cuda(sn__dev *d, void *dst_host, const void *src,
                                      size_t bytes) {
    SN__CU_BEGIN(d, c);
    if (bytes == 0) return SN_OK;
    SN__CU_TRY(sn__cuda_rt(d, cudaMemcpyAsync(dst_host, src, bytes, cudaMemcpyDeviceToHost,
                                              c->stream),
                           "cudaMemcpyAsync(to host)"));
    return sn__cuda_rt(d, cudaStreamSynchronize(c->stream), "cudaStreamSynchronize");
}

extern "C" sn_status sn__copy_cuda(sn__dev *d, void *dst, const void *src, size_t bytes) {
    SN__CU_BEGIN(d, c);
    if (bytes == 0 || dst == src) return SN_OK;
    return sn__cuda_rt(d, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice,
                                          c->stream),
                       "cudaMemcpyAsync(device to device)");
}

extern "C" sn_status sn__zero_cuda(sn__dev *d, void *p, size_t bytes) {
    SN__CU_BEGIN(d, c);
    if (bytes == 0) return SN_OK;
    return sn__cuda_rt(d, cudaMemsetAsync(p, 0, bytes, c->stream), "cudaMemsetAsync");
}

extern "C" sn_status sn__sync_cuda(sn__dev *d) {
    SN__CU_BEGIN(d, c);
    return sn__cuda_rt(d, cudaStreamSynchronize(c->stream), "cudaStreamSynchronize");
}
