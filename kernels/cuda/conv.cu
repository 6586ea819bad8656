/* conv.cu: 2-D convolution through cuDNN (and cuBLAS for 1x1), NHWC float.
 *
 * Shapes: x (N,H,W,C), w (R,S,C,K) = HWIO, y (N,P,Q,K).  Input cell of output (p,q), tap
 * (r,s): h = p*stride_h - pad_top + r*dil_h, w = q*stride_w - pad_left + s*dil_w.
 *
 * Three routes, chosen per shape:
 *   GEMM    1x1, stride 1, no padding, P=H, Q=W: y = x (NHW,C) @ w (C,K) with cuBLAS.
 *   DIRECT  cuDNN with its symmetric padding pad_top/pad_left.  That is exact whenever the
 *           padding the output needs at the bottom (b) satisfies b <= pad_top < b + stride:
 *           cuDNN then produces exactly P rows and its extra bottom rows are never read.
 *   PADDED  otherwise (TF's SAME with odd total padding puts the extra cell at the bottom/
 *           right, which cuDNN cannot express): x is copied into the workspace with explicit
 *           zero padding, (N, Hp, Wp, C) with Hp = (P-1)*stride_h + (R-1)*dil_h + 1, and
 *           convolved without padding.  bwd_data computes the padded gradient in the
 *           workspace and adds its interior into dx.
 * cuDNN's NHWC filter layout is KRSC; HWIO is its transpose as an (RSC, K) matrix, so w is
 * transposed into the workspace (and dw comes back through a transposing add).
 *
 * Workspace (every route but GEMM): [w or dw in KRSC][padded x or dx][cuDNN workspace].
 * conv2d_ws asks for the largest workspace any candidate algorithm needs, bounded by
 * SN__CUDA_CONV_WS_LIMIT, so that the fastest one can run.
 *
 * Algorithms: a plan per (dims, tf32) caches the descriptors and a ranked list of candidates,
 * filtered to those needing at most SN__CUDA_CONV_WS_LIMIT and, with allow_tf32 = 0, to FMA
 * math, and in deterministic mode to algorithms cuDNN reports as deterministic (with timing
 * off: the same bits every run).  The list starts as cuDNN's heuristics (cudnnGet*_v7).  With find_algos set (the
 * default), the first run of an operation whose output may be scribbled on (forward: y;
 * bwd_filter: the KRSC gradient in the workspace; bwd_data on the PADDED route: the padded
 * gradient in the workspace) times every algorithm with cudnnFind*AlgorithmEx on the real
 * buffers and re-ranks the list by measured time, as cudnn.benchmark does; bwd_data into dx
 * itself, which must accumulate into what dx holds, is timed by cudnnFind*Algorithm on
 * buffers cuDNN allocates (on the H200, VGG-16's convolution backward took 3x its forward
 * with bwd_data on heuristics: 50 vs 17 ms at batch 128).  At run time the
 * first candidate whose workspace fits d->ws is used; one that cuDNN refuses as unsupported is
 * dropped and the next tried.  Backward kernels accumulate (cuDNN beta = 1, or an adding
 * copy-back). */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include "cuda_internal.h"

enum { ROUTE_GEMM = 0, ROUTE_DIRECT = 1, ROUTE_PADDED = 2 };
enum { OP_FWD = 0, OP_BWD_DATA = 1, OP_BWD_FILTER = 2, OP_COUNT = 3 };
#define MAX_CAND 16

typedef struct algo_list {
    int ready;                      /* candidates queried */
    int tuned;                      /* ranked by cudnnFind*AlgorithmEx (or tried to be) */
    int n;
    int algo[MAX_CAND];             /* cudnnConvolution{Fwd,BwdData,BwdFilter}Algo_t */
    size_t ws[MAX_CAND];
    cudnnMathType_t math[MAX_CAND];
    unsigned char bad[MAX_CAND];    /* refused by cuDNN at run time */
} algo_list;

struct sn__conv_plan {
    sn__conv2d_dims cd;
    int64_t groups;                 /* 1: conv2d; C: depthwise (dwconv2d through cuDNN) */
    int usable;                     /* depthwise plans: 0 not yet asked, 1 yes, 2 no */
    int tf32;                       /* 1 for bf16 plans: tensor cores are their point */
    int bf16;                       /* tensors in bf16 (cuDNN's BFLOAT16 config), else float */
    int route;
    int64_t Hx, Wx;                 /* the input cuDNN sees: (H, W) or padded (Hp, Wp) */
    size_t fixed;                   /* workspace bytes before cuDNN's: weights + padding */
    size_t pad_off;                 /* offset of the padded tensor in the workspace */
    size_t algo_off;                /* offset of cuDNN's workspace */
    cudnnTensorDescriptor_t xd, yd;
    cudnnFilterDescriptor_t wd;
    cudnnConvolutionDescriptor_t cv;
    algo_list ops[OP_COUNT];
};

static size_t align256(size_t b) { return (b + 255) & ~(size_t)255; }

/* Nothing for cuDNN to do: no output, or no taps. */
static bool conv_empty(const sn__conv2d_dims *cd) {
    return cd->N == 0 || cd->P == 0 || cd->Q == 0 || cd->K == 0 || cd->C == 0 || cd->R == 0 ||
           cd->S == 0;
}

/* ---- transposes --------------------------------------------------------------------------- */

/* out (cols, rows) = or += in (rows, cols)^T, both row-major.  32x32 tiles through shared
 * memory (one padding column avoids bank conflicts) so reads and writes both coalesce.  TO and
 * TI are float or sn_bf16: a bf16 plan's weights are rounded on the way in (float -> bf16)
 * and its weight gradient widened on the way out (bf16 -> float, added). */
