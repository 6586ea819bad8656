/* ps.c: asynchronous training on parameter servers (slimnet.h, sn_ps_*).
 *
 * The messages are Gloo's point-to-point sends over the group's mesh (gloo.cc):
 *   task -> ps, slot REQ: a 64-byte head; PUSH adds the gradients of the ps's trained
 *     variables, then the batch statistics of its moving statistics.  PULL, SNAPSHOT and
 *     DONE are a head alone; INIT's head gives the size of its payload (the manifest, the
 *     values, the optimizer slots), which follows on slot INIT.  A ps receives REQ from any
 *     task, one message at a time, in the order they come.
 *   ps -> task, slot REP: a head, then the ps's variables (PULL, PUSH with F_PULL) and their
 *     optimizer slots (SNAPSHOT).
 * A message is never bigger than the buffer posted for it (Gloo would abort the process):
 * before INIT a ps receives heads alone (only pulls and the chief's INIT head can come);
 * after it, a head and the largest push.  Every task computes the same layout from the
 * manifest: the ps's variables in creation order, each with its kind (trained, a moving
 * mean or variance) and shape.
 *
 * A ps never waits with a timeout (Gloo closes every pair of the mesh when one expires);
 * its watcher thread aborts the wait when the job ends, and a worker that dies shows as an
 * error on the buffers of its own pair only.  The tasks' waits on a ps do time out: a ps
 * that does not answer stops them, named. */
#include "dist_internal.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "../graph.h"

#define PS_MAGIC 0x31735073u                /* "sPs1" */
#define SLOT(n) ((UINT64_C(0xA5) << 56) | (uint64_t)(n))
enum { SLOT_REQ = 1, SLOT_REP = 2, SLOT_INIT = 3 };
enum { OP_PULL = 1, OP_PUSH = 2, OP_INIT = 3, OP_SNAPSHOT = 4, OP_DONE = 5, OP_PART = 6,
       OP_END = 7, OP_STEP = 8, OP_BYE = 9 };
enum { F_PULL = 1 };
enum { PV_TRAIN = 1, PV_MEAN = 2, PV_VAR = 4, PV_EMA = 8 };   /* PV_EMA: has a shadow */
#define MAX_INIT_BYTES ((uint64_t)1 << 40)

typedef struct head {
    uint32_t magic, op, flags, done;
    int64_t step;        /* request: the global step the gradients come from; reply: ps 0's */
    int64_t applied;     /* reply: pushes this ps has applied */
    uint64_t bytes;      /* INIT: the payload's size */
    double stale_sum;    /* reply: staleness summed over the pushes applied (ps 0) */
    int64_t stale_n;
    float lr;
    uint32_t layout;     /* reply: the hash of the ps's manifest (a worker checks its own) */
} head;
_Static_assert(sizeof(head) == 64, "the head is 64 bytes");

/* One variable of a ps's shard. */
typedef struct pvar {
    char *name;
    int rank;
    int64_t dims[SN_MAX_RANK];
    size_t numel;
    unsigned kind;       /* PV_* (0: held, never updated by a push) */
    float decay;         /* PV_MEAN, PV_VAR: the batch norm's */
    int node;            /* the variable's node in this process's net */
    int bn;              /* client: the training batch norm whose statistics it takes */
    float factor;        /* client, PV_VAR: the batch norm's Bessel factor rows/(rows-1) */
} pvar;

typedef struct shard {
    int n;
    pvar *v;
    size_t vals, grads, stats;   /* floats: every value, the pushed gradients, the statistics */
    size_t slots;                /* floats of the ps's optimizer variables */
    size_t shadows;              /* floats of its moving averages' shadows (PV_EMA) */
    int *slot_idx;               /* client: this shard's slots among opt's, in the ps's order */
    int *ema_idx;                /* client, per variable: its shadow among the ema's, or -1 */
    int n_slots;
    bool trains;                 /* any PV_TRAIN */
    uint32_t layout;             /* FNV-1a of its manifest */
} shard;

/* FNV-1a, 32 bits: a manifest's fingerprint. */
static uint32_t fnv1a(const unsigned char *p, size_t n) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 16777619u;
    return h;
}

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void shard_free(shard *s) {
    for (int i = 0; s->v && i < s->n; i++) free(s->v[i].name);
    free(s->v);
    free(s->slot_idx);
    free(s->ema_idx);
    memset(s, 0, sizeof *s);
}

static void shard_sizes(shard *s) {
    s->vals = s->grads = s->stats = 0;
    s->trains = false;
    for (int i = 0; i < s->n; i++) {
        const pvar *v = &s->v[i];
        s->vals += v->numel;
        if (v->kind & PV_TRAIN) s->grads += v->numel, s->trains = true;
        if (v->kind & (PV_MEAN | PV_VAR)) s->stats += v->numel;
    }
}

/* ---- the manifest: what the chief tells a ps it holds -------------------------------------- */

typedef struct wbuf { unsigned char *p; size_t n, cap; bool oom; } wbuf;
static void put(wbuf *w, const void *x, size_t n) {
    if (w->oom) return;
    if (w->n + n > w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 4096;
        while (cap < w->n + n) cap *= 2;
        unsigned char *p = realloc(w->p, cap);
        if (!p) {
            w->oom = true;
            return;
        }
        w->p = p;
        w->cap = cap;
    }
    memcpy(w->p + w->n, x, n);
    w->n += n;
}
static void put_str(wbuf *w, const char *s) {
    uint16_t n = (uint16_t)strlen(s);
    put(w, &n, sizeof n);
    put(w, s, n);
}

typedef struct rbuf { const unsigned char *p; size_t n, off; bool bad; } rbuf;
static void get(rbuf *r, void *x, size_t n) {
    if (r->bad || r->n - r->off < n) {
        r->bad = true;
        memset(x, 0, n);
        return;
    }
    memcpy(x, r->p + r->off, n);
    r->off += n;
}
static char *get_str(rbuf *r) {
    uint16_t n = 0;
    get(r, &n, sizeof n);
    if (r->bad || r->n - r->off < n) {
        r->bad = true;
        return NULL;
    }
    char *s = malloc((size_t)n + 1);
    if (!s) {
        r->bad = true;
        return NULL;
    }
    memcpy(s, r->p + r->off, n);
    s[n] = '\0';
    r->off += n;
    return s;
}

/* The optimizer's settings, as the ps rebuilds it. */
static void put_optim(wbuf *w, const sn_optim *opt) {
    int32_t has = opt != NULL;
    put(w, &has, sizeof has);
    if (!opt) return;
    const sn_optim_params *p = sn_optim_get_params(opt);
    int32_t kind = (int32_t)p->kind, nesterov = p->nesterov;
    float f[12] = {p->momentum, p->rmsprop_decay, p->rmsprop_momentum, p->epsilon,
                   p->adam_beta1, p->adam_beta2, p->adadelta_rho,
                   p->adagrad_initial_accumulator, p->ftrl_lr_power,
                   p->ftrl_initial_accumulator, p->ftrl_l1, p->ftrl_l2};
    put(w, &kind, sizeof kind);
    put(w, &nesterov, sizeof nesterov);
    put(w, f, sizeof f);
    put_str(w, p->name ? p->name : "");
}

static bool get_optim(rbuf *r, sn_optim_params *p, char **name) {
    int32_t has = 0;
    get(r, &has, sizeof has);
    *name = NULL;
    if (!has) return false;
    int32_t kind = 0, nesterov = 0;
    float f[12];
    get(r, &kind, sizeof kind);
    get(r, &nesterov, sizeof nesterov);
    get(r, f, sizeof f);
    *name = get_str(r);
    *p = sn_optim_params_default((sn_optim_kind)kind);
    p->kind = (sn_optim_kind)kind;
    p->nesterov = nesterov;
    p->momentum = f[0], p->rmsprop_decay = f[1], p->rmsprop_momentum = f[2];
    p->epsilon = f[3], p->adam_beta1 = f[4], p->adam_beta2 = f[5], p->adadelta_rho = f[6];
    p->adagrad_initial_accumulator = f[7], p->ftrl_lr_power = f[8];
    p->ftrl_initial_accumulator = f[9], p->ftrl_l1 = f[10], p->ftrl_l2 = f[11];
    p->name = *name && **name ? *name : NULL;
    p->trainable_scopes = NULL;
    return true;
}

/* The moving average's decay (0: none), as the ps rebuilds it. */
static void put_ema(wbuf *w, float decay) { put(w, &decay, sizeof decay); }

static void put_shard(wbuf *w, const shard *s) {
    uint32_t n = (uint32_t)s->n;
    put(w, &n, sizeof n);
    for (int i = 0; i < s->n; i++) {
        const pvar *v = &s->v[i];
        uint8_t rank = (uint8_t)v->rank, kind = (uint8_t)v->kind;
        put_str(w, v->name);
        put(w, &rank, 1);
        put(w, v->dims, (size_t)v->rank * sizeof v->dims[0]);
        put(w, &kind, 1);
        put(w, &v->decay, sizeof v->decay);
    }
}

static bool get_shard(rbuf *r, shard *s) {
    uint32_t n = 0;
    get(r, &n, sizeof n);
    if (r->bad || n > 1u << 20 || (size_t)n > r->n) return false;
    s->v = calloc(n ? n : 1, sizeof *s->v);
    if (!s->v) return false;
    s->n = (int)n;
    for (uint32_t i = 0; i < n && !r->bad; i++) {
        pvar *v = &s->v[i];
        uint8_t rank = 0, kind = 0;
        v->name = get_str(r);
        get(r, &rank, 1);
        if (rank > SN_MAX_RANK) r->bad = true;
        else get(r, v->dims, (size_t)rank * sizeof v->dims[0]);
        get(r, &kind, 1);
        get(r, &v->decay, sizeof v->decay);
        v->rank = rank;
        v->kind = kind;
        if (!r->bad && (!v->name || !v->name[0] || !sn__numel(rank, v->dims, &v->numel) ||
                        v->numel > ((size_t)1 << 36)))
            r->bad = true;
    }
    shard_sizes(s);
    return !r->bad;
}

