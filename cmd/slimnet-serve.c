/* slimnet-serve: a trained classifier behind TensorFlow Serving's REST API.
 *
 *   slimnet-serve --model_name=lenet --checkpoint_path=TRAIN_DIR [--port=8501]
 *
 * Endpoints (TF Serving's, for the one model it serves, named by --model_name unless
 * --servable_name says otherwise):
 *   GET  /v1/models/<name>                 version status
 *   GET  /v1/models/<name>/metadata        the signature: image_bytes -> classes,
 *                                          probabilities, logits
 *   POST /v1/models/<name>:predict         {"instances": [{"b64": ...}, ...]} (row) or
 *                                          {"inputs": ...} (columnar)
 *   POST /v1/models/<name>:classify        {"examples": [{"image/encoded": {"b64": ...}}]}
 *   POST /classify[?top_k=K]               the image file as the body (curl --data-binary)
 *   GET  /monitoring/prometheus/metrics    request counts, latency, batch sizes
 * Errors are {"error": "..."} with TF Serving's status codes.
 *
 * Threads: libmicrohttpd runs a thread per connection (bounded by --max_connections); a
 * request decodes and preprocesses its images on its own thread (sn_classifier_prepare) and
 * queues them; --num_batch_threads threads each take up to --max_batch_size queued images
 * (waiting at most --batch_timeout_micros for more once one is there) and run them as one
 * forward pass (sn_classify_batch) on the smallest of their nets, compiled for each of
 * --allowed_batch_sizes, that takes them; the rest of its batch is padding.  An image's
 * numbers may differ from its numbers alone in the last float32 digits, never its class
 * order beyond such a tie.  A watcher thread polls the train folder's
 * `checkpoint` file and loads a new checkpoint beside the one serving; requests move to it
 * when it is ready, and the old one is freed when its last batch is done.
 * SIGTERM / SIGINT: stop accepting, finish the requests in flight, exit 0. */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cjson/cJSON.h>
#include <microhttpd.h>
#include "../lib/slimnet.h"
#include "common/flags.h"
#include "common/tool.h"
#include "serve/api.h"

#define TOOL "slimnet-serve"

static const char usage_text[] =
    "usage: slimnet-serve --model_name=NAME --checkpoint_path=PATH [flags]\n"
    "Serves the classifier over TensorFlow Serving's REST API (see the README).";

/* ---- options ----------------------------------------------------------------------------- */

typedef struct options {
    const char *model_name, *servable_name, *checkpoint_path, *labels_dir, *device, *precision;
    const char *host, *preprocessing_name;
    int port, num_classes, labels_offset, fer_extra, image_size, channels, use_grayscale;
    int threads, top_k;
    int max_batch_size, batch_timeout_micros, num_batch_threads, max_enqueued_batches;
    const char *allowed_batch_sizes;
    int sizes[32], n_sizes;     /* the batch sizes compiled, ascending; the last is the max */
    int max_connections, idle_timeout_seconds, request_timeout_ms, max_images_per_request;
    int64_t max_body_bytes, max_image_pixels;
    double poll_seconds, drain_seconds, moving_average_decay;
} options;

/* ---- the model: one classifier per batch thread ---------------------------------------- */

typedef struct model {
    int n;                  /* batch threads: one context each */
    int n_sizes;            /* classifiers per thread: one per allowed batch size */
    sn_ctx **ctx;
    sn_classifier **c;      /* thread t's net for sizes[k] is c[t * n_sizes + k] */
    char prefix[PATH_MAX];  /* the checkpoint restored */
    int64_t version;        /* its global step (1 when it has none) */
    int refs;               /* users, under server.mu; the server's own reference counts */
} model;

/* ---- requests and the batch queue ------------------------------------------------------ */

typedef struct job {
    const float *x;         /* one prepared image */
    float *logits, *prob;   /* out: classes floats each */
    int64_t version;        /* out: of the model that ran it */
    int status;             /* out: 0, or 500 with err */
    char *err;              /* out: points into the request's error buffer */
    struct waiter *w;
    struct job *next;
} job;

typedef struct waiter {
    int left;               /* jobs not done, under server.mu */
} waiter;

/* ---- metrics ----------------------------------------------------------------------------- */

#define N_CODES 9
static const int metric_codes[N_CODES] = {200, 400, 404, 405, 408, 413, 500, 503, 0};
#define N_LAT 14
static const double lat_bounds[N_LAT] = {0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2,
                                         0.5, 1, 2, 5, 10, 30};
#define N_BATCH_BUCKETS 10
static const int batch_bounds[N_BATCH_BUCKETS] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 1024};

typedef struct metrics {    /* all under server.mu */
    uint64_t requests[ROUTE_COUNT][N_CODES];
    uint64_t lat[ROUTE_COUNT][N_LAT + 1];
    double lat_sum[ROUTE_COUNT];
    uint64_t lat_count[ROUTE_COUNT];
    uint64_t batch[N_BATCH_BUCKETS + 1];
    uint64_t batch_sum, batch_count;
    uint64_t reloads, reload_failures;
} metrics;

/* ---- connections ------------------------------------------------------------------------- */

/* One open connection, for the request timeout: libmicrohttpd's own timeout is an idle one
 * (a client sending a byte a second never trips it), and it hands a body to the request
 * handler only once it has it, so the handler cannot time a slow one out either.  A reaper
 * thread answers 408 and closes a connection whose request has not come in whole within
 * --request_timeout_ms of its start.  A kept-alive connection silent that long after an
 * answer is closed without a word (a 408 there could cross the client's next request). */
typedef struct conn_entry {
    MHD_socket fd;
    double since;           /* connection start, or the end of the last answer */
    int busy;               /* its request is complete and being answered */
    int in_request;         /* its headers are in */
    int served;             /* requests answered on it */
    int reaped;             /* the reaper closed it */
    struct conn_entry *prev, *next;
} conn_entry;

/* ---- the server -------------------------------------------------------------------------- */

typedef struct server {
    options o;
    pthread_mutex_t mu;
    pthread_cond_t queue_cv;    /* batch threads wait for jobs */
    pthread_cond_t done_cv;     /* requests wait for their jobs */
    pthread_cond_t idle_cv;     /* drain waits for in-flight requests */
    job *head, *tail;
    int queued, queue_cap;
    int reserved;               /* images prepared or being prepared, queued or running */
    int stopping;               /* batch threads and the watcher end */
    int draining;               /* new requests get 503 */
    int inflight;
    model *cur;                 /* the model serving; swapped by the watcher */
    pthread_cond_t watch_cv;    /* the watcher sleeps on it between polls */
    pthread_t *batch_threads, watcher;
    int watching;
    size_t numel;               /* floats per prepared image */
    int classes;
    metrics m;
    int wake_fd[2];             /* the signal handler's pipe */
    conn_entry *conns;          /* open connections, under mu */
    pthread_cond_t reap_cv;     /* the reaper sleeps on it */
    pthread_t reaper;
} server;

static int g_wake_fd = -1;      /* the signal handler's end of server.wake_fd */

static void on_signal(int sig) {
    (void)sig;
    if (g_wake_fd >= 0) {
        char c = 1;
        ssize_t r = write(g_wake_fd, &c, 1);
        (void)r;
    }
}

static void model_free(model *m) {
    if (!m) return;
    for (int i = 0; m->c && i < m->n * m->n_sizes; i++) sn_classifier_free(m->c[i]);
    for (int i = 0; m->ctx && i < m->n; i++) sn_ctx_free(m->ctx[i]);
    free(m->c);
    free(m->ctx);
    free(m);
}

