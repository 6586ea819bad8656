/* dwconv.cu: depthwise 2-D convolution, hand-written (NHWC; activations float, or bf16 for the
 * _bf16 kernels).
 *
 * Shapes: x (N,H,W,C), w (R,S,C,M) i.e. (R,S,K) with K = C*M, y (N,P,Q,K); output channel
 * k = c*M + m reads input channel c = k / M.  Input cell of output (p,q), tap (r,s):
 * h = p*stride_h - pad_top + r*dil_h, w = q*stride_w - pad_left + s*dil_w; cells outside the
 * input count as zero, so any padding (TF's asymmetric SAME included) is exact.
 *
 * fwd:        one thread per output element, k fastest: x and w reads coalesce over c.
 * bwd_data:   one thread per input element gathers every (r,s,m) that reads it (no atomics),
 *             then adds once into dx.
 * bwd_filter: dw[r,s,k] sums over N*P*Q positions.  A block (32 channels x 8 position lanes)
 *             per (channel chunk, slice of positions) keeps a sum per tap in registers (up
 *             to 3x3; larger windows: a block per tap as well) and reduces in shared
 *             memory; with several slices the partial sums go to the workspace
 *             (dwconv2d_ws) and a second kernel adds them into dw in a fixed tree, so the
 *             result is deterministic.
 *
 * Every kernel and launcher is templated on T, the storage of the activations x, y, dy, dx:
 * float, or sn_bf16 for the _bf16 kernels (kernels.def), which decode on load (sn__ldf,
 * sn__ld), compute in float32 exactly as the float kernels do, and encode each output once
 * (sn__stf, sn__st); w, dw and the workspace's partial sums are float32 in both. */
#include <type_traits>
#include "cuda_internal.h"

struct dw_geo {
    int64_t N, H, W, C, K, R, S, M, P, Q, sh, sw, dh, dw, pt, pl;
};

static dw_geo geo_of(const sn__conv2d_dims *cd) {
    dw_geo g = {cd->N, cd->H, cd->W, cd->C, cd->K, cd->R, cd->S, cd->M,
                cd->P, cd->Q, cd->stride_h, cd->stride_w, cd->dil_h, cd->dil_w,
                cd->pad_top, cd->pad_left};
    return g;
}

#define UNPACK(I, g)                                                                         \
    I N = (I)g.N, H = (I)g.H, W = (I)g.W, C = (I)g.C, K = (I)g.K, R = (I)g.R, S = (I)g.S,   \
      M = (I)g.M, P = (I)g.P, Q = (I)g.Q, sh = (I)g.sh, sw = (I)g.sw, dh = (I)g.dh,          \
      dwl = (I)g.dw, pt = (I)g.pt, pl = (I)g.pl;                                             \
    (void)N; (void)H; (void)W; (void)C; (void)K; (void)R; (void)S; (void)M; (void)P;        \
    (void)Q; (void)sh; (void)sw; (void)dh; (void)dwl; (void)pt; (void)pl

template <typename I, typename T>
static __global__ void dw_fwd_kernel(T *__restrict__ y, const T *__restrict__ x,
                                     const float *__restrict__ wt, dw_geo g) {
    UNPACK(I, g);
    I total = N * P * Q * K;
    for (I i = (I)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (I)gridDim.x * blockDim.x) {
        I k = i % K, t = i / K;
        I q = t % Q;
        t /= Q;
        I p = t % P, n = t / P;
        I c = k / M;
        I h0 = p * sh - pt, w0 = q * sw - pl;
        float acc = 0.0f;
        for (I r = 0; r < R; r++) {
            I h = h0 + r * dh;
            if (h < 0 || h >= H) continue;
            const T *xr = x + (n * H + h) * W * C + c;
            const float *wr = wt + r * S * K + k;
            for (I s = 0; s < S; s++) {
                I w = w0 + s * dwl;
                if (w < 0 || w >= W) continue;
                acc += sn__ldf(xr + w * C) * wr[s * K];
            }
        }
        sn__stf(y + i, acc);
    }
}

