/* image.c: JPEG (libjpeg-turbo's TurboJPEG API) and PNG (libpng's simplified png_image API)
 * decoding and encoding, to and from uint8 HWC tensors.
 *
 * Untrusted input: the header is read first and height * width is checked against a bound
 * before any pixel memory exists; every codec failure becomes SN_ERR_FORMAT with the
 * codec's own message.  Neither API exits or longjmps into our code (png_image catches
 * libpng's errors internally; TurboJPEG returns -1). */
#include <limits.h>
#include <png.h>
#include <stdlib.h>
#include <string.h>
#include <turbojpeg.h>
#include "../sn_internal.h"

static const uint8_t png_magic[8] = {0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a};

sn_image_format sn_image_sniff(const void *data, size_t len) {
    const uint8_t *p = data;
    if (!p) return SN_IMAGE_UNKNOWN;
    if (len >= 3 && p[0] == 0xff && p[1] == 0xd8 && p[2] == 0xff) return SN_IMAGE_JPEG;
    if (len >= 8 && memcmp(p, png_magic, 8) == 0) return SN_IMAGE_PNG;
    return SN_IMAGE_UNKNOWN;
}

sn_image_params sn_image_params_default(void) {
    sn_image_params p = {0, SN_IMAGE_DEFAULT_MAX_PIXELS, 1};
    return p;
}

/* What a decode will produce, from the header alone. */
typedef struct shape {
    sn_image_format fmt;
    int h, w;
    int stored;       /* channels in the file: 1, 3, or 4 (CMYK / with alpha) */
    int out;          /* channels of the result: 1 or 3 */
    int jpeg_cs;      /* TJCS_* of a JPEG */
    uint32_t png_fmt; /* PNG_FORMAT_* of a PNG, as the file stores it */
} shape;

static sn_status check_params(sn_ctx *ctx, const void *data, size_t len,
                              const sn_image_params *p) {
    if (!data || len == 0) return sn__fail(ctx, SN_ERR_FORMAT, "image: empty data");
    if (p && p->channels != 0 && p->channels != 1 && p->channels != 3)
        return sn__fail(ctx, SN_ERR_INVALID_ARG, "image: channels must be 0, 1 or 3, not %d",
                        p->channels);
    return SN_OK;
}

static sn_status check_dims(sn_ctx *ctx, const shape *s, const sn_image_params *p) {
    const char *name = s->fmt == SN_IMAGE_JPEG ? "jpeg" : "png";
    uint64_t max = p ? p->max_pixels : SN_IMAGE_DEFAULT_MAX_PIXELS;
    if (s->h <= 0 || s->w <= 0)
        return sn__fail(ctx, SN_ERR_FORMAT, "%s: invalid size %dx%d", name, s->w, s->h);
    if ((uint64_t)s->h * (uint64_t)s->w > max)
        return sn__fail(ctx, SN_ERR_FORMAT, "%s: header declares %dx%d pixels, over the limit "
                        "of %llu pixels", name, s->w, s->h, (unsigned long long)max);
    return SN_OK;
}

/* The decoded size in bytes; checks the bound first. */
static sn_status out_bytes(sn_ctx *ctx, const shape *s, const sn_image_params *p, size_t *n) {
    SN_TRY(check_dims(ctx, s, p));
    if (!sn__mul_size((size_t)s->h * (size_t)s->w, (size_t)s->out, n))
        return sn__fail(ctx, SN_ERR_FORMAT, "image: %dx%d too large", s->w, s->h);
    return SN_OK;
}

static int out_channels(const sn_image_params *p, int stored) {
    int want = p ? p->channels : 0;
    return want ? want : (stored == 1 ? 1 : 3);
}

/* ---- JPEG ------------------------------------------------------------------------------- */

