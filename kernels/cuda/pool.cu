/* pool.cu: max and average pooling, NHWC.
 *
 * Shapes: x (N,H,W,C), y (N,P,Q,C), window R x S.  Input cell of output (p,q), tap (r,s):
 * h = p*stride_h - pad_top + r, w = q*stride_w - pad_left + s.  Cells outside the input are
 * ignored: they never win a max and never count in a mean; a window with no cell inside the
 * input (impossible with TF's SAME or VALID) gives 0 and passes no gradient, as on the CPU.
 *
 * Forward: one thread per output element, channel fastest (coalesced); every kernel here
 * takes 4 consecutive channels per thread (float4) when C % 4 == 0 (sn__ld/sn__st).
 * Backward: one thread per input element GATHERS from the windows that cover it, in (p,q)
 * order, so there are no atomics, the result is deterministic, and the additions happen in
 * the order a sequential scatter over (p,q) performs them.  Max pooling's gradient goes to the
 * first maximal cell of each window in (r,s) order (TF's MaxPoolGrad): cell (h,w) owns the
 * window when every cell before it is < x[h,w] and every cell after it is <= x[h,w].
 *
 * With a workspace (maxpool_ws: one byte per output element) max pooling's backward is two
 * passes instead: one thread per output element finds its window's winner (its tap r*S+s,
 * the forward's own loop), then the gather above adds dy[p,q] where the window's tap is the
 * cell's, reading one byte per covering window instead of rescanning it: for 3x3/2 about 2
 * byte reads per input cell instead of ~20 float reads and compares (the ResNet-50 stem's
 * backward took 6.5 ms of an 80 ms step at batch 128 the old way).  Same additions in the
 * same order: the result is identical.
 *
 * Windows that cannot overlap (stride >= window on both axes: VGG's 2x2/2, ResNet v1's 1x1/2
 * subsampling) need neither: each input cell is in at most one window, so one thread per
 * output element finds its winner and adds dy into that one cell, race-free and in the
 * gather's order (one addition per cell).  Index arithmetic per output, not per input: 4x
 * fewer for 2x2/2 (the gather's integer divisions made VGG-16's five pools' backward 12 ms
 * of a 105 ms step).
 *
 * Every kernel here is a template on the storage type T of x, y, dx, dy: float, or sn_bf16
 * for maxpool_*_bf16/avgpool_*_bf16 (kernels.def), deduced from the pointers.  sn__ld/sn__st
 * and sn__ldf/sn__stf decode and encode, so the bf16 kernels compare, add and divide the
 * decoded values exactly as the float ones do and encode each output once (a gradient cell
 * once per write, after all its additions). */
#include "cuda_internal.h"

struct pool_geo {
    int64_t N, H, W, C, R, S, P, Q, sh, sw, pt, pl;
};

static pool_geo geo_of(const sn__pool_dims *pd) {
    pool_geo g = {pd->N, pd->H, pd->W, pd->C, pd->R, pd->S,
                  pd->P, pd->Q, pd->stride_h, pd->stride_w, pd->pad_top, pd->pad_left};
    return g;
}

/* V consecutive channels per thread (sn__ld/sn__st): V = 4 when C % 4 == 0 and the tensors
 * are 16-byte aligned, else 1.  The index arithmetic (integer divisions by C, Q, P or W, H)
 * is then done once per 4 values; every value still sees the scalar code's operations in
 * the scalar code's order. */

/* First window index whose window (start = i*stride - pad, length len) reaches cell h, and
 * the last whose window starts at or before h; the range may be empty. */
template <typename I>
static __device__ __forceinline__ void cover(I h, I pad, I len, I stride, I n, I *lo, I *hi) {
    I a = h + pad - len + 1;          /* need i*stride >= a */
    I l = a <= 0 ? 0 : (a + stride - 1) / stride;
    I b = h + pad;                    /* need i*stride <= b */
    I u = b < 0 ? -1 : b / stride;
    if (u > n - 1) u = n - 1;
    *lo = l;
    *hi = u;
}

