/* optim.cu: the optimizers' fused update kernels and the moving average, on CUDA.
 * Shapes: n elements of one variable w (any layout), its gradient g and its slots, each n
 * floats, updated in place.
 *
 * The same float formulas as kernels/cpu/optim.c (TF1's training ops), one grid-stride
 * loop each: every element is read once and written once, so the kernels run at memory
 * bandwidth.  nvcc may contract a*b + c into an FMA, so results differ from the CPU ones by
 * an ulp or so (the parity suite cuda_optim allows 1e-5 relative).  sqrtf and division are
 * IEEE-rounded (no fast-math flags in the build). */
#include "cuda_internal.h"

/* Grid-stride loop over n elements, 64-bit indices. */
#define FOR_EACH(i, n)                                                            \
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n);     \
         i += (int64_t)gridDim.x * blockDim.x)

static __global__ void momentum_kernel(float *w, float *a, const float *g, float lr, float mu,
                                       int nesterov, int64_t n) {
    FOR_EACH(i, n) {
        float gi = g[i];
        float ai = a[i] * mu + gi;
        a[i] = ai;
        w[i] -= nesterov ? gi * lr + ai * mu * lr : ai * lr;
    }
}

static __global__ void rmsprop_kernel(float *w, float *ms, float *mom, const float *g, float lr,
                                      float one_minus_rho, float mu, float eps, int64_t n) {
    FOR_EACH(i, n) {
        float gi = g[i];
        float msi = ms[i] + (gi * gi - ms[i]) * one_minus_rho;
        float mi = mom[i] * mu + (gi * lr) / sqrtf(msi + eps);
        ms[i] = msi;
        mom[i] = mi;
        w[i] -= mi;
    }
}

static __global__ void adam_kernel(float *w, float *m, float *v, const float *g,
                                   const float *powers, float lr, float one_minus_b1,
                                   float one_minus_b2, float eps, int64_t n) {
    /* The beta powers live in device memory (they are checkpointed slots): every thread
     * reads the same two floats, which the cache serves. */
    const float alpha = lr * sqrtf(1.0f - powers[1]) / (1.0f - powers[0]);
    FOR_EACH(i, n) {
        float gi = g[i];
        float mi = m[i] + (gi - m[i]) * one_minus_b1;
        float vi = v[i] + (gi * gi - v[i]) * one_minus_b2;
        m[i] = mi;
        v[i] = vi;
        w[i] -= (mi * alpha) / (sqrtf(vi) + eps);
    }
}

static __global__ void adagrad_kernel(float *w, float *acc, const float *g, float lr,
                                      int64_t n) {
    FOR_EACH(i, n) {
        float gi = g[i];
        float ai = acc[i] + gi * gi;
        acc[i] = ai;
        w[i] -= gi * lr * (1.0f / sqrtf(ai));
    }
}

static __global__ void adadelta_kernel(float *w, float *acc, float *up, const float *g,
                                       float lr, float rho, float one_minus_rho, float eps,
                                       int64_t n) {
    FOR_EACH(i, n) {
        float gi = g[i];
        float ai = acc[i] * rho + gi * gi * one_minus_rho;
        float u = sqrtf(up[i] + eps) * (1.0f / sqrtf(ai + eps)) * gi;
        acc[i] = ai;
        w[i] -= u * lr;
        up[i] = up[i] * rho + u * u * one_minus_rho;
    }
}

static __global__ void ftrl_kernel(float *w, float *acc, float *z, const float *g, float lr,
                                   float l1, float two_l2, float neg_p, int root, int64_t n) {
    FOR_EACH(i, n) {
        float gi = g[i], ai = acc[i];
        float na = ai + gi * gi;
        float pn = root ? sqrtf(na) : powf(na, neg_p);
        float pa = root ? sqrtf(ai) : powf(ai, neg_p);
        float zi = z[i] + (gi - (pn - pa) / lr * w[i]);
        float sign = zi == 0.0f ? 0.0f : (zi < 0.0f ? -1.0f : 1.0f);
        z[i] = zi;
        w[i] = fabsf(zi) > l1 ? (l1 * sign - zi) / (pn / lr + two_l2) : 0.0f;
        acc[i] = na;
    }
}

