/* test_ckpt.c: checkpoints.  The table format both ways (and the known-answer bytes of
 * docs/formats.md), V2 bundles round trip for every dtype, V1 files crafted as
 * docs/formats.md lays them out (snappy, slices, shards),
 * the state file, restore rules on small nets, and bad input: every damaged or forged file
 * must give a status naming the file, never a crash or a huge allocation. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include "ckpt_testutil.h"

static sn_tensor *tensor_of(sn_ctx *ctx, sn_dtype dt, int rank, const int64_t *dims,
                            uint64_t seed) {
    sn_tensor *t = NULL;
    ck_assert_int_eq(sn_tensor_new(ctx, dt, rank, dims, &t), SN_OK);
    uint8_t *p = sn_tensor_data(t);
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 7;
    for (size_t i = 0; i < sn_tensor_nbytes(t); i++) {   /* any bit pattern, NaNs included */
        s ^= s >> 12; s ^= s << 25; s ^= s >> 27;
        p[i] = (uint8_t)((s * 2685821657736338717ull) >> 56);
    }
    return t;
}

static void assert_same(const sn_tensor *a, const sn_tensor *b) {
    ck_assert_int_eq(sn_tensor_dtype(a), sn_tensor_dtype(b));
    ck_assert_int_eq(sn_tensor_rank(a), sn_tensor_rank(b));
    for (int d = 0; d < sn_tensor_rank(a); d++)
        ck_assert_int_eq(sn_tensor_dim(a, d), sn_tensor_dim(b, d));
    ck_assert(memcmp(sn_tensor_data(a), sn_tensor_data(b), sn_tensor_nbytes(a)) == 0);
}

/* Expects st == want and the context message to contain `needle`. */
#define ASSERT_FAILS(ctx, expr, want, needle)                                              \
    do {                                                                                   \
        sn_status st_ = (expr);                                                            \
        ck_assert_msg(st_ == (want), "%s: got %s (%s)", #expr, sn_status_name(st_),        \
                      sn_ctx_errmsg(ctx));                                                 \
        ck_assert_msg(strstr(sn_ctx_errmsg(ctx), (needle)) != NULL, "message '%s' lacks '%s'", \
                      sn_ctx_errmsg(ctx), (needle));                                       \
    } while (0)

/* ---- the table -------------------------------------------------------------------------- */

START_TEST(test_table_roundtrip) {   /* _i: 0 raw blocks, 1 snappy */
    sn_ctx *ctx = tu_ctx();
    char *dir = ct_tmpdir(), path[PATH_MAX];
    snprintf(path, sizeof path, "%s/t.table", dir);
    enum { N = 4000 };
    static const char *part[] = {"conv", "BatchNorm/beta", "BatchNorm/moving_mean", "weights"};
    sn__table_builder *tb;
    ck_assert_int_eq(sn__table_builder_new(ctx, _i, &tb), SN_OK);
    char key[96];
    uint8_t *val = malloc(600000);
    for (int i = 0; i < 600000; i++) val[i] = (uint8_t)(i % 251 < 200 ? 'a' : i);
    /* Shared prefixes; two values far over the block size take blocks of their own. */
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof key, "net/block%02d/unit_%03d/%s", i / 400, i % 400, part[i % 4]);
        size_t vl = (i == 1000 || i == 3999) ? 550000 : (size_t)(i % 97) * 7;
        ck_assert_int_eq(sn__table_builder_add(tb, key, strlen(key), val + i % 13, vl), SN_OK);
    }
    ck_assert_int_eq(sn__table_builder_add(tb, "a", 1, "", 0), SN_ERR_INVALID_ARG);
    const uint8_t *file;
    size_t len;
    ck_assert_int_eq(sn__table_builder_finish(tb, &file, &len), SN_OK);
    ct_write(path, file, len);
    sn__table_builder_free(tb);

    sn__table *t;
    ck_assert_int_eq(sn__table_open(ctx, path, &t), SN_OK);
    sn__table_iter it;
    int n = 0;
    for (sn_status st = sn__table_iter_first(t, &it); it.valid; st = sn__table_iter_next(&it)) {
        ck_assert_int_eq(st, SN_OK);
        snprintf(key, sizeof key, "net/block%02d/unit_%03d/%s", n / 400, n % 400, part[n % 4]);
        size_t vl = (n == 1000 || n == 3999) ? 550000 : (size_t)(n % 97) * 7;
        ck_assert(it.klen == strlen(key) && memcmp(it.key, key, it.klen) == 0);
        ck_assert(it.vlen == vl && (vl == 0 || memcmp(it.val, val + n % 13, vl) == 0));
        n++;
    }
    sn__table_iter_free(&it);
    ck_assert_int_eq(n, N);
    for (int i = 0; i < N; i += 7) {
        snprintf(key, sizeof key, "net/block%02d/unit_%03d/%s", i / 400, i % 400, part[i % 4]);
        bool found;
        const uint8_t *v;
        size_t vl;
        ck_assert_int_eq(sn__table_get(t, key, strlen(key), &found, &v, &vl), SN_OK);
        ck_assert(found && vl == ((i == 1000) ? 550000 : (size_t)(i % 97) * 7));
    }
    const char *absent[] = {"", "a", "net/block00/unit_000/conv0", "net/block09/z", "zzz"};
    for (int i = 0; i < 5; i++) {
        bool found = true;
        const uint8_t *v;
        size_t vl;
        ck_assert_int_eq(sn__table_get(t, absent[i], strlen(absent[i]), &found, &v, &vl), SN_OK);
        ck_assert(!found);
    }
    sn__table_close(t);
    /* Snappy pays on these values: the file must be much smaller than the raw one. */
    if (_i) ck_assert_uint_lt(len, 700000);
    free(val);
    ct_rmdir(dir);
    sn_ctx_free(ctx);
} END_TEST

START_TEST(test_ordered_code_vectors) {   /* docs/formats.md, "Known-answer vectors" */
    static const struct { int rank; int64_t start[2], len[2]; const char *name, *hex; } v[] = {
        {2, {0, 0}, {-1, -1}, "w", "0077000101028" "07f807f"},
        {0, {0, 0}, {0, 0}, "w", "0077000100"},
        {2, {5, 0}, {5, -1}, "emb", "00656d6200010102858580" "7f"},
        {1, {64, 0}, {1000, 0}, "a", "00610001010" "1c040c3e8"},
        {1, {8191, 0}, {8192, 0}, "a", "006100010101dfffe02000"},
        {1, {-65, 0}, {-64, 0}, "a", "0061000101013fbf40"},
        {1, {63, 0}, {1, 0}, "a\xff", "0061ff000001010" "1bf81"},
    };
    for (size_t i = 0; i < sizeof v / sizeof *v; i++) {
        sn__buf b = {0};
        sn__slice_key(&b, v[i].name, v[i].rank, v[i].start, v[i].len);
        char hex[128] = "";
        for (size_t k = 0; k < b.n; k++) sprintf(hex + 2 * k, "%02x", b.p[k]);
        ck_assert_str_eq(hex, v[i].hex);
        sn__buf_free(&b);
    }
} END_TEST

/* docs/formats.md, "Known-answer vectors": the index of one tensor w = float32[2] {1, 2} */
static const uint8_t spec_index[121] = {
    0x00, 0x00, 0x06, 0x08, 0x01, 0x1a, 0x02, 0x08, 0x01, 0x00, 0x01, 0x0f, 0x77, 0x08, 0x01,
    0x12, 0x04, 0x12, 0x02, 0x08, 0x02, 0x28, 0x08, 0x35, 0x59, 0x3c, 0xe5, 0x35, 0x00, 0x00,
    0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x09, 0x21, 0xad, 0xc3, 0x00, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x00, 0x00, 0x00, 0xc0, 0xf2, 0xa1, 0xb0, 0x00, 0x01, 0x02, 0x78, 0x00, 0x24,
    0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0xab, 0x30, 0x70, 0x7f, 0x29, 0x08,
    0x36, 0x0e, [113] = 0x57, 0xfb, 0x80, 0x8b, 0x24, 0x75, 0x47, 0xdb};

