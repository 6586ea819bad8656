/* bench_data.c: input pipeline throughput, next to the memory read rate of the same machine.
 *
 *   bench_data [--dir /tmp] [--threads N]
 *
 * In one run:
 *   (a) memory read: summing a 256 MB buffer (the ceiling for anything that reads records);
 *   (b) TFRecord reading, both CRCs checked, from the page cache: 128 MB of 100 KB records
 *       (GB/s) and 32 MB of 1 KB records (records/s);
 *   (c) 48x48 grayscale JPEGs: decode + lenet preprocessing, one thread calling
 *       sn_image_decode_into + sn_preprocess (images/s per core), then the whole pipeline
 *       (reader, shuffle, N decode threads, batches of 32);
 *   (d) the same for 224x224 inception training crops from 500x375 color JPEGs.
 * Each rate is the median of a few repetitions (the pipeline: one long run).  Writes its
 * files to a temporary folder under --dir and removes them. */
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

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return v[n / 2];
}

#define CHECK(expr)                                                                   \
    do {                                                                              \
        if ((expr) != SN_OK) {                                                        \
            fprintf(stderr, "bench_data: %s: %s\n", #expr, sn_ctx_errmsg(ctx));       \
            exit(1);                                                                  \
        }                                                                             \
    } while (0)

static sn_ctx *ctx;

/* A photo-like picture: smooth shading, an edge, and some noise (so the JPEG size is
 * realistic: about 1.5 KB at 48x48 gray, 50-70 KB at 500x375 color). */
static sn_tensor *picture(int h, int w, int c, uint64_t seed) {
    int64_t dims[3] = {h, w, c};
    sn_tensor *t;
    CHECK(sn_tensor_new(ctx, SN_DTYPE_U8, 3, dims, &t));
    uint8_t *p = sn_tensor_data(t);
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int k = 0; k < c; k++) {
                s ^= s << 13, s ^= s >> 7, s ^= s << 17;
                int v = 40 + x * 120 / w + y * 60 / h + k * 20 + (int)(s % 24);
                if ((x - w / 2) * (x - w / 2) + (y - h / 3) * (y - h / 3) < h * w / 16) v += 50;
                p[((size_t)y * w + x) * c + k] = (uint8_t)(v > 255 ? 255 : v);
            }
    return t;
}

/* Writes `n` records of `distinct` different JPEGs (h x w x c) as Examples into path;
 * returns the encoded bytes of image 0 in *enc (caller frees). */
static void write_jpegs(const char *path, int n, int distinct, int h, int w, int c,
                        uint8_t **enc0, size_t *enc0_len) {
    sn_tensor **e = calloc((size_t)distinct, sizeof *e);
    for (int i = 0; i < distinct; i++) {
        sn_tensor *img = picture(h, w, c, (uint64_t)i + 1);
        CHECK(sn_image_encode_jpeg(ctx, img, 90, &e[i]));
        sn_tensor_free(img);
    }
    sn_tfrecord_writer *wr;
    sn_example *ex;
    CHECK(sn_tfrecord_writer_open(ctx, path, SN_COMPRESSION_NONE, &wr));
    CHECK(sn_example_new(ctx, &ex));
    for (int i = 0; i < n; i++) {
        sn_image_example im = {.encoded = sn_tensor_data(e[i % distinct]),
                               .encoded_len = sn_tensor_nbytes(e[i % distinct]),
                               .label = i % 7, .height = h, .width = w};
        snprintf(im.format, sizeof im.format, "jpeg");
        CHECK(sn_example_set_image(ex, &im));
        const uint8_t *d;
        size_t len;
        CHECK(sn_example_serialize(ex, &d, &len));
        CHECK(sn_tfrecord_write(wr, d, len));
    }
    CHECK(sn_tfrecord_writer_close(wr));
    sn_example_free(ex);
    *enc0_len = sn_tensor_nbytes(e[0]);
    *enc0 = malloc(*enc0_len);
    memcpy(*enc0, sn_tensor_data(e[0]), *enc0_len);
    for (int i = 0; i < distinct; i++) sn_tensor_free(e[i]);
    free(e);
}

