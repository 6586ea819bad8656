/* seeds.c: the seed corpora of the fuzz targets, written by slimnet's own writers (and the
 * test suite's V1 writer: slimnet writes no V1), one folder per target:
 *   fuzz_seeds OUT     writes OUT/<target>/<name> for every target of targets.def.
 * make fuzz runs it before the fuzzers; each seed is a small valid input of its kind, so that
 * the fuzzer starts from the accepting paths. */
#include <limits.h>
#include <sys/stat.h>
#include <turbojpeg.h>
#include "../ckpt_testutil.h"
#include "fuzz.h"

static const char *g_out;
static sn_ctx *g_ctx;

static void seed(const char *target, const char *name, const void *p, size_t n) {
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", g_out, target);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/%s/%s", g_out, target, name);
    ct_write(path, p, n);
}

/* A seed of several parts joined by FZ_SEP. */
static void seed_parts(const char *target, const char *name, int n, const uint8_t **part,
                       const size_t *len) {
    sn__buf b = {0};
    for (int i = 0; i < n; i++) {
        if (i) sn__buf_put(&b, FZ_SEP, sizeof FZ_SEP - 1);
        sn__buf_put(&b, part[i], len[i]);
    }
    seed(target, name, b.p, b.n);
    sn__buf_free(&b);
}

static sn_tensor *picture(int h, int w, int c, uint64_t s) {
    int64_t dims[3] = {h, w, c};
    sn_tensor *t = NULL;
    FZ_CHECK(sn_tensor_new(g_ctx, SN_DTYPE_U8, 3, dims, &t) == SN_OK);
    uint8_t *p = sn_tensor_data(t);
    for (int i = 0; i < h * w * c; i++) p[i] = (uint8_t)(128 + 100 * tu_rand(&s));
    return t;
}

static void images(void) {
    static const int shapes[][3] = {{8, 8, 1}, {8, 8, 3}, {17, 33, 3}, {48, 48, 1}};
    for (int i = 0; i < 4; i++) {
        sn_tensor *img = picture(shapes[i][0], shapes[i][1], shapes[i][2], (uint64_t)i + 1);
        sn_tensor *enc = NULL;
        char name[32];
        FZ_CHECK(sn_image_encode_jpeg(g_ctx, img, 90, &enc) == SN_OK);
        snprintf(name, sizeof name, "slimnet_%d.jpg", i);
        seed("image", name, sn_tensor_data(enc), sn_tensor_nbytes(enc));
        sn_tensor_free(enc);
        FZ_CHECK(sn_image_encode_png(g_ctx, img, &enc) == SN_OK);
        snprintf(name, sizeof name, "slimnet_%d.png", i);
        seed("image", name, sn_tensor_data(enc), sn_tensor_nbytes(enc));
        sn_tensor_free(enc);
        sn_tensor_free(img);
    }
    /* progressive and CMYK JPEGs, which slimnet's encoder does not write */
    uint8_t px[16 * 16 * 4];
    uint64_t s = 9;
    for (size_t i = 0; i < sizeof px; i++) px[i] = (uint8_t)(128 + 100 * tu_rand(&s));
    struct { const char *name; int pf, samp, flags; } kinds[] = {
        {"progressive.jpg", TJPF_RGB, TJSAMP_420, TJFLAG_PROGRESSIVE},
        {"cmyk.jpg", TJPF_CMYK, TJSAMP_444, 0},
    };
    for (int k = 0; k < 2; k++) {
        tjhandle tj = tjInitCompress();
        unsigned char *jpg = NULL;
        unsigned long size = 0;
        FZ_CHECK(tjCompress2(tj, px, 16, 0, 16, kinds[k].pf, &jpg, &size, kinds[k].samp, 85,
                             kinds[k].flags) == 0);
        seed("image", kinds[k].name, jpg, size);
        tjFree(jpg);
        tjDestroy(tj);
    }
}