template <bool ACC, class TO, class TI>
static __global__ void transpose_kernel(TO *__restrict__ out, const TI *__restrict__ in,
                                        int64_t rows, int64_t cols) {
    __shared__ float tile[32][33];
    int64_t c0 = (int64_t)blockIdx.x * 32, r0 = (int64_t)blockIdx.y * 32;
    for (int i = threadIdx.y; i < 32; i += blockDim.y) {
        int64_t r = r0 + i, c = c0 + threadIdx.x;
        if (r < rows && c < cols) tile[i][threadIdx.x] = sn__ldf(in + r * cols + c);
    }
    __syncthreads();
    for (int i = threadIdx.y; i < 32; i += blockDim.y) {
        int64_t c = c0 + i, r = r0 + threadIdx.x;
        if (r < rows && c < cols) {
            float v = tile[threadIdx.x][i];
            if (ACC) sn__stf(out + c * rows + r, sn__ldf(out + c * rows + r) + v);
            else sn__stf(out + c * rows + r, v);
        }
    }
}

template <class TO, class TI>
static sn_status transpose(sn__dev *d, struct sn__cuda *c, TO *out, const TI *in,
                           int64_t rows, int64_t cols, bool acc) {
    if (rows == 0 || cols == 0) return SN_OK;
    int64_t gy = (rows + 31) / 32;
    if (gy > 65535)
        return sn__fail(d->ctx, SN_ERR_UNSUPPORTED, "conv2d: weight matrix of %lld rows",
                        (long long)rows);
    dim3 grid((unsigned)((cols + 31) / 32), (unsigned)gy), block(32, 8);
    if (acc) transpose_kernel<true><<<grid, block, 0, c->stream>>>(out, in, rows, cols);
    else transpose_kernel<false><<<grid, block, 0, c->stream>>>(out, in, rows, cols);
    return sn__cuda_launched(d, "conv2d transpose");
}

/* ---- plans -------------------------------------------------------------------------------- */

static void plan_free(sn__conv_plan *p) {
    if (!p) return;
    if (p->xd) (void)cudnnDestroyTensorDescriptor(p->xd);
    if (p->yd) (void)cudnnDestroyTensorDescriptor(p->yd);
    if (p->wd) (void)cudnnDestroyFilterDescriptor(p->wd);
    if (p->cv) (void)cudnnDestroyConvolutionDescriptor(p->cv);
    free(p);
}

extern "C" void sn__cuda_plans_free(struct sn__cuda *c) {
    for (int i = 0; i < c->n_plans; i++) plan_free(c->plans[i]);
    free(c->plans);
    c->plans = NULL;
    c->n_plans = c->cap_plans = 0;
    c->last_plan = -1;
}

static bool fits_int(int64_t v) { return v >= 0 && v <= INT_MAX; }

static sn_status check_dims(sn__dev *d, const sn__conv2d_dims *cd, const char *what) {
    const int64_t *v = &cd->N;
    for (int i = 0; i < (int)(sizeof *cd / sizeof(int64_t)); i++)
        if (v[i] < 0)
            return sn__fail(d->ctx, SN_ERR_INVALID_ARG, "%s: negative dimension", what);
    if (cd->stride_h < 1 || cd->stride_w < 1 || cd->dil_h < 1 || cd->dil_w < 1)
        return sn__fail(d->ctx, SN_ERR_INVALID_ARG, "%s: stride and dilation must be >= 1",
                        what);
    return SN_OK;
}

static sn_status plan_build(sn__dev *d, sn__conv_plan *p) {
    const sn__conv2d_dims *cd = &p->cd;
    const int64_t G = p->groups, Cg = cd->C / G;   /* input channels per group */
    int64_t eh = (cd->R - 1) * cd->dil_h + 1, ew = (cd->S - 1) * cd->dil_w + 1;
    int64_t bh = (cd->P - 1) * cd->stride_h + eh - cd->H - cd->pad_top;
    int64_t bw = (cd->Q - 1) * cd->stride_w + ew - cd->W - cd->pad_left;
    if (G == 1 && cd->R == 1 && cd->S == 1 && cd->stride_h == 1 && cd->stride_w == 1 &&
        cd->pad_top == 0 && cd->pad_left == 0 && cd->P == cd->H && cd->Q == cd->W) {
        p->route = ROUTE_GEMM;   /* bf16: the rounded weights (C,K) in the workspace */
        p->fixed = p->bf16 ? align256((size_t)(cd->C * cd->K) * sizeof(sn_bf16)) : 0;
        return SN_OK;
    }
    bool sym_h = cd->pad_top >= 0 && bh <= cd->pad_top && cd->pad_top < bh + cd->stride_h;
    bool sym_w = cd->pad_left >= 0 && bw <= cd->pad_left && cd->pad_left < bw + cd->stride_w;
    p->route = sym_h && sym_w ? ROUTE_DIRECT : ROUTE_PADDED;
    p->Hx = p->route == ROUTE_DIRECT ? cd->H : (cd->P - 1) * cd->stride_h + eh;
    p->Wx = p->route == ROUTE_DIRECT ? cd->W : (cd->Q - 1) * cd->stride_w + ew;
    int64_t ph = p->route == ROUTE_DIRECT ? cd->pad_top : 0;
    int64_t pw = p->route == ROUTE_DIRECT ? cd->pad_left : 0;

    int64_t ints[] = {cd->N, cd->C, p->Hx, p->Wx, cd->K, cd->P, cd->Q, cd->R, cd->S,
                      cd->stride_h, cd->stride_w, cd->dil_h, cd->dil_w, ph, pw,
                      cd->N * p->Hx * p->Wx * cd->C, cd->N * cd->P * cd->Q * cd->K,
                      cd->R * cd->S * Cg * cd->K, G};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
        if (!fits_int(ints[i]))
            return sn__fail(d->ctx, SN_ERR_UNSUPPORTED,
                            "conv2d: a tensor of more than 2^31 elements (cuDNN's limit)");

    size_t esz = p->bf16 ? sizeof(sn_bf16) : sizeof(float);
    size_t wbytes = (size_t)(cd->R * cd->S * Cg * cd->K) * esz;
    size_t pbytes = p->route == ROUTE_PADDED ? (size_t)(cd->N * p->Hx * p->Wx * cd->C) * esz
                                             : 0;
    cudnnDataType_t dt = p->bf16 ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_FLOAT;
    p->pad_off = align256(wbytes);
    p->algo_off = p->pad_off + align256(pbytes);
    p->fixed = p->algo_off;

    SN__CU_TRY(sn__cuda_dnn(d, cudnnCreateTensorDescriptor(&p->xd), "cudnnCreateTensorDescriptor"));
    SN__CU_TRY(sn__cuda_dnn(d, cudnnCreateTensorDescriptor(&p->yd), "cudnnCreateTensorDescriptor"));
    SN__CU_TRY(sn__cuda_dnn(d, cudnnCreateFilterDescriptor(&p->wd), "cudnnCreateFilterDescriptor"));
    SN__CU_TRY(sn__cuda_dnn(d, cudnnCreateConvolutionDescriptor(&p->cv),
                            "cudnnCreateConvolutionDescriptor"));
    SN__CU_TRY(sn__cuda_dnn(d, cudnnSetTensor4dDescriptor(p->xd, CUDNN_TENSOR_NHWC, dt,
                                                          (int)cd->N, (int)cd->C, (int)p->Hx,
                                                          (int)p->Wx),
                            "cudnnSetTensor4dDescriptor(x)"));
    SN__CU_TRY(sn__cuda_dnn(d, cudnnSetTensor4dDescriptor(p->yd, CUDNN_TENSOR_NHWC, dt,
                                                          (int)cd->N, (int)cd->K, (int)cd->P,
                                                          (int)cd->Q),
                            "cudnnSetTensor4dDescriptor(y)"));
    SN__CU_TRY(sn__cuda_dnn(d, cudnnSetFilter4dDescriptor(p->wd, dt,
                                                          CUDNN_TENSOR_NHWC, (int)cd->K,
                                                          (int)Cg, (int)cd->R, (int)cd->S),
                            "cudnnSetFilter4dDescriptor"));
    SN__CU_TRY(sn__cuda_dnn(d, cudnnSetConvolution2dDescriptor(
                                   p->cv, (int)ph, (int)pw, (int)cd->stride_h,
                                   (int)cd->stride_w, (int)cd->dil_h, (int)cd->dil_w,
                                   CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT),
                            "cudnnSetConvolution2dDescriptor"));
    if (G > 1)
        SN__CU_TRY(sn__cuda_dnn(d, cudnnSetConvolutionGroupCount(p->cv, (int)G),
                                "cudnnSetConvolutionGroupCount"));
    int on, oc, op, oq;
    SN__CU_TRY(sn__cuda_dnn(d, cudnnGetConvolution2dForwardOutputDim(p->cv, p->xd, p->wd, &on,
                                                                     &oc, &op, &oq),
                            "cudnnGetConvolution2dForwardOutputDim"));
    if (on != cd->N || oc != cd->K || op != cd->P || oq != cd->Q)
        return sn__fail(d->ctx, SN_ERR_SHAPE,
                        "conv2d: output (%lld,%lld,%lld,%lld) inconsistent with the geometry "
                        "(cuDNN computes (%d,%d,%d,%d))",
                        (long long)cd->N, (long long)cd->P, (long long)cd->Q, (long long)cd->K,
                        on, op, oq, oc);
    return SN_OK;
}

