/* test_dataset.c: dataset descriptors (sn_dataset_*) and the converter (sn_dataset_convert,
 * slimnet-convert).  Every source is built here: class-folder trees of real JPEGs and PNGs
 * (sn_image_encode_*), tiny idx(.gz) files, tiny CIFAR-10 binary batches; each converted
 * record is read back and compared with its source, byte for byte or pixel for pixel. */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <zlib.h>
#include "ckpt_testutil.h"
#include "../lib/io/dataset.h"

/* ---- helpers ------------------------------------------------------------------------------ */

static char *path_of(const char *dir, const char *name) {
    static char buf[8][PATH_MAX];   /* a ring: dir may be an earlier result */
    static int next;
    char tmp[2 * PATH_MAX + 2];
    int n = snprintf(tmp, sizeof tmp, "%s/%s", dir, name);
    ck_assert(n > 0 && n < PATH_MAX);
    char *p = buf[next++ & 7];
    memcpy(p, tmp, (size_t)n + 1);
    return p;
}

/* dir/name into dst (PATH_MAX bytes), for paths a test keeps. */
static void path_into(char *dst, const char *dir, const char *name) {
    snprintf(dst, PATH_MAX, "%s", path_of(dir, name));
}

static bool exists(const char *path) { return access(path, F_OK) == 0; }

static void write_text(const char *path, const char *text) { ct_write(path, text, strlen(text)); }

/* Deterministic pixels. */
static void fill_pixels(uint8_t *p, size_t n, uint64_t seed) {
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 3;
    for (size_t i = 0; i < n; i++) {
        s ^= s >> 12, s ^= s << 25, s ^= s >> 27;
        p[i] = (uint8_t)((s * 2685821657736338717ull) >> 56);
    }
}

/* An encoded h x w x c image (JPEG quality 90 or PNG); *len bytes, malloc'd. */
static uint8_t *make_image(sn_ctx *ctx, int h, int w, int c, bool png, uint64_t seed,
                           size_t *len) {
    int64_t dims[3] = {h, w, c};
    sn_tensor *t, *enc;
    ck_assert_int_eq(sn_tensor_new(ctx, SN_DTYPE_U8, 3, dims, &t), SN_OK);
    fill_pixels(sn_tensor_data(t), (size_t)(h * w * c), seed);
    ck_assert_int_eq(png ? sn_image_encode_png(ctx, t, &enc)
                         : sn_image_encode_jpeg(ctx, t, 90, &enc), SN_OK);
    *len = sn_tensor_nbytes(enc);
    uint8_t *b = malloc(*len);
    memcpy(b, sn_tensor_data(enc), *len);
    sn_tensor_free(enc);
    sn_tensor_free(t);
    return b;
}

/* A source image of a class-folder tree, as written. */
typedef struct src_image {
    uint8_t *bytes;
    size_t len;
    int label, h, w;
    bool png;
    int seen;
} src_image;

typedef struct tree {
    char *dir;            /* the source folder (inside a scratch folder) */
    src_image *img;
    int n;
} tree;

/* Classes are created out of sorted order on purpose: ids must follow the sorted names.
 * counts[k] images in class names[k]; every 7th image is a PNG; sizes vary. Also a hidden
 * file, a README.txt in a class, and a file beside the classes (both skipped). */
static tree make_tree(sn_ctx *ctx, const char *root, int nclass, const char *const *names,
                      const int *counts, const int *sorted_id) {
    tree t = {0};
    t.dir = strdup(path_of(root, "pics"));
    ck_assert_int_eq(mkdir(t.dir, 0777), 0);
    int total = 0;
    for (int k = 0; k < nclass; k++) total += counts[k];
    t.img = calloc((size_t)total, sizeof *t.img);
    for (int k = 0; k < nclass; k++) {
        char cdir[PATH_MAX];
        snprintf(cdir, sizeof cdir, "%s/%s", t.dir, names[k]);
        ck_assert_int_eq(mkdir(cdir, 0777), 0);
        for (int i = 0; i < counts[k]; i++) {
            src_image *s = &t.img[t.n];
            s->png = t.n % 7 == 3;
            s->h = 6 + t.n % 5;
            s->w = 7 + t.n % 3;
            s->label = sorted_id[k];
            s->bytes = make_image(ctx, s->h, s->w, t.n % 2 ? 3 : 1, s->png, 1000 + (uint64_t)t.n,
                                  &s->len);
            char name[64];
            snprintf(name, sizeof name, "img%03d.%s", i, s->png ? "png" : "jpg");
            ct_write(path_of(cdir, name), s->bytes, s->len);
            t.n++;
        }
        write_text(path_of(cdir, ".hidden.jpg"), "not an image, and hidden");
        if (k == 0) write_text(path_of(cdir, "README.txt"), "notes");
    }
    write_text(path_of(t.dir, "stray.txt"), "beside the classes");
    return t;
}

static void free_tree(tree *t) {
    for (int i = 0; i < t->n; i++) free(t->img[i].bytes);
    free(t->img);
    free(t->dir);
}

static const char *const fer_names[3] = {"sad", "angry", "happy"};
static const int fer_counts[3] = {25, 40, 35};
static const int fer_ids[3] = {2, 0, 1};     /* angry < happy < sad */

static tree fer_tree(sn_ctx *ctx, const char *root) {
    return make_tree(ctx, root, 3, fer_names, fer_counts, fer_ids);
}

static sn_status convert(sn_ctx *ctx, const char *name, const char *src, const char *dst,
                         uint64_t seed, int shards, double frac, int overwrite,
                         sn_convert_report *rep) {
    sn_convert_params p = sn_convert_params_default();
    p.dataset_name = name;
    p.source = src;
    p.dataset_dir = dst;
    p.seed = seed;
    p.num_shards = shards;
    p.test_fraction = frac;
    p.overwrite = overwrite;
    return sn_dataset_convert(ctx, &p, rep);
}

/* Reads every record of the files matching pattern; calls fn on each. */
typedef void (*record_fn)(void *user, const sn_image_example *img, int64_t index);
static int64_t read_records(sn_ctx *ctx, const char *pattern, record_fn fn, void *user) {
    sn_file_list *files;
    ck_assert_msg(sn_tfrecord_files(ctx, pattern, &files) == SN_OK, "%s", sn_ctx_errmsg(ctx));
    sn_example *ex;
    ck_assert_int_eq(sn_example_new(ctx, &ex), SN_OK);
    int64_t n = 0;
    for (size_t f = 0; f < sn_file_list_count(files); f++) {
        sn_tfrecord_reader *r;
        ck_assert_int_eq(sn_tfrecord_reader_open(ctx, sn_file_list_path(files, f),
                                                 SN_COMPRESSION_NONE, &r), SN_OK);
        const uint8_t *data;
        size_t len;
        sn_status st;
        while ((st = sn_tfrecord_read(r, &data, &len)) == SN_OK) {
            sn_image_example img;
            ck_assert_int_eq(sn_example_parse(ex, data, len), SN_OK);
            ck_assert_int_eq(sn_example_get_image(ex, &img), SN_OK);
            if (fn) fn(user, &img, n);
            n++;
        }
        ck_assert_int_eq(st, SN_ERR_NOT_FOUND);
        sn_tfrecord_reader_close(r);
    }
    sn_example_free(ex);
    sn_file_list_free(files);
    return n;
}