/* Serialized Examples: an image record as slimnet-convert writes it, and lists of each kind. */
static void examples(sn__buf *records, int *n_records) {
    sn_example *ex = NULL;
    FZ_CHECK(sn_example_new(g_ctx, &ex) == SN_OK);
    sn_tensor *img = picture(8, 8, 1, 3), *enc = NULL;
    FZ_CHECK(sn_image_encode_png(g_ctx, img, &enc) == SN_OK);
    sn_image_example ie = {sn_tensor_data(enc), sn_tensor_nbytes(enc), "png", 4, 8, 8};
    FZ_CHECK(sn_example_set_image(ex, &ie) == SN_OK);
    const uint8_t *p;
    size_t n;
    FZ_CHECK(sn_example_serialize(ex, &p, &n) == SN_OK);
    seed("example", "image.bin", p, n);
    records[(*n_records)++] = (sn__buf){0};
    sn__buf_put(&records[*n_records - 1], p, n);
    sn_example_clear(ex);
    int64_t iv[3] = {-1, 0, INT64_MAX};
    float fv[2] = {0.5f, -1e30f};
    const void *bv[2] = {"ab", ""};
    size_t bl[2] = {2, 0};
    FZ_CHECK(sn_example_set_int64(ex, "i", iv, 3) == SN_OK);
    FZ_CHECK(sn_example_set_float(ex, "f", fv, 2) == SN_OK);
    FZ_CHECK(sn_example_set_bytes(ex, "b", bv, bl, 2) == SN_OK);
    FZ_CHECK(sn_example_serialize(ex, &p, &n) == SN_OK);
    seed("example", "lists.bin", p, n);
    records[(*n_records)++] = (sn__buf){0};
    sn__buf_put(&records[*n_records - 1], p, n);
    sn_example_free(ex);
    sn_tensor_free(enc);
    sn_tensor_free(img);
}

/* The records in a file of each compression, the compression byte first (as the target). */
static void tfrecords(const sn__buf *records, int n_records) {
    static const char *names[3] = {"none.bin", "zlib.bin", "gzip.bin"};
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/records.tmp", g_out);
    for (int c = 0; c < 3; c++) {
        sn_tfrecord_writer *w = NULL;
        FZ_CHECK(sn_tfrecord_writer_open(g_ctx, path, (sn_compression)c, &w) == SN_OK);
        for (int i = 0; i < n_records; i++)
            FZ_CHECK(sn_tfrecord_write(w, records[i].p, records[i].n) == SN_OK);
        FZ_CHECK(sn_tfrecord_write(w, NULL, 0) == SN_OK);
        FZ_CHECK(sn_tfrecord_writer_close(w) == SN_OK);
        size_t len;
        uint8_t *file = ct_read(path, &len);
        uint8_t *withc = malloc(len + 1);
        withc[0] = (uint8_t)c;
        memcpy(withc + 1, file, len);
        seed("tfrecord", names[c], withc, len + 1);
        free(withc);
        free(file);
    }
    remove(path);
}

/* A V2 bundle of every dtype slimnet writes (index, then its data), and the state file of
 * a folder after three saves. */
