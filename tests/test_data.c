/* test_data.c: the data I/O layer: crc32c, TFRecord files, tf.train.Example, JPEG/PNG.
 * Expected bytes come from docs/formats.md ("TFRecord", "tf.train.Example" and
 * "Known-answer vectors"), not from our writer. */
#include <check.h>
#include <dirent.h>
#include <png.h>
#include <turbojpeg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>
#include "../lib/io/crc32c.h"
#include "testutil.h"

/* ---- fixtures: a temporary directory per test -------------------------------------------- */

static char tmpdir[64];
static sn_ctx *ctx;

static void setup(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/sn_test_data_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
    ctx = tu_ctx();
}

static void teardown(void) {
    /* rescan until the directory is empty: readdir need not list entries of a directory
     * being changed under it */
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
    sn_ctx_free(ctx);
}

static const char *tpath(const char *name) {
    static char buf[4][512];
    static int next;
    char *p = buf[next++ & 3];
    snprintf(p, 512, "%s/%s", tmpdir, name);
    return p;
}

static void write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(data, 1, n, f), n);
    fclose(f);
}

/* Whole file into a malloc'd buffer. */
static uint8_t *read_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(len ? (size_t)len : 1);
    ck_assert_uint_eq(fread(b, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    *n = (size_t)len;
    return b;
}

/* Deterministic bytes. */
static void fill_bytes(uint8_t *p, size_t n, uint64_t seed) {
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 7;
    for (size_t i = 0; i < n; i++) {
        s ^= s >> 12, s ^= s << 25, s ^= s >> 27;
        p[i] = (uint8_t)((s * 2685821657736338717ull) >> 56);
    }
}

/* ---- crc32c ------------------------------------------------------------------------------- */

static uint32_t crc_bitwise(const uint8_t *p, size_t n) {
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1u)));
    }
    return ~c;
}

START_TEST(test_crc32c_vectors) {
    uint8_t zeros[32], ones[32];
    memset(zeros, 0, sizeof zeros);
    memset(ones, 0xff, sizeof ones);
    /* docs/formats.md, "Known-answer vectors" */
    struct { const void *p; size_t n; uint32_t crc, masked; } v[] = {
        {"123456789", 9, 0xE3069283u, 0xC78AB0E5u},
        {"", 0, 0x00000000u, 0xA282EAD8u},
        {zeros, 32, 0x8A9136AAu, 0x0FD7FFFAu},
        {ones, 32, 0x62A8AB43u, 0xF909B029u},
        {"a", 1, 0xC1D04330u, 0x28E46E78u},
        {zeros, 8, 0x8C28B28Au, 0x07980329u},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        ck_assert_uint_eq(sn__crc32c(v[i].p, v[i].n), v[i].crc);
        ck_assert_uint_eq(sn__crc32c_extend_sw(0, v[i].p, v[i].n), v[i].crc);
        ck_assert_uint_eq(sn__crc32c_mask(v[i].crc), v[i].masked);
        ck_assert_uint_eq(sn__crc32c_unmask(v[i].masked), v[i].crc);
    }
    /* extend continues a CRC: CRC(A||B) = Extend(CRC(A), B) */
    ck_assert_uint_eq(sn__crc32c_extend(sn__crc32c("1234", 4), "56789", 5), 0xE3069283u);
}
END_TEST

/* Both paths against the bitwise definition at every length class and alignment the
 * hardware loop distinguishes (bytes, words, 3x256 and 3x8192 blocks). */
START_TEST(test_crc32c_paths) {
    size_t cap = 3 * 8192 * 2 + 3 * 256 + 64;
    uint8_t *buf = malloc(cap);
    fill_bytes(buf, cap, 1);
    size_t lens[] = {0, 1, 7, 8, 9, 63, 767, 768, 769, 1000, 3 * 8192 - 1, 3 * 8192,
                     3 * 8192 + 3 * 256 + 13, 3 * 8192 * 2 + 3 * 256 + 40};
    for (size_t a = 0; a < 8; a += 3) {
        for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
            size_t n = lens[i];
            uint32_t ref = crc_bitwise(buf + a, n);
            ck_assert_uint_eq(sn__crc32c(buf + a, n), ref);
            ck_assert_uint_eq(sn__crc32c_extend_sw(0, buf + a, n), ref);
            size_t cut = n / 3;
            ck_assert_uint_eq(sn__crc32c_extend(sn__crc32c(buf + a, cut), buf + a + cut, n - cut),
                              ref);
        }
    }
    free(buf);
}
END_TEST

/* ---- TFRecord ----------------------------------------------------------------------------- */

static size_t record_len(int i) {   /* 0-byte records, small ones, and ones > the window */
    static const size_t big[] = {0, 1, 255, 4096, 70000, 300000, 1 << 20};
    return i % 37 == 0 ? big[(i / 37) % 7] : (size_t)(i * 7919) % 2000;
}

static void write_records(const char *path, sn_compression c, int n, uint64_t seed) {
    sn_tfrecord_writer *w;
    ck_assert_int_eq(sn_tfrecord_writer_open(ctx, path, c, &w), SN_OK);
    uint8_t *buf = malloc(1 << 20);
    for (int i = 0; i < n; i++) {
        size_t len = record_len(i);
        fill_bytes(buf, len, seed + (uint64_t)i);
        ck_assert_int_eq(sn_tfrecord_write(w, buf, len), SN_OK);
    }
    free(buf);
    ck_assert_int_eq(sn_tfrecord_writer_close(w), SN_OK);
}

static void check_records(const char *path, sn_compression c, int n, uint64_t seed) {
    sn_tfrecord_reader *r;
    ck_assert_int_eq(sn_tfrecord_reader_open(ctx, path, c, &r), SN_OK);
    uint8_t *want = malloc(1 << 20);
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        const uint8_t *d;
        size_t len;
        ck_assert_uint_eq(sn_tfrecord_reader_offset(r), off);
        ck_assert_msg(sn_tfrecord_read(r, &d, &len) == SN_OK, "record %d: %s", i,
                      sn_ctx_errmsg(ctx));
        ck_assert_uint_eq(len, record_len(i));
        fill_bytes(want, len, seed + (uint64_t)i);
        ck_assert(len == 0 || memcmp(d, want, len) == 0);
        off += 16 + len;
    }
    const uint8_t *d;
    size_t len;
    ck_assert_int_eq(sn_tfrecord_read(r, &d, &len), SN_ERR_NOT_FOUND);
    ck_assert_int_eq(sn_tfrecord_read(r, &d, &len), SN_ERR_NOT_FOUND);   /* stays at the end */
    ck_assert_uint_eq(sn_tfrecord_reader_offset(r), off);
    sn_tfrecord_reader_close(r);
    free(want);
}

START_TEST(test_tfrecord_roundtrip) {   /* _i: NONE, ZLIB, GZIP */
    sn_compression c = (sn_compression)_i;
    const char *p = tpath("r.tfrecord");
    write_records(p, c, 260, 100);
    check_records(p, c, 260, 100);
    if (c != SN_COMPRESSION_ZLIB) check_records(p, SN_COMPRESSION_AUTO, 260, 100);
    size_t n;
    uint8_t *bytes = read_file(p, &n);
    if (c == SN_COMPRESSION_GZIP) ck_assert(bytes[0] == 0x1f && bytes[1] == 0x8b);
    if (c == SN_COMPRESSION_ZLIB) ck_assert_uint_eq(bytes[0], 0x78);
    free(bytes);
    /* an empty file has no records, whatever the compression */
    write_file(p, "", 0);
    check_records(p, c, 0, 0);
}
END_TEST

