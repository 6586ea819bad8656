/* pool.c: max and average pooling on the CPU.
 * Shapes: x/dx (N,H,W,C), y/dy (N,P,Q,C), window R x S (sn__pool_dims).
 * Input cell of output (p,q), tap (r,s): h = p*stride_h - pad_top + r, w = q*stride_w -
 * pad_left + s.  Cells outside the input are ignored, as TF's SAME pooling does: they never
 * win a max and never count in a mean.  A window with no cell inside the input (impossible
 * with TF's SAME or VALID) yields 0 and passes no gradient. */
#include "../kernels.h"

/* Below this many output values the loops run on one thread: a parallel region costs
 * microseconds, more than the whole pool of a small layer. */
enum { PAR_MIN = 1 << 14 };
/* Channel block of the backward tasks: 16 floats = one cache line. */
enum { CB = 16 };

/* Taps [*lo, *hi) of a window starting at input index `start` that fall inside [0, n). */
static void clip_window(int64_t start, int64_t k, int64_t n, int64_t *lo, int64_t *hi) {
    *lo = start < 0 ? -start : 0;
    *hi = n - start < k ? n - start : k;
    if (*hi < *lo) *hi = *lo;
}

/* y = max over the in-bounds cells of each window. */
sn_status sn__maxpool_fwd_cpu(sn__dev *d, float *y, const float *x, const sn__pool_dims *pd) {
    const int64_t H = pd->H, W = pd->W, C = pd->C, P = pd->P, Q = pd->Q;
#pragma omp parallel for num_threads(d->threads) if (pd->N * P * Q * C >= PAR_MIN)
    for (int64_t np = 0; np < pd->N * P; np++) {
        int64_t n = np / P, p = np % P, h0 = p * pd->stride_h - pd->pad_top, rlo, rhi;
        clip_window(h0, pd->R, H, &rlo, &rhi);
        for (int64_t q = 0; q < Q; q++) {
            int64_t w0 = q * pd->stride_w - pd->pad_left, slo, shi;
            clip_window(w0, pd->S, W, &slo, &shi);
            float *yc = y + (np * Q + q) * C;
            if (rlo == rhi || slo == shi) {
                for (int64_t c = 0; c < C; c++) yc[c] = 0.0f;
                continue;
            }
            /* Start from the first in-bounds cell rather than -inf, so the result is always
             * an input value. */
            const float *x0 = x + ((n * H + h0 + rlo) * W + w0 + slo) * C;
            for (int64_t c = 0; c < C; c++) yc[c] = x0[c];
            for (int64_t r = rlo; r < rhi; r++) {
                for (int64_t s = slo; s < shi; s++) {
                    const float *xc = x + ((n * H + h0 + r) * W + w0 + s) * C;
                    for (int64_t c = 0; c < C; c++)
                        if (xc[c] > yc[c]) yc[c] = xc[c];
                }
            }
        }
    }
    return SN_OK;
}

/* Accumulates: dx[argmax of each window] += dy, where argmax is the FIRST maximal in-bounds
 * cell in row-major (r, s) order, TF's MaxPoolGrad tie rule.  Overlapping windows can hit
 * the same input cell, so the tasks split images and channel blocks, never positions. */
sn_status sn__maxpool_bwd_cpu(sn__dev *d, float *dx, const float *dy, const float *x,
                              const sn__pool_dims *pd) {
    const int64_t H = pd->H, W = pd->W, C = pd->C, P = pd->P, Q = pd->Q;
    const int64_t ncb = (C + CB - 1) / CB;
#pragma omp parallel for num_threads(d->threads) if (pd->N * P * Q * C >= PAR_MIN)
    for (int64_t t = 0; t < pd->N * ncb; t++) {
        int64_t n = t / ncb, c0 = t % ncb * CB, nc = C - c0 < CB ? C - c0 : CB;
        float best[CB];
        int64_t where[CB];
        for (int64_t p = 0; p < P; p++) {
            int64_t h0 = p * pd->stride_h - pd->pad_top, rlo, rhi;
            clip_window(h0, pd->R, H, &rlo, &rhi);
            for (int64_t q = 0; q < Q; q++) {
                int64_t w0 = q * pd->stride_w - pd->pad_left, slo, shi;
                clip_window(w0, pd->S, W, &slo, &shi);
                if (rlo == rhi || slo == shi) continue;
                int first = 1;
                for (int64_t r = rlo; r < rhi; r++) {
                    for (int64_t s = slo; s < shi; s++) {
                        int64_t off = ((n * H + h0 + r) * W + w0 + s) * C + c0;
                        for (int64_t c = 0; c < nc; c++) {
                            /* Strictly greater: a later equal value never takes over. */
                            if (first || x[off + c] > best[c]) {
                                best[c] = x[off + c];
                                where[c] = off + c;
                            }
                        }
                        first = 0;
                    }
                }
                const float *dyc = dy + ((n * P + p) * Q + q) * C + c0;
                for (int64_t c = 0; c < nc; c++) dx[where[c]] += dyc[c];
            }
        }
    }
    return SN_OK;
}