/* Drops a reference (under mu); the last one frees the model (outside the lock: the caller
 * gets it back to free). */
static model *model_unref_locked(model *m) {
    return --m->refs == 0 ? m : NULL;
}

/* Loads the checkpoint at path (a prefix or folder) as a model of o->num_batch_threads
 * classifiers.  NULL on failure, the reason printed. */
static model *model_load(const options *o, const char *path) {
    model *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    m->n = o->num_batch_threads;
    m->n_sizes = o->n_sizes;
    m->ctx = calloc((size_t)m->n, sizeof *m->ctx);
    m->c = calloc((size_t)(m->n * m->n_sizes), sizeof *m->c);
    if (!m->ctx || !m->c) goto fail;
    for (int i = 0; i < m->n * m->n_sizes; i++) {
        int t = i / m->n_sizes;
        if (!m->ctx[t] && !(m->ctx[t] = tool_ctx(TOOL, o->device, 1, o->threads, 0))) goto fail;
        sn_classifier_params cp = sn_classifier_params_default();
        cp.model_name = o->model_name;
        cp.checkpoint_path = path;
        cp.labels_dir = o->labels_dir;
        cp.num_classes = o->num_classes;
        cp.labels_offset = o->labels_offset;
        cp.fer_extra_class = o->fer_extra;
        cp.preprocessing_name = o->preprocessing_name;
        cp.image_size = o->image_size;
        cp.use_moving_averages = o->moving_average_decay > 0;
        cp.channels = o->channels;
        cp.use_grayscale = o->use_grayscale;
        cp.batch_size = o->sizes[i % m->n_sizes];
        cp.precision = !strcmp(o->precision, "bf16") ? SN_PRECISION_BF16 : SN_PRECISION_FP32;
        if (sn_classifier_new(m->ctx[t], &cp, &m->c[i]) != SN_OK) {
            tool_fail(TOOL, m->ctx[t], path);
            goto fail;
        }
    }
    const sn_restore_report *r = sn_classifier_restore_report(m->c[0]);
    snprintf(m->prefix, sizeof m->prefix, "%s", r && r->checkpoint ? r->checkpoint : path);
    int64_t step = 0;
    int found = 0;
    if (tool_ckpt_int64(m->ctx[0], m->prefix, "global_step", &step, &found) != SN_OK || !found ||
        step < 1)
        step = 1;
    m->version = step;
    return m;
fail:
    model_free(m);
    return NULL;
}

/* ---- batching ---------------------------------------------------------------------------- */

static double now_s(void) { return tool_now(); }

static void abs_deadline(struct timespec *ts, double seconds_from_now) {
    clock_gettime(CLOCK_REALTIME, ts);
    double t = (double)ts->tv_sec + 1e-9 * (double)ts->tv_nsec + seconds_from_now;
    ts->tv_sec = (time_t)t;
    ts->tv_nsec = (long)((t - (double)ts->tv_sec) * 1e9);
}

typedef struct batch_arg {
    server *s;
    int index;
} batch_arg;

static void *batch_main(void *arg) {
    server *s = ((batch_arg *)arg)->s;
    int index = ((batch_arg *)arg)->index;
    free(arg);
    const options *o = &s->o;
    int B = o->max_batch_size;
    float *x = malloc((size_t)B * s->numel * sizeof *x);
    float *lg = malloc((size_t)B * (size_t)s->classes * sizeof *lg);
    float *pr = malloc((size_t)B * (size_t)s->classes * sizeof *pr);
    job **jobs = malloc((size_t)B * sizeof *jobs);
    if (!x || !lg || !pr || !jobs) {   /* at start, before anything is served */
        fprintf(stderr, TOOL ": out of memory for a batch of %d\n", B);
        exit(1);
    }
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->stopping && !s->head) pthread_cond_wait(&s->queue_cv, &s->mu);
        if (!s->head) break;   /* stopping, and nothing left to run */
        if (o->batch_timeout_micros > 0 && s->queued < B && !s->stopping && !s->draining) {
            struct timespec dl;
            abs_deadline(&dl, 1e-6 * o->batch_timeout_micros);
            while (s->queued < B && !s->stopping && !s->draining &&
                   pthread_cond_timedwait(&s->queue_cv, &s->mu, &dl) != ETIMEDOUT) {
            }
            if (!s->head) continue;   /* another thread took them */
        }
        int n = 0;
        while (s->head && n < B) {
            jobs[n++] = s->head;
            s->head = s->head->next;
        }
        if (!s->head) s->tail = NULL;
        s->queued -= n;
        if (s->head) pthread_cond_signal(&s->queue_cv);   /* more for another thread */
        model *m = s->cur;
        m->refs++;
        pthread_mutex_unlock(&s->mu);

        int status = 0;
        char why[512] = "";
        for (int i = 0; i < n; i++)
            memcpy(x + (size_t)i * s->numel, jobs[i]->x, s->numel * sizeof *x);
        int k = 0;   /* the smallest net that takes them: TF Serving's allowed_batch_sizes */
        while (o->sizes[k] < n) k++;
        if (sn_classify_batch(m->c[index * m->n_sizes + k], x, n, lg, pr) != SN_OK) {
            status = 500;
            snprintf(why, sizeof why, "%s", sn_ctx_errmsg(m->ctx[index]));
        }
        size_t nc = (size_t)s->classes;
        for (int i = 0; i < n; i++) {
            job *j = jobs[i];
            j->version = m->version;
            j->status = status;
            if (status) snprintf(j->err, 512, "%s", why);
            else {
                memcpy(j->logits, lg + i * nc, nc * sizeof *lg);
                memcpy(j->prob, pr + i * nc, nc * sizeof *pr);
            }
        }

        pthread_mutex_lock(&s->mu);
        model *dead = model_unref_locked(m);
        for (int i = 0; i < n; i++) jobs[i]->w->left--;
        int b = 0;
        while (b < N_BATCH_BUCKETS && n > batch_bounds[b]) b++;
        s->m.batch[b]++;
        s->m.batch_sum += (uint64_t)n;
        s->m.batch_count++;
        pthread_cond_broadcast(&s->done_cv);
        if (dead) {
            pthread_mutex_unlock(&s->mu);
            model_free(dead);
            pthread_mutex_lock(&s->mu);
        }
    }
    pthread_mutex_unlock(&s->mu);
    free(x);
    free(lg);
    free(pr);
    free(jobs);
    return NULL;
}

/* ---- the watcher: TF Serving's "latest version" policy --------------------------------- */

