/* slimnet-train: train_image_classifier.py as a native tool.
 *
 *   slimnet-train --dataset_name=fer --dataset_dir=D --train_dir=T --model_name=vgg_19 ...
 *   slimnet-train --data_dir=D --output_dir=T --num_gpus=1 --model_name=vgg_19   (vendor)
 *
 * Every flag of train_image_classifier.py with its default (--help lists them), the
 * vendor's --data_dir/--output_dir/--num_gpus aliases, plus --device, --threads, --seed.
 * It resumes from the newest checkpoint in --train_dir (weights, optimizer slots, moving
 * averages, global_step, and the position in the input stream) and otherwise warm-starts
 * from --checkpoint_path with --checkpoint_exclude_scopes / --ignore_missing_vars, printing
 * the restore report.  Checkpoints ("model.ckpt-<step>", V2, atomic) every
 * --save_interval_secs, at the end, and on SIGINT/SIGTERM; a non-finite loss stops
 * training without writing a checkpoint.  TensorBoard events in --train_dir.
 *
 * --num_gpus=N (or --num_clones=N) on a machine with N GPUs and no cluster in the
 * environment: this process starts N-1 copies of itself (cmd/common/launch.h) and they
 * train as a group of N, one GPU and batch_size images each, the gradients averaged by
 * NCCL: one step of N * batch_size images, as TF-slim's N clones (model_deploy divides
 * each clone's loss by N and sums the gradients: the mean over the N batches).  With
 * fewer GPUs the N clones run as one batch of N * batch_size on one device: the same step.
 * Exit status: 0 done (or interrupted and saved), 1 error, 2 bad flags. */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "../lib/slimnet.h"
#include "common/flags.h"
#include "common/launch.h"
#include "common/tool.h"

#define TOOL "slimnet-train"

typedef struct opts {
    /* cluster (accepted for compatibility; one process, one device) */
    const char *master;
    const char *train_dir;
    int num_clones, clone_on_cpu, worker_replicas, num_ps_tasks, task;
    /* I/O and logging */
    int num_readers, num_preprocessing_threads, log_every_n_steps;
    int save_summaries_secs, save_interval_secs;
    /* optimizer */
    float weight_decay;
    const char *optimizer;
    float adadelta_rho, adagrad_initial_accumulator_value, adam_beta1, adam_beta2;
    float opt_epsilon, ftrl_learning_rate_power, ftrl_initial_accumulator_value;
    float ftrl_l1, ftrl_l2, momentum, rmsprop_momentum, rmsprop_decay;
    int quantize_delay;
    /* learning rate */
    const char *learning_rate_decay_type;
    float learning_rate, end_learning_rate, label_smoothing, learning_rate_decay_factor;
    double num_epochs_per_decay;
    int sync_replicas, replicas_to_aggregate;
    double moving_average_decay;       /* <= 0: off (the flag's None) */
    /* dataset and model */
    const char *dataset_name, *dataset_split_name, *dataset_dir;
    int labels_offset;
    const char *model_name, *preprocessing_name;
    int batch_size, train_image_size;
    int64_t max_number_of_steps;       /* <= 0: None, train until interrupted */
    int use_grayscale;
    /* fine-tuning */
    const char *checkpoint_path, *checkpoint_exclude_scopes, *trainable_scopes;
    int ignore_missing_vars;
    /* the vendor's uflag */
    const char *work_dir, *data_dir, *output_dir, *log_dir;
    int num_gpus;
    int64_t max_step;
    /* slimnet */
    const char *device, *precision;
    int threads, max_to_keep, fer_extra_class, shuffle_buffer, allow_tf32, deterministic;
    int64_t seed;
    double dist_timeout_secs;
    int64_t startup_delay_steps;
    const char *dist_backend;
    /* parsed from the string flags by check_flags */
    sn_optim_kind optim_kind;
    sn_lr_decay lr_decay;
    sn_preprocess_kind prep_kind;
} opts;

static const char usage_text[] =
    "usage: slimnet-train --dataset_dir=DIR --train_dir=DIR [--dataset_name=fer] "
    "[--model_name=inception_v3] [flags]\n"
    "Trains a TF-slim network as train_image_classifier.py does.";

static volatile sig_atomic_t g_stop_signal = 0;
static void on_signal(int sig) { g_stop_signal = sig; }

typedef struct trainer {
    opts *o;
    sn_ctx *ctx;
    sn_dataset *ds;
    sn_graph *g;
    sn_net *net;
    sn_optim *opt;
    sn_ema *ema;
    sn_events *ev;
    sn_node images, labels, total_loss, clone_loss, reg_loss;
    sn_tensor *yt;          /* labels (the images are fed from the pipeline's batch) */
    int64_t batch;          /* examples per step on this process: batch_size * clones */
    int height, width, channels;
    char last_ckpt[1024];
    /* distributed (TF_CONFIG, mpirun, srun, torchrun): rank 0, the chief, alone restores,
     * saves and writes events; size == 1 without a group */
    sn_dist *dist;
    int launched;           /* the group's size when this program launched it (--num_gpus) */
    int gpus;               /* CUDA devices visible */
    int rank, size;
    int64_t records;        /* input records consumed before this run's first step */
    /* asynchronous (TF_CONFIG with ps tasks, no --sync_replicas): t->dist holds every task,
     * rank and size above count the chief and the workers only */
    int num_ps;             /* > 0: this job has ps tasks */
    bool ps_task;           /* this process is one: it serves (serve_ps) */
    sn_ps_client *ps;       /* a worker's (the chief's too) link to them */
    char task_name[256];    /* "ps 0 (10.0.0.9:2222)" */
} trainer;

#define INPUT_RECORDS "slimnet/input_records"   /* where a checkpoint keeps the position */

/* ---- checkpoints ------------------------------------------------------------------------ */

/* Saves variables, optimizer slots, moving averages and the input position (records read
 * over the whole group) as model.ckpt-<step>.  The chief's work. */
static int save(trainer *t, int64_t step, int64_t records) {
    int n_opt = sn_optim_num_slots(t->opt), n_ema = t->ema ? sn_ema_num_slots(t->ema) : 0;
    int n = n_opt + n_ema, rc = 0;
    sn_ckpt_entry *e = calloc((size_t)n + 1, sizeof *e);
    sn_tensor **held = calloc((size_t)n + 1, sizeof *held);
    if (!e || !held) {
        free(e);
        free(held);
        fprintf(stderr, TOOL ": out of memory saving a checkpoint\n");
        return 1;
    }
    for (int i = 0; i < n && !rc; i++) {
        sn_slot_info si;
        sn_status st = i < n_opt ? sn_optim_slot(t->opt, i, &si)
                                 : sn_ema_slot(t->ema, i - n_opt, &si);
        if (st == SN_OK)
            st = i < n_opt ? sn_optim_get_slot(t->opt, si.name, &held[i])
                           : sn_ema_get_slot(t->ema, si.name, &held[i]);
        if (st != SN_OK) rc = tool_fail(TOOL, t->ctx, "reading optimizer state");
        e[i].name = si.name;
        e[i].tensor = held[i];
    }
    if (!rc && sn_tensor_wrap(t->ctx, &records, SN_DTYPE_I64, 0, NULL, SN_COPY, &held[n]) !=
                   SN_OK)
        rc = tool_fail(TOOL, t->ctx, "saving the input position");
    e[n].name = INPUT_RECORDS;
    e[n].tensor = held[n];
    if (!rc) {
        sn_save_params sp = sn_save_params_default();
        sp.max_to_keep = t->o->max_to_keep;
        sp.n_extra = n + 1;
        sp.extra = e;
        if (sn_net_save(t->net, t->o->train_dir, step, &sp, t->last_ckpt,
                        sizeof t->last_ckpt) != SN_OK)
            rc = tool_fail(TOOL, t->ctx, "saving a checkpoint");
    }
    for (int i = 0; i <= n; i++) sn_tensor_free(held[i]);
    free(held);
    free(e);
    return rc;
}

/* Resumes from the newest checkpoint of train_dir: every variable (strict), then the
 * optimizer's and the moving averages' variables and global_step where the checkpoint
 * has them.  Returns 0 and *resumed = 1 when one was found.  A folder without a state
 * file starts afresh; a damaged state file falls back, with a warning, to the newest
 * complete checkpoint in the folder, and stops training when there is none (never a silent
 * restart from step 0). */
