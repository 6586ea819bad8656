/* pipeline.c: the input pipeline, TFRecord files -> Examples -> images -> preprocessed batches.
 *
 * One reader thread makes the record stream: per epoch, files in a shuffled (or sorted)
 * order, a few interleaved, then a shuffle buffer; it parses each Example and checks its
 * label and image header, copies the encoded image into an item, gives it its stream
 * position k and queues it.  num_threads decode threads take items in any order, decode and
 * preprocess straight into their slot of their batch in a ring of queue_batches + 1 batches
 * (the one the caller holds plus the ready ones).  The caller takes batches in order.
 * Everything random is a pure function of (seed, epoch, counter) or (seed, k), so the
 * batches do not depend on the thread count or on timing.
 *
 * Positions and shards: the stream starts at position `start` (skip_batches * G +
 * skip_records, G = batch_size * num_shards the global batch); batch b (counted from the
 * start) is positions [start + b*G, start + (b+1)*G), of which this shard owns the
 * batch_size from start + b*G + shard_index * batch_size.  The reader makes the whole
 * stream, every shard alike, so that a record that takes no position (bad, see
 * take_record) shifts every shard's stream the same way; only the owned positions are
 * queued, the rest are dropped as soon as their position is known, undecoded.
 *
 * Flow control: the reader gives out record k only when its batch has a free ring slot, so
 * at most ring * bs items are ever queued and no decode thread ever waits for space.
 * One mutex guards the queue, the ring and the error; three condition variables wake the
 * decode threads (work), the reader (space) and the caller (ready).
 *
 * Each thread owns a private sn_ctx (without the log callback) for its error messages; the
 * caller's ctx only receives the message sn_pipeline_next returns.
 *
 * The ring's images are in memory the caller's device copies from directly (its host_alloc
 * kernel: page-locked on CUDA), so a batch goes to the GPU by DMA with no host copy; plain
 * malloc where that is refused. */
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "../sn_internal.h"

enum {
    INTERLEAVE_FILES = 4,       /* files read at once when shuffling (TF-slim's num_readers) */
    SHUFFLE_PER_BATCH = 20,     /* default shuffle buffer: 20 * the global batch (TF-slim) */
    DEFAULT_THREADS = 4,
    DEFAULT_QUEUE = 4,
    MAX_THREADS = 256,
    MAX_QUEUE = 1024
};

/* Streams of the counter-based generator. */
enum { RNG_FILES = 1, RNG_SHUFFLE = 2, RNG_IMAGE = 3 };

static uint64_t mix64(uint64_t x) { return sn__mix64(x + SN__GOLDEN64); }   /* splitmix64 */

/* The i-th draw of stream (tag, epoch) of seed. */
static uint64_t rng(uint64_t seed, uint64_t tag, uint64_t epoch, uint64_t i) {
    return mix64(mix64(mix64(seed ^ tag << 56) ^ epoch) + i);
}