static void *watch_main(void *arg) {
    server *s = arg;
    const options *o = &s->o;
    char state[PATH_MAX + 16];
    snprintf(state, sizeof state, "%s/checkpoint", o->checkpoint_path);
    sn_ctx *ctx = tool_ctx(TOOL, "cpu", 0, 1, 0);
    int64_t seen_mtime = -1;
    pthread_mutex_lock(&s->mu);
    while (!s->stopping && ctx) {
        struct timespec dl;
        abs_deadline(&dl, o->poll_seconds);
        pthread_cond_timedwait(&s->watch_cv, &s->mu, &dl);   /* woken early only to stop */
        if (s->stopping) break;
        char cur_prefix[PATH_MAX];
        snprintf(cur_prefix, sizeof cur_prefix, "%s", s->cur->prefix);
        pthread_mutex_unlock(&s->mu);

        struct stat sb;
        int64_t mt = stat(state, &sb) == 0 ? (int64_t)sb.st_mtim.tv_sec * 1000000000 +
                                                 sb.st_mtim.tv_nsec : -1;
        char latest[PATH_MAX];
        model *fresh = NULL;
        int failed = 0;
        if (mt >= 0 && mt != seen_mtime &&
            sn_ckpt_latest(ctx, o->checkpoint_path, latest, sizeof latest) == SN_OK &&
            strcmp(latest, cur_prefix)) {
            fprintf(stderr, TOOL ": loading %s\n", latest);
            fresh = model_load(o, latest);
            failed = !fresh;
        }
        if (mt >= 0) seen_mtime = mt;

        pthread_mutex_lock(&s->mu);
        if (fresh) {
            model *old = s->cur;
            s->cur = fresh;
            fresh->refs = 1;
            s->m.reloads++;
            model *dead = model_unref_locked(old);
            fprintf(stderr, TOOL ": serving version %lld (%s)\n", (long long)fresh->version,
                    fresh->prefix);
            if (dead) {
                pthread_mutex_unlock(&s->mu);
                model_free(dead);
                pthread_mutex_lock(&s->mu);
            }
        } else if (failed) {
            s->m.reload_failures++;
            fprintf(stderr, TOOL ": keeping version %lld\n", (long long)s->cur->version);
        }
    }
    pthread_mutex_unlock(&s->mu);
    sn_ctx_free(ctx);
    return NULL;
}

/* ---- per-request state ------------------------------------------------------------------- */

typedef struct request {
    server *s;
    api_target t;
    char what[320];         /* "POST /v1/models/x:foo", for TF Serving's malformed message */
    conn_entry *conn;       /* its connection's entry */
    uint8_t *body;
    size_t len, cap;
    int too_big, answered, counted;
    double t0;
    int code;               /* the status answered, for the metrics */
} request;

