/* batchnorm.cu: per-channel kernels on (rows, C) = NHWC flattened: bias add, batch norm
 * (training and inference, forward and backward), moving statistics.
 *
 * The bias kernels' fused forms (bias_fwd_ep, bias_bwd_ep) fold a training net's residual add
 * and relu/relu6 into them, as the batch norm ones do.
 *
 * Mapping: a block is (cx channel lanes) x (cy row lanes), 256 threads; a lane owns V
 * consecutive channels (V = 4 with float4 loads when C % 4 == 0 and the pointers are 16-byte
 * aligned) and walks rows, so a warp reads whole runs of channels (coalesced) and needs no
 * division by C.  Per-channel sums are three-stage and deterministic: each block reduces its
 * slice of rows in double into a partial per (slice, channel) in the device's scratch, a
 * second kernel adds the partials of each channel in a fixed tree (32 x 32 threads per 32
 * channels), and a per-channel kernel finishes the statistic.
 *
 * Semantics (kernels.def): mean/var are batch moments over rows, var biased (/rows);
 * gamma NULL means 1, beta NULL means 0; dgamma/dbeta NULL means not wanted; forward kernels
 * overwrite, backward kernels accumulate.  The per-channel coefficients are formed with the
 * CPU reference's precisions (float scale for the forward, double 1/sqrt for the backward)
 * so that the two backends differ only by summation order.  The moments are one pass over x,
 * shifted by the channel's first value: sum(x-x0) and sum((x-x0)^2) in double do not cancel
 * the way sum(x^2) - rows*mean^2 does when |mean| >> std.
 *
 * The fused training kernels (bias_*_ep, bn_train_*_ep) are templates on the storage type T of
 * the activations (x, y, residual, dy, dx, dres): float, or sn_bf16 for their _bf16 variants
 * (kernels.def).  sn__ld/sn__st and sn__ldf/sn__stf decode and encode bf16, so the bf16 kernels
 * do the float kernels' arithmetic on the decoded values and encode each output once;
 * per-channel parameters, statistics and their gradients are float either way. */
#include <math.h>
#include "cuda_internal.h"

/* ---- launch geometry ------------------------------------------------------------------ */

struct chan_geo {
    int V;              /* floats per lane: 1 or 4 */
    int cx, cy;         /* block shape */
    unsigned gx, gy;    /* grid; gy = number of row slices */
    int64_t rps;        /* rows per slice */
};

static int pow2_at_least(int64_t n, int cap) {
    int p = 1;
    while (p < n && p < cap) p <<= 1;
    return p;
}

/* max_gy: upper bound on slices (reductions: what the scratch holds). */
static chan_geo chan_geometry(const struct sn__cuda *c, int64_t rows, int64_t C, bool v4,
                              int64_t max_gy) {
    chan_geo g;
    g.V = v4 ? 4 : 1;
    int64_t lanes = C / g.V;
    g.cx = pow2_at_least(lanes, 32);
    g.cy = SN__BLOCK / g.cx;
    int64_t gx = (lanes + g.cx - 1) / g.cx;
    int64_t target = (int64_t)c->sm_count * (c->max_threads_per_sm / SN__BLOCK) * 2;
    int64_t gy = (target + gx - 1) / gx;
    int64_t most = (rows + g.cy - 1) / g.cy;       /* at least cy rows per slice */
    if (gy > most) gy = most;
    if (gy > max_gy) gy = max_gy;
    if (gy > 65535) gy = 65535;
    if (gy < 1) gy = 1;
    g.gx = (unsigned)gx;
    g.rps = (rows + gy - 1) / gy;
    g.gy = (unsigned)((rows + g.rps - 1) / g.rps);
    if (g.gy < 1) g.gy = 1;
    return g;
}

/* Per-channel parameter, with a default when the array is absent. */
static __device__ __forceinline__ float par(const float *p, int64_t c, float dflt) {
    return p ? p[c] : dflt;
}

/* ---- stage 1: partial sums per (slice, channel) ----------------------------------------- */

/* part[(slice*C + c)*NV + k] = sum over the slice's rows of f's k-th value for channel c. */
template <int V, int NV, class F>
static __global__ void partial_kernel(double *part, int64_t rows, int64_t C, int64_t rps, F f) {
    __shared__ double sh[SN__BLOCK * NV * V];
    int tx = threadIdx.x, ty = threadIdx.y, cx = blockDim.x, cy = blockDim.y;
    int64_t c0 = ((int64_t)blockIdx.x * cx + tx) * V;
    int64_t r0 = (int64_t)blockIdx.y * rps, r1 = r0 + rps < rows ? r0 + rps : rows;
    double acc[NV][V];
#pragma unroll
    for (int k = 0; k < NV; k++)
#pragma unroll
        for (int v = 0; v < V; v++) acc[k][v] = 0.0;
    if (c0 < C)
#pragma unroll 4   /* several rows in flight (bias_bwd_ep's functor also stores: still exact) */
        for (int64_t r = r0 + ty; r < r1; r += cy) f.template add<V>(acc, r, c0);
    double *mine = sh + (ty * cx + tx) * NV * V;
#pragma unroll
    for (int k = 0; k < NV; k++)
#pragma unroll
        for (int v = 0; v < V; v++) mine[k * V + v] = acc[k][v];
    __syncthreads();
    for (int half = cy / 2; half > 0; half /= 2) {   /* cy is a power of two */
        if (ty < half) {
            const double *other = sh + ((ty + half) * cx + tx) * NV * V;
            for (int j = 0; j < NV * V; j++) mine[j] += other[j];
        }
        __syncthreads();
    }
    if (ty == 0 && c0 < C)
        for (int v = 0; v < V; v++)
            for (int k = 0; k < NV; k++)
                part[((int64_t)blockIdx.y * C + c0 + v) * NV + k] = mine[k * V + v];
}