/* y = mean over the in-bounds cells of each window (padding is not counted). */
sn_status sn__avgpool_fwd_cpu(sn__dev *d, float *y, const float *x, const sn__pool_dims *pd) {
    const int64_t H = pd->H, W = pd->W, C = pd->C, P = pd->P, Q = pd->Q;
#pragma omp parallel for num_threads(d->threads) if (pd->N * P * Q * C >= PAR_MIN)
    for (int64_t np = 0; np < pd->N * P; np++) {
        int64_t n = np / P, p = np % P, h0 = p * pd->stride_h - pd->pad_top, rlo, rhi;
        clip_window(h0, pd->R, H, &rlo, &rhi);
        for (int64_t q = 0; q < Q; q++) {
            int64_t w0 = q * pd->stride_w - pd->pad_left, slo, shi;
            clip_window(w0, pd->S, W, &slo, &shi);
            float *yc = y + (np * Q + q) * C;
            for (int64_t c = 0; c < C; c++) yc[c] = 0.0f;
            int64_t count = (rhi - rlo) * (shi - slo);
            if (count == 0) continue;
            for (int64_t r = rlo; r < rhi; r++) {
                for (int64_t s = slo; s < shi; s++) {
                    const float *xc = x + ((n * H + h0 + r) * W + w0 + s) * C;
                    for (int64_t c = 0; c < C; c++) yc[c] += xc[c];
                }
            }
            for (int64_t c = 0; c < C; c++) yc[c] /= (float)count;
        }
    }
    return SN_OK;
}

/* Accumulates: every in-bounds cell of a window gets dy / (its in-bounds count). */
sn_status sn__avgpool_bwd_cpu(sn__dev *d, float *dx, const float *dy, const sn__pool_dims *pd) {
    const int64_t H = pd->H, W = pd->W, C = pd->C, P = pd->P, Q = pd->Q;
    const int64_t ncb = (C + CB - 1) / CB;
#pragma omp parallel for num_threads(d->threads) if (pd->N * P * Q * C >= PAR_MIN)
    for (int64_t t = 0; t < pd->N * ncb; t++) {
        int64_t n = t / ncb, c0 = t % ncb * CB, nc = C - c0 < CB ? C - c0 : CB;
        for (int64_t p = 0; p < P; p++) {
            int64_t h0 = p * pd->stride_h - pd->pad_top, rlo, rhi;
            clip_window(h0, pd->R, H, &rlo, &rhi);
            for (int64_t q = 0; q < Q; q++) {
                int64_t w0 = q * pd->stride_w - pd->pad_left, slo, shi;
                clip_window(w0, pd->S, W, &slo, &shi);
                int64_t count = (rhi - rlo) * (shi - slo);
                if (count == 0) continue;
                const float *dyc = dy + ((n * P + p) * Q + q) * C + c0;
                for (int64_t r = rlo; r < rhi; r++) {
                    for (int64_t s = slo; s < shi; s++) {
                        float *dxc = dx + ((n * H + h0 + r) * W + w0 + s) * C + c0;
                        for (int64_t c = 0; c < nc; c++) dxc[c] += dyc[c] / (float)count;
                    }
                }
            }
        }
    }
    return SN_OK;
}
