/* tool.c: see tool.h. */
#include "tool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* libgomp's threads spin up to GOMP_SPINCOUNT iterations (300,000 by default) at every
 * barrier before they sleep.  When another process takes a core, a spinning thread keeps
 * its core while the thread it waits for queues behind the other process for a time slice,
 * at every parallel region: lenet training on 2 cores fell to 36% of its quiet speed with
 * one core taken (9-20% on another machine).  A short spin frees the core at once and costs
 * nothing measurable on a quiet machine (benchmarks/bench_load.sh, RESULTS.md). */
#define TOOL_SPINCOUNT "100"

void tool_init(char **argv) {
#ifdef _OPENMP
    if (getenv("OMP_WAIT_POLICY") || getenv("GOMP_SPINCOUNT")) return;
    if (setenv("GOMP_SPINCOUNT", TOOL_SPINCOUNT, 1) != 0) return;
    execv("/proc/self/exe", argv);   /* only returns on failure: run on as we are */
#else
    (void)argv;
#endif
}

double tool_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void log_stderr(void *user, sn_log_level level, const char *msg) {
    static const char *names[] = {"debug", "info", "warning", "error"};
    fprintf(stderr, "%s: %s: %s\n", (const char *)user,
            names[level >= 0 && level <= 3 ? level : 1], msg);
}

sn_ctx *tool_ctx(const char *tool, const char *device, int want_gpu, int threads,
                 uint64_t seed) {
    sn_ctx_params d = sn_ctx_params_default();
    return tool_ctx_cuda(tool, device, want_gpu, threads, seed, d.allow_tf32, d.deterministic,
                         0);
}

sn_ctx *tool_ctx_cuda(const char *tool, const char *device, int want_gpu, int threads,
                      uint64_t seed, int allow_tf32, int deterministic, int device_index) {
    sn_ctx_params p = sn_ctx_params_default();
    p.device_index = device_index;
    p.allow_tf32 = allow_tf32;
    p.deterministic = deterministic;
    if (!device || !strcmp(device, "auto"))
        p.device = want_gpu && sn_cuda_device_count() > 0 ? SN_DEVICE_CUDA : SN_DEVICE_CPU;
    else if (!strcmp(device, "cpu"))
        p.device = SN_DEVICE_CPU;
    else if (!strcmp(device, "cuda") || !strcmp(device, "gpu"))
        p.device = SN_DEVICE_CUDA;
    else {
        fprintf(stderr, "%s: --device=%s: expected auto, cpu or cuda\n", tool, device);
        return NULL;
    }
    p.threads = threads;
    p.seed = seed;
    p.log = log_stderr;
    p.log_user = (void *)tool;
    p.log_level = SN_LOG_WARN;
    sn_ctx *ctx = NULL;
    sn_status st = sn_ctx_new(&p, &ctx);
    if (st != SN_OK) {
        fprintf(stderr, "%s: cannot create a %s context: %s\n", tool,
                p.device == SN_DEVICE_CUDA ? "CUDA" : "CPU",
                ctx ? sn_ctx_errmsg(ctx) : sn_status_str(st));
        sn_ctx_free(ctx);
        return NULL;
    }
    return ctx;
}

void tool_duration(double s, char *buf, size_t len) {
    if (!(s >= 0)) snprintf(buf, len, "?");
    else if (s < 60) snprintf(buf, len, "%.1f s", s);
    else if (s < 3600) snprintf(buf, len, "%d min %02d s", (int)(s / 60), (int)s % 60);
    else snprintf(buf, len, "%d h %02d min", (int)(s / 3600), (int)(s / 60) % 60);
}

int tool_fail(const char *tool, sn_ctx *ctx, const char *what) {
    fprintf(stderr, "%s: %s: %s\n", tool, what, ctx ? sn_ctx_errmsg(ctx) : "failed");
    return 1;
}

static void print_list(FILE *f, const char *what, char **names, int n, int show) {
    if (n == 0) return;
    fprintf(f, "  %s (%d):", what, n);
    for (int i = 0; i < n && i < show; i++) fprintf(f, "%s %s", i ? "," : "", names[i]);
    if (n > show) fprintf(f, ", ... (%d more)", n - show);
    fprintf(f, "\n");
}

void tool_print_restore(FILE *f, const char *tool, const sn_restore_report *r, int show) {
    fprintf(f, "%s: restored %d variables from %s", tool, r->n_restored,
            r->checkpoint ? r->checkpoint : "?");
    fprintf(f, " (excluded %d, missing %d, unused checkpoint tensors %d, mismatched %d)\n",
            r->n_excluded, r->n_missing, r->n_unused, r->n_mismatched);
    print_list(f, "excluded", r->excluded, r->n_excluded, show);
    print_list(f, "missing (kept their initial values)", r->missing, r->n_missing, show);
    print_list(f, "mismatched", r->mismatched, r->n_mismatched, show);
    print_list(f, "unused", r->unused, r->n_unused, show);
}

int tool_check_model(const char *tool, const char *name) {
    if (name && sn_model_default_image_size(name) > 0) return 0;
    fprintf(stderr, "%s: --model_name=%s: unknown model; one of:", tool, name ? name : "None");
    for (int i = 0; i < sn_model_count(); i++)
        fprintf(stderr, "%s %s", i ? "," : "", sn_model_name(i));
    fprintf(stderr, "\n");
    return 2;
}

int tool_image_size(const char *model_name, int flag_value) {
    return flag_value > 0 ? flag_value : sn_model_default_image_size(model_name);
}

sn_status tool_ckpt_int64(sn_ctx *ctx, const char *prefix, const char *name, int64_t *v,
                          int *found) {
    sn_ckpt *ck = NULL;
    sn_tensor *t = NULL;
    *v = 0;
    if (found) *found = 0;
    sn_status st = sn_ckpt_open(ctx, prefix, &ck);
    if (st == SN_OK && sn_ckpt_find(ck, name) >= 0 &&
        (st = sn_ckpt_read(ck, name, &t)) == SN_OK && sn_tensor_numel(t) == 1) {
        int64_t x = 0;
        int ok = 1;
        if (sn_tensor_dtype(t) == SN_DTYPE_I64) x = *(const int64_t *)sn_tensor_data(t);
        else if (sn_tensor_dtype(t) == SN_DTYPE_I32) x = *(const int32_t *)sn_tensor_data(t);
        else ok = 0;
        if (ok) *v = x;
        if (found) *found = ok;
    }
    sn_tensor_free(t);
    sn_ckpt_close(ck);
    return st;
}

sn_status tool_global_step(sn_ctx *ctx, const char *prefix, int64_t *step) {
    return tool_ckpt_int64(ctx, prefix, "global_step", step, NULL);
}