/* ======================================== the ps task ======================================== */

/* What the ps keeps per task: its reply buffer, and the gradients its PART messages have
 * brought for the push its END will complete. */
typedef struct reply {
    unsigned char *p;
    size_t cap;
    sn__gloo_buf *b;
    bool pending, dead, pull_waiting;
    float *stage;                /* the trained variables' gradients, in shard order */
    int parts;                   /* PART messages since its last END */
} reply;

typedef struct server {
    sn_dist *d;
    sn_ctx *ctx;
    const sn_ps_params *p;
    sn__gloo *gloo;
    int k, num_ps, size;
    char me[256];
    /* the shard, after the chief's INIT */
    bool inited, done;
    sn_graph *g;
    sn_net *net;
    sn_optim *opt;
    char *opt_name;
    sn_ema *ema;                 /* --moving_average_decay's shadows of its variables */
    shard sh;
    float *scratch;              /* a batch norm's other statistic, unused */
    size_t *toff;                /* floats before trained variable i of the shard (n_train+1) */
    int n_train;
    int64_t step, applied, pulls;
    double stale_sum;
    int64_t stale_n;
    unsigned char *req[2];
    size_t req_cap;
    sn__gloo_buf *rb[2];
    reply *rep;
    /* the watcher */
    pthread_t watch;
    bool watch_up;
    pthread_mutex_t mu;
    bool quit;                   /* the watcher ends the loop */
    int why;                     /* END_* */
    sn__gloo_buf *waiting;       /* what the loop waits on (the watcher aborts it) */
    double deadline;             /* 0, or when the watcher aborts that wait */
    bool *gone;                  /* per rank: ended or left (the watcher's view, and the
                                  * loop's own failures) */
} server;

enum { END_NONE, END_LEFT, END_STOP, END_PS0, END_DEADLINE };

