/* layout.cu: channel concatenation, spatial zero padding, mean over H*W.
 *
 * Shapes: x (N,H,W,C) or (rows,C), NHWC.  Forward kernels overwrite, backward kernels
 * accumulate.  Index arithmetic is 32-bit when the tensors allow it (faster divisions) and
 * 64-bit otherwise; channel runs move as float4 when counts and pointers are 16-byte aligned.
 * pad_fwd/pad_bwd accept negative bottom/right (a crop): conv.cu uses them that way.
 *
 * The concat and pad kernels are templates on the storage type T: float, or sn_bf16 for
 * concat_*_bf16/pad_*_bf16 (kernels.def), whose channel runs move 4 values as 8 bytes.
 * Values go through sn__ld/sn__st (bf16 decoded and encoded, as kernels.def's bf16 section
 * asks: a copy re-encodes, which only quiets a signaling NaN; pad_fwd's zeros encode to 0). */
#include "cuda_internal.h"

/* V consecutive values of storage type T as one load/store unit. */
template <typename T, int V> struct vec;
template <> struct vec<float, 1> { typedef float t; };
template <> struct vec<float, 4> { typedef float4 t; };
template <> struct vec<sn_bf16, 1> { typedef sn_bf16 t; };
template <> struct vec<sn_bf16, 4> { typedef uint2 t; };

/* ---- concat ------------------------------------------------------------------------------ */

/* Units of V values: x row stride cx, y row stride cy, offset off (all in units). */
template <typename I, int V, typename T>
static __global__ void concat_fwd_kernel(T *y, const T *x, I rows, I cx, I cy, I off) {
    typedef typename vec<T, V>::t U;
    const U *xv = (const U *)x;
    U *yv = (U *)y;
    I n = rows * cx;
    for (I i = (I)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (I)gridDim.x * blockDim.x) {
        I r = i / cx, ch = i - r * cx;
        float v[V];
        sn__ld<V>(v, (const T *)&xv[i]);
        sn__st<V>((T *)&yv[r * cy + off + ch], v);
    }
}

template <typename I, int V, typename T>
static __global__ void concat_bwd_kernel(T *dx, const T *dy, I rows, I cx, I cy, I off) {
    typedef typename vec<T, V>::t U;
    U *xv = (U *)dx;
    const U *yv = (const U *)dy;
    I n = rows * cx;
    for (I i = (I)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (I)gridDim.x * blockDim.x) {
        I r = i / cx, ch = i - r * cx;
        float a[V], g[V];
        sn__ld<V>(a, (const T *)&xv[i]);
        sn__ld<V>(g, (const T *)&yv[r * cy + off + ch]);
#pragma unroll
        for (int j = 0; j < V; j++) a[j] = a[j] + g[j];
        sn__st<V>((T *)&xv[i], a);
    }
}

template <bool BWD, typename T>
static sn_status concat(sn__dev *d, T *x, const T *y_or_dy, T *y, int64_t rows, int64_t Cx,
                        int64_t Cy, int64_t off, const char *what) {
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
    return concat<false, float>(d, (float *)x, NULL, y, rows, Cx, Cy, off, "concat_fwd");
}

extern "C" sn_status sn__concat_bwd_cuda(sn__dev *d, float *dx, const float *dy, int64_t rows,
                                         int64_t Cx, int64_t Cy, int64_t off) {
    return concat<true, float>(d, dx, dy, NULL, rows, Cx, Cy, off, "concat_bwd");
}

extern "C" sn_status sn__concat_fwd_bf16_cuda(sn__dev *d, sn_bf16 *y, const sn_bf16 *x,
                                              int64_t rows, int64_t Cx, int64_t Cy,
                                              int64_t off) {
    return concat<false, sn_bf16>(d, (sn_bf16 *)x, NULL, y, rows, Cx, Cy, off,
                                  "concat_fwd_bf16");
}

extern "C" sn_status sn__concat_bwd_bf16_cuda(sn__dev *d, sn_bf16 *dx, const sn_bf16 *dy,
                                              int64_t rows, int64_t Cx, int64_t Cy,
                                              int64_t off) {
    return concat<true, sn_bf16>(d, dx, dy, NULL, rows, Cx, Cy, off, "concat_bwd_bf16");
}

