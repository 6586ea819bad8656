/* dataset.c: dataset descriptors, as TF-slim's datasets/dataset_factory.py (flowers, cifar10,
 * mnist, imagenet), the UAI fork's fer, and "folder": any folder slimnet-convert wrote.
 *
 * A descriptor is a set of splits (name, TFRecord file pattern, sample count), a class
 * count, the channels TF-slim's decoder produces, and the class names of labels.txt.
 * Counts come from TF-slim's constants, replaced by the folder's info.json when it has one
 * (slimnet-convert writes one for every dataset, with the counts it actually wrote):
 *     {"num_class": 7, "num_sample_train": 25120, "num_sample_test": 10766}
 * is the UAI fork's format; every "num_sample_<split>" key names a split, and slimnet adds
 * "dataset": "<file prefix>" so that "folder" can find the files.  Both files are read with
 * their sizes bounded first (dataset.h); errors name the file and, for labels.txt and
 * malformed JSON, the line. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <cjson/cJSON.h>
#include "dataset.h"

enum { MAX_SPLITS = 8, SPLIT_NAME_LEN = 32, PREFIX_LEN = 32 };

/* The built-in datasets, once.  pattern: %s is the split name.  need_info: info.json is
 * required (the fork's fer reader fails without it).  Counts of 0 come from info.json. */
#define SN__DATASET_TABLE(X)                                                                 \
    /*  name        pattern                   split 0      n0       split 1       n1     K    C  need */ \
    X("fer",      "fer_%s*.tfrecord",       "train",        0, "test",            0,    0, 3, 1) \
    X("mnist",    "mnist_%s*.tfrecord",     "train",    60000, "test",        10000,   10, 1, 0) \
    X("cifar10",  "cifar10_%s*.tfrecord",   "train",    50000, "test",        10000,   10, 3, 0) \
    X("flowers",  "flowers_%s_*.tfrecord",  "train",     3320, "validation",    350,    5, 3, 0) \
    X("imagenet", "%s-*",                   "train",  1281167, "validation",  50000, 1001, 3, 0)

typedef struct builtin {
    const char *name, *pattern, *split[2];
    int64_t count[2];
    int num_classes, channels, need_info;
} builtin;

static const builtin builtins[] = {
#define X(nm, pat, s0, n0, s1, n1, k, c, need) {nm, pat, {s0, s1}, {n0, n1}, k, c, need},
    SN__DATASET_TABLE(X)
#undef X
};
enum { NUM_BUILTINS = sizeof builtins / sizeof *builtins };

typedef struct split {
    char name[SPLIT_NAME_LEN];
    char *pattern;
    int64_t num_samples;
    bool from_info;
} split;

struct sn_dataset {
    sn_ctx *ctx;
    char name[PREFIX_LEN];
    int num_classes, channels;
    int nsplits;
    split splits[MAX_SPLITS];
    char **labels;            /* num_classes entries, NULL where labels.txt has none */
};

/* ---- shared helpers (dataset.h) ---------------------------------------------------------- */

sn_status sn__read_file(sn_ctx *ctx, const char *path, size_t max, uint8_t **out,
                        size_t *len) {
    *out = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        int e = errno;
        return sn__fail(ctx, e == ENOENT ? SN_ERR_NOT_FOUND : SN_ERR_IO, "%s: cannot open: %s",
                        path, strerror(e));
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return sn__fail(ctx, SN_ERR_IO, "%s: not a regular file", path);
    }
    if ((uint64_t)st.st_size > max) {
        fclose(f);
        return sn__fail(ctx, SN_ERR_FORMAT, "%s: %lld bytes, more than the %zu allowed", path,
                        (long long)st.st_size, max);
    }
    size_t n = (size_t)st.st_size;
    uint8_t *buf = malloc(n + 1);
    if (!buf) {
        fclose(f);
        return sn__fail(ctx, SN_ERR_NOMEM, "%s: cannot allocate %zu bytes", path, n + 1);
    }
    size_t got = fread(buf, 1, n, f);
    int err = ferror(f);
    fclose(f);
    if (got != n || err) {
        free(buf);
        return sn__fail(ctx, SN_ERR_IO, "%s: read error (%zu of %zu bytes)", path, got, n);
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return SN_OK;
}