static int resume(trainer *t, int *resumed) {
    char path[1024];
    *resumed = 0;
    sn_status st = sn_ckpt_latest(t->ctx, t->o->train_dir, path, sizeof path);
    if (st == SN_ERR_NOT_FOUND) return 0;
    if (st != SN_OK) {
        char why[1024];
        snprintf(why, sizeof why, "%s", sn_ctx_errmsg(t->ctx));
        if (sn_ckpt_newest(t->ctx, t->o->train_dir, path, sizeof path) != SN_OK) {
            fprintf(stderr, TOOL ": --train_dir=%s: cannot resume: %s; and %s.  Repair or "
                            "remove the state file to start afresh\n", t->o->train_dir, why,
                    sn_ctx_errmsg(t->ctx));
            return 1;
        }
        fprintf(stderr, TOOL ": warning: %s; resuming from the newest complete checkpoint in "
                        "the folder instead: %s\n", why, path);
    }
    sn_restore_report rep;
    sn_restore_params rp = sn_restore_params_default();
    if (sn_net_restore(t->net, path, &rp, &rep) != SN_OK) {
        tool_fail(TOOL, t->ctx, "resuming from the train_dir checkpoint");
        sn_restore_report_free(&rep);
        return 1;
    }
    sn_restore_report_free(&rep);
    sn_ckpt *ck = NULL;
    if (sn_ckpt_open(t->ctx, path, &ck) != SN_OK) return tool_fail(TOOL, t->ctx, path);
    int n_opt = sn_optim_num_slots(t->opt), n_ema = t->ema ? sn_ema_num_slots(t->ema) : 0;
    int fresh = 0, rc = 0;
    for (int i = 0; i < n_opt + n_ema && !rc; i++) {
        sn_slot_info si;
        if (i < n_opt) sn_optim_slot(t->opt, i, &si);
        else sn_ema_slot(t->ema, i - n_opt, &si);
        if (sn_ckpt_find(ck, si.name) < 0) {
            fresh++;
            continue;
        }
        sn_tensor *v = NULL;
        sn_status st = sn_ckpt_read(ck, si.name, &v);
        if (st == SN_OK)
            st = i < n_opt ? sn_optim_set_slot(t->opt, si.name, v)
                           : sn_ema_set_slot(t->ema, si.name, v);
        sn_tensor_free(v);
        if (st != SN_OK) rc = tool_fail(TOOL, t->ctx, "restoring optimizer state");
    }
    sn_ckpt_close(ck);
    if (rc) return rc;
    int64_t step = 0;
    int has_records = 0;
    if (tool_global_step(t->ctx, path, &step) != SN_OK ||
        tool_ckpt_int64(t->ctx, path, INPUT_RECORDS, &t->records, &has_records) != SN_OK)
        return tool_fail(TOOL, t->ctx, "reading global_step and the input position");
    /* an older checkpoint: the position of as many steps of today's global batch */
    if (!has_records) t->records = step * t->batch * t->size;
    sn_optim_set_global_step(t->opt, step);
    snprintf(t->last_ckpt, sizeof t->last_ckpt, "%s", path);
    printf(TOOL ": resuming from %s at global step %lld", path, (long long)step);
    if (fresh) printf(" (%d optimizer/average variables absent, started fresh)", fresh);
    printf("\n");
    *resumed = 1;
    return 0;
}

/* The warm start of train_image_classifier._get_init_fn: model variables only, minus the
 * excluded scopes, strict shapes; a folder means its newest checkpoint. */
static int warm_start(trainer *t) {
    sn_restore_params rp = sn_restore_params_default();
    rp.exclude_scopes = t->o->checkpoint_exclude_scopes;
    rp.ignore_missing_vars = t->o->ignore_missing_vars;
    rp.model_vars_only = 1;
    sn_restore_report rep;
    memset(&rep, 0, sizeof rep);
    sn_status st = sn_net_restore(t->net, t->o->checkpoint_path, &rp, &rep);
    if (st == SN_OK || rep.checkpoint) tool_print_restore(stdout, TOOL, &rep, 8);
    sn_restore_report_free(&rep);
    if (st != SN_OK) {
        fprintf(stderr, TOOL ": --checkpoint_path=%s: %s\n", t->o->checkpoint_path,
                sn_ctx_errmsg(t->ctx));
        if (st == SN_ERR_NOT_FOUND && !t->o->ignore_missing_vars)
            fprintf(stderr, TOOL ": (--ignore_missing_vars keeps the initial values of "
                            "variables the checkpoint lacks)\n");
        return 1;
    }
    return 0;
}

/* ---- the graph -------------------------------------------------------------------------- */

static int build(trainer *t) {
    opts *o = t->o;
    if (sn_graph_new(t->ctx, &t->g) != SN_OK) return tool_fail(TOOL, t->ctx, "graph");
    sn_graph *g = t->g;
    int64_t in[4] = {SN_BATCH, t->height, t->width, t->channels}, ld[1] = {SN_BATCH};
    t->images = sn_input(g, "images", SN_DTYPE_F32, 4, in);
    t->labels = sn_input(g, "labels", SN_DTYPE_I32, 1, ld);
    sn_model_params mp = sn_model_params_default();
    mp.num_classes = sn_dataset_num_classes(t->ds) - o->labels_offset;
    mp.is_training = 1;
    mp.weight_decay = o->weight_decay;
    sn_model m;
    if (sn_model_build(g, o->model_name, t->images, &mp, &m) != SN_OK) {
        fprintf(stderr, TOOL ": --model_name=%s: %s\n", o->model_name, sn_graph_errmsg(g));
        return 1;
    }
    /* train_image_classifier.clone_fn: the aux logits' loss with weight 0.4, then the
     * logits' (both with label smoothing); the regularization losses once. */
    sn_node parts[2];
    int np = 0;
    if (m.aux_logits != SN_NO_NODE) {
        sn_scope_push(g, "aux_loss");
        parts[np++] = sn_op_scale(g, sn_op_softmax_xent(g, m.aux_logits, t->labels,
                                                        o->label_smoothing), 0.4f);
        sn_scope_pop(g);
    }
    parts[np++] = sn_op_softmax_xent(g, m.logits, t->labels, o->label_smoothing);
    t->clone_loss = np == 1 ? parts[0] : sn_op_add_n(g, np, parts);
    int nreg = 0;
    const sn_node *reg = sn_graph_regularization_losses(g, &nreg);
    t->reg_loss = SN_NO_NODE;
    if (nreg > 0) {
        t->reg_loss = sn_op_add_n(g, nreg, reg);
        sn_node both[2] = {t->clone_loss, t->reg_loss};
        t->total_loss = sn_op_add_n(g, 2, both);
    } else {
        t->total_loss = t->clone_loss;
    }
    if (sn_graph_status(g) != SN_OK) {
        fprintf(stderr, TOOL ": building the loss: %s\n", sn_graph_errmsg(g));
        return 1;
    }
    sn_compile_params cp = sn_compile_params_default();
    cp.batch_size = t->batch;
    cp.precision = strcmp(t->o->precision, "bf16") == 0 ? SN_PRECISION_BF16 : SN_PRECISION_FP32;
    if (sn_net_compile(g, &cp, &t->net) != SN_OK)
        return tool_fail(TOOL, t->ctx, "compiling the network");
    int64_t yd[1] = {t->batch};
    if (sn_tensor_new(t->ctx, SN_DTYPE_I32, 1, yd, &t->yt) != SN_OK)
        return tool_fail(TOOL, t->ctx, "input buffers");
    return 0;
}

static int make_optimizer(trainer *t) {
    opts *o = t->o;
    sn_optim_params p = sn_optim_params_default(o->optim_kind);
    p.momentum = o->momentum;
    p.rmsprop_decay = o->rmsprop_decay;
    p.rmsprop_momentum = o->rmsprop_momentum;
    p.epsilon = o->opt_epsilon;
    p.adam_beta1 = o->adam_beta1;
    p.adam_beta2 = o->adam_beta2;
    p.adadelta_rho = o->adadelta_rho;
    p.adagrad_initial_accumulator = o->adagrad_initial_accumulator_value;
    p.ftrl_lr_power = o->ftrl_learning_rate_power;
    p.ftrl_initial_accumulator = o->ftrl_initial_accumulator_value;
    p.ftrl_l1 = o->ftrl_l1;
    p.ftrl_l2 = o->ftrl_l2;
    p.trainable_scopes = o->trainable_scopes;
    if (sn_optim_new(t->net, &p, &t->opt) != SN_OK) {
        fprintf(stderr, TOOL ": --optimizer=%s%s%s: %s\n", o->optimizer,
                o->trainable_scopes ? " --trainable_scopes=" : "",
                o->trainable_scopes ? o->trainable_scopes : "", sn_ctx_errmsg(t->ctx));
        return 1;
    }
    return 0;
}

/* ---- summaries -------------------------------------------------------------------------- */

static float read_scalar(trainer *t, sn_node n) {
    sn_tensor *v = NULL;
    if (n == SN_NO_NODE || sn_net_get_output(t->net, n, &v) != SN_OK) return NAN;
    float x = ((const float *)sn_tensor_data(v))[0];
    sn_tensor_free(v);
    return x;
}

/* total_loss, the loss parts, learning_rate, sparsity/<end point> (the fraction of zeros,
 * tf.nn.zero_fraction) and activations/<end point> histograms of every 4-D or 2-D end
 * point, and a histogram of every model variable, as TF-slim logs them. */
