/* eltwise.cu: elementwise kernels on n floats (any layout): relu, relu6, hard swish, hard
 * sigmoid, add, scale, accum, dropout; the squeeze-excite gate; and the fused forwards'
 * per-channel epilogue.  Forward kernels overwrite, backward
 * kernels accumulate (dx += ...).
 *
 * One grid-stride template serves them all: each thread moves float4s when every pointer is
 * 16-byte aligned (cudaMalloc'd buffers and most slices are), with a scalar tail. */
#include "cuda_internal.h"

/* y[i] = f(a[i], b[i], c[i]) for the first NIN inputs; y may alias a (the += kernels). */
template <int NIN, class F>
static __global__ void map_kernel(float *y, const float *a, const float *b, const float *c,
                                  int64_t n, F f) {
    int64_t tid = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = tid; i < n; i += stride) {
        float va = a[i];
        float vb = NIN > 1 ? b[i] : 0.0f;
        float vc = NIN > 2 ? c[i] : 0.0f;
        y[i] = f(va, vb, vc);
    }
}

template <int NIN, class F>
static __global__ void map4_kernel(float *y, const float *a, const float *b, const float *c,
                                   int64_t n, F f) {
    int64_t tid = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    int64_t stride = (int64_t)gridDim.x * blockDim.x;
    int64_t n4 = n >> 2;
    for (int64_t i = tid; i < n4; i += stride) {
        float4 va = ((const float4 *)a)[i];
        float4 vb = NIN > 1 ? ((const float4 *)b)[i] : make_float4(0, 0, 0, 0);
        float4 vc = NIN > 2 ? ((const float4 *)c)[i] : make_float4(0, 0, 0, 0);
        float4 r;
        r.x = f(va.x, vb.x, vc.x);
        r.y = f(va.y, vb.y, vc.y);
        r.z = f(va.z, vb.z, vc.z);
        r.w = f(va.w, vb.w, vc.w);
        ((float4 *)y)[i] = r;
    }
    for (int64_t i = (n4 << 2) + tid; i < n; i += stride) {
        float va = a[i];
        float vb = NIN > 1 ? b[i] : 0.0f;
        float vc = NIN > 2 ? c[i] : 0.0f;
        y[i] = f(va, vb, vc);
    }
}

template <int NIN, class F>
static sn_status map(sn__dev *d, const char *what, float *y, const float *a, const float *b,
                     const float *c3, int64_t n, F f) {
    SN__CU_BEGIN(d, c);
    if (n < 0) return sn__fail(d->ctx, SN_ERR_INVALID_ARG, "%s: n = %lld", what, (long long)n);
    if (n == 0) return SN_OK;
    bool v4 = sn__aligned16(y) && sn__aligned16(a) && (NIN < 2 || sn__aligned16(b)) &&
              (NIN < 3 || sn__aligned16(c3));
    if (v4)
        map4_kernel<NIN><<<sn__grid(c, n / 4 + 1, SN__BLOCK), SN__BLOCK, 0, c->stream>>>(
            y, a, b, c3, n, f);
    else
        map_kernel<NIN><<<sn__grid(c, n, SN__BLOCK), SN__BLOCK, 0, c->stream>>>(y, a, b, c3,
                                                                                 n, f);
    return sn__cuda_launched(d, what);
}

struct relu_f {
    __device__ float operator()(float x, float, float) const { return x > 0.0f ? x : 0.0f; }
};
struct relu_bwd_f {   /* (dx, dy, y) */
    __device__ float operator()(float dx, float dy, float y) const {
        return dx + (y > 0.0f ? dy : 0.0f);
    }
};
struct relu6_f {
    __device__ float operator()(float x, float, float) const {
        return x > 0.0f ? (x < 6.0f ? x : 6.0f) : 0.0f;
    }
};
struct relu6_bwd_f {
    __device__ float operator()(float dx, float dy, float y) const {
        return dx + (y > 0.0f && y < 6.0f ? dy : 0.0f);
    }
};
struct hard_swish_f {
    __device__ float operator()(float x, float, float) const { return sn__hard_swish(x); }
};
/* (dx, dy, x): the CPU's expression with its roundings (no FMA contraction). */
struct hard_swish_bwd_f {
    __device__ float operator()(float dx, float dy, float x) const {
        float t = __fadd_rn(x, 3.0f), g = __fmul_rn(dy, SN__HARD_SWISH_SCALE);
        float v = __fmul_rn(g, sn__relu6f(t));
        if (t > 0.0f && t < 6.0f) v = __fadd_rn(v, __fmul_rn(x, g));
        return __fadd_rn(dx, v);
    }
};
struct hard_sigmoid_f {
    __device__ float operator()(float x, float, float) const { return sn__hard_sigmoid(x); }
};
struct hard_sigmoid_bwd_f {
    __device__ float operator()(float dx, float dy, float x) const {
        float t = __fadd_rn(x, 3.0f);
        return __fadd_rn(dx, t > 0.0f && t < 6.0f ? __fmul_rn(dy, SN__HARD_SIGMOID_SCALE)
                                                  : 0.0f);
    }
};
struct add_f {
    __device__ float operator()(float a, float b, float) const { return a + b; }
};
struct scale_f {
    float alpha;
    __device__ float operator()(float x, float, float) const { return alpha * x; }
};
struct accum_f {
    float alpha;
    __device__ float operator()(float dx, float dy, float) const { return dx + alpha * dy; }
};
struct mul_acc_f {    /* (dx, dy, mask) */
    __device__ float operator()(float dx, float dy, float m) const { return dx + dy * m; }
};

