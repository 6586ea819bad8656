/* dwconv.c: depthwise 2-D convolution on the CPU, as direct loops.
 *
 * Shapes: x (N,H,W,C), w (R,S,C,M), y (N,P,Q,K) with K = C*M; output channel c*M+m reads
 * only input channel c.  Geometry as for conv2d (kernels.h): input cell of output (p,q),
 * tap (r,s) is h = p*stride_h - pad_top + r*dil_h, w = q*stride_w - pad_left + s*dil_w.
 *
 * There is no GEMM to lean on (each output channel is a dot product of only R*S terms), so
 * the loops keep the channel axis innermost: in NHWC a cell's C inputs, its K outputs and
 * one tap's K weights are all contiguous, and the inner loop vectorizes.  With M = 1
 * (MobileNet's case) the forward sums each block of channels over the taps in registers,
 * which took mobilenet_v1's 13 depthwise layers from about 7 to 12 GFLOP/s on one core.
 * dwconv2d_fwd_ep, the fused forward of inference nets, finishes each output line with the
 * epilogue (kernels.h) right after computing it. */
#include <string.h>
#include "cpu_internal.h"

static int nthreads(const sn__dev *d) { return d->threads > 0 ? d->threads : 1; }

/* The inner loops, one tap of one cell.  restrict lets the compiler vectorize without
 * run-time overlap checks, which cost more than the work at small C. */

/* y[k] += x[k] * w[k], k < n: a tap of the M == 1 case. */
static inline void tap_fma(float *restrict y, const float *restrict x,
                           const float *restrict w, int64_t n) {
    for (int64_t k = 0; k < n; k++) y[k] += x[k] * w[k];
}

/* Channels per accumulator block of the M == 1 forward: 32 floats, eight of the sixteen SSE
 * registers (16 ran 10% slower on mobilenet_v1's layers; more would spill). */
enum { DB = 32 };

/* Channels [c0, c0+nc) of one output cell (n, p, q) of the M == 1 forward, nc <= DB: the
 * taps are summed in registers and y is stored once, instead of tap_fma's load and store of
 * y per tap.  Taps are added in the same (r, s) order onto 0, so the result is tap_fma's bit
 * for bit.  Inlined with nc == DB the channel loops have a constant trip count: unrolled,
 * and acc lives in registers. */
static inline void dw_block_m1(float *restrict y, const float *restrict x,
                               const float *restrict w, const sn__conv2d_dims *cd, int64_t n,
                               int64_t p, int64_t q, int64_t c0, int64_t nc) {
    const int64_t H = cd->H, W = cd->W, K = cd->K, R = cd->R, S = cd->S;
    float acc[DB] = {0};
    for (int64_t r = 0; r < R; r++) {
        int64_t h = p * cd->stride_h - cd->pad_top + r * cd->dil_h;
        if (h < 0 || h >= H) continue;
        for (int64_t s = 0; s < S; s++) {
            int64_t wi = q * cd->stride_w - cd->pad_left + s * cd->dil_w;
            if (wi < 0 || wi >= W) continue;
            const float *xc = x + ((n * H + h) * W + wi) * K + c0;
            const float *wt = w + (r * S + s) * K + c0;
            for (int64_t c = 0; c < nc; c++) acc[c] += xc[c] * wt[c];
        }
    }
    for (int64_t c = 0; c < nc; c++) y[c0 + c] = acc[c];
}

/* One output cell of the M == 1 forward: whole blocks, then the remainder. */
static void dw_cell_m1(float *y, const float *x, const float *w, const sn__conv2d_dims *cd,
                       int64_t n, int64_t p, int64_t q) {
    int64_t c0 = 0;
    for (; c0 + DB <= cd->K; c0 += DB) dw_block_m1(y, x, w, cd, n, p, q, c0, DB);
    if (c0 < cd->K) dw_block_m1(y, x, w, cd, n, p, q, c0, cd->K - c0);
}

