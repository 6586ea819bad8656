/* test_dist.c: the process group (lib/dist/) with real processes on 127.0.0.1: the
 * environment (TF_CONFIG and the launchers' variables), collectives of 2 and 3 processes
 * (integer sums exact, float sums the same bits on every rank), start order, and faults: a
 * worker that ends, one that stops, one that never arrives, a chief that ends; each named
 * within the timeout.  A test forks the ranks; each rank reports through a pipe.
 * Also slimnet-train's launcher pieces (cmd/common/launch.c), and the suite cuda_dist: the
 * same data-parallel training on a GPU, through NCCL and through Gloo's host staging. */
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "testutil.h"
#include "../cmd/common/launch.h"

/* The ranks' device and backend (the cuda_dist suite sets them; CPU and Gloo otherwise). */
static sn_device g_device = SN_DEVICE_CPU;
static sn_dist_backend g_backend = SN_DIST_GLOO;

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* A TCP port nobody listens on now. */
static int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t n = sizeof a;
    ck_assert(bind(fd, (struct sockaddr *)&a, sizeof a) == 0);
    ck_assert(getsockname(fd, (struct sockaddr *)&a, &n) == 0);
    close(fd);
    return ntohs(a.sin_port);
}

/* ---- the environment ----------------------------------------------------------------------- */

static void clear_env(void) {
    static const char *vars[] = {"TF_CONFIG", "RANK", "WORLD_SIZE", "LOCAL_RANK",
                                 "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT",
                                 "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE",
                                 "OMPI_COMM_WORLD_LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_SIZE",
                                 "PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID", "MPI_LOCALNRANKS",
                                 "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID",
                                 "SLURM_NNODES", "SN_DIST_HOST", "SN_DIST_LOCAL_RANK"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) unsetenv(vars[i]);
}

#define CLUSTER "\"cluster\": {\"chief\": [\"10.0.0.1:2222\"], \"worker\": [\"10.0.0.2:2222\", " \
                "\"host-3:2223\"], \"ps\": [\"10.0.0.9:2222\", \"10.0.0.9:2223\"]}"

