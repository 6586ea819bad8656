/* dataset.h: helpers shared by dataset.c (descriptors) and convert.c (the converter).
 * Private to libslimnet. */
#ifndef SN_IO_DATASET_H
#define SN_IO_DATASET_H

#include <stddef.h>
#include <stdint.h>
#include "../sn_internal.h"

/* Bounds on the small text files of a dataset folder, checked before reading them. */
#define SN__INFO_JSON_MAX ((size_t)1 << 20)     /* info.json: 1 MiB */
#define SN__LABELS_TXT_MAX ((size_t)16 << 20)   /* labels.txt: 16 MiB */
#define SN__MAX_CLASSES (1 << 20)               /* class ids in labels.txt / info.json */
#define SN__MAX_SAMPLES ((int64_t)1 << 40)      /* num_sample_* in info.json */

/* Reads the whole file path into a malloc'd buffer with a NUL after its len bytes.  A file
 * over max bytes is SN_ERR_FORMAT (checked with fstat, before allocating); a missing file
 * SN_ERR_NOT_FOUND; both messages name the file. */
sn_status sn__read_file(sn_ctx *ctx, const char *path, size_t max, uint8_t **out,
                        size_t *len);

/* A descriptor of class names alone, for a folder with a labels.txt and no info.json (a
 * TF-slim dataset_dir, or the labels beside a published checkpoint): no splits, 3
 * channels, name "labels", num_classes = the highest id of labels.txt + 1.  A missing
 * labels.txt is SN_ERR_NOT_FOUND; its errors are sn_dataset_open's. */
sn_status sn__dataset_open_labels(sn_ctx *ctx, const char *dir, sn_dataset **out);

/* The file name of shard `index` of `num_shards` of a split, as the converter writes it:
 *   "<prefix>_<split>.tfrecord"                    (unsharded: fer, mnist, cifar10)
 *   "<prefix>_<split>_0000K-of-0000N.tfrecord"     (sharded, and always for flowers)
 * Both match the descriptors' patterns "<prefix>_%s*.tfrecord" / "flowers_%s_*.tfrecord". */
void sn__shard_name(char *buf, size_t len, const char *prefix, const char *split, int index,
                    int num_shards, int sharded);

/* An MNIST idx file (plain or gzip, as LeCun's site and Debian's dataset-fashion-mnist ship
 * them): magic 0x00000803 (images: n, rows, cols) or 0x00000801 (labels: n), big-endian.
 * Opening reads and checks the header only: n <= SN__IDX_MAX_ITEMS, rows and cols in
 * [1, SN__IDX_MAX_SIDE]. */
#define SN__IDX_MAX_ITEMS (1 << 24)
#define SN__IDX_MAX_SIDE 1024
typedef struct sn__idx {
    void *gz;              /* gzFile: reads gzip and plain files alike */
    char path[4096];
    int is_images;
    int64_t n, rows, cols;
} sn__idx;
/* Opens "<dir>/<base>", else "<dir>/<base>.gz".  SN_ERR_NOT_FOUND names both; SN_ERR_FORMAT
 * (bad magic, out-of-bound sizes, truncated header) names the file. */
sn_status sn__idx_open(sn_ctx *ctx, const char *dir, const char *base, int images,
                       sn__idx *out);
void sn__idx_close(sn__idx *f);

#endif