/* y[c*M+m] += x[c] * w[c*M+m]: input channel c feeds its M outputs. */
static inline void tap_fma_mult(float *restrict y, const float *restrict x,
                                const float *restrict w, int64_t C, int64_t M) {
    for (int64_t c = 0; c < C; c++)
        for (int64_t m = 0; m < M; m++) y[c * M + m] += x[c] * w[c * M + m];
}

/* x[c] += sum_m g[c*M+m] * w[c*M+m]: the M outputs of channel c back into it. */
static inline void tap_dot_mult(float *restrict x, const float *restrict g,
                                const float *restrict w, int64_t C, int64_t M) {
    for (int64_t c = 0; c < C; c++) {
        float acc = 0.0f;
        for (int64_t m = 0; m < M; m++) acc += g[c * M + m] * w[c * M + m];
        x[c] += acc;
    }
}

static sn_status check_dims(sn__dev *d, const sn__conv2d_dims *cd, const char *who) {
    if (cd->N < 0 || cd->H < 0 || cd->W < 0 || cd->C < 0 || cd->M < 0 || cd->R < 0 ||
        cd->S < 0 || cd->P < 0 || cd->Q < 0 || cd->stride_h < 1 || cd->stride_w < 1 ||
        cd->dil_h < 1 || cd->dil_w < 1 || cd->K != cd->C * cd->M)
        return sn__fail(d->ctx, SN_ERR_INVALID_ARG,
                        "%s: bad geometry N=%lld H=%lld W=%lld C=%lld M=%lld K=%lld (must be "
                        "C*M) R=%lld S=%lld P=%lld Q=%lld stride=%lldx%lld dilation=%lldx%lld",
                        who, (long long)cd->N, (long long)cd->H, (long long)cd->W,
                        (long long)cd->C, (long long)cd->M, (long long)cd->K,
                        (long long)cd->R, (long long)cd->S, (long long)cd->P,
                        (long long)cd->Q, (long long)cd->stride_h, (long long)cd->stride_w,
                        (long long)cd->dil_h, (long long)cd->dil_w);
    return SN_OK;
}

/* The weight gradient sums every output cell's contribution into each tap: N*P*Q terms,
 * 4,608 for MobileNet's first depthwise layer at batch 2 and 96x96, far more at training
 * sizes.  Summed straight in float32 that loses digits (error growing with the count);
 * instead each thread sums one output line (Q cells) in float into a line buffer, and adds
 * the lines into a double accumulator.  The workspace holds, per thread, the double
 * accumulator and the float line buffer of one filter (R*S*K values each). */
static int64_t filter_slice(const sn__conv2d_dims *cd) { return cd->R * cd->S * cd->K; }

static size_t filter_part_bytes(const sn__conv2d_dims *cd) {
    return (size_t)filter_slice(cd) * (sizeof(double) + sizeof(float));
}

/* Workspace bytes: one accumulator per thread for bwd_filter; fwd and bwd_data need none. */
sn_status sn__dwconv2d_ws_cpu(sn__dev *d, const sn__conv2d_dims *cd, size_t *bytes) {
    sn_status st = check_dims(d, cd, "dwconv2d_ws");
    if (st != SN_OK) return st;
    *bytes = (size_t)nthreads(d) * filter_part_bytes(cd);
    return SN_OK;
}

/* y (N,P,Q,C*M) = ep(depthwise conv(x (N,H,W,C), w (R,S,C,M))); y is overwritten.
 * Parallel over output lines (n,p), which write disjoint parts of y; the epilogue, if any,
 * runs on each line as soon as it is complete, while it is in the thread's cache. */
