/* table.c: TensorFlow's table format (LevelDB's SSTable; docs/formats.md, "Tables"), both ways.
 *
 *   [data block][trailer] ... [metaindex block][trailer] [index block][trailer] [footer 48]
 *
 * A block is a run of prefix-compressed entries, then a restart array; its 5-byte trailer
 * is a type byte (0 raw, 1 snappy) and the masked CRC32C of the stored bytes + type.
 * The reader bounds every handle, varint and length by the file or block before use.  The
 * writer reproduces TensorFlow's TableBuilder, so that a V2 .index we write is byte for
 * byte what TensorFlow would write for the same entries.
 * Also here: the OrderedCode keys of tensor slices and TF's dtype codes (the byte-level
 * helpers are bytes.c's). */
#include "table.h"

#include <limits.h>
#include <snappy-c.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "crc32c.h"

#define FOOTER_LEN 48
#define TRAILER_LEN 5
#define TABLE_MAGIC 0xdb4775248b80fb57ull

/* ---- blocks ---------------------------------------------------------------------------- */

typedef struct handle {
    uint64_t off, size;
} handle;

/* Decodes a BlockHandle and checks that the block and its trailer lie before `limit`. */
static const uint8_t *get_handle(const uint8_t *p, const uint8_t *end, uint64_t limit,
                                 handle *h) {
    p = sn__get_varint(p, end, 10, &h->off);
    if (p) p = sn__get_varint(p, end, 10, &h->size);
    if (!p || h->off > limit || h->size > limit - h->off || TRAILER_LEN > limit - h->off - h->size)
        return NULL;
    return p;
}

/* Entries region of block contents: [0, *limit), restart array after it. */
static bool block_layout(const uint8_t *b, size_t size, size_t *limit) {
    if (size < 4) return false;
    uint32_t nrest = sn__load32(b + size - 4);
    if (nrest > (size - 4) / 4) return false;
    *limit = size - 4 - 4 * (size_t)nrest;
    return true;
}

struct sn__table {
    sn_ctx *ctx;
    char *path;
    int fd;
    uint64_t size;
    /* The index block, parsed: n_index separators (keys into index_keys) and handles. */
    size_t n_index;
    size_t *index_key_off, *index_key_len;
    uint8_t *index_keys;
    handle *index_handle;
    /* The block read by the last lookup. */
    uint8_t *cache_mem;
    const uint8_t *cache;
    size_t cache_limit;
    uint64_t cache_off;
    bool cache_valid;
};

const char *sn__table_path(const sn__table *t) { return t->path; }
uint64_t sn__table_file_size(const sn__table *t) { return t->size; }

/* Reads block h: checks the trailer CRC and type, decompresses snappy.  *mem is the owned
 * allocation; *data and *size the contents (data may point into mem). */
static sn_status read_block(sn__table *t, handle h, uint8_t **mem, const uint8_t **data,
                            size_t *size) {
    sn_ctx *ctx = t->ctx;
    *mem = NULL;
    size_t stored = (size_t)h.size;
    uint8_t *raw = malloc(stored + TRAILER_LEN);
    if (!raw)
        return sn__fail(ctx, SN_ERR_NOMEM, "'%s': cannot allocate a %zu-byte block", t->path,
                        stored);
    sn_status st = sn__file_pread(ctx, t->fd, raw, stored + TRAILER_LEN, h.off, t->path);
    if (st != SN_OK) {
        free(raw);
        return st;
    }
    uint8_t type = raw[stored];
    uint32_t want = sn__crc32c_unmask(sn__load32(raw + stored + 1));
    uint32_t got = sn__crc32c_extend(sn__crc32c(raw, stored), &type, 1);
    if (want != got) {
        free(raw);
        return sn__fail(ctx, SN_ERR_FORMAT, "'%s': block at offset %llu (%zu bytes): checksum "
                        "mismatch (stored 0x%08x, computed 0x%08x)", t->path,
                        (unsigned long long)h.off, stored, want, got);
    }
    if (type == 0) {
        *mem = raw;
        *data = raw;
        *size = stored;
        return SN_OK;
    }
    if (type != 1) {
        free(raw);
        return sn__fail(ctx, SN_ERR_FORMAT, "'%s': block at offset %llu has compression type "
                        "%u (only 0 = none and 1 = snappy exist)", t->path,
                        (unsigned long long)h.off, type);
    }
    size_t ulen = 0;
    /* A snappy element expands at most 64 bytes from 3 (22x); a larger claim is corrupt, and
     * refusing it keeps a forged length from becoming a huge allocation. */
    if (snappy_uncompressed_length((const char *)raw, stored, &ulen) != SNAPPY_OK ||
        ulen / 22 > stored) {
        free(raw);
        return sn__fail(ctx, SN_ERR_FORMAT, "'%s': snappy block at offset %llu has a bad "
                        "length header", t->path, (unsigned long long)h.off);
    }
    uint8_t *u = malloc(ulen ? ulen : 1);
    if (!u) {
        free(raw);
        return sn__fail(ctx, SN_ERR_NOMEM, "'%s': cannot allocate %zu bytes for a snappy "
                        "block", t->path, ulen);
    }
    size_t out = ulen;
    snappy_status ss = snappy_uncompress((const char *)raw, stored, (char *)u, &out);
    free(raw);
    if (ss != SNAPPY_OK || out != ulen) {
        free(u);
        return sn__fail(ctx, SN_ERR_FORMAT, "'%s': snappy block at offset %llu is corrupt",
                        t->path, (unsigned long long)h.off);
    }
    *mem = u;
    *data = u;
    *size = ulen;
    return SN_OK;
}

