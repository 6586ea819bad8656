/* image.c: JPEG and PNG decoding and encoding, to and from uint8 HWC tensors.
 *
 * JPEG is decoded through libjpeg's own API, as TF's decode_jpeg does: a fatal error (a
 * corrupt Huffman table, data ending early) fails the decode even after earlier warnings,
 * while warnings alone (extraneous bytes before a marker) still give the whole image, as TF
 * accepts them.  TurboJPEG's API cannot tell these apart (it reports a fatal error that
 * follows a warning as a warning), so it only encodes.  PNG goes through libpng's
 * simplified png_image API, which catches libpng's errors itself.
 *
 * Untrusted input: the header is read first and height * width is checked against a bound
 * before any pixel memory exists; a progressive JPEG may have at most MAX_JPEG_SCANS scans
 * (each one is a pass over the whole image); every codec failure becomes SN_ERR_FORMAT with
 * the codec's own message.  Nothing is printed. */
#include <limits.h>
#include <setjmp.h>
#include <stdio.h>
#include <jpeglib.h>
#include <jerror.h>
#include <png.h>
#include <stdlib.h>
#include <string.h>
#include <turbojpeg.h>
#include "../sn_internal.h"

/* libjpeg-turbo's own fuzzers and tools stop at 500 scans; real files have at most a few
 * dozen, while a crafted one can repeat scans to make decoding arbitrarily slow. */
#define MAX_JPEG_SCANS 500

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

/* Fatal errors jump back to the setjmp of the function that called libjpeg, with the
 * message; warnings are only counted; nothing is printed. */
typedef struct jpeg_err {
    struct jpeg_error_mgr pub;
    jmp_buf env;
    char msg[JMSG_LENGTH_MAX];
} jpeg_err;

static void jpeg_on_error(j_common_ptr c) {
    jpeg_err *e = (jpeg_err *)c->err;
    c->err->format_message(c, e->msg);
    longjmp(e->env, 1);
}

static void jpeg_on_message(j_common_ptr c, int level) {
    if (level < 0) c->err->num_warnings++;
}

static void jpeg_no_output(j_common_ptr c) { (void)c; }

static void jpeg_on_progress(j_common_ptr c) {
    j_decompress_ptr d = (j_decompress_ptr)c;
    if (d->input_scan_number > MAX_JPEG_SCANS) {
        jpeg_err *e = (jpeg_err *)c->err;
        snprintf(e->msg, sizeof e->msg, "more than %d progressive scans", MAX_JPEG_SCANS);
        longjmp(e->env, 1);
    }
}

/* The source is the whole file in memory.  Running out of it is an error, as in TF (which
 * inserts a fake end marker only when asked to recover truncated files). */
static void src_init(j_decompress_ptr d) { (void)d; }
static void src_term(j_decompress_ptr d) { (void)d; }

static boolean src_fill(j_decompress_ptr d) {
    ERREXIT(d, JERR_INPUT_EOF);
    return FALSE;
}

static void src_skip(j_decompress_ptr d, long n) {
    if (n <= 0) return;
    if ((unsigned long)n > d->src->bytes_in_buffer) ERREXIT(d, JERR_INPUT_EOF);
    d->src->next_input_byte += n;
    d->src->bytes_in_buffer -= (size_t)n;
}

typedef struct jpeg_dec {
    struct jpeg_decompress_struct d;
    jpeg_err err;
    struct jpeg_source_mgr src;
    struct jpeg_progress_mgr progress;
} jpeg_dec;

/* Creates the decoder and reads the header into s.  On failure the decoder is gone. */
static sn_status jpeg_header(sn_ctx *ctx, jpeg_dec *j, const void *data, size_t len,
                             shape *s) {
    memset(j, 0, sizeof *j);
    j->d.err = jpeg_std_error(&j->err.pub);
    j->err.pub.error_exit = jpeg_on_error;
    j->err.pub.emit_message = jpeg_on_message;
    j->err.pub.output_message = jpeg_no_output;
    if (setjmp(j->err.env)) {
        jpeg_destroy_decompress(&j->d);
        return sn__fail(ctx, SN_ERR_FORMAT, "jpeg: bad header: %s", j->err.msg);
    }
    jpeg_create_decompress(&j->d);
    j->src.next_input_byte = data;
    j->src.bytes_in_buffer = len;
    j->src.init_source = src_init;
    j->src.fill_input_buffer = src_fill;
    j->src.skip_input_data = src_skip;
    j->src.resync_to_restart = jpeg_resync_to_restart;
    j->src.term_source = src_term;
    j->d.src = &j->src;
    j->progress.progress_monitor = jpeg_on_progress;
    j->d.progress = &j->progress;
    jpeg_read_header(&j->d, TRUE);
    if (j->d.image_width > INT_MAX || j->d.image_height > INT_MAX) {
        jpeg_destroy_decompress(&j->d);
        return sn__fail(ctx, SN_ERR_FORMAT, "jpeg: header declares %ux%u pixels",
                        (unsigned)j->d.image_width, (unsigned)j->d.image_height);
    }
    s->w = (int)j->d.image_width;
    s->h = (int)j->d.image_height;
    J_COLOR_SPACE cs = j->d.jpeg_color_space;
    s->stored = cs == JCS_GRAYSCALE ? 1 : (cs == JCS_CMYK || cs == JCS_YCCK) ? 4 : 3;
    return SN_OK;
}

