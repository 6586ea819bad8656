/* test_serve.c: slimnet-serve as a process on a loopback port, spoken to over plain
 * sockets as curl would: every endpoint, the same numbers as slimnet-classify, concurrent
 * clients batched without mixing answers, a table of bad requests (answered while others are
 * served), hot reload under load, and SIGTERM.  The model is a lenet with random weights
 * written by the library (no training: seconds, not minutes); its three classes have
 * names. */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cjson/cJSON.h>
#include "../cmd/serve/api.h"
#include "testutil.h"

#define N_IMAGES 8

static char g_root[PATH_MAX];
static char g_serve[PATH_MAX + 32], g_classify[PATH_MAX + 32];
static char g_train[PATH_MAX + 16];              /* the watched train folder */
static char g_img_path[N_IMAGES][PATH_MAX + 32];
static uint8_t *g_img[N_IMAGES];                 /* encoded files */
static size_t g_img_len[N_IMAGES];

/* ---- fixtures ---------------------------------------------------------------------------- */

/* Writes a lenet (3 classes, 28x28x3) with weights drawn from seed as model.ckpt-<step> of
 * dir, the latest in its state file. */
static void write_lenet(const char *dir, uint64_t seed, int64_t step) {
    sn_ctx_params cp = sn_ctx_params_default();
    cp.seed = seed;
    cp.threads = 1;
    sn_ctx *ctx = NULL;
    ck_assert_int_eq(sn_ctx_new(&cp, &ctx), SN_OK);
    sn_graph *g = NULL;
    ck_assert_int_eq(sn_graph_new(ctx, &g), SN_OK);
    int64_t dims[4] = {SN_BATCH, 28, 28, 3};
    sn_node x = sn_input(g, "images", SN_DTYPE_F32, 4, dims);
    sn_model_params mp = sn_model_params_default();
    mp.num_classes = 3;
    mp.is_training = 0;
    sn_model m;
    ck_assert_int_eq(sn_model_build(g, "lenet", x, &mp, &m), SN_OK);
    sn_compile_params pp = sn_compile_params_default();
    pp.backward = 0;
    sn_net *net = NULL;
    ck_assert_int_eq(sn_net_compile(g, &pp, &net), SN_OK);
    ck_assert_int_eq(sn_net_save(net, dir, step, NULL, NULL, 0), SN_OK);
    sn_net_free(net);
    sn_graph_free(g);
    sn_ctx_free(ctx);
}

static void write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(data, 1, n, f), n);
    fclose(f);
}

static void suite_setup(void) {
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    ck_assert_int_gt(n, 0);
    self[n] = 0;
    *strrchr(self, '/') = 0;
    *strrchr(self, '/') = 0;
    snprintf(g_serve, sizeof g_serve, "%s/bin/slimnet-serve", self);
    snprintf(g_classify, sizeof g_classify, "%s/bin/slimnet-classify", self);
    snprintf(g_root, sizeof g_root, "/tmp/slimnet-serve-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(g_root));
    snprintf(g_train, sizeof g_train, "%s/train", g_root);
    write_lenet(g_train, 11, 100);
    char lab[PATH_MAX + 32];
    snprintf(lab, sizeof lab, "%s/labels.txt", g_train);
    const char *names = "0:horizontal\n1:square\n2:vertical\n";
    write_file(lab, names, strlen(names));
    /* images: stripes and squares of several sizes, half JPEG, half PNG */
    sn_ctx *ctx = tu_ctx();
    uint64_t s = 5;
    for (int i = 0; i < N_IMAGES; i++) {
        int h = 28 + 9 * i, w = 40 + 5 * i;
        int64_t dims[3] = {h, w, 3};
        sn_tensor *img = NULL, *enc = NULL;
        ck_assert_int_eq(sn_tensor_new(ctx, SN_DTYPE_U8, 3, dims, &img), SN_OK);
        uint8_t *p = sn_tensor_data(img);
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                for (int c = 0; c < 3; c++) {
                    int on = i % 3 == 0 ? (y / 4) % 2 : i % 3 == 1 ? (x / 3) % 2
                                                                   : (x > w / 4 && y > h / 3);
                    p[(y * w + x) * 3 + c] = (uint8_t)((on ? 180 : 30) + 60 * tu_rand(&s) + 5 * c);
                }
        if (i % 2) ck_assert_int_eq(sn_image_encode_png(ctx, img, &enc), SN_OK);
        else ck_assert_int_eq(sn_image_encode_jpeg(ctx, img, 90, &enc), SN_OK);
        g_img_len[i] = sn_tensor_nbytes(enc);
        g_img[i] = malloc(g_img_len[i]);
        memcpy(g_img[i], sn_tensor_data(enc), g_img_len[i]);
        snprintf(g_img_path[i], sizeof g_img_path[i], "%s/img%d.%s", g_root, i,
                 i % 2 ? "png" : "jpg");
        write_file(g_img_path[i], g_img[i], g_img_len[i]);
        sn_tensor_free(img);
        sn_tensor_free(enc);
    }
    sn_ctx_free(ctx);
}

static void suite_teardown(void) {
    for (int i = 0; i < N_IMAGES; i++) free(g_img[i]);
    char cmd[PATH_MAX + 32];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_root);
    if (system(cmd) != 0) fprintf(stderr, "test_serve: could not remove %s\n", g_root);
}

/* ---- the server process ------------------------------------------------------------------ */

typedef struct srv {
    pid_t pid;
    int fd;          /* its stdout + stderr */
    int port;
    char log[1 << 16];
    size_t used;
} srv;

/* Reads what the server printed so far (non-blocking) into sv->log. */
static void drain(srv *sv, int timeout_ms) {
    struct pollfd p = {.fd = sv->fd, .events = POLLIN};
    while (poll(&p, 1, timeout_ms) > 0) {
        char buf[4096];
        ssize_t r = read(sv->fd, buf, sizeof buf);
        if (r <= 0) break;
        size_t k = (size_t)r < sizeof sv->log - 1 - sv->used ? (size_t)r
                                                             : sizeof sv->log - 1 - sv->used;
        memcpy(sv->log + sv->used, buf, k);
        sv->used += k;
        sv->log[sv->used] = 0;
        timeout_ms = 0;
    }
}

/* slimnet-serve with the model flags and extra (NULL-terminated), on a free port; returns
 * when it listens. */
