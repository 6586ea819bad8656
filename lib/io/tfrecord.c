/* tfrecord.c: TFRecord files (writer, reader, file patterns, multi-file reader).
 *
 * Framing (docs/formats.md, "TFRecord"), little-endian:
 *     uint64 N | uint32 mask(crc32c(N's 8 bytes)) | N bytes | uint32 mask(crc32c(data))
 * ZLIB/GZIP compress the whole framed stream with one deflate stream; offsets in messages
 * are offsets in the uncompressed stream, the one the CRCs and TF's own messages refer to.
 *
 * The reader keeps one window buffer over the (decompressed) stream.  A record that fits is
 * returned in place, without a copy.  The window grows only when it is full of real data,
 * so a corrupt length that passed its CRC still cannot make us allocate more than twice
 * the bytes the file actually holds. */
#include <errno.h>
#include <glob.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#define ZLIB_CONST   /* next_in is const: no cast needed to feed caller data */
#include <zlib.h>
#include "../sn_internal.h"
#include "crc32c.h"

enum {
    HEADER_LEN = 12,                 /* length + its crc */
    FOOTER_LEN = 4,                  /* data crc */
    WINDOW_INIT = 256 << 10,         /* initial window; grows for larger records */
    ZBUF_LEN = 256 << 10,            /* compressed-side buffer (TF uses 256 KiB too) */
    ZLIB_WINDOW = 15,                /* zlib wrapper; +16 selects the gzip wrapper */
    ZLIB_MEM_LEVEL = 9               /* TF's ZlibCompressionOptions default */
};

static uint64_t load_le64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}
static uint32_t load_le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static void store_le64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void store_le32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

static const char *compression_name(sn_compression c) {
    switch (c) {
    case SN_COMPRESSION_NONE: return "none";
    case SN_COMPRESSION_ZLIB: return "zlib";
    case SN_COMPRESSION_GZIP: return "gzip";
    case SN_COMPRESSION_AUTO: return "auto";
    }
    return "?";
}

static sn_status open_error(sn_ctx *ctx, const char *path, const char *what) {
    int e = errno;
    return sn__fail(ctx, e == ENOENT ? SN_ERR_NOT_FOUND : SN_ERR_IO, "%s: cannot %s: %s", path,
                    what, strerror(e));
}

/* ---- writer ---------------------------------------------------------------------------- */

struct sn_tfrecord_writer {
    sn_ctx *ctx;
    char *path;
    FILE *f;
    sn_compression comp;
    z_stream z;
    bool z_init;
    uint8_t *zout;            /* deflate output, written to f when full */
    sn_status failed;         /* first error: later calls refuse */
    char errmsg[SN_ERRMSG_LEN];
};