/* Sums x - x0 and (x - x0)^2, x0 = the channel's value in row 0 (batch moments). */
template <typename T>
struct stats_f {
    const T *x;
    int64_t C;
    template <int V>
    __device__ void add(double (&acc)[2][V], int64_t r, int64_t c0) const {
        float v[V];
        sn__ld<V>(v, x + r * C + c0);
#pragma unroll
        for (int j = 0; j < V; j++) {
            double t = (double)v[j] - (double)sn__ldf(x + c0 + j);
            acc[0][j] += t;
            acc[1][j] += t * t;
        }
    }
};

/* Sums dy and dy*(x - mean) (batch norm backward). */
struct dy_xmu_f {
    const float *dy, *x, *mean;
    int64_t C;
    template <int V>
    __device__ void add(double (&acc)[2][V], int64_t r, int64_t c0) const {
        float g[V], v[V];
        sn__ld<V>(g, dy + r * C + c0);
        sn__ld<V>(v, x + r * C + c0);
#pragma unroll
        for (int j = 0; j < V; j++) {
            acc[0][j] += g[j];
            acc[1][j] += (double)g[j] * ((double)v[j] - (double)mean[c0 + j]);
        }
    }
};

/* Sums dy (bias backward). */
struct sum_f {
    const float *dy;
    int64_t C;
    template <int V>
    __device__ void add(double (&acc)[1][V], int64_t r, int64_t c0) const {
        float g[V];
        sn__ld<V>(g, dy + r * C + c0);
#pragma unroll
        for (int j = 0; j < V; j++) acc[0][j] += g[j];
    }
};

/* The chain folded into a training batch norm (bn_train_fwd_ep / bn_train_bwd_ep): relu or
 * relu6 with eltwise.cu's expressions, or nothing. */
static __device__ __forceinline__ float act_fwd(float v, int act) {
    if (act == SN__ACT_RELU) return v > 0.0f ? v : 0.0f;
    if (act == SN__ACT_RELU6) return v > 0.0f ? (v < 6.0f ? v : 6.0f) : 0.0f;
    return v;
}
/* What the unfused backward leaves in the add's gradient: relu_bwd/relu6_bwd into a zeroed
 * buffer (0 + masked dy, the mask read from the chain's output y), or dy itself. */
static __device__ __forceinline__ float chain_grad(float dy, float y, int act) {
    if (act == SN__ACT_RELU) return __fadd_rn(0.0f, y > 0.0f ? dy : 0.0f);
    if (act == SN__ACT_RELU6) return __fadd_rn(0.0f, y > 0.0f && y < 6.0f ? dy : 0.0f);
    return dy;
}

/* Sums g and g*(x - mean), g = 0 + chain_grad(dy, y) (fused batch norm backward). */
template <typename T>
struct chain_xmu_f {
    const T *dy, *y, *x;
    const float *mean;
    int act;
    int64_t C;
    template <int V>
    __device__ void add(double (&acc)[2][V], int64_t r, int64_t c0) const {
        float g[V], u[V] = {0.0f}, v[V];
        sn__ld<V>(g, dy + r * C + c0);
        if (act != SN__ACT_NONE) sn__ld<V>(u, y + r * C + c0);
        sn__ld<V>(v, x + r * C + c0);
#pragma unroll
        for (int j = 0; j < V; j++) {
            float gf = __fadd_rn(0.0f, chain_grad(g[j], act != SN__ACT_NONE ? u[j] : 0.0f, act));
            acc[0][j] += gf;
            acc[1][j] += (double)gf * ((double)v[j] - (double)mean[c0 + j]);
        }
    }
};

/* ---- stage 3: row-wise application ----------------------------------------------------- */

template <int V, class F>
static __global__ void apply_kernel(int64_t rows, int64_t C, F f) {
    int64_t c0 = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) * V;
    if (c0 >= C) return;
    for (int64_t r = (int64_t)blockIdx.y * blockDim.y + threadIdx.y; r < rows;
         r += (int64_t)gridDim.y * blockDim.y)
        f.template row<V>(r, c0);
}

/* y = x + b[c] */
struct bias_apply_f {
    float *y;
    const float *x, *b;
    int64_t C;
    template <int V>
    __device__ void row(int64_t r, int64_t c0) const {
        float v[V];
        sn__ld<V>(v, x + r * C + c0);
#pragma unroll
        for (int j = 0; j < V; j++) v[j] += b[c0 + j];
        sn__st<V>(y + r * C + c0, v);
    }
};

/* y = act(x + b[c] [+ res])   (fused bias forward) */
template <typename T>
struct bias_ep_apply_f {
    T *y;
    const T *x;
    const float *b;
    const T *res;
    int act;
    int64_t C;
    template <int V>
    __device__ void row(int64_t r, int64_t c0) const {
        float v[V], q[V] = {0.0f};
        sn__ld<V>(v, x + r * C + c0);
        if (res) sn__ld<V>(q, res + r * C + c0);
#pragma unroll
        for (int j = 0; j < V; j++) {
            float t = __fadd_rn(v[j], b[c0 + j]);
            if (res) t = __fadd_rn(t, q[j]);
            v[j] = act_fwd(t, act);
        }
        sn__st<V>(y + r * C + c0, v);
    }
};

/* The elementwise part of the fused bias backward at (r, c0..c0+V): m = chain_grad(dy, y);
 * dres and dx get m (set, or added); returns m in g for the column sums. */