static sn_status plan_get(sn__dev *d, struct sn__cuda *c, const sn__conv2d_dims *cd,
                          int64_t groups, int bf16, sn__conv_plan **out) {
    int tf32 = c->allow_tf32 || bf16 ? 1 : 0;
    if (c->last_plan >= 0 && c->last_plan < c->n_plans) {
        sn__conv_plan *p = c->plans[c->last_plan];
        if (p->tf32 == tf32 && p->bf16 == bf16 && p->groups == groups &&
            memcmp(&p->cd, cd, sizeof *cd) == 0) {
            *out = p;
            return SN_OK;
        }
    }
    for (int i = 0; i < c->n_plans; i++) {
        sn__conv_plan *p = c->plans[i];
        if (p->tf32 == tf32 && p->bf16 == bf16 && p->groups == groups &&
            memcmp(&p->cd, cd, sizeof *cd) == 0) {
            c->last_plan = i;
            *out = p;
            return SN_OK;
        }
    }
    if (c->n_plans == c->cap_plans) {
        int cap = c->cap_plans ? 2 * c->cap_plans : 32;
        sn__conv_plan **np = (sn__conv_plan **)realloc(c->plans, (size_t)cap * sizeof *np);
        if (!np) return sn__fail(d->ctx, SN_ERR_NOMEM, "conv2d: out of host memory");
        c->plans = np;
        c->cap_plans = cap;
    }
    sn__conv_plan *p = (sn__conv_plan *)calloc(1, sizeof *p);
    if (!p) return sn__fail(d->ctx, SN_ERR_NOMEM, "conv2d: out of host memory");
    p->cd = *cd;
    p->groups = groups;
    p->tf32 = tf32;
    p->bf16 = bf16;
    sn_status st = plan_build(d, p);
    if (st != SN_OK) {
        plan_free(p);
        return st;
    }
    c->plans[c->n_plans] = p;
    c->last_plan = c->n_plans++;
    *out = p;
    return SN_OK;
}

/* bf16 plans ask for tensor-core algorithms explicitly (they are the point of bf16; the
 * heuristics then rank those), float plans as allow_tf32 says. */
static cudnnMathType_t query_math(const sn__conv_plan *p) {
    if (p->bf16) return CUDNN_TENSOR_OP_MATH;
    return p->tf32 ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH;
}

/* Keeps a heuristic result if it ran, fits the limit, without TF32 uses FMA math, and in
 * deterministic mode is deterministic (cuDNN's backward algorithms that add partial results
 * with atomics, such as bwd_filter ALGO_0 and ALGO_3 and bwd_data ALGO_0, are not). */
static void keep(algo_list *l, const sn__conv_plan *p, int algo, cudnnStatus_t st,
                 size_t mem, cudnnMathType_t math, cudnnDeterminism_t det, int det_only) {
    if (st != CUDNN_STATUS_SUCCESS || mem > SN__CUDA_CONV_WS_LIMIT || l->n == MAX_CAND) return;
    if (det_only && det != CUDNN_DETERMINISTIC) return;
    if (!p->tf32 && (math == CUDNN_TENSOR_OP_MATH ||
                     math == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION))
        return;
    for (int i = 0; i < l->n; i++)
        if (l->algo[i] == algo && l->math[i] == (p->tf32 ? math : CUDNN_FMA_MATH)) return;
    l->algo[l->n] = algo;
    l->ws[l->n] = mem;
    l->math[l->n] = p->tf32 ? math : CUDNN_FMA_MATH;
    l->bad[l->n] = 0;
    l->n++;
}

