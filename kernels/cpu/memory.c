/* memory.c: CPU memory and transfer kernels.  Shapes: none, sizes are in bytes.
 * On the CPU "device" memory is host memory, so the transfers are plain copies. */
#include <stdlib.h>
#include <string.h>
#include "../kernels.h"

/* 64 bytes: a cache line, and the widest vector load the compiler may emit. */
enum { SN__CPU_ALIGN = 64 };

/* *p = 64-byte aligned host memory of `bytes` bytes (0 allowed: a unique, freeable
 * pointer).  SN_ERR_NOMEM with the size on failure; *p is then NULL. */
sn_status sn__alloc_cpu(sn__dev *d, void **p, size_t bytes) {
    *p = NULL;
    /* aligned_alloc wants a multiple of the alignment; round up, and never ask for 0 so
     * that a zero-byte tensor still has a distinct pointer. */
    if (bytes > SIZE_MAX - SN__CPU_ALIGN)
        return sn__fail(d->ctx, SN_ERR_NOMEM, "alloc: cannot allocate %zu bytes on the CPU",
                        bytes);
    size_t rounded = (bytes + SN__CPU_ALIGN - 1) / SN__CPU_ALIGN * SN__CPU_ALIGN;
    if (rounded == 0) rounded = SN__CPU_ALIGN;
    *p = aligned_alloc(SN__CPU_ALIGN, rounded);
    if (!*p)
        return sn__fail(d->ctx, SN_ERR_NOMEM, "alloc: cannot allocate %zu bytes on the CPU",
                        bytes);
    return SN_OK;
}

/* Releases memory from sn__alloc_cpu; NULL is a no-op. */
sn_status sn__free_cpu(sn__dev *d, void *p) {
    (void)d;
    free(p);
    return SN_OK;
}

/* On the CPU the device reads host memory directly: host memory is device memory. */
sn_status sn__host_alloc_cpu(sn__dev *d, void **p, size_t bytes) {
    return sn__alloc_cpu(d, p, bytes);
}

sn_status sn__host_free_cpu(sn__dev *d, void *p) { return sn__free_cpu(d, p); }

/* dst (device = host) <- src_host, bytes long, non-overlapping. */
sn_status sn__to_dev_cpu(sn__dev *d, void *dst, const void *src_host, size_t bytes) {
    (void)d;
    if (bytes) memcpy(dst, src_host, bytes);
    return SN_OK;
}

/* dst_host <- src (device = host), bytes long, non-overlapping. */
sn_status sn__to_host_cpu(sn__dev *d, void *dst_host, const void *src, size_t bytes) {
    (void)d;
    if (bytes) memcpy(dst_host, src, bytes);
    return SN_OK;
}

/* dst <- src, bytes long.  memmove, so that dst == src (an in-place reshape) is defined. */
sn_status sn__copy_cpu(sn__dev *d, void *dst, const void *src, size_t bytes) {
    (void)d;
    if (bytes) memmove(dst, src, bytes);
    return SN_OK;
}

/* p[0..bytes) = 0. */
sn_status sn__zero_cpu(sn__dev *d, void *p, size_t bytes) {
    (void)d;
    if (bytes) memset(p, 0, bytes);
    return SN_OK;
}

/* CPU kernels are synchronous: every kernel has finished when it returns. */
sn_status sn__sync_cpu(sn__dev *d) {
    (void)d;
    return SN_OK;
}

/* ---- bfloat16 storage (kernels.def) ---------------------------------------------------- */

enum { CAST_PAR_MIN = 1 << 16 };

/* y = x encoded to bf16 (round to nearest even). */
sn_status sn__cast_to_bf16_cpu(sn__dev *d, sn_bf16 *y, const float *x, int64_t n) {
#pragma omp parallel for num_threads(d->threads) if (n >= CAST_PAR_MIN)
    for (int64_t i = 0; i < n; i++) y[i] = sn__bf16_encode(x[i]);
    return SN_OK;
}

/* y = x decoded (exact). */
sn_status sn__cast_from_bf16_cpu(sn__dev *d, float *y, const sn_bf16 *x, int64_t n) {
#pragma omp parallel for num_threads(d->threads) if (n >= CAST_PAR_MIN)
    for (int64_t i = 0; i < n; i++) y[i] = sn__bf16_decode(x[i]);
    return SN_OK;
}
