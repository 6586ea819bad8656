/* eltwise.c: elementwise and per-channel kernels on the CPU (relu, relu6, hard swish, hard
 * sigmoid, the squeeze-excite gate, bias, add, scale, dropout, sum).
 * Shapes: n elements in any layout; the per-channel ones see (rows, C), rows = N*H*W,
 * with b/db (C).  Outputs may alias inputs of the same shape (y == x is an in-place op). */
#include <math.h>
#include <stdbool.h>
#include "cpu_internal.h"

/* Below this many elements a parallel region costs more than the loop. */
enum { PAR_MIN = 1 << 15 };
/* Channel block of the per-channel reductions: 16 floats = one cache line. */
enum { CB = 16 };

/* y = x + b[c]. */
sn_status sn__bias_fwd_cpu(sn__dev *d, float *y, const float *x, const float *b, int64_t rows,
                           int64_t C) {
#pragma omp parallel for num_threads(d->threads) if (rows * C >= PAR_MIN)
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < C; c++) y[r * C + c] = x[r * C + c] + b[c];
    return SN_OK;
}

/* The fused kernels' epilogue (kernels.h).  A bias goes through the batch norm form with
 * center 0 and scale 1, which is exact: (v - 0) * 1 + b is v + b bit for bit.  Coefficients
 * are formed EB channels at a time, from the variables as they are now. */
enum { EB = 256 };

/* One row of EB or fewer channels: the affine step (if any), the residual, the activation,
 * each value loaded and stored once.  The conditions do not change within the loop: the
 * compiler unswitches it into one branch-free, vectorized loop per case. */
static inline void ep_row(float *restrict v, const float *restrict res,
                          const float *restrict center, const float *restrict scale,
                          const float *restrict shift, int64_t nb, int affine, int act) {
    for (int64_t c = 0; c < nb; c++) {
        float t = v[c];
        if (affine) t = (t - center[c]) * scale[c] + shift[c];
        if (res) t = t + res[c];
        if (act == SN__ACT_RELU) t = t > 0.0f ? t : 0.0f;
        else if (act == SN__ACT_RELU6) t = t > 0.0f ? (t < 6.0f ? t : 6.0f) : 0.0f;
        else if (act == SN__ACT_HARD_SWISH) t = sn__hard_swish(t);
        v[c] = t;
    }
}

void sn__epilogue_apply_cpu(float *y, const float *res, int64_t rows, int64_t nc, int64_t ldy,
                            int64_t c0, const sn__epilogue *ep) {
    for (int64_t b0 = 0; b0 < nc; b0 += EB) {
        const int64_t nb = nc - b0 < EB ? nc - b0 : EB, k0 = c0 + b0;
        float center[EB], scale[EB], shift[EB];
        for (int64_t c = 0; c < nb; c++) {
            if (ep->mean) {     /* as bn_infer_fwd forms them */
                center[c] = ep->mean[k0 + c];
                scale[c] = (ep->gamma ? ep->gamma[k0 + c] : 1.0f) / sqrtf(ep->var[k0 + c] +
                                                                          ep->eps);
                shift[c] = ep->beta ? ep->beta[k0 + c] : 0.0f;
            } else {
                center[c] = 0.0f;
                scale[c] = 1.0f;
                shift[c] = ep->bias ? ep->bias[k0 + c] : 0.0f;
            }
        }
        for (int64_t r = 0; r < rows; r++)
            ep_row(y + r * ldy + b0, res ? res + r * ldy + b0 : NULL, center, scale, shift, nb,
                   ep->mean || ep->bias, ep->act);
    }
}