static void confirm_ws(struct sn__cuda *c, sn__conv_plan *p, int op, algo_list *l);

/* Ranks the candidate algorithms of one operation by cuDNN's heuristics (once per plan). */
static sn_status query(sn__dev *d, struct sn__cuda *c, sn__conv_plan *p, int op) {
    algo_list *l = &p->ops[op];
    if (l->ready) return SN_OK;
    SN__CU_TRY(sn__cuda_dnn(d, cudnnSetConvolutionMathType(p->cv, query_math(p)),
                            "cudnnSetConvolutionMathType"));
    int got = 0;
    if (op == OP_FWD) {
        cudnnConvolutionFwdAlgoPerf_t r[MAX_CAND];
        SN__CU_TRY(sn__cuda_dnn(d, cudnnGetConvolutionForwardAlgorithm_v7(
                                       c->cudnn, p->xd, p->wd, p->cv, p->yd, MAX_CAND, &got, r),
                                "cudnnGetConvolutionForwardAlgorithm_v7"));
        for (int i = 0; i < got; i++) keep(l, p, r[i].algo, r[i].status, r[i].memory, r[i].mathType,
                     r[i].determinism, c->deterministic);
    } else if (op == OP_BWD_DATA) {
        cudnnConvolutionBwdDataAlgoPerf_t r[MAX_CAND];
        SN__CU_TRY(sn__cuda_dnn(d, cudnnGetConvolutionBackwardDataAlgorithm_v7(
                                       c->cudnn, p->wd, p->yd, p->cv, p->xd, MAX_CAND, &got, r),
                                "cudnnGetConvolutionBackwardDataAlgorithm_v7"));
        for (int i = 0; i < got; i++) keep(l, p, r[i].algo, r[i].status, r[i].memory, r[i].mathType,
                     r[i].determinism, c->deterministic);
    } else {
        cudnnConvolutionBwdFilterAlgoPerf_t r[MAX_CAND];
        SN__CU_TRY(sn__cuda_dnn(d, cudnnGetConvolutionBackwardFilterAlgorithm_v7(
                                       c->cudnn, p->xd, p->yd, p->cv, p->wd, MAX_CAND, &got, r),
                                "cudnnGetConvolutionBackwardFilterAlgorithm_v7"));
        for (int i = 0; i < got; i++) keep(l, p, r[i].algo, r[i].status, r[i].memory, r[i].mathType,
                     r[i].determinism, c->deterministic);
    }
    confirm_ws(c, p, op, l);
    l->ready = 1;
    return SN_OK;
}

/* Runs cudnnFind*AlgorithmEx on the call's buffers (out is overwritten) and, when it works,
 * replaces the heuristic ranking by the measured one.  Failures only leave the heuristics.
 * bwd_data with out NULL (its output is dx, which it accumulates into) times with
 * cudnnFindConvolutionBackwardDataAlgorithm, on buffers cuDNN allocates for the occasion. */
static void tune(struct sn__cuda *c, sn__conv_plan *p, int op, void *out, const void *in1,
                 const void *in2, void *ws, size_t avail) {
    algo_list *l = &p->ops[op];
    l->tuned = 1;
    if (!c->find_algos || cudnnSetConvolutionMathType(p->cv, query_math(p)) != CUDNN_STATUS_SUCCESS)
        return;
    algo_list t;
    memset(&t, 0, sizeof t);
    int got = 0;
    cudnnStatus_t st;
    if (op == OP_FWD) {
        cudnnConvolutionFwdAlgoPerf_t r[MAX_CAND];
        st = cudnnFindConvolutionForwardAlgorithmEx(c->cudnn, p->xd, in1, p->wd, in2, p->cv,
                                                    p->yd, out, MAX_CAND, &got, r, ws, avail);
        for (int i = 0; st == CUDNN_STATUS_SUCCESS && i < got; i++)
            if (r[i].memory <= avail)
                keep(&t, p, r[i].algo, r[i].status, r[i].memory, r[i].mathType,
                     r[i].determinism, c->deterministic);
    } else if (op == OP_BWD_DATA) {
        cudnnConvolutionBwdDataAlgoPerf_t r[MAX_CAND];
        if (out)
            st = cudnnFindConvolutionBackwardDataAlgorithmEx(c->cudnn, p->wd, in2, p->yd, in1,
                                                             p->cv, p->xd, out, MAX_CAND, &got,
                                                             r, ws, avail);
        else   /* dx must not be scribbled on: cuDNN times on buffers it allocates itself */
            st = cudnnFindConvolutionBackwardDataAlgorithm(c->cudnn, p->wd, p->yd, p->cv, p->xd,
                                                           MAX_CAND, &got, r);
        for (int i = 0; st == CUDNN_STATUS_SUCCESS && i < got; i++)
            if (r[i].memory <= avail)
                keep(&t, p, r[i].algo, r[i].status, r[i].memory, r[i].mathType,
                     r[i].determinism, c->deterministic);
    } else {
        cudnnConvolutionBwdFilterAlgoPerf_t r[MAX_CAND];
        st = cudnnFindConvolutionBackwardFilterAlgorithmEx(c->cudnn, p->xd, in1, p->yd, in2,
                                                           p->cv, p->wd, out, MAX_CAND, &got,
                                                           r, ws, avail);
        for (int i = 0; st == CUDNN_STATUS_SUCCESS && i < got; i++)
            if (r[i].memory <= avail)
                keep(&t, p, r[i].algo, r[i].status, r[i].memory, r[i].mathType,
                     r[i].determinism, c->deterministic);
    }
    (void)cudaGetLastError();
    if (st != CUDNN_STATUS_SUCCESS || t.n == 0) return;
    confirm_ws(c, p, op, &t);
    t.ready = 1;
    t.tuned = 1;
    *l = t;
}