template <typename I, typename T>
static __global__ void dw_bwd_data_kernel(T *__restrict__ dx, const T *__restrict__ dy,
                                          const float *__restrict__ wt, dw_geo g) {
    UNPACK(I, g);
    I total = N * H * W * C;
    for (I i = (I)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (I)gridDim.x * blockDim.x) {
        I c = i % C, t = i / C;
        I w = t % W;
        t /= W;
        I h = t % H, n = t / H;
        float acc = 0.0f;
        for (I r = 0; r < R; r++) {
            I th = h + pt - r * dh;             /* = p*sh */
            if (th < 0) break;                  /* decreases with r */
            if (th % sh) continue;
            I p = th / sh;
            if (p >= P) continue;
            for (I s = 0; s < S; s++) {
                I tw = w + pl - s * dwl;
                if (tw < 0) break;
                if (tw % sw) continue;
                I q = tw / sw;
                if (q >= Q) continue;
                const T *g_ = dy + ((n * P + p) * Q + q) * K + c * M;
                const float *w_ = wt + (r * S + s) * K + c * M;
                for (I m = 0; m < M; m++) acc += sn__ldf(g_ + m) * w_[m];
            }
        }
        sn__stf(dx + i, sn__ldf(dx + i) + acc);   /* the _bwd convention: += */
    }
}

/* M == 1 (every TF-slim depthwise layer) with C % 4 == 0 and 16-byte aligned tensors: a
 * thread takes 4 consecutive channels (sn__ld/sn__st<4> of x, w, dy, y, dx: float4, or 8 bytes
 * of bf16, aligned as the base is 16-byte aligned and the offset a multiple of 4 elements), so
 * the coordinates' integer divisions are done once per 4 outputs; each value sees the scalar
 * kernels' operations in their order.  bwd_data with stride 1 (S1) needs no division per tap. */
static __device__ __forceinline__ void fma4(float (&a)[4], const float (&x)[4],
                                            const float (&w)[4]) {
    a[0] += x[0] * w[0];
    a[1] += x[1] * w[1];
    a[2] += x[2] * w[2];
    a[3] += x[3] * w[3];
}

template <typename I, typename T>
static __global__ void dw_fwd4_kernel(T *__restrict__ y, const T *__restrict__ x,
                                      const float *__restrict__ wt, dw_geo g) {
    UNPACK(I, g);
    I C4 = C / 4, total = N * P * Q * C4;
    for (I i = (I)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (I)gridDim.x * blockDim.x) {
        I c = i % C4 * 4, t = i / C4;
        I q = t % Q;
        t /= Q;
        I p = t % P, n = t / P;
        I h0 = p * sh - pt, w0 = q * sw - pl;
        float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        for (I r = 0; r < R; r++) {
            I h = h0 + r * dh;
            if (h < 0 || h >= H) continue;
            const T *xr = x + (n * H + h) * W * C + c;
            const float *wr = wt + r * S * K + c;
            for (I s = 0; s < S; s++) {
                I w = w0 + s * dwl;
                if (w < 0 || w >= W) continue;
                float xv[4], wv[4];
                sn__ld<4>(xv, xr + w * C);
                sn__ld<4>(wv, wr + s * K);
                fma4(acc, xv, wv);
            }
        }
        sn__st<4>(y + (i / C4) * C + c, acc);
    }
}

