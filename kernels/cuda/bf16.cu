/* bf16.cu: the conversions between float32 and bfloat16 storage (kernels.def's bfloat16
 * section), with the encoding every backend shares (sn__bf16_encode in kernels.h). */
#include "cuda_internal.h"

static __global__ void to_bf16_kernel(sn_bf16 *y, const float *x, int64_t n) {
    int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        y[i] = sn__bf16_encode(x[i]);
}

static __global__ void from_bf16_kernel(float *y, const sn_bf16 *x, int64_t n) {
    int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        y[i] = sn__bf16_decode(x[i]);
}

/* Four elements per thread where both pointers allow it (16-byte floats, 8-byte bf16). */
static __global__ void to_bf16_kernel4(sn_bf16 *y, const float *x, int64_t n4) {
    int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n4; i += stride) {
        float v[4];
        sn__ld<4>(v, x + 4 * i);
        sn__st<4>(y + 4 * i, v);
    }
}

static __global__ void from_bf16_kernel4(float *y, const sn_bf16 *x, int64_t n4) {
    int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n4; i += stride) {
        float v[4];
        sn__ld<4>(v, x + 4 * i);
        sn__st<4>(y + 4 * i, v);
    }
}

static bool aligned8(const void *p) { return ((uintptr_t)p & 7u) == 0; }

extern "C" sn_status sn__cast_to_bf16_cuda(sn__dev *d, sn_bf16 *y, const float *x, int64_t n) {
    SN__CU_BEGIN(d, c);
    if (n < 0) return sn__fail(d->ctx, SN_ERR_INVALID_ARG, "cast_to_bf16: n = %lld", (long long)n);
    if (n == 0) return SN_OK;
    int64_t n4 = sn__aligned16(x) && aligned8(y) ? n / 4 : 0;
    if (n4)
        to_bf16_kernel4<<<sn__grid(c, n4, SN__BLOCK), SN__BLOCK, 0, c->stream>>>(y, x, n4);
    if (n - 4 * n4)
        to_bf16_kernel<<<sn__grid(c, n - 4 * n4, SN__BLOCK), SN__BLOCK, 0, c->stream>>>(
            y + 4 * n4, x + 4 * n4, n - 4 * n4);
    return sn__cuda_launched(d, "cast_to_bf16");
}

extern "C" sn_status sn__cast_from_bf16_cuda(sn__dev *d, float *y, const sn_bf16 *x,
                                             int64_t n) {
    SN__CU_BEGIN(d, c);
    if (n < 0)
        return sn__fail(d->ctx, SN_ERR_INVALID_ARG, "cast_from_bf16: n = %lld", (long long)n);
    if (n == 0) return SN_OK;
    int64_t n4 = sn__aligned16(y) && aligned8(x) ? n / 4 : 0;
    if (n4)
        from_bf16_kernel4<<<sn__grid(c, n4, SN__BLOCK), SN__BLOCK, 0, c->stream>>>(y, x, n4);
    if (n - 4 * n4)
        from_bf16_kernel<<<sn__grid(c, n - 4 * n4, SN__BLOCK), SN__BLOCK, 0, c->stream>>>(
            y + 4 * n4, x + 4 * n4, n - 4 * n4);
    return sn__cuda_launched(d, "cast_from_bf16");
}
