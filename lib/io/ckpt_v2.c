/* ckpt_v2.c: the public checkpoint reader (sn_ckpt_*), V2 tensor bundles read and written.
 *
 * A V2 checkpoint "P" is P.index, a table (table.c) mapping "" to a BundleHeaderProto and
 * each tensor name to a BundleEntryProto (dtype, shape, shard, offset, size, masked CRC32C),
 * plus raw little-endian tensor bytes in P.data-SSSSS-of-NNNNN (docs/formats.md,
 * "Checkpoints V2").
 * Partitioned variables have a full-name entry listing their slices and one entry per
 * piece under an OrderedCode key.  V1 files are read by ckpt_v1.c behind the same handle.
 * The whole index is read and checked at open (it is small), so a read only does one
 * pread per piece straight into the caller's memory, then the CRC. */
#include "table.h"

#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "crc32c.h"
#include "lib/io/tensor_bundle.pb-c.h"
#include "pb.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "slimnet's checkpoint code reads and writes little-endian tensor bytes as they are"
#endif

#define MAX_SHARDS 100000      /* TF names shards %05d; more is a corrupt header */
#define MAX_PIECES 4096        /* slices of one partitioned tensor (pairwise overlap check) */

/* ---- shapes and pieces ----------------------------------------------------------------- */

/* Fills rank/dims from a TensorShapeProto, rejecting what a checkpoint never holds. */
sn_status sn__ckpt_shape_from_proto(sn_ctx *ctx, const Snckpt__TensorShapeProto *s,
                                    const char *file, const char *tensor, int *rank,
                                    int64_t *dims) {
    *rank = 0;
    if (!s) return SN_OK;   /* proto3: an absent shape is the empty (scalar) shape */
    if (s->unknown_rank)
        return sn__fail(ctx, SN_ERR_FORMAT, "'%s': tensor '%s' has an unknown rank", file,
                        tensor);
    if (s->n_dim > SN_MAX_RANK)
        return sn__fail(ctx, SN_ERR_UNSUPPORTED, "'%s': tensor '%s' has rank %zu (at most %d "
                        "supported)", file, tensor, s->n_dim, SN_MAX_RANK);
    for (size_t d = 0; d < s->n_dim; d++) {
        dims[d] = s->dim[d]->size;
        if (dims[d] < 0)
            return sn__fail(ctx, SN_ERR_FORMAT, "'%s': tensor '%s' has dimension %zu = %lld",
                            file, tensor, d, (long long)dims[d]);
    }
    *rank = (int)s->n_dim;
    size_t n;
    if (!sn__numel(*rank, dims, &n)) {
        char buf[160];
        return sn__fail(ctx, SN_ERR_FORMAT, "'%s': tensor '%s' has an overflowing shape %s",
                        file, tensor, sn__dims_str(*rank, dims, buf, sizeof buf));
    }
    return SN_OK;
}

/* Pieces from TensorSliceProtos: an extent without a length is the whole dimension. */
sn_status sn__ckpt_pieces_from_protos(sn_ckpt *ck, sn__ck_tensor *t, size_t n,
                                      Snckpt__TensorSliceProto **sl, const char *file) {
    /* Nothing to add: realloc(p, 0) would free the pieces (and return NULL, which looks
     * like out of memory while the freed pointer stays in t). */
    if (n == 0) return SN_OK;
    if (n > MAX_PIECES || (size_t)t->n_pieces > MAX_PIECES - n)   /* pooled over entries */
        return sn__fail(ck->ctx, SN_ERR_FORMAT, "'%s': tensor '%s' has %zu slices (at most %d)",
                        file, t->name, n + (size_t)t->n_pieces, MAX_PIECES);
    sn__ck_piece *p = realloc(t->pieces, (t->n_pieces + n) * sizeof *p);
    if (!p) return sn__fail(ck->ctx, SN_ERR_NOMEM, "checkpoint: out of memory");
    t->pieces = p;
    for (size_t i = 0; i < n; i++) {
        sn__ck_piece *pc = &p[t->n_pieces];
        memset(pc, 0, sizeof *pc);
        if (sl[i]->n_extent != (size_t)t->rank)
            return sn__fail(ck->ctx, SN_ERR_FORMAT, "'%s': slice %zu of tensor '%s' has %zu "
                            "extents for rank %d", file, i, t->name, sl[i]->n_extent, t->rank);
        for (int d = 0; d < t->rank; d++) {
            const Snckpt__TensorSliceProto__Extent *e = sl[i]->extent[d];
            pc->start[d] = e->start;
            pc->length[d] = e->has_length_case ==
                SNCKPT__TENSOR_SLICE_PROTO__EXTENT__HAS_LENGTH_LENGTH ? e->length : -1;
            if (pc->length[d] < -1 || pc->start[d] < 0)
                return sn__fail(ck->ctx, SN_ERR_FORMAT, "'%s': slice %zu of tensor '%s' has "
                                "extent %lld+%lld in dimension %d", file, i, t->name,
                                (long long)pc->start[d], (long long)pc->length[d], d);
        }
        t->n_pieces++;
    }
    return SN_OK;
}

uint64_t sn__ckpt_piece_dims(const sn__ck_tensor *t, const sn__ck_piece *p, int64_t *len) {
    uint64_t v = 1;
    for (int d = 0; d < t->rank; d++) {
        len[d] = p->length[d] < 0 ? t->dims[d] : p->length[d];
        v *= (uint64_t)len[d];
    }
    return v;
}

