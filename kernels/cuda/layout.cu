/* layout.cu: channel concatenation, spatial zero padding, mean over H*W.
 *
 * Shapes: x (N,H,W,C) or (rows,C), NHWC.  Forward kernels overwrite, backward kernels
 * accumulate.  Index arithmetic is 32-bit when the tensors allow it (faster divisions) and
 * 64-bit otherwise; channel runs move as float4 when counts and pointers are 16-byte aligned.
 * pad_fwd/pad_bwd accept negative bottom/right (a crop): conv.cu uses them that way. */
#include "cuda_internal.h"

template <int V> struct vec;
template <> struct vec<1> { typedef float t; };
template <> struct vec<4> { typedef float4 t; };

static __device__ __forceinline__ float4 operator+(float4 a, float4 b) {
    return make_float4(a.x + b.x, a.y + b.y, a.z + b.z, a.w + b.w);
}
static __device__ __forceinline__ float4 zero_v(float4) { return make_float4(0, 0, 0, 0); }
static __device__ __forceinline__ float zero_v(float) { return 0.0f; }

/* ---- concat ------------------------------------------------------------------------------ */

/* Units of V floats: x row stride cx, y row stride cy, offset off (all in units). */
template <typename I, int V>
static __global__ void concat_fwd_kernel(float *y, const float *x, I rows, I cx, I cy, I off) {
    typedef typename vec<V>::t T;
    const T *xv = (const T *)x;
    T *yv = (T *)y;
    I n = rows * cx;
    for (I i = (I)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (I)gridDim.x * blockDim.x) {
        I r = i / cx, ch = i - r * cx;
        yv[r * cy + off + ch] = xv[i];
    }
}

template <typename I, int V>
static __global__ void concat_bwd_kernel(float *dx, const float *dy, I rows, I cx, I cy, I off) {
    typedef typename vec<V>::t T;
    T *xv = (T *)dx;
    const T *yv = (const T *)dy;
    I n = rows * cx;
    for (I i = (I)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (I)gridDim.x * blockDim.x) {
        I r = i / cx, ch = i - r * cx;
        xv[i] = xv[i] + yv[r * cy + off + ch];
    }
}

template <bool BWD>
static sn_status concat(sn__dev *d, float *x, const float *y_or_dy, float *y, int64_t rows,
                        int64_t Cx, int64_t Cy, int64_t off, const char *what) {
    SN__CU_BEGIN(d, c);
    if (rows < 0 || Cx < 0 || off < 0 || off + Cx > Cy)
        return sn__fail(d->ctx, SN_ERR_INVALID_ARG,
                        "%s: channels [%lld,%lld) outside 0..%lld", what, (long long)off,
                        (long long)(off + Cx), (long long)Cy);
    if (rows == 0 || Cx == 0) return SN_OK;
    const void *yp = BWD ? (const void *)y_or_dy : (const void *)y;
    bool v4 = Cx % 4 == 0 && Cy % 4 == 0 && off % 4 == 0 && sn__aligned16(x) &&
              sn__aligned16(yp);
    int V = v4 ? 4 : 1;
    int64_t n = rows * Cx / V;
    unsigned g = sn__grid(c, n, SN__BLOCK);
#define LAUNCH(I, VV)                                                                       \
    do {                                                                                    \
        if (BWD)                                                                            \
            concat_bwd_kernel<I, VV><<<g, SN__BLOCK, 0, c->stream>>>(                       \
                x, y_or_dy, (I)rows, (I)(Cx / VV), (I)(Cy / VV), (I)(off / VV));            \
        else                                                                                \
            concat_fwd_kernel<I, VV><<<g, SN__BLOCK, 0, c->stream>>>(                       \
                y, x, (I)rows, (I)(Cx / VV), (I)(Cy / VV), (I)(off / VV));                  \
    } while (0)
    bool small = sn__small_index(rows * Cy);
    if (v4) {
        if (small) LAUNCH(int32_t, 4);
        else LAUNCH(int64_t, 4);
    } else {
        if (small) LAUNCH(int32_t, 1);
        else LAUNCH(int64_t, 1);
    }
#undef LAUNCH
    return sn__cuda_launched(d, what);
}