static void logf_(server *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf_(server *s, const char *fmt, ...) {
    if (!s->p->log) return;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    s->p->log(s->p->arg, line);
}

/* The watcher: every 0.2 s, the stop request, the deadline of a wait, and the store's view
 * of the other tasks: one that ended is logged; when every task but the ps tasks has left
 * or ended, serving is over. */
static void *watcher(void *arg) {
    server *s = arg;
    sn__rank_state *st = calloc((size_t)s->size, sizeof *st);
    int *seen = calloc((size_t)s->size, sizeof *seen);
    for (;;) {
        struct timespec pause = {0, 200 * 1000000};
        nanosleep(&pause, NULL);
        int why = END_NONE;
        if (s->p->should_stop && s->p->should_stop(s->p->arg)) why = END_STOP;
        pthread_mutex_lock(&s->mu);
        bool quit = s->quit;
        if (s->deadline > 0 && now_s() > s->deadline) why = END_DEADLINE;
        pthread_mutex_unlock(&s->mu);
        if (quit) break;
        if (why == END_NONE && st && seen) {
            if (sn__store_status(sn__dist_store(s->d), s->size, st) != 0) {
                why = END_PS0;
            } else {
                int active = 0;
                for (int r = s->num_ps; r < s->size; r++) {
                    bool gone = st[r].state == SN__RANK_GONE, left = st[r].state == SN__RANK_LEFT;
                    if (!gone && !left) active++;
                    if ((gone || left) && !seen[r]) {
                        seen[r] = 1;
                        pthread_mutex_lock(&s->mu);
                        s->gone[r] = true;
                        pthread_mutex_unlock(&s->mu);
                        char name[256];
                        if (st[r].name[0]) snprintf(name, sizeof name, "%s", st[r].name);
                        else sn__dist_peer_name(s->d, r, name, sizeof name);
                        if (gone)
                            logf_(s, "%s: %s ended (its connection closed)%s", s->me, name,
                                  s->done ? "" : "; serving the others");
                    }
                }
                if (active == 0) why = END_LEFT;
            }
        }
        if (why != END_NONE) {
            pthread_mutex_lock(&s->mu);
            s->quit = true;
            s->why = why;
            if (s->waiting) sn__gloo_abort_recv(s->waiting);
            pthread_mutex_unlock(&s->mu);
            break;
        }
    }
    free(st);
    free(seen);
    return NULL;
}

/* Posts b's receive of a request from every task still there: 0, 1 when none is left, -1
 * when Gloo keeps refusing (a task's announced send on a closed connection makes the post
 * fail until the watcher has seen that task go: tried again for the group's timeout). */
static int post_request(server *s, sn__gloo_buf *b, int *srcs, char *err, size_t cap) {
    double t0 = now_s();
    for (;;) {
        int n = 0;
        pthread_mutex_lock(&s->mu);
        for (int r = s->num_ps; r < s->size; r++)
            if (!s->gone[r]) srcs[n++] = r;
        bool quit = s->quit;
        pthread_mutex_unlock(&s->mu);
        if (n == 0 || quit) return 1;
        if (sn__gloo_recv_any(b, srcs, n, SLOT(SLOT_REQ), err, cap) == 0) return 0;
        if (now_s() - t0 > sn__dist_timeout_ms(s->d) / 1000.0) return -1;
        struct timespec pause = {0, 100 * 1000000};
        nanosleep(&pause, NULL);
    }
}

/* Waits for b's receive: 0 with *src, 1 when the watcher ended it, -1 on Gloo's error. */
static int serve_wait(server *s, sn__gloo_buf *b, double deadline, int *src, char *err,
                      size_t cap) {
    pthread_mutex_lock(&s->mu);
    if (s->quit) {
        pthread_mutex_unlock(&s->mu);
        return 1;
    }
    s->waiting = b;
    s->deadline = deadline;
    pthread_mutex_unlock(&s->mu);
    int r = sn__gloo_wait_recv(b, -1, src, err, cap);
    pthread_mutex_lock(&s->mu);
    s->waiting = NULL;
    s->deadline = 0;
    pthread_mutex_unlock(&s->mu);
    return r;
}

static void peer(server *s, int r, char *buf, size_t cap) {
    sn__dist_peer_name(s->d, r, buf, cap);
}

/* Task r's reply buffer, of at least bytes, once its previous reply has gone (it has: a
 * task asks again only after reading the answer).  NULL after a message when r is gone
 * (logged; *st stays SN_OK) or on a failure (*st). */
static unsigned char *reply_buffer(server *s, int r, size_t bytes, sn_status *st) {
    reply *rp = &s->rep[r];
    char err[1024] = "", name[256];
    *st = SN_OK;
    if (rp->dead) return NULL;
    if (rp->pending) {
        rp->pending = false;
        if (sn__gloo_wait_send(rp->b, -1, err, sizeof err) != 0) {
            rp->dead = true;
            pthread_mutex_lock(&s->mu);
            s->gone[r] = true;
            pthread_mutex_unlock(&s->mu);
            peer(s, r, name, sizeof name);
            logf_(s, "%s: %s is unreachable (%s); serving the others", s->me, name, err);
            return NULL;
        }
    }
    if (bytes > rp->cap) {
        sn__gloo_buf_free(rp->b);
        rp->b = NULL;
        free(rp->p);
        rp->cap = 0;
        if (!(rp->p = malloc(bytes))) {
            *st = sn__fail(s->ctx, SN_ERR_NOMEM, "%s: out of memory for a reply", s->me);
            return NULL;
        }
        rp->cap = bytes;
        if (sn__gloo_buf_new(s->gloo, rp->p, bytes, &rp->b, err, sizeof err) != 0) {
            *st = sn__fail(s->ctx, SN_ERR_IO, "%s: Gloo: %s", s->me, err);
            return NULL;
        }
    }
    return rp->p;
}

/* Sends the first bytes of task r's reply buffer on slot REP. */
static void reply_send(server *s, int r, size_t bytes) {
    reply *rp = &s->rep[r];
    char err[1024] = "", name[256];
    if (sn__gloo_send(rp->b, r, SLOT(SLOT_REP), bytes, err, sizeof err) != 0) {
        rp->dead = true;
        pthread_mutex_lock(&s->mu);
        s->gone[r] = true;
        pthread_mutex_unlock(&s->mu);
        peer(s, r, name, sizeof name);
        logf_(s, "%s: %s is unreachable (%s); serving the others", s->me, name, err);
        return;
    }
    rp->pending = true;
}

static head reply_head(const server *s, uint32_t op) {
    head h;
    memset(&h, 0, sizeof h);
    h.magic = PS_MAGIC;
    h.op = op;
    h.done = s->done;
    h.step = s->step;
    h.applied = s->applied;
    h.stale_sum = s->stale_sum;
    h.stale_n = s->stale_n;
    h.layout = s->sh.layout;
    return h;
}

/* The shard's variables, contiguous, into a reply: the variables are separate nodes, so
 * they go one by one into a staging copy. */
static sn_status reply_values(server *s, int r, uint32_t op, bool slots) {
    head h = reply_head(s, op);
    size_t n = s->sh.vals + (slots ? s->sh.slots + s->sh.shadows : 0);
    sn_status st;
    unsigned char *buf = reply_buffer(s, r, sizeof h + n * sizeof(float), &st);
    if (!buf) return st;
    memcpy(buf, &h, sizeof h);
    unsigned char *x = buf + sizeof h;
    for (int i = 0; i < s->sh.n && st == SN_OK; i++) {
        const pvar *v = &s->sh.v[i];
        st = SN__CALL(s->net, to_host, x, s->net->val[v->node], v->numel * sizeof(float));
        x += v->numel * sizeof(float);
    }
    for (int i = 0; slots && s->opt && i < sn_optim_num_slots(s->opt) && st == SN_OK; i++) {
        float *p;
        size_t numel;
        int node;
        st = sn__optim_slot_mem(s->opt, i, &p, &numel, &node);
        if (st == SN_OK) st = SN__CALL(s->net, to_host, x, p, numel * sizeof(float));
        x += numel * sizeof(float);
    }
    for (int i = 0; slots && s->ema && i < sn_ema_num_slots(s->ema) && st == SN_OK; i++) {
        float *p;
        size_t numel;
        int node;
        st = sn__ema_slot_mem(s->ema, i, &p, &numel, &node);
        if (st == SN_OK) st = SN__CALL(s->net, to_host, x, p, numel * sizeof(float));
        x += numel * sizeof(float);
    }
    if (st == SN_OK) reply_send(s, r, (size_t)(x - buf));
    s->pulls += op == OP_PULL || op == OP_PUSH;
    return st;
}

/* The chief's INIT: the manifest, the values and the slots; the ps's own net of variables
 * and its optimizer are built from it. */
static sn_status serve_init(server *s, int src, const head *h) {
    char err[1024] = "", name[256];
    peer(s, src, name, sizeof name);
    if (src != s->num_ps)
        return sn__fail(s->ctx, SN_ERR_FORMAT, "%s: INIT from %s, which is not the chief",
                        s->me, name);
    if (s->inited) {
        logf_(s, "%s: a second INIT from %s ignored", s->me, name);
        return SN_OK;
    }
    if (h->bytes == 0 || h->bytes > MAX_INIT_BYTES)
        return sn__fail(s->ctx, SN_ERR_FORMAT, "%s: INIT from %s announces %llu bytes", s->me,
                        name, (unsigned long long)h->bytes);
    unsigned char *buf = malloc((size_t)h->bytes);
    if (!buf) return sn__fail(s->ctx, SN_ERR_NOMEM, "%s: out of memory for %llu bytes of "
                              "variables", s->me, (unsigned long long)h->bytes);
    sn__gloo_buf *b = NULL;
    int r = sn__gloo_buf_new(s->gloo, buf, (size_t)h->bytes, &b, err, sizeof err);
    if (r == 0) r = sn__gloo_recv(b, src, SLOT(SLOT_INIT), err, sizeof err);
    if (r == 0) r = serve_wait(s, b, now_s() + sn__dist_timeout_ms(s->d) / 1000.0, NULL, err,
                               sizeof err);
    if (r != 0) {
        sn__gloo_buf_free(b);
        free(buf);
        return sn__fail(s->ctx, r > 0 ? SN_ERR_TIMEOUT : SN_ERR_IO, "%s: the variables from "
                        "%s %s", s->me, name, r > 0 ? "did not come in time" : err);
    }
    sn__gloo_buf_free(b);
    rbuf rd = {buf, (size_t)h->bytes, 0, false};
    sn_optim_params op;
    bool has_opt = get_optim(&rd, &op, &s->opt_name);
    float ema_decay = 0;
    get(&rd, &ema_decay, sizeof ema_decay);
    sn_status st = SN_OK;
    if (!get_shard(&rd, &s->sh) || rd.bad)
        st = sn__fail(s->ctx, SN_ERR_FORMAT, "%s: a malformed manifest from %s", s->me, name);
    s->sh.layout = fnv1a(buf, rd.off);
    /* the ps's own net: its variables alone */
    if (st == SN_OK) st = sn_graph_new(s->ctx, &s->g);
    for (int i = 0; st == SN_OK && i < s->sh.n; i++) {
        pvar *v = &s->sh.v[i];
        /* with a moving average, the variables it shadows are the model's (its set) */
        unsigned flags = (ema_decay > 0 && !(v->kind & PV_EMA) ? 0 : SN_VAR_MODEL) |
                         (v->kind & PV_TRAIN ? SN_VAR_TRAINABLE : 0) |
                         (v->kind & (PV_MEAN | PV_VAR) ? SN_VAR_MOVING : 0);
        v->node = sn_variable(s->g, v->name, v->rank, v->dims, NULL, flags);
        if (v->node == SN_NO_NODE) st = sn_graph_status(s->g);
    }
    if (st == SN_OK) {
        sn_compile_params cp = sn_compile_params_default();
        cp.backward = s->sh.trains;
        st = sn_net_compile(s->g, &cp, &s->net);
    }
    if (st == SN_OK && has_opt && s->sh.trains) st = sn_optim_new(s->net, &op, &s->opt);
    if (st == SN_OK && ema_decay > 0)
        st = sn_ema_new(s->net, ema_decay, SN_VAR_MODEL, &s->ema);
    s->sh.slots = s->sh.shadows = 0;
    for (int i = 0; st == SN_OK && s->ema && i < sn_ema_num_slots(s->ema); i++) {
        float *p;
        size_t numel;
        int node;
        sn__ema_slot_mem(s->ema, i, &p, &numel, &node);
        s->sh.shadows += numel;
    }
    for (int i = 0; st == SN_OK && s->opt && i < sn_optim_num_slots(s->opt); i++) {
        float *p;
        size_t numel;
        int node;
        sn__optim_slot_mem(s->opt, i, &p, &numel, &node);
        s->sh.slots += numel;
    }
    size_t need = rd.off + (s->sh.vals + s->sh.slots + s->sh.shadows) * sizeof(float);
    if (st == SN_OK && need != h->bytes)
        st = sn__fail(s->ctx, SN_ERR_FORMAT, "%s: INIT from %s has %llu bytes, its manifest "
                      "needs %zu", s->me, name, (unsigned long long)h->bytes, need);
    size_t biggest = 0;
    const float *x = (const float *)(buf + rd.off);
    for (int i = 0; st == SN_OK && i < s->sh.n; i++) {
        const pvar *v = &s->sh.v[i];
        st = SN__CALL(s->net, to_dev, s->net->val[v->node], x, v->numel * sizeof(float));
        x += v->numel;
        if (v->numel > biggest) biggest = v->numel;
    }
    for (int i = 0; st == SN_OK && s->opt && i < sn_optim_num_slots(s->opt); i++) {
        float *p;
        size_t numel;
        int node;
        sn__optim_slot_mem(s->opt, i, &p, &numel, &node);
        st = SN__CALL(s->net, to_dev, p, x, numel * sizeof(float));
        x += numel;
    }
    for (int i = 0; st == SN_OK && s->ema && i < sn_ema_num_slots(s->ema); i++) {
        float *p;
        size_t numel;
        int node;
        sn__ema_slot_mem(s->ema, i, &p, &numel, &node);
        st = SN__CALL(s->net, to_dev, p, x, numel * sizeof(float));
        x += numel;
    }
    free(buf);
    if (st == SN_OK && !(s->scratch = calloc(biggest + 1, sizeof(float))))
        st = sn__fail(s->ctx, SN_ERR_NOMEM, "%s: out of memory", s->me);
    if (st == SN_OK && !(s->toff = calloc((size_t)s->sh.n + 1, sizeof *s->toff)))
        st = sn__fail(s->ctx, SN_ERR_NOMEM, "%s: out of memory", s->me);
    for (int i = 0; st == SN_OK && i < s->sh.n; i++)
        if (s->sh.v[i].kind & PV_TRAIN) {
            s->toff[s->n_train + 1] = s->toff[s->n_train] + s->sh.v[i].numel;
            s->n_train++;
        }
    /* the receive buffers of pushes: a head and the largest push */
    s->req_cap = sizeof(head) + (s->sh.grads + s->sh.stats) * sizeof(float);
    for (int i = 0; st == SN_OK && i < 2; i++) {
        sn__gloo_buf_free(s->rb[i]);
        s->rb[i] = NULL;
        free(s->req[i]);
        if (!(s->req[i] = malloc(s->req_cap)))
            st = sn__fail(s->ctx, SN_ERR_NOMEM, "%s: out of memory", s->me);
        else if (sn__gloo_buf_new(s->gloo, s->req[i], s->req_cap, &s->rb[i], err, sizeof err))
            st = sn__fail(s->ctx, SN_ERR_IO, "%s: Gloo: %s", s->me, err);
    }
    if (st != SN_OK) return st;
    s->step = s->applied = h->step;
    if (s->opt) sn_optim_set_global_step(s->opt, h->step);
    s->inited = true;
    logf_(s, "%s: holding %d variables (%.3g MB%s%s) from %s at global step %lld", s->me,
          s->sh.n, (double)(s->sh.vals + s->sh.slots + s->sh.shadows) * 4e-6,
          s->opt ? " with their optimizer slots" : "",
          s->ema ? (s->opt ? " and moving averages" : " with their moving averages") : "",
          name, (long long)s->step);
    for (int r = s->num_ps; r < s->size && st == SN_OK; r++)
        if (s->rep[r].pull_waiting) {
            s->rep[r].pull_waiting = false;
            st = reply_values(s, r, OP_PULL, false);
        }
    return st;
}

/* A push: the gradients (at grads, in shard order) into the net, the optimizer's step, the
 * moving statistics (at stats). */
static sn_status serve_push(server *s, const head *h, const float *grads, const float *stats) {
    if (s->done) return SN_OK;
    const float *x = grads;
    for (int i = 0; i < s->sh.n; i++) {
        const pvar *v = &s->sh.v[i];
        if (!(v->kind & PV_TRAIN)) continue;
        SN_TRY(SN__CALL(s->net, to_dev, s->net->grad[v->node], x, v->numel * sizeof(float)));
        x += v->numel;
    }
    if (s->opt) SN_TRY(sn_optim_step(s->opt, h->lr));
    x = stats;
    for (int i = 0; i < s->sh.n; i++) {
        const pvar *v = &s->sh.v[i];
        if (!(v->kind & (PV_MEAN | PV_VAR))) continue;
        float *val = s->net->val[v->node];
        /* TF's assign_moving_average on the ps: the same kernel as local training, fed the
         * worker's batch value (the variance already Bessel-corrected) */
        SN_TRY(SN__CALL(s->net, bn_update_moving, v->kind & PV_MEAN ? val : s->scratch,
                        v->kind & PV_VAR ? val : s->scratch, x, x, v->decay, 1.0f,
                        (int64_t)v->numel));
        x += v->numel;
    }
    int64_t stale = s->step - h->step;
    s->stale_sum += (double)(stale > 0 ? stale : 0);
    s->stale_n++;
    s->step++;
    s->applied++;
    /* TF-slim's moving-average update op, run on the ps with every step (num_updates: the
     * global step after it, as local training's) */
    if (s->ema) SN_TRY(sn_ema_update(s->ema, s->step));
    return SN_OK;
}

/* A PART: the gradients of trained variables first .. first+count-1 (h->applied, h->bytes)
 * of a push that task src's END will complete, kept until then. */
static sn_status serve_part(server *s, int src, const head *h, const unsigned char *msg) {
    reply *rp = &s->rep[src];
    int64_t first = h->applied;
    uint64_t count = h->bytes;
    if (first < 0 || count == 0 || count > (uint64_t)s->n_train ||
        first > (int64_t)(s->n_train - (int)count)) {
        char name[256];
        peer(s, src, name, sizeof name);
        return sn__fail(s->ctx, SN_ERR_FORMAT, "%s: a part from %s of variables %lld..+%llu "
                        "(this ps trains %d)", s->me, name, (long long)first,
                        (unsigned long long)count, s->n_train);
    }
    if (!rp->stage && !(rp->stage = malloc((s->toff[s->n_train] + 1) * sizeof(float))))
        return sn__fail(s->ctx, SN_ERR_NOMEM, "%s: out of memory", s->me);
    size_t lo = s->toff[first], hi = s->toff[first + (int64_t)count];
    memcpy(rp->stage + lo, msg + sizeof *h, (hi - lo) * sizeof(float));
    rp->parts++;
    return SN_OK;
}

static sn_status serve_message(server *s, int src, const unsigned char *msg) {
    head h;
    memcpy(&h, msg, sizeof h);
    char name[256];
    peer(s, src, name, sizeof name);
    if (h.magic != PS_MAGIC || src < s->num_ps || src >= s->size)
        return sn__fail(s->ctx, SN_ERR_FORMAT, "%s: a message from %s that is not a "
                        "parameter-server request (magic %#x)", s->me, name, h.magic);
    switch (h.op) {
    case OP_INIT:
        return serve_init(s, src, &h);
    case OP_PULL:
        if (!s->inited) {
            s->rep[src].pull_waiting = true;   /* answered when the chief's INIT comes */
            return SN_OK;
        }
        return reply_values(s, src, OP_PULL, false);
    case OP_PUSH:
        if (!s->inited)
            return sn__fail(s->ctx, SN_ERR_FORMAT, "%s: a push from %s before the chief's "
                            "variables", s->me, name);
        SN_TRY(serve_push(s, &h, (const float *)(msg + sizeof h),
                          (const float *)(msg + sizeof h) + s->toff[s->n_train]));
        if (h.flags & F_PULL) return reply_values(s, src, OP_PUSH, false);
        return SN_OK;
    case OP_PART:
        if (!s->inited)
            return sn__fail(s->ctx, SN_ERR_FORMAT, "%s: a push from %s before the chief's "
                            "variables", s->me, name);
        return serve_part(s, src, &h, msg);
    case OP_END:   /* the parts' push: its gradients are staged, its statistics here */
        if (!s->inited || (uint64_t)s->rep[src].parts != h.bytes ||
            (s->n_train > 0 && !s->rep[src].stage))
            return sn__fail(s->ctx, SN_ERR_FORMAT, "%s: the end of a push from %s after %d of "
                            "its %llu parts", s->me, name, s->rep[src].parts,
                            (unsigned long long)h.bytes);
        s->rep[src].parts = 0;
        SN_TRY(serve_push(s, &h, s->rep[src].stage, (const float *)(msg + sizeof h)));
        if (h.flags & F_PULL) return reply_values(s, src, OP_PUSH, false);
        return SN_OK;
    case OP_SNAPSHOT:
        if (!s->inited)
            return sn__fail(s->ctx, SN_ERR_FORMAT, "%s: a snapshot request from %s before "
                            "the chief's variables", s->me, name);
        return reply_values(s, src, OP_SNAPSHOT, true);
    case OP_STEP: {   /* the global step alone: a worker waiting to start */
        head rh = reply_head(s, OP_STEP);
        sn_status st;
        unsigned char *buf = reply_buffer(s, src, sizeof rh, &st);
        if (buf) {
            memcpy(buf, &rh, sizeof rh);
            reply_send(s, src, sizeof rh);
        }
        return st;
    }
    case OP_DONE:
        if (!s->done)
            logf_(s, "%s: %s ended the job at global step %lld (%lld pushes applied here)",
                  s->me, name, (long long)s->step, (long long)s->applied);
        s->done = true;
        return SN_OK;
    default:
        return sn__fail(s->ctx, SN_ERR_FORMAT, "%s: unknown request %u from %s", s->me, h.op,
                        name);
    }
}

sn_ps_params sn_ps_params_default(void) {
    sn_ps_params p;
    memset(&p, 0, sizeof p);
    p.num_ps = 1;
    return p;
}

/* Stopped (SIGTERM): first every reply still being sent is finished (reply_buffer waits
 * for it), then a goodbye goes on every live worker's reply slot, before the process ends.
 * A reply cut off by the exit is what left a worker waiting (this Gloo does not fail a
 * receive whose message has begun to arrive: the client's watchdog covers that for a ps
 * that dies, in about 1.5 s); with the replies finished, the worker's next (or waiting)
 * receive gets the goodbye (bad_reply) or sees the closed connection at once: 0 of 35
 * trials waited, against 3 of 14 before, each worker told within 0.25-0.8 s. */
static void say_bye(server *s) {
    char err[1024];
    for (int r = s->num_ps; r < s->size; r++) {
        pthread_mutex_lock(&s->mu);
        bool gone = s->gone[r];
        pthread_mutex_unlock(&s->mu);
        sn_status st;
        unsigned char *buf = gone ? NULL : reply_buffer(s, r, sizeof(head), &st);
        if (!buf) continue;
        head h = reply_head(s, OP_BYE);
        memcpy(buf, &h, sizeof h);
        reply_send(s, r, sizeof h);
    }
    /* a worker that is not receiving now leaves its message unsent: no need to wait long */
    for (int r = s->num_ps; r < s->size; r++)
        if (s->rep[r].pending && !s->rep[r].dead) {
            s->rep[r].pending = false;
            sn__gloo_wait_send(s->rep[r].b, 300, err, sizeof err);
        }
}

static void server_free(server *s) {
    if (s->watch_up) {
        pthread_mutex_lock(&s->mu);
        s->quit = true;
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->watch, NULL);
    }
    pthread_mutex_destroy(&s->mu);
    /* (a buffer freed with a receive still posted is dropped by Gloo, should a message
     * still come: Gloo holds it by a weak pointer) */
    for (int r = 0; s->rep && r < s->size; r++) {
        sn__gloo_buf_free(s->rep[r].b);
        free(s->rep[r].p);
        free(s->rep[r].stage);
    }
    free(s->toff);
    for (int i = 0; i < 2; i++) {
        sn__gloo_buf_free(s->rb[i]);
        free(s->req[i]);
    }
    free(s->rep);
    free(s->gone);
    sn_ema_free(s->ema);
    sn_optim_free(s->opt);
    sn_net_free(s->net);
    sn_graph_free(s->g);
    free(s->opt_name);
    free(s->scratch);
    shard_free(&s->sh);
}