sn_status sn__ckpt_check_pieces(sn_ckpt *ck, const sn__ck_tensor *t) {
    uint64_t total = 0, numel = 1;
    for (int d = 0; d < t->rank; d++) numel *= (uint64_t)t->dims[d];
    for (int i = 0; i < t->n_pieces; i++) {
        const sn__ck_piece *p = &t->pieces[i];
        int64_t len[SN_MAX_RANK];
        for (int d = 0; d < t->rank; d++) {
            len[d] = p->length[d] < 0 ? t->dims[d] : p->length[d];
            /* A full extent must start at 0; a partial one must fit the dimension. */
            if ((p->length[d] < 0 && p->start[d] != 0) || p->start[d] > t->dims[d] ||
                len[d] > t->dims[d] - p->start[d])
                return sn__fail(ck->ctx, SN_ERR_FORMAT, "'%s': slice %d of tensor '%s' "
                                "(start %lld, length %lld in dimension %d) lies outside its "
                                "shape", ck->path, i, t->name, (long long)p->start[d],
                                (long long)p->length[d], d);
        }
        uint64_t vol = sn__ckpt_piece_dims(t, p, len);
        total += vol;
        for (int j = 0; vol > 0 && j < i; j++) {   /* disjoint: a dimension separates them */
            const sn__ck_piece *q = &t->pieces[j];
            int64_t qlen[SN_MAX_RANK];
            bool overlap = sn__ckpt_piece_dims(t, q, qlen) > 0 && t->rank > 0;
            for (int d = 0; overlap && d < t->rank; d++)
                if (q->start[d] >= p->start[d] + len[d] || p->start[d] >= q->start[d] + qlen[d])
                    overlap = false;
            if (overlap || t->rank == 0)   /* a scalar has room for one piece only */
                return sn__fail(ck->ctx, SN_ERR_FORMAT, "'%s': slices %d and %d of tensor '%s' "
                                "overlap", ck->path, j, i, t->name);
        }
    }
    if (total != numel)
        return sn__fail(ck->ctx, SN_ERR_FORMAT, "'%s': the slices of tensor '%s' cover %llu of "
                        "its %llu elements", ck->path, t->name, (unsigned long long)total,
                        (unsigned long long)numel);
    return SN_OK;
}

void sn__ckpt_place_piece(void *full, const int64_t *full_dims, int rank,
                          const int64_t *start, const int64_t *len, const void *piece,
                          size_t esize) {
    if (rank == 0) {
        memcpy(full, piece, esize);
        return;
    }
    /* Row-major strides of the full tensor, in elements. */
    size_t stride[SN_MAX_RANK];
    stride[rank - 1] = 1;
    for (int d = rank - 2; d >= 0; d--) stride[d] = stride[d + 1] * (size_t)full_dims[d + 1];
    for (int d = 0; d < rank; d++)
        if (len[d] == 0) return;
    size_t row = (size_t)len[rank - 1] * esize;
    int64_t idx[SN_MAX_RANK] = {0};
    const uint8_t *src = piece;
    for (;;) {
        size_t off = (size_t)start[rank - 1];
        for (int d = 0; d < rank - 1; d++) off += (size_t)(start[d] + idx[d]) * stride[d];
        memcpy((uint8_t *)full + off * esize, src, row);
        src += row;
        int d = rank - 2;
        while (d >= 0 && ++idx[d] == len[d]) idx[d--] = 0;
        if (d < 0) break;
    }
}

void sn__ckpt_free_tensors(sn_ckpt *ck) {
    for (int i = 0; i < ck->n; i++) {
        free(ck->t[i].name);
        free(ck->t[i].pieces);
    }
    free(ck->t);
    ck->t = NULL;
    ck->n = 0;
}

/* ---- V2: open ---------------------------------------------------------------------------- */

/* Appends a tensor named key (not NUL-terminated) to ck->t. */
static sn_status add_tensor(sn_ckpt *ck, int *cap, const uint8_t *key, size_t klen,
                            sn__ck_tensor **out) {
    if (memchr(key, 0, klen))
        return sn__fail(ck->ctx, SN_ERR_FORMAT, "'%s': a tensor name contains a NUL byte",
                        ck->path);
    if (ck->n == *cap) {
        int nc = *cap ? 2 * *cap : 64;
        sn__ck_tensor *t = realloc(ck->t, (size_t)nc * sizeof *t);
        if (!t) return sn__fail(ck->ctx, SN_ERR_NOMEM, "checkpoint: out of memory");
        ck->t = t;
        *cap = nc;
    }
    sn__ck_tensor *t = &ck->t[ck->n];
    memset(t, 0, sizeof *t);
    t->name = malloc(klen + 1);
    if (!t->name) return sn__fail(ck->ctx, SN_ERR_NOMEM, "checkpoint: out of memory");
    memcpy(t->name, key, klen);
    t->name[klen] = '\0';
    ck->n++;
    *out = t;
    return SN_OK;
}

/* Parses and checks one BundleEntryProto into ext.  name is for messages. */
static sn_status parse_entry(sn_ckpt *ck, const char *index, const char *name,
                             const uint8_t *val, size_t vlen, sn__ck_extent *ext,
                             Snckpt__BundleEntryProto **out) {
    Snckpt__BundleEntryProto *e = snckpt__bundle_entry_proto__unpack(NULL, vlen, val);
    if (e && sn__pb_has_field0(&e->base)) {
        snckpt__bundle_entry_proto__free_unpacked(e, NULL);
        e = NULL;
    }
    if (!e)
        return sn__fail(ck->ctx, SN_ERR_FORMAT, "'%s': the entry of tensor '%s' is not a valid "
                        "BundleEntryProto", index, name);
    sn_status st =
        sn__ckpt_shape_from_proto(ck->ctx, e->shape, index, name, &ext->rank, ext->dims);
    ext->tf_dtype = e->dtype;
    ext->shard = e->shard_id;
    ext->offset = (uint64_t)e->offset;
    ext->size = (uint64_t)e->size;
    ext->crc_masked = e->crc32c;
    if (st == SN_OK && (e->shard_id < 0 || e->shard_id >= ck->n_shards || e->offset < 0 ||
                        e->size < 0))
        st = sn__fail(ck->ctx, SN_ERR_FORMAT, "'%s': tensor '%s' has shard %d of %d, offset "
                      "%lld, size %lld", index, name, e->shard_id, ck->n_shards,
                      (long long)e->offset, (long long)e->size);
    if (st != SN_OK) {
        snckpt__bundle_entry_proto__free_unpacked(e, NULL);
        return st;
    }
    *out = e;
    return SN_OK;
}