static enum MHD_Result send_json(struct MHD_Connection *conn, request *r, int code, char *text) {
    if (!text) {
        code = 500;
        text = strdup("{\"error\":\"out of memory\"}");
        if (!text) return MHD_NO;
    }
    size_t n = strlen(text);
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(n, text, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", "application/json");
    r->code = code;
    enum MHD_Result ret = MHD_queue_response(conn, (unsigned)code, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result send_error(struct MHD_Connection *conn, request *r, int code,
                                  const char *msg) {
    return send_json(conn, r, code, api_error_json(msg));
}

/* "0.1234567", float's precision; null for NaN and infinities. */
static cJSON *num(double v) {
    if (!isfinite(v)) return cJSON_CreateNull();
    char b[32];
    snprintf(b, sizeof b, "%.7g", v);
    return cJSON_CreateRaw(b);
}

static cJSON *float_row(const float *v, int n) {
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; a && i < n; i++) cJSON_AddItemToArray(a, num((double)v[i]));
    return a;
}

static int argmax(const float *v, int n) {
    int b = 0;
    for (int i = 1; i < n; i++) b = v[i] > v[b] ? i : b;
    return b;
}

/* The k most probable classes of prob, most probable first, ties by lower id. */
static int top_k(const float *prob, int classes, int k, int *ids) {
    int m = k < classes ? k : classes;
    for (int j = 0; j < m; j++) {
        int best = -1;
        for (int i = 0; i < classes; i++) {
            int taken = 0;
            for (int q = 0; q < j; q++) taken |= ids[q] == i;
            if (!taken && (best < 0 || prob[i] > prob[best])) best = i;
        }
        ids[j] = best;
    }
    return m;
}

/* Runs n encoded images through the model: decode + preprocess here, the net in the batch
 * threads.  logits and prob receive n * classes floats; *version the model version that ran
 * the last of them.  Returns 0, or an HTTP status with the message in err. */
static int run_images(server *s, const api_images *im, float *logits, float *prob,
                      int64_t *version, char *err, size_t cap) {
    int n = im->n;
    size_t k = (size_t)s->classes;
    /* Prepared images cost numel floats each whatever their file's size: at most queue_cap
     * of them exist at once (being prepared, queued or run), else 503. */
    pthread_mutex_lock(&s->mu);
    int full = s->reserved + n > s->queue_cap;
    if (!full) s->reserved += n;
    int reserved = s->reserved;
    pthread_mutex_unlock(&s->mu);
    if (full) {
        snprintf(err, cap, "The batch scheduling queue to which this task was submitted is "
                 "full (%d images in the server, --max_enqueued_batches)", reserved);
        return 503;
    }
    float *x = malloc((size_t)n * s->numel * sizeof *x);
    job *jobs = calloc((size_t)n, sizeof *jobs);
    char *errs = calloc((size_t)n, 512);
    sn_ctx *ctx = tool_ctx(TOOL, "cpu", 0, 1, 0);
    int rc = 0;
    if (!x || !jobs || !errs || !ctx) {
        snprintf(err, cap, "out of memory");
        rc = 500;
    }
    /* The preprocessing depends on the flags only, not the checkpoint: any model will do. */
    pthread_mutex_lock(&s->mu);
    model *m = s->cur;
    m->refs++;
    pthread_mutex_unlock(&s->mu);
    for (int i = 0; !rc && i < n; i++) {
        sn_status st = sn_classifier_prepare(m->c[0], ctx, im->data[i], im->len[i],
                                             (uint64_t)s->o.max_image_pixels,
                                             x + (size_t)i * s->numel);
        if (st != SN_OK) {
            snprintf(err, cap, "image %d: %s", i, sn_ctx_errmsg(ctx));
            rc = st == SN_ERR_NOMEM ? 500 : 400;
        }
    }
    pthread_mutex_lock(&s->mu);
    model *dead = model_unref_locked(m);
    pthread_mutex_unlock(&s->mu);
    model_free(dead);
    sn_ctx_free(ctx);

    waiter w = {0};
    if (!rc) {
        pthread_mutex_lock(&s->mu);
        for (int i = 0; i < n; i++) {
            job *j = &jobs[i];
            j->x = x + (size_t)i * s->numel;
            j->logits = logits + (size_t)i * k;
            j->prob = prob + (size_t)i * k;
            j->err = errs + (size_t)i * 512;
            j->w = &w;
            if (s->tail) s->tail->next = j;
            else s->head = j;
            s->tail = j;
        }
        w.left = n;
        s->queued += n;
        pthread_cond_broadcast(&s->queue_cv);
        while (w.left > 0) pthread_cond_wait(&s->done_cv, &s->mu);
        pthread_mutex_unlock(&s->mu);
    }
    for (int i = 0; !rc && i < n; i++) {
        if (jobs[i].status) {
            snprintf(err, cap, "%s", jobs[i].err);
            rc = jobs[i].status;
        }
        *version = jobs[i].version;
    }
    pthread_mutex_lock(&s->mu);
    s->reserved -= n;
    pthread_mutex_unlock(&s->mu);
    free(x);
    free(jobs);
    free(errs);
    return rc;
}

/* ---- the endpoints ----------------------------------------------------------------------- */

static const char *model_name(const server *s) {
    return s->o.servable_name ? s->o.servable_name : s->o.model_name;
}

/* 404 unless the path names our model (and its current version, if it names one). */
static int check_model(server *s, const api_target *t, int64_t version, char *err,
                       size_t cap) {
    if (strcmp(t->model, model_name(s))) {
        snprintf(err, cap, "Servable not found for request: Latest(%.200s)", t->model);
        return 404;
    }
    if (t->version >= 0 && t->version != version) {
        snprintf(err, cap, "Servable not found for request: Specific(%.200s, %lld)", t->model,
                 (long long)t->version);
        return 404;
    }
    return 0;
}

static int64_t current_version(server *s) {
    pthread_mutex_lock(&s->mu);
    int64_t v = s->cur->version;
    pthread_mutex_unlock(&s->mu);
    return v;
}

static char *version_str(int64_t v, char *b, size_t cap) {
    snprintf(b, cap, "%lld", (long long)v);
    return b;
}

static char *status_json(server *s, int64_t v) {
    char vb[32];
    cJSON *o = cJSON_CreateObject();
    cJSON *list = cJSON_AddArrayToObject(o, "model_version_status");
    cJSON *e = cJSON_CreateObject();
    cJSON_AddStringToObject(e, "version", version_str(v, vb, sizeof vb));
    cJSON_AddStringToObject(e, "state", "AVAILABLE");
    cJSON *st = cJSON_AddObjectToObject(e, "status");
    cJSON_AddStringToObject(st, "error_code", "OK");
    cJSON_AddStringToObject(st, "error_message", "");
    cJSON_AddItemToArray(list, e);
    (void)s;
    char *text = cJSON_Print(o);
    cJSON_Delete(o);
    return text;
}

/* A TensorInfo of the signature: name, dtype and dims (-1 for the batch). */
static void tensor_info(cJSON *parent, const char *key, const char *dtype, int rank,
                        const int64_t *dims) {
    cJSON *t = cJSON_AddObjectToObject(parent, key);
    cJSON_AddStringToObject(t, "dtype", dtype);
    cJSON *shape = cJSON_AddObjectToObject(t, "tensor_shape");
    cJSON *dl = cJSON_AddArrayToObject(shape, "dim");
    for (int i = 0; i < rank; i++) {
        cJSON *d = cJSON_CreateObject();
        char b[32];
        snprintf(b, sizeof b, "%lld", (long long)dims[i]);
        cJSON_AddStringToObject(d, "size", b);
        cJSON_AddStringToObject(d, "name", "");
        cJSON_AddItemToArray(dl, d);
    }
    cJSON_AddBoolToObject(shape, "unknown_rank", 0);
    char name[64];
    snprintf(name, sizeof name, "%s:0", key);
    cJSON_AddStringToObject(t, "name", name);
}

static char *metadata_json(server *s, int64_t v) {
    char vb[32];
    cJSON *o = cJSON_CreateObject();
    cJSON *spec = cJSON_AddObjectToObject(o, "model_spec");
    cJSON_AddStringToObject(spec, "name", model_name(s));
    cJSON_AddStringToObject(spec, "signature_name", "");
    cJSON_AddStringToObject(spec, "version", version_str(v, vb, sizeof vb));
    cJSON *md = cJSON_AddObjectToObject(o, "metadata");
    cJSON *sd = cJSON_AddObjectToObject(cJSON_AddObjectToObject(md, "signature_def"),
                                        "signature_def");
    int64_t batch[1] = {-1}, bc[2] = {-1, s->classes};
    for (int i = 0; i < 2; i++) {
        cJSON *sig = cJSON_AddObjectToObject(sd, i ? "classify" : "serving_default");
        tensor_info(cJSON_AddObjectToObject(sig, "inputs"), i ? "inputs" : "image_bytes",
                    "DT_STRING", 1, batch);
        cJSON *out = cJSON_AddObjectToObject(sig, "outputs");
        if (i) {
            tensor_info(out, "classes", "DT_STRING", 2, bc);
            tensor_info(out, "scores", "DT_FLOAT", 2, bc);
        } else {
            tensor_info(out, "classes", "DT_INT64", 1, batch);
            tensor_info(out, "probabilities", "DT_FLOAT", 2, bc);
            tensor_info(out, "logits", "DT_FLOAT", 2, bc);
        }
        cJSON_AddStringToObject(sig, "method_name", i ? "tensorflow/serving/classify"
                                                      : "tensorflow/serving/predict");
    }
    char *text = cJSON_Print(o);
    cJSON_Delete(o);
    return text;
}

static const char *label_of(server *s, int id, char *buf, size_t cap) {
    pthread_mutex_lock(&s->mu);
    const char *l = sn_classifier_label(s->cur->c[0], id);
    snprintf(buf, cap, "%s", l ? l : "");
    pthread_mutex_unlock(&s->mu);
    if (!l) snprintf(buf, cap, "%d", id + s->o.labels_offset);
    return buf;
}

static char *predict_json(server *s, const api_images *im, const float *lg, const float *pr) {
    int k = s->classes;
    cJSON *o = cJSON_CreateObject();
    if (im->columnar) {
        cJSON *out = cJSON_AddObjectToObject(o, "outputs");
        cJSON *cls = cJSON_AddArrayToObject(out, "classes");
        cJSON *prob = cJSON_AddArrayToObject(out, "probabilities");
        cJSON *logits = cJSON_AddArrayToObject(out, "logits");
        for (int i = 0; i < im->n; i++) {
            cJSON_AddItemToArray(cls, cJSON_CreateNumber(argmax(pr + (size_t)i * k, k) +
                                                         s->o.labels_offset));
            cJSON_AddItemToArray(prob, float_row(pr + (size_t)i * k, k));
            cJSON_AddItemToArray(logits, float_row(lg + (size_t)i * k, k));
        }
    } else {
        cJSON *list = cJSON_AddArrayToObject(o, "predictions");
        for (int i = 0; i < im->n; i++) {
            cJSON *p = cJSON_CreateObject();
            cJSON_AddNumberToObject(p, "classes", argmax(pr + (size_t)i * k, k) +
                                                      s->o.labels_offset);
            cJSON_AddItemToObject(p, "probabilities", float_row(pr + (size_t)i * k, k));
            cJSON_AddItemToObject(p, "logits", float_row(lg + (size_t)i * k, k));
            cJSON_AddItemToArray(list, p);
        }
    }
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return text;
}

static char *classify_json(server *s, const api_images *im, const float *pr, int kk) {
    int k = s->classes;
    int *ids = malloc((size_t)k * sizeof *ids);
    cJSON *o = cJSON_CreateObject();
    cJSON *res = cJSON_AddArrayToObject(o, "result");
    for (int i = 0; ids && i < im->n; i++) {
        cJSON *row = cJSON_CreateArray();
        int m = top_k(pr + (size_t)i * k, k, kk, ids);
        for (int j = 0; j < m; j++) {
            char lb[256];
            cJSON *pair = cJSON_CreateArray();
            cJSON_AddItemToArray(pair, cJSON_CreateString(label_of(s, ids[j], lb, sizeof lb)));
            cJSON_AddItemToArray(pair, num((double)pr[(size_t)i * k + ids[j]]));
            cJSON_AddItemToArray(row, pair);
        }
        cJSON_AddItemToArray(res, row);
    }
    char *text = ids ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    free(ids);
    return text;
}

/* slimnet-classify --output_format=json's answer for one image, plus the version. */
static char *raw_json(server *s, const float *pr, int kk, int64_t v) {
    int k = s->classes;
    int *ids = malloc((size_t)k * sizeof *ids);
    cJSON *o = cJSON_CreateObject();
    char vb[32];
    cJSON_AddStringToObject(o, "model_version", version_str(v, vb, sizeof vb));
    cJSON *list = cJSON_AddArrayToObject(o, "predictions");
    int m = ids ? top_k(pr, k, kk, ids) : 0;
    for (int j = 0; j < m; j++) {
        cJSON *p = cJSON_CreateObject();
        cJSON_AddNumberToObject(p, "id", ids[j] + s->o.labels_offset);
        pthread_mutex_lock(&s->mu);
        const char *l = sn_classifier_label(s->cur->c[0], ids[j]);
        if (l) cJSON_AddStringToObject(p, "label", l);
        else cJSON_AddNullToObject(p, "label");
        pthread_mutex_unlock(&s->mu);
        cJSON_AddItemToObject(p, "probability", num((double)pr[ids[j]]));
        cJSON_AddItemToArray(list, p);
    }
    char *text = ids ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    free(ids);
    return text;
}

static char *metrics_text(server *s) {
    size_t cap = 1 << 16, used = 0;
    char *b = malloc(cap);
    if (!b) return NULL;
#define OUT(...)                                                                        \
    do {                                                                                \
        int w_ = snprintf(b + used, cap - used, __VA_ARGS__);                           \
        if (w_ > 0) used += (size_t)w_ < cap - used ? (size_t)w_ : cap - used - 1;       \
    } while (0)
    const char *mn = model_name(s);
    pthread_mutex_lock(&s->mu);
    metrics m = s->m;
    int64_t v = s->cur->version;
    int queued = s->queued;
    pthread_mutex_unlock(&s->mu);
    OUT("# TYPE :tensorflow:serving:request_count counter\n");
    for (int r = 0; r < ROUTE_COUNT; r++)
        for (int c = 0; c < N_CODES; c++)
            if (m.requests[r][c])
                OUT(":tensorflow:serving:request_count{model_name=\"%s\",API=\"%s\","
                    "entrypoint=\"REST\",code=\"%d\"} %llu\n", mn, api_route_name((api_route)r),
                    metric_codes[c], (unsigned long long)m.requests[r][c]);
    OUT("# TYPE :tensorflow:serving:request_latency histogram\n");
    for (int r = 0; r < ROUTE_COUNT; r++) {
        if (!m.lat_count[r]) continue;
        uint64_t cum = 0;
        for (int i = 0; i <= N_LAT; i++) {
            cum += m.lat[r][i];
            char le[32];
            if (i < N_LAT) snprintf(le, sizeof le, "%g", lat_bounds[i] * 1e6);
            else snprintf(le, sizeof le, "+Inf");
            OUT(":tensorflow:serving:request_latency_bucket{model_name=\"%s\",API=\"%s\","
                "entrypoint=\"REST\",le=\"%s\"} %llu\n", mn, api_route_name((api_route)r), le,
                (unsigned long long)cum);
        }
        OUT(":tensorflow:serving:request_latency_sum{model_name=\"%s\",API=\"%s\","
            "entrypoint=\"REST\"} %.0f\n", mn, api_route_name((api_route)r),
            m.lat_sum[r] * 1e6);
        OUT(":tensorflow:serving:request_latency_count{model_name=\"%s\",API=\"%s\","
            "entrypoint=\"REST\"} %llu\n", mn, api_route_name((api_route)r),
            (unsigned long long)m.lat_count[r]);
    }
    OUT("# TYPE :tensorflow:serving:batching_session:processed_batch_size histogram\n");
    uint64_t cum = 0;
    for (int i = 0; i <= N_BATCH_BUCKETS; i++) {
        cum += m.batch[i];
        char le[32];
        if (i < N_BATCH_BUCKETS) snprintf(le, sizeof le, "%d", batch_bounds[i]);
        else snprintf(le, sizeof le, "+Inf");
        OUT(":tensorflow:serving:batching_session:processed_batch_size_bucket{le=\"%s\"} %llu\n",
            le, (unsigned long long)cum);
    }
    OUT(":tensorflow:serving:batching_session:processed_batch_size_sum %llu\n",
        (unsigned long long)m.batch_sum);
    OUT(":tensorflow:serving:batching_session:processed_batch_size_count %llu\n",
        (unsigned long long)m.batch_count);
    OUT("# TYPE :tensorflow:serving:batching_session:queued_images gauge\n");
    OUT(":tensorflow:serving:batching_session:queued_images %d\n", queued);
    OUT("# TYPE :tensorflow:serving:model_version gauge\n");
    OUT(":tensorflow:serving:model_version{model_name=\"%s\"} %lld\n", mn, (long long)v);
    OUT("# TYPE :tensorflow:serving:model_reload_count counter\n");
    OUT(":tensorflow:serving:model_reload_count{model_name=\"%s\",status=\"OK\"} %llu\n", mn,
        (unsigned long long)m.reloads);
    OUT(":tensorflow:serving:model_reload_count{model_name=\"%s\",status=\"ERROR\"} %llu\n",
        mn, (unsigned long long)m.reload_failures);
#undef OUT
    return b;
}

/* The answer to a complete request. */
static enum MHD_Result dispatch(struct MHD_Connection *conn, request *r) {
    server *s = r->s;
    const api_target *t = &r->t;
    char err[1024] = "";
    int64_t v = current_version(s);
    switch (t->route) {
    case ROUTE_NONE:
        return send_error(conn, r, 404, "Not found: no such path; see GET /v1/models/<name>");
    case ROUTE_MALFORMED:
        snprintf(err, sizeof err, "Malformed request: %s", r->what);
        return send_error(conn, r, 400, err);
    case ROUTE_METRICS: {
        char *text = metrics_text(s);
        if (!text) return send_error(conn, r, 500, "out of memory");
        struct MHD_Response *resp =
            MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
        if (!resp) {
            free(text);
            return MHD_NO;
        }
        MHD_add_response_header(resp, "Content-Type", "text/plain; version=0.0.4");
        r->code = 200;
        enum MHD_Result ret = MHD_queue_response(conn, 200, resp);
        MHD_destroy_response(resp);
        return ret;
    }
    case ROUTE_STATUS:
    case ROUTE_METADATA:
    case ROUTE_PREDICT:
    case ROUTE_CLASSIFY:
    case ROUTE_REGRESS: {
        int rc = check_model(s, t, v, err, sizeof err);
        if (rc) return send_error(conn, r, rc, err);
        break;
    }
    default:
        break;
    }
    if (t->route == ROUTE_STATUS) return send_json(conn, r, 200, status_json(s, v));
    if (t->route == ROUTE_METADATA) return send_json(conn, r, 200, metadata_json(s, v));
    if (t->route == ROUTE_REGRESS)
        return send_error(conn, r, 400, "Expected regression signature method_name to be "
                          "tensorflow/serving/regress. Was: tensorflow/serving/predict");

    api_images im = {0};
    int rc = 0;
    int kk = s->o.top_k;
    if (t->route == ROUTE_PREDICT) {
        rc = api_parse_predict((const char *)r->body, r->len, s->o.max_images_per_request, &im,
                               err, sizeof err);
    } else if (t->route == ROUTE_CLASSIFY) {
        sn_ctx *ctx = tool_ctx(TOOL, "cpu", 0, 1, 0);
        rc = ctx ? api_parse_classify(ctx, (const char *)r->body, r->len,
                                      s->o.max_images_per_request, &im, err, sizeof err)
                 : 500;
        if (!ctx) snprintf(err, sizeof err, "out of memory");
        sn_ctx_free(ctx);
    } else {   /* ROUTE_RAW */
        const char *q = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "top_k");
        if (q) {
            char *end = NULL;
            long k = strtol(q, &end, 10);
            if (!*q || *end || k < 1 || k > 100000)
                return send_error(conn, r, 400, "top_k must be an integer in [1, 100000]");
            kk = (int)k;
        }
        if (r->len == 0) return send_error(conn, r, 400, "empty body: send the image file");
        im.n = 1;
        im.data = malloc(sizeof *im.data);
        im.len = malloc(sizeof *im.len);
        if (!im.data || !im.len) {
            free(im.data);
            free(im.len);
            return send_error(conn, r, 500, "out of memory");
        }
        im.data[0] = r->body;   /* borrowed: not freed through im */
        im.len[0] = r->len;
    }
    if (rc) return send_error(conn, r, rc, err);
    size_t k = (size_t)s->classes;
    float *lg = malloc((size_t)im.n * k * sizeof *lg);
    float *pr = malloc((size_t)im.n * k * sizeof *pr);
    int64_t ran = v;
    if (!lg || !pr) {
        rc = 500;
        snprintf(err, sizeof err, "out of memory");
    } else {
        rc = run_images(s, &im, lg, pr, &ran, err, sizeof err);
    }
    char *text = NULL;
    if (!rc) {
        if (t->route == ROUTE_PREDICT) text = predict_json(s, &im, lg, pr);
        else if (t->route == ROUTE_CLASSIFY) text = classify_json(s, &im, pr, kk);
        else text = raw_json(s, pr, kk, ran);
    }
    free(lg);
    free(pr);
    if (t->route == ROUTE_RAW) {
        free(im.data);
        free(im.len);
    } else {
        api_images_free(&im);
    }
    if (rc) return send_error(conn, r, rc, err);
    return send_json(conn, r, 200, text);
}

/* The request is being answered: the reaper leaves its connection alone.  0, or 1 when
 * the reaper has answered it already. */
static int mark_busy(request *r) {
    if (!r->conn) return 0;
    pthread_mutex_lock(&r->s->mu);
    int reaped = r->conn->reaped;
    r->conn->busy = 1;
    pthread_mutex_unlock(&r->s->mu);
    return reaped;
}

static enum MHD_Result too_big(struct MHD_Connection *conn, request *r) {
    char err[256];
    if (mark_busy(r)) return MHD_NO;
    snprintf(err, sizeof err, "Request body is larger than the limit of %lld bytes "
             "(--max_body_bytes)", (long long)r->s->o.max_body_bytes);
    r->answered = 1;
    return send_error(conn, r, 413, err);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls) {
    (void)version;
    server *s = cls;
    request *r = *con_cls;
    if (!r) {   /* the headers are in: set up, check what can be checked now */
        r = calloc(1, sizeof *r);
        if (!r) return MHD_NO;
        r->s = s;
        r->t0 = now_s();
        r->code = 500;
        *con_cls = r;
        api_route_parse(method, url, &r->t);
        snprintf(r->what, sizeof r->what, "%.16s %.300s", method, url);
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
        r->conn = ci ? ci->socket_context : NULL;
        if (r->conn) {
            pthread_mutex_lock(&s->mu);
            r->conn->in_request = 1;
            pthread_mutex_unlock(&s->mu);
        }
        pthread_mutex_lock(&s->mu);
        s->inflight++;
        r->counted = 1;
        int draining = s->draining;
        pthread_mutex_unlock(&s->mu);
        if (draining) return send_error(conn, r, 503, "Server is shutting down");
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                     MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoll(cl, NULL, 10) > s->o.max_body_bytes) r->too_big = 1;
        /* A client that waits for "100 Continue" (curl, for large bodies) gets the 413 before
         * it sends the body.  Any other is read to the end (into nothing) first: answering
         * and closing while it still sends would reset the connection, and the client would
         * lose the answer. */
        const char *expect = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                         MHD_HTTP_HEADER_EXPECT);
        if (r->too_big && expect && !strcasecmp(expect, "100-continue")) return too_big(conn, r);
        return MHD_YES;
    }
    if (*upload_data_size) {   /* a piece of the body */
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        /* (a request past --request_timeout_ms is the reaper's: an answer queued here,
         * before the body is in, would race the client's next bytes and be lost to the
         * reset that closing with unread input sends) */
        if (r->answered) return MHD_YES;   /* answered: discard the rest */
        if (r->len + n > (size_t)s->o.max_body_bytes) {
            r->too_big = 1;   /* answered at its end (or 408 at the request timeout) */
            return MHD_YES;
        }
        if (r->too_big) return MHD_YES;   /* discarded */
        if (r->len + n + 1 > r->cap) {
            size_t want = r->cap ? r->cap : 4096;
            while (want < r->len + n + 1) want *= 2;
            if (want > (size_t)s->o.max_body_bytes + 1) want = (size_t)s->o.max_body_bytes + 1;
            uint8_t *b = realloc(r->body, want);
            if (!b) {
                r->answered = 1;
                return send_error(conn, r, 500, "out of memory");
            }
            r->body = b;
            r->cap = want;
        }
        memcpy(r->body + r->len, upload_data, n);
        r->len += n;
        return MHD_YES;
    }
    if (r->answered) return MHD_YES;   /* already answered */
    if (r->too_big) return too_big(conn, r);
    if (r->body) r->body[r->len] = 0;
    if (mark_busy(r)) return MHD_NO;   /* the reaper answered it */
    return dispatch(conn, r);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
    (void)conn;
    (void)toe;
    server *s = cls;
    request *r = *con_cls;
    if (!r) return;
    double dt = now_s() - r->t0;
    pthread_mutex_lock(&s->mu);
    int reaped = 0;
    if (r->conn) {
        reaped = r->conn->reaped;   /* then counted by the reaper */
        r->conn->busy = 0;
        r->conn->in_request = 0;
        r->conn->served++;
        r->conn->since = now_s();
    }
    int c = 0;
    while (c < N_CODES - 1 && metric_codes[c] != r->code) c++;
    int route = r->t.route;
    if (!reaped) s->m.requests[route][c]++;
    int b = 0;
    while (b < N_LAT && dt > lat_bounds[b]) b++;
    s->m.lat[route][b]++;
    s->m.lat_sum[route] += dt;
    s->m.lat_count[route]++;
    if (r->counted && --s->inflight == 0) pthread_cond_broadcast(&s->idle_cv);
    pthread_mutex_unlock(&s->mu);
    free(r->body);
    free(r);
    *con_cls = NULL;
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe) {
    server *s = cls;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        conn_entry *e = calloc(1, sizeof *e);
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        *socket_context = e;
        if (!e || !ci) return;
        e->fd = ci->connect_fd;
        e->since = now_s();
        pthread_mutex_lock(&s->mu);
        e->next = s->conns;
        if (s->conns) s->conns->prev = e;
        s->conns = e;
        pthread_mutex_unlock(&s->mu);
    } else {   /* closed: libmicrohttpd closes the socket after this returns */
        conn_entry *e = *socket_context;
        if (!e) return;
        pthread_mutex_lock(&s->mu);
        if (e->prev) e->prev->next = e->next;
        else if (s->conns == e) s->conns = e->next;
        if (e->next) e->next->prev = e->prev;
        pthread_mutex_unlock(&s->mu);
        free(e);
        *socket_context = NULL;
    }
}