static void write_summaries(trainer *t, int64_t step, float lr, double steps_per_sec) {
    if (!t->ev) return;
    sn_events_scalar(t->ev, "total_loss", step, read_scalar(t, t->total_loss));
    sn_events_scalar(t->ev, "losses/clone_loss", step, read_scalar(t, t->clone_loss));
    if (t->reg_loss != SN_NO_NODE)
        sn_events_scalar(t->ev, "losses/regularization_loss", step,
                         read_scalar(t, t->reg_loss));
    sn_events_scalar(t->ev, "learning_rate", step, lr);
    if (steps_per_sec > 0)
        sn_events_scalar(t->ev, "global_step/sec", step, (float)steps_per_sec);
    int n = sn_graph_end_points(t->g, NULL, 0);
    sn_node *eps = malloc((size_t)(n ? n : 1) * sizeof *eps);
    if (eps) {
        sn_graph_end_points(t->g, eps, n);
        for (int i = 0; i < n; i++) {
            int r = sn_node_rank(t->g, eps[i]);
            if (eps[i] == t->images || (r != 4 && r != 2) ||
                sn_node_dtype(t->g, eps[i]) != SN_DTYPE_F32)
                continue;
            sn_tensor *v = NULL;
            if (sn_net_get_output(t->net, eps[i], &v) != SN_OK) continue;
            const float *d = sn_tensor_data(v);
            int64_t k = sn_tensor_numel(v), zeros = 0;
            for (int64_t j = 0; j < k; j++) zeros += d[j] == 0.0f;
            char tag[512];
            snprintf(tag, sizeof tag, "sparsity/%s", sn_node_name(t->g, eps[i]));
            sn_events_scalar(t->ev, tag, step, k ? (float)zeros / (float)k : 0.0f);
            snprintf(tag, sizeof tag, "activations/%s", sn_node_name(t->g, eps[i]));
            sn_events_histogram(t->ev, tag, step, d, (size_t)k);
            sn_tensor_free(v);
        }
        free(eps);
    }
    /* A histogram of every model variable, under its own name, as TF-slim adds them. */
    for (int i = 0; i < sn_graph_num_vars(t->g); i++) {
        sn_var_info vi;
        sn_tensor *v = NULL;
        if (sn_graph_var(t->g, i, &vi) != SN_OK || !(vi.flags & SN_VAR_MODEL) ||
            sn_net_get_var(t->net, vi.name, &v) != SN_OK)
            continue;
        sn_events_histogram(t->ev, vi.name, step, sn_tensor_data(v),
                            (size_t)sn_tensor_numel(v));
        sn_tensor_free(v);
    }
    sn_events_flush(t->ev);
}

/* mkdir -p */
static int make_dirs(const char *path) {
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == 0) {
            char c = *p;
            *p = 0;
            if (mkdir(buf, 0755) != 0 && errno != EEXIST) {
                fprintf(stderr, TOOL ": --train_dir: cannot create %s: %s\n", buf,
                        strerror(errno));
                return 1;
            }
            *p = c;
            if (!c) break;
        }
    }
    return 0;
}

/* labels.txt and info.json travel with the checkpoints, so that slimnet-classify and
 * slimnet-eval find the class names in the train folder (as the vendor's sliminfer reads
 * them from its model folder).  Existing files are left alone. */
static void copy_label_files(const char *from, const char *to) {
    static const char *names[] = {"labels.txt", "info.json"};
    for (int i = 0; i < 2; i++) {
        char src[4096], dst[4096], tmp[4200];
        snprintf(src, sizeof src, "%s/%s", from, names[i]);
        snprintf(dst, sizeof dst, "%s/%s", to, names[i]);
        snprintf(tmp, sizeof tmp, "%s.tmp", dst);
        FILE *in = fopen(src, "rb"), *probe = fopen(dst, "rb");
        if (probe) fclose(probe);
        if (!in || probe) {
            if (in) fclose(in);
            continue;
        }
        FILE *out = fopen(tmp, "wb");
        char buf[65536];
        size_t n, total = 0;
        int ok = out != NULL;
        while (ok && (n = fread(buf, 1, sizeof buf, in)) > 0 && total < ((size_t)64 << 20)) {
            ok = fwrite(buf, 1, n, out) == n;
            total += n;
        }
        fclose(in);
        if (out && fclose(out) != 0) ok = 0;
        if (!ok || rename(tmp, dst) != 0) {
            remove(tmp);
            fprintf(stderr, TOOL ": warning: could not copy %s to %s\n", src, dst);
        }
    }
}

/* ---- main ------------------------------------------------------------------------------- */

static int check_flags(opts *o, flag *fl, int nfl) {
    /* The vendor's uflag: data_dir -> dataset_dir, output_dir -> train_dir, num_gpus ->
     * num_clones, applied when given. */
    if (flags_find(fl, nfl, "data_dir")->set) o->dataset_dir = o->data_dir;
    if (flags_find(fl, nfl, "output_dir")->set) o->train_dir = o->output_dir;
    if (flags_find(fl, nfl, "num_gpus")->set) {   /* the vendor's --num_gpus=0: the CPU */
        o->num_clones = o->num_gpus > 0 ? o->num_gpus : 1;
        if (o->num_gpus == 0) o->clone_on_cpu = 1;
    }
    if (!o->dataset_dir) {
        fprintf(stderr, TOOL ": --dataset_dir (or --data_dir) is required\n");
        return 2;
    }
    if (!o->train_dir || !*o->train_dir) {
        fprintf(stderr, TOOL ": --train_dir must not be empty\n");
        return 2;
    }
    struct stat st;
    if (stat(o->train_dir, &st) == 0 && !S_ISDIR(st.st_mode)) {
        fprintf(stderr, TOOL ": --train_dir=%s: exists and is not a folder\n", o->train_dir);
        return 2;
    }
    sn_dist_backend be;
    if (strcmp(o->dist_backend, "auto") != 0 &&
        sn_dist_backend_from_name(o->dist_backend, &be) != SN_OK) {
        fprintf(stderr, TOOL ": --dist_backend=%s: must be auto, gloo or nccl\n",
                o->dist_backend);
        return 2;
    }
    if (strcmp(o->precision, "fp32") != 0 && strcmp(o->precision, "bf16") != 0) {
        fprintf(stderr, TOOL ": --precision=%s: must be fp32 or bf16\n", o->precision);
        return 2;
    }
    if (o->quantize_delay >= 0) {
        fprintf(stderr, TOOL ": --quantize_delay=%d: quantization-aware training is not "
                        "supported\n", o->quantize_delay);
        return 2;
    }
    int rc = tool_check_model(TOOL, o->model_name);
    if (rc) return rc;
    if (sn_optim_kind_from_name(o->optimizer, &o->optim_kind) != SN_OK) {
        fprintf(stderr, TOOL ": --optimizer=%s: expected one of sgd, momentum, rmsprop, adam, "
                        "adagrad, adadelta, ftrl\n", o->optimizer);
        return 2;
    }
    if (sn_lr_decay_from_name(o->learning_rate_decay_type, &o->lr_decay) != SN_OK) {
        fprintf(stderr, TOOL ": --learning_rate_decay_type=%s: expected fixed, exponential or "
                        "polynomial\n", o->learning_rate_decay_type);
        return 2;
    }
    const char *prep = o->preprocessing_name ? o->preprocessing_name : o->model_name;
    if (sn_preprocess_kind_for(prep, &o->prep_kind) != SN_OK) {
        fprintf(stderr, TOOL ": --%s=%s: no TF-slim preprocessing for it (use "
                        "--preprocessing_name=lenet|cifarnet|vgg|inception)\n",
                o->preprocessing_name ? "preprocessing_name" : "model_name", prep);
        return 2;
    }
    return 0;
}

/* Rank 0's state on every rank: the variables (sn_net_set_dist, which also starts the
 * averaging of gradients), the optimizer's slots, the moving averages, global_step and the
 * input position.  Only the chief reads checkpoints: the others need no shared folder. */
static int share_state(trainer *t) {
    if (sn_net_set_dist(t->net, t->dist) != SN_OK)
        return tool_fail(TOOL, t->ctx, "sharing the chief's variables");
    int n_opt = sn_optim_num_slots(t->opt), n_ema = t->ema ? sn_ema_num_slots(t->ema) : 0;
    for (int i = 0; i < n_opt + n_ema; i++) {
        sn_slot_info si;
        sn_tensor *v = NULL;
        sn_status st = i < n_opt ? sn_optim_slot(t->opt, i, &si)
                                 : sn_ema_slot(t->ema, i - n_opt, &si);
        if (st == SN_OK)
            st = i < n_opt ? sn_optim_get_slot(t->opt, si.name, &v)
                           : sn_ema_get_slot(t->ema, si.name, &v);
        if (st == SN_OK) st = sn_dist_broadcast(t->dist, v, 0);
        if (st == SN_OK)
            st = i < n_opt ? sn_optim_set_slot(t->opt, si.name, v)
                           : sn_ema_set_slot(t->ema, si.name, v);
        sn_tensor_free(v);
        if (st != SN_OK) return tool_fail(TOOL, t->ctx, "sharing the chief's optimizer state");
    }
    int64_t pos[2] = {sn_optim_global_step(t->opt), t->records}, two = 2;
    sn_tensor *pt = NULL;
    sn_status st = sn_tensor_wrap(t->ctx, pos, SN_DTYPE_I64, 1, &two, SN_BORROW, &pt);
    if (st == SN_OK) st = sn_dist_broadcast(t->dist, pt, 0);
    sn_tensor_free(pt);
    if (st != SN_OK) return tool_fail(TOOL, t->ctx, "sharing the chief's global step");
    sn_optim_set_global_step(t->opt, pos[0]);
    t->records = pos[1];
    return 0;
}

/* Why the loop stops (STOP_DONE: the chief ended an asynchronous job). */
enum stop { RUNNING, STOP_STEPS, STOP_SIGNAL, STOP_DATA, STOP_DONE, STOP_ERROR, STOP_NONFINITE };

/* An asynchronous job's worker: its variables on the ps tasks.  The chief gives them its
 * state first (fresh, warm-started or resumed); every worker then pulls them, and takes
 * its input position from the global step (each step is one worker's batch). */
