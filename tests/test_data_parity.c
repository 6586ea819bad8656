/* test_data_parity.c: TFRecord files and tf.train.Examples against TensorFlow itself
 * (make parity).
 *
 * Reads every file tests/reference/make_tfrecord_fixtures.py had TensorFlow write (no
 * compression, GZIP, ZLIB, empty) and checks each record against the fixture manifest: every
 * feature's kind and values bit for bit, TF-slim's image keys, and the pixels of the image
 * as TensorFlow decodes it (channels 0 and 3; JPEG with TF's default fast IDCT and with
 * INTEGER_ACCURATE, slimnet's fast_dct 1 and 0).  Then writes files of its own
 * into out/tfrecord/slimnet/ (the three compressions, and a small FER conversion by
 * sn_dataset_convert) with a manifest that tests/reference/check_tfrecord_interop.py reads
 * with TensorFlow and TF-slim's TFExampleDecoder.  Without the fixtures (no `make parity`
 * run yet) it passes with a note.  SN_REFERENCE_OUT overrides the folder (default
 * tests/reference/out). */
#include <cjson/cJSON.h>
#include <sys/stat.h>
#include "ckpt_testutil.h"

static const char *ref_out(void) {
    const char *e = getenv("SN_REFERENCE_OUT");
    return e && e[0] ? e : "tests/reference/out";
}