START_TEST(test_spec_bytes) {
    sn_ctx *ctx = tu_ctx();
    char *dir = ct_tmpdir(), prefix[PATH_MAX], path[PATH_MAX + 32];
    snprintf(prefix, sizeof prefix, "%s/w", dir);
    float w[2] = {1.0f, 2.0f};
    int64_t d2 = 2;
    sn_tensor *t;
    ck_assert_int_eq(sn_tensor_wrap(ctx, w, SN_DTYPE_F32, 1, &d2, SN_BORROW, &t), SN_OK);
    sn_ckpt_entry e = {"w", t};
    ck_assert_int_eq(sn_ckpt_write(ctx, prefix, 1, &e), SN_OK);
    size_t len;
    snprintf(path, sizeof path, "%s.index", prefix);
    uint8_t *idx = ct_read(path, &len);
    ck_assert_uint_eq(len, sizeof spec_index);
    ck_assert(memcmp(idx, spec_index, len) == 0);
    free(idx);
    snprintf(path, sizeof path, "%s.data-00000-of-00001", prefix);
    uint8_t *data = ct_read(path, &len);
    ck_assert(len == 8 && memcmp(data, w, 8) == 0);
    free(data);

    /* The 151-byte V1 file of the same tensor (docs/formats.md, "Known-answer vectors"). */
    snprintf(path, sizeof path, "%s/w.ckpt", dir);
    ct_v1_tensor v1 = {"w", SN__DT_FLOAT, 1, {2}, w, 0, {{0}}, {{0}}};
    ct_v1_write(ctx, path, 0, 1, &v1);
    uint8_t *f = ct_read(path, &len);
    ck_assert_uint_eq(len, 151);
    static const uint8_t handles[4] = {0x47, 0x08, 0x54, 0x0e};
    ck_assert(memcmp(f + len - 48, handles, 4) == 0);
    free(f);
    sn_ckpt *ck;
    ck_assert_int_eq(sn_ckpt_open(ctx, path, &ck), SN_OK);
    ck_assert_int_eq(sn_ckpt_version(ck), 1);
    sn_tensor *r;
    ck_assert_int_eq(sn_ckpt_read(ck, "w", &r), SN_OK);
    assert_same(r, t);
    sn_tensor_free(r);
    sn_ckpt_close(ck);
    sn_tensor_free(t);
    ct_rmdir(dir);
    sn_ctx_free(ctx);
} END_TEST

/* ---- V2 --------------------------------------------------------------------------------- */

START_TEST(test_v2_roundtrip) {
    sn_ctx *ctx = tu_ctx();
    char *dir = ct_tmpdir(), prefix[PATH_MAX];
    snprintf(prefix, sizeof prefix, "%s/model.ckpt-5", dir);
    static const int64_t conv[4] = {3, 3, 4, 8}, v5 = 5, img[3] = {7, 3, 2}, empty[2] = {0, 3},
                         big = 1 << 21;
    sn_tensor *ts[] = {
        tensor_of(ctx, SN_DTYPE_F32, 4, conv, 1), tensor_of(ctx, SN_DTYPE_I32, 1, &v5, 2),
        tensor_of(ctx, SN_DTYPE_I64, 0, NULL, 3), tensor_of(ctx, SN_DTYPE_U8, 3, img, 4),
        tensor_of(ctx, SN_DTYPE_F32, 0, NULL, 5), tensor_of(ctx, SN_DTYPE_F32, 2, empty, 6),
        tensor_of(ctx, SN_DTYPE_F32, 1, &big, 7),   /* 8 MiB */
    };
    /* Given out of order: the writer sorts. */
    const char *names[] = {"net/conv1/weights", "counts", "global_step", "pixels",
                           "scalar", "empty", "a/big"};
    enum { N = sizeof ts / sizeof *ts };
    sn_ckpt_entry e[N];
    for (int i = 0; i < N; i++) e[i] = (sn_ckpt_entry){names[i], ts[i]};
    ck_assert_int_eq(sn_ckpt_write(ctx, prefix, N, e), SN_OK);

    sn_ckpt *ck;
    ck_assert_int_eq(sn_ckpt_open(ctx, prefix, &ck), SN_OK);
    ck_assert_int_eq(sn_ckpt_version(ck), 2);
    ck_assert_int_eq(sn_ckpt_count(ck), N);
    const char *prev = "";
    for (int i = 0; i < N; i++) {
        sn_ckpt_info in;
        ck_assert_int_eq(sn_ckpt_info_at(ck, i, &in), SN_OK);
        ck_assert_int_lt(strcmp(prev, in.name), 0);   /* name order */
        prev = in.name;
        int j = 0;
        while (strcmp(names[j], in.name)) j++;
        ck_assert(in.has_sn_dtype && in.dtype == sn_tensor_dtype(ts[j]));
        ck_assert_uint_eq(in.nbytes, sn_tensor_nbytes(ts[j]));
        ck_assert_int_eq(in.num_slices, 0);
        sn_tensor *r;
        ck_assert_int_eq(sn_ckpt_read(ck, in.name, &r), SN_OK);
        assert_same(r, ts[j]);   /* bit-identical, NaN payloads and all */
        ck_assert_int_eq(sn_ckpt_read_into(ck, in.name, r), SN_OK);
        sn_tensor_free(r);
    }
    ck_assert_int_eq(sn_ckpt_find(ck, "nope"), -1);
    sn_tensor *r = NULL;
    ASSERT_FAILS(ctx, sn_ckpt_read(ck, "nope", &r), SN_ERR_NOT_FOUND, "nope");
    ASSERT_FAILS(ctx, sn_ckpt_read_into(ck, "counts", ts[0]), SN_ERR_SHAPE, "[3,3,4,8]");
    uint8_t small[4];
    ASSERT_FAILS(ctx, sn_ckpt_read_raw(ck, "counts", small, 4), SN_ERR_INVALID_ARG, "counts");
    sn_ckpt_close(ck);

    sn_ckpt_entry dup[2] = {{"x", ts[1]}, {"x", ts[2]}};
    ASSERT_FAILS(ctx, sn_ckpt_write(ctx, prefix, 2, dup), SN_ERR_INVALID_ARG, "'x'");
    sn_ckpt_entry noname = {"", ts[1]};
    ck_assert_int_eq(sn_ckpt_write(ctx, prefix, 1, &noname), SN_ERR_INVALID_ARG);
    ASSERT_FAILS(ctx, sn_ckpt_open(ctx, "/nonexistent/model.ckpt-1", &ck), SN_ERR_NOT_FOUND,
                 "/nonexistent/model.ckpt-1");
    for (int i = 0; i < N; i++) sn_tensor_free(ts[i]);
    ct_rmdir(dir);
    sn_ctx_free(ctx);
} END_TEST

/* ---- V1 --------------------------------------------------------------------------------- */

START_TEST(test_v1_crafted) {   /* _i: 0 raw blocks, 1 snappy */
    sn_ctx *ctx = tu_ctx();
    char *dir = ct_tmpdir(), path[PATH_MAX], p2[PATH_MAX];
    enum { BIG = 300000 };
    float *big = malloc(BIG * sizeof *big), emb[10 * 6], cube[4 * 6 * 5];
    for (int i = 0; i < BIG; i++) big[i] = (float)(i % 50) * 0.25f;   /* compressible */
    tu_fill(emb, 60, 1);
    tu_fill(cube, 120, 2);
    int32_t ints[5] = {-7, 0, 2147483647, -2147483647 - 1, 42};
    int64_t longs[3] = {-1, INT64_MAX, INT64_MIN}, step = 99;
    uint8_t px[6] = {0, 1, 127, 128, 255, 9}, flags[4] = {1, 0, 0, 1};
    ct_v1_tensor t[] = {
        {"InceptionV3/Conv2d_1a_3x3/weights", SN__DT_FLOAT, 2, {600, 500}, big, 0, {{0}}, {{0}}},
        {"emb", SN__DT_FLOAT, 2, {10, 6}, emb, 3,
         {{0, 0}, {4, 0}, {7, 0}}, {{4, -1}, {3, -1}, {3, -1}}},
        {"cube", SN__DT_FLOAT, 3, {4, 6, 5}, cube, 4,   /* both dims split */
         {{0, 0, 0}, {0, 2, 0}, {2, 0, 0}, {2, 3, 0}}, {{2, 2, -1}, {2, 4, -1}, {2, 3, -1},
                                                         {2, 3, -1}}},
        {"ints", SN__DT_INT32, 1, {5}, ints, 0, {{0}}, {{0}}},
        {"longs", SN__DT_INT64, 1, {3}, longs, 0, {{0}}, {{0}}},
        {"global_step", SN__DT_INT64, 0, {0}, &step, 0, {{0}}, {{0}}},
        {"px", SN__DT_UINT8, 2, {2, 3}, px, 0, {{0}}, {{0}}},
        {"flags", SN__DT_BOOL, 1, {4}, flags, 0, {{0}}, {{0}}},
    };
    enum { N = sizeof t / sizeof *t };
    snprintf(path, sizeof path, "%s/model.ckpt", dir);
    ct_v1_write(ctx, path, _i, N, t);
    size_t flen;
    free(ct_read(path, &flen));
    if (_i) ck_assert_uint_lt(flen, BIG);   /* the big tensor went through snappy */

    for (int sharded = 0; sharded < 2; sharded++) {
        if (sharded) {   /* the same tensors over two files, as Saver(sharded=True) */
            snprintf(path, sizeof path, "%s/s.ckpt-00000-of-00002", dir);
            snprintf(p2, sizeof p2, "%s/s.ckpt-00001-of-00002", dir);
            ct_v1_write(ctx, path, _i, 3, t);
            ct_v1_write(ctx, p2, _i, N - 3, t + 3);
            snprintf(path, sizeof path, "%s/s.ckpt", dir);
        }
        sn_ckpt *ck;
        ck_assert_msg(sn_ckpt_open(ctx, path, &ck) == SN_OK, "%s", sn_ctx_errmsg(ctx));
        ck_assert_int_eq(sn_ckpt_version(ck), 1);
        ck_assert_int_eq(sn_ckpt_count(ck), N);
        for (int i = 0; i < N; i++) {
            int k = sn_ckpt_find(ck, t[i].name);
            ck_assert_int_ge(k, 0);
            sn_ckpt_info in;
            sn_ckpt_info_at(ck, k, &in);
            ck_assert_int_eq(in.rank, t[i].rank);
            ck_assert_int_eq(in.tf_dtype, t[i].dtype);
            ck_assert_int_eq(in.num_slices, t[i].n_pieces ? t[i].n_pieces : 1);
            uint8_t *buf = malloc(in.nbytes + 1);
            ck_assert_msg(sn_ckpt_read_raw(ck, t[i].name, buf, in.nbytes) == SN_OK, "%s",
                          sn_ctx_errmsg(ctx));
            ck_assert(memcmp(buf, t[i].data, in.nbytes) == 0);
            free(buf);
        }
        sn_ckpt_close(ck);
    }
    free(big);
    ct_rmdir(dir);
    sn_ctx_free(ctx);
} END_TEST

