/* ckpt_v1.c: V1 checkpoints (TensorSliceWriter), as the 2016-2017 TF-slim tarballs ship.
 *
 * A V1 file is one table (table.c), often snappy-compressed.  Key "" holds a
 * SavedTensorSlices whose `meta` lists every tensor: name, full shape, dtype and the slices
 * stored.  Each slice is a record under OrderedCode(name, slice) whose SavedSlice.data is a
 * TensorProto carrying the values in a typed repeated field (float_val, int_val, ...) in
 * row-major order (docs/formats.md, "Checkpoints V1").  A sharded save is several such
 * files; a reader takes the union of their metas.
 * The data records are scanned here by hand rather than with protobuf-c: a tensor of
 * 100 MB is one packed float_val, copied straight into the output instead of into a
 * protobuf-c array first. */
#include "table.h"

#include <stdlib.h>
#include <string.h>
#include "lib/io/tensor_bundle.pb-c.h"
#include "pb.h"

/* ---- open -------------------------------------------------------------------------------- */

/* Fewest bytes one element takes in a record (packed fixed-size or varint values), so
 * that the shape a meta record claims can be bounded by the file sizes. */
static uint64_t min_wire_bytes(int dt) {
    switch (dt) {
    case SN__DT_FLOAT: return 4;
    case SN__DT_DOUBLE: case SN__DT_COMPLEX64: return 8;
    case SN__DT_COMPLEX128: return 16;
    }
    return 1;
}

static sn_status v1_meta(sn_ckpt *ck, int file, int *cap) {
    sn_ctx *ctx = ck->ctx;
    sn__table *tab = ck->tables[file];
    const char *path = sn__table_path(tab);
    sn__table_iter it;
    sn_status st = sn__table_iter_first(tab, &it);
    Snckpt__SavedTensorSlices *sts = NULL;
    if (st == SN_OK && (!it.valid || it.klen != 0))
        st = sn__fail(ctx, SN_ERR_FORMAT, "'%s': a table, but not a V1 checkpoint (its first "
                      "key is not the meta record)", path);
    if (st == SN_OK) {
        sts = snckpt__saved_tensor_slices__unpack(NULL, it.vlen, it.val);
        if (!sts || !sts->meta || sn__pb_has_field0(&sts->base))
            st = sn__fail(ctx, SN_ERR_FORMAT, "'%s': the meta record is not a valid "
                          "SavedTensorSlices", path);
    }
    sn__table_iter_free(&it);
    if (st == SN_OK && sts->meta->versions) {
        const Snckpt__VersionDef *v = sts->meta->versions;
        bool bad = v->min_consumer > 1;
        for (size_t i = 0; i < v->n_bad_consumers; i++) bad |= v->bad_consumers[i] == 1;
        if (bad)
            st = sn__fail(ctx, SN_ERR_UNSUPPORTED, "'%s': written for readers of version >= %d; "
                          "this reader is version 1", path, v->min_consumer);
    }
    for (size_t m = 0; st == SN_OK && m < sts->meta->n_tensor; m++) {
        const Snckpt__SavedSliceMeta *sm = sts->meta->tensor[m];
        if (!sm->name || !sm->name[0]) {
            st = sn__fail(ctx, SN_ERR_FORMAT, "'%s': meta entry %zu has no name", path, m);
            break;
        }
        int rank;
        int64_t dims[SN_MAX_RANK];
        st = sn__ckpt_shape_from_proto(ctx, sm->shape, path, sm->name, &rank, dims);
        if (st != SN_OK) break;
        /* The same tensor in several shards must agree; its pieces are pooled. */
        sn__ck_tensor *t = NULL;
        for (int i = 0; i < ck->n && !t; i++)
            if (strcmp(ck->t[i].name, sm->name) == 0) t = &ck->t[i];
        if (t) {
            if (t->tf_dtype != sm->type || t->rank != rank ||
                memcmp(t->dims, dims, (size_t)rank * sizeof *dims)) {
                st = sn__fail(ctx, SN_ERR_FORMAT, "'%s': tensor '%s' has another dtype or shape "
                              "than in another shard", path, sm->name);
                break;
            }
        } else {
            if (ck->n == *cap) {
                int nc = *cap ? 2 * *cap : 64;
                sn__ck_tensor *nt = realloc(ck->t, (size_t)nc * sizeof *nt);
                if (!nt) {
                    st = sn__fail(ctx, SN_ERR_NOMEM, "checkpoint: out of memory");
                    break;
                }
                ck->t = nt;
                *cap = nc;
            }
            t = &ck->t[ck->n];
            memset(t, 0, sizeof *t);
            if (!(t->name = strdup(sm->name))) {
                st = sn__fail(ctx, SN_ERR_NOMEM, "checkpoint: out of memory");
                break;
            }
            ck->n++;
            t->tf_dtype = sm->type;
            t->rank = rank;
            memcpy(t->dims, dims, sizeof dims);
        }
        int first = t->n_pieces;
        st = sn__ckpt_pieces_from_protos(ck, t, sm->n_slice, sm->slice, path);
        for (int p = first; p < t->n_pieces; p++) t->pieces[p].src = file;
    }
    if (sts) snckpt__saved_tensor_slices__free_unpacked(sts, NULL);
    return st;
}