/* Checks that a stored extent's byte count agrees with its dtype and shape. */
static sn_status check_extent_size(sn_ckpt *ck, const char *name, const sn__ck_extent *x) {
    size_t numel, want;
    sn__numel(x->rank, x->dims, &numel);
    size_t es = sn__tf_dtype_size(x->tf_dtype);
    if (es) {
        if (!sn__mul_size(numel, es, &want) || want != x->size)
            return sn__fail(ck->ctx, SN_ERR_FORMAT, "'%s.index': tensor '%s' (%s, %llu "
                            "elements) declares %llu bytes", ck->path, name,
                            sn__tf_dtype_name(x->tf_dtype), (unsigned long long)numel,
                            (unsigned long long)x->size);
    } else if (x->tf_dtype == SN__DT_STRING) {
        /* At least one varint byte per element and the 4-byte length checksum. */
        if (numel > x->size || x->size - numel < 4)
            return sn__fail(ck->ctx, SN_ERR_FORMAT, "'%s.index': string tensor '%s' (%llu "
                            "elements) declares only %llu bytes", ck->path, name,
                            (unsigned long long)numel, (unsigned long long)x->size);
    }
    /* The bytes must lie inside the data shard: a forged size never becomes an allocation. */
    uint64_t fsize = ck->shard_size[x->shard];
    if (x->offset > fsize || x->size > fsize - x->offset)
        return sn__fail(ck->ctx, SN_ERR_FORMAT, "'%s': tensor '%s' needs bytes [%llu, %llu) "
                        "but the file has %llu bytes", ck->shard_path[x->shard], name,
                        (unsigned long long)x->offset,
                        (unsigned long long)(x->offset + x->size), (unsigned long long)fsize);
    return SN_OK;
}

static sn_status open_shard(sn_ckpt *ck, int s) {
    if (ck->shard_fd[s] >= 0) return SN_OK;
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s.data-%05d-of-%05d", ck->path, s, ck->n_shards) >=
        (int)sizeof path)
        return sn__fail(ck->ctx, SN_ERR_INVALID_ARG, "checkpoint path too long: '%s'", ck->path);
    if (!(ck->shard_path[s] = strdup(path)))
        return sn__fail(ck->ctx, SN_ERR_NOMEM, "checkpoint: out of memory");
    return sn__file_open(ck->ctx, path, &ck->shard_fd[s], &ck->shard_size[s]);
}

static sn_status v2_header(sn_ckpt *ck, const char *index, const uint8_t *val, size_t vlen) {
    Snckpt__BundleHeaderProto *h = snckpt__bundle_header_proto__unpack(NULL, vlen, val);
    if (h && sn__pb_has_field0(&h->base)) {
        snckpt__bundle_header_proto__free_unpacked(h, NULL);
        h = NULL;
    }
    if (!h)
        return sn__fail(ck->ctx, SN_ERR_FORMAT, "'%s': the header entry is not a valid "
                        "BundleHeaderProto", index);
    sn_status st = SN_OK;
    if (h->num_shards < 1 || h->num_shards > MAX_SHARDS)
        st = sn__fail(ck->ctx, SN_ERR_FORMAT, "'%s': header declares %d data shards", index,
                      h->num_shards);
    else if (h->endianness != SNCKPT__BUNDLE_HEADER_PROTO__ENDIANNESS__LITTLE)
        st = sn__fail(ck->ctx, SN_ERR_UNSUPPORTED, "'%s': big-endian bundles are not "
                      "supported", index);
    else if (h->version) {
        /* TF's own check: this reader is consumer version 1. */
        bool bad = h->version->min_consumer > 1;
        for (size_t i = 0; i < h->version->n_bad_consumers; i++)
            bad |= h->version->bad_consumers[i] == 1;
        if (bad)
            st = sn__fail(ck->ctx, SN_ERR_UNSUPPORTED, "'%s': written for readers of version "
                          ">= %d; this reader is version 1", index, h->version->min_consumer);
    }
    if (st == SN_OK) {
        ck->n_shards = h->num_shards;
        ck->shard_fd = malloc((size_t)ck->n_shards * sizeof *ck->shard_fd);
        ck->shard_size = calloc((size_t)ck->n_shards, sizeof *ck->shard_size);
        ck->shard_path = calloc((size_t)ck->n_shards, sizeof *ck->shard_path);
        if (!ck->shard_fd || !ck->shard_size || !ck->shard_path)
            st = sn__fail(ck->ctx, SN_ERR_NOMEM, "checkpoint: out of memory");
        else
            for (int s = 0; s < ck->n_shards; s++) ck->shard_fd[s] = -1;
    }
    snckpt__bundle_header_proto__free_unpacked(h, NULL);
    return st;
}

/* Piece keys seen while iterating (sorted, since the table is), for the partitioned
 * tensors to find their pieces after the scan. */
typedef struct piece_keys {
    sn__buf store;
    size_t *off, *len;
    int cap;
} piece_keys;

