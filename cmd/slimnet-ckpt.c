/* slimnet-ckpt: inspect, compare and convert TensorFlow checkpoints (V1 and V2), and print
 * a zoo model's variables.  Argument parsing and printing only; the work is libslimnet's.
 *
 *   slimnet-ckpt PATH                        list tensors as TF's inspect_checkpoint does:
 *                                            "name (DT_FLOAT) [3,3,3,64]", sorted by name,
 *                                            then the total parameter count (a partitioned
 *                                            variable is one line with its full shape,
 *                                            where TF prints its slices' raw keys)
 *   slimnet-ckpt PATH --bytes                ... with each tensor's size in bytes
 *   slimnet-ckpt PATH --tensor NAME [--all]  print one tensor's values (first 20 unless --all)
 *   slimnet-ckpt PATH --stats [NAME]         min, max, mean, std, non-finite count
 *   slimnet-ckpt --compare A B               max |a - b| per tensor present in both
 *   slimnet-ckpt --convert V1PATH OUTPREFIX  rewrite a checkpoint as a V2 bundle
 *   slimnet-ckpt --model_name NAME [--num_classes N]
 *                                            variables, shapes and parameter count of a
 *                                            zoo model, as TF-slim creates them
 * PATH is a V2 prefix, a V1 file or a directory (its latest checkpoint).  Exit status 0 on
 * success, 1 on an error (the message names the file and tensor), 2 on bad flags. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "../lib/slimnet.h"
#include "common/tool.h"

static const char *tf_type_name(int t) {
    switch (t) {
    case 1: return "DT_FLOAT";
    case 2: return "DT_DOUBLE";
    case 3: return "DT_INT32";
    case 4: return "DT_UINT8";
    case 5: return "DT_INT16";
    case 6: return "DT_INT8";
    case 7: return "DT_STRING";
    case 9: return "DT_INT64";
    case 10: return "DT_BOOL";
    case 14: return "DT_BFLOAT16";
    case 19: return "DT_HALF";
    default: return "DT_INVALID";
    }
}

static void shape_str(int rank, const int64_t *dims, char *buf, size_t len) {
    size_t used = (size_t)snprintf(buf, len, "[");
    for (int i = 0; i < rank && used < len; i++)
        used += (size_t)snprintf(buf + used, len - used, "%s%lld", i ? "," : "",
                                 (long long)dims[i]);
    if (used < len) snprintf(buf + used, len - used, "]");
}

static int fail(sn_ctx *ctx, const char *what) {
    fprintf(stderr, "slimnet-ckpt: %s: %s\n", what, sn_ctx_errmsg(ctx));
    return 1;
}

static int usage(void) {
    fprintf(stderr,
            "usage: slimnet-ckpt PATH [--bytes | --tensor NAME [--all] | --stats [NAME]]\n"
            "       slimnet-ckpt --compare A B\n"
            "       slimnet-ckpt --convert PATH OUTPREFIX\n"
            "       slimnet-ckpt --model_name NAME [--num_classes N]\n");
    return 2;
}

typedef struct stats { double min, max, sum, sum2; int64_t n, nonfinite; } stats;

/* Values of a float32/int32/int64/uint8 tensor as doubles, one at a time. */
static double value_at(const sn_tensor *t, int64_t i) {
    const void *d = sn_tensor_data(t);
    switch (sn_tensor_dtype(t)) {
    case SN_DTYPE_F32: return ((const float *)d)[i];
    case SN_DTYPE_I32: return ((const int32_t *)d)[i];
    case SN_DTYPE_I64: return (double)((const int64_t *)d)[i];
    case SN_DTYPE_U8: return ((const uint8_t *)d)[i];
    }
    return NAN;
}

static stats tensor_stats(const sn_tensor *t) {
    stats s = {INFINITY, -INFINITY, 0, 0, 0, 0};
    for (int64_t i = 0; i < sn_tensor_numel(t); i++) {
        double v = value_at(t, i);
        if (!isfinite(v)) {
            s.nonfinite++;
            continue;
        }
        if (v < s.min) s.min = v;
        if (v > s.max) s.max = v;
        s.sum += v;
        s.sum2 += v * v;
        s.n++;
    }
    return s;
}