/* Accumulates: db[c] += sum over rows of dy[r, c], summed in double (rows can be N*H*W). */
sn_status sn__bias_bwd_cpu(sn__dev *d, float *db, const float *dy, int64_t rows, int64_t C) {
    const int64_t ncb = (C + CB - 1) / CB;
#pragma omp parallel for num_threads(d->threads) if (rows * C >= PAR_MIN)
    for (int64_t b = 0; b < ncb; b++) {
        int64_t c0 = b * CB, nc = C - c0 < CB ? C - c0 : CB;
        double s[CB] = {0};
        for (int64_t r = 0; r < rows; r++)
            for (int64_t c = 0; c < nc; c++) s[c] += dy[r * C + c0 + c];
        for (int64_t c = 0; c < nc; c++) db[c0 + c] += (float)s[c];
    }
    return SN_OK;
}

/* bias_fwd, add_fwd and relu_fwd/relu6_fwd on each value while it is in a register: one
 * pass over memory where the unfused chain makes up to three. */
sn_status sn__bias_fwd_ep_cpu(sn__dev *d, float *y, const float *x, const float *b,
                              const float *residual, int act, int64_t rows, int64_t C) {
    if (act != SN__ACT_NONE && act != SN__ACT_RELU && act != SN__ACT_RELU6)
        return sn__fail(d->ctx, SN_ERR_INVALID_ARG, "bias_fwd_ep: act %d", act);
#pragma omp parallel for num_threads(d->threads) if (rows * C >= PAR_MIN)
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < C; c++) {
            int64_t e = r * C + c;
            float v = x[e] + b[c];
            if (residual) v = v + residual[e];
            y[e] = sn__act_fwd_cpu(v, act);
        }
    return SN_OK;
}

/* Gradients of bias_fwd_ep: m = the chain's gradient below the activation; dres and dx get
 * m (set or added), db its column sums, in bias_bwd's blocks and order (so bit for bit). */
sn_status sn__bias_bwd_ep_cpu(sn__dev *d, float *dx, float *db, float *dres, const float *dy,
                              const float *y, int act, unsigned set, int64_t rows, int64_t C) {
    if (act != SN__ACT_NONE && act != SN__ACT_RELU && act != SN__ACT_RELU6)
        return sn__fail(d->ctx, SN_ERR_INVALID_ARG, "bias_bwd_ep: act %d", act);
    const int64_t ncb = (C + CB - 1) / CB;
    const bool set_dx = set & 1u, set_dres = set & 2u;
#pragma omp parallel for num_threads(d->threads) if (rows * C >= PAR_MIN)
    for (int64_t b = 0; b < ncb; b++) {
        int64_t c0 = b * CB, nc = C - c0 < CB ? C - c0 : CB;
        double s[CB] = {0};
        for (int64_t r = 0; r < rows; r++)
            for (int64_t c = 0; c < nc; c++) {
                int64_t e = r * C + c0 + c;
                float m = sn__chain_grad_cpu(dy, y, act, e);
                if (dres) dres[e] = set_dres ? m : dres[e] + m;
                if (dx) dx[e] = set_dx ? m : dx[e] + m;
                s[c] += m;
            }
        for (int64_t c = 0; db && c < nc; c++) db[c0 + c] += (float)s[c];
    }
    return SN_OK;
}

/* y = max(x, 0). */
sn_status sn__relu_fwd_cpu(sn__dev *d, float *y, const float *x, int64_t n) {
#pragma omp parallel for num_threads(d->threads) if (n >= PAR_MIN)
    for (int64_t i = 0; i < n; i++) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
    return SN_OK;
}

/* Accumulates: dx += dy where y > 0.  Reading y instead of x lets the forward overwrite its
 * input; y > 0 exactly when x > 0, so this is TF's ReluGrad. */
sn_status sn__relu_bwd_cpu(sn__dev *d, float *dx, const float *dy, const float *y, int64_t n) {
#pragma omp parallel for num_threads(d->threads) if (n >= PAR_MIN)
    for (int64_t i = 0; i < n; i++) dx[i] += y[i] > 0.0f ? dy[i] : 0.0f;
    return SN_OK;
}

/* y = min(max(x, 0), 6). */
sn_status sn__relu6_fwd_cpu(sn__dev *d, float *y, const float *x, int64_t n) {
#pragma omp parallel for num_threads(d->threads) if (n >= PAR_MIN)
    for (int64_t i = 0; i < n; i++) y[i] = x[i] > 0.0f ? (x[i] < 6.0f ? x[i] : 6.0f) : 0.0f;
    return SN_OK;
}