START_TEST(test_tfrecord_framing_bytes) {
    /* docs/formats.md, "Known-answer vectors": the records "" and "abc", byte for byte */
    static const uint8_t want[] = {
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x29, 0x03, 0x98, 0x07,
        0xd8, 0xea, 0x82, 0xa2,
        0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xb0, 0x99, 0x49, 0x0e,
        0x61, 0x62, 0x63, 0x6e, 0x57, 0xf1, 0x21};
    /* and the same framing computed here from the table of docs/formats.md, "TFRecord" */
    uint8_t built[sizeof want], *q = built;
    const char *payloads[2] = {"", "abc"};
    for (int i = 0; i < 2; i++) {
        size_t n = strlen(payloads[i]);
        uint8_t len8[8] = {(uint8_t)n};
        memcpy(q, len8, 8);
        uint32_t m = sn__crc32c_mask(crc_bitwise(len8, 8));
        for (int k = 0; k < 4; k++) q[8 + k] = (uint8_t)(m >> 8 * k);
        memcpy(q + 12, payloads[i], n);
        m = sn__crc32c_mask(crc_bitwise((const uint8_t *)payloads[i], n));
        for (int k = 0; k < 4; k++) q[12 + n + k] = (uint8_t)(m >> 8 * k);
        q += 16 + n;
    }
    ck_assert_mem_eq(built, want, sizeof want);

    const char *p = tpath("tiny.tfrecord");
    sn_tfrecord_writer *w;
    ck_assert_int_eq(sn_tfrecord_writer_open(ctx, p, SN_COMPRESSION_NONE, &w), SN_OK);
    ck_assert_int_eq(sn_tfrecord_write(w, NULL, 0), SN_OK);
    ck_assert_int_eq(sn_tfrecord_write(w, "abc", 3), SN_OK);
    ck_assert_int_eq(sn_tfrecord_writer_flush(w), SN_OK);
    ck_assert_int_eq(sn_tfrecord_writer_close(w), SN_OK);
    size_t n;
    uint8_t *got = read_file(p, &n);
    ck_assert_uint_eq(n, sizeof want);
    ck_assert_mem_eq(got, want, sizeof want);
    free(got);
}
END_TEST

/* Reads path to the first failure; returns its status and checks the message has `needle`
 * and names the file. */
static sn_status read_until_error(const char *path, sn_compression c, uint64_t max_record,
                                  int *count, const char *needle) {
    sn_tfrecord_reader *r;
    ck_assert_int_eq(sn_tfrecord_reader_open(ctx, path, c, &r), SN_OK);
    if (max_record) sn_tfrecord_reader_set_max_record(r, max_record);
    const uint8_t *d;
    size_t len;
    sn_status st;
    *count = 0;
    while ((st = sn_tfrecord_read(r, &d, &len)) == SN_OK) (*count)++;
    if (st != SN_ERR_NOT_FOUND) {
        ck_assert_msg(strstr(sn_ctx_errmsg(ctx), needle) && strstr(sn_ctx_errmsg(ctx), path),
                      "message '%s' lacks '%s' or the path", sn_ctx_errmsg(ctx), needle);
        ck_assert_int_eq(sn_tfrecord_read(r, &d, &len), st);   /* the error sticks */
        ck_assert_msg(strstr(sn_ctx_errmsg(ctx), needle), "repeat: %s", sn_ctx_errmsg(ctx));
    }
    sn_tfrecord_reader_close(r);
    return st;
}

/* Three records of 100 bytes: they start at offsets 0, 116 and 232. */
static uint8_t *three_records(const char *path, size_t *n) {
    sn_tfrecord_writer *w;
    uint8_t data[100];
    ck_assert_int_eq(sn_tfrecord_writer_open(ctx, path, SN_COMPRESSION_NONE, &w), SN_OK);
    for (int i = 0; i < 3; i++) {
        fill_bytes(data, sizeof data, (uint64_t)i);
        ck_assert_int_eq(sn_tfrecord_write(w, data, sizeof data), SN_OK);
    }
    ck_assert_int_eq(sn_tfrecord_writer_close(w), SN_OK);
    return read_file(path, n);
}

START_TEST(test_tfrecord_corrupt) {
    const char *p = tpath("bad.tfrecord");
    size_t n;
    uint8_t *good = three_records(p, &n);
    ck_assert_uint_eq(n, 348);
    uint8_t *bad = malloc(n);
    int count;

    write_file(p, good, 232 + 5);   /* truncated header of the third record */
    ck_assert_int_eq(read_until_error(p, SN_COMPRESSION_NONE, 0, &count,
                                      "offset 232: truncated record header"), SN_ERR_FORMAT);
    ck_assert_int_eq(count, 2);
    write_file(p, good, 232 + 12 + 50);   /* truncated data */
    ck_assert_int_eq(read_until_error(p, SN_COMPRESSION_NONE, 0, &count,
                                      "offset 232: truncated record"), SN_ERR_FORMAT);
    write_file(p, good, n - 1);   /* truncated data crc */
    ck_assert_int_eq(read_until_error(p, SN_COMPRESSION_NONE, 0, &count, "offset 232"),
                     SN_ERR_FORMAT);

    memcpy(bad, good, n);
    bad[116 + 2] ^= 0x10;   /* a bit of the second record's length */
    write_file(p, bad, n);
    ck_assert_int_eq(read_until_error(p, SN_COMPRESSION_NONE, 0, &count,
                                      "offset 116: length crc mismatch"), SN_ERR_FORMAT);
    ck_assert_int_eq(count, 1);

    memcpy(bad, good, n);
    bad[116 + 12 + 40] ^= 0x01;   /* a bit of the second record's data */
    write_file(p, bad, n);
    ck_assert_int_eq(read_until_error(p, SN_COMPRESSION_NONE, 0, &count,
                                      "offset 116: data crc mismatch"), SN_ERR_FORMAT);
    ck_assert_int_eq(count, 1);

    memcpy(bad, good, n);
    bad[n - 1] ^= 0x80;   /* the stored data crc itself */
    write_file(p, bad, n);
    ck_assert_int_eq(read_until_error(p, SN_COMPRESSION_NONE, 0, &count,
                                      "offset 232: data crc mismatch"), SN_ERR_FORMAT);

    /* enormous lengths with a valid length crc: refused before any allocation */
    uint8_t head[12] = {0};
    head[5] = 0x01;   /* 2^40 bytes */
    uint32_t m = sn__crc32c_mask(sn__crc32c(head, 8));
    for (int k = 0; k < 4; k++) head[8 + k] = (uint8_t)(m >> 8 * k);
    write_file(p, head, sizeof head);
    ck_assert_int_eq(read_until_error(p, SN_COMPRESSION_NONE, 0, &count,
                                      "offset 0: record length 1099511627776 exceeds"),
                     SN_ERR_FORMAT);
    write_file(p, good, n);   /* a configurable bound */
    ck_assert_int_eq(read_until_error(p, SN_COMPRESSION_NONE, 99, &count,
                                      "offset 0: record length 100 exceeds the limit of 99"),
                     SN_ERR_FORMAT);
    ck_assert_int_eq(read_until_error(p, SN_COMPRESSION_NONE, 100, &count, ""),
                     SN_ERR_NOT_FOUND);
    ck_assert_int_eq(count, 3);
    /* 512 MiB declared (within the default bound) in a 12-byte file: a truncation, found
     * without allocating the 512 MiB */
    memset(head, 0, sizeof head);
    head[3] = 0x20;
    m = sn__crc32c_mask(sn__crc32c(head, 8));
    for (int k = 0; k < 4; k++) head[8 + k] = (uint8_t)(m >> 8 * k);
    write_file(p, head, sizeof head);
    ck_assert_int_eq(read_until_error(p, SN_COMPRESSION_NONE, 0, &count,
                                      "536870912 data bytes declared"), SN_ERR_FORMAT);
    free(bad);
    free(good);
}
END_TEST

