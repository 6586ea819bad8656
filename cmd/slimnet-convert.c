/* slimnet-convert: converts local image data into TFRecord files of tf.train.Examples, as
 * TF-slim's download_and_convert_data.py (and the UAI fork's fer converter) do, without
 * downloading anything.  Argument parsing and printing only; the work is libslimnet's.
 *
 *   slimnet-convert --dataset_name=fer --pic_path=PICS --dataset_dir=OUT [--seed=N]
 *                   [--test_fraction=F] [--num_shards=N] [--overwrite]
 *   slimnet-convert --dataset_name=mnist --source=IDX_DIR --dataset_dir=OUT
 *   slimnet-convert --dataset_name=cifar10 --source=BIN_DIR --dataset_dir=OUT
 *   slimnet-convert --dataset_name=flowers --source=flower_photos --dataset_dir=OUT
 *
 * Flags take "--flag=value" or "--flag value".  After converting, it reads the files back
 * through the dataset descriptor and prints each file (records, bytes), the count of every
 * class in every split, and the rate.  Exit status 0 on success, 1 on an error (the message
 * names the file), 2 on bad flags. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include "../lib/slimnet.h"

static const char *usage_text =
    "usage: slimnet-convert --dataset_name=NAME --pic_path=DIR --dataset_dir=DIR [options]\n"
    "  --dataset_name NAME   fer (or folder: any folder of class folders), flowers, mnist,\n"
    "                        cifar10\n"
    "  --pic_path DIR        the source (alias --source): fer/flowers: DIR/<class>/<image>\n"
    "                        (JPEG or PNG); mnist: the four idx files (.gz or not); cifar10:\n"
    "                        data_batch_1..5.bin and test_batch.bin\n"
    "  --dataset_dir DIR     output folder (created if missing)\n"
    "  --seed N              shuffle seed for fer/flowers (default 0)\n"
    "  --test_fraction F     fer: test share (default 0.3); flowers: validation share\n"
    "                        (default 350 images); alias --validation_fraction\n"
    "  --num_shards N        files per split (default 1; flowers 5)\n"
    "  --overwrite           replace an existing dataset in dataset_dir\n"
    "  --help, --version\n";

static int bad_flag(const char *flag, const char *why) {
    fprintf(stderr, "slimnet-convert: %s: %s\n%s", flag, why, usage_text);
    return 2;
}

static void log_stderr(void *user, sn_log_level level, const char *msg) {
    (void)user;
    fprintf(stderr, "slimnet-convert: %s%s\n", level >= SN_LOG_WARN ? "warning: " : "", msg);
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Reads every file of every split back: records per file, labels per class. */
static int summarize(sn_ctx *ctx, const char *name, const char *dir) {
    sn_dataset *ds = NULL;
    if (sn_dataset_open(ctx, name, dir, NULL, &ds) != SN_OK) {
        fprintf(stderr, "slimnet-convert: reading back: %s\n", sn_ctx_errmsg(ctx));
        return 1;
    }
    int k = sn_dataset_num_classes(ds), ns = sn_dataset_num_splits(ds), rc = 0;
    int64_t *counts = calloc((size_t)k * (size_t)ns, sizeof *counts);
    sn_example *ex = NULL;
    if (!counts || sn_example_new(ctx, &ex) != SN_OK) {
        fprintf(stderr, "slimnet-convert: out of memory\n");
        free(counts);
        sn_dataset_free(ds);
        return 1;
    }
    for (int s = 0; s < ns && rc == 0; s++) {
        const char *pattern;
        int64_t expect;
        sn_file_list *files = NULL;
        sn_dataset_split(ds, sn_dataset_split_name(ds, s), &pattern, &expect);
        if (sn_tfrecord_files(ctx, pattern, &files) != SN_OK) {
            fprintf(stderr, "slimnet-convert: %s\n", sn_ctx_errmsg(ctx));
            rc = 1;
            break;
        }
        int64_t total = 0;
        for (size_t f = 0; f < sn_file_list_count(files) && rc == 0; f++) {
            const char *path = sn_file_list_path(files, f);
            sn_tfrecord_reader *r = NULL;
            const uint8_t *data;
            size_t len;
            int64_t n = 0;
            sn_status st = sn_tfrecord_reader_open(ctx, path, SN_COMPRESSION_NONE, &r);
            while (st == SN_OK && (st = sn_tfrecord_read(r, &data, &len)) == SN_OK) {
                sn_image_example img;
                if ((st = sn_example_parse(ex, data, len)) != SN_OK ||
                    (st = sn_example_get_image(ex, &img)) != SN_OK)
                    break;
                if (img.label >= 0 && img.label < k) counts[(size_t)s * (size_t)k + (size_t)img.label]++;
                n++;
            }
            sn_tfrecord_reader_close(r);
            if (st != SN_ERR_NOT_FOUND) {
                fprintf(stderr, "slimnet-convert: reading back %s: %s\n", path,
                        sn_ctx_errmsg(ctx));
                rc = 1;
            }
            struct stat sb;
            printf("  %-56s %8lld records %12lld bytes\n", path, (long long)n,
                   stat(path, &sb) == 0 ? (long long)sb.st_size : -1LL);
            total += n;
        }
        if (rc == 0 && total != expect) {
            fprintf(stderr, "slimnet-convert: split %s: %lld records, info.json says %lld\n",
                    sn_dataset_split_name(ds, s), (long long)total, (long long)expect);
            rc = 1;
        }
        sn_file_list_free(files);
    }
    if (rc == 0) {
        printf("\n  %5s %-24s", "id", "class");
        for (int s = 0; s < ns; s++) printf(" %10s", sn_dataset_split_name(ds, s));
        printf("\n");
        for (int c = 0; c < k; c++) {
            const char *label = sn_dataset_label_name(ds, c);
            printf("  %5d %-24s", c, label ? label : "?");
            for (int s = 0; s < ns; s++)
                printf(" %10lld", (long long)counts[(size_t)s * (size_t)k + (size_t)c]);
            printf("\n");
        }
        /* A class without records in a split keeps its id (so the others keep theirs) but
         * is never trained on, or never evaluated: say so. */
        for (int c = 0; c < k; c++) {
            const char *label = sn_dataset_label_name(ds, c);
            int64_t all = 0;
            for (int s = 0; s < ns; s++) all += counts[(size_t)s * (size_t)k + (size_t)c];
            if (all == 0)
                fprintf(stderr, "slimnet-convert: warning: class %d '%s' has no records (its "
                        "source holds no images of it): training never sees it\n", c,
                        label ? label : "?");
            for (int s = 0; all > 0 && s < ns; s++)
                if (counts[(size_t)s * (size_t)k + (size_t)c] == 0)
                    fprintf(stderr, "slimnet-convert: warning: class %d '%s' has no records in "
                            "split %s\n", c, label ? label : "?", sn_dataset_split_name(ds, s));
        }
    }
    sn_example_free(ex);
    free(counts);
    sn_dataset_free(ds);
    return rc;
}