void sn__shard_name(char *buf, size_t len, const char *prefix, const char *split, int index,
                    int num_shards, int sharded) {
    if (sharded)
        snprintf(buf, len, "%s_%s_%05d-of-%05d.tfrecord", prefix, split, index, num_shards);
    else
        snprintf(buf, len, "%s_%s.tfrecord", prefix, split);
}

/* ---- descriptor ------------------------------------------------------------------------ */

sn_dataset_params sn_dataset_params_default(void) {
    sn_dataset_params p = {0};
    return p;
}

void sn_dataset_free(sn_dataset *ds) {
    if (!ds) return;
    for (int i = 0; i < ds->nsplits; i++) free(ds->splits[i].pattern);
    if (ds->labels)
        for (int i = 0; i < ds->num_classes; i++) free(ds->labels[i]);
    free(ds->labels);
    free(ds);
}

/* "<dir>/" + pattern with its one "%s" replaced by the split name, malloc'd. */
static char *split_pattern(const char *dir, const char *pattern, const char *name) {
    const char *at = strstr(pattern, "%s");
    size_t head = at ? (size_t)(at - pattern) : strlen(pattern);
    const char *tail = at ? at + 2 : "";
    size_t n = strlen(dir) + 1 + head + (at ? strlen(name) : 0) + strlen(tail) + 1;
    char *s = malloc(n);
    if (s) snprintf(s, n, "%s/%.*s%s%s", dir, (int)head, pattern, at ? name : "", tail);
    return s;
}

/* Adds a split, or updates its count when it exists (from_info: the count is the folder's
 * own, from info.json). */
static sn_status add_split(sn_dataset *ds, const char *dir, const char *pattern,
                           const char *name, int64_t n, bool from_info, const char *from) {
    for (int i = 0; i < ds->nsplits; i++)
        if (!strcmp(ds->splits[i].name, name)) {
            ds->splits[i].num_samples = n;
            ds->splits[i].from_info = from_info;
            return SN_OK;
        }
    if (ds->nsplits == MAX_SPLITS)
        return sn__fail(ds->ctx, SN_ERR_FORMAT, "%s: more than %d splits", from, MAX_SPLITS);
    split *s = &ds->splits[ds->nsplits];
    snprintf(s->name, sizeof s->name, "%s", name);
    if (!(s->pattern = split_pattern(dir, pattern, name)))
        return sn__fail(ds->ctx, SN_ERR_NOMEM, "dataset: out of memory");
    s->num_samples = n;
    s->from_info = from_info;
    ds->nsplits++;
    return SN_OK;
}

/* Line number (from 1) of byte offset off in text. */
static int line_of(const char *text, size_t off) {
    int line = 1;
    for (size_t i = 0; i < off && text[i]; i++) line += text[i] == '\n';
    return line;
}

/* A non-negative integer JSON value no larger than max; false otherwise. */
static bool json_int(const cJSON *v, int64_t max, int64_t *out) {
    if (!cJSON_IsNumber(v)) return false;
    double d = v->valuedouble;
    if (!(d >= 0) || d > (double)max || d != (double)(int64_t)d) return false;
    *out = (int64_t)d;
    return true;
}

/* Reads info.json: num_class, every num_sample_<split>, and the optional "dataset" prefix.
 * *found = false (SN_OK) when the file does not exist. */