static int ps_join(trainer *t) {
    if (sn_ps_client_new(t->dist, t->num_ps, t->net, t->opt, &t->ps) != SN_OK ||
        (t->ema && sn_ps_client_set_ema(t->ps, t->ema) != SN_OK))
        return tool_fail(TOOL, t->ctx, "the parameter servers");
    if (t->rank == 0 && sn_ps_init(t->ps) != SN_OK)
        return tool_fail(TOOL, t->ctx, "giving the ps tasks the variables");
    if (sn_ps_pull(t->ps) != SN_OK)
        return tool_fail(TOOL, t->ctx, "pulling the variables");
    int64_t step = sn_ps_client_stats(t->ps).global_step;
    /* TF-slim's startup_delay_steps: the chief trains alone first (TF's Supervisor makes
     * every other worker sleep 30 s while the chief starts); stale gradients of the first,
     * steepest steps can kill a net's relus for good (lenet: chance accuracy). */
    int64_t delay = t->o->startup_delay_steps;
    if (t->o->max_number_of_steps > 0 && delay > t->o->max_number_of_steps)
        delay = t->o->max_number_of_steps;
    if (t->rank != 0 && step < delay) {
        printf(TOOL ": worker %d: starts at global step %lld (--startup_delay_steps), when "
                    "the chief has trained alone that far\n", t->rank, (long long)delay);
        fflush(stdout);
        if (sn_ps_wait_step(t->ps, delay) != SN_OK)
            return tool_fail(TOOL, t->ctx, "waiting for --startup_delay_steps");
        if (sn_ps_pull(t->ps) != SN_OK)
            return tool_fail(TOOL, t->ctx, "pulling the variables");
        step = sn_ps_client_stats(t->ps).global_step;
    }
    sn_optim_set_global_step(t->opt, step);
    if (t->rank != 0) t->records = step * t->batch;
    return 0;
}

/* The chief's checkpoint of an asynchronous job: the ps tasks' state first. */
static int ps_save(trainer *t, int64_t step, int64_t records) {
    if (t->ps && sn_ps_snapshot(t->ps) != SN_OK)
        return tool_fail(TOOL, t->ctx, "reading the ps tasks' variables for a checkpoint");
    if (t->ps) step = sn_ps_client_stats(t->ps).global_step;
    return save(t, step, records);
}

/* Whether any rank was interrupted (flags[0]) or saw a non-finite loss (flags[1]): every
 * rank stops at the same step.  A group of one is itself. */
/* The ranks' flags summed, so that every rank stops at the same step: started before the
 * backward pass and done with its gradients (the backward's all-reduces wait for it), it
 * costs no round of its own. */
static int agree_start(trainer *t, int32_t flags[2]) {
    if (!t->dist || t->size == 1 || t->ps) return 0;
    int64_t two = 2;
    sn_tensor *f = NULL;
    sn_status st = sn_tensor_wrap(t->ctx, flags, SN_DTYPE_I32, 1, &two, SN_BORROW, &f);
    if (st == SN_OK) st = sn_dist_allreduce_async(t->dist, f, SN_DIST_SUM);
    sn_tensor_free(f);   /* (the wrapper; flags stay until agree_wait) */
    return st == SN_OK ? 0 : tool_fail(TOOL, t->ctx, "agreeing on the step");
}

static int agree_wait(trainer *t) {
    if (!t->dist || t->size == 1 || t->ps) return 0;
    return sn_dist_wait(t->dist) == SN_OK ? 0 : tool_fail(TOOL, t->ctx, "agreeing on the step");
}

/* Seconds this process has waited on the others: collectives, or the ps tasks. */
static double waited(const trainer *t) {
    return t->ps ? sn_ps_client_stats(t->ps).wait_secs : sn_dist_wait_seconds(t->dist);
}

