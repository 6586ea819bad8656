/* bench_train.c: training throughput of a zoo network on synthetic data.
 *
 *   bench_train [--model resnet_v1_50] [--batch 32] [--size 224] [--classes 1000]
 *               [--steps 10] [--warmup 2] [--device cpu|cuda] [--threads N] [--profile 1]
 *               [--infer 1] [--feed step|once] [--fuse 0] [--precision fp32|bf16]
 *               [--save DIR]
 *
 * One step = forward, backward of softmax cross-entropy + L2 regularization, and a plain SGD
 * update, as slimnet-train runs it; with --infer 1 one forward pass in inference mode (batch
 * norm on moving statistics, no dropout, no weight decay: no regularization losses), as
 * slimnet-eval runs it.  --fuse 0 compiles every node unfused (sn_compile_params.fuse), for
 * A/B runs.  --precision bf16 compiles the net in mixed precision (sn_compile_params.precision).
 * Prints images/s (median step time over --steps).  --save DIR writes the net's initial
 * weights as the checkpoint DIR/model.ckpt-1 instead (bench_serve.sh serves it).
 *
 * --feed: when the synthetic batch is copied into the net: every step (the default on the
 * CPU, as slimnet-train feeds it) or once before timing (the default on CUDA, as the PyTorch
 * peer in bench_torch.py keeps its synthetic batch on the GPU: a 224x224 batch of 128 is
 * 77 MB, ~6 ms through pageable memory, which would otherwise be timed on one side only). */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "../lib/slimnet.h"
#ifdef SN_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The dense tensor-core peak of CUDA device 0 in FLOP/s for bf16 (bf16 = 1) or TF32
 * operands: SMs x the SM clock cudaDevAttrClockRate reports (its maximum) x the multiply-adds
 * per clock per SM (Hopper, cc 9.x: 2048 bf16 / 1024 TF32, i.e. H100 SXM's 989 / 495 TFLOP/s
 * at 132 SMs and 1830 MHz; A100, cc 8.0: 1024 / 512, its 312 / 156 at 108 SMs and 1410 MHz)
 * x 2.  0 where unknown (other architectures, or no CUDA). */
static double tensor_peak(int bf16) {
#ifdef SN_WITH_CUDA
    int sms = 0, khz = 0, major = 0, minor = 0;
    if (cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0) != cudaSuccess ||
        cudaDeviceGetAttribute(&khz, cudaDevAttrClockRate, 0) != cudaSuccess ||
        cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, 0) != cudaSuccess ||
        cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, 0) != cudaSuccess)
        return 0;
    double fma = major == 9 ? 2048 : major == 8 && minor == 0 ? 1024 : 0;
    return (double)sms * (double)khz * 1e3 * fma * (bf16 ? 1.0 : 0.5) * 2.0;
#else
    (void)bf16;
    return 0;
#endif
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

