/* init.c: TensorFlow's variable initializers, deterministic from a 64-bit seed.
 *
 * The random streams are slimnet's own (splitmix64 + Box-Muller in double), not
 * TensorFlow's Philox streams: the distributions are TF's, the draws are not, so weights
 * trained here start from a different sample than TF would but from the same law. */
#include <math.h>
#include "sn_internal.h"

sn_init sn_init_zeros(void) { return (sn_init){.kind = SN_INIT_ZEROS}; }
sn_init sn_init_ones(void) { return (sn_init){.kind = SN_INIT_ONES}; }
sn_init sn_init_constant(float v) { return (sn_init){.kind = SN_INIT_CONSTANT, .value = v}; }
sn_init sn_init_truncated_normal(float mean, float stddev) {
    return (sn_init){.kind = SN_INIT_TRUNCATED_NORMAL, .mean = mean, .stddev = stddev};
}
sn_init sn_init_random_normal(float mean, float stddev) {
    return (sn_init){.kind = SN_INIT_RANDOM_NORMAL, .mean = mean, .stddev = stddev};
}
sn_init sn_init_random_uniform(float minval, float maxval) {
    return (sn_init){.kind = SN_INIT_RANDOM_UNIFORM, .minval = minval, .maxval = maxval};
}
sn_init sn_init_variance_scaling(float factor, sn_fan_mode mode, int uniform) {
    return (sn_init){.kind = SN_INIT_VARIANCE_SCALING, .factor = factor, .mode = mode,
                     .uniform = uniform};
}
sn_init sn_init_xavier(int uniform) { return sn_init_variance_scaling(1.0f, SN_FAN_AVG, uniform); }

typedef struct rng { uint64_t s; } rng;

static uint64_t rng_next(rng *r) { return sn__mix64(r->s += SN__GOLDEN64); }   /* splitmix64 */

/* Uniform in (0, 1): 53 random bits, never exactly 0 (log below). */
static double rng_unit(rng *r) { return ((double)(rng_next(r) >> 11) + 0.5) * 0x1.0p-53; }

static double rng_normal(rng *r) {
    /* Box-Muller, one value per pair: simple and stream-stable. */
    double u1 = rng_unit(r), u2 = rng_unit(r);
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

static double rng_truncated_normal(rng *r) {
    double z;
    do z = rng_normal(r); while (fabs(z) > 2.0);   /* TF redraws beyond 2 stddev */
    return z;
}

/* Fans as tf_slim's variance_scaling_initializer computes them: for rank >= 2 the last
 * two dims are (in, out) and the leading ones the receptive field. */
static void fans(int rank, const int64_t *dims, double *fan_in, double *fan_out) {
    if (rank == 0) { *fan_in = *fan_out = 1; return; }
    if (rank == 1) { *fan_in = *fan_out = (double)dims[0]; return; }
    double field = 1;
    for (int i = 0; i < rank - 2; i++) field *= (double)dims[i];
    *fan_in = field * (double)dims[rank - 2];
    *fan_out = field * (double)dims[rank - 1];
}

sn_status sn_init_fill(sn_ctx *ctx, const sn_init *init, int rank, const int64_t *dims,
                       uint64_t seed, float *data) {
    size_t n;
    if (rank < 0 || rank > SN_MAX_RANK || !sn__numel(rank, dims, &n))
        return sn__fail(ctx, SN_ERR_INVALID_ARG, "init: invalid shape");
    rng r = {seed ^ 0x5DEECE66Dull};
    switch (init->kind) {
    case SN_INIT_ZEROS:
        for (size_t i = 0; i < n; i++) data[i] = 0.0f;
        return SN_OK;
    case SN_INIT_ONES:
        for (size_t i = 0; i < n; i++) data[i] = 1.0f;
        return SN_OK;
    case SN_INIT_CONSTANT:
        for (size_t i = 0; i < n; i++) data[i] = init->value;
        return SN_OK;
    case SN_INIT_TRUNCATED_NORMAL:
        for (size_t i = 0; i < n; i++)
            data[i] = (float)(init->mean + init->stddev * rng_truncated_normal(&r));
        return SN_OK;
    case SN_INIT_RANDOM_NORMAL:
        for (size_t i = 0; i < n; i++)
            data[i] = (float)(init->mean + init->stddev * rng_normal(&r));
        return SN_OK;
    case SN_INIT_RANDOM_UNIFORM:
        for (size_t i = 0; i < n; i++)
            data[i] = (float)(init->minval + (init->maxval - init->minval) *
                                                 ((double)(rng_next(&r) >> 11) * 0x1.0p-53));
        return SN_OK;
    case SN_INIT_VARIANCE_SCALING: {
        double fi, fo, fan;
        fans(rank, dims, &fi, &fo);
        fan = init->mode == SN_FAN_IN ? fi : init->mode == SN_FAN_OUT ? fo : (fi + fo) / 2.0;
        if (fan <= 0) fan = 1;
        if (init->uniform) {
            double limit = sqrt(3.0 * init->factor / fan);
            for (size_t i = 0; i < n; i++)
                data[i] = (float)(limit * (2.0 * ((double)(rng_next(&r) >> 11) * 0x1.0p-53) - 1.0));
        } else {
            double stddev = sqrt(1.3 * init->factor / fan);
            for (size_t i = 0; i < n; i++) data[i] = (float)(stddev * rng_truncated_normal(&r));
        }
        return SN_OK;
    }
    }
    return sn__fail(ctx, SN_ERR_INVALID_ARG, "init: unknown initializer kind %d",
                    (int)init->kind);
}
