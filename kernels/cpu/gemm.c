/* gemm.c: dense matrix product on the CPU through OpenBLAS.
 *
 * Shapes: row-major C (m,n) = alpha * op(A) (m,k) @ op(B) (k,n) + beta * C, where op(A) is
 * A (m,k) with leading dimension lda, or A^T with A stored (k,m); likewise B.
 *
 * Threads.  With OpenMP, the product is cut into d->threads blocks of C (by rows, or by
 * columns when C is wider than tall) and each OpenMP thread runs a SINGLE-THREADED OpenBLAS
 * sgemm on its block.  We do not let OpenBLAS's pthreads pool run beside the OpenMP pool the
 * other kernels use: after a parallel region libgomp's workers spin-wait for more work, and
 * OpenBLAS's workers spin-yield after a product, so on a machine with as many threads as
 * cores the two pools steal each other's cores.  On ResNet-50's convolutions (im2col under
 * OpenMP, then the GEMM) the mixed pools ran 1.5-2.5x slower than one pool; the split itself
 * matches OpenBLAS's own threading on large products and beats it on narrow ones
 * (benchmarks/bench_conv.c).
 *
 * openblas_set_num_threads is process-wide, not per call or per context: the first product
 * sets OpenBLAS to one thread for the whole process, which also makes any other OpenBLAS
 * user in the process single-threaded.  Without OpenMP (make OPENMP=0) OpenBLAS threads
 * itself, set to d->threads, and the last context to multiply decides for everyone.
 *
 * gemm_ep, the product of the fused forwards, is the same product with the epilogue
 * (kernels.h) applied by each thread to the block of C it has just computed. */
#include <cblas.h>
#include <limits.h>
#include "cpu_internal.h"

static int fits_blasint(int64_t v) { return v >= 0 && v <= INT_MAX; }

static int64_t max1(int64_t v) { return v > 1 ? v : 1; }

/* OpenBLAS's process-wide thread count; the setter takes a lock and may start or stop
 * threads, so it is only called on a change. */
static void blas_threads(int want) {
    if (openblas_get_num_threads() != want) openblas_set_num_threads(want);
}

#ifdef _OPENMP
/* Below this many multiply-adds one call beats forking threads. */
#define SPLIT_MIN_MACS (1 << 20)

/* Block boundaries are rounded to 16 rows/columns, a multiple of OpenBLAS's register
 * tiles, so no thread runs more edge-case tiles than one unsplit product would. */
#define SPLIT_ALIGN 16

/* Start of block t of `parts` over len rows or columns (t == parts gives len). */
static int64_t block_start(int64_t len, int64_t t, int64_t parts) {
    if (t >= parts) return len;
    int64_t at = (len * t / parts + SPLIT_ALIGN / 2) / SPLIT_ALIGN * SPLIT_ALIGN;
    return at < len ? at : len;
}
#endif

/* One thread's block of the product, rows [r0, r1) x columns [c0, c1) of C, in one
 * single-threaded call; then the epilogue, if any, on that block.  (Cutting the block into
 * cache-sized slices of rows, each multiplied and then finished before the next, measured no
 * faster on ResNet-50 at batch 32: each extra call packs B again.  Whole blocks also keep
 * every product of a fused net exactly the unfused net's, bit for bit.) */
static void block_ep(int trans_a, int trans_b, int64_t r0, int64_t r1, int64_t c0,
                     int64_t c1, int64_t k, float alpha, const float *a, int64_t lda,
                     const float *b, int64_t ldb, float beta, float *c, int64_t ldc,
                     const sn__epilogue *ep) {
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, (blasint)(r1 - r0), (blasint)(c1 - c0),
                (blasint)k, alpha, a + (trans_a ? r0 : r0 * lda), (blasint)lda,
                b + (trans_b ? c0 * ldb : c0), (blasint)ldb, beta, c + r0 * ldc + c0,
                (blasint)ldc);
    if (ep)
        sn__epilogue_apply_cpu(c + r0 * ldc + c0,
                               ep->residual ? ep->residual + r0 * ldc + c0 : NULL, r1 - r0,
                               c1 - c0, ldc, c0, ep);
}

/* Both products: checks, then the blocks on the OpenMP threads.  With an epilogue, each
 * thread applies it to its own block, so a fused product costs no extra parallel region and
 * no extra pass over memory. */