sn_status sn_ps_serve(sn_dist *d, const sn_ps_params *p, sn_ps_stats *stats) {
    if (stats) memset(stats, 0, sizeof *stats);
    if (!d || !p) return SN_ERR_INVALID_ARG;
    sn_ctx *ctx = sn__dist_ctx(d);
    int rank = sn_dist_rank(d), size = sn_dist_size(d);
    if (p->num_ps < 1 || rank >= p->num_ps || size <= p->num_ps)
        return sn__fail(ctx, SN_ERR_INVALID_ARG, "sn_ps_serve: rank %d of %d with %d ps "
                        "tasks: a ps task is one of ranks 0..num_ps-1, and a worker is needed",
                        rank, size, p->num_ps);
    if (!ctx || ctx->dev.backend != SN__BACKEND_CPU)
        return sn__fail(ctx, SN_ERR_INVALID_ARG, "sn_ps_serve: a ps task runs on a CPU "
                        "context");
    server *s = calloc(1, sizeof *s);
    if (!s) return sn__fail(ctx, SN_ERR_NOMEM, "sn_ps_serve: out of memory");
    s->d = d;
    s->ctx = ctx;
    s->p = p;
    s->gloo = sn__dist_gloo(d);
    s->k = rank;
    s->num_ps = p->num_ps;
    s->size = size;
    snprintf(s->me, sizeof s->me, "%s", sn__dist_name(d));
    pthread_mutex_init(&s->mu, NULL);
    sn_status st = SN_OK;
    char err[1024] = "";
    if (!(s->rep = calloc((size_t)size, sizeof *s->rep)))
        st = sn__fail(ctx, SN_ERR_NOMEM, "sn_ps_serve: out of memory");
    /* before INIT: heads alone */
    s->req_cap = sizeof(head);
    for (int i = 0; st == SN_OK && i < 2; i++) {
        if (!(s->req[i] = malloc(s->req_cap)))
            st = sn__fail(ctx, SN_ERR_NOMEM, "sn_ps_serve: out of memory");
        else if (sn__gloo_buf_new(s->gloo, s->req[i], s->req_cap, &s->rb[i], err, sizeof err))
            st = sn__fail(ctx, SN_ERR_IO, "%s: Gloo: %s", s->me, err);
    }
    if (st == SN_OK) {
        if (pthread_create(&s->watch, NULL, watcher, s) == 0) s->watch_up = true;
        else st = sn__fail(ctx, SN_ERR_NOMEM, "sn_ps_serve: cannot start a thread");
    }
    int *srcs = malloc((size_t)size * sizeof *srcs);
    if ((!srcs || !(s->gone = calloc((size_t)size, sizeof *s->gone))) && st == SN_OK)
        st = sn__fail(ctx, SN_ERR_NOMEM, "sn_ps_serve: out of memory");
    /* Two receive buffers: the next message comes into one while the other's is served.
     * Before INIT, one at a time (INIT replaces them with bigger ones). */
    int cur = 0;
    bool posted[2] = {false, false};
    while (st == SN_OK) {
        if (!posted[cur]) {
            int r = post_request(s, s->rb[cur], srcs, err, sizeof err);
            if (r > 0) break;   /* nobody left */
            if (r < 0) {
                st = sn__fail(ctx, SN_ERR_IO, "%s: Gloo: %s", s->me, err);
                break;
            }
            posted[cur] = true;
        }
        int src = -1;
        int r = serve_wait(s, s->rb[cur], 0, &src, err, sizeof err);
        if (r > 0) break;   /* the watcher ended it */
        posted[cur] = false;
        if (r < 0) {
            /* the sender's connection failed mid-message: that task is gone; a fresh
             * buffer for the others */
            logf_(s, "%s: a request failed (%s); serving the others", s->me, err);
            sn__gloo_buf_free(s->rb[cur]);
            s->rb[cur] = NULL;
            if (sn__gloo_buf_new(s->gloo, s->req[cur], s->req_cap, &s->rb[cur], err,
                                 sizeof err))
                st = sn__fail(ctx, SN_ERR_IO, "%s: Gloo: %s", s->me, err);
            continue;
        }
        int other = cur ^ 1;
        bool was_inited = s->inited;
        if (was_inited && !posted[other]) {
            int r2 = post_request(s, s->rb[other], srcs, err, sizeof err);
            if (r2 < 0) {
                st = sn__fail(ctx, SN_ERR_IO, "%s: Gloo: %s", s->me, err);
                break;
            }
            posted[other] = r2 == 0;
        }
        st = serve_message(s, src, s->req[cur]);
        if (!was_inited && s->inited) posted[0] = posted[1] = false;   /* new buffers */
        if (was_inited) cur = other;
    }
    free(srcs);
    pthread_mutex_lock(&s->mu);
    int why = s->why;
    pthread_mutex_unlock(&s->mu);
    if (why == END_STOP) say_bye(s);
    if (st == SN_OK && why == END_PS0) {
        char ps0[256];
        peer(s, 0, ps0, sizeof ps0);
        st = sn__fail(ctx, SN_ERR_IO, "%s: %s, which holds the rendezvous, is gone (%s)",
                      s->me, ps0, sn__store_error(sn__dist_store(d)));
    } else if (st == SN_OK && why == END_LEFT && !s->done) {
        st = sn__fail(ctx, SN_ERR_IO, "%s: every worker ended before the chief ended the job "
                      "(global step %lld)", s->me, (long long)s->step);
    } else if (st == SN_OK && why == END_DEADLINE) {
        st = sn__fail(ctx, SN_ERR_TIMEOUT, "%s: the chief's variables did not come within "
                      "%.1f s", s->me, sn__dist_timeout_ms(d) / 1000.0);
    }
    if (stats) {
        stats->global_step = s->step;
        stats->pushes = s->applied;
        stats->pulls = s->pulls;
        stats->staleness_sum = s->stale_sum;
        stats->staleness_n = s->stale_n;
        stats->done = s->done;
        stats->variables = s->sh.n;
    }
    server_free(s);
    free(s);
    return st;
}

