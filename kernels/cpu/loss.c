/* loss.c: softmax, softmax cross-entropy and the L2 regularizer on the CPU.
 * Shapes: x, y, logits, prob, dlogits (rows, C) with rows = N (one row per example, C
 * classes); labels (rows) int32; w, dw (n) any layout; loss and dloss are one float. */
#include <math.h>
#include "../kernels.h"

/* Below this many elements a parallel region costs more than the loop. */
enum { PAR_MIN = 1 << 14 };

/* y[0..C) = softmax of x[0..C): subtracting the row max keeps every exp in (0, 1], so
 * large logits cannot overflow.  Returns log(sum(exp(x))) computed that way, for the
 * log-softmax: log_softmax(x)_c = x_c - that. */
static double softmax_row(float *y, const float *x, int64_t C) {
    float m = x[0];
    for (int64_t c = 1; c < C; c++) m = x[c] > m ? x[c] : m;
    double s = 0.0;
    for (int64_t c = 0; c < C; c++) {
        y[c] = expf(x[c] - m);
        s += y[c];
    }
    for (int64_t c = 0; c < C; c++) y[c] = (float)(y[c] / s);
    return (double)m + log(s);
}

/* y = softmax(x) per row. */
sn_status sn__softmax_fwd_cpu(sn__dev *d, float *y, const float *x, int64_t rows, int64_t C) {
    if (C <= 0) return SN_OK;
#pragma omp parallel for num_threads(d->threads) if (rows * C >= PAR_MIN)
    for (int64_t r = 0; r < rows; r++) softmax_row(y + r * C, x + r * C, C);
    return SN_OK;
}

/* Accumulates: dx += y * (dy - sum_c dy*y) per row. */
sn_status sn__softmax_bwd_cpu(sn__dev *d, float *dx, const float *dy, const float *y,
                              int64_t rows, int64_t C) {
#pragma omp parallel for num_threads(d->threads) if (rows * C >= PAR_MIN)
    for (int64_t r = 0; r < rows; r++) {
        const float *yr = y + r * C, *dyr = dy + r * C;
        double dot = 0.0;
        for (int64_t c = 0; c < C; c++) dot += (double)dyr[c] * yr[c];
        for (int64_t c = 0; c < C; c++) dx[r * C + c] += yr[c] * (dyr[c] - (float)dot);
    }
    return SN_OK;
}

/* Softmax cross-entropy with label smoothing ls (tf.losses.softmax_cross_entropy):
 * target = onehot(label)*(1-ls) + ls/C, loss[0] = mean over rows of -sum target*log_softmax,
 * prob = softmax(logits) for the backward.  Since the targets sum to 1, a row's loss is
 * lse - (1-ls)*logit[label] - (ls/C)*sum(logits), with lse the log-sum-exp, all in double.
 * SN_ERR_INVALID_ARG, before anything is written, if a label is outside [0, C). */
sn_status sn__xent_fwd_cpu(sn__dev *d, float *loss, float *prob, const float *logits,
                           const int32_t *labels, float ls, int64_t rows, int64_t C) {
    for (int64_t r = 0; r < rows; r++)
        if (labels[r] < 0 || labels[r] >= C)
            return sn__fail(d->ctx, SN_ERR_INVALID_ARG,
                            "xent: label %d at row %lld outside [0, %lld)", (int)labels[r],
                            (long long)r, (long long)C);
    double total = 0.0;
#pragma omp parallel for num_threads(d->threads) reduction(+ : total) if (rows * C >= PAR_MIN)
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = logits + r * C;
        double lse = softmax_row(prob + r * C, xr, C), sx = 0.0;
        for (int64_t c = 0; c < C; c++) sx += xr[c];
        total += lse - (1.0 - ls) * xr[labels[r]] - (double)ls / (double)C * sx;
    }
    loss[0] = rows ? (float)(total / (double)rows) : 0.0f;
    return SN_OK;
}

/* Accumulates: dlogits += dloss[0] * (prob - target) / rows. */
sn_status sn__xent_bwd_cpu(sn__dev *d, float *dlogits, const float *dloss, const float *prob,
                           const int32_t *labels, float ls, int64_t rows, int64_t C) {
    if (rows <= 0) return SN_OK;
    const float g = dloss[0] / (float)rows, off = ls / (float)C, on = 1.0f - ls + off;
#pragma omp parallel for num_threads(d->threads) if (rows * C >= PAR_MIN)
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t c = 0; c < C; c++) {
            float target = c == labels[r] ? on : off;
            dlogits[r * C + c] += g * (prob[r * C + c] - target);
        }
    }
    return SN_OK;
}

/* loss[0] = scale * sum(w^2) / 2 (slim's l2_regularizer; scale is the weight decay). */
sn_status sn__l2_fwd_cpu(sn__dev *d, float *loss, const float *w, float scale, int64_t n) {
    double s = 0.0;
#pragma omp parallel for num_threads(d->threads) reduction(+ : s) if (n >= PAR_MIN)
    for (int64_t i = 0; i < n; i++) s += (double)w[i] * w[i];
    loss[0] = (float)(scale * s / 2.0);
    return SN_OK;
}

/* Accumulates: dw += dloss[0] * scale * w. */
sn_status sn__l2_bwd_cpu(sn__dev *d, float *dw, const float *dloss, const float *w, float scale,
                         int64_t n) {
    const float g = dloss[0] * scale;
#pragma omp parallel for num_threads(d->threads) if (n >= PAR_MIN)
    for (int64_t i = 0; i < n; i++) dw[i] += g * w[i];
    return SN_OK;
}
