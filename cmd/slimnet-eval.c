/* slimnet-eval: eval_image_classifier.py as a native tool.
 *
 *   slimnet-eval --checkpoint_path=T --dataset_name=fer --dataset_dir=D --model_name=lenet
 *
 * Evaluates one checkpoint (a prefix, or a folder's newest) on a split, once: Accuracy and
 * Recall_5 as TF-slim's streaming metrics (labels shifted by --labels_offset), then
 * per-class precision and recall and the confusion matrix with the names from labels.txt.
 * Every sample is counted exactly once (TF-slim's last batch wraps around and counts a few
 * samples twice).  With --moving_average_decay the moving averages
 * ("<var>/ExponentialMovingAverage") are evaluated instead of the variables.  eval/Accuracy
 * and eval/Recall_5 go to TensorBoard events in --eval_dir.
 * Exit status: 0 done, 1 error, 2 bad flags. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../lib/slimnet.h"
#include "common/flags.h"
#include "common/tool.h"

#define TOOL "slimnet-eval"

typedef struct opts {
    int batch_size;
    int64_t max_num_batches;
    const char *master, *checkpoint_path, *eval_dir;
    int num_preprocessing_threads;
    const char *dataset_name, *dataset_split_name, *dataset_dir;
    int labels_offset;
    const char *model_name, *preprocessing_name;
    double moving_average_decay;
    int eval_image_size, quantize, use_grayscale;
    const char *data_dir, *output_dir;
    const char *device;
    int threads, fer_extra_class, top_k, show_classes;
} opts;

static const char usage_text[] =
    "usage: slimnet-eval --checkpoint_path=PATH --dataset_dir=DIR [--dataset_name=fer] "
    "[--model_name=inception_v3] [flags]\n"
    "Evaluates a checkpoint as eval_image_classifier.py does, plus per-class metrics.";

int main(int argc, char **argv) {
    tool_init(argv);
    opts o = {0};
    o.batch_size = 100;
    o.checkpoint_path = "/tmp/tfmodel/";
    o.eval_dir = "/tmp/tfmodel/";
    o.num_preprocessing_threads = 4;
    o.dataset_name = "fer";
    o.dataset_split_name = "test";
    o.model_name = "inception_v3";
    o.device = "auto";
    o.top_k = 5;
    o.show_classes = 1;
    flag fl[] = {
        {"batch_size", FLAG_INT, &o.batch_size, "images per batch", 0, 0, "[1,65536]"},
        {"max_num_batches", FLAG_INT64, &o.max_num_batches,
         "evaluate at most this many batches; 0 = the whole split", 0, 0, "[0,)"},
        {"master", FLAG_STRING, &o.master, "(accepted, unused)", 0, 0, 0},
        {"checkpoint_path", FLAG_STRING, &o.checkpoint_path,
         "checkpoint prefix, or a folder (its newest checkpoint)", 0, 0, 0},
        {"eval_dir", FLAG_STRING, &o.eval_dir, "where the eval event file goes", 0, 0, 0},
        {"num_preprocessing_threads", FLAG_INT, &o.num_preprocessing_threads,
         "decode and preprocessing threads", 0, 0, "[1,256]"},
        {"dataset_name", FLAG_STRING, &o.dataset_name,
         "fer, mnist, cifar10, flowers, imagenet or folder", 0, 0, 0},
        {"dataset_split_name", FLAG_STRING, &o.dataset_split_name, "split to evaluate", 0, 0, 0},
        {"dataset_dir", FLAG_STRING, &o.dataset_dir, "folder of the dataset files", 0, 0, 0},
        {"labels_offset", FLAG_INT, &o.labels_offset, "subtracted from every label", 0, 0, "[0,)"},
        {"model_name", FLAG_STRING, &o.model_name, "network", 0, 0, 0},
        {"preprocessing_name", FLAG_STRING, &o.preprocessing_name,
         "lenet, cifarnet, vgg or inception; None = from model_name", 0, 0, 0},
        {"moving_average_decay", FLAG_DOUBLE, &o.moving_average_decay,
         "> 0: evaluate the moving averages of the variables", 0, 0, "[0,1]"},
        {"eval_image_size", FLAG_INT, &o.eval_image_size,
         "image size; 0 = the model's default", 0, 0, "[0,8192]"},
        {"quantize", FLAG_BOOL, &o.quantize, "(not supported)", 0, 0, 0},
        {"use_grayscale", FLAG_BOOL, &o.use_grayscale, "convert images to grayscale", 0, 0, 0},
        {"data_dir", FLAG_STRING, &o.data_dir, "alias of --dataset_dir", 0, "dataset_dir", 0},
        {"output_dir", FLAG_STRING, &o.output_dir, "alias of --checkpoint_path", 0,
         "checkpoint_path", 0},
        {"device", FLAG_STRING, &o.device, "auto (CUDA when present), cpu or cuda", 0, 0, 0},
        {"threads", FLAG_INT, &o.threads, "CPU threads; 0 = all cores", 0, 0, "[0,4096]"},
        {"fer_extra_class", FLAG_BOOL, &o.fer_extra_class,
         "fer: the vendor's num_class + 1 logits", 0, 0, 0},
        {"top_k", FLAG_INT, &o.top_k, "k of the Recall_k metric", 0, 0, "[1,)"},
        {"show_classes", FLAG_BOOL, &o.show_classes,
         "print per-class metrics and the confusion matrix", 0, 0, 0},
    };
    int nfl = (int)(sizeof fl / sizeof fl[0]);
    int rc = flags_parse(TOOL, usage_text, fl, nfl, argc, argv, NULL, 0, NULL);
    if (rc) return rc == 1 ? 0 : rc;
    if (!o.dataset_dir) {
        fprintf(stderr, TOOL ": --dataset_dir is required\n");
        return 2;
    }
    if (o.quantize) {
        fprintf(stderr, TOOL ": --quantize: quantized evaluation is not supported\n");
        return 2;
    }
    if ((rc = tool_check_model(TOOL, o.model_name))) return rc;
    sn_ctx *ctx = tool_ctx(TOOL, o.device, 1, o.threads, 0);
    if (!ctx) return 1;
    sn_dataset *ds = NULL;
    sn_graph *g = NULL;
    sn_net *net = NULL;
    sn_pipeline *in = NULL;
    sn_tensor *xt = NULL;
    int64_t *confusion = NULL;
    rc = 1;
    sn_dataset_params dp = sn_dataset_params_default();
    dp.fer_extra_class = o.fer_extra_class;
    const char *pattern = NULL;
    int64_t num_samples = 0;
    if (sn_dataset_open(ctx, o.dataset_name, o.dataset_dir, &dp, &ds) != SN_OK) {
        fprintf(stderr, TOOL ": --dataset_name=%s --dataset_dir=%s: %s\n",
                o.dataset_name ? o.dataset_name : "None", o.dataset_dir, sn_ctx_errmsg(ctx));
        goto done;
    }
    if (sn_dataset_split(ds, o.dataset_split_name, &pattern, &num_samples) != SN_OK) {
        fprintf(stderr, TOOL ": --dataset_split_name=%s: %s\n", o.dataset_split_name,
                sn_ctx_errmsg(ctx));
        rc = 2;
        goto done;
    }
    int classes = sn_dataset_num_classes(ds) - o.labels_offset;
    int size = tool_image_size(o.model_name, o.eval_image_size);
    if (classes < 1) {
        fprintf(stderr, TOOL ": --labels_offset=%d leaves no classes of %d\n", o.labels_offset,
                sn_dataset_num_classes(ds));
        rc = 2;
        goto done;
    }
    sn_preprocess_params pp = sn_preprocess_params_default();
    const char *prep = o.preprocessing_name ? o.preprocessing_name : o.model_name;
    if (sn_preprocess_kind_for(prep, &pp.kind) != SN_OK) {
        fprintf(stderr, TOOL ": %s=%s: no TF-slim preprocessing for it\n",
                o.preprocessing_name ? "--preprocessing_name" : "--model_name", prep);
        rc = 2;
        goto done;
    }
    pp.is_training = 0;
    pp.out_height = pp.out_width = size;
    pp.use_grayscale = o.use_grayscale;
    int channels = o.use_grayscale ? 1 : sn_dataset_channels(ds);

    if (sn_graph_new(ctx, &g) != SN_OK) goto fail;
    int64_t in_dims[4] = {SN_BATCH, size, size, channels};
    sn_node images = sn_input(g, "images", SN_DTYPE_F32, 4, in_dims);
    sn_model_params mp = sn_model_params_default();
    mp.num_classes = classes;
    mp.is_training = 0;
    mp.weight_decay = 0.0f;    /* no L2 terms: nothing here reads them, and each would be a
                                * pass over its layer's weights in every forward */
    sn_model m;
    if (sn_model_build(g, o.model_name, images, &mp, &m) != SN_OK) {
        fprintf(stderr, TOOL ": --model_name=%s: %s\n", o.model_name, sn_graph_errmsg(g));
        goto done;
    }
    sn_compile_params cp = sn_compile_params_default();
    cp.batch_size = o.batch_size;
    cp.backward = 0;
    if (sn_net_compile(g, &cp, &net) != SN_OK) goto fail;
    sn_restore_report rep;
    sn_restore_params rp = sn_restore_params_default();
    rp.use_moving_averages = o.moving_average_decay > 0;   /* "<var>/ExponentialMovingAverage" */
    sn_status rst = sn_net_restore(net, o.checkpoint_path, &rp, &rep);
    if (rst == SN_OK || rep.checkpoint) tool_print_restore(stdout, TOOL, &rep, 5);
    int64_t global_step = 0;   /* the summaries' step; best effort */
    if (rst == SN_OK && tool_global_step(ctx, rep.checkpoint, &global_step) != SN_OK)
        global_step = 0;
    sn_restore_report_free(&rep);
    if (rst != SN_OK) {
        fprintf(stderr, TOOL ": --checkpoint_path=%s: %s\n", o.checkpoint_path,
                sn_ctx_errmsg(ctx));
        goto done;
    }
    int64_t xd[4] = {o.batch_size, size, size, channels};
    if (sn_tensor_new(ctx, SN_DTYPE_F32, 4, xd, &xt) != SN_OK)
        goto fail;
    sn_pipeline_params pl = sn_pipeline_params_default();
    pl.pattern = pattern;
    pl.batch_size = o.batch_size;
    pl.channels = sn_dataset_channels(ds);
    pl.preprocess = pp;
    pl.shuffle = 0;
    pl.num_epochs = 1;
    pl.num_threads = o.num_preprocessing_threads > 0 ? o.num_preprocessing_threads : 1;
    pl.labels_offset = o.labels_offset;
    pl.num_classes = classes;
    if (sn_pipeline_new(ctx, &pl, &in) != SN_OK) goto fail;
    confusion = calloc((size_t)classes * (size_t)classes, sizeof *confusion);
    if (!confusion) goto fail;
    int64_t seen = 0, correct = 0, in_top_k = 0, batches = 0;
    double t0 = tool_now();
    for (;;) {
        if (o.max_num_batches > 0 && batches >= o.max_num_batches) break;
        const float *x;
        const int32_t *y;
        int n = 0;
        if (sn_pipeline_next(in, &x, &y, &n) != SN_OK) {
            tool_fail(TOOL, ctx, "reading evaluation data");
            goto done;
        }
        if (n == 0) break;
        float *xb = sn_tensor_data(xt);
        size_t per = (size_t)size * (size_t)size * (size_t)channels;
        memcpy(xb, x, (size_t)n * per * sizeof *xb);
        if (n < o.batch_size)   /* the rest of a partial batch: zeros, not counted */
            memset(xb + (size_t)n * per, 0, (size_t)(o.batch_size - n) * per * sizeof *xb);
        sn_tensor *lg = NULL;
        if (sn_net_set_input(net, images, xt) != SN_OK || sn_net_forward(net) != SN_OK ||
            sn_net_get_output(net, m.logits, &lg) != SN_OK)
            goto fail;
        const float *p = sn_tensor_data(lg);
        for (int i = 0; i < n; i++) {
            const float *row = p + (size_t)i * (size_t)classes;
            int best = 0, above = 0;
            for (int c = 1; c < classes; c++)
                if (row[c] > row[best]) best = c;
            /* tf.nn.in_top_k: the label's logit is among the k largest (ties count in). */
            for (int c = 0; c < classes; c++) above += row[c] > row[y[i]];
            correct += best == y[i];
            in_top_k += above < o.top_k;
            confusion[(size_t)y[i] * (size_t)classes + (size_t)best]++;
        }
        sn_tensor_free(lg);
        seen += n;
        batches++;
    }
    double el = tool_now() - t0;
    if (seen == 0) {
        fprintf(stderr, TOOL ": %s: no samples in split '%s'\n", pattern, o.dataset_split_name);
        goto done;
    }
    double acc = (double)correct / (double)seen, rk = (double)in_top_k / (double)seen;
    printf("eval/Accuracy[%.6f]\neval/Recall_%d[%.6f]\n", acc, o.top_k, rk);
    printf(TOOL ": %lld images of %s/%s in %.1f s (%.0f images/s)\n", (long long)seen,
           sn_dataset_name(ds), o.dataset_split_name, el, el > 0 ? (double)seen / el : 0.0);
    if (o.show_classes) {
        printf("\n%-4s %-16s %9s %9s %8s\n", "id", "class", "precision", "recall", "images");
        for (int c = 0; c < classes; c++) {
            int64_t tp = confusion[(size_t)c * (size_t)classes + (size_t)c], row = 0, col = 0;
            for (int k = 0; k < classes; k++) {
                row += confusion[(size_t)c * (size_t)classes + (size_t)k];
                col += confusion[(size_t)k * (size_t)classes + (size_t)c];
            }
            const char *name = sn_dataset_label_name(ds, c + o.labels_offset);
            printf("%-4d %-16.16s %9.4f %9.4f %8lld\n", c, name ? name : "?",
                   col ? (double)tp / (double)col : 0.0, row ? (double)tp / (double)row : 0.0,
                   (long long)row);
        }
        if (classes <= 32) {
            printf("\nconfusion matrix (rows: true class, columns: predicted class)\n%21s",
                   "");
            for (int c = 0; c < classes; c++) printf(" %6d", c);
            printf("\n");
            for (int r = 0; r < classes; r++) {
                const char *name = sn_dataset_label_name(ds, r + o.labels_offset);
                printf("%-4d %-16.16s", r, name ? name : "?");
                for (int c = 0; c < classes; c++)
                    printf(" %6lld",
                           (long long)confusion[(size_t)r * (size_t)classes + (size_t)c]);
                printf("\n");
            }
        }
    }
    sn_events *ev = NULL;
    if (o.eval_dir && sn_events_open(ctx, o.eval_dir, &ev) == SN_OK) {
        char tag[32];
        snprintf(tag, sizeof tag, "eval/Recall_%d", o.top_k);
        sn_events_scalar(ev, "eval/Accuracy", global_step, (float)acc);
        sn_events_scalar(ev, tag, global_step, (float)rk);
        sn_events_close(ev);
    }
    rc = 0;
    goto done;
fail:
    tool_fail(TOOL, ctx, "evaluation");
done:
    free(confusion);
    sn_pipeline_free(in);
    sn_tensor_free(xt);
    sn_net_free(net);
    sn_graph_free(g);
    sn_dataset_free(ds);
    sn_ctx_free(ctx);
    return rc;
}
