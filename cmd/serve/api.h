/* api.h: the parts of slimnet-serve that know TensorFlow Serving's REST API and nothing of
 * HTTP or threads: routes, base64, the request JSON of :predict and :classify read into a
 * list of encoded images, and the response JSON.  Pure functions, so the tests call them
 * directly too. */
#ifndef SN_CMD_SERVE_API_H
#define SN_CMD_SERVE_API_H

#include <stddef.h>
#include <stdint.h>
#include "../../lib/slimnet.h"

/* What a request path asks for. */
typedef enum api_route {
    ROUTE_NONE = 0,       /* not ours: 404 */
    ROUTE_MALFORMED,      /* under /v1/ but not a known method: TF Serving's 400 */
    ROUTE_STATUS,         /* GET  /v1/models/<name>[/versions/<v>] */
    ROUTE_METADATA,       /* GET  /v1/models/<name>[/versions/<v>]/metadata */
    ROUTE_PREDICT,        /* POST /v1/models/<name>[/versions/<v>]:predict */
    ROUTE_CLASSIFY,       /* POST /v1/models/<name>[/versions/<v>]:classify */
    ROUTE_REGRESS,        /* POST ...:regress (a classifier has no regression signature) */
    ROUTE_RAW,            /* POST /classify, the image as the body */
    ROUTE_METRICS,        /* GET  /monitoring/prometheus/metrics */
    ROUTE_COUNT
} api_route;

typedef struct api_target {
    api_route route;
    char model[256];      /* model name of a /v1/models/ path */
    int64_t version;      /* -1: none given */
} api_target;

/* Parses method + path (no query string) into *t. */
void api_route_parse(const char *method, const char *path, api_target *t);
/* "status", "metadata", "predict", ... for metrics labels. */
const char *api_route_name(api_route r);

/* Standard base64 (padding optional, as absl::Base64Unescape), also the URL-safe alphabet,
 * decoded into a new buffer (*out, *n).  Returns 0, or -1 for a character outside the
 * alphabet, a bad length or padding (nothing allocated), -2 out of memory. */
int api_b64_decode(const char *in, size_t len, uint8_t **out, size_t *n);

/* The encoded images of a request: pointers into decoded copies owned by the list. */
typedef struct api_images {
    int n;
    uint8_t **data;
    size_t *len;
    int columnar;         /* predict: "inputs" (answer in "outputs"), else "instances" */
} api_images;
void api_images_free(api_images *im);

/* The input of a :predict body (instances or inputs; each image a {"b64": ...} object, a
 * string of raw bytes, or an object {"image_bytes": one of those}), at most max_images.
 * Returns 0, or an HTTP status (400; 500 out of memory) with a TF-Serving-style message
 * in err. */
int api_parse_predict(const char *body, size_t len, int max_images, api_images *im,
                      char *err, size_t cap);
/* The image/encoded feature (or "image", as TF Serving's documentation names it) of each
 * example of a :classify body (examples[], optional
 * context; each feature a value or a list of values, bytes as {"b64": ...}); the examples are
 * built as tf.Examples with every feature, as TF Serving does, so a wrong feature type is
 * refused as it would be there (ctx: for the tf.Example). */
int api_parse_classify(sn_ctx *ctx, const char *body, size_t len, int max_images,
                       api_images *im, char *err, size_t cap);

/* {"error": "<msg>"}, a new string (NULL when out of memory). */
char *api_error_json(const char *msg);

#endif
