/* bytes.c: the byte-level helpers of the checkpoint code (bytes.h): whole-file reads and
 * writes with errors that name the file and offset, atomic replacement, a growable buffer,
 * varints and little-endian fixed integers. */
#include "bytes.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- files ----------------------------------------------------------------------------- */

sn_status sn__file_open(sn_ctx *ctx, const char *path, int *fd, uint64_t *size) {
    *fd = open(path, O_RDONLY | O_CLOEXEC);
    if (*fd < 0)
        return sn__fail(ctx, errno == ENOENT ? SN_ERR_NOT_FOUND : SN_ERR_IO,
                        "cannot open '%s': %s", path, strerror(errno));
    struct stat st;
    if (fstat(*fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        int e = errno;
        close(*fd);
        *fd = -1;
        return sn__fail(ctx, SN_ERR_IO, "'%s' is not a readable file%s%s", path,
                        e ? ": " : "", e ? strerror(e) : "");
    }
    *size = (uint64_t)st.st_size;
    return SN_OK;
}

sn_status sn__file_pread(sn_ctx *ctx, int fd, void *buf, size_t n, uint64_t off,
                         const char *path) {
    uint8_t *p = buf;
    while (n > 0) {
        if (off > (uint64_t)INT64_MAX)
            return sn__fail(ctx, SN_ERR_IO, "'%s': offset %llu out of range", path,
                            (unsigned long long)off);
        /* Linux reads at most ~2 GiB per call; ask for 1 GiB at a time. */
        size_t chunk = n < ((size_t)1 << 30) ? n : ((size_t)1 << 30);
        ssize_t r = pread(fd, p, chunk, (off_t)off);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0)
            return sn__fail(ctx, SN_ERR_IO, "'%s': read at offset %llu failed: %s", path,
                            (unsigned long long)off, strerror(errno));
        if (r == 0)
            return sn__fail(ctx, SN_ERR_FORMAT, "'%s': truncated: %zu bytes missing at offset "
                            "%llu", path, n, (unsigned long long)off);
        p += r;
        off += (uint64_t)r;
        n -= (size_t)r;
    }
    return SN_OK;
}

sn_status sn__file_write(sn_ctx *ctx, int fd, const void *buf, size_t n, const char *path) {
    const uint8_t *p = buf;
    while (n > 0) {
        size_t chunk = n < ((size_t)1 << 30) ? n : ((size_t)1 << 30);
        ssize_t r = write(fd, p, chunk);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0)
            return sn__fail(ctx, SN_ERR_IO, "'%s': write failed: %s", path,
                            r < 0 ? strerror(errno) : "no progress");
        p += r;
        n -= (size_t)r;
    }
    return SN_OK;
}

sn_status sn__fsync_parent(sn_ctx *ctx, const char *path) {
    const char *slash = strrchr(path, '/');
    char dir[PATH_MAX];
    if (!slash) {
        strcpy(dir, ".");
    } else if (slash == path) {
        strcpy(dir, "/");
    } else {
        size_t n = (size_t)(slash - path);
        if (n >= sizeof dir) return sn__fail(ctx, SN_ERR_INVALID_ARG, "path too long: '%s'", path);
        memcpy(dir, path, n);
        dir[n] = '\0';
    }
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return sn__fail(ctx, SN_ERR_IO, "cannot open folder '%s': %s", dir, strerror(errno));
    /* Some file systems refuse fsync on a folder (EINVAL); the rename is done either way. */
    int r = fsync(fd);
    int e = errno;
    close(fd);
    if (r != 0 && e != EINVAL && e != EROFS)
        return sn__fail(ctx, SN_ERR_IO, "fsync of folder '%s' failed: %s", dir, strerror(e));
    return SN_OK;
}

sn_status sn__file_write_atomic(sn_ctx *ctx, const char *path, const void *data, size_t n) {
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s.tmp%ld", path, (long)getpid()) >= (int)sizeof tmp)
        return sn__fail(ctx, SN_ERR_INVALID_ARG, "path too long: '%s'", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return sn__fail(ctx, SN_ERR_IO, "cannot create '%s': %s", tmp, strerror(errno));
    sn_status st = sn__file_write(ctx, fd, data, n, tmp);
    if (st == SN_OK && fsync(fd) != 0)
        st = sn__fail(ctx, SN_ERR_IO, "fsync of '%s' failed: %s", tmp, strerror(errno));
    if (close(fd) != 0 && st == SN_OK)
        st = sn__fail(ctx, SN_ERR_IO, "close of '%s' failed: %s", tmp, strerror(errno));
    if (st == SN_OK && rename(tmp, path) != 0)
        st = sn__fail(ctx, SN_ERR_IO, "cannot rename '%s' to '%s': %s", tmp, path,
                      strerror(errno));
    if (st != SN_OK) {
        unlink(tmp);
        return st;
    }
    return sn__fsync_parent(ctx, path);
}

/* ---- growable buffer ------------------------------------------------------------------- */

void sn__buf_free(sn__buf *b) {
    free(b->p);
    memset(b, 0, sizeof *b);
}

bool sn__buf_reserve(sn__buf *b, size_t extra) {
    if (b->oom) return false;
    if (extra <= b->cap - b->n) return true;
    if (extra > SIZE_MAX / 2 - b->n) {
        b->oom = true;
        return false;
    }
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->n < extra) cap *= 2;
    uint8_t *p = realloc(b->p, cap);
    if (!p) {
        b->oom = true;
        return false;
    }
    b->p = p;
    b->cap = cap;
    return true;
}

void sn__buf_put(sn__buf *b, const void *data, size_t n) {
    if (n == 0 || !sn__buf_reserve(b, n)) return;
    memcpy(b->p + b->n, data, n);
    b->n += n;
}

void sn__buf_put_u8(sn__buf *b, uint8_t v) { sn__buf_put(b, &v, 1); }

void sn__buf_put_fixed32(sn__buf *b, uint32_t v) {
    uint8_t x[4];
    for (int i = 0; i < 4; i++) x[i] = (uint8_t)(v >> (8 * i));
    sn__buf_put(b, x, 4);
}

void sn__buf_put_fixed64(sn__buf *b, uint64_t v) {
    uint8_t x[8];
    for (int i = 0; i < 8; i++) x[i] = (uint8_t)(v >> (8 * i));
    sn__buf_put(b, x, 8);
}

void sn__buf_put_varint(sn__buf *b, uint64_t v) {
    uint8_t x[10];
    int n = 0;
    while (v >= 0x80) {
        x[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    x[n++] = (uint8_t)v;
    sn__buf_put(b, x, (size_t)n);
}

/* ---- varints --------------------------------------------------------------------------- */

const uint8_t *sn__get_varint(const uint8_t *p, const uint8_t *end, int max_bytes,
                              uint64_t *v) {
    uint64_t r = 0;
    for (int i = 0; i < max_bytes && p < end; i++) {
        uint64_t byte = *p++;
        if (i == 9 && byte > 1) return NULL;            /* beyond 64 bits */
        if (i == 4 && max_bytes == 5 && byte > 0x0f) return NULL;   /* beyond 32 bits */
        r |= (byte & 0x7f) << (7 * i);
        if (!(byte & 0x80)) {
            *v = r;
            return p;
        }
    }
    return NULL;
}

uint32_t sn__load32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

uint64_t sn__load64(const uint8_t *p) {
    return (uint64_t)sn__load32(p) | (uint64_t)sn__load32(p + 4) << 32;
}
