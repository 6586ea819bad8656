/* image.c: fuzz target for JPEG and PNG decoding.  The input's length picks the channels
 * asked for (0, 1, 3) and the IDCT; the bound is 4 Mpixels, so that a header claiming a
 * huge image is refused quickly.  A decode agrees with sn_image_info, and the decode into a
 * caller's buffer gives the same pixels. */
#include <string.h>
#include "fuzz.h"

SN_FUZZ_TARGET(image) {
    static const int channels[3] = {0, 1, 3};
    sn_image_params p = sn_image_params_default();
    p.channels = channels[size % 3];
    p.fast_dct = (int)(size / 3 % 2);
    p.max_pixels = (uint64_t)4 << 20;
    sn_ctx *ctx = fz_ctx();
    sn_image_format fmt;
    int h, w, c;
    sn_status info = sn_image_info(ctx, data, size, &fmt, &h, &w, &c);
    sn_tensor *img = NULL;
    if (sn_image_decode(ctx, data, size, &p, &img) != SN_OK) {
        FZ_CHECK(img == NULL);
        return 0;
    }
    FZ_CHECK(info == SN_OK && fmt != SN_IMAGE_UNKNOWN);
    FZ_CHECK(sn_tensor_dim(img, 0) == h && sn_tensor_dim(img, 1) == w);
    int64_t oc = sn_tensor_dim(img, 2);
    FZ_CHECK(p.channels ? oc == p.channels : (oc == 1 || oc == 3));
    size_t n = sn_tensor_nbytes(img);
    uint8_t *buf = malloc(n);
    FZ_CHECK(buf != NULL);
    int h2, w2, c2;
    FZ_CHECK(sn_image_decode_into(ctx, data, size, &p, buf, n, &h2, &w2, &c2) == SN_OK);
    FZ_CHECK(h2 == h && w2 == w && c2 == oc && memcmp(buf, sn_tensor_data(img), n) == 0);
    if (n > 1)   /* one byte short: refused, nothing written past the end */
        FZ_CHECK(sn_image_decode_into(ctx, data, size, &p, buf, n - 1, &h2, &w2, &c2) ==
                 SN_ERR_SHAPE);
    free(buf);
    sn_tensor_free(img);
    return 0;
}
