/* test_pipeline.c: the input pipeline (TFRecords -> Examples -> images -> batches).
 * Files of real JPEGs and PNGs are written to a temporary folder; every record's label is
 * its id, so each test can tell exactly which record went where.  Expected pixels come from
 * sn_image_decode + sn_preprocess called directly, never from constants. */
#include <check.h>
#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "testutil.h"

enum { MAX_IDS = 512, MAX_RECS = 8192 };

static char tmpdir[64];
static sn_ctx *ctx;
static uint8_t *enc[MAX_IDS];   /* the encoded image of each id, as written */
static size_t enc_len[MAX_IDS];

static void setup(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/sn_test_pipeline_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
    ctx = tu_ctx();
}

static void teardown(void) {
    for (int pass = 0; pass < 3 && rmdir(tmpdir) != 0; pass++) {
        DIR *d = opendir(tmpdir);
        if (!d) break;
        char path[512];
        for (struct dirent *e; (e = readdir(d));) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
            snprintf(path, sizeof path, "%s/%s", tmpdir, e->d_name);
            unlink(path);
        }
        closedir(d);
    }
    for (int i = 0; i < MAX_IDS; i++) {
        free(enc[i]);
        enc[i] = NULL;
    }
    sn_ctx_free(ctx);
}

static const char *tpath(const char *name) {
    static char buf[4][512];
    static int next;
    char *p = buf[next++ & 3];
    snprintf(p, 512, "%s/%s", tmpdir, name);
    return p;
}

/* An h x w x c picture that depends on id: smooth gradients plus an id-dependent block. */
static sn_tensor *picture(int h, int w, int c, int id) {
    int64_t dims[3] = {h, w, c};
    sn_tensor *t;
    ck_assert_int_eq(sn_tensor_new(ctx, SN_DTYPE_U8, 3, dims, &t), SN_OK);
    uint8_t *p = sn_tensor_data(t);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int k = 0; k < c; k++) {
                int v = (x * 255 / w + y * 97 / h + k * 60 + id * 37) & 255;
                if (y < h / 3 && x < (id % 7 + 1) * w / 8) v = 255 - v;
                p[((size_t)y * w + x) * c + k] = (uint8_t)v;
            }
    return t;
}

/* Encodes picture(id) as JPEG (even ids) or PNG (odd ids) and remembers the bytes. */
static void encode_id(int id, int h, int w, int c) {
    sn_tensor *img = picture(h, w, c, id), *e;
    if (id % 2 == 0)
        ck_assert_int_eq(sn_image_encode_jpeg(ctx, img, 90, &e), SN_OK);
    else
        ck_assert_int_eq(sn_image_encode_png(ctx, img, &e), SN_OK);
    free(enc[id]);
    enc_len[id] = sn_tensor_nbytes(e);
    enc[id] = malloc(enc_len[id]);
    memcpy(enc[id], sn_tensor_data(e), enc_len[id]);
    sn_tensor_free(e);
    sn_tensor_free(img);
}

/* What a record may be. */
typedef enum rec_kind {
    REC_GOOD, REC_BAD_PROTO, REC_LABEL_FLOAT, REC_LABEL_BYTES, REC_NOT_IMAGE, REC_HUGE,
    REC_TRUNC_DATA, REC_LABEL_RANGE
} rec_kind;

/* Serializes the record of `id` as `kind` into the writer. */
static void write_record(sn_tfrecord_writer *wr, int id, rec_kind kind) {
    sn_example *ex;
    ck_assert_int_eq(sn_example_new(ctx, &ex), SN_OK);
    const uint8_t *data = enc[id];
    size_t len = enc_len[id];
    uint8_t *patched = NULL;
    if (kind == REC_HUGE) {   /* the SOF0 frame header patched to 60000 x 60000 */
        ck_assert_int_eq(id % 2, 0);
        patched = malloc(len);
        memcpy(patched, data, len);
        size_t sof = 0;
        for (size_t i = 2; i + 9 < len && !sof; i++)
            if (patched[i] == 0xff && patched[i + 1] == 0xc0) sof = i;
        ck_assert_uint_gt(sof, 0);
        patched[sof + 5] = 0xea, patched[sof + 6] = 0x60;
        patched[sof + 7] = 0xea, patched[sof + 8] = 0x60;
        data = patched;
    } else if (kind == REC_TRUNC_DATA) {   /* a good header, the entropy data cut short */
        ck_assert_int_eq(id % 2, 0);
        size_t sos = 0;
        for (size_t i = 2; i + 1 < len && !sos; i++)
            if (data[i] == 0xff && data[i + 1] == 0xda) sos = i;
        ck_assert_uint_gt(sos, 0);
        len = sos + (len - sos) / 2;
    } else if (kind == REC_NOT_IMAGE) {
        data = (const uint8_t *)"this is not an image at all";
        len = 27;
    }
    if (kind == REC_LABEL_FLOAT || kind == REC_LABEL_BYTES) {
        const void *v[1] = {data};
        size_t l[1] = {len};
        ck_assert_int_eq(sn_example_set_bytes(ex, "image/encoded", v, l, 1), SN_OK);
        if (kind == REC_LABEL_FLOAT) {
            float f = (float)id;
            ck_assert_int_eq(sn_example_set_float(ex, "image/class/label", &f, 1), SN_OK);
        } else {
            const void *b[1] = {"7"};
            size_t bl[1] = {1};
            ck_assert_int_eq(sn_example_set_bytes(ex, "image/class/label", b, bl, 1), SN_OK);
        }
    } else {
        sn_image_example img = {.encoded = data, .encoded_len = len,
                                .label = kind == REC_LABEL_RANGE ? 1000 : id,
                                .height = 1, .width = 1};
        snprintf(img.format, sizeof img.format, "%s", id % 2 ? "png" : "jpeg");
        ck_assert_int_eq(sn_example_set_image(ex, &img), SN_OK);
    }
    const uint8_t *ser;
    size_t n;
    ck_assert_int_eq(sn_example_serialize(ex, &ser, &n), SN_OK);
    if (kind == REC_BAD_PROTO) {   /* a field key with wire type 7: no such thing */
        static const uint8_t junk[] = {0x0f, 0xff, 0xff, 0xff};
        ser = junk;
        n = sizeof junk;
    }
    ck_assert_int_eq(sn_tfrecord_write(wr, ser, n), SN_OK);
    sn_example_free(ex);
    free(patched);
}

