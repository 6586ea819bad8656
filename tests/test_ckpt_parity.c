/* test_ckpt_parity.c: checkpoints against TensorFlow itself (make parity).
 *
 * Reads every checkpoint tests/reference/make_ckpt_fixtures.py had TensorFlow write (V1,
 * sharded V1, V2 with partitioned variables and strings) and compares each tensor with the
 * fixture manifest, bit for bit; rewrites a TF-written V2 bundle and compares the files
 * byte for byte; then writes checkpoints of its own (V2 tensors, a saved net with its state
 * file, a snappy V1 file) with a manifest that tests/reference/check_slimnet_ckpt.py loads
 * with TensorFlow.  Without the fixtures (no `make parity` run yet) it passes with a note.
 * SN_REFERENCE_OUT overrides the folder (default tests/reference/out). */
#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include "ckpt_testutil.h"

static const char *ref_out(void) {
    const char *e = getenv("SN_REFERENCE_OUT");
    return e && e[0] ? e : "tests/reference/out";
}

/* The fixture manifest, or NULL when the fixtures were never generated (with a note unless
 * quiet: one note per run is enough). */
static cJSON *load_manifest(bool quiet) {
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/ckpt/manifest.json", ref_out());
    if (access(path, R_OK) != 0) {
        if (!quiet)
            fprintf(stderr, "ckpt_parity: no TensorFlow fixtures at %s; skipped (make parity "
                            "generates them)\n", path);
        return NULL;
    }
    size_t len;
    char *text = (char *)ct_read(path, &len);
    text[len] = '\0';
    cJSON *m = cJSON_Parse(text);
    free(text);
    ck_assert_msg(m != NULL, "%s is not JSON", path);
    return m;
}

static void check_tensor(sn_ctx *ctx, sn_ckpt *ck, const cJSON *t, int version) {
    const char *name = cJSON_GetObjectItem(t, "name")->valuestring;
    int k = sn_ckpt_find(ck, name);
    ck_assert_msg(k >= 0, "%s: no tensor '%s'", sn_ckpt_path(ck), name);
    sn_ckpt_info in;
    ck_assert_int_eq(sn_ckpt_info_at(ck, k, &in), SN_OK);
    ck_assert_str_eq(in.dtype_name, cJSON_GetObjectItem(t, "dtype")->valuestring);
    const cJSON *shape = cJSON_GetObjectItem(t, "shape");
    ck_assert_int_eq(in.rank, cJSON_GetArraySize(shape));
    for (int d = 0; d < in.rank; d++)
        ck_assert_int_eq(in.dims[d], (int64_t)cJSON_GetArrayItem(shape, d)->valuedouble);
    const cJSON *sha = cJSON_GetObjectItem(t, "sha256");
    uint8_t *buf = malloc(in.nbytes + 1);
    char hex[65];
    if (sha) {
        ck_assert_msg(sn_ckpt_read_raw(ck, name, buf, in.nbytes) == SN_OK, "%s",
                      sn_ctx_errmsg(ctx));
        ct_sha256_hex(buf, in.nbytes, hex);
        ck_assert_msg(!strcmp(hex, sha->valuestring), "%s: '%s' differs from TensorFlow's",
                      sn_ckpt_path(ck), name);
        if (in.has_sn_dtype) {
            sn_tensor *r;
            ck_assert_int_eq(sn_ckpt_read(ck, name, &r), SN_OK);
            ct_sha256_hex(sn_tensor_data(r), sn_tensor_nbytes(r), hex);
            ck_assert_str_eq(hex, sha->valuestring);
            sn_tensor_free(r);
        }
    } else if (version == 1) {   /* V1 strings are listed, not decoded */
        ck_assert_int_eq(sn_ckpt_read_raw(ck, name, buf, in.nbytes), SN_ERR_UNSUPPORTED);
    } else {                     /* V2 strings: varint lengths, 4-byte CRC, the bytes */
        ck_assert_int_eq(sn_ckpt_read_raw(ck, name, buf, in.nbytes), SN_OK);
        const cJSON *strs = cJSON_GetObjectItem(t, "strings_hex");
        int n = cJSON_GetArraySize(strs);
        uint64_t lens[16];
        const uint8_t *p = buf, *end = buf + in.nbytes;
        ck_assert_int_le(n, 16);
        for (int i = 0; i < n; i++) ck_assert_ptr_nonnull(p = sn__get_varint(p, end, 10, &lens[i]));
        p += 4;
        for (int i = 0; i < n; i++) {
            char *h = malloc(2 * lens[i] + 1);
            h[0] = '\0';
            for (uint64_t j = 0; j < lens[i]; j++) sprintf(h + 2 * j, "%02x", p[j]);
            ck_assert_str_eq(h, cJSON_GetArrayItem(strs, i)->valuestring);
            p += lens[i];
            free(h);
        }
        ck_assert(p == end);
    }
    free(buf);
}

