/* example.c: tf.train.Example through protobuf-c (lib/io/example.proto).
 *
 * An sn_example is a protobuf-c Snex__Example whose every piece lives in one arena owned by
 * the sn_example: protobuf-c's unpack allocates from it (through a ProtobufCAllocator) and
 * the setters build messages in it.  Parsing a record therefore costs no per-field free, a
 * clear is one reset, and the getters read the message directly.  The arena is bounded
 * relative to the input, so a hostile message cannot make unpack allocate without limit. */
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>
#include "../sn_internal.h"
#include "lib/io/example.pb-c.h"
#include "pb.h"

/* ---- arena ------------------------------------------------------------------------------ */

typedef struct chunk {
    struct chunk *prev;
    size_t cap, used;
    alignas(max_align_t) unsigned char data[];
} chunk;

typedef struct arena {
    chunk *top;
    size_t total;        /* bytes handed out since the last reset */
    size_t limit;        /* refuse beyond this (SIZE_MAX: no limit) */
    bool refused;        /* an allocation hit the limit */
} arena;

enum { CHUNK_MIN = 16 << 10 };

static void *arena_alloc(arena *a, size_t n) {
    size_t align = alignof(max_align_t);
    if (n > SIZE_MAX - align) return NULL;
    n = (n + align - 1) & ~(align - 1);
    if (n > a->limit - a->total) {
        a->refused = true;
        return NULL;
    }
    if (!a->top || a->top->cap - a->top->used < n) {
        size_t cap = a->top ? a->top->cap * 2 : CHUNK_MIN;
        if (cap < n) cap = n;
        chunk *c = malloc(sizeof *c + cap);
        if (!c) return NULL;
        c->prev = a->top;
        c->cap = cap;
        c->used = 0;
        a->top = c;
    }
    void *p = a->top->data + a->top->used;
    a->top->used += n;
    a->total += n;
    return p;
}

/* Frees all but the newest (largest) chunk, which is kept for the next message. */
static void arena_reset(arena *a) {
    if (!a->top) return;
    chunk *c = a->top->prev;
    while (c) {
        chunk *prev = c->prev;
        free(c);
        c = prev;
    }
    a->top->prev = NULL;
    a->top->used = 0;
    a->total = 0;
}

static void arena_free(arena *a) {
    arena_reset(a);
    free(a->top);
    a->top = NULL;
}

static void *pb_alloc(void *data, size_t size) { return arena_alloc(data, size); }
static void pb_free(void *data, void *p) { (void)data; (void)p; }   /* freed by the reset */

/* ---- the example ------------------------------------------------------------------------ */

struct sn_example {
    sn_ctx *ctx;
    arena a;
    Snex__Example *msg;          /* in the arena; NULL when empty */
    size_t entry_cap;            /* capacity of msg->features->feature */
    uint8_t *out;                /* serialize buffer */
    size_t out_cap;
};

/* Unpack's allocations are bounded by this multiple of the input (plus a floor).  Measured
 * with protobuf-c 1.4: valid messages need at most ~50x (100k empty map entries, 2 bytes
 * each); but protobuf-c merges a repeated singular sub-message by copying its arrays, so
 * 16 KB of repeated "features" fields would allocate 64 MB (quadratic) without the bound. */
enum { PARSE_EXPANSION = 64, PARSE_FLOOR = 64 << 10 };

const char *sn_feature_kind_name(sn_feature_kind kind) {
    switch (kind) {
    case SN_FEATURE_NONE: return "none";
    case SN_FEATURE_BYTES: return "bytes_list";
    case SN_FEATURE_FLOAT: return "float_list";
    case SN_FEATURE_INT64: return "int64_list";
    }
    return "unknown";
}

sn_status sn_example_new(sn_ctx *ctx, sn_example **out) {
    if (!out) return sn__fail(ctx, SN_ERR_INVALID_ARG, "example: out is NULL");
    *out = calloc(1, sizeof **out);
    if (!*out) return sn__fail(ctx, SN_ERR_NOMEM, "example: out of memory");
    (*out)->ctx = ctx;
    (*out)->a.limit = SIZE_MAX;
    return SN_OK;
}

void sn_example_free(sn_example *ex) {
    if (!ex) return;
    arena_free(&ex->a);
    free(ex->out);
    free(ex);
}

