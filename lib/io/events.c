/* events.c: TensorBoard event files (docs/formats.md, "TensorBoard event files").
 *
 * A file is a TFRecord stream of serialized tensorflow.Event messages, written through
 * sn_tfrecord_writer.  As TF's EventsWriter (tensorflow/core/util/events_writer.cc), the
 * name is "events.out.tfevents.<10-digit seconds>.<hostname>" and the first event holds
 * file_version "brain.Event:2" with those whole seconds as wall_time.  Every later event is
 * flushed as soon as it is written: one write(2) per event costs nothing at summary rates,
 * and TensorBoard, reading while training runs, sees each point at once.
 *
 * Histograms follow tensorflow/core/lib/histogram/histogram.cc exactly, so that the proto
 * equals the one TF's HistogramSummary op makes from the same values: bucket limits
 * -DBL_MAX, ..., -1e-12, 0, 1e-12, ..., DBL_MAX (1e-12 * 1.1^k below 1e20, computed in double
 * by the same repeated multiplication), a value v counts in the first bucket whose limit is
 * > v, sums accumulate in double in input order, and each run of empty buckets is written
 * as one empty bucket ending at the run's last limit (EncodeToProto without
 * preserve_zero_buckets). */
#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "../sn_internal.h"
#include "lib/io/event.pb-c.h"

#define FILE_VERSION "brain.Event:2"
#define WRITER_NAME "slimnet"
enum { MAX_SUFFIX = 1000 };   /* names tried when "<name>" exists: "<name>.1" ... */

struct sn_events {
    sn_ctx *ctx;
    char *path;
    sn_tfrecord_writer *w;
    double *limits;           /* TF's default bucket limits, ascending, n_limits of them */
    size_t n_limits;
    double *counts;           /* per bucket, reused by every histogram */
    double *enc_limits;       /* the encoded (run-collapsed) buckets */
    double *enc_counts;
    uint8_t *buf;             /* the packed event */
    size_t cap;
};

/* TF's InitDefaultBucketsInner: the negated series reversed, 0, the series. */
static sn_status make_limits(sn_events *ev) {
    size_t n_pos = 0;
    for (double v = 1.0e-12; v < 1.0e20; v *= 1.1) n_pos++;
    n_pos++;   /* DBL_MAX */
    ev->n_limits = 2 * n_pos + 1;
    ev->limits = malloc(ev->n_limits * sizeof *ev->limits);
    ev->counts = malloc(ev->n_limits * sizeof *ev->counts);
    ev->enc_limits = malloc(ev->n_limits * sizeof *ev->enc_limits);
    ev->enc_counts = malloc(ev->n_limits * sizeof *ev->enc_counts);
    if (!ev->limits || !ev->counts || !ev->enc_limits || !ev->enc_counts)
        return sn__fail(ev->ctx, SN_ERR_NOMEM, "events: out of memory");
    double *pos = ev->limits + n_pos + 1;
    size_t i = 0;
    for (double v = 1.0e-12; v < 1.0e20; v *= 1.1) pos[i++] = v;
    pos[i] = DBL_MAX;
    ev->limits[n_pos] = 0.0;
    for (i = 0; i < n_pos; i++) ev->limits[n_pos - 1 - i] = -pos[i];
    return SN_OK;
}

/* mkdir -p: SN_ERR_IO naming the directory that could not be made. */
static sn_status make_dirs(sn_ctx *ctx, const char *logdir) {
    size_t n = strlen(logdir);
    char *p = malloc(n + 1);
    if (!p) return sn__fail(ctx, SN_ERR_NOMEM, "%s: out of memory", logdir);
    memcpy(p, logdir, n + 1);
    sn_status st = SN_OK;
    for (size_t i = 1; i <= n && st == SN_OK; i++) {
        if (p[i] != '/' && p[i] != '\0') continue;
        char c = p[i];
        p[i] = '\0';
        struct stat sb;
        if (mkdir(p, 0777) != 0 && (errno != EEXIST || stat(p, &sb) != 0 || !S_ISDIR(sb.st_mode))) {
            int e = errno == EEXIST ? ENOTDIR : errno;
            st = sn__fail(ctx, SN_ERR_IO, "%s: cannot create the log directory %s: %s", logdir,
                          p, strerror(e));
        }
        p[i] = c;
    }
    free(p);
    return st;
}

