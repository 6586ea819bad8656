/* cpu_internal.h: helpers the CPU kernel files share.  They are not kernels (no entry in
 * kernels.def, no CUDA twin): the kernels that use them are. */
#ifndef SN_CPU_INTERNAL_H
#define SN_CPU_INTERNAL_H

#include "../kernels.h"

/* Applies the epilogue ep (kernels.h) in place to the block y (rows, nc), row stride ldy,
 * whose column j is channel c0 + j; res is the same block of ep->residual (NULL without
 * one).  Single-threaded: each thread of a fused kernel calls it on the block it has just
 * written, while that block is still in its core's cache. */
void sn__epilogue_apply_cpu(float *y, const float *res, int64_t rows, int64_t nc, int64_t ldy,
                            int64_t c0, const sn__epilogue *ep);

/* relu_fwd's and relu6_fwd's expressions (eltwise.c) for an sn__act, or v itself: the
 * activation a fused chain ends in. */
static inline float sn__act_fwd_cpu(float v, int act) {
    if (act == SN__ACT_RELU) return v > 0.0f ? v : 0.0f;
    if (act == SN__ACT_RELU6) return v > 0.0f ? (v < 6.0f ? v : 6.0f) : 0.0f;
    return v;
}

/* The gradient the unfused chain leaves below its activation at element e: relu_bwd or
 * relu6_bwd into a zeroed buffer, 0 + (dy masked by the output y), or without an activation
 * dy itself. */
/* 0.0f + v, bit for bit (-0 becomes +0, everything else is v), without the addition: with a
 * subnormal v the addition costs ~100 cycles on x86 (no flush-to-zero here), and the fused
 * batch-norm backward made several per element (on 2 cores it then took 300 ms of
 * ResNet-50's 112x112 training step instead of the unfused ops' 130 ms). */
static inline float sn__plus0(float v) { return v == 0.0f ? 0.0f : v; }

static inline float sn__chain_grad_cpu(const float *dy, const float *y, int act, int64_t e) {
    if (act == SN__ACT_RELU) return sn__plus0(y[e] > 0.0f ? dy[e] : 0.0f);
    if (act == SN__ACT_RELU6) return sn__plus0(y[e] > 0.0f && y[e] < 6.0f ? dy[e] : 0.0f);
    return dy[e];
}

#endif
