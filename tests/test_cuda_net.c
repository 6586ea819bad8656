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

START_TEST(test_net_gpu_equals_cpu) {
    if (sn_cuda_device_count() == 0) {
        printf("[cuda_net] skipped: no CUDA device (or built without CUDA)\n");
        return;
    }
    const char *model = nets[_i].model;
    const int64_t batch = 4, size = nets[_i].size;
    printf("[cuda_net] %s at %lldx%lld, batch %lld\n", model, (long long)size,
           (long long)size, (long long)batch);
    size_t n = (size_t)(batch * size * size * 3);
    float *x = malloc(n * sizeof *x), *xp = malloc(n * sizeof *xp);
    tu_fill(x, n, 11);
    int32_t y[4] = {3, 7, 0, 9};
    enum { K = 3 };
    run cpu, gpu, pert[K];
    build_run(&cpu, model, SN_DEVICE_CPU, x, y, batch, size, SN_PRECISION_FP32);
    build_run(&gpu, model, SN_DEVICE_CUDA, x, y, batch, size, SN_PRECISION_FP32);
    for (int k = 0; k < K; k++) {
        uint64_t s = 3 + (uint64_t)k;
        for (size_t i = 0; i < n; i++) xp[i] = x[i] * (1.0f + 1e-5f * tu_rand(&s));
        build_run(&pert[k], model, SN_DEVICE_CPU, xp, y, batch, size, SN_PRECISION_FP32);
    }
    double e_logits = compare(&cpu, &gpu, cpu.logits, "logits");
    double e_loss = compare(&cpu, &gpu, cpu.loss, "loss");
    double worst = 0;
    const char *worst_name = "";
    int checked = 0;
    for (int v = 0; v < sn_graph_num_vars(cpu.g); v++) {
        sn_var_info vi;
        sn_graph_var(cpu.g, v, &vi);
        if (!(vi.flags & SN_VAR_TRAINABLE)) continue;
        sn_tensor *gc = NULL, *gg = NULL;
        ck_assert_int_eq(sn_net_get_grad(cpu.net, vi.name, &gc), SN_OK);
        ck_assert_int_eq(sn_net_get_grad(gpu.net, vi.name, &gg), SN_OK);
        const float *c = sn_tensor_data(gc), *g = sn_tensor_data(gg);
        double nc = 0, dg = 0, dp_max = 0;
        for (int64_t i = 0; i < sn_tensor_numel(gc); i++) {
            nc += (double)c[i] * c[i];
            dg += ((double)g[i] - c[i]) * ((double)g[i] - c[i]);
        }
        for (int k = 0; k < K; k++) {
            sn_tensor *gp = NULL;
            ck_assert_int_eq(sn_net_get_grad(pert[k].net, vi.name, &gp), SN_OK);
            const float *p = sn_tensor_data(gp);
            double dp = 0;
            for (int64_t i = 0; i < sn_tensor_numel(gc); i++)
                dp += ((double)p[i] - c[i]) * ((double)p[i] - c[i]);
            dp_max = dp > dp_max ? dp : dp_max;
            sn_tensor_free(gp);
        }
        double bound = 4.0 * sqrt(dp_max) + 1e-4 * sqrt(nc), ratio = sqrt(dg) / (bound + 1e-30);
        if (ratio > worst || ratio != ratio) {
            worst = ratio != ratio ? INFINITY : ratio;
            worst_name = vi.name;
        }
        checked++;
        sn_tensor_free(gc);
        sn_tensor_free(gg);
    }
    printf("[cuda_net] %d gradients: worst |gpu-cpu| / bound = %.3g (%s)\n", checked, worst,
           worst_name);
    fflush(stdout);
    ck_assert_msg(e_logits <= 1e-4, "logits differ by %.3g", e_logits);
    ck_assert_msg(e_loss <= 1e-4, "loss differs by %.3g", e_loss);
    ck_assert_msg(worst <= 1.0, "gradient of %s exceeds its bound %.3g times", worst_name, worst);
    free_run(&cpu);
    free_run(&gpu);
    for (int k = 0; k < K; k++) free_run(&pert[k]);
    free(x);
    free(xp);
} END_TEST

/* bf16 (sn_compile_params.precision): the GPU's bf16 kernels (convolutions, batch norm and
 * bias chains, max pooling, concat; the rest emulated as on the CPU) against the CPU, whose
 * every op is the emulation (lib/bf16.c): float32 kernels on decoded copies.  The two differ
 * by summation order inside a kernel, which flips the rounding of some outputs by one bf16
 * ulp (2^-8 relative); the networks then carry those flips forward.  So both the logits and
 * each gradient are held to what the CPU's own bf16 net does when its input moves by about
 * half a bf16 ulp (2e-3 relative, K = 3 draws): |gpu - cpu| <= 4 max_k |cpu'k - cpu| +
 * 1e-2 |cpu| (L2 norms; for the logits and loss, max norms).  A wrong kernel (a lost
 * residual, an unset gradient, a swapped operand) misses by orders of magnitude.  The
 * networks cover every native bf16 kernel: resnet_v1_50 (convolutions on all three routes,
 * fused batch norm + residual + relu, max pool, padding), inception_v3 (concat, average
 * pooling), alexnet_v2 (bias chains, overlapping max pooling; VGG's ops at a fraction of its
 * CPU time), mobilenet_v1 (depthwise convolutions, relu6 chains). */