static sn_status gemm(sn__dev *d, const char *who, int trans_a, int trans_b, int64_t m,
                      int64_t n, int64_t k, float alpha, const float *a, int64_t lda,
                      const float *b, int64_t ldb, float beta, float *c, int64_t ldc,
                      const sn__epilogue *ep) {
    if (!fits_blasint(m) || !fits_blasint(n) || !fits_blasint(k) || !fits_blasint(lda) ||
        !fits_blasint(ldb) || !fits_blasint(ldc))
        return sn__fail(d->ctx, SN_ERR_INVALID_ARG,
                        "%s: sizes m=%lld n=%lld k=%lld lda=%lld ldb=%lld ldc=%lld must be "
                        "in [0, INT_MAX]", who, (long long)m, (long long)n, (long long)k,
                        (long long)lda, (long long)ldb, (long long)ldc);
    /* Row-major: a stored row of A holds k entries untransposed, m transposed. */
    int64_t need_a = trans_a ? max1(m) : max1(k);
    int64_t need_b = trans_b ? max1(k) : max1(n);
    if (lda < need_a || ldb < need_b || ldc < max1(n))
        return sn__fail(d->ctx, SN_ERR_INVALID_ARG,
                        "%s: leading dimensions lda=%lld ldb=%lld ldc=%lld too small for "
                        "m=%lld n=%lld k=%lld", who, (long long)lda, (long long)ldb,
                        (long long)ldc, (long long)m, (long long)n, (long long)k);
    if (m == 0 || n == 0) return SN_OK;
#ifdef _OPENMP
    blas_threads(1);
    const int split_rows = m >= n;
    const int64_t len = split_rows ? m : n;
    int64_t parts = d->threads > 1 ? d->threads : 1;
    if ((double)m * (double)n * (double)k < SPLIT_MIN_MACS) parts = 1;
    const int64_t blocks = (len + SPLIT_ALIGN - 1) / SPLIT_ALIGN;
    if (parts > blocks) parts = blocks;
#pragma omp parallel for num_threads((int)parts) schedule(static, 1) if (parts > 1)
    for (int64_t t = 0; t < parts; t++) {
        int64_t lo = block_start(len, t, parts), hi = block_start(len, t + 1, parts);
        if (lo >= hi) continue;
        if (split_rows)     /* rows lo..hi of op(A) and of C */
            block_ep(trans_a, trans_b, lo, hi, 0, n, k, alpha, a, lda, b, ldb, beta, c, ldc,
                     ep);
        else                /* columns lo..hi of op(B) and of C */
            block_ep(trans_a, trans_b, 0, m, lo, hi, k, alpha, a, lda, b, ldb, beta, c, ldc,
                     ep);
    }
#else
    blas_threads(d->threads > 1 ? d->threads : 1);
    block_ep(trans_a, trans_b, 0, m, 0, n, k, alpha, a, lda, b, ldb, beta, c, ldc, ep);
#endif
    return SN_OK;
}

/* Row-major C[m,n] = alpha * op(A)[m,k] @ op(B)[k,n] + beta * C.  With beta == 0, C is
 * overwritten (never read), as BLAS defines; k == 0 gives C = beta * C.  Leading dimensions
 * are checked here rather than by OpenBLAS, whose xerbla would print to stderr.
 * Returns SN_OK, or SN_ERR_INVALID_ARG for negative or too-large sizes and short leading
 * dimensions. */
sn_status sn__gemm_cpu(sn__dev *d, int trans_a, int trans_b, int64_t m, int64_t n, int64_t k,
                       float alpha, const float *a, int64_t lda, const float *b, int64_t ldb,
                       float beta, float *c, int64_t ldc) {
    return gemm(d, "gemm", trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc,
                NULL);
}

/* c (m,n) = ep(a (m,k) @ b (k,n)), all dense row-major; ep NULL is the plain product, the
 * very calls sn__gemm_cpu makes. */
sn_status sn__gemm_ep_cpu(sn__dev *d, float *c, const float *a, const float *b,
                          const sn__epilogue *ep, int64_t m, int64_t n, int64_t k) {
    return gemm(d, "gemm_ep", 0, 0, m, n, k, 1.0f, a, max1(k), b, max1(n), 0.0f, c, max1(n),
                ep);
}