void sn_example_clear(sn_example *ex) {
    if (!ex) return;
    arena_reset(&ex->a);
    ex->msg = NULL;
    ex->entry_cap = 0;
}

static sn_status nomem(const sn_example *ex, const char *key) {
    return sn__fail(ex->ctx, SN_ERR_NOMEM, "example: out of memory setting '%s'", key);
}

/* The entry for key, last one winning as in TF's parser; NULL if absent. */
static const Snex__Features__FeatureEntry *find(const sn_example *ex, const char *key) {
    if (!ex->msg || !ex->msg->features) return NULL;
    const Snex__Features *fs = ex->msg->features;
    for (size_t i = fs->n_feature; i-- > 0;) {
        const Snex__Features__FeatureEntry *e = fs->feature[i];
        if (e && e->key && strcmp(e->key, key) == 0) return e;
    }
    return NULL;
}

static sn_feature_kind kind_of(const Snex__Feature *f) {
    if (!f) return SN_FEATURE_NONE;
    switch (f->kind_case) {
    case SNEX__FEATURE__KIND_BYTES_LIST: return f->bytes_list ? SN_FEATURE_BYTES : SN_FEATURE_NONE;
    case SNEX__FEATURE__KIND_FLOAT_LIST: return f->float_list ? SN_FEATURE_FLOAT : SN_FEATURE_NONE;
    case SNEX__FEATURE__KIND_INT64_LIST: return f->int64_list ? SN_FEATURE_INT64 : SN_FEATURE_NONE;
    default: return SN_FEATURE_NONE;
    }
}

static size_t count_of(const Snex__Feature *f) {
    switch (kind_of(f)) {
    case SN_FEATURE_BYTES: return f->bytes_list->n_value;
    case SN_FEATURE_FLOAT: return f->float_list->n_value;
    case SN_FEATURE_INT64: return f->int64_list->n_value;
    default: return 0;
    }
}

/* Installs feature f under key: replaces the value of an existing entry, else appends one.
 * Everything comes from the arena; replaced values stay there until the next clear. */
static sn_status put(sn_example *ex, const char *key, Snex__Feature *f) {
    if (!ex->msg) {
        Snex__Example *m = arena_alloc(&ex->a, sizeof *m);
        Snex__Features *fs = arena_alloc(&ex->a, sizeof *fs);
        if (!m || !fs) return nomem(ex, key);
        snex__example__init(m);
        snex__features__init(fs);
        m->features = fs;
        ex->msg = m;
        ex->entry_cap = 0;
    }
    Snex__Features *fs = ex->msg->features;
    if (!fs) {
        if (!(fs = arena_alloc(&ex->a, sizeof *fs))) return nomem(ex, key);
        snex__features__init(fs);
        ex->msg->features = fs;
    }
    Snex__Features__FeatureEntry *e = (Snex__Features__FeatureEntry *)find(ex, key);
    if (e) {
        e->value = f;
        return SN_OK;
    }
    /* a parsed message's array is exactly full: entry_cap 0 makes the first append copy it */
    if (fs->n_feature >= ex->entry_cap) {
        size_t cap = fs->n_feature < 4 ? 8 : fs->n_feature * 2;
        Snex__Features__FeatureEntry **arr = arena_alloc(&ex->a, cap * sizeof *arr);
        if (!arr) return nomem(ex, key);
        if (fs->n_feature) memcpy(arr, fs->feature, fs->n_feature * sizeof *arr);
        fs->feature = arr;
        ex->entry_cap = cap;
    }
    size_t klen = strlen(key) + 1;
    char *k = arena_alloc(&ex->a, klen);
    if (!(e = arena_alloc(&ex->a, sizeof *e)) || !k) return nomem(ex, key);
    memcpy(k, key, klen);
    snex__features__feature_entry__init(e);
    e->key = k;
    e->value = f;
    fs->feature[fs->n_feature++] = e;
    return SN_OK;
}

static sn_status check_set(const sn_example *ex, const char *key, const void *values, size_t n) {
    if (!ex) return SN_ERR_INVALID_ARG;
    if (!key || (!values && n))
        return sn__fail(ex->ctx, SN_ERR_INVALID_ARG, "example: set '%s': NULL argument",
                        key ? key : "(null)");
    return SN_OK;
}

