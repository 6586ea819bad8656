/* test_core.c: context, status, tensors, initializers. */
#include <string.h>
#include "testutil.h"

START_TEST(test_status_names) {
    ck_assert_str_eq(sn_status_name(SN_OK), "SN_OK");
    ck_assert_str_eq(sn_status_name(SN_ERR_SHAPE), "SN_ERR_SHAPE");
    ck_assert_str_eq(sn_status_str(SN_ERR_NO_DEVICE), "no CUDA device");
    ck_assert_str_eq(sn_status_name((sn_status)-999), "SN_UNKNOWN");
    ck_assert_str_eq(sn_version(), "0.1.0");
} END_TEST

START_TEST(test_ctx_basics) {
    sn_ctx *ctx = tu_ctx();
    ck_assert_str_eq(sn_ctx_errmsg(ctx), "");
    ck_assert_int_eq(sn_ctx_device(ctx), SN_DEVICE_CPU);
    char info[128];
    ck_assert_int_eq(sn_ctx_device_info(ctx, info, sizeof info), SN_OK);
    ck_assert_str_eq(info, "CPU, 2 threads");
    sn_ctx_free(ctx);
    sn_ctx_free(NULL);
} END_TEST

START_TEST(test_ctx_bad_params) {
    sn_ctx_params p = sn_ctx_params_default();
    p.threads = -3;
    sn_ctx *ctx = NULL;
    ck_assert_int_eq(sn_ctx_new(&p, &ctx), SN_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(ctx);
    ck_assert_ptr_nonnull(strstr(sn_ctx_errmsg(ctx), "threads"));
    sn_ctx_free(ctx);
} END_TEST

/* Without a GPU (or without CUDA in the build) asking for CUDA is an error, not a crash. */
START_TEST(test_ctx_no_cuda_device) {
    if (sn_cuda_device_count() > 0) return;
    sn_ctx_params p = sn_ctx_params_default();
    p.device = SN_DEVICE_CUDA;
    sn_ctx *ctx = NULL;
    ck_assert_int_eq(sn_ctx_new(&p, &ctx), SN_ERR_NO_DEVICE);
    ck_assert_ptr_nonnull(strstr(sn_ctx_errmsg(ctx), "no CUDA device"));
    sn_ctx_free(ctx);
} END_TEST

static int log_calls;
static void count_log(void *user, sn_log_level level, const char *msg) {
    (void)level;
    (void)msg;
    (*(int *)user)++;
}

START_TEST(test_ctx_log_callback) {
    sn_ctx_params p = sn_ctx_params_default();
    p.log = count_log;
    p.log_user = &log_calls;
    p.log_level = SN_LOG_DEBUG;
    sn_ctx *ctx = NULL;
    ck_assert_int_eq(sn_ctx_new(&p, &ctx), SN_OK);
    sn_tensor *t = NULL;
    int64_t d[1] = {-5};
    log_calls = 0;
    ck_assert_int_eq(sn_tensor_new(ctx, SN_DTYPE_F32, 1, d, &t), SN_ERR_INVALID_ARG);
    ck_assert_int_eq(log_calls, 1);   /* failures are logged at debug level */
    sn_ctx_free(ctx);
} END_TEST

START_TEST(test_tensor_new_wrap_copy) {
    sn_ctx *ctx = tu_ctx();
    int64_t d[3] = {2, 3, 4};
    sn_tensor *t = NULL, *u = NULL, *w = NULL;
    ck_assert_int_eq(sn_tensor_new(ctx, SN_DTYPE_F32, 3, d, &t), SN_OK);
    ck_assert_int_eq(sn_tensor_numel(t), 24);
    ck_assert_int_eq(sn_tensor_nbytes(t), 96);
    ck_assert_int_eq(sn_tensor_dim(t, 2), 4);
    ck_assert_int_eq(sn_tensor_dim(t, 5), 0);
    for (int i = 0; i < 24; i++) ck_assert_float_eq(((float *)sn_tensor_data(t))[i], 0.0f);
    float buf[24];
    for (int i = 0; i < 24; i++) buf[i] = (float)i;
    ck_assert_int_eq(sn_tensor_wrap(ctx, buf, SN_DTYPE_F32, 3, d, SN_BORROW, &u), SN_OK);
    ck_assert_ptr_eq(sn_tensor_data(u), buf);
    ck_assert_int_eq(sn_tensor_wrap(ctx, buf, SN_DTYPE_F32, 3, d, SN_COPY, &w), SN_OK);
    ck_assert_ptr_ne(sn_tensor_data(w), buf);
    buf[5] = -1.0f;
    ck_assert_float_eq(((float *)sn_tensor_data(w))[5], 5.0f);
    ck_assert_int_eq(sn_tensor_copy(t, u), SN_OK);
    ck_assert_float_eq(((float *)sn_tensor_data(t))[5], -1.0f);
    int64_t d2[1] = {23};
    sn_tensor *small = NULL;
    ck_assert_int_eq(sn_tensor_new(ctx, SN_DTYPE_F32, 1, d2, &small), SN_OK);
    ck_assert_int_eq(sn_tensor_copy(small, u), SN_ERR_SHAPE);
    ck_assert_ptr_nonnull(strstr(sn_ctx_errmsg(ctx), "[2,3,4]"));
    sn_tensor_free(t);
    sn_tensor_free(u);
    sn_tensor_free(w);
    sn_tensor_free(small);
    sn_tensor_free(NULL);
    sn_ctx_free(ctx);
} END_TEST

/* sn_tensor_new_pinned: on a CPU context an ordinary zero-filled tensor (on CUDA page-locked
 * memory, tested in the cuda suite), bad shapes refused like sn_tensor_new's; a zero-size
 * one is valid. */
START_TEST(test_tensor_new_pinned) {
    sn_ctx *ctx = tu_ctx();
    int64_t d[2] = {3, 5}, bad[1] = {-1}, none[1] = {0};
    sn_tensor *t = NULL, *z = NULL, *b = NULL;
    ck_assert_int_eq(sn_tensor_new_pinned(ctx, SN_DTYPE_F32, 2, d, &t), SN_OK);
    ck_assert_int_eq(sn_tensor_numel(t), 15);
    for (int i = 0; i < 15; i++) ck_assert_float_eq(((float *)sn_tensor_data(t))[i], 0.0f);
    ((float *)sn_tensor_data(t))[14] = 2.5f;
    ck_assert_int_eq(sn_tensor_new_pinned(ctx, SN_DTYPE_F32, 1, bad, &b), SN_ERR_INVALID_ARG);
    ck_assert_ptr_null(b);
    ck_assert_int_eq(sn_tensor_new_pinned(ctx, SN_DTYPE_I32, 1, none, &z), SN_OK);
    ck_assert_ptr_nonnull(sn_tensor_data(z));
    sn_tensor_free(t);
    sn_tensor_free(z);
    sn_ctx_free(ctx);
} END_TEST

START_TEST(test_tensor_bad_shapes) {
    sn_ctx *ctx = tu_ctx();
    sn_tensor *t = (sn_tensor *)1;
    int64_t neg[2] = {3, -1}, huge[4] = {1 << 30, 1 << 30, 1 << 30, 1 << 30};
    ck_assert_int_eq(sn_tensor_new(ctx, SN_DTYPE_F32, 2, neg, &t), SN_ERR_INVALID_ARG);
    ck_assert_ptr_null(t);
    ck_assert_int_eq(sn_tensor_new(ctx, SN_DTYPE_F32, 4, huge, &t), SN_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(sn_ctx_errmsg(ctx), "too large"));
    ck_assert_int_eq(sn_tensor_new(ctx, SN_DTYPE_F32, 9, neg, &t), SN_ERR_INVALID_ARG);
    ck_assert_int_eq(sn_tensor_new(ctx, (sn_dtype)77, 1, neg, &t), SN_ERR_INVALID_ARG);
    ck_assert_int_eq(sn_tensor_wrap(ctx, NULL, SN_DTYPE_F32, 1, (int64_t[]){4}, SN_BORROW, &t),
                     SN_ERR_INVALID_ARG);
    sn_ctx_free(ctx);
} END_TEST

/* ---- initializers: TF's distributions, checked by their moments and bounds -------------- */

static void moments(const float *x, size_t n, double *mean, double *sd, double *maxabs) {
    double s = 0, s2 = 0, m = 0;
    for (size_t i = 0; i < n; i++) {
        s += x[i];
        s2 += (double)x[i] * x[i];
        if (fabs(x[i]) > m) m = fabs(x[i]);
    }
    *mean = s / (double)n;
    *sd = sqrt(s2 / (double)n - *mean * *mean);
    *maxabs = m;
}

START_TEST(test_init_distributions) {
    sn_ctx *ctx = tu_ctx();
    enum { N = 200000 };
    float *x = malloc(N * sizeof *x);
    double mean, sd, mx;
    int64_t d1[1] = {N};

    sn_init in = sn_init_truncated_normal(0.0f, 0.5f);
    ck_assert_int_eq(sn_init_fill(ctx, &in, 1, d1, 1, x), SN_OK);
    moments(x, N, &mean, &sd, &mx);
    ck_assert(mx <= 1.0 + 1e-6);                          /* redrawn beyond 2 stddev */
    ck_assert(fabs(sd - 0.5 * 0.87962566) < 0.005);       /* sd of N(0,1) cut at 2 */
    ck_assert(fabs(mean) < 0.005);

    in = sn_init_random_uniform(-2.0f, 3.0f);
    ck_assert_int_eq(sn_init_fill(ctx, &in, 1, d1, 2, x), SN_OK);
    moments(x, N, &mean, &sd, &mx);
    ck_assert(fabs(mean - 0.5) < 0.02);
    ck_assert(fabs(sd - 5.0 / sqrt(12.0)) < 0.02);

    /* conv weights 3x3x64x128: fan_in 576, fan_out 1152. */
    int64_t wd[4] = {3, 3, 64, 128};
    size_t wn = 3 * 3 * 64 * 128;
    in = sn_init_xavier(1);
    ck_assert_int_eq(sn_init_fill(ctx, &in, 4, wd, 3, x), SN_OK);
    moments(x, wn, &mean, &sd, &mx);
    double limit = sqrt(6.0 / (576 + 1152));
    ck_assert(mx <= limit);
    ck_assert(fabs(sd - limit / sqrt(3.0)) < 0.01 * limit);

    in = sn_init_variance_scaling(2.0f, SN_FAN_IN, 0);     /* slim's default: He, truncated */
    ck_assert_int_eq(sn_init_fill(ctx, &in, 4, wd, 4, x), SN_OK);
    moments(x, wn, &mean, &sd, &mx);
    double stddev = sqrt(1.3 * 2.0 / 576);
    ck_assert(mx <= 2 * stddev + 1e-6);
    ck_assert(fabs(sd - stddev * 0.87962566) < 0.02 * stddev);

    in = sn_init_constant(0.1f);
    ck_assert_int_eq(sn_init_fill(ctx, &in, 1, d1, 5, x), SN_OK);
    ck_assert_float_eq(x[N - 1], 0.1f);
    free(x);
    sn_ctx_free(ctx);
} END_TEST

START_TEST(test_init_deterministic) {
    sn_ctx *ctx = tu_ctx();
    float a[64], b[64], c[64];
    int64_t d[1] = {64};
    sn_init in = sn_init_truncated_normal(0.0f, 1.0f);
    sn_init_fill(ctx, &in, 1, d, 99, a);
    sn_init_fill(ctx, &in, 1, d, 99, b);
    sn_init_fill(ctx, &in, 1, d, 100, c);
    ck_assert_mem_eq(a, b, sizeof a);
    ck_assert(memcmp(a, c, sizeof a) != 0);
    sn_ctx_free(ctx);
} END_TEST

Suite *suite_core(void) {
    Suite *s = suite_create("core");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_status_names);
    tcase_add_test(tc, test_ctx_basics);
    tcase_add_test(tc, test_ctx_bad_params);
    tcase_add_test(tc, test_ctx_no_cuda_device);
    tcase_add_test(tc, test_ctx_log_callback);
    tcase_add_test(tc, test_tensor_new_wrap_copy);
    tcase_add_test(tc, test_tensor_new_pinned);
    tcase_add_test(tc, test_tensor_bad_shapes);
    tcase_add_test(tc, test_init_distributions);
    tcase_add_test(tc, test_init_deterministic);
    suite_add_tcase(s, tc);
    return s;
}