static sn_status v2_open(sn_ckpt *ck) {
    sn_ctx *ctx = ck->ctx;
    char index[PATH_MAX];
    if (snprintf(index, sizeof index, "%s.index", ck->path) >= (int)sizeof index)
        return sn__fail(ctx, SN_ERR_INVALID_ARG, "checkpoint path too long: '%s'", ck->path);
    sn__table *tab;
    SN_TRY(sn__table_open(ctx, index, &tab));
    sn__table_iter it;
    piece_keys pk = {0};
    int cap = 0;
    sn_status st = sn__table_iter_first(tab, &it);
    if (st == SN_OK && (!it.valid || it.klen != 0))
        st = sn__fail(ctx, SN_ERR_FORMAT, "'%s': the first entry is not the bundle header",
                      index);
    if (st == SN_OK) st = v2_header(ck, index, it.val, it.vlen);
    if (st == SN_OK) st = sn__table_iter_next(&it);
    while (st == SN_OK && it.valid) {
        char shown[80];   /* a printable form of the key for messages */
        size_t k = 0;
        for (size_t i = 0; i < it.klen && k + 5 < sizeof shown; i++)
            k += (size_t)snprintf(shown + k, sizeof shown - k, it.key[i] >= 32 &&
                                  it.key[i] < 127 ? "%c" : "\\x%02x", it.key[i]);
        shown[k] = '\0';
        sn__ck_extent ext = {0};
        Snckpt__BundleEntryProto *e = NULL;
        st = parse_entry(ck, index, shown, it.val, it.vlen, &ext, &e);
        if (st != SN_OK) break;
        if (it.klen > 0 && it.key[0] == 0) {
            /* A piece of a partitioned tensor, keyed by OrderedCode(name, slice). */
            if (ck->n_v2_pieces == pk.cap) {
                int nc = pk.cap ? 2 * pk.cap : 16;
                sn__ck_extent *np = realloc(ck->v2_pieces, (size_t)nc * sizeof *np);
                if (np) ck->v2_pieces = np;
                size_t *no = realloc(pk.off, (size_t)nc * sizeof *no);
                if (no) pk.off = no;
                size_t *nl = realloc(pk.len, (size_t)nc * sizeof *nl);
                if (nl) pk.len = nl;
                if (!np || !no || !nl)
                    st = sn__fail(ctx, SN_ERR_NOMEM, "checkpoint: out of memory");
                else
                    pk.cap = nc;
            }
            if (st == SN_OK) {
                pk.off[ck->n_v2_pieces] = pk.store.n;
                pk.len[ck->n_v2_pieces] = it.klen;
                sn__buf_put(&pk.store, it.key, it.klen);
                ck->v2_pieces[ck->n_v2_pieces++] = ext;
                if (pk.store.oom) st = sn__fail(ctx, SN_ERR_NOMEM, "checkpoint: out of memory");
                if (st == SN_OK) st = open_shard(ck, ext.shard);
                if (st == SN_OK) st = check_extent_size(ck, shown, &ext);
            }
        } else {
            sn__ck_tensor *t = NULL;
            st = add_tensor(ck, &cap, it.key, it.klen, &t);
            if (st == SN_OK) {
                t->tf_dtype = ext.tf_dtype;
                t->rank = ext.rank;
                memcpy(t->dims, ext.dims, sizeof t->dims);
                t->ext = ext;
                if (e->n_slices > 0) {
                    st = sn__ckpt_pieces_from_protos(ck, t, e->n_slices, e->slices, index);
                } else {
                    st = open_shard(ck, ext.shard);
                    if (st == SN_OK) st = check_extent_size(ck, t->name, &ext);
                }
                size_t numel;
                sn__numel(t->rank, t->dims, &numel);
                t->nbytes = sn__tf_dtype_size(t->tf_dtype)
                                ? (uint64_t)numel * sn__tf_dtype_size(t->tf_dtype) : ext.size;
                if (st == SN_OK && t->n_pieces > 0 && !sn__tf_dtype_size(t->tf_dtype))
                    st = sn__fail(ctx, SN_ERR_UNSUPPORTED, "'%s': partitioned tensor '%s' has "
                                  "dtype %d, which has no fixed element size", index, t->name,
                                  t->tf_dtype);
            }
        }
        snckpt__bundle_entry_proto__free_unpacked(e, NULL);
        if (st == SN_OK) st = sn__table_iter_next(&it);
    }
    sn__table_iter_free(&it);
    sn__table_close(tab);
    /* Link each partitioned tensor to its pieces; the pieces' total size bounds the tensor. */
    sn__buf key = {0};
    for (int i = 0; st == SN_OK && i < ck->n; i++) {
        sn__ck_tensor *t = &ck->t[i];
        if (t->n_pieces == 0) continue;
        st = sn__ckpt_check_pieces(ck, t);
        for (int j = 0; st == SN_OK && j < t->n_pieces; j++) {
            sn__ck_piece *p = &t->pieces[j];
            key.n = 0;
            sn__slice_key(&key, t->name, t->rank, p->start, p->length);
            int lo = 0, hi = ck->n_v2_pieces;
            while (lo < hi) {
                int mid = lo + (hi - lo) / 2;
                size_t ml = pk.len[mid] < key.n ? pk.len[mid] : key.n;
                int c = memcmp(pk.store.p + pk.off[mid], key.p, ml);
                if (c < 0 || (c == 0 && pk.len[mid] < key.n)) lo = mid + 1;
                else hi = mid;
            }
            int64_t len[SN_MAX_RANK];
            sn__ckpt_piece_dims(t, p, len);
            const sn__ck_extent *x = lo < ck->n_v2_pieces ? &ck->v2_pieces[lo] : NULL;
            if (!x || pk.len[lo] != key.n || memcmp(pk.store.p + pk.off[lo], key.p, key.n)) {
                st = sn__fail(ctx, SN_ERR_FORMAT, "'%s': slice %d of partitioned tensor '%s' "
                              "has no entry", index, j, t->name);
            } else if (x->tf_dtype != t->tf_dtype || x->rank != t->rank ||
                       memcmp(x->dims, len, (size_t)t->rank * sizeof *len)) {
                st = sn__fail(ctx, SN_ERR_FORMAT, "'%s': slice %d of partitioned tensor '%s' "
                              "disagrees with the slice's dtype or extent", index, j, t->name);
            }
            p->src = lo;
        }
    }
    sn__buf_free(&key);
    sn__buf_free(&pk.store);
    free(pk.off);
    free(pk.len);
    return st;
}