/* Copies n elements of `size` bytes into the arena (NULL only when out of memory). */
static void *arena_copy(sn_example *ex, const void *src, size_t n, size_t size) {
    size_t bytes;
    if (!sn__mul_size(n, size, &bytes)) return NULL;
    void *p = arena_alloc(&ex->a, bytes ? bytes : 1);
    if (p && bytes) memcpy(p, src, bytes);
    return p;
}

sn_status sn_example_set_int64(sn_example *ex, const char *key, const int64_t *values,
                               size_t n) {
    SN_TRY(check_set(ex, key, values, n));
    Snex__Feature *f = arena_alloc(&ex->a, sizeof *f);
    Snex__Int64List *l = arena_alloc(&ex->a, sizeof *l);
    int64_t *v = arena_copy(ex, values, n, sizeof *values);
    if (!f || !l || !v) return nomem(ex, key);
    snex__feature__init(f);
    snex__int64_list__init(l);
    l->n_value = n;
    l->value = v;
    f->kind_case = SNEX__FEATURE__KIND_INT64_LIST;
    f->int64_list = l;
    return put(ex, key, f);
}

sn_status sn_example_set_float(sn_example *ex, const char *key, const float *values,
                               size_t n) {
    SN_TRY(check_set(ex, key, values, n));
    Snex__Feature *f = arena_alloc(&ex->a, sizeof *f);
    Snex__FloatList *l = arena_alloc(&ex->a, sizeof *l);
    float *v = arena_copy(ex, values, n, sizeof *values);
    if (!f || !l || !v) return nomem(ex, key);
    snex__feature__init(f);
    snex__float_list__init(l);
    l->n_value = n;
    l->value = v;
    f->kind_case = SNEX__FEATURE__KIND_FLOAT_LIST;
    f->float_list = l;
    return put(ex, key, f);
}

sn_status sn_example_set_bytes(sn_example *ex, const char *key, const void *const *values,
                               const size_t *lens, size_t n) {
    SN_TRY(check_set(ex, key, values, n));
    if (n && !lens)
        return sn__fail(ex->ctx, SN_ERR_INVALID_ARG, "example: set '%s': lens is NULL", key);
    for (size_t i = 0; i < n; i++)
        if (!values[i] && lens[i])
            return sn__fail(ex->ctx, SN_ERR_INVALID_ARG, "example: set '%s': value %zu is NULL",
                            key, i);
    Snex__Feature *f = arena_alloc(&ex->a, sizeof *f);
    Snex__BytesList *l = arena_alloc(&ex->a, sizeof *l);
    size_t vbytes;
    ProtobufCBinaryData *v = NULL;
    if (sn__mul_size(n, sizeof *v, &vbytes)) v = arena_alloc(&ex->a, vbytes ? vbytes : 1);
    if (!f || !l || !v) return nomem(ex, key);
    for (size_t i = 0; i < n; i++) {
        v[i].len = lens[i];
        v[i].data = arena_copy(ex, values[i], lens[i], 1);
        if (!v[i].data) return nomem(ex, key);
    }
    snex__feature__init(f);
    snex__bytes_list__init(l);
    l->n_value = n;
    l->value = v;
    f->kind_case = SNEX__FEATURE__KIND_BYTES_LIST;
    f->bytes_list = l;
    return put(ex, key, f);
}

/* ---- wire format ------------------------------------------------------------------------ */

sn_status sn_example_serialize(sn_example *ex, const uint8_t **data, size_t *len) {
    if (!ex || !data || !len) return SN_ERR_INVALID_ARG;
    Snex__Example empty = SNEX__EXAMPLE__INIT;
    const Snex__Example *m = ex->msg ? ex->msg : &empty;
    size_t n = snex__example__get_packed_size(m);
    if (n > ex->out_cap || !ex->out) {
        uint8_t *b = realloc(ex->out, n ? n : 1);
        if (!b) return sn__fail(ex->ctx, SN_ERR_NOMEM, "example: cannot allocate %zu bytes", n);
        ex->out = b;
        ex->out_cap = n ? n : 1;
    }
    size_t w = snex__example__pack(m, ex->out);
    if (w != n)   /* would be a protobuf-c bug: report rather than hand out a short buffer */
        return sn__fail(ex->ctx, SN_ERR_STATE, "example: packed %zu of %zu bytes", w, n);
    *data = ex->out;
    *len = n;
    return SN_OK;
}

