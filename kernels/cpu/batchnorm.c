/* batchnorm.c: batch normalization on the CPU.
 * Shapes: x, y, dx, dy (rows, C) with rows = N*H*W (NHWC flattened); gamma, beta, mean, var,
 * dgamma, dbeta, moving_* (C).  gamma NULL means 1, beta NULL means 0.
 * xhat = (x - mean) * invstd, invstd = 1 / sqrt(var + eps). */
#include <math.h>
#include "../kernels.h"

/* Work is split into channel blocks of CB (one cache line of floats) so that each task owns
 * its channels' statistics and needs no scratch.  The normalizing pass (bn_infer_fwd, which
 * bn_train_fwd ends with) needs no statistics, so it also splits rows into RB-row tiles and
 * spreads a layer with few channels over every thread. */
enum { CB = 16, RB = 256 };
enum { PAR_MIN = 1 << 14 };

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* Moments of channels [c0, c0+nc) over all rows, two-pass in double: the one-pass
 * E[x^2] - E[x]^2 loses the variance when |mean| >> std. */
static void moments(double *mean, double *var, const float *x, int64_t rows, int64_t C,
                    int64_t c0, int64_t nc) {
    double s[CB] = {0}, ss[CB] = {0};
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < nc; c++) s[c] += x[r * C + c0 + c];
    for (int64_t c = 0; c < nc; c++) mean[c] = rows ? s[c] / (double)rows : 0.0;
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t c = 0; c < nc; c++) {
            double t = x[r * C + c0 + c] - mean[c];
            ss[c] += t * t;
        }
    }
    for (int64_t c = 0; c < nc; c++) var[c] = rows ? ss[c] / (double)rows : 0.0;
}

/* Training forward: writes the batch mean and biased variance to mean/var, then
 * y = gamma * (x - mean) / sqrt(var + eps) + beta, using the stored float moments so that
 * bn_train_bwd, which is given them, differentiates exactly this function. */
sn_status sn__bn_train_fwd_cpu(sn__dev *d, float *y, float *mean, float *var, const float *x,
                               const float *gamma, const float *beta, float eps,
                               int64_t rows, int64_t C) {
    const int64_t ncb = (C + CB - 1) / CB;
#pragma omp parallel for num_threads(d->threads) if (rows * C >= PAR_MIN)
    for (int64_t b = 0; b < ncb; b++) {
        int64_t c0 = b * CB, nc = min64(CB, C - c0);
        double m[CB], v[CB];
        moments(m, v, x, rows, C, c0, nc);
        for (int64_t c = 0; c < nc; c++) {
            mean[c0 + c] = (float)m[c];
            var[c0 + c] = (float)v[c];
        }
    }
    /* With the moments fixed, the normalization is the inference one. */
    return sn__bn_infer_fwd_cpu(d, y, x, gamma, beta, mean, var, eps, rows, C);
}

/* Training backward, through the batch moments.  Per channel, with dxhat = dy * gamma:
 *   dx += invstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))
 *   dgamma += sum(dy * xhat),  dbeta += sum(dy)   (each, dx too, skipped when NULL). */
sn_status sn__bn_train_bwd_cpu(sn__dev *d, float *dx, float *dgamma, float *dbeta,
                               const float *dy, const float *x, const float *gamma,
                               const float *mean, const float *var, float eps, int64_t rows,
                               int64_t C) {
    const int64_t ncb = (C + CB - 1) / CB;
#pragma omp parallel for num_threads(d->threads) if (rows * C >= PAR_MIN)
    for (int64_t b = 0; b < ncb; b++) {
        int64_t c0 = b * CB, nc = min64(CB, C - c0);
        double sdy[CB] = {0}, sdyx[CB] = {0}, mu[CB], is[CB];
        for (int64_t c = 0; c < nc; c++) {
            mu[c] = mean[c0 + c];
            is[c] = 1.0 / sqrt((double)var[c0 + c] + eps);
        }
        for (int64_t r = 0; r < rows; r++) {
            for (int64_t c = 0; c < nc; c++) {
                double g = dy[r * C + c0 + c];
                sdy[c] += g;
                sdyx[c] += g * (x[r * C + c0 + c] - mu[c]) * is[c];
            }
        }
        float k[CB], mdy[CB], mdyx[CB], isf[CB], muf[CB];
        for (int64_t c = 0; c < nc; c++) {
            k[c] = (float)((gamma ? gamma[c0 + c] : 1.0) * is[c]);
            mdy[c] = rows ? (float)(sdy[c] / (double)rows) : 0.0f;
            mdyx[c] = rows ? (float)(sdyx[c] / (double)rows) : 0.0f;
            isf[c] = (float)is[c];
            muf[c] = (float)mu[c];
            if (dgamma) dgamma[c0 + c] += (float)sdyx[c];
            if (dbeta) dbeta[c0 + c] += (float)sdy[c];
        }
        for (int64_t r = 0; dx && r < rows; r++) {
            for (int64_t c = 0; c < nc; c++) {
                float xhat = (x[r * C + c0 + c] - muf[c]) * isf[c];
                dx[r * C + c0 + c] += k[c] * (dy[r * C + c0 + c] - mdy[c] - xhat * mdyx[c]);
            }
        }
    }
    return SN_OK;
}