static int train(trainer *t) {
    opts *o = t->o;
    bool chief = t->rank == 0;
    sn_lr_params lp = sn_lr_params_default();
    lp.type = o->lr_decay;
    const char *pattern = NULL;
    int64_t num_samples = 0;
    if (sn_dataset_split(t->ds, o->dataset_split_name, &pattern, &num_samples) != SN_OK) {
        fprintf(stderr, TOOL ": --dataset_split_name=%s: %s\n", o->dataset_split_name,
                sn_ctx_errmsg(t->ctx));
        return 2;
    }
    lp.learning_rate = o->learning_rate;
    lp.end_learning_rate = o->end_learning_rate;
    lp.decay_factor = o->learning_rate_decay_factor;
    sn_preprocess_params pp = sn_preprocess_params_default();
    pp.kind = o->prep_kind;
    pp.is_training = 1;
    pp.use_grayscale = o->use_grayscale;
    t->height = t->width = tool_image_size(o->model_name, o->train_image_size);
    t->channels = o->use_grayscale ? 1 : sn_dataset_channels(t->ds);
    pp.out_height = t->height;
    pp.out_width = t->width;
    t->batch = (int64_t)o->batch_size * (o->num_clones > 1 ? o->num_clones : 1);
    int64_t global_batch = t->batch * t->size;
    /* images a global step trains: the group's batch; one worker's when asynchronous */
    int64_t per_step = t->num_ps ? t->batch : global_batch;
    /* TF-slim: int(num_samples / batch_size * num_epochs_per_decay), per-clone batch; with
     * sync replicas divided by the replicas each step aggregates (all of them, here); a
     * launched group (--num_gpus) is TF-slim's clones, whose steps are not divided. */
    lp.decay_steps = sn_lr_decay_steps(num_samples, o->num_epochs_per_decay, o->batch_size,
                                       t->launched || t->num_ps ? 1 : t->size);
    /* The folder before the work: a train_dir that cannot be written fails now, not at the
     * first save.  Only the chief writes there. */
    if (chief && make_dirs(o->train_dir)) return 1;
    if (chief && access(o->train_dir, W_OK | X_OK) != 0) {
        fprintf(stderr, TOOL ": --train_dir=%s: cannot write into it: %s\n", o->train_dir,
                strerror(errno));
        return 1;
    }
    int rc = build(t);
    if (!rc) rc = make_optimizer(t);
    if (rc) return rc;
    if (o->moving_average_decay > 0 &&
        sn_ema_new(t->net, (float)o->moving_average_decay, SN_VAR_MODEL, &t->ema) != SN_OK)
        return tool_fail(TOOL, t->ctx, "--moving_average_decay");

    /* Resume, else warm start (only at the first initialization, as TF-slim): the chief
     * reads, the group takes its state. */
    int resumed = 0;
    if (chief && (rc = resume(t, &resumed))) return rc;
    if (chief && !resumed && o->checkpoint_path) {
        if ((rc = warm_start(t))) return rc;
        if (t->ema) {   /* the shadows start from the restored values */
            sn_ema_free(t->ema);
            t->ema = NULL;
            if (sn_ema_new(t->net, (float)o->moving_average_decay, SN_VAR_MODEL, &t->ema) !=
                SN_OK)
                return tool_fail(TOOL, t->ctx, "--moving_average_decay");
        }
    } else if (resumed && o->checkpoint_path) {
        printf(TOOL ": ignoring --checkpoint_path because %s holds a checkpoint\n",
               o->train_dir);
    }
    if (t->num_ps && (rc = ps_join(t))) return rc;
    if (!t->num_ps && t->size > 1 && (rc = share_state(t))) return rc;
    int64_t step = sn_optim_global_step(t->opt);

    sn_pipeline_params pl = sn_pipeline_params_default();
    pl.pattern = pattern;
    pl.batch_size = (int)t->batch;
    pl.channels = sn_dataset_channels(t->ds);
    pl.preprocess = pp;
    pl.shuffle = 1;
    pl.shuffle_buffer = o->shuffle_buffer;
    pl.num_threads = o->num_preprocessing_threads > 0 ? o->num_preprocessing_threads : 1;
    pl.seed = (uint64_t)o->seed;
    pl.labels_offset = o->labels_offset;
    pl.num_classes = sn_dataset_num_classes(t->ds) - o->labels_offset;
    /* Each rank reads its share of the group's stream, from where the run left it: the
     * records read so far count, not the steps, so the group's size may have changed. */
    pl.num_shards = t->size;
    pl.shard_index = t->rank;
    pl.skip_records = t->records;
    sn_pipeline *in = NULL;
    if (sn_pipeline_new(t->ctx, &pl, &in) != SN_OK)
        return tool_fail(TOOL, t->ctx, "starting the input pipeline");

    if (chief) {
        copy_label_files(o->dataset_dir, o->train_dir);
        if (sn_events_open(t->ctx, o->train_dir, &t->ev) != SN_OK) {
            fprintf(stderr, TOOL ": warning: no TensorBoard events: %s\n",
                    sn_ctx_errmsg(t->ctx));
            t->ev = NULL;
        }
    }
    char dev[256] = "";
    sn_ctx_device_info(t->ctx, dev, sizeof dev);
    int n_train = sn_optim_num_vars(t->opt), n_vars = sn_graph_num_vars(t->g);
    if (chief)
        printf(TOOL ": %s on %s/%s (%lld images, %d classes), %dx%dx%d, preprocessing %s; "
               "batch %lld; %s, learning rate %g (%s); training %d of %d variables; %s\n",
               o->model_name, sn_dataset_name(t->ds), o->dataset_split_name,
               (long long)num_samples, pl.num_classes, t->height, t->width, t->channels,
               sn_preprocess_kind_name(pp.kind), (long long)per_step, o->optimizer,
               (double)o->learning_rate, o->learning_rate_decay_type, n_train, n_vars, dev);
    if (chief && o->num_clones > 1)
        printf(TOOL ": %d clones run as one batch of %lld on one device (the same gradient "
                    "as TF-slim's summed clone gradients)%s\n", o->num_clones,
               (long long)t->batch, t->gpus > 0 && t->gpus < o->num_clones
                   ? "; fewer GPUs than clones are visible, so not one process per GPU" : "");
    if (chief && t->launched)
        printf(TOOL ": %d GPUs x batch %d: each step trains %lld images, as TF-slim's %d "
                    "clones\n", t->launched, o->batch_size, (long long)global_batch,
               t->launched);
    if (t->num_ps)
        printf(TOOL ": worker %d of %d on %d ps tasks, asynchronous: each step pushes batch "
                    "%lld's gradients at its own pace, from global step %lld; %s\n", t->rank,
               t->size, t->num_ps, (long long)t->batch, (long long)step,
               chief ? "the chief: it saves checkpoints and events and prints the progress"
                     : "the chief prints the progress");
    else if (t->size > 1)
        printf(TOOL ": rank %d of %d, batch %lld of the group's %lld; %s\n", t->rank, t->size,
               (long long)t->batch, (long long)global_batch,
               chief ? "the chief: it saves checkpoints and events and prints the progress"
                     : "the chief prints the progress");
    fflush(stdout);

    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    double t0 = tool_now(), last_save = t0, last_summary = t0, last_log = t0;
    double waited0 = waited(t), waited_log = waited0;
    double stale_sum0 = 0, stale_log = 0;
    int64_t stale_n0 = 0, stale_nlog = 0;
    if (t->ps) {
        sn_ps_stats ps = sn_ps_client_stats(t->ps);
        stale_sum0 = stale_log = ps.staleness_sum;
        stale_n0 = stale_nlog = ps.staleness_n;
    }
    int64_t first_step = step, log_step = step;
    const float *x;
    const int32_t *y;
    int n = 0;
    enum stop stop = RUNNING;
    while (stop == RUNNING) {
        if (o->max_number_of_steps > 0 && step >= o->max_number_of_steps) {
            stop = STOP_STEPS;
            break;
        }
        if ((t->size == 1 || t->ps) && g_stop_signal) {   /* a group agrees on it below */
            stop = STOP_SIGNAL;
            break;
        }
        if (sn_pipeline_next(in, &x, &y, &n) != SN_OK) {
            tool_fail(TOOL, t->ctx, "reading training data");
            stop = STOP_ERROR;
            break;
        }
        if (n < t->batch) {   /* only a finite pipeline ends; ours is endless */
            stop = STOP_DATA;
            break;
        }
        /* The pipeline's batch is in memory the device reads directly (page-locked on
         * CUDA): handed to the net as it is, no host copy. */
        int64_t xd[4] = {t->batch, t->height, t->width, t->channels};
        sn_tensor *xb = NULL;
        memcpy(sn_tensor_data(t->yt), y, sn_tensor_nbytes(t->yt));
        float lr = sn_learning_rate(&lp, step);
        sn_net_set_step(t->net, step);
        sn_status in_st = sn_tensor_wrap(t->ctx, (void *)x, SN_DTYPE_F32, 4, xd, SN_BORROW, &xb);
        if (in_st == SN_OK) in_st = sn_net_set_input(t->net, t->images, xb);
        sn_tensor_free(xb);
        if (in_st != SN_OK ||
            sn_net_set_input(t->net, t->labels, t->yt) != SN_OK ||
            sn_net_forward(t->net) != SN_OK) {
            tool_fail(TOOL, t->ctx, "forward pass");
            stop = STOP_ERROR;
            break;
        }
        float loss = read_scalar(t, t->total_loss);
        int32_t flags[2] = {g_stop_signal != 0, !isfinite(loss)};
        if (!isfinite(loss))
            fprintf(stderr, TOOL ": global step %lld: the loss is %s (cross-entropy %g); "
                            "stopping without writing a checkpoint%s%s\n",
                    (long long)step, isnan(loss) ? "NaN" : "infinite",
                    (double)read_scalar(t, t->clone_loss),
                    t->last_ckpt[0] ? "; the newest checkpoint is " : "", t->last_ckpt);
        /* The backward runs while the ranks agree; a step any rank stops at is not applied
         * (its gradients are dropped: no rank steps with a non-finite loss). */
        int bad = agree_start(t, flags);
        if (!bad && sn_net_backward(t->net, t->total_loss) != SN_OK) {
            bad = tool_fail(TOOL, t->ctx, "training step");
            if (t->dist) sn_dist_wait(t->dist);   /* flags are written until then */
        }
        if (!bad) bad = agree_wait(t);
        if (bad) {
            stop = STOP_ERROR;
            break;
        }
        if (flags[1]) {
            if (!isfinite(loss)) fprintf(stderr, TOOL ": (try a lower --learning_rate)\n");
            else fprintf(stderr, TOOL ": another rank's loss is not finite: stopping without "
                                 "writing a checkpoint\n");
            stop = STOP_NONFINITE;
            break;
        }
        if (flags[0]) {
            stop = STOP_SIGNAL;
            break;
        }
        if (t->ps) {   /* the ps tasks apply it; the variables after it come back */
            if (sn_ps_push(t->ps, lr, 1) != SN_OK) {
                tool_fail(TOOL, t->ctx, "training step");
                stop = STOP_ERROR;
                break;
            }
            sn_ps_stats ps = sn_ps_client_stats(t->ps);
            if (ps.done) {
                stop = STOP_DONE;
                break;
            }
            step = ps.global_step;
        } else {
            if (sn_optim_step(t->opt, lr) != SN_OK ||
                (t->ema && sn_ema_update(t->ema, sn_optim_global_step(t->opt)) != SN_OK)) {
                tool_fail(TOOL, t->ctx, "training step");
                stop = STOP_ERROR;
                break;
            }
            step = sn_optim_global_step(t->opt);
        }
        double now = tool_now();
        /* (asynchronous: the global step moves by every worker's pushes) */
        if (chief && (t->ps ? step / o->log_every_n_steps > log_step / o->log_every_n_steps
                            : step % o->log_every_n_steps == 0)) {
            double dt = now - last_log;
            double ips = dt > 0 ? (double)((step - log_step) * per_step) / dt : 0;
            char eta[64] = "", comm[64] = "";
            if (o->max_number_of_steps > 0 && step > first_step) {
                char d[32];
                tool_duration((now - t0) / (double)(step - first_step) *
                                  (double)(o->max_number_of_steps - step), d, sizeof d);
                snprintf(eta, sizeof eta, ", ETA %s", d);
            }
            if (t->ps) {   /* the chief's time waiting on the ps tasks; the staleness */
                double w = waited(t);
                sn_ps_stats ps = sn_ps_client_stats(t->ps);
                int64_t dn = ps.staleness_n - stale_nlog;
                snprintf(comm, sizeof comm, ", %.0f%% waiting on the ps, staleness %.2f",
                         dt > 0 ? 100.0 * (w - waited_log) / dt : 0.0,
                         dn > 0 ? (ps.staleness_sum - stale_log) / (double)dn : 0.0);
                waited_log = w;
                stale_log = ps.staleness_sum;
                stale_nlog = ps.staleness_n;
            } else if (t->size > 1) {   /* the chief's time in the group's collectives */
                double w = waited(t);
                snprintf(comm, sizeof comm, ", %.0f%% in all-reduce",
                         dt > 0 ? 100.0 * (w - waited_log) / dt : 0.0);
                waited_log = w;
            }
            printf("global step %lld: loss = %.4f (%.3f sec/step), lr %.6g, %.*f images/s%s, "
                   "epoch %.2f%s\n", (long long)step, (double)loss,
                   step > log_step ? dt / (double)(step - log_step) : 0.0, (double)lr,
                   ips < 10 ? 3 : 1, ips,
                   comm, (double)(t->records + (step - first_step) * per_step) /
                             (double)num_samples, eta);
            fflush(stdout);
            last_log = now;
            log_step = step;
        }
        if (chief && o->save_summaries_secs > 0 && now - last_summary >= o->save_summaries_secs) {
            write_summaries(t, step, lr, (double)(step - first_step) / (now - t0));
            last_summary = now;
        }
        if (chief && o->save_interval_secs > 0 && now - last_save >= o->save_interval_secs) {
            if (ps_save(t, step, t->records + (step - first_step) * per_step)) {
                stop = STOP_ERROR;
                break;
            }
            last_save = tool_now();
        }
    }
    sn_pipeline_free(in);
    rc = stop >= STOP_ERROR ? 1 : 0;   /* (STOP_DONE: a worker's normal end) */
    bool done = stop == STOP_STEPS || stop == STOP_SIGNAL || stop == STOP_DATA;
    if (stop == STOP_DATA)
        fprintf(stderr, TOOL ": the training data ended unexpectedly\n");
    if (chief && done && step > first_step) {
        if (ps_save(t, step, t->records + (step - first_step) * per_step)) rc = 1;
        if (t->ps) step = sn_optim_global_step(t->opt);   /* the others' pushes too */
    }
    /* the chief ends an asynchronous job: the ps tasks apply no more and the workers stop */
    if (chief && done && t->ps && stop != STOP_SIGNAL && sn_ps_done(t->ps) != SN_OK)
        rc = tool_fail(TOOL, t->ctx, "ending the job on the ps tasks");
    if (t->ps && !chief && (done || stop == STOP_DONE)) {
        sn_ps_stats ps = sn_ps_client_stats(t->ps);
        double el = tool_now() - t0;
        printf(TOOL ": worker %d: %s at global step %lld: %lld pushes from this worker "
                    "(%.1f images/s), %.0f%% waiting on the ps\n", t->rank,
               stop == STOP_DONE ? "the chief ended the job" : stop == STOP_SIGNAL
                   ? "interrupted" : "stopped", (long long)ps.global_step,
               (long long)ps.pushes, el > 0 ? (double)ps.pushes * (double)t->batch / el : 0.0,
               el > 0 ? 100.0 * (waited(t) - waited0) / el : 0.0);
    }
    if (chief && done) {
        double el = tool_now() - t0;
        char d[32], comm[64] = "";
        tool_duration(el, d, sizeof d);
        if (t->ps) {
            sn_ps_stats ps = sn_ps_client_stats(t->ps);
            int64_t dn = ps.staleness_n - stale_n0;
            snprintf(comm, sizeof comm, ", %.0f%% waiting on the ps, staleness %.2f",
                     el > 0 ? 100.0 * (waited(t) - waited0) / el : 0.0,
                     dn > 0 ? (ps.staleness_sum - stale_sum0) / (double)dn : 0.0);
        } else if (t->size > 1) {
            snprintf(comm, sizeof comm, ", %.0f%% in all-reduce",
                     el > 0 ? 100.0 * (waited(t) - waited0) / el : 0.0);
        }
        double ips = el > 0 ? (double)((step - first_step) * per_step) / el : 0.0;
        printf(TOOL ": %s at global step %lld after %s (%.*f images/s%s)%s%s\n",
               stop == STOP_SIGNAL ? "interrupted" : "finished", (long long)step, d,
               ips < 10 ? 3 : 1, ips, comm,
               t->last_ckpt[0] ? "; checkpoint " : "", t->last_ckpt);
        if (t->ev) write_summaries(t, step, sn_learning_rate(&lp, step),
                                   el > 0 ? (double)(step - first_step) / el : 0);
    }
    return rc;
}