/* Packs m into ev->buf and writes and flushes it as one record. */
static sn_status write_event(sn_events *ev, const Snev__Event *m) {
    size_t n = snev__event__get_packed_size(m);
    if (n > ev->cap) {
        uint8_t *b = realloc(ev->buf, n);
        if (!b) return sn__fail(ev->ctx, SN_ERR_NOMEM, "%s: out of memory", ev->path);
        ev->buf = b;
        ev->cap = n;
    }
    size_t len = snev__event__pack(m, ev->buf);
    SN_TRY(sn_tfrecord_write(ev->w, ev->buf, len));
    return sn_tfrecord_writer_flush(ev->w);
}

static double now_seconds(void) {   /* as TF's NowMicros() / 1e6 */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)((int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000) / 1e6;
}

/* Creates "<logdir>/events.out.tfevents.<secs>.<host>[.k]" without clobbering an existing
 * file: O_EXCL claims the name, then the TFRecord writer reopens it.  On failure ev->path
 * is left empty: no file of ours to remove. */
static sn_status claim_name(sn_events *ev, const char *logdir, long long secs) {
    char host[256];
    if (gethostname(host, sizeof host) != 0 || !host[0]) strcpy(host, "localhost");
    host[sizeof host - 1] = '\0';
    size_t dl = strlen(logdir);
    while (dl > 1 && logdir[dl - 1] == '/') dl--;
    size_t cap = dl + strlen(host) + 64;
    if (!(ev->path = calloc(1, cap)))
        return sn__fail(ev->ctx, SN_ERR_NOMEM, "%s: out of memory", logdir);
    sn_status st = SN_OK;
    for (int k = 0; k < MAX_SUFFIX; k++) {
        int m = snprintf(ev->path, cap, "%.*s/events.out.tfevents.%010lld.%s", (int)dl, logdir,
                         secs, host);
        if (k) snprintf(ev->path + m, cap - (size_t)m, ".%d", k);
        int fd = open(ev->path, O_WRONLY | O_CREAT | O_EXCL, 0666);
        if (fd >= 0) {
            close(fd);
            return SN_OK;
        }
        if (errno != EEXIST) {
            st = sn__fail(ev->ctx, SN_ERR_IO, "%s: cannot create: %s", ev->path, strerror(errno));
            break;
        }
    }
    if (st == SN_OK)
        st = sn__fail(ev->ctx, SN_ERR_IO, "%s: %d event files of this name exist already",
                      ev->path, MAX_SUFFIX);
    ev->path[0] = '\0';
    return st;
}

static void events_free(sn_events *ev) {
    free(ev->path);
    free(ev->limits);
    free(ev->counts);
    free(ev->enc_limits);
    free(ev->enc_counts);
    free(ev->buf);
    free(ev);
}

sn_status sn_events_open(sn_ctx *ctx, const char *logdir, sn_events **out) {
    if (!out || !logdir || !logdir[0])
        return sn__fail(ctx, SN_ERR_INVALID_ARG, "events: NULL or empty argument");
    *out = NULL;
    sn_events *ev = calloc(1, sizeof *ev);
    if (!ev) return sn__fail(ctx, SN_ERR_NOMEM, "%s: out of memory", logdir);
    ev->ctx = ctx;
    double now = now_seconds();
    long long secs = (long long)now;
    sn_status st = make_limits(ev);
    if (st == SN_OK) st = make_dirs(ctx, logdir);
    if (st == SN_OK) st = claim_name(ev, logdir, secs);
    if (st == SN_OK) st = sn_tfrecord_writer_open(ctx, ev->path, SN_COMPRESSION_NONE, &ev->w);
    if (st == SN_OK) {
        Snev__SourceMetadata src;
        snev__source_metadata__init(&src);
        src.writer = WRITER_NAME;
        Snev__Event m;
        snev__event__init(&m);
        m.wall_time = (double)secs;   /* TF 2.x: the whole seconds of the file name */
        m.what_case = SNEV__EVENT__WHAT_FILE_VERSION;
        m.file_version = FILE_VERSION;
        m.source_metadata = &src;
        st = write_event(ev, &m);
    }
    if (st != SN_OK) {
        sn_tfrecord_writer_close(ev->w);
        if (ev->path && ev->path[0]) unlink(ev->path);   /* the name was ours: leave nothing */
        events_free(ev);
        return st;
    }
    *out = ev;
    return SN_OK;
}