uint64_t sn_pipeline_image_seed(uint64_t seed, int64_t k) {
    return rng(seed, RNG_IMAGE, 0, (uint64_t)k);
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* One good record on its way: the encoded image and what the reader learned about it. */
typedef struct item {
    int64_t seq;                /* stream position k */
    size_t file;                /* index in the file list */
    uint64_t offset;            /* of the record in its file */
    int32_t label;              /* after labels_offset */
    int h, w;                   /* from the image header */
    size_t len;
    uint8_t data[];
} item;

/* A ring slot: one batch being filled, ready, or held by the caller. */
typedef struct batch {
    int64_t index;              /* the batch it holds; -1: never used */
    int done;                   /* records finished, good or bad */
    int nbad;
    float *images;
    bool images_pinned;         /* images from the ctx's host_alloc (else malloc) */
    int32_t *labels;
    uint8_t *bad;               /* per slot: the image failed (skip_bad) */
} batch;

typedef struct worker {
    sn_pipeline *pl;
    pthread_t th;
    bool started;
    sn_ctx *ctx;
    uint8_t *buf;               /* decoded image, reused */
    size_t cap;
} worker;

struct sn_pipeline {
    sn_ctx *ctx;                /* the caller's */
    sn_pipeline_params p;
    char *pattern;              /* p.pattern points here */
    sn_file_list *files;
    int64_t bs;                 /* this shard's batch: batch_size */
    int64_t gbs;                /* the global batch: batch_size * num_shards */
    int64_t part;               /* this shard's first slot in a global batch */
    int64_t start;              /* the first position given out (skip_batches, skip_records) */
    size_t img_floats;          /* out_height * out_width * C' */
    int nring;
    batch *ring;

    pthread_mutex_t mu;
    pthread_cond_t work_cv, space_cv, ready_cv;
    atomic_int stop;

    /* under mu: the queue of items given out, not yet taken */
    item **queue;
    size_t qcap, qhead, qlen;
    /* under mu: the reader's progress */
    int64_t dispatched;         /* records with k < dispatched have been given out */
    bool reader_done;           /* the reader thread has finished (dispatched is final) */
    bool ended;                 /* the stream ended normally after `total` records */
    int64_t total;
    /* under mu: the first bad record in stream order (without skip_bad) */
    bool failed;
    sn_status err;
    int64_t err_seq;
    int64_t err_batch;          /* the batch holding err_seq (0 for one before the start) */
    char errmsg[SN_ERRMSG_LEN];
    /* under mu: the caller's side */
    int64_t next_batch;         /* the next batch to return, from 0 at the start */
    int64_t base;               /* lowest batch whose slot is not free */
    bool holding;               /* the caller holds batch next_batch - 1 */
    int64_t batches;
    double wait_seconds;

    /* counters the reader and decode threads bump */
    atomic_llong records, skipped, epoch;

    /* reader thread */
    pthread_t reader;
    bool reader_started;
    sn_ctx *rctx;
    sn_example *ex;
    item **shuf;                /* the shuffle buffer */
    size_t shuf_cap, shuf_fill;
    uint64_t shuf_draws;
    int64_t emitted;            /* stream positions handed out, skipped ones included */
    size_t *order;              /* this epoch's file order */
    sn_tfrecord_reader **cycle; /* open files of the interleave */
    size_t *cycle_file;

    worker *workers;
    int nworkers;
};

sn_pipeline_params sn_pipeline_params_default(void) {
    sn_pipeline_params p = {0};
    p.batch_size = 32;
    p.channels = 3;
    p.preprocess = sn_preprocess_params_default();
    p.shuffle = 1;
    return p;
}

/* The stream position of this shard's first record of batch b. */
static int64_t part_begin(const sn_pipeline *pl, int64_t b) {
    return pl->start + b * pl->gbs + pl->part;
}

/* Whether stream position k is this shard's, and if so its batch and slot.  The positions
 * before the start and those of the other shards are read and checked but never decoded. */
static bool locate(const sn_pipeline *pl, int64_t k, int64_t *b, int *slot) {
    if (k < pl->start) return false;
    int64_t j = (k - pl->start) % pl->gbs - pl->part;
    if (j < 0 || j >= pl->bs) return false;
    *b = (k - pl->start) / pl->gbs;
    *slot = (int)j;
    return true;
}

/* Records the first bad record in stream order; the caller of next() sees it when it
 * reaches that record's batch (every shard at the same batch for a record the reader
 * found: the readers all see the same stream).  Call with mu held. */
static void set_error_locked(sn_pipeline *pl, sn_status st, int64_t seq, const char *msg) {
    if (!pl->failed || seq < pl->err_seq) {
        pl->failed = true;
        pl->err = st;
        pl->err_seq = seq;
        pl->err_batch = seq < pl->start ? 0 : (seq - pl->start) / pl->gbs;
        snprintf(pl->errmsg, sizeof pl->errmsg, "%s", msg);
    }
    pthread_cond_broadcast(&pl->space_cv);
    pthread_cond_broadcast(&pl->ready_cv);
}

/* Records in batch b the caller will get: batch_size except the last of a finite run, where
 * this shard's part of the last global batch may be short or empty (0: the end). */
static int64_t batch_size_of(const sn_pipeline *pl, int64_t b) {
    if (!pl->ended) return pl->bs;
    int64_t left = pl->total - pl->start - b * pl->gbs - pl->part;   /* total may be < start */
    return left <= 0 ? 0 : left < pl->bs ? left : pl->bs;
}

/* ---- reader ----------------------------------------------------------------------------- */

/* Hands item it the next stream position and queues it (or drops it: a position before the
 * start or another shard's).  Returns false when the reader must stop (free, or an error
 * somewhere). */
static bool emit(sn_pipeline *pl, item *it) {
    int64_t k = pl->emitted++, b;
    int slot;
    if (!locate(pl, k, &b, &slot)) {
        free(it);
        return !atomic_load(&pl->stop);
    }
    it->seq = k;
    pthread_mutex_lock(&pl->mu);
    while (!atomic_load(&pl->stop) && !pl->failed && b >= pl->base + pl->nring)
        pthread_cond_wait(&pl->space_cv, &pl->mu);
    if (atomic_load(&pl->stop) || pl->failed) {
        pthread_mutex_unlock(&pl->mu);
        free(it);
        return false;
    }
    batch *s = &pl->ring[b % pl->nring];
    if (s->index != b) {   /* the slot's previous batch was released: b < base + nring */
        s->index = b;
        s->done = s->nbad = 0;
        memset(s->bad, 0, (size_t)pl->bs);
    }
    pl->queue[(pl->qhead + pl->qlen) % pl->qcap] = it;
    pl->qlen++;
    pl->dispatched = k + 1;
    pthread_cond_signal(&pl->work_cv);
    pthread_mutex_unlock(&pl->mu);
    return true;
}

/* A bad record met by the reader: skipped and counted, or the end of the stream.
 * Returns false when the reader must stop. */
static bool reader_bad(sn_pipeline *pl, sn_status st, const char *msg) {
    if (pl->p.skip_bad) {
        atomic_fetch_add(&pl->skipped, 1);
        return !atomic_load(&pl->stop);
    }
    pthread_mutex_lock(&pl->mu);
    set_error_locked(pl, st, pl->emitted, msg);
    pthread_mutex_unlock(&pl->mu);
    return false;
}

/* "path: record at offset N: <the reader ctx's message>" as a bad record. */
static bool record_bad(sn_pipeline *pl, sn_status st, size_t file, uint64_t offset) {
    char msg[SN_ERRMSG_LEN];
    snprintf(msg, sizeof msg, "%s: record at offset %llu: %s",
             sn_file_list_path(pl->files, file), (unsigned long long)offset,
             sn_ctx_errmsg(pl->rctx));
    return reader_bad(pl, st, msg);
}

/* Parses and checks one record; a good one goes through the shuffle buffer into the
 * stream.  Returns false when the reader must stop. */
static bool take_record(sn_pipeline *pl, const uint8_t *data, size_t len, size_t file,
                        uint64_t offset) {
    sn_ctx *rc = pl->rctx;
    sn_image_example img;
    sn_status st = sn_example_parse(pl->ex, data, len);
    if (st == SN_OK) st = sn_example_get_image(pl->ex, &img);
    if (st != SN_OK) return record_bad(pl, st, file, offset);
    int64_t label = 0;
    if (img.label < INT32_MIN || img.label > INT32_MAX ||
        (label = img.label - pl->p.labels_offset) < INT32_MIN || label > INT32_MAX)
        st = sn__fail(rc, SN_ERR_FORMAT, "label %lld out of range", (long long)img.label);
    else if (pl->p.num_classes > 0 && (label < 0 || label >= pl->p.num_classes))
        st = sn__fail(rc, SN_ERR_FORMAT, "label %lld (%lld after labels_offset %d) outside "
                      "[0, %d)", (long long)img.label, (long long)label, pl->p.labels_offset,
                      pl->p.num_classes);
    int h = 0, w = 0;
    if (st == SN_OK) st = sn_image_info(rc, img.encoded, img.encoded_len, NULL, &h, &w, NULL);
    if (st == SN_OK && (h <= 0 || w <= 0 ||
                        (uint64_t)h * (uint64_t)w > SN_IMAGE_DEFAULT_MAX_PIXELS))
        st = sn__fail(rc, SN_ERR_FORMAT, "image header declares %dx%d pixels, over the limit "
                      "of %llu pixels", w, h, (unsigned long long)SN_IMAGE_DEFAULT_MAX_PIXELS);
    if (st != SN_OK) return record_bad(pl, st, file, offset);
    item *it = malloc(sizeof *it + img.encoded_len);
    if (!it) {
        sn__fail(rc, SN_ERR_NOMEM, "out of memory (%zu bytes)", img.encoded_len);
        pthread_mutex_lock(&pl->mu);
        char msg[SN_ERRMSG_LEN];
        snprintf(msg, sizeof msg, "%s: record at offset %llu: out of memory",
                 sn_file_list_path(pl->files, file), (unsigned long long)offset);
        set_error_locked(pl, SN_ERR_NOMEM, pl->emitted, msg);
        pthread_mutex_unlock(&pl->mu);
        return false;
    }
    it->file = file;
    it->offset = offset;
    it->label = (int32_t)label;
    it->h = h;
    it->w = w;
    it->len = img.encoded_len;
    memcpy(it->data, img.encoded, img.encoded_len);
    if (pl->shuf_cap == 0) return emit(pl, it);
    if (pl->shuf_fill < pl->shuf_cap) {
        pl->shuf[pl->shuf_fill++] = it;
        return true;
    }
    /* as tf.data's shuffle: a random element of the full buffer leaves, the new one takes
     * its place */
    uint64_t r = rng(pl->p.seed, RNG_SHUFFLE, (uint64_t)atomic_load(&pl->epoch), pl->shuf_draws++);
    size_t i = (size_t)(r % pl->shuf_cap);
    item *out = pl->shuf[i];
    pl->shuf[i] = it;
    return emit(pl, out);
}

/* Empties the shuffle buffer into the stream at the end of an epoch. */
static bool drain(sn_pipeline *pl, uint64_t epoch) {
    while (pl->shuf_fill > 0) {
        uint64_t r = rng(pl->p.seed, RNG_SHUFFLE, epoch, pl->shuf_draws++);
        size_t i = (size_t)(r % pl->shuf_fill);
        item *out = pl->shuf[i];
        pl->shuf[i] = pl->shuf[--pl->shuf_fill];
        if (!emit(pl, out)) return false;
    }
    return true;
}

static void close_cycle(sn_pipeline *pl, size_t n) {
    for (size_t i = 0; i < n; i++) {
        sn_tfrecord_reader_close(pl->cycle[i]);
        pl->cycle[i] = NULL;
    }
}

/* Reads one epoch: the files in pl->order, `ncycle` at a time, one record from each in turn
 * (tf.data's interleave with block_length 1: a file that ends gives its place to the next
 * unopened one in the same turn).  Returns false when the reader must stop. */
static bool read_epoch(sn_pipeline *pl, size_t ncycle) {
    size_t nfiles = sn_file_list_count(pl->files), next = 0, open = 0, cur = 0;
    while (open > 0 || next < nfiles) {
        if (atomic_load(&pl->stop)) return false;
        sn_tfrecord_reader **slot = &pl->cycle[cur];
        if (!*slot) {
            if (next >= nfiles) {
                cur = (cur + 1) % ncycle;
                continue;
            }
            size_t f = pl->order[next++];
            sn_status st = sn_tfrecord_reader_open(pl->rctx, sn_file_list_path(pl->files, f),
                                                   SN_COMPRESSION_NONE, slot);
            if (st != SN_OK) {   /* gone since sn_pipeline_new's glob */
                if (st == SN_ERR_NOT_FOUND) st = SN_ERR_IO;
                if (!reader_bad(pl, st, sn_ctx_errmsg(pl->rctx))) return false;
                continue;
            }
            pl->cycle_file[cur] = f;
            open++;
        }
        uint64_t off = sn_tfrecord_reader_offset(*slot);
        const uint8_t *data;
        size_t len;
        sn_status st = sn_tfrecord_read(*slot, &data, &len);
        if (st == SN_OK) {
            atomic_fetch_add(&pl->records, 1);
            size_t f = pl->cycle_file[cur];
            cur = (cur + 1) % ncycle;
            if (!take_record(pl, data, len, f, off)) return false;
            continue;
        }
        /* the end of the file, or a break in it (the message names file and offset): a
         * file cannot be read past a bad frame, so its place goes to the next file */
        sn_tfrecord_reader_close(*slot);
        *slot = NULL;
        open--;
        if (st != SN_ERR_NOT_FOUND && !reader_bad(pl, st, sn_ctx_errmsg(pl->rctx))) return false;
    }
    return true;
}

static void *reader_main(void *arg) {
    sn_pipeline *pl = arg;
    size_t nfiles = sn_file_list_count(pl->files);
    size_t ncycle = pl->p.shuffle ? (nfiles < INTERLEAVE_FILES ? nfiles : INTERLEAVE_FILES) : 1;
    bool ok = true;
    for (uint64_t epoch = 0; ok && (pl->p.num_epochs == 0 || epoch < (uint64_t)pl->p.num_epochs);
         epoch++) {
        atomic_store(&pl->epoch, (long long)epoch);
        for (size_t i = 0; i < nfiles; i++) pl->order[i] = i;
        if (pl->p.shuffle)   /* Fisher-Yates from (seed, epoch) */
            for (size_t i = nfiles; i > 1; i--) {
                size_t j = (size_t)(rng(pl->p.seed, RNG_FILES, epoch, i) % i);
                size_t t = pl->order[i - 1];
                pl->order[i - 1] = pl->order[j];
                pl->order[j] = t;
            }
        pl->shuf_draws = 0;
        int64_t before = pl->emitted + (int64_t)pl->shuf_fill;
        ok = read_epoch(pl, ncycle);
        close_cycle(pl, ncycle);
        ok = ok && drain(pl, epoch);
        if (ok && pl->emitted == before && pl->p.num_epochs == 0) {
            sn__fail(pl->rctx, SN_ERR_NOT_FOUND, "'%s': epoch %llu has no usable record",
                     pl->p.pattern, (unsigned long long)epoch);
            pthread_mutex_lock(&pl->mu);
            set_error_locked(pl, SN_ERR_NOT_FOUND, pl->emitted, sn_ctx_errmsg(pl->rctx));
            pthread_mutex_unlock(&pl->mu);
            ok = false;
        }
    }
    for (size_t i = 0; i < pl->shuf_fill; i++) free(pl->shuf[i]);
    pl->shuf_fill = 0;
    pthread_mutex_lock(&pl->mu);
    if (ok) {
        pl->ended = true;
        pl->total = pl->emitted;
    }
    pl->reader_done = true;
    pthread_cond_broadcast(&pl->ready_cv);
    pthread_mutex_unlock(&pl->mu);
    return NULL;
}

/* ---- decode threads --------------------------------------------------------------------- */

/* Decodes and preprocesses one item into its slot; on failure fills msg. */
static sn_status process(worker *wk, const item *it, float *out, char *msg, size_t msglen) {
    sn_pipeline *pl = wk->pl;
    int c = pl->p.channels;
    size_t need = (size_t)it->h * (size_t)it->w * (size_t)c;   /* bounded by the reader */
    sn_status st = SN_OK;
    if (need > wk->cap) {
        uint8_t *nb = realloc(wk->buf, need);
        if (!nb) st = sn__fail(wk->ctx, SN_ERR_NOMEM, "out of memory (%zu bytes)", need);
        else wk->buf = nb, wk->cap = need;
    }
    sn_image_params ip = sn_image_params_default();
    ip.channels = c;
    int h, w, cc;
    if (st == SN_OK)
        st = sn_image_decode_into(wk->ctx, it->data, it->len, &ip, wk->buf, wk->cap, &h, &w, &cc);
    if (st == SN_OK)
        st = sn_preprocess(wk->ctx, &pl->p.preprocess, wk->buf, h, w, cc, NULL,
                           sn_pipeline_image_seed(pl->p.seed, it->seq), out);
    if (st != SN_OK)
        snprintf(msg, msglen, "%s: record at offset %llu: %s",
                 sn_file_list_path(pl->files, it->file), (unsigned long long)it->offset,
                 sn_ctx_errmsg(wk->ctx));
    return st;
}

static void *worker_main(void *arg) {
    worker *wk = arg;
    sn_pipeline *pl = wk->pl;
    char msg[SN_ERRMSG_LEN];
    pthread_mutex_lock(&pl->mu);
    for (;;) {
        while (!atomic_load(&pl->stop) && pl->qlen == 0)
            pthread_cond_wait(&pl->work_cv, &pl->mu);
        if (atomic_load(&pl->stop)) break;
        item *it = pl->queue[pl->qhead];
        pl->qhead = (pl->qhead + 1) % pl->qcap;
        pl->qlen--;
        pthread_mutex_unlock(&pl->mu);

        int64_t b = 0;
        int j = 0;
        (void)locate(pl, it->seq, &b, &j);   /* queued items are always this shard's */
        batch *s = &pl->ring[b % pl->nring];   /* ours until done: the caller waits for it */
        s->labels[j] = it->label;
        sn_status st = process(wk, it, s->images + (size_t)j * pl->img_floats, msg, sizeof msg);
        int64_t seq = it->seq;
        free(it);

        pthread_mutex_lock(&pl->mu);
        if (st != SN_OK) {
            if (pl->p.skip_bad) {
                s->bad[j] = 1;
                s->nbad++;
                atomic_fetch_add(&pl->skipped, 1);
            } else {
                set_error_locked(pl, st, seq, msg);
            }
        }
        if (++s->done == batch_size_of(pl, b)) pthread_cond_broadcast(&pl->ready_cv);
        else if (pl->failed) pthread_cond_broadcast(&pl->ready_cv);
    }
    pthread_mutex_unlock(&pl->mu);
    return NULL;
}

/* ---- the caller's side ------------------------------------------------------------------ */

/* With mu held: the error can be reported, i.e. every record of the error's batch that was
 * given out has been processed, so no earlier bad record can still turn up. */
static bool error_ready(const sn_pipeline *pl) {
    if (!pl->reader_done) return false;
    int64_t b = pl->err_batch;
    int64_t lo = part_begin(pl, b);   /* this shard's records of b: [lo, lo + bs) */
    int64_t hi = pl->dispatched < lo + pl->bs ? pl->dispatched : lo + pl->bs;
    if (hi <= lo) return true;
    const batch *s = &pl->ring[b % pl->nring];
    return s->index == b && s->done == hi - lo;
}

/* Replaces each failed image by the nearest good one of the batch (skip_bad). */
static void fill_bad(sn_pipeline *pl, batch *s, int n) {
    for (int j = 0; j < n; j++) {
        if (!s->bad[j]) continue;
        int src = -1;
        for (int d = 1; d < n && src < 0; d++) {
            if (j - d >= 0 && !s->bad[j - d]) src = j - d;
            else if (j + d < n && !s->bad[j + d]) src = j + d;
        }
        memcpy(s->images + (size_t)j * pl->img_floats, s->images + (size_t)src * pl->img_floats,
               pl->img_floats * sizeof(float));
        s->labels[j] = s->labels[src];
    }
}

sn_status sn_pipeline_next(sn_pipeline *pl, const float **images, const int32_t **labels,
                           int *n) {
    if (!pl) return SN_ERR_INVALID_ARG;
    if (!images || !labels || !n)
        return sn__fail(pl->ctx, SN_ERR_INVALID_ARG, "pipeline_next: NULL argument");
    *images = NULL;
    *labels = NULL;
    *n = 0;
    double t0 = now();
    pthread_mutex_lock(&pl->mu);
    if (pl->holding) {   /* the caller is done with the batch it held */
        pl->holding = false;
        pl->base = pl->next_batch;
        pthread_cond_broadcast(&pl->space_cv);
    }
    batch *s = NULL;
    int64_t size = 0;
    for (;;) {
        int64_t b = pl->next_batch;
        bool at_error = pl->failed && b >= pl->err_batch;
        if (at_error && error_ready(pl)) {
            char msg[SN_ERRMSG_LEN];
            sn_status st = pl->err;
            snprintf(msg, sizeof msg, "%s", pl->errmsg);
            pl->wait_seconds += now() - t0;
            pthread_mutex_unlock(&pl->mu);
            return sn__fail(pl->ctx, st, "%s", msg);
        }
        size = batch_size_of(pl, b);
        if (!at_error && size == 0) break;   /* the end: n = 0 */
        s = &pl->ring[b % pl->nring];
        if (!at_error && s->index == b && s->done == size) {
            if (s->nbad < size) break;
            if (pl->gbs == pl->bs) {
                pl->next_batch++;   /* every image failed: the batch is dropped */
                pl->base = pl->next_batch;
                pthread_cond_broadcast(&pl->space_cv);
            } else {
                /* a shard that dropped a batch would be a step ahead of the others for the
                 * rest of the run (a hang or a mismatch in synchronous training): stop */
                int64_t k0 = part_begin(pl, b);
                char msg[SN_ERRMSG_LEN];
                snprintf(msg, sizeof msg, "pipeline: shard %d of %d: every image of its batch "
                         "(stream records %lld to %lld) failed to decode; a sharded pipeline "
                         "cannot drop a batch without putting the shards out of step",
                         pl->p.shard_index, pl->p.num_shards, (long long)k0,
                         (long long)(k0 + size - 1));
                set_error_locked(pl, SN_ERR_FORMAT, k0, msg);
                continue;
            }
        }
        s = NULL;
        if (pl->next_batch == b) pthread_cond_wait(&pl->ready_cv, &pl->mu);
    }
    if (s) {
        if (s->nbad) fill_bad(pl, s, (int)size);
        pl->next_batch++;
        pl->holding = true;
        pl->batches++;
        *images = s->images;
        *labels = s->labels;
        *n = (int)size;
    }
    pl->wait_seconds += now() - t0;
    pthread_mutex_unlock(&pl->mu);
    return SN_OK;
}

sn_pipeline_stats sn_pipeline_get_stats(const sn_pipeline *cpl) {
    sn_pipeline_stats st = {0};
    if (!cpl) return st;
    sn_pipeline *pl = (sn_pipeline *)cpl;   /* only to lock */
    pthread_mutex_lock(&pl->mu);
    st.batches = pl->batches;
    st.wait_seconds = pl->wait_seconds;
    pthread_mutex_unlock(&pl->mu);
    st.records = atomic_load(&pl->records);
    st.skipped = atomic_load(&pl->skipped);
    st.epoch = atomic_load(&pl->epoch);
    return st;
}

/* ---- create and free -------------------------------------------------------------------- */

void sn_pipeline_free(sn_pipeline *pl) {
    if (!pl) return;
    atomic_store(&pl->stop, 1);
    pthread_mutex_lock(&pl->mu);
    pthread_cond_broadcast(&pl->work_cv);
    pthread_cond_broadcast(&pl->space_cv);
    pthread_cond_broadcast(&pl->ready_cv);
    pthread_mutex_unlock(&pl->mu);
    if (pl->reader_started) pthread_join(pl->reader, NULL);
    for (int i = 0; i < pl->nworkers; i++) {
        worker *wk = &pl->workers[i];
        if (wk->started) pthread_join(wk->th, NULL);
        free(wk->buf);
        sn_ctx_free(wk->ctx);
    }
    free(pl->workers);
    for (size_t i = 0; i < pl->qlen; i++) free(pl->queue[(pl->qhead + i) % pl->qcap]);
    free(pl->queue);
    for (int i = 0; pl->ring && i < pl->nring; i++) {
        if (pl->ring[i].images_pinned)
            (void)pl->ctx->k->host_free(&pl->ctx->dev, pl->ring[i].images);
        else
            free(pl->ring[i].images);
        free(pl->ring[i].labels);
        free(pl->ring[i].bad);
    }
    free(pl->ring);
    if (pl->cycle) close_cycle(pl, sn_file_list_count(pl->files));
    free(pl->cycle);
    free(pl->cycle_file);
    free(pl->order);
    free(pl->shuf);
    sn_example_free(pl->ex);
    sn_ctx_free(pl->rctx);
    sn_file_list_free(pl->files);
    free(pl->pattern);
    pthread_cond_destroy(&pl->work_cv);
    pthread_cond_destroy(&pl->space_cv);
    pthread_cond_destroy(&pl->ready_cv);
    pthread_mutex_destroy(&pl->mu);
    free(pl);
}

static sn_status check_params(sn_ctx *ctx, const sn_pipeline_params *p) {
    const char *bad = NULL;
    if (!p->pattern) bad = "pattern is NULL";
    else if (p->batch_size <= 0) bad = "batch_size must be > 0";
    else if (p->channels != 1 && p->channels != 3) bad = "channels must be 1 or 3";
    else if (p->preprocess.out_height <= 0 || p->preprocess.out_width <= 0)
        bad = "preprocess.out_height and out_width must be > 0";
    else if (p->shuffle_buffer < 0) bad = "shuffle_buffer must be >= 0";
    else if (p->num_epochs < 0) bad = "num_epochs must be >= 0";
    else if (p->num_threads < 0 || p->num_threads > MAX_THREADS)
        bad = "num_threads must be in [0, 256]";
    else if (p->queue_batches < 0 || p->queue_batches > MAX_QUEUE)
        bad = "queue_batches must be in [0, 1024]";
    else if (p->num_classes < 0) bad = "num_classes must be >= 0";
    else if (p->num_shards < 0) bad = "num_shards must be >= 0";
    else if (p->num_shards > INT_MAX / p->batch_size)
        bad = "num_shards too large: the global batch batch_size * num_shards must fit an int";
    else if (p->skip_records < 0) bad = "skip_records must be >= 0";
    if (bad) return sn__fail(ctx, SN_ERR_INVALID_ARG, "pipeline: %s", bad);
    int shards = p->num_shards > 1 ? p->num_shards : 1;
    if (p->shard_index < 0 || p->shard_index >= shards)
        return sn__fail(ctx, SN_ERR_INVALID_ARG, "pipeline: shard_index %d outside [0, %d) "
                        "(num_shards %d)", p->shard_index, shards, p->num_shards);
    /* the start plus one global batch must fit: positions up to there are computed */
    int64_t global = (int64_t)p->batch_size * shards;
    if (p->skip_batches < 0 || p->skip_batches > INT64_MAX / global - 1)
        return sn__fail(ctx, SN_ERR_INVALID_ARG, "pipeline: skip_batches %lld out of range "
                        "(global batch %lld)", (long long)p->skip_batches, (long long)global);
    if (p->skip_records > INT64_MAX - global - p->skip_batches * global)
        return sn__fail(ctx, SN_ERR_INVALID_ARG, "pipeline: skip_records %lld out of range "
                        "(after skip_batches %lld of %lld records)", (long long)p->skip_records,
                        (long long)p->skip_batches, (long long)global);
    return SN_OK;
}

/* A private context for one thread: CPU, no log callback (the library never calls the
 * user's callback from its own threads). */
static sn_status thread_ctx(sn_ctx *ctx, sn_ctx **out) {
    sn_ctx_params cp = sn_ctx_params_default();
    cp.threads = 1;
    cp.seed = ctx->p.seed;
    sn_status st = sn_ctx_new(&cp, out);
    if (st != SN_OK) {
        sn_ctx_free(*out);
        *out = NULL;
        return sn__fail(ctx, st, "pipeline: cannot create a thread context");
    }
    return SN_OK;
}

sn_status sn_pipeline_new(sn_ctx *ctx, const sn_pipeline_params *p, sn_pipeline **out) {
    if (!out || !p) return sn__fail(ctx, SN_ERR_INVALID_ARG, "pipeline_new: NULL argument");
    *out = NULL;
    SN_TRY(check_params(ctx, p));
    sn_file_list *files;
    SN_TRY(sn_tfrecord_files(ctx, p->pattern, &files));
    sn_pipeline *pl = calloc(1, sizeof *pl);
    if (!pl) {
        sn_file_list_free(files);
        return sn__fail(ctx, SN_ERR_NOMEM, "pipeline: out of memory");
    }
    pl->ctx = ctx;
    pl->p = *p;
    pl->p.pattern = pl->pattern = strdup(p->pattern);
    pl->files = files;
    pl->bs = p->batch_size;
    pl->gbs = pl->bs * (p->num_shards > 1 ? p->num_shards : 1);
    pl->part = (int64_t)p->shard_index * pl->bs;
    pl->start = p->skip_batches * pl->gbs + p->skip_records;
    pl->next_batch = pl->base = 0;
    pl->dispatched = pl->start;
    pl->nworkers = p->num_threads ? p->num_threads : DEFAULT_THREADS;
    pl->nring = (p->queue_batches ? p->queue_batches : DEFAULT_QUEUE) + 1;
    pl->shuf_cap = !p->shuffle ? 0
                 : p->shuffle_buffer ? (size_t)p->shuffle_buffer
                 : (size_t)SHUFFLE_PER_BATCH * (size_t)pl->gbs;   /* the same on every shard */
    atomic_init(&pl->stop, 0);
    atomic_init(&pl->records, 0);
    atomic_init(&pl->skipped, 0);
    atomic_init(&pl->epoch, 0);
    pthread_mutex_init(&pl->mu, NULL);
    pthread_cond_init(&pl->work_cv, NULL);
    pthread_cond_init(&pl->space_cv, NULL);
    pthread_cond_init(&pl->ready_cv, NULL);

    int oc = p->preprocess.use_grayscale ? 1 : p->channels;
    size_t floats, ring_floats, nfiles = sn_file_list_count(files);
    bool ok = sn__mul_size((size_t)p->preprocess.out_height, (size_t)p->preprocess.out_width,
                           &floats) &&
              sn__mul_size(floats, (size_t)oc, &pl->img_floats) &&
              sn__mul_size(pl->img_floats, (size_t)pl->bs, &ring_floats) &&
              ring_floats < SIZE_MAX / sizeof(float) &&
              sn__mul_size((size_t)pl->bs, (size_t)pl->nring, &pl->qcap);
    if (!ok) {
        sn_pipeline_free(pl);
        return sn__fail(ctx, SN_ERR_INVALID_ARG, "pipeline: batch of %d x %dx%dx%d is too large",
                        p->batch_size, p->preprocess.out_height, p->preprocess.out_width, oc);
    }
    pl->ring = calloc((size_t)pl->nring, sizeof *pl->ring);
    pl->queue = malloc(pl->qcap * sizeof *pl->queue);
    pl->workers = calloc((size_t)pl->nworkers, sizeof *pl->workers);
    pl->order = malloc(nfiles * sizeof *pl->order);
    pl->cycle = calloc(nfiles, sizeof *pl->cycle);
    pl->cycle_file = calloc(nfiles, sizeof *pl->cycle_file);
    pl->shuf = malloc((pl->shuf_cap ? pl->shuf_cap : 1) * sizeof *pl->shuf);
    ok = pl->pattern && pl->ring && pl->queue && pl->workers && pl->order && pl->cycle &&
         pl->cycle_file && pl->shuf;
    for (int i = 0; ok && i < pl->nring; i++) {
        batch *s = &pl->ring[i];
        s->index = -1;
        void *im = NULL;
        if (ctx->k && ctx->k->host_alloc && ctx->k->host_free &&
            ctx->k->host_alloc(&ctx->dev, &im, ring_floats * sizeof(float)) == SN_OK && im)
            s->images_pinned = true;
        else
            im = malloc(ring_floats * sizeof(float));
        s->images = im;
        s->labels = calloc((size_t)pl->bs, sizeof *s->labels);
        s->bad = calloc((size_t)pl->bs, 1);
        ok = s->images && s->labels && s->bad;
    }
    if (!ok) {
        sn_pipeline_free(pl);
        return sn__fail(ctx, SN_ERR_NOMEM, "pipeline: out of memory for %d batches of %d x %zu "
                        "floats", pl->nring, p->batch_size, pl->img_floats);
    }
    sn_status st = thread_ctx(ctx, &pl->rctx);
    if (st == SN_OK) st = sn_example_new(pl->rctx, &pl->ex);
    for (int i = 0; st == SN_OK && i < pl->nworkers; i++) {
        pl->workers[i].pl = pl;
        st = thread_ctx(ctx, &pl->workers[i].ctx);
    }
    for (int i = 0; st == SN_OK && i < pl->nworkers; i++) {
        if (pthread_create(&pl->workers[i].th, NULL, worker_main, &pl->workers[i]) != 0)
            st = sn__fail(ctx, SN_ERR_NOMEM, "pipeline: cannot start thread %d", i);
        else
            pl->workers[i].started = true;
    }
    if (st == SN_OK) {
        if (pthread_create(&pl->reader, NULL, reader_main, pl) != 0)
            st = sn__fail(ctx, SN_ERR_NOMEM, "pipeline: cannot start the reader thread");
        else
            pl->reader_started = true;
    }
    if (st != SN_OK) {
        sn_pipeline_free(pl);
        return st;
    }
    *out = pl;
    return SN_OK;
}