template <typename I, int V, bool MAX, typename T>
static __device__ __forceinline__ void pool_fwd_kernel(T *y, const T *x, pool_geo g) {
    I N = (I)g.N, H = (I)g.H, W = (I)g.W, C = (I)g.C, R = (I)g.R, S = (I)g.S, P = (I)g.P,
      Q = (I)g.Q, sh = (I)g.sh, sw = (I)g.sw, pt = (I)g.pt, pl = (I)g.pl;
    I CV = C / V, total = N * P * Q * CV;
    for (I i = (I)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (I)gridDim.x * blockDim.x) {
        I c = i % CV * V, t = i / CV;
        I q = t % Q;
        t /= Q;
        I p = t % P, n = t / P;
        I h0 = p * sh - pt, w0 = q * sw - pl;
        float acc[V];
#pragma unroll
        for (int j = 0; j < V; j++) acc[j] = 0.0f;
        I cnt = 0;
        for (I r = 0; r < R; r++) {
            I h = h0 + r;
            if (h < 0 || h >= H) continue;
            const T *row = x + ((n * H + h) * W) * C + c;
            for (I s = 0; s < S; s++) {
                I w = w0 + s;
                if (w < 0 || w >= W) continue;
                float v[V];
                sn__ld<V>(v, row + w * C);
#pragma unroll
                for (int j = 0; j < V; j++) {
                    if (MAX) {
                        if (cnt == 0 || v[j] > acc[j]) acc[j] = v[j];   /* first, then > */
                    } else {
                        acc[j] += v[j];
                    }
                }
                cnt++;
            }
        }
        if (!MAX && cnt > 0)
#pragma unroll
            for (int j = 0; j < V; j++) acc[j] = acc[j] / (float)cnt;
        sn__st<V>(y + (i / CV) * C + c, acc);
    }
}

template <typename I, typename T>
static __global__ void maxpool_bwd_kernel(T *dx, const T *dy, const T *x, pool_geo g) {
    I N = (I)g.N, H = (I)g.H, W = (I)g.W, C = (I)g.C, R = (I)g.R, S = (I)g.S, P = (I)g.P,
      Q = (I)g.Q, sh = (I)g.sh, sw = (I)g.sw, pt = (I)g.pt, pl = (I)g.pl;
    I total = N * H * W * C;
    for (I i = (I)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (I)gridDim.x * blockDim.x) {
        I c = i % C, t = i / C;
        I w = t % W;
        t /= W;
        I h = t % H, n = t / H;
        I plo, phi, qlo, qhi;
        cover<I>(h, pt, R, sh, P, &plo, &phi);
        cover<I>(w, pl, S, sw, Q, &qlo, &qhi);
        if (plo > phi || qlo > qhi) continue;
        const T *xn = x + n * H * W * C + c;
        float xv = sn__ldf(xn + (h * W + w) * C);
        float acc = sn__ldf(dx + i);
        for (I p = plo; p <= phi; p++) {
            I h0 = p * sh - pt;
            I ra = h0 < 0 ? -h0 : 0, rb = H - h0 < R ? H - h0 : R;
            for (I q = qlo; q <= qhi; q++) {
                I w0 = q * sw - pl;
                I sa = w0 < 0 ? -w0 : 0, sb = W - w0 < S ? W - w0 : S;
                bool own = true;
                for (I r = ra; r < rb && own; r++) {
                    I hh = h0 + r;
                    const T *row = xn + hh * W * C;
                    for (I s = sa; s < sb; s++) {
                        I ww = w0 + s;
                        float v = sn__ldf(row + ww * C);
                        bool before = hh < h || (hh == h && ww < w);
                        bool after = hh > h || (hh == h && ww > w);
                        if ((before && v >= xv) || (after && v > xv)) {
                            own = false;
                            break;
                        }
                    }
                }
                if (own) acc += sn__ldf(dy + (((n * P + p) * Q + q) * C + c));
            }
        }
        sn__stf(dx + i, acc);
    }
}

