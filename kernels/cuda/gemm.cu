/* gemm.cu: row-major SGEMM through cuBLAS.
 *
 * cuBLAS is column-major.  A row-major matrix with leading dimension ld is the column-major
 * transpose with the same ld, so row-major C = op(A) op(B) is column-major
 * C^T = op(B)^T op(A)^T: swap the operands (and m with n), keep each one's transpose flag.
 * The 64-bit API takes m*k etc. beyond 2^31.  TF32 tensor cores follow allow_tf32. */
#include "cuda_internal.h"

extern "C" sn_status sn__gemm_cuda(sn__dev *d, int trans_a, int trans_b, int64_t m, int64_t n,
                                   int64_t k, float alpha, const float *a, int64_t lda,
                                   const float *b, int64_t ldb, float beta, float *c_,
                                   int64_t ldc) {
    SN__CU_BEGIN(d, c);
    if (m < 0 || n < 0 || k < 0)
        return sn__fail(d->ctx, SN_ERR_INVALID_ARG, "gemm: negative size m=%lld n=%lld k=%lld",
                        (long long)m, (long long)n, (long long)k);
    if (m == 0 || n == 0) return SN_OK;
    SN__CU_TRY(sn__cuda_blas_mode(d, c));
    /* cuBLAS rejects ld < 1 even when the matrix is empty (k == 0); any ld >= rows will do. */
    if (lda < 1) lda = 1;
    if (ldb < 1) ldb = 1;
    return sn__cuda_blas(d,
                         cublasSgemm_64(c->cublas, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N,
                                        trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, n, m, k, &alpha, b,
                                        ldb, a, lda, &beta, c_, ldc),
                         "cublasSgemm_64");
}

/* c (m,n) = ep(a (m,k) @ b (k,n)), dense row-major: the product, then the epilogue. */
extern "C" sn_status sn__gemm_ep_cuda(sn__dev *d, float *c, const float *a, const float *b,
                                      const sn__epilogue *ep, int64_t m, int64_t n, int64_t k) {
    SN__CU_TRY(sn__gemm_cuda(d, 0, 0, m, n, k, 1.0f, a, k, b, n, 0.0f, c, n));
    return sn__cuda_epilogue(d, c, ep, m, n);
}