extern "C" sn_status sn__concat_fwd_cuda(sn__dev *d, float *y, const float *x, int64_t rows,
                                         int64_t Cx, int64_t Cy, int64_t off) {
    return concat<false>(d, (float *)x, NULL, y, rows, Cx, Cy, off, "concat_fwd");
}

extern "C" sn_status sn__concat_bwd_cuda(sn__dev *d, float *dx, const float *dy, int64_t rows,
                                         int64_t Cx, int64_t Cy, int64_t off) {
    return concat<true>(d, dx, dy, NULL, rows, Cx, Cy, off, "concat_bwd");
}

/* ---- pad --------------------------------------------------------------------------------- */

/* y (N,Hy,Wy,C) from x (N,H,W,C): y[n,h,w] = x[n,h-top,w-left] inside x, else 0.  C in
 * units of V floats. */
template <typename I, int V>
static __global__ void pad_fwd_kernel(float *y, const float *x, I N, I H, I W, I C, I Hy, I Wy,
                                      I top, I left) {
    typedef typename vec<V>::t T;
    const T *xv = (const T *)x;
    T *yv = (T *)y;
    I n_out = N * Hy * Wy * C;
    for (I i = (I)blockIdx.x * blockDim.x + threadIdx.x; i < n_out;
         i += (I)gridDim.x * blockDim.x) {
        I ch = i % C, t = i / C;
        I wy = t % Wy;
        t /= Wy;
        I hy = t % Hy, n = t / Hy;
        I h = hy - top, w = wy - left;
        T v = zero_v(T());
        if (h >= 0 && h < H && w >= 0 && w < W) v = xv[((n * H + h) * W + w) * C + ch];
        yv[i] = v;
    }
}

/* dx[n,h,w] += dy[n,h+top,w+left] where that is inside dy (N,Hy,Wy,C). */
template <typename I, int V>
static __global__ void pad_bwd_kernel(float *dx, const float *dy, I N, I H, I W, I C, I Hy,
                                      I Wy, I top, I left) {
    typedef typename vec<V>::t T;
    T *xv = (T *)dx;
    const T *yv = (const T *)dy;
    I n_in = N * H * W * C;
    for (I i = (I)blockIdx.x * blockDim.x + threadIdx.x; i < n_in;
         i += (I)gridDim.x * blockDim.x) {
        I ch = i % C, t = i / C;
        I w = t % W;
        t /= W;
        I h = t % H, n = t / H;
        I hy = h + top, wy = w + left;
        if (hy >= 0 && hy < Hy && wy >= 0 && wy < Wy)
            xv[i] = xv[i] + yv[((n * Hy + hy) * Wy + wy) * C + ch];
    }
}

template <bool BWD>
static sn_status pad(sn__dev *d, float *out, const float *in, int64_t N, int64_t H, int64_t W,
                     int64_t C, int64_t top, int64_t bottom, int64_t left, int64_t right,
                     const char *what) {
    SN__CU_BEGIN(d, c);
    int64_t Hy = H + top + bottom, Wy = W + left + right;
    if (N < 0 || H < 0 || W < 0 || C < 0 || Hy < 0 || Wy < 0)
        return sn__fail(d->ctx, SN_ERR_INVALID_ARG, "%s: negative size", what);
    int64_t work = BWD ? N * H * W * C : N * Hy * Wy * C;
    if (work == 0) return SN_OK;
    bool v4 = C % 4 == 0 && sn__aligned16(out) && sn__aligned16(in);
    int V = v4 ? 4 : 1;
    unsigned g = sn__grid(c, work / V, SN__BLOCK);
    bool small = sn__small_index(N * (H > Hy ? H : Hy) * (W > Wy ? W : Wy) * C);
#define LAUNCH(I, VV)                                                                       \
    do {                                                                                    \
        if (BWD)                                                                            \
            pad_bwd_kernel<I, VV><<<g, SN__BLOCK, 0, c->stream>>>(                          \
                out, in, (I)N, (I)H, (I)W, (I)(C / VV), (I)Hy, (I)Wy, (I)top, (I)left);     \
        else                                                                                \
            pad_fwd_kernel<I, VV><<<g, SN__BLOCK, 0, c->stream>>>(                          \
                out, in, (I)N, (I)H, (I)W, (I)(C / VV), (I)Hy, (I)Wy, (I)top, (I)left);     \
    } while (0)
    if (v4) {
        if (small) LAUNCH(int32_t, 4);
        else LAUNCH(int64_t, 4);
    } else {
        if (small) LAUNCH(int32_t, 1);
        else LAUNCH(int64_t, 1);
    }
#undef LAUNCH
    return sn__cuda_launched(d, what);
}