/* Inference forward: y = gamma * (x - mean) / sqrt(var + eps) + beta with the given
 * (moving) statistics. */
sn_status sn__bn_infer_fwd_cpu(sn__dev *d, float *y, const float *x, const float *gamma,
                               const float *beta, const float *mean, const float *var,
                               float eps, int64_t rows, int64_t C) {
    const int64_t ncb = (C + CB - 1) / CB, nrb = (rows + RB - 1) / RB;
#pragma omp parallel for num_threads(d->threads) if (rows * C >= PAR_MIN)
    for (int64_t t = 0; t < nrb * ncb; t++) {
        int64_t r0 = t / ncb * RB, r1 = min64(rows, r0 + RB);
        int64_t c0 = t % ncb * CB, nc = min64(CB, C - c0);
        float scale[CB], shift[CB];
        for (int64_t c = 0; c < nc; c++) {
            scale[c] = (gamma ? gamma[c0 + c] : 1.0f) / sqrtf(var[c0 + c] + eps);
            shift[c] = beta ? beta[c0 + c] : 0.0f;
        }
        /* Centre first, as TF does: x*scale - mean*scale cancels badly when |mean| >> std. */
        for (int64_t r = r0; r < r1; r++)
            for (int64_t c = 0; c < nc; c++)
                y[r * C + c0 + c] = (x[r * C + c0 + c] - mean[c0 + c]) * scale[c] + shift[c];
    }
    return SN_OK;
}

/* Inference backward (statistics are constants):
 *   dx += dy * gamma * invstd,  dgamma += sum(dy * xhat),  dbeta += sum(dy). */
sn_status sn__bn_infer_bwd_cpu(sn__dev *d, float *dx, float *dgamma, float *dbeta,
                               const float *dy, const float *x, const float *gamma,
                               const float *mean, const float *var, float eps, int64_t rows,
                               int64_t C) {
    const int64_t ncb = (C + CB - 1) / CB;
#pragma omp parallel for num_threads(d->threads) if (rows * C >= PAR_MIN)
    for (int64_t b = 0; b < ncb; b++) {
        int64_t c0 = b * CB, nc = min64(CB, C - c0);
        double sdy[CB] = {0}, sdyx[CB] = {0}, is[CB];
        float k[CB];
        for (int64_t c = 0; c < nc; c++) {
            is[c] = 1.0 / sqrt((double)var[c0 + c] + eps);
            k[c] = (float)((gamma ? gamma[c0 + c] : 1.0) * is[c]);
        }
        for (int64_t r = 0; r < rows; r++) {
            for (int64_t c = 0; c < nc; c++) {
                float g = dy[r * C + c0 + c];
                if (dx) dx[r * C + c0 + c] += g * k[c];
                sdy[c] += g;
                sdyx[c] += g * ((double)x[r * C + c0 + c] - mean[c0 + c]) * is[c];
            }
        }
        for (int64_t c = 0; c < nc; c++) {
            if (dgamma) dgamma[c0 + c] += (float)sdyx[c];
            if (dbeta) dbeta[c0 + c] += (float)sdy[c];
        }
    }
    return SN_OK;
}

/* moving_mean += (1-decay) * (mean - moving_mean);
 * moving_var += (1-decay) * (var*var_factor - moving_var).  Shapes: all (C). */
sn_status sn__bn_update_moving_cpu(sn__dev *d, float *moving_mean, float *moving_var,
                                   const float *mean, const float *var, float decay,
                                   float var_factor, int64_t C) {
    (void)d;
    for (int64_t c = 0; c < C; c++) {
        moving_mean[c] += (1.0f - decay) * (mean[c] - moving_mean[c]);
        moving_var[c] += (1.0f - decay) * (var[c] * var_factor - moving_var[c]);
    }
    return SN_OK;
}