START_TEST(test_tfrecord_corrupt_compressed) {
    const char *p = tpath("z.tfrecord.gz");
    write_records(p, SN_COMPRESSION_GZIP, 40, 5);
    size_t n;
    uint8_t *good = read_file(p, &n);
    int count;
    write_file(p, good, n / 2);   /* cut the stream */
    ck_assert_int_eq(read_until_error(p, SN_COMPRESSION_GZIP, 0, &count, "uncompressed stream"),
                     SN_ERR_FORMAT);
    ck_assert_int_lt(count, 40);
    memcpy(good + n / 2, "garbage!", 8);   /* corrupt deflate data */
    write_file(p, good, n);
    ck_assert_int_eq(read_until_error(p, SN_COMPRESSION_GZIP, 0, &count, "offset"),
                     SN_ERR_FORMAT);
    /* two gzip members back to back (cat a.gz b.gz) read as one stream */
    uint8_t *both = malloc(2 * n);
    write_records(p, SN_COMPRESSION_GZIP, 40, 5);
    free(good);
    good = read_file(p, &n);
    memcpy(both, good, n);
    memcpy(both + n, good, n);
    write_file(p, both, 2 * n);
    ck_assert_int_eq(read_until_error(p, SN_COMPRESSION_AUTO, 0, &count, ""), SN_ERR_NOT_FOUND);
    ck_assert_int_eq(count, 80);
    /* a plain file read as ZLIB is refused, not misread */
    write_records(p, SN_COMPRESSION_NONE, 3, 5);
    ck_assert_int_eq(read_until_error(p, SN_COMPRESSION_ZLIB, 0, &count, "zlib"),
                     SN_ERR_FORMAT);
    free(both);
    free(good);
    sn_tfrecord_reader *r;
    ck_assert_int_eq(sn_tfrecord_reader_open(ctx, tpath("missing"), SN_COMPRESSION_NONE, &r),
                     SN_ERR_NOT_FOUND);
    ck_assert_ptr_null(r);
    sn_tfrecord_writer *w;
    ck_assert_int_eq(sn_tfrecord_writer_open(ctx, p, SN_COMPRESSION_AUTO, &w),
                     SN_ERR_INVALID_ARG);
}
END_TEST

START_TEST(test_tfrecord_write_error) {
    /* /dev/full fails every write with ENOSPC: the first failure sticks and close reports it */
    if (access("/dev/full", W_OK) != 0) return;
    sn_tfrecord_writer *w;
    ck_assert_int_eq(sn_tfrecord_writer_open(ctx, "/dev/full", SN_COMPRESSION_NONE, &w), SN_OK);
    uint8_t *big = calloc(1, 1 << 20);
    ck_assert_int_eq(sn_tfrecord_write(w, NULL, 5), SN_ERR_INVALID_ARG);   /* not sticky */
    ck_assert_int_eq(sn_tfrecord_write(w, big, 1 << 20), SN_ERR_IO);
    ck_assert_ptr_nonnull(strstr(sn_ctx_errmsg(ctx), "/dev/full"));
    ck_assert_int_eq(sn_tfrecord_write(w, big, 10), SN_ERR_STATE);
    ck_assert_int_eq(sn_tfrecord_writer_close(w), SN_ERR_IO);
    ck_assert_ptr_nonnull(strstr(sn_ctx_errmsg(ctx), "write"));
    ck_assert_int_eq(sn_tfrecord_writer_open(ctx, "/dev/full", SN_COMPRESSION_GZIP, &w), SN_OK);
    ck_assert_int_eq(sn_tfrecord_write(w, "abc", 3), SN_OK);   /* still in zlib's buffers */
    ck_assert_int_eq(sn_tfrecord_writer_close(w), SN_ERR_IO);
    free(big);
}
END_TEST

static char logbuf[2048];
static void capture_log(void *user, sn_log_level level, const char *msg) {
    (void)user;
    if (level >= SN_LOG_WARN) snprintf(logbuf, sizeof logbuf, "%s", msg);
}

/* File f of a set holds counts[f] records, record r being the two bytes {f, r}. */
static void write_set(const char *fmt, int nfiles, const int *counts) {
    char name[128];
    for (int f = 0; f < nfiles; f++) {
        snprintf(name, sizeof name, fmt, f, nfiles);
        sn_tfrecord_writer *w;
        ck_assert_int_eq(sn_tfrecord_writer_open(ctx, tpath(name), SN_COMPRESSION_NONE, &w),
                         SN_OK);
        for (int r = 0; r < counts[f]; r++) {
            uint8_t rec[2] = {(uint8_t)f, (uint8_t)r};
            ck_assert_int_eq(sn_tfrecord_write(w, rec, 2), SN_OK);
        }
        ck_assert_int_eq(sn_tfrecord_writer_close(w), SN_OK);
    }
}

/* Reads everything with the given cycle and compares with the expected "f.r" sequence. */
static void check_order(const sn_file_list *l, int cycle, const char *want) {
    const char *paths[16];
    size_t n = sn_file_list_count(l);
    for (size_t i = 0; i < n; i++) paths[i] = sn_file_list_path(l, i);
    sn_tfrecord_multi *m;
    ck_assert_int_eq(sn_tfrecord_multi_open(ctx, paths, n, SN_COMPRESSION_AUTO, cycle, &m), SN_OK);
    char got[256] = "";
    const uint8_t *d;
    size_t len;
    while (sn_tfrecord_multi_read(m, &d, &len) == SN_OK) {
        ck_assert_uint_eq(len, 2);
        ck_assert_ptr_nonnull(strstr(sn_tfrecord_multi_path(m), "shard"));
        ck_assert_uint_eq(sn_tfrecord_multi_offset(m), 18u * d[1]);
        size_t k = strlen(got);
        snprintf(got + k, sizeof got - k, "%s%d.%d", k ? " " : "", d[0], d[1]);
    }
    ck_assert_int_eq(sn_tfrecord_multi_read(m, &d, &len), SN_ERR_NOT_FOUND);
    ck_assert_str_eq(got, want);
    sn_tfrecord_multi_close(m);
}