/* Writes records first..first+n-1 (ids = labels) into file `name` of the temporary folder,
 * record `bad_at` (index in the file; -1: none) as `kind`.  Returns the offset of record
 * bad_at (or of the end).  Images are h x w x c. */
static uint64_t write_file(const char *name, int first, int n, int bad_at, rec_kind kind,
                           int h, int w, int c) {
    sn_tfrecord_writer *wr;
    ck_assert_int_eq(sn_tfrecord_writer_open(ctx, tpath(name), SN_COMPRESSION_NONE, &wr), SN_OK);
    uint64_t off = 0, bad_off = 0;
    for (int i = 0; i < n; i++) {
        int id = first + i;
        ck_assert_int_lt(id, MAX_IDS);
        encode_id(id, h, w, c);
        if (i == bad_at) bad_off = off;
        write_record(wr, id, i == bad_at ? kind : REC_GOOD);
        sn_tfrecord_writer_flush(wr);
        FILE *f = fopen(tpath(name), "rb");
        fseek(f, 0, SEEK_END);
        off = (uint64_t)ftell(f);
        fclose(f);
    }
    ck_assert_int_eq(sn_tfrecord_writer_close(wr), SN_OK);
    return bad_at >= 0 ? bad_off : off;
}

/* One whole run of a pipeline, kept for comparison. */
typedef struct run {
    int64_t n;                   /* records returned */
    int32_t labels[MAX_RECS];
    float *images;               /* n images */
    int nbatches;
    int sizes[MAX_RECS];
    sn_status st;                /* status of the last next() */
    char msg[1024];
    sn_pipeline_stats stats;
} run;

static size_t image_floats(const sn_pipeline_params *p) {
    int c = p->preprocess.use_grayscale ? 1 : p->channels;
    return (size_t)p->preprocess.out_height * (size_t)p->preprocess.out_width * (size_t)c;
}

/* Runs p until the end, an error, or max_batches batches. */
static run *collect(const sn_pipeline_params *p, int max_batches) {
    run *r = calloc(1, sizeof *r);
    size_t img = image_floats(p);
    sn_pipeline *pl;
    sn_status st = sn_pipeline_new(ctx, p, &pl);
    ck_assert_msg(st == SN_OK, "sn_pipeline_new: %s: %s", sn_status_name(st), sn_ctx_errmsg(ctx));
    while (r->nbatches < max_batches) {
        const float *x;
        const int32_t *y;
        int n = -1;
        r->st = sn_pipeline_next(pl, &x, &y, &n);
        if (r->st != SN_OK) {
            snprintf(r->msg, sizeof r->msg, "%s", sn_ctx_errmsg(ctx));
            ck_assert_int_eq(n, 0);
            break;
        }
        if (n == 0) break;
        ck_assert_int_le(n, p->batch_size);
        ck_assert_int_lt(r->n + n, MAX_RECS);
        r->images = realloc(r->images, (size_t)(r->n + n) * img * sizeof(float));
        memcpy(r->images + (size_t)r->n * img, x, (size_t)n * img * sizeof(float));
        memcpy(r->labels + r->n, y, (size_t)n * sizeof *y);
        r->sizes[r->nbatches++] = n;
        r->n += n;
    }
    r->stats = sn_pipeline_get_stats(pl);
    sn_pipeline_free(pl);
    return r;
}

static void run_free(run *r) {
    if (r) free(r->images);
    free(r);
}

static sn_pipeline_params params(const char *pattern, int bs) {
    sn_pipeline_params p = sn_pipeline_params_default();
    p.pattern = pattern;
    p.batch_size = bs;
    p.channels = 1;
    p.preprocess.kind = SN_PREPROCESS_LENET;
    p.preprocess.out_height = 16;
    p.preprocess.out_width = 16;
    p.num_epochs = 1;
    p.seed = 7;
    return p;
}

/* ---- the stream --------------------------------------------------------------------------- */

START_TEST(test_epochs_each_record_once) {
    write_file("a.tfrecord", 0, 10, -1, REC_GOOD, 12, 14, 1);
    write_file("b.tfrecord", 10, 10, -1, REC_GOOD, 12, 14, 1);
    write_file("c.tfrecord", 20, 10, -1, REC_GOOD, 12, 14, 1);
    write_file("other.txt", 100, 2, -1, REC_GOOD, 12, 14, 1);   /* not matched */
    sn_pipeline_params p = params(tpath("*.tfrecord"), 7);
    p.num_epochs = 3;
    p.shuffle_buffer = 8;
    run *r = collect(&p, 1000);
    ck_assert_int_eq(r->st, SN_OK);
    ck_assert_int_eq(r->n, 90);
    ck_assert_int_eq(r->nbatches, 13);                 /* 12 full batches of 7, then 6 */
    for (int b = 0; b < 12; b++) ck_assert_int_eq(r->sizes[b], 7);
    ck_assert_int_eq(r->sizes[12], 6);
    bool in_order = true;
    for (int e = 0; e < 3; e++) {   /* epoch e is exactly positions [30e, 30e + 30) */
        int seen[30] = {0};
        for (int i = 0; i < 30; i++) {
            int32_t id = r->labels[30 * e + i];
            ck_assert(id >= 0 && id < 30);
            seen[id]++;
            in_order = in_order && id == i;
        }
        for (int i = 0; i < 30; i++) ck_assert_int_eq(seen[i], 1);
    }
    ck_assert(!in_order);
    ck_assert_int_eq(r->stats.records, 90);
    ck_assert_int_eq(r->stats.batches, 13);
    ck_assert_int_eq(r->stats.skipped, 0);
    ck_assert_int_eq(r->stats.epoch, 2);
    ck_assert(r->stats.wait_seconds >= 0);
    /* different epochs come in different orders */
    ck_assert(memcmp(r->labels, r->labels + 30, 30 * sizeof(int32_t)) != 0);
    run_free(r);

    /* an exact multiple: no partial batch; after the end n stays 0 */
    p.batch_size = 5;
    p.num_epochs = 1;
    sn_pipeline *pl;
    ck_assert_int_eq(sn_pipeline_new(ctx, &p, &pl), SN_OK);
    const float *x;
    const int32_t *y;
    int n, total = 0;
    for (int i = 0; i < 6; i++) {
        ck_assert_int_eq(sn_pipeline_next(pl, &x, &y, &n), SN_OK);
        ck_assert_int_eq(n, 5);
        total += n;
    }
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(sn_pipeline_next(pl, &x, &y, &n), SN_OK);
        ck_assert_int_eq(n, 0);
        ck_assert_ptr_null(x);
    }
    ck_assert_int_eq(total, 30);
    sn_pipeline_free(pl);

    /* no file matches */
    p.pattern = tpath("*.nothing");
    ck_assert_int_eq(sn_pipeline_new(ctx, &p, &pl), SN_ERR_NOT_FOUND);
    ck_assert_ptr_null(pl);
    p.pattern = tpath("*.tfrecord");
    p.batch_size = 0;
    ck_assert_int_eq(sn_pipeline_new(ctx, &p, &pl), SN_ERR_INVALID_ARG);
    p.batch_size = 4;
    p.channels = 2;
    ck_assert_int_eq(sn_pipeline_new(ctx, &p, &pl), SN_ERR_INVALID_ARG);
}
END_TEST

