/* slimnet-demo: the data of `make demo`.  Writes Fashion-MNIST (Debian's
 * dataset-fashion-mnist idx files, training and test images together) as a FER-style tree
 * of per-class grayscale JPEGs, the input the vendor's FER tool took:
 *
 *   slimnet-demo --data_dir=/usr/share/datasets/fashion-mnist --fer_tree=OUT
 *                [--size=48] [--fit=pad|resize] [--quality=95] [--limit=0] [--samples=DIR]
 *
 * OUT/<class>/<split>_<index>.jpg, each 28x28 image centered on a black size x size canvas
 * (--fit=pad, the default: lenet's preprocessing, resize_image_with_crop_or_pad to its 28x28,
 * takes the original back) or resized to size x size with TF's resize_bilinear
 * (--fit=resize), then JPEG-encoded.  slimnet-convert --dataset_name=fer then splits
 * the tree 70/30 as the vendor's converter did.  --samples also writes the first 8 test
 * images as DIR/<i>_<true class>.jpg, for slimnet-classify to show.  Exit status 0, 1 on errors, 2 on flags. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>
#include "../lib/slimnet.h"

/* Folder names: Fashion-MNIST's class names, as file names. */
static const char *class_names[10] = {"T-shirt_top", "Trouser", "Pullover", "Dress", "Coat",
                                      "Sandal", "Shirt", "Sneaker", "Bag", "Ankle_boot"};

typedef struct dataset {
    int64_t n, rows, cols;
    uint8_t *images;   /* n * rows * cols */
    uint8_t *labels;   /* n */
} dataset;