START_TEST(test_read_tf_fixtures) {
    cJSON *m = load_manifest(false);
    if (!m) return;
    sn_ctx *ctx = tu_ctx();
    const cJSON *c;
    int n_ckpt = 0, n_tensors = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(m, "checkpoints")) {
        char dir[PATH_MAX], prefix[PATH_MAX];
        snprintf(dir, sizeof dir, "%s/ckpt/%s", ref_out(),
                 cJSON_GetObjectItem(c, "dir")->valuestring);
        snprintf(prefix, sizeof prefix, "%s/ckpt/%s", ref_out(),
                 cJSON_GetObjectItem(c, "prefix")->valuestring);
        int version = cJSON_GetObjectItem(c, "version")->valueint;
        const cJSON *tensors = cJSON_GetObjectItem(c, "tensors");
        /* Through the folder (TF's state file, absolute paths) and through the prefix. */
        for (int how = 0; how < 2; how++) {
            sn_ckpt *ck;
            ck_assert_msg(sn_ckpt_open(ctx, how ? prefix : dir, &ck) == SN_OK, "%s",
                          sn_ctx_errmsg(ctx));
            ck_assert_int_eq(sn_ckpt_version(ck), version);
            ck_assert_int_eq(sn_ckpt_count(ck), cJSON_GetArraySize(tensors));
            const cJSON *t;
            cJSON_ArrayForEach(t, tensors) {
                check_tensor(ctx, ck, t, version);
                n_tensors += how == 0;
            }
            sn_ckpt_close(ck);
        }
        n_ckpt++;
    }
    fprintf(stderr, "ckpt_parity: %d TensorFlow checkpoints, %d tensors read bit-identically\n",
            n_ckpt, n_tensors);
    cJSON_Delete(m);
    sn_ctx_free(ctx);
} END_TEST

/* slimnet writes TF's bytes: rewriting a TF-written bundle gives the same two files. */
START_TEST(test_rewrite_is_byte_identical) {
    cJSON *m = load_manifest(true);
    if (!m) return;
    cJSON_Delete(m);
    sn_ctx *ctx = tu_ctx();
    char src[PATH_MAX], *dir = ct_tmpdir(), dst[PATH_MAX];
    snprintf(src, sizeof src, "%s/ckpt/v2_plain/model.ckpt-7", ref_out());
    snprintf(dst, sizeof dst, "%s/model.ckpt-7", dir);
    sn_ckpt *ck;
    ck_assert_int_eq(sn_ckpt_open(ctx, src, &ck), SN_OK);
    int n = sn_ckpt_count(ck);
    sn_ckpt_entry *e = calloc((size_t)n, sizeof *e);
    sn_tensor **t = calloc((size_t)n, sizeof *t);
    for (int i = 0; i < n; i++) {
        sn_ckpt_info in;
        sn_ckpt_info_at(ck, i, &in);
        ck_assert_int_eq(sn_ckpt_read(ck, in.name, &t[i]), SN_OK);
        e[n - 1 - i] = (sn_ckpt_entry){in.name, t[i]};   /* reversed: the writer sorts */
    }
    ck_assert_int_eq(sn_ckpt_write(ctx, dst, n, e), SN_OK);
    static const char *suffix[] = {".index", ".data-00000-of-00001"};
    for (int s = 0; s < 2; s++) {
        char a[PATH_MAX + 32], b[PATH_MAX + 32];
        snprintf(a, sizeof a, "%s%s", src, suffix[s]);
        snprintf(b, sizeof b, "%s%s", dst, suffix[s]);
        size_t la, lb;
        uint8_t *fa = ct_read(a, &la), *fb = ct_read(b, &lb);
        ck_assert_msg(la == lb && memcmp(fa, fb, la) == 0, "%s differs from TensorFlow's %s", b, a);
        free(fa);
        free(fb);
    }
    for (int i = 0; i < n; i++) sn_tensor_free(t[i]);
    free(t);
    free(e);
    sn_ckpt_close(ck);
    ct_rmdir(dir);
    sn_ctx_free(ctx);
} END_TEST

/* ---- checkpoints for TensorFlow to read (check_slimnet_ckpt.py) --------------------------- */

