/* classify.c: sn_classifier, a checkpoint as a function: decode -> eval preprocessing ->
 * the net in inference mode (batch 1, or batch_size images for sn_classify_batch) ->
 * softmax -> top k.  Everything through the public
 * API, but for the class names: the dataset descriptor of labels_dir, or its labels.txt
 * alone (dataset.h). */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "io/dataset.h"
#include "sn_internal.h"

struct sn_classifier {
    sn_ctx *ctx;
    sn_graph *g;
    sn_net *net;
    sn_node images, logits;
    sn_dataset *labels;             /* may be NULL: no names */
    sn_preprocess_params pp;
    int classes, offset, channels;  /* channels: of the decoded image */
    int net_channels;
    int size, batch;                /* image side; images per forward pass */
    size_t numel;                   /* floats of one preprocessed image */
    sn_tensor *x;                   /* (batch, size, size, net_channels) */
    uint8_t *pix;                   /* decode buffer */
    size_t pix_cap;
    float *prob;
    sn_restore_report rep;          /* of the restore in sn_classifier_new */
};

sn_classifier_params sn_classifier_params_default(void) {
    sn_classifier_params p;
    memset(&p, 0, sizeof p);
    p.channels = 3;
    p.batch_size = 1;
    p.precision = SN_PRECISION_FP32;
    return p;
}

/* dirname of a checkpoint path: a folder stays itself. */
static void folder_of(const char *path, char *buf, size_t len) {
    snprintf(buf, len, "%s", path);
    size_t n = strlen(buf);
    while (n > 1 && buf[n - 1] == '/') buf[--n] = 0;
    /* A prefix "dir/model.ckpt-10" names dir (the caller tries the path itself first,
     * for a folder). */
    char *slash = strrchr(buf, '/');
    if (!slash) snprintf(buf, len, ".");
    else if (slash == buf) buf[1] = 0;
    else *slash = 0;
}

sn_status sn_classifier_new(sn_ctx *ctx, const sn_classifier_params *p, sn_classifier **out) {
    if (!ctx || !p || !out) return SN_ERR_INVALID_ARG;
    *out = NULL;
    if (!p->model_name || !p->checkpoint_path)
        return sn__fail(ctx, SN_ERR_INVALID_ARG, "classifier: model_name and checkpoint_path "
                        "are required");
    if (p->channels != 1 && p->channels != 3)
        return sn__fail(ctx, SN_ERR_INVALID_ARG, "classifier: channels must be 1 or 3, not %d",
                        p->channels);
    int size = p->image_size > 0 ? p->image_size : sn_model_default_image_size(p->model_name);
    if (size <= 0)
        return sn__fail(ctx, SN_ERR_NOT_FOUND, "classifier: unknown model '%s'", p->model_name);
    sn_classifier *c = calloc(1, sizeof *c);
    if (!c) return sn__fail(ctx, SN_ERR_NOMEM, "classifier: out of memory");
    c->ctx = ctx;
    c->offset = p->labels_offset;
    c->channels = p->channels;
    c->size = size;
    c->batch = p->batch_size > 0 ? p->batch_size : 1;
    sn_status st = SN_OK;

    /* Class names and count: labels_dir, else the checkpoint's folder (or the folder
     * itself when checkpoint_path is one). */
    char dir[PATH_MAX];
    if (p->labels_dir) snprintf(dir, sizeof dir, "%s", p->labels_dir);
    else {
        struct stat sb;
        if (stat(p->checkpoint_path, &sb) == 0 && S_ISDIR(sb.st_mode))
            snprintf(dir, sizeof dir, "%s", p->checkpoint_path);
        else folder_of(p->checkpoint_path, dir, sizeof dir);
    }
    sn_dataset_params dp = sn_dataset_params_default();
    dp.fer_extra_class = p->fer_extra_class;
    /* A folder slimnet-convert or -train wrote has an info.json; a TF-slim dataset_dir or
     * the labels beside a published checkpoint have a labels.txt only. */
    char info[PATH_MAX + 16];
    snprintf(info, sizeof info, "%s/info.json", dir);
    struct stat sb;
    sn_status lst = stat(info, &sb) == 0 ? sn_dataset_open(ctx, "folder", dir, &dp, &c->labels)
                                         : sn__dataset_open_labels(ctx, dir, &c->labels);
    if (lst != SN_OK) {
        c->labels = NULL;
        if (p->num_classes <= 0 || p->labels_dir) {
            st = p->labels_dir ? SN_ERR_NOT_FOUND : SN_ERR_NOT_FOUND;
            char why[SN_ERRMSG_LEN];
            snprintf(why, sizeof why, "%s", sn_ctx_errmsg(ctx));
            sn__fail(ctx, st, "classifier: no class count: num_classes is 0 and %s has no "
                     "usable labels.txt/info.json (%s)", dir, why);
            goto fail;
        }
    }
    c->classes = p->num_classes > 0 ? p->num_classes
                                    : sn_dataset_num_classes(c->labels) - p->labels_offset;
    if (c->classes < 1) {
        st = sn__fail(ctx, SN_ERR_INVALID_ARG, "classifier: %d classes (labels_offset %d)",
                      c->classes, p->labels_offset);
        goto fail;
    }

    c->pp = sn_preprocess_params_default();
    const char *prep = p->preprocessing_name ? p->preprocessing_name : p->model_name;
    if (sn_preprocess_kind_for(prep, &c->pp.kind) != SN_OK) {
        st = sn__fail(ctx, SN_ERR_NOT_FOUND, "classifier: no preprocessing for '%s'", prep);
        goto fail;
    }
    c->pp.is_training = 0;
    c->pp.out_height = c->pp.out_width = size;
    c->pp.use_grayscale = p->use_grayscale;
    if (p->use_grayscale) c->channels = 3;
    c->net_channels = p->use_grayscale ? 1 : c->channels;

    if ((st = sn_graph_new(ctx, &c->g)) != SN_OK) goto fail;
    int64_t dims[4] = {SN_BATCH, size, size, c->net_channels};
    c->images = sn_input(c->g, "images", SN_DTYPE_F32, 4, dims);
    sn_model_params mp = sn_model_params_default();
    mp.num_classes = c->classes;
    mp.is_training = 0;
    mp.weight_decay = 0.0f;    /* no L2 terms: nothing here reads them, and each would be a
                                * pass over its layer's weights in every forward */
    sn_model m;
    if ((st = sn_model_build(c->g, p->model_name, c->images, &mp, &m)) != SN_OK) {
        sn__fail(ctx, st, "classifier: %s", sn_graph_errmsg(c->g));
        goto fail;
    }
    c->logits = m.logits;
    sn_compile_params cp = sn_compile_params_default();
    cp.batch_size = c->batch;
    cp.backward = 0;
    cp.precision = p->precision;
    if ((st = sn_net_compile(c->g, &cp, &c->net)) != SN_OK) goto fail;
    sn_restore_params rp = sn_restore_params_default();
    rp.use_moving_averages = p->use_moving_averages;
    st = sn_net_restore(c->net, p->checkpoint_path, &rp, &c->rep);
    if (st != SN_OK) goto fail;
    int64_t xd[4] = {c->batch, size, size, c->net_channels};
    c->numel = (size_t)size * (size_t)size * (size_t)c->net_channels;
    if ((st = sn_tensor_new(ctx, SN_DTYPE_F32, 4, xd, &c->x)) != SN_OK) goto fail;
    c->prob = malloc((size_t)c->classes * sizeof *c->prob);
    if (!c->prob) {
        st = sn__fail(ctx, SN_ERR_NOMEM, "classifier: out of memory");
        goto fail;
    }
    *out = c;
    return SN_OK;
fail:
    sn_classifier_free(c);
    return st;
}

