/* conv.c: 2-D convolution on the CPU: im2col into the workspace, then one OpenBLAS GEMM.
 *
 * Shapes: x (N,H,W,C), w (R,S,C,K) HWIO, y (N,P,Q,K).  With rows = N*P*Q output cells and
 * cols = R*S*C taps, the patches matrix is (rows, cols), and because NHWC keeps C innermost
 * and HWIO keeps K innermost, y (rows, K) = patches @ w (cols, K) with no transposes at all.
 *
 * The patches of a whole batch are large (ResNet-50's 3x3 convs at batch 8 need ~60 MB), so
 * they are built a chunk at a time: a whole number of output LINES (one (n,p) row of Q
 * cells), sized so the chunk stays in the last-level cache between im2col writing it and the
 * GEMM packing it, while the GEMM keeps enough rows to run at full speed.
 *
 * Threads: im2col and col2im run on OpenMP threads, and sn__gemm_cpu splits each chunk's
 * product between the same OpenMP threads (gemm.c explains why not OpenBLAS's own).  In the
 * forward both split rows statically, so each thread multiplies the rows it just wrote.
 *
 * A 1x1 convolution with stride 1 and no padding needs no patches: x (N*H*W, C) already is
 * the patches matrix.  It is one GEMM straight on the tensors, with no workspace.
 *
 * conv2d_fwd_ep, the fused forward of inference nets, is the same forward with the batch
 * norm or bias, residual add and activation applied by each thread to the output block it
 * has just multiplied (gemm_ep in gemm.c), instead of in up to three more passes over y. */
#include <string.h>
#include "cpu_internal.h"

/* Target size of one im2col chunk: small enough to stay in a last-level cache while the
 * GEMM reads it back, large enough that each GEMM has thousands of rows.  On a 2-core Zen 3
 * (512 KiB L2 per core, 32 MiB L3) 4 to 16 MB ran alike on ResNet-50 (bench_conv) and 2 MB
 * was slower. */
#ifndef SN__CONV_CHUNK_BYTES
#define SN__CONV_CHUNK_BYTES ((int64_t)8 << 20)
#endif

static int nthreads(const sn__dev *d) { return d->threads > 0 ? d->threads : 1; }

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

static sn_status check_dims(sn__dev *d, const sn__conv2d_dims *cd, const char *who) {
    if (cd->N < 0 || cd->H < 0 || cd->W < 0 || cd->C < 0 || cd->K < 0 || cd->R < 0 ||
        cd->S < 0 || cd->P < 0 || cd->Q < 0 || cd->stride_h < 1 || cd->stride_w < 1 ||
        cd->dil_h < 1 || cd->dil_w < 1)
        return sn__fail(d->ctx, SN_ERR_INVALID_ARG,
                        "%s: bad geometry N=%lld H=%lld W=%lld C=%lld K=%lld R=%lld S=%lld "
                        "P=%lld Q=%lld stride=%lldx%lld dilation=%lldx%lld", who,
                        (long long)cd->N, (long long)cd->H, (long long)cd->W,
                        (long long)cd->C, (long long)cd->K, (long long)cd->R,
                        (long long)cd->S, (long long)cd->P, (long long)cd->Q,
                        (long long)cd->stride_h, (long long)cd->stride_w,
                        (long long)cd->dil_h, (long long)cd->dil_w);
    return SN_OK;
}

/* True when x (N*H*W, C) is itself the patches matrix: 1x1, stride 1, no padding, and the
 * output covers the input exactly. */
static int is_pointwise(const sn__conv2d_dims *cd) {
    return cd->R == 1 && cd->S == 1 && cd->stride_h == 1 && cd->stride_w == 1 &&
           cd->pad_top == 0 && cd->pad_left == 0 && cd->P == cd->H && cd->Q == cd->W;
}

/* Output lines per chunk as the workspace query sizes it. */
static int64_t chunk_lines(const sn__conv2d_dims *cd) {
    int64_t line_bytes = cd->Q * cd->R * cd->S * cd->C * (int64_t)sizeof(float);
    int64_t lines = max64(1, SN__CONV_CHUNK_BYTES / line_bytes);
    return min64(lines, cd->N * cd->P);
}