static sn_status jpeg_header(sn_ctx *ctx, tjhandle tj, const void *data, size_t len, shape *s) {
    int subsamp;
    if (tjDecompressHeader3(tj, data, (unsigned long)len, &s->w, &s->h, &subsamp,
                            &s->jpeg_cs) != 0)
        return sn__fail(ctx, SN_ERR_FORMAT, "jpeg: bad header: %s", tjGetErrorStr2(tj));
    s->stored = s->jpeg_cs == TJCS_GRAY ? 1
              : (s->jpeg_cs == TJCS_CMYK || s->jpeg_cs == TJCS_YCCK) ? 4 : 3;
    return SN_OK;
}

/* CMYK as Adobe writes it (inverted), converted as TF's decode_jpeg does for such files:
 * r = c * k / 255.  Works in place from 4 to 3 (or 1) bytes per pixel, front to back. */
static void cmyk_convert(uint8_t *px, size_t npix, int out) {
    for (size_t i = 0; i < npix; i++) {
        const uint8_t *q = px + 4 * i;
        int k = q[3];
        int r = q[0] * k / 255, g = q[1] * k / 255, b = q[2] * k / 255;
        if (out == 1) {   /* libjpeg's luma weights, rounded */
            px[i] = (uint8_t)((19595 * r + 38470 * g + 7471 * b + 32768) >> 16);
        } else {
            px[3 * i] = (uint8_t)r;
            px[3 * i + 1] = (uint8_t)g;
            px[3 * i + 2] = (uint8_t)b;
        }
    }
}

static sn_status jpeg_decode(sn_ctx *ctx, tjhandle tj, const void *data, size_t len,
                             const shape *s, int fast_dct, uint8_t *dst) {
    bool cmyk = s->stored == 4;
    uint8_t *buf = dst;
    if (cmyk) {   /* TurboJPEG cannot convert CMYK to RGB: decode 4 channels, then convert */
        size_t n;
        if (!sn__mul_size((size_t)s->h * (size_t)s->w, 4, &n) || !(buf = malloc(n)))
            return sn__fail(ctx, SN_ERR_NOMEM, "jpeg: out of memory (%dx%d CMYK)", s->w, s->h);
    }
    int pf = cmyk ? TJPF_CMYK : s->out == 1 ? TJPF_GRAY : TJPF_RGB;
    /* Fancy upsampling (TurboJPEG's default) as TF.  The IDCT: flags 0 is JDCT_ISLOW, TF's
     * "INTEGER_ACCURATE"; TJFLAG_FASTDCT is JDCT_IFAST, what TF picks for dct_method "". */
    int flags = fast_dct ? TJFLAG_FASTDCT : 0;
    if (tjDecompress2(tj, data, (unsigned long)len, buf, s->w, 0, s->h, pf, flags) != 0) {
        /* Warnings (e.g. extraneous bytes before a marker) still give a full image and TF
         * accepts them; a premature end (truncated file) gets a gray-filled image that TF
         * rejects, so do we. */
        const char *msg = tjGetErrorStr2(tj);
        if (tjGetErrorCode(tj) == TJERR_FATAL || strstr(msg, "remature end")) {
            if (cmyk) free(buf);
            return sn__fail(ctx, SN_ERR_FORMAT, "jpeg: %s", msg);
        }
        sn__log(ctx, SN_LOG_DEBUG, "jpeg: warning: %s", msg);
    }
    if (cmyk) {
        cmyk_convert(buf, (size_t)s->h * (size_t)s->w, s->out);
        memcpy(dst, buf, (size_t)s->h * (size_t)s->w * (size_t)s->out);
        free(buf);
    }
    return SN_OK;
}

/* ---- PNG -------------------------------------------------------------------------------- */

static sn_status png_header(sn_ctx *ctx, png_image *img, const void *data, size_t len,
                            shape *s) {
    memset(img, 0, sizeof *img);
    img->version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_memory(img, data, len))
        return sn__fail(ctx, SN_ERR_FORMAT, "png: bad header: %s", img->message);
    if (img->width > INT_MAX || img->height > INT_MAX) {
        png_image_free(img);
        return sn__fail(ctx, SN_ERR_FORMAT, "png: header declares %ux%u pixels", img->width,
                        img->height);
    }
    s->w = (int)img->width;
    s->h = (int)img->height;
    s->png_fmt = img->format;
    s->stored = (int)PNG_IMAGE_SAMPLE_CHANNELS(img->format);
    if (s->stored == 2) s->stored = 1;   /* gray + alpha reads as gray */
    return SN_OK;
}

