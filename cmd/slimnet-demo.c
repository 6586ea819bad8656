/* slimnet-demo: the end-to-end demonstration until slimnet-train lands.  Trains TF-slim's
 * LeNet on Fashion-MNIST (Debian's dataset-fashion-mnist idx files) on the CPU with one of
 * TF-slim's optimizers (momentum by default), then evaluates on the 10,000 test images with the training weights copied by name
 * into an inference graph, and prints the accuracy and the confusion matrix.
 *
 *   slimnet-demo [--data_dir /usr/share/datasets/fashion-mnist] [--epochs 3]
 *                [--batch_size 32] [--optimizer momentum] [--learning_rate 0.01]
 *                [--threads 0] [--seed 1]
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>
#include "../lib/slimnet.h"

static const char *class_names[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                      "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"};

typedef struct dataset {
    int64_t n, rows, cols;
    uint8_t *images;   /* n * rows * cols */
    uint8_t *labels;   /* n */
} dataset;

static uint32_t be32(const uint8_t *b) {
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

/* Reads an idx file (gzip or plain): magic 0x00000803 (images) or 0x00000801 (labels).
 * Every count is bounded before anything is allocated. */
static int read_idx(const char *path, uint32_t magic, int64_t *dims, uint8_t **data) {
    gzFile f = gzopen(path, "rb");
    if (!f) {
        fprintf(stderr, "slimnet-demo: cannot open %s: %s\n", path, strerror(errno));
        return -1;
    }
    uint8_t hdr[16];
    int ndims = magic == 0x803 ? 3 : 1, hlen = 4 + 4 * ndims;
    if (gzread(f, hdr, (unsigned)hlen) != hlen || be32(hdr) != magic) {
        fprintf(stderr, "slimnet-demo: %s: not an idx file with magic 0x%08x\n", path, magic);
        gzclose(f);
        return -1;
    }
    int64_t total = 1;
    for (int d = 0; d < ndims; d++) {
        dims[d] = be32(hdr + 4 + 4 * d);
        if (dims[d] < 1 || dims[d] > (d == 0 ? 10000000 : 4096)) {
            fprintf(stderr, "slimnet-demo: %s: dimension %d is %lld, outside the bounds\n", path,
                    d, (long long)dims[d]);
            gzclose(f);
            return -1;
        }
        total *= dims[d];
    }
    *data = malloc((size_t)total);
    if (!*data || gzread(f, *data, (unsigned)total) != (int)total) {
        fprintf(stderr, "slimnet-demo: %s: truncated (expected %lld bytes of data)\n", path,
                (long long)total);
        free(*data);
        gzclose(f);
        return -1;
    }
    gzclose(f);
    return 0;
}

static int load(const char *dir, const char *split, dataset *ds) {
    char path[1024];
    int64_t di[3], dl[1];
    snprintf(path, sizeof path, "%s/%s-images-idx3-ubyte.gz", dir, split);
    if (read_idx(path, 0x803, di, &ds->images)) return -1;
    snprintf(path, sizeof path, "%s/%s-labels-idx1-ubyte.gz", dir, split);
    if (read_idx(path, 0x801, dl, &ds->labels)) return -1;
    if (dl[0] != di[0]) {
        fprintf(stderr, "slimnet-demo: %s: %lld images but %lld labels\n", split,
                (long long)di[0], (long long)dl[0]);
        return -1;
    }
    ds->n = di[0];
    ds->rows = di[1];
    ds->cols = di[2];
    for (int64_t i = 0; i < ds->n; i++)
        if (ds->labels[i] > 9) {
            fprintf(stderr, "slimnet-demo: %s: label %d of image %lld outside [0, 10)\n", split,
                    ds->labels[i], (long long)i);
            return -1;
        }
    return 0;
}

/* lenet preprocessing: (x - 128) / 128. */
static void fill_batch(const dataset *ds, const int64_t *idx, int64_t bs, float *x, int32_t *y) {
    int64_t px = ds->rows * ds->cols;
    for (int64_t b = 0; b < bs; b++) {
        const uint8_t *src = ds->images + idx[b] * px;
        for (int64_t i = 0; i < px; i++) x[b * px + i] = ((float)src[i] - 128.0f) / 128.0f;
        y[b] = ds->labels[idx[b]];
    }
}

typedef struct model {
    sn_graph *g;
    sn_net *net;
    sn_node images, labels, loss, logits;
    sn_tensor *xt, *yt;
    float *x;
    int32_t *y;
} model;

static int build(sn_ctx *ctx, const dataset *ds, int64_t bs, int training, model *m) {
    memset(m, 0, sizeof *m);
    if (sn_graph_new(ctx, &m->g) != SN_OK) return -1;
    int64_t in[4] = {SN_BATCH, ds->rows, ds->cols, 1}, ld[1] = {SN_BATCH};
    m->images = sn_input(m->g, "images", SN_DTYPE_F32, 4, in);
    m->labels = sn_input(m->g, "labels", SN_DTYPE_I32, 1, ld);
    sn_model_params mp = sn_model_params_default();
    mp.num_classes = 10;
    mp.is_training = training;
    sn_model net;
    if (sn_model_build(m->g, "lenet", m->images, &mp, &net) != SN_OK) {
        fprintf(stderr, "slimnet-demo: building lenet: %s\n", sn_graph_errmsg(m->g));
        return -1;
    }
    m->logits = net.logits;
    m->loss = sn_op_softmax_xent(m->g, net.logits, m->labels, 0.0f);
    sn_compile_params cp = sn_compile_params_default();
    cp.batch_size = bs;
    cp.backward = training;
    if (sn_net_compile(m->g, &cp, &m->net) != SN_OK) {
        fprintf(stderr, "slimnet-demo: compile: %s\n", sn_ctx_errmsg(ctx));
        return -1;
    }
    int64_t xd[4] = {bs, ds->rows, ds->cols, 1}, yd[1] = {bs};
    m->x = malloc((size_t)(bs * ds->rows * ds->cols) * sizeof *m->x);
    m->y = malloc((size_t)bs * sizeof *m->y);
    sn_tensor_wrap(ctx, m->x, SN_DTYPE_F32, 4, xd, SN_BORROW, &m->xt);
    sn_tensor_wrap(ctx, m->y, SN_DTYPE_I32, 1, yd, SN_BORROW, &m->yt);
    return 0;
}

static void destroy(model *m) {
    sn_tensor_free(m->xt);
    sn_tensor_free(m->yt);
    free(m->x);
    free(m->y);
    sn_net_free(m->net);
    sn_graph_free(m->g);
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#define CHECK(ctx, expr)                                                             \
    do {                                                                             \
        if ((expr) != SN_OK) {                                                       \
            fprintf(stderr, "slimnet-demo: %s\n", sn_ctx_errmsg(ctx));               \
            return 1;                                                                \
        }                                                                            \
    } while (0)

int main(int argc, char **argv) {
    const char *dir = "/usr/share/datasets/fashion-mnist";
    int epochs = 3, threads = 0;
    int64_t bs = 32;
    float lr = 0.01f;
    const char *optimizer = "momentum";
    uint64_t seed = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *eq = strchr(a, '=');
        char key[64] = "";
        const char *v = NULL;
        if (eq) {
            snprintf(key, sizeof key, "%.*s", (int)(eq - a), a);
            v = eq + 1;
        } else if (i + 1 < argc) {
            snprintf(key, sizeof key, "%s", a);
            v = argv[++i];
        }
        if (!v) {
            fprintf(stderr, "slimnet-demo: flag %s needs a value\n", a);
            return 2;
        }
        if (!strcmp(key, "--data_dir")) dir = v;
        else if (!strcmp(key, "--epochs")) epochs = atoi(v);
        else if (!strcmp(key, "--batch_size")) bs = atoll(v);
        else if (!strcmp(key, "--learning_rate")) lr = (float)atof(v);
        else if (!strcmp(key, "--optimizer")) optimizer = v;
        else if (!strcmp(key, "--threads")) threads = atoi(v);
        else if (!strcmp(key, "--seed")) seed = strtoull(v, NULL, 10);
        else {
            fprintf(stderr, "slimnet-demo: unknown flag %s\n", key);
            return 2;
        }
    }
    sn_optim_kind kind;
    if (sn_optim_kind_from_name(optimizer, &kind) != SN_OK) {
        fprintf(stderr, "slimnet-demo: --optimizer=%s: not one of sgd, momentum, rmsprop, adam, "
                        "adagrad, adadelta, ftrl\n", optimizer);
        return 2;
    }
    if (epochs < 1 || bs < 1 || bs > 4096 || !(lr > 0)) {
        fprintf(stderr, "slimnet-demo: need --epochs >= 1, --batch_size in [1, 4096], "
                        "--learning_rate > 0\n");
        return 2;
    }
    dataset train, test;
    if (load(dir, "train", &train) || load(dir, "t10k", &test)) return 1;
    printf("Fashion-MNIST: %lld training and %lld test images of %lldx%lld from %s\n",
           (long long)train.n, (long long)test.n, (long long)train.rows,
           (long long)train.cols, dir);

    sn_ctx_params cp = sn_ctx_params_default();
    cp.threads = threads;
    cp.seed = seed;
    sn_ctx *ctx = NULL;
    CHECK(ctx, sn_ctx_new(&cp, &ctx));
    model tr, ev;
    if (build(ctx, &train, bs, 1, &tr) || build(ctx, &test, 100, 0, &ev)) return 1;
    sn_optim_params op = sn_optim_params_default(kind);   /* train_image_classifier's flags */
    sn_optim *opt = NULL;
    CHECK(ctx, sn_optim_new(tr.net, &op, &opt));
    char dev[256];
    sn_ctx_device_info(ctx, dev, sizeof dev);
    printf("lenet, optimizer %s, learning rate %g, batch %lld, %d epochs, %s\n",
           sn_optim_kind_name(kind), lr, (long long)bs, epochs, dev);

    int64_t *order = malloc((size_t)train.n * sizeof *order);
    for (int64_t i = 0; i < train.n; i++) order[i] = i;
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    int64_t steps_per_epoch = train.n / bs, step = 0;
    double t0 = now();
    for (int e = 0; e < epochs; e++) {
        for (int64_t i = train.n - 1; i > 0; i--) {   /* seeded Fisher-Yates shuffle */
            s ^= s >> 12; s ^= s << 25; s ^= s >> 27;
            int64_t j = (int64_t)((s * 2685821657736338717ull) % (uint64_t)(i + 1));
            int64_t t = order[i]; order[i] = order[j]; order[j] = t;
        }
        double run = 0;
        for (int64_t b = 0; b < steps_per_epoch; b++, step++) {
            fill_batch(&train, order + b * bs, bs, tr.x, tr.y);
            CHECK(ctx, sn_net_set_input(tr.net, tr.images, tr.xt));
            CHECK(ctx, sn_net_set_input(tr.net, tr.labels, tr.yt));
            sn_net_set_step(tr.net, step);
            CHECK(ctx, sn_net_forward(tr.net));
            CHECK(ctx, sn_net_backward(tr.net, tr.loss));
            CHECK(ctx, sn_optim_step(opt, lr));
            sn_tensor *lt = NULL;
            CHECK(ctx, sn_net_get_output(tr.net, tr.loss, &lt));
            float l = ((float *)sn_tensor_data(lt))[0];
            sn_tensor_free(lt);
            run = b ? 0.98 * run + 0.02 * l : l;
            if ((b + 1) % 200 == 0 || b + 1 == steps_per_epoch) {
                double el = now() - t0;
                printf("epoch %d step %6lld  loss %.4f  %.0f images/s\n", e + 1,
                       (long long)(b + 1), run, (double)((step + 1) * bs) / el);
                fflush(stdout);
            }
        }
    }
    double train_s = now() - t0;
    /* Copy every variable by name into the inference graph (dropout off). */
    for (int v = 0; v < sn_graph_num_vars(tr.g); v++) {
        sn_var_info vi;
        sn_tensor *t = NULL;
        sn_graph_var(tr.g, v, &vi);
        CHECK(ctx, sn_net_get_var(tr.net, vi.name, &t));
        CHECK(ctx, sn_net_set_var(ev.net, vi.name, t));
        sn_tensor_free(t);
    }
    int64_t confusion[10][10] = {{0}}, correct = 0, idx[100];
    for (int64_t b = 0; b + 100 <= test.n; b += 100) {
        for (int k = 0; k < 100; k++) idx[k] = b + k;
        fill_batch(&test, idx, 100, ev.x, ev.y);
        CHECK(ctx, sn_net_set_input(ev.net, ev.images, ev.xt));
        CHECK(ctx, sn_net_forward(ev.net));
        sn_tensor *lg = NULL;
        CHECK(ctx, sn_net_get_output(ev.net, ev.logits, &lg));
        const float *p = sn_tensor_data(lg);
        for (int k = 0; k < 100; k++) {
            int best = 0;
            for (int c = 1; c < 10; c++)
                if (p[k * 10 + c] > p[k * 10 + best]) best = c;
            confusion[ev.y[k]][best]++;
            correct += best == ev.y[k];
        }
        sn_tensor_free(lg);
    }
    printf("\ntrained %lld steps in %.1f s; test accuracy %.2f%% (%lld of %lld)\n\n",
           (long long)step, train_s, 100.0 * (double)correct / (double)test.n,
           (long long)correct, (long long)test.n);
    printf("confusion matrix (rows: true class, columns: predicted)\n%12s", "");
    for (int c = 0; c < 10; c++) printf(" %5d", c);
    printf("\n");
    for (int r = 0; r < 10; r++) {
        printf("%d %-10s", r, class_names[r]);
        for (int c = 0; c < 10; c++) printf(" %5lld", (long long)confusion[r][c]);
        printf("\n");
    }
    free(order);
    sn_optim_free(opt);
    destroy(&tr);
    destroy(&ev);
    sn_ctx_free(ctx);
    free(train.images);
    free(train.labels);
    free(test.images);
    free(test.labels);
    return 0;
}