template <typename T>
struct bias_ep_grad {
    T *dx, *dres;
    const T *dy, *y;
    int act;
    unsigned set;   /* bit 0: dx = m, bit 1: dres = m (not read) */
    int64_t C;
    template <int V>
    __device__ __forceinline__ void at(float (&g)[V], int64_t r, int64_t c0) const {
        float u[V] = {0.0f};
        int64_t e = r * C + c0;
        sn__ld<V>(g, dy + e);
        if (act != SN__ACT_NONE) sn__ld<V>(u, y + e);
#pragma unroll
        for (int j = 0; j < V; j++)
            g[j] = chain_grad(g[j], act != SN__ACT_NONE ? u[j] : 0.0f, act);
        if (dres) put<V>(dres + e, g, set & 2u);
        if (dx) put<V>(dx + e, g, set & 1u);
    }
    /* out = g (set: the unfused first writer's copy, -0 kept) or out += g */
    template <int V>
    __device__ __forceinline__ void put(T *out, const float (&g)[V], bool set) const {
        float a[V];
#pragma unroll
        for (int j = 0; j < V; j++) a[j] = g[j];
        if (!set) {
            float o[V];
            sn__ld<V>(o, out);
#pragma unroll
            for (int j = 0; j < V; j++) a[j] = __fadd_rn(o[j], g[j]);
        }
        sn__st<V>(out, a);
    }
};

/* Fused bias backward with db: the partial pass writes dx/dres as it sums m (each element is
 * visited exactly once, by one thread). */
template <typename T>
struct bias_ep_sum_f {
    bias_ep_grad<T> e;
    template <int V>
    __device__ void add(double (&acc)[1][V], int64_t r, int64_t c0) const {
        float g[V];
        e.template at<V>(g, r, c0);
#pragma unroll
        for (int j = 0; j < V; j++) acc[0][j] += g[j];
    }
};

/* Fused bias backward without db: only the elementwise part. */
template <typename T>
struct bias_ep_bwd_apply_f {
    bias_ep_grad<T> e;
    template <int V>
    __device__ void row(int64_t r, int64_t c0) const {
        float g[V];
        e.template at<V>(g, r, c0);
    }
};

/* y = (x - mean[c]) * scale[c] + beta[c] */
struct norm_apply_f {
    float *y;
    const float *x, *mean, *scale, *beta;
    int64_t C;
    template <int V>
    __device__ void row(int64_t r, int64_t c0) const {
        float v[V];
        sn__ld<V>(v, x + r * C + c0);
#pragma unroll
        for (int j = 0; j < V; j++)
            v[j] = (v[j] - mean[c0 + j]) * scale[c0 + j] + par(beta, c0 + j, 0.0f);
        sn__st<V>(y + r * C + c0, v);
    }
};

/* dx += k1[c] * (dy - k2[c] - xhat * k3[c]), xhat = (x - mean[c]) * k4[c]   (training
 * backward; k1 = gamma*invstd, k2 = mean(dy), k3 = mean(dy*xhat), k4 = invstd) */
struct train_bwd_apply_f {
    float *dx;
    const float *dy, *x, *mean, *k;    /* k: k1[C], k2[C], k3[C], k4[C] */
    int64_t C;
    template <int V>
    __device__ void row(int64_t r, int64_t c0) const {
        float a[V], g[V], v[V];
        sn__ld<V>(a, dx + r * C + c0);
        sn__ld<V>(g, dy + r * C + c0);
        sn__ld<V>(v, x + r * C + c0);
#pragma unroll
        for (int j = 0; j < V; j++) {
            int64_t ch = c0 + j;
            float xhat = (v[j] - mean[ch]) * k[3 * C + ch];
            a[j] += k[ch] * (g[j] - k[C + ch] - xhat * k[2 * C + ch]);
        }
        sn__st<V>(dx + r * C + c0, a);
    }
};

/* y = act((x - mean[c]) * scale[c] + beta[c] [+ res])   (fused training forward) */
template <typename T>
struct norm_ep_apply_f {
    T *y;
    const T *x;
    const float *mean, *scale, *beta;
    const T *res;
    int act;
    int64_t C;
    template <int V>
    __device__ void row(int64_t r, int64_t c0) const {
        float v[V], q[V] = {0.0f};
        sn__ld<V>(v, x + r * C + c0);
        if (res) sn__ld<V>(q, res + r * C + c0);
#pragma unroll
        for (int j = 0; j < V; j++) {
            float t = (v[j] - mean[c0 + j]) * scale[c0 + j] + par(beta, c0 + j, 0.0f);
            if (res) t = __fadd_rn(t, q[j]);
            v[j] = act_fwd(t, act);
        }
        sn__st<V>(y + r * C + c0, v);
    }
};

/* m = chain_grad(dy, y); dres += m; dx += k1*(g - k2 - xhat*k3) with g = 0 + m
 * (fused training backward; dx or dres NULL: skipped, k unread without dx) */
template <typename T>
struct train_bwd_ep_apply_f {
    T *dx, *dres;
    const T *dy, *y, *x;
    const float *mean, *k;
    int act;
    unsigned set;   /* bit 0: dx = ..., bit 1: dres = ... (0 + the term: not read) */
    int64_t C;
    template <int V>
    __device__ void row(int64_t r, int64_t c0) const {
        float g[V], u[V] = {0.0f};
        sn__ld<V>(g, dy + r * C + c0);
        if (act != SN__ACT_NONE) sn__ld<V>(u, y + r * C + c0);
#pragma unroll
        for (int j = 0; j < V; j++)
            g[j] = chain_grad(g[j], act != SN__ACT_NONE ? u[j] : 0.0f, act);
        if (dres) {
            float a[V] = {0.0f};
            if (!(set & 2u)) sn__ld<V>(a, dres + r * C + c0);
#pragma unroll
            for (int j = 0; j < V; j++) a[j] = __fadd_rn(a[j], g[j]);
            sn__st<V>(dres + r * C + c0, a);
        }
        if (!dx) return;
        float a[V] = {0.0f}, v[V];
        if (!(set & 1u)) sn__ld<V>(a, dx + r * C + c0);
        sn__ld<V>(v, x + r * C + c0);
#pragma unroll
        for (int j = 0; j < V; j++) {
            int64_t ch = c0 + j;
            float gf = __fadd_rn(0.0f, g[j]);
            float xhat = (v[j] - mean[ch]) * k[3 * C + ch];
            a[j] += k[ch] * (gf - k[C + ch] - xhat * k[2 * C + ch]);
        }
        sn__st<V>(dx + r * C + c0, a);
    }
};

