/* loss.cu: softmax, softmax cross-entropy with label smoothing, L2 regularization, sums.
 *
 * Shapes: logits/prob (rows, C); labels int32[rows]; scalars (loss, dloss, y of sum) are one
 * float in device memory.  Forward kernels overwrite, backward kernels accumulate.
 *
 * Rows: up to 1024 classes a warp takes a row (8 rows per 256-thread block); wider rows get a
 * whole block.  The arithmetic follows the CPU reference: float exponentials of x - max,
 * their sum and the dot products in double, the quotient rounded once to float.  Scalar results are two-stage and deterministic: fixed blocks write partial
 * sums (double) to the device scratch, one block adds them in a fixed pattern.
 * xent_fwd checks labels on the device: a label outside [0, C) raises a flag in the scratch,
 * copied back after a stream sync, and the call returns SN_ERR_INVALID_ARG (the bad rows add
 * nothing to the loss; prob is still written). */
#include <math.h>
#include "cuda_internal.h"

#define FLAG_BYTES 256      /* scratch: [flag int][partials...] */

template <int TPR, typename T>
static __device__ __forceinline__ T row_sum(T v, T *sh) {
    if (TPR == 32) return sn__warp_sum(v);
    return sn__block_sum(v, sh);
}
template <int TPR, typename T>
static __device__ __forceinline__ T row_max(T v, T *sh) {
    if (TPR == 32) return sn__warp_max(v);
    return sn__block_max(v, sh);
}

/* ---- softmax ---------------------------------------------------------------------------- */

template <int TPR>
static __global__ void softmax_fwd_kernel(float *y, const float *x, int64_t rows, int64_t C) {
    __shared__ float sh[32];
    __shared__ double shd[32];
    int64_t row = (int64_t)blockIdx.x * (SN__BLOCK / TPR) + threadIdx.x / TPR;
    int lane = threadIdx.x % TPR;
    if (row >= rows) return;   /* TPR == 256: the whole block leaves together */
    const float *xr = x + row * C;
    float *yr = y + row * C;
    float m = -INFINITY;
    for (int64_t c = lane; c < C; c += TPR) m = fmaxf(m, xr[c]);
    m = row_max<TPR>(m, sh);
    double s = 0.0;
    for (int64_t c = lane; c < C; c += TPR) s += (double)expf(xr[c] - m);
    s = row_sum<TPR>(s, shd);
    for (int64_t c = lane; c < C; c += TPR) yr[c] = (float)((double)expf(xr[c] - m) / s);
}

template <int TPR>
static __global__ void softmax_bwd_kernel(float *dx, const float *dy, const float *y,
                                          int64_t rows, int64_t C) {
    __shared__ double sh[32];
    int64_t row = (int64_t)blockIdx.x * (SN__BLOCK / TPR) + threadIdx.x / TPR;
    int lane = threadIdx.x % TPR;
    if (row >= rows) return;
    const float *gr = dy + row * C, *yr = y + row * C;
    float *dr = dx + row * C;
    double dot = 0.0;
    for (int64_t c = lane; c < C; c += TPR) dot += (double)gr[c] * yr[c];
    float d = (float)row_sum<TPR>(dot, sh);
    for (int64_t c = lane; c < C; c += TPR) dr[c] += yr[c] * (gr[c] - d);
}

static unsigned row_blocks(int64_t rows, int tpr) {
    int64_t per = SN__BLOCK / tpr;
    return (unsigned)((rows + per - 1) / per);
}

static sn_status check_rows(sn__dev *d, int64_t rows, int64_t C, const char *what) {
    if (rows < 0 || C < 0)
        return sn__fail(d->ctx, SN_ERR_INVALID_ARG, "%s: rows=%lld C=%lld", what,
                        (long long)rows, (long long)C);
    if ((rows + 7) / 8 > 0x7fffffff)
        return sn__fail(d->ctx, SN_ERR_UNSUPPORTED, "%s: %lld rows", what, (long long)rows);
    return SN_OK;
}