static void serve_start(srv *sv, const char *const *extra) {
    memset(sv, 0, sizeof *sv);
    const char *argv[48] = {g_serve, "--model_name=lenet", "--servable_name=fer",
                            "--eval_image_size=28", "--device=cpu", "--threads=1", "--port=0",
                            "--file_system_poll_wait_seconds=0.2"};
    int n = 8;
    char ck[PATH_MAX + 64];
    snprintf(ck, sizeof ck, "--checkpoint_path=%s", g_train);
    argv[n++] = ck;
    for (; extra && *extra && n < 46; extra++) argv[n++] = *extra;
    argv[n] = NULL;
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    sv->pid = fork();
    ck_assert_int_ge(sv->pid, 0);
    if (sv->pid == 0) {
        dup2(p[1], 1);
        dup2(p[1], 2);
        close(p[0]);
        close(p[1]);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(p[1]);
    sv->fd = p[0];
    for (int i = 0; i < 300 && !sv->port; i++) {
        drain(sv, 100);
        const char *at = strstr(sv->log, "at http://127.0.0.1:");
        if (at) sv->port = atoi(at + strlen("at http://127.0.0.1:"));
        int st;
        ck_assert_msg(waitpid(sv->pid, &st, WNOHANG) == 0, "slimnet-serve exited:\n%s", sv->log);
    }
    ck_assert_msg(sv->port > 0, "slimnet-serve did not start:\n%s", sv->log);
}

/* SIGTERM, then its exit status (128 + signal when killed). */
static int serve_stop(srv *sv) {
    kill(sv->pid, SIGTERM);
    int st = 0;
    for (int i = 0; i < 400; i++) {   /* 20 s */
        drain(sv, 0);
        if (waitpid(sv->pid, &st, WNOHANG) == sv->pid) {
            drain(sv, 0);
            close(sv->fd);
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        }
        usleep(50000);
    }
    kill(sv->pid, SIGKILL);
    waitpid(sv->pid, &st, 0);
    close(sv->fd);
    ck_abort_msg("slimnet-serve did not stop on SIGTERM:\n%s", sv->log);
    return -1;
}

/* ---- a small HTTP/1.1 client ------------------------------------------------------------- */

static int connect_to(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_msg(connect(fd, (struct sockaddr *)&a, sizeof a) == 0, "connect: %s",
                  strerror(errno));
    struct timeval tv = {.tv_sec = 30};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

typedef struct reply {
    int status;
    char *body;      /* NUL-terminated, malloc'ed */
    size_t len;
} reply;

/* Reads a whole response (Connection: close) from fd into *r. */
static void read_reply(int fd, reply *r) {
    size_t cap = 1 << 16, used = 0;
    char *b = malloc(cap);
    ssize_t k;
    while ((k = recv(fd, b + used, cap - used - 1, 0)) > 0) {
        used += (size_t)k;
        if (used + 1 == cap) b = realloc(b, cap *= 2);
    }
    b[used] = 0;
    r->status = 0;
    sscanf(b, "HTTP/1.%*d %d", &r->status);
    char *body = strstr(b, "\r\n\r\n");
    body = body ? body + 4 : b + used;
    r->len = used - (size_t)(body - b);
    r->body = malloc(r->len + 1);
    memcpy(r->body, body, r->len + 1);
    free(b);
}

static void send_all(int fd, const void *p, size_t n) {
    const char *c = p;
    while (n) {
        ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
        if (w <= 0) return;   /* the server may answer and close before it all went */
        c += w;
        n -= (size_t)w;
    }
}

static reply http(int port, const char *method, const char *path, const void *body,
                  size_t len) {
    int fd = connect_to(port);
    char head[1024];
    int hn = snprintf(head, sizeof head, "%s %s HTTP/1.1\r\nHost: localhost\r\n"
                      "Connection: close\r\nContent-Type: application/json\r\n"
                      "Content-Length: %zu\r\n\r\n", method, path, len);
    send_all(fd, head, (size_t)hn);
    if (len) send_all(fd, body, len);
    reply r;
    read_reply(fd, &r);
    close(fd);
    return r;
}

static reply http_str(int port, const char *method, const char *path, const char *body) {
    return http(port, method, path, body, body ? strlen(body) : 0);
}

/* base64 of data (standard alphabet, padded), malloc'ed. */
static char *b64(const uint8_t *d, size_t n) {
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *o = malloc((n + 2) / 3 * 4 + 1), *p = o;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)d[i] << 16 | (i + 1 < n ? (uint32_t)d[i + 1] << 8 : 0) |
                     (i + 2 < n ? d[i + 2] : 0);
        *p++ = a[v >> 18 & 63];
        *p++ = a[v >> 12 & 63];
        *p++ = i + 1 < n ? a[v >> 6 & 63] : '=';
        *p++ = i + 2 < n ? a[v & 63] : '=';
    }
    *p = 0;
    return o;
}

/* {"instances": [{"b64": image i0}, ...]} of n images starting at i0. */
static char *predict_body(int i0, int n, int columnar) {
    size_t cap = 64;
    for (int i = 0; i < n; i++) cap += g_img_len[(i0 + i) % N_IMAGES] * 4 / 3 + 32;
    char *b = malloc(cap);
    size_t u = (size_t)snprintf(b, cap, columnar ? "{\"inputs\": [" : "{\"instances\": [");
    for (int i = 0; i < n; i++) {
        int k = (i0 + i) % N_IMAGES;
        char *e = b64(g_img[k], g_img_len[k]);
        u += (size_t)snprintf(b + u, cap - u, "%s{\"b64\": \"%s\"}", i ? ", " : "", e);
        free(e);
    }
    snprintf(b + u, cap - u, "]}");
    return b;
}

/* slimnet-classify --output_format=json --top_k=3 of every image with the checkpoint at
 * path: probs[i][class]. */
static void classify_tool(const char *ckpt, double probs[N_IMAGES][3]) {
    char cmd[16384];
    int u = snprintf(cmd, sizeof cmd, "'%s' --model_name=lenet --checkpoint_path='%s' "
                     "--labels_dir='%s' --eval_image_size=28 --device=cpu --threads=1 "
                     "--top_k=3 --output_format=json", g_classify, ckpt, g_train);
    for (int i = 0; i < N_IMAGES; i++)
        u += snprintf(cmd + u, sizeof cmd - (size_t)u, " '%s'", g_img_path[i]);
    snprintf(cmd + u, sizeof cmd - (size_t)u, " 2>/dev/null");
    FILE *f = popen(cmd, "r");
    ck_assert_ptr_nonnull(f);
    char line[4096];
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        cJSON *o = cJSON_Parse(line);
        ck_assert_msg(o != NULL, "slimnet-classify: %s", line);
        const char *img = cJSON_GetStringValue(cJSON_GetObjectItem(o, "image"));
        int i = 0;
        while (i < N_IMAGES && strcmp(img, g_img_path[i])) i++;
        ck_assert_int_lt(i, N_IMAGES);
        const cJSON *p;
        cJSON_ArrayForEach(p, cJSON_GetObjectItem(o, "predictions")) {
            int id = (int)cJSON_GetNumberValue(cJSON_GetObjectItem(p, "id"));
            probs[i][id] = cJSON_GetNumberValue(cJSON_GetObjectItem(p, "probability"));
        }
        cJSON_Delete(o);
        n++;
    }
    ck_assert_int_eq(pclose(f), 0);
    ck_assert_int_eq(n, N_IMAGES);
}

static cJSON *parse_ok(const reply *r, const char *what) {
    ck_assert_msg(r->status == 200, "%s: status %d: %s", what, r->status, r->body);
    cJSON *o = cJSON_Parse(r->body);
    ck_assert_msg(o != NULL, "%s: not JSON: %s", what, r->body);
    return o;
}

static void reply_free(reply *r) {
    free(r->body);
    r->body = NULL;
}

/* ---- tests ------------------------------------------------------------------------------- */