START_TEST(test_tfrecord_multi) {
    int counts[3] = {3, 1, 2};
    write_set("shard-%05d-of-%05d.tfrecord", 3, counts);
    write_file(tpath("other.txt"), "x", 1);
    char pat[512];
    snprintf(pat, sizeof pat, "%s/shard-*-of-00003.tfrecord", tmpdir);
    sn_file_list *l;
    ck_assert_int_eq(sn_tfrecord_files(ctx, pat, &l), SN_OK);
    ck_assert_uint_eq(sn_file_list_count(l), 3);
    ck_assert_ptr_nonnull(strstr(sn_file_list_path(l, 0), "shard-00000-of-00003"));
    ck_assert_ptr_nonnull(strstr(sn_file_list_path(l, 2), "shard-00002-of-00003"));
    ck_assert_ptr_null(sn_file_list_path(l, 3));
    check_order(l, 1, "0.0 0.1 0.2 1.0 2.0 2.1");           /* sequential */
    check_order(l, 0, "0.0 1.0 2.0 0.1 2.1 0.2");           /* all files round robin */
    check_order(l, 2, "0.0 1.0 0.1 2.0 0.2 2.1");           /* tf.data interleave(2, 1) */
    sn_file_list_free(l);

    snprintf(pat, sizeof pat, "%s/shard-0000?-of-0000?.tfrecord", tmpdir);
    ck_assert_int_eq(sn_tfrecord_files(ctx, pat, &l), SN_OK);
    ck_assert_uint_eq(sn_file_list_count(l), 3);
    sn_file_list_free(l);
    snprintf(pat, sizeof pat, "%s/nothing_*.tfrecord", tmpdir);
    ck_assert_int_eq(sn_tfrecord_files(ctx, pat, &l), SN_ERR_NOT_FOUND);
    ck_assert_ptr_nonnull(strstr(sn_ctx_errmsg(ctx), "nothing_*"));

    /* a shard set with a member missing is returned, with a warning */
    sn_ctx_params cp = sn_ctx_params_default();
    cp.log = capture_log;
    sn_ctx *lctx;
    ck_assert_int_eq(sn_ctx_new(&cp, &lctx), SN_OK);
    unlink(tpath("shard-00001-of-00003.tfrecord"));
    snprintf(pat, sizeof pat, "%s/shard-*", tmpdir);
    logbuf[0] = '\0';
    ck_assert_int_eq(sn_tfrecord_files(lctx, pat, &l), SN_OK);
    ck_assert_uint_eq(sn_file_list_count(l), 2);
    ck_assert_msg(strstr(logbuf, "2 files of the 3-shard set"), "log: '%s'", logbuf);
    sn_file_list_free(l);
    sn_ctx_free(lctx);

    /* a missing or corrupt file stops the stream with its name */
    const char *paths[2] = {tpath("shard-00000-of-00003.tfrecord"),
                            tpath("shard-00001-of-00003.tfrecord")};
    sn_tfrecord_multi *m;
    ck_assert_int_eq(sn_tfrecord_multi_open(ctx, paths, 2, SN_COMPRESSION_NONE, 1, &m), SN_OK);
    const uint8_t *d;
    size_t len;
    for (int i = 0; i < 3; i++) ck_assert_int_eq(sn_tfrecord_multi_read(m, &d, &len), SN_OK);
    /* not SN_ERR_NOT_FOUND, which would read as the clean end of the stream */
    ck_assert_int_eq(sn_tfrecord_multi_read(m, &d, &len), SN_ERR_IO);
    ck_assert_ptr_nonnull(strstr(sn_ctx_errmsg(ctx), "shard-00001-of-00003"));
    ck_assert_int_eq(sn_tfrecord_multi_read(m, &d, &len), SN_ERR_IO);
    sn_tfrecord_multi_close(m);
    ck_assert_int_eq(sn_tfrecord_multi_open(ctx, paths, 0, SN_COMPRESSION_NONE, 1, &m),
                     SN_ERR_INVALID_ARG);
}
END_TEST

/* ---- tf.train.Example --------------------------------------------------------------------- */

START_TEST(test_example_spec_bytes) {
    /* docs/formats.md, "Known-answer vectors": label [3] then format ["png"], in that order */
    static const uint8_t want[] = {
        0x0a, 0x35, 0x0a, 0x1a, 0x0a, 0x11, 'i', 'm', 'a', 'g', 'e', '/', 'c', 'l', 'a', 's',
        's', '/', 'l', 'a', 'b', 'e', 'l', 0x12, 0x05, 0x1a, 0x03, 0x0a, 0x01, 0x03, 0x0a,
        0x17, 0x0a, 0x0c, 'i', 'm', 'a', 'g', 'e', '/', 'f', 'o', 'r', 'm', 'a', 't', 0x12,
        0x07, 0x0a, 0x05, 0x0a, 0x03, 0x70, 0x6e, 0x67};
    sn_example *ex;
    ck_assert_int_eq(sn_example_new(ctx, &ex), SN_OK);
    int64_t label = 3;
    const void *fmt = "png";
    size_t fmt_len = 3;
    ck_assert_int_eq(sn_example_set_int64(ex, "image/class/label", &label, 1), SN_OK);
    ck_assert_int_eq(sn_example_set_bytes(ex, "image/format", &fmt, &fmt_len, 1), SN_OK);
    const uint8_t *d;
    size_t n;
    ck_assert_int_eq(sn_example_serialize(ex, &d, &n), SN_OK);
    ck_assert_uint_eq(n, sizeof want);
    ck_assert_mem_eq(d, want, sizeof want);
    /* FloatList [1.0] as a feature: 12 06 0a 04 00 00 80 3f */
    float one = 1.0f;
    sn_example_clear(ex);
    ck_assert_int_eq(sn_example_set_float(ex, "f", &one, 1), SN_OK);
    ck_assert_int_eq(sn_example_serialize(ex, &d, &n), SN_OK);
    static const uint8_t fl[] = {0x12, 0x06, 0x0a, 0x04, 0x00, 0x00, 0x80, 0x3f};
    ck_assert_uint_ge(n, sizeof fl);
    ck_assert_mem_eq(d + n - sizeof fl, fl, sizeof fl);
    /* the empty Example is zero bytes */
    sn_example_clear(ex);
    ck_assert_int_eq(sn_example_serialize(ex, &d, &n), SN_OK);
    ck_assert_uint_eq(n, 0);
    sn_example_free(ex);
}
END_TEST

START_TEST(test_example_roundtrip) {
    sn_example *a, *b;
    ck_assert_int_eq(sn_example_new(ctx, &a), SN_OK);
    ck_assert_int_eq(sn_example_new(ctx, &b), SN_OK);
    int64_t iv[5] = {0, -1, INT64_MAX, INT64_MIN, 42};
    float fv[3] = {0.5f, -3.25f, 1e30f};
    const void *bv[3] = {"one", "", "three\0x"};
    size_t bl[3] = {3, 0, 7};
    ck_assert_int_eq(sn_example_set_int64(a, "ints", iv, 5), SN_OK);
    ck_assert_int_eq(sn_example_set_float(a, "floats", fv, 3), SN_OK);
    ck_assert_int_eq(sn_example_set_bytes(a, "bytes", bv, bl, 3), SN_OK);
    ck_assert_int_eq(sn_example_set_int64(a, "empty", NULL, 0), SN_OK);
    ck_assert_int_eq(sn_example_set_int64(a, "ints", iv, 4), SN_OK);   /* replaces */
    ck_assert_uint_eq(sn_example_num_features(a), 4);
    const uint8_t *d;
    size_t n;
    ck_assert_int_eq(sn_example_serialize(a, &d, &n), SN_OK);
    ck_assert_int_eq(sn_example_parse(b, d, n), SN_OK);
    ck_assert_uint_eq(sn_example_num_features(b), 4);
    ck_assert_str_eq(sn_example_key(b, 0), "ints");

    const int64_t *gi;
    const float *gf;
    size_t gn;
    ck_assert_int_eq(sn_example_get_int64(b, "ints", &gi, &gn), SN_OK);
    ck_assert_uint_eq(gn, 4);
    ck_assert_mem_eq(gi, iv, 4 * sizeof *iv);
    ck_assert_int_eq(sn_example_get_float(b, "floats", &gf, &gn), SN_OK);
    ck_assert_uint_eq(gn, 3);
    ck_assert_mem_eq(gf, fv, sizeof fv);
    for (size_t i = 0; i < 3; i++) {
        const uint8_t *bd;
        size_t blen;
        ck_assert_int_eq(sn_example_get_bytes(b, "bytes", i, &bd, &blen), SN_OK);
        ck_assert_uint_eq(blen, bl[i]);
        ck_assert(blen == 0 || memcmp(bd, bv[i], blen) == 0);
    }
    sn_feature_kind k;
    ck_assert_int_eq(sn_example_feature(b, "empty", &k, &gn), SN_OK);
    ck_assert_int_eq(k, SN_FEATURE_INT64);
    ck_assert_uint_eq(gn, 0);

    /* wrong kind, missing key, index past the end */
    ck_assert_int_eq(sn_example_get_int64(b, "bytes", &gi, &gn), SN_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(sn_ctx_errmsg(ctx), "'bytes' is a bytes_list, not a int64_list"));
    ck_assert_int_eq(sn_example_get_float(b, "nope", &gf, &gn), SN_ERR_NOT_FOUND);
    ck_assert_ptr_nonnull(strstr(sn_ctx_errmsg(ctx), "nope"));
    const uint8_t *bd;
    size_t blen;
    ck_assert_int_eq(sn_example_get_bytes(b, "bytes", 3, &bd, &blen), SN_ERR_NOT_FOUND);

    /* a parsed example can be extended and re-serialized */
    ck_assert_int_eq(sn_example_set_float(b, "more", fv, 1), SN_OK);
    ck_assert_int_eq(sn_example_serialize(b, &d, &n), SN_OK);
    ck_assert_int_eq(sn_example_parse(a, d, n), SN_OK);
    ck_assert_uint_eq(sn_example_num_features(a), 5);
    sn_example_free(a);
    sn_example_free(b);
}
END_TEST