/* ---- pad --------------------------------------------------------------------------------- */

/* y (N,Hy,Wy,C) from x (N,H,W,C): y[n,h,w] = x[n,h-top,w-left] inside x, else 0.  C in
 * units of V values. */
template <typename I, int V, typename T>
static __global__ void pad_fwd_kernel(T *y, const T *x, I N, I H, I W, I C, I Hy, I Wy, I top,
                                      I left) {
    typedef typename vec<T, V>::t U;
    const U *xv = (const U *)x;
    U *yv = (U *)y;
    I n_out = N * Hy * Wy * C;
    for (I i = (I)blockIdx.x * blockDim.x + threadIdx.x; i < n_out;
         i += (I)gridDim.x * blockDim.x) {
        I ch = i % C, t = i / C;
        I wy = t % Wy;
        t /= Wy;
        I hy = t % Hy, n = t / Hy;
        I h = hy - top, w = wy - left;
        float v[V];
#pragma unroll
        for (int j = 0; j < V; j++) v[j] = 0.0f;
        if (h >= 0 && h < H && w >= 0 && w < W)
            sn__ld<V>(v, (const T *)&xv[((n * H + h) * W + w) * C + ch]);
        sn__st<V>((T *)&yv[i], v);
    }
}

/* dx[n,h,w] += dy[n,h+top,w+left] where that is inside dy (N,Hy,Wy,C); other cells of dx
 * are not written. */
template <typename I, int V, typename T>
static __global__ void pad_bwd_kernel(T *dx, const T *dy, I N, I H, I W, I C, I Hy, I Wy,
                                      I top, I left) {
    typedef typename vec<T, V>::t U;
    U *xv = (U *)dx;
    const U *yv = (const U *)dy;
    I n_in = N * H * W * C;
    for (I i = (I)blockIdx.x * blockDim.x + threadIdx.x; i < n_in;
         i += (I)gridDim.x * blockDim.x) {
        I ch = i % C, t = i / C;
        I w = t % W;
        t /= W;
        I h = t % H, n = t / H;
        I hy = h + top, wy = w + left;
        if (hy >= 0 && hy < Hy && wy >= 0 && wy < Wy) {
            float a[V], g[V];
            sn__ld<V>(a, (const T *)&xv[i]);
            sn__ld<V>(g, (const T *)&yv[((n * Hy + hy) * Wy + wy) * C + ch]);
#pragma unroll
            for (int j = 0; j < V; j++) a[j] = a[j] + g[j];
            sn__st<V>((T *)&xv[i], a);
        }
    }
}

/* T: the tensors' storage (float, or sn_bf16 for pad_fwd_bf16/pad_bwd_bf16); what: the
 * kernel's name. */
template <bool BWD, typename T>
static sn_status pad(sn__dev *d, T *out, const T *in, int64_t N, int64_t H, int64_t W,
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
    return pad<false, float>(d, y, x, N, H, W, C, top, bottom, left, right, "pad_fwd");
}

extern "C" sn_status sn__pad_bwd_cuda(sn__dev *d, float *dx, const float *dy, int64_t N,
                                      int64_t H, int64_t W, int64_t C, int64_t top,
                                      int64_t bottom, int64_t left, int64_t right) {
    return pad<true, float>(d, dx, dy, N, H, W, C, top, bottom, left, right, "pad_bwd");
}

extern "C" sn_status sn__pad_fwd_bf16_cuda(sn__dev *d, sn_bf16 *y, const sn_bf16 *x, int64_t N,
                                           int64_t H, int64_t W, int64_t C, int64_t top,
                                           int64_t bottom, int64_t left, int64_t right) {
    return pad<false, sn_bf16>(d, y, x, N, H, W, C, top, bottom, left, right, "pad_fwd_bf16");
}

extern "C" sn_status sn__pad_bwd_bf16_cuda(sn__dev *d, sn_bf16 *dx, const sn_bf16 *dy,
                                           int64_t N, int64_t H, int64_t W, int64_t C,
                                           int64_t top, int64_t bottom, int64_t left,
                                           int64_t right) {
    return pad<true, sn_bf16>(d, dx, dy, N, H, W, C, top, bottom, left, right, "pad_bwd_bf16");
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