extern "C" sn_status sn__relu_fwd_cuda(sn__dev *d, float *y, const float *x, int64_t n) {
    return map<1>(d, "relu_fwd", y, x, NULL, NULL, n, relu_f());
}
extern "C" sn_status sn__relu_bwd_cuda(sn__dev *d, float *dx, const float *dy, const float *y,
                                       int64_t n) {
    return map<3>(d, "relu_bwd", dx, dx, dy, y, n, relu_bwd_f());
}
extern "C" sn_status sn__relu6_fwd_cuda(sn__dev *d, float *y, const float *x, int64_t n) {
    return map<1>(d, "relu6_fwd", y, x, NULL, NULL, n, relu6_f());
}
extern "C" sn_status sn__relu6_bwd_cuda(sn__dev *d, float *dx, const float *dy, const float *y,
                                        int64_t n) {
    return map<3>(d, "relu6_bwd", dx, dx, dy, y, n, relu6_bwd_f());
}
extern "C" sn_status sn__hard_swish_fwd_cuda(sn__dev *d, float *y, const float *x, int64_t n) {
    return map<1>(d, "hard_swish_fwd", y, x, NULL, NULL, n, hard_swish_f());
}
extern "C" sn_status sn__hard_swish_bwd_cuda(sn__dev *d, float *dx, const float *dy,
                                             const float *x, int64_t n) {
    return map<3>(d, "hard_swish_bwd", dx, dx, dy, x, n, hard_swish_bwd_f());
}
extern "C" sn_status sn__hard_sigmoid_fwd_cuda(sn__dev *d, float *y, const float *x,
                                               int64_t n) {
    return map<1>(d, "hard_sigmoid_fwd", y, x, NULL, NULL, n, hard_sigmoid_f());
}
extern "C" sn_status sn__hard_sigmoid_bwd_cuda(sn__dev *d, float *dx, const float *dy,
                                               const float *x, int64_t n) {
    return map<3>(d, "hard_sigmoid_bwd", dx, dx, dy, x, n, hard_sigmoid_bwd_f());
}
extern "C" sn_status sn__add_fwd_cuda(sn__dev *d, float *y, const float *a, const float *b,
                                      int64_t n) {
    return map<2>(d, "add_fwd", y, a, b, NULL, n, add_f());
}
extern "C" sn_status sn__scale_fwd_cuda(sn__dev *d, float *y, const float *x, float alpha,
                                        int64_t n) {
    scale_f f = {alpha};
    return map<1>(d, "scale_fwd", y, x, NULL, NULL, n, f);
}
extern "C" sn_status sn__accum_cuda(sn__dev *d, float *dx, const float *dy, float alpha,
                                    int64_t n) {
    accum_f f = {alpha};
    return map<2>(d, "accum", dx, dx, dy, NULL, n, f);
}

/* ---- dropout ------------------------------------------------------------------------------ */

/* mask[i] = (u(seed, first + i) < keep) / keep, y[i] = x[i] * mask[i]: the same draw as the
 * CPU's. */
static __global__ void dropout_fwd_kernel(float *y, float *mask, const float *x, float keep,
                                          float inv_keep, uint64_t seed, uint64_t first,
                                          int64_t n) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        float m = sn__uniform01(seed, first + (uint64_t)i) < keep ? inv_keep : 0.0f;
        mask[i] = m;
        y[i] = x[i] * m;
    }
}

