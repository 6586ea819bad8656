/* api.c: see api.h.  The messages follow TF Serving's (tensorflow_serving/util/json_tensor.cc,
 * model_servers/http_rest_api_handler.cc) where a client might match on them. */
#include "api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>

/* ---- routes ---------------------------------------------------------------------------- */

static const char *const route_names[ROUTE_COUNT] = {
    "other", "malformed", "status", "metadata", "predict", "classify", "regress", "raw_classify",
    "metrics"};

const char *api_route_name(api_route r) {
    return r >= 0 && r < ROUTE_COUNT ? route_names[r] : "other";
}

/* Reads "<name>" then an optional "/versions/<digits>" at *p; advances *p.  0 on success. */
static int model_and_version(const char **p, api_target *t) {
    const char *s = *p;
    size_t n = strcspn(s, "/:");
    if (n == 0 || n >= sizeof t->model) return -1;
    memcpy(t->model, s, n);
    t->model[n] = 0;
    s += n;
    if (!strncmp(s, "/versions/", 10)) {
        s += 10;
        int64_t v = 0;
        int digits = 0;
        while (*s >= '0' && *s <= '9' && digits < 18) v = v * 10 + (*s++ - '0'), digits++;
        if (!digits || (*s >= '0' && *s <= '9')) return -1;
        t->version = v;
    }
    *p = s;
    return 0;
}

void api_route_parse(const char *method, const char *path, api_target *t) {
    memset(t, 0, sizeof *t);
    t->version = -1;
    int get = !strcmp(method, "GET"), post = !strcmp(method, "POST");
    if (!strcmp(path, "/monitoring/prometheus/metrics")) {
        t->route = get ? ROUTE_METRICS : ROUTE_NONE;
        return;
    }
    if (!strcmp(path, "/classify")) {
        t->route = post ? ROUTE_RAW : ROUTE_NONE;
        return;
    }
    if (strncmp(path, "/v1/", 4)) {
        t->route = ROUTE_NONE;
        return;
    }
    t->route = ROUTE_MALFORMED;
    if (strncmp(path, "/v1/models/", 11)) return;
    const char *s = path + 11;
    if (model_and_version(&s, t)) return;
    if (post && *s == ':') {
        if (!strcmp(s, ":predict")) t->route = ROUTE_PREDICT;
        else if (!strcmp(s, ":classify")) t->route = ROUTE_CLASSIFY;
        else if (!strcmp(s, ":regress")) t->route = ROUTE_REGRESS;
    } else if (get) {
        if (!*s) t->route = ROUTE_STATUS;
        else if (!strcmp(s, "/metadata")) t->route = ROUTE_METADATA;
    }
}

/* ---- base64 ---------------------------------------------------------------------------- */

static int b64_value(unsigned char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62;
    if (c == '/' || c == '_') return 63;
    return -1;
}

int api_b64_decode(const char *in, size_t len, uint8_t **out, size_t *n) {
    *out = NULL;
    *n = 0;
    size_t pad = 0;
    while (len > 0 && in[len - 1] == '=' && pad < 2) len--, pad++;
    if (len % 4 == 1 || (pad && (len + pad) % 4)) return -1;
    uint8_t *b = malloc(len / 4 * 3 + 3);
    if (!b) return -2;
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b64_value((unsigned char)in[i]);
        if (v < 0) {
            free(b);
            return -1;
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            b[o++] = (uint8_t)(acc >> bits);
        }
    }
    *out = b;
    *n = o;
    return 0;
}

/* ---- request bodies -------------------------------------------------------------------- */

void api_images_free(api_images *im) {
    for (int i = 0; i < im->n; i++) free(im->data[i]);
    free(im->data);
    free(im->len);
    memset(im, 0, sizeof *im);
}

static int fail(char *err, size_t cap, int status, const char *fmt, const char *arg) {
    snprintf(err, cap, fmt, arg ? arg : "");
    return status;
}

/* The parsed document, or NULL with TF Serving's parse error in err. */
static cJSON *parse_doc(const char *body, size_t len, char *err, size_t cap) {
    if (len == 0) {
        snprintf(err, cap, "JSON Parse error: The document is empty");
        return NULL;
    }
    const char *end = NULL;
    cJSON *doc = cJSON_ParseWithLengthOpts(body, len, &end, 0);
    if (!doc) {
        size_t at = end && end >= body && end <= body + len ? (size_t)(end - body) : 0;
        snprintf(err, cap, "JSON Parse error: Invalid value or truncated document at offset: %zu",
                 at);
        return NULL;
    }
    /* only white space may follow the value */
    while (end && end < body + len && (*end == ' ' || *end == '\n' || *end == '\r' ||
                                       *end == '\t'))
        end++;
    if (end && end < body + len) {
        snprintf(err, cap, "JSON Parse error: The document root must not be followed by other "
                 "values. at offset: %zu", (size_t)(end - body));
        cJSON_Delete(doc);
        return NULL;
    }
    if (!cJSON_IsObject(doc)) {
        snprintf(err, cap, "JSON Value: %s Is not object", cJSON_IsArray(doc) ? "[...]" : "...");
        cJSON_Delete(doc);
        return NULL;
    }
    return doc;
}