static __global__ void ema_kernel(float *shadow, const float *w, float one_minus_decay,
                                  int64_t n) {
    FOR_EACH(i, n) shadow[i] -= (shadow[i] - w[i]) * one_minus_decay;
}

/* Checks n, enters the device and picks the grid; returns from the caller when n is 0. */
#define OPTIM_BEGIN(d, c, n, grid)                                                     \
    SN__CU_BEGIN(d, c);                                                                \
    if ((n) < 0)                                                                       \
        return sn__fail((d)->ctx, SN_ERR_INVALID_ARG, "%s: n = %lld", __func__,        \
                        (long long)(n));                                               \
    if ((n) == 0) return SN_OK;                                                        \
    unsigned grid = sn__grid(c, (n), SN__BLOCK)

extern "C" sn_status sn__momentum_apply_cuda(sn__dev *d, float *w, float *a, const float *g,
                                             float lr, float mu, int nesterov, int64_t n) {
    OPTIM_BEGIN(d, c, n, grid);
    momentum_kernel<<<grid, SN__BLOCK, 0, c->stream>>>(w, a, g, lr, mu, nesterov, n);
    return sn__cuda_launched(d, "momentum_apply");
}

extern "C" sn_status sn__rmsprop_apply_cuda(sn__dev *d, float *w, float *ms, float *mom,
                                            const float *g, float lr, float rho, float mu,
                                            float eps, int64_t n) {
    OPTIM_BEGIN(d, c, n, grid);
    rmsprop_kernel<<<grid, SN__BLOCK, 0, c->stream>>>(w, ms, mom, g, lr, 1.0f - rho, mu, eps,
                                                      n);
    return sn__cuda_launched(d, "rmsprop_apply");
}

extern "C" sn_status sn__adam_apply_cuda(sn__dev *d, float *w, float *m, float *v,
                                         const float *g, const float *powers, float lr,
                                         float b1, float b2, float eps, int64_t n) {
    OPTIM_BEGIN(d, c, n, grid);
    adam_kernel<<<grid, SN__BLOCK, 0, c->stream>>>(w, m, v, g, powers, lr, 1.0f - b1,
                                                   1.0f - b2, eps, n);
    return sn__cuda_launched(d, "adam_apply");
}

extern "C" sn_status sn__adagrad_apply_cuda(sn__dev *d, float *w, float *acc, const float *g,
                                            float lr, int64_t n) {
    OPTIM_BEGIN(d, c, n, grid);
    adagrad_kernel<<<grid, SN__BLOCK, 0, c->stream>>>(w, acc, g, lr, n);
    return sn__cuda_launched(d, "adagrad_apply");
}

extern "C" sn_status sn__adadelta_apply_cuda(sn__dev *d, float *w, float *acc, float *up,
                                             const float *g, float lr, float rho, float eps,
                                             int64_t n) {
    OPTIM_BEGIN(d, c, n, grid);
    adadelta_kernel<<<grid, SN__BLOCK, 0, c->stream>>>(w, acc, up, g, lr, rho, 1.0f - rho, eps,
                                                       n);
    return sn__cuda_launched(d, "adadelta_apply");
}

extern "C" sn_status sn__ftrl_apply_cuda(sn__dev *d, float *w, float *acc, float *z,
                                         const float *g, float lr, float l1, float l2,
                                         float lr_power, int64_t n) {
    OPTIM_BEGIN(d, c, n, grid);
    ftrl_kernel<<<grid, SN__BLOCK, 0, c->stream>>>(w, acc, z, g, lr, l1, 2.0f * l2, -lr_power,
                                                   lr_power == -0.5f, n);
    return sn__cuda_launched(d, "ftrl_apply");
}

extern "C" sn_status sn__ema_apply_cuda(sn__dev *d, float *shadow, const float *w,
                                        float one_minus_decay, int64_t n) {
    OPTIM_BEGIN(d, c, n, grid);
    ema_kernel<<<grid, SN__BLOCK, 0, c->stream>>>(shadow, w, one_minus_decay, n);
    return sn__cuda_launched(d, "ema_apply");
}