static void checkpoints(void) {
    char dir[PATH_MAX], prefix[PATH_MAX + 16], path[PATH_MAX + 64];
    snprintf(dir, sizeof dir, "%s/ckpt.tmp", g_out);
    mkdir(dir, 0755);
    int64_t conv[4] = {3, 3, 2, 4}, vec = 5, img[3] = {2, 2, 3};
    sn_tensor *t[4];
    sn_dtype dt[4] = {SN_DTYPE_F32, SN_DTYPE_I32, SN_DTYPE_I64, SN_DTYPE_U8};
    int rank[4] = {4, 1, 0, 3};
    const int64_t *dims[4] = {conv, &vec, NULL, img};
    sn_ckpt_entry e[4];
    static const char *names[4] = {"net/conv/weights", "net/ids", "global_step", "net/u8"};
    for (int i = 0; i < 4; i++) {
        FZ_CHECK(sn_tensor_new(g_ctx, dt[i], rank[i], dims[i], &t[i]) == SN_OK);
        uint8_t *p = sn_tensor_data(t[i]);
        for (size_t k = 0; k < sn_tensor_nbytes(t[i]); k++) p[k] = (uint8_t)(k * 7 + i);
        e[i] = (sn_ckpt_entry){names[i], t[i]};
    }
    for (int step = 1; step <= 3; step++) {
        snprintf(prefix, sizeof prefix, "%s/model.ckpt-%d", dir, step);
        FZ_CHECK(sn_ckpt_write(g_ctx, prefix, step == 3 ? 4 : 1, e) == SN_OK);
        FZ_CHECK(sn_ckpt_state_update(g_ctx, dir, prefix, 2) == SN_OK);
    }
    size_t len[2];
    const uint8_t *part[2];
    snprintf(path, sizeof path, "%s.index", prefix);
    uint8_t *index = ct_read(path, &len[0]);
    snprintf(path, sizeof path, "%s.data-00000-of-00001", prefix);
    uint8_t *data = ct_read(path, &len[1]);
    part[0] = index, part[1] = data;
    seed_parts("ckpt_v2", "four_dtypes.bin", 2, part, len);
    free(index);
    free(data);
    snprintf(path, sizeof path, "%s/checkpoint", dir);
    size_t sl;
    uint8_t *state = ct_read(path, &sl);
    seed("ckpt_state", "slimnet.txt", state, sl);
    free(state);
    static const char tf1[] =
        "model_checkpoint_path: \"/old/train_dir/model.ckpt-2\"\n"
        "all_model_checkpoint_paths: '/old/train_dir/model.ckpt-1'\n"
        "all_model_checkpoint_paths: \"../outside/model.ckpt-9\"\n"
        "all_model_checkpoint_paths: \"/old/train\\137dir/model.ckpt-2\"\n"
        "all_model_checkpoint_timestamps: 1700000000.5\n";
    seed("ckpt_state", "tf1.txt", tf1, sizeof tf1 - 1);
    for (int i = 0; i < 4; i++) sn_tensor_free(t[i]);
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    FZ_CHECK(system(cmd) == 0);
}

/* V1 files as TensorSliceWriter lays them out, raw and snappy, one partitioned tensor. */
static void v1(void) {
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/v1.tmp", g_out);
    float w[12];
    int32_t ids[3] = {1, -2, 3};
    tu_fill(w, 12, 4);
    ct_v1_tensor t[2] = {
        {"w", SN__DT_FLOAT, 2, {4, 3}, w, 2, {{0, 0}, {2, 0}}, {{2, -1}, {2, -1}}},
        {"ids", SN__DT_INT32, 1, {3}, ids, 0, {{0}}, {{0}}},
    };
    for (int snappy = 0; snappy < 2; snappy++) {
        ct_v1_write(g_ctx, path, snappy, 2, t);
        size_t len;
        uint8_t *file = ct_read(path, &len);
        seed("ckpt_v1", snappy ? "snappy.ckpt" : "raw.ckpt", file, len);
        free(file);
    }
    remove(path);
}

/* info.json and labels.txt as slimnet-convert writes them, from a two-class tree. */
static void datasets(void) {
    char tree[PATH_MAX], out[PATH_MAX], path[PATH_MAX + 64];
    snprintf(tree, sizeof tree, "%s/tree.tmp", g_out);
    snprintf(out, sizeof out, "%s/data.tmp", g_out);
    mkdir(tree, 0755);
    static const char *classes[2] = {"happy", "sad"};
    for (int c = 0; c < 2; c++) {
        snprintf(path, sizeof path, "%s/%s", tree, classes[c]);
        mkdir(path, 0755);
        for (int i = 0; i < 2; i++) {
            sn_tensor *img = picture(8, 8, 1, (uint64_t)(10 * c + i)), *enc = NULL;
            FZ_CHECK(sn_image_encode_jpeg(g_ctx, img, 90, &enc) == SN_OK);
            snprintf(path, sizeof path, "%s/%s/%d.jpg", tree, classes[c], i);
            ct_write(path, sn_tensor_data(enc), sn_tensor_nbytes(enc));
            sn_tensor_free(enc);
            sn_tensor_free(img);
        }
    }
    sn_convert_params cp = sn_convert_params_default();
    cp.dataset_name = "fer";
    cp.source = tree;
    cp.dataset_dir = out;
    FZ_CHECK(sn_dataset_convert(g_ctx, &cp, NULL) == SN_OK);
    size_t len[2];
    const uint8_t *part[2];
    snprintf(path, sizeof path, "%s/info.json", out);
    uint8_t *info = ct_read(path, &len[0]);
    snprintf(path, sizeof path, "%s/labels.txt", out);
    uint8_t *labels = ct_read(path, &len[1]);
    part[0] = info, part[1] = labels;
    seed_parts("dataset", "fer.bin", 2, part, len);
    static const char imagenet_labels[] = "0:background\n1:tench, Tinca tinca\n2:goldfish\n";
    part[0] = (const uint8_t *)"", len[0] = 0;
    part[1] = (const uint8_t *)imagenet_labels, len[1] = sizeof imagenet_labels - 1;
    seed_parts("dataset", "labels_only.bin", 2, part, len);
    free(info);
    free(labels);
    char cmd[2 * PATH_MAX + 32];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s'", tree, out);
    FZ_CHECK(system(cmd) == 0);
}