static __global__ void dropout_fwd4_kernel(float *y, float *mask, const float *x, float keep,
                                           float inv_keep, uint64_t seed, uint64_t first,
                                           int64_t n) {
    int64_t tid = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    int64_t stride = (int64_t)gridDim.x * blockDim.x;
    int64_t n4 = n >> 2;
    for (int64_t i = tid; i < n4; i += stride) {
        float4 v = ((const float4 *)x)[i], m;
        uint64_t j = first + ((uint64_t)i << 2);
        m.x = sn__uniform01(seed, j) < keep ? inv_keep : 0.0f;
        m.y = sn__uniform01(seed, j + 1) < keep ? inv_keep : 0.0f;
        m.z = sn__uniform01(seed, j + 2) < keep ? inv_keep : 0.0f;
        m.w = sn__uniform01(seed, j + 3) < keep ? inv_keep : 0.0f;
        ((float4 *)mask)[i] = m;
        ((float4 *)y)[i] = make_float4(v.x * m.x, v.y * m.y, v.z * m.z, v.w * m.w);
    }
    for (int64_t i = (n4 << 2) + tid; i < n; i += stride) {
        float m = sn__uniform01(seed, first + (uint64_t)i) < keep ? inv_keep : 0.0f;
        mask[i] = m;
        y[i] = x[i] * m;
    }
}

extern "C" sn_status sn__dropout_fwd_cuda(sn__dev *d, float *y, float *mask, const float *x,
                                          float keep, uint64_t seed, uint64_t first, int64_t n) {
    SN__CU_BEGIN(d, c);
    if (n < 0 || !(keep > 0.0f && keep <= 1.0f))
        return sn__fail(d->ctx, SN_ERR_INVALID_ARG, "dropout_fwd: keep = %g, n = %lld",
                        (double)keep, (long long)n);
    if (n == 0) return SN_OK;
    float inv = 1.0f / keep;
    if (sn__aligned16(y) && sn__aligned16(mask) && sn__aligned16(x))
        dropout_fwd4_kernel<<<sn__grid(c, n / 4 + 1, SN__BLOCK), SN__BLOCK, 0, c->stream>>>(
            y, mask, x, keep, inv, seed, first, n);
    else
        dropout_fwd_kernel<<<sn__grid(c, n, SN__BLOCK), SN__BLOCK, 0, c->stream>>>(
            y, mask, x, keep, inv, seed, first, n);
    return sn__cuda_launched(d, "dropout_fwd");
}

extern "C" sn_status sn__dropout_bwd_cuda(sn__dev *d, float *dx, const float *dy,
                                          const float *mask, int64_t n) {
    return map<3>(d, "dropout_bwd", dx, dx, dy, mask, n, mul_acc_f());
}

/* ---- the squeeze-excite gate: x (N, HW, C) times s (N, C) --------------------------------- */

/* y[i] = x[i] * s[n, c] (dx[i] += dy[i] * s[n, c] when acc): i = (n * HW + p) * C + c. */
template <bool ACC>
static __global__ void gate_kernel(float *y, const float *x, const float *s, int64_t n,
                                   int64_t HWC, int64_t C) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        float v = __fmul_rn(x[i], s[(i / HWC) * C + i % C]);
        y[i] = ACC ? __fadd_rn(y[i], v) : v;
    }
}

/* ds[n, c] += sum over p of x * dy: block (32 channels, GATE_ROWS position lanes) per
 * (channel block, n); each lane sums every GATE_ROWS-th position in double, then the lanes
 * are added in a fixed order (deterministic). */
enum { GATE_ROWS = 8 };
static __global__ void gate_ds_kernel(float *ds, const float *dy, const float *x, int64_t HW,
                                      int64_t C) {
    __shared__ double part[GATE_ROWS][32];
    int64_t c = (int64_t)blockIdx.x * 32 + threadIdx.x, n = blockIdx.y;
    double acc = 0.0;
    if (c < C)
        for (int64_t p = threadIdx.y; p < HW; p += GATE_ROWS) {
            int64_t e = (n * HW + p) * C + c;
            acc += (double)__fmul_rn(x[e], dy[e]);
        }
    part[threadIdx.y][threadIdx.x] = acc;
    __syncthreads();
    if (threadIdx.y == 0 && c < C) {
        double t = 0.0;
        for (int r = 0; r < GATE_ROWS; r++) t += part[r][threadIdx.x];
        ds[n * C + c] = __fadd_rn(ds[n * C + c], (float)t);
    }
}