sn_status sn_example_parse(sn_example *ex, const void *data, size_t len) {
    if (!ex) return SN_ERR_INVALID_ARG;
    if (!data && len) return sn__fail(ex->ctx, SN_ERR_INVALID_ARG, "example: data is NULL");
    sn_example_clear(ex);
    size_t limit;
    if (!sn__mul_size(len, PARSE_EXPANSION, &limit) || limit > SIZE_MAX - PARSE_FLOOR)
        limit = SIZE_MAX - PARSE_FLOOR;
    ex->a.limit = limit + PARSE_FLOOR;
    ex->a.refused = false;
    ProtobufCAllocator alloc = {pb_alloc, pb_free, &ex->a};
    static const uint8_t nothing[1];
    Snex__Example *m = snex__example__unpack(&alloc, len, len ? data : nothing);
    bool over = ex->a.refused;
    ex->a.limit = SIZE_MAX;
    if (!m || sn__pb_has_field0(&m->base)) {
        sn_example_clear(ex);
        return sn__fail(ex->ctx, SN_ERR_FORMAT, "example: malformed tf.train.Example "
                        "(%zu bytes)%s", len, over ? ": it expands beyond the memory bound"
                                             : m ? ": a field numbered 0" : "");
    }
    ex->msg = m;
    ex->entry_cap = 0;
    return SN_OK;
}

/* ---- getters ---------------------------------------------------------------------------- */

size_t sn_example_num_features(const sn_example *ex) {
    return ex && ex->msg && ex->msg->features ? ex->msg->features->n_feature : 0;
}

const char *sn_example_key(const sn_example *ex, size_t i) {
    if (i >= sn_example_num_features(ex)) return NULL;
    const Snex__Features__FeatureEntry *e = ex->msg->features->feature[i];
    return e ? e->key : NULL;
}

sn_status sn_example_feature(const sn_example *ex, const char *key, sn_feature_kind *kind,
                             size_t *n) {
    if (!ex || !key) return SN_ERR_INVALID_ARG;
    const Snex__Features__FeatureEntry *e = find(ex, key);
    if (!e) return sn__fail(ex->ctx, SN_ERR_NOT_FOUND, "example: no feature '%s'", key);
    if (kind) *kind = kind_of(e->value);
    if (n) *n = count_of(e->value);
    return SN_OK;
}

/* The feature of key, checked to be of kind `want` (or empty).  *f is NULL for an empty
 * Feature, which every getter reads as an empty list, as TF's parser does. */
static sn_status lookup(const sn_example *ex, const char *key, sn_feature_kind want,
                        const Snex__Feature **f) {
    if (!ex || !key) return SN_ERR_INVALID_ARG;
    const Snex__Features__FeatureEntry *e = find(ex, key);
    if (!e) return sn__fail(ex->ctx, SN_ERR_NOT_FOUND, "example: no feature '%s'", key);
    sn_feature_kind k = kind_of(e->value);
    if (k != want && k != SN_FEATURE_NONE)
        return sn__fail(ex->ctx, SN_ERR_FORMAT, "example: feature '%s' is a %s, not a %s", key,
                        sn_feature_kind_name(k), sn_feature_kind_name(want));
    *f = k == SN_FEATURE_NONE ? NULL : e->value;
    return SN_OK;
}

sn_status sn_example_get_int64(const sn_example *ex, const char *key, const int64_t **values,
                               size_t *n) {
    const Snex__Feature *f;
    SN_TRY(lookup(ex, key, SN_FEATURE_INT64, &f));
    static const int64_t none[1];   /* an empty list still gives a valid pointer */
    *n = f ? f->int64_list->n_value : 0;
    *values = *n ? f->int64_list->value : none;
    return SN_OK;
}

sn_status sn_example_get_float(const sn_example *ex, const char *key, const float **values,
                               size_t *n) {
    const Snex__Feature *f;
    SN_TRY(lookup(ex, key, SN_FEATURE_FLOAT, &f));
    static const float none[1];
    *n = f ? f->float_list->n_value : 0;
    *values = *n ? f->float_list->value : none;
    return SN_OK;
}

