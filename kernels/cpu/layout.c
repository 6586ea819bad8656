/* layout.c: channel concatenation, spatial zero padding and the spatial mean on the CPU.
 * Shapes: activations NHWC.  concat: x (rows, Cx) is channels [off, off+Cx) of y (rows, Cy),
 * rows = N*H*W.  pad: x (N,H,W,C), y (N, H+top+bottom, W+left+right, C).  mean_hw: x (N,HW,C),
 * y (N,C). */
#include <string.h>
#include "../kernels.h"

/* Below this many elements a parallel region costs more than the loop. */
enum { PAR_MIN = 1 << 15 };

/* y[r, off + c] = x[r, c] for c < Cx; y's other channels are left alone (other inputs of
 * the concatenation write them). */
sn_status sn__concat_fwd_cpu(sn__dev *d, float *y, const float *x, int64_t rows, int64_t Cx,
                             int64_t Cy, int64_t off) {
#pragma omp parallel for num_threads(d->threads) if (rows * Cx >= PAR_MIN)
    for (int64_t r = 0; r < rows; r++)
        memcpy(y + r * Cy + off, x + r * Cx, (size_t)Cx * sizeof(float));
    return SN_OK;
}

/* Accumulates: dx[r, c] += dy[r, off + c]. */
sn_status sn__concat_bwd_cpu(sn__dev *d, float *dx, const float *dy, int64_t rows, int64_t Cx,
                             int64_t Cy, int64_t off) {
#pragma omp parallel for num_threads(d->threads) if (rows * Cx >= PAR_MIN)
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < Cx; c++) dx[r * Cx + c] += dy[r * Cy + off + c];
    return SN_OK;
}

/* y = x with top/bottom rows and left/right columns of zeros.  Pads are >= 0. */
sn_status sn__pad_fwd_cpu(sn__dev *d, float *y, const float *x, int64_t N, int64_t H,
                          int64_t W, int64_t C, int64_t top, int64_t bottom, int64_t left,
                          int64_t right) {
    const int64_t Hp = H + top + bottom, Wp = W + left + right;
    /* One task per output row: each is a run of zeros, or zeros, the input row, zeros. */
#pragma omp parallel for num_threads(d->threads) if (N * Hp * Wp * C >= PAR_MIN)
    for (int64_t nh = 0; nh < N * Hp; nh++) {
        int64_t n = nh / Hp, h = nh % Hp - top;
        float *yr = y + nh * Wp * C;
        if (h < 0 || h >= H) {
            memset(yr, 0, (size_t)(Wp * C) * sizeof(float));
            continue;
        }
        memset(yr, 0, (size_t)(left * C) * sizeof(float));
        memcpy(yr + left * C, x + (n * H + h) * W * C, (size_t)(W * C) * sizeof(float));
        memset(yr + (left + W) * C, 0, (size_t)(right * C) * sizeof(float));
    }
    return SN_OK;
}

/* Accumulates: dx += the interior of dy (the padding's gradient is dropped). */
sn_status sn__pad_bwd_cpu(sn__dev *d, float *dx, const float *dy, int64_t N, int64_t H,
                          int64_t W, int64_t C, int64_t top, int64_t bottom, int64_t left,
                          int64_t right) {
    const int64_t Hp = H + top + bottom, Wp = W + left + right;
#pragma omp parallel for num_threads(d->threads) if (N * H * W * C >= PAR_MIN)
    for (int64_t nh = 0; nh < N * H; nh++) {
        int64_t n = nh / H, h = nh % H;
        const float *dyr = dy + ((n * Hp + h + top) * Wp + left) * C;
        float *dxr = dx + nh * W * C;
        for (int64_t i = 0; i < W * C; i++) dxr[i] += dyr[i];
    }
    return SN_OK;
}

/* y[n, c] = mean over the HW positions of x[n, :, c] (global average pooling). */
sn_status sn__mean_hw_fwd_cpu(sn__dev *d, float *y, const float *x, int64_t N, int64_t HW,
                              int64_t C) {
    /* Divides the sum, as TF's mean reducer does, rather than multiplying by 1/HW. */
    const float hw = (float)HW;
#pragma omp parallel for num_threads(d->threads) if (N * HW * C >= PAR_MIN)
    for (int64_t n = 0; n < N; n++) {
        float *yn = y + n * C;
        for (int64_t c = 0; c < C; c++) yn[c] = 0.0f;
        for (int64_t i = 0; i < HW; i++)
            for (int64_t c = 0; c < C; c++) yn[c] += x[(n * HW + i) * C + c];
        for (int64_t c = 0; c < C; c++) yn[c] /= hw;
    }
    return SN_OK;
}

/* Accumulates: dx[n, i, c] += dy[n, c] / HW. */
sn_status sn__mean_hw_bwd_cpu(sn__dev *d, float *dx, const float *dy, int64_t N, int64_t HW,
                              int64_t C) {
    const float hw = (float)HW;
#pragma omp parallel for num_threads(d->threads) if (N * HW * C >= PAR_MIN)
    for (int64_t ni = 0; ni < N * HW; ni++) {
        const float *dyn = dy + ni / HW * C;
        for (int64_t c = 0; c < C; c++) dx[ni * C + c] += dyn[c] / hw;
    }
    return SN_OK;
}
