/* bench_allreduce: the process group's all-reduce on this machine, beside its peers in the
 * same run: Gloo's ring all-reduce called directly (the engine without slimnet's
 * bookkeeping: a progress report to the store per collective) and memcpy of the same bytes.
 *
 *   bench_allreduce [ranks...]      default: 2 4
 *   bench_allreduce p2p BYTES...    the parameter servers' exchange (bench_ps.sh): one rank
 *                                   sends BYTES, the other answers with BYTES, over Gloo's
 *                                   point-to-point messages alone; exchanges per second
 *
 * For each group size it forks the ranks on 127.0.0.1, and for 1 MB, 13 MB (lenet's
 * gradient) and 102 MB (ResNet-50's: 25.6 M floats) of float32 times REPS all-reduces each
 * way after one warm-up, and prints the median seconds and the algorithm bandwidth
 * (bytes / time) as rank 0 saw them. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "../lib/dist/dist_internal.h"
#include "../lib/slimnet.h"

#define REPS 7

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t n = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &n) != 0)
        return 29500;
    close(fd);
    return ntohs(a.sin_port);
}

/* One rank: the three sizes, three ways; rank 0 prints. */
static int rank_main(int rank, int size, int port) {
    sn_ctx_params cp = sn_ctx_params_default();
    cp.threads = 1;
    sn_ctx *ctx = NULL;
    sn_dist *d = NULL;
    sn_dist_params p = sn_dist_params_default();
    p.rank = rank;
    p.size = size;
    p.master_port = port;
    p.timeout_secs = 120;
    if (sn_ctx_new(&cp, &ctx) != SN_OK || sn_dist_new(ctx, &p, &d) != SN_OK) {
        fprintf(stderr, "bench_allreduce: rank %d: %s\n", rank, ctx ? sn_ctx_errmsg(ctx) : "");
        return 1;
    }
    static const int64_t sizes[] = {1 << 18, 3276800, 25600000};   /* floats */
    static const char *what[] = {"1 MB", "13 MB (lenet)", "102 MB (ResNet-50)"};
    int rc = 0;
    for (int s = 0; s < 3 && !rc; s++) {
        int64_t n = sizes[s];
        sn_tensor *t = NULL;
        float *copy = malloc((size_t)n * sizeof(float));
        if (!copy || sn_tensor_new(ctx, SN_DTYPE_F32, 1, &n, &t) != SN_OK) return 1;
        float *x = sn_tensor_data(t);
        for (int64_t i = 0; i < n; i++) x[i] = (float)(i % 1000) * 1e-3f;
        double ms[3][REPS];
        for (int way = 0; way < 3 && !rc; way++) {
            for (int r = -1; r < REPS; r++) {   /* r = -1: warm-up */
                char err[512];
                double t0 = now_s();
                if (way == 0) {
                    memcpy(copy, x, (size_t)n * sizeof(float));
                } else if (way == 1) {
                    if (sn__gloo_allreduce_sum(sn__dist_gloo(d), x, (size_t)n, SN__GLOO_F32,
                                               (uint32_t)(1000 + s * 100 + r + 1), err,
                                               sizeof err)) {
                        fprintf(stderr, "bench_allreduce: gloo: %s\n", err);
                        rc = 1;
                        break;
                    }
                } else if (sn_dist_allreduce(d, t, SN_DIST_SUM) != SN_OK) {
                    fprintf(stderr, "bench_allreduce: %s\n", sn_ctx_errmsg(ctx));
                    rc = 1;
                    break;
                }
                if (r >= 0) ms[way][r] = now_s() - t0;
            }
            qsort(ms[way], REPS, sizeof(double), cmp_double);
        }
        if (!rc && rank == 0) {
            double bytes = (double)n * 4;
            printf("| %d | %s | %.4f s (%.1f GB/s) | %.4f s (%.2f GB/s) | %.4f s (%.2f GB/s) | "
                   "%.2f |\n", size, what[s], ms[0][REPS / 2], bytes / ms[0][REPS / 2] / 1e9,
                   ms[1][REPS / 2], bytes / ms[1][REPS / 2] / 1e9, ms[2][REPS / 2],
                   bytes / ms[2][REPS / 2] / 1e9, ms[1][REPS / 2] / ms[2][REPS / 2]);
            fflush(stdout);
        }
        free(copy);
        sn_tensor_free(t);
        sn_dist_barrier(d);
    }
    sn_dist_free(d);
    sn_ctx_free(ctx);
    return rc;
}

/* p2p: rank 1 sends n bytes to rank 0 (received from any, as a ps does), which answers
 * with n bytes; REPS * 5 exchanges after a warm-up; rank 0 prints the median rate. */
