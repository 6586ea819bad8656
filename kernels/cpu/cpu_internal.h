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

#endif