/* Matches a record with its source image: same bytes, label, size and format. */
static void match_source(void *user, const sn_image_example *img, int64_t index) {
    (void)index;
    tree *t = user;
    int found = -1;
    for (int i = 0; i < t->n && found < 0; i++)
        if (t->img[i].len == img->encoded_len && !memcmp(t->img[i].bytes, img->encoded,
                                                         img->encoded_len))
            found = i;
    ck_assert_msg(found >= 0, "a record's bytes equal no source file");
    src_image *s = &t->img[found];
    s->seen++;
    ck_assert_int_eq(img->label, s->label);
    ck_assert_int_eq(img->height, s->h);
    ck_assert_int_eq(img->width, s->w);
    ck_assert_str_eq(img->format, s->png ? "png" : "jpg");
}

static cJSON *read_json(const char *path) {
    size_t len;
    char *text = (char *)ct_read(path, &len);
    text[len] = '\0';
    cJSON *j = cJSON_Parse(text);
    free(text);
    ck_assert_msg(j != NULL, "%s is not JSON", path);
    return j;
}

static int json_int(const cJSON *j, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    ck_assert_msg(cJSON_IsNumber(v), "no number '%s'", key);
    return v->valueint;
}

static bool files_equal(const char *a, const char *b) {
    size_t la, lb;
    uint8_t *fa = ct_read(a, &la), *fb = ct_read(b, &lb);
    bool eq = la == lb && !memcmp(fa, fb, la);
    free(fa);
    free(fb);
    return eq;
}

/* Names in dir (hidden ones included), sorted, joined by ' '. */
static void list_names(const char *dir, char *buf, size_t len) {
    struct dirent **e;
    int n = scandir(dir, &e, NULL, alphasort);
    ck_assert_int_ge(n, 0);
    buf[0] = '\0';
    for (int i = 0; i < n; i++) {
        if (strcmp(e[i]->d_name, ".") && strcmp(e[i]->d_name, ".."))
            snprintf(buf + strlen(buf), len - strlen(buf), "%s%s", buf[0] ? " " : "",
                     e[i]->d_name);
        free(e[i]);
    }
    free(e);
}

/* ---- fer -------------------------------------------------------------------------------- */

START_TEST(test_fer_convert) {
    sn_ctx *ctx = tu_ctx();
    char *root = ct_tmpdir();
    tree t = fer_tree(ctx, root);
    char out[PATH_MAX];
    path_into(out, root, "out/fer");   /* created, parents too */
    sn_convert_report rep;
    ck_assert_msg(convert(ctx, "fer", t.dir, out, 7, 0, 0, 0, &rep) == SN_OK, "%s",
                  sn_ctx_errmsg(ctx));
    ck_assert_int_eq(rep.num_classes, 3);
    ck_assert_int_eq(rep.num_train, 70);
    ck_assert_int_eq(rep.num_test, 30);
    ck_assert_int_eq(rep.num_files, 4);
    ck_assert_int_eq(rep.num_skipped, 2);   /* README.txt, stray.txt; hidden files silently */
    char names[1024];
    list_names(out, names, sizeof names);   /* no temporary file left behind */
    ck_assert_str_eq(names, "fer_test.tfrecord fer_train.tfrecord info.json labels.txt");
    int64_t bytes = 0;
    struct stat sb;
    static const char *const files[4] = {"fer_test.tfrecord", "fer_train.tfrecord",
                                         "info.json", "labels.txt"};
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(stat(path_of(out, files[i]), &sb), 0);
        bytes += sb.st_size;
    }
    ck_assert_int_eq(rep.bytes, bytes);

    cJSON *info = read_json(path_of(out, "info.json"));
    ck_assert_int_eq(json_int(info, "num_class"), 3);
    ck_assert_int_eq(json_int(info, "num_sample_train"), 70);
    ck_assert_int_eq(json_int(info, "num_sample_test"), 30);
    ck_assert_str_eq(cJSON_GetObjectItem(info, "dataset")->valuestring, "fer");
    cJSON_Delete(info);
    size_t len;
    char *labels = (char *)ct_read(path_of(out, "labels.txt"), &len);
    labels[len] = '\0';
    ck_assert_str_eq(labels, "0:angry\n1:happy\n2:sad\n");
    free(labels);

    /* Every source image exactly once, bytes unchanged, label from its folder. */
    ck_assert_int_eq(read_records(ctx, path_of(out, "fer_train.tfrecord"), match_source, &t), 70);
    ck_assert_int_eq(read_records(ctx, path_of(out, "fer_test.tfrecord"), match_source, &t), 30);
    for (int i = 0; i < t.n; i++) ck_assert_int_eq(t.img[i].seen, 1);

    /* The descriptor of the result. */
    sn_dataset *ds;
    sn_dataset_params dp = sn_dataset_params_default();
    ck_assert_msg(sn_dataset_open(ctx, "fer", out, &dp, &ds) == SN_OK, "%s", sn_ctx_errmsg(ctx));
    ck_assert_str_eq(sn_dataset_name(ds), "fer");
    ck_assert_int_eq(sn_dataset_num_classes(ds), 3);
    ck_assert_int_eq(sn_dataset_channels(ds), 3);
    ck_assert_int_eq(sn_dataset_num_splits(ds), 2);
    ck_assert_str_eq(sn_dataset_split_name(ds, 0), "train");
    ck_assert_str_eq(sn_dataset_split_name(ds, 1), "test");
    ck_assert_ptr_null(sn_dataset_split_name(ds, 2));
    ck_assert_str_eq(sn_dataset_label_name(ds, 0), "angry");
    ck_assert_str_eq(sn_dataset_label_name(ds, 2), "sad");
    ck_assert_ptr_null(sn_dataset_label_name(ds, 3));
    const char *pattern;
    int64_t n;
    ck_assert_int_eq(sn_dataset_split(ds, "test", &pattern, &n), SN_OK);
    ck_assert_int_eq(n, 30);
    ck_assert_str_eq(pattern, path_of(out, "fer_test*.tfrecord"));
    ck_assert_int_eq(read_records(ctx, pattern, NULL, NULL), 30);
    sn_dataset_free(ds);
    dp.fer_extra_class = 1;   /* the fork's num_class + 1 */
    ck_assert_int_eq(sn_dataset_open(ctx, "fer", out, &dp, &ds), SN_OK);
    ck_assert_int_eq(sn_dataset_num_classes(ds), 4);
    ck_assert_ptr_null(sn_dataset_label_name(ds, 3));
    sn_dataset_free(ds);
    ck_assert_int_eq(sn_dataset_open(ctx, NULL, out, NULL, &ds), SN_OK);   /* "folder" */
    ck_assert_str_eq(sn_dataset_name(ds), "folder");
    ck_assert_int_eq(sn_dataset_num_classes(ds), 3);
    ck_assert_int_eq(sn_dataset_split(ds, "train", &pattern, &n), SN_OK);
    ck_assert_int_eq(n, 70);
    ck_assert_int_eq(read_records(ctx, pattern, NULL, NULL), 70);
    sn_dataset_free(ds);
    /* A folder of fer files takes the fork's extra class too (sn_classifier opens a
     * train_dir this way: slimnet-classify --fer_extra_class). */
    ck_assert_int_eq(sn_dataset_open(ctx, "folder", out, &dp, &ds), SN_OK);
    ck_assert_int_eq(sn_dataset_num_classes(ds), 4);
    ck_assert_str_eq(sn_dataset_label_name(ds, 2), "sad");
    sn_dataset_free(ds);

    free_tree(&t);
    ct_rmdir(root);
    sn_ctx_free(ctx);
} END_TEST

