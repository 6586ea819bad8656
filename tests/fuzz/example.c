/* example.c: fuzz target for tf.train.Example parsing.  Every feature is read with its
 * getter; a parsed Example serializes, and that parses again to the same bytes. */
#include <string.h>
#include "fuzz.h"

static sn_example *g_ex, *g_again;

SN_FUZZ_TARGET(example) {
    if (!g_ex) {
        FZ_CHECK(sn_example_new(fz_ctx(), &g_ex) == SN_OK);
        FZ_CHECK(sn_example_new(fz_ctx(), &g_again) == SN_OK);
    }
    if (sn_example_parse(g_ex, data, size) != SN_OK) {
        FZ_CHECK(sn_example_num_features(g_ex) == 0);
        return 0;
    }
    for (size_t i = 0; i < sn_example_num_features(g_ex); i++) {
        const char *key = sn_example_key(g_ex, i);
        if (!key) continue;
        sn_feature_kind kind;
        size_t n;
        FZ_CHECK(sn_example_feature(g_ex, key, &kind, &n) == SN_OK);
        const int64_t *iv;
        const float *fv;
        size_t m;
        if (kind == SN_FEATURE_INT64 && sn_example_get_int64(g_ex, key, &iv, &m) == SN_OK)
            fz_touch(iv, m * sizeof *iv);
        if (kind == SN_FEATURE_FLOAT && sn_example_get_float(g_ex, key, &fv, &m) == SN_OK)
            fz_touch(fv, m * sizeof *fv);
        for (size_t j = 0; kind == SN_FEATURE_BYTES && j < n; j++) {
            const uint8_t *b;
            size_t bl;
            FZ_CHECK(sn_example_get_bytes(g_ex, key, j, &b, &bl) == SN_OK);
            fz_touch(b, bl);
        }
    }
    sn_image_example img;
    if (sn_example_get_image(g_ex, &img) == SN_OK) fz_touch(img.encoded, img.encoded_len);
    const uint8_t *out, *out2;
    size_t n1, n2;
    FZ_CHECK(sn_example_serialize(g_ex, &out, &n1) == SN_OK);
    FZ_CHECK(sn_example_parse(g_again, out, n1) == SN_OK);
    FZ_CHECK(sn_example_serialize(g_again, &out2, &n2) == SN_OK);
    FZ_CHECK(n1 == n2 && memcmp(out, out2, n1) == 0);
    return 0;
}