static int list(sn_ctx *ctx, sn_ckpt *ck, int bytes) {
    uint64_t total = 0, params = 0;
    int n = sn_ckpt_count(ck);
    for (int i = 0; i < n; i++) {
        sn_ckpt_info in;
        if (sn_ckpt_info_at(ck, i, &in) != SN_OK) return fail(ctx, sn_ckpt_path(ck));
        char sh[256];
        shape_str(in.rank, in.dims, sh, sizeof sh);
        if (bytes)
            printf("%s (%s) %s %llu\n", in.name, tf_type_name(in.tf_dtype), sh,
                   (unsigned long long)in.nbytes);
        else
            printf("%s (%s) %s\n", in.name, tf_type_name(in.tf_dtype), sh);
        total += in.nbytes;
        uint64_t n = 1;
        for (int d = 0; d < in.rank; d++) n *= (uint64_t)in.dims[d];
        params += n;
    }
    printf("\n# Total number of params: %llu\n", (unsigned long long)params);   /* as TF's */
    if (bytes)
        printf("# %d tensors, %llu bytes, V%d checkpoint %s\n", n, (unsigned long long)total,
               sn_ckpt_version(ck), sn_ckpt_path(ck));
    return 0;
}

static int print_tensor(sn_ctx *ctx, sn_ckpt *ck, const char *name, int all) {
    sn_tensor *t = NULL;
    if (sn_ckpt_read(ck, name, &t) != SN_OK) return fail(ctx, name);
    char sh[256];
    int64_t dims[SN_MAX_RANK];
    for (int i = 0; i < sn_tensor_rank(t); i++) dims[i] = sn_tensor_dim(t, i);
    shape_str(sn_tensor_rank(t), dims, sh, sizeof sh);
    int64_t n = sn_tensor_numel(t), shown = all || n <= 20 ? n : 20;
    printf("tensor_name:  %s\n%s %s\n", name, sn_dtype_name(sn_tensor_dtype(t)), sh);
    for (int64_t i = 0; i < shown; i++)
        printf("%s%.9g", i ? (i % 8 ? " " : "\n") : "", value_at(t, i));
    printf("%s\n", shown < n ? " ..." : "");
    sn_tensor_free(t);
    return 0;
}

static int print_stats(sn_ctx *ctx, sn_ckpt *ck, const char *only) {
    printf("%-64s %12s %12s %12s %12s %8s\n", "tensor", "min", "max", "mean", "std",
           "nonfinite");
    for (int i = 0; i < sn_ckpt_count(ck); i++) {
        sn_ckpt_info in;
        sn_ckpt_info_at(ck, i, &in);
        if (only && strcmp(only, in.name) != 0) continue;
        if (!in.has_sn_dtype) {
            printf("%-64s (%s: no statistics)\n", in.name, tf_type_name(in.tf_dtype));
            continue;
        }
        sn_tensor *t = NULL;
        if (sn_ckpt_read(ck, in.name, &t) != SN_OK) return fail(ctx, in.name);
        stats s = tensor_stats(t);
        double mean = s.n ? s.sum / (double)s.n : 0, var = s.n ? s.sum2 / (double)s.n - mean * mean : 0;
        printf("%-64s %12.6g %12.6g %12.6g %12.6g %8lld\n", in.name, s.n ? s.min : 0,
               s.n ? s.max : 0, mean, sqrt(var > 0 ? var : 0), (long long)s.nonfinite);
        sn_tensor_free(t);
    }
    return 0;
}

