/* tfrecord.c: fuzz target for TFRecord reading.  The first byte picks the compression
 * (NONE, ZLIB, GZIP, AUTO); the rest is the file. */
#include "fuzz.h"

SN_FUZZ_TARGET(tfrecord) {
    if (size < 1) return 0;
    const char *path = fz_write("f.tfrecord", data + 1, size - 1);
    sn_tfrecord_reader *r = NULL;
    if (sn_tfrecord_reader_open(fz_ctx(), path, (sn_compression)(data[0] % 4), &r) != SN_OK)
        return 0;
    const uint8_t *rec;
    size_t len;
    uint64_t at = 0;
    sn_status st;
    while ((st = sn_tfrecord_read(r, &rec, &len)) == SN_OK) {
        fz_touch(rec, len);
        /* the offset counts the records read: 12 bytes of header, data, 4 of CRC */
        at += len + 16;
        FZ_CHECK(sn_tfrecord_reader_offset(r) == at);
    }
    FZ_CHECK(st == SN_ERR_NOT_FOUND || st == SN_ERR_FORMAT || st == SN_ERR_IO);
    FZ_CHECK(sn_tfrecord_read(r, &rec, &len) == st);   /* a failed reader stays failed */
    sn_tfrecord_reader_close(r);
    return 0;
}