const char *sn_events_path(const sn_events *ev) { return ev ? ev->path : NULL; }

/* Writes Event{wall_time=now, step, summary{value}}. */
static sn_status write_summary(sn_events *ev, int64_t step, Snev__Summary__Value *v) {
    Snev__Summary s;
    snev__summary__init(&s);
    s.n_value = 1;
    s.value = &v;
    Snev__Event m;
    snev__event__init(&m);
    m.wall_time = now_seconds();
    m.step = step;
    m.what_case = SNEV__EVENT__WHAT_SUMMARY;
    m.summary = &s;
    return write_event(ev, &m);
}

sn_status sn_events_scalar(sn_events *ev, const char *tag, int64_t step, float value) {
    if (!ev) return SN_ERR_INVALID_ARG;
    if (!tag) return sn__fail(ev->ctx, SN_ERR_INVALID_ARG, "%s: scalar: tag is NULL", ev->path);
    Snev__Summary__Value v;
    snev__summary__value__init(&v);
    v.tag = (char *)tag;   /* protobuf-c's char *: only read by pack */
    v.value_case = SNEV__SUMMARY__VALUE__VALUE_SIMPLE_VALUE;
    v.simple_value = value;
    return write_summary(ev, step, &v);
}

/* Index of the first limit > v (std::upper_bound). */
static size_t bucket_of(const double *limits, size_t n, double v) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (limits[mid] > v)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

sn_status sn_events_histogram(sn_events *ev, const char *tag, int64_t step, const float *values,
                              size_t n) {
    if (!ev) return SN_ERR_INVALID_ARG;
    if (!tag || (!values && n))
        return sn__fail(ev->ctx, SN_ERR_INVALID_ARG, "%s: histogram: tag or values is NULL",
                        ev->path);
    for (size_t i = 0; i < n; i++)   /* TF's op refuses these too; nothing is written */
        if (!isfinite(values[i]))
            return sn__fail(ev->ctx, SN_ERR_NUMERIC, "%s: histogram '%s': value %zu is %s",
                            ev->path, tag, i, isnan(values[i]) ? "NaN" : "infinite");
    Snev__HistogramProto h;
    snev__histogram_proto__init(&h);
    h.min = ev->limits[ev->n_limits - 1];   /* TF's Clear(): DBL_MAX and -DBL_MAX */
    h.max = -DBL_MAX;
    memset(ev->counts, 0, ev->n_limits * sizeof *ev->counts);
    for (size_t i = 0; i < n; i++) {
        double v = values[i];   /* finite, so below DBL_MAX: the bucket exists */
        ev->counts[bucket_of(ev->limits, ev->n_limits, v)] += 1.0;
        if (h.min > v) h.min = v;
        if (h.max < v) h.max = v;
        h.num += 1.0;
        h.sum += v;
        h.sum_squares += v * v;
    }
    size_t k = 0;
    for (size_t i = 0; i < ev->n_limits;) {
        double end = ev->limits[i], count = ev->counts[i];
        i++;
        if (count <= 0.0)   /* a run of empty buckets becomes one */
            while (i < ev->n_limits && ev->counts[i] <= 0.0) end = ev->limits[i++];
        ev->enc_limits[k] = end;
        ev->enc_counts[k++] = count;
    }
    h.n_bucket_limit = h.n_bucket = k;
    h.bucket_limit = ev->enc_limits;
    h.bucket = ev->enc_counts;
    Snev__Summary__Value v;
    snev__summary__value__init(&v);
    v.tag = (char *)tag;
    v.value_case = SNEV__SUMMARY__VALUE__VALUE_HISTO;
    v.histo = &h;
    return write_summary(ev, step, &v);
}

sn_status sn_events_flush(sn_events *ev) {
    if (!ev) return SN_ERR_INVALID_ARG;
    return sn_tfrecord_writer_flush(ev->w);
}

sn_status sn_events_close(sn_events *ev) {
    if (!ev) return SN_OK;
    sn_status st = sn_tfrecord_writer_close(ev->w);
    events_free(ev);
    return st;
}