START_TEST(test_fer_seed_overwrite_shards) {
    sn_ctx *ctx = tu_ctx();
    char *root = ct_tmpdir();
    tree t = fer_tree(ctx, root);
    char a[PATH_MAX], b[PATH_MAX], c[PATH_MAX];
    snprintf(a, sizeof a, "%s", path_of(root, "a"));
    snprintf(b, sizeof b, "%s", path_of(root, "b"));
    snprintf(c, sizeof c, "%s", path_of(root, "c"));
    ck_assert_int_eq(convert(ctx, "fer", t.dir, a, 11, 0, 0, 0, NULL), SN_OK);
    ck_assert_int_eq(convert(ctx, "fer", t.dir, b, 11, 0, 0, 0, NULL), SN_OK);
    ck_assert_int_eq(convert(ctx, "folder", t.dir, c, 12, 0, 0, 0, NULL), SN_OK);
    static const char *const files[4] = {"fer_train.tfrecord", "fer_test.tfrecord",
                                         "labels.txt", "info.json"};
    for (int i = 0; i < 4; i++) {   /* same seed: the same files, byte for byte */
        char pa[PATH_MAX];
        snprintf(pa, sizeof pa, "%s", path_of(a, files[i]));
        ck_assert_msg(files_equal(pa, path_of(b, files[i])), "%s differs", files[i]);
    }
    char pa[PATH_MAX];
    snprintf(pa, sizeof pa, "%s", path_of(a, "fer_train.tfrecord"));
    ck_assert(!files_equal(pa, path_of(c, "fer_train.tfrecord")));   /* another order */
    ck_assert(files_equal(path_of(a, "labels.txt"), path_of(c, "labels.txt")));

    /* An output folder inside the source is not a class on the next run. */
    char inner[PATH_MAX];
    path_into(inner, t.dir, "converted");
    ck_assert_int_eq(convert(ctx, "fer", t.dir, inner, 11, 0, 0, 0, NULL), SN_OK);
    sn_convert_report rep;
    ck_assert_int_eq(convert(ctx, "fer", t.dir, inner, 11, 0, 0, 1, &rep), SN_OK);
    ck_assert_int_eq(rep.num_classes, 3);
    ck_assert(files_equal(pa, path_of(inner, "fer_train.tfrecord")));
    ct_rmdir(strdup(inner));   /* for any other output folder it would be a class */

    /* Test fraction: round((1 - 0.25) * 100) = 75 train. */
    ck_assert_int_eq(convert(ctx, "fer", t.dir, path_of(root, "d"), 0, 0, 0.25, 0, &rep), SN_OK);
    ck_assert_int_eq(rep.num_train, 75);
    ck_assert_int_eq(rep.num_test, 25);

    /* An existing output is refused, naming it, and left untouched. */
    ck_assert_int_eq(convert(ctx, "fer", t.dir, a, 99, 0, 0, 0, NULL), SN_ERR_STATE);
    ck_assert_ptr_nonnull(strstr(sn_ctx_errmsg(ctx), "fer_t"));
    ck_assert_ptr_nonnull(strstr(sn_ctx_errmsg(ctx), "exists"));
    ck_assert(files_equal(pa, path_of(b, "fer_train.tfrecord")));
    unlink(path_of(a, "fer_train.tfrecord"));   /* info.json alone still blocks */
    unlink(path_of(a, "fer_test.tfrecord"));
    unlink(path_of(a, "labels.txt"));
    ck_assert_int_eq(convert(ctx, "fer", t.dir, a, 99, 0, 0, 0, NULL), SN_ERR_STATE);
    ck_assert_ptr_nonnull(strstr(sn_ctx_errmsg(ctx), "info.json"));

    /* overwrite, now in 4 shards: the single files are gone, the shards hold 70 / 30. */
    ck_assert_msg(convert(ctx, "fer", t.dir, a, 11, 4, 0, 1, &rep) == SN_OK, "%s",
                  sn_ctx_errmsg(ctx));
    ck_assert_int_eq(rep.num_files, 10);
    char names[2048];
    list_names(a, names, sizeof names);
    ck_assert_str_eq(names, "fer_test_00000-of-00004.tfrecord fer_test_00001-of-00004.tfrecord "
                            "fer_test_00002-of-00004.tfrecord fer_test_00003-of-00004.tfrecord "
                            "fer_train_00000-of-00004.tfrecord fer_train_00001-of-00004.tfrecord "
                            "fer_train_00002-of-00004.tfrecord fer_train_00003-of-00004.tfrecord "
                            "info.json labels.txt");
    /* ceil(70 / 4) = 18 per shard: 18 18 18 16 */
    ck_assert_int_eq(read_records(ctx, path_of(a, "fer_train_00000-of-00004.tfrecord"), NULL,
                                  NULL), 18);
    ck_assert_int_eq(read_records(ctx, path_of(a, "fer_train_00003-of-00004.tfrecord"), NULL,
                                  NULL), 16);
    sn_dataset *ds;
    const char *pattern;
    int64_t n;
    ck_assert_int_eq(sn_dataset_open(ctx, "fer", a, NULL, &ds), SN_OK);
    ck_assert_int_eq(sn_dataset_split(ds, "train", &pattern, &n), SN_OK);
    ck_assert_int_eq(n, 70);
    ck_assert_int_eq(read_records(ctx, pattern, match_source, &t), 70);
    ck_assert_int_eq(sn_dataset_split(ds, "test", &pattern, &n), SN_OK);
    ck_assert_int_eq(read_records(ctx, pattern, match_source, &t), 30);
    for (int i = 0; i < t.n; i++) ck_assert_int_eq(t.img[i].seen, 1);
    sn_dataset_free(ds);
    /* ... and the sharded records are those of the single-file conversion, in order. */
    sn_file_list *l;
    ck_assert_int_eq(sn_tfrecord_files(ctx, path_of(a, "fer_train_*"), &l), SN_OK);
    ck_assert_int_eq(sn_file_list_count(l), 4);
    sn_file_list_free(l);

    free_tree(&t);
    ct_rmdir(root);
    sn_ctx_free(ctx);
} END_TEST

