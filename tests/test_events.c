/* test_events.c: TensorBoard event files (sn_events_*).
 *
 * Each test writes into a fresh mkdtemp folder, reads the file back with sn_tfrecord_reader
 * (so the framing and both CRCs are checked) and decodes every record with the generated
 * protobuf-c code.  The expected histograms are what TensorFlow 2.12's HistogramSummary op
 * (tf.compat.v1.summary.histogram in a graph session) returned for the same float32 values;
 * `make parity` (check_events.py) compares whole protos with TF's for more inputs. */
#include <float.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "lib/io/event.pb-c.h"
#include "ckpt_testutil.h"

enum { MAX_EVENTS = 64 };

typedef struct events_read {
    size_t n;
    Snev__Event *ev[MAX_EVENTS];
    uint8_t *raw[MAX_EVENTS];   /* each record's payload, for byte checks */
    size_t raw_len[MAX_EVENTS];
} events_read;

static void read_events(sn_ctx *ctx, const char *path, events_read *out) {
    memset(out, 0, sizeof *out);
    sn_tfrecord_reader *r;
    ck_assert_msg(sn_tfrecord_reader_open(ctx, path, SN_COMPRESSION_NONE, &r) == SN_OK, "%s",
                  sn_ctx_errmsg(ctx));
    const uint8_t *data;
    size_t len;
    sn_status st;
    while ((st = sn_tfrecord_read(r, &data, &len)) == SN_OK) {
        ck_assert_uint_lt(out->n, MAX_EVENTS);
        out->raw[out->n] = malloc(len + 1);
        memcpy(out->raw[out->n], data, len);
        out->raw_len[out->n] = len;
        out->ev[out->n] = snev__event__unpack(NULL, len, out->raw[out->n]);
        ck_assert_msg(out->ev[out->n] != NULL, "%s: record %zu is not an Event", path, out->n);
        out->n++;
    }
    ck_assert_msg(st == SN_ERR_NOT_FOUND, "%s", sn_ctx_errmsg(ctx));
    sn_tfrecord_reader_close(r);
}

static void events_read_free(events_read *e) {
    for (size_t i = 0; i < e->n; i++) {
        snev__event__free_unpacked(e->ev[i], NULL);
        free(e->raw[i]);
    }
}