START_TEST(test_example_wire_variants) {
    sn_example *ex;
    ck_assert_int_eq(sn_example_new(ctx, &ex), SN_OK);
    /* unpacked int64 list (two "08 vv" fields) and a repeated key: the last one wins */
    static const uint8_t msg[] = {
        0x0a, 0x19,                                                     /* features */
        0x0a, 0x0a, 0x0a, 0x01, 'k', 0x12, 0x05, 0x1a, 0x03, 0x0a, 0x01, 0x01,  /* k: [1] */
        0x0a, 0x0b, 0x0a, 0x01, 'k', 0x12, 0x06, 0x1a, 0x04, 0x08, 0x07, 0x08, 0x09}; /* [7,9] */
    const int64_t *v;
    size_t n;
    ck_assert_int_eq(sn_example_parse(ex, msg, sizeof msg), SN_OK);
    ck_assert_int_eq(sn_example_get_int64(ex, "k", &v, &n), SN_OK);
    ck_assert_uint_eq(n, 2);
    ck_assert_int_eq(v[0], 7);
    ck_assert_int_eq(v[1], 9);
    /* an empty Feature (no list set) reads as an empty list of any kind */
    static const uint8_t empty_feat[] = {0x0a, 0x07, 0x0a, 0x05, 0x0a, 0x01, 'e', 0x12, 0x00};
    ck_assert_int_eq(sn_example_parse(ex, empty_feat, sizeof empty_feat), SN_OK);
    const float *f;
    ck_assert_int_eq(sn_example_get_float(ex, "e", &f, &n), SN_OK);
    ck_assert_uint_eq(n, 0);
    /* malformed: truncated, garbage, a length running past the end */
    ck_assert_int_eq(sn_example_parse(ex, msg, sizeof msg - 1), SN_ERR_FORMAT);
    ck_assert_uint_eq(sn_example_num_features(ex), 0);
    uint8_t junk[300];
    for (uint64_t seed = 0; seed < 50; seed++) {
        fill_bytes(junk, sizeof junk, seed);
        sn_status st = sn_example_parse(ex, junk, sizeof junk);
        ck_assert(st == SN_OK || st == SN_ERR_FORMAT);
    }
    static const uint8_t overrun[] = {0x0a, 0x7f, 0x0a};
    ck_assert_int_eq(sn_example_parse(ex, overrun, sizeof overrun), SN_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(sn_ctx_errmsg(ctx), "malformed"));
    ck_assert_int_eq(sn_example_parse(ex, NULL, 0), SN_OK);   /* the empty Example */

    /* memory bound: 20000 empty entries (valid, ~50x expansion) parse; 16000 repeated
     * "features" fields, which protobuf-c merges by copying (quadratic), are refused */
    size_t big_n = 4 + 2 * 20000;
    uint8_t *big = malloc(16000 * 4);   /* room for both messages */
    big[0] = 0x0a, big[1] = 0x80 | (40000 & 0x7f);   /* features, 40000 bytes (3-byte varint) */
    big[2] = 0x80 | ((40000 >> 7) & 0x7f), big[3] = 40000 >> 14;
    for (size_t i = 4; i < big_n; i += 2) big[i] = 0x0a, big[i + 1] = 0x00;
    ck_assert_int_eq(sn_example_parse(ex, big, big_n), SN_OK);
    ck_assert_uint_eq(sn_example_num_features(ex), 20000);
    for (size_t i = 0; i < 16000 * 4; i += 4) big[i] = 0x0a, big[i + 1] = 0x02, big[i + 2] = 0x0a,
                                              big[i + 3] = 0x00;
    ck_assert_int_eq(sn_example_parse(ex, big, 16000 * 4), SN_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(sn_ctx_errmsg(ctx), "memory bound"));
    free(big);
    sn_example_free(ex);
}
END_TEST

/* Field number 0 is invalid in protobuf: TF's parser refuses it anywhere.  protobuf-c takes
 * an overlong key for it ("82 00": field 0, length-delimited) as an unknown field. */
START_TEST(test_example_field0) {
    sn_example *ex;
    ck_assert_int_eq(sn_example_new(ctx, &ex), SN_OK);
    size_t n;
    uint8_t *top = read_file("tests/fuzz/corpus/example/example-field0.bin", &n);
    ck_assert_uint_eq(n, 3);
    ck_assert_int_eq(sn_example_parse(ex, top, n), SN_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(sn_ctx_errmsg(ctx), "field numbered 0"));
    free(top);
    /* inside Features, inside a Feature, inside an Int64List */
    static const uint8_t in_features[] = {0x0a, 0x03, 0x82, 0x00, 0x00};
    static const uint8_t in_feature[] = {0x0a, 0x0a, 0x0a, 0x08, 0x0a, 0x01, 'k',
                                         0x12, 0x03, 0x82, 0x00, 0x00};
    static const uint8_t in_list[] = {0x0a, 0x0c, 0x0a, 0x0a, 0x0a, 0x01, 'k', 0x12, 0x05,
                                      0x1a, 0x03, 0x82, 0x00, 0x00};
    ck_assert_int_eq(sn_example_parse(ex, in_features, sizeof in_features), SN_ERR_FORMAT);
    ck_assert_int_eq(sn_example_parse(ex, in_feature, sizeof in_feature), SN_ERR_FORMAT);
    ck_assert_int_eq(sn_example_parse(ex, in_list, sizeof in_list), SN_ERR_FORMAT);
    /* the same messages with field 5 instead of 0: unknown fields, which TF skips */
    static const uint8_t ok[] = {0x0a, 0x0c, 0x0a, 0x0a, 0x0a, 0x01, 'k', 0x12, 0x05,
                                 0x1a, 0x03, 0xaa, 0x00, 0x00};
    ck_assert_int_eq(sn_example_parse(ex, ok, sizeof ok), SN_OK);
    ck_assert_uint_eq(sn_example_num_features(ex), 1);
    sn_example_free(ex);
}
END_TEST

/* Empty values and lists come back as valid pointers (protobuf-c leaves their data NULL,
 * and sn_example_get_image once passed that NULL to memchr: found by fuzzing). */