/* The memory estimate of a ranking is what cuDNN reported; confirm it with the size query
 * under the math type the algorithm will run with, and take the larger. */
static void confirm_ws(struct sn__cuda *c, sn__conv_plan *p, int op, algo_list *l) {
    for (int i = 0; i < l->n; i++) {
        size_t ws = 0;
        cudnnStatus_t st = cudnnSetConvolutionMathType(p->cv, l->math[i]);
        if (st == CUDNN_STATUS_SUCCESS) {
            if (op == OP_FWD)
                st = cudnnGetConvolutionForwardWorkspaceSize(
                    c->cudnn, p->xd, p->wd, p->cv, p->yd, (cudnnConvolutionFwdAlgo_t)l->algo[i],
                    &ws);
            else if (op == OP_BWD_DATA)
                st = cudnnGetConvolutionBackwardDataWorkspaceSize(
                    c->cudnn, p->wd, p->yd, p->cv, p->xd,
                    (cudnnConvolutionBwdDataAlgo_t)l->algo[i], &ws);
            else
                st = cudnnGetConvolutionBackwardFilterWorkspaceSize(
                    c->cudnn, p->xd, p->yd, p->cv, p->wd,
                    (cudnnConvolutionBwdFilterAlgo_t)l->algo[i], &ws);
        }
        if (st != CUDNN_STATUS_SUCCESS || ws > SN__CUDA_CONV_WS_LIMIT) l->bad[i] = 1;
        else if (ws > l->ws[i]) l->ws[i] = ws;
    }
}

static const char *op_name(int op) {
    return op == OP_FWD ? "conv2d_fwd" : op == OP_BWD_DATA ? "conv2d_bwd_data"
                                                           : "conv2d_bwd_filter";
}

/* Workspace one op asks for: room for its hungriest candidate (all are within the limit),
 * so that whichever the ranking puts first can run. */
static size_t op_ws(const sn__conv_plan *p, int op) {
    const algo_list *l = &p->ops[op];
    size_t most = 0;
    for (int i = 0; i < l->n; i++)
        if (!l->bad[i] && l->ws[i] > most) most = l->ws[i];
    return p->fixed + most;
}

static sn_status conv_ws(sn__dev *d, const sn__conv2d_dims *cd, int64_t groups, int bf16,
                         size_t *bytes, const char *what) {
    SN__CU_BEGIN(d, c);
    *bytes = 0;
    SN__CU_TRY(check_dims(d, cd, what));
    if (conv_empty(cd)) return SN_OK;
    sn__conv_plan *p;
    SN__CU_TRY(plan_get(d, c, cd, groups, bf16, &p));
    if (p->route == ROUTE_GEMM) {
        *bytes = p->fixed;
        return SN_OK;
    }
    size_t need = p->fixed;
    for (int op = 0; op < OP_COUNT; op++) {
        SN__CU_TRY(query(d, c, p, op));
        size_t b = op_ws(p, op);
        if (b > need) need = b;
        bool any = false;
        for (int i = 0; i < p->ops[op].n; i++) any = any || !p->ops[op].bad[i];
        if (bf16 && !any)   /* the net then runs this convolution emulated (lib/bf16.c) */
            return sn__fail(d->ctx, SN_ERR_UNSUPPORTED, "%s: cuDNN offers no bf16 algorithm "
                            "for %s of this shape", what, op_name(op));
    }
    *bytes = need;
    return SN_OK;
}

extern "C" sn_status sn__conv2d_ws_cuda(sn__dev *d, const sn__conv2d_dims *cd, size_t *bytes) {
    return conv_ws(d, cd, 1, 0, bytes, "conv2d_ws");
}

/* Runs one cuDNN operation with the first usable candidate that fits the workspace.
 * scratch_out: `out` may be overwritten by a timing run (see tune). */
static sn_status run_op(sn__dev *d, struct sn__cuda *c, sn__conv_plan *p, int op, void *out,
                        const void *in1, const void *in2, float beta, bool scratch_out) {
    SN__CU_TRY(query(d, c, p, op));
    algo_list *l = &p->ops[op];
    size_t avail = d->ws_bytes > p->algo_off ? d->ws_bytes - p->algo_off : 0;
    void *ws = (char *)d->ws + p->algo_off;
    if (!l->tuned) {
        if (scratch_out) tune(c, p, op, out, in1, in2, ws, avail);
        else if (op == OP_BWD_DATA) tune(c, p, op, NULL, in1, in2, ws, avail);
    }
    const float one = 1.0f;
    bool tried = false;
    for (int i = 0; i < l->n; i++) {
        if (l->bad[i] || l->ws[i] > avail) continue;
        tried = true;
        SN__CU_TRY(sn__cuda_dnn(d, cudnnSetConvolutionMathType(p->cv, l->math[i]),
                                "cudnnSetConvolutionMathType"));
        cudnnStatus_t st;
        if (op == OP_FWD)
            st = cudnnConvolutionForward(c->cudnn, &one, p->xd, in1, p->wd, in2, p->cv,
                                         (cudnnConvolutionFwdAlgo_t)l->algo[i], ws, l->ws[i],
                                         &beta, p->yd, out);
        else if (op == OP_BWD_DATA)
            st = cudnnConvolutionBackwardData(c->cudnn, &one, p->wd, in2, p->yd, in1, p->cv,
                                              (cudnnConvolutionBwdDataAlgo_t)l->algo[i], ws,
                                              l->ws[i], &beta, p->xd, out);
        else
            st = cudnnConvolutionBackwardFilter(c->cudnn, &one, p->xd, in1, p->yd, in2, p->cv,
                                                (cudnnConvolutionBwdFilterAlgo_t)l->algo[i], ws,
                                                l->ws[i], &beta, p->wd, out);
        if (CUDNN_STATUS_CATEGORY(st) == CUDNN_STATUS_NOT_SUPPORTED) {
            l->bad[i] = 1;      /* the heuristics offered what this build cannot run */
            continue;
        }
        return sn__cuda_dnn(d, st, op_name(op));
    }
    if (!tried && op_ws(p, op) > d->ws_bytes)
        return sn__fail(d->ctx, SN_ERR_INVALID_ARG,
                        "%s: workspace of %zu bytes, this shape needs %zu (conv2d_ws)",
                        op_name(op), d->ws_bytes, op_ws(p, op));
    return sn__fail(d->ctx, SN_ERR_UNSUPPORTED, "%s: cuDNN has no algorithm for this shape",
                    op_name(op));
}