/* Accumulates: dx += dy where 0 < y < 6, i.e. 0 < x < 6 (TF's Relu6Grad: no gradient at
 * either kink). */
sn_status sn__relu6_bwd_cpu(sn__dev *d, float *dx, const float *dy, const float *y, int64_t n) {
#pragma omp parallel for num_threads(d->threads) if (n >= PAR_MIN)
    for (int64_t i = 0; i < n; i++) dx[i] += y[i] > 0.0f && y[i] < 6.0f ? dy[i] : 0.0f;
    return SN_OK;
}

/* y = hard_swish(x) (kernels.h). */
sn_status sn__hard_swish_fwd_cpu(sn__dev *d, float *y, const float *x, int64_t n) {
#pragma omp parallel for num_threads(d->threads) if (n >= PAR_MIN)
    for (int64_t i = 0; i < n; i++) y[i] = sn__hard_swish(x[i]);
    return SN_OK;
}

/* Accumulates TF's gradient of x * relu6(x + 3) * (1/6): the product's two terms, the
 * second masked by Relu6Grad (0 < x + 3 < 6). */
sn_status sn__hard_swish_bwd_cpu(sn__dev *d, float *dx, const float *dy, const float *x,
                                 int64_t n) {
#pragma omp parallel for num_threads(d->threads) if (n >= PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        float t = x[i] + 3.0f, g = dy[i] * SN__HARD_SWISH_SCALE;
        float v = g * sn__relu6f(t);
        if (t > 0.0f && t < 6.0f) v = v + x[i] * g;
        dx[i] += v;
    }
    return SN_OK;
}

/* y = hard_sigmoid(x) (kernels.h: relu6(x + 3) * 0.16667). */
sn_status sn__hard_sigmoid_fwd_cpu(sn__dev *d, float *y, const float *x, int64_t n) {
#pragma omp parallel for num_threads(d->threads) if (n >= PAR_MIN)
    for (int64_t i = 0; i < n; i++) y[i] = sn__hard_sigmoid(x[i]);
    return SN_OK;
}

/* Accumulates: dx += dy * 0.16667 where 0 < x + 3 < 6. */
sn_status sn__hard_sigmoid_bwd_cpu(sn__dev *d, float *dx, const float *dy, const float *x,
                                   int64_t n) {
#pragma omp parallel for num_threads(d->threads) if (n >= PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        float t = x[i] + 3.0f;
        dx[i] += t > 0.0f && t < 6.0f ? dy[i] * SN__HARD_SIGMOID_SCALE : 0.0f;
    }
    return SN_OK;
}

/* y[n, p, c] = x[n, p, c] * s[n, c] on x (N, HW, C): the squeeze-excite gate. */
sn_status sn__channel_gate_fwd_cpu(sn__dev *d, float *y, const float *x, const float *s,
                                   int64_t N, int64_t HW, int64_t C) {
    const int64_t rows = N * HW;
#pragma omp parallel for num_threads(d->threads) if (rows * C >= PAR_MIN)
    for (int64_t r = 0; r < rows; r++) {
        const float *g = s + (r / HW) * C;
        for (int64_t c = 0; c < C; c++) y[r * C + c] = x[r * C + c] * g[c];
    }
    return SN_OK;
}

/* Accumulates dx += dy * s[n, c] and ds[n, c] += sum over the HW positions of x * dy (in
 * double, in position order); either may be NULL. */
