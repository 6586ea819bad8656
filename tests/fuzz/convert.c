/* convert.c: fuzz target for the converters' readers of source files: mnist's idx files
 * and cifar10's binary batches.  The first byte picks mnist (even) or cifar10 (odd); the
 * parts of the rest (FZ_SEP) are the source files in order (train images, train labels,
 * test images, test labels; or data_batch_1..5.bin, test_batch.bin), missing ones empty.
 * An accepted source converts into as many records as its report says. */
#include <sys/stat.h>
#include "fuzz.h"

SN_FUZZ_TARGET(convert) {
    static const char *mnist[] = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                  "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"};
    static const char *cifar[] = {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin",
                                  "data_batch_4.bin", "data_batch_5.bin", "test_batch.bin"};
    if (size < 1) return 0;
    int is_cifar = data[0] & 1, n_files = is_cifar ? 6 : 4;
    const uint8_t *part[6];
    size_t len[6];
    int n = fz_split(data + 1, size - 1, part, len, n_files);
    fz_clear();
    char src[4200], out[4200], name[64];
    snprintf(src, sizeof src, "%s/src", fz_dir());
    snprintf(out, sizeof out, "%s/out", fz_dir());
    FZ_CHECK(mkdir(src, 0755) == 0);
    for (int i = 0; i < n_files; i++) {
        snprintf(name, sizeof name, "src/%s", is_cifar ? cifar[i] : mnist[i]);
        fz_write(name, i < n ? part[i] : NULL, i < n ? len[i] : 0);
    }
    sn_convert_params cp = sn_convert_params_default();
    cp.dataset_name = is_cifar ? "cifar10" : "mnist";
    cp.source = src;
    cp.dataset_dir = out;
    sn_convert_report rep;
    if (sn_dataset_convert(fz_ctx(), &cp, &rep) != SN_OK) return 0;
    FZ_CHECK(rep.num_train >= 0 && rep.num_test >= 0 && rep.num_classes == 10);
    /* read back: every record is an image example */
    sn_dataset *ds = NULL;
    FZ_CHECK(sn_dataset_open(fz_ctx(), cp.dataset_name, out, NULL, &ds) == SN_OK);
    int64_t records = 0;
    for (int s = 0; s < sn_dataset_num_splits(ds); s++) {
        const char *pattern;
        int64_t expect;
        sn_file_list *files = NULL;
        FZ_CHECK(sn_dataset_split(ds, sn_dataset_split_name(ds, s), &pattern, &expect) ==
                 SN_OK);
        if (sn_tfrecord_files(fz_ctx(), pattern, &files) != SN_OK) continue;
        for (size_t f = 0; f < sn_file_list_count(files); f++) {
            sn_tfrecord_reader *r = NULL;
            FZ_CHECK(sn_tfrecord_reader_open(fz_ctx(), sn_file_list_path(files, f),
                                             SN_COMPRESSION_NONE, &r) == SN_OK);
            const uint8_t *rec;
            size_t rl;
            while (sn_tfrecord_read(r, &rec, &rl) == SN_OK) records++;
            sn_tfrecord_reader_close(r);
        }
        sn_file_list_free(files);
    }
    FZ_CHECK(records == rep.num_train + rep.num_test);
    sn_dataset_free(ds);
    return 0;
}
