/* ckpt_testutil.h: helpers of the checkpoint suites (test_ckpt.c, test_ckpt_parity.c):
 * scratch folders, whole files, SHA-256, and a V1 checkpoint writer (slimnet itself only
 * writes V2; tests craft V1 files the way TensorSliceWriter lays them out, docs/formats.md,
 * "Checkpoints V1"). */
#ifndef SN_CKPT_TESTUTIL_H
#define SN_CKPT_TESTUTIL_H

#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "testutil.h"
#include "../lib/io/crc32c.h"
#include "../lib/io/table.h"
#include "lib/io/tensor_bundle.pb-c.h"

/* ---- files ------------------------------------------------------------------------------- */

static inline char *ct_tmpdir(void) {
    char *d = strdup("/tmp/sn_ckpt_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(d));
    return d;
}

static inline int ct_rm_one(const char *p, const struct stat *s, int flag, struct FTW *f) {
    (void)s; (void)flag; (void)f;
    return remove(p);
}

/* rm -rf path, then frees it. */
static inline void ct_rmdir(char *path) {
    nftw(path, ct_rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(path);
}

static inline uint8_t *ct_read(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)n + 1);
    ck_assert(fread(b, 1, (size_t)n, f) == (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return b;
}

static inline void ct_write(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    ck_assert_msg(f != NULL, "cannot create %s", path);
    ck_assert(fwrite(data, 1, len, f) == len);
    fclose(f);
}

/* ---- SHA-256 (FIPS 180-4), for comparing with the fixtures' manifests ---------------------- */

static inline void ct_sha256_block(uint32_t *h, const uint8_t *p) {
    static const uint32_t k[64] = {
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
        0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
        0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
        0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
        0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
        0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
        0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
        0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2};
#define CT_ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))
    uint32_t w[64], a[8];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = CT_ROR(w[i - 15], 7) ^ CT_ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = CT_ROR(w[i - 2], 17) ^ CT_ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    memcpy(a, h, sizeof a);
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = a[7] + (CT_ROR(a[4], 6) ^ CT_ROR(a[4], 11) ^ CT_ROR(a[4], 25)) +
                      ((a[4] & a[5]) ^ (~a[4] & a[6])) + k[i] + w[i];
        uint32_t t2 = (CT_ROR(a[0], 2) ^ CT_ROR(a[0], 13) ^ CT_ROR(a[0], 22)) +
                      ((a[0] & a[1]) ^ (a[0] & a[2]) ^ (a[1] & a[2]));
        memmove(a + 1, a, 7 * sizeof *a);
        a[4] += t1;
        a[0] = t1 + t2;
    }
#undef CT_ROR
    for (int i = 0; i < 8; i++) h[i] += a[i];
}

/* Lower-case hex digest of n bytes into hex[65]. */
static inline void ct_sha256_hex(const void *data, size_t n, char *hex) {
    uint32_t h[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                     0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    const uint8_t *p = data;
    size_t left = n;
    for (; left >= 64; left -= 64, p += 64) ct_sha256_block(h, p);
    uint8_t tail[128] = {0};
    memcpy(tail, p, left);
    tail[left] = 0x80;
    size_t tl = left < 56 ? 64 : 128;
    uint64_t bits = (uint64_t)n * 8;
    for (int i = 0; i < 8; i++) tail[tl - 1 - i] = (uint8_t)(bits >> (8 * i));
    ct_sha256_block(h, tail);
    if (tl == 128) ct_sha256_block(h, tail + 64);
    for (int i = 0; i < 8; i++) sprintf(hex + 8 * i, "%08x", h[i]);
}

/* ---- a V1 writer ------------------------------------------------------------------------- */

/* One tensor of a crafted V1 file.  data holds the whole tensor, row-major; pieces say how
 * it is stored (n_pieces = 0: one piece, every extent full). */
typedef struct ct_v1_tensor {
    const char *name;
    int dtype;                       /* SN__DT_FLOAT, INT32, INT64, UINT8, BOOL */
    int rank;
    int64_t dims[4];
    const void *data;
    int n_pieces;
    int64_t start[4][4], len[4][4];  /* len -1: the whole dimension */
} ct_v1_tensor;

typedef struct ct_kv {
    sn__buf key, val;
} ct_kv;

static inline int ct_kv_cmp(const void *a, const void *b) {
    const ct_kv *x = a, *y = b;
    size_t m = x->key.n < y->key.n ? x->key.n : y->key.n;
    int c = m ? memcmp(x->key.p, y->key.p, m) : 0;
    return c ? c : (x->key.n > y->key.n) - (x->key.n < y->key.n);
}

static inline void ct_pack(sn__buf *b, const ProtobufCMessage *m) {
    b->n = 0;
    ck_assert(sn__buf_reserve(b, protobuf_c_message_get_packed_size(m)));
    b->n = protobuf_c_message_pack(m, b->p);
}

/* Builds the TensorSliceProto of piece p of t into storage the caller keeps alive. */
static inline void ct_slice_proto(const ct_v1_tensor *t, int p, Snckpt__TensorSliceProto *sp,
                                  Snckpt__TensorSliceProto__Extent *ext,
                                  Snckpt__TensorSliceProto__Extent **extp) {
    snckpt__tensor_slice_proto__init(sp);
    for (int d = 0; d < t->rank; d++) {
        snckpt__tensor_slice_proto__extent__init(&ext[d]);
        if (t->n_pieces && t->len[p][d] >= 0) {
            ext[d].start = t->start[p][d];
            ext[d].has_length_case = SNCKPT__TENSOR_SLICE_PROTO__EXTENT__HAS_LENGTH_LENGTH;
            ext[d].length = t->len[p][d];
        }
        extp[d] = &ext[d];
    }
    sp->n_extent = (size_t)t->rank;
    sp->extent = extp;
}

/* Writes the V1 table file path holding tensors t[0..n) (snappy: compress blocks where that
 * pays, as TF's default options did). */
static inline void ct_v1_write(sn_ctx *ctx, const char *path, int snappy, int n,
                               const ct_v1_tensor *t) {
    int total = 0;
    for (int i = 0; i < n; i++) total += t[i].n_pieces ? t[i].n_pieces : 1;
    ct_kv *kv = calloc((size_t)total + 1, sizeof *kv);
    Snckpt__SavedSliceMeta *metas = calloc((size_t)n, sizeof *metas), **metap =
        calloc((size_t)n, sizeof *metap);
    Snckpt__TensorShapeProto *shapes = calloc((size_t)n, sizeof *shapes);
    Snckpt__TensorShapeProto__Dim *dims = calloc((size_t)n * 4, sizeof *dims);
    Snckpt__TensorSliceProto *sl = calloc((size_t)total, sizeof *sl), **slp =
        calloc((size_t)total, sizeof *slp);
    Snckpt__TensorSliceProto__Extent *ext = calloc((size_t)total * 4, sizeof *ext),
        **extp = calloc((size_t)total * 4, sizeof *extp);
    Snckpt__TensorShapeProto__Dim **alldimp = calloc((size_t)n * 4, sizeof *alldimp);
    int k = 1;   /* kv[0] is the meta record */
    for (int i = 0; i < n; i++) {
        snckpt__saved_slice_meta__init(&metas[i]);
        snckpt__tensor_shape_proto__init(&shapes[i]);
        for (int d = 0; d < t[i].rank; d++) {
            snckpt__tensor_shape_proto__dim__init(&dims[4 * i + d]);
            dims[4 * i + d].size = t[i].dims[d];
            alldimp[4 * i + d] = &dims[4 * i + d];
        }
        shapes[i].n_dim = (size_t)t[i].rank;
        shapes[i].dim = &alldimp[4 * i];
        metas[i].name = (char *)t[i].name;
        metas[i].shape = &shapes[i];
        metas[i].type = t[i].dtype;
        metap[i] = &metas[i];
        int np = t[i].n_pieces ? t[i].n_pieces : 1;
        metas[i].n_slice = (size_t)np;
        metas[i].slice = &slp[k - 1];
        size_t es = sn__tf_dtype_size(t[i].dtype);
        for (int p = 0; p < np; p++, k++) {
            ct_slice_proto(&t[i], p, &sl[k - 1], &ext[4 * (k - 1)], &extp[4 * (k - 1)]);
            slp[k - 1] = &sl[k - 1];
            /* Gather the piece, row-major, from the whole tensor. */
            int64_t st[4] = {0}, ln[4], cnt = 1;
            for (int d = 0; d < t[i].rank; d++) {
                bool full = !t[i].n_pieces || t[i].len[p][d] < 0;
                st[d] = full ? 0 : t[i].start[p][d];
                ln[d] = full ? t[i].dims[d] : t[i].len[p][d];
                cnt *= ln[d];
            }
            uint8_t *piece = malloc((size_t)cnt * es + 1);
            for (int64_t e = 0; e < cnt; e++) {
                int64_t rem = e, off = 0, stride = 1;
                for (int d = t[i].rank - 1; d >= 0; d--) {
                    off += (st[d] + rem % ln[d]) * stride;
                    rem /= ln[d];
                    stride *= t[i].dims[d];
                }
                memcpy(piece + e * (int64_t)es, (const uint8_t *)t[i].data + off * (int64_t)es, es);
            }
            Snckpt__TensorProto tp = SNCKPT__TENSOR_PROTO__INIT;
            int32_t *iv = NULL;
            protobuf_c_boolean *bv = NULL;
            if (t[i].dtype == SN__DT_FLOAT) {
                tp.n_float_val = (size_t)cnt;
                tp.float_val = (float *)piece;
            } else if (t[i].dtype == SN__DT_INT64) {
                tp.n_int64_val = (size_t)cnt;
                tp.int64_val = (int64_t *)piece;
            } else if (t[i].dtype == SN__DT_BOOL) {
                bv = malloc((size_t)cnt * sizeof *bv + 1);
                for (int64_t e = 0; e < cnt; e++) bv[e] = piece[e] != 0;
                tp.n_bool_val = (size_t)cnt;
                tp.bool_val = bv;
            } else {   /* int32, uint8 -> int_val */
                iv = malloc((size_t)cnt * sizeof *iv + 1);
                for (int64_t e = 0; e < cnt; e++)
                    iv[e] = t[i].dtype == SN__DT_UINT8 ? piece[e] : ((int32_t *)piece)[e];
                tp.n_int_val = (size_t)cnt;
                tp.int_val = iv;
            }
            Snckpt__SavedSlice ss = SNCKPT__SAVED_SLICE__INIT;
            ss.name = (char *)t[i].name;
            ss.slice = &sl[k - 1];
            ss.data = &tp;
            Snckpt__SavedTensorSlices sts = SNCKPT__SAVED_TENSOR_SLICES__INIT;
            sts.data = &ss;
            ct_pack(&kv[k].val, &sts.base);
            static const int64_t all_full[4] = {-1, -1, -1, -1};
            sn__slice_key(&kv[k].key, t[i].name, t[i].rank, st,
                          t[i].n_pieces ? t[i].len[p] : all_full);
            free(piece);
            free(iv);
            free(bv);
        }
    }
    Snckpt__VersionDef ver = SNCKPT__VERSION_DEF__INIT;
    ver.producer = 1;
    Snckpt__SavedTensorSliceMeta meta = SNCKPT__SAVED_TENSOR_SLICE_META__INIT;
    meta.n_tensor = (size_t)n;
    meta.tensor = metap;
    meta.versions = &ver;
    Snckpt__SavedTensorSlices sts = SNCKPT__SAVED_TENSOR_SLICES__INIT;
    sts.meta = &meta;
    ct_pack(&kv[0].val, &sts.base);
    qsort(kv + 1, (size_t)total, sizeof *kv, ct_kv_cmp);
    sn__table_builder *tb;
    ck_assert_int_eq(sn__table_builder_new(ctx, snappy, &tb), SN_OK);
    for (int i = 0; i <= total; i++)
        ck_assert_int_eq(sn__table_builder_add(tb, kv[i].key.p, kv[i].key.n, kv[i].val.p,
                                               kv[i].val.n), SN_OK);
    const uint8_t *file;
    size_t len;
    ck_assert_int_eq(sn__table_builder_finish(tb, &file, &len), SN_OK);
    ct_write(path, file, len);
    sn__table_builder_free(tb);
    for (int i = 0; i <= total; i++) {
        sn__buf_free(&kv[i].key);
        sn__buf_free(&kv[i].val);
    }
    free(kv); free(metas); free(metap); free(shapes); free(dims); free(sl); free(slp);
    free(ext); free(extp); free(alldimp);
}

#endif