/* ---- the state file ------------------------------------------------------------------------ */

START_TEST(test_state_file) {
    sn_ctx *ctx = tu_ctx();
    char *dir = ct_tmpdir(), prefix[PATH_MAX], buf[PATH_MAX], path[PATH_MAX + 32];
    ASSERT_FAILS(ctx, sn_ckpt_latest(ctx, dir, buf, sizeof buf), SN_ERR_NOT_FOUND, "checkpoint");
    int64_t d = 3;
    sn_tensor *t = tensor_of(ctx, SN_DTYPE_F32, 1, &d, 1);
    sn_ckpt_entry e = {"v", t};
    for (int step = 100; step <= 700; step += 100) {
        snprintf(prefix, sizeof prefix, "%s/model.ckpt-%d", dir, step);
        ck_assert_int_eq(sn_ckpt_write(ctx, prefix, 1, &e), SN_OK);
        ck_assert_int_eq(sn_ckpt_state_update(ctx, dir, prefix, 3), SN_OK);
    }
    snprintf(path, sizeof path, "%s/checkpoint", dir);
    size_t len;
    char *text = (char *)ct_read(path, &len);
    text[len] = '\0';
    ck_assert_str_eq(text, "model_checkpoint_path: \"model.ckpt-700\"\n"
                           "all_model_checkpoint_paths: \"model.ckpt-500\"\n"
                           "all_model_checkpoint_paths: \"model.ckpt-600\"\n"
                           "all_model_checkpoint_paths: \"model.ckpt-700\"\n");
    free(text);
    struct stat s;
    snprintf(path, sizeof path, "%s/model.ckpt-400.index", dir);
    ck_assert_int_ne(stat(path, &s), 0);   /* beyond max_to_keep: deleted */
    snprintf(path, sizeof path, "%s/model.ckpt-400.data-00000-of-00001", dir);
    ck_assert_int_ne(stat(path, &s), 0);
    ck_assert_int_eq(sn_ckpt_latest(ctx, dir, buf, sizeof buf), SN_OK);
    snprintf(path, sizeof path, "%s/model.ckpt-700", dir);
    ck_assert_str_eq(buf, path);
    ck_assert_int_eq(sn_ckpt_latest(ctx, dir, buf, 5), SN_ERR_INVALID_ARG);
    sn_ckpt *ck;
    ck_assert_int_eq(sn_ckpt_open(ctx, dir, &ck), SN_OK);   /* a folder: its latest */
    ck_assert_str_eq(sn_ckpt_path(ck), path);
    sn_ckpt_close(ck);

    /* As TF1's Saver writes it: absolute paths (here from another machine: the folder moved),
     * newer fields, escapes, other quotes. */
    snprintf(path, sizeof path, "%s/checkpoint", dir);
    const char *tf =
        "model_checkpoint_path: \"/old/train_dir/model.ckpt-600\"\n"
        "all_model_checkpoint_paths: '/old/train_dir/model.ckpt-500'\n"
        "all_model_checkpoint_paths: \"/old/train\\137dir/model.ckpt-600\"\n"
        "all_model_checkpoint_timestamps: 1700000000.5\n"
        "last_preserved_timestamp: 1699999999.25\n";
    ct_write(path, tf, strlen(tf));
    ck_assert_int_eq(sn_ckpt_latest(ctx, dir, buf, sizeof buf), SN_OK);
    snprintf(path, sizeof path, "%s/model.ckpt-600", dir);
    ck_assert_str_eq(buf, path);
    snprintf(path, sizeof path, "%s/checkpoint", dir);
    ct_write(path, "model_checkpoint_path: \"model.ckpt-1\"\n", 38);
    ASSERT_FAILS(ctx, sn_ckpt_latest(ctx, dir, buf, sizeof buf), SN_ERR_FORMAT, "ckpt-1");
    ct_write(path, "model_checkpoint_path: \"unterminated\n", 37);
    ASSERT_FAILS(ctx, sn_ckpt_latest(ctx, dir, buf, sizeof buf), SN_ERR_FORMAT, "line 1");
    sn_tensor_free(t);
    ct_rmdir(dir);
    sn_ctx_free(ctx);
} END_TEST

/* A V1 meta that lists a tensor twice: its pieces are pooled (as TF registers every slice),
 * and with no slices at all it is refused.  The 242-byte regression file once freed the
 * pieces twice (realloc(p, 0) frees). */
START_TEST(test_v1_duplicate_tensor) {
    sn_ctx *ctx = tu_ctx();
    sn_ckpt *ck = NULL;
    ASSERT_FAILS(ctx, sn_ckpt_open(ctx, "tests/fuzz/corpus/ckpt_v1/v1-duplicate-tensor.ckpt", &ck),
                 SN_ERR_FORMAT, "lists no slices");
    char *dir = ct_tmpdir(), path[PATH_MAX];
    snprintf(path, sizeof path, "%s/v1.ckpt", dir);
    float w[12];
    tu_fill(w, 12, 5);
    ct_v1_tensor top = {"w", SN__DT_FLOAT, 2, {4, 3}, w, 1, {{0, 0}}, {{2, -1}}};
    ct_v1_tensor bottom = {"w", SN__DT_FLOAT, 2, {4, 3}, w, 1, {{2, 0}}, {{2, -1}}};
    ct_v1_tensor both[2] = {top, bottom};
    ct_v1_write(ctx, path, 0, 2, both);
    ck_assert_int_eq(sn_ckpt_open(ctx, path, &ck), SN_OK);
    ck_assert_int_eq(sn_ckpt_count(ck), 1);
    sn_tensor *t = NULL;
    ck_assert_int_eq(sn_ckpt_read(ck, "w", &t), SN_OK);
    ck_assert_mem_eq(sn_tensor_data(t), w, sizeof w);
    sn_tensor_free(t);
    sn_ckpt_close(ck);
    ct_v1_tensor middle = {"w", SN__DT_FLOAT, 2, {4, 3}, w, 1, {{1, 0}}, {{2, -1}}};
    ct_v1_tensor twice[2] = {top, middle};
    ct_v1_write(ctx, path, 0, 2, twice);
    ASSERT_FAILS(ctx, sn_ckpt_open(ctx, path, &ck), SN_ERR_FORMAT, "overlap");
    ct_rmdir(dir);
    sn_ctx_free(ctx);
} END_TEST

static void save_steps(sn_ctx *ctx, const char *dir, int from, int to, int keep) {
    int64_t d = 3;
    sn_tensor *t = tensor_of(ctx, SN_DTYPE_F32, 1, &d, 1);
    sn_ckpt_entry e = {"v", t};
    char prefix[PATH_MAX];
    for (int step = from; step <= to; step += 100) {
        snprintf(prefix, sizeof prefix, "%s/model.ckpt-%d", dir, step);
        ck_assert_int_eq(sn_ckpt_write(ctx, prefix, 1, &e), SN_OK);
        ck_assert_int_eq(sn_ckpt_state_update(ctx, dir, prefix, keep), SN_OK);
    }
    sn_tensor_free(t);
}