/* ======================================== a worker ======================================== */

typedef struct link {
    unsigned char *req, *rep;
    size_t req_cap, rep_cap;
    sn__gloo_buf *rq, *rp;
} link;

/* A bucket's share of ps k's trained variables (a CPU net's gradients go out as the
 * backward finishes each bucket): trained variables first .. first+count-1 of the shard,
 * its message at byte off of the ps's parts buffer. */
typedef struct part {
    int first, count;
    size_t off, bytes;
} part;

struct sn_ps_client {
    sn_dist *d;
    sn_ctx *ctx;
    sn__gloo *gloo;
    sn_net *net;
    sn_optim *opt;
    sn_ema *ema;             /* sn_ps_client_set_ema: the chief's moving averages */
    int num_ps, rank;
    shard *sh;
    link *io;
    float *host;             /* staging for one variable's statistics */
    sn_ps_stats st;
    sn_status broken;
    /* pushes in parts (CPU nets): the net's buckets, each bucket's part for each ps */
    int n_buckets;
    size_t *blo, *bhi;
    part *parts;             /* n_buckets x num_ps */
    unsigned char **pbuf;    /* per ps: every part's message, at its offset */
    sn__gloo_buf **pb;
    int *sent;               /* per ps: parts sent since the last END */
    bool parted;             /* this backward's gradients went out as parts */
    /* the watchdog: while a reply is awaited, the store's view of the ps tasks (below) */
    pthread_t dog;
    bool dog_up, dog_quit;
    pthread_mutex_t mu;
    sn__gloo_buf *waiting;   /* the reply buffer being waited on, or NULL */
    int gone;                /* a ps the store saw end (-1: none) */
};

/* The watchdog.  This Gloo fails a waiting receive when its peer's connection closes, but
 * not one whose message had begun to arrive (the operation has left the pair's pending
 * list): a ps that dies in the middle of a reply would leave the worker waiting for its
 * timeout.  Every 0.2 s while a reply is awaited, the rendezvous store says whether a ps
 * task's connection to it has closed (ps 0's own death: the store is gone); if so the wait
 * is aborted and the exchange names that ps. */
static void *watchdog(void *arg) {
    sn_ps_client *c = arg;
    int size = sn_dist_size(c->d);
    sn__rank_state *st = calloc((size_t)size, sizeof *st);
    for (;;) {
        struct timespec pause = {0, 200 * 1000000};
        nanosleep(&pause, NULL);
        pthread_mutex_lock(&c->mu);
        bool quit = c->dog_quit, waiting = c->waiting != NULL;
        pthread_mutex_unlock(&c->mu);
        if (quit) break;
        if (!waiting || !st) continue;
        int gone = -1;
        if (sn__store_status(sn__dist_store(c->d), size, st) != 0) gone = 0;
        for (int k = 0; gone < 0 && k < c->num_ps; k++)
            if (st[k].state == SN__RANK_GONE) gone = k;
        if (gone < 0) continue;
        pthread_mutex_lock(&c->mu);
        c->gone = gone;
        if (c->waiting) sn__gloo_abort_recv(c->waiting);
        pthread_mutex_unlock(&c->mu);
    }
    free(st);
    return NULL;
}

/* Waits for ps k's reply in b within tmo ms; 0, or a failure naming the ps. */
static sn_status wait_reply(sn_ps_client *c, int k, sn__gloo_buf *b, int tmo, const char *what);

/* Shard k's manifest fingerprint and reply buffer (its values, slots and shadows), again
 * after sn_ps_client_set_ema. */
static sn_status fit_shard(sn_ps_client *c, int k) {
    shard *s = &c->sh[k];
    link *l = &c->io[k];
    wbuf w = {0};   /* the manifest the chief sends this ps, fingerprinted */
    put_optim(&w, c->opt);
    put_ema(&w, c->ema ? sn__ema_decay(c->ema) : 0.0f);
    put_shard(&w, s);
    s->layout = fnv1a(w.p, w.n);
    free(w.p);
    if (w.oom) return sn__fail(c->ctx, SN_ERR_NOMEM, "sn_ps_client_new: out of memory");
    char err[1024];
    sn__gloo_buf_free(l->rp);
    l->rp = NULL;
    free(l->rep);
    l->rep_cap = sizeof(head) + (s->vals + s->slots + s->shadows) * sizeof(float);
    if (!(l->rep = malloc(l->rep_cap)))
        return sn__fail(c->ctx, SN_ERR_NOMEM, "sn_ps_client_new: out of memory");
    if (sn__gloo_buf_new(c->gloo, l->rep, l->rep_cap, &l->rp, err, sizeof err))
        return sn__fail(c->ctx, SN_ERR_IO, "%s: Gloo: %s", sn__dist_name(c->d), err);
    return SN_OK;
}

sn_status sn_ps_client_set_ema(sn_ps_client *c, sn_ema *ema) {
    if (!c || !ema || sn__ema_net(ema) != c->net) return SN_ERR_INVALID_ARG;
    if (c->ema || c->st.pulls)
        return sn__fail(c->ctx, SN_ERR_STATE, "sn_ps_client_set_ema: once, before the first "
                        "sn_ps_init or sn_ps_pull");
    c->ema = ema;
    int n = sn_ema_num_slots(ema);
    for (int k = 0; k < c->num_ps; k++) {
        shard *s = &c->sh[k];
        if (!(s->ema_idx = malloc((size_t)(s->n + 1) * sizeof(int))))
            return sn__fail(c->ctx, SN_ERR_NOMEM, "sn_ps_client_set_ema: out of memory");
        s->shadows = 0;
        for (int i = 0; i < s->n; i++) {
            s->ema_idx[i] = -1;
            for (int j = 0; j < n && s->ema_idx[i] < 0; j++) {
                float *p;
                size_t numel;
                int node;
                sn__ema_slot_mem(ema, j, &p, &numel, &node);
                if (node == s->v[i].node) {
                    s->ema_idx[i] = j;
                    s->v[i].kind |= PV_EMA;
                    s->shadows += numel;
                }
            }
        }
        SN_TRY(fit_shard(c, k));
    }
    return SN_OK;
}