template <typename I, bool S1, typename T>
static __global__ void dw_bwd_data4_kernel(T *__restrict__ dx, const T *__restrict__ dy,
                                           const float *__restrict__ wt, dw_geo g) {
    UNPACK(I, g);
    I C4 = C / 4, total = N * H * W * C4;
    for (I i = (I)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (I)gridDim.x * blockDim.x) {
        I c = i % C4 * 4, t = i / C4;
        I w = t % W;
        t /= W;
        I h = t % H, n = t / H;
        float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        for (I r = 0; r < R; r++) {
            I th = h + pt - r * dh;             /* = p*sh */
            if (th < 0) break;                  /* decreases with r */
            if (!S1 && th % sh) continue;
            I p = S1 ? th : th / sh;
            if (p >= P) continue;
            for (I s = 0; s < S; s++) {
                I tw = w + pl - s * dwl;
                if (tw < 0) break;
                if (!S1 && tw % sw) continue;
                I q = S1 ? tw : tw / sw;
                if (q >= Q) continue;
                float gv[4], wv[4];
                sn__ld<4>(gv, dy + ((n * P + p) * Q + q) * K + c);
                sn__ld<4>(wv, wt + (r * S + s) * K + c);
                fma4(acc, gv, wv);
            }
        }
        T *o = dx + (i / C4) * C + c;   /* the _bwd convention: += */
        float v[4];
        sn__ld<4>(v, o);
        v[0] += acc[0];
        v[1] += acc[1];
        v[2] += acc[2];
        v[3] += acc[3];
        sn__st<4>(o, v);
    }
}

/* Block (32, 8): x = channel lane, y = position lane.  grid (K chunks, R*S, slices). */
template <typename I, typename T>
static __global__ void dw_bwd_filter_kernel(float *out, bool accumulate,
                                            const T *__restrict__ dy,
                                            const T *__restrict__ x, dw_geo g, I per) {
    UNPACK(I, g);
    __shared__ float part[8][33];
    I k = (I)blockIdx.x * 32 + threadIdx.x;
    I rs = blockIdx.y, r = rs / S, s = rs % S;
    I pos = N * P * Q;
    I i0 = (I)blockIdx.z * per, i1 = i0 + per < pos ? i0 + per : pos;
    float acc = 0.0f;
    if (k < K) {
        I c = k / M;
        for (I i = i0 + threadIdx.y; i < i1; i += 8) {
            I q = i % Q, t = i / Q;
            I p = t % P, n = t / P;
            I h = p * sh - pt + r * dh, w = q * sw - pl + s * dwl;
            if (h < 0 || h >= H || w < 0 || w >= W) continue;
            acc += sn__ldf(dy + (i * K + k)) * sn__ldf(x + (((n * H + h) * W + w) * C + c));
        }
    }
    part[threadIdx.y][threadIdx.x] = acc;
    __syncthreads();
    if (threadIdx.y == 0 && k < K) {
        float t = 0.0f;
#pragma unroll
        for (int j = 0; j < 8; j++) t += part[j][threadIdx.x];
        if (accumulate) out[rs * K + k] += t;   /* single slice: straight into dw */
        else out[((I)blockIdx.z * R * S + rs) * K + k] = t;
    }
}

/* All taps at once (R*S <= DW_TAPS, MobileNet's 3x3): block (32 channels x 8 position
 * lanes) per (channel chunk, slice of positions); each thread keeps one sum per tap, so dy is
 * read once per position and the position's coordinates are worked out once, where the
 * per-tap kernel above reads dy and divides R*S times (on an H200, mobilenet_v1's 13
 * depthwise backward passes took 18 ms of a 42 ms step). */