/* Non-overlapping windows: dx[winner of window i] += dy[i]. */
template <typename I, int V, typename T>
static __global__ void maxpool_bwd_scatter_kernel(T *dx, const T *dy, const T *x, pool_geo g) {
    I N = (I)g.N, H = (I)g.H, W = (I)g.W, C = (I)g.C, R = (I)g.R, S = (I)g.S, P = (I)g.P,
      Q = (I)g.Q, sh = (I)g.sh, sw = (I)g.sw, pt = (I)g.pt, pl = (I)g.pl;
    I CV = C / V, total = N * P * Q * CV;
    for (I i = (I)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (I)gridDim.x * blockDim.x) {
        I c = i % CV * V, t = i / CV;
        I q = t % Q;
        t /= Q;
        I p = t % P, n = t / P;
        I h0 = p * sh - pt, w0 = q * sw - pl;
        float best[V];
        I at[V];
#pragma unroll
        for (int j = 0; j < V; j++) {
            best[j] = 0.0f;
            at[j] = -1;
        }
        for (I r = 0; r < R; r++) {
            I h = h0 + r;
            if (h < 0 || h >= H) continue;
            for (I s = 0; s < S; s++) {
                I w = w0 + s;
                if (w < 0 || w >= W) continue;
                I cell = ((n * H + h) * W + w) * C + c;
                float v[V];
                sn__ld<V>(v, x + cell);
#pragma unroll
                for (int j = 0; j < V; j++)
                    if (at[j] < 0 || v[j] > best[j]) {   /* the first cell, then strictly > */
                        best[j] = v[j];
                        at[j] = cell + j;
                    }
            }
        }
        float gy[V];
        sn__ld<V>(gy, dy + (i / CV) * C + c);
#pragma unroll
        for (int j = 0; j < V; j++)
            if (at[j] >= 0) sn__stf(dx + at[j], sn__ldf(dx + at[j]) + gy[j]);
    }
}

/* win[i] = tap (r*S+s) of output element i's first maximal cell, 255 for an empty window. */
template <typename I, int V, typename T>
static __global__ void maxpool_win_kernel(unsigned char *win, const T *x, pool_geo g) {
    I N = (I)g.N, H = (I)g.H, W = (I)g.W, C = (I)g.C, R = (I)g.R, S = (I)g.S, P = (I)g.P,
      Q = (I)g.Q, sh = (I)g.sh, sw = (I)g.sw, pt = (I)g.pt, pl = (I)g.pl;
    I CV = C / V, total = N * P * Q * CV;
    for (I i = (I)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (I)gridDim.x * blockDim.x) {
        I c = i % CV * V, t = i / CV;
        I q = t % Q;
        t /= Q;
        I p = t % P, n = t / P;
        I h0 = p * sh - pt, w0 = q * sw - pl;
        float best[V];
        int tap[V];
#pragma unroll
        for (int j = 0; j < V; j++) {
            best[j] = 0.0f;
            tap[j] = 255;
        }
        for (I r = 0; r < R; r++) {
            I h = h0 + r;
            if (h < 0 || h >= H) continue;
            const T *row = x + ((n * H + h) * W) * C + c;
            for (I s = 0; s < S; s++) {
                I w = w0 + s;
                if (w < 0 || w >= W) continue;
                float v[V];
                sn__ld<V>(v, row + w * C);
#pragma unroll
                for (int j = 0; j < V; j++)
                    if (tap[j] == 255 || v[j] > best[j]) {   /* the first cell, then > */
                        best[j] = v[j];
                        tap[j] = (int)(r * S + s);
                    }
            }
        }
        unsigned char *o = win + (i / CV) * C + c;
#pragma unroll
        for (int j = 0; j < V; j++) o[j] = (unsigned char)tap[j];
    }
}

template <typename I, int V, typename T>
static __global__ void maxpool_bwd_win_kernel(T *dx, const T *dy, const unsigned char *win,
                                              pool_geo g) {
    I N = (I)g.N, H = (I)g.H, W = (I)g.W, C = (I)g.C, S = (I)g.S, P = (I)g.P, Q = (I)g.Q,
      sh = (I)g.sh, sw = (I)g.sw, pt = (I)g.pt, pl = (I)g.pl, R = (I)g.R;
    I CV = C / V, total = N * H * W * CV;
    for (I i = (I)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (I)gridDim.x * blockDim.x) {
        I c = i % CV * V, t = i / CV;
        I w = t % W;
        t /= W;
        I h = t % H, n = t / H;
        I plo, phi, qlo, qhi;
        cover<I>(h, pt, R, sh, P, &plo, &phi);
        cover<I>(w, pl, S, sw, Q, &qlo, &qhi);
        if (plo > phi || qlo > qhi) continue;
        T *dxi = dx + (i / CV) * C + c;
        float acc[V];
        sn__ld<V>(acc, dxi);
        for (I p = plo; p <= phi; p++) {
            I r = h - (p * sh - pt);
            for (I q = qlo; q <= qhi; q++) {
                I o = ((n * P + p) * Q + q) * C + c;
                I tap = r * S + (w - (q * sw - pl));
#pragma unroll
                for (int j = 0; j < V; j++)
                    if ((I)win[o + j] == tap) acc[j] += sn__ldf(dy + (o + j));
            }
        }
        sn__st<V>(dxi, acc);
    }
}