static sn_status read_info(sn_dataset *ds, const char *dir, const char *pattern_default,
                           char *prefix, size_t prefix_len, int64_t *num_class, bool *found) {
    char path[4096];
    snprintf(path, sizeof path, "%s/info.json", dir);
    uint8_t *text;
    size_t len;
    *found = false;
    sn_status st = sn__read_file(ds->ctx, path, SN__INFO_JSON_MAX, &text, &len);
    if (st == SN_ERR_NOT_FOUND) return SN_OK;
    SN_TRY(st);
    *found = true;
    const char *end = NULL;
    /* ParseWithLengthOpts reports the error position through `end`, not through cJSON's
     * global error pointer, which two threads would share. */
    cJSON *root = cJSON_ParseWithLengthOpts((const char *)text, len, &end, 0);
    if (!root) {
        size_t off = end ? (size_t)(end - (const char *)text) : 0;
        st = sn__fail(ds->ctx, SN_ERR_FORMAT, "%s:%d: not valid JSON (near byte %zu)", path,
                      line_of((const char *)text, off), off);
        free(text);
        return st;
    }
    free(text);
    st = SN_OK;
    if (!cJSON_IsObject(root)) {
        st = sn__fail(ds->ctx, SN_ERR_FORMAT, "%s: not a JSON object", path);
        goto done;
    }
    if (!json_int(cJSON_GetObjectItemCaseSensitive(root, "num_class"), SN__MAX_CLASSES,
                  num_class) || *num_class < 1) {
        st = sn__fail(ds->ctx, SN_ERR_FORMAT, "%s: \"num_class\" must be an integer in "
                      "[1, %d]", path, SN__MAX_CLASSES);
        goto done;
    }
    const cJSON *pre = cJSON_GetObjectItemCaseSensitive(root, "dataset");
    if (pre) {
        /* The prefix goes into a glob pattern: letters, digits, '_' and '-' only. */
        const char *s = cJSON_GetStringValue(pre);
        bool ok = s && s[0] && strlen(s) < prefix_len;
        for (const char *c = s; ok && *c; c++)
            ok = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
                 (*c >= '0' && *c <= '9') || *c == '_' || *c == '-';
        if (!ok) {
            st = sn__fail(ds->ctx, SN_ERR_FORMAT, "%s: \"dataset\" must be a short name of "
                          "letters, digits, '_' or '-'", path);
            goto done;
        }
        snprintf(prefix, prefix_len, "%s", s);
    }
    char pattern[64];
    snprintf(pattern, sizeof pattern, pattern_default ? "%s" : "%s_%%s*.tfrecord",
             pattern_default ? pattern_default : prefix);
    const cJSON *item;
    cJSON_ArrayForEach(item, root) {
        static const char key[] = "num_sample_";
        if (!item->string || strncmp(item->string, key, sizeof key - 1) != 0) continue;
        const char *name = item->string + sizeof key - 1;
        int64_t n;
        bool ok = name[0] && strlen(name) < SPLIT_NAME_LEN;
        for (const char *c = name; ok && *c; c++)
            ok = (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_';
        if (!ok) {
            st = sn__fail(ds->ctx, SN_ERR_FORMAT, "%s: \"%s\": a split name is lowercase "
                          "letters, digits and '_' (under %d bytes)", path, item->string,
                          SPLIT_NAME_LEN);
            goto done;
        }
        if (!json_int(item, SN__MAX_SAMPLES, &n)) {
            st = sn__fail(ds->ctx, SN_ERR_FORMAT, "%s: \"%s\" must be a non-negative integer",
                          path, item->string);
            goto done;
        }
        if ((st = add_split(ds, dir, pattern, name, n, true, path)) != SN_OK) goto done;
    }
done:
    cJSON_Delete(root);
    return st;
}

/* Reads labels.txt when present: "<id>:<name>" lines, split at the first ':' (names may
 * hold ':'), ids in [0, num_classes), each once.  Empty lines are skipped; a '\r' before
 * the '\n' is dropped.  count_classes: the class count is not known (no info.json): it
 * becomes the highest id + 1 (ids below SN__MAX_CLASSES), found by a first pass. */
static sn_status read_labels(sn_dataset *ds, const char *dir, bool count_classes) {
    char path[4096];
    snprintf(path, sizeof path, "%s/labels.txt", dir);
    uint8_t *text;
    size_t len;
    sn_status st = sn__read_file(ds->ctx, path, SN__LABELS_TXT_MAX, &text, &len);
    if (st == SN_ERR_NOT_FOUND && !count_classes) return SN_OK;
    SN_TRY(st);
    int limit = count_classes ? SN__MAX_CLASSES : ds->num_classes;
    for (int pass = count_classes ? 0 : 1; pass < 2 && st == SN_OK; pass++) {
        if (pass == 1 && !(ds->labels = calloc((size_t)ds->num_classes + 1,
                                               sizeof *ds->labels))) {
            st = sn__fail(ds->ctx, SN_ERR_NOMEM, "%s: out of memory", path);
            break;
        }
        char *p = (char *)text, *end = p + len;
        for (int line = 1; p < end && st == SN_OK; line++) {
            char *nl = memchr(p, '\n', (size_t)(end - p)), *eol = nl ? nl : end;
            if (eol > p && eol[-1] == '\r') eol--;
            if (eol == p) {
                p = nl ? nl + 1 : end;
                continue;
            }
            char *colon = memchr(p, ':', (size_t)(eol - p));
            long long id = -1;
            bool ok = colon && colon > p && colon - p <= 9;
            if (ok) {
                id = 0;
                for (char *c = p; c < colon && ok; c++) {
                    ok = *c >= '0' && *c <= '9';
                    id = id * 10 + (*c - '0');
                }
            }
            if (!ok) {
                st = sn__fail(ds->ctx, SN_ERR_FORMAT, "%s:%d: expected \"<id>:<name>\", got "
                              "\"%.*s\"", path, line, (int)(eol - p > 60 ? 60 : eol - p), p);
            } else if (id >= limit) {
                st = count_classes
                    ? sn__fail(ds->ctx, SN_ERR_FORMAT, "%s:%d: class id %lld, ids must be "
                               "below %d", path, line, id, SN__MAX_CLASSES)
                    : sn__fail(ds->ctx, SN_ERR_FORMAT, "%s:%d: class id %lld, but the "
                               "dataset has %d classes", path, line, id, ds->num_classes);
            } else if (pass == 0) {
                if (id >= ds->num_classes) ds->num_classes = (int)id + 1;
            } else if (ds->labels[id]) {
                st = sn__fail(ds->ctx, SN_ERR_FORMAT, "%s:%d: class id %lld appears twice",
                              path, line, id);
            } else {
                size_t n = (size_t)(eol - colon - 1);
                if (!(ds->labels[id] = malloc(n + 1)))
                    st = sn__fail(ds->ctx, SN_ERR_NOMEM, "%s: out of memory", path);
                else {
                    memcpy(ds->labels[id], colon + 1, n);
                    ds->labels[id][n] = '\0';
                }
            }
            p = nl ? nl + 1 : end;
        }
        if (pass == 0 && st == SN_OK && ds->num_classes == 0)
            st = sn__fail(ds->ctx, SN_ERR_FORMAT, "%s: no \"<id>:<name>\" line", path);
    }
    free(text);
    return st;
}

sn_status sn__dataset_open_labels(sn_ctx *ctx, const char *dir, sn_dataset **out) {
    *out = NULL;
    sn_dataset *ds = calloc(1, sizeof *ds);
    if (!ds) return sn__fail(ctx, SN_ERR_NOMEM, "dataset: out of memory");
    ds->ctx = ctx;
    ds->channels = 3;
    snprintf(ds->name, sizeof ds->name, "labels");
    sn_status st = read_labels(ds, dir[0] ? dir : ".", true);
    if (st != SN_OK) {
        sn_dataset_free(ds);
        return st;
    }
    *out = ds;
    return SN_OK;
}

static const builtin *find_builtin(const char *name) {
    for (int i = 0; i < NUM_BUILTINS; i++)
        if (!strcmp(builtins[i].name, name)) return &builtins[i];
    return NULL;
}

sn_status sn_dataset_open(sn_ctx *ctx, const char *name, const char *dir,
                          const sn_dataset_params *p, sn_dataset **out) {
    if (!ctx) return SN_ERR_INVALID_ARG;
    if (!out || !dir) return sn__fail(ctx, SN_ERR_INVALID_ARG, "dataset: NULL argument");
    *out = NULL;
    sn_dataset_params dp = p ? *p : sn_dataset_params_default();
    bool folder = !name || !name[0] || !strcmp(name, "folder");
    const builtin *b = folder ? NULL : find_builtin(name);
    if (!folder && !b) {
        char known[256] = "";
        for (int i = 0; i < NUM_BUILTINS; i++)
            snprintf(known + strlen(known), sizeof known - strlen(known), "%s, ",
                     builtins[i].name);
        return sn__fail(ctx, SN_ERR_NOT_FOUND, "dataset: unknown dataset '%s' (known: %sfolder)",
                        name, known);
    }
    if (!dir[0]) dir = ".";
    sn_dataset *ds = calloc(1, sizeof *ds);
    if (!ds) return sn__fail(ctx, SN_ERR_NOMEM, "dataset: out of memory");
    ds->ctx = ctx;
    snprintf(ds->name, sizeof ds->name, "%s", folder ? "folder" : b->name);
    char prefix[PREFIX_LEN] = "fer";   /* folders without "dataset" are the fork's fer */
    int64_t num_class = 0;
    bool have_info = false;
    sn_status st = SN_OK;
    if (b) {
        ds->num_classes = b->num_classes;
        ds->channels = b->channels;
        for (int i = 0; i < 2 && st == SN_OK; i++)
            st = add_split(ds, dir, b->pattern, b->split[i], b->count[i], false, b->name);
    }
    if (st == SN_OK)
        st = read_info(ds, dir, b ? b->pattern : NULL, prefix, sizeof prefix, &num_class,
                       &have_info);
    if (st == SN_OK && !have_info && (folder || b->need_info))
        st = sn__fail(ctx, SN_ERR_NOT_FOUND, "%s/info.json: missing (dataset '%s' needs it: "
                      "num_class and num_sample_<split>)", dir, ds->name);
    if (st == SN_OK && have_info) {
        ds->num_classes = (int)num_class;
        /* The fork's extra class: dataset fer, or a folder of fer files (what
         * sn_classifier opens: a train_dir with the copied info.json). */
        if (dp.fer_extra_class && !strcmp(b ? b->name : prefix, "fer")) ds->num_classes++;
        if (folder) ds->channels = !strcmp(prefix, "mnist") ? 1 : 3;
        for (int i = 0; b && b->need_info && i < ds->nsplits && st == SN_OK; i++)
            if (!ds->splits[i].from_info)
                st = sn__fail(ctx, SN_ERR_FORMAT, "%s/info.json: no \"num_sample_%s\"", dir,
                              ds->splits[i].name);
        if (folder && ds->nsplits == 0)
            st = sn__fail(ctx, SN_ERR_FORMAT, "%s/info.json: no \"num_sample_<split>\" key",
                          dir);
    }
    if (st == SN_OK) st = read_labels(ds, dir, false);
    if (st != SN_OK) {
        sn_dataset_free(ds);
        return st;
    }
    *out = ds;
    return SN_OK;
}

const char *sn_dataset_name(const sn_dataset *ds) { return ds ? ds->name : NULL; }
int sn_dataset_num_classes(const sn_dataset *ds) { return ds ? ds->num_classes : 0; }
int sn_dataset_channels(const sn_dataset *ds) { return ds ? ds->channels : 0; }
int sn_dataset_num_splits(const sn_dataset *ds) { return ds ? ds->nsplits : 0; }

const char *sn_dataset_label_name(const sn_dataset *ds, int id) {
    if (!ds || !ds->labels || id < 0 || id >= ds->num_classes) return NULL;
    return ds->labels[id];
}

const char *sn_dataset_split_name(const sn_dataset *ds, int i) {
    return ds && i >= 0 && i < ds->nsplits ? ds->splits[i].name : NULL;
}

sn_status sn_dataset_split(const sn_dataset *ds, const char *name, const char **pattern,
                           int64_t *num_samples) {
    if (!ds) return SN_ERR_INVALID_ARG;
    for (int i = 0; name && i < ds->nsplits; i++)
        if (!strcmp(ds->splits[i].name, name)) {
            if (pattern) *pattern = ds->splits[i].pattern;
            if (num_samples) *num_samples = ds->splits[i].num_samples;
            return SN_OK;
        }
    char known[MAX_SPLITS * (SPLIT_NAME_LEN + 2)] = "";
    for (int i = 0; i < ds->nsplits; i++)
        snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s", i ? ", " : "",
                 ds->splits[i].name);
    return sn__fail(ds->ctx, SN_ERR_NOT_FOUND, "dataset '%s': no split '%s' (splits: %s)",
                    ds->name, name ? name : "(null)", known);
}