START_TEST(test_example_empty_values) {
    sn_example *ex;
    ck_assert_int_eq(sn_example_new(ctx, &ex), SN_OK);
    uint8_t enc[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    sn_image_example img = {enc, sizeof enc, "", 2, 4, 4};
    ck_assert_int_eq(sn_example_set_image(ex, &img), SN_OK);
    ck_assert_int_eq(sn_example_set_int64(ex, "i", NULL, 0), SN_OK);
    ck_assert_int_eq(sn_example_set_float(ex, "f", NULL, 0), SN_OK);
    const uint8_t *d;
    size_t n;
    ck_assert_int_eq(sn_example_serialize(ex, &d, &n), SN_OK);
    ck_assert_int_eq(sn_example_parse(ex, d, n), SN_OK);
    sn_image_example back;
    ck_assert_int_eq(sn_example_get_image(ex, &back), SN_OK);
    ck_assert_str_eq(back.format, "");
    ck_assert_int_eq(back.label, 2);
    const uint8_t *b;
    ck_assert_int_eq(sn_example_get_bytes(ex, "image/format", 0, &b, &n), SN_OK);
    ck_assert_ptr_nonnull(b);
    ck_assert_uint_eq(n, 0);
    const int64_t *iv;
    const float *fv;
    ck_assert_int_eq(sn_example_get_int64(ex, "i", &iv, &n), SN_OK);
    ck_assert(iv != NULL && n == 0);
    ck_assert_int_eq(sn_example_get_float(ex, "f", &fv, &n), SN_OK);
    ck_assert(fv != NULL && n == 0);
    sn_example_free(ex);
}
END_TEST

START_TEST(test_example_image) {
    sn_example *ex;
    ck_assert_int_eq(sn_example_new(ctx, &ex), SN_OK);
    uint8_t enc[500];
    fill_bytes(enc, sizeof enc, 9);
    sn_image_example img = {enc, sizeof enc, "jpg", 6, 48, 48};
    ck_assert_int_eq(sn_example_set_image(ex, &img), SN_OK);
    const uint8_t *d;
    size_t n;
    ck_assert_int_eq(sn_example_serialize(ex, &d, &n), SN_OK);
    sn_example *back;
    ck_assert_int_eq(sn_example_new(ctx, &back), SN_OK);
    ck_assert_int_eq(sn_example_parse(back, d, n), SN_OK);
    sn_image_example got;
    ck_assert_int_eq(sn_example_get_image(back, &got), SN_OK);
    ck_assert_uint_eq(got.encoded_len, sizeof enc);
    ck_assert_mem_eq(got.encoded, enc, sizeof enc);
    ck_assert_str_eq(got.format, "jpg");
    ck_assert_int_eq(got.label, 6);
    ck_assert_int_eq(got.height, 48);
    ck_assert_int_eq(got.width, 48);
    /* a label of the wrong kind is named */
    const void *s = "x";
    size_t sl = 1;
    ck_assert_int_eq(sn_example_set_bytes(back, "image/class/label", &s, &sl, 1), SN_OK);
    ck_assert_int_eq(sn_example_get_image(back, &got), SN_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(sn_ctx_errmsg(ctx), "image/class/label"));
    /* height and width are optional, the label is not */
    sn_example_clear(back);
    ck_assert_int_eq(sn_example_set_bytes(back, "image/encoded", &s, &sl, 1), SN_OK);
    ck_assert_int_eq(sn_example_get_image(back, &got), SN_ERR_NOT_FOUND);
    int64_t label = 2;
    ck_assert_int_eq(sn_example_set_int64(back, "image/class/label", &label, 1), SN_OK);
    ck_assert_int_eq(sn_example_get_image(back, &got), SN_OK);
    ck_assert_int_eq(got.height, 0);
    ck_assert_str_eq(got.format, "");
    sn_example_free(back);
    sn_example_free(ex);
}
END_TEST

/* ---- images ------------------------------------------------------------------------------- */

/* A smooth test picture (JPEG-friendly, values within 10..250): h x w x c. */
static sn_tensor *picture(int h, int w, int c) {
    int64_t dims[3] = {h, w, c};
    sn_tensor *t;
    ck_assert_int_eq(sn_tensor_new(ctx, SN_DTYPE_U8, 3, dims, &t), SN_OK);
    uint8_t *p = sn_tensor_data(t);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int k = 0; k < c; k++)
                p[((size_t)y * w + x) * c + k] = (uint8_t)(10 + 150 * x / w + 60 * y / h + 15 * k);
    return t;
}

START_TEST(test_image_png_roundtrip) {
    for (int c = 1; c <= 3; c += 2) {
        sn_tensor *img = picture(37, 53, c), *enc, *dec;
        uint8_t *p = sn_tensor_data(img);
        fill_bytes(p, 100, 3);   /* some noise: PNG must keep it exactly */
        ck_assert_int_eq(sn_image_encode_png(ctx, img, &enc), SN_OK);
        ck_assert_int_eq(sn_image_sniff(sn_tensor_data(enc), sn_tensor_nbytes(enc)),
                         SN_IMAGE_PNG);
        ck_assert_int_eq(sn_image_decode(ctx, sn_tensor_data(enc), sn_tensor_nbytes(enc), NULL,
                                         &dec), SN_OK);
        ck_assert_int_eq(sn_tensor_dim(dec, 0), 37);
        ck_assert_int_eq(sn_tensor_dim(dec, 1), 53);
        ck_assert_int_eq(sn_tensor_dim(dec, 2), c);
        ck_assert_mem_eq(sn_tensor_data(dec), p, sn_tensor_nbytes(img));
        if (c == 1) {   /* gray stacked to 3 channels */
            sn_image_params ip = sn_image_params_default();
            ip.channels = 3;
            sn_tensor *rgb;
            ck_assert_int_eq(sn_image_decode(ctx, sn_tensor_data(enc), sn_tensor_nbytes(enc),
                                             &ip, &rgb), SN_OK);
            ck_assert_int_eq(sn_tensor_dim(rgb, 2), 3);
            const uint8_t *q = sn_tensor_data(rgb);
            for (size_t i = 0; i < 37 * 53; i++)
                ck_assert(q[3 * i] == p[i] && q[3 * i + 1] == p[i] && q[3 * i + 2] == p[i]);
            sn_tensor_free(rgb);
        }
        sn_tensor_free(img);
        sn_tensor_free(enc);
        sn_tensor_free(dec);
    }
}
END_TEST

START_TEST(test_image_png_alpha) {
    /* RGBA written by libpng directly: decoding to 3 channels drops alpha, unmixed */
    uint8_t rgba[4 * 4 * 4];
    fill_bytes(rgba, sizeof rgba, 11);
    png_image pi;
    memset(&pi, 0, sizeof pi);
    pi.version = PNG_IMAGE_VERSION;
    pi.width = pi.height = 4;
    pi.format = PNG_FORMAT_RGBA;
    uint8_t out[2048];
    png_alloc_size_t size = sizeof out;
    ck_assert(png_image_write_to_memory(&pi, out, &size, 0, rgba, 0, NULL));
    int h, w, c;
    sn_image_format fmt;
    ck_assert_int_eq(sn_image_info(ctx, out, size, &fmt, &h, &w, &c), SN_OK);
    ck_assert_int_eq(fmt, SN_IMAGE_PNG);
    ck_assert_int_eq(c, 4);
    uint8_t px[48];
    ck_assert_int_eq(sn_image_decode_into(ctx, out, size, NULL, px, sizeof px, &h, &w, &c),
                     SN_OK);
    ck_assert_int_eq(c, 3);
    for (int i = 0; i < 16; i++) ck_assert_mem_eq(px + 3 * i, rgba + 4 * i, 3);
    /* a buffer too small is SN_ERR_SHAPE, with the shape reported */
    ck_assert_int_eq(sn_image_decode_into(ctx, out, size, NULL, px, 47, &h, &w, &c),
                     SN_ERR_SHAPE);
    ck_assert(h == 4 && w == 4 && c == 3);
}
END_TEST

