/* convert.c: sn_dataset_convert, TF-slim's download_and_convert_data.py and the UAI fork's
 * download_and_convert_fer.py from local files, made reproducible.
 *
 *   fer / folder  <source>/<class>/<image>: class ids from the SORTED folder names, files
 *                 sorted, then shuffled by our own seeded generator (the fork uses
 *                 os.listdir order and an unseeded random.shuffle); train = the first
 *                 round((1 - test_fraction) * N) (the fork: int(0.7 * N)), test = the rest.
 *   flowers       the same tree; the first 350 (or round(test_fraction * N)) are the
 *                 validation split, the rest train, 5 shards each (TF-slim: random.seed(0)
 *                 over os.listdir order, which no other program can reproduce).
 *   mnist         the four idx files (plain or .gz), in file order, PNG-encoded 28x28x1.
 *   cifar10       the binary batches (data_batch_1..5.bin, test_batch.bin: a label byte and
 *                 3072 bytes R, G, B planes), in file order, PNG-encoded 32x32x3 (TF-slim
 *                 reads the python pickles; the pixels are the same).
 * Each record is TF-slim's image_to_tfexample: image/encoded (folder images byte for byte),
 * image/format ("jpg" or "png", from the magic bytes), image/class/label, image/height and
 * image/width (from the image header).  Every folder image is decoded once to prove it
 * decodes.  Also written: labels.txt ("<id>:<name>" lines) and info.json (the fork's keys,
 * plus "dataset", the file prefix, for sn_dataset_open's "folder").
 *
 * Which files of a class folder are images: hidden names (a leading '.') are skipped, and so
 * is anything that is neither a regular file nor a symlink to one; a file is an image when
 * its first bytes are a JPEG or PNG signature OR its name ends in .jpg/.jpeg/.jpe/.png (any
 * case).  A file with such a name but other content is an error naming it (a damaged
 * image, not a stray file); anything else (README, Thumbs.db, .txt) is skipped and counted.
 *
 * Outputs are written under temporary hidden names ".<name>.tmp" and renamed once all are
 * complete, info.json last; on failure the temporary files are removed and any old dataset
 * is left as it was. */
#include <dirent.h>
#include <errno.h>
#include <glob.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include "dataset.h"

#define MAX_IMAGE_BYTES ((size_t)256 << 20)   /* one source image */
enum {
    MAX_SHARDS = 10000,
    FLOWERS_SHARDS = 5,             /* TF-slim's _NUM_SHARDS */
    FLOWERS_VALIDATION = 350,       /* TF-slim's _NUM_VALIDATION */
    CIFAR_SIDE = 32,
    CIFAR_RECORD = 1 + 3 * 32 * 32,
    CIFAR_BATCHES = 5,
    MNIST_CLASSES = 10
};

/* TF-slim's download_and_convert_mnist._CLASS_NAMES, including its misspelling of six as
 * 'size': labels.txt stays identical to the one TF-slim writes. */
static const char *const mnist_names[MNIST_CLASSES] = {
    "zero", "one", "two", "three", "four", "five", "size", "seven", "eight", "nine"};