/* signature_name, when present, must be a string naming the one signature. */
static int check_signature(const cJSON *doc, const char *want, char *err, size_t cap) {
    const cJSON *sig = cJSON_GetObjectItemCaseSensitive(doc, "signature_name");
    if (!sig) return 0;
    if (!cJSON_IsString(sig))
        return fail(err, cap, 400, "'signature_name' key must be a string value.", NULL);
    if (sig->valuestring[0] && strcmp(sig->valuestring, "serving_default") &&
        strcmp(sig->valuestring, want)) {
        snprintf(err, cap, "Serving signature name: \"%.200s\" not found in signature def",
                 sig->valuestring);
        return 400;
    }
    return 0;
}

static int is_b64_object(const cJSON *v) {
    return cJSON_IsObject(v) && v->child && !v->child->next && v->child->string &&
           !strcmp(v->child->string, "b64");
}

/* Appends b (n bytes, malloc'ed; taken over, freed on failure) to the list. */
static int push_image(api_images *im, int max_images, uint8_t *b, size_t n, char *err,
                      size_t cap) {
    if (im->n >= max_images) {
        free(b);
        snprintf(err, cap, "Too many images in one request: the limit is %d", max_images);
        return 400;
    }
    if (!im->n || !(im->n & (im->n - 1))) {   /* grow at powers of two */
        int want = im->n ? 2 * im->n : 4;
        uint8_t **d = realloc(im->data, (size_t)want * sizeof *d);
        if (d) im->data = d;
        size_t *l = d ? realloc(im->len, (size_t)want * sizeof *l) : NULL;
        if (l) im->len = l;
        if (!d || !l) {
            free(b);
            return fail(err, cap, 500, "out of memory", NULL);
        }
    }
    im->data[im->n] = b;
    im->len[im->n++] = n;
    return 0;
}

/* Appends the bytes of one value: {"b64": "..."} decoded, or a string as it is. */
static int add_bytes(api_images *im, int max_images, const cJSON *v, char *err, size_t cap) {
    uint8_t *b = NULL;
    size_t n = 0;
    if (im->n >= max_images) return push_image(im, max_images, NULL, 0, err, cap);
    if (is_b64_object(v)) {
        const cJSON *s = v->child;
        if (!cJSON_IsString(s))
            return fail(err, cap, 400, "JSON Value: 'b64' must be a string", NULL);
        int rc = api_b64_decode(s->valuestring, strlen(s->valuestring), &b, &n);
        if (rc == -1) return fail(err, cap, 400, "Unable to base64 decode", NULL);
        if (rc) return fail(err, cap, 500, "out of memory", NULL);
    } else if (cJSON_IsString(v)) {
        n = strlen(v->valuestring);
        b = malloc(n + 1);
        if (!b) return fail(err, cap, 500, "out of memory", NULL);
        memcpy(b, v->valuestring, n);
    } else {
        return fail(err, cap, 400, "JSON Value: expected a {\"b64\": ...} object or a string "
                    "for the DT_STRING input 'image_bytes'", NULL);
    }
    return push_image(im, max_images, b, n, err, cap);
}

/* One instance: a bytes value, or {"image_bytes": bytes value}. */
static int add_instance(api_images *im, int max_images, const cJSON *v, int item, char *err,
                        size_t cap) {
    char inner[512] = "";
    int rc;
    if (cJSON_IsObject(v) && !is_b64_object(v)) {
        const cJSON *x = cJSON_GetObjectItemCaseSensitive(v, "image_bytes");
        if (!x || !v->child || v->child->next) {
            snprintf(err, cap, "Failed to process element: %d of 'instances' list. JSON object "
                     "must only have keys: image_bytes", item);
            return 400;
        }
        rc = add_bytes(im, max_images, x, inner, sizeof inner);
    } else {
        rc = add_bytes(im, max_images, v, inner, sizeof inner);
    }
    if (rc == 400)
        snprintf(err, cap, "Failed to process element: %d of 'instances' list. Error: "
                 "Invalid argument: %s", item, inner);
    else if (rc)
        snprintf(err, cap, "%s", inner);
    return rc;
}

