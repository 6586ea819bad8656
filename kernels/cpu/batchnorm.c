/* batchnorm.c: batch normalization on the CPU.
 * Shapes: x, y, dx, dy (rows, C) with rows = N*H*W (NHWC flattened); gamma, beta, mean, var,
 * dgamma, dbeta, moving_* (C).  gamma NULL means 1, beta NULL means 0.
 * xhat = (x - mean) * invstd, invstd = 1 / sqrt(var + eps). */
#include <math.h>
#include <stdbool.h>
#include <string.h>
#include "cpu_internal.h"

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

/* Writes the batch mean and biased variance of every channel (as floats). */
static void batch_moments(sn__dev *d, float *mean, float *var, const float *x, int64_t rows,
                          int64_t C) {
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
}

/* y = act((x - mean) * scale + shift [+ residual]) with scale = gamma / sqrtf(var + eps):
 * bn_infer_fwd, then add_fwd's and relu_fwd's/relu6_fwd's operations on the same float. */
static void normalize(sn__dev *d, float *y, const float *x, const float *gamma,
                      const float *beta, const float *mean, const float *var, float eps,
                      const float *residual, int act, int64_t rows, int64_t C) {
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
        for (int64_t r = r0; r < r1; r++) {
            for (int64_t c = 0; c < nc; c++) {
                int64_t e = r * C + c0 + c;
                float v = (x[e] - mean[c0 + c]) * scale[c] + shift[c];
                if (residual) v = v + residual[e];
                y[e] = sn__act_fwd_cpu(v, act);
            }
        }
    }
}

/* Training forward: writes the batch mean and biased variance to mean/var, then
 * y = gamma * (x - mean) / sqrt(var + eps) + beta, using the stored float moments so that
 * bn_train_bwd, which is given them, differentiates exactly this function. */
sn_status sn__bn_train_fwd_cpu(sn__dev *d, float *y, float *mean, float *var, const float *x,
                               const float *gamma, const float *beta, float eps,
                               int64_t rows, int64_t C) {
    batch_moments(d, mean, var, x, rows, C);
    /* With the moments fixed, the normalization is the inference one. */
    normalize(d, y, x, gamma, beta, mean, var, eps, NULL, SN__ACT_NONE, rows, C);
    return SN_OK;
}

/* bn_train_fwd, then the residual add and the activation on each value while it is in a
 * register: one pass over memory where the unfused chain makes three. */
sn_status sn__bn_train_fwd_ep_cpu(sn__dev *d, float *y, float *mean, float *var,
                                  const float *x, const float *gamma, const float *beta,
                                  float eps, const float *residual, int act, int64_t rows,
                                  int64_t C) {
    if (act != SN__ACT_NONE && act != SN__ACT_RELU && act != SN__ACT_RELU6)
        return sn__fail(d->ctx, SN_ERR_INVALID_ARG, "bn_train_fwd_ep: act %d", act);
    batch_moments(d, mean, var, x, rows, C);
    normalize(d, y, x, gamma, beta, mean, var, eps, residual, act, rows, C);
    return SN_OK;
}

/* Training backward, through the batch moments.  Per channel, with dxhat = dy * gamma:
 *   dx += invstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))
 *   dgamma += sum(dy * xhat),  dbeta += sum(dy)   (each, dx too, skipped when NULL).
 * With chain (bn_train_bwd_ep), dy is first the chain's: m = sn__chain_grad_cpu(),
 * dres += m (add_bwd with alpha 1), and the batch norm's gradient is 0 + m (add_bwd into a
 * zeroed buffer). */