template <typename I, int V, typename T>
static __global__ void avgpool_bwd_kernel(T *dx, const T *dy, pool_geo g) {
    I N = (I)g.N, H = (I)g.H, W = (I)g.W, C = (I)g.C, R = (I)g.R, S = (I)g.S, P = (I)g.P,
      Q = (I)g.Q, sh = (I)g.sh, sw = (I)g.sw, pt = (I)g.pt, pl = (I)g.pl;
    I CV = C / V, total = N * H * W * CV;
    for (I i = (I)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (I)gridDim.x * blockDim.x) {
        I c = i % CV * V, t = i / CV;
        I w = t % W;
        t /= W;
        I h = t % H, n = t / H;
        I plo, phi, qlo, qhi;
        cover<I>(h, pt, R, sh, P, &plo, &phi);
        cover<I>(w, pl, S, sw, Q, &qlo, &qhi);
        if (plo > phi || qlo > qhi) continue;
        T *dxi = dx + (i / CV) * C + c;
        float acc[V];
        sn__ld<V>(acc, dxi);
        for (I p = plo; p <= phi; p++) {
            I h0 = p * sh - pt;
            I rows = (H - h0 < R ? H - h0 : R) - (h0 < 0 ? -h0 : 0);
            for (I q = qlo; q <= qhi; q++) {
                I w0 = q * sw - pl;
                I cols = (W - w0 < S ? W - w0 : S) - (w0 < 0 ? -w0 : 0);
                float gy[V];
                sn__ld<V>(gy, dy + ((n * P + p) * Q + q) * C + c);
#pragma unroll
                for (int j = 0; j < V; j++) acc[j] += gy[j] / (float)(rows * cols);
            }
        }
        sn__st<V>(dxi, acc);
    }
}

static sn_status check_pool(sn__dev *d, const sn__pool_dims *pd, const char *what) {
    const int64_t *v = &pd->N;
    for (int i = 0; i < (int)(sizeof *pd / sizeof(int64_t)); i++)
        if (v[i] < 0) return sn__fail(d->ctx, SN_ERR_INVALID_ARG, "%s: negative dimension", what);
    if (pd->stride_h < 1 || pd->stride_w < 1 || pd->R < 1 || pd->S < 1)
        return sn__fail(d->ctx, SN_ERR_INVALID_ARG, "%s: window and stride must be >= 1", what);
    return SN_OK;
}

static bool small_geo(const sn__pool_dims *pd) {
    int64_t a = pd->N * pd->H * pd->W * pd->C, b = pd->N * pd->P * pd->Q * pd->C;
    int64_t e = pd->P * pd->stride_h + pd->R + pd->pad_top + pd->H +
                pd->Q * pd->stride_w + pd->S + pd->pad_left + pd->W;
    return sn__small_index(a > b ? a : b) && sn__small_index(e);
}

/* Launches KERNEL<I, V> over `work` output or input elements (divided by V): I = int32_t
 * where every index fits, V = 4 where the channels allow float4 access (v4). */
#define POOL_LAUNCH(KERNEL, pd, v4, work, ...)                                             \
    do {                                                                                   \
        int64_t w_ = (work) / ((v4) ? 4 : 1);                                              \
        unsigned grid_ = sn__grid(c, w_, SN__BLOCK);                                       \
        if (small_geo(pd)) {                                                               \
            if (v4) KERNEL<int32_t, 4><<<grid_, SN__BLOCK, 0, c->stream>>>(__VA_ARGS__);   \
            else KERNEL<int32_t, 1><<<grid_, SN__BLOCK, 0, c->stream>>>(__VA_ARGS__);      \
        } else {                                                                           \
            if (v4) KERNEL<int64_t, 4><<<grid_, SN__BLOCK, 0, c->stream>>>(__VA_ARGS__);   \
            else KERNEL<int64_t, 1><<<grid_, SN__BLOCK, 0, c->stream>>>(__VA_ARGS__);      \
        }                                                                                  \
    } while (0)