/* An asynchronous job (TF_CONFIG with ps tasks, no --sync_replicas): every task joins one
 * group (the ps tasks first); a ps task serves, the chief and the workers train.  TF-slim's
 * flags are checked against TF_CONFIG. */
static int join_async(trainer *t, const sn_dist_env *env, flag *fl, int nfl) {
    opts *o = t->o;
    if (!env->num_ps) {
        fprintf(stderr, TOOL ": --num_ps_tasks=%d but %s names no ps tasks: asynchronous "
                        "training needs them in TF_CONFIG's cluster (or add --sync_replicas)\n",
                o->num_ps_tasks, env->source);
        return 2;
    }
    struct { const char *flag; int value, want; } same[] = {
        {"num_ps_tasks", o->num_ps_tasks, env->num_ps},
        {"worker_replicas", o->worker_replicas, env->num_workers},
        {"task", o->task, env->task_index},
    };
    for (size_t i = 0; i < sizeof same / sizeof same[0]; i++)
        if (flags_find(fl, nfl, same[i].flag)->set && same[i].value != same[i].want) {
            fprintf(stderr, TOOL ": --%s=%d, but TF_CONFIG says %d\n", same[i].flag,
                    same[i].value, same[i].want);
            return 2;
        }
    if (flags_find(fl, nfl, "replicas_to_aggregate")->set) {
        fprintf(stderr, TOOL ": --replicas_to_aggregate: only with --sync_replicas (without "
                        "it, TF_CONFIG's ps tasks train asynchronously: no step aggregates)\n");
        return 2;
    }
    if (!strcmp(env->task_type, "evaluator")) {
        fprintf(stderr, TOOL ": TF_CONFIG: task evaluator %d: run slimnet-eval there\n",
                env->task_index);
        return 2;
    }
    bool is_ps = !strcmp(env->task_type, "ps");
    if (!is_ps && strcmp(o->precision, "fp32") != 0) {
        fprintf(stderr, TOOL ": --precision=%s: parameter servers train in fp32 only\n",
                o->precision);
        return 2;
    }
    if (is_ps && sn_ctx_device(t->ctx) != SN_DEVICE_CPU) {   /* TF's ps tasks: the CPU */
        sn_ctx_free(t->ctx);
        t->ctx = tool_ctx_cuda(TOOL, "cpu", 0, o->threads, (uint64_t)o->seed, 0, 0, 0);
        if (!t->ctx) return 1;
    }
    sn_dist_params p = env->cluster;
    p.timeout_secs = o->dist_timeout_secs;
    p.backend = SN_DIST_GLOO;
    printf(TOOL ": %s: %s of an asynchronous job of %d ps tasks and %d workers: joining at "
                "%s:%d (ps 0)\n", p.name, is_ps ? "a parameter server" : "a worker",
           env->num_ps, env->num_workers, p.master_addr, p.master_port);
    fflush(stdout);
    if (sn_dist_new(t->ctx, &p, &t->dist) != SN_OK) return tool_fail(TOOL, t->ctx, "group");
    t->num_ps = env->num_ps;
    t->ps_task = is_ps;
    snprintf(t->task_name, sizeof t->task_name, "%s", p.name);
    t->rank = is_ps ? -1 : sn_dist_rank(t->dist) - env->num_ps;
    t->size = env->num_workers;
    return 0;
}

/* A ps task's log line, and its stop request (SIGINT, SIGTERM). */
static void ps_log(void *arg, const char *line) {
    (void)arg;
    printf(TOOL ": %s\n", line);
    fflush(stdout);
}
static int ps_should_stop(void *arg) {
    (void)arg;
    return g_stop_signal != 0;
}

/* A ps task: serves until the job ends. */
static int serve_ps(trainer *t) {
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    sn_ps_params p = sn_ps_params_default();
    p.num_ps = t->num_ps;
    p.should_stop = ps_should_stop;
    p.log = ps_log;
    sn_ps_stats st;
    double t0 = tool_now();
    sn_status r = sn_ps_serve(t->dist, &p, &st);
    double el = tool_now() - t0;
    if (r != SN_OK) return tool_fail(TOOL, t->ctx, "serving");
    char d[32];
    tool_duration(el, d, sizeof d);
    printf(TOOL ": %s: %s at global step %lld after %s: %lld pushes applied (%.1f/s), %lld "
                "pulls answered, mean staleness %.2f\n", t->task_name,
           g_stop_signal ? "interrupted" : "the job ended", (long long)st.global_step, d,
           (long long)st.pushes, el > 0 ? (double)st.pushes / el : 0.0, (long long)st.pulls,
           st.staleness_n ? st.staleness_sum / (double)st.staleness_n : 0.0);
    return 0;
}

/* The group the environment describes (TF_CONFIG, mpirun, srun, torchrun), checked against
 * TF-slim's cluster flags, joined.  Returns 0 to train, 1 or 2 on an error, -1 when this
 * process has nothing to do (a ps task of a synchronous job). */
static int join_group(trainer *t, flag *fl, int nfl) {
    opts *o = t->o;
    sn_dist_env env;
    t->rank = 0;
    t->size = 1;
    if (sn_dist_env_read(t->ctx, &env) != SN_OK) {
        fprintf(stderr, TOOL ": %s\n", sn_ctx_errmsg(t->ctx));
        return 2;
    }
    bool ps = env.num_ps > 0 || o->num_ps_tasks > 0;
    if (!env.found) {
        if ((o->master && *o->master) || o->num_ps_tasks > 0 || o->worker_replicas > 1) {
            fprintf(stderr, TOOL ": --master/--num_ps_tasks/--worker_replicas: no cluster in "
                            "the environment: set TF_CONFIG on every task, or start the "
                            "workers with mpirun, srun or torchrun\n");
            return 2;
        }
        return 0;
    }
    if (ps && !o->sync_replicas) return join_async(t, &env, fl, nfl);
    if (!strcmp(env.task_type, "ps")) {
        printf(TOOL ": ps %d: nothing to serve: with --sync_replicas the chief and the workers "
                    "average their gradients among themselves\n", env.task_index);
        return -1;
    }
    if (!strcmp(env.task_type, "evaluator")) {
        fprintf(stderr, TOOL ": TF_CONFIG: task evaluator %d: run slimnet-eval there\n",
                env.task_index);
        return 2;
    }
    if (flags_find(fl, nfl, "startup_delay_steps")->set && o->startup_delay_steps > 0) {
        fprintf(stderr, TOOL ": --startup_delay_steps: only in an asynchronous job (as "
                        "TF-slim's, it must be 0 with --sync_replicas: every synchronous "
                        "step waits for all workers)\n");
        return 2;
    }
    struct { const char *flag; int value, want; } same[] = {
        {"worker_replicas", o->worker_replicas, env.num_workers},
        {"replicas_to_aggregate", o->replicas_to_aggregate, env.num_workers},
        {"task", o->task, env.task_index},
    };
    for (size_t i = 0; i < sizeof same / sizeof same[0]; i++)
        if (flags_find(fl, nfl, same[i].flag)->set && same[i].value != same[i].want) {
            fprintf(stderr, TOOL ": --%s=%d, but %s says %d (every step aggregates all %d "
                            "workers)\n", same[i].flag, same[i].value, env.source, same[i].want,
                    env.num_workers);
            return 2;
        }
    sn_dist_params p = env.params;
    p.timeout_secs = o->dist_timeout_secs;
    /* auto: NCCL where this machine's ranks have a GPU each (as the launcher says) */
    if (strcmp(o->dist_backend, "auto") != 0)
        sn_dist_backend_from_name(o->dist_backend, &p.backend);
    else if (sn_ctx_device(t->ctx) == SN_DEVICE_CUDA && env.local_size > 0 &&
             env.local_size <= t->gpus)
        p.backend = SN_DIST_NCCL;
    printf(TOOL ": %s, rank %d of %d: joining the group at %s:%d (%s)\n", p.name, p.rank,
           p.size, p.master_addr, p.master_port, sn_dist_backend_name(p.backend));
    fflush(stdout);
    if (sn_dist_new(t->ctx, &p, &t->dist) != SN_OK) return tool_fail(TOOL, t->ctx, "group");
    t->rank = sn_dist_rank(t->dist);
    t->size = sn_dist_size(t->dist);
    return 0;
}

