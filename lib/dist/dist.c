/* dist.c: the process group (slimnet.h, sn_dist_*): the rendezvous store (store.c), Gloo's
 * mesh (gloo.cc), and the bookkeeping that names a failed peer.
 *
 * Every collective has a number.  A rank reports to the store when it enters, finishes or
 * fails one; the store also sees a rank's connection close when its process ends.  When a
 * collective fails here, the group waits a moment for the others' reports, asks the store,
 * and names the ranks that stand out: one that ended, never arrived, has not reached the
 * collective, or is stuck in it while the others finished or failed.  A failed group stays
 * failed: the ranks' collectives no longer line up.
 *
 * An NCCL group (SN_DIST_NCCL) has a communicator too (nccl.c), for a GPU net's variables
 * and gradients: rank 0's unique id goes through the store, and each backward's buckets
 * count as one collective, reported and named as Gloo's are. */
#include "dist_internal.h"

#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "../sn_internal.h"

struct sn_dist {
    sn_ctx *ctx;
    int rank, size, local_rank;
    int timeout_ms;
    char where[300];               /* "127.0.0.1:29500": the chief's store */
    sn__store_server *server;      /* rank 0 */
    sn__store *store;
    sn__gloo *gloo;
    sn_dist_backend backend;
    const sn__nccl_api *nccl_api;  /* SN_DIST_NCCL: the engine and its communicator */
    sn__nccl *nccl;
    int64_t dev_seq;               /* the collective of the device buckets queued (0: none) */
    int dev_buckets;
    double dev_mb, dev_t0;
    int64_t seq;                   /* collectives so far (numbered by the calling thread, as
                                    * they are issued or queued) */
    double waited;                 /* seconds the calling thread spent in collectives, or
                                    * waiting for the background ones */
    char roster[8192];             /* sn_dist_params.roster */
    char name[256];                /* this rank in messages */
    /* The background all-reduces (a net's gradient buckets, sn_dist_allreduce_async): a
     * thread of the group runs them in the order given, which is the same on every rank. */
    pthread_t thread;
    bool thread_up, stop;
    pthread_mutex_t mu;
    pthread_cond_t work, done;
    struct { void *p; size_t n; int type; bool mean; int64_t seq; } queue[256];
    unsigned head, tail;           /* jobs [head, tail) are waiting or running */
    sn_status async_st;            /* the first failure of a background all-reduce */
    sn_status broken;              /* after a failure: every collective fails with it */
    char why[SN_ERRMSG_LEN];
};

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int sn_dist_rank(const sn_dist *d) { return d ? d->rank : 0; }
int sn_dist_size(const sn_dist *d) { return d ? d->size : 1; }
int sn_dist_local_rank(const sn_dist *d) { return d ? d->local_rank : 0; }
double sn_dist_wait_seconds(const sn_dist *d) { return d ? d->waited : 0.0; }
sn__gloo *sn__dist_gloo(sn_dist *d) { return d ? d->gloo : NULL; }
sn_dist_backend sn_dist_get_backend(const sn_dist *d) { return d ? d->backend : SN_DIST_GLOO; }

/* Rank r's name from the roster (line r), else "rank r". */
static void roster_name(const sn_dist *d, int r, char *buf, size_t cap) {
    const char *p = d->roster;
    for (int i = 0; i < r && p; i++) {
        p = strchr(p, '\n');
        if (p) p++;
    }
    size_t n = p ? strcspn(p, "\n") : 0;
    if (n == 0 || n >= cap) snprintf(buf, cap, "rank %d", r);
    else memcpy(buf, p, n), buf[n] = '\0';
}

/* For ps.c: rank r's name, the group's store, timeout and context. */
void sn__dist_peer_name(const sn_dist *d, int r, char *buf, size_t cap) {
    roster_name(d, r, buf, cap);
}
const char *sn__dist_name(const sn_dist *d) { return d->name; }
sn__store *sn__dist_store(sn_dist *d) { return d->store; }
int sn__dist_timeout_ms(const sn_dist *d) { return d->timeout_ms; }
sn_ctx *sn__dist_ctx(sn_dist *d) { return d->ctx; }