enum { DW_TAPS = 9 };
template <typename I, typename T>
static __global__ void dw_bwd_filter_taps_kernel(float *out, bool accumulate,
                                                 const T *__restrict__ dy,
                                                 const T *__restrict__ x, dw_geo g, I per) {
    UNPACK(I, g);
    __shared__ float part[8][DW_TAPS][33];
    I k = (I)blockIdx.x * 32 + threadIdx.x;
    I pos = N * P * Q;
    I i0 = (I)blockIdx.y * per, i1 = i0 + per < pos ? i0 + per : pos;
    float acc[DW_TAPS];
#pragma unroll
    for (int t = 0; t < DW_TAPS; t++) acc[t] = 0.0f;
    if (k < K) {
        I c = k / M;
        for (I i = i0 + threadIdx.y; i < i1; i += 8) {
            I q = i % Q, t = i / Q;
            I p = t % P, n = t / P;
            float gy = sn__ldf(dy + (i * K + k));
            I h0 = p * sh - pt, w0 = q * sw - pl;
            I r = 0, s = 0;   /* tap = r*S + s, stepped without division */
#pragma unroll
            for (int tap = 0; tap < DW_TAPS; tap++) {
                if (tap >= R * S) break;
                I h = h0 + r * dh, w = w0 + s * dwl;
                if (h >= 0 && h < H && w >= 0 && w < W)
                    acc[tap] += gy * sn__ldf(x + (((n * H + h) * W + w) * C + c));
                if (++s == S) {
                    s = 0;
                    r++;
                }
            }
        }
    }
#pragma unroll
    for (int t = 0; t < DW_TAPS; t++) part[threadIdx.y][t][threadIdx.x] = acc[t];
    __syncthreads();
    /* 8 lanes x R*S taps: thread (x, y) finishes taps y, y+8 of channel x */
    for (int tap = threadIdx.y; tap < R * S; tap += 8) {
        if (k >= K) break;
        float s = 0.0f;
#pragma unroll
        for (int j = 0; j < 8; j++) s += part[j][tap][threadIdx.x];
        if (accumulate) out[tap * K + k] += s;   /* single slice: straight into dw */
        else out[((I)blockIdx.y * R * S + tap) * K + k] = s;
    }
}

/* dw[j] += the sum over slices of part[slice][j], j < n: block (32 j-lanes x 32 slice lanes),
 * each thread adds its strided slices, then a fixed tree over the 32 lanes (deterministic;
 * one thread per j walking up to 1024 slices was latency-bound). */
static __global__ void __launch_bounds__(1024) dw_filter_finish_tree_kernel(
    float *dw, const float *part, int slices, int64_t n) {
    __shared__ float sh[32][33];
    int64_t j = (int64_t)blockIdx.x * 32 + threadIdx.x;
    float t = 0.0f;
    if (j < n)
        for (int z = threadIdx.y; z < slices; z += 32) t += part[(int64_t)z * n + j];
    sh[threadIdx.y][threadIdx.x] = t;
    __syncthreads();
    for (int half = 16; half > 0; half /= 2) {
        if ((int)threadIdx.y < half) sh[threadIdx.y][threadIdx.x] += sh[threadIdx.y + half][threadIdx.x];
        __syncthreads();
    }
    if (threadIdx.y == 0 && j < n) dw[j] += sh[0][threadIdx.x];
}

static sn_status check(sn__dev *d, const sn__conv2d_dims *cd, const char *what) {
    const int64_t *v = &cd->N;
    for (int i = 0; i < (int)(sizeof *cd / sizeof(int64_t)); i++)
        if (v[i] < 0) return sn__fail(d->ctx, SN_ERR_INVALID_ARG, "%s: negative dimension", what);
    if (cd->stride_h < 1 || cd->stride_w < 1 || cd->dil_h < 1 || cd->dil_w < 1)
        return sn__fail(d->ctx, SN_ERR_INVALID_ARG, "%s: stride and dilation must be >= 1",
                        what);
    if (cd->M < 1 || cd->K != cd->C * cd->M)
        return sn__fail(d->ctx, SN_ERR_INVALID_ARG, "%s: K=%lld is not C*M = %lld*%lld", what,
                        (long long)cd->K, (long long)cd->C, (long long)cd->M);
    if (cd->R * cd->S > 65535)
        return sn__fail(d->ctx, SN_ERR_UNSUPPORTED, "%s: %lldx%lld window", what,
                        (long long)cd->R, (long long)cd->S);
    return SN_OK;
}