/* ---- the public reader ------------------------------------------------------------------- */

static bool file_exists(const char *path) {
    struct stat s;
    return stat(path, &s) == 0 && S_ISREG(s.st_mode);
}

static int cmp_tensor_name(const void *a, const void *b) {
    return strcmp(((const sn__ck_tensor *)a)->name, ((const sn__ck_tensor *)b)->name);
}

/* A V2 bundle's own file given for the bundle ("model.ckpt-10.index",
 * "model.ckpt-10.data-00000-of-00001"): cut path to the prefix when that bundle exists. */
static void v2_prefix_of_file(char *path) {
    size_t n = strlen(path), cut = 0;
    unsigned a, b;
    int used = 0;
    if (n > 6 && strcmp(path + n - 6, ".index") == 0) cut = n - 6;
    else if (n > 22 && sscanf(path + n - 22, ".data-%5u-of-%5u%n", &a, &b, &used) == 2 &&
             used == 22)
        cut = n - 22;
    if (!cut) return;
    char index[PATH_MAX + 8];
    snprintf(index, sizeof index, "%.*s.index", (int)cut, path);
    if (file_exists(index)) path[cut] = '\0';
}

sn_status sn_ckpt_open(sn_ctx *ctx, const char *path, sn_ckpt **out) {
    if (!out || !path) return sn__fail(ctx, SN_ERR_INVALID_ARG, "sn_ckpt_open: NULL argument");
    *out = NULL;
    char resolved[PATH_MAX], probe[PATH_MAX + 64];
    struct stat s;
    if (stat(path, &s) == 0 && S_ISDIR(s.st_mode)) {
        SN_TRY(sn_ckpt_latest(ctx, path, resolved, sizeof resolved));
    } else if (snprintf(resolved, sizeof resolved, "%s", path) >= (int)sizeof resolved) {
        return sn__fail(ctx, SN_ERR_INVALID_ARG, "checkpoint path too long: '%s'", path);
    } else {
        v2_prefix_of_file(resolved);
    }
    sn_ckpt *ck = calloc(1, sizeof *ck);
    if (!ck || !(ck->path = strdup(resolved))) {
        free(ck);
        return sn__fail(ctx, SN_ERR_NOMEM, "checkpoint: out of memory");
    }
    ck->ctx = ctx;
    sn_status st;
    snprintf(probe, sizeof probe, "%s.index", resolved);
    if (file_exists(probe)) {
        ck->version = 2;
        st = v2_open(ck);
    } else if (file_exists(resolved)) {
        ck->version = 1;
        char *files[1] = {resolved};
        st = sn__ckpt_v1_open(ck, 1, files);
    } else {
        /* A sharded V1 save: "<path>-00000-of-00002", ...; or the pattern TF's state file
         * names for one ("model.ckpt-7-?????-of-00002"). */
        glob_t g;
        if (strpbrk(resolved, "?*["))
            snprintf(probe, sizeof probe, "%s", resolved);
        else
            snprintf(probe, sizeof probe, "%s-[0-9][0-9][0-9][0-9][0-9]-of-[0-9][0-9][0-9][0-9]"
                     "[0-9]", resolved);
        if (glob(probe, 0, NULL, &g) == 0 && g.gl_pathc > 0 && g.gl_pathc <= MAX_SHARDS) {
            ck->version = 1;
            st = sn__ckpt_v1_open(ck, (int)g.gl_pathc, g.gl_pathv);
        } else {
            st = sn__fail(ctx, SN_ERR_NOT_FOUND, "no checkpoint at '%s' (no '%s.index', no V1 "
                          "file)", resolved, resolved);
        }
        globfree(&g);
    }
    if (st == SN_OK && ck->n > 1) {
        qsort(ck->t, (size_t)ck->n, sizeof *ck->t, cmp_tensor_name);
        for (int i = 1; i < ck->n; i++)
            if (strcmp(ck->t[i - 1].name, ck->t[i].name) == 0)
                st = sn__fail(ctx, SN_ERR_FORMAT, "'%s': tensor '%s' is listed twice", ck->path,
                              ck->t[i].name);
    }
    if (st != SN_OK) {
        sn_ckpt_close(ck);
        return st;
    }
    *out = ck;
    return SN_OK;
}

void sn_ckpt_close(sn_ckpt *ck) {
    if (!ck) return;
    sn__ckpt_free_tensors(ck);
    for (int s = 0; s < ck->n_shards; s++) {
        if (ck->shard_fd && ck->shard_fd[s] >= 0) close(ck->shard_fd[s]);
        if (ck->shard_path) free(ck->shard_path[s]);
    }
    free(ck->shard_fd);
    free(ck->shard_size);
    free(ck->shard_path);
    free(ck->v2_pieces);
    for (int i = 0; i < ck->n_tables; i++) sn__table_close(ck->tables[i]);
    free(ck->tables);
    free(ck->path);
    free(ck);
}