/* Common prologue: validates, fetches the plan, checks the fixed workspace. */
static sn_status conv_begin(sn__dev *d, struct sn__cuda *c, const sn__conv2d_dims *cd,
                            int64_t groups, int bf16, const char *what, sn__conv_plan **p,
                            bool *empty) {
    SN__CU_TRY(check_dims(d, cd, what));
    *empty = conv_empty(cd);
    if (*empty) return SN_OK;
    SN__CU_TRY(plan_get(d, c, cd, groups, bf16, p));
    if (d->ws_bytes < (*p)->fixed)
        return sn__fail(d->ctx, SN_ERR_INVALID_ARG,
                        "%s: workspace of %zu bytes, this shape needs at least %zu (conv2d_ws)",
                        what, d->ws_bytes, (*p)->fixed);
    return SN_OK;
}

/* x into the workspace with explicit zero padding (PADDED route). */
static sn_status pad_input(sn__dev *d, const sn__conv_plan *p, const float *x, float **xp) {
    const sn__conv2d_dims *cd = &p->cd;
    *xp = (float *)((char *)d->ws + p->pad_off);
    return sn__pad_fwd_cuda(d, *xp, x, cd->N, cd->H, cd->W, cd->C, cd->pad_top,
                            p->Hx - cd->H - cd->pad_top, cd->pad_left,
                            p->Wx - cd->W - cd->pad_left);
}

static sn_status conv_fwd(sn__dev *d, float *y, const float *x, const float *w,
                         const sn__conv2d_dims *cd, int64_t groups, const char *what) {
    SN__CU_BEGIN(d, c);
    sn__conv_plan *p = NULL;
    bool empty;
    SN__CU_TRY(conv_begin(d, c, cd, groups, 0, what, &p, &empty));
    if (empty) {   /* no taps (C, R or S is 0): y is a sum of nothing */
        size_t ny = (size_t)(cd->N * cd->P * cd->Q * cd->K);
        return ny ? sn__zero_cuda(d, y, ny * sizeof(float)) : SN_OK;
    }
    if (p->route == ROUTE_GEMM)
        return sn__gemm_cuda(d, 0, 0, cd->N * cd->H * cd->W, cd->K, cd->C, 1.0f, x, cd->C, w,
                             cd->K, 0.0f, y, cd->K);
    float *wt = (float *)d->ws;
    SN__CU_TRY(transpose(d, c, wt, w, cd->R * cd->S * (cd->C / groups), cd->K, false));
    const float *xin = x;
    if (p->route == ROUTE_PADDED) {
        float *xp;
        SN__CU_TRY(pad_input(d, p, x, &xp));
        xin = xp;
    }
    return run_op(d, c, p, OP_FWD, y, xin, wt, 0.0f, true);
}

extern "C" sn_status sn__conv2d_fwd_cuda(sn__dev *d, float *y, const float *x, const float *w,
                                         const sn__conv2d_dims *cd) {
    return conv_fwd(d, y, x, w, cd, 1, "conv2d_fwd");
}

/* The fused forward of inference nets: conv2d_fwd, then the epilogue on y. */
extern "C" sn_status sn__conv2d_fwd_ep_cuda(sn__dev *d, float *y, const float *x,
                                            const float *w, const sn__epilogue *ep,
                                            const sn__conv2d_dims *cd) {
    SN__CU_TRY(sn__conv2d_fwd_cuda(d, y, x, w, cd));
    return sn__cuda_epilogue(d, y, ep, cd->N * cd->P * cd->Q, cd->K);
}

/* beta 1: dx += the gradient; 0: dx = the gradient (not read; cuDNN's beta = 0 likewise). */
static sn_status conv_bwd_data(sn__dev *d, float *dx, const float *dy, const float *w,
                              float beta, const sn__conv2d_dims *cd, int64_t groups,
                              const char *what) {
    SN__CU_BEGIN(d, c);
    if (beta != 0.0f && beta != 1.0f)
        return sn__fail(d->ctx, SN_ERR_INVALID_ARG, "%s: beta %g is not 0 or 1", what,
                        (double)beta);
    sn__conv_plan *p = NULL;
    bool empty;
    SN__CU_TRY(conv_begin(d, c, cd, groups, 0, what, &p, &empty));
    size_t nx = (size_t)(cd->N * cd->H * cd->W * cd->C);
    if (empty)    /* nothing flows back: dx unchanged, or zero when set */
        return beta == 0.0f && nx ? sn__zero_cuda(d, dx, nx * sizeof(float)) : SN_OK;
    if (p->route == ROUTE_GEMM)   /* dx (NHW,C) = beta dx + dy (NHW,K) @ w^T */
        return sn__gemm_cuda(d, 0, 1, cd->N * cd->H * cd->W, cd->C, cd->K, 1.0f, dy, cd->K, w,
                             cd->K, beta, dx, cd->C);
    float *wt = (float *)d->ws;
    SN__CU_TRY(transpose(d, c, wt, w, cd->R * cd->S * (cd->C / groups), cd->K, false));
    if (p->route == ROUTE_DIRECT)   /* set: dx may be scribbled on, so cuDNN may time on it */
        return run_op(d, c, p, OP_BWD_DATA, dx, dy, wt, beta, beta == 0.0f);
    float *dxp = (float *)((char *)d->ws + p->pad_off);
    SN__CU_TRY(run_op(d, c, p, OP_BWD_DATA, dxp, dy, wt, 0.0f, true));
    if (beta == 0.0f) SN__CU_TRY(sn__zero_cuda(d, dx, nx * sizeof(float)));
    return sn__pad_bwd_cuda(d, dx, dxp, cd->N, cd->H, cd->W, cd->C, cd->pad_top,
                            p->Hx - cd->H - cd->pad_top, cd->pad_left,
                            p->Wx - cd->W - cd->pad_left);
}

