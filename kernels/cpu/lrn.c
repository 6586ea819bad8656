/* lrn.c: local response normalization across channels on the CPU (TF's tf.nn.lrn on NHWC).
 * Shapes: x, y, dx, dy (rows, C), rows = N*H*W.  Per row, with the window of channel c being
 * [c-radius, c+radius] clipped to [0, C):
 *   N_c = bias + alpha * sum_{window(c)} x^2,   y_c = x_c * N_c^-beta.
 * alpha is not divided by the window size (TF's convention, unlike Caffe's). */
#include <math.h>
#include <stdlib.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include "../kernels.h"

/* Below this many elements a parallel region costs more than the loop. */
enum { PAR_MIN = 1 << 14 };

/* Per row: the window sums slide along the channels (add the one entering, subtract the one
 * leaving, in double so nothing drifts), N^-beta is one powf per element, and the backward
 * reuses both through a per-thread scratch row: O(C) per row instead of O(C * radius), and
 * one powf per element instead of four. */

/* nb[c] = N_c for one row xr[0..C). */
static void lrn_norms(float *nb, const float *xr, int64_t C, int64_t rad, float bias,
                      float alpha) {
    double s = 0.0;
    for (int64_t k = 0; k <= rad && k < C; k++) s += (double)xr[k] * xr[k];
    for (int64_t c = 0; c < C; c++) {
        nb[c] = bias + alpha * (float)s;
        if (c + 1 + rad < C) s += (double)xr[c + 1 + rad] * xr[c + 1 + rad];
        if (c - rad >= 0) s -= (double)xr[c - rad] * xr[c - rad];
    }
}

static int thread_id(void) {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

/* y = x * N^-beta. */
sn_status sn__lrn_fwd_cpu(sn__dev *d, float *y, const float *x, int64_t rows, int64_t C,
                          int radius, float bias, float alpha, float beta) {
    const int64_t rad = radius;
    int nt = d->threads > 0 ? d->threads : 1;
    float *scratch = malloc((size_t)nt * (size_t)C * sizeof *scratch);
    if (!scratch) return sn__fail(d->ctx, SN_ERR_NOMEM, "lrn: out of memory");
#pragma omp parallel for num_threads(nt) if (rows * C >= PAR_MIN)
    for (int64_t r = 0; r < rows; r++) {
        float *nb = scratch + (size_t)thread_id() * (size_t)C;
        const float *xr = x + r * C;
        lrn_norms(nb, xr, C, rad, bias, alpha);
        for (int64_t c = 0; c < C; c++) y[r * C + c] = xr[c] * powf(nb[c], -beta);
    }
    free(scratch);
    return SN_OK;
}

/* Accumulates TF's LRNGrad:
 *   dx_j += dy_j * N_j^-beta - 2*alpha*beta * x_j * sum_{i: |i-j| <= radius} t_i,
 *   t_i = dy_i * x_i * N_i^(-beta-1) = dy_i * x_i * N_i^-beta / N_i. */
sn_status sn__lrn_bwd_cpu(sn__dev *d, float *dx, const float *dy, const float *x, int64_t rows,
                          int64_t C, int radius, float bias, float alpha, float beta) {
    const int64_t rad = radius;
    const float k = 2.0f * alpha * beta;
    int nt = d->threads > 0 ? d->threads : 1;
    float *scratch = malloc((size_t)nt * 3 * (size_t)C * sizeof *scratch);
    if (!scratch) return sn__fail(d->ctx, SN_ERR_NOMEM, "lrn: out of memory");
#pragma omp parallel for num_threads(nt) if (rows * C >= PAR_MIN)
    for (int64_t r = 0; r < rows; r++) {
        float *nb = scratch + (size_t)thread_id() * 3 * (size_t)C, *pw = nb + C, *t = pw + C;
        const float *xr = x + r * C, *dyr = dy + r * C;
        lrn_norms(nb, xr, C, rad, bias, alpha);
        for (int64_t c = 0; c < C; c++) {
            pw[c] = powf(nb[c], -beta);
            t[c] = dyr[c] * xr[c] * pw[c] / nb[c];
        }
        double tsum = 0.0;
        for (int64_t i = 0; i <= rad && i < C; i++) tsum += t[i];
        for (int64_t j = 0; j < C; j++) {
            dx[r * C + j] += dyr[j] * pw[j] - k * xr[j] * (float)tsum;
            if (j + 1 + rad < C) tsum += t[j + 1 + rad];
            if (j - rad >= 0) tsum -= t[j - rad];
        }
    }
    free(scratch);
    return SN_OK;
}