static int ckpt_file(const char *dir, int step) {
    char p[PATH_MAX + 64];
    struct stat sb;
    snprintf(p, sizeof p, "%s/model.ckpt-%d.index", dir, step);
    return stat(p, &sb) == 0;
}

/* A bundle of no tensors (its index holds the header alone, under the empty key): written
 * and read back.  It once added 0 to a NULL key (UB) and sorted a NULL array. */
START_TEST(test_v2_empty) {
    sn_ctx *ctx = tu_ctx();
    char *dir = ct_tmpdir(), prefix[PATH_MAX];
    snprintf(prefix, sizeof prefix, "%s/empty", dir);
    ck_assert_int_eq(sn_ckpt_write(ctx, prefix, 0, NULL), SN_OK);
    sn_ckpt *ck = NULL;
    ck_assert_int_eq(sn_ckpt_open(ctx, prefix, &ck), SN_OK);
    ck_assert_int_eq(sn_ckpt_count(ck), 0);
    ck_assert_int_eq(sn_ckpt_find(ck, "x"), -1);
    sn_ckpt_close(ck);
    ct_rmdir(dir);
    sn_ctx_free(ctx);
} END_TEST

/* A copied train folder whose state names the original's files by absolute paths (TF1):
 * the copy is resumed from its own files, and its saves never delete the original's. */
START_TEST(test_state_outside_folder) {
    sn_ctx *ctx = tu_ctx();
    char *orig = ct_tmpdir(), *copy = ct_tmpdir(), path[PATH_MAX + 32], buf[PATH_MAX];
    save_steps(ctx, orig, 100, 300, 5);
    char state[4 * PATH_MAX];
    snprintf(state, sizeof state,
             "model_checkpoint_path: \"%s/model.ckpt-300\"\n"
             "all_model_checkpoint_paths: \"%s/model.ckpt-100\"\n"
             "all_model_checkpoint_paths: \"%s/model.ckpt-200\"\n"
             "all_model_checkpoint_paths: \"%s/model.ckpt-300\"\n", orig, orig, orig, orig);
    snprintf(path, sizeof path, "%s/checkpoint", orig);
    ct_write(path, state, strlen(state));
    char cmd[3 * PATH_MAX];
    snprintf(cmd, sizeof cmd, "cp -p '%s'/* '%s'/", orig, copy);
    ck_assert_int_eq(system(cmd), 0);

    ck_assert_int_eq(sn_ckpt_latest(ctx, copy, buf, sizeof buf), SN_OK);
    snprintf(path, sizeof path, "%s/model.ckpt-300", copy);
    ck_assert_str_eq(buf, path);   /* the copy's, not the original's */
    save_steps(ctx, copy, 400, 500, 2);
    for (int step = 100; step <= 300; step += 100) {
        ck_assert_msg(ckpt_file(orig, step), "the original's model.ckpt-%d was deleted", step);
        ck_assert_msg(!ckpt_file(copy, step), "the copy's model.ckpt-%d was kept", step);
    }
    snprintf(path, sizeof path, "%s/checkpoint", copy);
    size_t len;
    char *text = (char *)ct_read(path, &len);
    text[len] = '\0';
    ck_assert_str_eq(text, "model_checkpoint_path: \"model.ckpt-500\"\n"
                           "all_model_checkpoint_paths: \"model.ckpt-400\"\n"
                           "all_model_checkpoint_paths: \"model.ckpt-500\"\n");
    free(text);

    /* Names elsewhere that the folder has no copy of: never deleted when dropped. */
    snprintf(state, sizeof state,
             "model_checkpoint_path: \"model.ckpt-500\"\n"
             "all_model_checkpoint_paths: \"%s/model.ckpt-100\"\n"
             "all_model_checkpoint_paths: \"../%s/model.ckpt-200\"\n"
             "all_model_checkpoint_paths: \"model.ckpt-500\"\n", orig, strrchr(orig, '/') + 1);
    ct_write(path, state, strlen(state));
    save_steps(ctx, copy, 600, 600, 1);
    ck_assert(ckpt_file(orig, 100) && ckpt_file(orig, 200) && ckpt_file(orig, 300));
    ck_assert(!ckpt_file(copy, 500) && ckpt_file(copy, 600));

    /* An entry that reads as a glob pattern deletes only what it names (fuzzing found
     * "model.ckpt*6" deleting model.ckpt-600's data). */
    snprintf(state, sizeof state, "model_checkpoint_path: \"model.ckpt-600\"\n"
             "all_model_checkpoint_paths: \"model.ckpt*6??\"\n"
             "all_model_checkpoint_paths: \"model.ckpt-600\"\n");
    ct_write(path, state, strlen(state));
    save_steps(ctx, copy, 700, 700, 2);
    sn_ckpt *ck;
    snprintf(buf, sizeof buf, "%s/model.ckpt-600", copy);
    ck_assert_int_eq(sn_ckpt_open(ctx, buf, &ck), SN_OK);
    sn_ckpt_close(ck);

    /* A state naming only the original's file, absent from the copy: used as TF would. */
    snprintf(state, sizeof state, "model_checkpoint_path: \"%s/model.ckpt-200\"\n", orig);
    ct_write(path, state, strlen(state));
    ck_assert_int_eq(sn_ckpt_latest(ctx, copy, buf, sizeof buf), SN_OK);
    snprintf(path, sizeof path, "%s/model.ckpt-200", orig);
    ck_assert_str_eq(buf, path);
    ct_rmdir(orig);
    ct_rmdir(copy);
    sn_ctx_free(ctx);
} END_TEST

/* A folder named relative to the working folder: its checkpoints are recorded by their
 * names in it (as TensorFlow resolves a relative entry against the folder), not as
 * "<dir>/model.ckpt-N" again, which TensorFlow would look for in dir/dir. */
START_TEST(test_state_relative_dir) {
    sn_ctx *ctx = tu_ctx();
    char *dir = ct_tmpdir(), cwd[PATH_MAX], path[PATH_MAX + 32];
    ck_assert_ptr_nonnull(getcwd(cwd, sizeof cwd));
    ck_assert_int_eq(chdir("/tmp"), 0);
    const char *rel = dir + strlen("/tmp/");
    save_steps(ctx, rel, 100, 200, 5);
    ck_assert_int_eq(chdir(cwd), 0);
    snprintf(path, sizeof path, "%s/checkpoint", dir);
    size_t len;
    char *text = (char *)ct_read(path, &len);
    text[len] = '\0';
    ck_assert_str_eq(text, "model_checkpoint_path: \"model.ckpt-200\"\n"
                           "all_model_checkpoint_paths: \"model.ckpt-100\"\n"
                           "all_model_checkpoint_paths: \"model.ckpt-200\"\n");
    free(text);
    ct_rmdir(dir);
    sn_ctx_free(ctx);
} END_TEST

/* A damaged state file is an error of sn_ckpt_latest (not "no checkpoint"); sn_ckpt_newest
 * finds the newest complete checkpoint by listing; the next update rewrites the state from
 * the folder.  Temporary files of writers that died are removed by that update. */
START_TEST(test_state_damaged) {
    sn_ctx *ctx = tu_ctx();
    char *dir = ct_tmpdir(), path[PATH_MAX + 64], buf[PATH_MAX];
    ASSERT_FAILS(ctx, sn_ckpt_newest(ctx, dir, buf, sizeof buf), SN_ERR_NOT_FOUND,
                 "no complete checkpoint");
    save_steps(ctx, dir, 100, 200, 5);
    snprintf(path, sizeof path, "%s/model.ckpt-1000.index", dir);   /* a torn index */
    ct_write(path, "\x00\x01", 2);
    snprintf(path, sizeof path, "%s/checkpoint", dir);
    ct_write(path, "model_checkpoint_path: \"model.ckpt-2", 36);
    ASSERT_FAILS(ctx, sn_ckpt_latest(ctx, dir, buf, sizeof buf), SN_ERR_FORMAT, "malformed");
    ct_write(path, "all_model_checkpoint_paths: \"model.ckpt-200\"\n", 45);
    ASSERT_FAILS(ctx, sn_ckpt_latest(ctx, dir, buf, sizeof buf), SN_ERR_FORMAT,
                 "names no model_checkpoint_path");
    ct_write(path, "\x7f" "ELF\x00\x00", 6);
    ASSERT_FAILS(ctx, sn_ckpt_latest(ctx, dir, buf, sizeof buf), SN_ERR_FORMAT, "not a text");
    ck_assert_int_eq(sn_ckpt_newest(ctx, dir, buf, sizeof buf), SN_OK);
    snprintf(path, sizeof path, "%s/model.ckpt-200", dir);
    ck_assert_str_eq(buf, path);

    /* stale temporary files: of a process that is gone, of a live one, and not ours */
    pid_t dead = fork();
    if (dead == 0) _exit(0);
    waitpid(dead, NULL, 0);
    const char *names[] = {"checkpoint.tmp%ld", "model.ckpt-300.index.tmp%ld",
                           "model.ckpt-300.data-00000-of-00001.tmp%ld", "notes.tmp%ld"};
    long pids[] = {(long)dead, (long)dead, (long)getppid(), (long)dead};
    for (int i = 0; i < 4; i++) {
        char name[128];
        snprintf(name, sizeof name, names[i], pids[i]);
        snprintf(path, sizeof path, "%s/%s", dir, name);
        ct_write(path, "x", 1);
    }
    save_steps(ctx, dir, 300, 300, 5);
    snprintf(path, sizeof path, "%s/checkpoint", dir);
    size_t len;
    char *text = (char *)ct_read(path, &len);
    text[len] = '\0';
    ck_assert_str_eq(text, "model_checkpoint_path: \"model.ckpt-300\"\n"
                           "all_model_checkpoint_paths: \"model.ckpt-100\"\n"
                           "all_model_checkpoint_paths: \"model.ckpt-200\"\n"
                           "all_model_checkpoint_paths: \"model.ckpt-1000\"\n"
                           "all_model_checkpoint_paths: \"model.ckpt-300\"\n");
    free(text);
    struct stat sb;
    for (int i = 0; i < 4; i++) {
        char name[128];
        snprintf(name, sizeof name, names[i], pids[i]);
        snprintf(path, sizeof path, "%s/%s", dir, name);
        bool gone = stat(path, &sb) != 0;
        ck_assert_msg(gone == (i < 2), "%s: %s", name, gone ? "removed" : "kept");
    }
    ct_rmdir(dir);
    sn_ctx_free(ctx);
} END_TEST