/* Every 100 ms: 408 and close for each connection past the request timeout whose request is
 * not complete.  The entry (and so the socket) stays valid while mu is held: the close
 * notification takes mu before libmicrohttpd closes the socket. */
static void *reaper_main(void *arg) {
    server *s = arg;
    double limit = 1e-3 * s->o.request_timeout_ms;
    char body[256], msg[512];
    snprintf(body, sizeof body, "{\"error\":\"Request timed out: not received whole within %d "
             "ms (--request_timeout_ms)\"}", s->o.request_timeout_ms);
    int n = snprintf(msg, sizeof msg, "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n"
                     "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                     strlen(body), body);
    pthread_mutex_lock(&s->mu);
    while (!s->stopping) {
        struct timespec dl;
        abs_deadline(&dl, 0.1);
        pthread_cond_timedwait(&s->reap_cv, &s->mu, &dl);
        double now = now_s();
        for (conn_entry *e = s->conns; e; e = e->next) {
            if (e->busy || e->reaped || now - e->since <= limit) continue;
            e->reaped = 1;
            if (e->in_request || !e->served) {
                ssize_t w = send(e->fd, msg, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
                (void)w;
                s->m.requests[ROUTE_NONE][4]++;   /* 408, as "other": the path may be unread */
            }
            shutdown(e->fd, SHUT_RDWR);
        }
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* ---- main -------------------------------------------------------------------------------- */

/* The listening address of --host/--port into *sa; 0 on success. */
static int resolve(const char *host, int port, struct sockaddr_storage *sa, socklen_t *len) {
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    int rc = getaddrinfo(host, ps, &hints, &res);
    if (rc != 0 || !res) {
        fprintf(stderr, TOOL ": --host=%s: %s\n", host, gai_strerror(rc));
        return -1;
    }
    memcpy(sa, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

/* o->sizes from --allowed_batch_sizes, or powers of two up to --max_batch_size.  0, or 2
 * after printing the error. */
static int batch_sizes(options *o) {
    o->n_sizes = 0;
    if (!o->allowed_batch_sizes) {
        for (int b = 1; b < o->max_batch_size; b *= 2) o->sizes[o->n_sizes++] = b;
        o->sizes[o->n_sizes++] = o->max_batch_size;
        return 0;
    }
    const char *p = o->allowed_batch_sizes;
    while (*p) {
        char *end = NULL;
        long v = strtol(p, &end, 10);
        if (end == p || v < 1 || v > o->max_batch_size || o->n_sizes == 32 ||
            (o->n_sizes && v <= o->sizes[o->n_sizes - 1]) || (*end && *end != ',')) {
            fprintf(stderr, TOOL ": --allowed_batch_sizes=%s: expected up to 32 ascending sizes "
                    "in [1, --max_batch_size], separated by commas\n", o->allowed_batch_sizes);
            return 2;
        }
        o->sizes[o->n_sizes++] = (int)v;
        p = *end ? end + 1 : end;
    }
    if (!o->n_sizes || o->sizes[o->n_sizes - 1] != o->max_batch_size) {
        fprintf(stderr, TOOL ": --allowed_batch_sizes=%s: the last size must be "
                "--max_batch_size (%d)\n", o->allowed_batch_sizes, o->max_batch_size);
        return 2;
    }
    return 0;
}

int main(int argc, char **argv) {
    tool_init(argv);
    static server srv;
    server *s = &srv;
    options *o = &s->o;
    o->device = "auto";
    o->precision = "fp32";
    o->host = "127.0.0.1";
    o->port = 8501;
    o->channels = 3;
    o->top_k = 5;
    o->max_batch_size = 8;
    o->batch_timeout_micros = 0;
    o->num_batch_threads = 1;
    o->max_enqueued_batches = 100;
    o->max_connections = 256;
    o->idle_timeout_seconds = 30;
    o->request_timeout_ms = 30000;
    o->max_images_per_request = 128;
    o->max_body_bytes = (int64_t)32 << 20;
    o->max_image_pixels = (int64_t)16 << 20;
    o->poll_seconds = 1;
    o->drain_seconds = 30;
    flag fl[] = {
        {"model_name", FLAG_STRING, &o->model_name, "network (required)", 0, 0, 0},
        {"checkpoint_path", FLAG_STRING, &o->checkpoint_path,
         "train folder (watched for new checkpoints) or checkpoint prefix (required)", 0, 0, 0},
        {"model_base_path", FLAG_STRING, &o->checkpoint_path,
         "alias of --checkpoint_path (TF Serving's name)", 0, "checkpoint_path", 0},
        {"servable_name", FLAG_STRING, &o->servable_name,
         "the name in /v1/models/<name>; None = --model_name", 0, 0, 0},
        {"labels_dir", FLAG_STRING, &o->labels_dir,
         "folder of labels.txt/info.json; None = the checkpoint's folder", 0, 0, 0},
        {"num_classes", FLAG_INT, &o->num_classes, "classes; 0 = from info.json/labels.txt", 0,
         0, "[0,)"},
        {"labels_offset", FLAG_INT, &o->labels_offset, "label = class id + offset", 0, 0,
         "[0,)"},
        {"fer_extra_class", FLAG_BOOL, &o->fer_extra, "fer: the vendor's num_class + 1 logits",
         0, 0, 0},
        {"preprocessing_name", FLAG_STRING, &o->preprocessing_name,
         "lenet, cifarnet, vgg or inception; None = from model_name", 0, 0, 0},
        {"eval_image_size", FLAG_INT, &o->image_size, "image size; 0 = the model's default", 0,
         0, "[0,8192]"},
        {"moving_average_decay", FLAG_DOUBLE, &o->moving_average_decay,
         "> 0: use the moving averages of the variables", 0, 0, "[0,1]"},
        {"channels", FLAG_INT, &o->channels, "channels images are decoded to: 3, or 1", 0, 0,
         0},
        {"use_grayscale", FLAG_BOOL, &o->use_grayscale,
         "the net was trained with --use_grayscale", 0, 0, 0},
        {"top_k", FLAG_INT, &o->top_k, "classes answered by :classify and /classify", 0, 0,
         "[1,)"},
        {"host", FLAG_STRING, &o->host, "address to listen on (0.0.0.0: every interface)", 0, 0,
         0},
        {"port", FLAG_INT, &o->port, "port (TF Serving's --rest_api_port; 0 = any free one)",
         0, 0, "[0,65535]"},
        {"rest_api_port", FLAG_INT, &o->port, "alias of --port", 0, "port", 0},
        {"device", FLAG_STRING, &o->device, "auto, cpu or cuda", 0, 0, 0},
        {"precision", FLAG_STRING, &o->precision, "fp32 or bf16 (CUDA)", 0, 0, 0},
        {"threads", FLAG_INT, &o->threads, "CPU threads of each batch thread; 0 = all cores",
         0, 0, "[0,4096]"},
        {"max_batch_size", FLAG_INT, &o->max_batch_size,
         "images per forward pass at most", 0, 0, "[1,4096]"},
        {"batch_timeout_micros", FLAG_INT, &o->batch_timeout_micros,
         "wait this long for a batch to fill; 0 = run what is queued at once", 0, 0,
         "[0,10000000]"},
        {"allowed_batch_sizes", FLAG_STRING, &o->allowed_batch_sizes,
         "batch sizes a net is compiled for, ascending, the last --max_batch_size; a batch "
         "runs on the smallest that takes it, padded.  None = 1, 2, 4, ... up to the max",
         0, 0, 0},
        {"num_batch_threads", FLAG_INT, &o->num_batch_threads,
         "forward passes run at once (nets of their own each)", 0, 0, "[1,64]"},
        {"max_enqueued_batches", FLAG_INT, &o->max_enqueued_batches,
         "images in the server at once (being prepared, queued or run), in batches of "
         "--max_batch_size; a request beyond it gets 503", 0, 0, "[1,1000000]"},
        {"max_connections", FLAG_INT, &o->max_connections, "open connections at most", 0, 0,
         "[1,100000]"},
        {"idle_timeout_seconds", FLAG_INT, &o->idle_timeout_seconds,
         "close a connection silent this long", 0, 0, "[1,86400]"},
        {"request_timeout_ms", FLAG_INT, &o->request_timeout_ms,
         "408 when a request's body takes longer than this", 0, 0, "[0,86400000]"},
        {"max_body_bytes", FLAG_INT64, &o->max_body_bytes, "413 for a larger body", 0, 0,
         "[1024,4294967296]"},
        {"max_image_pixels", FLAG_INT64, &o->max_image_pixels,
         "400 for an image of more pixels (height * width)", 0, 0, "[1,1073741824]"},
        {"max_images_per_request", FLAG_INT, &o->max_images_per_request,
         "instances/examples in one request at most", 0, 0, "[1,100000]"},
        {"file_system_poll_wait_seconds", FLAG_DOUBLE, &o->poll_seconds,
         "how often the train folder's checkpoint file is checked; 0 = never", 0, 0,
         "[0,86400]"},
        {"drain_timeout_seconds", FLAG_DOUBLE, &o->drain_seconds,
         "on SIGTERM, wait this long for requests in flight", 0, 0, "[0,3600]"},
    };
    int nfl = (int)(sizeof fl / sizeof fl[0]);
    int rc = flags_parse(TOOL, usage_text, fl, nfl, argc, argv, NULL, 0, NULL);
    if (rc) return rc == 1 ? 0 : rc;
    if (!o->model_name || !o->checkpoint_path) {
        fprintf(stderr, TOOL ": --model_name and --checkpoint_path are required (see --help)\n");
        return 2;
    }
    if (o->channels != 1 && o->channels != 3) {
        fprintf(stderr, TOOL ": --channels=%d: must be 1 or 3\n", o->channels);
        return 2;
    }
    if (strcmp(o->precision, "fp32") && strcmp(o->precision, "bf16")) {
        fprintf(stderr, TOOL ": --precision=%s: must be fp32 or bf16\n", o->precision);
        return 2;
    }
    if (strlen(model_name(s)) == 0 || strlen(model_name(s)) > 255 ||
        strpbrk(model_name(s), "/:")) {
        fprintf(stderr, TOOL ": model name '%s': must be 1-255 characters without '/' or ':'\n",
                model_name(s));
        return 2;
    }
    if ((rc = batch_sizes(o))) return rc;
    if ((rc = tool_check_model(TOOL, o->model_name))) return rc;
    struct sockaddr_storage sa;
    socklen_t salen = 0;
    if (resolve(o->host, o->port, &sa, &salen)) return 2;

    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->queue_cv, NULL);
    pthread_cond_init(&s->done_cv, NULL);
    pthread_cond_init(&s->idle_cv, NULL);
    pthread_cond_init(&s->watch_cv, NULL);
    pthread_cond_init(&s->reap_cv, NULL);
    s->queue_cap = o->max_enqueued_batches * o->max_batch_size;

    /* the first checkpoint: the folder's latest, or the prefix given */
    s->cur = model_load(o, o->checkpoint_path);
    if (!s->cur) return 1;
    s->cur->refs = 1;
    s->numel = sn_classifier_input_numel(s->cur->c[0]);
    s->classes = sn_classifier_num_classes(s->cur->c[0]);
    tool_print_restore(stderr, TOOL, sn_classifier_restore_report(s->cur->c[0]), 5);

    /* signals: a pipe the main thread sleeps on */
    if (pipe(s->wake_fd) != 0) return 1;
    g_wake_fd = s->wake_fd[1];
    struct sigaction sact;
    memset(&sact, 0, sizeof sact);
    sact.sa_handler = on_signal;
    sigaction(SIGTERM, &sact, NULL);
    sigaction(SIGINT, &sact, NULL);
    signal(SIGPIPE, SIG_IGN);

    s->batch_threads = calloc((size_t)o->num_batch_threads, sizeof *s->batch_threads);
    for (int i = 0; s->batch_threads && i < o->num_batch_threads; i++) {
        batch_arg *a = malloc(sizeof *a);
        if (!a) return 1;
        a->s = s;
        a->index = i;
        if (pthread_create(&s->batch_threads[i], NULL, batch_main, a) != 0) return 1;
    }
    struct stat sb;
    if (o->poll_seconds > 0 && stat(o->checkpoint_path, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        s->watching = pthread_create(&s->watcher, NULL, watch_main, s) == 0;
    }

    int reaping = o->request_timeout_ms > 0 &&
                  pthread_create(&s->reaper, NULL, reaper_main, s) == 0;
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                     MHD_USE_ITC | (sa.ss_family == AF_INET6 ? MHD_USE_IPv6 : 0);
    struct MHD_Daemon *d = MHD_start_daemon(
        flags, (uint16_t)o->port, NULL, NULL, on_request, s,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)o->max_connections,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)o->idle_timeout_seconds,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, s,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)64 * 1024,
        MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, TOOL ": cannot listen on %s port %d: %s\n", o->host, o->port,
                strerror(errno));
        return 1;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    int port = di ? di->port : o->port;
    printf(TOOL ": serving %s version %lld at http://%s%s%s:%d/v1/models/%s\n", o->model_name,
           (long long)s->cur->version, sa.ss_family == AF_INET6 ? "[" : "", o->host,
           sa.ss_family == AF_INET6 ? "]" : "", port, model_name(s));
    fflush(stdout);

    /* wait for SIGTERM / SIGINT */
    char c;
    while (read(s->wake_fd[0], &c, 1) < 0 && errno == EINTR) {
    }
    fprintf(stderr, TOOL ": shutting down: finishing the requests in flight\n");
    MHD_socket lfd = MHD_quiesce_daemon(d);   /* no new connections */
    pthread_mutex_lock(&s->mu);
    s->draining = 1;
    pthread_cond_broadcast(&s->queue_cv);   /* run what waits for a batch to fill */
    struct timespec dl;
    abs_deadline(&dl, o->drain_seconds);
    while (s->inflight > 0 && pthread_cond_timedwait(&s->idle_cv, &s->mu, &dl) != ETIMEDOUT) {
    }
    int left = s->inflight;
    pthread_mutex_unlock(&s->mu);
    if (left) fprintf(stderr, TOOL ": %d requests still open after %g s: closing them\n", left,
                      o->drain_seconds);
    MHD_stop_daemon(d);
    if (lfd != MHD_INVALID_SOCKET) close(lfd);

    pthread_mutex_lock(&s->mu);
    s->stopping = 1;
    pthread_cond_broadcast(&s->queue_cv);
    pthread_cond_broadcast(&s->watch_cv);
    pthread_cond_broadcast(&s->reap_cv);
    pthread_mutex_unlock(&s->mu);
    if (reaping) pthread_join(s->reaper, NULL);
    for (int i = 0; i < o->num_batch_threads; i++) pthread_join(s->batch_threads[i], NULL);
    if (s->watching) pthread_join(s->watcher, NULL);
    free(s->batch_threads);
    model_free(s->cur);
    fprintf(stderr, TOOL ": stopped\n");
    return 0;
}