START_TEST(api_units) {
    uint8_t *d = NULL;
    size_t n = 0;
    ck_assert_int_eq(api_b64_decode("aGVsbG8=", 8, &d, &n), 0);
    ck_assert(n == 5 && !memcmp(d, "hello", 5));
    free(d);
    ck_assert_int_eq(api_b64_decode("aGVsbG8", 7, &d, &n), 0);   /* unpadded */
    ck_assert(n == 5 && !memcmp(d, "hello", 5));
    free(d);
    ck_assert_int_eq(api_b64_decode("aGV*bG8=", 8, &d, &n), -1);
    ck_assert_int_eq(api_b64_decode("a", 1, &d, &n), -1);
    ck_assert_int_eq(api_b64_decode("aG=", 3, &d, &n), -1);
    api_target t;
    api_route_parse("POST", "/v1/models/fer/versions/12:predict", &t);
    ck_assert(t.route == ROUTE_PREDICT && t.version == 12 && !strcmp(t.model, "fer"));
    api_route_parse("GET", "/v1/models/fer/metadata", &t);
    ck_assert(t.route == ROUTE_METADATA && t.version == -1);
    api_route_parse("GET", "/v1/models/fer:predict", &t);
    ck_assert(t.route == ROUTE_MALFORMED);
    api_route_parse("GET", "/v2/x", &t);
    ck_assert(t.route == ROUTE_NONE);
    api_images im;
    char err[512];
    const char *two = "{\"instances\": [{\"b64\": \"aGk=\"}, {\"image_bytes\": {\"b64\": "
                      "\"aGV5\"}}]}";
    ck_assert_int_eq(api_parse_predict(two, strlen(two), 8, &im, err, sizeof err), 0);
    ck_assert(im.n == 2 && !im.columnar && im.len[1] == 3 && !memcmp(im.data[1], "hey", 3));
    api_images_free(&im);
    ck_assert_int_eq(api_parse_predict(two, strlen(two), 1, &im, err, sizeof err), 400);
    ck_assert_ptr_nonnull(strstr(err, "limit is 1"));
}
END_TEST

/* The library calls under the server: sn_classifier_prepare + sn_classify_batch give
 * sn_classify's probabilities (to float32 rounding: see json_close), whatever the batch's
 * size and the image's place in it; bad input is a status. */
START_TEST(classify_batch_lib) {
    sn_ctx *ctx = tu_ctx(), *pctx = tu_ctx();
    sn_classifier_params cp = sn_classifier_params_default();
    cp.model_name = "lenet";
    cp.checkpoint_path = g_train;
    cp.image_size = 28;
    sn_classifier *one = NULL, *four = NULL;
    ck_assert_int_eq(sn_classifier_new(ctx, &cp, &one), SN_OK);
    cp.batch_size = 4;
    ck_assert_int_eq(sn_classifier_new(ctx, &cp, &four), SN_OK);
    ck_assert_int_eq(sn_classifier_batch_size(one), 1);
    ck_assert_int_eq(sn_classifier_batch_size(four), 4);
    size_t numel = sn_classifier_input_numel(four);
    ck_assert_uint_eq(numel, 28 * 28 * 3);
    float *x = malloc(4 * numel * sizeof *x), prob[4][3], logits[4][3];
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(sn_classifier_prepare(four, pctx, g_img[i], g_img_len[i], 0,
                                               x + (size_t)i * numel), SN_OK);
    ck_assert_int_eq(sn_classify_batch(four, x, 4, &logits[0][0], &prob[0][0]), SN_OK);
    for (int i = 0; i < 4; i++) {
        sn_prediction top[3];
        int n = 0;
        ck_assert_int_eq(sn_classify(one, g_img[i], g_img_len[i], 3, top, &n), SN_OK);
        ck_assert_int_eq(n, 3);
        for (int j = 0; j < 3; j++)
            ck_assert_msg(fabsf(prob[i][top[j].id] - top[j].probability) <= 1e-5f,
                          "image %d class %d: %g vs %g", i, top[j].id,
                          (double)prob[i][top[j].id], (double)top[j].probability);
    }
    /* alone in the batch, at place 0: the same numbers (zero padding changes nothing) */
    float alone[3];
    ck_assert_int_eq(sn_classify_batch(four, x + 2 * numel, 1, NULL, alone), SN_OK);
    for (int c = 0; c < 3; c++) ck_assert(fabsf(alone[c] - prob[2][c]) <= 1e-5f);
    ck_assert_int_eq(sn_classify_batch(four, x, 5, NULL, alone), SN_ERR_INVALID_ARG);
    ck_assert_int_eq(sn_classify_batch(four, x, 0, NULL, alone), SN_ERR_INVALID_ARG);
    ck_assert_int_eq(sn_classifier_prepare(four, pctx, "not an image", 12, 0, x),
                     SN_ERR_FORMAT);
    /* more pixels than allowed: refused from the header */
    ck_assert_int_eq(sn_classifier_prepare(four, pctx, g_img[7], g_img_len[7], 100, x),
                     SN_ERR_FORMAT);
    free(x);
    sn_classifier_free(one);
    sn_classifier_free(four);
    sn_ctx_free(pctx);
    sn_ctx_free(ctx);
}
END_TEST