START_TEST(test_fer_bad_images) {
    sn_ctx *ctx = tu_ctx();
    char *root = ct_tmpdir();
    tree t = fer_tree(ctx, root);
    char out[PATH_MAX];
    path_into(out, root, "out");
    /* A truncated JPEG: the header is intact, the data ends early. */
    char bad[PATH_MAX];
    snprintf(bad, sizeof bad, "%s/happy/zz_truncated.jpg", t.dir);
    size_t len;
    uint8_t *img = make_image(ctx, 64, 64, 3, false, 5, &len);
    ct_write(bad, img, len / 2);
    free(img);
    ck_assert_int_eq(convert(ctx, "fer", t.dir, out, 0, 0, 0, 0, NULL), SN_ERR_FORMAT);
    ck_assert_msg(strstr(sn_ctx_errmsg(ctx), "zz_truncated.jpg") != NULL, "%s",
                  sn_ctx_errmsg(ctx));
    char names[1024];
    list_names(out, names, sizeof names);   /* nothing written, nothing left behind */
    ck_assert_str_eq(names, "");
    unlink(bad);
    /* A file named as an image whose content is not one. */
    snprintf(bad, sizeof bad, "%s/sad/notes.JPG", t.dir);
    write_text(bad, "plain text");
    ck_assert_int_eq(convert(ctx, "fer", t.dir, out, 0, 0, 0, 0, NULL), SN_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(sn_ctx_errmsg(ctx), "notes.JPG"));
    unlink(bad);
    /* A corrupt PNG (a damaged IDAT crc). */
    snprintf(bad, sizeof bad, "%s/angry/broken.png", t.dir);
    img = make_image(ctx, 16, 16, 3, true, 9, &len);
    img[len - 20] ^= 0x55;
    ct_write(bad, img, len);
    free(img);
    ck_assert_int_eq(convert(ctx, "fer", t.dir, out, 0, 0, 0, 0, NULL), SN_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(sn_ctx_errmsg(ctx), "broken.png"));
    unlink(bad);
    /* Bad arguments. */
    ck_assert_int_eq(convert(ctx, "fer", t.dir, out, 0, 0, 1.5, 0, NULL), SN_ERR_INVALID_ARG);
    ck_assert_int_eq(convert(ctx, "fer", t.dir, out, 0, -1, 0, 0, NULL), SN_ERR_INVALID_ARG);
    ck_assert_int_eq(convert(ctx, "imagenet", t.dir, out, 0, 0, 0, 0, NULL), SN_ERR_NOT_FOUND);
    ck_assert_ptr_nonnull(strstr(sn_ctx_errmsg(ctx), "imagenet"));
    ck_assert_int_eq(convert(ctx, "fer", path_of(root, "nope"), out, 0, 0, 0, 0, NULL),
                     SN_ERR_NOT_FOUND);
    ck_assert_ptr_nonnull(strstr(sn_ctx_errmsg(ctx), "nope"));
    ck_assert_int_eq(convert(ctx, "fer", out, path_of(root, "o2"), 0, 0, 0, 0, NULL),
                     SN_ERR_NOT_FOUND);   /* an empty folder: no classes */
    ck_assert_int_eq(sn_dataset_convert(ctx, NULL, NULL), SN_ERR_INVALID_ARG);
    /* And it converts once the tree is clean again. */
    ck_assert_int_eq(convert(ctx, "fer", t.dir, out, 0, 0, 0, 0, NULL), SN_OK);
    free_tree(&t);
    ct_rmdir(root);
    sn_ctx_free(ctx);
} END_TEST

/* ---- flowers ---------------------------------------------------------------------------- */

START_TEST(test_flowers_convert) {
    sn_ctx *ctx = tu_ctx();
    char *root = ct_tmpdir();
    static const char *const names[5] = {"tulips", "daisy", "sunflowers", "roses", "dandelion"};
    static const int counts[5] = {4, 5, 4, 3, 4}, ids[5] = {4, 0, 3, 2, 1};
    tree t = make_tree(ctx, root, 5, names, counts, ids);
    char out[PATH_MAX];
    path_into(out, root, "flowers");
    /* 20 images: TF-slim's 350 validation images cannot be taken. */
    ck_assert_int_eq(convert(ctx, "flowers", t.dir, out, 0, 0, 0, 0, NULL), SN_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(sn_ctx_errmsg(ctx), "350"));
    sn_convert_report rep;
    ck_assert_int_eq(convert(ctx, "flowers", t.dir, out, 0, 0, 0.25, 0, &rep), SN_OK);
    ck_assert_int_eq(rep.num_train, 15);
    ck_assert_int_eq(rep.num_test, 5);
    ck_assert_int_eq(rep.num_files, 12);
    char names_out[2048];
    list_names(out, names_out, sizeof names_out);
    ck_assert_str_eq(names_out,
                     "flowers_train_00000-of-00005.tfrecord flowers_train_00001-of-00005.tfrecord "
                     "flowers_train_00002-of-00005.tfrecord flowers_train_00003-of-00005.tfrecord "
                     "flowers_train_00004-of-00005.tfrecord "
                     "flowers_validation_00000-of-00005.tfrecord "
                     "flowers_validation_00001-of-00005.tfrecord "
                     "flowers_validation_00002-of-00005.tfrecord "
                     "flowers_validation_00003-of-00005.tfrecord "
                     "flowers_validation_00004-of-00005.tfrecord info.json labels.txt");
    for (int k = 0; k < 5; k++) {   /* ceil(15 / 5) = 3 and ceil(5 / 5) = 1 a shard */
        char name[64];
        snprintf(name, sizeof name, "flowers_train_%05d-of-00005.tfrecord", k);
        ck_assert_int_eq(read_records(ctx, path_of(out, name), NULL, NULL), 3);
        snprintf(name, sizeof name, "flowers_validation_%05d-of-00005.tfrecord", k);
        ck_assert_int_eq(read_records(ctx, path_of(out, name), NULL, NULL), 1);
    }
    size_t len;
    char *labels = (char *)ct_read(path_of(out, "labels.txt"), &len);
    labels[len] = '\0';
    ck_assert_str_eq(labels, "0:daisy\n1:dandelion\n2:roses\n3:sunflowers\n4:tulips\n");
    free(labels);
    sn_dataset *ds;
    ck_assert_int_eq(sn_dataset_open(ctx, "flowers", out, NULL, &ds), SN_OK);
    ck_assert_int_eq(sn_dataset_num_classes(ds), 5);
    const char *pattern;
    int64_t n;
    ck_assert_int_eq(sn_dataset_split(ds, "validation", &pattern, &n), SN_OK);
    ck_assert_int_eq(n, 5);   /* info.json's count, not TF-slim's 350 */
    ck_assert_str_eq(pattern, path_of(out, "flowers_validation_*.tfrecord"));
    ck_assert_int_eq(read_records(ctx, pattern, match_source, &t), 5);
    ck_assert_int_eq(sn_dataset_split(ds, "train", &pattern, &n), SN_OK);
    ck_assert_int_eq(n, 15);
    ck_assert_int_eq(read_records(ctx, pattern, match_source, &t), 15);
    for (int i = 0; i < t.n; i++) ck_assert_int_eq(t.img[i].seen, 1);
    ck_assert_int_eq(sn_dataset_split(ds, "test", &pattern, &n), SN_ERR_NOT_FOUND);
    ck_assert_ptr_nonnull(strstr(sn_ctx_errmsg(ctx), "train, validation"));
    sn_dataset_free(ds);
    free_tree(&t);
    ct_rmdir(root);
    sn_ctx_free(ctx);
} END_TEST

/* ---- mnist ------------------------------------------------------------------------------ */

static void put_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

/* An idx file, gzip-compressed or plain. */
static void write_idx(const char *path, bool gz, uint32_t magic, uint32_t n, int side,
                      const uint8_t *data, size_t len) {
    uint8_t h[16];
    int hl = magic == 0x803 ? 16 : 8;
    put_be32(h, magic);
    put_be32(h + 4, n);
    put_be32(h + 8, (uint32_t)side);
    put_be32(h + 12, (uint32_t)side);
    if (!gz) {
        FILE *f = fopen(path, "wb");
        ck_assert_ptr_nonnull(f);
        ck_assert(fwrite(h, 1, (size_t)hl, f) == (size_t)hl && fwrite(data, 1, len, f) == len);
        fclose(f);
        return;
    }
    gzFile f = gzopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(gzwrite(f, h, (unsigned)hl), hl);
    ck_assert_int_eq(gzwrite(f, data, (unsigned)len), (int)len);
    gzclose(f);
}

typedef struct mnist_src {
    sn_ctx *ctx;
    const uint8_t *pix, *labels;
} mnist_src;

