/* memory.cu: device memory and transfers.  Everything is ordered on the device's stream;
 * to_host waits for it so the host may read at once.  Allocation uses the stream-ordered
 * pool (cudaMallocAsync) where the device has one, cudaMalloc elsewhere. */
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
/* A large copy from pageable memory goes through pinned staging: the host copies src into a
 * staging slot (free once the slot's previous DMA is done, which its event says), queues the
 * DMA on the stream and returns at once, while the GPU may still be running the previous
 * step; the DMA then runs at pinned speed (on an H200 a 77 MB image batch took ~6 ms through
 * the runtime's pageable path, which also held the host until the stream reached it).  A
 * ring of slots lets the images and labels of one step and the next step's copies proceed
 * without waiting on each other.  Small copies, and any staging failure, take the plain
 * path. */
static sn_status to_dev_staged(struct sn__cuda *c, void *dst, const void *src, size_t bytes,
                               bool *done) {
    *done = false;
    int k = c->stage_next;
    if (c->stage[k].done && cudaEventSynchronize(c->stage[k].done) != cudaSuccess) return SN_OK;
    if (c->stage[k].bytes < bytes) {
        if (c->stage[k].buf) (void)cudaFreeHost(c->stage[k].buf);
        c->stage[k].buf = NULL;
        c->stage[k].bytes = 0;
        if (cudaHostAlloc(&c->stage[k].buf, bytes, cudaHostAllocDefault) != cudaSuccess) {
            c->stage[k].buf = NULL;
            (void)cudaGetLastError();
            return SN_OK;   /* no pinned memory: the plain path */
        }
        c->stage[k].bytes = bytes;
    }
    if (!c->stage[k].done &&
        cudaEventCreateWithFlags(&c->stage[k].done, cudaEventDisableTiming) != cudaSuccess) {
        c->stage[k].done = NULL;
        (void)cudaGetLastError();
        return SN_OK;
    }
    memcpy(c->stage[k].buf, src, bytes);
    if (cudaMemcpyAsync(dst, c->stage[k].buf, bytes, cudaMemcpyHostToDevice, c->stream) !=
            cudaSuccess ||
        cudaEventRecord(c->stage[k].done, c->stream) != cudaSuccess) {
        (void)cudaGetLastError();
        (void)cudaStreamSynchronize(c->stream);   /* the slot is free again either way */
        return SN_OK;
    }
    c->stage_next = (k + 1) % SN__CUDA_STAGE_SLOTS;
    *done = true;
    return SN_OK;
}

extern "C" sn_status sn__to_dev_cuda(sn__dev *d, void *dst, const void *src_host,
                                     size_t bytes) {
    SN__CU_BEGIN(d, c);
    if (bytes == 0) return SN_OK;
    if (bytes >= SN__CUDA_STAGE_MIN) {
        bool done;
        SN__CU_TRY(to_dev_staged(c, dst, src_host, bytes, &done));
        if (done) return SN_OK;
    }
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