template <typename I, int V, typename T>
static __global__ void maxpool_fwd_kernel(T *y, const T *x, pool_geo g) {
    pool_fwd_kernel<I, V, true>(y, x, g);
}
template <typename I, int V, typename T>
static __global__ void avgpool_fwd_kernel(T *y, const T *x, pool_geo g) {
    pool_fwd_kernel<I, V, false>(y, x, g);
}

static bool vec4(const sn__pool_dims *pd, const void *a, const void *b, const void *e) {
    return pd->C % 4 == 0 && sn__aligned16(a) && sn__aligned16(b) && (!e || sn__aligned16(e));
}

/* T: the tensors' storage (float, or sn_bf16 for maxpool_fwd_bf16); what: the kernel's name. */
template <typename T>
static sn_status maxpool_fwd(sn__dev *d, struct sn__cuda *c, T *y, const T *x,
                             const sn__pool_dims *pd, const char *what) {
    SN__CU_TRY(check_pool(d, pd, what));
    int64_t total = pd->N * pd->P * pd->Q * pd->C;
    if (total == 0) return SN_OK;
    pool_geo g = geo_of(pd);
    POOL_LAUNCH(maxpool_fwd_kernel, pd, vec4(pd, y, x, NULL), total, y, x, g);
    return sn__cuda_launched(d, what);
}

extern "C" sn_status sn__maxpool_fwd_cuda(sn__dev *d, float *y, const float *x,
                                          const sn__pool_dims *pd) {
    SN__CU_BEGIN(d, c);
    return maxpool_fwd(d, c, y, x, pd, "maxpool_fwd");
}

extern "C" sn_status sn__maxpool_fwd_bf16_cuda(sn__dev *d, sn_bf16 *y, const sn_bf16 *x,
                                               const sn__pool_dims *pd) {
    SN__CU_BEGIN(d, c);
    return maxpool_fwd(d, c, y, x, pd, "maxpool_fwd_bf16");
}

/* T: the tensors' storage (float, or sn_bf16 for avgpool_fwd_bf16); what: the kernel's name. */
template <typename T>
static sn_status avgpool_fwd(sn__dev *d, struct sn__cuda *c, T *y, const T *x,
                             const sn__pool_dims *pd, const char *what) {
    SN__CU_TRY(check_pool(d, pd, what));
    int64_t total = pd->N * pd->P * pd->Q * pd->C;
    if (total == 0) return SN_OK;
    pool_geo g = geo_of(pd);
    POOL_LAUNCH(avgpool_fwd_kernel, pd, vec4(pd, y, x, NULL), total, y, x, g);
    return sn__cuda_launched(d, what);
}

extern "C" sn_status sn__avgpool_fwd_cuda(sn__dev *d, float *y, const float *x,
                                          const sn__pool_dims *pd) {
    SN__CU_BEGIN(d, c);
    return avgpool_fwd(d, c, y, x, pd, "avgpool_fwd");
}

extern "C" sn_status sn__avgpool_fwd_bf16_cuda(sn__dev *d, sn_bf16 *y, const sn_bf16 *x,
                                               const sn__pool_dims *pd) {
    SN__CU_BEGIN(d, c);
    return avgpool_fwd(d, c, y, x, pd, "avgpool_fwd_bf16");
}

/* The winners' bytes: one per output element, windows of at most 255 cells that can
 * overlap (otherwise the backward scatters and needs none). */
static size_t win_bytes(const sn__pool_dims *pd) {
    if (pd->stride_h >= pd->R && pd->stride_w >= pd->S) return 0;
    return pd->R * pd->S <= 255 ? (size_t)(pd->N * pd->P * pd->Q * pd->C) : 0;
}