/* Finishes a read begun by png_header into dst (s->out channels).  Alpha is decoded and
 * then dropped, as TF's decode_png(channels=1 or 3) strips it; asking libpng for a format
 * without alpha would instead composite onto black. */
static sn_status png_decode(sn_ctx *ctx, png_image *img, const shape *s, uint8_t *dst) {
    bool alpha = (s->png_fmt & PNG_FORMAT_FLAG_ALPHA) != 0;
    uint32_t fmt = s->out == 1 ? PNG_FORMAT_GRAY : PNG_FORMAT_RGB;
    if (alpha) fmt |= PNG_FORMAT_FLAG_ALPHA;
    img->format = fmt;
    /* 16-bit files without gAMA/sRGB are sRGB, not linear: reduce them to 8 bits as TF's
     * strip-16 does instead of gamma-encoding them */
    img->flags |= PNG_IMAGE_FLAG_16BIT_sRGB;
    size_t npix = (size_t)s->h * (size_t)s->w, in_ch = (size_t)s->out + alpha;
    uint8_t *buf = dst;
    if (alpha && !(buf = malloc(npix * in_ch))) {
        png_image_free(img);
        return sn__fail(ctx, SN_ERR_NOMEM, "png: out of memory (%dx%d)", s->w, s->h);
    }
    if (!png_image_finish_read(img, NULL, buf, 0, NULL)) {   /* frees img on failure */
        if (alpha) free(buf);
        return sn__fail(ctx, SN_ERR_FORMAT, "png: %s", img->message);
    }
    if (alpha) {
        for (size_t i = 0; i < npix; i++)
            memcpy(dst + i * (size_t)s->out, buf + i * in_ch, (size_t)s->out);
        free(buf);
    }
    png_image_free(img);
    return SN_OK;
}

/* ---- decode ----------------------------------------------------------------------------- */

/* Reads the header, checks the bound, then decodes into caller memory (buf, cap) or into
 * a new tensor (*out, when out is not NULL). */
static sn_status decode(sn_ctx *ctx, const void *data, size_t len, const sn_image_params *p,
                        uint8_t *buf, size_t cap, sn_tensor **out, int *hwc) {
    SN_TRY(check_params(ctx, data, len, p));
    shape s = {.fmt = sn_image_sniff(data, len)};
    if (s.fmt == SN_IMAGE_UNKNOWN)
        return sn__fail(ctx, SN_ERR_FORMAT, "image: neither JPEG nor PNG (%zu bytes starting "
                        "%02x %02x)", len, ((const uint8_t *)data)[0],
                        len > 1 ? ((const uint8_t *)data)[1] : 0);
    tjhandle tj = NULL;
    png_image img;
    sn_status st;
    if (s.fmt == SN_IMAGE_JPEG) {
        if (!(tj = tjInitDecompress()))
            return sn__fail(ctx, SN_ERR_NOMEM, "jpeg: cannot create a decoder");
        st = jpeg_header(ctx, tj, data, len, &s);
    } else {
        st = png_header(ctx, &img, data, len, &s);
    }
    bool png_open = s.fmt == SN_IMAGE_PNG && st == SN_OK;   /* img holds libpng state */
    size_t nbytes = 0;
    if (st == SN_OK) {
        s.out = out_channels(p, s.stored);
        hwc[0] = s.h, hwc[1] = s.w, hwc[2] = s.out;
        st = out_bytes(ctx, &s, p, &nbytes);
    }
    uint8_t *dst = buf;
    if (st == SN_OK && out) {
        int64_t dims[3] = {s.h, s.w, s.out};
        st = sn_tensor_new(ctx, SN_DTYPE_U8, 3, dims, out);
        if (st == SN_OK) dst = sn_tensor_data(*out);
    } else if (st == SN_OK && nbytes > cap) {
        st = sn__fail(ctx, SN_ERR_SHAPE, "image: %dx%dx%d needs %zu bytes, buffer has %zu",
                      s.h, s.w, s.out, nbytes, cap);
    }
    if (s.fmt == SN_IMAGE_JPEG) {
        if (st == SN_OK) st = jpeg_decode(ctx, tj, data, len, &s, p && p->fast_dct, dst);
        tjDestroy(tj);
    } else if (st == SN_OK) {
        st = png_decode(ctx, &img, &s, dst);   /* releases img either way */
    } else if (png_open) {
        png_image_free(&img);   /* header was read, decode refused */
    }
    if (st != SN_OK && out && *out) {
        sn_tensor_free(*out);
        *out = NULL;
    }
    return st;
}