extern "C" sn_status sn__pad_fwd_cuda(sn__dev *d, float *y, const float *x, int64_t N,
                                      int64_t H, int64_t W, int64_t C, int64_t top,
                                      int64_t bottom, int64_t left, int64_t right) {
    return pad<false>(d, y, x, N, H, W, C, top, bottom, left, right, "pad_fwd");
}

extern "C" sn_status sn__pad_bwd_cuda(sn__dev *d, float *dx, const float *dy, int64_t N,
                                      int64_t H, int64_t W, int64_t C, int64_t top,
                                      int64_t bottom, int64_t left, int64_t right) {
    return pad<true>(d, dx, dy, N, H, W, C, top, bottom, left, right, "pad_bwd");
}

/* ---- mean over H*W ----------------------------------------------------------------------- */

/* Block (32 channels, 8 positions) per (image, 32-channel chunk): each thread sums a strided
 * subset of positions, then the 8 partial sums of a channel are combined in shared memory. */
static __global__ void mean_hw_fwd_kernel(float *y, const float *x, int64_t N, int64_t HW,
                                          int64_t C, int64_t chunks) {
    __shared__ float part[8][33];
    for (int64_t b = blockIdx.x; b < N * chunks; b += gridDim.x) {
        int64_t n = b / chunks, ch = (b % chunks) * 32 + threadIdx.x;
        float s = 0.0f;
        if (ch < C)
            for (int64_t i = threadIdx.y; i < HW; i += 8) s += x[(n * HW + i) * C + ch];
        part[threadIdx.y][threadIdx.x] = s;
        __syncthreads();
        if (threadIdx.y == 0 && ch < C) {
            float t = 0.0f;
#pragma unroll
            for (int k = 0; k < 8; k++) t += part[k][threadIdx.x];
            y[n * C + ch] = t / (float)HW;
        }
        __syncthreads();
    }
}

static __global__ void mean_hw_bwd_kernel(float *dx, const float *dy, int64_t N, int64_t HW,
                                          int64_t C) {
    int64_t total = N * HW * C;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (int64_t)gridDim.x * blockDim.x) {
        int64_t ch = i % C, n = i / (HW * C);
        dx[i] += dy[n * C + ch] / (float)HW;
    }
}

extern "C" sn_status sn__mean_hw_fwd_cuda(sn__dev *d, float *y, const float *x, int64_t N,
                                          int64_t HW, int64_t C) {
    SN__CU_BEGIN(d, c);
    if (N < 0 || HW < 0 || C < 0)
        return sn__fail(d->ctx, SN_ERR_INVALID_ARG, "mean_hw_fwd: negative size");
    if (N == 0 || C == 0) return SN_OK;
    if (HW == 0) return sn__zero_cuda(d, y, (size_t)(N * C) * sizeof(float));
    int64_t chunks = (C + 31) / 32;
    int64_t blocks = N * chunks;
    int64_t cap = (int64_t)c->sm_count * 8;
    mean_hw_fwd_kernel<<<(unsigned)(blocks < cap ? blocks : cap), dim3(32, 8), 0, c->stream>>>(
        y, x, N, HW, C, chunks);
    return sn__cuda_launched(d, "mean_hw_fwd");
}

extern "C" sn_status sn__mean_hw_bwd_cuda(sn__dev *d, float *dx, const float *dy, int64_t N,
                                          int64_t HW, int64_t C) {
    SN__CU_BEGIN(d, c);
    if (N < 0 || HW < 0 || C < 0)
        return sn__fail(d->ctx, SN_ERR_INVALID_ARG, "mean_hw_bwd: negative size");
    int64_t total = N * HW * C;
    if (total == 0) return SN_OK;
    mean_hw_bwd_kernel<<<sn__grid(c, total, SN__BLOCK), SN__BLOCK, 0, c->stream>>>(dx, dy, N,
                                                                                   HW, C);
    return sn__cuda_launched(d, "mean_hw_bwd");
}
