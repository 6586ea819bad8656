/* lrn.cu: local response normalization across channels (tf.nn.lrn on NHWC).
 *
 * Shapes: x, y (rows, C) with rows = N*H*W.  For channel c of a row:
 *   n[c] = bias + alpha * sum_{c'=max(0,c-r)}^{min(C-1,c+r)} x[c']^2,   y[c] = x[c] * n[c]^-beta.
 * Backward (dx accumulates; TF's LRNGrad):
 *   dx[i] += dy[i] * n[i]^-beta - 2*alpha*beta * x[i] * sum_{|j-i|<=r} dy[j] * x[j] * n[j]^(-beta-1)
 * with the window sum in double, as the CPU reference computes it.
 * One thread per element, channel fastest; the window sums are recomputed per element (the
 * row stays in L1), which costs (2r+1)^2 loads in the backward and keeps it atomic-free. */
#include <math.h>
#include "cuda_internal.h"

static __device__ __forceinline__ float window_norm(const float *row, int64_t C, int64_t c,
                                                    int radius, float bias, float alpha) {
    int64_t lo = c - radius < 0 ? 0 : c - radius;
    int64_t hi = c + radius > C - 1 ? C - 1 : c + radius;
    float s = 0.0f;
    for (int64_t j = lo; j <= hi; j++) s += row[j] * row[j];
    return bias + alpha * s;
}

static __global__ void lrn_fwd_kernel(float *y, const float *x, int64_t rows, int64_t C,
                                      int radius, float bias, float alpha, float beta) {
    int64_t total = rows * C;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (int64_t)gridDim.x * blockDim.x) {
        int64_t c = i % C;
        const float *row = x + (i - c);
        float n = window_norm(row, C, c, radius, bias, alpha);
        y[i] = row[c] * powf(n, -beta);
    }
}

static __global__ void lrn_bwd_kernel(float *dx, const float *dy, const float *x, int64_t rows,
                                      int64_t C, int radius, float bias, float alpha,
                                      float beta) {
    int64_t total = rows * C;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (int64_t)gridDim.x * blockDim.x) {
        int64_t c = i % C;
        const float *row = x + (i - c);
        const float *grow = dy + (i - c);
        float ni = window_norm(row, C, c, radius, bias, alpha);
        int64_t lo = c - radius < 0 ? 0 : c - radius;
        int64_t hi = c + radius > C - 1 ? C - 1 : c + radius;
        double cross = 0.0;
        for (int64_t j = lo; j <= hi; j++) {
            float nj = window_norm(row, C, j, radius, bias, alpha);
            cross += grow[j] * row[j] * powf(nj, -beta - 1.0f);
        }
        float k = 2.0f * alpha * beta;
        dx[i] += grow[c] * powf(ni, -beta) - k * row[c] * (float)cross;
    }
}

static sn_status check(sn__dev *d, int64_t rows, int64_t C, int radius, const char *what) {
    if (rows < 0 || C < 0 || radius < 0)
        return sn__fail(d->ctx, SN_ERR_INVALID_ARG, "%s: rows=%lld C=%lld radius=%d", what,
                        (long long)rows, (long long)C, radius);
    return SN_OK;
}

extern "C" sn_status sn__lrn_fwd_cuda(sn__dev *d, float *y, const float *x, int64_t rows,
                                      int64_t C, int radius, float bias, float alpha,
                                      float beta) {
    SN__CU_BEGIN(d, c);
    SN__CU_TRY(check(d, rows, C, radius, "lrn_fwd"));
    if (rows * C == 0) return SN_OK;
    lrn_fwd_kernel<<<sn__grid(c, rows * C, SN__BLOCK), SN__BLOCK, 0, c->stream>>>(
        y, x, rows, C, radius, bias, alpha, beta);
    return sn__cuda_launched(d, "lrn_fwd");
}

extern "C" sn_status sn__lrn_bwd_cuda(sn__dev *d, float *dx, const float *dy, const float *x,
                                      int64_t rows, int64_t C, int radius, float bias,
                                      float alpha, float beta) {
    SN__CU_BEGIN(d, c);
    SN__CU_TRY(check(d, rows, C, radius, "lrn_bwd"));
    if (rows * C == 0) return SN_OK;
    lrn_bwd_kernel<<<sn__grid(c, rows * C, SN__BLOCK), SN__BLOCK, 0, c->stream>>>(
        dx, dy, x, rows, C, radius, bias, alpha, beta);
    return sn__cuda_launched(d, "lrn_bwd");
}
