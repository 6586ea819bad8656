/* backend.c: the one place that knows whether this build has CUDA.  Everything else asks
 * here for a backend's kernel table and device. */
#include <stdio.h>
#include "sn_internal.h"
#include "graph.h"
#include "dist/dist_internal.h"

const sn__kernels *sn__backend_kernels(int backend) {
    if (backend == SN__BACKEND_CPU) return &sn__kernels_cpu;
#ifdef SN_WITH_CUDA
    if (backend == SN__BACKEND_CUDA) return &sn__kernels_cuda;
#endif
    return NULL;
}

const sn__nccl_api *sn__backend_nccl(void) {
#ifdef SN_WITH_NCCL
    return sn__nccl_engine();
#else
    return NULL;
#endif
}

int sn_cuda_device_count(void) {
#ifdef SN_WITH_CUDA
    return sn__cuda_count();
#else
    return 0;
#endif
}

sn_status sn__backend_open(sn_ctx *ctx) {
    sn__dev *d = &ctx->dev;
    d->ctx = ctx;
    d->threads = ctx->threads;
    if (ctx->p.device == SN_DEVICE_CPU) {
        d->backend = SN__BACKEND_CPU;
        ctx->k = &sn__kernels_cpu;
        return SN_OK;
    }
    d->backend = SN__BACKEND_CUDA;
#ifdef SN_WITH_CUDA
    int n = sn__cuda_count();
    if (n <= 0)
        return sn__fail(ctx, SN_ERR_NO_DEVICE, "no CUDA device: the driver reports no usable GPU");
    if (ctx->p.device_index < 0 || ctx->p.device_index >= n)
        return sn__fail(ctx, SN_ERR_NO_DEVICE, "no CUDA device %d: %d device(s) present",
                        ctx->p.device_index, n);
    SN_TRY(sn__cuda_open(d, ctx->p.device_index));
    sn__cuda_configure(d, ctx->p.allow_tf32, ctx->p.deterministic);
    ctx->k = &sn__kernels_cuda;
    return SN_OK;
#else
    return sn__fail(ctx, SN_ERR_NO_DEVICE,
                    "no CUDA device: this libslimnet was built without CUDA (make CUDA=1)");
#endif
}

void sn__backend_close(sn_ctx *ctx) {
#ifdef SN_WITH_CUDA
    if (ctx->dev.backend == SN__BACKEND_CUDA) sn__cuda_close(&ctx->dev);
#else
    (void)ctx;
#endif
}

sn_status sn_ctx_device_info(sn_ctx *ctx, char *buf, size_t len) {
    if (!ctx || !buf || len == 0) return SN_ERR_INVALID_ARG;
#ifdef SN_WITH_CUDA
    if (ctx->dev.backend == SN__BACKEND_CUDA) return sn__cuda_info(&ctx->dev, buf, len);
#endif
    snprintf(buf, len, "CPU, %d thread%s", ctx->threads, ctx->threads == 1 ? "" : "s");
    return SN_OK;
}
