/* test_cuda_net.c: a whole network on the GPU equals the CPU path.  resnet_v1_50 and
 * inception_v3 (training mode: batch norm on batch statistics) at a small input, same seed and input on both
 * devices: the logits, the loss and every variable's gradient are compared.  Skips cleanly
 * without a GPU.
 *
 * Logits and loss (strict float32, TF32 off): within 1e-4 of the largest |value|.
 *
 * Gradients: a randomly initialized 50-layer relu + batch-norm network at batch 4 is
 * chaotic: on the CPU alone, scaling each input pixel by (1 +- 1e-6) moves some weight
 * gradients by 3% (norm) and single elements by 30% (relu units flip at their kink; batch
 * norm over nearly dead channels divides by sqrt(var + eps) ~ 3e-3).  No fixed tolerance is
 * meaningful there, so each gradient is held to the network's own float32 conditioning:
 * |g_gpu - g_cpu| <= 4 max_k |g_cpu'k - g_cpu| + 1e-4 |g_cpu| (L2 norms per variable), where
 * g_cpu'k comes from the CPU on the input perturbed by 1e-5 relative, K = 3 times.
 * One perturbation is not enough: a relu unit sitting on its kink flips for some
 * perturbations and not others, a discrete jump.  Measured on the CPU alone for
 * inception_v3 (139x139, batch 4): Mixed_7c/Branch_2/Conv2d_0d_3x1/BatchNorm/beta moved by
 * 5e-6 under three 1e-6 perturbations and by 1.46e-3 (one element, channel 229) under the
 * other three; with a single non-flipping perturbation the bound was 3.4e-5, and the GPU's
 * flip of that unit read as "54x over the bound" (commit e286c08).  The GPU's forward
 * differs from the CPU's by ~1e-6..1e-5 relative (cuDNN's summation order), hence
 * perturbations of that size.  A wrong kernel still misses this bound by orders of
 * magnitude on most variables; the per-op parity suite (test_cuda.c) holds every kernel to
 * 1e-5. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include "testutil.h"

typedef struct run {
    sn_ctx *ctx;
    sn_graph *g;
    sn_net *net;
    sn_node logits, loss;
} run;

static void build_run(run *r, const char *model, sn_device dev, const float *x,
                      const int32_t *y, int64_t batch, int64_t size, int precision) {
    sn_ctx_params cp = sn_ctx_params_default();
    cp.device = dev;
    cp.seed = 7;
    cp.allow_tf32 = 0;
    cp.deterministic = 1;
    ck_assert_int_eq(sn_ctx_new(&cp, &r->ctx), SN_OK);
    ck_assert_int_eq(sn_graph_new(r->ctx, &r->g), SN_OK);
    int64_t in[4] = {SN_BATCH, size, size, 3}, ld[1] = {SN_BATCH};
    sn_node images = sn_input(r->g, "images", SN_DTYPE_F32, 4, in);
    sn_node labels = sn_input(r->g, "labels", SN_DTYPE_I32, 1, ld);
    sn_model_params mp = sn_model_params_default();
    mp.num_classes = 10;
    sn_model m;
    ck_assert_msg(sn_model_build(r->g, model, images, &mp, &m) == SN_OK, "%s",
                  sn_graph_errmsg(r->g));
    r->logits = m.logits;
    r->loss = sn_op_softmax_xent(r->g, m.logits, labels, 0.1f);
    sn_compile_params pp = sn_compile_params_default();
    pp.batch_size = batch;
    pp.precision = precision;
    ck_assert_msg(sn_net_compile(r->g, &pp, &r->net) == SN_OK, "%s", sn_ctx_errmsg(r->ctx));
    int64_t xd[4] = {batch, size, size, 3}, yd[1] = {batch};
    sn_tensor *xt = NULL, *yt = NULL;
    sn_tensor_wrap(r->ctx, (void *)x, SN_DTYPE_F32, 4, xd, SN_BORROW, &xt);
    sn_tensor_wrap(r->ctx, (void *)y, SN_DTYPE_I32, 1, yd, SN_BORROW, &yt);
    ck_assert_int_eq(sn_net_set_input(r->net, images, xt), SN_OK);
    ck_assert_int_eq(sn_net_set_input(r->net, labels, yt), SN_OK);
    ck_assert_msg(sn_net_forward(r->net) == SN_OK, "%s", sn_ctx_errmsg(r->ctx));
    ck_assert_msg(sn_net_backward(r->net, r->loss) == SN_OK, "%s", sn_ctx_errmsg(r->ctx));
    sn_tensor_free(xt);
    sn_tensor_free(yt);
}

static void free_run(run *r) {
    sn_net_free(r->net);
    sn_graph_free(r->g);
    sn_ctx_free(r->ctx);
}

static double compare(run *a, run *b, sn_node n, const char *what) {
    sn_tensor *ta = NULL, *tb = NULL;
    ck_assert_int_eq(sn_net_get_output(a->net, n, &ta), SN_OK);
    ck_assert_int_eq(sn_net_get_output(b->net, n, &tb), SN_OK);
    double e = tu_max_rel_err(sn_tensor_data(tb), sn_tensor_data(ta), (size_t)sn_tensor_numel(ta));
    printf("[cuda_net] %s: max rel err %.3g\n", what, e);
    fflush(stdout);   /* a failing assertion ends the forked test without flushing */
    sn_tensor_free(ta);
    sn_tensor_free(tb);
    return e;
}