/* ---- restore rules ------------------------------------------------------------------------ */

/* images (N,8,8,1) -> net/conv1 -> net/conv2 -> flatten -> net/logits (classes);
 * extra adds net/extra/{weights,biases} (a head the checkpoint lacks) and an optimizer slot
 * net/conv1/weights/Momentum (a variable that is not a model variable). */
static sn_net *small_net(sn_ctx *ctx, sn_graph **g, int classes, int extra) {
    ck_assert_int_eq(sn_graph_new(ctx, g), SN_OK);
    int64_t in[4] = {SN_BATCH, 8, 8, 1};
    sn_node x = sn_input(*g, "images", SN_DTYPE_F32, 4, in);
    sn_scope_push(*g, "net");
    x = sn_conv2d(*g, x, 4, 3, 3, 2, "conv1");
    x = sn_conv2d(*g, x, 4, 3, 3, 2, "conv2");
    x = sn_fully_connected(*g, sn_op_flatten(*g, x), classes, "logits");
    if (extra) {
        sn_fully_connected(*g, x, 3, "extra");
        int64_t wd[4] = {3, 3, 1, 4};
        sn_scope_push(*g, "conv1/weights");
        sn_variable(*g, "Momentum", 4, wd, NULL, SN_VAR_GLOBAL);
        sn_scope_pop(*g);
    }
    sn_scope_pop(*g);
    ck_assert_msg(sn_graph_status(*g) == SN_OK, "%s", sn_graph_errmsg(*g));
    sn_compile_params p = sn_compile_params_default();
    p.batch_size = 2;
    sn_net *net;
    ck_assert_msg(sn_net_compile(*g, &p, &net) == SN_OK, "%s", sn_ctx_errmsg(ctx));
    return net;
}

static bool var_equal(sn_net *a, sn_net *b, const char *name) {
    sn_tensor *x, *y;
    ck_assert_int_eq(sn_net_get_var(a, name, &x), SN_OK);
    ck_assert_int_eq(sn_net_get_var(b, name, &y), SN_OK);
    bool same = sn_tensor_nbytes(x) == sn_tensor_nbytes(y) &&
                memcmp(sn_tensor_data(x), sn_tensor_data(y), sn_tensor_nbytes(x)) == 0;
    sn_tensor_free(x);
    sn_tensor_free(y);
    return same;
}

static bool in_list(char **l, int n, const char *s) {
    for (int i = 0; i < n; i++)
        if (!strcmp(l[i], s)) return true;
    return false;
}

/* use_moving_averages: a variable takes "<name>/ExponentialMovingAverage" where the
 * checkpoint has one, else "<name>"; the plain tensors of averaged variables are unused. */
START_TEST(test_restore_moving_averages) {
    sn_ctx *ctx = tu_ctx();
    char *dir = ct_tmpdir(), prefix[PATH_MAX];
    sn_graph *ga, *gb;
    sn_net *a = small_net(ctx, &ga, 10, 0), *b = small_net(ctx, &gb, 10, 0);
    /* Averages for conv1 only: their value is the variable's + 1. */
    sn_tensor *w = NULL, *bias = NULL;
    ck_assert_int_eq(sn_net_get_var(a, "net/conv1/weights", &w), SN_OK);
    ck_assert_int_eq(sn_net_get_var(a, "net/conv1/biases", &bias), SN_OK);
    float *f = sn_tensor_data(w);
    for (int64_t i = 0; i < sn_tensor_numel(w); i++) f[i] += 1.0f;
    f = sn_tensor_data(bias);
    for (int64_t i = 0; i < sn_tensor_numel(bias); i++) f[i] += 1.0f;
    sn_ckpt_entry extra[2] = {{"net/conv1/weights/ExponentialMovingAverage", w},
                              {"net/conv1/biases/ExponentialMovingAverage", bias}};
    sn_save_params sp = sn_save_params_default();
    sp.n_extra = 2;
    sp.extra = extra;
    ck_assert_int_eq(sn_net_save(a, dir, 3, &sp, prefix, sizeof prefix), SN_OK);
    sn_restore_params p = sn_restore_params_default();
    p.use_moving_averages = 1;
    sn_restore_report r;
    ck_assert_msg(sn_net_restore(b, dir, &p, &r) == SN_OK, "%s", sn_ctx_errmsg(ctx));
    ck_assert_int_eq(r.n_restored, sn_graph_num_vars(gb));
    ck_assert(in_list(r.unused, r.n_unused, "net/conv1/weights"));
    ck_assert(!in_list(r.unused, r.n_unused, "net/conv2/weights"));
    sn_restore_report_free(&r);
    sn_tensor *got = NULL;
    ck_assert_int_eq(sn_net_get_var(b, "net/conv1/weights", &got), SN_OK);
    ck_assert(!memcmp(sn_tensor_data(got), sn_tensor_data(w), sn_tensor_nbytes(w)));
    sn_tensor_free(got);
    ck_assert(!var_equal(a, b, "net/conv1/weights"));
    ck_assert(var_equal(a, b, "net/conv2/weights") && var_equal(a, b, "net/logits/biases"));
    p.use_moving_averages = 0;   /* the plain values again */
    ck_assert_int_eq(sn_net_restore(b, prefix, &p, NULL), SN_OK);
    ck_assert(var_equal(a, b, "net/conv1/weights"));
    sn_tensor_free(w);
    sn_tensor_free(bias);
    sn_net_free(a);
    sn_net_free(b);
    sn_graph_free(ga);
    sn_graph_free(gb);
    ct_rmdir(dir);
    sn_ctx_free(ctx);
}
END_TEST