/* Every endpoint; the numbers of :predict, :classify and /classify are slimnet-classify's. */
START_TEST(endpoints) {
    double want[N_IMAGES][3] = {{0}};
    classify_tool(g_train, want);
    srv sv;
    serve_start(&sv, NULL);

    reply r = http_str(sv.port, "GET", "/v1/models/fer", NULL);
    cJSON *o = parse_ok(&r, "status");
    const cJSON *st = cJSON_GetArrayItem(cJSON_GetObjectItem(o, "model_version_status"), 0);
    ck_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(st, "version")), "100");
    ck_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(st, "state")), "AVAILABLE");
    ck_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(
                         cJSON_GetObjectItem(st, "status"), "error_code")), "OK");
    cJSON_Delete(o);
    reply_free(&r);

    r = http_str(sv.port, "GET", "/v1/models/fer/versions/100/metadata", NULL);
    o = parse_ok(&r, "metadata");
    const cJSON *sig = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(
        cJSON_GetObjectItem(o, "metadata"), "signature_def"), "signature_def"), "serving_default");
    ck_assert_ptr_nonnull(sig);
    ck_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(
                         cJSON_GetObjectItem(sig, "inputs"), "image_bytes"), "dtype")),
                     "DT_STRING");
    ck_assert_ptr_nonnull(cJSON_GetObjectItem(cJSON_GetObjectItem(sig, "outputs"), "logits"));
    ck_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(o,
                         "model_spec"), "version")), "100");
    cJSON_Delete(o);
    reply_free(&r);

    /* predict, row format: every image, probabilities as slimnet-classify's */
    char *body = predict_body(0, N_IMAGES, 0);
    r = http_str(sv.port, "POST", "/v1/models/fer:predict", body);
    free(body);
    o = parse_ok(&r, "predict");
    const cJSON *preds = cJSON_GetObjectItem(o, "predictions");
    ck_assert_int_eq(cJSON_GetArraySize(preds), N_IMAGES);
    double row[N_IMAGES][3];
    for (int i = 0; i < N_IMAGES; i++) {
        const cJSON *p = cJSON_GetArrayItem(preds, i);
        const cJSON *pr = cJSON_GetObjectItem(p, "probabilities");
        ck_assert_int_eq(cJSON_GetArraySize(pr), 3);
        ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(p, "logits")), 3);
        int best = 0;
        for (int c = 0; c < 3; c++) {
            row[i][c] = cJSON_GetNumberValue(cJSON_GetArrayItem(pr, c));
            ck_assert_msg(fabs(row[i][c] - want[i][c]) <= 2e-6, "image %d class %d: serve %.9g, "
                          "slimnet-classify %.9g", i, c, row[i][c], want[i][c]);
            if (row[i][c] > row[i][best]) best = c;
        }
        ck_assert_int_eq((int)cJSON_GetNumberValue(cJSON_GetObjectItem(p, "classes")), best);
    }
    cJSON_Delete(o);
    reply_free(&r);

    /* columnar: the same numbers, in "outputs" */
    body = predict_body(0, N_IMAGES, 1);
    r = http_str(sv.port, "POST", "/v1/models/fer/versions/100:predict", body);
    free(body);
    o = parse_ok(&r, "predict columnar");
    const cJSON *cols = cJSON_GetObjectItem(cJSON_GetObjectItem(o, "outputs"), "probabilities");
    ck_assert_int_eq(cJSON_GetArraySize(cols), N_IMAGES);
    for (int i = 0; i < N_IMAGES; i++)
        for (int c = 0; c < 3; c++)
            ck_assert(cJSON_GetNumberValue(cJSON_GetArrayItem(cJSON_GetArrayItem(cols, i), c)) ==
                      row[i][c]);
    cJSON_Delete(o);
    reply_free(&r);

    /* classify: tf.Examples, (label, score) pairs, most probable first */
    char *e0 = b64(g_img[0], g_img_len[0]), *e1 = b64(g_img[1], g_img_len[1]);
    size_t cap = strlen(e0) + strlen(e1) + 256;
    body = malloc(cap);
    snprintf(body, cap, "{\"signature_name\": \"classify\", \"context\": {\"image/format\": "
             "\"png\"}, \"examples\": [{\"image/encoded\": {\"b64\": \"%s\"}, "
             "\"image/class/label\": 1}, {\"image/encoded\": [{\"b64\": \"%s\"}]}]}", e0, e1);
    r = http_str(sv.port, "POST", "/v1/models/fer:classify", body);
    free(body);
    free(e0);
    free(e1);
    o = parse_ok(&r, "classify");
    const cJSON *res = cJSON_GetObjectItem(o, "result");
    ck_assert_int_eq(cJSON_GetArraySize(res), 2);
    static const char *names[3] = {"horizontal", "square", "vertical"};
    for (int i = 0; i < 2; i++) {
        const cJSON *pairs = cJSON_GetArrayItem(res, i);
        ck_assert_int_eq(cJSON_GetArraySize(pairs), 3);
        double prev = 2;
        for (int j = 0; j < 3; j++) {
            const cJSON *pair = cJSON_GetArrayItem(pairs, j);
            const char *label = cJSON_GetStringValue(cJSON_GetArrayItem(pair, 0));
            double score = cJSON_GetNumberValue(cJSON_GetArrayItem(pair, 1));
            int c = 0;
            while (c < 3 && strcmp(label, names[c])) c++;
            ck_assert_int_lt(c, 3);
            ck_assert(fabs(score - want[i][c]) <= 2e-6);
            ck_assert(score <= prev);
            prev = score;
        }
    }
    cJSON_Delete(o);
    reply_free(&r);

    /* raw bytes, as curl --data-binary @img.png; top_k from the query */
    r = http(sv.port, "POST", "/classify?top_k=2", g_img[3], g_img_len[3]);
    o = parse_ok(&r, "/classify");
    ck_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(o, "model_version")), "100");
    const cJSON *top = cJSON_GetObjectItem(o, "predictions");
    ck_assert_int_eq(cJSON_GetArraySize(top), 2);
    int id = (int)cJSON_GetNumberValue(cJSON_GetObjectItem(cJSON_GetArrayItem(top, 0), "id"));
    ck_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetArrayItem(top, 0),
                                                              "label")), names[id]);
    ck_assert(fabs(cJSON_GetNumberValue(cJSON_GetObjectItem(cJSON_GetArrayItem(top, 0),
                                                           "probability")) - want[3][id]) <= 2e-6);
    cJSON_Delete(o);
    reply_free(&r);

    r = http_str(sv.port, "GET", "/monitoring/prometheus/metrics", NULL);
    ck_assert_int_eq(r.status, 200);
    ck_assert_msg(strstr(r.body, ":tensorflow:serving:request_count{model_name=\"fer\","
                                 "API=\"predict\",entrypoint=\"REST\",code=\"200\"} 2"), "%s",
                  r.body);
    ck_assert_ptr_nonnull(strstr(r.body, ":tensorflow:serving:request_latency_bucket{"));
    ck_assert_ptr_nonnull(strstr(r.body, "processed_batch_size_count"));
    ck_assert_ptr_nonnull(strstr(r.body, ":tensorflow:serving:model_version{model_name=\"fer\"} 100"));
    reply_free(&r);
    ck_assert_int_eq(serve_stop(&sv), 0);
    ck_assert_msg(strstr(sv.log, "slimnet-serve: stopped"), "%s", sv.log);
}
END_TEST

/* ---- concurrency ------------------------------------------------------------------------- */

typedef struct client {
    int port, image, rounds, raw;
    char *want[N_IMAGES];   /* the exact body each image gets alone (NULL: not checked) */
    int ok, wrong, failed;
    char first_bad[1024];
    volatile int *stop;
    char *want2[N_IMAGES];  /* after a reload: the answers of the new version */
} client;

/* Two JSON values alike: same shape and strings, numbers within a few float32 ulps of what
 * they print (relative 1e-5 + absolute 1e-5).  A batched image's numbers are not always the
 * bits it gets alone: OpenBLAS's kernels sum a row of the product differently by where it
 * falls in the kernel's tile of rows, and that depends on the other images of the batch. */
static int json_close(const cJSON *a, const cJSON *b) {
    if (!a || !b || (a->type & 0xff) != (b->type & 0xff)) return 0;
    if (cJSON_IsNumber(a)) {
        double x = a->valuedouble, y = b->valuedouble;
        return fabs(x - y) <= 1e-5 + 1e-5 * fabs(y);
    }
    if (cJSON_IsString(a)) return !strcmp(a->valuestring, b->valuestring);
    if (cJSON_IsArray(a) || cJSON_IsObject(a)) {
        const cJSON *x = a->child, *y = b->child;
        for (; x && y; x = x->next, y = y->next)
            if ((x->string || y->string) &&
                (!x->string || !y->string || strcmp(x->string, y->string)))
                return 0;
            else if (!json_close(x, y))
                return 0;
        return !x && !y;
    }
    return 1;
}