int api_parse_predict(const char *body, size_t len, int max_images, api_images *im,
                      char *err, size_t cap) {
    memset(im, 0, sizeof *im);
    cJSON *doc = parse_doc(body, len, err, cap);
    if (!doc) return 400;
    int rc = check_signature(doc, "serving_default", err, cap);
    const cJSON *inst = cJSON_GetObjectItemCaseSensitive(doc, "instances");
    const cJSON *inp = cJSON_GetObjectItemCaseSensitive(doc, "inputs");
    if (rc) {
    } else if (inst && inp) {
        rc = fail(err, cap, 400, "Not formatted correctly expecting only one of 'inputs' or "
                  "'instances' keys to exist ", NULL);
    } else if (inst) {
        if (!cJSON_IsArray(inst))
            rc = fail(err, cap, 400, "Excepting 'instances' to be an list/array", NULL);
        else if (!inst->child)
            rc = fail(err, cap, 400, "No values in 'instances' array", NULL);
        int i = 0;
        for (const cJSON *v = inst->child; !rc && v; v = v->next, i++)
            rc = add_instance(im, max_images, v, i, err, cap);
    } else if (inp) {
        im->columnar = 1;
        const cJSON *x = inp;
        if (cJSON_IsObject(inp) && !is_b64_object(inp)) {
            x = cJSON_GetObjectItemCaseSensitive(inp, "image_bytes");
            if (!x) rc = fail(err, cap, 400, "Missing named input: image_bytes in 'inputs' "
                              "object.", NULL);
        }
        if (!rc && cJSON_IsArray(x)) {
            if (!x->child) rc = fail(err, cap, 400, "No values in 'inputs' list", NULL);
            for (const cJSON *v = x->child; !rc && v; v = v->next)
                rc = add_bytes(im, max_images, v, err, cap);
        } else if (!rc) {
            rc = add_bytes(im, max_images, x, err, cap);
        }
    } else {
        rc = fail(err, cap, 400, "Missing 'inputs' or 'instances' key", NULL);
    }
    cJSON_Delete(doc);
    if (rc) api_images_free(im);
    return rc;
}

/* Sets feature `name` of ex from a JSON value or list of values, as TF Serving's
 * MakeExampleFromJsonObject: numbers with a fraction are floats, integers int64, strings and
 * {"b64": ...} bytes; one kind per feature. */
static int set_feature(sn_example *ex, const char *name, const cJSON *content, char *err,
                       size_t cap) {
    int n = cJSON_IsArray(content) ? cJSON_GetArraySize(content) : 1;
    const cJSON *first = cJSON_IsArray(content) ? content->child : content;
    if (n > (1 << 20)) return fail(err, cap, 400, "Feature: %s has too many values", name);
    const char *kind = NULL;   /* "bytes", "float", "int64" */
    int rc = 0;
    void **bytes = calloc((size_t)n + 1, sizeof *bytes);
    size_t *lens = calloc((size_t)n + 1, sizeof *lens);
    double *nums = calloc((size_t)n + 1, sizeof *nums);
    if (!bytes || !lens || !nums) rc = fail(err, cap, 500, "out of memory", NULL);
    int i = 0;
    for (const cJSON *v = first; !rc && v && i < n; v = cJSON_IsArray(content) ? v->next : NULL,
                      i++) {
        const char *k;
        if (is_b64_object(v) || cJSON_IsString(v)) k = "bytes";
        else if (cJSON_IsBool(v)) k = "int64";
        else if (cJSON_IsNumber(v))   /* cJSON keeps no trace of a written fraction */
            k = v->valuedouble == (double)(int64_t)v->valuedouble ? "int64" : "float";
        else {
            snprintf(err, cap, "Feature: %.200s has element with unexpected JSON type: %s", name,
                     cJSON_IsArray(v) ? "Array" : cJSON_IsNull(v) ? "Null" : "Object");
            rc = 400;
            break;
        }
        if (kind && strcmp(kind, k)) {
            snprintf(err, cap, "Unexpected element type in feature: %.200s expecting type: %s",
                     name, kind);
            rc = 400;
            break;
        }
        kind = k;
        if (!strcmp(k, "bytes")) {
            if (is_b64_object(v)) {
                const cJSON *s = v->child;
                size_t bl = 0;
                int r = cJSON_IsString(s) ? api_b64_decode(s->valuestring,
                                                            strlen(s->valuestring),
                                                            (uint8_t **)&bytes[i], &bl) : -1;
                if (r == -1) rc = fail(err, cap, 400, "Unable to base64 decode", NULL);
                else if (r) rc = fail(err, cap, 500, "out of memory", NULL);
                lens[i] = bl;
            } else {
                lens[i] = strlen(v->valuestring);
                bytes[i] = malloc(lens[i] + 1);
                if (bytes[i]) memcpy(bytes[i], v->valuestring, lens[i]);
                else rc = fail(err, cap, 500, "out of memory", NULL);
            }
        } else {
            nums[i] = cJSON_IsBool(v) ? (cJSON_IsTrue(v) ? 1 : 0) : v->valuedouble;
        }
    }
    if (!rc && kind && !strcmp(kind, "bytes")) {
        if (sn_example_set_bytes(ex, name, (const void *const *)bytes, lens, (size_t)i) != SN_OK)
            rc = fail(err, cap, 500, "out of memory", NULL);
    } else if (!rc && kind && !strcmp(kind, "int64")) {
        int64_t *iv = malloc((size_t)i * sizeof *iv + 1);
        for (int j = 0; iv && j < i; j++) iv[j] = (int64_t)nums[j];
        if (!iv || sn_example_set_int64(ex, name, iv, (size_t)i) != SN_OK)
            rc = fail(err, cap, 500, "out of memory", NULL);
        free(iv);
    } else if (!rc && kind) {
        float *fv = malloc((size_t)i * sizeof *fv + 1);
        for (int j = 0; fv && j < i; j++) fv[j] = (float)nums[j];
        if (!fv || sn_example_set_float(ex, name, fv, (size_t)i) != SN_OK)
            rc = fail(err, cap, 500, "out of memory", NULL);
        free(fv);
    }
    for (int j = 0; bytes && j < n; j++) free(bytes[j]);
    free(bytes);
    free(lens);
    free(nums);
    return rc;
}