extern "C" sn_status sn__softmax_fwd_cuda(sn__dev *d, float *y, const float *x, int64_t rows,
                                          int64_t C) {
    SN__CU_BEGIN(d, c);
    SN__CU_TRY(check_rows(d, rows, C, "softmax_fwd"));
    if (rows == 0 || C == 0) return SN_OK;
    if (C <= 1024)
        softmax_fwd_kernel<32><<<row_blocks(rows, 32), SN__BLOCK, 0, c->stream>>>(y, x, rows, C);
    else
        softmax_fwd_kernel<SN__BLOCK><<<row_blocks(rows, SN__BLOCK), SN__BLOCK, 0, c->stream>>>(
            y, x, rows, C);
    return sn__cuda_launched(d, "softmax_fwd");
}

extern "C" sn_status sn__softmax_bwd_cuda(sn__dev *d, float *dx, const float *dy,
                                          const float *y, int64_t rows, int64_t C) {
    SN__CU_BEGIN(d, c);
    SN__CU_TRY(check_rows(d, rows, C, "softmax_bwd"));
    if (rows == 0 || C == 0) return SN_OK;
    if (C <= 1024)
        softmax_bwd_kernel<32><<<row_blocks(rows, 32), SN__BLOCK, 0, c->stream>>>(dx, dy, y,
                                                                                  rows, C);
    else
        softmax_bwd_kernel<SN__BLOCK><<<row_blocks(rows, SN__BLOCK), SN__BLOCK, 0, c->stream>>>(
            dx, dy, y, rows, C);
    return sn__cuda_launched(d, "softmax_bwd");
}

/* ---- scalar finishing -------------------------------------------------------------------- */

/* out[0] = mul * (sum of part[0..n)), summed by one block in a fixed pattern. */
static __global__ void finish_kernel(float *out, const double *part, int64_t n, double mul) {
    __shared__ double sh[32];
    double s = 0.0;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) s += part[i];
    s = sn__block_sum(s, sh);
    if (threadIdx.x == 0) out[0] = (float)(s * mul);
}

/* ---- cross-entropy ----------------------------------------------------------------------- */

/* Per row: prob = softmax(logits); loss_row = -sum_c target_c * (x_c - lse) with
 * target = onehot*(1-ls) + ls/C; the targets sum to 1, so loss_row =
 * lse - (1-ls)*x_label - (ls/C)*sum_c x_c, in double.
 * Each block writes the sum of its rows' losses to part[blockIdx.x]. */
template <int TPR>
static __global__ void xent_fwd_kernel(double *part, int *flag, float *prob,
                                       const float *logits, const int32_t *labels, float ls,
                                       int64_t rows, int64_t C) {
    __shared__ float shf[32];
    __shared__ double shd[32];
    __shared__ double rowloss[SN__BLOCK / TPR];
    int64_t row = (int64_t)blockIdx.x * (SN__BLOCK / TPR) + threadIdx.x / TPR;
    int lane = threadIdx.x % TPR, slot = threadIdx.x / TPR;
    if (row < rows) {   /* uniform per row group (and per block when TPR == 256) */
        const float *xr = logits + row * C;
        float *pr = prob + row * C;
        float m = -INFINITY;
        double sx = 0.0;
        for (int64_t c = lane; c < C; c += TPR) {
            m = fmaxf(m, xr[c]);
            sx += xr[c];
        }
        m = row_max<TPR>(m, shf);
        sx = row_sum<TPR>(sx, shd);
        double s = 0.0;
        for (int64_t c = lane; c < C; c += TPR) s += (double)expf(xr[c] - m);
        s = row_sum<TPR>(s, shd);
        for (int64_t c = lane; c < C; c += TPR) pr[c] = (float)((double)expf(xr[c] - m) / s);
        if (lane == 0) {
            int32_t l = labels[row];
            double lse = (double)m + log(s);
            double loss = 0.0;
            if (l < 0 || (int64_t)l >= C) *flag = 1;
            else loss = lse - (1.0 - ls) * xr[l] - (double)ls / (double)C * sx;
            rowloss[slot] = loss;
        }
    } else if (lane == 0) {
        rowloss[slot] = 0.0;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        double t = 0.0;
        for (int i = 0; i < SN__BLOCK / TPR; i++) t += rowloss[i];
        part[blockIdx.x] = t;
    }
}