START_TEST(test_env) {
    sn_ctx *ctx = tu_ctx();
    sn_dist_env e;
    clear_env();
    ck_assert_int_eq(sn_dist_env_read(ctx, &e), SN_OK);
    ck_assert(!e.found && e.params.size == 1 && e.params.rank == 0);

    setenv("TF_CONFIG", "{" CLUSTER ", \"task\": {\"type\": \"worker\", \"index\": 1}}", 1);
    ck_assert_int_eq(sn_dist_env_read(ctx, &e), SN_OK);
    ck_assert(e.found);
    ck_assert_str_eq(e.source, "TF_CONFIG");
    ck_assert_str_eq(e.task_type, "worker");
    ck_assert_int_eq(e.task_index, 1);
    ck_assert_int_eq(e.params.rank, 2);          /* the chief is 0, worker i is i + 1 */
    ck_assert_int_eq(e.params.size, 3);
    ck_assert_int_eq(e.num_ps, 2);
    ck_assert_str_eq(e.params.master_addr, "10.0.0.1");
    ck_assert_int_eq(e.params.master_port, 2222);
    ck_assert_str_eq(e.params.host, "host-3");
    ck_assert_str_eq(e.params.name, "worker 1 (host-3:2223)");
    setenv("TF_CONFIG", "{" CLUSTER ", \"task\": {\"type\": \"ps\", \"index\": 1}}", 1);
    ck_assert_int_eq(sn_dist_env_read(ctx, &e), SN_OK);
    ck_assert_int_eq(e.params.rank, -1);          /* outside the group */
    ck_assert_str_eq(e.task_type, "ps");
    /* TF1's "master", no chief: worker 0 is rank 0 without one */
    setenv("TF_CONFIG", "{\"cluster\": {\"worker\": [\"[::1]:5000\", \"b:5001\"]}, "
                        "\"task\": {\"type\": \"worker\", \"index\": 0}}", 1);
    ck_assert_int_eq(sn_dist_env_read(ctx, &e), SN_OK);
    ck_assert_int_eq(e.params.rank, 0);
    ck_assert_str_eq(e.params.master_addr, "::1");
    ck_assert_int_eq(e.params.master_port, 5000);
    /* an empty chief list is no chief (fuzzing: its first entry was read) */
    setenv("TF_CONFIG", "{\"cluster\": {\"chief\": [], \"worker\": [\"w:7\"]}, "
                        "\"task\": {\"type\": \"worker\", \"index\": 0}}", 1);
    ck_assert_int_eq(sn_dist_env_read(ctx, &e), SN_OK);
    ck_assert(e.params.rank == 0 && e.params.size == 1);
    ck_assert_str_eq(e.params.master_addr, "w");
    static const struct { const char *json, *needle; } bad[] = {
        {"not json", "not a JSON object"},
        {"{\"cluster\": {}}", "needs \"cluster\""},
        {"{\"cluster\": {\"ps\": [\"a:1\"]}, \"task\": {\"type\": \"ps\"}}", "no chief"},
        {"{\"cluster\": {\"worker\": [\"a\"]}, \"task\": {\"type\": \"worker\"}}", "host:port"},
        {"{\"cluster\": {\"worker\": [\"a:1\"]}, \"task\": {\"type\": \"worker\", \"index\": 3}}",
         "task worker 3 is not in the cluster"},
        /* beyond long's range (fuzzing: the cast was undefined) */
        {"{\"cluster\": {\"worker\": [\"a:1\"]}, \"task\": {\"type\": \"worker\", \"index\": "
         "1e300}}", "task worker 1e+300 is not in the cluster"},
        {"{\"cluster\": {\"chief\": [\"a:1\"], \"master\": [\"b:1\"]}, \"task\": {\"type\": "
         "\"chief\"}}", "both"},
        {"{\"cluster\": {\"worker\": [\"a:1\"]}, \"task\": {\"type\": \"boss\"}}", "type must"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        setenv("TF_CONFIG", bad[i].json, 1);
        ck_assert_int_eq(sn_dist_env_read(ctx, &e), SN_ERR_FORMAT);
        ck_assert_msg(strstr(sn_ctx_errmsg(ctx), bad[i].needle), "%s: %s", bad[i].json,
                      sn_ctx_errmsg(ctx));
    }
    clear_env();

    /* the launchers: mpirun (Open MPI, MPICH), srun, torchrun */
    setenv("OMPI_COMM_WORLD_RANK", "1", 1);
    setenv("OMPI_COMM_WORLD_SIZE", "4", 1);
    setenv("OMPI_COMM_WORLD_LOCAL_RANK", "1", 1);
    setenv("OMPI_COMM_WORLD_LOCAL_SIZE", "4", 1);
    ck_assert_int_eq(sn_dist_env_read(ctx, &e), SN_OK);
    ck_assert(e.found && e.params.rank == 1 && e.params.size == 4 && e.params.local_rank == 1);
    ck_assert_str_eq(e.source, "Open MPI");
    ck_assert_str_eq(e.params.master_addr, "127.0.0.1");   /* one machine: loopback */
    ck_assert_int_eq(e.params.master_port, 29500);
    ck_assert_str_eq(e.params.host, "127.0.0.1");
    setenv("OMPI_COMM_WORLD_LOCAL_SIZE", "2", 1);           /* two machines */
    ck_assert_int_eq(sn_dist_env_read(ctx, &e), SN_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(sn_ctx_errmsg(ctx), "MASTER_ADDR"));
    setenv("MASTER_ADDR", "node7", 1);
    setenv("MASTER_PORT", "6000", 1);
    ck_assert_int_eq(sn_dist_env_read(ctx, &e), SN_OK);
    ck_assert_str_eq(e.params.master_addr, "node7");
    ck_assert_int_eq(e.params.master_port, 6000);
    clear_env();
    setenv("PMI_RANK", "2", 1);
    setenv("PMI_SIZE", "3", 1);
    setenv("MPI_LOCALNRANKS", "3", 1);
    ck_assert_int_eq(sn_dist_env_read(ctx, &e), SN_OK);
    ck_assert(e.params.rank == 2 && e.params.size == 3);
    ck_assert_str_eq(e.source, "MPICH/PMI");
    setenv("PMI_RANK", "3", 1);                              /* out of range */
    ck_assert_int_eq(sn_dist_env_read(ctx, &e), SN_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(sn_ctx_errmsg(ctx), "PMI_RANK"));
    clear_env();
    setenv("SLURM_PROCID", "0", 1);
    setenv("SLURM_NTASKS", "2", 1);
    setenv("SLURM_NNODES", "1", 1);
    ck_assert_int_eq(sn_dist_env_read(ctx, &e), SN_OK);
    ck_assert(e.found && e.params.size == 2);
    ck_assert_str_eq(e.source, "Slurm");
    setenv("RANK", "1", 1);                                  /* torchrun comes first */
    setenv("WORLD_SIZE", "2", 1);
    setenv("MASTER_ADDR", "127.0.0.1", 1);
    ck_assert_int_eq(sn_dist_env_read(ctx, &e), SN_OK);
    ck_assert_str_eq(e.source, "torchrun");
    ck_assert_int_eq(e.params.rank, 1);
    clear_env();
    setenv("SLURM_PROCID", "0", 1);                          /* srun of one task */
    setenv("SLURM_NTASKS", "1", 1);
    ck_assert_int_eq(sn_dist_env_read(ctx, &e), SN_OK);
    ck_assert(!e.found);
    clear_env();
    sn_ctx_free(ctx);
} END_TEST

/* ---- ranks in processes ------------------------------------------------------------------- */

typedef struct job {
    int size, port, timeout_ms;
    int use_tf_config;
    int num_ps;          /* TF_CONFIG with ps tasks: ranks 0..num_ps-1 (sn_dist_env.cluster) */
} job;

typedef int (*rank_fn)(sn_ctx *ctx, sn_dist *d, int rank, char *msg, size_t cap);

/* Forks one process per rank (rank 0 last, after a pause: start order must not matter),
 * runs fn in each, and collects exit codes and messages.  A rank joins through TF_CONFIG
 * or through explicit parameters.  skip: a rank that is never started; victim: a rank
 * killed once the others have ended (a stopped one); -1: none. */
static void run_ranks(const job *j, rank_fn fn, int skip, int victim, int *rc,
                      char msgs[][1024], double *secs) {
    pid_t pid[8];
    int fd[8];
    for (int k = j->size - 1; k >= 0; k--) {
        int r = k;
        pid[r] = -1;
        if (r == skip) continue;
        if (r == 0) usleep(300 * 1000);
        int p[2];
        ck_assert(pipe(p) == 0);
        fflush(stdout);
        fflush(stderr);
        pid[r] = fork();
        ck_assert(pid[r] >= 0);
        if (pid[r] == 0) {
            signal(SIGPIPE, SIG_IGN);   /* as slimnet-train: a dead peer is an error */
            close(p[0]);
            char msg[1024] = "";
            sn_ctx_params cp = sn_ctx_params_default();
            cp.threads = 1;
            cp.device = g_device;     /* NCCL: a GPU per rank; Gloo: ranks share GPU 0 */
            cp.device_index = g_backend == SN_DIST_NCCL ? r : 0;
            cp.allow_tf32 = 0;
            cp.deterministic = 1;
            sn_ctx *ctx = NULL;
            int code = 3;
            if (sn_ctx_new(&cp, &ctx) == SN_OK) {
                sn_dist_params dp = sn_dist_params_default();
                dp.rank = r;
                dp.size = j->size;
                dp.master_port = j->port;
                dp.timeout_secs = j->timeout_ms / 1000.0;
                if (j->use_tf_config) {   /* the chief and workers (and ps) of a TF_CONFIG */
                    char tf[1024], list[512] = "", pss[512] = "";
                    int P = j->num_ps, w0 = j->port + P;   /* ps, chief, workers */
                    for (int w = 1; w < j->size - P; w++)
                        snprintf(list + strlen(list), sizeof list - strlen(list),
                                 "%s\"127.0.0.1:%d\"", w > 1 ? ", " : "", w0 + w);
                    for (int k = 0; k < P; k++)
                        snprintf(pss + strlen(pss), sizeof pss - strlen(pss),
                                 "%s\"127.0.0.1:%d\"", k ? ", " : "", j->port + k);
                    int t = r - P;
                    snprintf(tf, sizeof tf, "{\"cluster\": {\"chief\": [\"127.0.0.1:%d\"], "
                             "\"worker\": [%s]%s%s%s}, \"task\": {\"type\": \"%s\", "
                             "\"index\": %d}}", w0, list, P ? ", \"ps\": [" : "", pss,
                             P ? "]" : "", t < 0 ? "ps" : t ? "worker" : "chief",
                             t < 0 ? r : t ? t - 1 : 0);
                    setenv("TF_CONFIG", tf, 1);
                    sn_dist_env e;
                    if (sn_dist_env_read(ctx, &e) != SN_OK) {
                        snprintf(msg, sizeof msg, "env: %s", sn_ctx_errmsg(ctx));
                        code = 4;
                    }
                    dp = P ? e.cluster : e.params;
                    dp.timeout_secs = j->timeout_ms / 1000.0;
                }
                dp.backend = g_backend;
                sn_dist *d = NULL;
                if (code == 4) {
                } else if (sn_dist_new(ctx, &dp, &d) != SN_OK) {
                    snprintf(msg, sizeof msg, "new: %s", sn_ctx_errmsg(ctx));
                    code = 5;
                } else {
                    code = fn(ctx, d, r, msg, sizeof msg);
                }
                sn_dist_free(d);
                sn_ctx_free(ctx);
            }
            if (write(p[1], msg, strlen(msg)) < 0) code = 6;
            close(p[1]);
            _exit(code);
        }
        close(p[1]);
        fd[r] = p[0];
    }
    double t0 = now_s();
    for (int k = 0; k < j->size; k++) {
        int r = victim < 0 ? k : k < j->size - 1 ? (k < victim ? k : k + 1) : victim;
        rc[r] = -1;
        msgs[r][0] = '\0';
        secs[r] = 0;
        if (pid[r] < 0) continue;
        if (r == victim) kill(pid[r], SIGKILL);
        ssize_t n = 0, k;
        while ((k = read(fd[r], msgs[r] + n, 1023 - (size_t)n)) > 0) n += k;
        msgs[r][n > 0 ? n : 0] = '\0';
        close(fd[r]);
        int status;
        waitpid(pid[r], &status, 0);
        rc[r] = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        secs[r] = now_s() - t0;
    }
}

/* Sums of known values: int32 and int64 exact, float32 the same bits on every rank, the
 * mean, a broadcast from rank 1, a barrier; 1 MB of floats in a second all-reduce. */
static int collectives(sn_ctx *ctx, sn_dist *d, int rank, char *msg, size_t cap) {
    int size = sn_dist_size(d);
    int64_t n = 1000, big = 1 << 18;
    sn_tensor *i32 = NULL, *i64 = NULL, *f32 = NULL, *fb = NULL, *bc = NULL;
    int bad = sn_tensor_new(ctx, SN_DTYPE_I32, 1, &n, &i32) ||
              sn_tensor_new(ctx, SN_DTYPE_I64, 1, &n, &i64) ||
              sn_tensor_new(ctx, SN_DTYPE_F32, 1, &n, &f32) ||
              sn_tensor_new(ctx, SN_DTYPE_F32, 1, &big, &fb) ||
              sn_tensor_new(ctx, SN_DTYPE_I64, 1, &n, &bc);
    if (bad) return 7;
    int32_t *a = sn_tensor_data(i32);
    int64_t *b = sn_tensor_data(i64), *c = sn_tensor_data(bc);
    float *f = sn_tensor_data(f32), *g = sn_tensor_data(fb);
    for (int64_t i = 0; i < n; i++) {
        a[i] = (int32_t)(rank * 1000 + i);
        b[i] = ((int64_t)1 << 40) * (rank + 1) + i;
        f[i] = 0.1f * (float)(rank + 1) + 1e-3f * (float)i;
        c[i] = rank == 1 ? 7 * i : -1;
    }
    for (int64_t i = 0; i < big; i++) g[i] = (float)rank + 0.5f;
    int code = 0;
    if (sn_dist_allreduce(d, i32, SN_DIST_SUM) || sn_dist_allreduce(d, i64, SN_DIST_SUM) ||
        sn_dist_allreduce(d, f32, SN_DIST_SUM) || sn_dist_allreduce(d, fb, SN_DIST_MEAN) ||
        sn_dist_broadcast(d, bc, 1) || sn_dist_barrier(d)) {
        snprintf(msg, cap, "%s", sn_ctx_errmsg(ctx));
        code = 8;
    }
    int64_t s = (int64_t)size * (size - 1) / 2;
    for (int64_t i = 0; code == 0 && i < n; i++) {
        if (a[i] != (int32_t)(s * 1000 + size * i) ||
            b[i] != ((int64_t)1 << 40) * (s + size) + size * i || c[i] != 7 * i) {
            snprintf(msg, cap, "element %lld: %d %lld %lld", (long long)i, a[i],
                     (long long)b[i], (long long)c[i]);
            code = 9;
        }
        double want = 0;
        for (int r = 0; r < size; r++) want += 0.1f * (float)(r + 1) + 1e-3f * (float)i;
        if (fabs(f[i] - want) > 1e-5 * want) code = 10;
    }
    if (code == 0) {   /* the float sums' bits, for the parent to compare across ranks */
        uint64_t h = 1469598103934665603ull;
        const uint8_t *p = (const uint8_t *)f;
        for (size_t i = 0; i < (size_t)n * 4; i++) h = (h ^ p[i]) * 1099511628211ull;
        snprintf(msg, cap, "%016llx mean %g", (unsigned long long)h, (double)g[12345]);
    }
    sn_tensor_free(i32);
    sn_tensor_free(i64);
    sn_tensor_free(f32);
    sn_tensor_free(fb);
    sn_tensor_free(bc);
    return code;
}

START_TEST(test_collectives) {   /* _i: 0 two ranks by parameters, 1 three by TF_CONFIG */
    job j = {_i ? 3 : 2, free_port(), 20000, _i, 0};
    int rc[8];
    char msgs[8][1024];
    double secs[8];
    run_ranks(&j, collectives, -1, -1, rc, msgs, secs);
    for (int r = 0; r < j.size; r++) {
        ck_assert_msg(rc[r] == 0, "rank %d: exit %d: %s", r, rc[r], msgs[r]);
        ck_assert_str_eq(msgs[r], msgs[0]);   /* the same bits everywhere */
    }
    char want[64];
    snprintf(want, sizeof want, "mean %g", (j.size - 1) / 2.0 + 0.5);
    ck_assert_msg(strstr(msgs[0], want), "%s", msgs[0]);
} END_TEST

/* A rank's loop of all-reduces; kind says how one rank drops out at the 3rd. */
static int g_fault;   /* 1: rank 2 ends, 2: rank 2 stops, 3: rank 0 (the chief) ends */

static int faulty(sn_ctx *ctx, sn_dist *d, int rank, char *msg, size_t cap) {
    int64_t n = 4096;
    sn_tensor *t = NULL;
    if (sn_tensor_new(ctx, SN_DTYPE_F32, 1, &n, &t) != SN_OK) return 7;
    int code = 0;
    double t0 = 0;
    for (int i = 0; i < 1000; i++) {
        if (i == 3) {
            if (g_fault == 1 && rank == 2) _exit(0);
            if (g_fault == 2 && rank == 2) raise(SIGSTOP);
            if (g_fault == 3 && rank == 0) _exit(0);
            t0 = now_s();
        }
        if (sn_dist_allreduce(d, t, SN_DIST_SUM) != SN_OK) {
            snprintf(msg, cap, "%.1f s: %s", i >= 3 ? now_s() - t0 : -1.0, sn_ctx_errmsg(ctx));
            code = 20;
            /* a broken group fails at once, with the same message */
            if (sn_dist_allreduce(d, t, SN_DIST_SUM) == SN_OK) code = 21;
            break;
        }
    }
    sn_tensor_free(t);
    return code;
}

START_TEST(test_faults) {   /* _i: g_fault - 1 */
    g_fault = _i + 1;
    job j = {3, free_port(), g_fault == 2 ? 3000 : 20000, 1, 0};
    int rc[8];
    char msgs[8][1024];
    double secs[8];
    run_ranks(&j, faulty, -1, g_fault == 3 ? 0 : 2, rc, msgs, secs);
    printf("[dist] %s: rank 1: %s\n", g_fault == 1 ? "a worker ends" : g_fault == 2 ?
           "a worker stops" : "the chief ends", msgs[1]);
    const char *who = g_fault == 3 ? "the chief, chief 0 (127.0.0.1:" : "worker 1 (127.0.0.1:";
    const char *what = g_fault == 1 ? "ended" : g_fault == 2 ? "" : "is gone";
    for (int r = 0; r < 3; r++) {
        bool victim = (g_fault == 3 && r == 0) || (g_fault != 3 && r == 2);
        if (victim) continue;
        ck_assert_msg(rc[r] == 20, "rank %d: exit %d: %s", r, rc[r], msgs[r]);
        ck_assert_msg(strstr(msgs[r], who) && strstr(msgs[r], what) &&
                      strstr(msgs[r], "all-reduce #"), "rank %d: %s", r, msgs[r]);
        double took = atof(msgs[r]);
        if (g_fault == 2) {   /* within the 3 s timeout, and the message says which rank */
            ck_assert_msg(took >= 2.5 && took < 5, "rank %d took %.1f s: %s", r, took, msgs[r]);
            ck_assert_msg(strstr(msgs[r], "timed out") &&
                          (strstr(msgs[r], "is stuck in it") ||
                           strstr(msgs[r], "has not reached it")), "%s", msgs[r]);
        } else {              /* an ended process: at once, not at the timeout */
            ck_assert_msg(took < 2.0, "rank %d took %.1f s: %s", r, took, msgs[r]);
        }
    }
} END_TEST

/* A rank that never starts: the others give up at the timeout, naming it. */
static int idle(sn_ctx *ctx, sn_dist *d, int rank, char *msg, size_t cap) {
    (void)ctx, (void)d, (void)rank, (void)msg, (void)cap;
    return 0;
}

START_TEST(test_missing_rank) {
    job j = {3, free_port(), 2000, 1, 0};
    int rc[8];
    char msgs[8][1024];
    double secs[8];
    run_ranks(&j, idle, 2, -1, rc, msgs, secs);
    printf("[dist] a worker never starts: rank 1: %s\n", msgs[1]);
    for (int r = 0; r < 2; r++) {
        ck_assert_msg(rc[r] == 5, "rank %d: exit %d: %s", r, rc[r], msgs[r]);
        ck_assert_msg(strstr(msgs[r], "worker 1 (127.0.0.1:") &&
                      strstr(msgs[r], "never arrived") && strstr(msgs[r], "2.0 s"), "%s",
                      msgs[r]);
        ck_assert_msg(secs[r] < 8, "rank %d took %.1f s", r, secs[r]);
    }
} END_TEST

/* ---- data-parallel training equals one process with the whole batch ------------------------ */

enum { DP_B = 4, DP_STEPS = 4 };
static const char *g_model;     /* lenet or cifarnet */
static char g_out[64];          /* where each rank leaves its weights and losses */

typedef struct dp_net {
    sn_graph *g;
    sn_net *net;
    sn_node images, labels, loss;
    int size;
} dp_net;

/* The model with TF-slim's training loss (cross-entropy + L2), compiled for batch. */
static int dp_build(sn_ctx *ctx, int64_t batch, dp_net *m) {
    memset(m, 0, sizeof *m);
    m->size = sn_model_default_image_size(g_model);
    int ch = !strcmp(g_model, "lenet") ? 1 : 3;
    int64_t in[4] = {SN_BATCH, m->size, m->size, ch}, ld[1] = {SN_BATCH};
    if (sn_graph_new(ctx, &m->g) != SN_OK) return 1;
    m->images = sn_input(m->g, "images", SN_DTYPE_F32, 4, in);
    m->labels = sn_input(m->g, "labels", SN_DTYPE_I32, 1, ld);
    sn_model_params mp = sn_model_params_default();
    mp.num_classes = 5;
    mp.is_training = 1;        /* dropout on: its masks must follow the global batch */
    mp.weight_decay = 1e-3f;
    sn_model mo;
    if (sn_model_build(m->g, g_model, m->images, &mp, &mo) != SN_OK) return 1;
    sn_node parts[2] = {sn_op_softmax_xent(m->g, mo.logits, m->labels, 0.0f), SN_NO_NODE};
    int nreg = 0;
    const sn_node *reg = sn_graph_regularization_losses(m->g, &nreg);
    parts[1] = sn_op_add_n(m->g, nreg, reg);
    m->loss = sn_op_add_n(m->g, 2, parts);
    sn_compile_params cp = sn_compile_params_default();
    cp.batch_size = batch;
    return sn_graph_status(m->g) != SN_OK || sn_net_compile(m->g, &cp, &m->net) != SN_OK;
}

/* Examples first .. first + n - 1 of the global batch of step s: deterministic pixels and
 * labels, so that any split of the batch sees the same ones. */
static void dp_batch(const dp_net *m, int s, int64_t first, int64_t n, sn_tensor *x,
                     sn_tensor *y) {
    int64_t per = sn_tensor_numel(x) / n;
    float *px = sn_tensor_data(x);
    int32_t *py = sn_tensor_data(y);
    for (int64_t e = 0; e < n; e++) {
        tu_fill(px + e * per, (size_t)per, (uint64_t)(1000 * s + first + e + 1));
        py[e] = (int32_t)((first + e) * 3 + s) % 5;
    }
    (void)m;
}

/* K SGD steps on batch n (examples first..), recording each step's loss (the mean over the
 * group when d is given) and then every variable, into out (a file of floats). */
static int dp_train(sn_ctx *ctx, sn_dist *d, int64_t first, int64_t n, const char *out) {
    dp_net m;
    int code = 0;
    sn_tensor *x = NULL, *y = NULL, *l = NULL;
    int64_t xd[4] = {n, 0, 0, 0}, yd[1] = {n};
    if (dp_build(ctx, n, &m)) return 30;
    xd[1] = xd[2] = m.size;
    xd[3] = !strcmp(g_model, "lenet") ? 1 : 3;
    FILE *f = fopen(out, "wb");
    if (!f || sn_tensor_new(ctx, SN_DTYPE_F32, 4, xd, &x) || sn_tensor_new(ctx, SN_DTYPE_I32, 1,
                                                                          yd, &y))
        code = 31;
    if (!code && d && sn_net_set_dist(m.net, d) != SN_OK) code = 32;
    for (int s = 0; !code && s < DP_STEPS; s++) {
        dp_batch(&m, s, first, n, x, y);
        sn_net_set_step(m.net, s);
        if (sn_net_set_input(m.net, m.images, x) || sn_net_set_input(m.net, m.labels, y) ||
            sn_net_forward(m.net) || sn_net_get_output(m.net, m.loss, &l) ||
            (d && sn_dist_allreduce(d, l, SN_DIST_MEAN)) || sn_net_backward(m.net, m.loss) ||
            sn_net_sgd_step(m.net, 0.05f))
            code = 33;
        if (!code) fwrite(sn_tensor_data(l), sizeof(float), 1, f);
        sn_tensor_free(l);
        l = NULL;
    }
    for (int v = 0; !code && v < sn_graph_num_vars(m.g); v++) {
        sn_var_info vi;
        sn_tensor *t = NULL;
        if (sn_graph_var(m.g, v, &vi) || sn_net_get_var(m.net, vi.name, &t)) code = 34;
        else fwrite(sn_tensor_data(t), sizeof(float), (size_t)sn_tensor_numel(t), f);
        sn_tensor_free(t);
    }
    if (f) fclose(f);
    sn_tensor_free(x);
    sn_tensor_free(y);
    sn_net_free(m.net);
    sn_graph_free(m.g);
    return code;
}

static int dp_rank(sn_ctx *ctx, sn_dist *d, int rank, char *msg, size_t cap) {
    char out[128];
    snprintf(out, sizeof out, "%s/rank%d.bin", g_out, rank);
    int code = dp_train(ctx, d, (int64_t)rank * DP_B, DP_B, out);
    if (code) snprintf(msg, cap, "%s", sn_ctx_errmsg(ctx));
    return code;
}

static float *read_floats(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "%s", path);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    float *p = malloc((size_t)len);
    ck_assert(fread(p, 1, (size_t)len, f) == (size_t)len);
    fclose(f);
    *n = (size_t)len / sizeof(float);
    return p;
}