/* Records come in file order: record i is image i, PNG 28x28x1, pixels unchanged. */
static void match_mnist(void *user, const sn_image_example *img, int64_t i) {
    mnist_src *m = user;
    ck_assert_str_eq(img->format, "png");
    ck_assert_int_eq(sn_image_sniff(img->encoded, img->encoded_len), SN_IMAGE_PNG);
    ck_assert_int_eq(img->label, m->labels[i]);
    ck_assert_int_eq(img->height, 28);
    ck_assert_int_eq(img->width, 28);
    sn_tensor *t;
    ck_assert_int_eq(sn_image_decode(m->ctx, img->encoded, img->encoded_len, NULL, &t), SN_OK);
    ck_assert_int_eq(sn_tensor_dim(t, 2), 1);
    ck_assert(!memcmp(sn_tensor_data(t), m->pix + i * 784, 784));
    sn_tensor_free(t);
}

START_TEST(test_mnist_convert) {
    sn_ctx *ctx = tu_ctx();
    char *root = ct_tmpdir();
    char src[PATH_MAX];
    path_into(src, root, "src");
    ck_assert_int_eq(mkdir(src, 0777), 0);
    uint8_t pix[8 * 784], lab[8] = {3, 6, 0, 9, 1, 6, 2, 5};
    fill_pixels(pix, sizeof pix, 77);
    write_idx(path_of(src, "train-images-idx3-ubyte.gz"), true, 0x803, 5, 28, pix, 5 * 784);
    write_idx(path_of(src, "train-labels-idx1-ubyte.gz"), true, 0x801, 5, 0, lab, 5);
    write_idx(path_of(src, "t10k-images-idx3-ubyte"), false, 0x803, 3, 28, pix + 5 * 784,
              3 * 784);
    write_idx(path_of(src, "t10k-labels-idx1-ubyte"), false, 0x801, 3, 0, lab + 5, 3);
    char out[PATH_MAX];
    path_into(out, root, "mnist");
    sn_convert_report rep;
    ck_assert_int_eq(convert(ctx, "mnist", src, out, 0, 0, 0.3, 0, NULL), SN_ERR_INVALID_ARG);
    ck_assert_msg(convert(ctx, "mnist", src, out, 0, 0, 0, 0, &rep) == SN_OK, "%s",
                  sn_ctx_errmsg(ctx));
    ck_assert_int_eq(rep.num_classes, 10);
    ck_assert_int_eq(rep.num_train, 5);
    ck_assert_int_eq(rep.num_test, 3);
    mnist_src m = {ctx, pix, lab};
    ck_assert_int_eq(read_records(ctx, path_of(out, "mnist_train.tfrecord"), match_mnist, &m), 5);
    m.pix = pix + 5 * 784;
    m.labels = lab + 5;
    ck_assert_int_eq(read_records(ctx, path_of(out, "mnist_test.tfrecord"), match_mnist, &m), 3);
    sn_dataset *ds;
    ck_assert_int_eq(sn_dataset_open(ctx, "mnist", out, NULL, &ds), SN_OK);
    ck_assert_int_eq(sn_dataset_channels(ds), 1);
    ck_assert_int_eq(sn_dataset_num_classes(ds), 10);
    ck_assert_str_eq(sn_dataset_label_name(ds, 6), "size");   /* TF-slim's spelling */
    ck_assert_str_eq(sn_dataset_label_name(ds, 9), "nine");
    int64_t n;
    ck_assert_int_eq(sn_dataset_split(ds, "train", NULL, &n), SN_OK);
    ck_assert_int_eq(n, 5);
    sn_dataset_free(ds);
    ck_assert_int_eq(sn_dataset_open(ctx, "folder", out, NULL, &ds), SN_OK);
    ck_assert_int_eq(sn_dataset_channels(ds), 1);
    const char *pattern;
    ck_assert_int_eq(sn_dataset_split(ds, "test", &pattern, &n), SN_OK);
    ck_assert_str_eq(pattern, path_of(out, "mnist_test*.tfrecord"));
    sn_dataset_free(ds);

    /* Damaged sources, each named. */
    char out2[PATH_MAX];
    path_into(out2, root, "bad");
    lab[6] = 10;
    write_idx(path_of(src, "t10k-labels-idx1-ubyte"), false, 0x801, 3, 0, lab + 5, 3);
    ck_assert_int_eq(convert(ctx, "mnist", src, out2, 0, 0, 0, 0, NULL), SN_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(sn_ctx_errmsg(ctx), "t10k-labels-idx1-ubyte"));
    write_idx(path_of(src, "t10k-labels-idx1-ubyte"), false, 0x801, 2, 0, lab + 5, 2);
    ck_assert_int_eq(convert(ctx, "mnist", src, out2, 0, 0, 0, 0, NULL), SN_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(sn_ctx_errmsg(ctx), "3 images but"));
    write_idx(path_of(src, "t10k-labels-idx1-ubyte"), false, 0x802, 3, 0, lab + 5, 3);
    ck_assert_int_eq(convert(ctx, "mnist", src, out2, 0, 0, 0, 0, NULL), SN_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(sn_ctx_errmsg(ctx), "magic"));
    write_idx(path_of(src, "t10k-images-idx3-ubyte"), false, 0x803, 0x7fffffff, 28, pix, 784);
    sn__idx f;
    ck_assert_int_eq(sn__idx_open(ctx, src, "t10k-images-idx3-ubyte", 1, &f), SN_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(sn_ctx_errmsg(ctx), "bounds"));
    unlink(path_of(src, "t10k-images-idx3-ubyte"));
    ck_assert_int_eq(convert(ctx, "mnist", src, out2, 0, 0, 0, 0, NULL), SN_ERR_NOT_FOUND);
    ck_assert_ptr_nonnull(strstr(sn_ctx_errmsg(ctx), "t10k-images-idx3-ubyte"));
    /* Truncated image data: the header promises 3 images, the file holds 1. */
    write_idx(path_of(src, "t10k-images-idx3-ubyte"), false, 0x803, 3, 28, pix, 784);
    lab[6] = 1;
    write_idx(path_of(src, "t10k-labels-idx1-ubyte"), false, 0x801, 3, 0, lab + 5, 3);
    ck_assert_int_eq(convert(ctx, "mnist", src, out2, 0, 0, 0, 0, NULL), SN_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(sn_ctx_errmsg(ctx), "truncated at image 1"));
    ck_assert(!exists(path_of(out2, "mnist_train.tfrecord")));   /* nothing renamed */

    /* Debian's dataset-fashion-mnist, when installed: its headers open (no conversion). */
    const char *fm = "/usr/share/datasets/fashion-mnist";
    if (exists(fm)) {
        ck_assert_msg(sn__idx_open(ctx, fm, "train-images-idx3-ubyte", 1, &f) == SN_OK, "%s",
                      sn_ctx_errmsg(ctx));
        ck_assert_int_eq(f.n, 60000);
        ck_assert_int_eq(f.rows, 28);
        ck_assert_int_eq(f.cols, 28);
        sn__idx_close(&f);
        ck_assert_int_eq(sn__idx_open(ctx, fm, "t10k-labels-idx1-ubyte", 0, &f), SN_OK);
        ck_assert_int_eq(f.n, 10000);
        sn__idx_close(&f);
    }
    ct_rmdir(root);
    sn_ctx_free(ctx);
} END_TEST

/* Debian's dataset-fashion-mnist (make's dependency check installs it): the whole of it
 * converted, every record against the idx files.  The "turns
 * /usr/share/datasets/fashion-mnist into mnist-style TFRecords". */
static uint8_t *read_gz(const char *path, size_t skip, size_t n) {
    gzFile f = gzopen(path, "rb");
    ck_assert_msg(f != NULL, "%s", path);
    uint8_t *buf = malloc(skip + n);
    ck_assert_ptr_nonnull(buf);
    ck_assert_int_eq(gzread(f, buf, (unsigned)(skip + n)), (int)(skip + n));
    gzclose(f);
    memmove(buf, buf + skip, n);
    return buf;
}