/* Lines per chunk that fit the workspace actually given: at most the planned chunk, fewer
 * (slower, same result) if the caller's workspace is smaller than conv2d_ws asked for. */
static sn_status usable_lines(sn__dev *d, const sn__conv2d_dims *cd, const char *who,
                              int64_t *lines) {
    int64_t line_bytes = cd->Q * cd->R * cd->S * cd->C * (int64_t)sizeof(float);
    int64_t fit = d->ws ? (int64_t)(d->ws_bytes / (size_t)line_bytes) : 0;
    *lines = min64(chunk_lines(cd), fit);
    if (*lines < 1)
        return sn__fail(d->ctx, SN_ERR_INVALID_ARG,
                        "%s: workspace of %zu bytes is smaller than one output line of "
                        "patches (%lld bytes)", who, d->ws ? d->ws_bytes : 0,
                        (long long)line_bytes);
    return SN_OK;
}

/* col (lines*Q, R*S*C) = the patches of output lines [l0, l0+lines); padding reads as 0.
 * One output cell per iteration: its R*S*C patch is R runs of S*C floats, each a single
 * contiguous copy when the run lies inside the input and dilation is 1. */
static void im2col(float *col, const float *x, const sn__conv2d_dims *cd, int64_t l0,
                   int64_t lines, int threads) {
    const int64_t H = cd->H, W = cd->W, C = cd->C, R = cd->R, S = cd->S, P = cd->P,
                  Q = cd->Q, cols = R * S * C;
    const int64_t rows = lines * Q;
    (void)threads;          /* unused without OpenMP */
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t i = 0; i < rows; i++) {
        int64_t line = l0 + i / Q, q = i % Q;
        int64_t n = line / P, p = line % P;
        int64_t w0 = q * cd->stride_w - cd->pad_left;
        int whole_run = cd->dil_w == 1 && w0 >= 0 && w0 + S <= W;
        float *dst = col + i * cols;
        for (int64_t r = 0; r < R; r++, dst += S * C) {
            int64_t h = p * cd->stride_h - cd->pad_top + r * cd->dil_h;
            if (h < 0 || h >= H) {
                memset(dst, 0, (size_t)(S * C) * sizeof(float));
                continue;
            }
            const float *src = x + (n * H + h) * W * C;
            if (whole_run) {
                memcpy(dst, src + w0 * C, (size_t)(S * C) * sizeof(float));
                continue;
            }
            for (int64_t s = 0; s < S; s++) {
                int64_t wi = w0 + s * cd->dil_w;
                if (wi < 0 || wi >= W)
                    memset(dst + s * C, 0, (size_t)C * sizeof(float));
                else
                    memcpy(dst + s * C, src + wi * C, (size_t)C * sizeof(float));
            }
        }
    }
}

/* dx += the columns col (lines*Q, R*S*C) of output lines [l0, l0+lines), each tap added
 * back to the input cell it was read from; taps that read padding are dropped.  Gathered per
 * input line (n,h) rather than scattered per output cell, so that no two threads ever add
 * into the same dx cell. */