sn_status sn__channel_gate_bwd_cpu(sn__dev *d, float *dx, float *ds, const float *dy,
                                   const float *x, const float *s, int64_t N, int64_t HW,
                                   int64_t C) {
    const int64_t rows = N * HW;
    if (dx) {
#pragma omp parallel for num_threads(d->threads) if (rows * C >= PAR_MIN)
        for (int64_t r = 0; r < rows; r++) {
            const float *g = s + (r / HW) * C;
            for (int64_t c = 0; c < C; c++) dx[r * C + c] += dy[r * C + c] * g[c];
        }
    }
    if (ds) {
        const int64_t ncb = (C + CB - 1) / CB;
#pragma omp parallel for collapse(2) num_threads(d->threads) if (rows * C >= PAR_MIN)
        for (int64_t n = 0; n < N; n++)
            for (int64_t b = 0; b < ncb; b++) {
                int64_t c0 = b * CB, nc = C - c0 < CB ? C - c0 : CB;
                double acc[CB] = {0};
                for (int64_t p = 0; p < HW; p++) {
                    const int64_t e = (n * HW + p) * C + c0;
                    for (int64_t c = 0; c < nc; c++) acc[c] += (double)(x[e + c] * dy[e + c]);
                }
                for (int64_t c = 0; c < nc; c++) ds[n * C + c0 + c] += (float)acc[c];
            }
    }
    return SN_OK;
}

/* y = a + b. */
sn_status sn__add_fwd_cpu(sn__dev *d, float *y, const float *a, const float *b, int64_t n) {
#pragma omp parallel for num_threads(d->threads) if (n >= PAR_MIN)
    for (int64_t i = 0; i < n; i++) y[i] = a[i] + b[i];
    return SN_OK;
}

/* y = alpha * x. */
sn_status sn__scale_fwd_cpu(sn__dev *d, float *y, const float *x, float alpha, int64_t n) {
#pragma omp parallel for num_threads(d->threads) if (n >= PAR_MIN)
    for (int64_t i = 0; i < n; i++) y[i] = alpha * x[i];
    return SN_OK;
}

/* Accumulates: dx += alpha * dy (the backward of add, scale, copy and reshape). */
sn_status sn__accum_cpu(sn__dev *d, float *dx, const float *dy, float alpha, int64_t n) {
#pragma omp parallel for num_threads(d->threads) if (n >= PAR_MIN)
    for (int64_t i = 0; i < n; i++) dx[i] += alpha * dy[i];
    return SN_OK;
}

/* Inverted dropout: u = sn__uniform01(seed, first + i); mask[i] = u < keep ? 1/keep : 0;
 * y = x * mask.  The generator is indexed, not drawn in sequence, so the mask does not
 * depend on the thread count, the backend, or how a batch is split between processes. */
sn_status sn__dropout_fwd_cpu(sn__dev *d, float *y, float *mask, const float *x, float keep,
                              uint64_t seed, uint64_t first, int64_t n) {
    const float inv = 1.0f / keep;
#pragma omp parallel for num_threads(d->threads) if (n >= PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        mask[i] = sn__uniform01(seed, first + (uint64_t)i) < keep ? inv : 0.0f;
        y[i] = x[i] * mask[i];
    }
    return SN_OK;
}

/* Accumulates: dx += dy * mask. */
sn_status sn__dropout_bwd_cpu(sn__dev *d, float *dx, const float *dy, const float *mask,
                              int64_t n) {
#pragma omp parallel for num_threads(d->threads) if (n >= PAR_MIN)
    for (int64_t i = 0; i < n; i++) dx[i] += dy[i] * mask[i];
    return SN_OK;
}

/* y[0] = sum of x[0..n), in double: it adds the scalar losses. */
sn_status sn__sum_fwd_cpu(sn__dev *d, float *y, const float *x, int64_t n) {
    (void)d;
    double s = 0.0;
    for (int64_t i = 0; i < n; i++) s += x[i];
    y[0] = (float)s;
    return SN_OK;
}

/* Accumulates: dx[i] += dy[0] for i < n. */
sn_status sn__sum_bwd_cpu(sn__dev *d, float *dx, const float *dy, int64_t n) {
    const float g = dy[0];
#pragma omp parallel for num_threads(d->threads) if (n >= PAR_MIN)
    for (int64_t i = 0; i < n; i++) dx[i] += g;
    return SN_OK;
}