START_TEST(test_order_seed_and_file_order) {
    /* written out of name order: shuffle = 0 must follow the sorted names */
    write_file("s2.tfrecord", 20, 8, -1, REC_GOOD, 10, 10, 1);
    write_file("s0.tfrecord", 0, 12, -1, REC_GOOD, 10, 10, 1);
    write_file("s1.tfrecord", 12, 8, -1, REC_GOOD, 10, 10, 1);
    sn_pipeline_params p = params(tpath("s*.tfrecord"), 4);
    p.shuffle = 0;
    p.num_epochs = 2;
    run *r = collect(&p, 1000);
    ck_assert_int_eq(r->n, 56);
    for (int i = 0; i < 56; i++) ck_assert_int_eq(r->labels[i], i % 28);
    run_free(r);

    p.shuffle = 1;
    p.num_epochs = 1;
    run *a = collect(&p, 1000), *b = collect(&p, 1000);
    p.seed = 8;
    run *c = collect(&p, 1000);
    ck_assert_int_eq(a->n, 28);
    ck_assert_int_eq(c->n, 28);
    ck_assert_mem_eq(a->labels, b->labels, 28 * sizeof(int32_t));   /* same seed, same order */
    ck_assert(memcmp(a->labels, c->labels, 28 * sizeof(int32_t)) != 0);
    run_free(a);
    run_free(b);
    run_free(c);
}
END_TEST

/* Every image of the stream equals decode + sn_preprocess of its record, with the seed
 * sn_pipeline_image_seed(seed, k). */
static void check_pixels(const sn_pipeline_params *p, const run *r) {
    size_t img = image_floats(p);
    float *want = malloc(img * sizeof(float));
    sn_image_params ip = sn_image_params_default();
    ip.channels = p->channels;
    for (int64_t k = 0; k < r->n; k++) {
        int id = r->labels[k] + p->labels_offset;
        sn_tensor *t;
        ck_assert_int_eq(sn_image_decode(ctx, enc[id], enc_len[id], &ip, &t), SN_OK);
        const uint8_t *px = sn_tensor_data(t);
        int64_t dims[3] = {sn_tensor_dim(t, 0), sn_tensor_dim(t, 1), sn_tensor_dim(t, 2)};
        ck_assert_int_eq(sn_preprocess(ctx, &p->preprocess, px, (int)dims[0], (int)dims[1],
                                       (int)dims[2], NULL,
                                       sn_pipeline_image_seed(p->seed, k + p->skip_records +
                                                              p->skip_batches * p->batch_size),
                                       want), SN_OK);
        ck_assert_mem_eq(r->images + (size_t)k * img, want, img * sizeof(float));
        sn_tensor_free(t);
    }
    free(want);
}

START_TEST(test_pixels_equal_direct) {
    write_file("g.tfrecord", 0, 13, -1, REC_GOOD, 20, 18, 1);
    sn_pipeline_params p = params(tpath("g.tfrecord"), 4);   /* lenet, gray, crop and pad */
    p.num_threads = 3;
    run *r = collect(&p, 1000);
    ck_assert_int_eq(r->n, 13);
    check_pixels(&p, r);
    run_free(r);

    write_file("c.tfrecord", 100, 11, -1, REC_GOOD, 30, 40, 3);   /* color, random training */
    p = params(tpath("c.tfrecord"), 3);
    p.channels = 3;
    p.preprocess.kind = SN_PREPROCESS_INCEPTION;
    p.preprocess.is_training = 1;
    p.preprocess.out_height = p.preprocess.out_width = 24;
    p.labels_offset = 100;
    p.num_epochs = 2;
    r = collect(&p, 1000);
    ck_assert_int_eq(r->n, 22);
    check_pixels(&p, r);
    /* the same record in two epochs has a different stream position, hence its own draw */
    for (int k = 0; k < 11; k++) ck_assert(r->labels[k] >= 0 && r->labels[k] < 11);
    run_free(r);
}
END_TEST

START_TEST(test_threads_and_queues_identical) {
    write_file("t0.tfrecord", 0, 15, -1, REC_GOOD, 26, 30, 3);
    write_file("t1.tfrecord", 15, 14, -1, REC_GOOD, 26, 30, 3);
    sn_pipeline_params p = params(tpath("t?.tfrecord"), 6);
    p.channels = 3;
    p.preprocess.kind = SN_PREPROCESS_INCEPTION;
    p.preprocess.is_training = 1;
    p.preprocess.out_height = p.preprocess.out_width = 20;
    p.num_epochs = 2;
    p.shuffle_buffer = 10;
    static const int conf[][2] = {{1, 1}, {4, 1}, {4, 6}, {3, 0}, {8, 2}};
    run *ref = NULL;
    for (size_t i = 0; i < sizeof conf / sizeof conf[0]; i++) {
        p.num_threads = conf[i][0];
        p.queue_batches = conf[i][1];
        run *r = collect(&p, 1000);
        ck_assert_int_eq(r->n, 58);
        if (!ref) {
            ref = r;
            check_pixels(&p, r);
            continue;
        }
        ck_assert_int_eq(r->nbatches, ref->nbatches);
        ck_assert_mem_eq(r->labels, ref->labels, 58 * sizeof(int32_t));
        ck_assert_mem_eq(r->images, ref->images, 58 * image_floats(&p) * sizeof(float));
        run_free(r);
    }
    run_free(ref);
}
END_TEST