/* Records/s and bytes/s of reading path once (median of reps, after one warm-up). */
static void time_read(const char *path, int reps, double *rec_s, double *gb_s) {
    double *t = malloc((size_t)reps * sizeof *t);
    uint64_t bytes = 0, recs = 0;
    for (int r = -1; r < reps; r++) {
        sn_tfrecord_reader *rd;
        CHECK(sn_tfrecord_reader_open(ctx, path, SN_COMPRESSION_NONE, &rd));
        const uint8_t *d;
        size_t len;
        sn_status st;
        bytes = recs = 0;
        double t0 = now();
        while ((st = sn_tfrecord_read(rd, &d, &len)) == SN_OK) bytes += len, recs++;
        if (r >= 0) t[r] = now() - t0;
        if (st != SN_ERR_NOT_FOUND) CHECK(st);
        sn_tfrecord_reader_close(rd);
    }
    double m = median(t, reps);
    *rec_s = (double)recs / m;
    *gb_s = (double)bytes / m / 1e9;
    free(t);
}

static void write_blobs(const char *path, size_t rec_bytes, size_t total) {
    uint8_t *b = malloc(rec_bytes);
    for (size_t i = 0; i < rec_bytes; i++) b[i] = (uint8_t)(i * 131 + 7);
    sn_tfrecord_writer *wr;
    CHECK(sn_tfrecord_writer_open(ctx, path, SN_COMPRESSION_NONE, &wr));
    for (size_t done = 0; done < total; done += rec_bytes) {
        b[0] = (uint8_t)done;
        CHECK(sn_tfrecord_write(wr, b, rec_bytes));
    }
    CHECK(sn_tfrecord_writer_close(wr));
    free(b);
}

/* Images/s of one thread decoding + preprocessing one encoded image `n` times. */
static double time_direct(const uint8_t *enc, size_t len, int channels,
                          const sn_preprocess_params *pp, int n) {
    sn_image_params ip = sn_image_params_default();
    ip.channels = channels;
    int h, w, c;
    CHECK(sn_image_info(ctx, enc, len, NULL, &h, &w, &c));
    size_t cap = (size_t)h * (size_t)w * (size_t)channels;
    uint8_t *buf = malloc(cap);
    float *out = malloc((size_t)pp->out_height * (size_t)pp->out_width * 3 * sizeof(float));
    double t[3];
    for (int r = 0; r < 3; r++) {
        double t0 = now();
        for (int i = 0; i < n; i++) {
            CHECK(sn_image_decode_into(ctx, enc, len, &ip, buf, cap, &h, &w, &c));
            CHECK(sn_preprocess(ctx, pp, buf, h, w, c, NULL, (uint64_t)i, out));
        }
        t[r] = now() - t0;
    }
    free(buf);
    free(out);
    return n / median(t, 3);
}

/* Images/s through the pipeline: `images` images, batches of 32, `threads` threads. */
static double time_pipeline(const char *path, int channels, const sn_preprocess_params *pp,
                            int threads, int64_t images) {
    sn_pipeline_params p = sn_pipeline_params_default();
    p.pattern = path;
    p.batch_size = 32;
    p.channels = channels;
    p.preprocess = *pp;
    p.num_threads = threads;
    p.seed = 1;
    sn_pipeline *pl;
    CHECK(sn_pipeline_new(ctx, &p, &pl));
    const float *x;
    const int32_t *y;
    int n;
    CHECK(sn_pipeline_next(pl, &x, &y, &n));   /* start-up (shuffle buffer fill) not timed */
    int64_t got = 0;
    double t0 = now();
    while (got < images) {
        CHECK(sn_pipeline_next(pl, &x, &y, &n));
        got += n;
    }
    double dt = now() - t0;
    sn_pipeline_free(pl);
    return (double)got / dt;
}