sn_ps_stats sn_ps_client_stats(const sn_ps_client *c) {
    sn_ps_stats s;
    memset(&s, 0, sizeof s);
    return c ? c->st : s;
}

void sn_ps_client_free(sn_ps_client *c) {
    if (!c) return;
    if (c->dog_up) {
        pthread_mutex_lock(&c->mu);
        c->dog_quit = true;
        pthread_mutex_unlock(&c->mu);
        pthread_join(c->dog, NULL);
        pthread_mutex_destroy(&c->mu);
    }
    c->net->example_offset = 0;
    if (c->net->grad_hook) sn__net_set_grad_hook(c->net, NULL, NULL);
    for (int k = 0; c->pb && k < c->num_ps; k++) {
        sn__gloo_buf_free(c->pb[k]);
        free(c->pbuf[k]);
    }
    free(c->pb);
    free(c->pbuf);
    free(c->sent);
    free(c->parts);
    free(c->blo);
    free(c->bhi);
    for (int k = 0; c->io && k < c->num_ps; k++) {
        sn__gloo_buf_free(c->io[k].rq);
        sn__gloo_buf_free(c->io[k].rp);
        free(c->io[k].req);
        free(c->io[k].rep);
    }
    for (int k = 0; c->sh && k < c->num_ps; k++) shard_free(&c->sh[k]);
    free(c->io);
    free(c->sh);
    free(c->host);
    free(c);
}

/* The training batch norm that updates moving statistic `node`, or -1. */
static int bn_of(const sn_net *net, int node, unsigned *kind, float *decay, float *factor) {
    const sn_graph *g = net->g;
    for (int i = 0; i < net->n; i++) {
        const sn__node *n = &g->nodes[i];
        if (n->op != SN__OP_batch_norm || !n->p.bn.training || n->n_in < 3) continue;
        bool mean = n->in[n->n_in - 2] == node, var = n->in[n->n_in - 1] == node;
        if (!mean && !var) continue;
        int64_t C = net->dims[i][n->rank - 1];
        int64_t rows = (int64_t)(net->numel[i] / (size_t)(C ? C : 1));
        *kind = mean ? PV_MEAN : PV_VAR;
        *decay = n->p.bn.decay;
        *factor = rows > 1 ? (float)rows / (float)(rows - 1) : 1.0f;
        return i;
    }
    return -1;
}

static sn_status plan_parts(sn_ps_client *c);

static sn_status fit_shard(sn_ps_client *c, int k);

sn_status sn_ps_client_new(sn_dist *d, int num_ps, sn_net *net, sn_optim *opt,
                           sn_ps_client **out) {
    if (!d || !net || !out) return SN_ERR_INVALID_ARG;
    *out = NULL;
    sn_ctx *ctx = net->ctx;
    int rank = sn_dist_rank(d), size = sn_dist_size(d);
    if (num_ps < 1 || rank < num_ps || rank >= size)
        return sn__fail(ctx, SN_ERR_INVALID_ARG, "sn_ps_client_new: rank %d of %d with %d ps "
                        "tasks: the ps tasks are ranks 0..num_ps-1, a worker one of the rest",
                        rank, size, num_ps);
    sn_ps_client *c = calloc(1, sizeof *c);
    if (!c) return sn__fail(ctx, SN_ERR_NOMEM, "sn_ps_client_new: out of memory");
    c->d = d;
    c->ctx = ctx;
    c->gloo = sn__dist_gloo(d);
    c->net = net;
    c->opt = opt;
    c->num_ps = num_ps;
    c->rank = rank;
    c->sh = calloc((size_t)num_ps, sizeof *c->sh);
    c->io = calloc((size_t)num_ps, sizeof *c->io);
    const sn_graph *g = net->g;
    int nv = sn_graph_num_vars(g);
    bool *trained = calloc((size_t)net->n + 1, sizeof *trained);
    sn_status st = c->sh && c->io && trained ? SN_OK
                 : sn__fail(ctx, SN_ERR_NOMEM, "sn_ps_client_new: out of memory");
    for (int i = 0; st == SN_OK && opt && i < sn_optim_num_vars(opt); i++) {
        sn_node n = sn_graph_find(g, sn_optim_var_name(opt, i));
        if (n >= 0 && n < net->n) trained[n] = true;
    }
    for (int k = 0; st == SN_OK && k < num_ps; k++)
        if (!(c->sh[k].v = calloc((size_t)nv / (size_t)num_ps + 2, sizeof(pvar))))
            st = sn__fail(ctx, SN_ERR_NOMEM, "sn_ps_client_new: out of memory");
    size_t biggest = 0;
    /* replica_device_setter's round robin: global_step first (ps 0), then the variables */
    for (int i = 0; st == SN_OK && i < nv; i++) {
        sn_var_info vi;
        sn_graph_var(g, i, &vi);
        shard *s = &c->sh[(i + 1) % num_ps];
        pvar *v = &s->v[s->n++];
        if (!(v->name = malloc(strlen(vi.name) + 1))) {
            st = sn__fail(ctx, SN_ERR_NOMEM, "sn_ps_client_new: out of memory");
            break;
        }
        strcpy(v->name, vi.name);
        v->rank = vi.rank;
        memcpy(v->dims, vi.dims, sizeof v->dims);
        v->node = vi.node;
        v->numel = net->numel[vi.node];
        v->bn = -1;
        if (trained[vi.node]) v->kind = PV_TRAIN;
        else if (vi.flags & SN_VAR_MOVING)
            v->bn = bn_of(net, vi.node, &v->kind, &v->decay, &v->factor);
        if (v->numel > biggest) biggest = v->numel;
    }
    free(trained);
    if (st == SN_OK && !(c->host = malloc((biggest + 1) * sizeof(float))))
        st = sn__fail(ctx, SN_ERR_NOMEM, "sn_ps_client_new: out of memory");
    /* each shard's optimizer variables, in the ps's order: the non-slot ones where it
     * trains a variable, then the slots of its variables (opt keeps the same order) */
    int n_slots = opt ? sn_optim_num_slots(opt) : 0;
    for (int k = 0; st == SN_OK && k < num_ps; k++) {
        shard *s = &c->sh[k];
        shard_sizes(s);
        if (!(s->slot_idx = malloc((size_t)(n_slots + 1) * sizeof(int)))) {
            st = sn__fail(ctx, SN_ERR_NOMEM, "sn_ps_client_new: out of memory");
            break;
        }
        for (int i = 0; i < n_slots && s->trains; i++) {
            float *p;
            size_t numel;
            int node;
            sn__optim_slot_mem(opt, i, &p, &numel, &node);
            bool mine = node < 0;
            for (int j = 0; j < s->n && !mine; j++) mine = s->v[j].node == node;
            if (!mine) continue;
            s->slot_idx[s->n_slots++] = i;
            s->slots += numel;
        }
        link *l = &c->io[k];
        char err[1024];
        l->req_cap = sizeof(head) + (s->grads + s->stats) * sizeof(float);
        if (!(l->req = malloc(l->req_cap)))
            st = sn__fail(ctx, SN_ERR_NOMEM, "sn_ps_client_new: out of memory");
        else if (sn__gloo_buf_new(c->gloo, l->req, l->req_cap, &l->rq, err, sizeof err))
            st = sn__fail(ctx, SN_ERR_IO, "%s: Gloo: %s", sn__dist_name(d), err);
        if (st == SN_OK) st = fit_shard(c, k);
    }
    /* a CPU net's gradients go out in parts while the backward runs */
    if (st == SN_OK && opt && net->dev.backend == SN__BACKEND_CPU && net->mem.grads && !net->dist)
        st = plan_parts(c);
    c->gone = -1;
    if (st == SN_OK) {
        pthread_mutex_init(&c->mu, NULL);
        if (pthread_create(&c->dog, NULL, watchdog, c) == 0) {
            c->dog_up = true;
        } else {
            pthread_mutex_destroy(&c->mu);
            st = sn__fail(ctx, SN_ERR_NOMEM, "sn_ps_client_new: cannot start a thread");
        }
    }
    if (st != SN_OK) {
        sn_ps_client_free(c);
        return st;
    }
    /* worker w draws the dropout masks of examples w*B.. of a step, so that two workers at
     * the same global step do not share masks (worker 0, the chief: as local training) */
    net->example_offset = (int64_t)(rank - num_ps) * net->batch;
    *out = c;
    return SN_OK;
}

/* A failed exchange with ps k: named, and the client broken. */
static sn_status link_fail(sn_ps_client *c, int k, const char *what, const char *err) {
    char name[256];
    sn__dist_peer_name(c->d, k, name, sizeof name);
    bool timed_out = strstr(err, "imed out") != NULL;
    bool closed = strstr(err, "closed") || strstr(err, "reset") || strstr(err, "pipe") ||
                  strstr(err, "EOF");
    c->broken = timed_out ? SN_ERR_TIMEOUT : SN_ERR_IO;
    return sn__fail(c->ctx, c->broken, "%s: %s %s: %s (Gloo: %.300s)", sn__dist_name(c->d),
                    what, name, timed_out ? "it did not answer in time"
                    : closed ? "it ended (its connection closed)" : "it failed", err);
}

static head request_head(uint32_t op) {
    head h;
    memset(&h, 0, sizeof h);
    h.magic = PS_MAGIC;
    h.op = op;
    return h;
}

/* The net's hook: bucket lo..hi of the gradient block is final; each ps's share of it goes
 * out now, while the backward goes on.  The messages' memory stays untouched until the
 * push's END has been answered (sn_ps_push waits for their sends then). */