#define CHECK(expr)                                                                  \
    do {                                                                             \
        sn_status st_ = (expr);                                                      \
        if (st_ != SN_OK) {                                                          \
            fprintf(stderr, "bench_train: %s: %s\n", #expr, sn_ctx_errmsg(ctx));     \
            return 1;                                                                \
        }                                                                            \
    } while (0)

int main(int argc, char **argv) {
    const char *model = "resnet_v1_50", *device = "cpu", *feed = NULL, *precision = "fp32";
    const char *save = NULL;
    int64_t batch = 32, size = 0, classes = 1000;
    int steps = 10, warmup = 2, threads = 0, profile = 0, infer = 0, fuse = 1;
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (!strcmp(k, "--model")) model = v;
        else if (!strcmp(k, "--batch")) batch = atoll(v);
        else if (!strcmp(k, "--size")) size = atoll(v);
        else if (!strcmp(k, "--classes")) classes = atoll(v);
        else if (!strcmp(k, "--steps")) steps = atoi(v);
        else if (!strcmp(k, "--warmup")) warmup = atoi(v);
        else if (!strcmp(k, "--device")) device = v;
        else if (!strcmp(k, "--threads")) threads = atoi(v);
        else if (!strcmp(k, "--profile")) profile = atoi(v);
        else if (!strcmp(k, "--infer")) infer = atoi(v);
        else if (!strcmp(k, "--feed")) feed = v;
        else if (!strcmp(k, "--fuse")) fuse = atoi(v);
        else if (!strcmp(k, "--precision")) precision = v;
        else if (!strcmp(k, "--save")) save = v;
        else {
            fprintf(stderr, "bench_train: unknown flag %s\n", k);
            return 2;
        }
    }
    if (size == 0) size = sn_model_default_image_size(model);
    sn_ctx_params cp = sn_ctx_params_default();
    cp.device = strcmp(device, "cuda") == 0 ? SN_DEVICE_CUDA : SN_DEVICE_CPU;
    cp.threads = threads;
    sn_ctx *ctx = NULL;
    if (sn_ctx_new(&cp, &ctx) != SN_OK) {
        fprintf(stderr, "bench_train: %s\n", sn_ctx_errmsg(ctx));
        return 1;
    }
    char info[256];
    sn_ctx_device_info(ctx, info, sizeof info);
    sn_graph *g = NULL;
    CHECK(sn_graph_new(ctx, &g));
    int64_t in_dims[4] = {SN_BATCH, size, size, 3}, lab_dims[1] = {SN_BATCH};
    sn_node images = sn_input(g, "images", SN_DTYPE_F32, 4, in_dims);
    sn_node labels = sn_input(g, "labels", SN_DTYPE_I32, 1, lab_dims);
    sn_model_params mp = sn_model_params_default();
    mp.num_classes = (int)classes;
    mp.is_training = !infer;
    if (infer) mp.weight_decay = 0.0f;   /* as slimnet-eval: an L2 term nobody reads */
    sn_model m;
    CHECK(sn_model_build(g, model, images, &mp, &m));
    int n_reg = 0;
    const sn_node *reg = sn_graph_regularization_losses(g, &n_reg);
    sn_node *terms = malloc((size_t)(n_reg + 1) * sizeof *terms);
    terms[0] = sn_op_softmax_xent(g, m.logits, labels, 0.0f);
    memcpy(terms + 1, reg, (size_t)n_reg * sizeof *terms);
    sn_node loss = sn_op_add_n(g, n_reg + 1, terms);
    free(terms);
    CHECK(sn_graph_status(g));
    sn_net *net = NULL;
    sn_compile_params pp = sn_compile_params_default();
    pp.batch_size = batch;
    pp.backward = !infer;
    pp.fuse = fuse;
    if (strcmp(precision, "fp32") != 0 && strcmp(precision, "bf16") != 0) {
        fprintf(stderr, "bench_train: --precision %s: fp32 or bf16\n", precision);
        return 2;
    }
    pp.precision = strcmp(precision, "bf16") == 0 ? SN_PRECISION_BF16 : SN_PRECISION_FP32;
    CHECK(sn_net_compile(g, &pp, &net));
    if (save) {   /* the initial weights as a checkpoint (bench_serve.sh serves them) */
        CHECK(sn_net_save(net, save, 1, NULL, NULL, 0));
        printf("bench_train: saved %s's initial weights in %s\n", model, save);
        return 0;
    }

    size_t npix = (size_t)(batch * size * size * 3);
    int64_t xd[4] = {batch, size, size, 3}, yd[1] = {batch};
    sn_tensor *xt = NULL, *yt = NULL, *lt = NULL;
    CHECK(sn_tensor_new_pinned(ctx, SN_DTYPE_F32, 4, xd, &xt));   /* as slimnet-train's */
    float *x = sn_tensor_data(xt);
    int32_t *y = malloc((size_t)batch * sizeof *y);
    uint64_t s = 1;
    for (size_t i = 0; i < npix; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = (float)((s >> 40) & 0xFFFF) / 32768.0f - 1.0f;
    }
    for (int64_t i = 0; i < batch; i++) y[i] = (int32_t)(i % classes);
    CHECK(sn_tensor_wrap(ctx, y, SN_DTYPE_I32, 1, yd, SN_BORROW, &yt));
    double *t = malloc((size_t)(steps > 0 ? steps : 1) * sizeof *t);
    float first = 0, last = 0;
    if (!feed) feed = cp.device == SN_DEVICE_CUDA ? "once" : "step";
    bool each = strcmp(feed, "once") != 0;
    if (each && strcmp(feed, "step") != 0) {
        fprintf(stderr, "bench_train: --feed %s: expected step or once\n", feed);
        return 2;
    }
    if (!each) {
        CHECK(sn_net_set_input(net, images, xt));
        CHECK(sn_net_set_input(net, labels, yt));
    }
    for (int step = 0; step < warmup + steps; step++) {
        double t0 = now();
        if (each) {
            CHECK(sn_net_set_input(net, images, xt));
            CHECK(sn_net_set_input(net, labels, yt));
        }
        sn_net_set_step(net, step);
        CHECK(sn_net_forward(net));
        if (!infer) {
            CHECK(sn_net_backward(net, loss));
            CHECK(sn_net_sgd_step(net, 0.01f));
        }
        CHECK(sn_net_get_output(net, loss, &lt));   /* synchronizes the device */
        last = ((float *)sn_tensor_data(lt))[0];
        if (step == 0) first = last;
        sn_tensor_free(lt);
        if (step >= warmup) t[step - warmup] = now() - t0;
    }
    if (profile) {   /* one more step, every node timed: where the time goes */
        sn_net_set_profile(net, 1);
        CHECK(sn_net_forward(net));
        if (!infer) {
            CHECK(sn_net_backward(net, loss));
            CHECK(sn_net_sgd_step(net, 0.01f));
        }
        char rep[4096];
        sn_net_profile_report(net, rep, sizeof rep);
        printf("profile of one step (each node synchronized):\n%s", rep);
    }
    qsort(t, (size_t)steps, sizeof *t, cmp_double);
    double med = t[steps / 2];
    sn_net_memory mem = sn_net_memory_info(net);
    printf("model %s  batch %lld  size %lld  feed %s  device %s  precision %s\n", model,
           (long long)batch, (long long)size, feed, info, precision);
    printf("memory: params %.1f MB, grads %.1f MB, arena %.1f MB (%.1f MB unplanned), "
           "workspace %.1f MB\n", mem.params / 1e6, mem.grads / 1e6, mem.arena / 1e6,
           mem.arena_unplanned / 1e6, mem.workspace / 1e6);
    printf("loss %.4f -> %.4f over %d steps\n", first, last, warmup + steps);
    printf("%s: median %.1f ms = %.1f images/s\n", infer ? "inference" : "train step", med * 1e3,
           (double)batch / med);
    sn_net_flops fl = sn_net_flop_count(net);
    double work = fl.forward + (infer ? 0.0 : fl.backward);
    double peak = cp.device == SN_DEVICE_CUDA ? tensor_peak(pp.precision == SN_PRECISION_BF16)
                                              : 0.0;
    printf("work: %.1f GFLOP per image (%.1f forward + %.1f backward); %.3g TFLOP/s achieved",
           work / 1e9 / (double)batch, fl.forward / 1e9 / (double)batch,
           (infer ? 0.0 : fl.backward) / 1e9 / (double)batch, work / med / 1e12);
    if (peak > 0)
        printf(" = %.1f%% of the GPU's dense %s tensor-core peak (%.0f TFLOP/s)", 100.0 * work /
               med / peak, pp.precision == SN_PRECISION_BF16 ? "bf16" : "TF32", peak / 1e12);
    printf("\n");
    free(t);
    free(y);
    sn_tensor_free(xt);
    sn_tensor_free(yt);
    sn_net_free(net);
    sn_graph_free(g);
    sn_ctx_free(ctx);
    return 0;
}