static int same_answer(const char *got, const char *want) {
    if (!want) return 0;
    cJSON *a = cJSON_Parse(got), *b = cJSON_Parse(want);
    int same = json_close(a, b);
    cJSON_Delete(a);
    cJSON_Delete(b);
    return same;
}

static void *client_main(void *arg) {
    client *c = arg;
    for (int k = 0; k < c->rounds || (c->stop && !*c->stop); k++) {
        int i = (c->image + k) % N_IMAGES;
        reply r;
        if (c->raw) {
            r = http(c->port, "POST", "/classify?top_k=3", g_img[i], g_img_len[i]);
        } else {
            char *body = predict_body(i, 1, 0);
            r = http_str(c->port, "POST", "/v1/models/fer:predict", body);
            free(body);
        }
        if (r.status != 200) {
            if (!c->failed++)
                snprintf(c->first_bad, sizeof c->first_bad, "status %d: %.400s", r.status, r.body);
        } else if (same_answer(r.body, c->want[i]) || same_answer(r.body, c->want2[i])) {
            c->ok++;
        } else {
            if (!c->wrong++)
                snprintf(c->first_bad, sizeof c->first_bad, "image %d: %.300s, wanted %.300s", i,
                         r.body, c->want[i] ? c->want[i] : "-");
        }
        reply_free(&r);
        if (c->stop && *c->stop && k >= c->rounds) break;
    }
    return NULL;
}

/* The body each image gets when it is alone in the server. */
static void answers_alone(int port, int raw, char *want[N_IMAGES]) {
    for (int i = 0; i < N_IMAGES; i++) {
        reply r;
        if (raw) {
            r = http(port, "POST", "/classify?top_k=3", g_img[i], g_img_len[i]);
        } else {
            char *body = predict_body(i, 1, 0);
            r = http_str(port, "POST", "/v1/models/fer:predict", body);
            free(body);
        }
        ck_assert_msg(r.status == 200, "%d: %s", r.status, r.body);
        want[i] = r.body;
    }
}

static double metric(const char *text, const char *name) {
    const char *at = strstr(text, name);
    return at ? atof(at + strlen(name)) : -1;
}

/* 32 clients at once: batches form (the batch size histogram says so) and every answer is
 * the one its image gets alone (to float32 precision: see json_close), and no other's. */
START_TEST(concurrent_batched) {
    srv sv;
    const char *extra[] = {"--max_batch_size=8", "--batch_timeout_micros=20000", NULL};
    serve_start(&sv, extra);
    char *want[N_IMAGES];
    answers_alone(sv.port, 0, want);
    for (int i = 0; i < N_IMAGES; i++)   /* different images, different answers */
        for (int j = 0; j < i; j++) ck_assert_msg(!same_answer(want[i], want[j]), "%d %d", i, j);
    enum { N = 32 };
    client cl[N];
    pthread_t th[N];
    for (int t = 0; t < N; t++) {
        memset(&cl[t], 0, sizeof cl[t]);
        cl[t].port = sv.port;
        cl[t].image = t;
        cl[t].rounds = 4;
        memcpy(cl[t].want, want, sizeof want);
        ck_assert_int_eq(pthread_create(&th[t], NULL, client_main, &cl[t]), 0);
    }
    int ok = 0;
    for (int t = 0; t < N; t++) {
        pthread_join(th[t], NULL);
        ck_assert_msg(!cl[t].failed && !cl[t].wrong, "client %d: %s", t, cl[t].first_bad);
        ok += cl[t].ok;
    }
    ck_assert_int_eq(ok, N * 4);
    reply r = http_str(sv.port, "GET", "/monitoring/prometheus/metrics", NULL);
    double sum = metric(r.body, "processed_batch_size_sum "),
           count = metric(r.body, "processed_batch_size_count ");
    ck_assert_msg(sum == N * 4 + N_IMAGES && count > 0 && sum / count > 1.5,
                  "images %g in %g batches:\n%s", sum, count, r.body);
    reply_free(&r);
    for (int i = 0; i < N_IMAGES; i++) free(want[i]);
    ck_assert_int_eq(serve_stop(&sv), 0);
}
END_TEST

/* ---- bad input ------------------------------------------------------------------------------ */

typedef struct slow_arg {
    int port;
    reply r;
    double seconds;
} slow_arg;

/* A client that sends its body one byte a second. */
static void *slow_main(void *arg) {
    slow_arg *a = arg;
    int fd = connect_to(a->port);
    const char *head = "POST /v1/models/fer:predict HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                       "Content-Length: 40\r\n\r\n";
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    send_all(fd, head, strlen(head));
    for (int i = 0; i < 40; i++) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 1000) > 0) break;   /* answered */
        send_all(fd, "{", 1);
    }
    read_reply(fd, &a->r);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    a->seconds = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    close(fd);
    return NULL;
}