extern "C" sn_status sn__channel_gate_fwd_cuda(sn__dev *d, float *y, const float *x,
                                               const float *s, int64_t N, int64_t HW,
                                               int64_t C) {
    SN__CU_BEGIN(d, c);
    if (N < 0 || HW < 0 || C < 0)
        return sn__fail(d->ctx, SN_ERR_INVALID_ARG, "channel_gate_fwd: N = %lld, HW = %lld, "
                        "C = %lld", (long long)N, (long long)HW, (long long)C);
    int64_t n = N * HW * C;
    if (n == 0) return SN_OK;
    gate_kernel<false><<<sn__grid(c, n, SN__BLOCK), SN__BLOCK, 0, c->stream>>>(y, x, s, n,
                                                                              HW * C, C);
    return sn__cuda_launched(d, "channel_gate_fwd");
}

extern "C" sn_status sn__channel_gate_bwd_cuda(sn__dev *d, float *dx, float *ds,
                                               const float *dy, const float *x, const float *s,
                                               int64_t N, int64_t HW, int64_t C) {
    SN__CU_BEGIN(d, c);
    if (N < 0 || HW < 0 || C < 0 || N > 65535)
        return sn__fail(d->ctx, SN_ERR_INVALID_ARG, "channel_gate_bwd: N = %lld, HW = %lld, "
                        "C = %lld", (long long)N, (long long)HW, (long long)C);
    int64_t n = N * HW * C;
    if (N * C == 0) return SN_OK;
    if (dx && n > 0) {
        gate_kernel<true><<<sn__grid(c, n, SN__BLOCK), SN__BLOCK, 0, c->stream>>>(dx, dy, s,
                                                                                 n, HW * C, C);
        sn_status st = sn__cuda_launched(d, "channel_gate_bwd dx");
        if (st != SN_OK) return st;
    }
    if (ds) {
        dim3 grid((unsigned)((C + 31) / 32), (unsigned)N), block(32, GATE_ROWS);
        gate_ds_kernel<<<grid, block, 0, c->stream>>>(ds, dy, x, HW, C);
        return sn__cuda_launched(d, "channel_gate_bwd ds");
    }
    return SN_OK;
}

/* ---- the fused forwards' epilogue (sn__epilogue in kernels.h) ------------------------------ */

/* y = act((y - center) * scale + shift + residual) on (rows, C), the CPU's operations with
 * the CPU's rounding: the _rn intrinsics keep nvcc from contracting them into an FMA, so a
 * fused kernel and the separate batch norm, bias, add and relu kernels it replaces differ
 * only by the product. */
static __global__ void epilogue_kernel(float *y, sn__epilogue ep, int64_t n, int64_t C) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        int64_t ch = i % C;
        float center = 0.0f, scale = 1.0f, shift = 0.0f;
        if (ep.mean) {
            center = ep.mean[ch];
            scale = __fdiv_rn(ep.gamma ? ep.gamma[ch] : 1.0f,
                              __fsqrt_rn(__fadd_rn(ep.var[ch], ep.eps)));
            shift = ep.beta ? ep.beta[ch] : 0.0f;
        } else if (ep.bias) {
            shift = ep.bias[ch];
        }
        float v = y[i];
        if (ep.mean || ep.bias) v = __fadd_rn(__fmul_rn(__fsub_rn(v, center), scale), shift);
        if (ep.residual) v = __fadd_rn(v, ep.residual[i]);
        if (ep.act == SN__ACT_RELU) v = v > 0.0f ? v : 0.0f;
        else if (ep.act == SN__ACT_RELU6) v = v > 0.0f ? (v < 6.0f ? v : 6.0f) : 0.0f;
        else if (ep.act == SN__ACT_HARD_SWISH) v = sn__hard_swish(v);
        y[i] = v;
    }
}

extern "C" sn_status sn__cuda_epilogue(sn__dev *d, float *y, const sn__epilogue *ep,
                                       int64_t rows, int64_t C) {
    SN__CU_BEGIN(d, c);
    if (rows < 0 || C < 0)
        return sn__fail(d->ctx, SN_ERR_INVALID_ARG, "epilogue: rows = %lld, C = %lld",
                        (long long)rows, (long long)C);
    if (!ep || rows * C == 0) return SN_OK;
    epilogue_kernel<<<sn__grid(c, rows * C, SN__BLOCK), SN__BLOCK, 0, c->stream>>>(y, *ep,
                                                                                  rows * C, C);
    return sn__cuda_launched(d, "epilogue");
}