int main(int argc, char **argv) {
    const char *dir = "/tmp";
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int threads = cores > 0 ? (int)cores : 1;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--dir")) dir = argv[i + 1];
        else if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
        else {
            fprintf(stderr, "bench_data: unknown flag %s\n", argv[i]);
            return 2;
        }
    }
    if (threads < 1 || threads > 256) return 2;
    sn_ctx_params cp = sn_ctx_params_default();
    if (sn_ctx_new(&cp, &ctx) != SN_OK) return 1;
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s/bench_data.XXXXXX", dir);
    if (!mkdtemp(tmp)) {
        perror("bench_data: mkdtemp");
        return 1;
    }
    char big[1100], small[1100], fer[1100], photo[1100];
    snprintf(big, sizeof big, "%s/big.tfrecord", tmp);
    snprintf(small, sizeof small, "%s/small.tfrecord", tmp);
    snprintf(fer, sizeof fer, "%s/fer.tfrecord", tmp);
    snprintf(photo, sizeof photo, "%s/photo.tfrecord", tmp);

    /* (a) memory read */
    size_t nmem = (size_t)256 << 20;
    uint64_t *mem = malloc(nmem);
    for (size_t i = 0; i < nmem / 8; i++) mem[i] = i;
    double tm[5];
    uint64_t sum = 0;
    for (int r = 0; r < 5; r++) {
        double t0 = now();
        uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        for (size_t i = 0; i < nmem / 8; i += 4)
            s0 += mem[i], s1 += mem[i + 1], s2 += mem[i + 2], s3 += mem[i + 3];
        tm[r] = now() - t0;
        sum += s0 + s1 + s2 + s3;
    }
    double mem_gb = (double)nmem / median(tm, 5) / 1e9;
    free(mem);

    /* (b) TFRecord reading */
    write_blobs(big, 100 << 10, (size_t)128 << 20);
    write_blobs(small, 1 << 10, (size_t)32 << 20);
    double big_rec, big_gb, small_rec, small_gb;
    time_read(big, 3, &big_rec, &big_gb);
    time_read(small, 3, &small_rec, &small_gb);
    unlink(big);
    unlink(small);

    /* (c) 48x48 gray, lenet */
    uint8_t *e48, *e500;
    size_t l48, l500;
    write_jpegs(fer, 4096, 256, 48, 48, 1, &e48, &l48);
    sn_preprocess_params lenet = sn_preprocess_params_default();
    lenet.kind = SN_PREPROCESS_LENET;
    lenet.out_height = lenet.out_width = 48;
    double c1 = time_direct(e48, l48, 1, &lenet, 20000);
    double cn = time_pipeline(fer, 1, &lenet, threads, 60000);

    /* (d) 500x375 color, inception training crops to 224x224 */
    write_jpegs(photo, 256, 32, 375, 500, 3, &e500, &l500);
    sn_preprocess_params incep = sn_preprocess_params_default();
    incep.kind = SN_PREPROCESS_INCEPTION;
    incep.is_training = 1;
    incep.out_height = incep.out_width = 224;
    double d1 = time_direct(e500, l500, 3, &incep, 100);
    double dn = time_pipeline(photo, 3, &incep, threads, 600);

    printf("bench_data (%d threads for the pipeline, %ld cores online)\n", threads, cores);
    printf("  %-52s %10.2f GB/s\n", "(a) memory read (sum of 256 MB)", mem_gb);
    printf("  %-52s %10.2f GB/s  %9.0f rec/s  %.2f x memory\n",
           "(b) TFRecord read, 100 KB records, crc32c x2", big_gb, big_rec, big_gb / mem_gb);
    printf("  %-52s %10.2f GB/s  %9.0f rec/s  %.2f x memory\n",
           "    TFRecord read, 1 KB records, crc32c x2", small_gb, small_rec, small_gb / mem_gb);
    printf("  %-52s %10.0f img/s (JPEG %zu B)\n", "(c) 48x48 gray JPEG decode + lenet, 1 thread",
           c1, l48);
    printf("  %-52s %10.0f img/s  %.0f img/s/thread  %.2f x 1 thread\n",
           "    pipeline (reader + threads, batches of 32)", cn, cn / threads, cn / c1);
    printf("  %-52s %10.0f img/s (JPEG %zu B)\n",
           "(d) 500x375 JPEG decode + inception train 224, 1 thr", d1, l500);
    printf("  %-52s %10.0f img/s  %.0f img/s/thread  %.2f x 1 thread\n",
           "    pipeline (reader + threads, batches of 32)", dn, dn / threads, dn / d1);
    if (sum == 42) printf("\n");   /* keeps the memory loop */
    unlink(fer);
    unlink(photo);
    rmdir(tmp);
    free(e48);
    free(e500);
    sn_ctx_free(ctx);
    return 0;
}