/* ranks processes of batch 4 train g_model 4 SGD steps as one process of batch 4 * ranks:
 * the same losses and weights, up to float32's order of summation (tol of the largest
 * weight); every rank ends with the same bits. */
static void dp_compare(int ranks, double tol) {
    snprintf(g_out, sizeof g_out, "/tmp/sn_dist_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(g_out));
    job j = {ranks, free_port(), 60000, 1, 0};
    int rc[8];
    char msgs[8][1024], ref_path[128], path[128];
    double secs[8];
    run_ranks(&j, dp_rank, -1, -1, rc, msgs, secs);
    for (int r = 0; r < ranks; r++) ck_assert_msg(rc[r] == 0, "rank %d: exit %d: %s", r, rc[r],
                                                 msgs[r]);
    sn_ctx_params cp = sn_ctx_params_default();   /* as the ranks': the same initial values */
    cp.threads = 1;
    cp.device = g_device;
    cp.allow_tf32 = 0;
    cp.deterministic = 1;
    sn_ctx *ctx = NULL;
    ck_assert_int_eq(sn_ctx_new(&cp, &ctx), SN_OK);
    snprintf(ref_path, sizeof ref_path, "%s/one.bin", g_out);
    ck_assert_int_eq(dp_train(ctx, NULL, 0, (int64_t)ranks * DP_B, ref_path), 0);
    size_t n, n0;
    float *ref = read_floats(ref_path, &n);
    snprintf(path, sizeof path, "%s/rank0.bin", g_out);
    float *r0 = read_floats(path, &n0);
    ck_assert_uint_eq(n, n0);
    double wmax = 0, werr = 0, lerr = 0;
    for (size_t i = DP_STEPS; i < n; i++) wmax = fmax(wmax, fabs(ref[i]));
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)ref[i] - r0[i]);
        if (i < DP_STEPS) lerr = fmax(lerr, e / fabs(ref[i]));
        else werr = fmax(werr, e);
    }
    printf("[%s] %s, %d processes of batch %d (%s, %s) vs one of batch %d, %d SGD steps: "
           "losses %.4f..%.4f, max rel diff %.1e; weights max diff %.1e of max %.3f\n",
           g_device == SN_DEVICE_CUDA ? "cuda_dist" : "dist", g_model, ranks, DP_B,
           g_device == SN_DEVICE_CUDA ? "GPU" : "CPU", sn_dist_backend_name(g_backend),
           ranks * DP_B, DP_STEPS, ref[0], ref[DP_STEPS - 1], lerr, werr, wmax);
    ck_assert_msg(lerr < tol && werr < tol * wmax, "loss %.2e, weights %.2e", lerr, werr);
    ck_assert(ref[DP_STEPS - 1] != ref[0]);   /* the steps changed the weights */
    for (int r = 1; r < ranks; r++) {         /* every rank holds the same weights */
        snprintf(path, sizeof path, "%s/rank%d.bin", g_out, r);
        float *rr = read_floats(path, &n0);
        ck_assert_mem_eq(rr, r0, n * sizeof(float));
        free(rr);
    }
    free(ref);
    free(r0);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", g_out);
    ck_assert_int_eq(system(cmd), 0);
    sn_ctx_free(ctx);
}