sn_status sn__ckpt_v1_open(sn_ckpt *ck, int n_files, char **files) {
    ck->tables = calloc((size_t)n_files, sizeof *ck->tables);
    if (!ck->tables) return sn__fail(ck->ctx, SN_ERR_NOMEM, "checkpoint: out of memory");
    uint64_t total = 0;
    int cap = 0;
    for (int f = 0; f < n_files; f++) {
        SN_TRY(sn__table_open(ck->ctx, files[f], &ck->tables[f]));
        ck->n_tables++;
        total += sn__table_file_size(ck->tables[f]);
        SN_TRY(v1_meta(ck, f, &cap));
    }
    for (int i = 0; i < ck->n; i++) {
        sn__ck_tensor *t = &ck->t[i];
        size_t numel;
        sn__numel(t->rank, t->dims, &numel);
        /* Every element is stored somewhere in these files, at most 22 times smaller when
         * snappy compressed it (its best ratio: 64 bytes from a 3-byte copy): a shape larger
         * than that is a lie, refused before it can turn into an allocation. */
        uint64_t room = total > UINT64_MAX / 22 ? UINT64_MAX : total * 22;
        if (numel > room / min_wire_bytes(t->tf_dtype))
            return sn__fail(ck->ctx, SN_ERR_FORMAT, "'%s': tensor '%s' declares %zu elements, "
                            "more than %llu bytes of files can hold", ck->path, t->name, numel,
                            (unsigned long long)total);
        if (t->n_pieces == 0)
            return sn__fail(ck->ctx, SN_ERR_FORMAT, "'%s': tensor '%s' lists no slices",
                            ck->path, t->name);
        t->nbytes = (uint64_t)numel * sn__tf_dtype_size(t->tf_dtype);
        SN_TRY(sn__ckpt_check_pieces(ck, t));
    }
    return SN_OK;
}

/* ---- read -------------------------------------------------------------------------------- */

/* One field of a protobuf message: number, wire type and value. */
typedef struct field {
    uint32_t num;
    int wt;
    uint64_t v;              /* wire type 0 */
    const uint8_t *p;        /* wire types 1, 2, 5: the bytes */
    size_t len;
} field;