sn_status sn_image_decode(sn_ctx *ctx, const void *data, size_t len, const sn_image_params *p,
                          sn_tensor **out) {
    if (!out) return sn__fail(ctx, SN_ERR_INVALID_ARG, "image_decode: out is NULL");
    *out = NULL;
    int hwc[3];
    return decode(ctx, data, len, p, NULL, 0, out, hwc);
}

sn_status sn_image_decode_into(sn_ctx *ctx, const void *data, size_t len,
                               const sn_image_params *p, uint8_t *buf, size_t cap,
                               int *height, int *width, int *channels) {
    if (!buf && cap) return sn__fail(ctx, SN_ERR_INVALID_ARG, "image_decode_into: buf is NULL");
    int hwc[3] = {0, 0, 0};
    sn_status st = decode(ctx, data, len, p, buf, cap, NULL, hwc);
    if (height) *height = hwc[0];
    if (width) *width = hwc[1];
    if (channels) *channels = hwc[2];
    return st;
}

sn_status sn_image_info(sn_ctx *ctx, const void *data, size_t len, sn_image_format *format,
                        int *height, int *width, int *channels) {
    SN_TRY(check_params(ctx, data, len, NULL));
    shape s = {.fmt = sn_image_sniff(data, len)};
    if (format) *format = s.fmt;
    if (s.fmt == SN_IMAGE_UNKNOWN)
        return sn__fail(ctx, SN_ERR_FORMAT, "image: neither JPEG nor PNG (%zu bytes)", len);
    if (s.fmt == SN_IMAGE_JPEG) {
        tjhandle tj = tjInitDecompress();
        if (!tj) return sn__fail(ctx, SN_ERR_NOMEM, "jpeg: cannot create a decoder");
        sn_status st = jpeg_header(ctx, tj, data, len, &s);
        tjDestroy(tj);
        SN_TRY(st);
    } else {
        png_image img;
        SN_TRY(png_header(ctx, &img, data, len, &s));
        s.stored = (int)PNG_IMAGE_SAMPLE_CHANNELS(img.format);   /* 2: gray + alpha */
        png_image_free(&img);
    }
    if (height) *height = s.h;
    if (width) *width = s.w;
    if (channels) *channels = s.stored;
    return SN_OK;
}

/* ---- encode ----------------------------------------------------------------------------- */

static sn_status check_img(sn_ctx *ctx, const char *what, const sn_tensor *img, int *h,
                           int *w, int *c) {
    if (!img) return sn__fail(ctx, SN_ERR_INVALID_ARG, "%s: image is NULL", what);
    if (sn_tensor_dtype(img) != SN_DTYPE_U8 || sn_tensor_rank(img) != 3)
        return sn__fail(ctx, SN_ERR_INVALID_ARG, "%s: need a uint8 (H,W,C) tensor, got %s "
                        "rank %d", what, sn_dtype_name(sn_tensor_dtype(img)),
                        sn_tensor_rank(img));
    int64_t H = sn_tensor_dim(img, 0), W = sn_tensor_dim(img, 1), C = sn_tensor_dim(img, 2);
    if (H < 1 || W < 1 || H > 65535 || W > 65535 || (C != 1 && C != 3))
        return sn__fail(ctx, SN_ERR_INVALID_ARG, "%s: shape (%lld,%lld,%lld): need H and W "
                        "in [1, 65535] and C 1 or 3", what, (long long)H, (long long)W,
                        (long long)C);
    *h = (int)H, *w = (int)W, *c = (int)C;
    return SN_OK;
}

