/* ckpt_v2.c: fuzz target for V2 bundles.  The parts of the input (FZ_SEP) are the index,
 * then the data shards "m.data-0000i-of-0000n"; every tensor the open accepts is read. */
#include "fuzz.h"

SN_FUZZ_TARGET(ckpt_v2) {
    const uint8_t *part[FZ_MAX_PARTS];
    size_t len[FZ_MAX_PARTS];
    int n = fz_split(data, size, part, len, FZ_MAX_PARTS);
    fz_clear();
    fz_write("m.index", part[0], len[0]);
    int shards = n > 1 ? n - 1 : 1;
    for (int i = 0; i < shards; i++) {
        char name[64];
        snprintf(name, sizeof name, "m.data-%05d-of-%05d", i, shards);
        fz_write(name, n > 1 ? part[i + 1] : NULL, n > 1 ? len[i + 1] : 0);
    }
    char prefix[4200];
    snprintf(prefix, sizeof prefix, "%s/m", fz_dir());
    sn_ckpt *ck = NULL;
    if (sn_ckpt_open(fz_ctx(), prefix, &ck) != SN_OK) return 0;
    FZ_CHECK(sn_ckpt_version(ck) == 2);
    fz_read_ckpt(ck);
    sn_ckpt_close(ck);
    return 0;
}