static void tmpdir(char *buf, size_t len) {
    snprintf(buf, len, "/tmp/sn_events_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(buf));
}

static const Snev__HistogramProto *histo_of(const Snev__Event *e, const char *tag) {
    ck_assert_int_eq(e->what_case, SNEV__EVENT__WHAT_SUMMARY);
    ck_assert_uint_eq(e->summary->n_value, 1);
    const Snev__Summary__Value *v = e->summary->value[0];
    ck_assert_str_eq(v->tag, tag);
    ck_assert_int_eq(v->value_case, SNEV__SUMMARY__VALUE__VALUE_HISTO);
    return v->histo;
}

static void check_buckets(const Snev__HistogramProto *h, const double *limits,
                          const double *counts, size_t n) {
    ck_assert_uint_eq(h->n_bucket_limit, n);
    ck_assert_uint_eq(h->n_bucket, n);
    for (size_t i = 0; i < n; i++) {
        ck_assert_msg(h->bucket_limit[i] == limits[i], "bucket_limit[%zu] = %a, TF: %a", i,
                      h->bucket_limit[i], limits[i]);
        ck_assert_msg(h->bucket[i] == counts[i], "bucket[%zu] = %g, TF: %g", i, h->bucket[i],
                      counts[i]);
    }
}

START_TEST(test_file_scalars) {
    sn_ctx *ctx = tu_ctx();
    char base[64], logdir[128], host[256] = "";
    tmpdir(base, sizeof base);
    snprintf(logdir, sizeof logdir, "%s/runs/train/", base);   /* missing, trailing slash */
    time_t t0 = time(NULL);
    sn_events *ev;
    ck_assert_msg(sn_events_open(ctx, logdir, &ev) == SN_OK, "%s", sn_ctx_errmsg(ctx));
    static const float loss[3] = {2.5f, 1.25f, 0.5f};
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(sn_events_scalar(ev, "losses/total_loss", 10 * i, loss[i]), SN_OK);
    ck_assert_int_eq(sn_events_scalar(ev, "loss", 7, 0.25f), SN_OK);
    ck_assert_int_eq(sn_events_scalar(ev, "nan", 8, NAN), SN_OK);
    ck_assert_int_eq(sn_events_flush(ev), SN_OK);
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s", sn_events_path(ev));

    /* Flushed: a reader sees every event before close. */
    events_read e;
    read_events(ctx, path, &e);
    ck_assert_uint_eq(e.n, 6);
    events_read_free(&e);
    ck_assert_int_eq(sn_events_close(ev), SN_OK);
    time_t t1 = time(NULL);

    /* <logdir>/events.out.tfevents.<10 digits>.<hostname>, no double slash. */
    ck_assert_int_eq(gethostname(host, sizeof host - 1), 0);
    char prefix[160];
    snprintf(prefix, sizeof prefix, "%s/runs/train/events.out.tfevents.", base);
    ck_assert_msg(!strncmp(path, prefix, strlen(prefix)), "%s", path);
    const char *secs = path + strlen(prefix);
    for (int i = 0; i < 10; i++) ck_assert(secs[i] >= '0' && secs[i] <= '9');
    ck_assert_int_eq(secs[10], '.');
    ck_assert_str_eq(secs + 11, host);
    long long file_secs = atoll(secs);
    ck_assert(file_secs >= (long long)t0 && file_secs <= (long long)t1);

    read_events(ctx, path, &e);
    ck_assert_uint_eq(e.n, 6);
    /* First event: file_version, wall_time = the name's whole seconds (as TF 2.x). */
    ck_assert_int_eq(e.ev[0]->what_case, SNEV__EVENT__WHAT_FILE_VERSION);
    ck_assert_str_eq(e.ev[0]->file_version, "brain.Event:2");
    ck_assert(e.ev[0]->wall_time == (double)file_secs);
    ck_assert_int_eq(e.ev[0]->step, 0);
    ck_assert_ptr_nonnull(e.ev[0]->source_metadata);
    ck_assert_str_eq(e.ev[0]->source_metadata->writer, "slimnet");
    static const char *tags[5] = {"losses/total_loss", "losses/total_loss", "losses/total_loss",
                                  "loss", "nan"};
    static const int64_t steps[5] = {0, 10, 20, 7, 8};
    double prev = e.ev[0]->wall_time;
    for (size_t i = 1; i < 6; i++) {
        const Snev__Event *m = e.ev[i];
        ck_assert_int_eq(m->what_case, SNEV__EVENT__WHAT_SUMMARY);
        ck_assert_int_eq(m->step, steps[i - 1]);
        ck_assert(m->wall_time >= prev && m->wall_time < (double)t1 + 1);
        prev = m->wall_time;
        ck_assert_uint_eq(m->summary->n_value, 1);
        ck_assert_str_eq(m->summary->value[0]->tag, tags[i - 1]);
        ck_assert_int_eq(m->summary->value[0]->value_case,
                         SNEV__SUMMARY__VALUE__VALUE_SIMPLE_VALUE);
        float v = m->summary->value[0]->simple_value;
        if (i <= 3) ck_assert(v == loss[i - 1]);
        if (i == 4) ck_assert(v == 0.25f);
        if (i == 5) ck_assert(isnan(v));
    }
    /* The scalar event of docs/formats.md, "Known-answer vectors", after its wall_time. */
    static const uint8_t want[] = {0x10, 0x07, 0x2a, 0x0d, 0x0a, 0x0b, 0x0a, 0x04, 'l', 'o',
                                   's', 's', 0x15, 0x00, 0x00, 0x80, 0x3e};
    ck_assert_uint_eq(e.raw_len[4], 9 + sizeof want);
    ck_assert_int_eq(e.raw[4][0], 0x09);
    ck_assert(!memcmp(e.raw[4] + 9, want, sizeof want));
    events_read_free(&e);
    ct_rmdir(strdup(base));
    sn_ctx_free(ctx);
} END_TEST

START_TEST(test_histograms) {
    sn_ctx *ctx = tu_ctx();
    char base[64];
    tmpdir(base, sizeof base);
    sn_events *ev;
    ck_assert_msg(sn_events_open(ctx, base, &ev) == SN_OK, "%s", sn_ctx_errmsg(ctx));
    static const float a[5] = {0.5f, -0.5f, 0.0f, 1.0f, 1.0f};
    static const float b[5] = {3e38f, -3e38f, 1e-12f, 1e-30f, -1e-30f};
    ck_assert_int_eq(sn_events_histogram(ev, "weights", 8, a, 5), SN_OK);
    ck_assert_int_eq(sn_events_histogram(ev, "extremes", 9, b, 5), SN_OK);
    ck_assert_int_eq(sn_events_histogram(ev, "empty", 10, NULL, 0), SN_OK);
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s", sn_events_path(ev));
    ck_assert_int_eq(sn_events_close(ev), SN_OK);

    events_read e;
    read_events(ctx, path, &e);
    ck_assert_uint_eq(e.n, 4);
    ck_assert_int_eq(e.ev[1]->step, 8);
    ck_assert_int_eq(e.ev[3]->step, 10);

    /* TF: min -0.5 max 1 num 5 sum 2 sum_squares 2.5.  A value lands in the first bucket
     * whose limit is above it (0 in [0, 1e-12), 1.0 in [0.917..., 1.0089...)), and each run
     * of empty buckets is kept as one empty bucket ending at the run's last limit. */
    const Snev__HistogramProto *h = histo_of(e.ev[1], "weights");
    ck_assert(h->min == -0.5 && h->max == 1.0 && h->num == 5.0);
    ck_assert(h->sum == 2.0 && h->sum_squares == 2.5);
    static const double la[9] = {-0.51776167404891815, -0.47069243095356195, 0.0, 1e-12,
                                 0.47069243095356195, 0.51776167404891815, 0.917246389039776,
                                 1.0089710279437536, DBL_MAX};
    static const double ca[9] = {0, 1, 0, 1, 0, 1, 0, 2, 0};
    check_buckets(h, la, ca, 9);

    h = histo_of(e.ev[2], "extremes");
    ck_assert(h->min == -0x1.c363ccp+127 && h->max == 0x1.c363ccp+127 && h->num == 5.0);
    ck_assert(h->sum == 0x1.197998p-40);
    ck_assert(h->sum_squares == 0x1.8df463d7b5480p+256);
    static const double lb[7] = {-DBL_MAX, -0x1.58323029f544cp+66, -0x1.19799812dea11p-40, 0.0,
                                 0x1.19799812dea11p-40, 0x1.58323029f544cp+66, DBL_MAX};
    static const double cb[7] = {0, 1, 0, 1, 2, 0, 1};
    check_buckets(h, lb, cb, 7);

    h = histo_of(e.ev[3], "empty");   /* TF's empty histogram */
    ck_assert(h->min == DBL_MAX && h->max == -DBL_MAX && h->num == 0.0);
    ck_assert(h->sum == 0.0 && h->sum_squares == 0.0);
    static const double le[1] = {DBL_MAX}, ce[1] = {0};
    check_buckets(h, le, ce, 1);
    events_read_free(&e);
    ct_rmdir(strdup(base));
    sn_ctx_free(ctx);
} END_TEST

/* Many values: the counts add up, sums match a double accumulation in order. */
START_TEST(test_histogram_many) {
    sn_ctx *ctx = tu_ctx();
    char base[64];
    tmpdir(base, sizeof base);
    enum { N = 10000 };
    float *x = malloc(N * sizeof *x);
    tu_fill(x, N, 5);
    double sum = 0, sq = 0, lo = DBL_MAX, hi = -DBL_MAX;
    for (int i = 0; i < N; i++) {
        x[i] *= 100.0f;
        sum += x[i];
        sq += (double)x[i] * x[i];
        lo = x[i] < lo ? x[i] : lo;
        hi = x[i] > hi ? x[i] : hi;
    }
    sn_events *ev;
    ck_assert_int_eq(sn_events_open(ctx, base, &ev), SN_OK);
    ck_assert_int_eq(sn_events_histogram(ev, "acts", 1, x, N), SN_OK);
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s", sn_events_path(ev));
    ck_assert_int_eq(sn_events_close(ev), SN_OK);
    events_read e;
    read_events(ctx, path, &e);
    const Snev__HistogramProto *h = histo_of(e.ev[1], "acts");
    ck_assert(h->num == N && h->sum == sum && h->sum_squares == sq && h->min == lo &&
              h->max == hi);
    double total = 0;
    for (size_t i = 0; i < h->n_bucket; i++) {
        total += h->bucket[i];
        if (i) ck_assert(h->bucket_limit[i] > h->bucket_limit[i - 1]);
        if (i && h->bucket[i] == 0) ck_assert(h->bucket[i - 1] != 0);   /* runs collapsed */
    }
    ck_assert(total == N);
    /* Each value lies in its bucket: count values under each limit. */
    for (size_t i = 0; i < h->n_bucket; i++) {
        double below = 0, cum = 0;
        for (int j = 0; j < N; j++) below += x[j] < h->bucket_limit[i];
        for (size_t k = 0; k <= i; k++) cum += h->bucket[k];
        ck_assert_msg(below == cum, "bucket %zu: %g values below %g, cumulative count %g", i,
                      below, h->bucket_limit[i], cum);
    }
    events_read_free(&e);
    free(x);
    ct_rmdir(strdup(base));
    sn_ctx_free(ctx);
} END_TEST

START_TEST(test_nonfinite_histogram) {
    sn_ctx *ctx = tu_ctx();
    char base[64];
    tmpdir(base, sizeof base);
    sn_events *ev;
    ck_assert_int_eq(sn_events_open(ctx, base, &ev), SN_OK);
    float x[4] = {1, 2, NAN, 3};
    ck_assert_int_eq(sn_events_histogram(ev, "conv1/weights", 3, x, 4), SN_ERR_NUMERIC);
    ck_assert_ptr_nonnull(strstr(sn_ctx_errmsg(ctx), "conv1/weights"));
    ck_assert_ptr_nonnull(strstr(sn_ctx_errmsg(ctx), "NaN"));
    ck_assert_ptr_nonnull(strstr(sn_ctx_errmsg(ctx), sn_events_path(ev)));
    x[2] = -INFINITY;
    ck_assert_int_eq(sn_events_histogram(ev, "g", 3, x, 4), SN_ERR_NUMERIC);
    ck_assert_ptr_nonnull(strstr(sn_ctx_errmsg(ctx), "infinite"));
    ck_assert_int_eq(sn_events_histogram(ev, NULL, 3, x, 4), SN_ERR_INVALID_ARG);
    ck_assert_int_eq(sn_events_histogram(ev, "g", 3, NULL, 4), SN_ERR_INVALID_ARG);
    /* The writer is still fine. */
    x[2] = 0;
    ck_assert_int_eq(sn_events_histogram(ev, "g", 4, x, 4), SN_OK);
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s", sn_events_path(ev));
    ck_assert_int_eq(sn_events_close(ev), SN_OK);
    events_read e;
    read_events(ctx, path, &e);
    ck_assert_uint_eq(e.n, 2);   /* nothing of the refused ones */
    ck_assert(histo_of(e.ev[1], "g")->num == 4.0);
    events_read_free(&e);
    ct_rmdir(strdup(base));
    sn_ctx_free(ctx);
} END_TEST

START_TEST(test_unwritable_logdir) {
    sn_ctx *ctx = tu_ctx();
    char base[64], file[96], logdir[128];
    tmpdir(base, sizeof base);
    snprintf(file, sizeof file, "%s/plain_file", base);   /* a file where a folder must be */
    FILE *f = fopen(file, "w");
    ck_assert_ptr_nonnull(f);
    fclose(f);
    snprintf(logdir, sizeof logdir, "%s/run1", file);
    sn_events *ev = (sn_events *)&ev;
    ck_assert_int_eq(sn_events_open(ctx, logdir, &ev), SN_ERR_IO);
    ck_assert_ptr_null(ev);
    ck_assert_ptr_nonnull(strstr(sn_ctx_errmsg(ctx), logdir));
    ck_assert_int_eq(sn_events_open(ctx, file, &ev), SN_ERR_IO);   /* logdir is a file */
    ck_assert_ptr_nonnull(strstr(sn_ctx_errmsg(ctx), file));
    ck_assert_int_eq(sn_events_open(ctx, "", &ev), SN_ERR_INVALID_ARG);
    ck_assert_int_eq(sn_events_close(NULL), SN_OK);
    ct_rmdir(strdup(base));
    sn_ctx_free(ctx);
} END_TEST

/* An existing file of the same name is never clobbered. */
START_TEST(test_no_clobber) {
    sn_ctx *ctx = tu_ctx();
    char base[64], host[256] = "", name[PATH_MAX];
    tmpdir(base, sizeof base);
    ck_assert_int_eq(gethostname(host, sizeof host - 1), 0);
    long long t = (long long)time(NULL);
    for (long long s = t; s < t + 3; s++) {   /* the open happens within these seconds */
        snprintf(name, sizeof name, "%s/events.out.tfevents.%010lld.%s", base, s, host);
        FILE *f = fopen(name, "w");
        ck_assert_ptr_nonnull(f);
        fputs("precious", f);
        fclose(f);
    }
    sn_events *a, *b;
    ck_assert_int_eq(sn_events_open(ctx, base, &a), SN_OK);
    ck_assert_int_eq(sn_events_open(ctx, base, &b), SN_OK);
    const char *pa = sn_events_path(a), *pb = sn_events_path(b);
    size_t la = strlen(pa);
    ck_assert_str_eq(pa + la - 2, ".1");
    ck_assert_str_ne(pa, pb);
    if (!strncmp(pa, pb, la - 2)) ck_assert_str_eq(pb + la - 2, ".2");   /* same second */
    ck_assert_int_eq(sn_events_close(a), SN_OK);
    ck_assert_int_eq(sn_events_close(b), SN_OK);
    for (long long s = t; s < t + 3; s++) {
        snprintf(name, sizeof name, "%s/events.out.tfevents.%010lld.%s", base, s, host);
        char buf[16] = "";
        FILE *f = fopen(name, "r");
        ck_assert_ptr_nonnull(f);
        ck_assert_ptr_nonnull(fgets(buf, sizeof buf, f));
        fclose(f);
        ck_assert_str_eq(buf, "precious");
    }
    ct_rmdir(strdup(base));
    sn_ctx_free(ctx);
} END_TEST

Suite *suite_events(void) {
    Suite *s = suite_create("events");
    TCase *tc = tcase_create("events");
    tcase_add_test(tc, test_file_scalars);
    tcase_add_test(tc, test_histograms);
    tcase_add_test(tc, test_histogram_many);
    tcase_add_test(tc, test_nonfinite_histogram);
    tcase_add_test(tc, test_unwritable_logdir);
    tcase_add_test(tc, test_no_clobber);
    suite_add_tcase(s, tc);
    return s;
}