/* Next field of [*p, end), bounded; false at the end or on malformed input (*bad set). */
static bool next_field(const uint8_t **p, const uint8_t *end, field *f, bool *bad) {
    if (*p >= end) return false;
    uint64_t key;
    const uint8_t *q = sn__get_varint(*p, end, 10, &key);
    *bad = true;
    if (!q || (key >> 3) == 0 || (key >> 3) > UINT32_MAX) return false;
    f->num = (uint32_t)(key >> 3);
    f->wt = (int)(key & 7);
    f->p = NULL;
    f->len = 0;
    switch (f->wt) {
    case 0:
        q = sn__get_varint(q, end, 10, &f->v);
        if (!q) return false;
        break;
    case 1: case 5:
        f->len = f->wt == 1 ? 8 : 4;
        if ((size_t)(end - q) < f->len) return false;
        f->p = q;
        q += f->len;
        break;
    case 2: {
        uint64_t n;
        q = sn__get_varint(q, end, 10, &n);
        if (!q || n > (uint64_t)(end - q)) return false;
        f->p = q;
        f->len = (size_t)n;
        q += n;
        break;
    }
    default:
        return false;   /* groups never occur in these messages */
    }
    *p = q;
    *bad = false;
    return true;
}

/* Where the values of a piece go: cap bytes, n written so far. */
typedef struct sink {
    uint8_t *dst;
    size_t n, cap;
    int dt;
} sink;

static bool sink_bytes(sink *s, const uint8_t *p, size_t len) {
    if (len > s->cap - s->n) return false;
    memcpy(s->dst + s->n, p, len);
    s->n += len;
    return true;
}

/* A varint value stored as the dtype's element (int_val holds int8..int32 and uint8). */
static bool sink_varint(sink *s, uint64_t v) {
    uint8_t b[8];
    size_t es = sn__tf_dtype_size(s->dt);
    if (s->dt == SN__DT_BOOL) v = v != 0;
    for (size_t i = 0; i < es; i++) b[i] = (uint8_t)(v >> (8 * i));
    return sink_bytes(s, b, es);
}

/* The TensorProto field holding dtype dt's values, and whether they are varints. */
static uint32_t value_field(int dt, bool *varint) {
    *varint = true;
    switch (dt) {
    case SN__DT_FLOAT: *varint = false; return 5;
    case SN__DT_DOUBLE: *varint = false; return 6;
    case SN__DT_COMPLEX64: *varint = false; return 9;
    case SN__DT_COMPLEX128: *varint = false; return 12;
    case SN__DT_INT32: case SN__DT_INT16: case SN__DT_INT8: case SN__DT_UINT8:
    case SN__DT_UINT16:
        return 7;
    case SN__DT_INT64: return 10;
    case SN__DT_BOOL: return 11;
    case SN__DT_HALF: return 13;
    }
    return 0;
}

/* Scans a TensorProto into s.  Returns false on malformed data or too many values. */
static bool scan_tensor_proto(const uint8_t *p, const uint8_t *end, sink *s) {
    bool varint;
    uint32_t want = value_field(s->dt, &varint);
    field f;
    bool bad = false;
    while (next_field(&p, end, &f, &bad)) {
        if (f.num == 4 && f.wt == 2) {            /* tensor_content: raw bytes */
            if (!sink_bytes(s, f.p, f.len)) return false;
        } else if (f.num == want && varint) {
            if (f.wt == 0) {
                if (!sink_varint(s, f.v)) return false;
            } else if (f.wt == 2) {               /* packed varints */
                const uint8_t *q = f.p, *qe = f.p + f.len;
                while (q < qe) {
                    uint64_t v;
                    if (!(q = sn__get_varint(q, qe, 10, &v)) || !sink_varint(s, v)) return false;
                }
            } else {
                return false;
            }
        } else if (f.num == want) {               /* fixed32 / fixed64 values */
            size_t unit = (want == 5 || want == 9) ? 4 : 8;
            if (f.wt == 2 ? f.len % unit != 0 : f.len != unit) return false;
            if (!sink_bytes(s, f.p, f.len)) return false;
        }
    }
    return !bad;
}