/* "worker 2 (10.0.0.3:2222) ended; worker 3 (...) never arrived" for the ranks that stand
 * out in collective seq (0: the rendezvous), into buf.  Returns how many. */
static int culprits(const sn_dist *d, const sn__rank_state *st, int64_t seq, char *buf,
                    size_t cap) {
    int n = 0;
    size_t used = 0;
    buf[0] = '\0';
    for (int r = 0; r < d->size; r++) {
        if (r == d->rank) continue;
        const sn__rank_state *s = &st[r];
        char what[96];
        if (s->state == SN__RANK_GONE)
            snprintf(what, sizeof what, "ended (its connection to the chief closed)");
        else if (s->state == SN__RANK_LEFT && seq > 0 && s->finished < seq && s->failed < seq)
            snprintf(what, sizeof what, "left the group before it");
        else if (s->state == SN__RANK_LEFT)
            continue;   /* failed as this one did, or was done */
        else if (s->state == SN__RANK_ABSENT)
            snprintf(what, sizeof what, "never arrived");
        else if (seq > 0 && s->entered < seq)
            snprintf(what, sizeof what, "has not reached it (its last was #%lld)",
                     (long long)s->entered);
        else if (seq > 0 && s->finished < seq && s->failed < seq)
            snprintf(what, sizeof what, "is stuck in it");
        else
            continue;
        if (++n <= 8 && used < cap) {
            char name[256];
            if (s->name[0]) snprintf(name, sizeof name, "%s", s->name);
            else roster_name(d, r, name, sizeof name);
            used += (size_t)snprintf(buf + used, cap - used, "%s%s %s", n > 1 ? "; " : "",
                                     name, what);
        }
    }
    if (n > 8 && used < cap) snprintf(buf + used, cap - used, "; and %d more", n - 8);
    return n;
}

/* The store's view after a failure, into who; false when the store does not answer (the
 * chief is gone). */
static bool ask_store(sn_dist *d, int64_t seq, char *who, size_t cap) {
    /* the others' reports of the same failure, and a closed connection, arrive first */
    struct timespec pause = {0, 300 * 1000000};
    nanosleep(&pause, NULL);
    sn__rank_state *st = calloc((size_t)d->size, sizeof *st);
    if (!st || sn__store_status(d->store, d->size, st) != 0) {
        char chief[256];
        roster_name(d, 0, chief, sizeof chief);
        snprintf(who, cap, "the chief, %s, is gone (%s)", chief,
                 st ? sn__store_error(d->store) : "out of memory");
        free(st);
        return false;
    }
    if (culprits(d, st, seq, who, cap) == 0) snprintf(who, cap, "no peer stands out");
    free(st);
    return true;
}

/* Marks the group failed with the message; the context's message is the caller's to set
 * (the background thread must not touch it). */
static sn_status broken(sn_dist *d, sn_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static sn_status broken(sn_dist *d, sn_status st, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->why, sizeof d->why, fmt, ap);
    va_end(ap);
    d->broken = st;
    return st;
}

/* For NCCL's polls: whether the store has seen a peer's connection close (its process
 * ended), so that a wait gives up at once instead of at the timeout. */
static int peer_gone(void *arg) {
    sn_dist *d = arg;
    sn__rank_state *st = calloc((size_t)d->size, sizeof *st);
    int gone = 0;
    if (st && sn__store_status(d->store, d->size, st) == 0)
        for (int r = 0; r < d->size; r++) gone |= r != d->rank && st[r].state == SN__RANK_GONE;
    free(st);
    return gone;
}