static void trainer_free(trainer *t) {
    sn_ps_client_free(t->ps);
    sn_events_close(t->ev);
    sn_ema_free(t->ema);
    sn_optim_free(t->opt);
    sn_tensor_free(t->yt);
    sn_net_free(t->net);
    sn_graph_free(t->g);
    sn_dataset_free(t->ds);
    sn_dist_free(t->dist);
}

/* --num_gpus=N with N GPUs and no cluster: ranks 1..N-1 are started here, and this process
 * becomes rank 0 (launch.h); a launched copy knows itself by LAUNCH_MARK.  Either way each
 * process trains one clone on the GPU of its local rank.  0, or 1 after a message. */
static int launch(trainer *t, char **argv, pid_t *kids, int *nkids) {
    opts *o = t->o;
    sn_dist_env env;
    /* an environment that does not read is join_group's to report */
    bool cluster = sn_dist_env_read(NULL, &env) != SN_OK || env.found;
    bool on_cpu = o->clone_on_cpu || !strcmp(o->device, "cpu");
    t->gpus = on_cpu ? 0 : sn_cuda_device_count();
    const char *mark = getenv(LAUNCH_MARK);
    int n = launch_plan(o->num_clones, cluster, on_cpu, t->gpus);
    if (mark && cluster) {
        t->launched = atoi(mark);
    } else if (n > 0) {
        char err[256];
        int port = launch_free_port(err, sizeof err);
        if (port < 0) {
            fprintf(stderr, TOOL ": --num_gpus=%d: %s\n", n, err);
            return 1;
        }
        printf(TOOL ": %d GPUs: starting ranks 1..%d, this process is rank 0 (group at "
                    "127.0.0.1:%d)\n", n, n - 1, port);
        for (int r = 1; r < n; r++) {
            kids[r - 1] = launch_spawn("/proc/self/exe", argv, r, n, port, err, sizeof err);
            if (kids[r - 1] < 0) {
                fprintf(stderr, TOOL ": %s\n", err);
                return 1;
            }
            *nkids = r;
        }
        if (launch_setenv(0, n, port) != 0 || sn_dist_env_read(NULL, &env) != SN_OK) {
            fprintf(stderr, TOOL ": cannot set rank 0's environment\n");
            return 1;
        }
        t->launched = n;
    }
    if (t->launched) o->num_clones = 1;
    /* each local rank on its own GPU (ranks beyond the GPUs share them: Gloo only) */
    int device_index = t->gpus > 0 && env.found ? env.params.local_rank % t->gpus : 0;
    int want_gpu = o->num_clones > 0 && !o->clone_on_cpu;
    t->ctx = tool_ctx_cuda(TOOL, o->clone_on_cpu ? "cpu" : o->device, want_gpu, o->threads,
                           (uint64_t)o->seed, o->allow_tf32, o->deterministic, device_index);
    return t->ctx ? 0 : 1;
}

/* Joins the group, opens the dataset, trains.  The exit status. */
static int run(trainer *t, flag *fl, int nfl) {
    opts *o = t->o;
    int rc = join_group(t, fl, nfl);
    if (rc) return rc < 0 ? 0 : rc;
    if (t->ps_task) return serve_ps(t);
    sn_dataset_params dp = sn_dataset_params_default();
    dp.fer_extra_class = o->fer_extra_class;
    if (sn_dataset_open(t->ctx, o->dataset_name, o->dataset_dir, &dp, &t->ds) != SN_OK) {
        fprintf(stderr, TOOL ": --dataset_name=%s --dataset_dir=%s: %s\n",
                o->dataset_name ? o->dataset_name : "None", o->dataset_dir,
                sn_ctx_errmsg(t->ctx));
        return 1;
    }
    if (sn_dataset_num_classes(t->ds) - o->labels_offset < 1) {
        fprintf(stderr, TOOL ": --labels_offset=%d leaves no classes of %d\n",
                o->labels_offset, sn_dataset_num_classes(t->ds));
        return 2;
    }
    return train(t);
}