/* Every feature of a JSON example object into ex. */
static int make_example(sn_example *ex, const cJSON *obj, char *err, size_t cap) {
    if (!cJSON_IsObject(obj))
        return fail(err, cap, 400, "Example must be JSON object but got JSON %s",
                    cJSON_IsArray(obj) ? "Array" : cJSON_IsString(obj) ? "String" : "value");
    for (const cJSON *f = obj->child; f; f = f->next) {
        int rc = set_feature(ex, f->string, f, err, cap);
        if (rc) return rc;
    }
    return 0;
}

int api_parse_classify(sn_ctx *ctx, const char *body, size_t len, int max_images,
                       api_images *im, char *err, size_t cap) {
    memset(im, 0, sizeof *im);
    cJSON *doc = parse_doc(body, len, err, cap);
    if (!doc) return 400;
    sn_example *ex = NULL;
    int rc = check_signature(doc, "classify", err, cap);
    if (!rc && sn_example_new(ctx, &ex) != SN_OK) rc = fail(err, cap, 500, "out of memory", NULL);
    const cJSON *context = cJSON_GetObjectItemCaseSensitive(doc, "context");
    const cJSON *examples = cJSON_GetObjectItemCaseSensitive(doc, "examples");
    if (rc) {
    } else if (!examples) {
        rc = fail(err, cap, 400, "When method is classify, key 'examples' is expected and was "
                  "not found", NULL);
    } else if (!cJSON_IsArray(examples)) {
        rc = fail(err, cap, 400, "Expecting 'examples' value to be an list/array", NULL);
    } else if (!examples->child) {
        rc = fail(err, cap, 400, "'examples' value is an empty array", NULL);
    }
    if (!rc && context) rc = make_example(ex, context, err, cap);   /* validated only */
    for (const cJSON *e = examples ? examples->child : NULL; !rc && e; e = e->next) {
        sn_example_clear(ex);
        /* the context's features, then the example's own (which win) */
        if (context) rc = make_example(ex, context, err, cap);
        if (!rc) rc = make_example(ex, e, err, cap);
        if (rc) break;
        const uint8_t *b = NULL;
        size_t n = 0;
        sn_feature_kind kind = SN_FEATURE_NONE;
        size_t count = 0;
        /* TF-slim's key; else "image", the key of TF Serving's documented example */
        const char *key = sn_example_feature(ex, "image/encoded", NULL, NULL) == SN_OK
                              ? "image/encoded" : "image";
        if (sn_example_feature(ex, key, &kind, &count) != SN_OK || count != 1 ||
            kind != SN_FEATURE_BYTES) {
            rc = fail(err, cap, 400, "Each example needs one bytes value in feature "
                      "'image/encoded' ({\"b64\": ...})", NULL);
            break;
        }
        sn_example_get_bytes(ex, key, 0, &b, &n);
        uint8_t *copy = malloc(n + 1);
        if (!copy) {
            rc = fail(err, cap, 500, "out of memory", NULL);
            break;
        }
        memcpy(copy, b, n);
        rc = push_image(im, max_images, copy, n, err, cap);
    }
    sn_example_free(ex);
    cJSON_Delete(doc);
    if (rc) api_images_free(im);
    return rc;
}

char *api_error_json(const char *msg) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddStringToObject(o, "error", msg);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}