static uint32_t be32(const uint8_t *b) {
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

/* Reads an idx file (gzip or plain): magic 0x00000803 (images) or 0x00000801 (labels).
 * Every count is bounded before anything is allocated. */
static int read_idx(const char *path, uint32_t magic, int64_t *dims, uint8_t **data) {
    gzFile f = gzopen(path, "rb");
    if (!f) {
        fprintf(stderr, "slimnet-demo: cannot open %s: %s\n", path, strerror(errno));
        return -1;
    }
    uint8_t hdr[16];
    int ndims = magic == 0x803 ? 3 : 1, hlen = 4 + 4 * ndims;
    if (gzread(f, hdr, (unsigned)hlen) != hlen || be32(hdr) != magic) {
        fprintf(stderr, "slimnet-demo: %s: not an idx file with magic 0x%08x\n", path, magic);
        gzclose(f);
        return -1;
    }
    int64_t total = 1;
    for (int d = 0; d < ndims; d++) {
        dims[d] = be32(hdr + 4 + 4 * d);
        if (dims[d] < 1 || dims[d] > (d == 0 ? 10000000 : 4096)) {
            fprintf(stderr, "slimnet-demo: %s: dimension %d is %lld, outside the bounds\n", path,
                    d, (long long)dims[d]);
            gzclose(f);
            return -1;
        }
        total *= dims[d];
    }
    *data = malloc((size_t)total);
    if (!*data || gzread(f, *data, (unsigned)total) != (int)total) {
        fprintf(stderr, "slimnet-demo: %s: truncated (expected %lld bytes of data)\n", path,
                (long long)total);
        free(*data);
        gzclose(f);
        return -1;
    }
    gzclose(f);
    return 0;
}

static int load(const char *dir, const char *split, dataset *ds) {
    char path[1024];
    int64_t di[3], dl[1];
    snprintf(path, sizeof path, "%s/%s-images-idx3-ubyte.gz", dir, split);
    if (read_idx(path, 0x803, di, &ds->images)) return -1;
    snprintf(path, sizeof path, "%s/%s-labels-idx1-ubyte.gz", dir, split);
    if (read_idx(path, 0x801, dl, &ds->labels)) return -1;
    if (dl[0] != di[0]) {
        fprintf(stderr, "slimnet-demo: %s: %lld images but %lld labels\n", split,
                (long long)di[0], (long long)dl[0]);
        return -1;
    }
    ds->n = di[0];
    ds->rows = di[1];
    ds->cols = di[2];
    for (int64_t i = 0; i < ds->n; i++)
        if (ds->labels[i] > 9) {
            fprintf(stderr, "slimnet-demo: %s: label %d of image %lld outside [0, 10)\n", split,
                    ds->labels[i], (long long)i);
            return -1;
        }
    return 0;
}

/* Writes one split's images into the tree. */
static int write_split(sn_ctx *ctx, const dataset *ds, const char *split, const char *out,
                       int size, int pad, int quality, int64_t limit, int samples,
                       int64_t *written) {
    int64_t n = limit > 0 && limit < ds->n ? limit : ds->n;
    int64_t px = ds->rows * ds->cols;
    float *src = malloc((size_t)px * sizeof *src), *dst = malloc((size_t)size * size * sizeof *dst);
    int64_t dims[3] = {size, size, 1};
    sn_tensor *img = NULL;
    if (!src || !dst || sn_tensor_new(ctx, SN_DTYPE_U8, 3, dims, &img) != SN_OK) {
        fprintf(stderr, "slimnet-demo: out of memory\n");
        free(src);
        free(dst);
        return 1;
    }
    uint8_t *pix = sn_tensor_data(img);
    int rc = 0;
    for (int64_t i = 0; i < n && !rc; i++) {
        const uint8_t *s = ds->images + i * px;
        if (pad) {   /* centered as resize_image_with_crop_or_pad centers */
            int top = (size - (int)ds->rows) / 2, left = (size - (int)ds->cols) / 2;
            memset(pix, 0, (size_t)size * (size_t)size);
            for (int64_t y = 0; y < ds->rows; y++)
                memcpy(pix + (y + top) * size + left, s + y * ds->cols, (size_t)ds->cols);
        } else {
            for (int64_t k = 0; k < px; k++) src[k] = s[k];
            if (sn_resize_bilinear(ctx, src, (int)ds->rows, (int)ds->cols, 1, dst, size,
                                   size) != SN_OK) {
                fprintf(stderr, "slimnet-demo: resize: %s\n", sn_ctx_errmsg(ctx));
                rc = 1;
                break;
            }
            for (int k = 0; k < size * size; k++) {
                float v = dst[k] + 0.5f;
                pix[k] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
        }
        sn_tensor *jpg = NULL;
        if (sn_image_encode_jpeg(ctx, img, quality, &jpg) != SN_OK) {
            fprintf(stderr, "slimnet-demo: encode: %s\n", sn_ctx_errmsg(ctx));
            rc = 1;
            break;
        }
        char path[4096];
        if (samples)
            snprintf(path, sizeof path, "%s/%lld_%s.jpg", out, (long long)i,
                     class_names[ds->labels[i]]);
        else
            snprintf(path, sizeof path, "%s/%s/%s_%05lld.jpg", out,
                     class_names[ds->labels[i]], split, (long long)i);
        FILE *f = fopen(path, "wb");
        size_t len = sn_tensor_nbytes(jpg);
        if (!f || fwrite(sn_tensor_data(jpg), 1, len, f) != len || fclose(f) != 0) {
            fprintf(stderr, "slimnet-demo: %s: %s\n", path, strerror(errno));
            rc = 1;
        }
        sn_tensor_free(jpg);
        (*written)++;
    }
    sn_tensor_free(img);
    free(src);
    free(dst);
    return rc;
}

int main(int argc, char **argv) {
    const char *dir = "/usr/share/datasets/fashion-mnist", *out = NULL, *samples = NULL;
    int size = 48, quality = 95, pad = 1;
    int64_t limit = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *eq = strchr(a, '=');
        char key[64] = "";
        const char *v = NULL;
        if (eq) {
            snprintf(key, sizeof key, "%.*s", (int)(eq - a), a);
            v = eq + 1;
        } else if (i + 1 < argc) {
            snprintf(key, sizeof key, "%s", a);
            v = argv[++i];
        }
        if (!v) {
            fprintf(stderr, "slimnet-demo: flag %s needs a value\n", a);
            return 2;
        }
        if (!strcmp(key, "--data_dir")) dir = v;
        else if (!strcmp(key, "--fer_tree")) out = v;
        else if (!strcmp(key, "--size")) size = atoi(v);
        else if (!strcmp(key, "--quality")) quality = atoi(v);
        else if (!strcmp(key, "--limit")) limit = atoll(v);
        else if (!strcmp(key, "--samples")) samples = v;
        else if (!strcmp(key, "--fit") && (!strcmp(v, "pad") || !strcmp(v, "resize")))
            pad = !strcmp(v, "pad");
        else {
            fprintf(stderr, "slimnet-demo: unknown flag %s\n", key);
            return 2;
        }
    }
    if (!out || size < 28 || size > 1024 || quality < 1 || quality > 100) {
        fprintf(stderr, "usage: slimnet-demo --fer_tree=OUT [--data_dir=FASHION_MNIST] "
                        "[--size=48 (28..1024)] [--fit=pad|resize] [--quality=95] "
                        "[--limit=N per split] [--samples=DIR]\n");
        return 2;
    }
    dataset train, test;
    if (load(dir, "train", &train) || load(dir, "t10k", &test)) return 1;
    if (mkdir(out, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "slimnet-demo: %s: %s\n", out, strerror(errno));
        return 1;
    }
    for (int c = 0; c < 10; c++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", out, class_names[c]);
        if (mkdir(path, 0755) != 0 && errno != EEXIST) {
            fprintf(stderr, "slimnet-demo: %s: %s\n", path, strerror(errno));
            return 1;
        }
    }
    sn_ctx_params cp = sn_ctx_params_default();
    sn_ctx *ctx = NULL;
    if (sn_ctx_new(&cp, &ctx) != SN_OK) return 1;
    int64_t written = 0;
    int64_t shown = 0;
    int rc = write_split(ctx, &train, "train", out, size, pad, quality, limit, 0, &written) ||
             write_split(ctx, &test, "t10k", out, size, pad, quality, limit, 0, &written);
    if (!rc && samples) {
        if (mkdir(samples, 0755) != 0 && errno != EEXIST) {
            fprintf(stderr, "slimnet-demo: %s: %s\n", samples, strerror(errno));
            rc = 1;
        } else {
            rc = write_split(ctx, &test, "t10k", samples, size, pad, quality, 8, 1, &shown);
        }
    }
    if (!rc)
        printf("slimnet-demo: wrote %lld %dx%d grayscale JPEGs of Fashion-MNIST (%s) from %s "
               "into %s/<class>/ (10 classes)\n", (long long)written, size, size,
               pad ? "28x28 centered" : "resized", dir, out);
    sn_ctx_free(ctx);
    free(train.images);
    free(train.labels);
    free(test.images);
    free(test.labels);
    return rc;
}