/* Decodes the entry at *pos of a block into keybuf (which holds the previous key).
 * Returns false if the entry is malformed. */
static bool block_entry(const uint8_t *b, size_t limit, size_t *pos, sn__buf *keybuf,
                        const uint8_t **val, size_t *vlen) {
    const uint8_t *p = b + *pos, *end = b + limit;
    uint64_t shared, non_shared, vl;
    p = sn__get_varint(p, end, 5, &shared);
    if (p) p = sn__get_varint(p, end, 5, &non_shared);
    if (p) p = sn__get_varint(p, end, 5, &vl);
    if (!p || shared > keybuf->n || non_shared > (uint64_t)(end - p) ||
        vl > (uint64_t)(end - p) - non_shared)
        return false;
    keybuf->n = (size_t)shared;
    sn__buf_put(keybuf, p, (size_t)non_shared);
    if (keybuf->oom) return false;
    *val = p + non_shared;
    *vlen = (size_t)vl;
    *pos = (size_t)(p + non_shared + vl - b);
    return true;
}

static int key_cmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen) {
    size_t m = alen < blen ? alen : blen;
    int c = m ? memcmp(a, b, m) : 0;   /* a may be NULL when empty */
    if (c) return c;
    return alen < blen ? -1 : alen > blen;
}