/* N = 2 and 3 processes of batch 4 train lenet and cifarnet as one process of batch 4N
 * (measured ~1e-7 of the largest weight). */
START_TEST(test_data_parallel) {   /* _i: 0 lenet x2, 1 lenet x3, 2 cifarnet x2 */
    g_model = _i == 2 ? "cifarnet" : "lenet";
    dp_compare(_i == 1 ? 3 : 2, 1e-5);
} END_TEST

/* ---- asynchronous training on parameter servers (lib/dist/ps.c) ------------------------------ */

enum { PS_B = 4 };
/* fault 1: worker 1 ends; 2: ps 1 ends; 3: the chief stalls before its first step.
 * g_ps_delay: the other workers start at that global step (sn_ps_wait_step). */
static int g_num_ps, g_ps_steps, g_ps_fault, g_ps_delay;
static float g_ps_ema;   /* > 0: a moving average of that decay (on the ps tasks) */

/* The model with TF-slim's training loss, batch PS_B, and a momentum optimizer. */
static int ps_setup(sn_ctx *ctx, dp_net *m, sn_optim **opt) {
    if (dp_build(ctx, PS_B, m)) return 1;
    sn_optim_params op = sn_optim_params_default(SN_OPTIM_MOMENTUM);
    return sn_optim_new(m->net, &op, opt) != SN_OK;
}