START_TEST(bad_input) {
    srv sv;
    const char *extra[] = {"--max_body_bytes=2000000", "--max_image_pixels=1000000",
                           "--request_timeout_ms=2500", "--max_images_per_request=16", NULL};
    serve_start(&sv, extra);
    char *want[N_IMAGES];
    answers_alone(sv.port, 1, want);

    /* good clients all along */
    volatile int stop = 0;
    enum { N = 4 };
    client cl[N];
    pthread_t th[N];
    for (int t = 0; t < N; t++) {
        memset(&cl[t], 0, sizeof cl[t]);
        cl[t].port = sv.port;
        cl[t].image = t;
        cl[t].rounds = 2;
        cl[t].raw = 1;
        cl[t].stop = &stop;
        memcpy(cl[t].want, want, sizeof want);
        ck_assert_int_eq(pthread_create(&th[t], NULL, client_main, &cl[t]), 0);
    }
    slow_arg slow = {.port = sv.port};
    pthread_t slow_th;
    ck_assert_int_eq(pthread_create(&slow_th, NULL, slow_main, &slow), 0);

    /* a PNG bomb: 2000 x 2000 of zeros is a few KB, and more pixels than allowed */
    sn_ctx *ctx = tu_ctx();
    int64_t dims[3] = {2000, 2000, 1};
    sn_tensor *big = NULL, *png = NULL;
    ck_assert_int_eq(sn_tensor_new(ctx, SN_DTYPE_U8, 3, dims, &big), SN_OK);
    ck_assert_int_eq(sn_image_encode_png(ctx, big, &png), SN_OK);
    ck_assert_uint_lt(sn_tensor_nbytes(png), 100000);
    char *bomb64 = b64(sn_tensor_data(png), sn_tensor_nbytes(png));
    char *bomb = malloc(strlen(bomb64) + 64);
    sprintf(bomb, "{\"instances\": [{\"b64\": \"%s\"}]}", bomb64);
    char *good = predict_body(0, 1, 0);
    char truncated[64];
    snprintf(truncated, sizeof truncated, "%.30s", good);
    char many[4096] = "{\"instances\": [";
    for (int i = 0; i < 17; i++) strcat(many, i ? ", {\"b64\": \"aGk=\"}" : "{\"b64\": \"aGk=\"}");
    strcat(many, "]}");
    struct {
        const char *method, *path, *body;
        int status;
        const char *needle;
    } rows[] = {
        {"POST", "/v1/models/fer:predict", truncated, 400, "JSON Parse error"},
        {"POST", "/v1/models/fer:predict", "", 400, "The document is empty"},
        {"POST", "/v1/models/fer:predict", "[1, 2]", 400, "Is not object"},
        {"POST", "/v1/models/fer:predict", "{\"instance\": []}", 400,
         "Missing 'inputs' or 'instances' key"},
        {"POST", "/v1/models/fer:predict", "{\"instances\": [], \"inputs\": []}", 400,
         "expecting only one of 'inputs' or 'instances'"},
        {"POST", "/v1/models/fer:predict", "{\"instances\": {}}", 400, "list/array"},
        {"POST", "/v1/models/fer:predict", "{\"instances\": []}", 400, "No values"},
        {"POST", "/v1/models/fer:predict", "{\"instances\": [{\"b64\": \"@@@\"}]}", 400,
         "Unable to base64 decode"},
        {"POST", "/v1/models/fer:predict", "{\"instances\": [{\"image\": {\"b64\": \"aGk=\"}}]}",
         400, "must only have keys: image_bytes"},
        {"POST", "/v1/models/fer:predict", "{\"instances\": [17]}", 400, "b64"},
        {"POST", "/v1/models/fer:predict", "{\"instances\": [{\"b64\": \"aGk=\"}]}", 400,
         "image 0: "},
        {"POST", "/v1/models/fer:predict", bomb, 400, "image 0: "},
        {"POST", "/v1/models/fer:predict", many, 400, "limit is 16"},
        {"POST", "/v1/models/fer:predict", "{\"signature_name\": \"x\", \"instances\": [1]}", 400,
         "Serving signature name: \\\"x\\\" not found"},
        {"POST", "/v1/models/other:predict", good, 404,
         "Servable not found for request: Latest(other)"},
        {"POST", "/v1/models/fer/versions/7:predict", good, 404, "Specific(fer, 7)"},
        {"GET", "/v1/models/fer:predict", NULL, 400, "Malformed request: GET /v1/models/fer:predict"},
        {"POST", "/v1/models/fer:regress", good, 400, "regression"},
        {"POST", "/v1/models/fer:classify", "{\"examples\": 3}", 400, "list/array"},
        {"POST", "/v1/models/fer:classify", "{\"instances\": []}", 400,
         "key 'examples' is expected"},
        {"POST", "/v1/models/fer:classify", "{\"examples\": [{\"image/encoded\": 3}]}", 400,
         "image/encoded"},
        {"POST", "/v1/models/fer:classify", "{\"examples\": [{\"a\": [1, \"x\"]}]}", 400,
         "Unexpected element type in feature: a"},
        {"POST", "/classify", "", 400, "empty body"},
        {"POST", "/classify", "not an image", 400, "image 0: "},
        {"POST", "/classify?top_k=0", "x", 400, "top_k"},
        {"GET", "/nothing", NULL, 404, "Not found"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        reply r = http_str(sv.port, rows[i].method, rows[i].path, rows[i].body);
        ck_assert_msg(r.status == rows[i].status && strstr(r.body, rows[i].needle),
                      "row %zu %s %s: %d %s, wanted %d and '%s'", i, rows[i].method,
                      rows[i].path, r.status, r.body, rows[i].status, rows[i].needle);
        cJSON *o = cJSON_Parse(r.body);   /* TF Serving's shape: {"error": "..."} */
        ck_assert_msg(o && cJSON_IsString(cJSON_GetObjectItem(o, "error")), "%s", r.body);
        cJSON_Delete(o);
        reply_free(&r);
    }
    free(good);
    free(bomb);
    free(bomb64);
    sn_tensor_free(big);
    sn_tensor_free(png);
    sn_ctx_free(ctx);

    /* a 100 MB body: refused at once to a client that waits for "100 Continue", as curl
     * does; read to its end (into nothing) and refused after, from any other */
    size_t huge = (size_t)100 << 20;
    char head[256];
    int fd = connect_to(sv.port);
    int hn = snprintf(head, sizeof head, "POST /v1/models/fer:predict HTTP/1.1\r\nHost: x\r\n"
                      "Expect: 100-continue\r\nContent-Length: %zu\r\n\r\n", huge);
    send_all(fd, head, (size_t)hn);
    reply r;
    read_reply(fd, &r);
    close(fd);
    ck_assert_msg(r.status == 413 && strstr(r.body, "max_body_bytes"), "%d %s", r.status, r.body);
    reply_free(&r);
    char *zeros = calloc(1, 1 << 20);
    fd = connect_to(sv.port);
    hn = snprintf(head, sizeof head, "POST /v1/models/fer:predict HTTP/1.1\r\nHost: x\r\n"
                  "Content-Length: %zu\r\n\r\n", huge);
    send_all(fd, head, (size_t)hn);
    for (size_t sent = 0; sent < huge; sent += 1 << 20) send_all(fd, zeros, 1 << 20);
    read_reply(fd, &r);
    close(fd);
    free(zeros);
    ck_assert_msg(r.status == 413 && strstr(r.body, "max_body_bytes"), "%d %s", r.status, r.body);
    reply_free(&r);
    /* ... and a chunked one that grows past the limit */
    fd = connect_to(sv.port);
    const char *ch = "POST /classify HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n";
    send_all(fd, ch, strlen(ch));
    char chunk[70000];
    memset(chunk, 'a', sizeof chunk);
    int cn = snprintf(chunk, 16, "10000\r\n");
    for (int i = 0; i < 40; i++) {
        memcpy(chunk + cn + 0x10000, "\r\n", 2);
        send_all(fd, chunk, (size_t)cn + 0x10000 + 2);
    }
    send_all(fd, "0\r\n\r\n", 5);
    read_reply(fd, &r);
    close(fd);
    ck_assert_msg(r.status == 413, "%d %s", r.status, r.body);
    reply_free(&r);

    pthread_join(slow_th, NULL);
    ck_assert_msg(slow.r.status == 408 && strstr(slow.r.body, "timed out"), "%d %s",
                  slow.r.status, slow.r.body);
    ck_assert_msg(slow.seconds >= 2.0 && slow.seconds < 6, "%g s", slow.seconds);
    reply_free(&slow.r);
    stop = 1;
    for (int t = 0; t < N; t++) {
        pthread_join(th[t], NULL);
        ck_assert_msg(!cl[t].failed && !cl[t].wrong && cl[t].ok >= 2, "client %d: %s", t,
                      cl[t].first_bad);
    }
    for (int i = 0; i < N_IMAGES; i++) free(want[i]);
    ck_assert_int_eq(serve_stop(&sv), 0);
}
END_TEST

/* ---- hot reload and shutdown --------------------------------------------------------------- */

static int64_t served_version(int port) {
    reply r = http_str(port, "GET", "/v1/models/fer", NULL);
    cJSON *o = parse_ok(&r, "status");
    const cJSON *st = cJSON_GetArrayItem(cJSON_GetObjectItem(o, "model_version_status"), 0);
    int64_t v = atoll(cJSON_GetStringValue(cJSON_GetObjectItem(st, "version")));
    cJSON_Delete(o);
    reply_free(&r);
    return v;
}

/* A new checkpoint in the train folder while 8 clients send requests: every request answered,
 * each answer that of the old or of the new version, and the new one served after. */
START_TEST(hot_reload_under_load) {
    char dir[PATH_MAX + 16];
    snprintf(dir, sizeof dir, "%s/reload", g_root);
    write_lenet(dir, 11, 100);
    char lab[PATH_MAX + 32];
    snprintf(lab, sizeof lab, "%s/labels.txt", dir);
    write_file(lab, "0:a\n1:b\n2:c\n", 12);
    srv sv;
    char ck[PATH_MAX + 64];
    snprintf(ck, sizeof ck, "--checkpoint_path=%s", dir);
    const char *extra[] = {ck, "--max_batch_size=4", NULL};
    serve_start(&sv, extra);
    char *v1[N_IMAGES];
    answers_alone(sv.port, 1, v1);
    /* what version 200 will answer: its bodies name the version, so build them from a second
     * server on the new weights alone */
    char dir2[PATH_MAX + 16];
    snprintf(dir2, sizeof dir2, "%s/reload_next", g_root);
    write_lenet(dir2, 12, 200);
    snprintf(lab, sizeof lab, "%s/labels.txt", dir2);
    write_file(lab, "0:a\n1:b\n2:c\n", 12);
    srv sv2;
    char ck2[PATH_MAX + 64];
    snprintf(ck2, sizeof ck2, "--checkpoint_path=%s", dir2);
    const char *extra2[] = {ck2, "--max_batch_size=4", NULL};
    serve_start(&sv2, extra2);
    char *v2[N_IMAGES];
    answers_alone(sv2.port, 1, v2);
    ck_assert_int_eq(serve_stop(&sv2), 0);
    ck_assert_str_ne(v1[0], v2[0]);

    volatile int stop = 0;
    enum { N = 8 };
    client cl[N];
    pthread_t th[N];
    for (int t = 0; t < N; t++) {
        memset(&cl[t], 0, sizeof cl[t]);
        cl[t].port = sv.port;
        cl[t].image = t;
        cl[t].rounds = 3;
        cl[t].raw = 1;
        cl[t].stop = &stop;
        memcpy(cl[t].want, v1, sizeof v1);
        memcpy(cl[t].want2, v2, sizeof v2);
        ck_assert_int_eq(pthread_create(&th[t], NULL, client_main, &cl[t]), 0);
    }
    usleep(300000);
    write_lenet(dir, 12, 200);   /* the same weights as dir2's, as step 200 */
    int64_t v = 0;
    for (int i = 0; i < 200 && v != 200; i++) {
        usleep(50000);
        v = served_version(sv.port);
    }
    ck_assert_int_eq(v, 200);
    usleep(300000);   /* some requests on the new version too */
    stop = 1;
    int ok = 0;
    for (int t = 0; t < N; t++) {
        pthread_join(th[t], NULL);
        ck_assert_msg(!cl[t].failed && !cl[t].wrong, "client %d: %s", t, cl[t].first_bad);
        ok += cl[t].ok;
    }
    ck_assert_int_ge(ok, N * 3);
    reply r = http(sv.port, "POST", "/classify?top_k=3", g_img[0], g_img_len[0]);
    ck_assert_msg(same_answer(r.body, v2[0]), "%s vs %s", r.body, v2[0]);
    reply_free(&r);
    ck_assert_int_eq(serve_stop(&sv), 0);
    ck_assert_msg(strstr(sv.log, "serving version 200"), "%s", sv.log);
    for (int i = 0; i < N_IMAGES; i++) {
        free(v1[i]);
        free(v2[i]);
    }
}
END_TEST

/* SIGTERM with requests waiting in a batch: they are answered, then the server exits 0. */
START_TEST(sigterm_drains) {
    srv sv;
    const char *extra[] = {"--max_batch_size=16", "--batch_timeout_micros=1500000", NULL};
    serve_start(&sv, extra);
    enum { N = 6 };
    client cl[N];
    pthread_t th[N];
    for (int t = 0; t < N; t++) {
        memset(&cl[t], 0, sizeof cl[t]);
        cl[t].port = sv.port;
        cl[t].image = t;
        cl[t].rounds = 1;
        cl[t].raw = 1;
        ck_assert_int_eq(pthread_create(&th[t], NULL, client_main, &cl[t]), 0);
    }
    usleep(500000);   /* the requests wait for the batch to fill */
    kill(sv.pid, SIGTERM);
    int answered = 0;
    for (int t = 0; t < N; t++) {
        pthread_join(th[t], NULL);
        /* want is NULL: an answer counts as "wrong" (unchecked) but must not fail */
        ck_assert_msg(!cl[t].failed, "client %d: %s", t, cl[t].first_bad);
        answered += cl[t].wrong;
    }
    ck_assert_int_eq(answered, N);
    int st = 0;
    ck_assert_int_eq(waitpid(sv.pid, &st, 0), sv.pid);
    drain(&sv, 100);
    close(sv.fd);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %d:\n%s", st, sv.log);
    ck_assert_msg(strstr(sv.log, "shutting down") && strstr(sv.log, "stopped"), "%s", sv.log);
}
END_TEST

/* More images than the server holds at once (--max_enqueued_batches batches): 503 in TF
 * Serving's words, and the server goes on. */
START_TEST(queue_full) {
    srv sv;
    const char *extra[] = {"--max_batch_size=2", "--max_enqueued_batches=1", NULL};
    serve_start(&sv, extra);
    char *body = predict_body(0, 3, 0);
    reply r = http_str(sv.port, "POST", "/v1/models/fer:predict", body);
    free(body);
    ck_assert_msg(r.status == 503 && strstr(r.body, "queue") && strstr(r.body, "is full"),
                  "%d %s", r.status, r.body);
    reply_free(&r);
    body = predict_body(0, 2, 0);
    r = http_str(sv.port, "POST", "/v1/models/fer:predict", body);
    free(body);
    ck_assert_msg(r.status == 200, "%d %s", r.status, r.body);
    reply_free(&r);
    ck_assert_int_eq(serve_stop(&sv), 0);
}
END_TEST

/* Bad command lines: exit 2 naming the flag; a checkpoint that does not load: exit 1. */
START_TEST(bad_flags) {
    struct {
        const char *args, *needle;
        int status;
    } rows[] = {
        {"--checkpoint_path=/nonexistent", "--model_name and --checkpoint_path are required", 2},
        {"--model_name=lenet --checkpoint_path=%s --allowed_batch_sizes=4,2 "
         "--max_batch_size=4", "--allowed_batch_sizes=4,2", 2},
        {"--model_name=lenet --checkpoint_path=%s --allowed_batch_sizes=1,2", "the last size "
         "must be --max_batch_size (8)", 2},
        {"--model_name=lenet --checkpoint_path=%s --port=70000", "--port", 2},
        {"--model_name=lenet --checkpoint_path=%s --max_batch_size=0", "--max_batch_size", 2},
        {"--model_name=lenet --checkpoint_path=%s --precision=fp16", "--precision=fp16", 2},
        {"--model_name=lenet --checkpoint_path=%s --servable_name=a/b", "model name 'a/b'", 2},
        {"--model_name=nonet --checkpoint_path=%s", "unknown model", 2},
        {"--model_name=lenet --checkpoint_path=%s --host=no.such.host.invalid", "--host", 2},
        {"--model_name=lenet --checkpoint_path=/nonexistent/x --num_classes=3", "/nonexistent",
         1},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char args[PATH_MAX + 512], cmd[2 * PATH_MAX + 1024];
        snprintf(args, sizeof args, rows[i].args, g_train);
        snprintf(cmd, sizeof cmd, "'%s' --eval_image_size=28 --device=cpu --port=0 %s 2>&1",
                 g_serve, args);
        FILE *f = popen(cmd, "r");
        ck_assert_ptr_nonnull(f);
        char out[8192];
        size_t n = fread(out, 1, sizeof out - 1, f);
        out[n] = 0;
        int st = pclose(f);
        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == rows[i].status &&
                      strstr(out, rows[i].needle), "%s: exit %d, wanted %d and '%s':\n%s",
                      args, WIFEXITED(st) ? WEXITSTATUS(st) : -1, rows[i].status,
                      rows[i].needle, out);
    }
}
END_TEST