/* Hands a malloc'd buffer of n bytes to a new (n) uint8 tensor, without copying. */
static sn_status bytes_tensor(sn_ctx *ctx, uint8_t *buf, size_t n, sn_tensor **out) {
    uint8_t *shrunk = realloc(buf, n ? n : 1);   /* the bound was generous */
    if (shrunk) buf = shrunk;
    int64_t dims[1] = {(int64_t)n};
    sn_status st = sn_tensor_wrap(ctx, buf, SN_DTYPE_U8, 1, dims, SN_BORROW, out);
    if (st != SN_OK) {
        free(buf);
        return st;
    }
    (*out)->owned = true;
    return SN_OK;
}

sn_status sn_image_encode_jpeg(sn_ctx *ctx, const sn_tensor *img, int quality,
                               sn_tensor **out) {
    if (!out) return sn__fail(ctx, SN_ERR_INVALID_ARG, "encode_jpeg: out is NULL");
    *out = NULL;
    int h, w, c;
    SN_TRY(check_img(ctx, "encode_jpeg", img, &h, &w, &c));
    if (quality < 1 || quality > 100)
        return sn__fail(ctx, SN_ERR_INVALID_ARG, "encode_jpeg: quality %d outside [1, 100]",
                        quality);
    int samp = c == 1 ? TJSAMP_GRAY : TJSAMP_420;
    unsigned long cap = tjBufSize(w, h, samp);
    if (cap == (unsigned long)-1) return sn__fail(ctx, SN_ERR_INVALID_ARG, "encode_jpeg: size");
    uint8_t *buf = malloc(cap);
    tjhandle tj = tjInitCompress();
    if (!buf || !tj) {
        free(buf);
        if (tj) tjDestroy(tj);
        return sn__fail(ctx, SN_ERR_NOMEM, "encode_jpeg: out of memory");
    }
    unsigned long size = cap;
    /* NOREALLOC: buf is ours (malloc), big enough by tjBufSize; ACCURATEDCT as TF/PIL */
    int rc = tjCompress2(tj, sn_tensor_data(img), w, 0, h, c == 1 ? TJPF_GRAY : TJPF_RGB, &buf,
                         &size, samp, quality, TJFLAG_NOREALLOC | TJFLAG_ACCURATEDCT);
    if (rc != 0) {
        sn_status st = sn__fail(ctx, SN_ERR_FORMAT, "encode_jpeg: %s", tjGetErrorStr2(tj));
        tjDestroy(tj);
        free(buf);
        return st;
    }
    tjDestroy(tj);
    return bytes_tensor(ctx, buf, size, out);
}

sn_status sn_image_encode_png(sn_ctx *ctx, const sn_tensor *img, sn_tensor **out) {
    if (!out) return sn__fail(ctx, SN_ERR_INVALID_ARG, "encode_png: out is NULL");
    *out = NULL;
    int h, w, c;
    SN_TRY(check_img(ctx, "encode_png", img, &h, &w, &c));
    png_image pi;
    memset(&pi, 0, sizeof pi);
    pi.version = PNG_IMAGE_VERSION;
    pi.width = (png_uint_32)w;
    pi.height = (png_uint_32)h;
    pi.format = c == 1 ? PNG_FORMAT_GRAY : PNG_FORMAT_RGB;
    png_alloc_size_t cap = PNG_IMAGE_PNG_SIZE_MAX(pi), size = cap;
    uint8_t *buf = malloc(cap);
    if (!buf) return sn__fail(ctx, SN_ERR_NOMEM, "encode_png: out of memory");
    if (!png_image_write_to_memory(&pi, buf, &size, 0, sn_tensor_data(img), 0, NULL)) {
        sn_status st = sn__fail(ctx, SN_ERR_FORMAT, "encode_png: %s", pi.message);
        png_image_free(&pi);
        free(buf);
        return st;
    }
    return bytes_tensor(ctx, buf, size, out);
}