extern "C" sn_status sn__xent_fwd_cuda(sn__dev *d, float *loss, float *prob,
                                       const float *logits, const int32_t *labels, float ls,
                                       int64_t rows, int64_t C) {
    SN__CU_BEGIN(d, c);
    SN__CU_TRY(check_rows(d, rows, C, "xent_fwd"));
    if (C == 0 && rows > 0)
        return sn__fail(d->ctx, SN_ERR_INVALID_ARG, "xent_fwd: no classes");
    if (rows == 0) return sn__zero_cuda(d, loss, sizeof(float));
    int tpr = C <= 1024 ? 32 : SN__BLOCK;
    unsigned blocks = row_blocks(rows, tpr);
    if (FLAG_BYTES + (size_t)blocks * sizeof(double) > c->scratch_bytes)
        return sn__fail(d->ctx, SN_ERR_UNSUPPORTED, "xent_fwd: %lld rows", (long long)rows);
    int *flag = (int *)c->scratch;
    double *part = (double *)((char *)c->scratch + FLAG_BYTES);
    SN__CU_TRY(sn__cuda_rt(d, cudaMemsetAsync(flag, 0, sizeof(int), c->stream),
                           "cudaMemsetAsync"));
    if (tpr == 32)
        xent_fwd_kernel<32><<<blocks, SN__BLOCK, 0, c->stream>>>(part, flag, prob, logits,
                                                                 labels, ls, rows, C);
    else
        xent_fwd_kernel<SN__BLOCK><<<blocks, SN__BLOCK, 0, c->stream>>>(part, flag, prob,
                                                                        logits, labels, ls,
                                                                        rows, C);
    SN__CU_TRY(sn__cuda_launched(d, "xent_fwd"));
    finish_kernel<<<1, SN__BLOCK, 0, c->stream>>>(loss, part, blocks, 1.0 / (double)rows);
    SN__CU_TRY(sn__cuda_launched(d, "xent_fwd"));
    SN__CU_TRY(sn__cuda_rt(d, cudaMemcpyAsync(c->flag_host, flag, sizeof(int),
                                              cudaMemcpyDeviceToHost, c->stream),
                           "cudaMemcpyAsync"));
    SN__CU_TRY(sn__cuda_rt(d, cudaStreamSynchronize(c->stream), "cudaStreamSynchronize"));
    if (*c->flag_host)
        return sn__fail(d->ctx, SN_ERR_INVALID_ARG, "xent_fwd: a label is outside [0, %lld)",
                        (long long)C);
    return SN_OK;
}

/* dlogits += dloss[0] * (prob - target) / rows */
static __global__ void xent_bwd_kernel(float *dl, const float *dloss, const float *prob,
                                       const int32_t *labels, float ls, int64_t rows,
                                       int64_t C) {
    float g = dloss[0] / (float)rows;
    float off = ls / (float)C, on = (1.0f - ls) + off;
    int64_t total = rows * C;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (int64_t)gridDim.x * blockDim.x) {
        int64_t r = i / C, c = i - r * C;
        float t = labels[r] == c ? on : off;
        dl[i] += g * (prob[i] - t);
    }
}