int sn_ckpt_version(const sn_ckpt *ck) { return ck->version; }
const char *sn_ckpt_path(const sn_ckpt *ck) { return ck->path; }
int sn_ckpt_count(const sn_ckpt *ck) { return ck->n; }

int sn_ckpt_find(const sn_ckpt *ck, const char *name) {
    int lo = 0, hi = ck->n;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        int c = strcmp(ck->t[mid].name, name);
        if (c == 0) return mid;
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return -1;
}

sn_status sn_ckpt_info_at(const sn_ckpt *ck, int i, sn_ckpt_info *info) {
    if (i < 0 || i >= ck->n || !info)
        return sn__fail(ck->ctx, SN_ERR_INVALID_ARG, "checkpoint tensor index %d outside [0, %d)",
                        i, ck->n);
    const sn__ck_tensor *t = &ck->t[i];
    memset(info, 0, sizeof *info);
    info->name = t->name;
    info->tf_dtype = t->tf_dtype;
    info->dtype_name = sn__tf_dtype_name(t->tf_dtype) ? sn__tf_dtype_name(t->tf_dtype) : "unknown";
    info->has_sn_dtype = sn__tf_to_sn_dtype(t->tf_dtype, &info->dtype);
    info->rank = t->rank;
    memcpy(info->dims, t->dims, sizeof info->dims);
    info->nbytes = t->nbytes;
    info->num_slices = t->n_pieces;
    return SN_OK;
}

/* CRC of a V2 string tensor as TF computes it (docs/formats.md, "Checkpoints V2"): the
 * lengths as uint32 (uint64 when larger), then the 4 stored checksum bytes, then the string
 * bytes.  Also checks that the encoding fills exactly `size` bytes. */
static sn_status check_string_tensor(sn_ckpt *ck, const sn__ck_tensor *t, const uint8_t *b,
                                     uint64_t size) {
    size_t numel;
    sn__numel(t->rank, t->dims, &numel);
    const uint8_t *p = b, *end = b + size;
    uint32_t crc = 0;
    uint64_t total = 0;
    for (size_t i = 0; i < numel; i++) {
        uint64_t len;
        p = sn__get_varint(p, end, 10, &len);
        if (!p || len > size) goto bad;
        total += len;
        uint8_t le[8];
        for (int k = 0; k < 8; k++) le[k] = (uint8_t)(len >> (8 * k));
        crc = sn__crc32c_extend(crc, le, len > UINT32_MAX ? 8 : 4);
    }
    if ((size_t)(end - p) < 4 || total != (uint64_t)(end - p) - 4) goto bad;
    if (sn__crc32c_unmask(sn__load32(p)) != crc)
        return sn__fail(ck->ctx, SN_ERR_FORMAT, "'%s': string tensor '%s': length checksum "
                        "mismatch", ck->shard_path[t->ext.shard], t->name);
    crc = sn__crc32c_extend(crc, p, (size_t)(end - p));
    if (crc != sn__crc32c_unmask(t->ext.crc_masked))
        return sn__fail(ck->ctx, SN_ERR_FORMAT, "'%s': string tensor '%s' at offset %llu: "
                        "checksum mismatch", ck->shard_path[t->ext.shard], t->name,
                        (unsigned long long)t->ext.offset);
    return SN_OK;
bad:
    return sn__fail(ck->ctx, SN_ERR_FORMAT, "'%s': string tensor '%s' at offset %llu is "
                    "malformed", ck->shard_path[t->ext.shard], t->name,
                    (unsigned long long)t->ext.offset);
}

/* Reads one stored extent into out and checks its CRC. */
static sn_status read_extent(sn_ckpt *ck, const char *name, const sn__ck_extent *x, void *out) {
    /* One pread, then the CRC: the copy out of the page cache bounds a load (about 2 GB/s
     * here, the CRC runs at 9), and reading in cache-sized steps measured no faster. */
    SN_TRY(sn__file_pread(ck->ctx, ck->shard_fd[x->shard], out, (size_t)x->size, x->offset,
                          ck->shard_path[x->shard]));
    uint32_t got = sn__crc32c(out, (size_t)x->size);
    if (got != sn__crc32c_unmask(x->crc_masked))
        return sn__fail(ck->ctx, SN_ERR_FORMAT, "'%s': tensor '%s' (%llu bytes at offset "
                        "%llu): checksum mismatch (stored 0x%08x, computed 0x%08x)",
                        ck->shard_path[x->shard], name, (unsigned long long)x->size,
                        (unsigned long long)x->offset, sn__crc32c_unmask(x->crc_masked), got);
    return SN_OK;
}