/* dx += dy * scale[c]   (inference backward) */
struct scale_acc_apply_f {
    float *dx;
    const float *dy, *scale;
    int64_t C;
    template <int V>
    __device__ void row(int64_t r, int64_t c0) const {
        float a[V], g[V];
        sn__ld<V>(a, dx + r * C + c0);
        sn__ld<V>(g, dy + r * C + c0);
#pragma unroll
        for (int j = 0; j < V; j++) a[j] += g[j] * scale[c0 + j];
        sn__st<V>(dx + r * C + c0, a);
    }
};

template <class F>
static sn_status apply(sn__dev *d, struct sn__cuda *c, int64_t rows, int64_t C, bool v4, F f,
                       const char *what) {
    chan_geo g = chan_geometry(c, rows, C, v4, 65535);
    dim3 grid(g.gx, g.gy), block(g.cx, g.cy);
    if (g.V == 4) apply_kernel<4><<<grid, block, 0, c->stream>>>(rows, C, f);
    else apply_kernel<1><<<grid, block, 0, c->stream>>>(rows, C, f);
    return sn__cuda_launched(d, what);
}

/* Scratch: [coefficients, 4*C floats][partials, slices*C*NV doubles]. */
static size_t coef_bytes(int64_t C) { return ((size_t)(4 * C) * sizeof(float) + 255) & ~(size_t)255; }

/* Stage 2: part[0][c][k] = the sum over slices of part[slice][c][k], in place.  A block
 * owns 32 channels; its 32 x 32 threads stride over the slices (thread (tx, ty) adds slices
 * ty, ty+32, ... of channel tx) and then add their 32 results in a fixed tree: the same
 * order on every run.  One thread per channel walking all slices, as the finish kernels did
 * before, took ~0.5 ms per call at 64 channels (2,112 dependent L2 loads each; the GPU
 * otherwise idle), about 30 of the 80 ms of a ResNet-50 training step at batch 128. */
template <int NV>
static __global__ void __launch_bounds__(1024) slices_sum_kernel(double *part, unsigned slices,
                                                                 int64_t C) {
    __shared__ double sh[32][32][NV];
    int tx = threadIdx.x, ty = threadIdx.y;
    int64_t ch = (int64_t)blockIdx.x * 32 + tx;
    double acc[NV];
#pragma unroll
    for (int k = 0; k < NV; k++) acc[k] = 0.0;
    if (ch < C) {
#pragma unroll 4
        for (unsigned j = ty; j < slices; j += 32)
#pragma unroll
            for (int k = 0; k < NV; k++) acc[k] += part[((int64_t)j * C + ch) * NV + k];
    }
#pragma unroll
    for (int k = 0; k < NV; k++) sh[ty][tx][k] = acc[k];
    __syncthreads();
    for (int half = 16; half > 0; half /= 2) {
        if (ty < half)
#pragma unroll
            for (int k = 0; k < NV; k++) sh[ty][tx][k] += sh[ty + half][tx][k];
        __syncthreads();
    }
    if (ty == 0 && ch < C)
#pragma unroll
        for (int k = 0; k < NV; k++) part[ch * NV + k] = sh[0][tx][k];
}

/* Stages 1 and 2: on return part holds one slice, the per-channel sums (*slices = 1). */
template <int NV, class F>
static sn_status partials(sn__dev *d, struct sn__cuda *c, int64_t rows, int64_t C, bool v4, F f,
                          const char *what, double **part, unsigned *slices) {
    size_t room = c->scratch_bytes - coef_bytes(C);
    int64_t max_gy = (int64_t)(room / ((size_t)C * NV * sizeof(double)));
    if (coef_bytes(C) >= c->scratch_bytes || max_gy < 1)
        return sn__fail(d->ctx, SN_ERR_UNSUPPORTED, "%s: %lld channels exceed the scratch",
                        what, (long long)C);
    chan_geo g = chan_geometry(c, rows, C, v4, max_gy);
    *part = (double *)((char *)c->scratch + coef_bytes(C));
    *slices = g.gy;
    dim3 grid(g.gx, g.gy), block(g.cx, g.cy);
    if (g.V == 4) partial_kernel<4, NV><<<grid, block, 0, c->stream>>>(*part, rows, C, g.rps, f);
    else partial_kernel<1, NV><<<grid, block, 0, c->stream>>>(*part, rows, C, g.rps, f);
    SN__CU_TRY(sn__cuda_launched(d, what));
    if (g.gy > 1) {
        slices_sum_kernel<NV><<<(unsigned)((C + 31) / 32), dim3(32, 32), 0, c->stream>>>(
            *part, g.gy, C);
        SN__CU_TRY(sn__cuda_launched(d, what));
    }
    *slices = 1;
    return SN_OK;
}

static sn_status check_rc(sn__dev *d, int64_t rows, int64_t C, const char *what) {
    if (rows < 0 || C < 0)
        return sn__fail(d->ctx, SN_ERR_INVALID_ARG, "%s: rows=%lld C=%lld", what,
                        (long long)rows, (long long)C);
    return SN_OK;
}

/* ---- bias ---------------------------------------------------------------------------------- */