START_TEST(test_skip_batches_resumes) {
    write_file("k0.tfrecord", 0, 9, -1, REC_GOOD, 16, 16, 1);
    write_file("k1.tfrecord", 9, 8, -1, REC_GOOD, 16, 16, 1);
    sn_pipeline_params p = params(tpath("k*.tfrecord"), 5);
    p.preprocess.kind = SN_PREPROCESS_INCEPTION;   /* random: the seeds must follow too */
    p.preprocess.is_training = 1;
    p.num_epochs = 3;                              /* 51 records: 10 batches of 5, then 1 */
    p.shuffle_buffer = 6;
    run *full = collect(&p, 1000);
    ck_assert_int_eq(full->n, 51);
    ck_assert_int_eq(full->nbatches, 11);
    size_t img = image_floats(&p);
    for (int skip = 1; skip <= 11; skip += 3) {
        p.skip_batches = skip;
        run *r = collect(&p, 1000);
        ck_assert_int_eq(r->nbatches, 11 - skip);
        ck_assert_int_eq(r->n, 51 - 5 * skip);
        ck_assert_mem_eq(r->labels, full->labels + 5 * skip, (size_t)r->n * sizeof(int32_t));
        if (r->n)
            ck_assert_mem_eq(r->images, full->images + (size_t)5 * skip * img,
                             (size_t)r->n * img * sizeof(float));
        ck_assert_int_eq(r->stats.records, 51);   /* every record was read, once */
        run_free(r);
    }
    p.skip_batches = 1000;   /* past the end */
    run *r = collect(&p, 1000);
    ck_assert_int_eq(r->st, SN_OK);
    ck_assert_int_eq(r->n, 0);
    run_free(r);
    run_free(full);
}
END_TEST

START_TEST(test_labels_offset_and_range) {
    uint64_t end = write_file("l.tfrecord", 1, 12, -1, REC_GOOD, 10, 10, 1);
    (void)end;
    sn_pipeline_params p = params(tpath("l.tfrecord"), 4);
    p.shuffle = 0;
    p.labels_offset = 1;
    p.num_classes = 12;
    run *r = collect(&p, 100);
    ck_assert_int_eq(r->st, SN_OK);
    ck_assert_int_eq(r->n, 12);
    for (int i = 0; i < 12; i++) ck_assert_int_eq(r->labels[i], i);
    run_free(r);

    /* id 12 - 1 = 11 is outside [0, 11): an error naming file and offset, after the batches
     * before it */
    p.num_classes = 11;
    r = collect(&p, 100);
    ck_assert_int_eq(r->st, SN_ERR_FORMAT);
    ck_assert_int_eq(r->n, 8);
    ck_assert_ptr_nonnull(strstr(r->msg, tpath("l.tfrecord")));
    ck_assert_ptr_nonnull(strstr(r->msg, "outside [0, 11)"));
    run_free(r);
}
END_TEST

/* ---- shards ------------------------------------------------------------------------------- */

/* Checks that the runs sh[0..nsh) of shards 0..nsh-1, each of batch bs, partition ref's
 * records from position `from` into global batches of nsh * bs: shard i's batch g is ref's
 * records [from + g*G + i*bs, + bs) (short or absent at the end), bit for bit. */
static void check_partition(const sn_pipeline_params *p, const run *ref, int64_t from,
                            run *const *sh, int nsh, int bs) {
    size_t img = image_floats(p);
    int64_t g_bs = (int64_t)nsh * bs, used[8] = {0};
    ck_assert_int_le(nsh, 8);
    for (int64_t g = 0; from + g * g_bs < ref->n || g == 0; g++)
        for (int i = 0; i < nsh; i++) {
            int64_t k = from + g * g_bs + (int64_t)i * bs;
            int64_t n = ref->n - k < bs ? ref->n - k : bs;
            if (n <= 0) {   /* this shard's part of the last global batch is empty: its end */
                ck_assert_int_eq(sh[i]->nbatches, g);
                continue;
            }
            ck_assert_msg(sh[i]->nbatches > g, "shard %d of %d ends before batch %lld", i, nsh,
                          (long long)g);
            ck_assert_int_eq(sh[i]->sizes[g], n);
            ck_assert_mem_eq(sh[i]->labels + used[i], ref->labels + k, (size_t)n * sizeof(int32_t));
            ck_assert_mem_eq(sh[i]->images + (size_t)used[i] * img, ref->images + (size_t)k * img,
                             (size_t)n * img * sizeof(float));
            used[i] += n;
        }
    for (int i = 0; i < nsh; i++) {
        ck_assert_int_eq(sh[i]->n, used[i]);
        ck_assert_int_eq(sh[i]->st, SN_OK);
    }
}

/* Runs shards 0..nsh-1 of p (batch_size per shard) to the end. */
static void collect_shards(sn_pipeline_params p, int nsh, run **sh) {
    p.num_shards = nsh;
    for (int i = 0; i < nsh; i++) {
        p.shard_index = i;
        sh[i] = collect(&p, 1000);
    }
}

START_TEST(test_shards_partition_global_batch) {
    write_file("h0.tfrecord", 0, 12, -1, REC_GOOD, 18, 20, 3);
    write_file("h1.tfrecord", 12, 9, -1, REC_GOOD, 18, 20, 3);
    write_file("h2.tfrecord", 21, 8, -1, REC_GOOD, 18, 20, 3);
    sn_pipeline_params p = params(tpath("h?.tfrecord"), 2);
    p.channels = 3;
    p.preprocess.kind = SN_PREPROCESS_INCEPTION;   /* random draws: the seeds must follow */
    p.preprocess.is_training = 1;
    p.preprocess.out_height = p.preprocess.out_width = 12;
    p.num_epochs = 2;   /* 58 records: global batches straddle the epoch boundary at 29 */
    /* {shards, per-shard batch, shuffle_buffer}: with 0 the default is 20 * the global batch,
     * which only 20 * 2 and 20 * 3 > 29 tell apart from 20 * 1 < 29 */
    static const int conf[][3] = {{2, 2, 10}, {3, 2, 10}, {3, 3, 7}, {2, 1, 0}, {3, 1, 0}};
    for (size_t c = 0; c < sizeof conf / sizeof conf[0]; c++) {
        int nsh = conf[c][0], bs = conf[c][1];
        p.shuffle_buffer = conf[c][2];
        p.batch_size = bs * nsh;
        p.num_shards = 0;
        p.shard_index = 0;
        run *ref = collect(&p, 1000);   /* one process with the global batch */
        ck_assert_int_eq(ref->n, 58);
        for (int g = 0; g + 1 < ref->nbatches; g++) ck_assert_int_eq(ref->sizes[g], bs * nsh);
        p.batch_size = bs;
        run *sh[3];
        collect_shards(p, nsh, sh);
        check_partition(&p, ref, 0, sh, nsh, bs);
        for (int i = 0; i < nsh; i++) {
            ck_assert_int_eq(sh[i]->stats.records, 58);   /* every shard reads everything */
            run_free(sh[i]);
        }
        run_free(ref);
    }
    /* an endless run: the shards stay in step across epochs, batch for batch */
    p.num_epochs = 0;
    p.shuffle_buffer = 0;
    p.batch_size = 6;
    p.num_shards = 0;
    run *ref = collect(&p, 12);   /* 72 records: into the third epoch */
    p.batch_size = 3;
    p.num_shards = 2;
    run *sh[2];
    for (int i = 0; i < 2; i++) {
        p.shard_index = i;
        sh[i] = collect(&p, 12);
    }
    check_partition(&p, ref, 0, sh, 2, 3);
    for (int i = 0; i < 2; i++) run_free(sh[i]);
    run_free(ref);
}
END_TEST