static inline __attribute__((always_inline)) void
train_bwd_impl(sn__dev *d, float *restrict dx, float *dgamma, float *dbeta,
               float *restrict dres, const float *restrict dy, const float *restrict y,
               const float *restrict x, const float *gamma, const float *mean,
               const float *var, float eps, bool chain, int act, unsigned set, int64_t rows,
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
        for (int64_t r = 0; !chain && r < rows; r++) {
            for (int64_t c = 0; c < nc; c++) {
                int64_t e = r * C + c0 + c;
                double g = dy[e];
                sdy[c] += g;
                sdyx[c] += g * (x[e] - mu[c]) * is[c];
            }
        }
        /* With a chain, the row's gradient below it first (one vectorizable loop), then the
         * same sums: computing it inside the sums' loop made that loop 4x slower. */
        for (int64_t r = 0; chain && r < rows; r++) {
            const int64_t e0 = r * C + c0;
            float gr[CB];
            for (int64_t c = 0; c < nc; c++) gr[c] = sn__chain_grad_cpu(dy, y, act, e0 + c);
            if (dres && (set & 2u))   /* set: what adding into zeros gives, -0 included */
                for (int64_t c = 0; c < nc; c++) dres[e0 + c] = sn__plus0(gr[c]);
            else if (dres)
                for (int64_t c = 0; c < nc; c++) dres[e0 + c] += gr[c];
            for (int64_t c = 0; c < nc; c++) {
                double g = sn__plus0(gr[c]);
                sdy[c] += g;
                sdyx[c] += g * (x[e0 + c] - mu[c]) * is[c];
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
        for (int64_t r = 0; dx && !chain && r < rows; r++) {
            for (int64_t c = 0; c < nc; c++) {
                int64_t e = r * C + c0 + c;
                float xhat = (x[e] - muf[c]) * isf[c];
                dx[e] += k[c] * (dy[e] - mdy[c] - xhat * mdyx[c]);
            }
        }
        for (int64_t r = 0; dx && chain && r < rows; r++) {
            const int64_t e0 = r * C + c0;
            float gr[CB];
            for (int64_t c = 0; c < nc; c++)
                gr[c] = sn__plus0(sn__chain_grad_cpu(dy, y, act, e0 + c));
            if (set & 1u)
                for (int64_t c = 0; c < nc; c++) {
                    float xhat = (x[e0 + c] - muf[c]) * isf[c];
                    dx[e0 + c] = sn__plus0(k[c] * (gr[c] - mdy[c] - xhat * mdyx[c]));
                }
            else
                for (int64_t c = 0; c < nc; c++) {
                    float xhat = (x[e0 + c] - muf[c]) * isf[c];
                    dx[e0 + c] += k[c] * (gr[c] - mdy[c] - xhat * mdyx[c]);
                }
        }
    }
}

/* train_bwd_impl with `chain` and `act` as constants in each copy, so that the compiler
 * drops the activation's branches from the inner loops and vectorizes them (with act read
 * per element, the fused backward took 273 ms of ResNet-50's step at 112x112, batch 8, on 2
 * cores, against 132 ms for the unfused relu + add + batch norm). */
static void train_bwd(sn__dev *d, float *dx, float *dgamma, float *dbeta, float *dres,
                      const float *dy, const float *y, const float *x, const float *gamma,
                      const float *mean, const float *var, float eps, bool chain, int act,
                      unsigned set, int64_t rows, int64_t C) {
    if (!chain)
        train_bwd_impl(d, dx, dgamma, dbeta, dres, dy, y, x, gamma, mean, var, eps, false,
                       SN__ACT_NONE, 0u, rows, C);
    else if (act == SN__ACT_RELU)
        train_bwd_impl(d, dx, dgamma, dbeta, dres, dy, y, x, gamma, mean, var, eps, true,
                       SN__ACT_RELU, set, rows, C);
    else if (act == SN__ACT_RELU6)
        train_bwd_impl(d, dx, dgamma, dbeta, dres, dy, y, x, gamma, mean, var, eps, true,
                       SN__ACT_RELU6, set, rows, C);
    else
        train_bwd_impl(d, dx, dgamma, dbeta, dres, dy, y, x, gamma, mean, var, eps, true,
                       SN__ACT_NONE, set, rows, C);
}

sn_status sn__bn_train_bwd_cpu(sn__dev *d, float *dx, float *dgamma, float *dbeta,
                               const float *dy, const float *x, const float *gamma,
                               const float *mean, const float *var, float eps, int64_t rows,
                               int64_t C) {
    train_bwd(d, dx, dgamma, dbeta, NULL, dy, NULL, x, gamma, mean, var, eps, false,
              SN__ACT_NONE, 0u, rows, C);
    return SN_OK;
}

sn_status sn__bn_train_bwd_ep_cpu(sn__dev *d, float *dx, float *dgamma, float *dbeta,
                                  float *dres, const float *dy, const float *y, const float *x,
                                  const float *gamma, const float *mean, const float *var,
                                  float eps, int act, unsigned set, int64_t rows, int64_t C) {
    if (act != SN__ACT_NONE && act != SN__ACT_RELU && act != SN__ACT_RELU6)
        return sn__fail(d->ctx, SN_ERR_INVALID_ARG, "bn_train_bwd_ep: act %d", act);
    train_bwd(d, dx, dgamma, dbeta, dres, dy, y, x, gamma, mean, var, eps, true, act, set,
              rows, C);
    return SN_OK;
}

/* Inference forward: y = gamma * (x - mean) / sqrt(var + eps) + beta with the given
 * (moving) statistics. */
sn_status sn__bn_infer_fwd_cpu(sn__dev *d, float *y, const float *x, const float *gamma,
                               const float *beta, const float *mean, const float *var,
                               float eps, int64_t rows, int64_t C) {
    normalize(d, y, x, gamma, beta, mean, var, eps, NULL, SN__ACT_NONE, rows, C);
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