/* The group's NCCL communicator on ctx's GPU: rank 0's unique id through the store. */
static sn_status nccl_join(sn_dist *d, sn_ctx *ctx) {
    unsigned char id[SN__NCCL_ID_BYTES];
    char err[1024] = "";
    const char *key = "slimnet/nccl_unique_id";
    double t0 = now_s();
    int r = 0;
    if (d->rank == 0) {
        r = d->nccl_api->unique_id(id, err, sizeof err);
        if (r == 0 && d->size > 1 && sn__store_set(d->store, key, id, sizeof id) != 0)
            return sn__fail(ctx, SN_ERR_IO, "%s: publishing NCCL's id: %s", d->name,
                            sn__store_error(d->store));
    } else {
        void *val = NULL;
        size_t n = 0;
        r = sn__store_get(d->store, key, d->timeout_ms, &val, &n);
        if (r == 0 && n == sizeof id) memcpy(id, val, sizeof id);
        else if (r == 0) snprintf(err, sizeof err, "the store holds %zu bytes for it", n), r = -1;
        else if (r < 0) snprintf(err, sizeof err, "%s", sn__store_error(d->store));
        free(val);
        if (r == 1) {
            char who[768];
            bool chief = ask_store(d, 0, who, sizeof who);
            return sn__fail(ctx, chief ? SN_ERR_TIMEOUT : SN_ERR_IO, "%s: NCCL's id did not "
                            "come from the chief within %.1f s: %s", d->name,
                            d->timeout_ms / 1000.0, who);
        }
    }
    if (r != 0)
        return sn__fail(ctx, SN_ERR_CUDA, "%s: NCCL's id: %s", d->name, err);
    r = d->nccl_api->create(&ctx->dev, id, d->rank, d->size, t0 + d->timeout_ms / 1000.0,
                            d->size > 1 ? peer_gone : NULL, d, &d->nccl, err, sizeof err);
    if (r == SN__NCCL_OK) return SN_OK;
    char who[768] = "a group of one";
    bool chief = d->size == 1 || ask_store(d, 0, who, sizeof who);
    return sn__fail(ctx, r == SN__NCCL_TIMEOUT ? SN_ERR_TIMEOUT : !chief || r == SN__NCCL_GONE
                    ? SN_ERR_IO : SN_ERR_CUDA, "%s: the NCCL communicator of %d on GPU %d "
                    "did not come together (%.1f s): %s (NCCL: %.300s)", d->name, d->size,
                    ctx->p.device_index, now_s() - t0, who, err);
}

sn_status sn_dist_new(sn_ctx *ctx, const sn_dist_params *p, sn_dist **out) {
    if (!p || !out)
        return sn__fail(ctx, SN_ERR_INVALID_ARG, "sn_dist_new: NULL argument");
    *out = NULL;
    if (p->size < 1 || p->rank < 0 || p->rank >= p->size || p->local_rank < 0 ||
        !(p->timeout_secs > 0) || (p->size > 1 && (!p->master_addr[0] || p->master_port < 1 ||
                                                   p->master_port > 65535)))
        return sn__fail(ctx, SN_ERR_INVALID_ARG, "sn_dist_new: rank %d of %d, local rank %d, "
                        "master '%s:%d', timeout %g s: need 0 <= rank < size, a master "
                        "address and port, a positive timeout", p->rank, p->size,
                        p->local_rank, p->master_addr, p->master_port, p->timeout_secs);
    const sn__nccl_api *api = NULL;
    if (p->backend != SN_DIST_GLOO && p->backend != SN_DIST_NCCL)
        return sn__fail(ctx, SN_ERR_INVALID_ARG, "sn_dist_new: backend %d: expected "
                        "SN_DIST_GLOO or SN_DIST_NCCL", (int)p->backend);
    if (p->backend == SN_DIST_NCCL && !(api = sn__backend_nccl()))
        return sn__fail(ctx, SN_ERR_UNSUPPORTED, "sn_dist_new: NCCL: this libslimnet was "
                        "built without it (make CUDA=1 with NCCL installed)");
    if (p->backend == SN_DIST_NCCL && (!ctx || ctx->dev.backend != SN__BACKEND_CUDA))
        return sn__fail(ctx, SN_ERR_INVALID_ARG, "sn_dist_new: NCCL all-reduces GPU buffers "
                        "and the context is on the CPU: use the gloo backend, or a CUDA "
                        "context");
    sn_dist *d = calloc(1, sizeof *d);
    if (!d) return sn__fail(ctx, SN_ERR_NOMEM, "sn_dist_new: out of memory");
    d->ctx = ctx;
    d->rank = p->rank;
    d->size = p->size;
    d->local_rank = p->local_rank;
    double ms = p->timeout_secs * 1000.0;
    d->timeout_ms = ms > INT_MAX ? INT_MAX : ms < 1 ? 1 : (int)ms;
    snprintf(d->where, sizeof d->where, "%s:%d", p->master_addr, p->master_port);
    snprintf(d->roster, sizeof d->roster, "%s", p->roster);
    d->backend = p->backend;
    d->nccl_api = api;
    char err[1024], *name = d->name;
    const char *host = p->host[0] ? p->host : "127.0.0.1";
    if (p->name[0]) snprintf(name, sizeof d->name, "%s", p->name);
    else snprintf(name, sizeof d->name, "rank %d (%.200s)", p->rank, host);
    if (d->size == 1) {
        sn_status st = api ? nccl_join(d, ctx) : SN_OK;
        if (st != SN_OK) sn_dist_free(d);
        else *out = d;
        return st;
    }
    sn_status st = SN_OK;
    if (d->rank == 0 &&
        sn__store_server_start(NULL, p->master_port, d->size, &d->server, err, sizeof err))
        st = sn__fail(ctx, SN_ERR_IO, "%s: cannot serve the group's rendezvous store: %s", name,
                      err);
    if (st == SN_OK && sn__store_connect(p->master_addr, p->master_port, d->rank, name,
                                         d->timeout_ms, &d->store, err, sizeof err))
        st = sn__fail(ctx, SN_ERR_TIMEOUT, "%s: joining the group of %d: %s", name, d->size,
                      err);
    if (st == SN_OK &&
        sn__gloo_new(d->store, d->rank, d->size, host, d->timeout_ms, &d->gloo, err,
                     sizeof err)) {
        char who[768];
        bool chief = ask_store(d, 0, who, sizeof who);
        st = sn__fail(ctx, chief ? SN_ERR_TIMEOUT : SN_ERR_IO, "%s: the group of %d at %s did "
                      "not come together within %.1f s: %s (Gloo: %.300s)", name, d->size,
                      d->where, d->timeout_ms / 1000.0, who, err);
    }
    if (st == SN_OK && api) st = nccl_join(d, ctx);
    if (st != SN_OK) {
        d->broken = st;   /* the chief's store lingers for the others' questions */
        sn_dist_free(d);
        return st;
    }
    *out = d;
    return SN_OK;
}