extern "C" sn_status sn__bias_fwd_cuda(sn__dev *d, float *y, const float *x, const float *b,
                                       int64_t rows, int64_t C) {
    SN__CU_BEGIN(d, c);
    SN__CU_TRY(check_rc(d, rows, C, "bias_fwd"));
    if (rows == 0 || C == 0) return SN_OK;
    bool v4 = C % 4 == 0 && sn__aligned16(y) && sn__aligned16(x);
    bias_apply_f f = {y, x, b, C};
    return apply(d, c, rows, C, v4, f, "bias_fwd");
}

static __global__ void bias_finish_kernel(float *db, const double *part, unsigned slices,
                                          int64_t C) {
    int64_t ch = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (ch >= C) return;
    double s = 0.0;
    for (unsigned k = 0; k < slices; k++) s += part[(int64_t)k * C + ch];
    db[ch] += (float)s;
}

extern "C" sn_status sn__bias_bwd_cuda(sn__dev *d, float *db, const float *dy, int64_t rows,
                                       int64_t C) {
    SN__CU_BEGIN(d, c);
    SN__CU_TRY(check_rc(d, rows, C, "bias_bwd"));
    if (rows == 0 || C == 0) return SN_OK;
    bool v4 = C % 4 == 0 && sn__aligned16(dy);
    double *part = NULL;
    unsigned slices = 0;
    sum_f f = {dy, C};
    SN__CU_TRY(partials<1>(d, c, rows, C, v4, f, "bias_bwd", &part, &slices));
    bias_finish_kernel<<<(unsigned)((C + 255) / 256), 256, 0, c->stream>>>(db, part, slices, C);
    return sn__cuda_launched(d, "bias_bwd");
}

/* bias_fwd with the folded residual add and activation (kernels.def); T the activations'
 * storage (float, or sn_bf16 for bias_fwd_ep_bf16), `what` the kernel's name. */
template <typename T>
static sn_status bias_fwd_ep(sn__dev *d, struct sn__cuda *c, T *y, const T *x, const float *b,
                             const T *residual, int act, int64_t rows, int64_t C,
                             const char *what) {
    SN__CU_TRY(check_rc(d, rows, C, what));
    if (act != SN__ACT_NONE && act != SN__ACT_RELU && act != SN__ACT_RELU6)
        return sn__fail(d->ctx, SN_ERR_INVALID_ARG, "%s: act %d", what, act);
    if (rows == 0 || C == 0) return SN_OK;
    bool v4 = C % 4 == 0 && sn__aligned16(y) && sn__aligned16(x) &&
              (!residual || sn__aligned16(residual));
    bias_ep_apply_f<T> f = {y, x, b, residual, act, C};
    return apply(d, c, rows, C, v4, f, what);
}

extern "C" sn_status sn__bias_fwd_ep_cuda(sn__dev *d, float *y, const float *x, const float *b,
                                          const float *residual, int act, int64_t rows,
                                          int64_t C) {
    SN__CU_BEGIN(d, c);
    return bias_fwd_ep(d, c, y, x, b, residual, act, rows, C, "bias_fwd_ep");
}

extern "C" sn_status sn__bias_fwd_ep_bf16_cuda(sn__dev *d, sn_bf16 *y, const sn_bf16 *x,
                                               const float *b, const sn_bf16 *residual, int act,
                                               int64_t rows, int64_t C) {
    SN__CU_BEGIN(d, c);
    return bias_fwd_ep(d, c, y, x, b, residual, act, rows, C, "bias_fwd_ep_bf16");
}

/* Gradients of bias_fwd_ep in one pass over memory: with db, the column sums' partial pass
 * also writes dx and dres; without, an elementwise pass. */
template <typename T>
static sn_status bias_bwd_ep(sn__dev *d, struct sn__cuda *c, T *dx, float *db, T *dres,
                             const T *dy, const T *y, int act, unsigned set, int64_t rows,
                             int64_t C, const char *what) {
    SN__CU_TRY(check_rc(d, rows, C, what));
    if (act != SN__ACT_NONE && act != SN__ACT_RELU && act != SN__ACT_RELU6)
        return sn__fail(d->ctx, SN_ERR_INVALID_ARG, "%s: act %d", what, act);
    if (rows == 0 || C == 0 || (!dx && !db && !dres)) return SN_OK;
    bool v4 = C % 4 == 0 && sn__aligned16(dy) && (act == SN__ACT_NONE || sn__aligned16(y)) &&
              (!dx || sn__aligned16(dx)) && (!dres || sn__aligned16(dres));
    bias_ep_grad<T> e = {dx, dres, dy, y, act, set, C};
    if (!db) {
        bias_ep_bwd_apply_f<T> a = {e};
        return apply(d, c, rows, C, v4, a, what);
    }
    double *part = NULL;
    unsigned slices = 0;
    bias_ep_sum_f<T> f = {e};
    SN__CU_TRY(partials<1>(d, c, rows, C, v4, f, what, &part, &slices));
    bias_finish_kernel<<<(unsigned)((C + 255) / 256), 256, 0, c->stream>>>(db, part, slices, C);
    return sn__cuda_launched(d, what);
}

extern "C" sn_status sn__bias_bwd_ep_cuda(sn__dev *d, float *dx, float *db, float *dres,
                                          const float *dy, const float *y, int act,
                                          unsigned set, int64_t rows, int64_t C) {
    SN__CU_BEGIN(d, c);
    return bias_bwd_ep(d, c, dx, db, dres, dy, y, act, set, rows, C, "bias_bwd_ep");
}

extern "C" sn_status sn__bias_bwd_ep_bf16_cuda(sn__dev *d, sn_bf16 *dx, float *db,
                                               sn_bf16 *dres, const sn_bf16 *dy,
                                               const sn_bf16 *y, int act, unsigned set,
                                               int64_t rows, int64_t C) {
    SN__CU_BEGIN(d, c);
    return bias_bwd_ep(d, c, dx, db, dres, dy, y, act, set, rows, C, "bias_bwd_ep_bf16");
}