static sn_status push_part(void *arg, size_t lo, size_t hi) {
    sn_ps_client *c = arg;
    if (c->broken) return c->broken;
    int b = 0;
    while (b < c->n_buckets && (c->blo[b] != lo || c->bhi[b] != hi)) b++;
    if (b == c->n_buckets)
        return sn__fail(c->ctx, SN_ERR_STATE, "%s: a gradient bucket %zu..%zu the client does "
                        "not know", sn__dist_name(c->d), lo, hi);
    char err[1024];
    for (int k = 0; k < c->num_ps; k++) {
        const part *p = &c->parts[b * c->num_ps + k];
        if (!p->count) continue;
        const shard *s = &c->sh[k];
        unsigned char *m = c->pbuf[k] + p->off, *x = m + sizeof(head);
        head h = request_head(OP_PART);
        h.applied = p->first;
        h.bytes = (uint64_t)p->count;
        memcpy(m, &h, sizeof h);
        for (int i = 0, t = 0; i < s->n; i++) {
            const pvar *v = &s->v[i];
            if (!(v->kind & PV_TRAIN)) continue;
            if (t >= p->first && t < p->first + p->count) {
                memcpy(x, c->net->grad[v->node], v->numel * sizeof(float));
                x += v->numel * sizeof(float);
            }
            t++;
        }
        if (sn__gloo_send_at(c->pb[k], k, SLOT(SLOT_REQ), p->off, sizeof h + p->bytes, err,
                             sizeof err))
            return link_fail(c, k, "pushing the gradients to", err);
        c->sent[k]++;
    }
    c->parted = true;
    return SN_OK;
}

/* Each bucket's part for each ps: the shard's trained variables whose gradients lie in the
 * bucket (a run of consecutive ones: the block is in creation order, as the shard). */
static sn_status plan_parts(sn_ps_client *c) {
    sn_net *net = c->net;
    int P = c->num_ps;
    SN_TRY(sn__net_set_grad_hook(net, push_part, c));
    int nb = sn__net_buckets(net, NULL, NULL, 0);
    c->blo = malloc((size_t)(nb + 1) * sizeof *c->blo);
    c->bhi = malloc((size_t)(nb + 1) * sizeof *c->bhi);
    c->parts = calloc((size_t)nb * (size_t)P + 1, sizeof *c->parts);
    c->pbuf = calloc((size_t)P, sizeof *c->pbuf);
    c->pb = calloc((size_t)P, sizeof *c->pb);
    c->sent = calloc((size_t)P, sizeof *c->sent);
    if (!c->blo || !c->bhi || !c->parts || !c->pbuf || !c->pb || !c->sent)
        return sn__fail(c->ctx, SN_ERR_NOMEM, "sn_ps_client_new: out of memory");
    sn__net_buckets(net, c->blo, c->bhi, nb);
    c->n_buckets = nb;
    for (int k = 0; k < P; k++) {
        const shard *s = &c->sh[k];
        size_t off = 0;
        for (int b = 0; b < nb; b++) {
            part *p = &c->parts[b * P + k];
            int last = -1;
            p->first = -1;
            for (int i = 0, t = 0; i < s->n; i++) {
                const pvar *v = &s->v[i];
                if (!(v->kind & PV_TRAIN)) continue;
                size_t g = (size_t)((char *)net->grad[v->node] - (char *)net->grads);
                if (g >= c->blo[b] && g < c->bhi[b]) {
                    if (p->first < 0) p->first = t;
                    last = t;
                    p->count++;
                    p->bytes += v->numel * sizeof(float);
                }
                t++;
            }
            if (p->count && last - p->first + 1 != p->count)
                return sn__fail(c->ctx, SN_ERR_STATE, "sn_ps_client_new: bucket %d holds "
                                "variables of ps %d out of order", b, k);
            if (p->count) {
                p->off = off;
                off += sizeof(head) + p->bytes;
            }
        }
        char err[1024];
        if (!(c->pbuf[k] = malloc(off ? off : 1)))
            return sn__fail(c->ctx, SN_ERR_NOMEM, "sn_ps_client_new: out of memory");
        if (off && sn__gloo_buf_new(c->gloo, c->pbuf[k], off, &c->pb[k], err, sizeof err))
            return sn__fail(c->ctx, SN_ERR_IO, "%s: Gloo: %s", sn__dist_name(c->d), err);
    }
    return SN_OK;
}

/* Sends each ps its request (req_bytes[k] of io[k].req; 0: none) and, where want_reply,
 * receives its reply; waits for all of it within the group's timeout. */
static sn_status exchange(sn_ps_client *c, const size_t *req_bytes, bool want_reply,
                          const char *what) {
    char err[1024];
    int tmo = sn__dist_timeout_ms(c->d);
    double t0 = now_s();
    for (int k = 0; k < c->num_ps; k++) {
        link *l = &c->io[k];
        if (want_reply && sn__gloo_recv(l->rp, k, SLOT(SLOT_REP), err, sizeof err))
            return link_fail(c, k, what, err);
        if (req_bytes[k] &&
            sn__gloo_send(l->rq, k, SLOT(SLOT_REQ), req_bytes[k], err, sizeof err))
            return link_fail(c, k, what, err);
    }
    for (int k = 0; k < c->num_ps; k++) {
        link *l = &c->io[k];
        if (req_bytes[k] && sn__gloo_wait_send(l->rq, tmo, err, sizeof err))
            return link_fail(c, k, what, err);
        if (want_reply) SN_TRY(wait_reply(c, k, l->rp, tmo, what));
    }
    c->st.wait_secs += now_s() - t0;
    return SN_OK;
}

static sn_status wait_reply(sn_ps_client *c, int k, sn__gloo_buf *b, int tmo, const char *what) {
    char err[1024];
    pthread_mutex_lock(&c->mu);
    c->waiting = b;
    pthread_mutex_unlock(&c->mu);
    int r = sn__gloo_wait_recv(b, tmo, NULL, err, sizeof err);
    pthread_mutex_lock(&c->mu);
    c->waiting = NULL;
    int gone = c->gone;
    pthread_mutex_unlock(&c->mu);
    if (r == 1)   /* the watchdog: a ps ended */
        return link_fail(c, gone >= 0 ? gone : k, what, "the rendezvous saw its connection "
                         "closed");
    return r ? link_fail(c, k, what, err) : SN_OK;
}

/* A reply head from ps k that is not the answer to op: a ps that stopped (its goodbye)
 * or garbage.  The client is broken either way. */
static sn_status bad_reply(sn_ps_client *c, int k, const head *h, uint32_t op) {
    char name[256];
    sn__dist_peer_name(c->d, k, name, sizeof name);
    if (h->magic == PS_MAGIC && h->op == OP_BYE) {
        c->broken = SN_ERR_IO;
        return sn__fail(c->ctx, SN_ERR_IO, "%s: %s: it ended (stopped by a signal or its "
                        "stop callback) at global step %lld", sn__dist_name(c->d), name,
                        (long long)h->step);
    }
    c->broken = SN_ERR_FORMAT;
    return sn__fail(c->ctx, SN_ERR_FORMAT, "%s: a reply from %s that is not one (magic %#x, "
                    "op %u for %u)", sn__dist_name(c->d), name, h->magic, h->op, op);
}

/* The replies' heads checked, their values (and slots) into the net (and optimizer). */
static sn_status take_replies(sn_ps_client *c, uint32_t op, bool slots) {
    for (int k = 0; k < c->num_ps; k++) {
        const link *l = &c->io[k];
        const shard *s = &c->sh[k];
        head h;
        memcpy(&h, l->rep, sizeof h);
        if (h.magic != PS_MAGIC || h.op != op) return bad_reply(c, k, &h, op);
        if (h.layout != s->layout) {
            char name[256];
            sn__dist_peer_name(c->d, k, name, sizeof name);
            c->broken = SN_ERR_FORMAT;
            return sn__fail(c->ctx, SN_ERR_FORMAT, "%s: %s holds other variables or another "
                            "optimizer than this worker's (its layout %08x, ours %08x): every "
                            "task must run the same model, dataset and optimizer flags as the "
                            "chief", sn__dist_name(c->d), name, h.layout, s->layout);
        }
        const float *x = (const float *)(l->rep + sizeof h);
        for (int i = 0; i < s->n; i++) {
            const pvar *v = &s->v[i];
            SN_TRY(SN__CALL(c->net, to_dev, c->net->val[v->node], x, v->numel * sizeof(float)));
            x += v->numel;
        }
        for (int i = 0; slots && i < s->n_slots; i++) {
            float *p;
            size_t numel;
            int node;
            sn__optim_slot_mem(c->opt, s->slot_idx[i], &p, &numel, &node);
            SN_TRY(SN__CALL(c->net, to_dev, p, x, numel * sizeof(float)));
            x += numel;
        }
        for (int i = 0; slots && s->ema_idx && i < s->n; i++) {   /* the shadows */
            if (s->ema_idx[i] < 0) continue;
            float *p;
            size_t numel;
            int node;
            sn__ema_slot_mem(c->ema, s->ema_idx[i], &p, &numel, &node);
            SN_TRY(SN__CALL(c->net, to_dev, p, x, numel * sizeof(float)));
            x += numel;
        }
        if (k == 0) {
            c->st.global_step = h.step;
            c->st.staleness_sum = h.stale_sum;
            c->st.staleness_n = h.stale_n;
            c->st.done = (int)h.done;
        }
    }
    return SN_OK;
}

