/* sn_internal.h: private structures and helpers of libslimnet.  Not installed. */
#ifndef SN_INTERNAL_H
#define SN_INTERNAL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "slimnet.h"
#include "../kernels/kernels.h"

#define SN_ERRMSG_LEN 1024

struct sn_ctx {
    sn_ctx_params p;
    int threads;                    /* resolved: >= 1 */
    char errmsg[SN_ERRMSG_LEN];
    sn__dev dev;                    /* the context's backend device */
    const sn__kernels *k;           /* its kernel table */
};

struct sn_tensor {
    sn_ctx *ctx;
    sn_dtype dtype;
    int rank;
    int64_t dims[SN_MAX_RANK];
    void *data;
    bool owned;
    bool pinned;    /* data from ctx's host_alloc kernel (sn_tensor_new_pinned) */
};

/* Propagates a failure: SN_TRY(sn_something(...)); */
#define SN_TRY(expr)                                    \
    do {                                                \
        sn_status sn__st_ = (expr);                     \
        if (sn__st_ != SN_OK) return sn__st_;           \
    } while (0)

/* sn__fail (declared in kernels.h) formats the message into ctx->errmsg and returns st. */
sn_status sn__vfail(sn_ctx *ctx, sn_status st, const char *fmt, va_list ap);
/* Logs through the context's callback (printf-style); no-op without one. */
void sn__log(sn_ctx *ctx, sn_log_level level, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Checked arithmetic for sizes read from shapes or files: false on overflow. */
bool sn__mul_size(size_t a, size_t b, size_t *out);
/* Product of dims (all >= 0) as a size; false on overflow or a negative dim. */
bool sn__numel(int rank, const int64_t *dims, size_t *out);
/* "[3,3,64,128]" into buf. */
const char *sn__dims_str(int rank, const int64_t *dims, char *buf, size_t len);

/* lib/net.c, for the parameter servers: a CPU net (no group) calls hook with each bucket of
 * its gradient block (bytes lo..hi) as the backward finishes it; NULL ends it.  The
 * buckets, in the order the backward finishes them: their count (lo and hi of the first
 * cap into the arrays). */
sn_status sn__net_set_grad_hook(sn_net *net, sn_status (*hook)(void *, size_t, size_t),
                                void *arg);
int sn__net_buckets(const sn_net *net, size_t *lo, size_t *hi, int cap);

/* lib/optim.c, for the parameter servers: optimizer variable i's device memory, length and
 * variable node (-1: beta1_power, beta2_power). */
sn_status sn__optim_slot_mem(sn_optim *opt, int i, float **p, size_t *numel, int *node);
/* The same for a moving average's shadows (slot i's memory on the net's device, its size and
 * the variable it shadows); its decay and net. */
sn_status sn__ema_slot_mem(sn_ema *ema, int i, float **p, size_t *numel, int *node);
float sn__ema_decay(const sn_ema *ema);
const sn_net *sn__ema_net(const sn_ema *ema);

/* lib/dist/dist.c, for the net's data parallelism: the mean over the group of n floats at
 * host memory p; rank 0's n bytes at p on every rank. */
sn_status sn__dist_mean_f32(sn_dist *d, float *p, size_t n);
sn_status sn__dist_broadcast_bytes(sn_dist *d, void *p, size_t n);
/* The sum (not the mean: the net seeds its backward with 1/N) of n floats at p, in the
 * group's background thread, in the order given: p must stay untouched until sn__dist_wait
 * has returned, which reports the first failure. */
sn_status sn__dist_sum_f32_async(sn_dist *d, float *p, size_t n);
sn_status sn__dist_wait(sn_dist *d);
/* An NCCL group (SN_DIST_NCCL): device buffers of dev's GPU.  _mean_async queues the mean
 * of n floats at device pointer p on the communication stream after dev's stream's work so
 * far; _wait makes dev's stream wait for all of it and polls until it is done (the group's
 * timeout, failures named); _broadcast copies rank 0's bytes at p to every rank. */
bool sn__dist_has_nccl(const sn_dist *d);
sn_status sn__dist_dev_mean_async(sn_dist *d, sn__dev *dev, float *p, size_t n);
sn_status sn__dist_dev_wait(sn_dist *d, sn__dev *dev);
sn_status sn__dist_dev_broadcast(sn_dist *d, sn__dev *dev, void *p, size_t bytes);

/* 64-bit FNV-1a of a string, for per-variable seeds. */
uint64_t sn__hash_str(const char *s, uint64_t h);

#endif