static void col2im_add(float *dx, const float *col, const sn__conv2d_dims *cd, int64_t l0,
                       int64_t lines, int threads) {
    const int64_t H = cd->H, W = cd->W, C = cd->C, R = cd->R, S = cd->S, P = cd->P,
                  Q = cd->Q, cols = R * S * C;
    const int64_t sh = cd->stride_h, pt = cd->pad_top, dh = cd->dil_h;
    (void)threads;
    /* The input lines the chunk can touch, numbered n*H + h across the batch.  The clamps
     * keep g0 and g1 at image boundaries when the first or last output line reads only
     * padding; lines in the range that the chunk does not touch are skipped below. */
    const int64_t n0 = l0 / P, p0 = l0 % P, n1 = (l0 + lines - 1) / P,
                  p1 = (l0 + lines - 1) % P;
    const int64_t g0 = n0 * H + min64(H, max64(0, p0 * sh - pt));
    const int64_t g1 = n1 * H + max64(-1, min64(H - 1, p1 * sh - pt + (R - 1) * dh));
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t g = g0; g <= g1; g++) {
        int64_t n = g / H, h = g % H;
        float *dxrow = dx + g * W * C;
        for (int64_t r = 0; r < R; r++) {
            int64_t ph = h + pt - r * dh;
            if (ph < 0 || ph % sh != 0) continue;
            int64_t line = n * P + ph / sh;
            if (ph / sh >= P || line < l0 || line >= l0 + lines) continue;
            const float *crow = col + (line - l0) * Q * cols + r * S * C;
            for (int64_t q = 0; q < Q; q++) {
                int64_t w0 = q * cd->stride_w - cd->pad_left;
                const float *src = crow + q * cols;
                if (cd->dil_w == 1 && w0 >= 0 && w0 + S <= W) {
                    /* the S taps are S*C contiguous floats on both sides: one long loop */
                    float *dst = dxrow + w0 * C;
                    for (int64_t j = 0; j < S * C; j++) dst[j] += src[j];
                    continue;
                }
                for (int64_t s = 0; s < S; s++) {
                    int64_t wi = w0 + s * cd->dil_w;
                    if (wi < 0 || wi >= W) continue;
                    float *dst = dxrow + wi * C;
                    for (int64_t c = 0; c < C; c++) dst[c] += src[s * C + c];
                }
            }
        }
    }
}

/* Workspace bytes of the three convolution kernels for this geometry (the largest; they
 * share one chunk plan): 0 for pointwise convolutions, else one chunk of patches. */
sn_status sn__conv2d_ws_cpu(sn__dev *d, const sn__conv2d_dims *cd, size_t *bytes) {
    sn_status st = check_dims(d, cd, "conv2d_ws");
    if (st != SN_OK) return st;
    *bytes = 0;
    int64_t cols = cd->R * cd->S * cd->C;
    if (is_pointwise(cd) || cols == 0 || cd->N * cd->P * cd->Q == 0) return SN_OK;
    *bytes = (size_t)(chunk_lines(cd) * cd->Q * cols) * sizeof(float);
    return SN_OK;
}

/* y (N,P,Q,K) = ep(conv(x (N,H,W,C), w (R,S,C,K))); y is overwritten.  The epilogue, when
 * there is one, runs inside each chunk's product (gemm_ep), on the rows each thread has just
 * multiplied. */
static sn_status conv_fwd(sn__dev *d, float *y, const float *x, const float *w,
                          const sn__epilogue *ep, const sn__conv2d_dims *cd, const char *who) {
    sn_status st = check_dims(d, cd, who);
    if (st != SN_OK) return st;
    const int64_t lines_total = cd->N * cd->P, Q = cd->Q, K = cd->K,
                  cols = cd->R * cd->S * cd->C;
    if (lines_total * Q == 0 || K == 0) return SN_OK;
    if (cols == 0) {        /* an empty sum: the output is zero, not left as it was */
        memset(y, 0, (size_t)(lines_total * Q * K) * sizeof(float));
        if (ep) sn__epilogue_apply_cpu(y, ep->residual, lines_total * Q, K, K, 0, ep);
        return SN_OK;
    }
    if (is_pointwise(cd))
        return sn__gemm_ep_cpu(d, y, x, w, ep, lines_total * Q, K, cd->C);
    int64_t lines;
    if ((st = usable_lines(d, cd, who, &lines)) != SN_OK) return st;
    float *col = d->ws;
    for (int64_t l0 = 0; l0 < lines_total; l0 += lines) {
        int64_t nl = min64(lines, lines_total - l0);
        sn__epilogue chunk;     /* the residual of this chunk's rows */
        if (ep) {
            chunk = *ep;
            if (chunk.residual) chunk.residual += l0 * Q * K;
        }
        im2col(col, x, cd, l0, nl, nthreads(d));
        st = sn__gemm_ep_cpu(d, y + l0 * Q * K, col, w, ep ? &chunk : NULL, nl * Q, K, cols);
        if (st != SN_OK) return st;
    }
    return SN_OK;
}

sn_status sn__conv2d_fwd_cpu(sn__dev *d, float *y, const float *x, const float *w,
                             const sn__conv2d_dims *cd) {
    return conv_fwd(d, y, x, w, NULL, cd, "conv2d_fwd");
}