static cJSON *load_manifest(bool quiet) {
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/tfrecord/manifest.json", ref_out());
    if (access(path, R_OK) != 0) {
        if (!quiet)
            fprintf(stderr, "data_parity: no TensorFlow fixtures at %s; skipped (make parity "
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

static const cJSON *get(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    ck_assert_msg(v != NULL, "manifest: no '%s'", key);
    return v;
}

static void to_hex(const uint8_t *p, size_t n, char *out) {
    for (size_t i = 0; i < n; i++) sprintf(out + 2 * i, "%02x", p[i]);
    out[2 * n] = '\0';
}

static bool hex_equal(const uint8_t *p, size_t n, const char *hex) {
    if (strlen(hex) != 2 * n) return false;
    char *h = malloc(2 * n + 1);
    to_hex(p, n, h);
    bool eq = !strcmp(h, hex);
    free(h);
    return eq;
}

/* ---- reading TensorFlow's files ---------------------------------------------------------- */

static void check_feature(const sn_example *ex, const char *key, const cJSON *want) {
    sn_feature_kind kind;
    size_t n;
    ck_assert_msg(sn_example_feature(ex, key, &kind, &n) == SN_OK, "no feature %s", key);
    ck_assert_str_eq(sn_feature_kind_name(kind), get(want, "kind")->valuestring);
    const cJSON *vals;
    if ((vals = cJSON_GetObjectItemCaseSensitive(want, "values"))) {   /* int64, as text */
        const int64_t *v;
        ck_assert_int_eq(sn_example_get_int64(ex, key, &v, &n), SN_OK);
        ck_assert_int_eq(n, cJSON_GetArraySize(vals));
        for (size_t i = 0; i < n; i++)
            ck_assert_msg(v[i] == strtoll(cJSON_GetArrayItem(vals, (int)i)->valuestring, NULL,
                                          10), "%s[%zu]", key, i);
    } else if ((vals = cJSON_GetObjectItemCaseSensitive(want, "bits"))) {   /* float bits */
        const float *v;
        ck_assert_int_eq(sn_example_get_float(ex, key, &v, &n), SN_OK);
        ck_assert_int_eq(n, cJSON_GetArraySize(vals));
        for (size_t i = 0; i < n; i++) {
            uint32_t bits;
            memcpy(&bits, &v[i], 4);
            ck_assert_uint_eq(bits, strtoul(cJSON_GetArrayItem(vals, (int)i)->valuestring,
                                            NULL, 16));
        }
    } else if ((vals = cJSON_GetObjectItemCaseSensitive(want, "hex"))) {
        ck_assert_int_eq(n, cJSON_GetArraySize(vals));
        for (size_t i = 0; i < n; i++) {
            const uint8_t *d;
            size_t len;
            ck_assert_int_eq(sn_example_get_bytes(ex, key, i, &d, &len), SN_OK);
            ck_assert_msg(hex_equal(d, len, cJSON_GetArrayItem(vals, (int)i)->valuestring),
                          "%s[%zu] differs", key, i);
        }
    } else if ((vals = cJSON_GetObjectItemCaseSensitive(want, "sha256"))) {
        ck_assert_int_eq(n, cJSON_GetArraySize(vals));
        for (size_t i = 0; i < n; i++) {
            const uint8_t *d;
            size_t len;
            char h[65];
            ck_assert_int_eq(sn_example_get_bytes(ex, key, i, &d, &len), SN_OK);
            ck_assert_int_eq(len, cJSON_GetArrayItem(get(want, "len"), (int)i)->valueint);
            ct_sha256_hex(d, len, h);
            ck_assert_str_eq(h, cJSON_GetArrayItem(vals, (int)i)->valuestring);
        }
    } else {
        ck_assert_int_eq(n, 0);   /* a Feature with no list */
    }
}

/* Decodes the record's image with channels 0 and 3 and compares with TensorFlow's pixels. */
static void check_image(sn_ctx *ctx, const sn_example *ex, const cJSON *want, const char *where) {
    sn_image_example img;
    ck_assert_int_eq(sn_example_get_image(ex, &img), SN_OK);
    ck_assert_str_eq(img.format, get(want, "format")->valuestring);
    ck_assert_int_eq(img.label, get(want, "label")->valueint);
    ck_assert_int_eq(img.height, get(want, "height")->valueint);
    ck_assert_int_eq(img.width, get(want, "width")->valueint);
    static const char *const chans[2] = {"0", "3"};
    /* fast_dct 1 is TF's default decode, 0 its INTEGER_ACCURATE one: both exactly. */
    for (int k = 0; k < 4; k++) {
        int c = k & 1, fast = k >> 1;
        const cJSON *d = get(get(want, fast ? "decoded" : "decoded_accurate"), chans[c]);
        sn_image_params ip = sn_image_params_default();
        ip.channels = c ? 3 : 0;
        ip.fast_dct = fast;
        sn_tensor *t;
        ck_assert_msg(sn_image_decode(ctx, img.encoded, img.encoded_len, &ip, &t) == SN_OK,
                      "%s", sn_ctx_errmsg(ctx));
        const cJSON *shape = get(d, "shape");
        for (int k = 0; k < 3; k++)
            ck_assert_int_eq(sn_tensor_dim(t, k), cJSON_GetArrayItem(shape, k)->valueint);
        const char *hex = get(d, "hex")->valuestring;
        const uint8_t *px = sn_tensor_data(t);
        size_t n = sn_tensor_nbytes(t);
        int worst = 0;
        for (size_t i = 0; i < n && 2 * i + 1 < strlen(hex); i++) {
            unsigned v;
            sscanf(hex + 2 * i, "%2x", &v);
            int diff = abs((int)px[i] - (int)v);
            if (diff > worst) worst = diff;
        }
        ck_assert_msg(worst == 0 && hex_equal(px, n, hex),
                      "%s: %s decoded with channels=%s, fast_dct=%d differs from "
                      "TensorFlow's by up to %d", where, img.format, chans[c], fast, worst);
        sn_tensor_free(t);
    }
}

START_TEST(test_read_tf_tfrecords) {
    cJSON *m = load_manifest(false);
    if (!m) return;
    sn_ctx *ctx = tu_ctx();
    sn_example *ex;
    ck_assert_int_eq(sn_example_new(ctx, &ex), SN_OK);
    int nfiles = 0, nrecords = 0;
    const cJSON *f;
    cJSON_ArrayForEach(f, get(m, "files")) {
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/tfrecord/%s", ref_out(), get(f, "path")->valuestring);
        const char *comp = get(f, "compression")->valuestring;
        sn_compression c = !strcmp(comp, "GZIP") ? SN_COMPRESSION_GZIP
                           : !strcmp(comp, "ZLIB") ? SN_COMPRESSION_ZLIB : SN_COMPRESSION_NONE;
        /* As told, and sniffed where the format allows it (ZLIB is never guessed, as TF). */
        for (int how = 0; how < (c == SN_COMPRESSION_ZLIB ? 1 : 2); how++) {
            sn_tfrecord_reader *r;
            ck_assert_msg(sn_tfrecord_reader_open(ctx, path, how ? SN_COMPRESSION_AUTO : c, &r)
                          == SN_OK, "%s", sn_ctx_errmsg(ctx));
            const cJSON *rec;
            int i = 0;
            cJSON_ArrayForEach(rec, get(f, "records")) {
                const uint8_t *data;
                size_t len;
                char where[PATH_MAX + 32];
                snprintf(where, sizeof where, "%s record %d", path, i);
                ck_assert_msg(sn_tfrecord_read(r, &data, &len) == SN_OK, "%s: %s", where,
                              sn_ctx_errmsg(ctx));
                ck_assert_int_eq(sn_example_parse(ex, data, len), SN_OK);
                const cJSON *feats = get(rec, "features"), *ft;
                ck_assert_int_eq(sn_example_num_features(ex), cJSON_GetArraySize(feats));
                cJSON_ArrayForEach(ft, feats) check_feature(ex, ft->string, ft);
                check_image(ctx, ex, get(rec, "image"), where);
                i++;
                nrecords += how == 0;
            }
            const uint8_t *data;
            size_t len;
            ck_assert_int_eq(sn_tfrecord_read(r, &data, &len), SN_ERR_NOT_FOUND);
            sn_tfrecord_reader_close(r);
        }
        nfiles++;
    }
    ck_assert_int_ge(nfiles, 4);
    fprintf(stderr, "data_parity: %d TensorFlow TFRecord files, %d records read and checked\n",
            nfiles, nrecords);
    sn_example_free(ex);
    cJSON_Delete(m);
    sn_ctx_free(ctx);
} END_TEST

/* ---- files for TensorFlow to read (check_tfrecord_interop.py) ----------------------------- */

static void fill_pixels(uint8_t *p, size_t n, uint64_t seed) {
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 11;
    for (size_t i = 0; i < n; i++) {
        s ^= s >> 12, s ^= s << 25, s ^= s >> 27;
        p[i] = (uint8_t)((s * 2685821657736338717ull) >> 56);
    }
}

static cJSON *hex_item(const uint8_t *p, size_t n) {
    char *h = malloc(2 * n + 1);
    to_hex(p, n, h);
    cJSON *s = cJSON_CreateString(h);
    free(h);
    return s;
}

static char *str_num(int64_t v, char *buf) {
    sprintf(buf, "%lld", (long long)v);
    return buf;
}

/* One Example: an image (JPEG or PNG) in TF-slim's keys plus lists; its manifest entry. */
static cJSON *build_example(sn_ctx *ctx, sn_example *ex, int i) {
    int h = 5 + 3 * i, w = 9 - i, c = i % 2 ? 1 : 3;
    bool png = i % 3 == 1;
    int64_t dims[3] = {h, w, c};
    sn_tensor *t, *enc;
    ck_assert_int_eq(sn_tensor_new(ctx, SN_DTYPE_U8, 3, dims, &t), SN_OK);
    fill_pixels(sn_tensor_data(t), (size_t)(h * w * c), 300 + (uint64_t)i);
    ck_assert_int_eq(png ? sn_image_encode_png(ctx, t, &enc)
                         : sn_image_encode_jpeg(ctx, t, 60 + 10 * i, &enc), SN_OK);
    sn_image_example img = {sn_tensor_data(enc), sn_tensor_nbytes(enc), "", i % 5, h, w};
    snprintf(img.format, sizeof img.format, "%s", png ? "png" : "jpeg");
    sn_example_clear(ex);
    ck_assert_int_eq(sn_example_set_image(ex, &img), SN_OK);
    float fl[7] = {0.25f, -0.0f, INFINITY, -INFINITY, 1e-45f, NAN, (float)i};
    int64_t in[5] = {INT64_MIN, INT64_MAX, -1, 0, 123456789012345 * i};
    const void *bv[3] = {"", "x\0y", "slimnet"};
    size_t bl[3] = {0, 3, 7};
    ck_assert_int_eq(sn_example_set_float(ex, "extra/floats", fl, 7), SN_OK);
    ck_assert_int_eq(sn_example_set_int64(ex, "extra/int64s", in, 5), SN_OK);
    ck_assert_int_eq(sn_example_set_bytes(ex, "extra/bytes", bv, bl, 3), SN_OK);
    ck_assert_int_eq(sn_example_set_int64(ex, "extra/empty_int64s", NULL, 0), SN_OK);

    cJSON *rec = cJSON_CreateObject(), *feats = cJSON_AddObjectToObject(rec, "features");
    char num[32];
    cJSON *e = cJSON_AddObjectToObject(feats, "image/encoded");
    cJSON_AddStringToObject(e, "kind", "bytes_list");
    cJSON_AddItemToObject(e, "hex", cJSON_CreateArray());
    cJSON_AddItemToArray(cJSON_GetObjectItem(e, "hex"), hex_item(img.encoded, img.encoded_len));
    e = cJSON_AddObjectToObject(feats, "image/format");
    cJSON_AddStringToObject(e, "kind", "bytes_list");
    cJSON_AddItemToObject(e, "hex", cJSON_CreateArray());
    cJSON_AddItemToArray(cJSON_GetObjectItem(e, "hex"),
                         hex_item((const uint8_t *)img.format, strlen(img.format)));
    static const char *const ikeys[3] = {"image/class/label", "image/height", "image/width"};
    int64_t ivals[3] = {img.label, h, w};
    for (int k = 0; k < 3; k++) {
        e = cJSON_AddObjectToObject(feats, ikeys[k]);
        cJSON_AddStringToObject(e, "kind", "int64_list");
        cJSON *a = cJSON_AddArrayToObject(e, "values");
        cJSON_AddItemToArray(a, cJSON_CreateString(str_num(ivals[k], num)));
    }
    e = cJSON_AddObjectToObject(feats, "extra/floats");
    cJSON_AddStringToObject(e, "kind", "float_list");
    cJSON *a = cJSON_AddArrayToObject(e, "bits");
    for (int k = 0; k < 7; k++) {
        uint32_t bits;
        memcpy(&bits, &fl[k], 4);
        sprintf(num, "%08x", bits);
        cJSON_AddItemToArray(a, cJSON_CreateString(num));
    }
    e = cJSON_AddObjectToObject(feats, "extra/int64s");
    cJSON_AddStringToObject(e, "kind", "int64_list");
    a = cJSON_AddArrayToObject(e, "values");
    for (int k = 0; k < 5; k++) cJSON_AddItemToArray(a, cJSON_CreateString(str_num(in[k], num)));
    e = cJSON_AddObjectToObject(feats, "extra/bytes");
    cJSON_AddStringToObject(e, "kind", "bytes_list");
    a = cJSON_AddArrayToObject(e, "hex");
    for (int k = 0; k < 3; k++) cJSON_AddItemToArray(a, hex_item(bv[k], bl[k]));
    e = cJSON_AddObjectToObject(feats, "extra/empty_int64s");
    cJSON_AddStringToObject(e, "kind", "int64_list");
    cJSON_AddArrayToObject(e, "values");

    /* The image: its source pixels (a PNG must decode to exactly these) and slimnet's own
     * decode (TensorFlow's JPEG decode must equal it). */
    cJSON *im = cJSON_AddObjectToObject(rec, "image");
    cJSON_AddStringToObject(im, "format", img.format);
    cJSON_AddNumberToObject(im, "label", (double)img.label);
    cJSON_AddNumberToObject(im, "height", h);
    cJSON_AddNumberToObject(im, "width", w);
    cJSON_AddNumberToObject(im, "channels", c);
    cJSON_AddItemToObject(im, "source_hex", hex_item(sn_tensor_data(t), sn_tensor_nbytes(t)));
    sn_tensor *d;
    ck_assert_int_eq(sn_image_decode(ctx, img.encoded, img.encoded_len, NULL, &d), SN_OK);
    cJSON_AddItemToObject(im, "slimnet_decoded_hex", hex_item(sn_tensor_data(d),
                                                              sn_tensor_nbytes(d)));
    sn_tensor_free(d);
    sn_tensor_free(enc);
    sn_tensor_free(t);
    return rec;
}

/* A small class-folder tree, converted by sn_dataset_convert into <base>/fer; the manifest
 * lists each source file's sha256, label, size and format. */
static cJSON *fer_conversion(sn_ctx *ctx, const char *base) {
    char *src = ct_tmpdir(), dir[PATH_MAX + 16], path[PATH_MAX + 64];
    static const char *const classes[3] = {"surprise", "angry", "neutral"};
    static const int ids[3] = {2, 0, 1};
    cJSON *fer = cJSON_CreateObject(), *sources = cJSON_CreateArray();
    cJSON_AddStringToObject(fer, "dir", "fer");
    int n = 0;
    for (int k = 0; k < 3; k++) {
        snprintf(dir, sizeof dir, "%s/%s", src, classes[k]);
        ck_assert_int_eq(mkdir(dir, 0777), 0);
        for (int i = 0; i < 4 + k; i++, n++) {
            int h = 48 - n, w = 40 + n, c = n % 3 ? 1 : 3;
            bool png = n % 4 == 3;
            int64_t dims[3] = {h, w, c};
            sn_tensor *t, *enc;
            ck_assert_int_eq(sn_tensor_new(ctx, SN_DTYPE_U8, 3, dims, &t), SN_OK);
            fill_pixels(sn_tensor_data(t), (size_t)(h * w * c), 900 + (uint64_t)n);
            ck_assert_int_eq(png ? sn_image_encode_png(ctx, t, &enc)
                                 : sn_image_encode_jpeg(ctx, t, 85, &enc), SN_OK);
            snprintf(path, sizeof path, "%s/%02d.%s", dir, i, png ? "png" : "jpg");
            ct_write(path, sn_tensor_data(enc), sn_tensor_nbytes(enc));
            char sha[65];
            ct_sha256_hex(sn_tensor_data(enc), sn_tensor_nbytes(enc), sha);
            cJSON *s = cJSON_CreateObject();
            cJSON_AddStringToObject(s, "sha256", sha);
            cJSON_AddNumberToObject(s, "label", ids[k]);
            cJSON_AddNumberToObject(s, "height", h);
            cJSON_AddNumberToObject(s, "width", w);
            cJSON_AddStringToObject(s, "format", png ? "png" : "jpg");
            cJSON_AddItemToArray(sources, s);
            sn_tensor_free(enc);
            sn_tensor_free(t);
        }
    }
    snprintf(dir, sizeof dir, "%s/fer", base);
    sn_convert_params p = sn_convert_params_default();
    p.dataset_name = "fer";
    p.source = src;
    p.dataset_dir = dir;
    p.seed = 2024;
    p.overwrite = 1;
    sn_convert_report rep;
    ck_assert_msg(sn_dataset_convert(ctx, &p, &rep) == SN_OK, "%s", sn_ctx_errmsg(ctx));
    cJSON_AddNumberToObject(fer, "num_class", rep.num_classes);
    cJSON_AddNumberToObject(fer, "num_train", (double)rep.num_train);
    cJSON_AddNumberToObject(fer, "num_test", (double)rep.num_test);
    cJSON *names = cJSON_AddArrayToObject(fer, "class_names");
    static const char *const sorted[3] = {"angry", "neutral", "surprise"};
    for (int k = 0; k < 3; k++) cJSON_AddItemToArray(names, cJSON_CreateString(sorted[k]));
    cJSON_AddItemToObject(fer, "sources", sources);
    ct_rmdir(src);
    return fer;
}

START_TEST(test_write_for_tf) {
    cJSON *fixtures = load_manifest(true);
    if (!fixtures) return;
    cJSON_Delete(fixtures);
    sn_ctx *ctx = tu_ctx();
    char base[PATH_MAX];
    snprintf(base, sizeof base, "%s/tfrecord/slimnet", ref_out());
    char *old = strdup(base);
    ct_rmdir(old);   /* a fresh folder each run */
    ck_assert_int_eq(mkdir(base, 0777), 0);
    sn_example *ex;
    ck_assert_int_eq(sn_example_new(ctx, &ex), SN_OK);
    static const struct { const char *path, *name; sn_compression c; } files[3] = {
        {"none.tfrecord", "NONE", SN_COMPRESSION_NONE},
        {"gzip.tfrecord.gz", "GZIP", SN_COMPRESSION_GZIP},
        {"zlib.tfrecord.zz", "ZLIB", SN_COMPRESSION_ZLIB}};
    cJSON *root = cJSON_CreateObject(), *list = cJSON_AddArrayToObject(root, "files");
    enum { NREC = 5 };
    for (int f = 0; f < 3; f++) {
        char path[PATH_MAX + 32];
        snprintf(path, sizeof path, "%s/%s", base, files[f].path);
        sn_tfrecord_writer *w;
        ck_assert_int_eq(sn_tfrecord_writer_open(ctx, path, files[f].c, &w), SN_OK);
        cJSON *fj = cJSON_CreateObject(), *recs;
        cJSON_AddStringToObject(fj, "path", files[f].path);
        cJSON_AddStringToObject(fj, "compression", files[f].name);
        recs = cJSON_AddArrayToObject(fj, "records");
        for (int i = 0; i < NREC; i++) {
            cJSON_AddItemToArray(recs, build_example(ctx, ex, i));
            const uint8_t *data;
            size_t len;
            ck_assert_int_eq(sn_example_serialize(ex, &data, &len), SN_OK);
            ck_assert_int_eq(sn_tfrecord_write(w, data, len), SN_OK);
        }
        ck_assert_int_eq(sn_tfrecord_writer_close(w), SN_OK);
        cJSON_AddItemToArray(list, fj);
    }
    cJSON_AddItemToObject(root, "fer", fer_conversion(ctx, base));
    char path[PATH_MAX + 32], *text = cJSON_Print(root);
    snprintf(path, sizeof path, "%s/manifest.json", base);
    ct_write(path, text, strlen(text));
    free(text);
    cJSON_Delete(root);
    sn_example_free(ex);
    sn_ctx_free(ctx);
} END_TEST

Suite *suite_data_parity(void) {
    Suite *s = suite_create("data_parity");
    TCase *tc = tcase_create("data_parity");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_read_tf_tfrecords);
    tcase_add_test(tc, test_write_for_tf);
    suite_add_tcase(s, tc);
    return s;
}