int main(int argc, char **argv) {
    tool_init(argv);
    /* Gloo writes to its peers' sockets: a peer that died must be an error to report by
     * name, not a SIGPIPE that ends this process without a word */
    signal(SIGPIPE, SIG_IGN);
    opts o = {0};
    o.train_dir = "/tmp/tfmodel/";
    o.num_clones = 1;
    o.worker_replicas = 1;
    o.num_readers = 4;
    o.num_preprocessing_threads = 4;
    o.log_every_n_steps = 10;
    o.save_summaries_secs = 600;
    o.save_interval_secs = 600;
    o.weight_decay = 0.00004f;
    o.optimizer = "rmsprop";
    o.adadelta_rho = 0.95f;
    o.adagrad_initial_accumulator_value = 0.1f;
    o.adam_beta1 = 0.9f;
    o.adam_beta2 = 0.999f;
    o.opt_epsilon = 1.0f;
    o.ftrl_learning_rate_power = -0.5f;
    o.ftrl_initial_accumulator_value = 0.1f;
    o.momentum = 0.9f;
    o.rmsprop_momentum = 0.9f;
    o.rmsprop_decay = 0.9f;
    o.quantize_delay = -1;
    o.learning_rate_decay_type = "exponential";
    o.learning_rate = 0.01f;
    o.end_learning_rate = 0.0001f;
    o.learning_rate_decay_factor = 0.94f;
    o.num_epochs_per_decay = 2.0;
    o.replicas_to_aggregate = 1;
    o.dataset_name = "fer";
    o.dataset_split_name = "train";
    o.model_name = "inception_v3";
    o.batch_size = 32;
    o.work_dir = "/data";
    o.data_dir = "/data/data";
    o.output_dir = "/data/output";
    o.log_dir = "/data/output";
    o.device = "auto";
    o.precision = "fp32";
    o.allow_tf32 = 1;
    o.max_to_keep = 5;
    o.seed = 0;
    o.dist_timeout_secs = 300;
    o.startup_delay_steps = 100;
    o.dist_backend = "auto";
    flag fl[] = {
        {"master", FLAG_STRING, &o.master, "TF-slim's master address: the cluster comes from "
         "TF_CONFIG (or mpirun, srun, torchrun)", 0, 0, 0},
        {"train_dir", FLAG_STRING, &o.train_dir, "where checkpoints and event files go", 0, 0, 0},
        {"num_clones", FLAG_INT, &o.num_clones, "model clones: one process per GPU when as "
         "many GPUs are visible, else one batch of batch_size * num_clones on one device",
         0, 0, "[1,64]"},
        {"clone_on_cpu", FLAG_BOOL, &o.clone_on_cpu, "train on the CPU", 0, 0, 0},
        {"worker_replicas", FLAG_INT, &o.worker_replicas, "workers; when given, the "
         "environment's chief and workers must number as many", 0, 0, "[1,)"},
        {"num_ps_tasks", FLAG_INT, &o.num_ps_tasks, "parameter servers (with --sync_replicas "
         "they have nothing to do)", 0, 0, "[0,)"},
        {"task", FLAG_INT, &o.task, "task index; when given, it must be the environment's",
         0, 0, "[0,)"},
        {"num_readers", FLAG_INT, &o.num_readers, "parallel readers (accepted; files are "
         "interleaved by the pipeline)", 0, 0, "[1,)"},
        {"num_preprocessing_threads", FLAG_INT, &o.num_preprocessing_threads,
         "decode and preprocessing threads", 0, 0, "[1,256]"},
        {"log_every_n_steps", FLAG_INT, &o.log_every_n_steps, "progress line interval", 0, 0,
         "[1,)"},
        {"save_summaries_secs", FLAG_INT, &o.save_summaries_secs,
         "TensorBoard summary interval in seconds", 0, 0, "[0,)"},
        {"save_interval_secs", FLAG_INT, &o.save_interval_secs,
         "checkpoint interval in seconds", 0, 0, "[0,)"},
        {"weight_decay", FLAG_FLOAT, &o.weight_decay, "L2 weight decay", 0, 0, "[0,)"},
        {"optimizer", FLAG_STRING, &o.optimizer,
         "adadelta, adagrad, adam, ftrl, momentum, sgd or rmsprop", 0, 0, 0},
        {"adadelta_rho", FLAG_FLOAT, &o.adadelta_rho, "adadelta decay", 0, 0, "[0,1]"},
        {"adagrad_initial_accumulator_value", FLAG_FLOAT,
         &o.adagrad_initial_accumulator_value, "adagrad accumulator start", 0, 0, "(0,)"},
        {"adam_beta1", FLAG_FLOAT, &o.adam_beta1, "adam first-moment decay", 0, 0, "[0,1)"},
        {"adam_beta2", FLAG_FLOAT, &o.adam_beta2, "adam second-moment decay", 0, 0, "[0,1)"},
        {"opt_epsilon", FLAG_FLOAT, &o.opt_epsilon, "epsilon of rmsprop/adam/adadelta", 0, 0,
         "[0,)"},
        {"ftrl_learning_rate_power", FLAG_FLOAT, &o.ftrl_learning_rate_power, "ftrl", 0, 0, "(,0]"},
        {"ftrl_initial_accumulator_value", FLAG_FLOAT, &o.ftrl_initial_accumulator_value,
         "ftrl", 0, 0, "[0,)"},
        {"ftrl_l1", FLAG_FLOAT, &o.ftrl_l1, "ftrl L1", 0, 0, "[0,)"},
        {"ftrl_l2", FLAG_FLOAT, &o.ftrl_l2, "ftrl L2", 0, 0, "[0,)"},
        {"momentum", FLAG_FLOAT, &o.momentum, "momentum of the momentum optimizer", 0, 0, "[0,)"},
        {"rmsprop_momentum", FLAG_FLOAT, &o.rmsprop_momentum, "rmsprop momentum", 0, 0, "[0,)"},
        {"rmsprop_decay", FLAG_FLOAT, &o.rmsprop_decay, "rmsprop decay", 0, 0, "[0,1]"},
        {"quantize_delay", FLAG_INT, &o.quantize_delay, "(not supported; must be -1)", 0, 0, 0},
        {"learning_rate_decay_type", FLAG_STRING, &o.learning_rate_decay_type,
         "fixed, exponential or polynomial", 0, 0, 0},
        {"learning_rate", FLAG_FLOAT, &o.learning_rate, "initial learning rate", 0, 0, "[0,)"},
        {"end_learning_rate", FLAG_FLOAT, &o.end_learning_rate,
         "polynomial decay's final rate", 0, 0, "[0,)"},
        {"label_smoothing", FLAG_FLOAT, &o.label_smoothing, "label smoothing", 0, 0, "[0,1]"},
        {"learning_rate_decay_factor", FLAG_FLOAT, &o.learning_rate_decay_factor,
         "exponential decay factor", 0, 0, "(0,)"},
        {"num_epochs_per_decay", FLAG_DOUBLE, &o.num_epochs_per_decay,
         "epochs between decays", 0, 0, "(0,)"},
        {"sync_replicas", FLAG_BOOL, &o.sync_replicas, "synchronous training: the gradients "
         "of all workers averaged each step (also without the flag when there are no ps "
         "tasks)", 0, 0, 0},
        {"replicas_to_aggregate", FLAG_INT, &o.replicas_to_aggregate, "when given, the "
         "number of workers (every step aggregates all of them)", 0, 0, "[1,)"},
        {"startup_delay_steps", FLAG_INT64, &o.startup_delay_steps, "asynchronous: a worker "
         "other than the chief starts at this global step (TF-slim's train(); TF's own "
         "workers wait 30 s for the chief), so that the first, steepest steps are not "
         "stale", 0, 0, "[0,)"},
        {"dist_timeout_secs", FLAG_DOUBLE, &o.dist_timeout_secs, "distributed: a rank that "
         "ended or stopped fails the others after at most this long, naming it", 0, 0,
         "(0,)"},
        {"dist_backend", FLAG_STRING, &o.dist_backend, "distributed: what averages a GPU "
         "net's gradients: nccl (one GPU per rank), gloo (through host memory; ranks may "
         "share a GPU) or auto (nccl when this machine's ranks have a GPU each)", 0, 0, 0},
        {"moving_average_decay", FLAG_DOUBLE, &o.moving_average_decay,
         "decay of moving averages of the model variables; 0 = None", 0, 0, "[0,1]"},
        {"dataset_name", FLAG_STRING, &o.dataset_name,
         "fer, mnist, cifar10, flowers, imagenet or folder", 0, 0, 0},
        {"dataset_split_name", FLAG_STRING, &o.dataset_split_name, "split to train on", 0, 0, 0},
        {"dataset_dir", FLAG_STRING, &o.dataset_dir, "folder of the dataset files", 0, 0, 0},
        {"labels_offset", FLAG_INT, &o.labels_offset, "subtracted from every label", 0, 0, "[0,)"},
        {"model_name", FLAG_STRING, &o.model_name, "network to train", 0, 0, 0},
        {"preprocessing_name", FLAG_STRING, &o.preprocessing_name,
         "lenet, cifarnet, vgg or inception; None = from model_name", 0, 0, 0},
        {"batch_size", FLAG_INT, &o.batch_size, "images per clone per step", 0, 0, "[1,65536]"},
        {"train_image_size", FLAG_INT, &o.train_image_size,
         "image size; 0 = the model's default", 0, 0, "[0,8192]"},
        {"max_number_of_steps", FLAG_INT64, &o.max_number_of_steps,
         "stop at this global step; 0 = None (until interrupted)", 0, 0, "[0,)"},
        {"use_grayscale", FLAG_BOOL, &o.use_grayscale, "convert images to grayscale", 0, 0, 0},
        {"checkpoint_path", FLAG_STRING, &o.checkpoint_path,
         "warm-start checkpoint (file prefix or folder)", 0, 0, 0},
        {"checkpoint_exclude_scopes", FLAG_STRING, &o.checkpoint_exclude_scopes,
         "comma-separated scopes not restored from checkpoint_path", 0, 0, 0},
        {"trainable_scopes", FLAG_STRING, &o.trainable_scopes,
         "comma-separated scopes to train; None = all", 0, 0, 0},
        {"ignore_missing_vars", FLAG_BOOL, &o.ignore_missing_vars,
         "keep initial values of variables missing from checkpoint_path", 0, 0, 0},
        {"work_dir", FLAG_STRING, &o.work_dir, "vendor flag (unused)", 0, 0, 0},
        {"data_dir", FLAG_STRING, &o.data_dir, "vendor: sets --dataset_dir when given", 0, 0, 0},
        {"output_dir", FLAG_STRING, &o.output_dir, "vendor: sets --train_dir when given", 0, 0, 0},
        {"log_dir", FLAG_STRING, &o.log_dir, "vendor flag (unused)", 0, 0, 0},
        {"num_gpus", FLAG_INT, &o.num_gpus, "vendor: sets --num_clones when given; 0 = "
         "train on the CPU; N with N GPUs visible: one process per GPU", 0, 0, "[0,64]"},
        {"max_step", FLAG_INT64, &o.max_step, "vendor flag (never read, as theirs)", 0, 0, 0},
        {"device", FLAG_STRING, &o.device, "auto (CUDA when present), cpu or cuda", 0, 0, 0},
        {"threads", FLAG_INT, &o.threads, "CPU threads; 0 = all cores", 0, 0, "[0,4096]"},
        {"allow_tf32", FLAG_BOOL, &o.allow_tf32,
         "CUDA: TF32 tensor cores for float32 convolutions and matmuls (as TensorFlow)", 0, 0, 0},
        {"precision", FLAG_STRING, &o.precision,
         "fp32, or bf16: activations and their gradients in bfloat16, float32 weights, "
         "optimizer state and losses (mixed precision; fastest on CUDA)", 0, 0, 0},
        {"deterministic", FLAG_BOOL, &o.deterministic,
         "CUDA: only deterministic cuDNN algorithms, chosen without timing runs", 0, 0, 0},
        {"seed", FLAG_INT64, &o.seed, "initialization, shuffling and augmentation seed", 0, 0, 0},
        {"max_to_keep", FLAG_INT, &o.max_to_keep, "checkpoints kept; 0 = all", 0, 0, "[0,)"},
        {"fer_extra_class", FLAG_BOOL, &o.fer_extra_class,
         "fer: the vendor's num_class + 1 logits (to load their checkpoints)", 0, 0, 0},
        {"shuffle_buffer", FLAG_INT, &o.shuffle_buffer,
         "records in the shuffle buffer; 0 = 20 * batch_size", 0, 0, "[0,)"},
    };
    int nfl = (int)(sizeof fl / sizeof fl[0]);
    int rc = flags_parse(TOOL, usage_text, fl, nfl, argc, argv, NULL, 0, NULL);
    if (rc) return rc == 1 ? 0 : rc;
    if ((rc = check_flags(&o, fl, nfl))) return rc;

    trainer t;
    memset(&t, 0, sizeof t);
    t.o = &o;
    pid_t kids[64];
    int nkids = 0;
    if ((rc = launch(&t, argv, kids, &nkids)) == 0) {
        rc = run(&t, fl, nfl);
        trainer_free(&t);
        sn_ctx_free(t.ctx);
    }
    char msg[256];
    if (nkids && launch_reap(kids, nkids, 1, rc != 0, o.dist_timeout_secs, msg, sizeof msg)) {
        fprintf(stderr, TOOL ": %s\n", msg);
        if (!rc) rc = 1;
    }
    return rc;
}

