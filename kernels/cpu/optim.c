/* optim.c: the optimizers' fused update kernels and the moving average, on the CPU.
 * Shapes: n elements of one variable w (any layout), its gradient g and its slots, each n
 * floats.  Every kernel updates w and its slots in place.
 *
 * Each element is computed with TensorFlow's CPU formulas (tensorflow/core/kernels/
 * training_ops.cc, the Eigen functors ApplyMomentum, ApplyRMSProp, ApplyAdam, ...) in the
 * same float operations and order, so the results agree with TF's to a few ulp: TF's Eigen
 * vectorizes rsqrt as an approximation refined by one Newton step, where this file divides
 * by sqrtf, and TF's pow is Eigen's.  No FMA contraction happens here (ISO C mode, and the
 * build targets x86-64-v2), so the CPU results are reproducible. */
#include <math.h>
#include "../kernels.h"

/* Below this many elements a parallel region costs more than the loop. */
enum { PAR_MIN = 1 << 15 };

/* a = a*mu + g; w -= a*lr (nesterov: w -= g*lr + a*mu*lr). */
sn_status sn__momentum_apply_cpu(sn__dev *d, float *w, float *a, const float *g, float lr,
                                 float mu, int nesterov, int64_t n) {
    if (nesterov) {
#pragma omp parallel for num_threads(d->threads) if (n >= PAR_MIN)
        for (int64_t i = 0; i < n; i++) {
            float ai = a[i] * mu + g[i];
            a[i] = ai;
            w[i] -= g[i] * lr + ai * mu * lr;
        }
    } else {
#pragma omp parallel for num_threads(d->threads) if (n >= PAR_MIN)
        for (int64_t i = 0; i < n; i++) {
            float ai = a[i] * mu + g[i];
            a[i] = ai;
            w[i] -= ai * lr;
        }
    }
    return SN_OK;
}

/* ms += (g*g - ms)*(1-rho); mom = mom*mu + g*lr/sqrt(ms+eps); w -= mom. */
sn_status sn__rmsprop_apply_cpu(sn__dev *d, float *w, float *ms, float *mom, const float *g,
                                float lr, float rho, float mu, float eps, int64_t n) {
    const float one_minus_rho = 1.0f - rho;
#pragma omp parallel for num_threads(d->threads) if (n >= PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        float gi = g[i];
        float msi = ms[i] + (gi * gi - ms[i]) * one_minus_rho;
        float mi = mom[i] * mu + (gi * lr) / sqrtf(msi + eps);
        ms[i] = msi;
        mom[i] = mi;
        w[i] -= mi;
    }
    return SN_OK;
}

/* lr_t = lr*sqrt(1-beta2_power)/(1-beta1_power); m += (g-m)*(1-b1); v += (g*g-v)*(1-b2);
 * w -= m*lr_t/(sqrt(v)+eps).  powers = {beta1_power, beta2_power}. */
sn_status sn__adam_apply_cpu(sn__dev *d, float *w, float *m, float *v, const float *g,
                             const float *powers, float lr, float b1, float b2, float eps,
                             int64_t n) {
    const float alpha = lr * sqrtf(1.0f - powers[1]) / (1.0f - powers[0]);
    const float one_minus_b1 = 1.0f - b1, one_minus_b2 = 1.0f - b2;
#pragma omp parallel for num_threads(d->threads) if (n >= PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        float gi = g[i];
        float mi = m[i] + (gi - m[i]) * one_minus_b1;
        float vi = v[i] + (gi * gi - v[i]) * one_minus_b2;
        m[i] = mi;
        v[i] = vi;
        w[i] -= (mi * alpha) / (sqrtf(vi) + eps);
    }
    return SN_OK;
}

/* acc += g*g; w -= g*lr*rsqrt(acc). */
sn_status sn__adagrad_apply_cpu(sn__dev *d, float *w, float *acc, const float *g, float lr,
                                int64_t n) {
#pragma omp parallel for num_threads(d->threads) if (n >= PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        float gi = g[i];
        float ai = acc[i] + gi * gi;
        acc[i] = ai;
        w[i] -= gi * lr * (1.0f / sqrtf(ai));
    }
    return SN_OK;
}

/* acc = acc*rho + g*g*(1-rho); u = sqrt(up+eps)*rsqrt(acc+eps)*g; w -= u*lr;
 * up = up*rho + u*u*(1-rho). */
sn_status sn__adadelta_apply_cpu(sn__dev *d, float *w, float *acc, float *up, const float *g,
                                 float lr, float rho, float eps, int64_t n) {
    const float one_minus_rho = 1.0f - rho;
#pragma omp parallel for num_threads(d->threads) if (n >= PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        float gi = g[i];
        float ai = acc[i] * rho + gi * gi * one_minus_rho;
        float u = sqrtf(up[i] + eps) * (1.0f / sqrtf(ai + eps)) * gi;
        acc[i] = ai;
        w[i] -= u * lr;
        up[i] = up[i] * rho + u * u * one_minus_rho;
    }
    return SN_OK;
}

/* FTRL-proximal, TF's ApplyFtrl: n' = acc + g*g; z += g - (n'^-p - acc^-p)/lr*w;
 * w = |z| > l1 ? (l1*sign(z) - z)/(n'^-p/lr + 2*l2) : 0; acc = n'. */
sn_status sn__ftrl_apply_cpu(sn__dev *d, float *w, float *acc, float *z, const float *g,
                             float lr, float l1, float l2, float lr_power, int64_t n) {
    const int root = lr_power == -0.5f;
    const float neg_p = -lr_power, two_l2 = 2.0f * l2;
#pragma omp parallel for num_threads(d->threads) if (n >= PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        float gi = g[i], ai = acc[i];
        float na = ai + gi * gi;
        float pn = root ? sqrtf(na) : powf(na, neg_p);
        float pa = root ? sqrtf(ai) : powf(ai, neg_p);
        float zi = z[i] + (gi - (pn - pa) / lr * w[i]);
        float sign = zi == 0.0f ? 0.0f : (zi < 0.0f ? -1.0f : 1.0f);
        float x = l1 * sign - zi;
        float y = pn / lr + two_l2;
        z[i] = zi;
        w[i] = fabsf(zi) > l1 ? x / y : 0.0f;
        acc[i] = na;
    }
    return SN_OK;
}

/* shadow -= (shadow - w) * one_minus_decay (assign_moving_average, no zero debiasing). */
sn_status sn__ema_apply_cpu(sn__dev *d, float *shadow, const float *w, float one_minus_decay,
                            int64_t n) {
#pragma omp parallel for num_threads(d->threads) if (n >= PAR_MIN)
    for (int64_t i = 0; i < n; i++) shadow[i] -= (shadow[i] - w[i]) * one_minus_decay;
    return SN_OK;
}