static int compare(sn_ctx *ctx, const char *pa, const char *pb) {
    sn_ckpt *a = NULL, *b = NULL;
    if (sn_ckpt_open(ctx, pa, &a) != SN_OK) return fail(ctx, pa);
    if (sn_ckpt_open(ctx, pb, &b) != SN_OK) {
        sn_ckpt_close(a);
        return fail(ctx, pb);
    }
    int rc = 0, only_a = 0, only_b = 0, differ = 0;
    double worst = 0;
    printf("%-64s %14s\n", "tensor", "max |a - b|");
    for (int i = 0; i < sn_ckpt_count(a) && rc == 0; i++) {
        sn_ckpt_info ia;
        sn_ckpt_info_at(a, i, &ia);
        if (sn_ckpt_find(b, ia.name) < 0) {
            printf("%-64s only in %s\n", ia.name, pa);
            only_a++;
            continue;
        }
        sn_ckpt_info ib;
        sn_ckpt_info_at(b, sn_ckpt_find(b, ia.name), &ib);
        char sa[256], sb[256];
        shape_str(ia.rank, ia.dims, sa, sizeof sa);
        shape_str(ib.rank, ib.dims, sb, sizeof sb);
        if (ia.tf_dtype != ib.tf_dtype || strcmp(sa, sb) != 0) {
            printf("%-64s differs: %s %s vs %s %s\n", ia.name, tf_type_name(ia.tf_dtype), sa,
                   tf_type_name(ib.tf_dtype), sb);
            differ++;
            continue;
        }
        if (!ia.has_sn_dtype) {
            printf("%-64s (%s: not compared)\n", ia.name, tf_type_name(ia.tf_dtype));
            continue;
        }
        sn_tensor *ta = NULL, *tb = NULL;
        if (sn_ckpt_read(a, ia.name, &ta) != SN_OK || sn_ckpt_read(b, ia.name, &tb) != SN_OK) {
            rc = fail(ctx, ia.name);
        } else {
            double d = 0;
            for (int64_t k = 0; k < sn_tensor_numel(ta); k++) {
                double e = fabs(value_at(ta, k) - value_at(tb, k));
                if (e > d || e != e) d = e != e ? INFINITY : e;
            }
            if (d > worst) worst = d;
            if (d > 0) differ++;
            printf("%-64s %14.6g\n", ia.name, d);
        }
        sn_tensor_free(ta);
        sn_tensor_free(tb);
    }
    for (int i = 0; i < sn_ckpt_count(b) && rc == 0; i++) {
        sn_ckpt_info ib;
        sn_ckpt_info_at(b, i, &ib);
        if (sn_ckpt_find(a, ib.name) < 0) {
            printf("%-64s only in %s\n", ib.name, pb);
            only_b++;
        }
    }
    if (rc == 0)
        printf("# %d tensors differ (max %.6g), %d only in A, %d only in B\n", differ, worst,
               only_a, only_b);
    sn_ckpt_close(a);
    sn_ckpt_close(b);
    return rc;
}

static int convert(sn_ctx *ctx, const char *in, const char *out) {
    char idx[4096];
    snprintf(idx, sizeof idx, "%s.index", out);
    if (access(out, F_OK) == 0 || access(idx, F_OK) == 0) {
        /* Also catches a shell-expanded V1 shard pattern landing on the output argument. */
        fprintf(stderr, "slimnet-ckpt: --convert: %s already exists; not overwriting\n",
                access(out, F_OK) == 0 ? out : idx);
        return 1;
    }
    sn_ckpt *ck = NULL;
    if (sn_ckpt_open(ctx, in, &ck) != SN_OK) return fail(ctx, in);
    int n = sn_ckpt_count(ck), rc = 0, m = 0;
    sn_ckpt_entry *e = calloc((size_t)(n ? n : 1), sizeof *e);
    sn_tensor **ts = calloc((size_t)(n ? n : 1), sizeof *ts);
    for (int i = 0; i < n && rc == 0; i++) {
        sn_ckpt_info info;
        sn_ckpt_info_at(ck, i, &info);
        if (!info.has_sn_dtype) {
            fprintf(stderr, "slimnet-ckpt: %s: tensor %s is %s, which slimnet cannot store\n",
                    in, info.name, tf_type_name(info.tf_dtype));
            rc = 1;
            break;
        }
        if (sn_ckpt_read(ck, info.name, &ts[m]) != SN_OK) {
            rc = fail(ctx, info.name);
            break;
        }
        e[m].name = info.name;
        e[m].tensor = ts[m];
        m++;
    }
    if (rc == 0 && sn_ckpt_write(ctx, out, m, e) != SN_OK) rc = fail(ctx, out);
    if (rc == 0) printf("wrote %d tensors from %s to V2 bundle %s\n", m, in, out);
    for (int i = 0; i < m; i++) sn_tensor_free(ts[i]);
    free(ts);
    free(e);
    sn_ckpt_close(ck);
    return rc;
}

