/* testutil.h: helpers shared by the Check suites. */
#ifndef SN_TESTUTIL_H
#define SN_TESTUTIL_H

#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include "../lib/slimnet.h"

/* Deterministic test data: xorshift64* in [-1, 1). */
static inline float tu_rand(uint64_t *s) {
    *s ^= *s >> 12; *s ^= *s << 25; *s ^= *s >> 27;
    return (float)((*s * 2685821657736338717ull) >> 40) / 8388608.0f - 1.0f;
}
static inline void tu_fill(float *p, size_t n, uint64_t seed) {
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < n; i++) p[i] = tu_rand(&s);
}
/* max |a-b| / max(1, max|b|): relative to the reference's scale. */
static inline double tu_max_rel_err(const float *a, const float *b, size_t n) {
    double diff = 0, scale = 1;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (d > diff || d != d) diff = d != d ? INFINITY : d;
        if (fabs((double)b[i]) > scale) scale = fabs((double)b[i]);
    }
    return diff / scale;
}
/* A CPU context with a fixed seed, failing the test if it cannot be made. */
static inline sn_ctx *tu_ctx(void) {
    sn_ctx_params p = sn_ctx_params_default();
    p.threads = 2;
    p.seed = 42;
    sn_ctx *ctx = NULL;
    ck_assert_int_eq(sn_ctx_new(&p, &ctx), SN_OK);
    return ctx;
}
#endif