void sn_dist_free(sn_dist *d) {
    if (!d) return;
    if (d->thread_up) {
        pthread_mutex_lock(&d->mu);
        d->stop = true;
        pthread_cond_broadcast(&d->work);
        pthread_mutex_unlock(&d->mu);
        pthread_join(d->thread, NULL);
        pthread_mutex_destroy(&d->mu);
        pthread_cond_destroy(&d->work);
        pthread_cond_destroy(&d->done);
    }
    if (d->nccl) d->nccl_api->destroy(d->nccl);
    sn__gloo_free(d->gloo);
    sn__store_close(d->store);
    /* The chief's store outlives it a little: the others' last reports, and after a
     * failure their question of who failed, still reach it. */
    sn__store_server_stop(d->server, d->broken ? 5000 : 1000);
    free(d);
}

enum { ALLREDUCE, BROADCAST, BARRIER };

/* One collective; on a failure the group is broken (d->why says why).  Either thread. */
static sn_status run_collective(sn_dist *d, int kind, int64_t seq, void *buf, size_t n,
                                int type, int root, double *took_out) {
    if (d->broken) return d->broken;
    if (d->size == 1) return SN_OK;
    /* reports are best effort: a chief that is gone shows up in the collective itself */
    sn__store_progress(d->store, seq, 0);
    double t0 = now_s();
    char err[1024] = "";
    uint32_t tag = (uint32_t)(seq & 0x7fffffff);
    int r = kind == ALLREDUCE ? sn__gloo_allreduce_sum(d->gloo, buf, n, type, tag, err, sizeof err)
          : kind == BROADCAST ? sn__gloo_broadcast(d->gloo, buf, n, root, tag, err, sizeof err)
                              : sn__gloo_barrier(d->gloo, tag, err, sizeof err);
    double took = now_s() - t0;
    *took_out = took;
    if (r == 0) {
        sn__store_progress(d->store, seq, 1);
        return SN_OK;
    }
    sn__store_progress(d->store, seq, -1);
    char who[768];
    ask_store(d, seq, who, sizeof who);
    static const char *names[] = {"all-reduce", "broadcast", "barrier"};
    char size[48] = "";
    double bytes = (double)n * (kind == ALLREDUCE ? (type == SN__GLOO_I64 ? 8.0 : 4.0) : 1.0);
    if (kind != BARRIER)
        snprintf(size, sizeof size, bytes < 1e5 ? " of %.0f bytes" : " of %.3g MB",
                 bytes < 1e5 ? bytes : bytes / 1e6);
    bool timed_out = took * 1000.0 >= 0.9 * d->timeout_ms || strstr(err, "imed out");
    return broken(d, timed_out ? SN_ERR_TIMEOUT : SN_ERR_IO, "%s: %s #%lld%s %s after "
                  "%.1f s: %s (Gloo: %.300s)", d->name, names[kind], (long long)seq, size,
                  timed_out ? "timed out" : "failed", took, who, err);
}