static sn_status wfail(sn_tfrecord_writer *w, sn_status st, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static sn_status wfail(sn_tfrecord_writer *w, sn_status st, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (w->failed == SN_OK) {
        w->failed = st;
        snprintf(w->errmsg, sizeof w->errmsg, "%s: %s", w->path, msg);
    }
    return sn__fail(w->ctx, st, "%s: %s", w->path, msg);
}

static sn_status write_raw(sn_tfrecord_writer *w, const void *p, size_t n) {
    if (n && fwrite(p, 1, n, w->f) != n) return wfail(w, SN_ERR_IO, "write: %s", strerror(errno));
    return SN_OK;
}

/* Runs deflate over avail_in with `flush`, writing whatever it produces.  For Z_FINISH
 * and Z_SYNC_FLUSH it loops until deflate has nothing more to give. */
static sn_status deflate_run(sn_tfrecord_writer *w, int flush) {
    for (;;) {
        w->z.next_out = w->zout;
        w->z.avail_out = ZBUF_LEN;
        int ret = deflate(&w->z, flush);
        if (ret == Z_STREAM_ERROR) return wfail(w, SN_ERR_STATE, "deflate: stream error");
        SN_TRY(write_raw(w, w->zout, ZBUF_LEN - w->z.avail_out));
        if (flush == Z_FINISH ? ret == Z_STREAM_END
                              : (w->z.avail_in == 0 && w->z.avail_out != 0))
            return SN_OK;
    }
}

static sn_status emit(sn_tfrecord_writer *w, const void *p, size_t n) {
    if (w->comp == SN_COMPRESSION_NONE) return write_raw(w, p, n);
    const uint8_t *b = p;
    while (n > 0) {   /* avail_in is a uInt: feed at most 1 GiB at a time */
        size_t chunk = n < ((size_t)1 << 30) ? n : ((size_t)1 << 30);
        w->z.next_in = b;
        w->z.avail_in = (uInt)chunk;
        SN_TRY(deflate_run(w, Z_NO_FLUSH));
        b += chunk;
        n -= chunk;
    }
    return SN_OK;
}

sn_status sn_tfrecord_writer_open(sn_ctx *ctx, const char *path, sn_compression compression,
                                  sn_tfrecord_writer **out) {
    if (!out || !path) return sn__fail(ctx, SN_ERR_INVALID_ARG, "tfrecord writer: NULL argument");
    *out = NULL;
    if (compression != SN_COMPRESSION_NONE && compression != SN_COMPRESSION_ZLIB &&
        compression != SN_COMPRESSION_GZIP)
        return sn__fail(ctx, SN_ERR_INVALID_ARG, "%s: writer compression must be NONE, ZLIB "
                        "or GZIP, not %s", path, compression_name(compression));
    sn_tfrecord_writer *w = calloc(1, sizeof *w);
    if (!w || !(w->path = dup_str(path))) {
        free(w);
        return sn__fail(ctx, SN_ERR_NOMEM, "%s: out of memory", path);
    }
    w->ctx = ctx;
    w->comp = compression;
    if (compression != SN_COMPRESSION_NONE) {
        int bits = ZLIB_WINDOW + (compression == SN_COMPRESSION_GZIP ? 16 : 0);
        w->zout = malloc(ZBUF_LEN);
        if (!w->zout || deflateInit2(&w->z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, bits,
                                     ZLIB_MEM_LEVEL, Z_DEFAULT_STRATEGY) != Z_OK) {
            free(w->zout);
            free(w->path);
            free(w);
            return sn__fail(ctx, SN_ERR_NOMEM, "%s: cannot set up zlib", path);
        }
        w->z_init = true;
    }
    w->f = fopen(path, "wb");
    if (!w->f) {
        sn_status st = open_error(ctx, path, "create");
        if (w->z_init) deflateEnd(&w->z);
        free(w->zout);
        free(w->path);
        free(w);
        return st;
    }
    if (compression == SN_COMPRESSION_NONE)   /* fewer, larger writes than stdio's default */
        setvbuf(w->f, NULL, _IOFBF, ZBUF_LEN);
    *out = w;
    return SN_OK;
}

sn_status sn_tfrecord_write(sn_tfrecord_writer *w, const void *data, size_t len) {
    if (!w) return SN_ERR_INVALID_ARG;
    if (w->failed != SN_OK)
        return sn__fail(w->ctx, SN_ERR_STATE, "writer failed earlier: %s", w->errmsg);
    if (!data && len)   /* nothing written yet: the writer stays usable */
        return sn__fail(w->ctx, SN_ERR_INVALID_ARG, "%s: write: data is NULL", w->path);
    uint8_t head[HEADER_LEN], foot[FOOTER_LEN];
    store_le64(head, (uint64_t)len);
    store_le32(head + 8, sn__crc32c_mask(sn__crc32c(head, 8)));
    store_le32(foot, sn__crc32c_mask(sn__crc32c(data, len)));
    SN_TRY(emit(w, head, sizeof head));
    SN_TRY(emit(w, data, len));
    return emit(w, foot, sizeof foot);
}

sn_status sn_tfrecord_writer_flush(sn_tfrecord_writer *w) {
    if (!w) return SN_ERR_INVALID_ARG;
    if (w->failed != SN_OK)
        return sn__fail(w->ctx, SN_ERR_STATE, "writer failed earlier: %s", w->errmsg);
    if (w->z_init) {
        w->z.avail_in = 0;
        SN_TRY(deflate_run(w, Z_SYNC_FLUSH));
    }
    if (fflush(w->f) != 0) return wfail(w, SN_ERR_IO, "flush: %s", strerror(errno));
    return SN_OK;
}

sn_status sn_tfrecord_writer_close(sn_tfrecord_writer *w) {
    if (!w) return SN_OK;
    if (w->z_init) {
        if (w->failed == SN_OK) {
            w->z.avail_in = 0;
            deflate_run(w, Z_FINISH);   /* records its own failure */
        }
        deflateEnd(&w->z);
    }
    if (w->f && fclose(w->f) != 0 && w->failed == SN_OK)
        wfail(w, SN_ERR_IO, "close: %s", strerror(errno));
    sn_status st = w->failed;
    if (st != SN_OK)   /* restate the first error, not a later follow-up */
        sn__fail(w->ctx, st, "%s", w->errmsg);
    free(w->zout);
    free(w->path);
    free(w);
    return st;
}

/* ---- reader ---------------------------------------------------------------------------- */

struct sn_tfrecord_reader {
    sn_ctx *ctx;
    char *path;
    FILE *f;
    sn_compression comp;         /* resolved: NONE, ZLIB or GZIP */
    uint64_t max_record;
    /* window over the uncompressed stream: valid bytes are buf[pos, end) */
    uint8_t *buf;
    size_t cap, pos, end;
    bool eof;                    /* no more bytes will come */
    uint64_t offset;             /* stream offset of buf[pos], the next record */
    /* compressed input */
    z_stream z;
    bool z_init;
    bool z_file_eof;             /* the compressed file has been read to its end */
    bool z_in_member;            /* inside a deflate stream (started, not ended) */
    uint64_t z_consumed;         /* compressed bytes given to inflate, for messages */
    uint8_t *zin;
    /* first error, repeated by later reads */
    sn_status failed;
    char errmsg[SN_ERRMSG_LEN];
};

/* Fails the reader for good: "path: record at offset N: <detail>". */
static sn_status rfail(sn_tfrecord_reader *r, sn_status st, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static sn_status rfail(sn_tfrecord_reader *r, sn_status st, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(r->errmsg, sizeof r->errmsg, "%s: record at offset %llu%s: %s", r->path,
             (unsigned long long)r->offset,
             r->comp == SN_COMPRESSION_NONE ? "" : " (uncompressed stream)", msg);
    r->failed = st;
    return sn__fail(r->ctx, st, "%s", r->errmsg);
}

/* Appends decompressed bytes to buf[end, cap).  Adds nothing only at the end of the
 * stream (then sets eof). */
static sn_status fill_zlib(sn_tfrecord_reader *r) {
    size_t before = r->end;
    while (r->end == before && !r->eof) {
        if (r->z.avail_in == 0 && !r->z_file_eof) {
            size_t got = fread(r->zin, 1, ZBUF_LEN, r->f);
            if (got == 0) {
                if (ferror(r->f)) return rfail(r, SN_ERR_IO, "read: %s", strerror(errno));
                r->z_file_eof = true;
            }
            r->z.next_in = r->zin;
            r->z.avail_in = (uInt)got;
        }
        if (r->z.avail_in == 0 && r->z_file_eof && !r->z_in_member) {
            r->eof = true;   /* the last member ended with the file: a clean end */
            break;
        }
        size_t room = r->cap - r->end;
        uInt in_before = r->z.avail_in;
        r->z.next_out = r->buf + r->end;
        r->z.avail_out = (uInt)(room < ((size_t)1 << 30) ? room : ((size_t)1 << 30));
        r->z_in_member = true;
        int ret = inflate(&r->z, Z_NO_FLUSH);
        r->z_consumed += in_before - r->z.avail_in;
        r->end += (size_t)(r->z.next_out - (r->buf + r->end));
        if (ret == Z_STREAM_END) {
            /* gzip files may hold several members (cat a.gz b.gz): start the next one if
             * any input is left; trailing garbage then fails its header check. */
            r->z_in_member = false;
            if (inflateReset(&r->z) != Z_OK)
                return rfail(r, SN_ERR_FORMAT, "inflate: cannot reset");
        } else if (ret == Z_BUF_ERROR) {
            /* no progress: inflate wants input (more to read, or the file was cut) */
            if (r->z.avail_in > 0 || r->z_file_eof)
                return rfail(r, SN_ERR_FORMAT, "%s stream truncated after %llu compressed "
                             "bytes", compression_name(r->comp),
                             (unsigned long long)r->z_consumed);
        } else if (ret == Z_MEM_ERROR) {
            return rfail(r, SN_ERR_NOMEM, "inflate: out of memory");
        } else if (ret != Z_OK) {
            return rfail(r, SN_ERR_FORMAT, "corrupt %s stream near compressed byte %llu: %s",
                         compression_name(r->comp), (unsigned long long)r->z_consumed,
                         r->z.msg ? r->z.msg : "inflate failed");
        }
    }
    return SN_OK;
}

static sn_status fill(sn_tfrecord_reader *r) {
    if (r->comp != SN_COMPRESSION_NONE) return fill_zlib(r);
    size_t got = fread(r->buf + r->end, 1, r->cap - r->end, r->f);
    if (got == 0) {
        if (ferror(r->f)) return rfail(r, SN_ERR_IO, "read: %s", strerror(errno));
        r->eof = true;
    }
    r->end += got;
    return SN_OK;
}

/* Makes `need` bytes available at buf[pos] unless the stream ends first; *have receives
 * the bytes available (< need only at the end of the stream). */
static sn_status ensure(sn_tfrecord_reader *r, size_t need, size_t *have) {
    while (r->end - r->pos < need && !r->eof) {
        if (r->pos > 0 && r->pos + need > r->cap) {   /* slide the partial record down */
            memmove(r->buf, r->buf + r->pos, r->end - r->pos);
            r->end -= r->pos;
            r->pos = 0;
        }
        if (r->end == r->cap) {   /* full of real data: only now may it grow */
            size_t ncap = r->cap * 2 < need ? r->cap * 2 : need;
            uint8_t *nb = realloc(r->buf, ncap);
            if (!nb)
                return rfail(r, SN_ERR_NOMEM, "cannot allocate %zu bytes for a record", ncap);
            r->buf = nb;
            r->cap = ncap;
        }
        SN_TRY(fill(r));
    }
    *have = r->end - r->pos;
    return SN_OK;
}

void sn_tfrecord_reader_close(sn_tfrecord_reader *r) {
    if (!r) return;
    if (r->z_init) inflateEnd(&r->z);
    if (r->f) fclose(r->f);
    free(r->zin);
    free(r->buf);
    free(r->path);
    free(r);
}

sn_status sn_tfrecord_reader_open(sn_ctx *ctx, const char *path, sn_compression compression,
                                  sn_tfrecord_reader **out) {
    if (!out || !path) return sn__fail(ctx, SN_ERR_INVALID_ARG, "tfrecord reader: NULL argument");
    *out = NULL;
    if ((unsigned)compression > SN_COMPRESSION_AUTO)
        return sn__fail(ctx, SN_ERR_INVALID_ARG, "%s: unknown compression %d", path,
                        (int)compression);
    sn_tfrecord_reader *r = calloc(1, sizeof *r);
    if (!r) return sn__fail(ctx, SN_ERR_NOMEM, "%s: out of memory", path);
    r->ctx = ctx;
    r->max_record = SN_TFRECORD_DEFAULT_MAX_RECORD;
    r->cap = WINDOW_INIT;
    r->path = dup_str(path);
    r->buf = malloc(r->cap);
    if (!r->path || !r->buf) {
        sn_tfrecord_reader_close(r);
        return sn__fail(ctx, SN_ERR_NOMEM, "%s: out of memory", path);
    }
    r->f = fopen(path, "rb");
    if (!r->f) {
        sn_status st = open_error(ctx, path, "open");
        sn_tfrecord_reader_close(r);
        return st;
    }
    /* AUTO looks at the first two bytes, kept in the window (NONE) or handed to inflate
     * (GZIP), so that pipes work too: nothing is read twice, nothing seeks. */
    size_t head = 0;
    if (compression == SN_COMPRESSION_AUTO) {
        head = fread(r->buf, 1, 2, r->f);
        if (head < 2 && ferror(r->f)) {
            sn_status st = sn__fail(ctx, SN_ERR_IO, "%s: read: %s", path, strerror(errno));
            sn_tfrecord_reader_close(r);
            return st;
        }
        compression = head == 2 && r->buf[0] == 0x1f && r->buf[1] == 0x8b
                          ? SN_COMPRESSION_GZIP : SN_COMPRESSION_NONE;
    }
    r->comp = compression;
    if (compression == SN_COMPRESSION_NONE) {
        r->end = head;
    } else {
        r->zin = malloc(ZBUF_LEN);
        int bits = ZLIB_WINDOW + (compression == SN_COMPRESSION_GZIP ? 16 : 0);
        if (!r->zin || inflateInit2(&r->z, bits) != Z_OK) {
            sn_tfrecord_reader_close(r);
            return sn__fail(ctx, SN_ERR_NOMEM, "%s: cannot set up zlib", path);
        }
        r->z_init = true;
        memcpy(r->zin, r->buf, head);
        r->z.next_in = r->zin;
        r->z.avail_in = (uInt)head;
    }
    *out = r;
    return SN_OK;
}

void sn_tfrecord_reader_set_max_record(sn_tfrecord_reader *r, uint64_t max_bytes) {
    /* keeps 16 + max within size_t, so the sums below cannot wrap */
    uint64_t limit = (uint64_t)(SIZE_MAX / 2);
    if (r) r->max_record = max_bytes < limit ? max_bytes : limit;
}

uint64_t sn_tfrecord_reader_offset(const sn_tfrecord_reader *r) { return r ? r->offset : 0; }
const char *sn_tfrecord_reader_path(const sn_tfrecord_reader *r) { return r ? r->path : NULL; }

sn_status sn_tfrecord_read(sn_tfrecord_reader *r, const uint8_t **data, size_t *len) {
    if (!r || !data || !len) return SN_ERR_INVALID_ARG;
    *data = NULL;
    *len = 0;
    if (r->failed != SN_OK) return sn__fail(r->ctx, r->failed, "%s", r->errmsg);
    size_t have;
    SN_TRY(ensure(r, HEADER_LEN, &have));
    if (have == 0)
        return sn__fail(r->ctx, SN_ERR_NOT_FOUND, "%s: end of file after %llu bytes of records",
                        r->path, (unsigned long long)r->offset);
    if (have < HEADER_LEN)
        return rfail(r, SN_ERR_FORMAT, "truncated record header (%zu of %d bytes)", have,
                     HEADER_LEN);
    const uint8_t *p = r->buf + r->pos;
    uint64_t n = load_le64(p);
    uint32_t stored = sn__crc32c_unmask(load_le32(p + 8)), actual = sn__crc32c(p, 8);
    if (stored != actual)
        return rfail(r, SN_ERR_FORMAT, "length crc mismatch (stored 0x%08x, computed 0x%08x)",
                     stored, actual);
    if (n > r->max_record)
        return rfail(r, SN_ERR_FORMAT, "record length %llu exceeds the limit of %llu bytes",
                     (unsigned long long)n, (unsigned long long)r->max_record);
    size_t total = HEADER_LEN + (size_t)n + FOOTER_LEN;
    SN_TRY(ensure(r, total, &have));
    if (have < total)
        return rfail(r, SN_ERR_FORMAT, "truncated record: %llu data bytes declared, %zu "
                     "bytes of data and crc present", (unsigned long long)n, have - HEADER_LEN);
    p = r->buf + r->pos;   /* ensure() may have moved the window */
    stored = sn__crc32c_unmask(load_le32(p + HEADER_LEN + n));
    actual = sn__crc32c(p + HEADER_LEN, (size_t)n);
    if (stored != actual)
        return rfail(r, SN_ERR_FORMAT, "data crc mismatch (stored 0x%08x, computed 0x%08x, "
                     "%llu bytes)", stored, actual, (unsigned long long)n);
    *data = p + HEADER_LEN;
    *len = (size_t)n;
    r->pos += total;
    r->offset += total;
    return SN_OK;
}

/* ---- file patterns --------------------------------------------------------------------- */

struct sn_file_list {
    size_t n;
    char **paths;
};

void sn_file_list_free(sn_file_list *l) {
    if (!l) return;
    for (size_t i = 0; i < l->n; i++) free(l->paths[i]);
    free(l->paths);
    free(l);
}

size_t sn_file_list_count(const sn_file_list *l) { return l ? l->n : 0; }
const char *sn_file_list_path(const sn_file_list *l, size_t i) {
    return l && i < l->n ? l->paths[i] : NULL;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Finds "<digits>-of-<digits>" in the base name of path: the shard index and count, and
 * the name with the index blanked out (the key of its shard set).  False if none. */
static bool shard_parse(const char *path, unsigned long long *index, unsigned long long *count,
                        char *key, size_t keylen) {
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    const char *of = NULL;
    for (const char *s = strstr(base, "-of-"); s; s = strstr(s + 1, "-of-")) of = s;
    if (!of || of == base || of[-1] < '0' || of[-1] > '9' || of[4] < '0' || of[4] > '9')
        return false;
    const char *d = of;
    while (d > base && d[-1] >= '0' && d[-1] <= '9') d--;
    *index = strtoull(d, NULL, 10);
    char *end;
    *count = strtoull(of + 4, &end, 10);
    snprintf(key, keylen, "%.*s#%s", (int)(d - path), path, of);
    return true;
}

/* Logs a warning for each TF-style shard set with missing members, the classic way to
 * train on part of a dataset without noticing. */
static void shard_check(sn_ctx *ctx, const char *pattern, const sn_file_list *l) {
    char key[1024], other[1024];
    unsigned long long idx, cnt, idx2, cnt2;
    for (size_t i = 0; i < l->n; i++) {
        if (!shard_parse(l->paths[i], &idx, &cnt, key, sizeof key)) continue;
        bool first = true;
        size_t found = 0;
        for (size_t j = 0; j < l->n; j++) {
            if (!shard_parse(l->paths[j], &idx2, &cnt2, other, sizeof other) ||
                strcmp(key, other) != 0)
                continue;
            if (j < i) first = false;
            found++;
        }
        if (first && found != cnt)
            sn__log(ctx, SN_LOG_WARN, "pattern '%s': %zu files of the %llu-shard set of '%s'",
                    pattern, found, cnt, l->paths[i]);
    }
}

sn_status sn_tfrecord_files(sn_ctx *ctx, const char *pattern, sn_file_list **out) {
    if (!out || !pattern) return sn__fail(ctx, SN_ERR_INVALID_ARG, "tfrecord_files: NULL argument");
    *out = NULL;
    glob_t g;
    /* GLOB_MARK appends '/' to directories, so they can be skipped; GLOB_NOSORT because
     * glob sorts by the locale's collation and we want the same order everywhere. */
    int ret = glob(pattern, GLOB_MARK | GLOB_NOSORT | GLOB_ERR, NULL, &g);
    if (ret == GLOB_NOSPACE)
        return sn__fail(ctx, SN_ERR_NOMEM, "glob '%s': out of memory", pattern);
    if (ret == GLOB_ABORTED)
        return sn__fail(ctx, SN_ERR_IO, "glob '%s': cannot read a directory", pattern);
    sn_file_list *l = calloc(1, sizeof *l);
    if (!l || (ret == 0 && g.gl_pathc && !(l->paths = calloc(g.gl_pathc, sizeof *l->paths)))) {
        free(l);
        if (ret == 0) globfree(&g);
        return sn__fail(ctx, SN_ERR_NOMEM, "glob '%s': out of memory", pattern);
    }
    for (size_t i = 0; ret == 0 && i < g.gl_pathc; i++) {
        size_t len = strlen(g.gl_pathv[i]);
        if (len && g.gl_pathv[i][len - 1] == '/') continue;
        if (!(l->paths[l->n] = dup_str(g.gl_pathv[i]))) {
            globfree(&g);
            sn_file_list_free(l);
            return sn__fail(ctx, SN_ERR_NOMEM, "glob '%s': out of memory", pattern);
        }
        l->n++;
    }
    if (ret == 0) globfree(&g);
    if (l->n == 0) {
        sn_file_list_free(l);
        return sn__fail(ctx, SN_ERR_NOT_FOUND, "no file matches '%s'", pattern);
    }
    qsort(l->paths, l->n, sizeof *l->paths, cmp_str);
    shard_check(ctx, pattern, l);
    *out = l;
    return SN_OK;
}

/* ---- multi-file reader ----------------------------------------------------------------- */

struct sn_tfrecord_multi {
    sn_ctx *ctx;
    char **paths;
    size_t n, next;                  /* files, and the next one to open */
    sn_compression comp;
    uint64_t max_record;
    sn_tfrecord_reader **slots;      /* the cycle: open readers, NULL = empty slot */
    size_t nslots, cur, open;
    const char *last_path;
    uint64_t last_offset;
    sn_status failed;
    char errmsg[SN_ERRMSG_LEN];
};

/* Records the first failure (its message is already in ctx) so later reads repeat it. */
static sn_status multi_fail(sn_tfrecord_multi *m, sn_status st) {
    m->failed = st;
    snprintf(m->errmsg, sizeof m->errmsg, "%s", sn_ctx_errmsg(m->ctx));
    return st;
}

void sn_tfrecord_multi_close(sn_tfrecord_multi *m) {
    if (!m) return;
    for (size_t i = 0; i < m->nslots; i++) sn_tfrecord_reader_close(m->slots[i]);
    for (size_t i = 0; i < m->n; i++) free(m->paths[i]);
    free(m->paths);
    free(m->slots);
    free(m);
}

sn_status sn_tfrecord_multi_open(sn_ctx *ctx, const char *const *paths, size_t n,
                                 sn_compression compression, int cycle_length,
                                 sn_tfrecord_multi **out) {
    if (!out || (!paths && n))
        return sn__fail(ctx, SN_ERR_INVALID_ARG, "tfrecord_multi: NULL argument");
    *out = NULL;
    if (n == 0 || cycle_length < 0)
        return sn__fail(ctx, SN_ERR_INVALID_ARG, "tfrecord_multi: %zu files, cycle_length %d",
                        n, cycle_length);
    if ((unsigned)compression > SN_COMPRESSION_AUTO)
        return sn__fail(ctx, SN_ERR_INVALID_ARG, "tfrecord_multi: unknown compression %d",
                        (int)compression);
    sn_tfrecord_multi *m = calloc(1, sizeof *m);
    if (!m) return sn__fail(ctx, SN_ERR_NOMEM, "tfrecord_multi: out of memory");
    m->ctx = ctx;
    m->comp = compression;
    m->max_record = SN_TFRECORD_DEFAULT_MAX_RECORD;
    m->nslots = cycle_length == 0 || (size_t)cycle_length > n ? n : (size_t)cycle_length;
    m->paths = calloc(n, sizeof *m->paths);
    m->slots = calloc(m->nslots, sizeof *m->slots);
    bool ok = m->paths && m->slots;
    for (size_t i = 0; ok && i < n; i++) {
        if (!paths[i]) {
            sn_tfrecord_multi_close(m);
            return sn__fail(ctx, SN_ERR_INVALID_ARG, "tfrecord_multi: path %zu is NULL", i);
        }
        ok = (m->paths[i] = dup_str(paths[i])) != NULL;
        m->n += ok;
    }
    if (!ok) {
        sn_tfrecord_multi_close(m);
        return sn__fail(ctx, SN_ERR_NOMEM, "tfrecord_multi: out of memory");
    }
    *out = m;
    return SN_OK;
}

void sn_tfrecord_multi_set_max_record(sn_tfrecord_multi *m, uint64_t max_bytes) {
    if (!m) return;
    m->max_record = max_bytes;
    for (size_t i = 0; i < m->nslots; i++)
        sn_tfrecord_reader_set_max_record(m->slots[i], max_bytes);
}

const char *sn_tfrecord_multi_path(const sn_tfrecord_multi *m) { return m ? m->last_path : NULL; }
uint64_t sn_tfrecord_multi_offset(const sn_tfrecord_multi *m) { return m ? m->last_offset : 0; }

sn_status sn_tfrecord_multi_read(sn_tfrecord_multi *m, const uint8_t **data, size_t *len) {
    if (!m || !data || !len) return SN_ERR_INVALID_ARG;
    *data = NULL;
    *len = 0;
    if (m->failed != SN_OK) return sn__fail(m->ctx, m->failed, "%s", m->errmsg);
    for (;;) {
        if (m->open == 0 && m->next >= m->n)
            return sn__fail(m->ctx, SN_ERR_NOT_FOUND, "end of all %zu files", m->n);
        sn_tfrecord_reader **slot = &m->slots[m->cur];
        if (!*slot) {
            if (m->next >= m->n) {   /* nothing left to put in this slot */
                m->cur = (m->cur + 1) % m->nslots;
                continue;
            }
            sn_status st = sn_tfrecord_reader_open(m->ctx, m->paths[m->next], m->comp, slot);
            if (st == SN_ERR_NOT_FOUND)   /* would read as the end of the stream */
                st = sn__fail(m->ctx, SN_ERR_IO, "%s: cannot open: no such file",
                              m->paths[m->next]);
            if (st != SN_OK) return multi_fail(m, st);
            m->next++;
            m->open++;
            sn_tfrecord_reader_set_max_record(*slot, m->max_record);
        }
        uint64_t off = (*slot)->offset;
        sn_status st = sn_tfrecord_read(*slot, data, len);
        if (st == SN_OK) {
            m->last_path = (*slot)->path;
            m->last_offset = off;
            m->cur = (m->cur + 1) % m->nslots;
            return SN_OK;
        }
        if (st != SN_ERR_NOT_FOUND) return multi_fail(m, st);
        /* this file has ended: as tf.data's interleave, the next file takes its slot and
         * gives its first record in the same turn */
        sn_tfrecord_reader_close(*slot);
        *slot = NULL;
        m->open--;
    }
}
