/* fuzz_util.c: see fuzz.h. */
#include "fuzz.h"

#include <ftw.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static sn_ctx *g_ctx;
static char g_dir[64];

sn_ctx *fz_ctx(void) {
    if (!g_ctx) {
        sn_ctx_params p = sn_ctx_params_default();
        p.threads = 1;
        FZ_CHECK(sn_ctx_new(&p, &g_ctx) == SN_OK);
    }
    return g_ctx;
}

static int rm_one(const char *p, const struct stat *s, int flag, struct FTW *f) {
    (void)s, (void)flag;
    return f->level > 0 ? remove(p) : 0;   /* the folder itself stays */
}

void fz_clear(void) {
    if (g_dir[0]) nftw(g_dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void remove_dir(void) {
    fz_clear();
    rmdir(g_dir);
}

const char *fz_dir(void) {
    if (!g_dir[0]) {
        struct stat s;
        snprintf(g_dir, sizeof g_dir, "%s/slimnet-fuzz-XXXXXX",
                 stat("/dev/shm", &s) == 0 && S_ISDIR(s.st_mode) ? "/dev/shm" : "/tmp");
        FZ_CHECK(mkdtemp(g_dir) != NULL);
        atexit(remove_dir);
    }
    return g_dir;
}

const char *fz_write(const char *name, const void *p, size_t n) {
    static char paths[8][PATH_MAX];
    static int next;
    char *path = paths[next++ % 8];
    snprintf(path, PATH_MAX, "%s/%s", fz_dir(), name);
    FILE *f = fopen(path, "wb");
    FZ_CHECK(f != NULL);
    FZ_CHECK(n == 0 || fwrite(p, 1, n, f) == n);
    FZ_CHECK(fclose(f) == 0);
    return path;
}

int fz_split(const uint8_t *data, size_t size, const uint8_t **part, size_t *len, int max) {
    const size_t sl = sizeof FZ_SEP - 1;
    int n = 0;
    part[0] = data;
    len[0] = size;
    while (n + 1 < max) {
        const uint8_t *at = size >= sl ? memmem(part[n], len[n], FZ_SEP, sl) : NULL;
        if (!at) break;
        size_t head = (size_t)(at - part[n]);
        part[n + 1] = at + sl;
        len[n + 1] = len[n] - head - sl;
        len[n] = head;
        n++;
    }
    return n + 1;
}

uint8_t fz_touch(const void *p, size_t n) {
    const uint8_t *b = p;
    uint8_t x = 0;
    for (size_t i = 0; i < n; i++) x ^= b[i];
    return x;
}

void fz_read_ckpt(sn_ckpt *ck) {
    for (int i = 0; i < sn_ckpt_count(ck); i++) {
        sn_ckpt_info info;
        FZ_CHECK(sn_ckpt_info_at(ck, i, &info) == SN_OK);
        FZ_CHECK(sn_ckpt_find(ck, info.name) == i);
        sn_tensor *t = NULL;
        if (info.has_sn_dtype) {
            if (sn_ckpt_read(ck, info.name, &t) != SN_OK) continue;
            FZ_CHECK((uint64_t)sn_tensor_nbytes(t) == info.nbytes);
            fz_touch(sn_tensor_data(t), sn_tensor_nbytes(t));
            sn_tensor_free(t);
        } else if (info.nbytes <= ((uint64_t)64 << 20)) {   /* bounded by the files */
            void *buf = malloc(info.nbytes ? (size_t)info.nbytes : 1);
            FZ_CHECK(buf != NULL);
            if (sn_ckpt_read_raw(ck, info.name, buf, (size_t)info.nbytes) == SN_OK)
                fz_touch(buf, (size_t)info.nbytes);
            free(buf);
        }
    }
}