/* Strict number parsing: the whole value, in range. */
static int parse_u64(const char *v, uint64_t *out) {
    char *end;
    errno = 0;
    if (!v || !*v || *v == '-') return 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (errno || *end) return 0;
    *out = x;
    return 1;
}

int main(int argc, char **argv) {
    sn_convert_params p = sn_convert_params_default();
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *eq = strchr(a, '=');
        char key[64];
        const char *val = NULL;
        if (strncmp(a, "--", 2) != 0) return bad_flag(a, "unexpected argument (flags start "
                                                         "with --)");
        if (eq) {
            if (eq - a >= (long)sizeof key) return bad_flag(a, "unknown flag");
            snprintf(key, sizeof key, "%.*s", (int)(eq - a), a);
            val = eq + 1;
        } else {
            snprintf(key, sizeof key, "%s", a);
        }
#define VALUE() (val ? val : (i + 1 < argc ? argv[++i] : NULL))
        if (!strcmp(key, "--help")) {
            fputs(usage_text, stdout);
            return 0;
        } else if (!strcmp(key, "--version")) {
            printf("slimnet-convert %s\n", sn_version());
            return 0;
        } else if (!strcmp(key, "--overwrite")) {
            if (val && strcmp(val, "1") && strcmp(val, "true") && strcmp(val, "0") &&
                strcmp(val, "false"))
                return bad_flag(a, "expects no value, or true/false/1/0");
            p.overwrite = !val || !strcmp(val, "1") || !strcmp(val, "true");
        } else if (!strcmp(key, "--dataset_name")) {
            if (!(p.dataset_name = VALUE()) || !*p.dataset_name)
                return bad_flag(key, "needs a value");
        } else if (!strcmp(key, "--pic_path") || !strcmp(key, "--source")) {
            if (!(p.source = VALUE()) || !*p.source) return bad_flag(key, "needs a value");
        } else if (!strcmp(key, "--dataset_dir")) {
            if (!(p.dataset_dir = VALUE()) || !*p.dataset_dir)
                return bad_flag(key, "needs a value");
        } else if (!strcmp(key, "--seed")) {
            if (!parse_u64(VALUE(), &p.seed))
                return bad_flag(key, "expects a non-negative integer");
        } else if (!strcmp(key, "--num_shards")) {
            uint64_t n;
            if (!parse_u64(VALUE(), &n) || n < 1 || n > 10000)
                return bad_flag(key, "expects an integer in [1, 10000]");
            p.num_shards = (int)n;
        } else if (!strcmp(key, "--test_fraction") || !strcmp(key, "--validation_fraction")) {
            const char *v = VALUE();
            char *end;
            errno = 0;
            double f = v && *v ? strtod(v, &end) : NAN;
            if (!v || !*v || errno || *end || !(f > 0 && f < 1))
                return bad_flag(key, "expects a number in (0, 1)");
            p.test_fraction = f;
        } else {
            return bad_flag(a, "unknown flag");
        }
#undef VALUE
    }
    if (!p.dataset_name) return bad_flag("--dataset_name", "is required");
    if (!p.source) return bad_flag("--pic_path", "is required (alias --source)");
    if (!p.dataset_dir) return bad_flag("--dataset_dir", "is required");

    sn_ctx_params cp = sn_ctx_params_default();
    cp.threads = 1;
    cp.log = log_stderr;
    cp.log_level = SN_LOG_WARN;
    sn_ctx *ctx = NULL;
    if (sn_ctx_new(&cp, &ctx) != SN_OK) {
        fprintf(stderr, "slimnet-convert: context: %s\n", sn_ctx_errmsg(ctx));
        sn_ctx_free(ctx);
        return 1;
    }
    sn_convert_report rep;
    double t0 = now();
    if (sn_dataset_convert(ctx, &p, &rep) != SN_OK) {
        fprintf(stderr, "slimnet-convert: %s\n", sn_ctx_errmsg(ctx));
        sn_ctx_free(ctx);
        return 1;
    }
    double dt = now() - t0;
    int64_t n = rep.num_train + rep.num_test;
    int flowers = !strcmp(p.dataset_name, "flowers");
    const char *desc = !strcmp(p.dataset_name, "folder") ? "fer" : p.dataset_name;
    printf("slimnet-convert: %s: %lld images (%s %lld, %s %lld), %d classes, %lld files "
           "skipped as not images\n", desc, (long long)n, "train", (long long)rep.num_train,
           flowers ? "validation" : "test", (long long)rep.num_test, rep.num_classes,
           (long long)rep.num_skipped);
    printf("wrote %d files, %lld bytes, in %.2f s (%.0f images/s) to %s:\n", rep.num_files,
           (long long)rep.bytes, dt, dt > 0 ? (double)n / dt : 0.0, p.dataset_dir);
    int rc = summarize(ctx, desc, p.dataset_dir);
    sn_ctx_free(ctx);
    return rc;
}