/* A collective of the calling (training) thread: its time counts as waiting. */
static sn_status collective(sn_dist *d, int kind, void *buf, size_t n, int type, int root) {
    if (d->thread_up) SN_TRY(sn__dist_wait(d));   /* the queued ones go first */
    double took = 0;
    sn_status st = run_collective(d, kind, ++d->seq, buf, n, type, root, &took);
    d->waited += took;
    return st == SN_OK ? SN_OK : sn__fail(d->ctx, st, "%s", d->why);
}

/* The engine's type of t for an all-reduce op, or SN_ERR_INVALID_ARG. */
static sn_status allreduce_type(sn_dist *d, const sn_tensor *t, sn_dist_op op, int *type) {
    sn_dtype dt = sn_tensor_dtype(t);
    if ((dt != SN_DTYPE_F32 && dt != SN_DTYPE_I32 && dt != SN_DTYPE_I64) ||
        (op == SN_DIST_MEAN && dt != SN_DTYPE_F32) || (op != SN_DIST_SUM && op != SN_DIST_MEAN))
        return sn__fail(d->ctx, SN_ERR_INVALID_ARG, "all-reduce: %s of a %s tensor is not "
                        "supported (sum of float32, int32, int64; mean of float32)",
                        op == SN_DIST_MEAN ? "mean" : "sum", sn_dtype_name(dt));
    *type = dt == SN_DTYPE_F32 ? SN__GLOO_F32 : dt == SN_DTYPE_I32 ? SN__GLOO_I32 : SN__GLOO_I64;
    return SN_OK;
}

sn_status sn_dist_allreduce(sn_dist *d, sn_tensor *t, sn_dist_op op) {
    if (!d || !t) return SN_ERR_INVALID_ARG;
    int type = SN__GLOO_F32;
    SN_TRY(allreduce_type(d, t, op, &type));
    size_t n = (size_t)sn_tensor_numel(t);
    SN_TRY(collective(d, ALLREDUCE, sn_tensor_data(t), n, type, 0));
    if (op == SN_DIST_MEAN && d->size > 1) {
        float *x = sn_tensor_data(t), k = (float)d->size;
        for (size_t i = 0; i < n; i++) x[i] /= k;
    }
    return SN_OK;
}

sn_status sn_dist_broadcast(sn_dist *d, sn_tensor *t, int root) {
    if (!d || !t) return SN_ERR_INVALID_ARG;
    if (root < 0 || root >= d->size)
        return sn__fail(d->ctx, SN_ERR_INVALID_ARG, "broadcast: root %d outside the group of %d",
                        root, d->size);
    return collective(d, BROADCAST, sn_tensor_data(t), sn_tensor_nbytes(t), 0, root);
}

sn_status sn_dist_barrier(sn_dist *d) {
    if (!d) return SN_ERR_INVALID_ARG;
    return collective(d, BARRIER, NULL, 0, 0, 0);
}

/* For sn_net: the sum of n floats at host memory p, divided by the group's size. */
sn_status sn__dist_mean_f32(sn_dist *d, float *p, size_t n) {
    SN_TRY(collective(d, ALLREDUCE, p, n, SN__GLOO_F32, 0));
    if (d->size > 1) {
        float k = (float)d->size;
        for (size_t i = 0; i < n; i++) p[i] /= k;
    }
    return SN_OK;
}