/* steps training steps of batch PS_B (examples first..) with a momentum optimizer: through
 * the ps tasks of d (rank num_ps is the chief: it initializes, snapshots and ends the job),
 * or locally (d NULL).  Records each step's loss, then every variable and optimizer slot,
 * into out.  The chief with two workers waits for the other's pushes before its snapshot. */
static int ps_train(sn_ctx *ctx, sn_dist *d, int64_t first, int workers, const char *out,
                    char *msg, size_t cap) {
    dp_net m;
    sn_optim *opt = NULL;
    sn_ema *ema = NULL;
    sn_ps_client *c = NULL;
    sn_tensor *x = NULL, *y = NULL, *l = NULL;
    int code = 0;
    bool chief = !d || sn_dist_rank(d) == g_num_ps;
    if (ps_setup(ctx, &m, &opt) ||
        (g_ps_ema > 0 && sn_ema_new(m.net, g_ps_ema, SN_VAR_MODEL, &ema)))
        code = 40;
    int64_t xd[4] = {PS_B, m.size, m.size, !strcmp(g_model, "lenet") ? 1 : 3}, yd[1] = {PS_B};
    FILE *f = out ? fopen(out, "wb") : NULL;
    if (!code && (sn_tensor_new(ctx, SN_DTYPE_F32, 4, xd, &x) ||
                  sn_tensor_new(ctx, SN_DTYPE_I32, 1, yd, &y)))
        code = 41;
    if (!code && d && (sn_ps_client_new(d, g_num_ps, m.net, opt, &c) ||
                       (ema && sn_ps_client_set_ema(c, ema)) || (chief && sn_ps_init(c)) ||
                       sn_ps_pull(c)))
        code = 42;
    if (!code && c && !chief && g_ps_delay) {   /* starts once the chief has pushed so far */
        sn_status w = sn_ps_wait_step(c, g_ps_delay);
        if (w == SN_ERR_TIMEOUT) {
            snprintf(msg, cap, "%s", sn_ctx_errmsg(ctx));
            code = 61;
        } else if (w || sn_ps_pull(c)) {
            code = 42;
        } else {
            snprintf(msg, cap, "started at global step %lld",
                     (long long)sn_ps_client_stats(c).global_step);
        }
    }
    if (!code && chief && g_ps_fault == 3) sleep(4);   /* longer than the group's timeout */
    for (int s = 0; !code && s < g_ps_steps; s++) {
        if (g_ps_fault == 1 && !chief && s == 2) _exit(0);   /* a worker dies mid-training */
        int64_t step = c ? sn_ps_client_stats(c).global_step : s;
        dp_batch(&m, s, first, PS_B, x, y);
        sn_net_set_step(m.net, step);
        if (sn_net_set_input(m.net, m.images, x) || sn_net_set_input(m.net, m.labels, y) ||
            sn_net_forward(m.net) || sn_net_get_output(m.net, m.loss, &l) ||
            sn_net_backward(m.net, m.loss) ||
            (c ? sn_ps_push(c, 0.02f, 1) : sn_optim_step(opt, 0.02f)) ||
            (!c && ema && sn_ema_update(ema, sn_optim_global_step(opt))))
            code = 43;
        if (!code && f) fwrite(sn_tensor_data(l), sizeof(float), 1, f);
        sn_tensor_free(l);
        l = NULL;
        if (g_ps_fault) usleep(100 * 1000);
    }
    /* the chief: the others' pushes too, then the ps tasks' state */
    int64_t all = g_ps_fault == 1 ? g_ps_steps + 2
                : g_ps_fault == 3 ? g_ps_steps : (int64_t)workers * g_ps_steps;
    for (int i = 0; !code && c && chief && i < 600 && sn_ps_client_stats(c).global_step < all;
         i++) {
        usleep(50 * 1000);
        if (sn_ps_pull(c)) code = 44;
    }
    if (!code && c && chief && sn_ps_snapshot(c)) code = 45;
    if (!code && c && chief)
        snprintf(msg, cap, "global step %lld, pushes %lld, mean staleness %.2f",
                 (long long)sn_ps_client_stats(c).global_step,
                 (long long)sn_ps_client_stats(c).pushes,
                 sn_ps_client_stats(c).staleness_n
                     ? sn_ps_client_stats(c).staleness_sum / sn_ps_client_stats(c).staleness_n
                     : 0.0);
    for (int v = 0; !code && f && v < sn_graph_num_vars(m.g); v++) {
        sn_var_info vi;
        sn_tensor *t = NULL;
        if (sn_graph_var(m.g, v, &vi) || sn_net_get_var(m.net, vi.name, &t)) code = 46;
        else fwrite(sn_tensor_data(t), sizeof(float), (size_t)sn_tensor_numel(t), f);
        sn_tensor_free(t);
    }
    for (int i = 0; !code && f && i < sn_optim_num_slots(opt); i++) {
        sn_slot_info si;
        sn_tensor *t = NULL;
        if (sn_optim_slot(opt, i, &si) || sn_optim_get_slot(opt, si.name, &t)) code = 47;
        else fwrite(sn_tensor_data(t), sizeof(float), (size_t)sn_tensor_numel(t), f);
        sn_tensor_free(t);
    }
    for (int i = 0; !code && f && ema && i < sn_ema_num_slots(ema); i++) {
        sn_slot_info si;
        sn_tensor *t = NULL;
        if (sn_ema_slot(ema, i, &si) || sn_ema_get_slot(ema, si.name, &t)) code = 47;
        else fwrite(sn_tensor_data(t), sizeof(float), (size_t)sn_tensor_numel(t), f);
        sn_tensor_free(t);
    }
    if (!code && c && chief && sn_ps_done(c)) code = 48;
    if (code && !msg[0]) snprintf(msg, cap, "%s", sn_ctx_errmsg(ctx));
    if (f) fclose(f);
    sn_ps_client_free(c);
    sn_tensor_free(x);
    sn_tensor_free(y);
    sn_ema_free(ema);
    sn_optim_free(opt);
    sn_net_free(m.net);
    sn_graph_free(m.g);
    return code;
}