START_TEST(test_image_jpeg_roundtrip) {
    sn_tensor *img = picture(48, 64, 3), *enc, *dec;
    ck_assert_int_eq(sn_image_encode_jpeg(ctx, img, 95, &enc), SN_OK);
    ck_assert_int_eq(sn_image_sniff(sn_tensor_data(enc), sn_tensor_nbytes(enc)), SN_IMAGE_JPEG);
    ck_assert_int_eq(sn_image_decode(ctx, sn_tensor_data(enc), sn_tensor_nbytes(enc), NULL, &dec),
                     SN_OK);
    ck_assert_int_eq(sn_tensor_dim(dec, 0), 48);
    ck_assert_int_eq(sn_tensor_dim(dec, 1), 64);
    ck_assert_int_eq(sn_tensor_dim(dec, 2), 3);
    const uint8_t *a = sn_tensor_data(img), *b = sn_tensor_data(dec);
    double sum = 0;
    int worst = 0;
    for (size_t i = 0; i < sn_tensor_nbytes(img); i++) {
        int d = abs((int)a[i] - (int)b[i]);
        sum += d;
        if (d > worst) worst = d;
    }
    ck_assert_msg(sum / (double)sn_tensor_nbytes(img) < 2.0 && worst <= 12,
                  "mean %.2f max %d", sum / (double)sn_tensor_nbytes(img), worst);
    sn_tensor_free(dec);
    sn_tensor_free(enc);
    sn_tensor_free(img);

    /* a gray JPEG (as FER's 48x48 files) decodes to 1 channel, or 3 equal ones */
    img = picture(48, 48, 1);
    ck_assert_int_eq(sn_image_encode_jpeg(ctx, img, 90, &enc), SN_OK);
    sn_image_params ip = sn_image_params_default();
    ck_assert_int_eq(sn_image_decode(ctx, sn_tensor_data(enc), sn_tensor_nbytes(enc), &ip, &dec),
                     SN_OK);
    ck_assert_int_eq(sn_tensor_dim(dec, 2), 1);
    sn_tensor *rgb;
    ip.channels = 3;
    ck_assert_int_eq(sn_image_decode(ctx, sn_tensor_data(enc), sn_tensor_nbytes(enc), &ip, &rgb),
                     SN_OK);
    ck_assert_int_eq(sn_tensor_dim(rgb, 2), 3);
    const uint8_t *g = sn_tensor_data(dec), *q = sn_tensor_data(rgb);
    for (size_t i = 0; i < 48 * 48; i++)
        ck_assert(q[3 * i] == g[i] && q[3 * i + 1] == g[i] && q[3 * i + 2] == g[i]);
    sn_tensor_free(rgb);
    sn_tensor_free(dec);
    sn_tensor_free(enc);
    sn_tensor_free(img);
}
END_TEST

/* A CMYK JPEG (as Photoshop writes; some ImageNet files are) decodes to RGB as TF's
 * decoder converts Adobe's inverted CMYK: r = c * k / 255. */
START_TEST(test_image_jpeg_cmyk) {
    enum { H = 16, W = 24 };
    uint8_t cmyk[H * W * 4];
    for (int i = 0; i < H * W; i++)
        cmyk[4 * i] = 200, cmyk[4 * i + 1] = 100, cmyk[4 * i + 2] = 50, cmyk[4 * i + 3] = 204;
    tjhandle tj = tjInitCompress();
    unsigned char *jpg = NULL;
    unsigned long size = 0;
    ck_assert_int_eq(tjCompress2(tj, cmyk, W, 0, H, TJPF_CMYK, &jpg, &size, TJSAMP_444, 95, 0), 0);
    tjDestroy(tj);
    int h, w, c;
    ck_assert_int_eq(sn_image_info(ctx, jpg, size, NULL, &h, &w, &c), SN_OK);
    ck_assert_int_eq(c, 4);
    sn_tensor *rgb;
    ck_assert_int_eq(sn_image_decode(ctx, jpg, size, NULL, &rgb), SN_OK);
    ck_assert_int_eq(sn_tensor_dim(rgb, 2), 3);
    const uint8_t *q = sn_tensor_data(rgb);
    int want[3] = {200 * 204 / 255, 100 * 204 / 255, 50 * 204 / 255};
    for (int i = 0; i < H * W * 3; i++) ck_assert_int_le(abs(q[i] - want[i % 3]), 3);
    sn_tensor_free(rgb);
    tjFree(jpg);
}
END_TEST

/* libjpeg's warnings (here: bytes before a marker) still give the whole image, as TF
 * accepts them; a fatal error after a warning fails the decode (TurboJPEG reported it as a
 * warning, and no pixel was written). */
START_TEST(test_image_jpeg_warning_then_error) {
    size_t n;
    uint8_t *bad = read_file("tests/fuzz/corpus/image/progressive-bogus-huffman.jpg", &n);
    sn_tensor *dec = NULL;
    ck_assert_int_eq(sn_image_decode(ctx, bad, n, NULL, &dec), SN_ERR_FORMAT);
    ck_assert_ptr_null(dec);
    ck_assert_ptr_nonnull(strstr(sn_ctx_errmsg(ctx), "Bogus Huffman table"));
    uint8_t buf[64 * 64 * 3];
    int h = -1, w = -1, c = -1;
    ck_assert_int_eq(sn_image_decode_into(ctx, bad, n, NULL, buf, sizeof buf, &h, &w, &c),
                     SN_ERR_FORMAT);
    free(bad);

    sn_tensor *img = picture(24, 40, 3), *enc, *clean, *warned;
    ck_assert_int_eq(sn_image_encode_jpeg(ctx, img, 90, &enc), SN_OK);
    size_t en = sn_tensor_nbytes(enc);
    uint8_t *j = malloc(en + 3);
    memcpy(j, sn_tensor_data(enc), en - 2);                 /* all but the EOI marker */
    j[en - 2] = 0x12, j[en - 1] = 0x34, j[en] = 0x56;       /* "3 extraneous bytes" */
    j[en + 1] = 0xff, j[en + 2] = 0xd9;
    ck_assert_int_eq(sn_image_decode(ctx, sn_tensor_data(enc), en, NULL, &clean), SN_OK);
    ck_assert_int_eq(sn_image_decode(ctx, j, en + 3, NULL, &warned), SN_OK);
    ck_assert_mem_eq(sn_tensor_data(warned), sn_tensor_data(clean), sn_tensor_nbytes(clean));
    sn_tensor_free(warned);
    sn_tensor_free(clean);
    free(j);
    sn_tensor_free(enc);
    sn_tensor_free(img);
}
END_TEST

/* A CMYK JPEG without Adobe's marker stores the channels as printed; TF converts it with
 * r = (255 - k) * (255 - c) / 255.  (The raw CMYK comes from TurboJPEG's own decode.) */