/* CMYK to RGB (or gray) as TF's decode_jpeg converts it: Adobe's files store the channels
 * inverted (r = c * k / 255), others as printed ((255 - c) * (255 - k) / 255).  One row,
 * from 4 bytes per pixel in `in` to `out` channels in dst. */
static void cmyk_row(uint8_t *dst, const uint8_t *in, size_t w, int out, bool adobe) {
    for (size_t i = 0; i < w; i++) {
        const uint8_t *q = in + 4 * i;
        int c = q[0], m = q[1], y = q[2], k = q[3], r, g, b;
        if (adobe) {
            r = c * k / 255, g = m * k / 255, b = y * k / 255;
        } else {
            r = (255 - k) * (255 - c) / 255;
            g = (255 - k) * (255 - m) / 255;
            b = (255 - k) * (255 - y) / 255;
        }
        if (out == 1) {   /* libjpeg's luma weights, rounded */
            dst[i] = (uint8_t)((19595 * r + 38470 * g + 7471 * b + 32768) >> 16);
        } else {
            dst[3 * i] = (uint8_t)r;
            dst[3 * i + 1] = (uint8_t)g;
            dst[3 * i + 2] = (uint8_t)b;
        }
    }
}

/* Decodes the image whose header jpeg_header read into dst (s->out channels), then
 * destroys the decoder either way. */
static sn_status jpeg_decode(sn_ctx *ctx, jpeg_dec *j, const shape *s, int fast_dct,
                             uint8_t *dst) {
    bool cmyk = s->stored == 4;
    size_t w = (size_t)s->w, row_bytes = w * (size_t)s->out;
    uint8_t *volatile row = NULL;   /* a CMYK row; read after a longjmp */
    if (setjmp(j->err.env)) {
        free(row);
        jpeg_destroy_decompress(&j->d);
        return sn__fail(ctx, SN_ERR_FORMAT, "jpeg: %s", j->err.msg);
    }
    /* A CMYK file is read as CMYK (libjpeg converts it to nothing else) and converted
     * here; everything else as gray or RGB, with fancy upsampling (libjpeg's default, as
     * TF's).  The IDCT: JDCT_ISLOW is TF's "INTEGER_ACCURATE"; JDCT_IFAST what TF picks
     * for dct_method "". */
    j->d.out_color_space = cmyk ? JCS_CMYK : s->out == 1 ? JCS_GRAYSCALE : JCS_RGB;
    j->d.dct_method = fast_dct ? JDCT_IFAST : JDCT_ISLOW;
    jpeg_start_decompress(&j->d);
    if ((int)j->d.output_components != (cmyk ? 4 : s->out) ||
        j->d.output_width != (JDIMENSION)s->w || j->d.output_height != (JDIMENSION)s->h) {
        jpeg_destroy_decompress(&j->d);
        return sn__fail(ctx, SN_ERR_FORMAT, "jpeg: decoder output %ux%ux%d does not match "
                        "the header's %dx%dx%d", (unsigned)j->d.output_width,
                        (unsigned)j->d.output_height, j->d.output_components, s->w, s->h,
                        cmyk ? 4 : s->out);
    }
    if (cmyk && !(row = malloc(4 * w))) {
        jpeg_destroy_decompress(&j->d);
        return sn__fail(ctx, SN_ERR_NOMEM, "jpeg: out of memory (%dx%d CMYK)", s->w, s->h);
    }
    while (j->d.output_scanline < j->d.output_height) {
        uint8_t *line = dst + (size_t)j->d.output_scanline * row_bytes;
        JSAMPROW target = cmyk ? row : line;
        if (jpeg_read_scanlines(&j->d, &target, 1) != 1) ERREXIT(&j->d, JERR_INPUT_EOF);
        if (cmyk) cmyk_row(line, row, w, s->out, j->d.saw_Adobe_marker);
    }
    jpeg_finish_decompress(&j->d);
    free(row);
    jpeg_destroy_decompress(&j->d);
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
    jpeg_dec jd;
    png_image img;
    sn_status st = s.fmt == SN_IMAGE_JPEG ? jpeg_header(ctx, &jd, data, len, &s)
                                          : png_header(ctx, &img, data, len, &s);
    bool open = st == SN_OK;   /* jd or img holds decoder state */
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
    if (st == SN_OK) {   /* both release their decoder either way */
        st = s.fmt == SN_IMAGE_JPEG ? jpeg_decode(ctx, &jd, &s, p && p->fast_dct, dst)
                                    : png_decode(ctx, &img, &s, dst);
    } else if (open) {   /* header was read, decode refused */
        if (s.fmt == SN_IMAGE_JPEG) jpeg_destroy_decompress(&jd.d);
        else png_image_free(&img);
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
        jpeg_dec jd;
        SN_TRY(jpeg_header(ctx, &jd, data, len, &s));
        jpeg_destroy_decompress(&jd.d);
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