/* Finds the record of piece pc, checks its name, and scans its values into s. */
static sn_status read_piece(sn_ckpt *ck, const sn__ck_tensor *t, const sn__ck_piece *pc,
                            sink *s) {
    sn__table *tab = ck->tables[pc->src];
    const char *path = sn__table_path(tab);
    sn__buf key = {0};
    sn__slice_key(&key, t->name, t->rank, pc->start, pc->length);
    if (key.oom) return sn__fail(ck->ctx, SN_ERR_NOMEM, "checkpoint: out of memory");
    bool found = false;
    const uint8_t *val = NULL;
    size_t vlen = 0;
    sn_status st = sn__table_get(tab, key.p, key.n, &found, &val, &vlen);
    sn__buf_free(&key);
    SN_TRY(st);
    if (!found)
        return sn__fail(ck->ctx, SN_ERR_FORMAT, "'%s': the record of a slice of tensor '%s' is "
                        "missing", path, t->name);
    const uint8_t *p = val, *end = val + vlen;
    field f;
    bool bad = false, named = false, ok = true;
    while (ok && next_field(&p, end, &f, &bad)) {
        if (f.num != 2 || f.wt != 2) continue;    /* SavedTensorSlices.data */
        const uint8_t *q = f.p, *qe = f.p + f.len;
        field g;
        while (ok && next_field(&q, qe, &g, &bad)) {
            if (g.num == 1 && g.wt == 2)          /* SavedSlice.name */
                named = g.len == strlen(t->name) && memcmp(g.p, t->name, g.len) == 0;
            else if (g.num == 3 && g.wt == 2)     /* SavedSlice.data */
                ok = scan_tensor_proto(g.p, g.p + g.len, s);
        }
    }
    if (bad || !ok || !named)
        return sn__fail(ck->ctx, SN_ERR_FORMAT, "'%s': the record of a slice of tensor '%s' is "
                        "malformed%s", path, t->name,
                        !ok ? " (more values than the slice holds)"
                            : (!named ? " (it names another tensor)" : ""));
    if (s->n != s->cap)
        return sn__fail(ck->ctx, SN_ERR_FORMAT, "'%s': a slice of tensor '%s' holds %zu bytes of "
                        "values, its extent needs %zu", path, t->name, s->n, s->cap);
    return SN_OK;
}

sn_status sn__ckpt_v1_read(sn_ckpt *ck, const sn__ck_tensor *t, void *out) {
    bool varint;
    size_t es = sn__tf_dtype_size(t->tf_dtype);
    if (!es || !value_field(t->tf_dtype, &varint))
        return sn__fail(ck->ctx, SN_ERR_UNSUPPORTED, "'%s': tensor '%s' has dtype %s, which the "
                        "V1 reader does not decode", ck->path, t->name,
                        sn__tf_dtype_name(t->tf_dtype) ? sn__tf_dtype_name(t->tf_dtype)
                                                       : "unknown");
    sn_status st = SN_OK;
    void *tmp = NULL;
    for (int i = 0; st == SN_OK && i < t->n_pieces; i++) {
        const sn__ck_piece *pc = &t->pieces[i];
        int64_t len[SN_MAX_RANK];
        /* Sizes were bounded at open: the piece lies inside the tensor. */
        size_t bytes = (size_t)sn__ckpt_piece_dims(t, pc, len) * es;
        if (t->n_pieces == 1) {
            sink s = {out, 0, bytes, t->tf_dtype};   /* the whole tensor: decode in place */
            st = read_piece(ck, t, pc, &s);
        } else {
            free(tmp);
            tmp = malloc(bytes ? bytes : 1);
            if (!tmp) {
                st = sn__fail(ck->ctx, SN_ERR_NOMEM, "checkpoint: cannot allocate %zu bytes",
                              bytes);
                break;
            }
            sink s = {tmp, 0, bytes, t->tf_dtype};
            st = read_piece(ck, t, pc, &s);
            if (st == SN_OK) sn__ckpt_place_piece(out, t->dims, t->rank, pc->start, len, tmp, es);
        }
    }
    free(tmp);
    /* A record can be the size of the tensor: do not keep its block around. */
    for (int i = 0; i < ck->n_tables; i++) sn__table_drop_cache(ck->tables[i]);
    return st;
}