/* A ps task's log goes into its message. */
static void ps_log(void *arg, const char *line) {
    char *msg = arg;
    size_t n = strlen(msg);
    if (n < 900) snprintf(msg + n, 1024 - n, "%s%.200s", n ? " | " : "", line);
}

static void *die_later(void *arg) {
    (void)arg;
    usleep(3000 * 1000);
    _exit(0);
}

/* ps tasks serve; the chief and the workers train.  A ps's message: its log and stats. */
static int ps_rank(sn_ctx *ctx, sn_dist *d, int rank, char *msg, size_t cap) {
    if (rank >= g_num_ps) {
        char out[128];
        snprintf(out, sizeof out, "%s/rank%d.bin", g_out, rank);
        int workers = sn_dist_size(d) - g_num_ps;
        int code = ps_train(ctx, d, (int64_t)(rank - g_num_ps) * PS_B, workers,
                            rank == g_num_ps ? out : NULL, msg, cap);
        /* 60: the ps's end, named (at a step, or, on a slow machine, at the first pull) */
        return g_ps_fault == 2 && (code == 42 || code == 43) ? 60 : code;
    }
    pthread_t killer;   /* ps 1 of fault 2 dies abruptly while serving, as a killed process */
    if (g_ps_fault == 2 && rank == 1) pthread_create(&killer, NULL, die_later, NULL);
    sn_ps_params p = sn_ps_params_default();
    p.num_ps = g_num_ps;
    p.log = ps_log;
    p.arg = msg;
    sn_ps_stats st;
    sn_status r = sn_ps_serve(d, &p, &st);
    size_t n = strlen(msg);
    snprintf(msg + n, cap - n, " | status %d: %.200s | applied %lld, variables %d", (int)r,
             r ? sn_ctx_errmsg(ctx) : "", (long long)st.pushes, st.variables);
    return r == SN_OK ? 0 : 50;
}

/* One worker against 1 or 2 ps tasks trains as local training does, bit for bit: losses,
 * variables (batch-norm moving statistics included: mobilenet_v1), momentum slots and
 * (_i 2) the moving averages' shadows, kept on the ps tasks. */