/* The converters' sources, which slimnet reads but never writes: mnist's idx files (big
 * endian header: magic, count, rows, columns) and cifar10's 3073-byte records (a label, then
 * 32x32 red, green, blue planes), one record per file. */
static void sources(void) {
    sn__buf b = {0};
    sn__buf_put_u8(&b, 0);   /* mnist */
    static const uint8_t img_magic[4] = {0, 0, 8, 3}, lab_magic[4] = {0, 0, 8, 1};
    for (int split = 0; split < 2; split++) {
        uint32_t count = split ? 1 : 2, side = 3;
        uint8_t hdr[16];
        memcpy(hdr, img_magic, 4);
        for (int k = 0; k < 3; k++) {
            uint32_t v = k == 0 ? count : side;
            hdr[4 + 4 * k] = (uint8_t)(v >> 24), hdr[5 + 4 * k] = (uint8_t)(v >> 16);
            hdr[6 + 4 * k] = (uint8_t)(v >> 8), hdr[7 + 4 * k] = (uint8_t)v;
        }
        if (split) sn__buf_put(&b, FZ_SEP, sizeof FZ_SEP - 1);
        sn__buf_put(&b, hdr, 16);
        for (uint32_t i = 0; i < count * side * side; i++) sn__buf_put_u8(&b, (uint8_t)(i * 29));
        sn__buf_put(&b, FZ_SEP, sizeof FZ_SEP - 1);
        memcpy(hdr, lab_magic, 4);
        sn__buf_put(&b, hdr, 8);
        for (uint32_t i = 0; i < count; i++) sn__buf_put_u8(&b, (uint8_t)(i + 3));
    }
    seed("convert", "mnist.bin", b.p, b.n);
    b.n = 0;
    sn__buf_put_u8(&b, 1);   /* cifar10 */
    for (int f = 0; f < 6; f++) {
        if (f) sn__buf_put(&b, FZ_SEP, sizeof FZ_SEP - 1);
        sn__buf_put_u8(&b, (uint8_t)f);
        for (int i = 0; i < 3072; i++) sn__buf_put_u8(&b, (uint8_t)(i * 7 + f));
    }
    seed("convert", "cifar10.bin", b.p, b.n);
    sn__buf_free(&b);
}

static void flag_lines(void) {
    static const char a[] = "--count=5\0--steps\0" "100\0--rate=0.25\0--noon\0image.jpg";
    static const char b[] = "--alias=9\0--decay=-1e-3\0--on\0--name=None\0--help";
    static const char c[] = "--count=1000\0--rate=abc\0--unknown";
    seed("flags", "lines.bin", a, sizeof a - 1);
    seed("flags", "alias.bin", b, sizeof b - 1);
    seed("flags", "bad.bin", c, sizeof c - 1);
}

/* The environments of the process group: TF_CONFIGs as TensorFlow's docs write them, and
 * the launchers' variables (parts in dist_env.c's order). */