START_TEST(test_fashion_mnist_convert) {
    const char *fm = "/usr/share/datasets/fashion-mnist";
    if (!exists(path_of(fm, "train-images-idx3-ubyte.gz"))) {
        printf("[dataset] fashion-mnist: skipped, %s not installed\n", fm);
        return;
    }
    sn_ctx *ctx = tu_ctx();
    char *root = ct_tmpdir();
    char out[PATH_MAX];
    path_into(out, root, "fashion");
    sn_convert_report rep;
    ck_assert_msg(convert(ctx, "mnist", fm, out, 0, 0, 0, 0, &rep) == SN_OK, "%s",
                  sn_ctx_errmsg(ctx));
    ck_assert_int_eq(rep.num_classes, 10);
    ck_assert_int_eq(rep.num_train, 60000);
    ck_assert_int_eq(rep.num_test, 10000);
    uint8_t *pix = read_gz(path_of(fm, "t10k-images-idx3-ubyte.gz"), 16, 10000 * 784);
    uint8_t *lab = read_gz(path_of(fm, "t10k-labels-idx1-ubyte.gz"), 8, 10000);
    mnist_src m = {ctx, pix, lab};
    ck_assert_int_eq(read_records(ctx, path_of(out, "mnist_test.tfrecord"), match_mnist, &m),
                     10000);
    free(pix);
    free(lab);
    pix = read_gz(path_of(fm, "train-images-idx3-ubyte.gz"), 16, (size_t)60000 * 784);
    lab = read_gz(path_of(fm, "train-labels-idx1-ubyte.gz"), 8, 60000);
    m.pix = pix;
    m.labels = lab;
    ck_assert_int_eq(read_records(ctx, path_of(out, "mnist_train.tfrecord"), match_mnist, &m),
                     60000);
    free(pix);
    free(lab);
    sn_dataset *ds;
    ck_assert_int_eq(sn_dataset_open(ctx, "mnist", out, NULL, &ds), SN_OK);
    int64_t n;
    ck_assert_int_eq(sn_dataset_split(ds, "test", NULL, &n), SN_OK);
    ck_assert_int_eq(n, 10000);
    sn_dataset_free(ds);
    ct_rmdir(root);
    sn_ctx_free(ctx);
} END_TEST

/* ---- cifar10 ---------------------------------------------------------------------------- */

typedef struct cifar_src {
    sn_ctx *ctx;
    const uint8_t *rec;   /* 3073-byte records in order */
} cifar_src;

static void match_cifar(void *user, const sn_image_example *img, int64_t i) {
    cifar_src *c = user;
    const uint8_t *r = c->rec + i * 3073;
    ck_assert_str_eq(img->format, "png");
    ck_assert_int_eq(img->label, r[0]);
    ck_assert_int_eq(img->height, 32);
    ck_assert_int_eq(img->width, 32);
    sn_tensor *t;
    ck_assert_int_eq(sn_image_decode(c->ctx, img->encoded, img->encoded_len, NULL, &t), SN_OK);
    ck_assert_int_eq(sn_tensor_dim(t, 2), 3);
    const uint8_t *px = sn_tensor_data(t);
    for (int y = 0; y < 32; y++)   /* HWC pixel = CHW plane value */
        for (int x = 0; x < 32; x++)
            for (int ch = 0; ch < 3; ch++)
                ck_assert_int_eq(px[(y * 32 + x) * 3 + ch], r[1 + ch * 1024 + y * 32 + x]);
    sn_tensor_free(t);
}

START_TEST(test_cifar10_convert) {
    sn_ctx *ctx = tu_ctx();
    char *root = ct_tmpdir();
    char src[PATH_MAX];
    path_into(src, root, "cifar-10-batches-bin");
    ck_assert_int_eq(mkdir(src, 0777), 0);
    enum { NTRAIN = 10, NTEST = 3 };
    uint8_t *rec = malloc((NTRAIN + NTEST) * 3073);
    fill_pixels(rec, (NTRAIN + NTEST) * 3073, 5);
    for (int i = 0; i < NTRAIN + NTEST; i++) rec[i * 3073] = (uint8_t)((i * 7) % 10);
    for (int b = 0; b < 5; b++) {   /* two records a batch */
        char name[32];
        snprintf(name, sizeof name, "data_batch_%d.bin", b + 1);
        ct_write(path_of(src, name), rec + b * 2 * 3073, 2 * 3073);
    }
    ct_write(path_of(src, "test_batch.bin"), rec + NTRAIN * 3073, NTEST * 3073);
    char out[PATH_MAX];
    path_into(out, root, "cifar10");
    sn_convert_report rep;
    ck_assert_msg(convert(ctx, "cifar10", src, out, 0, 0, 0, 0, &rep) == SN_OK, "%s",
                  sn_ctx_errmsg(ctx));
    ck_assert_int_eq(rep.num_train, NTRAIN);
    ck_assert_int_eq(rep.num_test, NTEST);
    cifar_src c = {ctx, rec};
    ck_assert_int_eq(read_records(ctx, path_of(out, "cifar10_train.tfrecord"), match_cifar, &c),
                     NTRAIN);
    c.rec = rec + NTRAIN * 3073;
    ck_assert_int_eq(read_records(ctx, path_of(out, "cifar10_test.tfrecord"), match_cifar, &c),
                     NTEST);
    sn_dataset *ds;
    ck_assert_int_eq(sn_dataset_open(ctx, "cifar10", out, NULL, &ds), SN_OK);
    ck_assert_str_eq(sn_dataset_label_name(ds, 0), "airplane");
    ck_assert_str_eq(sn_dataset_label_name(ds, 9), "truck");
    ck_assert_int_eq(sn_dataset_channels(ds), 3);
    sn_dataset_free(ds);
    /* A batch that is not whole records; a label byte over 9. */
    char out2[PATH_MAX];
    path_into(out2, root, "bad");
    ct_write(path_of(src, "data_batch_3.bin"), rec, 3073 + 5);
    ck_assert_int_eq(convert(ctx, "cifar10", src, out2, 0, 0, 0, 0, NULL), SN_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(sn_ctx_errmsg(ctx), "data_batch_3.bin"));
    rec[0] = 10;
    ct_write(path_of(src, "data_batch_3.bin"), rec, 3073);
    ck_assert_int_eq(convert(ctx, "cifar10", src, out2, 0, 0, 0, 0, NULL), SN_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(sn_ctx_errmsg(ctx), "data_batch_3.bin: record at offset 0"));
    unlink(path_of(src, "data_batch_5.bin"));
    ck_assert_int_eq(convert(ctx, "cifar10", src, out2, 0, 0, 0, 0, NULL), SN_ERR_NOT_FOUND);
    ck_assert_ptr_nonnull(strstr(sn_ctx_errmsg(ctx), "data_batch_5.bin"));
    free(rec);
    ct_rmdir(root);
    sn_ctx_free(ctx);
} END_TEST

/* ---- descriptors ------------------------------------------------------------------------ */