/* The fused forward of inference nets: conv2d_fwd with the epilogue ep (kernels.h). */
sn_status sn__conv2d_fwd_ep_cpu(sn__dev *d, float *y, const float *x, const float *w,
                                const sn__epilogue *ep, const sn__conv2d_dims *cd) {
    return conv_fwd(d, y, x, w, ep, cd, "conv2d_fwd_ep");
}

/* dx (N,H,W,C) += gradient of the input, from dy (N,P,Q,K) and w (R,S,C,K):
 * columns (rows, cols) = dy @ w^T, then each column entry goes back to its input cell. */
sn_status sn__conv2d_bwd_data_cpu(sn__dev *d, float *dx, const float *dy, const float *w,
                                  float beta, const sn__conv2d_dims *cd) {
    sn_status st = check_dims(d, cd, "conv2d_bwd_data");
    if (st != SN_OK) return st;
    if (beta != 0.0f && beta != 1.0f)
        return sn__fail(d->ctx, SN_ERR_INVALID_ARG, "conv2d_bwd_data: beta %g is not 0 or 1",
                        (double)beta);
    const int64_t lines_total = cd->N * cd->P, Q = cd->Q, K = cd->K,
                  cols = cd->R * cd->S * cd->C;
    const size_t nx = (size_t)(cd->N * cd->H * cd->W * cd->C);
    if (lines_total * Q == 0 || K == 0 || cols == 0 || cd->H * cd->W == 0) {
        if (beta == 0.0f && nx) memset(dx, 0, nx * sizeof(float));   /* set, to nothing */
        return SN_OK;
    }
    if (is_pointwise(cd))   /* dx (N*H*W, C) = beta dx + dy (N*P*Q, K) @ w^T */
        return sn__gemm_cpu(d, 0, 1, lines_total * Q, cd->C, K, 1.0f, dy, K, w, K, beta, dx,
                            cd->C);
    int64_t lines;
    if ((st = usable_lines(d, cd, "conv2d_bwd_data", &lines)) != SN_OK) return st;
    if (beta == 0.0f) memset(dx, 0, nx * sizeof(float));   /* set: col2im adds onto zero */
    float *col = d->ws;
    for (int64_t l0 = 0; l0 < lines_total; l0 += lines) {
        int64_t nl = min64(lines, lines_total - l0);
        st = sn__gemm_cpu(d, 0, 1, nl * Q, cols, K, 1.0f, dy + l0 * Q * K, K, w, K, 0.0f, col,
                          cols);
        if (st != SN_OK) return st;
        col2im_add(dx, col, cd, l0, nl, nthreads(d));
    }
    return SN_OK;
}

/* dw (R,S,C,K) += gradient of the weights, patches^T (cols, rows) @ dy (rows, K), summed
 * chunk by chunk with beta 1. */
sn_status sn__conv2d_bwd_filter_cpu(sn__dev *d, float *dw, const float *dy, const float *x,
                                    const sn__conv2d_dims *cd) {
    sn_status st = check_dims(d, cd, "conv2d_bwd_filter");
    if (st != SN_OK) return st;
    const int64_t lines_total = cd->N * cd->P, Q = cd->Q, K = cd->K,
                  cols = cd->R * cd->S * cd->C;
    if (lines_total * Q == 0 || K == 0 || cols == 0) return SN_OK;
    if (is_pointwise(cd))   /* dw (C, K) += x^T (C, N*H*W) @ dy (N*H*W, K) */
        return sn__gemm_cpu(d, 1, 0, cd->C, K, lines_total * Q, 1.0f, x, cd->C, dy, K, 1.0f,
                            dw, K);
    int64_t lines;
    if ((st = usable_lines(d, cd, "conv2d_bwd_filter", &lines)) != SN_OK) return st;
    float *col = d->ws;
    for (int64_t l0 = 0; l0 < lines_total; l0 += lines) {
        int64_t nl = min64(lines, lines_total - l0);
        im2col(col, x, cd, l0, nl, nthreads(d));
        st = sn__gemm_cpu(d, 1, 0, cols, K, nl * Q, 1.0f, col, cols, dy + l0 * Q * K, K, 1.0f,
                          dw, K);
        if (st != SN_OK) return st;
    }
    return SN_OK;
}