sn_status sn__table_open(sn_ctx *ctx, const char *path, sn__table **out) {
    *out = NULL;
    sn__table *t = calloc(1, sizeof *t);
    if (!t || !(t->path = strdup(path))) {
        free(t);
        return sn__fail(ctx, SN_ERR_NOMEM, "table: out of memory");
    }
    t->ctx = ctx;
    t->fd = -1;
    sn_status st = sn__file_open(ctx, path, &t->fd, &t->size);
    uint8_t footer[FOOTER_LEN];
    if (st == SN_OK && t->size < FOOTER_LEN)
        st = sn__fail(ctx, SN_ERR_FORMAT, "'%s': %llu bytes is too short for a table (footer "
                      "is 48 bytes)", path, (unsigned long long)t->size);
    if (st == SN_OK)
        st = sn__file_pread(ctx, t->fd, footer, FOOTER_LEN, t->size - FOOTER_LEN, path);
    handle meta, index;
    if (st == SN_OK && sn__load64(footer + 40) != TABLE_MAGIC)
        st = sn__fail(ctx, SN_ERR_FORMAT, "'%s': not a table (bad magic in the footer at "
                      "offset %llu)", path, (unsigned long long)(t->size - FOOTER_LEN));
    if (st == SN_OK) {
        uint64_t limit = t->size - FOOTER_LEN;
        const uint8_t *p = get_handle(footer, footer + 40, limit, &meta);
        if (p) p = get_handle(p, footer + 40, limit, &index);
        if (!p)
            st = sn__fail(ctx, SN_ERR_FORMAT, "'%s': footer block handles lie outside the "
                          "file", path);
    }
    /* The index block, parsed once into arrays. */
    uint8_t *mem = NULL;
    const uint8_t *b = NULL;
    size_t bsize = 0, limit = 0;
    if (st == SN_OK) st = read_block(t, index, &mem, &b, &bsize);
    if (st == SN_OK && !block_layout(b, bsize, &limit))
        st = sn__fail(ctx, SN_ERR_FORMAT, "'%s': index block at offset %llu has a bad restart "
                      "array", path, (unsigned long long)index.off);
    sn__buf keys = {0}, store = {0};
    size_t cap = 0;
    for (size_t pos = 0; st == SN_OK && pos < limit;) {
        const uint8_t *val;
        size_t vlen;
        handle h;
        if (!block_entry(b, limit, &pos, &keys, &val, &vlen) ||
            !get_handle(val, val + vlen, t->size - FOOTER_LEN, &h)) {
            st = sn__fail(ctx, keys.oom ? SN_ERR_NOMEM : SN_ERR_FORMAT, "'%s': malformed index "
                          "entry %zu in the block at offset %llu", path, t->n_index,
                          (unsigned long long)index.off);
            break;
        }
        if (t->n_index == cap) {
            cap = cap ? 2 * cap : 16;
            size_t *ko = realloc(t->index_key_off, cap * sizeof *ko);
            if (ko) t->index_key_off = ko;
            size_t *kl = realloc(t->index_key_len, cap * sizeof *kl);
            if (kl) t->index_key_len = kl;
            handle *hh = realloc(t->index_handle, cap * sizeof *hh);
            if (hh) t->index_handle = hh;
            if (!ko || !kl || !hh) {
                st = sn__fail(ctx, SN_ERR_NOMEM, "'%s': out of memory", path);
                break;
            }
        }
        /* Separators live concatenated in one allocation (store). */
        t->index_key_off[t->n_index] = store.n;
        t->index_key_len[t->n_index] = keys.n;
        t->index_handle[t->n_index] = h;
        t->n_index++;
        sn__buf_put(&store, keys.p, keys.n);
        if (store.oom) st = sn__fail(ctx, SN_ERR_NOMEM, "'%s': out of memory", path);
    }
    t->index_keys = store.p;   /* owned by t from here (NULL for an empty index) */
    sn__buf_free(&keys);
    free(mem);
    if (st != SN_OK) {
        sn__table_close(t);
        return st;
    }
    *out = t;
    return SN_OK;
}

void sn__table_close(sn__table *t) {
    if (!t) return;
    if (t->fd >= 0) close(t->fd);
    free(t->path);
    free(t->index_key_off);
    free(t->index_key_len);
    free(t->index_keys);
    free(t->index_handle);
    free(t->cache_mem);
    free(t);
}

/* Loads data block i (index order) into *mem, *data and *limit, checking its restart array. */
static sn_status load_data_block(sn__table *t, size_t i, uint8_t **mem, const uint8_t **data,
                                 size_t *limit) {
    size_t size = 0;
    SN_TRY(read_block(t, t->index_handle[i], mem, data, &size));
    if (!block_layout(*data, size, limit)) {
        free(*mem);
        *mem = NULL;
        return sn__fail(t->ctx, SN_ERR_FORMAT, "'%s': block at offset %llu has a bad restart "
                        "array", t->path, (unsigned long long)t->index_handle[i].off);
    }
    return SN_OK;
}

/* Moves to the next entry, loading following blocks as needed (an empty block is legal). */
static sn_status iter_advance(sn__table_iter *it) {
    sn__table *t = it->t;
    while (it->pos >= it->block_limit) {
        free(it->block_mem);
        it->block_mem = NULL;
        it->block = NULL;
        if (it->index_pos + 1 >= t->n_index) {
            it->valid = false;
            return SN_OK;
        }
        it->index_pos++;
        it->pos = 0;
        it->keybuf.n = 0;
        it->block_off = t->index_handle[it->index_pos].off;
        SN_TRY(load_data_block(t, it->index_pos, &it->block_mem, &it->block, &it->block_limit));
    }
    if (!block_entry(it->block, it->block_limit, &it->pos, &it->keybuf, &it->val, &it->vlen)) {
        it->valid = false;
        return sn__fail(t->ctx, SN_ERR_FORMAT, "'%s': malformed entry in the block at offset "
                        "%llu", t->path, (unsigned long long)it->block_off);
    }
    it->valid = true;
    it->key = it->keybuf.p;
    it->klen = it->keybuf.n;
    return SN_OK;
}