void sn_classifier_free(sn_classifier *c) {
    if (!c) return;
    sn_tensor_free(c->x);
    sn_net_free(c->net);
    sn_graph_free(c->g);
    sn_dataset_free(c->labels);
    free(c->pix);
    free(c->prob);
    sn_restore_report_free(&c->rep);
    free(c);
}

const struct sn_restore_report *sn_classifier_restore_report(const sn_classifier *c) {
    return c ? &c->rep : NULL;
}

int sn_classifier_num_classes(const sn_classifier *c) { return c ? c->classes : 0; }

const char *sn_classifier_label(const sn_classifier *c, int id) {
    if (!c || !c->labels || id < 0 || id >= c->classes) return NULL;
    return sn_dataset_label_name(c->labels, id + c->offset);
}

/* The softmax of one row of logits, in double as the sum is. */
static void softmax(float *prob, const float *l, int classes) {
    float mx = l[0];
    for (int i = 1; i < classes; i++) mx = l[i] > mx ? l[i] : mx;
    double sum = 0;
    for (int i = 0; i < classes; i++) sum += exp((double)l[i] - mx);
    for (int i = 0; i < classes; i++) prob[i] = (float)(exp((double)l[i] - mx) / sum);
}

/* The net on c->x; *lg the logits (batch, classes), a new host tensor. */
static sn_status run_net(sn_classifier *c, sn_tensor **lg) {
    SN_TRY(sn_net_set_input(c->net, c->images, c->x));
    SN_TRY(sn_net_forward(c->net));
    return sn_net_get_output(c->net, c->logits, lg);
}