sn_status sn_example_get_bytes(const sn_example *ex, const char *key, size_t i,
                               const uint8_t **data, size_t *len) {
    const Snex__Feature *f;
    SN_TRY(lookup(ex, key, SN_FEATURE_BYTES, &f));
    size_t n = f ? f->bytes_list->n_value : 0;
    if (i >= n)
        return sn__fail(ex->ctx, SN_ERR_NOT_FOUND, "example: feature '%s' has %zu values, "
                        "no value %zu", key, n, i);
    /* protobuf-c leaves an empty value's data NULL; callers get a valid pointer either way
     * (memchr or memcpy of 0 bytes from NULL is undefined) */
    static const uint8_t empty[1];
    *len = f->bytes_list->value[i].len;
    *data = *len ? f->bytes_list->value[i].data : empty;
    return SN_OK;
}

/* ---- TF-slim image records -------------------------------------------------------------- */

#define KEY_ENCODED "image/encoded"
#define KEY_FORMAT "image/format"
#define KEY_LABEL "image/class/label"
#define KEY_HEIGHT "image/height"
#define KEY_WIDTH "image/width"

sn_status sn_example_set_image(sn_example *ex, const sn_image_example *img) {
    if (!ex) return SN_ERR_INVALID_ARG;
    if (!img || (!img->encoded && img->encoded_len))
        return sn__fail(ex->ctx, SN_ERR_INVALID_ARG, "example: set_image: NULL argument");
    if (!memchr(img->format, 0, sizeof img->format))
        return sn__fail(ex->ctx, SN_ERR_INVALID_ARG, "example: set_image: format is not "
                        "NUL-terminated");
    const void *enc = img->encoded, *fmt = img->format;
    size_t enc_len = img->encoded_len, fmt_len = strlen(img->format);
    SN_TRY(sn_example_set_bytes(ex, KEY_ENCODED, &enc, &enc_len, 1));
    SN_TRY(sn_example_set_bytes(ex, KEY_FORMAT, &fmt, &fmt_len, 1));
    SN_TRY(sn_example_set_int64(ex, KEY_LABEL, &img->label, 1));
    SN_TRY(sn_example_set_int64(ex, KEY_HEIGHT, &img->height, 1));
    return sn_example_set_int64(ex, KEY_WIDTH, &img->width, 1);
}

/* The single int64 of key; 0 (and SN_OK) when an optional key is absent. */
static sn_status get_one_int64(const sn_example *ex, const char *key, bool required,
                               int64_t *v) {
    *v = 0;
    if (!find(ex, key)) {
        if (!required) return SN_OK;
        return sn__fail(ex->ctx, SN_ERR_NOT_FOUND, "example: no feature '%s'", key);
    }
    const int64_t *vals;
    size_t n;
    SN_TRY(sn_example_get_int64(ex, key, &vals, &n));
    if (n != 1)
        return sn__fail(ex->ctx, SN_ERR_FORMAT, "example: feature '%s' has %zu values, "
                        "expected 1", key, n);
    *v = vals[0];
    return SN_OK;
}

sn_status sn_example_get_image(const sn_example *ex, sn_image_example *img) {
    if (!ex) return SN_ERR_INVALID_ARG;
    if (!img) return sn__fail(ex->ctx, SN_ERR_INVALID_ARG, "example: get_image: img is NULL");
    memset(img, 0, sizeof *img);
    size_t n;
    SN_TRY(sn_example_feature(ex, KEY_ENCODED, NULL, &n));
    if (n != 1)
        return sn__fail(ex->ctx, SN_ERR_FORMAT, "example: feature '%s' has %zu values, "
                        "expected 1", KEY_ENCODED, n);
    SN_TRY(sn_example_get_bytes(ex, KEY_ENCODED, 0, &img->encoded, &img->encoded_len));
    if (find(ex, KEY_FORMAT)) {
        const uint8_t *fmt;
        size_t len;
        SN_TRY(sn_example_feature(ex, KEY_FORMAT, NULL, &n));
        if (n > 0) {
            SN_TRY(sn_example_get_bytes(ex, KEY_FORMAT, 0, &fmt, &len));
            if (len >= sizeof img->format || memchr(fmt, 0, len))
                return sn__fail(ex->ctx, SN_ERR_FORMAT, "example: feature '%s' is not a "
                                "short format name (%zu bytes)", KEY_FORMAT, len);
            memcpy(img->format, fmt, len);
            img->format[len] = '\0';
        }
    }
    SN_TRY(get_one_int64(ex, KEY_LABEL, true, &img->label));
    SN_TRY(get_one_int64(ex, KEY_HEIGHT, false, &img->height));
    return get_one_int64(ex, KEY_WIDTH, false, &img->width);
}