START_TEST(test_restore_rules) {
    sn_ctx *ctx = tu_ctx();
    char *dir = ct_tmpdir(), prefix[PATH_MAX];
    sn_graph *ga, *gb;
    sn_net *a = small_net(ctx, &ga, 10, 0);
    /* Distinct values in a, so that a restore is visible. */
    for (int v = 0; v < sn_graph_num_vars(ga); v++) {
        sn_var_info vi;
        sn_graph_var(ga, v, &vi);
        sn_tensor *t = tensor_of(ctx, SN_DTYPE_F32, vi.rank, vi.dims, 100 + (uint64_t)v);
        float *f = sn_tensor_data(t);
        tu_fill(f, (size_t)sn_tensor_numel(t), 100 + (uint64_t)v);
        ck_assert_int_eq(sn_net_set_var(a, vi.name, t), SN_OK);
        sn_tensor_free(t);
    }
    ck_assert_int_eq(sn_net_save(a, dir, 12, NULL, prefix, sizeof prefix), SN_OK);
    ck_assert(strstr(prefix, "/model.ckpt-12") != NULL);

    sn_net *b = small_net(ctx, &gb, 5, 1);   /* new head: 5 classes, plus net/extra */
    sn_restore_report r;
    sn_restore_params p = sn_restore_params_default();
    ASSERT_FAILS(ctx, sn_net_restore(b, dir, &p, &r), SN_ERR_SHAPE, "net/logits/");
    ck_assert(strstr(sn_ctx_errmsg(ctx), "[16,5]") && strstr(sn_ctx_errmsg(ctx), "[16,10]"));
    ck_assert_int_eq(r.n_mismatched, 2);
    ck_assert_int_eq(r.n_restored, 0);
    ck_assert(!var_equal(a, b, "net/conv1/weights"));   /* nothing changed */
    sn_restore_report_free(&r);

    p.exclude_scopes = " net/logits ,, net/extra/";   /* the fine-tuning warm start */
    p.model_vars_only = 1;
    ck_assert_msg(sn_net_restore(b, dir, &p, &r) == SN_OK, "%s", sn_ctx_errmsg(ctx));
    ck_assert_int_eq(r.n_restored, 4);
    ck_assert_int_eq(r.n_excluded, 5);
    ck_assert(in_list(r.excluded, r.n_excluded, "net/conv1/weights/Momentum"));
    ck_assert_int_eq(r.n_missing, 0);
    ck_assert_int_eq(r.n_unused, 1);
    ck_assert_str_eq(r.unused[0], "global_step");
    ck_assert(in_list(r.excluded, r.n_excluded, "net/extra/weights"));
    ck_assert_str_eq(r.checkpoint, prefix);
    ck_assert(var_equal(a, b, "net/conv1/weights") && var_equal(a, b, "net/conv2/biases"));
    sn_restore_report_free(&r);

    p.exclude_scopes = "net/logits";   /* net/extra is now missing */
    ASSERT_FAILS(ctx, sn_net_restore(b, prefix, &p, &r), SN_ERR_NOT_FOUND, "net/extra/");
    ck_assert_int_eq(r.n_missing, 2);
    sn_restore_report_free(&r);
    p.ignore_missing_vars = 1;
    ck_assert_int_eq(sn_net_restore(b, prefix, &p, &r), SN_OK);
    ck_assert(in_list(r.missing, r.n_missing, "net/extra/biases"));
    ck_assert_int_eq(r.n_restored, 4);
    sn_restore_report_free(&r);
    p.exclude_scopes = "net/logits,net/extra";   /* all variables: the slot is missing */
    p.ignore_missing_vars = 0;
    p.model_vars_only = 0;
    ASSERT_FAILS(ctx, sn_net_restore(b, prefix, &p, &r), SN_ERR_NOT_FOUND, "Momentum");
    ck_assert_int_eq(r.n_missing, 1);
    sn_restore_report_free(&r);

    /* Same net: everything restores; the report may be NULL. */
    sn_graph *gc;
    sn_net *c = small_net(ctx, &gc, 10, 0);
    ck_assert_int_eq(sn_net_restore(c, dir, NULL, NULL), SN_OK);
    for (int v = 0; v < sn_graph_num_vars(gc); v++) {
        sn_var_info vi;
        sn_graph_var(gc, v, &vi);
        ck_assert(var_equal(a, c, vi.name));
    }
    ck_assert_int_eq(sn_net_restore(c, "/nonexistent", NULL, NULL), SN_ERR_NOT_FOUND);
    sn_ckpt *ck;
    ck_assert_int_eq(sn_ckpt_open(ctx, prefix, &ck), SN_OK);
    sn_tensor *gs;
    ck_assert_int_eq(sn_ckpt_read(ck, "global_step", &gs), SN_OK);
    ck_assert(sn_tensor_rank(gs) == 0 && *(int64_t *)sn_tensor_data(gs) == 12);
    sn_tensor_free(gs);
    sn_ckpt_close(ck);
    sn_net_free(a); sn_net_free(b); sn_net_free(c);
    sn_graph_free(ga); sn_graph_free(gb); sn_graph_free(gc);
    ct_rmdir(dir);
    sn_ctx_free(ctx);
} END_TEST

/* ---- bad input ---------------------------------------------------------------------------- */

typedef struct forged {
    const char *name;
    int dtype, rank;
    int64_t dims[10];
    int shard;
    int64_t offset, size;
} forged;

/* An index of forged entries over a data file of `data_len` zero bytes. */
static void forge(sn_ctx *ctx, const char *prefix, int num_shards, int big_endian, int n,
                  const forged *f, size_t data_len) {
    sn__table_builder *tb;
    ck_assert_int_eq(sn__table_builder_new(ctx, 0, &tb), SN_OK);
    Snckpt__BundleHeaderProto h = SNCKPT__BUNDLE_HEADER_PROTO__INIT;
    h.num_shards = num_shards;
    h.endianness = big_endian;
    sn__buf v = {0};
    ct_pack(&v, &h.base);
    ck_assert_int_eq(sn__table_builder_add(tb, "", 0, v.p, v.n), SN_OK);
    for (int i = 0; i < n; i++) {
        Snckpt__TensorShapeProto__Dim dims[10], *dp[10];
        for (int d = 0; d < f[i].rank; d++) {
            snckpt__tensor_shape_proto__dim__init(&dims[d]);
            dims[d].size = f[i].dims[d];
            dp[d] = &dims[d];
        }
        Snckpt__TensorShapeProto shape = SNCKPT__TENSOR_SHAPE_PROTO__INIT;
        shape.n_dim = (size_t)f[i].rank;
        shape.dim = dp;
        Snckpt__BundleEntryProto e = SNCKPT__BUNDLE_ENTRY_PROTO__INIT;
        e.dtype = f[i].dtype;
        e.shape = &shape;
        e.shard_id = f[i].shard;
        e.offset = f[i].offset;
        e.size = f[i].size;
        e.crc32c = sn__crc32c_mask(sn__crc32c("\0\0\0\0\0\0\0\0", 8));
        ct_pack(&v, &e.base);
        ck_assert_int_eq(sn__table_builder_add(tb, f[i].name, strlen(f[i].name), v.p, v.n),
                         SN_OK);
    }
    const uint8_t *file;
    size_t len;
    ck_assert_int_eq(sn__table_builder_finish(tb, &file, &len), SN_OK);
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s.index", prefix);
    ct_write(path, file, len);
    for (int s = 0; s < (num_shards < 3 ? num_shards : 3); s++) {
        snprintf(path, sizeof path, "%s.data-%05d-of-%05d", prefix, s, num_shards);
        void *z = calloc(1, data_len + 1);
        ct_write(path, z, data_len);
        free(z);
    }
    sn__buf_free(&v);
    sn__table_builder_free(tb);
}