START_TEST(test_skip_records) {
    write_file("r0.tfrecord", 0, 9, -1, REC_GOOD, 16, 16, 1);
    write_file("r1.tfrecord", 9, 8, -1, REC_GOOD, 16, 16, 1);
    sn_pipeline_params p = params(tpath("r*.tfrecord"), 5);
    p.preprocess.kind = SN_PREPROCESS_INCEPTION;
    p.preprocess.is_training = 1;
    p.num_epochs = 3;   /* 51 records */
    p.shuffle_buffer = 6;
    run *full = collect(&p, 1000);
    ck_assert_int_eq(full->n, 51);
    size_t img = image_floats(&p);
    /* any number of records, a multiple of the batch or not, within or past an epoch */
    static const int skips[] = {1, 3, 5, 13, 29, 50, 51, 60};
    for (size_t s = 0; s < sizeof skips / sizeof skips[0]; s++) {
        int64_t R = skips[s];
        p.skip_records = R;
        run *r = collect(&p, 1000);
        int64_t left = R < 51 ? 51 - R : 0;
        ck_assert_int_eq(r->st, SN_OK);
        ck_assert_int_eq(r->n, left);
        ck_assert_int_eq(r->nbatches, (left + 4) / 5);
        for (int b = 0; b + 1 < r->nbatches; b++) ck_assert_int_eq(r->sizes[b], 5);
        if (left) {
            ck_assert_mem_eq(r->labels, full->labels + R, (size_t)left * sizeof(int32_t));
            ck_assert_mem_eq(r->images, full->images + (size_t)R * img,
                             (size_t)left * img * sizeof(float));
        }
        ck_assert_int_eq(r->stats.records, 51);
        run_free(r);
    }
    /* on top of skip_batches: 2 batches of 5, then 3 records */
    p.skip_batches = 2;
    p.skip_records = 3;
    run *r = collect(&p, 1000);
    ck_assert_int_eq(r->n, 51 - 13);
    ck_assert_mem_eq(r->labels, full->labels + 13, (size_t)r->n * sizeof(int32_t));
    check_pixels(&p, r);
    run_free(r);

    /* a run of 3 workers of batch 2 resumed as 2 workers of batch 2 after 4 steps: the
     * records already seen are 4 * 6 = 24, the new global batch 4 does not divide them */
    p.skip_batches = 0;
    p.skip_records = 24;
    p.batch_size = 2;
    run *sh[2];
    collect_shards(p, 2, sh);
    check_partition(&p, full, 24, sh, 2, 2);
    run_free(sh[0]);
    run_free(sh[1]);
    p.skip_batches = 3;   /* both: 3 global batches of 4 after the 24 */
    collect_shards(p, 2, sh);
    check_partition(&p, full, 36, sh, 2, 2);
    run_free(sh[0]);
    run_free(sh[1]);
    run_free(full);
}
END_TEST