static sn_status dw_fwd(sn__dev *d, float *y, const float *x, const float *w,
                        const sn__epilogue *ep, const sn__conv2d_dims *cd, const char *who) {
    sn_status st = check_dims(d, cd, who);
    if (st != SN_OK) return st;
    const int64_t H = cd->H, W = cd->W, C = cd->C, M = cd->M, K = cd->K, R = cd->R,
                  S = cd->S, P = cd->P, Q = cd->Q;
#pragma omp parallel for num_threads(nthreads(d)) schedule(static)
    for (int64_t line = 0; line < cd->N * P; line++) {
        int64_t n = line / P, p = line % P;
        for (int64_t q = 0; q < Q; q++) {
            float *yq = y + (line * Q + q) * K;
            if (M == 1) {
                dw_cell_m1(yq, x, w, cd, n, p, q);
                continue;
            }
            memset(yq, 0, (size_t)K * sizeof(float));
            for (int64_t r = 0; r < R; r++) {
                int64_t h = p * cd->stride_h - cd->pad_top + r * cd->dil_h;
                if (h < 0 || h >= H) continue;
                for (int64_t s = 0; s < S; s++) {
                    int64_t wi = q * cd->stride_w - cd->pad_left + s * cd->dil_w;
                    if (wi < 0 || wi >= W) continue;
                    const float *xc = x + ((n * H + h) * W + wi) * C;
                    tap_fma_mult(yq, xc, w + (r * S + s) * K, C, M);
                }
            }
        }
        if (ep)
            sn__epilogue_apply_cpu(y + line * Q * K,
                                   ep->residual ? ep->residual + line * Q * K : NULL, Q, K, K,
                                   0, ep);
    }
    return SN_OK;
}

sn_status sn__dwconv2d_fwd_cpu(sn__dev *d, float *y, const float *x, const float *w,
                               const sn__conv2d_dims *cd) {
    return dw_fwd(d, y, x, w, NULL, cd, "dwconv2d_fwd");
}

/* The fused forward of inference nets: dwconv2d_fwd with the epilogue ep (kernels.h). */
sn_status sn__dwconv2d_fwd_ep_cpu(sn__dev *d, float *y, const float *x, const float *w,
                                  const sn__epilogue *ep, const sn__conv2d_dims *cd) {
    return dw_fwd(d, y, x, w, ep, cd, "dwconv2d_fwd_ep");
}

/* dx (N,H,W,C) += gradient of the input from dy (N,P,Q,C*M) and w (R,S,C,M).  Gathered per
 * input line (n,h): each thread adds only into its own lines of dx, so there are no races. */
sn_status sn__dwconv2d_bwd_data_cpu(sn__dev *d, float *dx, const float *dy, const float *w,
                                    const sn__conv2d_dims *cd) {
    sn_status st = check_dims(d, cd, "dwconv2d_bwd_data");
    if (st != SN_OK) return st;
    const int64_t H = cd->H, W = cd->W, C = cd->C, M = cd->M, K = cd->K, R = cd->R,
                  S = cd->S, P = cd->P, Q = cd->Q;
    const int64_t sh = cd->stride_h, pt = cd->pad_top, dh = cd->dil_h;
#pragma omp parallel for num_threads(nthreads(d)) schedule(static)
    for (int64_t g = 0; g < cd->N * H; g++) {
        int64_t n = g / H, h = g % H;
        float *dxrow = dx + g * W * C;
        for (int64_t r = 0; r < R; r++) {
            int64_t ph = h + pt - r * dh;
            if (ph < 0 || ph % sh != 0 || ph / sh >= P) continue;
            const float *dyline = dy + (n * P + ph / sh) * Q * K;
            for (int64_t q = 0; q < Q; q++) {
                for (int64_t s = 0; s < S; s++) {
                    int64_t wi = q * cd->stride_w - cd->pad_left + s * cd->dil_w;
                    if (wi < 0 || wi >= W) continue;
                    float *dst = dxrow + wi * C;
                    const float *gq = dyline + q * K;
                    const float *wt = w + (r * S + s) * K;
                    if (M == 1) tap_fma(dst, gq, wt, C);
                    else tap_dot_mult(dst, gq, wt, C, M);
                }
            }
        }
    }
    return SN_OK;
}