static bool small_geo(const sn__conv2d_dims *cd) {
    int64_t a = cd->N * cd->H * cd->W * cd->C, b = cd->N * cd->P * cd->Q * cd->K;
    int64_t e = (cd->P + cd->Q) * (cd->stride_h + cd->stride_w) +
                (cd->R + cd->S) * (cd->dil_h + cd->dil_w) + cd->pad_top + cd->pad_left +
                cd->H + cd->W + cd->R * cd->S * cd->K;
    return sn__small_index(a > b ? a : b) && sn__small_index(e);
}

/* The float4 kernels' condition: one output per input channel, 4 | C, aligned tensors. */
static bool vec4(const sn__conv2d_dims *cd, const void *a, const void *b, const void *w) {
    return cd->M == 1 && cd->C % 4 == 0 && sn__aligned16(a) && sn__aligned16(b) &&
           sn__aligned16(w);
}

/* Position slices for bwd_filter: enough blocks to fill the GPU, each thread >= 64 positions.
 * The all-taps kernel has R*S times fewer blocks per slice. */
static bool all_taps(const sn__conv2d_dims *cd) { return cd->R * cd->S <= DW_TAPS; }
static int64_t filter_slices(const struct sn__cuda *c, const sn__conv2d_dims *cd) {
    int64_t base = (cd->K + 31) / 32 * (all_taps(cd) ? 1 : cd->R * cd->S);
    if (base == 0) return 1;
    int64_t target = (int64_t)c->sm_count * (c->max_threads_per_sm / 256) * 2;
    int64_t s = (target + base - 1) / base;
    int64_t most = (cd->N * cd->P * cd->Q + 8 * 64 - 1) / (8 * 64);
    if (s > most) s = most;
    if (s > 1024) s = 1024;
    return s < 1 ? 1 : s;
}

extern "C" sn_status sn__dwconv2d_ws_cuda(sn__dev *d, const sn__conv2d_dims *cd,
                                          size_t *bytes) {
    SN__CU_BEGIN(d, c);
    *bytes = 0;
    SN__CU_TRY(check(d, cd, "dwconv2d_ws"));
    if (sn__cuda_dw_usable(d, cd)) return sn__cuda_dw_ws(d, cd, bytes);
    int64_t s = filter_slices(c, cd);
    if (s > 1) *bytes = (size_t)(s * cd->R * cd->S * cd->K) * sizeof(float);
    return SN_OK;
}

/* The launchers below take the activations' storage T (float, or sn_bf16 for the _bf16 kernels)
 * and `what`, the kernel's name for messages; the extern "C" kernels only enter the device
 * (SN__CU_BEGIN there, so that its message names them) and call one.  The cuDNN grouped route
 * (dw_cudnn) is float's only: kernels.def keeps the _bf16 kernels on ours, which need no more
 * workspace than dwconv2d_ws gives (only bwd_filter uses any: float32 partials of dw, at most
 * filter_slices of them and never more than d->ws_bytes holds). */
template <typename T>
static sn_status dw_fwd(sn__dev *d, struct sn__cuda *c, T *y, const T *x, const float *w,
                        const sn__conv2d_dims *cd, const char *what) {
    SN__CU_TRY(check(d, cd, what));
    int64_t total = cd->N * cd->P * cd->Q * cd->K;
    if (total == 0) return SN_OK;
    if constexpr (std::is_same<T, float>::value)
        if (sn__cuda_dw_usable(d, cd)) return sn__cuda_dw_fwd(d, y, x, w, cd);
    dw_geo g = geo_of(cd);
    if (vec4(cd, y, x, w)) {
        unsigned grid = sn__grid(c, total / 4, SN__BLOCK);
        if (small_geo(cd)) dw_fwd4_kernel<int32_t><<<grid, SN__BLOCK, 0, c->stream>>>(y, x, w, g);
        else dw_fwd4_kernel<int64_t><<<grid, SN__BLOCK, 0, c->stream>>>(y, x, w, g);
        return sn__cuda_launched(d, what);
    }
    unsigned grid = sn__grid(c, total, SN__BLOCK);
    if (small_geo(cd)) dw_fwd_kernel<int32_t><<<grid, SN__BLOCK, 0, c->stream>>>(y, x, w, g);
    else dw_fwd_kernel<int64_t><<<grid, SN__BLOCK, 0, c->stream>>>(y, x, w, g);
    return sn__cuda_launched(d, what);
}

