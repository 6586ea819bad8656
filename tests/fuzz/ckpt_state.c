/* ckpt_state.c: fuzz target for the `checkpoint` state file of a train folder.  The folder
 * holds two real checkpoints and the input as its state file; beside it a folder holds a
 * third, which no state file may delete.  sn_ckpt_latest, sn_ckpt_newest and a save's
 * sn_ckpt_state_update (keeping one) run on it. */
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include "fuzz.h"

static char g_train[PATH_MAX], g_outside[PATH_MAX];

static void save(const char *dir, int step) {
    static float v[3] = {1, 2, 3};
    int64_t d = 3;
    sn_tensor *t = NULL;
    FZ_CHECK(sn_tensor_wrap(fz_ctx(), v, SN_DTYPE_F32, 1, &d, SN_BORROW, &t) == SN_OK);
    sn_ckpt_entry e = {"v", t};
    char prefix[PATH_MAX + 32];
    snprintf(prefix, sizeof prefix, "%s/model.ckpt-%d", dir, step);
    FZ_CHECK(sn_ckpt_write(fz_ctx(), prefix, 1, &e) == SN_OK);
    sn_tensor_free(t);
}

/* Whether model.ckpt-<step> in dir is complete: it opens. */
static int complete(const char *dir, int step) {
    char p[PATH_MAX + 48];
    snprintf(p, sizeof p, "%s/model.ckpt-%d", dir, step);
    sn_ckpt *ck = NULL;
    if (sn_ckpt_open(fz_ctx(), p, &ck) != SN_OK) return 0;
    sn_ckpt_close(ck);
    return 1;
}

SN_FUZZ_TARGET(ckpt_state) {
    if (!g_train[0]) {   /* <scratch>/train/{model.ckpt-1,-2} and <scratch>/outside/-9 */
        snprintf(g_train, sizeof g_train, "%s/train", fz_dir());
        snprintf(g_outside, sizeof g_outside, "%s/outside", fz_dir());
        FZ_CHECK(mkdir(g_train, 0755) == 0 && mkdir(g_outside, 0755) == 0);
        save(g_outside, 9);
    }
    for (int step = 1; step <= 2; step++)
        if (!complete(g_train, step)) save(g_train, step);
    char path[PATH_MAX + 32], buf[PATH_MAX];
    snprintf(path, sizeof path, "%s/checkpoint", g_train);
    FILE *f = fopen(path, "wb");
    FZ_CHECK(f && (size == 0 || fwrite(data, 1, size, f) == size) && fclose(f) == 0);
    sn_ctx *ctx = fz_ctx();
    sn_status st = sn_ckpt_latest(ctx, g_train, buf, sizeof buf);
    FZ_CHECK(st == SN_OK || st == SN_ERR_FORMAT || st == SN_ERR_INVALID_ARG ||
             st == SN_ERR_IO);
    FZ_CHECK(sn_ckpt_newest(ctx, g_train, buf, sizeof buf) == SN_OK);
    snprintf(path, sizeof path, "%s/model.ckpt-2", g_train);
    sn_ckpt_state_update(ctx, g_train, path, 1);
    FZ_CHECK(complete(g_outside, 9));   /* nothing deleted outside the folder */
    FZ_CHECK(complete(g_train, 2));     /* the checkpoint just recorded stays whole */
    return 0;
}