sn_status sn__table_iter_first(sn__table *t, sn__table_iter *it) {
    memset(it, 0, sizeof *it);
    it->t = t;
    it->index_pos = (size_t)-1;   /* iter_advance steps to block 0 */
    return iter_advance(it);
}

sn_status sn__table_iter_next(sn__table_iter *it) {
    if (!it->valid) return SN_OK;
    sn_status st = iter_advance(it);
    if (st == SN_OK && it->valid && it->keybuf.oom)
        return sn__fail(it->t->ctx, SN_ERR_NOMEM, "table iteration: out of memory");
    return st;
}

void sn__table_iter_free(sn__table_iter *it) {
    free(it->block_mem);
    sn__buf_free(&it->keybuf);
    memset(it, 0, sizeof *it);
}

sn_status sn__table_get(sn__table *t, const void *key, size_t klen, bool *found,
                        const uint8_t **val, size_t *vlen) {
    *found = false;
    /* The first block whose separator is >= key is the only one that can hold it. */
    size_t lo = 0, hi = t->n_index;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (key_cmp(t->index_keys + t->index_key_off[mid], t->index_key_len[mid], key, klen) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == t->n_index) return SN_OK;
    handle h = t->index_handle[lo];
    if (!t->cache_valid || t->cache_off != h.off) {
        free(t->cache_mem);
        t->cache_mem = NULL;
        t->cache_valid = false;
        SN_TRY(load_data_block(t, lo, &t->cache_mem, &t->cache, &t->cache_limit));
        t->cache_off = h.off;
        t->cache_valid = true;
    }
    sn__buf kb = {0};
    sn_status st = SN_OK;
    for (size_t pos = 0; pos < t->cache_limit;) {
        const uint8_t *v;
        size_t vl;
        if (!block_entry(t->cache, t->cache_limit, &pos, &kb, &v, &vl)) {
            st = sn__fail(t->ctx, kb.oom ? SN_ERR_NOMEM : SN_ERR_FORMAT, "'%s': malformed entry "
                          "in the block at offset %llu", t->path, (unsigned long long)h.off);
            break;
        }
        int c = key_cmp(kb.p, kb.n, key, klen);
        if (c == 0) {
            *found = true;
            *val = v;
            *vlen = vl;
        }
        if (c >= 0) break;   /* keys are sorted: past it */
    }
    sn__buf_free(&kb);
    return st;
}

void sn__table_drop_cache(sn__table *t) {
    free(t->cache_mem);
    t->cache_mem = NULL;
    t->cache = NULL;
    t->cache_valid = false;
}

/* ---- writer ---------------------------------------------------------------------------- */

/* LevelDB's BlockBuilder. */
typedef struct block_builder {
    sn__buf buf;
    sn__buf restarts;        /* uint32 LE offsets */
    size_t n_restarts;
    int counter;
    int interval;
    sn__buf last_key;
} block_builder;

static void bb_reset(block_builder *bb) {
    bb->buf.n = 0;
    bb->restarts.n = 0;
    sn__buf_put_fixed32(&bb->restarts, 0);   /* the first restart is always offset 0 */
    bb->n_restarts = 1;
    bb->counter = 0;
    bb->last_key.n = 0;
}

static void bb_add(block_builder *bb, const uint8_t *key, size_t klen, const uint8_t *val,
                   size_t vlen) {
    size_t shared = 0;
    if (bb->counter < bb->interval) {
        size_t m = bb->last_key.n < klen ? bb->last_key.n : klen;
        while (shared < m && bb->last_key.p[shared] == key[shared]) shared++;
    } else {
        sn__buf_put_fixed32(&bb->restarts, (uint32_t)bb->buf.n);
        bb->n_restarts++;
        bb->counter = 0;
    }
    sn__buf_put_varint(&bb->buf, shared);
    sn__buf_put_varint(&bb->buf, klen - shared);
    sn__buf_put_varint(&bb->buf, vlen);
    if (klen > shared) sn__buf_put(&bb->buf, key + shared, klen - shared);   /* "" may be NULL */
    sn__buf_put(&bb->buf, val, vlen);
    bb->last_key.n = 0;
    sn__buf_put(&bb->last_key, key, klen);
    bb->counter++;
}