extern "C" sn_status sn__dwconv2d_fwd_cuda(sn__dev *d, float *y, const float *x, const float *w,
                                           const sn__conv2d_dims *cd) {
    SN__CU_BEGIN(d, c);
    return dw_fwd(d, c, y, x, w, cd, "dwconv2d_fwd");
}

extern "C" sn_status sn__dwconv2d_fwd_bf16_cuda(sn__dev *d, sn_bf16 *y, const sn_bf16 *x,
                                                const float *w, const sn__conv2d_dims *cd) {
    SN__CU_BEGIN(d, c);
    return dw_fwd(d, c, y, x, w, cd, "dwconv2d_fwd_bf16");
}

/* The fused forward of inference nets: dwconv2d_fwd, then the epilogue on y. */
extern "C" sn_status sn__dwconv2d_fwd_ep_cuda(sn__dev *d, float *y, const float *x,
                                              const float *w, const sn__epilogue *ep,
                                              const sn__conv2d_dims *cd) {
    SN__CU_TRY(sn__dwconv2d_fwd_cuda(d, y, x, w, cd));
    return sn__cuda_epilogue(d, y, ep, cd->N * cd->P * cd->Q, cd->K);
}

template <typename T>
static sn_status dw_bwd_data(sn__dev *d, struct sn__cuda *c, T *dx, const T *dy, const float *w,
                             const sn__conv2d_dims *cd, const char *what) {
    SN__CU_TRY(check(d, cd, what));
    int64_t total = cd->N * cd->H * cd->W * cd->C;
    if (total == 0 || cd->P == 0 || cd->Q == 0) return SN_OK;
    if constexpr (std::is_same<T, float>::value)
        if (sn__cuda_dw_usable(d, cd)) return sn__cuda_dw_bwd_data(d, dx, dy, w, cd);
    dw_geo g = geo_of(cd);
    if (vec4(cd, dx, dy, w)) {
        unsigned grid = sn__grid(c, total / 4, SN__BLOCK);
        bool s1 = cd->stride_h == 1 && cd->stride_w == 1, small = small_geo(cd);
        if (small && s1)
            dw_bwd_data4_kernel<int32_t, true><<<grid, SN__BLOCK, 0, c->stream>>>(dx, dy, w, g);
        else if (small)
            dw_bwd_data4_kernel<int32_t, false><<<grid, SN__BLOCK, 0, c->stream>>>(dx, dy, w, g);
        else if (s1)
            dw_bwd_data4_kernel<int64_t, true><<<grid, SN__BLOCK, 0, c->stream>>>(dx, dy, w, g);
        else
            dw_bwd_data4_kernel<int64_t, false><<<grid, SN__BLOCK, 0, c->stream>>>(dx, dy, w, g);
        return sn__cuda_launched(d, what);
    }
    unsigned grid = sn__grid(c, total, SN__BLOCK);
    if (small_geo(cd))
        dw_bwd_data_kernel<int32_t><<<grid, SN__BLOCK, 0, c->stream>>>(dx, dy, w, g);
    else
        dw_bwd_data_kernel<int64_t><<<grid, SN__BLOCK, 0, c->stream>>>(dx, dy, w, g);
    return sn__cuda_launched(d, what);
}

extern "C" sn_status sn__dwconv2d_bwd_data_cuda(sn__dev *d, float *dx, const float *dy,
                                                const float *w, const sn__conv2d_dims *cd) {
    SN__CU_BEGIN(d, c);
    return dw_bwd_data(d, c, dx, dy, w, cd, "dwconv2d_bwd_data");
}