extern "C" sn_status sn__conv2d_bwd_data_cuda(sn__dev *d, float *dx, const float *dy,
                                              const float *w, float beta,
                                              const sn__conv2d_dims *cd) {
    return conv_bwd_data(d, dx, dy, w, beta, cd, 1, "conv2d_bwd_data");
}

static sn_status conv_bwd_filter(sn__dev *d, float *dw, const float *dy, const float *x,
                                const sn__conv2d_dims *cd, int64_t groups, const char *what) {
    SN__CU_BEGIN(d, c);
    sn__conv_plan *p = NULL;
    bool empty;
    SN__CU_TRY(conv_begin(d, c, cd, groups, 0, what, &p, &empty));
    if (empty) return SN_OK;
    if (p->route == ROUTE_GEMM)   /* dw (C,K) += x^T (C,NHW) @ dy (NHW,K) */
        return sn__gemm_cuda(d, 1, 0, cd->C, cd->K, cd->N * cd->H * cd->W, 1.0f, x, cd->C, dy,
                             cd->K, 1.0f, dw, cd->K);
    float *dwt = (float *)d->ws;
    const float *xin = x;
    if (p->route == ROUTE_PADDED) {
        float *xp;
        SN__CU_TRY(pad_input(d, p, x, &xp));
        xin = xp;
    }
    SN__CU_TRY(run_op(d, c, p, OP_BWD_FILTER, dwt, xin, dy, 0.0f, true));
    return transpose(d, c, dw, dwt, cd->K, cd->R * cd->S * (cd->C / groups), true);
}

extern "C" sn_status sn__conv2d_bwd_filter_cuda(sn__dev *d, float *dw, const float *dy,
                                                const float *x, const sn__conv2d_dims *cd) {
    return conv_bwd_filter(d, dw, dy, x, cd, 1, "conv2d_bwd_filter");
}

/* ---- depthwise through cuDNN: a convolution with C groups ----------------------------------
 * dwconv2d's weights (R,S,C,M) read as an (R*S, K) matrix transpose into cuDNN's grouped
 * KRSC filter with one input channel per group, (K, R, S, 1), and output channel c*M+m is
 * group c's m-th: the same layout the plain route uses, with C/groups = 1.  dwconv.cu asks
 * sn__cuda_dw_usable first and keeps its own kernels where cuDNN cannot take the shape. */

extern "C" bool sn__cuda_dw_usable(sn__dev *d, const sn__conv2d_dims *cd) {
    struct sn__cuda *c = (struct sn__cuda *)d->cuda;
    if (!c || !c->dw_cudnn || conv_empty(cd) || cd->M < 1 || cd->K != cd->C * cd->M)
        return false;
    sn__conv_plan *p;
    if (plan_get(d, c, cd, cd->C, 0, &p) != SN_OK) return false;   /* e.g. over 2^31 elements */
    if (!p->usable) {
        p->usable = 1;
        for (int op = 0; op < OP_COUNT && p->usable == 1; op++) {
            bool any = false;
            if (query(d, c, p, op) == SN_OK)
                for (int i = 0; i < p->ops[op].n; i++) any = any || !p->ops[op].bad[i];
            if (!any) p->usable = 2;
        }
    }
    return p->usable == 1;
}

extern "C" sn_status sn__cuda_dw_ws(sn__dev *d, const sn__conv2d_dims *cd, size_t *bytes) {
    return conv_ws(d, cd, cd->C, 0, bytes, "dwconv2d_ws");
}

extern "C" sn_status sn__cuda_dw_fwd(sn__dev *d, float *y, const float *x, const float *w,
                                     const sn__conv2d_dims *cd) {
    return conv_fwd(d, y, x, w, cd, cd->C, "dwconv2d_fwd");
}

extern "C" sn_status sn__cuda_dw_bwd_data(sn__dev *d, float *dx, const float *dy,
                                          const float *w, const sn__conv2d_dims *cd) {
    return conv_bwd_data(d, dx, dy, w, 1.0f, cd, cd->C, "dwconv2d_bwd_data");
}

extern "C" sn_status sn__cuda_dw_bwd_filter(sn__dev *d, float *dw, const float *dy,
                                            const float *x, const sn__conv2d_dims *cd) {
    return conv_bwd_filter(d, dw, dy, x, cd, cd->C, "dwconv2d_bwd_filter");
}

/* ---- bf16 activations (kernels.def's bfloat16 section) -------------------------------------
 * The same three routes on bf16 plans: cuDNN's BFLOAT16 configuration (bf16 x, w, y; float32
 * accumulation) with the weights rounded into the workspace by the HWIO->KRSC transpose, and
 * for 1x1 cublasGemmEx on bf16 operands with float32 accumulation.  The weight gradient comes
 * back from cuDNN in bf16 and is widened by the transposing add into dw; the GEMM route adds
 * it to dw in float32 directly. */

