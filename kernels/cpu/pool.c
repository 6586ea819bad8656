/* pool.c: max and average pooling on the CPU.
 * Shapes: x/dx (N,H,W,C), y/dy (N,P,Q,C), window R x S (sn__pool_dims).
 * Input cell of output (p,q), tap (r,s): h = p*stride_h - pad_top + r, w = q*stride_w -
 * pad_left + s.  Cells outside the input are ignored, as TF's SAME pooling does: they never
 * win a max and never count in a mean.  A window with no cell inside the input (impossible
 * with TF's SAME or VALID) yields 0 and passes no gradient.  1x1 windows without padding
 * take a strided-copy path with the same results, bit for bit. */
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

/* The channel loops of the forwards.  restrict (x and y never overlap) and the select form
 * let them vectorize; the select keeps y unless x is strictly greater, exactly as the
 * if-statement it replaces, so a NaN never displaces a number it follows. */
static inline void max_into(float *restrict y, const float *restrict x, int64_t C) {
    for (int64_t c = 0; c < C; c++) y[c] = x[c] > y[c] ? x[c] : y[c];
}

static inline void add_into(float *restrict y, const float *restrict x, int64_t C) {
    for (int64_t c = 0; c < C; c++) y[c] += x[c];
}

/* ---- 1x1 windows: a strided copy ---------------------------------------------------------- */

/* A 1x1 window without padding (resnet_v1's shortcut subsampling, 1x1 with stride 2) reads
 * exactly one cell, so both poolings are a strided copy of those cells and both backwards add
 * dy back into them: no windows to clip, and one sweep over the channels instead of the
 * general loops' two (a copy, then a max or a sum over the same cell). */
static int is_subsample(const sn__pool_dims *pd) {
    return pd->R == 1 && pd->S == 1 && pd->pad_top == 0 && pd->pad_left == 0 &&
           (pd->P == 0 || (pd->P - 1) * pd->stride_h < pd->H) &&
           (pd->Q == 0 || (pd->Q - 1) * pd->stride_w < pd->W);
}

/* y[n,p,q,:] = x[n, p*stride_h, q*stride_w, :].  avg adds 0.0f, as the general average's
 * 0 + x does (it turns -0 into +0), so that both paths agree bit for bit. */
static void subsample_fwd(sn__dev *d, float *y, const float *x, const sn__pool_dims *pd,
                          int avg) {
    const int64_t H = pd->H, W = pd->W, C = pd->C, P = pd->P, Q = pd->Q;
#pragma omp parallel for num_threads(d->threads) if (pd->N * P * Q * C >= PAR_MIN)
    for (int64_t np = 0; np < pd->N * P; np++) {
        int64_t n = np / P, p = np % P;
        const float *xrow = x + (n * H + p * pd->stride_h) * W * C;
        for (int64_t q = 0; q < Q; q++) {
            float *restrict yc = y + (np * Q + q) * C;
            const float *restrict xc = xrow + q * pd->stride_w * C;
            if (avg)
                for (int64_t c = 0; c < C; c++) yc[c] = xc[c] + 0.0f;
            else
                for (int64_t c = 0; c < C; c++) yc[c] = xc[c];
        }
    }
}

/* dx[n, p*stride_h, q*stride_w, :] += dy[n,p,q,:]: every output owns its input cell, so the
 * lines can be split between threads. */
static void subsample_bwd(sn__dev *d, float *dx, const float *dy, const sn__pool_dims *pd) {
    const int64_t H = pd->H, W = pd->W, C = pd->C, P = pd->P, Q = pd->Q;
#pragma omp parallel for num_threads(d->threads) if (pd->N * P * Q * C >= PAR_MIN)
    for (int64_t np = 0; np < pd->N * P; np++) {
        int64_t n = np / P, p = np % P;
        float *dxrow = dx + (n * H + p * pd->stride_h) * W * C;
        for (int64_t q = 0; q < Q; q++) {
            float *restrict dxc = dxrow + q * pd->stride_w * C;
            const float *restrict dyc = dy + (np * Q + q) * C;
            for (int64_t c = 0; c < C; c++) dxc[c] += dyc[c];
        }
    }
}

/* ---- general windows ------------------------------------------------------------------------- */

/* y = max over the in-bounds cells of each window. */
sn_status sn__maxpool_fwd_cpu(sn__dev *d, float *y, const float *x, const sn__pool_dims *pd) {
    const int64_t H = pd->H, W = pd->W, C = pd->C, P = pd->P, Q = pd->Q;
    if (is_subsample(pd)) {
        subsample_fwd(d, y, x, pd, 0);
        return SN_OK;
    }
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
            for (int64_t r = rlo; r < rhi; r++)
                for (int64_t s = slo; s < shi; s++)
                    max_into(yc, x + ((n * H + h0 + r) * W + w0 + s) * C, C);
        }
    }
    return SN_OK;
}

/* Accumulates: dx[argmax of each window] += dy, where argmax is the FIRST maximal in-bounds
 * cell in row-major (r, s) order, TF's MaxPoolGrad tie rule.  Overlapping windows can hit
 * the same input cell, so the tasks split images and channel blocks, never positions. */
sn_status sn__maxpool_ws_cpu(sn__dev *d, const sn__pool_dims *pd, size_t *bytes) {
    (void)d;
    (void)pd;
    *bytes = 0;
    return SN_OK;
}

sn_status sn__maxpool_bwd_cpu(sn__dev *d, float *dx, const float *dy, const float *x,
                              const sn__pool_dims *pd) {
    const int64_t H = pd->H, W = pd->W, C = pd->C, P = pd->P, Q = pd->Q;
    const int64_t ncb = (C + CB - 1) / CB;
    if (is_subsample(pd)) {     /* the one cell of each window is its maximum */
        subsample_bwd(d, dx, dy, pd);
        return SN_OK;
    }
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
    if (is_subsample(pd)) {
        subsample_fwd(d, y, x, pd, 1);
        return SN_OK;
    }
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
            for (int64_t r = rlo; r < rhi; r++)
                for (int64_t s = slo; s < shi; s++)
                    add_into(yc, x + ((n * H + h0 + r) * W + w0 + s) * C, C);
            for (int64_t c = 0; c < C; c++) yc[c] /= (float)count;
        }
    }
    return SN_OK;
}

/* Accumulates: every in-bounds cell of a window gets dy / (its in-bounds count). */
sn_status sn__avgpool_bwd_cpu(sn__dev *d, float *dx, const float *dy, const sn__pool_dims *pd) {
    const int64_t H = pd->H, W = pd->W, C = pd->C, P = pd->P, Q = pd->Q;
    const int64_t ncb = (C + CB - 1) / CB;
    if (is_subsample(pd)) {     /* dy / 1: the one cell gets all of it */
        subsample_bwd(d, dx, dy, pd);
        return SN_OK;
    }
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