/* ---- batch norm ---------------------------------------------------------------------------- */

/* Moments -> mean, var (biased), and scale = gamma / sqrtf(var + eps) into coef[0..C). */
template <typename T>
static __global__ void moments_finish_kernel(float *mean, float *var, float *scale,
                                             const double *part, unsigned slices,
                                             const T *x, const float *gamma, float eps,
                                             int64_t rows, int64_t C) {
    int64_t ch = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (ch >= C) return;
    double s1 = 0.0, s2 = 0.0;
    for (unsigned k = 0; k < slices; k++) {
        s1 += part[((int64_t)k * C + ch) * 2];
        s2 += part[((int64_t)k * C + ch) * 2 + 1];
    }
    double m1 = s1 / (double)rows;
    double v = s2 / (double)rows - m1 * m1;
    if (v < 0.0) v = 0.0;
    mean[ch] = (float)((double)sn__ldf(x + ch) + m1);
    var[ch] = (float)v;
    scale[ch] = par(gamma, ch, 1.0f) / sqrtf((float)v + eps);
}

extern "C" sn_status sn__bn_train_fwd_cuda(sn__dev *d, float *y, float *mean, float *var,
                                           const float *x, const float *gamma,
                                           const float *beta, float eps, int64_t rows,
                                           int64_t C) {
    SN__CU_BEGIN(d, c);
    SN__CU_TRY(check_rc(d, rows, C, "bn_train_fwd"));
    if (C == 0) return SN_OK;
    if (rows == 0) {   /* no rows: zero moments, as the CPU reference writes */
        SN__CU_TRY(sn__zero_cuda(d, mean, (size_t)C * sizeof(float)));
        return sn__zero_cuda(d, var, (size_t)C * sizeof(float));
    }
    bool v4 = C % 4 == 0 && sn__aligned16(y) && sn__aligned16(x);
    double *part = NULL;
    unsigned slices = 0;
    stats_f<float> f = {x, C};
    SN__CU_TRY(partials<2>(d, c, rows, C, v4, f, "bn_train_fwd", &part, &slices));
    float *scale = (float *)c->scratch;
    moments_finish_kernel<<<(unsigned)((C + 255) / 256), 256, 0, c->stream>>>(
        mean, var, scale, part, slices, x, gamma, eps, rows, C);
    SN__CU_TRY(sn__cuda_launched(d, "bn_train_fwd"));
    norm_apply_f a = {y, x, mean, scale, beta, C};
    return apply(d, c, rows, C, v4, a, "bn_train_fwd");
}

/* From the sums of dy and dy*(x-mean): dgamma, dbeta (+=) and the coefficients of dx. */
static __global__ void train_bwd_finish_kernel(float *k, float *dgamma, float *dbeta,
                                               const double *part, unsigned slices,
                                               const float *gamma, const float *var, float eps,
                                               int64_t rows, int64_t C) {
    int64_t ch = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (ch >= C) return;
    double s1 = 0.0, s2 = 0.0;
    for (unsigned j = 0; j < slices; j++) {
        s1 += part[((int64_t)j * C + ch) * 2];
        s2 += part[((int64_t)j * C + ch) * 2 + 1];
    }
    double is = 1.0 / sqrt((double)var[ch] + eps);
    double sdyx = s2 * is;
    if (dbeta) dbeta[ch] += (float)s1;
    if (dgamma) dgamma[ch] += (float)sdyx;
    k[ch] = (float)((double)par(gamma, ch, 1.0f) * is);
    k[C + ch] = (float)(s1 / (double)rows);
    k[2 * C + ch] = (float)(sdyx / (double)rows);
    k[3 * C + ch] = (float)is;
}

extern "C" sn_status sn__bn_train_bwd_cuda(sn__dev *d, float *dx, float *dgamma, float *dbeta,
                                           const float *dy, const float *x, const float *gamma,
                                           const float *mean, const float *var, float eps,
                                           int64_t rows, int64_t C) {
    SN__CU_BEGIN(d, c);
    SN__CU_TRY(check_rc(d, rows, C, "bn_train_bwd"));
    if (rows == 0 || C == 0) return SN_OK;
    bool v4 = C % 4 == 0 && sn__aligned16(dx) && sn__aligned16(dy) && sn__aligned16(x);
    double *part = NULL;
    unsigned slices = 0;
    dy_xmu_f f = {dy, x, mean, C};
    SN__CU_TRY(partials<2>(d, c, rows, C, v4, f, "bn_train_bwd", &part, &slices));
    float *k = (float *)c->scratch;
    train_bwd_finish_kernel<<<(unsigned)((C + 255) / 256), 256, 0, c->stream>>>(
        k, dgamma, dbeta, part, slices, gamma, var, eps, rows, C);
    SN__CU_TRY(sn__cuda_launched(d, "bn_train_bwd"));
    if (!dx) return SN_OK;
    train_bwd_apply_f a = {dx, dy, x, mean, k, C};
    return apply(d, c, rows, C, v4, a, "bn_train_bwd");
}

/* bn_train_fwd with the folded residual add and activation applied in its normalizing
 * pass (kernels.def); T the activations' storage (float, or sn_bf16 for
 * bn_train_fwd_ep_bf16), `what` the kernel's name. */