extern "C" sn_status sn__dwconv2d_bwd_data_bf16_cuda(sn__dev *d, sn_bf16 *dx, const sn_bf16 *dy,
                                                     const float *w,
                                                     const sn__conv2d_dims *cd) {
    SN__CU_BEGIN(d, c);
    return dw_bwd_data(d, c, dx, dy, w, cd, "dwconv2d_bwd_data_bf16");
}

template <typename T>
static sn_status dw_bwd_filter(sn__dev *d, struct sn__cuda *c, float *dw, const T *dy,
                               const T *x, const sn__conv2d_dims *cd, const char *what) {
    SN__CU_TRY(check(d, cd, what));
    int64_t rsk = cd->R * cd->S * cd->K;
    int64_t pos = cd->N * cd->P * cd->Q;
    if (rsk == 0 || pos == 0) return SN_OK;
    if constexpr (std::is_same<T, float>::value)
        if (sn__cuda_dw_usable(d, cd)) return sn__cuda_dw_bwd_filter(d, dw, dy, x, cd);
    int64_t slices = filter_slices(c, cd);
    int64_t room = (int64_t)(d->ws_bytes / ((size_t)rsk * sizeof(float)));
    if (slices > room) slices = room;      /* a smaller workspace: fewer slices */
    if (slices < 2) slices = 1;
    int64_t per = (pos + slices - 1) / slices;
    slices = (pos + per - 1) / per;
    dw_geo g = geo_of(cd);
    dim3 block(32, 8);
    float *out = slices == 1 ? dw : (float *)d->ws;
    bool acc = slices == 1;
    bool small = small_geo(cd) && sn__small_index(slices * rsk);
    if (all_taps(cd)) {
        dim3 grid((unsigned)((cd->K + 31) / 32), (unsigned)slices);
        if (small)
            dw_bwd_filter_taps_kernel<int32_t><<<grid, block, 0, c->stream>>>(out, acc, dy, x,
                                                                              g, (int32_t)per);
        else
            dw_bwd_filter_taps_kernel<int64_t><<<grid, block, 0, c->stream>>>(out, acc, dy, x,
                                                                              g, per);
    } else {
        dim3 grid((unsigned)((cd->K + 31) / 32), (unsigned)(cd->R * cd->S), (unsigned)slices);
        if (small)
            dw_bwd_filter_kernel<int32_t><<<grid, block, 0, c->stream>>>(out, acc, dy, x, g,
                                                                         (int32_t)per);
        else
            dw_bwd_filter_kernel<int64_t><<<grid, block, 0, c->stream>>>(out, acc, dy, x, g,
                                                                         per);
    }
    SN__CU_TRY(sn__cuda_launched(d, what));
    if (slices == 1) return SN_OK;
    dw_filter_finish_tree_kernel<<<(unsigned)((rsk + 31) / 32), dim3(32, 32), 0, c->stream>>>(
        dw, (const float *)d->ws, (int)slices, rsk);
    return sn__cuda_launched(d, what);
}

extern "C" sn_status sn__dwconv2d_bwd_filter_cuda(sn__dev *d, float *dw, const float *dy,
                                                  const float *x, const sn__conv2d_dims *cd) {
    SN__CU_BEGIN(d, c);
    return dw_bwd_filter(d, c, dw, dy, x, cd, "dwconv2d_bwd_filter");
}

extern "C" sn_status sn__dwconv2d_bwd_filter_bf16_cuda(sn__dev *d, float *dw, const sn_bf16 *dy,
                                                       const sn_bf16 *x,
                                                       const sn__conv2d_dims *cd) {
    SN__CU_BEGIN(d, c);
    return dw_bwd_filter(d, c, dw, dy, x, cd, "dwconv2d_bwd_filter_bf16");
}