sn_status sn__dist_broadcast_bytes(sn_dist *d, void *p, size_t n) {
    return collective(d, BROADCAST, p, n, 0, 0);
}

/* ---- background all-reduces ------------------------------------------------------------------ */

enum { QUEUE = sizeof ((sn_dist *)0)->queue / sizeof ((sn_dist *)0)->queue[0] };

static void *background(void *arg) {
    sn_dist *d = arg;
    pthread_mutex_lock(&d->mu);
    for (;;) {
        while (d->head == d->tail && !d->stop) pthread_cond_wait(&d->work, &d->mu);
        if (d->head == d->tail) break;   /* stopping, nothing left */
        void *p = d->queue[d->head % QUEUE].p;
        size_t n = d->queue[d->head % QUEUE].n;
        int type = d->queue[d->head % QUEUE].type;
        bool mean = d->queue[d->head % QUEUE].mean;
        int64_t seq = d->queue[d->head % QUEUE].seq;
        pthread_mutex_unlock(&d->mu);
        double took = 0;
        sn_status st = run_collective(d, ALLREDUCE, seq, p, n, type, 0, &took);
        if (st == SN_OK && mean) {
            float *x = p, k = (float)d->size;
            for (size_t i = 0; i < n; i++) x[i] /= k;
        }
        pthread_mutex_lock(&d->mu);
        if (st != SN_OK && d->async_st == SN_OK) d->async_st = st;
        d->head++;
        pthread_cond_broadcast(&d->done);
    }
    pthread_mutex_unlock(&d->mu);
    return NULL;
}

/* Queues the all-reduce of n elements of type at p for the background thread. */
static sn_status enqueue(sn_dist *d, void *p, size_t n, int type, bool mean) {
    if (d->size == 1) return SN_OK;
    if (d->broken) return sn__fail(d->ctx, d->broken, "%s", d->why);
    if (!d->thread_up) {
        pthread_mutex_init(&d->mu, NULL);
        pthread_cond_init(&d->work, NULL);
        pthread_cond_init(&d->done, NULL);
        if (pthread_create(&d->thread, NULL, background, d) != 0) {
            pthread_mutex_destroy(&d->mu);
            pthread_cond_destroy(&d->work);
            pthread_cond_destroy(&d->done);
            return sn__fail(d->ctx, SN_ERR_NOMEM, "%s: cannot start the all-reduce thread",
                            d->name);
        }
        d->thread_up = true;
    }
    double t0 = now_s();
    pthread_mutex_lock(&d->mu);
    while (d->tail - d->head >= QUEUE) pthread_cond_wait(&d->done, &d->mu);
    d->queue[d->tail % QUEUE].p = p;
    d->queue[d->tail % QUEUE].n = n;
    d->queue[d->tail % QUEUE].type = type;
    d->queue[d->tail % QUEUE].mean = mean;
    d->queue[d->tail % QUEUE].seq = ++d->seq;
    d->tail++;
    pthread_cond_signal(&d->work);
    pthread_mutex_unlock(&d->mu);
    d->waited += now_s() - t0;
    return SN_OK;
}

sn_status sn__dist_sum_f32_async(sn_dist *d, float *p, size_t n) {
    return enqueue(d, p, n, SN__GLOO_F32, false);
}

sn_status sn_dist_allreduce_async(sn_dist *d, sn_tensor *t, sn_dist_op op) {
    if (!d || !t) return SN_ERR_INVALID_ARG;
    int type = SN__GLOO_F32;
    SN_TRY(allreduce_type(d, t, op, &type));
    return enqueue(d, sn_tensor_data(t), (size_t)sn_tensor_numel(t), type, op == SN_DIST_MEAN);
}

sn_status sn_dist_wait(sn_dist *d) {
    if (!d) return SN_ERR_INVALID_ARG;
    return sn__dist_wait(d);
}

sn_status sn__dist_wait(sn_dist *d) {
    if (!d->thread_up) return SN_OK;
    double t0 = now_s();
    pthread_mutex_lock(&d->mu);
    while (d->head != d->tail) pthread_cond_wait(&d->done, &d->mu);
    sn_status st = d->async_st;
    pthread_mutex_unlock(&d->mu);
    d->waited += now_s() - t0;
    return st == SN_OK ? SN_OK : sn__fail(d->ctx, st, "%s", d->why);
}