static const struct { const char *model; int64_t size; } nets16[] = {
    {"resnet_v1_50", 128}, {"inception_v3", 139}, {"alexnet_v2", 224}, {"mobilenet_v1", 128},
};

static double l2_diff(const float *a, const float *b, int64_t n, double *norm_b) {
    double d = 0, s = 0;
    for (int64_t i = 0; i < n; i++) {
        d += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        s += (double)b[i] * b[i];
    }
    if (norm_b) *norm_b = sqrt(s);
    return sqrt(d);
}

/* The ratio |gpu - cpu| / bound for node n's output (out != 0) or variable name's gradient. */
static double bf16_ratio(run *cpu, run *gpu, run *pert, int K, sn_node n, const char *name) {
    sn_tensor *tc = NULL, *tg = NULL;
    if (name) {
        ck_assert_int_eq(sn_net_get_grad(cpu->net, name, &tc), SN_OK);
        ck_assert_int_eq(sn_net_get_grad(gpu->net, name, &tg), SN_OK);
    } else {
        ck_assert_int_eq(sn_net_get_output(cpu->net, n, &tc), SN_OK);
        ck_assert_int_eq(sn_net_get_output(gpu->net, n, &tg), SN_OK);
    }
    int64_t cnt = sn_tensor_numel(tc);
    double nc, dg = l2_diff(sn_tensor_data(tg), sn_tensor_data(tc), cnt, &nc), dp_max = 0;
    for (int k = 0; k < K; k++) {
        sn_tensor *tp = NULL;
        if (name) ck_assert_int_eq(sn_net_get_grad(pert[k].net, name, &tp), SN_OK);
        else ck_assert_int_eq(sn_net_get_output(pert[k].net, n, &tp), SN_OK);
        double dp = l2_diff(sn_tensor_data(tp), sn_tensor_data(tc), cnt, NULL);
        dp_max = dp > dp_max ? dp : dp_max;
        sn_tensor_free(tp);
    }
    sn_tensor_free(tc);
    sn_tensor_free(tg);
    double r = dg / (4.0 * dp_max + 1e-2 * nc + 1e-30);
    return r != r ? INFINITY : r;
}

START_TEST(test_net_gpu_bf16_equals_cpu) {
    if (sn_cuda_device_count() == 0) {
        printf("[cuda_net] skipped: no CUDA device (or built without CUDA)\n");
        return;
    }
    const char *model = nets16[_i].model;
    const int64_t batch = 4, size = nets16[_i].size;
    printf("[cuda_net] bf16 %s at %lldx%lld, batch %lld\n", model, (long long)size,
           (long long)size, (long long)batch);
    size_t n = (size_t)(batch * size * size * 3);
    float *x = malloc(n * sizeof *x), *xp = malloc(n * sizeof *xp);
    tu_fill(x, n, 11);
    int32_t y[4] = {3, 7, 0, 9};
    enum { K = 3 };
    run cpu, gpu, pert[K];
    build_run(&cpu, model, SN_DEVICE_CPU, x, y, batch, size, SN_PRECISION_BF16);
    build_run(&gpu, model, SN_DEVICE_CUDA, x, y, batch, size, SN_PRECISION_BF16);
    for (int k = 0; k < K; k++) {
        uint64_t s = 3 + (uint64_t)k;
        for (size_t i = 0; i < n; i++) xp[i] = x[i] * (1.0f + 2e-3f * tu_rand(&s));
        build_run(&pert[k], model, SN_DEVICE_CPU, xp, y, batch, size, SN_PRECISION_BF16);
    }
    double r_logits = bf16_ratio(&cpu, &gpu, pert, K, cpu.logits, NULL);
    double r_loss = bf16_ratio(&cpu, &gpu, pert, K, cpu.loss, NULL);
    double worst = 0;
    const char *worst_name = "";
    int checked = 0;
    for (int v = 0; v < sn_graph_num_vars(cpu.g); v++) {
        sn_var_info vi;
        sn_graph_var(cpu.g, v, &vi);
        if (!(vi.flags & SN_VAR_TRAINABLE)) continue;
        double r = bf16_ratio(&cpu, &gpu, pert, K, 0, vi.name);
        if (r > worst) {
            worst = r;
            worst_name = vi.name;
        }
        checked++;
    }
    printf("[cuda_net] bf16 %s: logits at %.3g of their bound, loss %.3g, %d gradients: worst "
           "%.3g (%s)\n", model, r_logits, r_loss, checked, worst, worst_name);
    fflush(stdout);
    ck_assert_msg(r_logits <= 1.0, "bf16 logits exceed their bound %.3g times", r_logits);
    ck_assert_msg(r_loss <= 1.0, "bf16 loss exceeds its bound %.3g times", r_loss);
    ck_assert_msg(worst <= 1.0, "bf16 gradient of %s exceeds its bound %.3g times", worst_name,
                  worst);
    free_run(&cpu);
    free_run(&gpu);
    for (int k = 0; k < K; k++) free_run(&pert[k]);
    free(x);
    free(xp);
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