extern "C" sn_status sn__xent_bwd_cuda(sn__dev *d, float *dlogits, const float *dloss,
                                       const float *prob, const int32_t *labels, float ls,
                                       int64_t rows, int64_t C) {
    SN__CU_BEGIN(d, c);
    SN__CU_TRY(check_rows(d, rows, C, "xent_bwd"));
    if (rows == 0 || C == 0) return SN_OK;
    xent_bwd_kernel<<<sn__grid(c, rows * C, SN__BLOCK), SN__BLOCK, 0, c->stream>>>(
        dlogits, dloss, prob, labels, ls, rows, C);
    return sn__cuda_launched(d, "xent_bwd");
}

/* ---- L2 and sum --------------------------------------------------------------------------- */

template <bool SQUARE>
static __global__ void sum_partial_kernel(double *part, const float *x, int64_t n) {
    __shared__ double sh[32];
    double s = 0.0;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        double v = x[i];
        s += SQUARE ? v * v : v;
    }
    s = sn__block_sum(s, sh);
    if (threadIdx.x == 0) part[blockIdx.x] = s;
}

template <bool SQUARE>
static sn_status reduce(sn__dev *d, struct sn__cuda *c, float *out, const float *x, int64_t n,
                        double mul, const char *what) {
    if (n < 0) return sn__fail(d->ctx, SN_ERR_INVALID_ARG, "%s: n = %lld", what, (long long)n);
    if (n == 0) return sn__zero_cuda(d, out, sizeof(float));
    unsigned blocks = sn__grid(c, n, SN__BLOCK);
    double *part = (double *)((char *)c->scratch + FLAG_BYTES);
    sum_partial_kernel<SQUARE><<<blocks, SN__BLOCK, 0, c->stream>>>(part, x, n);
    SN__CU_TRY(sn__cuda_launched(d, what));
    finish_kernel<<<1, SN__BLOCK, 0, c->stream>>>(out, part, blocks, mul);
    return sn__cuda_launched(d, what);
}

extern "C" sn_status sn__l2_fwd_cuda(sn__dev *d, float *loss, const float *w, float scale,
                                     int64_t n) {
    SN__CU_BEGIN(d, c);
    return reduce<true>(d, c, loss, w, n, (double)scale * 0.5, "l2_fwd");
}

/* dw += dloss[0] * scale * w */
static __global__ void l2_bwd_kernel(float *dw, const float *dloss, const float *w, float scale,
                                     int64_t n) {
    float g = dloss[0] * scale;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        dw[i] += g * w[i];
}

extern "C" sn_status sn__l2_bwd_cuda(sn__dev *d, float *dw, const float *dloss, const float *w,
                                     float scale, int64_t n) {
    SN__CU_BEGIN(d, c);
    if (n < 0) return sn__fail(d->ctx, SN_ERR_INVALID_ARG, "l2_bwd: n = %lld", (long long)n);
    if (n == 0) return SN_OK;
    l2_bwd_kernel<<<sn__grid(c, n, SN__BLOCK), SN__BLOCK, 0, c->stream>>>(dw, dloss, w, scale,
                                                                          n);
    return sn__cuda_launched(d, "l2_bwd");
}

extern "C" sn_status sn__sum_fwd_cuda(sn__dev *d, float *y, const float *x, int64_t n) {
    SN__CU_BEGIN(d, c);
    return reduce<false>(d, c, y, x, n, 1.0, "sum_fwd");
}

/* dx[i] += dy[0] */
static __global__ void sum_bwd_kernel(float *dx, const float *dy, int64_t n) {
    float g = dy[0];
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        dx[i] += g;
}

extern "C" sn_status sn__sum_bwd_cuda(sn__dev *d, float *dx, const float *dy, int64_t n) {
    SN__CU_BEGIN(d, c);
    if (n < 0) return sn__fail(d->ctx, SN_ERR_INVALID_ARG, "sum_bwd: n = %lld", (long long)n);
    if (n == 0) return SN_OK;
    sum_bwd_kernel<<<sn__grid(c, n, SN__BLOCK), SN__BLOCK, 0, c->stream>>>(dx, dy, n);
    return sn__cuda_launched(d, "sum_bwd");
}