/* The two whole-network checks; inception_v3 at a small input.  On the H200
 * (commit e286c08, one 1e-6 perturbation) resnet_v1_50 passed (worst 0.52 of its bound) and
 * inception_v3 failed on a relu-kink flip (see the top comment); the K = 3 bound is still to
 * be run on a GPU. */
static const struct { const char *model; int64_t size; } nets[] = {
    {"resnet_v1_50", 128}, {"inception_v3", 139},
};

/* bf16 (sn_compile_params.precision): the GPU's bf16 kernels (convolutions, batch norm and
 * bias chains, pooling, padding, concat; the rest emulated as on the CPU) against the CPU,
 * whose every op is the emulation (lib/bf16.c): float32 kernels on decoded copies.  The two
 * differ by summation order inside a kernel, which flips the rounding of some outputs by one
 * bf16 ulp (2^-8 relative); the networks then carry those flips forward.  So the logits, the
 * loss and each gradient are held to what the CPU's own bf16 net does when its input moves by
 * about half a bf16 ulp (2e-3 relative, K = 3 draws): |gpu - cpu| <= 4 max_k |cpu'k - cpu| +
 * 1e-2 |cpu| (L2 norms).  A wrong kernel (a lost residual, an unset gradient, a swapped
 * operand) misses by orders of magnitude.  The networks cover every native bf16 kernel:
 * resnet_v1_50 (convolutions on all three routes, fused batch norm + residual + relu, max
 * pool, padding), inception_v3 (concat, average pooling), alexnet_v2 (bias chains,
 * overlapping max pooling; VGG's ops at a fraction of its CPU time), mobilenet_v1 (depthwise
 * convolutions, relu6 chains). */
static const struct { const char *model; int64_t size; } nets16[] = {
    {"resnet_v1_50", 128}, {"inception_v3", 139}, {"alexnet_v2", 224}, {"mobilenet_v1", 128},
};

/* One comparison: the net on the CPU and on the GPU, and on the CPU again with the input
 * perturbed by `pert` relative, K times. */
enum { K = 3 };
typedef struct trial {
    run cpu, gpu, pert[K];
} trial;

/* False (after a note) without a GPU. */
static bool trial_build(trial *t, const char *model, int64_t size, int precision, float pert) {
    if (sn_cuda_device_count() == 0) {
        printf("[cuda_net] skipped: no CUDA device (or built without CUDA)\n");
        return false;
    }
    const int64_t batch = 4;
    printf("[cuda_net] %s%s at %lldx%lld, batch %lld\n",
           precision == SN_PRECISION_BF16 ? "bf16 " : "", model, (long long)size,
           (long long)size, (long long)batch);
    size_t n = (size_t)(batch * size * size * 3);
    float *x = malloc(n * sizeof *x), *xp = malloc(n * sizeof *xp);
    tu_fill(x, n, 11);
    int32_t y[4] = {3, 7, 0, 9};
    build_run(&t->cpu, model, SN_DEVICE_CPU, x, y, batch, size, precision);
    build_run(&t->gpu, model, SN_DEVICE_CUDA, x, y, batch, size, precision);
    for (int k = 0; k < K; k++) {
        uint64_t s = 3 + (uint64_t)k;
        for (size_t i = 0; i < n; i++) xp[i] = x[i] * (1.0f + pert * tu_rand(&s));
        build_run(&t->pert[k], model, SN_DEVICE_CPU, xp, y, batch, size, precision);
    }
    free(x);
    free(xp);
    return true;
}

static void trial_free(trial *t) {
    free_run(&t->cpu);
    free_run(&t->gpu);
    for (int k = 0; k < K; k++) free_run(&t->pert[k]);
}

static double l2_diff(const float *a, const float *b, int64_t n, double *norm_b) {
    double d = 0, s = 0;
    for (int64_t i = 0; i < n; i++) {
        d += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        s += (double)b[i] * b[i];
    }
    if (norm_b) *norm_b = sqrt(s);
    return sqrt(d);
}

/* |gpu - cpu| / (4 max_k |cpu'k - cpu| + floor |cpu|) for node n's output (name NULL) or
 * variable name's gradient. */
