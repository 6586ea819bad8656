/* bytes.h: internal.  The byte-level helpers the checkpoint code shares: files (reads and
 * writes whose errors name the path and offset, atomic replacement), a growable byte
 * buffer, varints and little-endian fixed integers.  Nothing here is public. */
#ifndef SN_IO_BYTES_H
#define SN_IO_BYTES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "../sn_internal.h"
#include "../slimnet.h"

/* ---- files ----------------------------------------------------------------------------- */

/* Opens path read-only; *size = its length.  SN_ERR_NOT_FOUND (missing) or SN_ERR_IO. */
sn_status sn__file_open(sn_ctx *ctx, const char *path, int *fd, uint64_t *size);
/* Reads exactly n bytes at off (retrying short reads); SN_ERR_IO names path and offset. */
sn_status sn__file_pread(sn_ctx *ctx, int fd, void *buf, size_t n, uint64_t off,
                         const char *path);
/* Writes all n bytes; SN_ERR_IO names path. */
sn_status sn__file_write(sn_ctx *ctx, int fd, const void *buf, size_t n, const char *path);
/* Writes data to path atomically: "<path>.tmp<pid>", fsync, rename, fsync of the folder,
 * so a reader sees either the old file or the whole new one. */
sn_status sn__file_write_atomic(sn_ctx *ctx, const char *path, const void *data, size_t n);
/* fsync of the folder holding path, so that a rename into it survives a crash. */
sn_status sn__fsync_parent(sn_ctx *ctx, const char *path);

/* ---- growable byte buffer -------------------------------------------------------------- */

/* A byte string that grows; `oom` is sticky so callers check once after a run of puts. */
typedef struct sn__buf {
    uint8_t *p;
    size_t n, cap;
    bool oom;
} sn__buf;
void sn__buf_free(sn__buf *b);
bool sn__buf_reserve(sn__buf *b, size_t extra);
void sn__buf_put(sn__buf *b, const void *data, size_t n);
void sn__buf_put_u8(sn__buf *b, uint8_t v);
void sn__buf_put_fixed32(sn__buf *b, uint32_t v);
void sn__buf_put_fixed64(sn__buf *b, uint64_t v);
void sn__buf_put_varint(sn__buf *b, uint64_t v);

/* ---- varints and fixed ints (little-endian, as every TF format) ------------------------- */

/* Decodes a varint of at most max_bytes (5 for varint32, 10 for varint64) from [p, end).
 * Returns the byte after it, or NULL if it runs past end, is too long or overflows. */
const uint8_t *sn__get_varint(const uint8_t *p, const uint8_t *end, int max_bytes,
                              uint64_t *v);
uint32_t sn__load32(const uint8_t *p);
uint64_t sn__load64(const uint8_t *p);

#endif