static size_t bb_estimate(const block_builder *bb) {
    return bb->buf.n + bb->n_restarts * 4 + 4;
}

/* Appends the restart array; the block contents are then bb->buf. */
static void bb_finish(block_builder *bb) {
    sn__buf_put(&bb->buf, bb->restarts.p, bb->restarts.n);
    sn__buf_put_fixed32(&bb->buf, (uint32_t)bb->n_restarts);
}

static void bb_free(block_builder *bb) {
    sn__buf_free(&bb->buf);
    sn__buf_free(&bb->restarts);
    sn__buf_free(&bb->last_key);
}

struct sn__table_builder {
    sn_ctx *ctx;
    int snappy;
    sn__buf out;
    block_builder data, index;
    sn__buf last_key;
    uint64_t n_entries;
    bool pending_index;
    handle pending;
    bool finished;
};

sn_status sn__table_builder_new(sn_ctx *ctx, int snappy, sn__table_builder **out) {
    sn__table_builder *b = calloc(1, sizeof *b);
    *out = NULL;
    if (!b) return sn__fail(ctx, SN_ERR_NOMEM, "table builder: out of memory");
    b->ctx = ctx;
    b->snappy = snappy;
    b->data.interval = SN__TABLE_RESTART_INTERVAL;
    b->index.interval = 1;
    bb_reset(&b->data);
    bb_reset(&b->index);
    *out = b;
    return SN_OK;
}

void sn__table_builder_free(sn__table_builder *b) {
    if (!b) return;
    sn__buf_free(&b->out);
    bb_free(&b->data);
    bb_free(&b->index);
    sn__buf_free(&b->last_key);
    free(b);
}

/* TableBuilder::WriteRawBlock: contents, then type and masked CRC over both. */
static void write_raw_block(sn__table_builder *b, const uint8_t *data, size_t n, uint8_t type,
                            handle *h) {
    h->off = b->out.n;
    h->size = n;
    sn__buf_put(&b->out, data, n);
    uint32_t crc = sn__crc32c_extend(sn__crc32c(data, n), &type, 1);
    sn__buf_put_u8(&b->out, type);
    sn__buf_put_fixed32(&b->out, sn__crc32c_mask(crc));
}

/* TableBuilder::WriteBlock: snappy only if it saves at least 1/8. */
static sn_status write_block(sn__table_builder *b, block_builder *bb, handle *h) {
    bb_finish(bb);
    if (bb->buf.oom) return sn__fail(b->ctx, SN_ERR_NOMEM, "table builder: out of memory");
    const uint8_t *raw = bb->buf.p;
    size_t n = bb->buf.n;
    bool done = false;
    if (b->snappy) {
        size_t cap = snappy_max_compressed_length(n);
        char *c = malloc(cap);
        if (!c) return sn__fail(b->ctx, SN_ERR_NOMEM, "table builder: out of memory");
        size_t clen = cap;
        if (snappy_compress((const char *)raw, n, c, &clen) == SNAPPY_OK && clen < n - n / 8) {
            write_raw_block(b, (const uint8_t *)c, clen, 1, h);
            done = true;
        }
        free(c);
    }
    if (!done) write_raw_block(b, raw, n, 0, h);
    bb_reset(bb);
    return b->out.oom ? sn__fail(b->ctx, SN_ERR_NOMEM, "table builder: out of memory") : SN_OK;
}

static void add_index_entry(sn__table_builder *b, const uint8_t *key, size_t klen) {
    sn__buf hb = {0};
    sn__buf_put_varint(&hb, b->pending.off);
    sn__buf_put_varint(&hb, b->pending.size);
    bb_add(&b->index, key, klen, hb.p, hb.n);
    sn__buf_free(&hb);
    b->pending_index = false;
}

static sn_status flush_data(sn__table_builder *b) {
    if (b->data.buf.n == 0) return SN_OK;
    SN_TRY(write_block(b, &b->data, &b->pending));
    b->pending_index = true;
    return SN_OK;
}