START_TEST(test_descriptor_errors) {
    sn_ctx *ctx = tu_ctx();
    char *dir = ct_tmpdir();
    sn_dataset *ds = (sn_dataset *)1;
    /* Unknown names list the known ones. */
    ck_assert_int_eq(sn_dataset_open(ctx, "fer2013", dir, NULL, &ds), SN_ERR_NOT_FOUND);
    ck_assert_ptr_null(ds);
    ck_assert_ptr_nonnull(strstr(sn_ctx_errmsg(ctx), "fer2013"));
    ck_assert_ptr_nonnull(strstr(sn_ctx_errmsg(ctx), "flowers"));
    /* fer and folder need info.json; the TF-slim datasets do not. */
    ck_assert_int_eq(sn_dataset_open(ctx, "fer", dir, NULL, &ds), SN_ERR_NOT_FOUND);
    ck_assert_ptr_nonnull(strstr(sn_ctx_errmsg(ctx), "info.json"));
    ck_assert_int_eq(sn_dataset_open(ctx, "folder", dir, NULL, &ds), SN_ERR_NOT_FOUND);
    ck_assert_int_eq(sn_dataset_open(ctx, "imagenet", dir, NULL, &ds), SN_OK);
    const char *pattern;
    int64_t n;
    ck_assert_int_eq(sn_dataset_num_classes(ds), 1001);
    ck_assert_int_eq(sn_dataset_split(ds, "validation", &pattern, &n), SN_OK);
    ck_assert_int_eq(n, 50000);
    ck_assert_str_eq(pattern, path_of(dir, "validation-*"));
    ck_assert_int_eq(sn_dataset_split(ds, "test", &pattern, &n), SN_ERR_NOT_FOUND);
    ck_assert_ptr_nonnull(strstr(sn_ctx_errmsg(ctx), "no split 'test'"));
    ck_assert_ptr_nonnull(strstr(sn_ctx_errmsg(ctx), "train, validation"));
    ck_assert_ptr_null(sn_dataset_label_name(ds, 0));
    sn_dataset_free(ds);
    ck_assert_int_eq(sn_dataset_open(ctx, "mnist", dir, NULL, &ds), SN_OK);
    ck_assert_int_eq(sn_dataset_split(ds, "train", &pattern, &n), SN_OK);
    ck_assert_int_eq(n, 60000);
    sn_dataset_free(ds);

    /* The fork's own info.json (no "dataset" key) is fer's. */
    write_text(path_of(dir, "info.json"),
               "{\"num_class\": 7, \"num_sample_train\": 25120, \"num_sample_test\": 10766}");
    ck_assert_int_eq(sn_dataset_open(ctx, "folder", dir, NULL, &ds), SN_OK);
    ck_assert_int_eq(sn_dataset_num_classes(ds), 7);
    ck_assert_int_eq(sn_dataset_split(ds, "test", &pattern, &n), SN_OK);
    ck_assert_int_eq(n, 10766);
    ck_assert_str_eq(pattern, path_of(dir, "fer_test*.tfrecord"));
    sn_dataset_free(ds);

    /* labels.txt: names may hold ':' and CRLF line ends; a bad line is named. */
    write_text(path_of(dir, "labels.txt"), "0:angry\r\n1:a:b\n\n6:surprise\n");
    ck_assert_int_eq(sn_dataset_open(ctx, "fer", dir, NULL, &ds), SN_OK);
    ck_assert_str_eq(sn_dataset_label_name(ds, 0), "angry");
    ck_assert_str_eq(sn_dataset_label_name(ds, 1), "a:b");
    ck_assert_str_eq(sn_dataset_label_name(ds, 6), "surprise");
    ck_assert_ptr_null(sn_dataset_label_name(ds, 2));
    sn_dataset_free(ds);
    static const struct { const char *text, *msg; } bad_labels[] = {
        {"0:angry\nhappy\n", "labels.txt:2: expected"},
        {"0:angry\n-1:x\n", "labels.txt:2: expected"},
        {"0:angry\n:x\n", "labels.txt:2: expected"},
        {"0:a\n1:b\n7:c\n", "labels.txt:3: class id 7"},
        {"0:a\n0:b\n", "labels.txt:2: class id 0 appears twice"},
        {"99999999999:a\n", "labels.txt:1: expected"},
    };
    for (size_t i = 0; i < sizeof bad_labels / sizeof *bad_labels; i++) {
        write_text(path_of(dir, "labels.txt"), bad_labels[i].text);
        ck_assert_int_eq(sn_dataset_open(ctx, "fer", dir, NULL, &ds), SN_ERR_FORMAT);
        ck_assert_msg(strstr(sn_ctx_errmsg(ctx), bad_labels[i].msg) != NULL, "%zu: %s", i,
                      sn_ctx_errmsg(ctx));
    }
    unlink(path_of(dir, "labels.txt"));

    /* info.json: malformed JSON (with its line), wrong values, missing splits, size. */
    static const struct { const char *text, *msg; } bad_info[] = {
        {"{\"num_class\": 7,\n \"num_sample_train\": }", "info.json:2: not valid JSON"},
        {"[1, 2]", "not a JSON object"},
        {"{\"num_sample_train\": 1, \"num_sample_test\": 1}", "\"num_class\""},
        {"{\"num_class\": -3, \"num_sample_train\": 1, \"num_sample_test\": 1}", "\"num_class\""},
        {"{\"num_class\": 2.5, \"num_sample_train\": 1, \"num_sample_test\": 1}", "\"num_class\""},
        {"{\"num_class\": 7, \"num_sample_train\": \"10\", \"num_sample_test\": 1}",
         "\"num_sample_train\" must be"},
        {"{\"num_class\": 7, \"num_sample_train\": 10}", "no \"num_sample_test\""},
        {"{\"num_class\": 7, \"num_sample_train\": 1, \"num_sample_test\": 1, "
         "\"dataset\": \"../x*\"}", "\"dataset\""},
        {"{\"num_class\": 7, \"num_sample_Bad*\": 1}", "split name"},
    };
    for (size_t i = 0; i < sizeof bad_info / sizeof *bad_info; i++) {
        write_text(path_of(dir, "info.json"), bad_info[i].text);
        ck_assert_int_eq(sn_dataset_open(ctx, "fer", dir, NULL, &ds), SN_ERR_FORMAT);
        ck_assert_msg(strstr(sn_ctx_errmsg(ctx), bad_info[i].msg) != NULL, "%zu: %s", i,
                      sn_ctx_errmsg(ctx));
        ck_assert_ptr_nonnull(strstr(sn_ctx_errmsg(ctx), "info.json"));
    }
    write_text(path_of(dir, "info.json"), "{\"num_class\": 7}");   /* folder: no split */
    ck_assert_int_eq(sn_dataset_open(ctx, NULL, dir, NULL, &ds), SN_ERR_FORMAT);
    size_t big = SN__INFO_JSON_MAX + 1;   /* over the bound: refused before reading */
    char *huge = malloc(big);
    memset(huge, ' ', big);
    ct_write(path_of(dir, "info.json"), huge, big);
    free(huge);
    ck_assert_int_eq(sn_dataset_open(ctx, "fer", dir, NULL, &ds), SN_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(sn_ctx_errmsg(ctx), "more than"));
    ck_assert_int_eq(sn_dataset_open(ctx, "fer", NULL, NULL, &ds), SN_ERR_INVALID_ARG);
    ck_assert_int_eq(sn_dataset_open(NULL, "fer", dir, NULL, &ds), SN_ERR_INVALID_ARG);
    ck_assert_int_eq(sn_dataset_split(NULL, "train", NULL, NULL), SN_ERR_INVALID_ARG);
    sn_dataset_free(NULL);
    ct_rmdir(dir);
    sn_ctx_free(ctx);
} END_TEST

/* A labels.txt alone (TF-slim's dataset_dir, the labels beside a published checkpoint):
 * the class count is the highest id + 1; its errors are named. */