START_TEST(test_shard_params) {
    write_file("q.tfrecord", 0, 4, -1, REC_GOOD, 8, 8, 1);
    sn_pipeline_params p = params(tpath("q.tfrecord"), 2);
    static const struct {
        int num_shards, shard_index;
        int64_t skip_batches, skip_records;
        int batch_size;
        const char *field;
    } bad[] = {
        {2, 2, 0, 0, 2, "shard_index"},
        {3, -1, 0, 0, 2, "shard_index"},
        {0, 1, 0, 0, 2, "shard_index"},
        {1, 1, 0, 0, 2, "shard_index"},
        {-1, 0, 0, 0, 2, "num_shards"},
        {3, 0, 0, 0, INT32_MAX / 2, "num_shards"},
        {0, 0, 0, -1, 2, "skip_records"},
        {2, 1, 1, INT64_MAX - 7, 2, "skip_records"},
        {2, 0, INT64_MAX / 3, 0, 2, "skip_batches"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        p.num_shards = bad[i].num_shards;
        p.shard_index = bad[i].shard_index;
        p.skip_batches = bad[i].skip_batches;
        p.skip_records = bad[i].skip_records;
        p.batch_size = bad[i].batch_size;
        sn_pipeline *pl = (sn_pipeline *)&p;
        ck_assert_int_eq(sn_pipeline_new(ctx, &p, &pl), SN_ERR_INVALID_ARG);
        ck_assert_ptr_null(pl);
        ck_assert_msg(strstr(sn_ctx_errmsg(ctx), bad[i].field) != NULL, "case %zu: '%s' lacks "
                      "'%s'", i, sn_ctx_errmsg(ctx), bad[i].field);
    }
    /* the largest start that leaves room for one global batch is fine: nothing left */
    p.num_shards = 2;
    p.shard_index = 1;
    p.batch_size = 2;
    p.skip_batches = 1;
    p.skip_records = INT64_MAX - 8;
    run *r = collect(&p, 10);
    ck_assert_int_eq(r->st, SN_OK);
    ck_assert_int_eq(r->n, 0);
    run_free(r);
    ck_assert_int_eq(sn_pipeline_params_default().num_shards, 0);
    ck_assert_int_eq(sn_pipeline_params_default().shard_index, 0);
    ck_assert_int_eq(sn_pipeline_params_default().skip_records, 0);
}
END_TEST

START_TEST(test_shards_bad_records) {
    /* ids 0..11 in one file, no shuffle, global batch 4 = 2 shards of 2.  id 5 is not an
     * image (found by every reader: no position anywhere), ids 8 and 10 are JPEGs cut short
     * (found only by the decoding shard) */
    sn_tfrecord_writer *wr;
    ck_assert_int_eq(sn_tfrecord_writer_open(ctx, tpath("sb.tfrecord"), SN_COMPRESSION_NONE,
                                             &wr), SN_OK);
    for (int id = 0; id < 12; id++) {
        encode_id(id, 12, 12, 1);
        write_record(wr, id, id == 5 ? REC_NOT_IMAGE : id == 8 || id == 10 ? REC_TRUNC_DATA
                                                                           : REC_GOOD);
    }
    ck_assert_int_eq(sn_tfrecord_writer_close(wr), SN_OK);
    sn_pipeline_params p = params(tpath("sb.tfrecord"), 4);
    p.shuffle = 0;
    p.skip_bad = 1;
    run *ref = collect(&p, 100);   /* 0 1 2 3 | 4 6 7 [8] | 9 [10] 11 */
    static const int32_t want_ref[11] = {0, 1, 2, 3, 4, 6, 7, 7, 9, 9, 11};
    ck_assert_int_eq(ref->n, 11);
    ck_assert_mem_eq(ref->labels, want_ref, sizeof want_ref);
    ck_assert_int_eq(ref->stats.skipped, 3);
    p.batch_size = 2;
    run *sh[2];
    collect_shards(p, 2, sh);
    /* shard 0: 0 1 | 4 6 | 9 [10]; shard 1: 2 3 | 7 [8] | 11: [8] and [10] take the same
     * neighbour as in the unsharded batch, so the shards' batches are its parts exactly */
    check_partition(&p, ref, 0, sh, 2, 2);
    ck_assert_int_eq(sh[0]->stats.skipped, 2);   /* id 5, and its own id 10 */
    ck_assert_int_eq(sh[1]->stats.skipped, 2);   /* id 5, and its own id 8 */
    run_free(sh[0]);
    run_free(sh[1]);
    run_free(ref);

    /* the nearest good image is the shard's own: from position 1, global batch 1 is
     * 6 7 | [8] 9; unsharded [8] takes 7 (shard 0's part), shard 1 takes its own 9.  Batch 2
     * is [10] 11, all shard 0's: shard 1's part is empty, its end */
    p.num_shards = 0;
    p.batch_size = 4;
    p.skip_records = 1;
    ref = collect(&p, 100);
    static const int32_t want_ref1[10] = {1, 2, 3, 4, 6, 7, 7, 9, 11, 11};
    ck_assert_int_eq(ref->n, 10);
    ck_assert_mem_eq(ref->labels, want_ref1, sizeof want_ref1);
    p.batch_size = 2;
    collect_shards(p, 2, sh);
    static const int32_t want_s0[6] = {1, 2, 6, 7, 11, 11}, want_s1[4] = {3, 4, 9, 9};
    ck_assert_int_eq(sh[0]->n, 6);
    ck_assert_int_eq(sh[1]->n, 4);
    ck_assert_int_eq(sh[0]->nbatches, 3);
    ck_assert_int_eq(sh[1]->nbatches, 2);
    ck_assert_mem_eq(sh[0]->labels, want_s0, sizeof want_s0);
    ck_assert_mem_eq(sh[1]->labels, want_s1, sizeof want_s1);
    size_t img = image_floats(&p);
    ck_assert_mem_eq(sh[1]->images + 2 * img, ref->images + 7 * img, img * sizeof(float));
    ck_assert_mem_eq(sh[1]->images + 3 * img, ref->images + 7 * img, img * sizeof(float));
    /* every other image is the unsharded one */
    ck_assert_mem_eq(sh[0]->images, ref->images, 2 * img * sizeof(float));
    ck_assert_mem_eq(sh[1]->images, ref->images + 2 * img, 2 * img * sizeof(float));
    ck_assert_mem_eq(sh[0]->images + 2 * img, ref->images + 4 * img, 2 * img * sizeof(float));
    ck_assert_mem_eq(sh[0]->images + 4 * img, ref->images + 8 * img, 2 * img * sizeof(float));
    run_free(sh[0]);
    run_free(sh[1]);
    run_free(ref);

    /* 3 shards of 1 from position 0: shard 1 owns positions 1, 4, 7, 10 = ids 1, 4, [8], 11;
     * its batch 2 is [8] alone, every image failed: a sharded pipeline stops rather than
     * drop it; shard 2 (positions 2, 5, 8 = ids 2, 6, 9) decodes nothing bad */
    p.skip_records = 0;
    p.num_shards = 3;
    p.batch_size = 1;
    p.shard_index = 1;
    run *r = collect(&p, 100);
    ck_assert_int_eq(r->st, SN_ERR_FORMAT);
    ck_assert_int_eq(r->n, 2);
    ck_assert_msg(strstr(r->msg, "shard 1 of 3") && strstr(r->msg, "stream records 7 to 7"),
                  "%s", r->msg);
    run_free(r);
    p.shard_index = 2;
    r = collect(&p, 100);
    ck_assert_int_eq(r->st, SN_OK);
    static const int32_t want2[3] = {2, 6, 9};
    ck_assert_int_eq(r->n, 3);
    ck_assert_mem_eq(r->labels, want2, sizeof want2);
    ck_assert_int_eq(r->stats.skipped, 1);   /* id 5 only */
    run_free(r);

    /* without skip_bad: id 5 (position 5, global batch 1) stops both shards after batch 0,
     * whichever part it falls in */
    p.skip_bad = 0;
    p.num_shards = 2;
    p.batch_size = 2;
    for (int i = 0; i < 2; i++) {
        p.shard_index = i;
        r = collect(&p, 100);
        ck_assert_int_eq(r->st, SN_ERR_FORMAT);
        ck_assert_int_eq(r->n, 2);
        ck_assert_ptr_nonnull(strstr(r->msg, tpath("sb.tfrecord")));
        ck_assert_ptr_nonnull(strstr(r->msg, "neither JPEG nor PNG"));
        run_free(r);
    }
    /* ... and an image that does not decode stops only the shard that owns it: the others
     * never decode it.  ids 0..7, id 4 cut short: position 4, shard 0's part of batch 1 */
    write_file("sd.tfrecord", 0, 8, 4, REC_TRUNC_DATA, 12, 12, 1);
    p.pattern = tpath("sd.tfrecord");
    p.shard_index = 0;
    r = collect(&p, 100);
    ck_assert_int_eq(r->st, SN_ERR_FORMAT);
    ck_assert_int_eq(r->n, 2);
    ck_assert_ptr_nonnull(strstr(r->msg, tpath("sd.tfrecord")));
    run_free(r);
    p.shard_index = 1;
    r = collect(&p, 100);
    ck_assert_int_eq(r->st, SN_OK);
    static const int32_t want_sd1[4] = {2, 3, 6, 7};
    ck_assert_int_eq(r->n, 4);
    ck_assert_mem_eq(r->labels, want_sd1, sizeof want_sd1);
    ck_assert_int_eq(r->stats.skipped, 0);
    run_free(r);
}
END_TEST

/* ---- shutting down ------------------------------------------------------------------------ */

START_TEST(test_free_mid_stream) {
    write_file("f.tfrecord", 0, 20, -1, REC_GOOD, 24, 24, 1);
    sn_pipeline_params p = params(tpath("f.tfrecord"), 3);
    p.num_epochs = 0;   /* endless */
    p.queue_batches = 2;
    p.num_threads = 4;
    for (int round = 0; round < 20; round++) {
        sn_pipeline *pl;
        ck_assert_int_eq(sn_pipeline_new(ctx, &p, &pl), SN_OK);
        const float *x;
        const int32_t *y;
        int n;
        for (int i = 0; i < round % 4; i++) {
            ck_assert_int_eq(sn_pipeline_next(pl, &x, &y, &n), SN_OK);
            ck_assert_int_eq(n, 3);
        }
        if (round % 2) usleep(20000);   /* let the queue fill and every thread block */
        sn_pipeline_stats st = sn_pipeline_get_stats(pl);
        ck_assert_int_eq(st.batches, round % 4);
        sn_pipeline_free(pl);
    }
    /* endless over 20 records: epochs go by */
    sn_pipeline *pl;
    ck_assert_int_eq(sn_pipeline_new(ctx, &p, &pl), SN_OK);
    const float *x;
    const int32_t *y;
    int n;
    for (int i = 0; i < 30; i++) {
        ck_assert_int_eq(sn_pipeline_next(pl, &x, &y, &n), SN_OK);
        ck_assert_int_eq(n, 3);
    }
    ck_assert_int_ge(sn_pipeline_get_stats(pl).epoch, 4);
    sn_pipeline_free(pl);
    sn_pipeline_free(NULL);
}
END_TEST

/* ---- bad input ---------------------------------------------------------------------------- */

/* One bad record at index 5 of 10 (ids 0..9), batch 2, no shuffle. */
static const struct bad_case {
    rec_kind kind;
    const char *what;   /* expected in the message */
} bad_cases[] = {
    {REC_BAD_PROTO, "example"},
    {REC_LABEL_FLOAT, "image/class/label"},
    {REC_LABEL_BYTES, "image/class/label"},
    {REC_NOT_IMAGE, "neither JPEG nor PNG"},
    {REC_HUGE, "60000x60000"},
    {REC_LABEL_RANGE, "label 1000"},
    {REC_TRUNC_DATA, "jpeg"},
};

START_TEST(test_bad_record) {
    const struct bad_case *bc = &bad_cases[_i];
    int bad_at = bc->kind == REC_HUGE || bc->kind == REC_TRUNC_DATA ? 4 : 5;   /* a JPEG id */
    uint64_t off = write_file("bad.tfrecord", 0, 10, bad_at, bc->kind, 16, 12, 1);
    char offs[64];
    snprintf(offs, sizeof offs, "record at offset %llu:", (unsigned long long)off);
    sn_pipeline_params p = params(tpath("bad.tfrecord"), 2);
    p.shuffle = 0;
    p.num_classes = 100;
    for (int threads = 1; threads <= 4; threads += 3) {
        p.num_threads = threads;
        p.skip_bad = 0;
        run *r = collect(&p, 100);
        ck_assert_msg(r->st == SN_ERR_FORMAT, "%s: %s", sn_status_name(r->st), r->msg);
        ck_assert_int_eq(r->n, 4);                    /* batches 0 and 1 came first */
        ck_assert_ptr_nonnull(strstr(r->msg, tpath("bad.tfrecord")));
        ck_assert_msg(strstr(r->msg, offs) != NULL, "'%s' lacks '%s'", r->msg, offs);
        ck_assert_msg(strstr(r->msg, bc->what) != NULL, "'%s' lacks '%s'", r->msg, bc->what);
        run_free(r);

        p.skip_bad = 1;
        r = collect(&p, 100);
        ck_assert_int_eq(r->st, SN_OK);
        ck_assert_int_eq(r->stats.skipped, 1);
        ck_assert_int_eq(r->stats.records, 10);
        if (bc->kind == REC_TRUNC_DATA) {
            /* found while decoding: its slot holds its batch neighbour, batches stay full */
            ck_assert_int_eq(r->n, 10);
            ck_assert_int_eq(r->labels[4], 5);
            ck_assert_int_eq(r->labels[5], 5);
            size_t img = image_floats(&p);
            ck_assert_mem_eq(r->images + 4 * img, r->images + 5 * img, img * sizeof(float));
        } else {
            /* found by the reader: the next record takes its place in the stream */
            ck_assert_int_eq(r->n, 9);
            for (int i = 0, id = 0; i < 9; i++, id++) {
                if (id == bad_at) id++;
                ck_assert_int_eq(r->labels[i], id);
            }
        }
        run_free(r);
    }
    /* the error is sticky */
    p.skip_bad = 0;
    sn_pipeline *pl;
    ck_assert_int_eq(sn_pipeline_new(ctx, &p, &pl), SN_OK);
    const float *x;
    const int32_t *y;
    int n;
    sn_status st;
    while ((st = sn_pipeline_next(pl, &x, &y, &n)) == SN_OK) ck_assert_int_eq(n, 2);
    ck_assert_int_eq(st, SN_ERR_FORMAT);
    ck_assert_int_eq(sn_pipeline_next(pl, &x, &y, &n), SN_ERR_FORMAT);
    ck_assert_int_eq(n, 0);
    sn_pipeline_free(pl);
}
END_TEST

/* A corrupt or cut frame: the rest of that file is lost, counted once; the next file
 * follows.  _i: 0 data crc, 1 length crc, 2 truncated file. */
START_TEST(test_bad_frame) {
    uint64_t off = write_file("x0.tfrecord", 0, 10, 6, REC_GOOD, 14, 14, 1);
    write_file("x1.tfrecord", 10, 5, -1, REC_GOOD, 14, 14, 1);
    const char *path = tpath("x0.tfrecord");
    FILE *f = fopen(path, "r+b");
    ck_assert_ptr_nonnull(f);
    if (_i == 2) {
        ck_assert_int_eq(ftruncate(fileno(f), (off_t)off + 20), 0);
    } else {
        fseek(f, (long)off + (_i == 0 ? 30 : 3), SEEK_SET);
        int ch = fgetc(f);
        fseek(f, (long)off + (_i == 0 ? 30 : 3), SEEK_SET);
        fputc(ch ^ 0x10, f);
    }
    fclose(f);
    static const char *const what[] = {"data crc mismatch", "length crc mismatch", "truncated"};
    char offs[64];
    snprintf(offs, sizeof offs, "record at offset %llu", (unsigned long long)off);
    sn_pipeline_params p = params(tpath("x?.tfrecord"), 4);
    p.shuffle = 0;
    run *r = collect(&p, 100);
    ck_assert_int_eq(r->st, SN_ERR_FORMAT);
    ck_assert_int_eq(r->n, 4);   /* batch 1 holds record 6 */
    ck_assert_ptr_nonnull(strstr(r->msg, path));
    ck_assert_msg(strstr(r->msg, offs) != NULL, "'%s' lacks '%s'", r->msg, offs);
    ck_assert_msg(strstr(r->msg, what[_i]) != NULL, "'%s' lacks '%s'", r->msg, what[_i]);
    run_free(r);

    p.skip_bad = 1;
    r = collect(&p, 100);
    ck_assert_int_eq(r->st, SN_OK);
    ck_assert_int_eq(r->n, 11);   /* 0..5 of x0, then all of x1 */
    for (int i = 0; i < 11; i++) ck_assert_int_eq(r->labels[i], i < 6 ? i : i + 4);
    ck_assert_int_eq(r->stats.skipped, 1);
    ck_assert_int_eq(r->stats.records, 11);
    run_free(r);

    /* shuffled and interleaved, twice through: every epoch loses the same records */
    p.shuffle = 1;
    p.num_epochs = 2;
    r = collect(&p, 100);
    ck_assert_int_eq(r->n, 22);
    ck_assert_int_eq(r->stats.skipped, 2);
    for (int e = 0; e < 2; e++) {
        int seen[15] = {0};
        for (int i = 0; i < 11; i++) seen[r->labels[11 * e + i]]++;
        for (int id = 0; id < 15; id++) ck_assert_int_eq(seen[id], id >= 6 && id < 10 ? 0 : 1);
    }
    run_free(r);
}
END_TEST

START_TEST(test_bad_decode_batches) {
    /* ids 0..7; ids 4 and 6 (JPEGs) cut short; batch size 2: batch 2 = {4, 5} keeps 5 twice,
     * with batch size 1 the batches of 4 and 6 are dropped */
    sn_tfrecord_writer *wr;
    ck_assert_int_eq(sn_tfrecord_writer_open(ctx, tpath("d.tfrecord"), SN_COMPRESSION_NONE, &wr),
                     SN_OK);
    for (int id = 0; id < 8; id++) {
        encode_id(id, 12, 12, 1);
        write_record(wr, id, id == 4 || id == 6 ? REC_TRUNC_DATA : REC_GOOD);
    }
    ck_assert_int_eq(sn_tfrecord_writer_close(wr), SN_OK);
    sn_pipeline_params p = params(tpath("d.tfrecord"), 2);
    p.shuffle = 0;
    p.skip_bad = 1;
    run *r = collect(&p, 100);
    static const int32_t want2[8] = {0, 1, 2, 3, 5, 5, 7, 7};
    ck_assert_int_eq(r->n, 8);
    ck_assert_mem_eq(r->labels, want2, sizeof want2);
    ck_assert_int_eq(r->stats.skipped, 2);
    run_free(r);
    p.batch_size = 1;
    r = collect(&p, 100);
    static const int32_t want1[6] = {0, 1, 2, 3, 5, 7};
    ck_assert_int_eq(r->n, 6);
    ck_assert_int_eq(r->nbatches, 6);
    ck_assert_mem_eq(r->labels, want1, sizeof want1);
    ck_assert_int_eq(r->stats.batches, 6);
    run_free(r);

    /* nothing usable at all: an endless run must not spin */
    write_file("e.tfrecord", 0, 3, -1, REC_GOOD, 8, 8, 1);
    FILE *f = fopen(tpath("e.tfrecord"), "wb");   /* now empty */
    fclose(f);
    p = params(tpath("e.tfrecord"), 2);
    p.num_epochs = 0;
    r = collect(&p, 10);
    ck_assert_int_eq(r->st, SN_ERR_NOT_FOUND);
    ck_assert_ptr_nonnull(strstr(r->msg, "no usable record"));
    run_free(r);
    p.num_epochs = 1;   /* a finite run simply ends */
    r = collect(&p, 10);
    ck_assert_int_eq(r->st, SN_OK);
    ck_assert_int_eq(r->n, 0);
    run_free(r);
}
END_TEST

Suite *suite_pipeline(void) {
    Suite *s = suite_create("pipeline");
    TCase *tc = tcase_create("stream");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_epochs_each_record_once);
    tcase_add_test(tc, test_order_seed_and_file_order);
    tcase_add_test(tc, test_pixels_equal_direct);
    tcase_add_test(tc, test_threads_and_queues_identical);
    tcase_add_test(tc, test_skip_batches_resumes);
    tcase_add_test(tc, test_labels_offset_and_range);
    tcase_add_test(tc, test_free_mid_stream);
    suite_add_tcase(s, tc);

    tc = tcase_create("shards");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_shards_partition_global_batch);
    tcase_add_test(tc, test_skip_records);
    tcase_add_test(tc, test_shard_params);
    tcase_add_test(tc, test_shards_bad_records);
    suite_add_tcase(s, tc);

    tc = tcase_create("bad_input");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_loop_test(tc, test_bad_record, 0, (int)(sizeof bad_cases / sizeof bad_cases[0]));
    tcase_add_loop_test(tc, test_bad_frame, 0, 3);
    tcase_add_test(tc, test_bad_decode_batches);
    suite_add_tcase(s, tc);
    return s;
}
