/* lrn.c: local response normalization across channels on the CPU (TF's tf.nn.lrn on NHWC).
 * Shapes: x, y, dx, dy (rows, C), rows = N*H*W.  Per row, with the window of channel c being
 * [c-radius, c+radius] clipped to [0, C):
 *   N_c = bias + alpha * sum_{window(c)} x^2,   y_c = x_c * N_c^-beta.
 * alpha is not divided by the window size (TF's convention, unlike Caffe's). */
#include <math.h>
#include "../kernels.h"

/* Below this many elements a parallel region costs more than the loop. */
enum { PAR_MIN = 1 << 14 };

/* N_i of one row xr[0..C). */
static float lrn_norm(const float *xr, int64_t C, int64_t i, int64_t radius, float bias,
                      float alpha) {
    int64_t lo = i - radius < 0 ? 0 : i - radius;
    int64_t hi = i + radius >= C ? C - 1 : i + radius;
    float s = 0.0f;
    for (int64_t k = lo; k <= hi; k++) s += xr[k] * xr[k];
    return bias + alpha * s;
}

/* y = x * N^-beta. */
sn_status sn__lrn_fwd_cpu(sn__dev *d, float *y, const float *x, int64_t rows, int64_t C,
                          int radius, float bias, float alpha, float beta) {
    const int64_t work = rows * C * (2 * (int64_t)radius + 1);
#pragma omp parallel for num_threads(d->threads) if (work >= PAR_MIN)
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * C;
        for (int64_t c = 0; c < C; c++)
            y[r * C + c] = xr[c] * powf(lrn_norm(xr, C, c, radius, bias, alpha), -beta);
    }
    return SN_OK;
}

/* t_i = dy_i * x_i * N_i^(-beta-1): channel i's share of its neighbours' gradients. */
static float lrn_term(const float *dyr, const float *xr, int64_t C, int64_t i, int64_t radius,
                      float bias, float alpha, float beta) {
    return dyr[i] * xr[i] * powf(lrn_norm(xr, C, i, radius, bias, alpha), -beta - 1.0f);
}

/* Accumulates TF's LRNGrad:
 *   dx_j += dy_j * N_j^-beta - 2*alpha*beta * x_j * sum_{i: |i-j| <= radius} t_i.
 * The window sum of t slides along the row in double (add the channel entering, subtract the
 * one leaving), so the cost is O(C * radius) with no scratch; the subtracted value is
 * recomputed bit-identically, so the running sum does not drift. */
sn_status sn__lrn_bwd_cpu(sn__dev *d, float *dx, const float *dy, const float *x, int64_t rows,
                          int64_t C, int radius, float bias, float alpha, float beta) {
    const int64_t rad = radius;
    const float k = 2.0f * alpha * beta;
    const int64_t work = rows * C * (2 * rad + 1);
#pragma omp parallel for num_threads(d->threads) if (work >= PAR_MIN)
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * C, *dyr = dy + r * C;
        double tsum = 0.0;
        for (int64_t i = 0; i <= rad && i < C; i++)
            tsum += lrn_term(dyr, xr, C, i, rad, bias, alpha, beta);
        for (int64_t j = 0; j < C; j++) {
            float nj = lrn_norm(xr, C, j, rad, bias, alpha);
            dx[r * C + j] += dyr[j] * powf(nj, -beta) - k * xr[j] * (float)tsum;
            if (j + 1 + rad < C) tsum += lrn_term(dyr, xr, C, j + 1 + rad, rad, bias, alpha, beta);
            if (j - rad >= 0) tsum -= lrn_term(dyr, xr, C, j - rad, rad, bias, alpha, beta);
        }
    }
    return SN_OK;
}