template <typename T>
static sn_status bn_train_fwd_ep(sn__dev *d, struct sn__cuda *c, T *y, float *mean, float *var,
                                 const T *x, const float *gamma, const float *beta, float eps,
                                 const T *residual, int act, int64_t rows, int64_t C,
                                 const char *what) {
    SN__CU_TRY(check_rc(d, rows, C, what));
    if (act != SN__ACT_NONE && act != SN__ACT_RELU && act != SN__ACT_RELU6)
        return sn__fail(d->ctx, SN_ERR_INVALID_ARG, "%s: act %d", what, act);
    if (C == 0) return SN_OK;
    if (rows == 0) {
        SN__CU_TRY(sn__zero_cuda(d, mean, (size_t)C * sizeof(float)));
        return sn__zero_cuda(d, var, (size_t)C * sizeof(float));
    }
    bool v4 = C % 4 == 0 && sn__aligned16(y) && sn__aligned16(x) &&
              (!residual || sn__aligned16(residual));
    double *part = NULL;
    unsigned slices = 0;
    stats_f<T> f = {x, C};
    SN__CU_TRY(partials<2>(d, c, rows, C, v4, f, what, &part, &slices));
    float *scale = (float *)c->scratch;
    moments_finish_kernel<<<(unsigned)((C + 255) / 256), 256, 0, c->stream>>>(
        mean, var, scale, part, slices, x, gamma, eps, rows, C);
    SN__CU_TRY(sn__cuda_launched(d, what));
    norm_ep_apply_f<T> a = {y, x, mean, scale, beta, residual, act, C};
    return apply(d, c, rows, C, v4, a, what);
}

extern "C" sn_status sn__bn_train_fwd_ep_cuda(sn__dev *d, float *y, float *mean, float *var,
                                              const float *x, const float *gamma,
                                              const float *beta, float eps,
                                              const float *residual, int act, int64_t rows,
                                              int64_t C) {
    SN__CU_BEGIN(d, c);
    return bn_train_fwd_ep(d, c, y, mean, var, x, gamma, beta, eps, residual, act, rows, C,
                           "bn_train_fwd_ep");
}

extern "C" sn_status sn__bn_train_fwd_ep_bf16_cuda(sn__dev *d, sn_bf16 *y, float *mean,
                                                   float *var, const sn_bf16 *x,
                                                   const float *gamma, const float *beta,
                                                   float eps, const sn_bf16 *residual, int act,
                                                   int64_t rows, int64_t C) {
    SN__CU_BEGIN(d, c);
    return bn_train_fwd_ep(d, c, y, mean, var, x, gamma, beta, eps, residual, act, rows, C,
                           "bn_train_fwd_ep_bf16");
}

/* Gradients of bn_train_fwd_ep: the partial pass sums g and g*(x-mean) reading dy, y, x;
 * the apply pass writes dres and dx. */
template <typename T>
static sn_status bn_train_bwd_ep(sn__dev *d, struct sn__cuda *c, T *dx, float *dgamma,
                                 float *dbeta, T *dres, const T *dy, const T *y, const T *x,
                                 const float *gamma, const float *mean, const float *var,
                                 float eps, int act, unsigned set, int64_t rows, int64_t C,
                                 const char *what) {
    SN__CU_TRY(check_rc(d, rows, C, what));
    if (act != SN__ACT_NONE && act != SN__ACT_RELU && act != SN__ACT_RELU6)
        return sn__fail(d->ctx, SN_ERR_INVALID_ARG, "%s: act %d", what, act);
    if (rows == 0 || C == 0) return SN_OK;
    bool v4 = C % 4 == 0 && sn__aligned16(dy) && sn__aligned16(x) &&
              (act == SN__ACT_NONE || sn__aligned16(y)) && (!dx || sn__aligned16(dx)) &&
              (!dres || sn__aligned16(dres));
    float *k = (float *)c->scratch;
    if (dx || dgamma || dbeta) {
        double *part = NULL;
        unsigned slices = 0;
        chain_xmu_f<T> f = {dy, y, x, mean, act, C};
        SN__CU_TRY(partials<2>(d, c, rows, C, v4, f, what, &part, &slices));
        train_bwd_finish_kernel<<<(unsigned)((C + 255) / 256), 256, 0, c->stream>>>(
            k, dgamma, dbeta, part, slices, gamma, var, eps, rows, C);
        SN__CU_TRY(sn__cuda_launched(d, what));
    }
    if (!dx && !dres) return SN_OK;
    train_bwd_ep_apply_f<T> a = {dx, dres, dy, y, x, mean, k, act, set, C};
    return apply(d, c, rows, C, v4, a, what);
}

extern "C" sn_status sn__bn_train_bwd_ep_cuda(sn__dev *d, float *dx, float *dgamma,
                                              float *dbeta, float *dres, const float *dy,
                                              const float *y, const float *x,
                                              const float *gamma, const float *mean,
                                              const float *var, float eps, int act,
                                              unsigned set, int64_t rows, int64_t C) {
    SN__CU_BEGIN(d, c);
    return bn_train_bwd_ep(d, c, dx, dgamma, dbeta, dres, dy, y, x, gamma, mean, var, eps, act,
                           set, rows, C, "bn_train_bwd_ep");
}

extern "C" sn_status sn__bn_train_bwd_ep_bf16_cuda(sn__dev *d, sn_bf16 *dx, float *dgamma,
                                                   float *dbeta, sn_bf16 *dres,
                                                   const sn_bf16 *dy, const sn_bf16 *y,
                                                   const sn_bf16 *x, const float *gamma,
                                                   const float *mean, const float *var,
                                                   float eps, int act, unsigned set,
                                                   int64_t rows, int64_t C) {
    SN__CU_BEGIN(d, c);
    return bn_train_bwd_ep(d, c, dx, dgamma, dbeta, dres, dy, y, x, gamma, mean, var, eps, act,
                           set, rows, C, "bn_train_bwd_ep_bf16");
}

/* scale[c] = gamma[c] / sqrt(var[c] + eps): in float for the forward, through a double
 * 1/sqrt for the backward (the CPU reference's precisions). */