sn_status sn_classify_pixels(sn_classifier *c, const uint8_t *img, int h, int w, int ch,
                             int k, sn_prediction *top, int *n) {
    if (!c) return SN_ERR_INVALID_ARG;
    if (!img || !top || !n || k < 1)
        return sn__fail(c->ctx, SN_ERR_INVALID_ARG, "classify: null argument or k < 1");
    *n = 0;
    if (ch != 1 && ch != 3)
        return sn__fail(c->ctx, SN_ERR_INVALID_ARG, "classify: %d channels (1 or 3)", ch);
    const uint8_t *src = img;
    uint8_t *tmp = NULL;
    if (ch != c->channels) {
        /* Gray to RGB by replication (TF's decode_image(channels=3)); RGB to gray with
         * rgb_to_grayscale's weights, rounded. */
        size_t px = (size_t)h * (size_t)w;
        tmp = malloc(px * (size_t)c->channels);
        if (!tmp) return sn__fail(c->ctx, SN_ERR_NOMEM, "classify: out of memory");
        for (size_t i = 0; i < px; i++) {
            if (c->channels == 3) tmp[3 * i] = tmp[3 * i + 1] = tmp[3 * i + 2] = img[i];
            else tmp[i] = (uint8_t)lrintf(0.2989f * img[3 * i] + 0.587f * img[3 * i + 1] +
                                          0.114f * img[3 * i + 2]);
        }
        src = tmp;
    }
    sn_status st = sn_preprocess(c->ctx, &c->pp, src, h, w, c->channels, NULL, 0,
                                 sn_tensor_data(c->x));
    free(tmp);
    SN_TRY(st);
    sn_tensor *lg = NULL;
    SN_TRY(run_net(c, &lg));
    softmax(c->prob, sn_tensor_data(lg), c->classes);
    sn_tensor_free(lg);
    int m = k < c->classes ? k : c->classes;
    for (int j = 0; j < m; j++) {   /* selection of the m largest, ties by lower id */
        int best = -1;
        for (int i = 0; i < c->classes; i++) {
            int taken = 0;
            for (int q = 0; q < j; q++) taken |= top[q].id == i;
            if (!taken && (best < 0 || c->prob[i] > c->prob[best])) best = i;
        }
        top[j].id = best;
        top[j].probability = c->prob[best];
        top[j].label = sn_classifier_label(c, best);
    }
    *n = m;
    return SN_OK;
}

sn_status sn_classify(sn_classifier *c, const void *data, size_t len, int k,
                      sn_prediction *top, int *n) {
    if (!c) return SN_ERR_INVALID_ARG;
    if (n) *n = 0;
    sn_image_params ip = sn_image_params_default();
    ip.channels = c->channels;
    int h = 0, w = 0, ch = 0;
    sn_status st = sn_image_decode_into(c->ctx, data, len, &ip, c->pix, c->pix_cap, &h, &w,
                                        &ch);
    if (st == SN_ERR_SHAPE) {
        size_t need = (size_t)h * (size_t)w * (size_t)ch;
        uint8_t *b = realloc(c->pix, need);
        if (!b) return sn__fail(c->ctx, SN_ERR_NOMEM, "classify: out of memory");
        c->pix = b;
        c->pix_cap = need;
        st = sn_image_decode_into(c->ctx, data, len, &ip, c->pix, c->pix_cap, &h, &w, &ch);
    }
    SN_TRY(st);
    return sn_classify_pixels(c, c->pix, h, w, ch, k, top, n);
}

int sn_classifier_batch_size(const sn_classifier *c) { return c ? c->batch : 0; }

size_t sn_classifier_input_numel(const sn_classifier *c) { return c ? c->numel : 0; }

sn_status sn_classifier_prepare(const sn_classifier *c, sn_ctx *ctx, const void *data,
                                size_t len, uint64_t max_pixels, float *out) {
    if (!c || !ctx) return SN_ERR_INVALID_ARG;
    if (!data || !out)
        return sn__fail(ctx, SN_ERR_INVALID_ARG, "classify: null image or output");
    sn_image_params ip = sn_image_params_default();
    ip.channels = c->channels;
    if (max_pixels) ip.max_pixels = max_pixels;
    sn_tensor *img = NULL;
    SN_TRY(sn_image_decode(ctx, data, len, &ip, &img));
    sn_status st = sn_preprocess(ctx, &c->pp, sn_tensor_data(img), (int)sn_tensor_dim(img, 0),
                                 (int)sn_tensor_dim(img, 1), c->channels, NULL, 0, out);
    sn_tensor_free(img);
    return st;
}

sn_status sn_classify_batch(sn_classifier *c, const float *x, int n, float *logits,
                            float *probabilities) {
    if (!c) return SN_ERR_INVALID_ARG;
    if (!x || n < 1 || n > c->batch)
        return sn__fail(c->ctx, SN_ERR_INVALID_ARG, "classify: %d images for a batch of %d%s",
                        n, c->batch, x ? "" : " (null input)");
    float *in = sn_tensor_data(c->x);
    memcpy(in, x, (size_t)n * c->numel * sizeof *in);
    memset(in + (size_t)n * c->numel, 0, (size_t)(c->batch - n) * c->numel * sizeof *in);
    sn_tensor *lg = NULL;
    SN_TRY(run_net(c, &lg));
    const float *l = sn_tensor_data(lg);
    size_t k = (size_t)c->classes;
    if (logits) memcpy(logits, l, (size_t)n * k * sizeof *logits);
    for (int i = 0; probabilities && i < n; i++) softmax(probabilities + i * k, l + i * k, c->classes);
    sn_tensor_free(lg);
    return SN_OK;
}