START_TEST(test_bad_v2_files) {
    sn_ctx *ctx = tu_ctx();
    char *dir = ct_tmpdir(), prefix[PATH_MAX], idx[PATH_MAX + 32], data[PATH_MAX + 32];
    snprintf(prefix, sizeof prefix, "%s/m", dir);
    snprintf(idx, sizeof idx, "%s.index", prefix);
    snprintf(data, sizeof data, "%s.data-00000-of-00001", prefix);
    static const int64_t d4 = 4, d2 = 2;
    sn_tensor *a = tensor_of(ctx, SN_DTYPE_F32, 1, &d4, 1), *b = tensor_of(ctx, SN_DTYPE_I64, 1,
                                                                             &d2, 2);
    sn_ckpt_entry e[2] = {{"a", a}, {"b", b}};
    ck_assert_int_eq(sn_ckpt_write(ctx, prefix, 2, e), SN_OK);
    size_t ilen, dlen;
    uint8_t *index = ct_read(idx, &ilen), *bytes = ct_read(data, &dlen);
    sn_ckpt *ck = NULL;

    ct_write(idx, index, 20);                            /* truncated index */
    ASSERT_FAILS(ctx, sn_ckpt_open(ctx, prefix, &ck), SN_ERR_FORMAT, "m.index");
    ct_write(idx, index, ilen - 1);
    ASSERT_FAILS(ctx, sn_ckpt_open(ctx, prefix, &ck), SN_ERR_FORMAT, "magic");
    index[6] ^= 0x10;                                    /* a flipped byte in the data block */
    ct_write(idx, index, ilen);
    ASSERT_FAILS(ctx, sn_ckpt_open(ctx, prefix, &ck), SN_ERR_FORMAT, "checksum");
    index[6] ^= 0x10;
    ct_write(idx, index, ilen);
    ct_write(data, bytes, dlen - 3);                     /* truncated data */
    ASSERT_FAILS(ctx, sn_ckpt_open(ctx, prefix, &ck), SN_ERR_FORMAT, "data-00000-of-00001");
    ck_assert(strstr(sn_ctx_errmsg(ctx), "'b'") != NULL);
    bytes[17] ^= 1;                                      /* a flipped byte in b's data */
    ct_write(data, bytes, dlen);
    ck_assert_int_eq(sn_ckpt_open(ctx, prefix, &ck), SN_OK);
    sn_tensor *t = NULL;
    ck_assert_int_eq(sn_ckpt_read(ck, "a", &t), SN_OK);
    sn_tensor_free(t);
    ASSERT_FAILS(ctx, sn_ckpt_read(ck, "b", &t), SN_ERR_FORMAT, "checksum mismatch");
    ck_assert(t == NULL && strstr(sn_ctx_errmsg(ctx), "'b'"));
    sn_ckpt_close(ck);
    ct_write(idx, "not a table at all, just some text that is long enough for a footer", 68);
    ASSERT_FAILS(ctx, sn_ckpt_open(ctx, prefix, &ck), SN_ERR_FORMAT, "magic");

    /* Forged entries.  Each must fail at open (or read) without allocating what it claims. */
    static const struct { forged f; sn_status want; const char *needle; } cases[] = {
        {{"huge", 1, 1, {(int64_t)1 << 40}, 0, 0, (int64_t)4 << 40}, SN_ERR_FORMAT, "huge"},
        {{"huge2", 1, 2, {(int64_t)1 << 62, 4}, 0, 0, 16}, SN_ERR_FORMAT, "overflow"},
        {{"neg", 1, 2, {3, -2}, 0, 0, 8}, SN_ERR_FORMAT, "-2"},
        {{"sizes", 1, 1, {2}, 0, 0, 12}, SN_ERR_FORMAT, "12 bytes"},
        {{"past", 1, 1, {2}, 0, 60, 8}, SN_ERR_FORMAT, "[60, 68)"},
        {{"negoff", 1, 1, {2}, 0, -8, 8}, SN_ERR_FORMAT, "negoff"},
        {{"shard", 1, 1, {2}, 5, 0, 8}, SN_ERR_FORMAT, "shard 5"},
        {{"rank9", 1, 9, {1, 1, 1, 1, 1, 1, 1, 1, 1}, 0, 0, 4}, SN_ERR_UNSUPPORTED, "rank 9"},
        {{"str", 7, 1, {100}, 0, 0, 50}, SN_ERR_FORMAT, "str"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        forge(ctx, prefix, 1, 0, 1, &cases[i].f, 64);
        ASSERT_FAILS(ctx, sn_ckpt_open(ctx, prefix, &ck), cases[i].want, cases[i].needle);
    }
    forged unknown = {"odd", 77, 1, {8}, 0, 0, 8};       /* listed, but unreadable */
    forge(ctx, prefix, 1, 0, 1, &unknown, 64);
    ck_assert_int_eq(sn_ckpt_open(ctx, prefix, &ck), SN_OK);
    sn_ckpt_info in;
    sn_ckpt_info_at(ck, 0, &in);
    ck_assert_str_eq(in.dtype_name, "unknown");
    ck_assert(!in.has_sn_dtype);
    uint8_t raw[8];
    ASSERT_FAILS(ctx, sn_ckpt_read_raw(ck, "odd", raw, 8), SN_ERR_FORMAT, "unknown dtype 77");
    ASSERT_FAILS(ctx, sn_ckpt_read(ck, "odd", &t), SN_ERR_UNSUPPORTED, "odd");
    sn_ckpt_close(ck);
    forged ok = {"x", 1, 1, {2}, 0, 0, 8};
    forge(ctx, prefix, 0, 0, 1, &ok, 64);
    ASSERT_FAILS(ctx, sn_ckpt_open(ctx, prefix, &ck), SN_ERR_FORMAT, "0 data shards");
    forge(ctx, prefix, 1, 1, 1, &ok, 64);
    ASSERT_FAILS(ctx, sn_ckpt_open(ctx, prefix, &ck), SN_ERR_UNSUPPORTED, "big-endian");
    forge(ctx, prefix, 2000000000, 0, 1, &ok, 64);
    ASSERT_FAILS(ctx, sn_ckpt_open(ctx, prefix, &ck), SN_ERR_FORMAT, "2000000000");
    forge(ctx, prefix, 4, 0, 1, &ok, 64);                 /* shard 3 of 4 is missing... */
    ck_assert_int_eq(sn_ckpt_open(ctx, prefix, &ck), SN_OK);   /* ...but nothing uses it */
    sn_ckpt_close(ck);
    ok.shard = 3;
    forge(ctx, prefix, 4, 0, 1, &ok, 64);
    ASSERT_FAILS(ctx, sn_ckpt_open(ctx, prefix, &ck), SN_ERR_NOT_FOUND, "data-00003-of-00004");

    /* A table whose only block is valid snappy by its CRC but not by its contents. */
    sn__table_builder *tb;
    ck_assert_int_eq(sn__table_builder_new(ctx, 1, &tb), SN_OK);
    char k[40], val[400];
    memset(val, 'z', sizeof val);
    for (int i = 0; i < 20; i++) {
        snprintf(k, sizeof k, "key%03d", i);
        ck_assert_int_eq(sn__table_builder_add(tb, k, 6, val, sizeof val), SN_OK);
    }
    const uint8_t *file;
    size_t flen;
    ck_assert_int_eq(sn__table_builder_finish(tb, &file, &flen), SN_OK);
    uint8_t *bad = malloc(flen);
    memcpy(bad, file, flen);
    sn__table_builder_free(tb);
    size_t bsize = 0;
    sn__table *tab;
    snprintf(data, sizeof data, "%s/snappy.table", dir);
    for (size_t i = 0; i + 5 <= flen; i++)    /* the first block's trailer has type 1 */
        if (bad[i] == 1 && sn__crc32c_unmask(sn__load32(bad + i + 1)) ==
                               sn__crc32c_extend(sn__crc32c(bad, i), bad + i, 1)) {
            bsize = i;
            break;
        }
    ck_assert_uint_gt(bsize, 4);
    bad[0] ^= 1;                              /* the uncompressed length, then fix the CRC */
    uint32_t crc = sn__crc32c_mask(sn__crc32c_extend(sn__crc32c(bad, bsize), bad + bsize, 1));
    for (int i = 0; i < 4; i++) bad[bsize + 1 + i] = (uint8_t)(crc >> (8 * i));
    ct_write(data, bad, flen);
    ck_assert_int_eq(sn__table_open(ctx, data, &tab), SN_OK);
    bool found;
    const uint8_t *vp;
    size_t vl;
    ASSERT_FAILS(ctx, sn__table_get(tab, "key000", 6, &found, &vp, &vl), SN_ERR_FORMAT, "snappy");
    sn__table_close(tab);
    free(bad);
    free(index);
    free(bytes);
    sn_tensor_free(a);
    sn_tensor_free(b);
    ct_rmdir(dir);
    sn_ctx_free(ctx);
} END_TEST

START_TEST(test_bad_v1_files) {
    sn_ctx *ctx = tu_ctx();
    char *dir = ct_tmpdir(), path[PATH_MAX];
    snprintf(path, sizeof path, "%s/v1.ckpt", dir);
    float emb[24];   /* room for the slice that lies outside the 4x3 shape */
    tu_fill(emb, 24, 3);
    ct_v1_tensor t = {"emb", SN__DT_FLOAT, 2, {4, 3}, emb, 2, {{0, 0}, {2, 0}}, {{2, -1}, {2, -1}}};
    ct_v1_write(ctx, path, 0, 1, &t);
    size_t len;
    uint8_t *f = ct_read(path, &len);
    sn_ckpt *ck;
    f[len / 3] ^= 4;                                     /* a flipped byte */
    ct_write(path, f, len);
    ck_assert_int_ne(sn_ckpt_open(ctx, path, &ck), SN_OK);
    ck_assert(strstr(sn_ctx_errmsg(ctx), "v1.ckpt") != NULL);
    free(f);

    ct_v1_tensor overlap = t;                            /* slices overlap */
    overlap.start[1][0] = 1;
    overlap.len[1][0] = 2;
    overlap.dims[0] = 3;
    ct_v1_write(ctx, path, 0, 1, &overlap);
    ASSERT_FAILS(ctx, sn_ckpt_open(ctx, path, &ck), SN_ERR_FORMAT, "overlap");
    ct_v1_tensor gap = t;                                /* a slice missing: rows 2..3 */
    gap.n_pieces = 1;
    ct_v1_write(ctx, path, 0, 1, &gap);
    ASSERT_FAILS(ctx, sn_ckpt_open(ctx, path, &ck), SN_ERR_FORMAT, "cover 6 of its 12");
    ct_v1_tensor outside = t;                            /* beyond the shape */
    outside.start[1][0] = 3;
    ct_v1_write(ctx, path, 0, 1, &outside);
    ASSERT_FAILS(ctx, sn_ckpt_open(ctx, path, &ck), SN_ERR_FORMAT, "outside its shape");

    /* A meta that claims more than the file holds: refused before any allocation. */
    Snckpt__TensorShapeProto__Dim d[2] = {SNCKPT__TENSOR_SHAPE_PROTO__DIM__INIT,
                                          SNCKPT__TENSOR_SHAPE_PROTO__DIM__INIT};
    Snckpt__TensorShapeProto__Dim *dp[2] = {&d[0], &d[1]};
    d[0].size = (int64_t)1 << 30;
    d[1].size = (int64_t)1 << 20;
    Snckpt__TensorShapeProto shape = SNCKPT__TENSOR_SHAPE_PROTO__INIT;
    shape.n_dim = 2;
    shape.dim = dp;
    Snckpt__TensorSliceProto__Extent ex[2] = {SNCKPT__TENSOR_SLICE_PROTO__EXTENT__INIT,
                                              SNCKPT__TENSOR_SLICE_PROTO__EXTENT__INIT};
    Snckpt__TensorSliceProto__Extent *exp_[2] = {&ex[0], &ex[1]};
    Snckpt__TensorSliceProto full = SNCKPT__TENSOR_SLICE_PROTO__INIT, *fullp = &full;
    full.n_extent = 2;
    full.extent = exp_;
    Snckpt__SavedSliceMeta sm = SNCKPT__SAVED_SLICE_META__INIT, *smp = &sm;
    sm.name = "liar";
    sm.shape = &shape;
    sm.type = SN__DT_FLOAT;
    sm.n_slice = 1;
    sm.slice = &fullp;
    Snckpt__SavedTensorSliceMeta meta = SNCKPT__SAVED_TENSOR_SLICE_META__INIT;
    meta.n_tensor = 1;
    meta.tensor = &smp;
    Snckpt__SavedTensorSlices sts = SNCKPT__SAVED_TENSOR_SLICES__INIT;
    sts.meta = &meta;
    sn__buf v = {0};
    ct_pack(&v, &sts.base);
    sn__table_builder *tb;
    ck_assert_int_eq(sn__table_builder_new(ctx, 0, &tb), SN_OK);
    ck_assert_int_eq(sn__table_builder_add(tb, "", 0, v.p, v.n), SN_OK);
    const uint8_t *file;
    ck_assert_int_eq(sn__table_builder_finish(tb, &file, &len), SN_OK);
    ct_write(path, file, len);
    sn__table_builder_free(tb);
    sn__buf_free(&v);
    ASSERT_FAILS(ctx, sn_ckpt_open(ctx, path, &ck), SN_ERR_FORMAT, "'liar' declares");
    sn_ckpt *none;
    ct_write(path, "short", 5);
    ASSERT_FAILS(ctx, sn_ckpt_open(ctx, path, &none), SN_ERR_FORMAT, "too short");
    ct_rmdir(dir);
    sn_ctx_free(ctx);
} END_TEST

/* The blocks of a table file (data blocks, metaindex, index), from its footer and index. */
static int table_blocks(const uint8_t *f, size_t len, uint64_t *off, uint64_t *size, int max) {
    const uint8_t *p = f + len - 48, *end = f + len - 8;
    uint64_t mo, ms, io, is;
    p = sn__get_varint(p, end, 10, &mo);
    p = sn__get_varint(p, end, 10, &ms);
    p = sn__get_varint(p, end, 10, &io);
    p = sn__get_varint(p, end, 10, &is);
    ck_assert_ptr_nonnull(p);
    int n = 0;
    off[n] = mo; size[n++] = ms;
    off[n] = io; size[n++] = is;
    uint32_t nrest = sn__load32(f + io + is - 4);
    const uint8_t *q = f + io, *qe = f + io + is - 4 - 4 * nrest;
    while (q < qe && n < max) {   /* index entries: restart interval 1, shared = 0 */
        uint64_t sh, ns, vl, bo, bs;
        q = sn__get_varint(q, qe, 5, &sh);
        q = sn__get_varint(q, qe, 5, &ns);
        q = sn__get_varint(q, qe, 5, &vl);
        const uint8_t *v = q + ns;
        v = sn__get_varint(v, qe, 10, &bo);
        sn__get_varint(v, qe, 10, &bs);
        off[n] = bo; size[n++] = bs;
        q += ns + vl;
    }
    return n;
}

/* Opens and reads everything; any status is fine, a crash or a sanitizer report is not. */
static void read_all(sn_ctx *ctx, const char *path) {
    sn_ckpt *ck;
    if (sn_ckpt_open(ctx, path, &ck) != SN_OK) return;
    for (int i = 0; i < sn_ckpt_count(ck); i++) {
        sn_ckpt_info in;
        sn_ckpt_info_at(ck, i, &in);
        void *buf = malloc(in.nbytes + 1);
        sn_ckpt_read_raw(ck, in.name, buf, in.nbytes);
        free(buf);
    }
    sn_ckpt_close(ck);
}

/* Random damage INSIDE blocks, with their CRCs then recomputed, so that the parsers (table
 * entries, protobufs, V1 records, shapes, slices) see malformed content, not a CRC error. */
START_TEST(test_mutated_blocks) {
    sn_ctx *ctx = tu_ctx();
    char *dir = ct_tmpdir(), v1[PATH_MAX], prefix[PATH_MAX], idx[PATH_MAX + 16];
    snprintf(v1, sizeof v1, "%s/v1.ckpt", dir);
    snprintf(prefix, sizeof prefix, "%s/v2", dir);
    snprintf(idx, sizeof idx, "%s.index", prefix);
    float emb[60];
    int64_t longs[3] = {1, -2, 3};
    tu_fill(emb, 60, 5);
    ct_v1_tensor t[2] = {
        {"emb", SN__DT_FLOAT, 2, {10, 6}, emb, 2, {{0, 0}, {5, 0}}, {{5, -1}, {5, -1}}},
        {"longs", SN__DT_INT64, 1, {3}, longs, 0, {{0}}, {{0}}}};
    ct_v1_write(ctx, v1, 0, 2, t);
    static const int64_t d6 = 6;
    sn_tensor *a = tensor_of(ctx, SN_DTYPE_F32, 1, &d6, 1), *b = tensor_of(ctx, SN_DTYPE_I64, 0,
                                                                             NULL, 2);
    sn_ckpt_entry e[2] = {{"a", a}, {"b", b}};
    ck_assert_int_eq(sn_ckpt_write(ctx, prefix, 2, e), SN_OK);
    const char *files[2] = {v1, idx};
    uint64_t seed = 12345;
    for (int f = 0; f < 2; f++) {
        size_t len;
        uint8_t *orig = ct_read(files[f], &len), *m = malloc(len);
        uint64_t off[64], size[64];
        int nb = table_blocks(orig, len, off, size, 64);
        for (int iter = 0; iter < 400; iter++) {
            memcpy(m, orig, len);
            int blk = (int)(tu_rand(&seed) * 0.5f * (float)nb + 0.5f * (float)nb) % nb;
            if (size[blk] == 0) continue;
            int flips = 1 + iter % 4;
            for (int k = 0; k < flips; k++) {
                size_t at = (size_t)off[blk] +
                            (size_t)((tu_rand(&seed) + 1.0f) * 0.5f * (float)size[blk]) % size[blk];
                m[at] = iter % 3 == 0 ? (uint8_t)(m[at] ^ (1u << (iter % 8)))
                                      : (uint8_t)((tu_rand(&seed) + 1.0f) * 128.0f);
            }
            uint8_t type = m[off[blk] + size[blk]];
            uint32_t c = sn__crc32c_mask(sn__crc32c_extend(sn__crc32c(m + off[blk], size[blk]),
                                                           &type, 1));
            for (int k = 0; k < 4; k++) m[off[blk] + size[blk] + 1 + k] = (uint8_t)(c >> (8 * k));
            ct_write(files[f], m, len);
            read_all(ctx, f == 0 ? v1 : prefix);
        }
        ct_write(files[f], orig, len);
        free(orig);
        free(m);
    }
    sn_tensor_free(a);
    sn_tensor_free(b);
    ct_rmdir(dir);
    sn_ctx_free(ctx);
} END_TEST

Suite *suite_ckpt(void) {
    Suite *s = suite_create("ckpt");
    TCase *tc = tcase_create("ckpt");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_table_roundtrip, 0, 2);
    tcase_add_test(tc, test_ordered_code_vectors);
    tcase_add_test(tc, test_spec_bytes);
    tcase_add_test(tc, test_v2_roundtrip);
    tcase_add_loop_test(tc, test_v1_crafted, 0, 2);
    tcase_add_test(tc, test_state_file);
    tcase_add_test(tc, test_state_outside_folder);
    tcase_add_test(tc, test_state_relative_dir);
    tcase_add_test(tc, test_state_damaged);
    tcase_add_test(tc, test_v1_duplicate_tensor);
    tcase_add_test(tc, test_v2_empty);
    tcase_add_test(tc, test_restore_rules);
    tcase_add_test(tc, test_restore_moving_averages);
    tcase_add_test(tc, test_bad_v2_files);
    tcase_add_test(tc, test_bad_v1_files);
    tcase_add_test(tc, test_mutated_blocks);
    suite_add_tcase(s, tc);
    return s;
}
