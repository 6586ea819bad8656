/* memory.cu: device memory and transfers.  Everything is ordered on the device's stream
 * (large host-to-device copies travel on a copy stream first, see to_dev_staged, and land
 * in stream order); to_host waits for it so the host may read at once.  Allocation uses
 * the stream-ordered pool (cudaMallocAsync) where the device has one, cudaMalloc elsewhere. */
#include <string.h>
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
/* A large copy (an input batch) overlaps the GPU's work instead of waiting for it.  The
 * host copies src into a slot's pinned buffer and returns; on copy_stream the slot's device
 * buffer receives the DMA at once, while the stream may still be running the previous
 * step's backward; a device-to-device copy queued on the stream then puts the data at dst
 * in stream order (77 MB in ~0.05 ms).  Through the runtime's pageable path the same batch
 * took ~6 ms on an H200, after the previous step had finished, with the host held until
 * then.  Slot reuse waits on events: the host buffer once its DMA is done (h2d), the device
 * buffer once its copy-out ran (d2d).  Small copies, and any failure to set a slot up (no
 * pinned or device memory to spare), take the plain path. */
static bool grow_slot(struct sn__cuda *c, int k, size_t bytes, bool need_host) {
    if (c->stage[k].bytes >= bytes && (c->stage[k].host || !need_host)) return true;
    (void)cudaEventSynchronize(c->stage[k].h2d);
    (void)cudaEventSynchronize(c->stage[k].d2d);
    if (c->stage[k].host) (void)cudaFreeHost(c->stage[k].host);
    if (c->stage[k].dev) (void)cudaFree(c->stage[k].dev);
    c->stage[k].host = c->stage[k].dev = NULL;
    c->stage[k].bytes = 0;
    if ((need_host && cudaHostAlloc(&c->stage[k].host, bytes, cudaHostAllocDefault) !=
                          cudaSuccess) ||
        cudaMalloc(&c->stage[k].dev, bytes) != cudaSuccess) {
        (void)cudaGetLastError();
        if (c->stage[k].host) (void)cudaFreeHost(c->stage[k].host);
        c->stage[k].host = c->stage[k].dev = NULL;
        return false;
    }
    c->stage[k].bytes = bytes;
    return true;
}

static bool to_dev_staged(struct sn__cuda *c, void *dst, const void *src, size_t bytes) {
    int k = c->stage_next;
    /* A page-locked source (sn_tensor_new_pinned) is DMA'd from directly, no host copy. */
    cudaPointerAttributes pa;
    bool pinned = cudaPointerGetAttributes(&pa, src) == cudaSuccess &&
                  pa.type == cudaMemoryTypeHost;
    (void)cudaGetLastError();
    if (!grow_slot(c, k, bytes, !pinned) || cudaEventSynchronize(c->stage[k].h2d) != cudaSuccess) {
        (void)cudaGetLastError();
        return false;
    }
    const void *from = src;
    if (!pinned) {
        memcpy(c->stage[k].host, src, bytes);
        from = c->stage[k].host;
    }
    bool ok = cudaStreamWaitEvent(c->copy_stream, c->stage[k].d2d, 0) == cudaSuccess &&
              cudaMemcpyAsync(c->stage[k].dev, from, bytes, cudaMemcpyHostToDevice,
                              c->copy_stream) == cudaSuccess &&
              cudaEventRecord(c->stage[k].h2d, c->copy_stream) == cudaSuccess &&
              cudaStreamWaitEvent(c->stream, c->stage[k].h2d, 0) == cudaSuccess &&
              cudaMemcpyAsync(dst, c->stage[k].dev, bytes, cudaMemcpyDeviceToDevice,
                              c->stream) == cudaSuccess &&
              cudaEventRecord(c->stage[k].d2d, c->stream) == cudaSuccess;
    if (!ok) {   /* leave both streams drained, the slot free, and report by the plain path */
        (void)cudaGetLastError();
        (void)cudaStreamSynchronize(c->copy_stream);
        (void)cudaStreamSynchronize(c->stream);
        (void)cudaGetLastError();
        return false;
    }
    c->stage_next = (k + 1) % SN__CUDA_STAGE_SLOTS;
    /* The caller may reuse src on return: wait for its DMA (the stream's work goes on). */
    if (pinned) (void)cudaEventSynchronize(c->stage[k].h2d);
    return true;
}

extern "C" sn_status sn__to_dev_cuda(sn__dev *d, void *dst, const void *src_host,
                                     size_t bytes) {
    SN__CU_BEGIN(d, c);
    if (bytes == 0) return SN_OK;
    if (bytes >= SN__CUDA_STAGE_MIN && to_dev_staged(c, dst, src_host, bytes)) return SN_OK;
    return sn__cuda_rt(d, cudaMemcpyAsync(dst, src_host, bytes, cudaMemcpyHostToDevice,
                                          c->stream),
                       "cudaMemcpyAsync(to device)");
}

/* Page-locked host memory (sn_tensor_new_pinned): the DMA engine reads it directly. */
extern "C" sn_status sn__host_alloc_cuda(sn__dev *d, void **p, size_t bytes) {
    SN__CU_BEGIN(d, c);
    (void)c;
    *p = NULL;
    void *q = NULL;
    cudaError_t e = cudaHostAlloc(&q, bytes ? bytes : 1, cudaHostAllocDefault);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        return sn__fail(d->ctx, SN_ERR_NOMEM, "cudaHostAlloc(%zu bytes): %s", bytes,
                        cudaGetErrorString(e));
    }
    *p = q;
    return SN_OK;
}

extern "C" sn_status sn__host_free_cuda(sn__dev *d, void *p) {
    if (!p) return SN_OK;
    return sn__cuda_rt(d, cudaFreeHost(p), "cudaFreeHost");
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