/* The tensor's raw bytes (t->nbytes of them) into out. */
static sn_status read_tensor_bytes(sn_ckpt *ck, const sn__ck_tensor *t, void *out) {
    if (ck->version == 1) return sn__ckpt_v1_read(ck, t, out);
    if (!sn__tf_dtype_name(t->tf_dtype))
        return sn__fail(ck->ctx, SN_ERR_FORMAT, "'%s.index': tensor '%s' has unknown dtype %d",
                        ck->path, t->name, t->tf_dtype);
    if (t->n_pieces == 0) {
        if (t->tf_dtype != SN__DT_STRING) return read_extent(ck, t->name, &t->ext, out);
        SN_TRY(sn__file_pread(ck->ctx, ck->shard_fd[t->ext.shard], out, (size_t)t->ext.size,
                              t->ext.offset, ck->shard_path[t->ext.shard]));
        return check_string_tensor(ck, t, out, t->ext.size);
    }
    size_t es = sn__tf_dtype_size(t->tf_dtype);
    uint64_t biggest = 0;
    for (int i = 0; i < t->n_pieces; i++)
        if (ck->v2_pieces[t->pieces[i].src].size > biggest)
            biggest = ck->v2_pieces[t->pieces[i].src].size;
    void *tmp = malloc(biggest ? (size_t)biggest : 1);
    if (!tmp)
        return sn__fail(ck->ctx, SN_ERR_NOMEM, "checkpoint: cannot allocate %llu bytes",
                        (unsigned long long)biggest);
    sn_status st = SN_OK;
    for (int i = 0; st == SN_OK && i < t->n_pieces; i++) {
        const sn__ck_piece *p = &t->pieces[i];
        int64_t len[SN_MAX_RANK];
        sn__ckpt_piece_dims(t, p, len);
        st = read_extent(ck, t->name, &ck->v2_pieces[p->src], tmp);
        if (st == SN_OK) sn__ckpt_place_piece(out, t->dims, t->rank, p->start, len, tmp, es);
    }
    free(tmp);
    return st;
}

static const sn__ck_tensor *lookup(sn_ckpt *ck, const char *name, sn_status *st) {
    int i = name ? sn_ckpt_find(ck, name) : -1;
    if (i < 0) {
        *st = sn__fail(ck->ctx, SN_ERR_NOT_FOUND, "'%s': no tensor named '%s'", ck->path,
                       name ? name : "(null)");
        return NULL;
    }
    *st = SN_OK;
    return &ck->t[i];
}

sn_status sn_ckpt_read_raw(sn_ckpt *ck, const char *name, void *buf, size_t len) {
    sn_status st;
    const sn__ck_tensor *t = lookup(ck, name, &st);
    if (!t) return st;
    if (len != t->nbytes || (!buf && len))
        return sn__fail(ck->ctx, SN_ERR_INVALID_ARG, "read_raw '%s': buffer of %zu bytes, the "
                        "tensor has %llu", name, len, (unsigned long long)t->nbytes);
    return read_tensor_bytes(ck, t, buf);
}

sn_status sn_ckpt_read_into(sn_ckpt *ck, const char *name, sn_tensor *dst) {
    sn_status st;
    const sn__ck_tensor *t = lookup(ck, name, &st);
    if (!t) return st;
    sn_dtype dt;
    if (!sn__tf_to_sn_dtype(t->tf_dtype, &dt))
        return sn__fail(ck->ctx, SN_ERR_UNSUPPORTED, "'%s': tensor '%s' has dtype %s, which "
                        "sn_tensor cannot hold", ck->path, name,
                        sn__tf_dtype_name(t->tf_dtype) ? sn__tf_dtype_name(t->tf_dtype)
                                                       : "unknown");
    bool same = dt == dst->dtype && t->rank == dst->rank;
    for (int d = 0; same && d < t->rank; d++) same = t->dims[d] == dst->dims[d];
    if (!same) {
        char a[160], b[160];
        return sn__fail(ck->ctx, SN_ERR_SHAPE, "'%s': tensor '%s' is %s %s, the destination %s "
                        "%s", ck->path, name, sn_dtype_name(dt),
                        sn__dims_str(t->rank, t->dims, a, sizeof a), sn_dtype_name(dst->dtype),
                        sn__dims_str(dst->rank, dst->dims, b, sizeof b));
    }
    return read_tensor_bytes(ck, t, dst->data);
}

sn_status sn_ckpt_read(sn_ckpt *ck, const char *name, sn_tensor **out) {
    sn_status st;
    *out = NULL;
    const sn__ck_tensor *t = lookup(ck, name, &st);
    if (!t) return st;
    sn_dtype dt;
    if (!sn__tf_to_sn_dtype(t->tf_dtype, &dt))
        return sn__fail(ck->ctx, SN_ERR_UNSUPPORTED, "'%s': tensor '%s' has dtype %s, which "
                        "sn_tensor cannot hold (use sn_ckpt_read_raw)", ck->path, name,
                        sn__tf_dtype_name(t->tf_dtype) ? sn__tf_dtype_name(t->tf_dtype)
                                                       : "unknown");
    /* The size was bounded by the data file at open, so this allocation is honest. */
    SN_TRY(sn_tensor_new(ck->ctx, dt, t->rank, t->dims, out));
    st = read_tensor_bytes(ck, t, (*out)->data);
    if (st != SN_OK) {
        sn_tensor_free(*out);
        *out = NULL;
    }
    return st;
}

/* ---- V2: write --------------------------------------------------------------------------- */

static int cmp_entry_name(const void *a, const void *b) {
    return strcmp((*(const sn_ckpt_entry *const *)a)->name,
                  (*(const sn_ckpt_entry *const *)b)->name);
}

/* Packs a BundleEntryProto for a tensor at `offset` of shard 0. */
static sn_status pack_entry(sn_ctx *ctx, const sn_tensor *t, uint64_t offset, uint64_t size,
                            uint32_t crc, sn__buf *out) {
    Snckpt__TensorShapeProto__Dim dims[SN_MAX_RANK], *dimp[SN_MAX_RANK];
    for (int d = 0; d < t->rank; d++) {
        snckpt__tensor_shape_proto__dim__init(&dims[d]);
        dims[d].size = t->dims[d];
        dimp[d] = &dims[d];
    }
    Snckpt__TensorShapeProto shape = SNCKPT__TENSOR_SHAPE_PROTO__INIT;
    shape.n_dim = (size_t)t->rank;
    shape.dim = dimp;
    Snckpt__BundleEntryProto e = SNCKPT__BUNDLE_ENTRY_PROTO__INIT;
    e.dtype = sn__sn_to_tf_dtype(t->dtype);
    e.shape = &shape;   /* always set: a scalar is written as an empty shape, as TF does */
    e.offset = (int64_t)offset;
    e.size = (int64_t)size;
    e.crc32c = sn__crc32c_mask(crc);
    out->n = 0;
    if (!sn__buf_reserve(out, snckpt__bundle_entry_proto__get_packed_size(&e)))
        return sn__fail(ctx, SN_ERR_NOMEM, "checkpoint writer: out of memory");
    out->n = snckpt__bundle_entry_proto__pack(&e, out->p);
    return SN_OK;
}