START_TEST(test_image_jpeg_cmyk_plain) {
    enum { H = 8, W = 16 };
    uint8_t cmyk[H * W * 4];
    for (int i = 0; i < H * W; i++)
        cmyk[4 * i] = (uint8_t)(10 * i), cmyk[4 * i + 1] = 100, cmyk[4 * i + 2] = 50,
        cmyk[4 * i + 3] = (uint8_t)(255 - i);
    tjhandle tj = tjInitCompress();
    unsigned char *jpg = NULL;
    unsigned long size = 0;
    ck_assert_int_eq(tjCompress2(tj, cmyk, W, 0, H, TJPF_CMYK, &jpg, &size, TJSAMP_444, 95, 0), 0);
    tjDestroy(tj);
    /* drop the APP14 "Adobe" segment */
    size_t at = 2;
    while (at + 4 < size && !(jpg[at] == 0xff && jpg[at + 1] == 0xee))
        at += 2 + ((size_t)jpg[at + 2] << 8 | jpg[at + 3]);
    ck_assert_uint_lt(at + 4, size);
    size_t seg = 2 + ((size_t)jpg[at + 2] << 8 | jpg[at + 3]);
    memmove(jpg + at, jpg + at + seg, size - at - seg);
    size -= seg;
    uint8_t raw[H * W * 4];
    tjhandle td = tjInitDecompress();
    ck_assert_int_eq(tjDecompress2(td, jpg, size, raw, W, 0, H, TJPF_CMYK, 0), 0);
    tjDestroy(td);
    sn_tensor *rgb;
    sn_image_params ip = sn_image_params_default();
    ip.fast_dct = 0;   /* TurboJPEG's default IDCT, for the same raw values */
    ck_assert_int_eq(sn_image_decode(ctx, jpg, size, &ip, &rgb), SN_OK);
    const uint8_t *q = sn_tensor_data(rgb);
    for (int i = 0; i < H * W; i++)
        for (int ch = 0; ch < 3; ch++)
            ck_assert_int_eq(q[3 * i + ch],
                             (255 - raw[4 * i + 3]) * (255 - raw[4 * i + ch]) / 255);
    sn_tensor_free(rgb);
    tjFree(jpg);
}
END_TEST

START_TEST(test_image_bounds) {
    sn_tensor *img = picture(16, 16, 3), *enc, *dec = NULL;
    ck_assert_int_eq(sn_image_encode_jpeg(ctx, img, 80, &enc), SN_OK);
    size_t n = sn_tensor_nbytes(enc);
    uint8_t *j = malloc(n);
    memcpy(j, sn_tensor_data(enc), n);
    /* patch the SOF0 frame header to 60000 x 60000 */
    size_t sof = 0;
    for (size_t i = 2; i + 9 < n && !sof; i++)
        if (j[i] == 0xff && j[i + 1] == 0xc0) sof = i;
    ck_assert_uint_gt(sof, 0);
    j[sof + 5] = 0xea, j[sof + 6] = 0x60, j[sof + 7] = 0xea, j[sof + 8] = 0x60;
    int h, w, c;
    ck_assert_int_eq(sn_image_info(ctx, j, n, NULL, &h, &w, &c), SN_OK);
    ck_assert_int_eq(h, 60000);
    ck_assert_int_eq(sn_image_decode(ctx, j, n, NULL, &dec), SN_ERR_FORMAT);
    ck_assert_ptr_null(dec);
    ck_assert_ptr_nonnull(strstr(sn_ctx_errmsg(ctx), "60000x60000"));
    /* a small bound applies to a legal image too */
    sn_image_params ip = sn_image_params_default();
    ip.max_pixels = 255;
    ck_assert_int_eq(sn_image_decode(ctx, sn_tensor_data(enc), n, &ip, &dec), SN_ERR_FORMAT);
    ip.max_pixels = 256;
    ck_assert_int_eq(sn_image_decode(ctx, sn_tensor_data(enc), n, &ip, &dec), SN_OK);
    sn_tensor_free(dec);

    /* PNG: IHDR patched to 60000 x 60000, its CRC fixed so that the size is what fails */
    sn_tensor *penc;
    ck_assert_int_eq(sn_image_encode_png(ctx, img, &penc), SN_OK);
    size_t pn = sn_tensor_nbytes(penc);
    uint8_t *pp = malloc(pn);
    memcpy(pp, sn_tensor_data(penc), pn);
    ck_assert_mem_eq(pp + 12, "IHDR", 4);
    pp[18] = 0xea, pp[19] = 0x60, pp[22] = 0xea, pp[23] = 0x60;
    uint32_t crc = (uint32_t)crc32(0, pp + 12, 17);
    pp[29] = (uint8_t)(crc >> 24), pp[30] = (uint8_t)(crc >> 16);
    pp[31] = (uint8_t)(crc >> 8), pp[32] = (uint8_t)crc;
    ck_assert_int_eq(sn_image_decode(ctx, pp, pn, NULL, &dec), SN_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(sn_ctx_errmsg(ctx), "60000x60000"));

    /* truncated files and garbage: a status, never a crash */
    ck_assert_int_eq(sn_image_decode(ctx, sn_tensor_data(enc), n / 2, NULL, &dec), SN_ERR_FORMAT);
    ck_assert_int_eq(sn_image_decode(ctx, sn_tensor_data(penc), pn / 2, NULL, &dec),
                     SN_ERR_FORMAT);
    ck_assert_int_eq(sn_image_decode(ctx, sn_tensor_data(enc), 2, NULL, &dec), SN_ERR_FORMAT);
    ck_assert_int_eq(sn_image_decode(ctx, NULL, 0, NULL, &dec), SN_ERR_FORMAT);
    uint8_t junk[4096];
    for (uint64_t seed = 0; seed < 30; seed++) {
        fill_bytes(junk, sizeof junk, seed);
        ck_assert_int_eq(sn_image_decode(ctx, junk, sizeof junk, NULL, &dec), SN_ERR_FORMAT);
        junk[0] = 0xff, junk[1] = 0xd8, junk[2] = 0xff;   /* JPEG magic, garbage after */
        ck_assert_int_eq(sn_image_decode(ctx, junk, sizeof junk, NULL, &dec), SN_ERR_FORMAT);
        memcpy(junk, pp, 8);                              /* PNG magic, garbage after */
        ck_assert_int_eq(sn_image_decode(ctx, junk, sizeof junk, NULL, &dec), SN_ERR_FORMAT);
        memcpy(junk, sn_tensor_data(enc), n / 2);         /* a real header, garbage data */
        sn_status st = sn_image_decode(ctx, junk, sizeof junk, NULL, &dec);
        ck_assert(st == SN_OK || st == SN_ERR_FORMAT);
        sn_tensor_free(dec);
        dec = NULL;
    }
    ck_assert_int_eq(sn_image_encode_jpeg(ctx, img, 0, &dec), SN_ERR_INVALID_ARG);
    free(pp);
    free(j);
    sn_tensor_free(penc);
    sn_tensor_free(enc);
    sn_tensor_free(img);
}
END_TEST

Suite *suite_data(void) {
    Suite *s = suite_create("data");
    TCase *tc = tcase_create("crc32c");
    tcase_add_test(tc, test_crc32c_vectors);
    tcase_add_test(tc, test_crc32c_paths);
    suite_add_tcase(s, tc);

    tc = tcase_create("tfrecord");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_loop_test(tc, test_tfrecord_roundtrip, SN_COMPRESSION_NONE, SN_COMPRESSION_GZIP + 1);
    tcase_add_test(tc, test_tfrecord_framing_bytes);
    tcase_add_test(tc, test_tfrecord_corrupt);
    tcase_add_test(tc, test_tfrecord_corrupt_compressed);
    tcase_add_test(tc, test_tfrecord_write_error);
    tcase_add_test(tc, test_tfrecord_multi);
    suite_add_tcase(s, tc);

    tc = tcase_create("example");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_example_spec_bytes);
    tcase_add_test(tc, test_example_roundtrip);
    tcase_add_test(tc, test_example_wire_variants);
    tcase_add_test(tc, test_example_image);
    tcase_add_test(tc, test_example_field0);
    tcase_add_test(tc, test_example_empty_values);
    suite_add_tcase(s, tc);

    tc = tcase_create("image");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_image_png_roundtrip);
    tcase_add_test(tc, test_image_png_alpha);
    tcase_add_test(tc, test_image_jpeg_roundtrip);
    tcase_add_test(tc, test_image_jpeg_cmyk);
    tcase_add_test(tc, test_image_jpeg_cmyk_plain);
    tcase_add_test(tc, test_image_jpeg_warning_then_error);
    tcase_add_test(tc, test_image_bounds);
    suite_add_tcase(s, tc);
    return s;
}