static int model_summary(sn_ctx *ctx, const char *name, int num_classes) {
    sn_graph *g = NULL;
    if (sn_graph_new(ctx, &g) != SN_OK) return fail(ctx, "graph");
    int size = sn_model_default_image_size(name);
    int64_t d[4] = {SN_BATCH, size ? size : 224, size ? size : 224, 3};
    sn_node x = sn_input(g, "images", SN_DTYPE_F32, 4, d);
    sn_model_params mp = sn_model_params_default();
    mp.num_classes = num_classes;
    sn_model m;
    if (sn_model_build(g, name, x, &mp, &m) != SN_OK) {
        fprintf(stderr, "slimnet-ckpt: --model_name=%s: %s\n", name, sn_graph_errmsg(g));
        sn_graph_free(g);
        return 1;
    }
    int64_t total = 0, trainable = 0;
    for (int i = 0; i < sn_graph_num_vars(g); i++) {
        sn_var_info v;
        sn_graph_var(g, i, &v);
        int64_t n = 1;
        for (int k = 0; k < v.rank; k++) n *= v.dims[k];
        char sh[256];
        shape_str(v.rank, v.dims, sh, sizeof sh);
        printf("%s (DT_FLOAT) %s\n", v.name, sh);
        total += n;
        if (v.flags & SN_VAR_TRAINABLE) trainable += n;
    }
    printf("# %s: %d variables, %lld parameters (%lld trainable), default image size %d, "
           "preprocessing %s\n", name, sn_graph_num_vars(g), (long long)total,
           (long long)trainable, m.default_image_size, m.preprocessing);
    sn_graph_free(g);
    return 0;
}

int main(int argc, char **argv) {
    const char *path = NULL, *tensor = NULL, *stats_of = NULL, *model = NULL;
    const char *cmp_a = NULL, *cmp_b = NULL, *conv_in = NULL, *conv_out = NULL;
    int bytes = 0, all = 0, want_stats = 0, num_classes = 1000;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *eq = strchr(a, '=');
        char key[64];
        const char *val = NULL;
        if (strncmp(a, "--", 2) == 0 && eq) {
            snprintf(key, sizeof key, "%.*s", (int)(eq - a), a);
            val = eq + 1;
        } else {
            snprintf(key, sizeof key, "%s", a);
        }
#define NEXT() (val ? val : (i + 1 < argc ? argv[++i] : NULL))
        if (!strcmp(key, "--help") || !strcmp(key, "-h")) {
            usage();
            return 0;
        } else if (!strcmp(key, "--version")) {
            printf("slimnet-ckpt %s\n", sn_version());
            return 0;
        } else if (!strcmp(key, "--bytes")) {
            bytes = 1;
        } else if (!strcmp(key, "--all")) {
            all = 1;
        } else if (!strcmp(key, "--tensor")) {
            if (!(tensor = NEXT())) return usage();
        } else if (!strcmp(key, "--stats")) {
            want_stats = 1;
            if (val) stats_of = val;
            else if (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0 && path) stats_of = argv[++i];
        } else if (!strcmp(key, "--compare")) {
            if (!(cmp_a = NEXT()) || i + 1 >= argc) return usage();
            cmp_b = argv[++i];
        } else if (!strcmp(key, "--convert")) {
            if (!(conv_in = NEXT()) || i + 1 >= argc) return usage();
            conv_out = argv[++i];
        } else if (!strcmp(key, "--model_name")) {
            if (!(model = NEXT())) return usage();
        } else if (!strcmp(key, "--num_classes")) {
            const char *v = NEXT();
            if (!v || (num_classes = atoi(v)) < 0) return usage();
        } else if (a[0] != '-' && !path) {
            path = a;
        } else {
            fprintf(stderr, "slimnet-ckpt: unknown flag %s\n", a);
            return usage();
        }
#undef NEXT
    }
    sn_ctx_params cp = sn_ctx_params_default();
    cp.threads = 1;
    sn_ctx *ctx = NULL;
    if (sn_ctx_new(&cp, &ctx) != SN_OK) return fail(ctx, "context");
    int rc;
    if (model) {
        rc = tool_check_model("slimnet-ckpt", model);
        if (!rc) rc = model_summary(ctx, model, num_classes);
    } else if (cmp_a) {
        rc = compare(ctx, cmp_a, cmp_b);
    } else if (conv_in) {
        rc = convert(ctx, conv_in, conv_out);
    } else if (!path) {
        rc = usage();
    } else {
        sn_ckpt *ck = NULL;
        if (sn_ckpt_open(ctx, path, &ck) != SN_OK) {
            rc = fail(ctx, path);
        } else {
            rc = tensor ? print_tensor(ctx, ck, tensor, all)
                 : want_stats ? print_stats(ctx, ck, stats_of)
                              : list(ctx, ck, bytes);
            sn_ckpt_close(ck);
        }
    }
    sn_ctx_free(ctx);
    return rc;
}