START_TEST(test_ps_equal) {   /* _i: 0 one ps, 1 two, 2 two with a moving average */
    g_model = "mobilenet_v1";
    g_num_ps = _i ? 2 : 1;
    g_ps_ema = _i == 2 ? 0.9f : 0.0f;
    g_ps_steps = 3;
    g_ps_fault = 0;
    snprintf(g_out, sizeof g_out, "/tmp/sn_ps_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(g_out));
    job j = {g_num_ps + 1, free_port(), 60000, 1, g_num_ps};
    int rc[8];
    char msgs[8][1024], ref_path[128], path[128];
    double secs[8];
    run_ranks(&j, ps_rank, -1, -1, rc, msgs, secs);
    for (int r = 0; r < j.size; r++)
        ck_assert_msg(rc[r] == 0, "rank %d: exit %d: %s", r, rc[r], msgs[r]);
    sn_ctx_params cp = sn_ctx_params_default();
    cp.threads = 1;
    cp.deterministic = 1;
    sn_ctx *ctx = NULL;
    ck_assert_int_eq(sn_ctx_new(&cp, &ctx), SN_OK);
    snprintf(ref_path, sizeof ref_path, "%s/local.bin", g_out);
    char m[1024] = "";
    ck_assert_int_eq(ps_train(ctx, NULL, 0, 1, ref_path, m, sizeof m), 0);
    size_t n, n1;
    float *ref = read_floats(ref_path, &n);
    snprintf(path, sizeof path, "%s/rank%d.bin", g_out, g_num_ps);
    float *got = read_floats(path, &n1);
    ck_assert_uint_eq(n, n1);
    size_t diff = 0;
    for (size_t i = 0; i < n; i++) diff += memcmp(&ref[i], &got[i], sizeof(float)) != 0;
    printf("[dist] mobilenet_v1, one worker on %d ps%s: %s; losses %.4f..%.4f; %zu of %zu "
           "floats differ from local training\n", g_num_ps, g_ps_ema > 0 ? ", moving "
           "averages on them" : "", msgs[g_num_ps], ref[0], ref[g_ps_steps - 1], diff, n);
    for (int r = 0; r < g_num_ps; r++) printf("[dist]   ps %d: %s\n", r, msgs[r]);
    ck_assert_uint_eq(diff, 0);
    ck_assert(ref[g_ps_steps - 1] != ref[0]);
    ck_assert_msg(strstr(msgs[g_num_ps], "global step 3, pushes 3, mean staleness 0.00"), "%s",
                  msgs[g_num_ps]);
    free(ref);
    free(got);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", g_out);
    ck_assert_int_eq(system(cmd), 0);
    sn_ctx_free(ctx);
} END_TEST

/* Two workers on two ps tasks: the global step counts every push, each ps applies every
 * push, and every variable lives on exactly one ps. */
START_TEST(test_ps_two_workers) {
    g_model = "lenet";
    g_num_ps = 2;
    g_ps_steps = 4;
    g_ps_fault = 0;
    g_ps_delay = 3;
    snprintf(g_out, sizeof g_out, "/tmp/sn_ps_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(g_out));
    job j = {4, free_port(), 60000, 1, 2};
    int rc[8];
    char msgs[8][1024];
    double secs[8];
    run_ranks(&j, ps_rank, -1, -1, rc, msgs, secs);
    g_ps_delay = 0;
    printf("[dist] lenet, two workers on two ps: chief: %s; worker 1: %s\n", msgs[2], msgs[3]);
    for (int r = 0; r < 4; r++) ck_assert_msg(rc[r] == 0, "rank %d: exit %d: %s", r, rc[r],
                                              msgs[r]);
    ck_assert_msg(strstr(msgs[2], "global step 8, pushes 4"), "%s", msgs[2]);
    /* worker 1 began once the chief alone had pushed 3 times */
    const char *at = strstr(msgs[3], "started at global step ");
    ck_assert_msg(at && atoi(at + 23) >= 3, "%s", msgs[3]);
    int vars = 0;
    for (int r = 0; r < 2; r++) {
        printf("[dist]   ps %d: %s\n", r, msgs[r]);
        ck_assert_msg(strstr(msgs[r], "applied 8,"), "%s", msgs[r]);
        vars += atoi(strstr(msgs[r], ", variables ") + 12);
    }
    ck_assert_int_eq(vars, 8);   /* lenet's 8 variables, each on one ps */
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", g_out);
    ck_assert_int_eq(system(cmd), 0);
} END_TEST

/* Faults: a worker that dies does not stop training (the ps logs it by name); a ps that
 * dies stops the workers, named. */
START_TEST(test_ps_faults) {   /* _i: 0 worker 1 dies, 1 ps 1 dies, 2 the chief stalls */
    g_model = "lenet";
    g_ps_fault = _i + 1;
    g_num_ps = _i == 1 ? 2 : 1;
    g_ps_steps = _i == 1 ? 200 : _i == 2 ? 2 : 8;
    g_ps_delay = _i == 2 ? 1 : 0;
    snprintf(g_out, sizeof g_out, "/tmp/sn_ps_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(g_out));
    /* the chief's stall outlasts a 2-s timeout; the others' 20 s */
    job j = {g_num_ps + (_i == 1 ? 1 : 2), free_port(), _i == 2 ? 2000 : 20000, 1, g_num_ps};
    int rc[8];
    char msgs[8][1024];
    double secs[8];
    run_ranks(&j, ps_rank, -1, -1, rc, msgs, secs);
    int chief = g_num_ps;
    g_ps_delay = 0;
    printf("[dist] %s: chief: %s\n[dist]   ps 0: %s\n",
           _i == 2 ? "the chief stalls" : _i ? "ps 1 dies" : "worker 1 dies", msgs[chief],
           msgs[0]);
    if (_i == 2) {   /* the waiting worker gives up at the timeout, naming the chief */
        printf("[dist]   worker 1: %s\n", msgs[chief + 1]);
        ck_assert_msg(rc[chief] == 0 && rc[0] == 0, "chief %d, ps %d: %s / %s", rc[chief],
                      rc[0], msgs[chief], msgs[0]);
        ck_assert_msg(rc[chief + 1] == 61 && strstr(msgs[chief + 1], "waiting for global step "
                      "1, the step has stayed at 0 for") && strstr(msgs[chief + 1], "is the "
                      "chief, ") && strstr(msgs[chief + 1], "(127.0.0.1:"), "worker %d: %s",
                      rc[chief + 1], msgs[chief + 1]);
    } else if (_i == 0) {
        ck_assert_msg(rc[0] == 0 && rc[chief] == 0, "ps %d, chief %d: %s / %s", rc[0],
                      rc[chief], msgs[0], msgs[chief]);
        ck_assert_msg(strstr(msgs[0], "worker 0 (127.0.0.1:") && strstr(msgs[0], "ended") &&
                      strstr(msgs[0], "serving the others"), "%s", msgs[0]);
        ck_assert_msg(strstr(msgs[chief], "global step 10, pushes 8"), "%s", msgs[chief]);
    } else {
        ck_assert_msg(rc[chief] == 60, "chief: exit %d: %s", rc[chief], msgs[chief]);
        ck_assert_msg(strstr(msgs[chief], "ps 1 (127.0.0.1:") && strstr(msgs[chief], "ended"),
                      "%s", msgs[chief]);
        ck_assert_msg(secs[chief] < 15, "the chief took %.1f s", secs[chief]);
    }
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", g_out);
    ck_assert_int_eq(system(cmd), 0);
} END_TEST

/* ---- backends ------------------------------------------------------------------------------ */

START_TEST(test_backend) {
    sn_dist_backend b = SN_DIST_NCCL;
    ck_assert_int_eq(sn_dist_backend_from_name("gloo", &b), SN_OK);
    ck_assert_int_eq(b, SN_DIST_GLOO);
    ck_assert_int_eq(sn_dist_backend_from_name("nccl", &b), SN_OK);
    ck_assert_int_eq(b, SN_DIST_NCCL);
    ck_assert_int_eq(sn_dist_backend_from_name("mpi", &b), SN_ERR_INVALID_ARG);
    ck_assert_int_eq(sn_dist_backend_from_name(NULL, &b), SN_ERR_INVALID_ARG);
    ck_assert_str_eq(sn_dist_backend_name(SN_DIST_NCCL), "nccl");
    ck_assert_int_eq(sn_dist_params_default().backend, SN_DIST_GLOO);
    /* NCCL on a CPU context: refused, naming why (a build without CUDA: unsupported) */
    sn_ctx *ctx = tu_ctx();
    sn_dist_params p = sn_dist_params_default();
    p.backend = SN_DIST_NCCL;
    sn_dist *d = (sn_dist *)&p;
    sn_status st = sn_dist_new(ctx, &p, &d);
    ck_assert_ptr_null(d);
    ck_assert_msg(st == SN_ERR_INVALID_ARG || st == SN_ERR_UNSUPPORTED, "%s", sn_status_str(st));
    ck_assert_msg(strstr(sn_ctx_errmsg(ctx), "NCCL") != NULL, "%s", sn_ctx_errmsg(ctx));
    p.backend = (sn_dist_backend)7;
    ck_assert_int_eq(sn_dist_new(ctx, &p, &d), SN_ERR_INVALID_ARG);
    /* a Gloo group of one: its backend, and a CPU net joins it */
    p.backend = SN_DIST_GLOO;
    ck_assert_int_eq(sn_dist_new(ctx, &p, &d), SN_OK);
    ck_assert_int_eq(sn_dist_get_backend(d), SN_DIST_GLOO);
    sn_dist_free(d);
    /* the launcher's local size */
    sn_dist_env e;
    clear_env();
    setenv("RANK", "1", 1);
    setenv("WORLD_SIZE", "4", 1);
    setenv("LOCAL_RANK", "1", 1);
    setenv("LOCAL_WORLD_SIZE", "2", 1);
    setenv("MASTER_ADDR", "10.0.0.1", 1);
    ck_assert_int_eq(sn_dist_env_read(ctx, &e), SN_OK);
    ck_assert_int_eq(e.local_size, 2);
    unsetenv("LOCAL_WORLD_SIZE");
    ck_assert_int_eq(sn_dist_env_read(ctx, &e), SN_OK);
    ck_assert_int_eq(e.local_size, 0);            /* not known */
    clear_env();
    sn_ctx_free(ctx);
} END_TEST

/* ---- slimnet-train's launcher (cmd/common/launch.c) ---------------------------------------- */

START_TEST(test_launch_plan) {
    ck_assert_int_eq(launch_plan(4, 0, 0, 8), 4);   /* 4 of 8 GPUs: 4 processes */
    ck_assert_int_eq(launch_plan(4, 0, 0, 4), 4);
    ck_assert_int_eq(launch_plan(4, 0, 0, 3), 0);   /* fewer GPUs: clones on one device */
    ck_assert_int_eq(launch_plan(4, 0, 0, 0), 0);   /* no GPU (or no CUDA in the build) */
    ck_assert_int_eq(launch_plan(4, 0, 1, 8), 0);   /* --device=cpu, --num_gpus=0 */
    ck_assert_int_eq(launch_plan(4, 1, 0, 8), 0);   /* a cluster: each rank's clones */
    ck_assert_int_eq(launch_plan(1, 0, 0, 8), 0);   /* one clone: one process */
    char vars[LAUNCH_VARS][64], err[256];
    launch_vars(2, 4, 29511, vars);
    const char *want[LAUNCH_VARS] = {"RANK=2", "WORLD_SIZE=4", "LOCAL_RANK=2",
                                     "LOCAL_WORLD_SIZE=4", "MASTER_ADDR=127.0.0.1",
                                     "MASTER_PORT=29511", LAUNCH_MARK "=4"};
    for (int i = 0; i < LAUNCH_VARS; i++) ck_assert_str_eq(vars[i], want[i]);
    int port = launch_free_port(err, sizeof err);
    ck_assert_msg(port > 0 && port < 65536, "%s", err);
    /* the port is free: it binds */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert(bind(fd, (struct sockaddr *)&a, sizeof a) == 0);
    close(fd);
} END_TEST

/* Children with the launcher's environment, reaped: exit statuses named, a child that
 * outstays its grace killed, a failed parent's children stopped at once; none left. */
START_TEST(test_launch_reap) {
    char err[256], msg[256];
    char *ok[] = {"sh", "-c", "[ \"$RANK\" = \"$LOCAL_RANK\" ] && [ \"$WORLD_SIZE\" = 3 ] && "
                  "[ \"$MASTER_ADDR\" = 127.0.0.1 ] && [ \"$MASTER_PORT\" = 4242 ] && "
                  "[ \"$" LAUNCH_MARK "\" = 3 ]", NULL};
    char *bad[] = {"sh", "-c", "exit 3", NULL};
    char *slow[] = {"sh", "-c", "sleep 30", NULL};
    pid_t kids[2];
    kids[0] = launch_spawn("/bin/sh", ok, 1, 3, 4242, err, sizeof err);
    kids[1] = launch_spawn("/bin/sh", ok, 2, 3, 4242, err, sizeof err);
    ck_assert_msg(kids[0] > 0 && kids[1] > 0, "%s", err);
    ck_assert_msg(launch_reap(kids, 2, 1, 0, 10.0, msg, sizeof msg) == 0, "%s", msg);
    kids[0] = launch_spawn("/bin/sh", ok, 1, 3, 4242, err, sizeof err);
    kids[1] = launch_spawn("/bin/sh", bad, 2, 3, 4242, err, sizeof err);
    ck_assert_int_eq(launch_reap(kids, 2, 1, 0, 10.0, msg, sizeof msg), 1);
    ck_assert_msg(strstr(msg, "rank 2 (pid") && strstr(msg, "exited with status 3"), "%s", msg);
    double t0 = now_s();
    kids[0] = launch_spawn("/bin/sh", slow, 1, 3, 4242, err, sizeof err);
    kids[1] = launch_spawn("/bin/sh", ok, 2, 3, 4242, err, sizeof err);
    ck_assert_int_eq(launch_reap(kids, 2, 1, 0, 0.5, msg, sizeof msg), 1);
    ck_assert_msg(strstr(msg, "rank 1 (pid") && strstr(msg, "did not end within"), "%s", msg);
    kids[0] = launch_spawn("/bin/sh", slow, 1, 3, 4242, err, sizeof err);
    kids[1] = launch_spawn("/bin/sh", slow, 2, 3, 4242, err, sizeof err);
    ck_assert_int_eq(launch_reap(kids, 2, 1, 1, 0, msg, sizeof msg), 0);   /* stopped, no fault */
    ck_assert_msg(now_s() - t0 < 10, "%.1f s", now_s() - t0);
    ck_assert(waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD);      /* no zombie */
} END_TEST

/* ---- on a GPU (the cuda_dist suite) --------------------------------------------------------- */

/* The GPUs visible, asked in a child process: this one must not touch CUDA before it forks
 * the ranks. */
static int gpus_forked(void) {
    fflush(stdout);
    pid_t pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        int n = sn_cuda_device_count();
        _exit(n > 100 ? 100 : n);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 0;
}

static bool gpu_skip(int need) {
    int n = gpus_forked();
    if (n >= need) return false;
    printf("[cuda_dist] skipped: %d CUDA device(s), the test needs %d\n", n, need);
    return true;
}

/* A group of one NCCL rank: a CUDA lenet trained through set_dist (the variables broadcast,
 * each backward's buckets averaged by NCCL on the communication stream) ends with the
 * weights of the plain run, to float32's last bit or so (the mean of one is itself). */
START_TEST(test_nccl_one) {
    if (gpu_skip(1)) return;
    g_model = "lenet";
    sn_ctx_params cp = sn_ctx_params_default();
    cp.device = SN_DEVICE_CUDA;
    cp.allow_tf32 = 0;
    cp.deterministic = 1;
    sn_ctx *ctx = NULL;
    ck_assert_int_eq(sn_ctx_new(&cp, &ctx), SN_OK);
    sn_dist_params p = sn_dist_params_default();
    p.backend = SN_DIST_NCCL;
    sn_dist *d = NULL;
    ck_assert_msg(sn_dist_new(ctx, &p, &d) == SN_OK, "%s", sn_ctx_errmsg(ctx));
    ck_assert_int_eq(sn_dist_get_backend(d), SN_DIST_NCCL);
    snprintf(g_out, sizeof g_out, "/tmp/sn_dist_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(g_out));
    char a[128], b[128];
    snprintf(a, sizeof a, "%s/nccl.bin", g_out);
    snprintf(b, sizeof b, "%s/plain.bin", g_out);
    ck_assert_msg(dp_train(ctx, d, 0, 2 * DP_B, a) == 0, "%s", sn_ctx_errmsg(ctx));
    sn_ctx *plain = NULL;   /* a context of its own, as a process without a group */
    ck_assert_int_eq(sn_ctx_new(&cp, &plain), SN_OK);
    ck_assert_msg(dp_train(plain, NULL, 0, 2 * DP_B, b) == 0, "%s", sn_ctx_errmsg(plain));
    sn_ctx_free(plain);
    size_t n, n0;
    float *x = read_floats(a, &n), *y = read_floats(b, &n0);
    ck_assert_uint_eq(n, n0);
    double wmax = 0, err = 0;
    for (size_t i = 0; i < n; i++) {
        wmax = fmax(wmax, fabs(y[i]));
        err = fmax(err, fabs((double)x[i] - y[i]));
    }
    printf("[cuda_dist] lenet, one NCCL rank vs no group, %d SGD steps: max diff %.1e of "
           "max %.3f\n", DP_STEPS, err, wmax);
    ck_assert_msg(err <= 1e-6 * wmax, "max diff %.2e of %.3f", err, wmax);
    free(x);
    free(y);
    /* a CPU net cannot join an NCCL group */
    sn_ctx *cpu = tu_ctx();
    dp_net m;
    ck_assert_int_eq(dp_build(cpu, 2, &m), 0);
    ck_assert_int_eq(sn_net_set_dist(m.net, d), SN_ERR_INVALID_ARG);
    sn_net_free(m.net);
    sn_graph_free(m.g);
    sn_ctx_free(cpu);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", g_out);
    ck_assert_int_eq(system(cmd), 0);
    sn_dist_free(d);
    sn_ctx_free(ctx);
} END_TEST

/* Two ranks on the GPU train lenet as one process of the double batch on that GPU: _i = 0,
 * both sharing the one GPU through Gloo (the gradients staged through host memory; NCCL
 * refuses two ranks on one device); _i = 1, a GPU each through NCCL (where there are two). */
START_TEST(test_gpu_ranks) {
    if (gpu_skip(_i == 0 ? 1 : 2)) return;
    g_model = "lenet";
    g_device = SN_DEVICE_CUDA;
    g_backend = _i == 0 ? SN_DIST_GLOO : SN_DIST_NCCL;
    dp_compare(2, 1e-4);
} END_TEST

Suite *suite_dist(void) {
    Suite *s = suite_create("dist");
    TCase *tc = tcase_create("dist");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_env);
    tcase_add_loop_test(tc, test_collectives, 0, 2);
    tcase_add_loop_test(tc, test_faults, 0, 3);
    tcase_add_test(tc, test_missing_rank);
    tcase_add_loop_test(tc, test_data_parallel, 0, 3);
    tcase_add_test(tc, test_backend);
    tcase_add_test(tc, test_launch_plan);
    tcase_add_test(tc, test_launch_reap);
    suite_add_tcase(s, tc);
    tc = tcase_create("ps");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_ps_equal, 0, 3);
    tcase_add_test(tc, test_ps_two_workers);
    tcase_add_loop_test(tc, test_ps_faults, 0, 3);
    suite_add_tcase(s, tc);
    return s;
}

Suite *suite_cuda_dist(void) {
    Suite *s = suite_create("cuda_dist");
    TCase *tc = tcase_create("cuda_dist");
    tcase_set_timeout(tc, 180);
    tcase_add_test(tc, test_nccl_one);
    tcase_add_loop_test(tc, test_gpu_ranks, 0, 2);
    suite_add_tcase(s, tc);
    return s;
}