/* Row-major c (m,n) = op(a) op(b) + beta c, a and b bf16, c of type ct (bf16 or float). */
static sn_status gemm_bf16(sn__dev *d, struct sn__cuda *c, int ta, int tb, int64_t m,
                           int64_t n, int64_t k, const sn_bf16 *a, int64_t lda,
                           const sn_bf16 *b, int64_t ldb, float beta, void *cm,
                           cudaDataType_t ct, int64_t ldc) {
    if (m == 0 || n == 0) return SN_OK;
    const float alpha = 1.0f;
    return sn__cuda_blas(d,
                         cublasGemmEx_64(c->cublas, tb ? CUBLAS_OP_T : CUBLAS_OP_N,
                                         ta ? CUBLAS_OP_T : CUBLAS_OP_N, n, m, k, &alpha, b,
                                         CUDA_R_16BF, ldb, a, CUDA_R_16BF, lda, &beta, cm, ct,
                                         ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                         "cublasGemmEx_64");
}

extern "C" sn_status sn__conv2d_ws_bf16_cuda(sn__dev *d, const sn__conv2d_dims *cd,
                                             size_t *bytes) {
    return conv_ws(d, cd, 1, 1, bytes, "conv2d_ws_bf16");
}

/* x into the workspace with explicit zero padding (PADDED route, bf16). */
static sn_status pad_input_bf16(sn__dev *d, const sn__conv_plan *p, const sn_bf16 *x,
                                const sn_bf16 **xin) {
    const sn__conv2d_dims *cd = &p->cd;
    sn_bf16 *xp = (sn_bf16 *)((char *)d->ws + p->pad_off);
    *xin = xp;
    return sn__pad_fwd_bf16_cuda(d, xp, x, cd->N, cd->H, cd->W, cd->C, cd->pad_top,
                                 p->Hx - cd->H - cd->pad_top, cd->pad_left,
                                 p->Wx - cd->W - cd->pad_left);
}

extern "C" sn_status sn__conv2d_fwd_bf16_cuda(sn__dev *d, sn_bf16 *y, const sn_bf16 *x,
                                              const float *w, const sn__conv2d_dims *cd) {
    SN__CU_BEGIN(d, c);
    sn__conv_plan *p = NULL;
    bool empty;
    SN__CU_TRY(conv_begin(d, c, cd, 1, 1, "conv2d_fwd_bf16", &p, &empty));
    if (empty) {
        size_t ny = (size_t)(cd->N * cd->P * cd->Q * cd->K);
        return ny ? sn__zero_cuda(d, y, ny * sizeof(sn_bf16)) : SN_OK;
    }
    sn_bf16 *wt = (sn_bf16 *)d->ws;
    if (p->route == ROUTE_GEMM) {   /* y (NHW,K) = x (NHW,C) @ w (C,K) */
        SN__CU_TRY(sn__cast_to_bf16_cuda(d, wt, w, cd->C * cd->K));
        return gemm_bf16(d, c, 0, 0, cd->N * cd->H * cd->W, cd->K, cd->C, x, cd->C, wt, cd->K,
                         0.0f, y, CUDA_R_16BF, cd->K);
    }
    SN__CU_TRY(transpose(d, c, wt, w, cd->R * cd->S * cd->C, cd->K, false));
    const sn_bf16 *xin = x;
    if (p->route == ROUTE_PADDED) SN__CU_TRY(pad_input_bf16(d, p, x, &xin));
    return run_op(d, c, p, OP_FWD, y, xin, wt, 0.0f, true);
}

extern "C" sn_status sn__conv2d_bwd_data_bf16_cuda(sn__dev *d, sn_bf16 *dx, const sn_bf16 *dy,
                                                   const float *w, float beta,
                                                   const sn__conv2d_dims *cd) {
    SN__CU_BEGIN(d, c);
    if (beta != 0.0f && beta != 1.0f)
        return sn__fail(d->ctx, SN_ERR_INVALID_ARG, "conv2d_bwd_data_bf16: beta %g is not 0 or "
                        "1", (double)beta);
    sn__conv_plan *p = NULL;
    bool empty;
    SN__CU_TRY(conv_begin(d, c, cd, 1, 1, "conv2d_bwd_data_bf16", &p, &empty));
    int64_t nx = cd->N * cd->H * cd->W * cd->C;
    if (empty)
        return beta == 0.0f && nx ? sn__zero_cuda(d, dx, (size_t)nx * sizeof(sn_bf16)) : SN_OK;
    sn_bf16 *wt = (sn_bf16 *)d->ws;
    if (p->route == ROUTE_GEMM) {   /* dx (NHW,C) = beta dx + dy (NHW,K) @ w^T */
        SN__CU_TRY(sn__cast_to_bf16_cuda(d, wt, w, cd->C * cd->K));
        return gemm_bf16(d, c, 0, 1, cd->N * cd->H * cd->W, cd->C, cd->K, dy, cd->K, wt, cd->K,
                         beta, dx, CUDA_R_16BF, cd->C);
    }
    SN__CU_TRY(transpose(d, c, wt, w, cd->R * cd->S * cd->C, cd->K, false));
    if (p->route == ROUTE_DIRECT)
        return run_op(d, c, p, OP_BWD_DATA, dx, dy, wt, beta, beta == 0.0f);
    sn_bf16 *dxp = (sn_bf16 *)((char *)d->ws + p->pad_off);
    SN__CU_TRY(run_op(d, c, p, OP_BWD_DATA, dxp, dy, wt, 0.0f, true));
    if (beta == 0.0f) SN__CU_TRY(sn__zero_cuda(d, dx, (size_t)nx * sizeof(sn_bf16)));
    return sn__pad_bwd_bf16_cuda(d, dx, dxp, cd->N, cd->H, cd->W, cd->C, cd->pad_top,
                                 p->Hx - cd->H - cd->pad_top, cd->pad_left,
                                 p->Wx - cd->W - cd->pad_left);
}

extern "C" sn_status sn__conv2d_bwd_filter_bf16_cuda(sn__dev *d, float *dw, const sn_bf16 *dy,
                                                     const sn_bf16 *x,
                                                     const sn__conv2d_dims *cd) {
    SN__CU_BEGIN(d, c);
    sn__conv_plan *p = NULL;
    bool empty;
    SN__CU_TRY(conv_begin(d, c, cd, 1, 1, "conv2d_bwd_filter_bf16", &p, &empty));
    if (empty) return SN_OK;
    if (p->route == ROUTE_GEMM)   /* dw (C,K) += x^T (C,NHW) @ dy (NHW,K), in float32 */
        return gemm_bf16(d, c, 1, 0, cd->C, cd->K, cd->N * cd->H * cd->W, x, cd->C, dy, cd->K,
                         1.0f, dw, CUDA_R_32F, cd->K);
    sn_bf16 *dwt = (sn_bf16 *)d->ws;
    const sn_bf16 *xin = x;
    if (p->route == ROUTE_PADDED) SN__CU_TRY(pad_input_bf16(d, p, x, &xin));
    SN__CU_TRY(run_op(d, c, p, OP_BWD_FILTER, dwt, xin, dy, 0.0f, true));
    return transpose(d, c, dw, dwt, cd->K, cd->R * cd->S * cd->C, true);
}