/* The request shapes of TF Serving's REST documentation (tensorflow_serving/g3doc/api_rest.md),
 * with this model's signature and real images in place of the documentation's toy model, and
 * the response shapes it documents.  make parity runs this case too. */
START_TEST(docs_shapes) {
    srv sv;
    serve_start(&sv, NULL);
    /* curl http://localhost:8501/v1/models/<name>: model_version_status[] with a string
     * version, state, and status {error_code, error_message} */
    reply r = http_str(sv.port, "GET", "/v1/models/fer", NULL);
    cJSON *o = parse_ok(&r, "status");
    ck_assert_int_eq(cJSON_GetArraySize(o), 1);
    const cJSON *st = cJSON_GetArrayItem(cJSON_GetObjectItem(o, "model_version_status"), 0);
    ck_assert(cJSON_IsString(cJSON_GetObjectItem(st, "version")));
    ck_assert(cJSON_IsString(cJSON_GetObjectItem(st, "state")));
    ck_assert(cJSON_IsString(cJSON_GetObjectItem(cJSON_GetObjectItem(st, "status"),
                                                 "error_message")));
    cJSON_Delete(o);
    reply_free(&r);

    /* row format with one named input: "instances": [<value>, ...]; several named outputs:
     * "predictions" is a list of objects */
    char *e0 = b64(g_img[0], g_img_len[0]), *e1 = b64(g_img[1], g_img_len[1]);
    size_t cap = strlen(e0) + strlen(e1) + 512;
    char *body = malloc(cap);
    snprintf(body, cap, "{\"signature_name\": \"serving_default\", \"instances\": "
             "[{\"b64\": \"%s\"}, {\"b64\": \"%s\"}]}", e0, e1);
    r = http_str(sv.port, "POST", "/v1/models/fer:predict", body);
    o = parse_ok(&r, "predict");
    ck_assert_int_eq(cJSON_GetArraySize(o), 1);
    const cJSON *p = cJSON_GetObjectItem(o, "predictions");
    ck_assert(cJSON_IsArray(p) && cJSON_GetArraySize(p) == 2);
    ck_assert(cJSON_IsObject(cJSON_GetArrayItem(p, 1)));
    cJSON_Delete(o);
    reply_free(&r);
    /* the same row format with each instance an object of named inputs */
    snprintf(body, cap, "{\"instances\": [{\"image_bytes\": {\"b64\": \"%s\"}}]}", e0);
    r = http_str(sv.port, "POST", "/v1/models/fer:predict", body);
    o = parse_ok(&r, "predict, named");
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(o, "predictions")), 1);
    cJSON_Delete(o);
    reply_free(&r);

    /* columnar: "inputs": {<name>: [...]} answers "outputs": {<name>: [...]} */
    snprintf(body, cap, "{\"inputs\": {\"image_bytes\": [{\"b64\": \"%s\"}, {\"b64\": "
             "\"%s\"}]}}", e0, e1);
    r = http_str(sv.port, "POST", "/v1/models/fer:predict", body);
    o = parse_ok(&r, "predict, columnar");
    const cJSON *out = cJSON_GetObjectItem(o, "outputs");
    ck_assert(cJSON_IsObject(out));
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(out, "classes")), 2);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(out, "logits")), 2);
    cJSON_Delete(o);
    reply_free(&r);

    /* the documentation's classify example: "image" as {"b64": ...} and a string feature;
     * "result": one list of [label, score] pairs per example */
    snprintf(body, cap, "{\"signature_name\": \"classify\", \"examples\": [{\"image\": "
             "{\"b64\": \"%s\"}, \"caption\": \"seaside\"}, {\"image\": {\"b64\": \"%s\"}, "
             "\"caption\": \"mountains\"}]}", e0, e1);
    r = http_str(sv.port, "POST", "/v1/models/fer:classify", body);
    o = parse_ok(&r, "classify");
    const cJSON *res = cJSON_GetObjectItem(o, "result");
    ck_assert_int_eq(cJSON_GetArraySize(res), 2);
    const cJSON *pair = cJSON_GetArrayItem(cJSON_GetArrayItem(res, 0), 0);
    ck_assert(cJSON_IsString(cJSON_GetArrayItem(pair, 0)) &&
              cJSON_IsNumber(cJSON_GetArrayItem(pair, 1)) && cJSON_GetArraySize(pair) == 2);
    cJSON_Delete(o);
    reply_free(&r);
    free(body);
    free(e0);
    free(e1);

    /* its error example: an unknown model is 404 {"error": "Servable not found for request:
     * Latest(half)"} */
    r = http_str(sv.port, "POST", "/v1/models/half:predict", "{\"instances\": [1.0,5.0]}");
    ck_assert_int_eq(r.status, 404);
    o = cJSON_Parse(r.body);
    ck_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(o, "error")),
                     "Servable not found for request: Latest(half)");
    cJSON_Delete(o);
    reply_free(&r);
    ck_assert_int_eq(serve_stop(&sv), 0);
}
END_TEST

Suite *suite_serve(void) {
    Suite *s = suite_create("serve");
    TCase *tc = tcase_create("serve");
    tcase_add_unchecked_fixture(tc, suite_setup, suite_teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, api_units);
    tcase_add_test(tc, classify_batch_lib);
    tcase_add_test(tc, bad_flags);
    tcase_add_test(tc, queue_full);
    tcase_add_test(tc, endpoints);
    tcase_add_test(tc, concurrent_batched);
    tcase_add_test(tc, bad_input);
    tcase_add_test(tc, hot_reload_under_load);
    tcase_add_test(tc, sigterm_drains);
    suite_add_tcase(s, tc);
    TCase *docs = tcase_create("serve_docs");   /* make parity: CK_RUN_CASE=serve_docs */
    tcase_add_unchecked_fixture(docs, suite_setup, suite_teardown);
    tcase_set_timeout(docs, 60);
    tcase_add_test(docs, docs_shapes);
    suite_add_tcase(s, docs);
    return s;
}