/* BytewiseComparator::FindShortestSeparator(start = last key, limit = next key). */
static void shortest_separator(sn__buf *start, const uint8_t *limit, size_t llen) {
    size_t m = start->n < llen ? start->n : llen, i = 0;
    while (i < m && start->p[i] == limit[i]) i++;
    if (i >= m) return;   /* one is a prefix of the other */
    uint8_t c = start->p[i];
    if (c < 0xff && (unsigned)c + 1 < limit[i]) {
        start->p[i]++;
        start->n = i + 1;
    }
}

/* BytewiseComparator::FindShortSuccessor. */
static void short_successor(sn__buf *key) {
    for (size_t i = 0; i < key->n; i++) {
        if (key->p[i] != 0xff) {
            key->p[i]++;
            key->n = i + 1;
            return;
        }
    }
}

sn_status sn__table_builder_add(sn__table_builder *b, const void *key, size_t klen,
                                const void *val, size_t vlen) {
    if (b->finished) return sn__fail(b->ctx, SN_ERR_STATE, "table builder: already finished");
    if (b->n_entries > 0 && key_cmp(key, klen, b->last_key.p, b->last_key.n) <= 0)
        return sn__fail(b->ctx, SN_ERR_INVALID_ARG, "table builder: keys must be added in "
                        "strictly increasing order");
    /* TF's rule for an overly large entry: it goes into a block of its own. */
    if (b->n_entries > 0 && b->data.buf.n > 0 && klen + vlen >= 2 * (size_t)SN__TABLE_BLOCK_SIZE)
        SN_TRY(flush_data(b));
    if (b->pending_index) {
        shortest_separator(&b->last_key, key, klen);
        add_index_entry(b, b->last_key.p, b->last_key.n);
    }
    b->last_key.n = 0;
    sn__buf_put(&b->last_key, key, klen);
    b->n_entries++;
    bb_add(&b->data, key, klen, val, vlen);
    if (b->data.buf.oom || b->last_key.oom)
        return sn__fail(b->ctx, SN_ERR_NOMEM, "table builder: out of memory");
    if (bb_estimate(&b->data) >= SN__TABLE_BLOCK_SIZE) SN_TRY(flush_data(b));
    return SN_OK;
}

sn_status sn__table_builder_finish(sn__table_builder *b, const uint8_t **data, size_t *n) {
    if (!b->finished) {
        SN_TRY(flush_data(b));
        handle meta, index;
        block_builder mb = {.interval = SN__TABLE_RESTART_INTERVAL};
        bb_reset(&mb);
        sn_status st = write_block(b, &mb, &meta);
        bb_free(&mb);
        SN_TRY(st);
        if (b->pending_index) {
            short_successor(&b->last_key);
            add_index_entry(b, b->last_key.p, b->last_key.n);
        }
        SN_TRY(write_block(b, &b->index, &index));
        /* Footer: both handles, zero padding to 40 bytes, the magic. */
        size_t start = b->out.n;
        sn__buf_put_varint(&b->out, meta.off);
        sn__buf_put_varint(&b->out, meta.size);
        sn__buf_put_varint(&b->out, index.off);
        sn__buf_put_varint(&b->out, index.size);
        static const uint8_t zeros[40];
        sn__buf_put(&b->out, zeros, 40 - (b->out.n - start));
        sn__buf_put_fixed64(&b->out, TABLE_MAGIC);
        if (b->out.oom) return sn__fail(b->ctx, SN_ERR_NOMEM, "table builder: out of memory");
        b->finished = true;
    }
    *data = b->out.p;
    *n = b->out.n;
    return SN_OK;
}

/* ---- OrderedCode ----------------------------------------------------------------------- */

/* NumInc: the count of significant bytes, then those bytes big-endian. */
static void oc_num_inc(sn__buf *out, uint64_t v) {
    uint8_t x[9];
    int n = 0;
    for (uint64_t t = v; t; t >>= 8) n++;
    x[0] = (uint8_t)n;
    for (int i = 0; i < n; i++) x[1 + i] = (uint8_t)(v >> (8 * (n - 1 - i)));
    sn__buf_put(out, x, (size_t)n + 1);
}

