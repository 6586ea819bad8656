/* test_events_parity.c: event files for TensorFlow and TensorBoard to read (make parity).
 *
 * Writes <out>/events/: one event file with scalars and histograms, and manifest.json
 * listing the file and every value written, for tests/reference/check_events.py, which reads
 * the file with tf.compat.v1.train.summary_iterator and TensorBoard's EventAccumulator and
 * compares each histogram with the one TF's own HistogramSummary op makes from the same
 * values.  <out> is SN_REFERENCE_OUT or tests/reference/out; when that folder does not exist
 * (no `make parity` run yet) the suite passes with a note, as ckpt_parity does. */
#include <cjson/cJSON.h>
#include <float.h>
#include <sys/stat.h>
#include "ckpt_testutil.h"

static const char *ref_out(void) {
    const char *e = getenv("SN_REFERENCE_OUT");
    return e && e[0] ? e : "tests/reference/out";
}

static void add_floats(cJSON *obj, const char *key, const float *v, size_t n) {
    cJSON *a = cJSON_AddArrayToObject(obj, key);
    for (size_t i = 0; i < n; i++)   /* a float is exact as a double; cJSON prints %.17g */
        cJSON_AddItemToArray(a, cJSON_CreateNumber((double)v[i]));
}

START_TEST(test_write_for_tensorboard) {
    struct stat sb;
    if (stat(ref_out(), &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        fprintf(stderr, "events_parity: no %s; skipped (make parity runs it)\n", ref_out());
        return;
    }
    sn_ctx *ctx = tu_ctx();
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s/events", ref_out());
    ct_rmdir(strdup(dir));   /* sn_events_open makes it again */
    sn_events *ev;
    ck_assert_msg(sn_events_open(ctx, dir, &ev) == SN_OK, "%s", sn_ctx_errmsg(ctx));
    cJSON *root = cJSON_CreateObject();
    const char *path = sn_events_path(ev);
    cJSON_AddStringToObject(root, "file", strrchr(path, '/') + 1);

    /* Scalars: two tags, steps out of order too (TensorBoard keeps file order). */
    static const struct { const char *tag; int64_t step; float value; } sc[] = {
        {"losses/total_loss", 0, 2.5f},   {"losses/total_loss", 100, 1.0625f},
        {"losses/total_loss", 200, 0.1f}, {"learning_rate", 0, 0.01f},
        {"learning_rate", 200, 1e-3f},    {"losses/total_loss", 150, -3.75e-5f},
    };
    cJSON *scalars = cJSON_AddArrayToObject(root, "scalars");
    for (size_t i = 0; i < sizeof sc / sizeof sc[0]; i++) {
        ck_assert_int_eq(sn_events_scalar(ev, sc[i].tag, sc[i].step, sc[i].value), SN_OK);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "tag", sc[i].tag);
        cJSON_AddNumberToObject(o, "step", (double)sc[i].step);
        cJSON_AddNumberToObject(o, "value", (double)sc[i].value);
        cJSON_AddItemToArray(scalars, o);
    }

    /* Histograms: weights-like values, activations with many exact zeros, extremes, a
     * single value, an empty one. */
    enum { NW = 4096, NA = 1000 };
    float *w = malloc(NW * sizeof *w), *act = malloc(NA * sizeof *act);
    tu_fill(w, NW, 11);
    for (int i = 0; i < NW; i++) w[i] *= 0.05f;
    tu_fill(act, NA, 12);
    for (int i = 0; i < NA; i++) act[i] = act[i] > 0 ? act[i] * 6.0f : 0.0f;   /* relu */
    static const float ext[] = {3.4e38f, -3.4e38f, 1e-12f, -1e-12f, 1e-30f, 1.4e-45f, 0.0f,
                                -0.0f, 1e20f, 9.9e19f, 1.0f, -1.0f, 1.1f};
    static const float one[] = {42.0f};
    struct { const char *tag; int64_t step; const float *v; size_t n; } hs[] = {
        {"conv1/weights", 0, w, NW},         {"conv1/weights", 100, w, NW / 2},
        {"conv1/activations", 100, act, NA}, {"extremes", 5, ext, sizeof ext / sizeof ext[0]},
        {"single", 6, one, 1},               {"empty", 7, NULL, 0},
    };
    cJSON *histos = cJSON_AddArrayToObject(root, "histograms");
    for (size_t i = 0; i < sizeof hs / sizeof hs[0]; i++) {
        ck_assert_msg(sn_events_histogram(ev, hs[i].tag, hs[i].step, hs[i].v, hs[i].n) == SN_OK,
                      "%s", sn_ctx_errmsg(ctx));
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "tag", hs[i].tag);
        cJSON_AddNumberToObject(o, "step", (double)hs[i].step);
        add_floats(o, "values", hs[i].v, hs[i].n);
        cJSON_AddItemToArray(histos, o);
    }
    ck_assert_int_eq(sn_events_close(ev), SN_OK);

    char mpath[PATH_MAX + 16], *text = cJSON_Print(root);
    snprintf(mpath, sizeof mpath, "%s/manifest.json", dir);
    ct_write(mpath, text, strlen(text));
    free(text);
    cJSON_Delete(root);
    free(w);
    free(act);
    sn_ctx_free(ctx);
} END_TEST

Suite *suite_events_parity(void) {
    Suite *s = suite_create("events_parity");
    TCase *tc = tcase_create("events_parity");
    tcase_add_test(tc, test_write_for_tensorboard);
    suite_add_tcase(s, tc);
    return s;
}
