/* ctx.c: the context (device, threads, seed, log, last error) and the version. */
#include <stdlib.h>
#include <unistd.h>
#include "graph.h"

const char *sn_version(void) {
#define SN__STR2(x) #x
#define SN__STR(x) SN__STR2(x)
    return SN__STR(SN_VERSION_MAJOR) "." SN__STR(SN_VERSION_MINOR) "." SN__STR(SN_VERSION_PATCH);
}

sn_ctx_params sn_ctx_params_default(void) {
    sn_ctx_params p = {0};
    p.device = SN_DEVICE_CPU;
    p.log_level = SN_LOG_INFO;
    p.allow_tf32 = 1;
    return p;
}

sn_status sn_ctx_new(const sn_ctx_params *p, sn_ctx **out) {
    if (!out) return SN_ERR_INVALID_ARG;
    *out = NULL;
    sn_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx) return SN_ERR_NOMEM;
    ctx->p = p ? *p : sn_ctx_params_default();
    *out = ctx;
    if (ctx->p.device != SN_DEVICE_CPU && ctx->p.device != SN_DEVICE_CUDA)
        return sn__fail(ctx, SN_ERR_INVALID_ARG, "sn_ctx_new: unknown device %d",
                        (int)ctx->p.device);
    if (ctx->p.threads < 0)
        return sn__fail(ctx, SN_ERR_INVALID_ARG, "sn_ctx_new: threads must be >= 0, not %d",
                        ctx->p.threads);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    ctx->threads = ctx->p.threads > 0 ? ctx->p.threads : (cores > 0 ? (int)cores : 1);
    return sn__backend_open(ctx);
}

void sn_ctx_free(sn_ctx *ctx) {
    if (!ctx) return;
    sn__backend_close(ctx);
    free(ctx);
}

sn_device sn_ctx_device(const sn_ctx *ctx) { return ctx->p.device; }