sn_status sn_ps_init(sn_ps_client *c) {
    if (!c) return SN_ERR_INVALID_ARG;
    if (c->broken) return c->broken;
    if (c->rank != c->num_ps)
        return sn__fail(c->ctx, SN_ERR_INVALID_ARG, "sn_ps_init: the chief's (rank %d), not "
                        "rank %d's", c->num_ps, c->rank);
    int64_t step = c->opt ? sn_optim_global_step(c->opt) : 0;
    sn_status st = SN_OK;
    char err[1024];
    int tmo = sn__dist_timeout_ms(c->d);
    for (int k = 0; k < c->num_ps && st == SN_OK; k++) {
        const shard *s = &c->sh[k];
        wbuf w = {0};
        put_optim(&w, c->opt);
        put_ema(&w, c->ema ? sn__ema_decay(c->ema) : 0.0f);
        put_shard(&w, s);
        size_t man = w.n;
        size_t bytes = man + (s->vals + s->slots + s->shadows) * sizeof(float);
        unsigned char *buf = w.oom ? NULL : realloc(w.p, bytes ? bytes : 1);
        if (!buf) {
            free(w.p);
            return sn__fail(c->ctx, SN_ERR_NOMEM, "sn_ps_init: out of memory");
        }
        float *x = (float *)(buf + man);   /* (may be unaligned for floats: copied bytewise) */
        size_t off = 0;
        for (int i = 0; i < s->n && st == SN_OK; i++) {
            st = SN__CALL(c->net, to_host, c->host, c->net->val[s->v[i].node],
                          s->v[i].numel * sizeof(float));
            memcpy((unsigned char *)x + off, c->host, s->v[i].numel * sizeof(float));
            off += s->v[i].numel * sizeof(float);
        }
        for (int i = 0; i < s->n_slots && st == SN_OK; i++) {
            float *p;
            size_t numel;
            int node;
            sn__optim_slot_mem(c->opt, s->slot_idx[i], &p, &numel, &node);
            float *tmp = malloc(numel * sizeof(float) + 1);
            if (!tmp) st = sn__fail(c->ctx, SN_ERR_NOMEM, "sn_ps_init: out of memory");
            else st = SN__CALL(c->net, to_host, tmp, p, numel * sizeof(float));
            if (st == SN_OK) memcpy((unsigned char *)x + off, tmp, numel * sizeof(float));
            free(tmp);
            off += numel * sizeof(float);
        }
        for (int i = 0; s->ema_idx && i < s->n && st == SN_OK; i++) {   /* the shadows */
            if (s->ema_idx[i] < 0) continue;
            float *p;
            size_t numel;
            int node;
            sn__ema_slot_mem(c->ema, s->ema_idx[i], &p, &numel, &node);
            st = SN__CALL(c->net, to_host, c->host, p, numel * sizeof(float));
            memcpy((unsigned char *)x + off, c->host, numel * sizeof(float));
            off += numel * sizeof(float);
        }
        head h = request_head(OP_INIT);
        h.step = step;
        h.bytes = bytes;
        memcpy(c->io[k].req, &h, sizeof h);
        sn__gloo_buf *b = NULL;
        if (st == SN_OK &&
            (sn__gloo_buf_new(c->gloo, buf, bytes, &b, err, sizeof err) ||
             sn__gloo_send(c->io[k].rq, k, SLOT(SLOT_REQ), sizeof h, err, sizeof err) ||
             sn__gloo_send(b, k, SLOT(SLOT_INIT), bytes, err, sizeof err) ||
             sn__gloo_wait_send(c->io[k].rq, tmo, err, sizeof err) ||
             sn__gloo_wait_send(b, tmo, err, sizeof err)))
            st = link_fail(c, k, "sending the variables to", err);
        sn__gloo_buf_free(b);
        free(buf);
    }
    return st;
}

/* A head alone (op) to every ps, and with want_reply their answers (not yet taken). */
static sn_status ask_all(sn_ps_client *c, uint32_t op, bool want_reply, const char *what) {
    if (!c) return SN_ERR_INVALID_ARG;
    if (c->broken) return c->broken;
    size_t *bytes = calloc((size_t)c->num_ps, sizeof *bytes);
    if (!bytes) return sn__fail(c->ctx, SN_ERR_NOMEM, "%s: out of memory", sn__dist_name(c->d));
    head h = request_head(op);
    for (int k = 0; k < c->num_ps; k++) {
        memcpy(c->io[k].req, &h, sizeof h);
        bytes[k] = sizeof h;
    }
    sn_status st = exchange(c, bytes, want_reply, what);
    free(bytes);
    return st;
}

sn_status sn_ps_pull(sn_ps_client *c) {
    sn_status st = ask_all(c, OP_PULL, true, "pulling the variables from");
    if (st == SN_OK) st = take_replies(c, OP_PULL, false);
    if (st == SN_OK) c->st.pulls++;
    return st;
}

/* ps 0's global step, and whether the chief has ended the job: a head each way. */
static sn_status ask_step(sn_ps_client *c) {
    char err[1024];
    link *l = &c->io[0];
    int tmo = sn__dist_timeout_ms(c->d);
    head h = request_head(OP_STEP);
    memcpy(l->req, &h, sizeof h);
    if (sn__gloo_recv(l->rp, 0, SLOT(SLOT_REP), err, sizeof err) ||
        sn__gloo_send(l->rq, 0, SLOT(SLOT_REQ), sizeof h, err, sizeof err) ||
        sn__gloo_wait_send(l->rq, tmo, err, sizeof err))
        return link_fail(c, 0, "asking the global step of", err);
    SN_TRY(wait_reply(c, 0, l->rp, tmo, "asking the global step of"));
    memcpy(&h, l->rep, sizeof h);
    if (h.magic != PS_MAGIC || h.op != OP_STEP) return bad_reply(c, 0, &h, OP_STEP);
    c->st.global_step = h.step;
    c->st.done = (int)h.done;
    return SN_OK;
}

sn_status sn_ps_wait_step(sn_ps_client *c, int64_t step) {
    if (!c) return SN_ERR_INVALID_ARG;
    if (c->broken) return c->broken;
    double tmo = 1e-3 * sn__dist_timeout_ms(c->d), t0 = now_s(), moved = t0;
    int64_t last = -1;
    for (;;) {
        SN_TRY(ask_step(c));
        if (c->st.global_step >= step || c->st.done) break;
        double now = now_s();
        if (c->st.global_step != last) {
            last = c->st.global_step;
            moved = now;
        } else if (tmo > 0 && now - moved > tmo) {
            char name[256];
            sn__dist_peer_name(c->d, c->num_ps, name, sizeof name);
            return sn__fail(c->ctx, SN_ERR_TIMEOUT, "%s: waiting for global step %lld, the "
                            "step has stayed at %lld for %.0f s: is the chief, %s, training?",
                            sn__dist_name(c->d), (long long)step, (long long)last, now - moved,
                            name);
        }
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    c->st.wait_secs += now_s() - t0;
    return SN_OK;
}

sn_status sn_ps_push(sn_ps_client *c, float lr, int pull) {
    if (!c) return SN_ERR_INVALID_ARG;
    if (c->broken) return c->broken;
    size_t *bytes = calloc((size_t)c->num_ps, sizeof *bytes);
    if (!bytes) return sn__fail(c->ctx, SN_ERR_NOMEM, "sn_ps_push: out of memory");
    sn_status st = SN_OK;
    /* the gradients went out in parts during the backward (CPU nets), or go now */
    bool parted = c->parted;
    head h = request_head(parted ? OP_END : OP_PUSH);
    h.flags = pull ? F_PULL : 0;
    h.step = c->st.global_step;
    h.lr = lr;
    for (int k = 0; k < c->num_ps && st == SN_OK; k++) {
        const shard *s = &c->sh[k];
        unsigned char *x = c->io[k].req + sizeof h;
        h.bytes = parted ? (uint64_t)c->sent[k] : 0;   /* END: the parts it completes */
        memcpy(c->io[k].req, &h, sizeof h);
        for (int i = 0; i < s->n && st == SN_OK && !parted; i++) {
            const pvar *v = &s->v[i];
            if (!(v->kind & PV_TRAIN)) continue;
            st = SN__CALL(c->net, to_host, x, c->net->grad[v->node], v->numel * sizeof(float));
            x += v->numel * sizeof(float);
        }
        for (int i = 0; i < s->n && st == SN_OK; i++) {
            const pvar *v = &s->v[i];
            if (!(v->kind & (PV_MEAN | PV_VAR))) continue;
            /* the batch's mean, or its variance times the Bessel factor, as the local
             * update feeds them to the same kernel */
            const float *aux = c->net->aux[v->bn] + (v->kind & PV_VAR ? v->numel : 0);
            st = SN__CALL(c->net, to_host, c->host, aux, v->numel * sizeof(float));
            if (v->kind & PV_VAR)
                for (size_t j = 0; j < v->numel; j++) c->host[j] = c->host[j] * v->factor;
            memcpy(x, c->host, v->numel * sizeof(float));
            x += v->numel * sizeof(float);
        }
        bytes[k] = (size_t)(x - c->io[k].req);
    }
    if (st == SN_OK) st = exchange(c, bytes, pull != 0, "pushing the gradients to");
    free(bytes);
    /* the parts' sends are done (their ps has read them before answering the END) */
    for (int k = 0; k < c->num_ps && parted; k++) {
        char err[1024];
        for (; st == SN_OK && c->sent[k] > 0; c->sent[k]--)
            if (sn__gloo_wait_send(c->pb[k], sn__dist_timeout_ms(c->d), err, sizeof err))
                st = link_fail(c, k, "pushing the gradients to", err);
        c->sent[k] = 0;
    }
    c->parted = false;
    if (st == SN_OK) c->st.pushes++;
    if (st == SN_OK && pull) {
        st = take_replies(c, OP_PUSH, false);
        if (st == SN_OK) c->st.pulls++;
    }
    return st;
}

sn_status sn_ps_snapshot(sn_ps_client *c) {
    sn_status st = ask_all(c, OP_SNAPSHOT, true, "reading the variables of");
    if (st == SN_OK) st = take_replies(c, OP_SNAPSHOT, true);
    if (st == SN_OK && c->opt) sn_optim_set_global_step(c->opt, c->st.global_step);
    return st;
}

sn_status sn_ps_done(sn_ps_client *c) {
    return ask_all(c, OP_DONE, false, "ending the job on");
}