/* CIFAR-10's batches.meta.txt order (TF-slim's _CLASS_NAMES). */
static const char *const cifar10_names[10] = {
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"};

typedef enum kind { KIND_FOLDER, KIND_FLOWERS, KIND_MNIST, KIND_CIFAR10 } kind;

typedef struct item {
    char *path;
    int label;
} item;

typedef struct output {
    char *final, *tmp;
    bool written;               /* tmp exists */
} output;

typedef struct conv {
    sn_ctx *ctx;
    const sn_convert_params *p;
    kind kind;
    const char *prefix;         /* file prefix: fer, flowers, mnist, cifar10 */
    const char *split[2];       /* split names, in info.json order */
    int64_t count[2];           /* records per split */
    int num_shards;
    bool sharded;
    /* classes */
    int num_classes;
    char **class_names;
    bool own_names;
    /* folder kinds: the shuffled items and where each split starts */
    item *items;
    int64_t num_items, first[2];
    int64_t skipped;
    uint8_t *pix;               /* decode buffer (folder) / raw pixels (mnist, cifar10) */
    size_t pix_cap;
    uint8_t *file;              /* the current folder image */
    sn_tensor *png;             /* the current encoded PNG (mnist, cifar10) */
    /* mnist: image and label files of the split being written */
    sn__idx img, lab;
    uint8_t *labels;
    /* cifar10: batch files of the split being written */
    FILE *batch;
    char batch_path[4096];
    int batch_index, batch_count;
    int64_t batch_left;
    /* outputs */
    output *out;
    int nout;
    int64_t bytes;
} conv;

sn_convert_params sn_convert_params_default(void) {
    sn_convert_params p = {NULL, NULL, NULL, 0, 0.0, 0, 0};
    return p;
}

/* The message of the last failure, copied: sn__fail writes into the buffer it would read. */
static sn_status refail(sn_ctx *ctx, sn_status st, const char *what) {
    char msg[SN_ERRMSG_LEN];
    snprintf(msg, sizeof msg, "%s", sn_ctx_errmsg(ctx));
    return sn__fail(ctx, st, "%s: %s", what, msg);
}

static char *dup_path(const char *a, const char *b) {
    size_t n = strlen(a) + strlen(b) + 2;
    char *s = malloc(n);
    if (s) snprintf(s, n, "%s/%s", a, b);
    return s;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* splitmix64: the shuffle's generator, ours so that a seed means the same order
 * everywhere (Vigna's constants). */
static uint64_t splitmix64(uint64_t *s) { return sn__mix64(*s += SN__GOLDEN64); }

/* Uniform in [0, n), n >= 1, without modulo bias. */
static uint64_t uniform(uint64_t *s, uint64_t n) {
    uint64_t limit = UINT64_MAX - UINT64_MAX % n, r;
    do r = splitmix64(s); while (r >= limit);
    return r % n;
}

/* ---- folders of class folders -------------------------------------------------------- */

/* Sorted names of the visible entries of dir.  *n entries, each malloc'd. */
static sn_status list_dir(sn_ctx *ctx, const char *dir, char ***names, size_t *n) {
    *names = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) {
        int e = errno;
        return sn__fail(ctx, e == ENOENT ? SN_ERR_NOT_FOUND : SN_ERR_IO,
                        "%s: cannot open folder: %s", dir, strerror(e));
    }
    size_t cap = 0;
    sn_status st = SN_OK;
    for (struct dirent *e; st == SN_OK && (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;   /* hidden, ".", ".." */
        if (*n == cap) {
            size_t nc = cap ? 2 * cap : 64;
            char **g = realloc(*names, nc * sizeof *g);
            if (!g) {
                st = sn__fail(ctx, SN_ERR_NOMEM, "%s: out of memory listing it", dir);
                break;
            }
            *names = g;
            cap = nc;
        }
        size_t len = strlen(e->d_name) + 1;
        if (!((*names)[*n] = malloc(len)))
            st = sn__fail(ctx, SN_ERR_NOMEM, "%s: out of memory listing it", dir);
        else
            memcpy((*names)[(*n)++], e->d_name, len);
    }
    closedir(d);
    if (*n) qsort(*names, *n, sizeof **names, cmp_str);
    return st;
}

static void free_names(char **names, size_t n) {
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
}

static bool image_suffix(const char *name) {
    static const char *const ext[] = {".jpg", ".jpeg", ".jpe", ".png"};
    size_t n = strlen(name);
    for (size_t i = 0; i < sizeof ext / sizeof *ext; i++) {
        size_t k = strlen(ext[i]);
        if (n > k && strcasecmp(name + n - k, ext[i]) == 0) return true;
    }
    return false;
}

/* Is path an image (see the top of the file)?  SN_ERR_FORMAT for an image name with other
 * content. */
static sn_status is_image(conv *c, const char *path, const char *name, bool *yes) {
    uint8_t head[8] = {0};
    size_t got = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return sn__fail(c->ctx, SN_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    got = fread(head, 1, sizeof head, f);
    fclose(f);
    bool magic = sn_image_sniff(head, got) != SN_IMAGE_UNKNOWN;
    if (!magic && image_suffix(name))
        return sn__fail(c->ctx, SN_ERR_FORMAT, "%s: not a JPEG or PNG file (%s)", path,
                        got ? "unknown signature" : "empty");
    *yes = magic;
    return SN_OK;
}

/* Lists <source>/<class>/<image> into c->items (class-major, sorted) and the class names. */
static sn_status scan_folder(conv *c) {
    const char *src = c->p->source;
    char **names;
    size_t n;
    SN_TRY(list_dir(c->ctx, src, &names, &n));
    sn_status st = SN_OK;
    size_t cap = 0;
    struct stat out_sb;
    bool out_ok = stat(c->p->dataset_dir, &out_sb) == 0;
    c->class_names = calloc(n ? n : 1, sizeof *c->class_names);
    c->own_names = true;
    if (!c->class_names) st = sn__fail(c->ctx, SN_ERR_NOMEM, "%s: out of memory", src);
    for (size_t i = 0; i < n && st == SN_OK; i++) {
        char *dir = dup_path(src, names[i]);
        struct stat sb;
        if (!dir) {
            st = sn__fail(c->ctx, SN_ERR_NOMEM, "%s: out of memory", src);
            break;
        }
        if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {   /* a file beside the classes */
            c->skipped++;
            free(dir);
            continue;
        }
        if (out_ok && sb.st_dev == out_sb.st_dev && sb.st_ino == out_sb.st_ino) {
            free(dir);   /* dataset_dir inside the source: our output, not a class */
            continue;
        }
        if (strpbrk(names[i], "\n\r")) {
            st = sn__fail(c->ctx, SN_ERR_FORMAT, "%s: a class folder name cannot hold a line "
                          "break (labels.txt has one class a line)", dir);
            free(dir);
            break;
        }
        if (c->num_classes == SN__MAX_CLASSES) {
            st = sn__fail(c->ctx, SN_ERR_FORMAT, "%s: more than %d class folders", src,
                          SN__MAX_CLASSES);
            free(dir);
            break;
        }
        int label = c->num_classes;
        c->class_names[c->num_classes++] = names[i];
        names[i] = NULL;
        char **files;
        size_t nf;
        st = list_dir(c->ctx, dir, &files, &nf);
        for (size_t j = 0; j < nf && st == SN_OK; j++) {
            char *path = dup_path(dir, files[j]);
            bool img = false;
            if (!path) {
                st = sn__fail(c->ctx, SN_ERR_NOMEM, "%s: out of memory", dir);
            } else if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode)) {
                c->skipped++;
            } else if ((st = is_image(c, path, files[j], &img)) == SN_OK && !img) {
                c->skipped++;
            } else if (st == SN_OK) {
                if ((size_t)c->num_items == cap) {
                    size_t nc = cap ? 2 * cap : 256;
                    item *g = realloc(c->items, nc * sizeof *g);
                    if (!g) {
                        st = sn__fail(c->ctx, SN_ERR_NOMEM, "%s: out of memory", dir);
                        break;
                    }
                    c->items = g;
                    cap = nc;
                }
                c->items[c->num_items++] = (item){path, label};
                path = NULL;
            }
            free(path);
        }
        free_names(files, nf);
        free(dir);
    }
    free_names(names, n);
    if (st == SN_OK && c->num_classes == 0)
        st = sn__fail(c->ctx, SN_ERR_NOT_FOUND, "%s: no class folders", src);
    if (st == SN_OK && c->num_items == 0)
        st = sn__fail(c->ctx, SN_ERR_NOT_FOUND, "%s: no JPEG or PNG images in its %d class "
                      "folders", src, c->num_classes);
    return st;
}

/* Shuffles the items with the seed and cuts them into the two splits. */
static sn_status split_folder(conv *c) {
    uint64_t s = c->p->seed;
    for (int64_t i = c->num_items - 1; i > 0; i--) {   /* Fisher-Yates */
        int64_t j = (int64_t)uniform(&s, (uint64_t)i + 1);
        item t = c->items[i];
        c->items[i] = c->items[j];
        c->items[j] = t;
    }
    int64_t n = c->num_items;
    double f = c->p->test_fraction;
    if (c->kind == KIND_FOLDER) {   /* train first, as the fork */
        int64_t ntrain = (int64_t)llround((1.0 - (f > 0 ? f : 0.3)) * (double)n);
        c->count[0] = ntrain;
        c->count[1] = n - ntrain;
        c->first[0] = 0;
        c->first[1] = ntrain;
    } else {                        /* flowers: validation first, as TF-slim */
        int64_t nval = f > 0 ? (int64_t)llround(f * (double)n) : FLOWERS_VALIDATION;
        if (nval > n)
            return sn__fail(c->ctx, SN_ERR_INVALID_ARG, "%s: %lld images, fewer than the %lld "
                            "validation images (TF-slim's flowers takes 350; set "
                            "test_fraction)", c->p->source, (long long)n, (long long)nval);
        c->count[0] = n - nval;     /* train */
        c->count[1] = nval;         /* validation */
        c->first[0] = nval;
        c->first[1] = 0;
    }
    return SN_OK;
}

/* The i-th record of split s: the file's bytes, checked to decode. */
static sn_status folder_record(conv *c, int s, int64_t i, sn_image_example *img) {
    const item *it = &c->items[c->first[s] + i];
    size_t len;
    free(c->file);
    c->file = NULL;
    SN_TRY(sn__read_file(c->ctx, it->path, MAX_IMAGE_BYTES, &c->file, &len));
    sn_image_format fmt;
    int h, w, ch;
    if (sn_image_info(c->ctx, c->file, len, &fmt, &h, &w, &ch) != SN_OK)
        return refail(c->ctx, SN_ERR_FORMAT, it->path);
    sn_image_params ip = sn_image_params_default();
    for (;;) {
        sn_status st = sn_image_decode_into(c->ctx, c->file, len, &ip, c->pix, c->pix_cap, &h,
                                            &w, &ch);
        if (st == SN_OK) break;
        if (st != SN_ERR_SHAPE || c->pix_cap >= (size_t)h * (size_t)w * (size_t)ch)
            return refail(c->ctx, st == SN_ERR_NOMEM ? st : SN_ERR_FORMAT, it->path);
        size_t need = (size_t)h * (size_t)w * (size_t)ch;
        uint8_t *g = realloc(c->pix, need);
        if (!g) return sn__fail(c->ctx, SN_ERR_NOMEM, "%s: cannot allocate %zu bytes to decode "
                                "it", it->path, need);
        c->pix = g;
        c->pix_cap = need;
    }
    img->encoded = c->file;
    img->encoded_len = len;
    snprintf(img->format, sizeof img->format, "%s", fmt == SN_IMAGE_PNG ? "png" : "jpg");
    img->label = it->label;
    img->height = h;
    img->width = w;
    return SN_OK;
}

/* ---- mnist ------------------------------------------------------------------------------ */

static uint32_t be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

sn_status sn__idx_open(sn_ctx *ctx, const char *dir, const char *base, int images,
                       sn__idx *out) {
    memset(out, 0, sizeof *out);
    out->is_images = images;
    snprintf(out->path, sizeof out->path, "%s/%s", dir, base);
    if (access(out->path, F_OK) != 0) {
        snprintf(out->path, sizeof out->path, "%s/%s.gz", dir, base);
        if (access(out->path, F_OK) != 0)
            return sn__fail(ctx, SN_ERR_NOT_FOUND, "%s/%s: no such file (nor %s.gz)", dir,
                            base, base);
    }
    gzFile gz = gzopen(out->path, "rb");
    if (!gz) return sn__fail(ctx, SN_ERR_IO, "%s: cannot open: %s", out->path, strerror(errno));
    out->gz = gz;
    uint8_t h[16];
    int want = images ? 16 : 8, got = gzread(gz, h, (unsigned)want);
    sn_status st = SN_OK;
    uint32_t magic = got >= 4 ? be32(h) : 0;
    if (got != want)
        st = sn__fail(ctx, SN_ERR_FORMAT, "%s: truncated idx header (%d of %d bytes)",
                      out->path, got < 0 ? 0 : got, want);
    else if (magic != (images ? 0x803u : 0x801u))
        st = sn__fail(ctx, SN_ERR_FORMAT, "%s: idx magic 0x%08x, expected 0x%08x (%s)",
                      out->path, magic, images ? 0x803u : 0x801u,
                      images ? "unsigned byte images, 3 dims" : "unsigned byte labels, 1 dim");
    if (st == SN_OK) {
        out->n = be32(h + 4);
        out->rows = images ? be32(h + 8) : 1;
        out->cols = images ? be32(h + 12) : 1;
        if (out->n > SN__IDX_MAX_ITEMS || out->rows < 1 || out->rows > SN__IDX_MAX_SIDE ||
            out->cols < 1 || out->cols > SN__IDX_MAX_SIDE)
            st = sn__fail(ctx, SN_ERR_FORMAT, "%s: idx header declares %lld items of %lldx%lld, "
                          "over the bounds (%d items, sides %d)", out->path, (long long)out->n,
                          (long long)out->rows, (long long)out->cols, SN__IDX_MAX_ITEMS,
                          SN__IDX_MAX_SIDE);
    }
    if (st != SN_OK) sn__idx_close(out);
    return st;
}

void sn__idx_close(sn__idx *f) {
    if (f && f->gz) gzclose((gzFile)f->gz);
    if (f) f->gz = NULL;
}

/* Opens the image and label files of split s and reads the labels (checked < 10). */
static sn_status mnist_open(conv *c, int s) {
    static const char *const base[2][2] = {
        {"train-images-idx3-ubyte", "train-labels-idx1-ubyte"},
        {"t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"}};
    sn__idx_close(&c->img);
    sn__idx_close(&c->lab);
    SN_TRY(sn__idx_open(c->ctx, c->p->source, base[s][0], 1, &c->img));
    SN_TRY(sn__idx_open(c->ctx, c->p->source, base[s][1], 0, &c->lab));
    if (c->img.n != c->lab.n)
        return sn__fail(c->ctx, SN_ERR_FORMAT, "%s has %lld images but %s has %lld labels",
                        c->img.path, (long long)c->img.n, c->lab.path, (long long)c->lab.n);
    free(c->labels);
    c->labels = malloc((size_t)c->lab.n + 1);
    size_t pix = (size_t)(c->img.rows * c->img.cols);
    if (pix > c->pix_cap) {
        free(c->pix);
        c->pix = malloc(pix);
        c->pix_cap = c->pix ? pix : 0;
    }
    if (!c->labels || !c->pix) return sn__fail(c->ctx, SN_ERR_NOMEM, "mnist: out of memory");
    int got = gzread((gzFile)c->lab.gz, c->labels, (unsigned)c->lab.n);
    if (got != (int)c->lab.n)
        return sn__fail(c->ctx, SN_ERR_FORMAT, "%s: truncated: %d of %lld labels", c->lab.path,
                        got < 0 ? 0 : got, (long long)c->lab.n);
    for (int64_t i = 0; i < c->lab.n; i++)
        if (c->labels[i] >= MNIST_CLASSES)
            return sn__fail(c->ctx, SN_ERR_FORMAT, "%s: label %d of item %lld is not a digit",
                            c->lab.path, c->labels[i], (long long)i);
    c->count[s] = c->img.n;
    return SN_OK;
}

/* Encodes h x w x ch pixels in c->pix as PNG into c->png. */
static sn_status encode_png(conv *c, int64_t h, int64_t w, int64_t ch, const char *what) {
    sn_tensor_free(c->png);
    c->png = NULL;
    sn_tensor *t;
    int64_t dims[3] = {h, w, ch};
    SN_TRY(sn_tensor_wrap(c->ctx, c->pix, SN_DTYPE_U8, 3, dims, SN_BORROW, &t));
    sn_status st = sn_image_encode_png(c->ctx, t, &c->png);
    sn_tensor_free(t);
    return st == SN_OK ? SN_OK : refail(c->ctx, st, what);
}

static void png_record(conv *c, int64_t label, int64_t h, int64_t w, sn_image_example *img) {
    img->encoded = sn_tensor_data(c->png);
    img->encoded_len = sn_tensor_nbytes(c->png);
    snprintf(img->format, sizeof img->format, "png");
    img->label = label;
    img->height = h;
    img->width = w;
}

static sn_status mnist_record(conv *c, int s, int64_t i, sn_image_example *img) {
    (void)s;
    size_t n = (size_t)(c->img.rows * c->img.cols);
    int got = gzread((gzFile)c->img.gz, c->pix, (unsigned)n);
    if (got != (int)n)
        return sn__fail(c->ctx, SN_ERR_FORMAT, "%s: truncated at image %lld of %lld",
                        c->img.path, (long long)i, (long long)c->img.n);
    SN_TRY(encode_png(c, c->img.rows, c->img.cols, 1, c->img.path));
    png_record(c, c->labels[i], c->img.rows, c->img.cols, img);
    return SN_OK;
}

/* ---- cifar10 ---------------------------------------------------------------------------- */

static void cifar_path(conv *c, int s, int k, char *buf, size_t len) {
    if (s == 0) snprintf(buf, len, "%s/data_batch_%d.bin", c->p->source, k + 1);
    else snprintf(buf, len, "%s/test_batch.bin", c->p->source);
}

/* Records in one batch file: its size must be a whole number of 3073-byte records. */
static sn_status cifar_count(conv *c, const char *path, int64_t *n) {
    struct stat sb;
    if (stat(path, &sb) != 0)
        return sn__fail(c->ctx, errno == ENOENT ? SN_ERR_NOT_FOUND : SN_ERR_IO,
                        "%s: %s (cifar10 needs data_batch_1..5.bin and test_batch.bin, the "
                        "binary version)", path, strerror(errno));
    if (!S_ISREG(sb.st_mode) || sb.st_size == 0 || sb.st_size % CIFAR_RECORD != 0)
        return sn__fail(c->ctx, SN_ERR_FORMAT, "%s: %lld bytes is not a whole number of "
                        "%d-byte records", path, (long long)sb.st_size, CIFAR_RECORD);
    *n = sb.st_size / CIFAR_RECORD;
    return SN_OK;
}

static sn_status cifar_scan(conv *c) {
    char path[4096];
    for (int s = 0; s < 2; s++) {
        c->count[s] = 0;
        for (int k = 0; k < (s == 0 ? CIFAR_BATCHES : 1); k++) {
            int64_t n;
            cifar_path(c, s, k, path, sizeof path);
            SN_TRY(cifar_count(c, path, &n));
            c->count[s] += n;
        }
    }
    return SN_OK;
}

static sn_status cifar_record(conv *c, int s, int64_t i, sn_image_example *img) {
    uint8_t rec[CIFAR_RECORD];
    if (i == 0) {   /* a new split: start at its first batch */
        if (c->batch) fclose(c->batch);
        c->batch = NULL;
        c->batch_index = -1;
        c->batch_left = 0;
        c->batch_count = s == 0 ? CIFAR_BATCHES : 1;
    }
    while (c->batch_left == 0) {
        if (c->batch) fclose(c->batch);
        c->batch = NULL;
        if (++c->batch_index >= c->batch_count)
            return sn__fail(c->ctx, SN_ERR_STATE, "cifar10: batch files changed during the "
                            "conversion");
        cifar_path(c, s, c->batch_index, c->batch_path, sizeof c->batch_path);
        SN_TRY(cifar_count(c, c->batch_path, &c->batch_left));
        if (!(c->batch = fopen(c->batch_path, "rb")))
            return sn__fail(c->ctx, SN_ERR_IO, "%s: cannot open: %s", c->batch_path,
                            strerror(errno));
    }
    if (fread(rec, 1, sizeof rec, c->batch) != sizeof rec)
        return sn__fail(c->ctx, SN_ERR_IO, "%s: read error", c->batch_path);
    c->batch_left--;
    if (rec[0] >= 10)
        return sn__fail(c->ctx, SN_ERR_FORMAT, "%s: record at offset %ld: label %d is not a "
                        "CIFAR-10 class", c->batch_path, ftell(c->batch) - CIFAR_RECORD, rec[0]);
    enum { PLANE = CIFAR_SIDE * CIFAR_SIDE };
    if (c->pix_cap < 3 * PLANE) {
        free(c->pix);
        c->pix_cap = (c->pix = malloc(3 * PLANE)) ? 3 * PLANE : 0;
        if (!c->pix) return sn__fail(c->ctx, SN_ERR_NOMEM, "cifar10: out of memory");
    }
    for (int p = 0; p < PLANE; p++)   /* CHW planes -> HWC */
        for (int ch = 0; ch < 3; ch++) c->pix[3 * p + ch] = rec[1 + ch * PLANE + p];
    SN_TRY(encode_png(c, CIFAR_SIDE, CIFAR_SIDE, 3, c->batch_path));
    png_record(c, rec[0], CIFAR_SIDE, CIFAR_SIDE, img);
    return SN_OK;
}

/* ---- outputs ---------------------------------------------------------------------------- */

static sn_status add_output(conv *c, const char *name) {
    output *o = &c->out[c->nout];
    o->final = dup_path(c->p->dataset_dir, name);
    size_t n = strlen(c->p->dataset_dir) + strlen(name) + 8;
    o->tmp = malloc(n);
    if (o->tmp) snprintf(o->tmp, n, "%s/.%s.tmp", c->p->dataset_dir, name);
    o->written = false;
    c->nout++;
    if (!o->final || !o->tmp) return sn__fail(c->ctx, SN_ERR_NOMEM, "convert: out of memory");
    return SN_OK;
}

/* "<dir>/<prefix>_<split>*.tfrecord" with glob's special characters of dir escaped. */
static void split_glob(conv *c, int s, char *buf, size_t len) {
    size_t k = 0;
    for (const char *d = c->p->dataset_dir; *d && k + 2 < len; d++) {
        if (strchr("*?[]\\", *d)) buf[k++] = '\\';
        buf[k++] = *d;
    }
    snprintf(buf + k, len - k, "/%s_%s*.tfrecord", c->prefix, c->split[s]);
}

/* Existing files a conversion would replace: labels.txt, info.json and every file the
 * descriptor's patterns match (a different shard count leaves other names behind).
 * Without overwrite, the first is SN_ERR_STATE; with it, they are removed (remove = true). */
static sn_status existing_outputs(conv *c, bool remove) {
    for (int s = 0; s < 2; s++) {
        char pat[4400];
        glob_t g;
        split_glob(c, s, pat, sizeof pat);
        if (glob(pat, 0, NULL, &g) != 0) continue;
        sn_status st = SN_OK;
        for (size_t i = 0; i < g.gl_pathc && st == SN_OK; i++) {
            if (!remove)
                st = sn__fail(c->ctx, SN_ERR_STATE, "%s exists (overwrite it with "
                              "--overwrite / overwrite = 1)", g.gl_pathv[i]);
            else if (unlink(g.gl_pathv[i]) != 0)
                st = sn__fail(c->ctx, SN_ERR_IO, "%s: cannot remove: %s", g.gl_pathv[i],
                              strerror(errno));
        }
        globfree(&g);
        SN_TRY(st);
    }
    for (int i = c->nout - 2; i < c->nout && !remove; i++)   /* labels.txt, info.json */
        if (access(c->out[i].final, F_OK) == 0)
            return sn__fail(c->ctx, SN_ERR_STATE, "%s exists (overwrite it with --overwrite / "
                            "overwrite = 1)", c->out[i].final);
    return SN_OK;
}

static sn_status write_text(conv *c, output *o, const char *text) {
    FILE *f = fopen(o->tmp, "wb");
    if (!f) return sn__fail(c->ctx, SN_ERR_IO, "%s: cannot create: %s", o->tmp, strerror(errno));
    o->written = true;
    size_t n = strlen(text);
    bool ok = fwrite(text, 1, n, f) == n;
    ok = (fclose(f) == 0) && ok;
    if (!ok) return sn__fail(c->ctx, SN_ERR_IO, "%s: write error: %s", o->tmp, strerror(errno));
    return SN_OK;
}

static sn_status write_labels_info(conv *c, output *labels, output *info) {
    size_t cap = 64, len = 0;
    for (int i = 0; i < c->num_classes; i++) cap += strlen(c->class_names[i]) + 16;
    char *t = malloc(cap);
    if (!t) return sn__fail(c->ctx, SN_ERR_NOMEM, "convert: out of memory");
    for (int i = 0; i < c->num_classes; i++)   /* TF-slim's write_label_file: "%d:%s\n" */
        len += (size_t)snprintf(t + len, cap - len, "%d:%s\n", i, c->class_names[i]);
    sn_status st = write_text(c, labels, t);
    free(t);
    SN_TRY(st);
    char js[512];   /* one line, the fork's keys first */
    snprintf(js, sizeof js, "{\"num_class\": %d, \"num_sample_%s\": %lld, \"num_sample_%s\": "
             "%lld, \"dataset\": \"%s\"}\n", c->num_classes, c->split[0],
             (long long)c->count[0], c->split[1], (long long)c->count[1], c->prefix);
    return write_text(c, info, js);
}

static sn_status next_record(conv *c, int s, int64_t i, sn_image_example *img) {
    switch (c->kind) {
    case KIND_FOLDER:
    case KIND_FLOWERS: return folder_record(c, s, i, img);
    case KIND_MNIST: return mnist_record(c, s, i, img);
    case KIND_CIFAR10: return cifar_record(c, s, i, img);
    }
    return SN_ERR_INVALID_ARG;
}

/* Writes split s into its shards, out[first_out ...]: ceil(n / shards) records each, as
 * TF-slim's flowers converter. */
static sn_status write_split(conv *c, int s, int first_out, sn_example *ex) {
    if (c->kind == KIND_MNIST) SN_TRY(mnist_open(c, s));
    int64_t n = c->count[s], per = (n + c->num_shards - 1) / c->num_shards, i = 0;
    for (int k = 0; k < c->num_shards; k++) {
        output *o = &c->out[first_out + k];
        sn_tfrecord_writer *w;
        SN_TRY(sn_tfrecord_writer_open(c->ctx, o->tmp, SN_COMPRESSION_NONE, &w));
        o->written = true;
        sn_status st = SN_OK;
        for (int64_t end = i + per < n ? i + per : n; i < end && st == SN_OK; i++) {
            sn_image_example img;
            const uint8_t *data;
            size_t len;
            if ((st = next_record(c, s, i, &img)) == SN_OK &&
                (st = sn_example_set_image(ex, &img)) == SN_OK &&
                (st = sn_example_serialize(ex, &data, &len)) == SN_OK)
                st = sn_tfrecord_write(w, data, len);
        }
        sn_status cst = sn_tfrecord_writer_close(w);
        SN_TRY(st);
        SN_TRY(cst);
    }
    sn__log(c->ctx, SN_LOG_INFO, "convert: %s: %lld records in %d file(s)", c->split[s],
            (long long)n, c->num_shards);
    return SN_OK;
}

static sn_status mkdir_p(sn_ctx *ctx, const char *dir) {
    char path[4096];
    if (snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path)
        return sn__fail(ctx, SN_ERR_INVALID_ARG, "%s: path too long", dir);
    for (char *p = path + 1;; p++) {
        bool last = *p == '\0';
        if (*p == '/' || last) {
            *p = '\0';
            if (mkdir(path, 0777) != 0 && errno != EEXIST)
                return sn__fail(ctx, SN_ERR_IO, "%s: cannot create folder: %s", path,
                                strerror(errno));
            if (last) break;
            *p = '/';
        }
    }
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return sn__fail(ctx, SN_ERR_IO, "%s: not a folder", dir);
    return SN_OK;
}

static void conv_free(conv *c) {
    for (int i = 0; i < c->nout; i++) {
        if (c->out[i].written) unlink(c->out[i].tmp);
        free(c->out[i].final);
        free(c->out[i].tmp);
    }
    free(c->out);
    for (int64_t i = 0; i < c->num_items; i++) free(c->items[i].path);
    free(c->items);
    if (c->own_names)
        for (int i = 0; i < c->num_classes; i++) free(c->class_names[i]);
    if (c->own_names) free(c->class_names);
    free(c->pix);
    free(c->file);
    free(c->labels);
    sn_tensor_free(c->png);
    sn__idx_close(&c->img);
    sn__idx_close(&c->lab);
    if (c->batch) fclose(c->batch);
}

/* Validates p and fills the dataset-dependent parts of c. */
static sn_status setup(conv *c) {
    const sn_convert_params *p = c->p;
    const char *name = p->dataset_name ? p->dataset_name : "";
    if (!strcmp(name, "fer") || !strcmp(name, "folder")) {
        c->kind = KIND_FOLDER;
        c->prefix = "fer";
        c->split[0] = "train", c->split[1] = "test";
    } else if (!strcmp(name, "flowers")) {
        c->kind = KIND_FLOWERS;
        c->prefix = "flowers";
        c->split[0] = "train", c->split[1] = "validation";
    } else if (!strcmp(name, "mnist")) {
        c->kind = KIND_MNIST;
        c->prefix = "mnist";
        c->split[0] = "train", c->split[1] = "test";
    } else if (!strcmp(name, "cifar10")) {
        c->kind = KIND_CIFAR10;
        c->prefix = "cifar10";
        c->split[0] = "train", c->split[1] = "test";
    } else {
        return sn__fail(c->ctx, SN_ERR_NOT_FOUND, "convert: unknown dataset '%s' (known: fer, "
                        "folder, flowers, mnist, cifar10)", name);
    }
    if (!p->source || !p->source[0] || !p->dataset_dir || !p->dataset_dir[0])
        return sn__fail(c->ctx, SN_ERR_INVALID_ARG, "convert: %s: source and dataset_dir are "
                        "required", name);
    if (!(p->test_fraction >= 0 && p->test_fraction < 1))
        return sn__fail(c->ctx, SN_ERR_INVALID_ARG, "convert: test_fraction %g is not in "
                        "[0, 1)", p->test_fraction);
    if (p->test_fraction > 0 && (c->kind == KIND_MNIST || c->kind == KIND_CIFAR10))
        return sn__fail(c->ctx, SN_ERR_INVALID_ARG, "convert: %s: the source fixes the "
                        "splits; test_fraction must stay 0", name);
    if (p->num_shards < 0 || p->num_shards > MAX_SHARDS)
        return sn__fail(c->ctx, SN_ERR_INVALID_ARG, "convert: num_shards %d is not in [0, %d]",
                        p->num_shards, MAX_SHARDS);
    c->num_shards = p->num_shards ? p->num_shards : c->kind == KIND_FLOWERS ? FLOWERS_SHARDS : 1;
    c->sharded = c->num_shards > 1 || c->kind == KIND_FLOWERS;   /* flowers_%s_* needs '_' */
    return SN_OK;
}

sn_status sn_dataset_convert(sn_ctx *ctx, const sn_convert_params *p,
                             sn_convert_report *report) {
    if (!ctx) return SN_ERR_INVALID_ARG;
    if (!p) return sn__fail(ctx, SN_ERR_INVALID_ARG, "convert: params are NULL");
    if (report) memset(report, 0, sizeof *report);
    conv c = {.ctx = ctx, .p = p};
    sn_example *ex = NULL;
    sn_status st = setup(&c);
    /* The source first: nothing is created for a source that cannot be converted. */
    if (st == SN_OK) {
        switch (c.kind) {
        case KIND_FOLDER:
        case KIND_FLOWERS:
            if ((st = scan_folder(&c)) == SN_OK) st = split_folder(&c);
            break;
        case KIND_MNIST:
            c.num_classes = MNIST_CLASSES;
            c.class_names = (char **)mnist_names;
            for (int s = 0; s < 2 && st == SN_OK; s++) st = mnist_open(&c, s);
            break;
        case KIND_CIFAR10:
            c.num_classes = 10;
            c.class_names = (char **)cifar10_names;
            st = cifar_scan(&c);
            break;
        }
    }
    if (st == SN_OK) st = mkdir_p(ctx, p->dataset_dir);
    if (st == SN_OK && !(c.out = calloc((size_t)(2 * c.num_shards + 2), sizeof *c.out)))
        st = sn__fail(ctx, SN_ERR_NOMEM, "convert: out of memory");
    for (int s = 0; s < 2 && st == SN_OK; s++)
        for (int k = 0; k < c.num_shards && st == SN_OK; k++) {
            char name[256];
            sn__shard_name(name, sizeof name, c.prefix, c.split[s], k, c.num_shards, c.sharded);
            st = add_output(&c, name);
        }
    if (st == SN_OK) st = add_output(&c, "labels.txt");
    if (st == SN_OK) st = add_output(&c, "info.json");
    if (st == SN_OK && !p->overwrite) st = existing_outputs(&c, false);
    if (st == SN_OK) st = sn_example_new(ctx, &ex);
    for (int s = 0; s < 2 && st == SN_OK; s++) st = write_split(&c, s, s * c.num_shards, ex);
    if (st == SN_OK) st = write_labels_info(&c, &c.out[c.nout - 2], &c.out[c.nout - 1]);
    /* Everything is written: replace the old dataset, info.json last. */
    if (st == SN_OK && p->overwrite) st = existing_outputs(&c, true);
    for (int i = 0; i < c.nout && st == SN_OK; i++) {
        output *o = &c.out[i];
        struct stat sb;
        if (rename(o->tmp, o->final) != 0) {
            st = sn__fail(ctx, SN_ERR_IO, "%s: cannot rename to %s: %s", o->tmp, o->final,
                          strerror(errno));
            break;
        }
        o->written = false;
        if (stat(o->final, &sb) == 0) c.bytes += sb.st_size;
    }
    if (st == SN_OK && report) {
        report->num_classes = c.num_classes;
        report->num_train = c.count[0];
        report->num_test = c.count[1];
        report->num_files = c.nout;
        report->bytes = c.bytes;
        report->num_skipped = c.skipped;
    }
    sn_example_free(ex);
    conv_free(&c);
    return st;
}