/* ---- device buffers over NCCL ---------------------------------------------------------------
 * A device net's buckets of one backward are one collective: its number is taken, and
 * reported entered, with the first bucket, and finished (or failed) at the wait. */

bool sn__dist_has_nccl(const sn_dist *d) { return d && d->nccl; }

/* After NCCL gave up (r): the group is broken, the peer that stands out named. */
static sn_status dev_failed(sn_dist *d, int r, const char *what, const char *err) {
    int64_t seq = d->dev_seq;
    d->dev_seq = 0;
    if (d->store) sn__store_progress(d->store, seq, -1);
    char who[768] = "a group of one";
    if (d->size > 1) ask_store(d, seq, who, sizeof who);
    broken(d, r == SN__NCCL_TIMEOUT ? SN_ERR_TIMEOUT : r == SN__NCCL_GONE ? SN_ERR_IO
              : SN_ERR_CUDA, "%s: NCCL %s #%lld of %.3g MB %s after %.1f s: %s (NCCL: %.300s)",
           d->name, what, (long long)seq, d->dev_mb,
           r == SN__NCCL_TIMEOUT ? "timed out" : "failed", now_s() - d->dev_t0, who, err);
    return sn__fail(d->ctx, d->broken, "%s", d->why);
}

/* Takes the next collective number for device work, unless one is open. */
static sn_status dev_enter(sn_dist *d) {
    if (d->broken) return sn__fail(d->ctx, d->broken, "%s", d->why);
    if (!d->nccl)
        return sn__fail(d->ctx, SN_ERR_INVALID_ARG, "%s: the group has no NCCL communicator",
                        d->name);
    if (d->dev_seq) return SN_OK;
    d->dev_seq = ++d->seq;
    d->dev_buckets = 0;
    d->dev_mb = 0;
    d->dev_t0 = now_s();
    if (d->store) sn__store_progress(d->store, d->dev_seq, 0);
    return SN_OK;
}

sn_status sn__dist_dev_mean_async(sn_dist *d, sn__dev *dev, float *p, size_t n) {
    SN_TRY(dev_enter(d));
    char err[1024] = "";
    d->dev_buckets++;
    d->dev_mb += (double)n * sizeof(float) / 1e6;
    int r = d->nccl_api->mean_f32(d->nccl, dev, p, n, now_s() + d->timeout_ms / 1000.0,
                                  d->size > 1 ? peer_gone : NULL, d, err, sizeof err);
    return r == SN__NCCL_OK ? SN_OK : dev_failed(d, r, "all-reduce of gradients", err);
}

sn_status sn__dist_dev_wait(sn_dist *d, sn__dev *dev) {
    if (!d->dev_seq) return SN_OK;
    char err[1024] = "";
    double compute = 0, comm = 0;
    int r = d->nccl_api->wait(d->nccl, dev, now_s() + d->timeout_ms / 1000.0,
                              d->size > 1 ? peer_gone : NULL, d, &compute, &comm, err,
                              sizeof err);
    d->waited += comm;
    if (r != SN__NCCL_OK) return dev_failed(d, r, "all-reduce of gradients", err);
    if (d->store) sn__store_progress(d->store, d->dev_seq, 1);
    d->dev_seq = 0;
    return SN_OK;
}

sn_status sn__dist_dev_broadcast(sn_dist *d, sn__dev *dev, void *p, size_t bytes) {
    SN_TRY(sn__dist_dev_wait(d, dev));   /* a collective of its own */
    SN_TRY(dev_enter(d));
    char err[1024] = "";
    d->dev_mb = (double)bytes / 1e6;
    int r = d->nccl_api->broadcast(d->nccl, dev, p, bytes, 0, now_s() + d->timeout_ms / 1000.0,
                                   d->size > 1 ? peer_gone : NULL, d, err, sizeof err);
    if (r != SN__NCCL_OK) return dev_failed(d, r, "broadcast", err);
    return sn__dist_dev_wait(d, dev);
}
