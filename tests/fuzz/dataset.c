/* dataset.c: fuzz target for dataset descriptors.  The parts of the input (FZ_SEP) are
 * info.json, then labels.txt (absent when there is one part); the folder is opened as every
 * built-in dataset and every fact of an accepted one is read. */
#include <string.h>
#include "fuzz.h"

SN_FUZZ_TARGET(dataset) {
    static const char *names[] = {"fer", "folder", "flowers", "mnist", "imagenet"};
    const uint8_t *part[2];
    size_t len[2];
    int n = fz_split(data, size, part, len, 2);
    fz_clear();
    fz_write("info.json", part[0], len[0]);
    if (n > 1) fz_write("labels.txt", part[1], len[1]);
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        for (int extra = 0; extra < 2; extra++) {
            sn_dataset_params dp = sn_dataset_params_default();
            dp.fer_extra_class = extra;
            sn_dataset *ds = NULL;
            if (sn_dataset_open(fz_ctx(), names[k], fz_dir(), &dp, &ds) != SN_OK) continue;
            int classes = sn_dataset_num_classes(ds);
            FZ_CHECK(classes >= 1);
            FZ_CHECK(sn_dataset_channels(ds) == 1 || sn_dataset_channels(ds) == 3);
            for (int c = 0; c < classes; c++) {
                const char *label = sn_dataset_label_name(ds, c);
                if (label) fz_touch(label, strlen(label));
            }
            FZ_CHECK(sn_dataset_label_name(ds, classes) == NULL);
            for (int s = 0; s < sn_dataset_num_splits(ds); s++) {
                const char *pattern;
                int64_t samples;
                FZ_CHECK(sn_dataset_split(ds, sn_dataset_split_name(ds, s), &pattern,
                                          &samples) == SN_OK);
                FZ_CHECK(samples >= 0);
                fz_touch(pattern, strlen(pattern));
            }
            sn_dataset_free(ds);
        }
    }
    return 0;
}