static double bound_ratio(trial *t, sn_node n, const char *name, double floor) {
    sn_tensor *tc = NULL, *tg = NULL;
    if (name) {
        ck_assert_int_eq(sn_net_get_grad(t->cpu.net, name, &tc), SN_OK);
        ck_assert_int_eq(sn_net_get_grad(t->gpu.net, name, &tg), SN_OK);
    } else {
        ck_assert_int_eq(sn_net_get_output(t->cpu.net, n, &tc), SN_OK);
        ck_assert_int_eq(sn_net_get_output(t->gpu.net, n, &tg), SN_OK);
    }
    int64_t cnt = sn_tensor_numel(tc);
    double nc, dg = l2_diff(sn_tensor_data(tg), sn_tensor_data(tc), cnt, &nc), dp_max = 0;
    for (int k = 0; k < K; k++) {
        sn_tensor *tp = NULL;
        if (name) ck_assert_int_eq(sn_net_get_grad(t->pert[k].net, name, &tp), SN_OK);
        else ck_assert_int_eq(sn_net_get_output(t->pert[k].net, n, &tp), SN_OK);
        double dp = l2_diff(sn_tensor_data(tp), sn_tensor_data(tc), cnt, NULL);
        dp_max = dp > dp_max ? dp : dp_max;
        sn_tensor_free(tp);
    }
    sn_tensor_free(tc);
    sn_tensor_free(tg);
    double r = dg / (4.0 * dp_max + floor * nc + 1e-30);
    return r != r ? INFINITY : r;
}

/* The largest bound_ratio over the trainable variables' gradients; *name gets its variable. */
static double worst_gradient(trial *t, double floor, const char **name, int *checked) {
    double worst = 0;
    *name = "";
    *checked = 0;
    for (int v = 0; v < sn_graph_num_vars(t->cpu.g); v++) {
        sn_var_info vi;
        sn_graph_var(t->cpu.g, v, &vi);
        if (!(vi.flags & SN_VAR_TRAINABLE)) continue;
        double r = bound_ratio(t, 0, vi.name, floor);
        if (r > worst) {
            worst = r;
            *name = vi.name;
        }
        (*checked)++;
    }
    return worst;
}

START_TEST(test_net_gpu_equals_cpu) {
    trial t;
    if (!trial_build(&t, nets[_i].model, nets[_i].size, SN_PRECISION_FP32, 1e-5f)) return;
    double e_logits = compare(&t.cpu, &t.gpu, t.cpu.logits, "logits");
    double e_loss = compare(&t.cpu, &t.gpu, t.cpu.loss, "loss");
    const char *worst_name;
    int checked;
    double worst = worst_gradient(&t, 1e-4, &worst_name, &checked);
    printf("[cuda_net] %d gradients: worst |gpu-cpu| / bound = %.3g (%s)\n", checked, worst,
           worst_name);
    fflush(stdout);
    ck_assert_msg(e_logits <= 1e-4, "logits differ by %.3g", e_logits);
    ck_assert_msg(e_loss <= 1e-4, "loss differs by %.3g", e_loss);
    ck_assert_msg(worst <= 1.0, "gradient of %s exceeds its bound %.3g times", worst_name, worst);
    trial_free(&t);
} END_TEST

START_TEST(test_net_gpu_bf16_equals_cpu) {
    trial t;
    if (!trial_build(&t, nets16[_i].model, nets16[_i].size, SN_PRECISION_BF16, 2e-3f)) return;
    double r_logits = bound_ratio(&t, t.cpu.logits, NULL, 1e-2);
    double r_loss = bound_ratio(&t, t.cpu.loss, NULL, 1e-2);
    const char *worst_name;
    int checked;
    double worst = worst_gradient(&t, 1e-2, &worst_name, &checked);
    printf("[cuda_net] bf16 %s: logits at %.3g of their bound, loss %.3g, %d gradients: worst "
           "%.3g (%s)\n", nets16[_i].model, r_logits, r_loss, checked, worst, worst_name);
    fflush(stdout);
    ck_assert_msg(r_logits <= 1.0, "bf16 logits exceed their bound %.3g times", r_logits);
    ck_assert_msg(r_loss <= 1.0, "bf16 loss exceeds its bound %.3g times", r_loss);
    ck_assert_msg(worst <= 1.0, "bf16 gradient of %s exceeds its bound %.3g times", worst_name,
                  worst);
    trial_free(&t);
} END_TEST

Suite *suite_cuda_net(void) {
    Suite *s = suite_create("cuda_net");
    TCase *tc = tcase_create("nets");
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, test_net_gpu_equals_cpu, 0, (int)(sizeof nets / sizeof nets[0]));
    tcase_add_loop_test(tc, test_net_gpu_bf16_equals_cpu, 0,
                        (int)(sizeof nets16 / sizeof nets16[0]));
    suite_add_tcase(s, tc);
    return s;
}