/* Str: 0x00 -> 00 FF, 0xFF -> FF 00, terminated by 00 01. */
static void oc_str(sn__buf *out, const char *s) {
    for (const uint8_t *p = (const uint8_t *)s; *p; p++) {
        sn__buf_put_u8(out, *p);
        if (*p == 0xff) sn__buf_put_u8(out, 0x00);
    }
    sn__buf_put_u8(out, 0x00);
    sn__buf_put_u8(out, 0x01);
}

/* SNumInc: n = bitlen(x)/7 + 1 bytes of two's complement, top n bits XORed with ones. */
static void oc_snum_inc(sn__buf *out, int64_t v) {
    uint64_t x = v >= 0 ? (uint64_t)v : ~(uint64_t)v;
    int bits = 0;
    for (uint64_t t = x; t; t >>= 1) bits++;
    int n = bits / 7 + 1;
    uint8_t b[10];
    for (int i = 0; i < n; i++) {
        int shift = 8 * (n - 1 - i);
        /* Sign-extend past 64 bits for n = 9, 10. */
        b[i] = shift >= 64 ? (v < 0 ? 0xff : 0x00) : (uint8_t)((uint64_t)v >> shift);
    }
    /* XOR the top n bits with ones: whole bytes first, then the remaining high bits. */
    int ones = n;
    for (int i = 0; ones > 0; i++) {
        int k = ones >= 8 ? 8 : ones;
        b[i] ^= (uint8_t)(0xff << (8 - k));
        ones -= k;
    }
    sn__buf_put(out, b, (size_t)n);
}

void sn__slice_key(sn__buf *out, const char *name, int rank, const int64_t *start,
                   const int64_t *length) {
    oc_num_inc(out, 0);
    oc_str(out, name);
    oc_num_inc(out, (uint64_t)rank);
    for (int d = 0; d < rank; d++) {   /* a full dimension is written as (0, -1) */
        oc_snum_inc(out, length[d] == -1 ? 0 : start[d]);
        oc_snum_inc(out, length[d]);
    }
}

/* ---- dtypes ---------------------------------------------------------------------------- */

#define TF_DTYPES(X)                                   \
    X(SN__DT_FLOAT, 4, "float32")                      \
    X(SN__DT_DOUBLE, 8, "float64")                     \
    X(SN__DT_INT32, 4, "int32")                        \
    X(SN__DT_UINT8, 1, "uint8")                        \
    X(SN__DT_INT16, 2, "int16")                        \
    X(SN__DT_INT8, 1, "int8")                          \
    X(SN__DT_STRING, 0, "string")                      \
    X(SN__DT_COMPLEX64, 8, "complex64")                \
    X(SN__DT_INT64, 8, "int64")                        \
    X(SN__DT_BOOL, 1, "bool")                          \
    X(SN__DT_BFLOAT16, 2, "bfloat16")                  \
    X(SN__DT_UINT16, 2, "uint16")                      \
    X(SN__DT_COMPLEX128, 16, "complex128")             \
    X(SN__DT_HALF, 2, "float16")                       \
    X(SN__DT_UINT32, 4, "uint32")                      \
    X(SN__DT_UINT64, 8, "uint64")

size_t sn__tf_dtype_size(int dt) {
    switch (dt) {
#define X(code, size, name) case code: return size;
        TF_DTYPES(X)
#undef X
    }
    return 0;
}

const char *sn__tf_dtype_name(int dt) {
    switch (dt) {
#define X(code, size, name) case code: return name;
        TF_DTYPES(X)
#undef X
    }
    return NULL;
}

bool sn__tf_to_sn_dtype(int tf, sn_dtype *out) {
    switch (tf) {
    case SN__DT_FLOAT: *out = SN_DTYPE_F32; return true;
    case SN__DT_INT32: *out = SN_DTYPE_I32; return true;
    case SN__DT_INT64: *out = SN_DTYPE_I64; return true;
    case SN__DT_UINT8: *out = SN_DTYPE_U8; return true;
    }
    return false;
}

int sn__sn_to_tf_dtype(sn_dtype dt) {
    switch (dt) {
    case SN_DTYPE_F32: return SN__DT_FLOAT;
    case SN_DTYPE_I32: return SN__DT_INT32;
    case SN_DTYPE_I64: return SN__DT_INT64;
    case SN_DTYPE_U8: return SN__DT_UINT8;
    }
    return 0;
}