static int p2p_main(int rank, int port, size_t n) {
    sn_ctx_params cp = sn_ctx_params_default();
    cp.threads = 1;
    sn_ctx *ctx = NULL;
    sn_dist *d = NULL;
    sn_dist_params p = sn_dist_params_default();
    p.rank = rank;
    p.size = 2;
    p.master_port = port;
    p.timeout_secs = 120;
    if (sn_ctx_new(&cp, &ctx) != SN_OK || sn_dist_new(ctx, &p, &d) != SN_OK) {
        fprintf(stderr, "bench_allreduce: rank %d: %s\n", rank, ctx ? sn_ctx_errmsg(ctx) : "");
        return 1;
    }
    char *a = calloc(n ? n : 1, 1), *b = calloc(n ? n : 1, 1), err[512];
    sn__gloo_buf *ba = NULL, *bb = NULL;
    int rc = !a || !b || sn__gloo_buf_new(sn__dist_gloo(d), a, n, &ba, err, sizeof err) ||
             sn__gloo_buf_new(sn__dist_gloo(d), b, n, &bb, err, sizeof err);
    enum { N = REPS * 5 };
    double t[N];
    const uint64_t req = 0xA5ULL << 56 | 1, rep = 0xA5ULL << 56 | 2;
    for (int i = -1; i < N && !rc; i++) {
        double t0 = now_s();
        int one = 1;
        if (rank == 1)
            rc = sn__gloo_recv(bb, 0, rep, err, sizeof err) ||
                 sn__gloo_send(ba, 0, req, n, err, sizeof err) ||
                 sn__gloo_wait_send(ba, 60000, err, sizeof err) ||
                 sn__gloo_wait_recv(bb, 60000, NULL, err, sizeof err);
        else
            rc = sn__gloo_recv_any(ba, &one, 1, req, err, sizeof err) ||
                 sn__gloo_wait_recv(ba, 60000, NULL, err, sizeof err) ||
                 sn__gloo_send(bb, 1, rep, n, err, sizeof err) ||
                 sn__gloo_wait_send(bb, 60000, err, sizeof err);
        if (i >= 0) t[i] = now_s() - t0;
    }
    if (rc) fprintf(stderr, "bench_allreduce: p2p: %s\n", err);
    if (!rc && rank == 1) {
        qsort(t, N, sizeof(double), cmp_double);
        printf("| %.3g MB each way | %.4f s | %.1f exchanges/s | %.2f GB/s |\n", n / 1e6,
               t[N / 2], 1.0 / t[N / 2], 2.0 * (double)n / t[N / 2] / 1e9);
        fflush(stdout);
    }
    sn__gloo_buf_free(ba);
    sn__gloo_buf_free(bb);
    free(a);
    free(b);
    sn_dist_free(d);
    sn_ctx_free(ctx);
    return rc;
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "p2p")) {
        printf("| message | median exchange | rate | bandwidth |\n|---|---|---|---|\n");
        fflush(stdout);
        int rc = 0;
        for (int i = 2; i < argc; i++) {
            size_t n = (size_t)strtoull(argv[i], NULL, 10);
            int port = free_port();
            pid_t pid[2];
            for (int r = 0; r < 2; r++) {
                pid[r] = fork();
                if (pid[r] == 0) _exit(p2p_main(r, port, n));
            }
            for (int r = 0; r < 2; r++) {
                int status;
                waitpid(pid[r], &status, 0);
                if (!WIFEXITED(status) || WEXITSTATUS(status)) rc = 1;
            }
        }
        return rc;
    }
    int groups[8] = {2, 4}, ng = 2;
    if (argc > 1) {
        ng = 0;
        for (int i = 1; i < argc && ng < 8; i++) groups[ng++] = atoi(argv[i]);
    }
    printf("| ranks | bytes | memcpy | Gloo ring all-reduce | slimnet sn_dist_allreduce | "
           "Gloo / slimnet |\n|---|---|---|---|---|---|\n");
    fflush(stdout);
    int rc = 0;
    for (int gi = 0; gi < ng; gi++) {
        int size = groups[gi], port = free_port();
        if (size < 2 || size > 64) continue;
        pid_t pid[64];
        for (int r = 0; r < size; r++) {
            pid[r] = fork();
            if (pid[r] == 0) _exit(rank_main(r, size, port));
        }
        for (int r = 0; r < size; r++) {
            int status;
            waitpid(pid[r], &status, 0);
            if (!WIFEXITED(status) || WEXITSTATUS(status)) rc = 1;
        }
    }
    return rc;
}