/* Adds the weight gradient of output lines [l0, l1) into acc (R,S,C*M), a line at a time
 * through line (R*S*C*M floats). */
static void filter_grad_lines(double *acc, float *line_acc, const float *dy, const float *x,
                              const sn__conv2d_dims *cd, int64_t l0, int64_t l1) {
    const int64_t H = cd->H, W = cd->W, C = cd->C, M = cd->M, K = cd->K, R = cd->R,
                  S = cd->S, P = cd->P, Q = cd->Q, slice = filter_slice(cd);
    for (int64_t line = l0; line < l1; line++) {
        int64_t n = line / P, p = line % P;
        memset(line_acc, 0, (size_t)slice * sizeof(float));
        for (int64_t q = 0; q < Q; q++) {
            const float *gq = dy + (line * Q + q) * K;
            for (int64_t r = 0; r < R; r++) {
                int64_t h = p * cd->stride_h - cd->pad_top + r * cd->dil_h;
                if (h < 0 || h >= H) continue;
                for (int64_t s = 0; s < S; s++) {
                    int64_t wi = q * cd->stride_w - cd->pad_left + s * cd->dil_w;
                    if (wi < 0 || wi >= W) continue;
                    const float *xc = x + ((n * H + h) * W + wi) * C;
                    float *at = line_acc + (r * S + s) * K;
                    if (M == 1) tap_fma(at, xc, gq, C);
                    else tap_fma_mult(at, xc, gq, C, M);
                }
            }
        }
        for (int64_t i = 0; i < slice; i++) acc[i] += line_acc[i];
    }
}

/* dw (R,S,C,M) += gradient of the weights from dy (N,P,Q,C*M) and x (N,H,W,C).  Every output
 * cell adds into every tap, so threads split the output lines and each sums into its own
 * accumulator; the accumulators are then added into dw.  With a workspace smaller than
 * sn__dwconv2d_ws asked for, fewer threads run; with none at all, it is an error. */
sn_status sn__dwconv2d_bwd_filter_cpu(sn__dev *d, float *dw, const float *dy, const float *x,
                                      const sn__conv2d_dims *cd) {
    sn_status st = check_dims(d, cd, "dwconv2d_bwd_filter");
    if (st != SN_OK) return st;
    const int64_t slice = filter_slice(cd), lines = cd->N * cd->P;
    if (slice == 0 || lines * cd->Q == 0) return SN_OK;
    const size_t part = filter_part_bytes(cd);
    int64_t parts = nthreads(d);
    int64_t fit = d->ws ? (int64_t)(d->ws_bytes / part) : 0;
    if (fit < 1)
        return sn__fail(d->ctx, SN_ERR_INVALID_ARG, "dwconv2d_bwd_filter: workspace of %zu "
                        "bytes is smaller than one filter accumulator (%zu bytes)",
                        d->ws ? d->ws_bytes : 0, part);
    if (parts > fit) parts = fit;
    if (parts > lines) parts = lines;
    double *accs = d->ws;                                     /* parts x slice doubles */
    float *line_bufs = (float *)(accs + parts * slice);       /* then parts x slice floats */
#pragma omp parallel for num_threads((int)parts) schedule(static, 1)
    for (int64_t t = 0; t < parts; t++) {
        double *acc = accs + t * slice;
        memset(acc, 0, (size_t)slice * sizeof(double));
        filter_grad_lines(acc, line_bufs + t * slice, dy, x, cd, t * lines / parts,
                          (t + 1) * lines / parts);
    }
#pragma omp parallel for num_threads((int)parts) schedule(static)
    for (int64_t i = 0; i < slice; i++) {
        double sum = 0.0;
        for (int64_t t = 0; t < parts; t++) sum += accs[t * slice + i];
        dw[i] += (float)sum;
    }
    return SN_OK;
}
