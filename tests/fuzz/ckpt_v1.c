/* ckpt_v1.c: fuzz target for V1 tensor-slice checkpoints (one file); every tensor the open
 * accepts is read, its slices assembled. */
#include "fuzz.h"

SN_FUZZ_TARGET(ckpt_v1) {
    const char *path = fz_write("v1.ckpt", data, size);
    sn_ckpt *ck = NULL;
    if (sn_ckpt_open(fz_ctx(), path, &ck) != SN_OK) return 0;
    FZ_CHECK(sn_ckpt_version(ck) == 1);
    fz_read_ckpt(ck);
    sn_ckpt_close(ck);
    return 0;
}