static void dist_envs(void) {
    static const char *tf[] = {
        ("{\"cluster\": {\"chief\": [\"10.0.0.1:2222\"], \"worker\": [\"10.0.0.2:2222\", "
         "\"10.0.0.3:2222\"], \"ps\": [\"10.0.0.4:2222\"]}, \"task\": {\"type\": \"worker\", "
         "\"index\": 1}}"),
        ("{\"cluster\": {\"master\": [\"[::1]:2222\"], \"evaluator\": [\"host:1\"]}, "
         "\"task\": {\"type\": \"evaluator\", \"index\": 0}}"),
        "{\"cluster\": {\"worker\": [\"a:1\", \"b:2\"]}, \"task\": {\"type\": \"ps\"}}",
    };
    char name[32];
    for (int i = 0; i < 3; i++) {
        snprintf(name, sizeof name, "tf_config%d.json", i);
        seed("dist_env", name, tf[i], strlen(tf[i]));
    }
    /* RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT, SLURM_* */
    const uint8_t *part[9];
    size_t len[9];
    static const char *torchrun[] = {"1", "4", "1", "2", "node1", "29400"};
    static const char *slurm[] = {"", "", "", "", "", "", "3", "8", "1"};
    for (int i = 0; i < 6; i++) part[i] = (const uint8_t *)torchrun[i], len[i] = strlen(torchrun[i]);
    seed_parts("dist_env", "torchrun.bin", 6, part, len);
    for (int i = 0; i < 9; i++) part[i] = (const uint8_t *)slurm[i], len[i] = strlen(slurm[i]);
    seed_parts("dist_env", "slurm.bin", 9, part, len);
}

/* A request to the rendezvous store (store.c's protocol): op, a, b, then the bytes. */
static void store_request(sn__buf *b, uint8_t op, const void *x, uint32_t a, const void *y,
                          uint32_t n) {
    uint8_t head[9] = {op};
    for (int i = 0; i < 4; i++) {
        head[1 + i] = (uint8_t)(a >> (8 * i));
        head[5 + i] = (uint8_t)(n >> (8 * i));
    }
    sn__buf_put(b, head, 9);
    sn__buf_put(b, x, a);
    sn__buf_put(b, y, n);
}

/* Conversations with the store as the ranks have them: a group of 3, rank 1 says hello,
 * sets and gets keys, reports a collective, asks who is there and leaves; a second
 * connection of rank 2 that sends half a request. */
static void store_sessions(void) {
    sn__buf b = {0};
    uint8_t size = 2;   /* 1 + 2 % 8 ranks */
    sn__buf_put(&b, &size, 1);
    static const uint8_t rank1[4] = {1, 0, 0, 0}, rank2[4] = {2, 0, 0, 0};
    static const uint8_t progress[9] = {7, 0, 0, 0, 0, 0, 0, 0, 1};
    store_request(&b, 1, "worker 0 (127.0.0.1:2223)", 25, rank1, 4);
    store_request(&b, 2, "gloo/1", 6, "127.0.0.1:40000", 15);
    store_request(&b, 3, "gloo/1", 6, NULL, 0);
    store_request(&b, 3, "gloo/0", 6, NULL, 0);
    store_request(&b, 4, NULL, 0, progress, 9);
    store_request(&b, 5, NULL, 0, NULL, 0);
    store_request(&b, 6, NULL, 0, NULL, 0);
    sn__buf_put(&b, FZ_SEP, sizeof FZ_SEP - 1);
    store_request(&b, 1, "worker 1", 8, rank2, 4);
    store_request(&b, 2, "nccl/id", 7, NULL, 0);
    sn__buf_put(&b, "\x02\x05\x00\x00\x00", 5);
    seed("dist_store", "session.bin", b.p, b.n);
    sn__buf_free(&b);
}

/* Check's assertions (which ckpt_testutil.h's helpers use) report to a test runner: the
 * writing runs as the one test of a suite, in this process. */
START_TEST(write_seeds) {
    mkdir(g_out, 0755);
    sn_ctx_params p = sn_ctx_params_default();
    p.threads = 1;
    ck_assert_int_eq(sn_ctx_new(&p, &g_ctx), SN_OK);
    sn__buf records[4];
    int n_records = 0;
    images();
    examples(records, &n_records);
    tfrecords(records, n_records);
    for (int i = 0; i < n_records; i++) sn__buf_free(&records[i]);
    checkpoints();
    v1();
    datasets();
    sources();
    flag_lines();
    dist_envs();
    store_sessions();
    sn_ctx_free(g_ctx);
}
END_TEST

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: fuzz_seeds OUT\n");
        return 2;
    }
    g_out = argv[1];
    Suite *s = suite_create("fuzz_seeds");
    TCase *tc = tcase_create("seeds");
    tcase_add_test(tc, write_seeds);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_SILENT);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