template <bool BWD>
static __global__ void infer_scale_kernel(float *scale, const float *gamma, const float *var,
                                          float eps, int64_t C) {
    int64_t ch = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (ch >= C) return;
    if (BWD) scale[ch] = (float)((double)par(gamma, ch, 1.0f) / sqrt((double)var[ch] + eps));
    else scale[ch] = par(gamma, ch, 1.0f) / sqrtf(var[ch] + eps);
}

extern "C" sn_status sn__bn_infer_fwd_cuda(sn__dev *d, float *y, const float *x,
                                           const float *gamma, const float *beta,
                                           const float *mean, const float *var, float eps,
                                           int64_t rows, int64_t C) {
    SN__CU_BEGIN(d, c);
    SN__CU_TRY(check_rc(d, rows, C, "bn_infer_fwd"));
    if (rows == 0 || C == 0) return SN_OK;
    if (coef_bytes(C) > c->scratch_bytes)
        return sn__fail(d->ctx, SN_ERR_UNSUPPORTED, "bn_infer_fwd: %lld channels",
                        (long long)C);
    float *scale = (float *)c->scratch;
    infer_scale_kernel<false><<<(unsigned)((C + 255) / 256), 256, 0, c->stream>>>(scale, gamma, var,
                                                                           eps, C);
    SN__CU_TRY(sn__cuda_launched(d, "bn_infer_fwd"));
    bool v4 = C % 4 == 0 && sn__aligned16(y) && sn__aligned16(x);
    norm_apply_f a = {y, x, mean, scale, beta, C};
    return apply(d, c, rows, C, v4, a, "bn_infer_fwd");
}

/* dgamma += sum(dy*(x-mean)) * rstd, dbeta += sum(dy). */
static __global__ void infer_bwd_finish_kernel(float *dgamma, float *dbeta, const double *part,
                                               unsigned slices, const float *var, float eps,
                                               int64_t C) {
    int64_t ch = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (ch >= C) return;
    double s1 = 0.0, s2 = 0.0;
    for (unsigned j = 0; j < slices; j++) {
        s1 += part[((int64_t)j * C + ch) * 2];
        s2 += part[((int64_t)j * C + ch) * 2 + 1];
    }
    if (dbeta) dbeta[ch] += (float)s1;
    if (dgamma) dgamma[ch] += (float)(s2 * (1.0 / sqrt((double)var[ch] + eps)));
}

extern "C" sn_status sn__bn_infer_bwd_cuda(sn__dev *d, float *dx, float *dgamma, float *dbeta,
                                           const float *dy, const float *x, const float *gamma,
                                           const float *mean, const float *var, float eps,
                                           int64_t rows, int64_t C) {
    SN__CU_BEGIN(d, c);
    SN__CU_TRY(check_rc(d, rows, C, "bn_infer_bwd"));
    if (rows == 0 || C == 0) return SN_OK;
    if (dgamma || dbeta) {
        bool v4 = C % 4 == 0 && sn__aligned16(dy) && sn__aligned16(x);
        double *part = NULL;
        unsigned slices = 0;
        dy_xmu_f f = {dy, x, mean, C};
        SN__CU_TRY(partials<2>(d, c, rows, C, v4, f, "bn_infer_bwd", &part, &slices));
        infer_bwd_finish_kernel<<<(unsigned)((C + 255) / 256), 256, 0, c->stream>>>(
            dgamma, dbeta, part, slices, var, eps, C);
        SN__CU_TRY(sn__cuda_launched(d, "bn_infer_bwd"));
    }
    if (!dx) return SN_OK;
    if (coef_bytes(C) > c->scratch_bytes)
        return sn__fail(d->ctx, SN_ERR_UNSUPPORTED, "bn_infer_bwd: %lld channels",
                        (long long)C);
    float *scale = (float *)c->scratch;
    infer_scale_kernel<true><<<(unsigned)((C + 255) / 256), 256, 0, c->stream>>>(scale, gamma, var,
                                                                           eps, C);
    SN__CU_TRY(sn__cuda_launched(d, "bn_infer_bwd"));
    bool v4 = C % 4 == 0 && sn__aligned16(dx) && sn__aligned16(dy);
    scale_acc_apply_f a = {dx, dy, scale, C};
    return apply(d, c, rows, C, v4, a, "bn_infer_bwd");
}

/* ---- moving statistics ------------------------------------------------------------------- */

/* Rounded exactly as the C expression m += (1-decay)*(mean-m) without fused multiply-adds,
 * so the moving statistics match the CPU's bit for bit. */
static __global__ void moving_kernel(float *mm, float *mv, const float *mean, const float *var,
                                     float decay, float var_factor, int64_t C) {
    int64_t ch = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (ch >= C) return;
    float a = __fsub_rn(1.0f, decay);
    mm[ch] = __fadd_rn(mm[ch], __fmul_rn(a, __fsub_rn(mean[ch], mm[ch])));
    float v = __fmul_rn(var[ch], var_factor);
    mv[ch] = __fadd_rn(mv[ch], __fmul_rn(a, __fsub_rn(v, mv[ch])));
}

extern "C" sn_status sn__bn_update_moving_cuda(sn__dev *d, float *moving_mean, float *moving_var,
                                               const float *mean, const float *var, float decay,
                                               float var_factor, int64_t C) {
    SN__CU_BEGIN(d, c);
    if (C < 0) return sn__fail(d->ctx, SN_ERR_INVALID_ARG, "bn_update_moving: C=%lld",
                               (long long)C);
    if (C == 0) return SN_OK;
    moving_kernel<<<(unsigned)((C + 255) / 256), 256, 0, c->stream>>>(
        moving_mean, moving_var, mean, var, decay, var_factor, C);
    return sn__cuda_launched(d, "bn_update_moving");
}