sn_status sn_ckpt_write(sn_ctx *ctx, const char *prefix, int n, const sn_ckpt_entry *entries) {
    if (!prefix || n < 0 || (n > 0 && !entries))
        return sn__fail(ctx, SN_ERR_INVALID_ARG, "sn_ckpt_write: invalid arguments");
    const sn_ckpt_entry **order = malloc((n ? (size_t)n : 1) * sizeof *order);
    if (!order) return sn__fail(ctx, SN_ERR_NOMEM, "checkpoint writer: out of memory");
    for (int i = 0; i < n; i++) order[i] = &entries[i];
    sn_status st = SN_OK;
    for (int i = 0; st == SN_OK && i < n; i++)
        if (!entries[i].name || !entries[i].name[0] || !entries[i].tensor)
            st = sn__fail(ctx, SN_ERR_INVALID_ARG, "sn_ckpt_write: entry %d has no name or no "
                          "tensor", i);
    if (st == SN_OK) {
        /* BundleWriter needs sorted keys; the data file follows the same order, as TF's. */
        if (n > 1) qsort(order, (size_t)n, sizeof *order, cmp_entry_name);
        for (int i = 1; st == SN_OK && i < n; i++)
            if (strcmp(order[i - 1]->name, order[i]->name) == 0)
                st = sn__fail(ctx, SN_ERR_INVALID_ARG, "sn_ckpt_write: tensor '%s' given twice",
                              order[i]->name);
    }
    char data_path[PATH_MAX], data_tmp[PATH_MAX], index_path[PATH_MAX];
    if (st == SN_OK &&
        (snprintf(data_path, sizeof data_path, "%s.data-00000-of-00001", prefix) >=
             (int)sizeof data_path ||
         snprintf(data_tmp, sizeof data_tmp, "%s.tmp%ld", data_path, (long)getpid()) >=
             (int)sizeof data_tmp ||
         snprintf(index_path, sizeof index_path, "%s.index", prefix) >= (int)sizeof index_path))
        st = sn__fail(ctx, SN_ERR_INVALID_ARG, "checkpoint path too long: '%s'", prefix);
    int fd = -1;
    if (st == SN_OK) {
        fd = open(data_tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0)
            st = sn__fail(ctx, SN_ERR_IO, "cannot create '%s': %s", data_tmp, strerror(errno));
    }
    sn__table_builder *tb = NULL;
    if (st == SN_OK) st = sn__table_builder_new(ctx, 0, &tb);
    sn__buf val = {0};
    if (st == SN_OK) {
        /* Header: one shard, little-endian, VersionDef{producer = 1}, as TF writes it. */
        Snckpt__VersionDef ver = SNCKPT__VERSION_DEF__INIT;
        ver.producer = 1;
        Snckpt__BundleHeaderProto h = SNCKPT__BUNDLE_HEADER_PROTO__INIT;
        h.num_shards = 1;
        h.version = &ver;
        if (sn__buf_reserve(&val, snckpt__bundle_header_proto__get_packed_size(&h))) {
            val.n = snckpt__bundle_header_proto__pack(&h, val.p);
            st = sn__table_builder_add(tb, "", 0, val.p, val.n);
        } else {
            st = sn__fail(ctx, SN_ERR_NOMEM, "checkpoint writer: out of memory");
        }
    }
    uint64_t offset = 0;
    for (int i = 0; st == SN_OK && i < n; i++) {
        const sn_tensor *t = order[i]->tensor;
        size_t bytes = sn_tensor_nbytes(t);
        st = sn__file_write(ctx, fd, t->data, bytes, data_tmp);
        if (st == SN_OK) st = pack_entry(ctx, t, offset, bytes, sn__crc32c(t->data, bytes), &val);
        if (st == SN_OK)
            st = sn__table_builder_add(tb, order[i]->name, strlen(order[i]->name), val.p, val.n);
        offset += bytes;
    }
    if (fd >= 0) {
        if (st == SN_OK && fsync(fd) != 0)
            st = sn__fail(ctx, SN_ERR_IO, "fsync of '%s' failed: %s", data_tmp, strerror(errno));
        if (close(fd) != 0 && st == SN_OK)
            st = sn__fail(ctx, SN_ERR_IO, "close of '%s' failed: %s", data_tmp, strerror(errno));
    }
    const uint8_t *index = NULL;
    size_t index_len = 0;
    if (st == SN_OK) st = sn__table_builder_finish(tb, &index, &index_len);
    /* Data first, index last: an index is never visible without the data it describes. */
    if (st == SN_OK && rename(data_tmp, data_path) != 0)
        st = sn__fail(ctx, SN_ERR_IO, "cannot rename '%s' to '%s': %s", data_tmp, data_path,
                      strerror(errno));
    if (st != SN_OK && fd >= 0) unlink(data_tmp);
    if (st == SN_OK) st = sn__file_write_atomic(ctx, index_path, index, index_len);
    sn__buf_free(&val);
    sn__table_builder_free(tb);
    free(order);
    return st;
}
