/* bench_ckpt.c: checkpoint load throughput from the page cache, next to memcpy.
 *
 *   bench_ckpt [--mb 200] [--dir /tmp] [--reps 5]
 *
 * Writes a V2 checkpoint of 4 MiB float32 tensors (about --mb in all), reads it once to
 * warm the page cache, then times reading every tensor into preallocated host tensors
 * (open, index, data reads and each entry's crc32c check) and, in the same run, a memcpy of
 * the same number of bytes between two buffers.  Prints the median GB/s of each. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "../lib/slimnet.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

#define CHECK(expr)                                                                   \
    do {                                                                              \
        if ((expr) != SN_OK) {                                                        \
            fprintf(stderr, "bench_ckpt: %s: %s\n", #expr, sn_ctx_errmsg(ctx));       \
            return 1;                                                                 \
        }                                                                             \
    } while (0)

int main(int argc, char **argv) {
    int mb = 200, reps = 5;
    const char *dir = "/tmp";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--mb")) mb = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--dir")) dir = argv[i + 1];
        else if (!strcmp(argv[i], "--reps")) reps = atoi(argv[i + 1]);
        else {
            fprintf(stderr, "bench_ckpt: unknown flag %s\n", argv[i]);
            return 2;
        }
    }
    if (mb < 4 || reps < 1 || reps > 100) return 2;
    sn_ctx *ctx = NULL;
    sn_ctx_params cp = sn_ctx_params_default();
    if (sn_ctx_new(&cp, &ctx) != SN_OK) return 1;
    int n = mb / 4;
    int64_t dims[2] = {1024, 1024};
    sn_tensor **t = calloc((size_t)n, sizeof *t), **r = calloc((size_t)n, sizeof *r);
    sn_ckpt_entry *e = calloc((size_t)n, sizeof *e);
    char (*names)[32] = calloc((size_t)n, sizeof *names);
    for (int i = 0; i < n; i++) {
        CHECK(sn_tensor_new(ctx, SN_DTYPE_F32, 2, dims, &t[i]));
        CHECK(sn_tensor_new(ctx, SN_DTYPE_F32, 2, dims, &r[i]));
        float *p = sn_tensor_data(t[i]);
        for (int k = 0; k < 1024 * 1024; k++) p[k] = (float)(k ^ i) * 1e-3f;
        snprintf(names[i], sizeof names[i], "layer%03d/weights", i);
        e[i].name = names[i];
        e[i].tensor = t[i];
    }
    char prefix[1024];
    snprintf(prefix, sizeof prefix, "%s/bench_ckpt.%d/model.ckpt-1", dir, (int)getpid());
    char mk[1100];
    snprintf(mk, sizeof mk, "mkdir -p %s/bench_ckpt.%d", dir, (int)getpid());
    if (system(mk) != 0) return 1;
    CHECK(sn_ckpt_write(ctx, prefix, n, e));
    double bytes = (double)n * 4.0 * 1024 * 1024;
    double *tl = malloc((size_t)(reps + 1) * sizeof *tl), *tm = malloc((size_t)reps * sizeof *tm);
    for (int rep = 0; rep <= reps; rep++) {   /* rep 0 warms the page cache */
        double t0 = now();
        sn_ckpt *ck = NULL;
        CHECK(sn_ckpt_open(ctx, prefix, &ck));
        for (int i = 0; i < n; i++) CHECK(sn_ckpt_read_into(ck, names[i], r[i]));
        sn_ckpt_close(ck);
        tl[rep] = now() - t0;
    }
    for (int i = 0; i < n; i++)
        if (memcmp(sn_tensor_data(t[i]), sn_tensor_data(r[i]), 4u << 20) != 0) {
            fprintf(stderr, "bench_ckpt: tensor %s read back wrong\n", names[i]);
            return 1;
        }
    for (int rep = 0; rep < reps; rep++) {
        double t0 = now();
        for (int i = 0; i < n; i++)
            memcpy(sn_tensor_data(r[i]), sn_tensor_data(t[(i + 1) % n]), 4u << 20);
        tm[rep] = now() - t0;
    }
    qsort(tl + 1, (size_t)reps, sizeof *tl, cmp_double);
    qsort(tm, (size_t)reps, sizeof *tm, cmp_double);
    double load = bytes / tl[1 + reps / 2] / 1e9, copy = bytes / tm[reps / 2] / 1e9;
    printf("checkpoint load (%d tensors, %.0f MB, page cache, crc32c checked): %.2f GB/s\n", n,
           bytes / 1e6, load);
    printf("memcpy of the same bytes, same run: %.2f GB/s; load/memcpy = %.2f\n", copy,
           load / copy);
    snprintf(mk, sizeof mk, "rm -rf %s/bench_ckpt.%d", dir, (int)getpid());
    if (system(mk) != 0) fprintf(stderr, "bench_ckpt: could not remove the temporary folder\n");
    for (int i = 0; i < n; i++) {
        sn_tensor_free(t[i]);
        sn_tensor_free(r[i]);
    }
    free(t); free(r); free(e); free(names); free(tl); free(tm);
    sn_ctx_free(ctx);
    return 0;
}