extern "C" sn_status sn__maxpool_ws_cuda(sn__dev *d, const sn__pool_dims *pd, size_t *bytes) {
    *bytes = 0;
    SN__CU_TRY(check_pool(d, pd, "maxpool_ws"));
    *bytes = win_bytes(pd);
    return SN_OK;
}

/* T: the tensors' storage (float, or sn_bf16 for maxpool_bwd_bf16); what: the kernel's name.
 * The workspace is the same for both (the winners' bytes do not depend on T). */
template <typename T>
static sn_status maxpool_bwd(sn__dev *d, struct sn__cuda *c, T *dx, const T *dy, const T *x,
                             const sn__pool_dims *pd, const char *what) {
    SN__CU_TRY(check_pool(d, pd, what));
    int64_t total = pd->N * pd->H * pd->W * pd->C, outs = pd->N * pd->P * pd->Q * pd->C;
    if (total == 0 || pd->P == 0 || pd->Q == 0) return SN_OK;
    pool_geo g = geo_of(pd);
    bool v4 = vec4(pd, dx, dy, x);
    if (pd->stride_h >= pd->R && pd->stride_w >= pd->S) {   /* windows never overlap */
        POOL_LAUNCH(maxpool_bwd_scatter_kernel, pd, v4, outs, dx, dy, x, g);
        return sn__cuda_launched(d, what);
    }
    size_t wb = win_bytes(pd);
    if (wb > 0 && d->ws && d->ws_bytes >= wb) {
        unsigned char *win = (unsigned char *)d->ws;
        POOL_LAUNCH(maxpool_win_kernel, pd, v4, outs, win, x, g);
        POOL_LAUNCH(maxpool_bwd_win_kernel, pd, v4, total, dx, dy, win, g);
        return sn__cuda_launched(d, what);
    }
    unsigned grid = sn__grid(c, total, SN__BLOCK);   /* no workspace: the one-pass gather */
    if (small_geo(pd))
        maxpool_bwd_kernel<int32_t><<<grid, SN__BLOCK, 0, c->stream>>>(dx, dy, x, g);
    else
        maxpool_bwd_kernel<int64_t><<<grid, SN__BLOCK, 0, c->stream>>>(dx, dy, x, g);
    return sn__cuda_launched(d, what);
}

extern "C" sn_status sn__maxpool_bwd_cuda(sn__dev *d, float *dx, const float *dy,
                                          const float *x, const sn__pool_dims *pd) {
    SN__CU_BEGIN(d, c);
    return maxpool_bwd(d, c, dx, dy, x, pd, "maxpool_bwd");
}

extern "C" sn_status sn__maxpool_bwd_bf16_cuda(sn__dev *d, sn_bf16 *dx, const sn_bf16 *dy,
                                               const sn_bf16 *x, const sn__pool_dims *pd) {
    SN__CU_BEGIN(d, c);
    return maxpool_bwd(d, c, dx, dy, x, pd, "maxpool_bwd_bf16");
}

/* T: the tensors' storage (float, or sn_bf16 for avgpool_bwd_bf16); what: the kernel's name. */
template <typename T>
static sn_status avgpool_bwd(sn__dev *d, struct sn__cuda *c, T *dx, const T *dy,
                             const sn__pool_dims *pd, const char *what) {
    SN__CU_TRY(check_pool(d, pd, what));
    int64_t total = pd->N * pd->H * pd->W * pd->C;
    if (total == 0 || pd->P == 0 || pd->Q == 0) return SN_OK;
    pool_geo g = geo_of(pd);
    POOL_LAUNCH(avgpool_bwd_kernel, pd, vec4(pd, dx, dy, NULL), total, dx, dy, g);
    return sn__cuda_launched(d, what);
}

extern "C" sn_status sn__avgpool_bwd_cuda(sn__dev *d, float *dx, const float *dy,
                                          const sn__pool_dims *pd) {
    SN__CU_BEGIN(d, c);
    return avgpool_bwd(d, c, dx, dy, pd, "avgpool_bwd");
}

extern "C" sn_status sn__avgpool_bwd_bf16_cuda(sn__dev *d, sn_bf16 *dx, const sn_bf16 *dy,
                                               const sn__pool_dims *pd) {
    SN__CU_BEGIN(d, c);
    return avgpool_bwd(d, c, dx, dy, pd, "avgpool_bwd_bf16");
}