static void manifest_tensor(cJSON *list, const char *name, const char *dtype, int rank,
                            const int64_t *dims, const void *data, size_t nbytes) {
    cJSON *t = cJSON_CreateObject(), *shape = cJSON_CreateArray();
    char hex[65];
    cJSON_AddStringToObject(t, "name", name);
    cJSON_AddStringToObject(t, "dtype", dtype);
    for (int d = 0; d < rank; d++) cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)dims[d]));
    cJSON_AddItemToObject(t, "shape", shape);
    ct_sha256_hex(data, nbytes, hex);
    cJSON_AddStringToObject(t, "sha256", hex);
    cJSON_AddItemToArray(list, t);
}

static cJSON *manifest_ckpt(cJSON *all, const char *prefix, int version, const char *dir) {
    cJSON *c = cJSON_CreateObject();
    cJSON_AddStringToObject(c, "prefix", prefix);
    cJSON_AddNumberToObject(c, "version", version);
    if (dir) cJSON_AddStringToObject(c, "dir", dir);
    cJSON *list = cJSON_CreateArray();
    cJSON_AddItemToObject(c, "tensors", list);
    cJSON_AddItemToArray(all, c);
    return list;
}

START_TEST(test_write_for_tf) {
    cJSON *fixtures = load_manifest(true);
    if (!fixtures) return;
    cJSON_Delete(fixtures);
    sn_ctx *ctx = tu_ctx();
    char base[PATH_MAX], dir[PATH_MAX + 16], prefix[PATH_MAX + 64], rp[PATH_MAX];
    snprintf(base, sizeof base, "%s/slimnet", ref_out());
    ct_rmdir(strdup(base));
    ck_assert_int_eq(mkdir(base, 0755), 0);
    ck_assert_ptr_nonnull(realpath(base, rp));   /* TF gets absolute paths */
    cJSON *root = cJSON_CreateObject(), *all = cJSON_CreateArray();
    cJSON_AddItemToObject(root, "checkpoints", all);

    /* 1. Tensors of every sn dtype, a scalar, an empty and a 4 MiB one, via sn_ckpt_write. */
    snprintf(dir, sizeof dir, "%s/v2", rp);
    ck_assert_int_eq(mkdir(dir, 0755), 0);
    snprintf(prefix, sizeof prefix, "%s/model.ckpt-3", dir);
    static const int64_t conv[4] = {3, 3, 4, 8}, v5 = 5, img[3] = {4, 4, 3}, empty[2] = {0, 3},
                         big = 1 << 20;
    static const struct { const char *name; sn_dtype dt; int rank; const int64_t *dims; } spec[] = {
        {"net/conv1/weights", SN_DTYPE_F32, 4, conv}, {"counts", SN_DTYPE_I32, 1, &v5},
        {"global_step", SN_DTYPE_I64, 0, NULL}, {"pixels", SN_DTYPE_U8, 3, img},
        {"empty", SN_DTYPE_F32, 2, empty}, {"big/embedding", SN_DTYPE_F32, 1, &big},
    };
    enum { N = sizeof spec / sizeof *spec };
    sn_tensor *ts[N];
    sn_ckpt_entry e[N];
    cJSON *list = manifest_ckpt(all, prefix, 2, dir);
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(sn_tensor_new(ctx, spec[i].dt, spec[i].rank, spec[i].dims, &ts[i]), SN_OK);
        uint8_t *p = sn_tensor_data(ts[i]);
        for (size_t b = 0; b < sn_tensor_nbytes(ts[i]); b++) p[b] = (uint8_t)(b * 131 + i * 7 + 1);
        if (spec[i].dt == SN_DTYPE_F32)   /* finite floats, so TF's comparisons stay simple */
            tu_fill((float *)p, (size_t)sn_tensor_numel(ts[i]), (uint64_t)i);
        e[i] = (sn_ckpt_entry){spec[i].name, ts[i]};
        manifest_tensor(list, spec[i].name, sn__tf_dtype_name(sn__sn_to_tf_dtype(spec[i].dt)),
                        spec[i].rank, spec[i].dims, p, sn_tensor_nbytes(ts[i]));
    }
    ck_assert_int_eq(sn_ckpt_write(ctx, prefix, N, e), SN_OK);
    ck_assert_int_eq(sn_ckpt_state_update(ctx, dir, prefix, 0), SN_OK);

    /* 2. A net saved as training saves it: model.ckpt-42 with global_step and state file. */
    snprintf(dir, sizeof dir, "%s/net", rp);
    sn_graph *g;
    ck_assert_int_eq(sn_graph_new(ctx, &g), SN_OK);
    int64_t in[4] = {SN_BATCH, 12, 12, 3};
    sn_node x = sn_input(g, "images", SN_DTYPE_F32, 4, in);
    sn_scope_push(g, "LeNet");
    x = sn_conv2d(g, x, 6, 5, 5, 1, "conv1");
    x = sn_max_pool2d(g, x, 2, 2, SN_PAD_VALID, "pool1");
    x = sn_fully_connected(g, sn_op_flatten(g, x), 10, "logits");
    sn_scope_pop(g);
    sn_compile_params cp = sn_compile_params_default();
    sn_net *net;
    ck_assert_msg(sn_net_compile(g, &cp, &net) == SN_OK, "%s", sn_ctx_errmsg(ctx));
    ck_assert_int_eq(sn_net_save(net, dir, 42, NULL, prefix, sizeof prefix), SN_OK);
    list = manifest_ckpt(all, prefix, 2, dir);
    for (int v = 0; v < sn_graph_num_vars(g); v++) {
        sn_var_info vi;
        sn_graph_var(g, v, &vi);
        sn_tensor *t;
        ck_assert_int_eq(sn_net_get_var(net, vi.name, &t), SN_OK);
        manifest_tensor(list, vi.name, "float32", vi.rank, vi.dims, sn_tensor_data(t),
                        sn_tensor_nbytes(t));
        sn_tensor_free(t);
    }
    int64_t step = 42;
    manifest_tensor(list, "global_step", "int64", 0, NULL, &step, 8);
    sn_net_free(net);
    sn_graph_free(g);

    /* 3. A snappy-compressed V1 file, as 2016's TensorFlow wrote them. */
    snprintf(prefix, sizeof prefix, "%s/v1_snappy.ckpt", rp);
    enum { BIG = 200000 };
    float *bigv = malloc(BIG * sizeof *bigv), w[24];
    for (int i = 0; i < BIG; i++) bigv[i] = (float)(i % 64) * 0.5f - 3.0f;
    tu_fill(w, 24, 9);
    int32_t ints[4] = {-5, 0, 7, 2147483647};
    int64_t gs = 1234567890123ll;
    uint8_t px[5] = {0, 1, 128, 254, 255}, fl[3] = {1, 0, 1};
    ct_v1_tensor v1[] = {
        {"InceptionV3/Conv2d_1a_3x3/weights", SN__DT_FLOAT, 4, {2, 2, 3, 2}, w, 0, {{0}}, {{0}}},
        {"InceptionV3/Logits/big", SN__DT_FLOAT, 2, {400, 500}, bigv, 0, {{0}}, {{0}}},
        {"ints", SN__DT_INT32, 1, {4}, ints, 0, {{0}}, {{0}}},
        {"global_step", SN__DT_INT64, 0, {0}, &gs, 0, {{0}}, {{0}}},
        {"px", SN__DT_UINT8, 1, {5}, px, 0, {{0}}, {{0}}},
        {"flags", SN__DT_BOOL, 1, {3}, fl, 0, {{0}}, {{0}}},
    };
    ct_v1_write(ctx, prefix, 1, sizeof v1 / sizeof *v1, v1);
    list = manifest_ckpt(all, prefix, 1, NULL);
    for (size_t i = 0; i < sizeof v1 / sizeof *v1; i++) {
        size_t n = sn__tf_dtype_size(v1[i].dtype);
        for (int d = 0; d < v1[i].rank; d++) n *= (size_t)v1[i].dims[d];
        manifest_tensor(list, v1[i].name, sn__tf_dtype_name(v1[i].dtype), v1[i].rank,
                        v1[i].dims, v1[i].data, n);
    }
    sn_ckpt *ck;   /* and slimnet reads its own snappy file back */
    ck_assert_int_eq(sn_ckpt_open(ctx, prefix, &ck), SN_OK);
    sn_ckpt_close(ck);

    char path[PATH_MAX + 32], *text = cJSON_Print(root);
    snprintf(path, sizeof path, "%s/manifest.json", base);
    ct_write(path, text, strlen(text));
    free(text);
    cJSON_Delete(root);
    free(bigv);
    for (int i = 0; i < N; i++) sn_tensor_free(ts[i]);
    sn_ctx_free(ctx);
} END_TEST

Suite *suite_ckpt_parity(void) {
    Suite *s = suite_create("ckpt_parity");
    TCase *tc = tcase_create("ckpt_parity");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_read_tf_fixtures);
    tcase_add_test(tc, test_rewrite_is_byte_identical);
    tcase_add_test(tc, test_write_for_tf);
    suite_add_tcase(s, tc);
    return s;
}