START_TEST(test_labels_only) {
    sn_ctx *ctx = tu_ctx();
    char *dir = ct_tmpdir();
    sn_dataset *ds = (sn_dataset *)1;
    ck_assert_int_eq(sn__dataset_open_labels(ctx, dir, &ds), SN_ERR_NOT_FOUND);
    ck_assert_ptr_null(ds);
    ck_assert_ptr_nonnull(strstr(sn_ctx_errmsg(ctx), "labels.txt"));
    write_text(path_of(dir, "labels.txt"),
               "0:background\n1:tench, Tinca tinca\r\n\n3:a:b\n1000:toilet tissue\n");
    ck_assert_int_eq(sn__dataset_open_labels(ctx, dir, &ds), SN_OK);
    ck_assert_int_eq(sn_dataset_num_classes(ds), 1001);
    ck_assert_int_eq(sn_dataset_num_splits(ds), 0);
    ck_assert_str_eq(sn_dataset_label_name(ds, 0), "background");
    ck_assert_str_eq(sn_dataset_label_name(ds, 1), "tench, Tinca tinca");
    ck_assert_ptr_null(sn_dataset_label_name(ds, 2));
    ck_assert_str_eq(sn_dataset_label_name(ds, 3), "a:b");
    ck_assert_str_eq(sn_dataset_label_name(ds, 1000), "toilet tissue");
    ck_assert_ptr_null(sn_dataset_label_name(ds, 1001));
    sn_dataset_free(ds);
    static const struct { const char *text, *msg; } bad[] = {
        {"", "no \"<id>:<name>\" line"},
        {"\n\n", "no \"<id>:<name>\" line"},
        {"0:a\nb\n", "labels.txt:2: expected"},
        {"0:a\n1048576:b\n", "labels.txt:2: class id 1048576, ids must be below"},
        {"0:a\n1:b\n0:c\n", "labels.txt:3: class id 0 appears twice"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        write_text(path_of(dir, "labels.txt"), bad[i].text);
        ck_assert_int_eq(sn__dataset_open_labels(ctx, dir, &ds), SN_ERR_FORMAT);
        ck_assert_ptr_null(ds);
        ck_assert_msg(strstr(sn_ctx_errmsg(ctx), bad[i].msg) != NULL, "%zu: %s", i,
                      sn_ctx_errmsg(ctx));
    }
    /* sn_dataset_open itself still wants info.json for a folder. */
    write_text(path_of(dir, "labels.txt"), "0:a\n");
    ck_assert_int_eq(sn_dataset_open(ctx, "folder", dir, NULL, &ds), SN_ERR_NOT_FOUND);
    ct_rmdir(dir);
    sn_ctx_free(ctx);
} END_TEST

/* ---- the tool ---------------------------------------------------------------------------- */

/* build/bin/slimnet-convert beside build/tests/run_tests (SN_BIN_DIR overrides), or NULL. */
static const char *tool_path(char *buf, size_t len) {
    const char *env = getenv("SN_BIN_DIR");
    char exe[PATH_MAX];
    if (env && env[0]) {
        snprintf(exe, sizeof exe, "%s", env);
    } else {
        ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
        if (n <= 0) return NULL;
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (!slash) return NULL;
        snprintf(slash, sizeof exe - (size_t)(slash - exe), "/../bin");
    }
    if ((size_t)snprintf(buf, len, "%.*s/slimnet-convert", (int)(len - 20), exe) >= len)
        return NULL;
    return access(buf, X_OK) == 0 ? buf : NULL;
}

/* Runs the tool with stdout and stderr into log; returns its exit status. */
static int run_tool(const char *tool, const char *log, const char *const *args) {
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        const char *argv[16] = {tool};
        int n = 1;
        for (; args[n - 1] && n < 15; n++) argv[n] = args[n - 1];
        argv[n] = NULL;
        if (!freopen(log, "w", stdout) || dup2(fileno(stdout), 2) < 0) _exit(127);
        execv(tool, (char *const *)argv);
        _exit(127);
    }
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status));
    return WEXITSTATUS(status);
}

static bool log_has(const char *log, const char *text) {
    size_t len;
    char *s = (char *)ct_read(log, &len);
    s[len] = '\0';
    bool yes = strstr(s, text) != NULL;
    free(s);
    return yes;
}

START_TEST(test_tool) {
    char buf[PATH_MAX];
    const char *tool = tool_path(buf, sizeof buf);
    if (!tool) {
        fprintf(stderr, "dataset: slimnet-convert not built; tool test skipped (make tools)\n");
        return;
    }
    sn_ctx *ctx = tu_ctx();
    char *root = ct_tmpdir();
    char log[PATH_MAX], out[PATH_MAX];
    snprintf(log, sizeof log, "%s/log", root);
    snprintf(out, sizeof out, "%s/out", root);
    tree t = fer_tree(ctx, root);
    const char *bad1[] = {"--dataset_name=fer", "--bogus=1", NULL};
    ck_assert_int_eq(run_tool(tool, log, bad1), 2);
    ck_assert(log_has(log, "--bogus=1: unknown flag"));
    const char *bad2[] = {"--dataset_name=fer", "--pic_path", t.dir, "--dataset_dir", out,
                          "--seed", "x1", NULL};
    ck_assert_int_eq(run_tool(tool, log, bad2), 2);
    ck_assert(log_has(log, "--seed: expects"));
    const char *bad3[] = {"--test_fraction=1.5", NULL};
    ck_assert_int_eq(run_tool(tool, log, bad3), 2);
    const char *bad4[] = {"--dataset_name", NULL};
    ck_assert_int_eq(run_tool(tool, log, bad4), 2);
    ck_assert(log_has(log, "--dataset_name: needs a value"));
    const char *ver[] = {"--version", NULL};
    ck_assert_int_eq(run_tool(tool, log, ver), 0);
    ck_assert(log_has(log, sn_version()));
    /* Both flag spellings, and the fork's --pic_path. */
    const char *ok[] = {"--dataset_name", "fer", "--pic_path", t.dir, "--dataset_dir=", NULL};
    ck_assert_int_eq(run_tool(tool, log, ok), 2);   /* empty value */
    const char *good[] = {"--dataset_name", "fer", "--pic_path", t.dir, "--dataset_dir", out,
                          "--seed=3", "--validation_fraction", "0.2", NULL};
    ck_assert_int_eq(run_tool(tool, log, good), 0);
    ck_assert(log_has(log, "100 images (train 80, test 20), 3 classes, 2 files skipped"));
    ck_assert(log_has(log, "fer_train.tfrecord"));
    ck_assert(log_has(log, "80 records"));
    ck_assert(log_has(log, "      0 angry"));
    ck_assert_int_eq(run_tool(tool, log, good), 1);   /* exists */
    ck_assert(log_has(log, "exists"));
    free_tree(&t);
    ct_rmdir(root);
    sn_ctx_free(ctx);
} END_TEST

Suite *suite_dataset(void) {
    Suite *s = suite_create("dataset");
    TCase *tc = tcase_create("dataset");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_fer_convert);
    tcase_add_test(tc, test_fer_seed_overwrite_shards);
    tcase_add_test(tc, test_fer_bad_images);
    tcase_add_test(tc, test_flowers_convert);
    tcase_add_test(tc, test_mnist_convert);
    tcase_add_test(tc, test_fashion_mnist_convert);
    tcase_add_test(tc, test_cifar10_convert);
    tcase_add_test(tc, test_descriptor_errors);
    tcase_add_test(tc, test_labels_only);
    tcase_add_test(tc, test_tool);
    suite_add_tcase(s, tc);
    return s;
}
