/* test_tools.c: the command-line tools end to end, as a user runs them: slimnet-convert on
 * a class-folder tree, slimnet-train (progress, checkpoints, resume, determinism, warm start
 * and trainable scopes, NaN stop, SIGINT), slimnet-eval and slimnet-classify, and their
 * flag errors.  The tools are run as processes from the build's bin folder. */
#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cjson/cJSON.h>
#include "testutil.h"

static char g_root[PATH_MAX];     /* mkdtemp folder shared by the suite */
static char g_bin[PATH_MAX + 8];  /* <build>/bin */
static char g_data[PATH_MAX + 16];/* converted dataset */
static char g_device[32];         /* "--device=cpu", or SN_TOOLS_DEVICE's (gpu_check.sh: cuda) */

/* <build>/tests/run_tests -> <build>/bin */
static void find_bin(void) {
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    ck_assert_int_gt(n, 0);
    self[n] = 0;
    char *slash = strrchr(self, '/');
    *slash = 0;
    slash = strrchr(self, '/');
    *slash = 0;
    snprintf(g_bin, sizeof g_bin, "%s/bin", self);
}

/* Runs bin/<tool> with a NULL-terminated argument list; stdout+stderr into out (if not
 * NULL, up to cap bytes, NUL-terminated).  Returns the exit status, or 128+signal. */
static int run_tool(char *out, size_t cap, const char *tool, const char *const *args) {
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s", g_bin, tool);
    int fd[2];
    ck_assert_int_eq(pipe(fd), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        dup2(fd[1], 1);
        dup2(fd[1], 2);
        close(fd[0]);
        close(fd[1]);
        const char *argv[64];
        int n = 0;
        argv[n++] = path;
        for (; args && args[n - 1] && n < 63; n++) argv[n] = args[n - 1];
        argv[n] = NULL;
        execv(path, (char *const *)argv);
        _exit(127);
    }
    close(fd[1]);
    size_t used = 0;
    char buf[4096];
    ssize_t r;
    while ((r = read(fd[0], buf, sizeof buf)) > 0) {
        if (out && used + 1 < cap) {
            size_t k = (size_t)r < cap - 1 - used ? (size_t)r : cap - 1 - used;
            memcpy(out + used, buf, k);
            used += k;
        }
    }
    if (out) out[used] = 0;
    close(fd[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* A class-folder tree of 28x28 gray JPEGs: three classes of clearly different patterns
 * (horizontal stripes, vertical stripes, a bright square) with noise. */
static void make_tree(const char *dir, int per_class) {
    static const char *names[3] = {"horizontal", "square", "vertical"};
    sn_ctx *ctx = tu_ctx();
    ck_assert_int_eq(mkdir(dir, 0755), 0);
    uint64_t s = 7;
    for (int c = 0; c < 3; c++) {
        char sub[PATH_MAX + 32];
        snprintf(sub, sizeof sub, "%s/%s", dir, names[c]);
        ck_assert_int_eq(mkdir(sub, 0755), 0);
        for (int i = 0; i < per_class; i++) {
            int64_t dims[3] = {28, 28, 1};
            sn_tensor *img = NULL, *jpg = NULL;
            ck_assert_int_eq(sn_tensor_new(ctx, SN_DTYPE_U8, 3, dims, &img), SN_OK);
            uint8_t *p = sn_tensor_data(img);
            for (int y = 0; y < 28; y++)
                for (int x = 0; x < 28; x++) {
                    int on = c == 0 ? (y / 4) % 2 : c == 2 ? (x / 4) % 2
                                                           : (x > 7 && x < 20 && y > 7 && y < 20);
                    float v = (on ? 200.0f : 40.0f) + 30.0f * tu_rand(&s);
                    p[y * 28 + x] = (uint8_t)v;
                }
            ck_assert_int_eq(sn_image_encode_jpeg(ctx, img, 95, &jpg), SN_OK);
            char path[PATH_MAX + 64];
            snprintf(path, sizeof path, "%s/%03d.jpg", sub, i);
            FILE *f = fopen(path, "wb");
            ck_assert_ptr_nonnull(f);
            ck_assert_uint_eq(fwrite(sn_tensor_data(jpg), 1, sn_tensor_nbytes(jpg), f),
                              sn_tensor_nbytes(jpg));
            fclose(f);
            sn_tensor_free(img);
            sn_tensor_free(jpg);
        }
    }
    sn_ctx_free(ctx);
}

static void suite_setup(void) {
    find_bin();
    const char *dev = getenv("SN_TOOLS_DEVICE");
    snprintf(g_device, sizeof g_device, "--device=%s", dev && *dev ? dev : "cpu");
    snprintf(g_root, sizeof g_root, "/tmp/slimnet-tools-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(g_root));
    char tree[PATH_MAX + 16];
    snprintf(tree, sizeof tree, "%s/pics", g_root);
    make_tree(tree, 40);
    snprintf(g_data, sizeof g_data, "%s/data", g_root);
    char out[8192];
    const char *args[] = {"--dataset_name=fer", "--pic_path", tree, "--dataset_dir", g_data,
                          "--seed=3", NULL};
    int rc = run_tool(out, sizeof out, "slimnet-convert", args);
    if (rc != 0) fprintf(stderr, "%s\n", out);
    ck_assert_int_eq(rc, 0);
}

static void suite_teardown(void) {
    char cmd[PATH_MAX + 32];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_root);
    if (system(cmd) != 0) fprintf(stderr, "test_tools: could not remove %s\n", g_root);
}

/* Common training flags for the tiny dataset: lenet on 28x28, batch 8. */
#define TRAIN_FLAGS(dir, steps)                                                           \
    "--dataset_name=fer", "--dataset_dir", g_data, "--train_dir", dir, "--model_name=lenet", \
        "--train_image_size=28", "--batch_size=8", "--optimizer=momentum",                \
        "--learning_rate=0.001", "--max_number_of_steps", steps, "--log_every_n_steps=5", \
        "--num_preprocessing_threads=2", "--threads=2", g_device, "--seed=5"

static int file_exists(const char *dir, const char *name) {
    char p[PATH_MAX + 256];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    struct stat sb;
    return stat(p, &sb) == 0;
}

/* The event file in dir holds each tag (as bytes of its Summary protos). */
static void assert_events_have(const char *dir, const char *const *tags) {
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    struct dirent *e;
    char path[2 * PATH_MAX] = "";
    while ((e = readdir(d)))
        if (!strncmp(e->d_name, "events.out.tfevents.", 20))
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    closedir(d);
    ck_assert_msg(path[0], "no event file in %s", dir);
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    static char buf[1 << 22];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    for (int i = 0; tags[i]; i++)
        ck_assert_msg(memmem(buf, n, tags[i], strlen(tags[i])) != NULL, "%s: no '%s'", path,
                      tags[i]);
}

/* Every tensor of two checkpoints is bitwise equal (names and data). */
static void assert_same_ckpt(const char *a, const char *b) {
    sn_ctx *ctx = tu_ctx();
    sn_ckpt *ca = NULL, *cb = NULL;
    ck_assert_int_eq(sn_ckpt_open(ctx, a, &ca), SN_OK);
    ck_assert_int_eq(sn_ckpt_open(ctx, b, &cb), SN_OK);
    ck_assert_int_eq(sn_ckpt_count(ca), sn_ckpt_count(cb));
    for (int i = 0; i < sn_ckpt_count(ca); i++) {
        sn_ckpt_info ia;
        ck_assert_int_eq(sn_ckpt_info_at(ca, i, &ia), SN_OK);
        sn_tensor *ta = NULL, *tb = NULL;
        ck_assert_int_eq(sn_ckpt_read(ca, ia.name, &ta), SN_OK);
        ck_assert_msg(sn_ckpt_read(cb, ia.name, &tb) == SN_OK, "%s missing in %s", ia.name, b);
        ck_assert_uint_eq(sn_tensor_nbytes(ta), sn_tensor_nbytes(tb));
        ck_assert_msg(memcmp(sn_tensor_data(ta), sn_tensor_data(tb), sn_tensor_nbytes(ta)) == 0,
                      "tensor %s differs between %s and %s", ia.name, a, b);
        sn_tensor_free(ta);
        sn_tensor_free(tb);
    }
    sn_ckpt_close(ca);
    sn_ckpt_close(cb);
    sn_ctx_free(ctx);
}

/* slimnet-eval of the lenet trained in dir: exit 0 and an accuracy of at least 0.9 on the
 * generated classes; its output stays in out. */
static void eval_lenet(const char *dir, char *out, size_t cap, const char *when) {
    const char *eval[] = {"--dataset_name=fer", "--dataset_dir", g_data, "--checkpoint_path",
                          dir, "--eval_dir", dir, "--model_name=lenet", "--eval_image_size=28",
                          "--batch_size=16", g_device, "--threads=2", NULL};
    int rc = run_tool(out, cap, "slimnet-eval", eval);
    ck_assert_msg(rc == 0, "slimnet-eval failed:\n%s", out);
    const char *acc = strstr(out, "eval/Accuracy[");
    ck_assert_ptr_nonnull(acc);
    double a = atof(acc + strlen("eval/Accuracy["));
    ck_assert_msg(a >= 0.9, "accuracy %g %s:\n%s", a, when, out);
}

START_TEST(train_eval_classify) {
    char dir[PATH_MAX + 16], out[65536];
    snprintf(dir, sizeof dir, "%s/run", g_root);
    const char *train[] = {TRAIN_FLAGS(dir, "60"), "--save_summaries_secs=1", NULL};
    int rc = run_tool(out, sizeof out, "slimnet-train", train);
    ck_assert_msg(rc == 0, "slimnet-train failed:\n%s", out);
    ck_assert_ptr_nonnull(strstr(out, "global step 60: loss = "));
    ck_assert_ptr_nonnull(strstr(out, "images/s"));
    ck_assert(file_exists(dir, "model.ckpt-60.index"));
    ck_assert(file_exists(dir, "checkpoint"));
    ck_assert(file_exists(dir, "labels.txt"));
    ck_assert(file_exists(dir, "info.json"));
    assert_events_have(dir, (const char *[]){"total_loss", "learning_rate", "sparsity/",
                                             "activations/", "LeNet/conv1/weights", NULL});
    /* the optimizer's slots and global_step are in the checkpoint, under TF's names */
    sn_ctx *ctx = tu_ctx();
    sn_ckpt *ck = NULL;
    char prefix[PATH_MAX + 32];
    snprintf(prefix, sizeof prefix, "%s/model.ckpt-60", dir);
    ck_assert_int_eq(sn_ckpt_open(ctx, prefix, &ck), SN_OK);
    ck_assert_int_ge(sn_ckpt_find(ck, "LeNet/conv1/weights/Momentum"), 0);
    ck_assert_int_ge(sn_ckpt_find(ck, "global_step"), 0);
    sn_tensor *gs = NULL;
    ck_assert_int_eq(sn_ckpt_read(ck, "global_step", &gs), SN_OK);
    ck_assert_int_eq(*(int64_t *)sn_tensor_data(gs), 60);
    sn_tensor_free(gs);
    sn_ckpt_close(ck);
    sn_ctx_free(ctx);

    eval_lenet(dir, out, sizeof out, "on three trivially separable classes");
    ck_assert_ptr_nonnull(strstr(out, "eval/Recall_5["));
    ck_assert_ptr_nonnull(strstr(out, "confusion matrix"));
    ck_assert_ptr_nonnull(strstr(out, "horizontal"));   /* class names from labels.txt */

    char img[PATH_MAX + 64];
    snprintf(img, sizeof img, "%s/pics/square/000.jpg", g_root);
    const char *cls[] = {"--model_name=lenet", "--checkpoint_path", dir, "--eval_image_size=28",
                         "--top_k=2", g_device, img, NULL};
    rc = run_tool(out, sizeof out, "slimnet-classify", cls);
    ck_assert_msg(rc == 0, "slimnet-classify failed:\n%s", out);
    char want[PATH_MAX + 96];
    snprintf(want, sizeof want, "%s: square ", img);
    ck_assert_msg(strstr(out, want) != NULL, "expected '%s' in:\n%s", want, out);
    /* its restore report (stderr): lenet's 8 variables; global_step, the input position
     * and the slots unused */
    ck_assert_msg(strstr(out, "slimnet-classify: restored 8 variables from ") &&
                  strstr(out, "(excluded 0, missing 0, unused checkpoint tensors 10, "
                              "mismatched 0)"), "%s", out);

    /* A labels.txt alone, background first as TF-slim's imagenet one: --labels_offset=1
     * names class id c by line c + 1; without it the net has one logit too many. */
    char lab[PATH_MAX + 32], lab_flag[PATH_MAX + 48];
    snprintf(lab, sizeof lab, "%s/labels_only", g_root);
    ck_assert_int_eq(mkdir(lab, 0755), 0);
    snprintf(lab_flag, sizeof lab_flag, "%s/labels.txt", lab);
    FILE *f = fopen(lab_flag, "w");
    ck_assert_ptr_nonnull(f);
    fputs("0:background\n1:horizontal, stripes\n2:square, a bright one\n3:vertical\n", f);
    fclose(f);
    snprintf(lab_flag, sizeof lab_flag, "--labels_dir=%s", lab);
    const char *cls_off[] = {"--model_name=lenet", "--checkpoint_path", dir, lab_flag,
                             "--labels_offset=1", "--eval_image_size=28", "--top_k=2",
                             g_device, img, NULL};
    rc = run_tool(out, sizeof out, "slimnet-classify", cls_off);
    ck_assert_msg(rc == 0, "slimnet-classify failed:\n%s", out);
    snprintf(want, sizeof want, "%s: square, a bright one ", img);
    ck_assert_msg(strstr(out, want) != NULL, "expected '%s' in:\n%s", want, out);
    cls_off[4] = "--labels_offset=0";
    ck_assert_int_eq(run_tool(out, sizeof out, "slimnet-classify", cls_off), 1);
    ck_assert_msg(strstr(out, "LeNet/fc4/weights: net [1024,4] float32, checkpoint "
                              "[1024,3] float32"), "%s", out);
    /* --fer_extra_class counts the fork's extra class of the train_dir's info.json */
    const char *cls_fer[] = {"--model_name=lenet", "--checkpoint_path", dir,
                             "--fer_extra_class", "--eval_image_size=28", g_device, img, NULL};
    ck_assert_int_eq(run_tool(out, sizeof out, "slimnet-classify", cls_fer), 1);
    ck_assert_msg(strstr(out, "net [1024,4] float32, checkpoint [1024,3]"), "%s", out);

    /* JSON lines for a folder given with a trailing slash (no "//" in the names), the
     * checkpoint given as its .index file, class ids beside the names in text */
    char folder[PATH_MAX + 32], index[PATH_MAX + 64], ckflag[PATH_MAX + 96];
    snprintf(folder, sizeof folder, "%s/pics/square/", g_root);
    snprintf(index, sizeof index, "%s/model.ckpt-60.index", dir);
    snprintf(ckflag, sizeof ckflag, "--checkpoint_path=%s", index);
    const char *js[] = {"--model_name=lenet", ckflag, "--eval_image_size=28", "--top_k=3",
                        "--output_format=json", g_device, folder, NULL};
    rc = run_tool(out, sizeof out, "slimnet-classify", js);
    ck_assert_msg(rc == 0, "slimnet-classify --output_format=json failed:\n%s", out);
    ck_assert_msg(!strstr(out, "//"), "%s", out);
    int lines = 0, square_first = 0;
    for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
        if (line[0] != '{') continue;   /* the restore report (stderr) */
        cJSON *o = cJSON_Parse(line);
        ck_assert_msg(o != NULL, "not JSON: %s", line);
        const cJSON *p = cJSON_GetArrayItem(cJSON_GetObjectItem(o, "predictions"), 0);
        ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(o, "predictions")), 3);
        ck_assert_ptr_nonnull(strstr(cJSON_GetStringValue(cJSON_GetObjectItem(o, "image")),
                                     "/pics/square/0"));
        double prob = cJSON_GetNumberValue(cJSON_GetObjectItem(p, "probability"));
        ck_assert(prob > 0 && prob <= 1);
        square_first += !strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(p, "label")),
                                "square") &&
                        cJSON_GetNumberValue(cJSON_GetObjectItem(p, "id")) == 1;
        lines++;
        cJSON_Delete(o);
    }
    ck_assert_int_eq(lines, 40);
    ck_assert_int_ge(square_first, 36);
    cls[2] = index;
    ck_assert_int_eq(run_tool(out, sizeof out, "slimnet-classify", cls), 0);
    snprintf(want, sizeof want, "%s: square (1) ", img);
    ck_assert_msg(strstr(out, want) != NULL, "expected '%s' in:\n%s", want, out);
}
END_TEST

/* N steps, stop, resume to N+M == N+M at once, bit for bit (weights, slots, step).  With
 * --deterministic, so that it holds on CUDA too (SN_TOOLS_DEVICE=cuda: cuDNN's timed
 * algorithm choice may differ between runs); on the CPU the flag changes nothing. */
START_TEST(resume_is_deterministic) {
    char a[PATH_MAX + 16], b[PATH_MAX + 16], out[65536];
    snprintf(a, sizeof a, "%s/resume_a", g_root);
    snprintf(b, sizeof b, "%s/resume_b", g_root);
    const char *first[] = {TRAIN_FLAGS(a, "12"), "--optimizer=adam", "--learning_rate=0.001",
                           "--deterministic", NULL};
    const char *second[] = {TRAIN_FLAGS(a, "25"), "--optimizer=adam", "--learning_rate=0.001",
                            "--deterministic", NULL};
    const char *once[] = {TRAIN_FLAGS(b, "25"), "--optimizer=adam", "--learning_rate=0.001",
                          "--deterministic", NULL};
    ck_assert_msg(run_tool(out, sizeof out, "slimnet-train", first) == 0, "%s", out);
    ck_assert_msg(run_tool(out, sizeof out, "slimnet-train", second) == 0, "%s", out);
    ck_assert_ptr_nonnull(strstr(out, "resuming from"));
    ck_assert_msg(run_tool(out, sizeof out, "slimnet-train", once) == 0, "%s", out);
    char pa[PATH_MAX + 32], pb[PATH_MAX + 32];
    snprintf(pa, sizeof pa, "%s/model.ckpt-25", a);
    snprintf(pb, sizeof pb, "%s/model.ckpt-25", b);
    assert_same_ckpt(pa, pb);
}
END_TEST

/* Warm start from another run's checkpoint with the logits excluded and only the logits
 * trained: every other variable keeps the warm-start value exactly, the logits move. */
START_TEST(fine_tune_scopes) {
    char base[PATH_MAX + 16], ft[PATH_MAX + 16], out[65536];
    snprintf(base, sizeof base, "%s/ft_base", g_root);
    snprintf(ft, sizeof ft, "%s/ft", g_root);
    const char *pre[] = {TRAIN_FLAGS(base, "10"), NULL};
    ck_assert_msg(run_tool(out, sizeof out, "slimnet-train", pre) == 0, "%s", out);
    char src[PATH_MAX + 32];
    snprintf(src, sizeof src, "%s/model.ckpt-10", base);
    const char *tune[] = {TRAIN_FLAGS(ft, "10"), "--checkpoint_path", src,
                          "--checkpoint_exclude_scopes=LeNet/fc4",
                          "--trainable_scopes=LeNet/fc4", NULL};
    ck_assert_msg(run_tool(out, sizeof out, "slimnet-train", tune) == 0, "%s", out);
    ck_assert_ptr_nonnull(strstr(out, "restored 6 variables"));
    ck_assert_ptr_nonnull(strstr(out, "excluded (2): LeNet/fc4/weights, LeNet/fc4/biases"));
    ck_assert_ptr_nonnull(strstr(out, "training 2 of 8 variables"));
    sn_ctx *ctx = tu_ctx();
    sn_ckpt *cs = NULL, *cf = NULL;
    char dst[PATH_MAX + 32];
    snprintf(dst, sizeof dst, "%s/model.ckpt-10", ft);
    ck_assert_int_eq(sn_ckpt_open(ctx, src, &cs), SN_OK);
    ck_assert_int_eq(sn_ckpt_open(ctx, dst, &cf), SN_OK);
    static const char *frozen[] = {"LeNet/conv1/weights", "LeNet/conv1/biases",
                                   "LeNet/conv2/weights", "LeNet/fc3/weights"};
    for (int i = 0; i < 4; i++) {
        sn_tensor *x = NULL, *y = NULL;
        ck_assert_int_eq(sn_ckpt_read(cs, frozen[i], &x), SN_OK);
        ck_assert_int_eq(sn_ckpt_read(cf, frozen[i], &y), SN_OK);
        ck_assert_msg(memcmp(sn_tensor_data(x), sn_tensor_data(y), sn_tensor_nbytes(x)) == 0,
                      "%s changed although not in --trainable_scopes", frozen[i]);
        sn_tensor_free(x);
        sn_tensor_free(y);
    }
    ck_assert_int_lt(sn_ckpt_find(cf, "LeNet/conv1/weights/Momentum"), 0);
    ck_assert_int_ge(sn_ckpt_find(cf, "LeNet/fc4/weights/Momentum"), 0);
    sn_ckpt_close(cs);
    sn_ckpt_close(cf);
    sn_ctx_free(ctx);
}
END_TEST

START_TEST(nan_stops_without_checkpoint) {
    char dir[PATH_MAX + 16], out[65536];
    snprintf(dir, sizeof dir, "%s/nan", g_root);
    const char *args[] = {TRAIN_FLAGS(dir, "50"), "--optimizer=sgd", "--learning_rate=1e30",
                          "--save_interval_secs=0", NULL};
    int rc = run_tool(out, sizeof out, "slimnet-train", args);
    ck_assert_int_eq(rc, 1);
    ck_assert_msg(strstr(out, "stopping without writing a checkpoint") != NULL, "%s", out);
    ck_assert(!file_exists(dir, "checkpoint"));
}
END_TEST

START_TEST(sigint_saves) {
    char dir[PATH_MAX + 16];
    snprintf(dir, sizeof dir, "%s/sigint", g_root);
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/slimnet-train", g_bin);
    int fd[2];
    ck_assert_int_eq(pipe(fd), 0);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fd[1], 1);
        close(fd[0]);
        execl(path, path, TRAIN_FLAGS(dir, "0"), "--log_every_n_steps=1", (char *)NULL);
        _exit(127);
    }
    close(fd[1]);
    /* Wait for the first progress line, then interrupt. */
    char buf[8192];
    size_t used = 0;
    ssize_t r;
    int sent = 0;
    while ((r = read(fd[0], buf + used, sizeof buf - 1 - used)) > 0) {
        used += (size_t)r;
        buf[used] = 0;
        if (!sent && strstr(buf, "global step 3:")) {
            kill(pid, SIGINT);
            sent = 1;
        }
        if (used > sizeof buf - 512) used = 0;
    }
    close(fd[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    ck_assert(sent);
    ck_assert(WIFEXITED(status));
    ck_assert_int_eq(WEXITSTATUS(status), 0);
    ck_assert(file_exists(dir, "checkpoint"));
}
END_TEST

/* Mixed precision: lenet trained with --precision=bf16 learns the three classes as the
 * float32 run does (slimnet-eval, float32, reads its checkpoint: the variables stay float32).
 * On CUDA (SN_TOOLS_DEVICE=cuda) its convolutions and pooling run the bf16 kernels. */
START_TEST(train_bf16) {
    char dir[PATH_MAX + 16], out[65536];
    snprintf(dir, sizeof dir, "%s/run_bf16", g_root);
    const char *train[] = {TRAIN_FLAGS(dir, "60"), "--precision=bf16", NULL};
    int rc = run_tool(out, sizeof out, "slimnet-train", train);
    ck_assert_msg(rc == 0, "slimnet-train --precision=bf16 failed:\n%s", out);
    ck_assert_ptr_nonnull(strstr(out, "global step 60: loss = "));
    ck_assert(file_exists(dir, "model.ckpt-60.index"));
    eval_lenet(dir, out, sizeof out, "after bf16 training");
}
END_TEST

START_TEST(bad_flags) {
    char out[16384];
    const char *unknown[] = {"--dataset_dir=/nonexistent", "--no_such_flag=1", NULL};
    ck_assert_int_eq(run_tool(out, sizeof out, "slimnet-train", unknown), 2);
    ck_assert_ptr_nonnull(strstr(out, "--no_such_flag"));
    const char *badnum[] = {"--dataset_dir=/x", "--batch_size=abc", NULL};
    ck_assert_int_eq(run_tool(out, sizeof out, "slimnet-train", badnum), 2);
    ck_assert_ptr_nonnull(strstr(out, "--batch_size=abc"));
    const char *badopt[] = {"--dataset_dir", g_data, "--optimizer=lbfgs", "--train_dir",
                            "/tmp/slimnet-never", "--model_name=lenet", "--device=cpu", NULL};
    ck_assert_int_eq(run_tool(out, sizeof out, "slimnet-train", badopt), 2);
    ck_assert_ptr_nonnull(strstr(out, "--optimizer=lbfgs"));
    const char *badprec[] = {"--dataset_dir", g_data, "--precision=fp16", "--train_dir",
                             "/tmp/slimnet-never", "--device=cpu", NULL};
    ck_assert_int_eq(run_tool(out, sizeof out, "slimnet-train", badprec), 2);
    ck_assert_ptr_nonnull(strstr(out, "--precision=fp16"));
    const char *nodata[] = {"--dataset_dir=/nonexistent/fer", "--train_dir=/tmp/x",
                            "--device=cpu", NULL};
    ck_assert_int_eq(run_tool(out, sizeof out, "slimnet-train", nodata), 1);
    ck_assert_ptr_nonnull(strstr(out, "/nonexistent/fer"));
    const char *help[] = {"--help", NULL};
    ck_assert_int_eq(run_tool(out, sizeof out, "slimnet-train", help), 0);
    ck_assert_ptr_nonnull(strstr(out, "--checkpoint_exclude_scopes"));
    ck_assert_ptr_nonnull(strstr(out, "(default: 'rmsprop')"));
    const char *version[] = {"--version", NULL};
    ck_assert_int_eq(run_tool(out, sizeof out, "slimnet-eval", version), 0);
    ck_assert_ptr_nonnull(strstr(out, sn_version()));
    const char *noimg[] = {"--model_name=lenet", "--checkpoint_path=/nonexistent", NULL};
    ck_assert_int_eq(run_tool(out, sizeof out, "slimnet-classify", noimg), 2);
}
END_TEST

/* A copied train folder whose state file names the original's checkpoints by absolute path
 * (TF1 writes them): training in the copy resumes from the copy's files and its saves never
 * delete the original's.  A damaged state file falls back to the newest complete checkpoint,
 * with a warning; with none, training stops at start instead of restarting from step 0. */
START_TEST(resume_copied_and_damaged) {
    char a[PATH_MAX + 16], b[PATH_MAX + 16], c[PATH_MAX + 16], out[65536];
    char path[2 * PATH_MAX], cmd[3 * PATH_MAX];
    snprintf(a, sizeof a, "%s/orig", g_root);
    snprintf(b, sizeof b, "%s/copy", g_root);
    snprintf(c, sizeof c, "%s/broken", g_root);
    const char *first[] = {TRAIN_FLAGS(a, "10"), NULL};
    ck_assert_msg(run_tool(out, sizeof out, "slimnet-train", first) == 0, "%s", out);
    snprintf(path, sizeof path, "%s/checkpoint", a);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "model_checkpoint_path: \"%s/model.ckpt-10\"\n"
               "all_model_checkpoint_paths: \"%s/model.ckpt-10\"\n", a, a);
    fclose(f);
    snprintf(cmd, sizeof cmd, "cp -r '%s' '%s'", a, b);
    ck_assert_int_eq(system(cmd), 0);
    const char *more[] = {TRAIN_FLAGS(b, "20"), "--max_to_keep=1", NULL};
    ck_assert_msg(run_tool(out, sizeof out, "slimnet-train", more) == 0, "%s", out);
    snprintf(path, sizeof path, "resuming from %s/model.ckpt-10 at global step 10", b);
    ck_assert_msg(strstr(out, path) && strstr(out, "outside the folder"), "%s", out);
    ck_assert(file_exists(a, "model.ckpt-10.index"));   /* the original's: untouched */
    ck_assert(!file_exists(b, "model.ckpt-10.index"));  /* the copy's: rotated out */
    ck_assert(file_exists(b, "model.ckpt-20.index"));

    snprintf(path, sizeof path, "%s/checkpoint", b);
    f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs("model_checkpoint_path: \"model.ckpt-2", f);   /* torn */
    fclose(f);
    const char *again[] = {TRAIN_FLAGS(b, "25"), NULL};
    ck_assert_msg(run_tool(out, sizeof out, "slimnet-train", again) == 0, "%s", out);
    snprintf(path, sizeof path, "resuming from the newest complete checkpoint in the folder "
             "instead: %s/model.ckpt-20", b);
    ck_assert_msg(strstr(out, path) && strstr(out, "global step 25: loss"), "%s", out);
    ck_assert(file_exists(b, "model.ckpt-25.index"));

    ck_assert_int_eq(mkdir(c, 0755), 0);
    snprintf(path, sizeof path, "%s/checkpoint", c);
    f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs("model_checkpoint_path: \"model.ckpt-40\"\n", f);   /* names a missing one */
    fclose(f);
    const char *none[] = {TRAIN_FLAGS(c, "5"), NULL};
    ck_assert_int_eq(run_tool(out, sizeof out, "slimnet-train", none), 1);
    ck_assert_msg(strstr(out, "cannot resume") && strstr(out, "model.ckpt-40") &&
                  strstr(out, "no complete checkpoint"), "%s", out);
    ck_assert(!file_exists(c, "model.ckpt-5.index"));
}
END_TEST

/* Command lines that used to be accepted and then waste the user's time, or that fail
 * differently in each tool: each is refused at once, exit status 2, the flag named. */
START_TEST(bad_command_lines) {
    char file[PATH_MAX + 16], out[16384];
    snprintf(file, sizeof file, "%s/a_file", g_root);
    FILE *f = fopen(file, "w");
    ck_assert_ptr_nonnull(f);
    fclose(f);
    char train_dir_file[PATH_MAX + 32];
    snprintf(train_dir_file, sizeof train_dir_file, "--train_dir=%s", file);
    static const char *unknown_model = "unknown model; one of: lenet, cifarnet, alexnet_v2";
    struct {
        const char *tool, *needle, *args[6];
    } rows[] = {
        {"slimnet-train", "--max_number_of_steps=-3: must be in [0,)",
         {"--dataset_dir=/x", "--max_number_of_steps=-3"}},
        {"slimnet-train", "--learning_rate=-1: must be in [0,)",
         {"--dataset_dir=/x", "--learning_rate=-1"}},
        {"slimnet-train", "--num_clones=0: must be in [1,64]",
         {"--dataset_dir=/x", "--num_clones=0"}},
        {"slimnet-train", "--train_image_size=-28: must be in [0,8192]",
         {"--dataset_dir=/x", "--train_image_size=-28"}},
        {"slimnet-train", "--batch_size=0: must be in [1,65536]",
         {"--dataset_dir=/x", "--batch_size=0"}},
        {"slimnet-train", "--num_epochs_per_decay=0: must be in (0,)",
         {"--dataset_dir=/x", "--num_epochs_per_decay=0"}},
        {"slimnet-train", "--label_smoothing=1.5: must be in [0,1]",
         {"--dataset_dir=/x", "--label_smoothing=1.5"}},
        {"slimnet-train", "--threads=-2: must be in [0,4096]",
         {"--dataset_dir=/x", "--threads=-2"}},
        {"slimnet-train", "--rmsprop_decay=1.1: must be in [0,1]",
         {"--dataset_dir=/x", "--rmsprop_decay=1.1"}},
        {"slimnet-train", "exists and is not a folder", {"--dataset_dir=/x", train_dir_file}},
        {"slimnet-train", "--learning_rate_decay_type=cosine",
         {"--dataset_dir=/x", "--learning_rate_decay_type=cosine"}},
        {"slimnet-train", unknown_model, {"--dataset_dir=/x", "--model_name=resnet_v9"}},
        {"slimnet-eval", unknown_model, {"--dataset_dir=/x", "--model_name=resnet_v9"}},
        {"slimnet-eval", "--batch_size=0: must be in [1,65536]",
         {"--dataset_dir=/x", "--batch_size=0"}},
        {"slimnet-eval", "--top_k=0: must be in [1,)", {"--dataset_dir=/x", "--top_k=0"}},
        {"slimnet-classify", unknown_model,
         {"--model_name=resnet_v9", "--checkpoint_path=/x", "a.jpg"}},
        {"slimnet-classify", "--channels=2: must be 1 or 3",
         {"--model_name=lenet", "--checkpoint_path=/x", "--channels=2", "a.jpg"}},
        {"slimnet-classify", "--top_k=0: must be in [1,)",
         {"--model_name=lenet", "--checkpoint_path=/x", "--top_k=0", "a.jpg"}},
        {"slimnet-ckpt", unknown_model, {"--model_name", "resnet_v9"}},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        int rc = run_tool(out, sizeof out, rows[i].tool, rows[i].args);
        ck_assert_msg(rc == 2 && strstr(out, rows[i].needle), "%s %s %s: exit %d, wanted 2 "
                      "and '%s':\n%s", rows[i].tool, rows[i].args[0], rows[i].args[1], rc,
                      rows[i].needle, out);
    }
    ck_assert_msg(!file_exists(g_root, "a_file/checkpoint"), "trained into a file");
    /* --help shows the ranges */
    const char *help[] = {"--help", NULL};
    ck_assert_int_eq(run_tool(out, sizeof out, "slimnet-train", help), 0);
    ck_assert_ptr_nonnull(strstr(out, "(default: 32; in [1,65536])"));
}
END_TEST

/* An empty class folder keeps its class id (the others keep theirs) and is reported. */
START_TEST(convert_empty_class) {
    char tree[PATH_MAX + 16], data[PATH_MAX + 16], empty[PATH_MAX + 32], out[16384];
    snprintf(tree, sizeof tree, "%s/tree_empty", g_root);
    snprintf(data, sizeof data, "%s/data_empty", g_root);
    make_tree(tree, 4);
    snprintf(empty, sizeof empty, "%s/nothing_here", tree);
    ck_assert_int_eq(mkdir(empty, 0755), 0);
    const char *args[] = {"--dataset_name=fer", "--pic_path", tree, "--dataset_dir", data,
                          NULL};
    ck_assert_int_eq(run_tool(out, sizeof out, "slimnet-convert", args), 0);
    ck_assert_msg(strstr(out, "warning: class 1 'nothing_here' has no records"), "%s", out);
}
END_TEST

/* ---- distributed training: processes of one machine, TF_CONFIG -------------------------- */

/* A free TCP port on 127.0.0.1, and the next one (each task of a TF_CONFIG has its own). */
static int free_ports(void) {
    for (;;) {
        int fd = socket(AF_INET, SOCK_STREAM, 0), fd2 = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t n = sizeof a;
        ck_assert(bind(fd, (struct sockaddr *)&a, sizeof a) == 0);
        ck_assert(getsockname(fd, (struct sockaddr *)&a, &n) == 0);
        int port = ntohs(a.sin_port);
        a.sin_port = htons((uint16_t)(port + 1));
        int ok = port < 65000 && bind(fd2, (struct sockaddr *)&a, sizeof a) == 0;
        close(fd);
        close(fd2);
        if (ok) return port;
    }
}

/* A process of argv (argv[0] the program's path) with env's changes ("NAME=value" sets,
 * "NAME" unsets), its output (stdout and stderr) on *fd. */
static pid_t spawn(const char *const *argv, const char *const *env, int *fd) {
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        dup2(p[1], 1);
        dup2(p[1], 2);
        close(p[0]);
        close(p[1]);
        for (; env && *env; env++) {
            const char *eq = strchr(*env, '=');
            char name[64];
            snprintf(name, sizeof name, "%.*s", eq ? (int)(eq - *env) : 63, *env);
            if (eq) setenv(name, eq + 1, 1);
            else unsetenv(name);
        }
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(p[1]);
    *fd = p[0];
    return pid;
}

/* A slimnet-train process with TF_CONFIG set, its output (stdout and stderr) on *fd. */
static pid_t spawn_train(const char *tf_config, const char *const *args, int *fd) {
    char path[PATH_MAX + 64], tf[1100];
    snprintf(path, sizeof path, "%s/slimnet-train", g_bin);
    snprintf(tf, sizeof tf, "TF_CONFIG=%s", tf_config ? tf_config : "");
    const char *argv[64] = {path};
    for (int n = 1; args[n - 1] && n < 63; n++) argv[n] = args[n - 1];
    const char *env[] = {tf_config ? tf : NULL, NULL};
    return spawn(argv, env, fd);
}

/* Reads fd to its end into out; the exit status of pid (128 + signal). */
static int finish(pid_t pid, int fd, char *out, size_t cap) {
    size_t used = 0;
    ssize_t r;
    char buf[4096];
    while ((r = read(fd, buf, sizeof buf)) > 0) {
        size_t k = (size_t)r < cap - 1 - used ? (size_t)r : cap - 1 - used;
        memcpy(out + used, buf, k);
        used += k;
    }
    out[used] = 0;
    close(fd);
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void tf_config(char *buf, size_t cap, int port, const char *type, int index) {
    snprintf(buf, cap, "{\"cluster\": {\"chief\": [\"127.0.0.1:%d\"], \"worker\": "
             "[\"127.0.0.1:%d\"]}, \"task\": {\"type\": \"%s\", \"index\": %d}}", port,
             port + 1, type, index);
}

/* Every float32 tensor of two checkpoints within tol of the larger magnitude. */
static void assert_close_ckpt(const char *a, const char *b, double tol) {
    sn_ctx *ctx = tu_ctx();
    sn_ckpt *ca = NULL, *cb = NULL;
    ck_assert_int_eq(sn_ckpt_open(ctx, a, &ca), SN_OK);
    ck_assert_int_eq(sn_ckpt_open(ctx, b, &cb), SN_OK);
    ck_assert_int_eq(sn_ckpt_count(ca), sn_ckpt_count(cb));
    double worst = 0;
    for (int i = 0; i < sn_ckpt_count(ca); i++) {
        sn_ckpt_info ia;
        ck_assert_int_eq(sn_ckpt_info_at(ca, i, &ia), SN_OK);
        sn_tensor *ta = NULL, *tb = NULL;
        ck_assert_int_eq(sn_ckpt_read(ca, ia.name, &ta), SN_OK);
        ck_assert_msg(sn_ckpt_read(cb, ia.name, &tb) == SN_OK, "%s missing in %s", ia.name, b);
        if (sn_tensor_dtype(ta) == SN_DTYPE_F32) {
            const float *x = sn_tensor_data(ta), *y = sn_tensor_data(tb);
            double m = 0, d = 0;
            for (int64_t k = 0; k < sn_tensor_numel(ta); k++) {
                m = fmax(m, fmax(fabs(x[k]), fabs(y[k])));
                d = fmax(d, fabs((double)x[k] - y[k]));
            }
            worst = fmax(worst, m > 0 ? d / m : 0);
            ck_assert_msg(d <= tol * m, "%s: %g apart (of %g)", ia.name, d, m);
        } else {
            ck_assert_mem_eq(sn_tensor_data(ta), sn_tensor_data(tb), sn_tensor_nbytes(ta));
        }
        sn_tensor_free(ta);
        sn_tensor_free(tb);
    }
    printf("[tools] %s vs %s: largest difference %.1e of a tensor's magnitude\n", a, b, worst);
    sn_ckpt_close(ca);
    sn_ckpt_close(cb);
    sn_ctx_free(ctx);
}

/* A chief and a worker (TF_CONFIG) of batch 4 train lenet as one process of batch 8 does:
 * the same input records (each reads its half of every global batch), dropout masks and
 * averaged gradients, so the checkpoints agree to float32's order of summation.  Only the
 * chief writes; the worker's --train_dir stays untouched. */
START_TEST(distributed_equals_one) {
    char one[PATH_MAX + 16], two[PATH_MAX + 16], other[PATH_MAX + 16], out[65536], out2[65536];
    snprintf(one, sizeof one, "%s/dist_one", g_root);
    snprintf(two, sizeof two, "%s/dist_two", g_root);
    snprintf(other, sizeof other, "%s/dist_worker_dir", g_root);
    const char *single[] = {TRAIN_FLAGS(one, "12"), "--threads=1", NULL};
    ck_assert_msg(run_tool(out, sizeof out, "slimnet-train", single) == 0, "%s", out);
    int port = free_ports();
    char tc[512], tw[512];
    tf_config(tc, sizeof tc, port, "chief", 0);
    tf_config(tw, sizeof tw, port, "worker", 0);
    const char *chief[] = {TRAIN_FLAGS(two, "12"), "--batch_size=4", "--threads=1", NULL};
    const char *worker[] = {TRAIN_FLAGS(other, "12"), "--batch_size=4", "--threads=1", NULL};
    int fw, fc;
    pid_t pw = spawn_train(tw, worker, &fw);   /* the worker first: order does not matter */
    pid_t pc = spawn_train(tc, chief, &fc);
    int rc = finish(pc, fc, out, sizeof out), rw = finish(pw, fw, out2, sizeof out2);
    ck_assert_msg(rc == 0 && rw == 0, "chief %d:\n%s\nworker %d:\n%s", rc, out, rw, out2);
    ck_assert_msg(strstr(out, "rank 0 of 2") && strstr(out, "% in all-reduce") &&
                  strstr(out, "batch 8;"), "%s", out);
    ck_assert_msg(strstr(out2, "rank 1 of 2") && !strstr(out2, "global step"), "%s", out2);
    struct stat sb;
    ck_assert_msg(stat(other, &sb) != 0, "the worker created %s", other);
    char a[PATH_MAX + 32], b[PATH_MAX + 32];
    snprintf(a, sizeof a, "%s/model.ckpt-12", one);
    snprintf(b, sizeof b, "%s/model.ckpt-12", two);
    assert_close_ckpt(a, b, 1e-4);

    /* the group's checkpoint resumed by one process of batch 8: the same global batches
     * from the same input position, so still the single run's weights */
    const char *single18[] = {TRAIN_FLAGS(one, "18"), "--threads=1", NULL};
    const char *resume18[] = {TRAIN_FLAGS(two, "18"), "--threads=1", NULL};
    ck_assert_msg(run_tool(out, sizeof out, "slimnet-train", single18) == 0, "%s", out);
    ck_assert_msg(run_tool(out, sizeof out, "slimnet-train", resume18) == 0, "%s", out);
    ck_assert_msg(strstr(out, "resuming from"), "%s", out);
    snprintf(a, sizeof a, "%s/model.ckpt-18", one);
    snprintf(b, sizeof b, "%s/model.ckpt-18", two);
    assert_close_ckpt(a, b, 1e-4);
}
END_TEST

/* A worker killed mid-run fails the chief at once, by name; the chief's last checkpoint
 * stays, and the restarted job resumes from it (its input position included).  A worker
 * that never arrives is named at the timeout; ps tasks need --sync_replicas. */
START_TEST(distributed_faults) {
    char dir[PATH_MAX + 16], out[65536], out2[65536];
    snprintf(dir, sizeof dir, "%s/dist_fault", g_root);
    int port = free_ports();
    char tc[512], tw[512];
    tf_config(tc, sizeof tc, port, "chief", 0);
    tf_config(tw, sizeof tw, port, "worker", 0);
    const char *forever[] = {TRAIN_FLAGS(dir, "0"), "--threads=1", "--save_interval_secs=1",
                             "--log_every_n_steps=1", "--dist_timeout_secs=20", NULL};
    int fw, fc;
    pid_t pc = spawn_train(tc, forever, &fc);
    pid_t pw = spawn_train(tw, forever, &fw);
    /* wait for a checkpoint and step 40, then kill the worker */
    char buf[65536];
    size_t used = 0;
    ssize_t r;
    double killed = 0;
    while ((r = read(fc, buf + used, sizeof buf - 1 - used)) > 0) {
        used += (size_t)r;
        buf[used] = 0;
        if (!killed && strstr(buf, "global step 40:") && file_exists(dir, "checkpoint")) {
            kill(pw, SIGKILL);
            struct timespec t;
            clock_gettime(CLOCK_MONOTONIC, &t);
            killed = (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
        }
        if (used > sizeof buf - 4096) {   /* keep the tail */
            memmove(buf, buf + used - 2048, 2048);
            used = 2048;
        }
    }
    close(fc);
    int status;
    waitpid(pc, &status, 0);
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    double took = (double)t.tv_sec + 1e-9 * (double)t.tv_nsec - killed;
    finish(pw, fw, out2, sizeof out2);
    ck_assert_msg(killed > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 1, "%s", buf);
    char name[64];
    snprintf(name, sizeof name, "worker 0 (127.0.0.1:%d) ended", port + 1);
    ck_assert_msg(strstr(buf, name), "%s", buf);
    ck_assert_msg(took < 5, "named after %.1f s", took);
    const char *line = strstr(buf, name);   /* the whole line that names it */
    while (line && line > buf && line[-1] != '\n') line--;
    printf("[tools] a killed worker, named by the chief after %.2f s: %.*s\n", took,
           line ? (int)strcspn(line, "\n") : 0, line ? line : "");

    /* the whole job again: it resumes from the chief's newest checkpoint */
    port = free_ports();
    tf_config(tc, sizeof tc, port, "chief", 0);
    tf_config(tw, sizeof tw, port, "worker", 0);
    const char *more[] = {TRAIN_FLAGS(dir, "60"), "--threads=1", NULL};
    pc = spawn_train(tc, more, &fc);
    pw = spawn_train(tw, more, &fw);
    int rc = finish(pc, fc, out, sizeof out), rw = finish(pw, fw, out2, sizeof out2);
    ck_assert_msg(rc == 0 && rw == 0, "chief %d:\n%s\nworker %d:\n%s", rc, out, rw, out2);
    ck_assert_msg(strstr(out, "resuming from") && strstr(out, "finished at global step 60"),
                  "%s", out);

    /* a worker that never comes: named at the timeout */
    port = free_ports();
    tf_config(tc, sizeof tc, port, "chief", 0);
    const char *alone[] = {TRAIN_FLAGS(dir, "70"), "--threads=1", "--dist_timeout_secs=2",
                           NULL};
    pc = spawn_train(tc, alone, &fc);
    rc = finish(pc, fc, out, sizeof out);
    snprintf(name, sizeof name, "worker 0 (127.0.0.1:%d) never arrived", port + 1);
    ck_assert_msg(rc == 1 && strstr(out, name), "%d: %s", rc, out);

    /* ps tasks with --sync_replicas: they rest (the chief and workers average) */
    char tps[512];
    snprintf(tps, sizeof tps, "{\"cluster\": {\"chief\": [\"127.0.0.1:%d\"], \"ps\": "
             "[\"127.0.0.1:%d\"]}, \"task\": {\"type\": \"ps\", \"index\": 0}}", port, port + 1);
    const char *sync[] = {TRAIN_FLAGS(dir, "70"), "--sync_replicas", NULL};
    pc = spawn_train(tps, sync, &fc);
    rc = finish(pc, fc, out, sizeof out);
    ck_assert_msg(rc == 0 && strstr(out, "ps 0: nothing to serve"), "%d: %s", rc, out);
    /* TF-slim's startup_delay_steps is an asynchronous job's (it must be 0 with a sync
     * optimizer) */
    tf_config(tc, sizeof tc, port, "worker", 0);
    const char *delay[] = {TRAIN_FLAGS(dir, "70"), "--startup_delay_steps=5", NULL};
    pc = spawn_train(tc, delay, &fc);
    rc = finish(pc, fc, out, sizeof out);
    ck_assert_msg(rc == 2 && strstr(out, "--startup_delay_steps: only in an asynchronous job"),
                  "%d: %s", rc, out);
}
END_TEST

/* ---- asynchronous training: ps tasks (TF_CONFIG with "ps", no --sync_replicas) ------------ */

/* The vendor's cluster shape on 127.0.0.1: ps i on port + i (ps 0's port serves the
 * rendezvous), the master on port + nps, workers after it. */
static void tf_config_ps(char *buf, size_t cap, int port, int nps, int nworkers,
                         const char *type, int index) {
    char ps[256] = "", wk[256] = "";
    for (int i = 0; i < nps; i++)
        snprintf(ps + strlen(ps), sizeof ps - strlen(ps), "%s\"127.0.0.1:%d\"", i ? ", " : "",
                 port + i);
    for (int i = 0; i < nworkers; i++)
        snprintf(wk + strlen(wk), sizeof wk - strlen(wk), "%s\"127.0.0.1:%d\"", i ? ", " : "",
                 port + nps + 1 + i);
    snprintf(buf, cap, "{\"cluster\": {\"master\": [\"127.0.0.1:%d\"], \"ps\": [%s], "
             "\"worker\": [%s]}, \"task\": {\"type\": \"%s\", \"index\": %d}}", port + nps, ps,
             wk, type, index);
}

/* A job of nps ps tasks, the master and nworkers workers, each with args (the master's
 * train_dir is dir, the others' dir_other).  Their outputs into outs[0..], in the order ps,
 * master, workers; exit codes into rc.  kill_task >= 0: that task is killed once the
 * master's output shows kill_after. */
typedef struct ps_job {
    int nps, nworkers, kill_task;
    const char *kill_after;
    double killed_at, master_done_at;
    int kill_sig;        /* 0: SIGKILL */
} ps_job;

/* The end of a task's output, for an assertion's message (Check's messages are short). */
static const char *tail(const char *out) {
    size_t n = strlen(out);
    return n > 1500 ? out + n - 1500 : out;
}

static double mono_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void run_ps_job(ps_job *j, const char *const *master_args, const char *const *other_args,
                       char outs[][32768], int *rc) {
    int port = free_ports(), n = j->nps + 1 + j->nworkers, fd[8];
    pid_t pid[8];
    for (int i = 0; i < n; i++) {
        char tf[1024];
        const char *type = i < j->nps ? "ps" : i == j->nps ? "master" : "worker";
        int index = i < j->nps ? i : i == j->nps ? 0 : i - j->nps - 1;
        tf_config_ps(tf, sizeof tf, port, j->nps, j->nworkers, type, index);
        pid[i] = spawn_train(tf, i == j->nps ? master_args : other_args, &fd[i]);
    }
    /* the master's output as it comes, to kill a task at the right moment */
    size_t used = 0;
    ssize_t r;
    char *buf = outs[j->nps];
    buf[0] = 0;
    while ((r = read(fd[j->nps], buf + used, 32767 - used)) > 0) {
        used += (size_t)r;
        buf[used] = 0;
        if (j->kill_task >= 0 && !j->killed_at && strstr(buf, j->kill_after)) {
            kill(pid[j->kill_task], j->kill_sig ? j->kill_sig : SIGKILL);
            j->killed_at = mono_now();
        }
        if (used > 30000) {   /* keep the tail */
            memmove(buf, buf + used - 8192, 8192);
            used = 8192;
        }
    }
    close(fd[j->nps]);
    int status;
    waitpid(pid[j->nps], &status, 0);
    j->master_done_at = mono_now();
    rc[j->nps] = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    for (int i = 0; i < n; i++)
        if (i != j->nps) rc[i] = finish(pid[i], fd[i], outs[i], sizeof outs[i]);
}

/* The vendor's TF_CONFIG shape (master, ps x2, worker) trains lenet with the same command
 * on every process: the master writes the checkpoints (TF's names, optimizer slots and
 * global_step from the ps tasks), the ps tasks hold 8 variables between them, a local run
 * resumes from the job's checkpoint.  One worker alone on a ps trains exactly as one local
 * process does (the same checkpoint, bit for bit). */
START_TEST(async_parameter_servers) {
    char dir[PATH_MAX + 16], other[PATH_MAX + 16], local[PATH_MAX + 16], outs[4][32768];
    snprintf(dir, sizeof dir, "%s/async", g_root);
    snprintf(other, sizeof other, "%s/async_other", g_root);
    snprintf(local, sizeof local, "%s/async_local", g_root);
    const char *args[] = {TRAIN_FLAGS(dir, "30"), "--threads=1", "--startup_delay_steps=10",
                          NULL};
    const char *oargs[] = {TRAIN_FLAGS(other, "30"), "--threads=1", "--startup_delay_steps=10",
                           NULL};
    int rc[4];
    ps_job j = {2, 1, -1, NULL, 0, 0, 0};
    run_ps_job(&j, args, oargs, outs, rc);
    for (int i = 0; i < 4; i++)
        ck_assert_msg(rc[i] == 0, "task %d: exit %d:\n%s", i, rc[i], tail(outs[i]));
    ck_assert_msg(strstr(outs[2], "waiting on the ps, staleness") &&
                  strstr(outs[2], "finished at global step"), "%s", tail(outs[2]));
    ck_assert_msg(strstr(outs[0], "holding 4 variables") && strstr(outs[1], "holding 4 "
                  "variables") && strstr(outs[0], "the job ended"), "%s\n%s", tail(outs[0]),
                  tail(outs[1]));
    ck_assert_msg(strstr(outs[3], "worker 1: ") && !strstr(outs[3], "global step 5:"), "%s",
                  tail(outs[3]));
    /* the worker joins once the chief alone has reached --startup_delay_steps, then pushes */
    static const char key[] = "gradients at its own pace, from global step ";
    const char *from = strstr(outs[3], key), *pushed = strstr(outs[3], " pushes from this");
    while (pushed && pushed > outs[3] && isdigit((unsigned char)pushed[-1])) pushed--;
    ck_assert_msg(strstr(outs[3], "starts at global step 10 (--startup_delay_steps)") && from &&
                  atoi(from + strlen(key)) >= 10 && pushed && atoi(pushed) > 0, "%s",
                  tail(outs[3]));
    struct stat sb;
    ck_assert_msg(stat(other, &sb) != 0, "a worker or ps wrote %s", other);
    const char *last = strstr(outs[2], "checkpoint ");
    ck_assert_ptr_nonnull(last);
    printf("[tools] master, 2 ps, 1 worker: %.*s\n", (int)strcspn(outs[2] + (strstr(outs[2],
           "slimnet-train: finished") - outs[2]), "\n"), strstr(outs[2], "slimnet-train: finished"));
    sn_ctx *ctx = tu_ctx();
    char path[PATH_MAX + 64];
    ck_assert_int_eq(sn_ckpt_latest(ctx, dir, path, sizeof path), SN_OK);
    sn_ckpt *ck = NULL;
    ck_assert_int_eq(sn_ckpt_open(ctx, path, &ck), SN_OK);
    ck_assert_int_ge(sn_ckpt_find(ck, "global_step"), 0);
    ck_assert_int_ge(sn_ckpt_find(ck, "LeNet/fc3/weights/Momentum"), 0);
    sn_ckpt_close(ck);
    sn_ctx_free(ctx);
    char out[65536];   /* a local run resumes from it */
    const char *more[] = {TRAIN_FLAGS(dir, "40"), "--threads=1", NULL};
    ck_assert_msg(run_tool(out, sizeof out, "slimnet-train", more) == 0 &&
                  strstr(out, "resuming from") && strstr(out, "finished at global step 40"),
                  "%s", out);

    /* one worker (the master) on one ps equals one local process, moving averages (kept on
     * the ps) included */
    const char *one[] = {TRAIN_FLAGS(local, "12"), "--threads=1", "--moving_average_decay=0.9",
                         NULL};
    ck_assert_msg(run_tool(out, sizeof out, "slimnet-train", one) == 0, "%s", out);
    snprintf(dir, sizeof dir, "%s/async_one", g_root);
    const char *args1[] = {TRAIN_FLAGS(dir, "12"), "--threads=1", "--moving_average_decay=0.9",
                           NULL};
    ps_job j1 = {1, 0, -1, NULL, 0, 0, 0};
    run_ps_job(&j1, args1, args1, outs, rc);
    ck_assert_msg(rc[0] == 0 && rc[1] == 0, "ps %d, master %d:\n%s\n%s", rc[0], rc[1],
                  tail(outs[0]), tail(outs[1]));
    ck_assert_msg(strstr(outs[0], "and moving averages"), "%s", tail(outs[0]));
    char a[PATH_MAX + 32], b[PATH_MAX + 32];
    snprintf(a, sizeof a, "%s/model.ckpt-12", local);
    snprintf(b, sizeof b, "%s/model.ckpt-12", dir);
    assert_close_ckpt(a, b, 0.0);
    ctx = tu_ctx();
    ck = NULL;
    ck_assert_int_eq(sn_ckpt_open(ctx, b, &ck), SN_OK);
    ck_assert_int_ge(sn_ckpt_find(ck, "LeNet/fc3/weights/ExponentialMovingAverage"), 0);
    sn_ckpt_close(ck);
    sn_ctx_free(ctx);
}
END_TEST

/* Faults: a worker killed mid-run does not stop the job (the ps names it, the master goes on
 * to its last step); a ps killed mid-run stops the master at once, named, its last
 * checkpoint intact, and the whole job restarted resumes from it; a worker with other flags
 * than the master's is refused, the others unharmed; a ps ended by SIGTERM exits 0 and is
 * named by the master. */
START_TEST(async_faults) {
    char dir[PATH_MAX + 32], other[PATH_MAX + 32], outs[4][32768];
    snprintf(dir, sizeof dir, "%s/async_fault", g_root);
    snprintf(other, sizeof other, "%s/async_fault_other", g_root);
    const char *args[] = {TRAIN_FLAGS(dir, "80"), "--threads=1", "--log_every_n_steps=1",
                          "--save_interval_secs=1", "--dist_timeout_secs=20",
                          "--startup_delay_steps=0", NULL};
    const char *oargs[] = {TRAIN_FLAGS(other, "80"), "--threads=1", "--dist_timeout_secs=20",
                           "--startup_delay_steps=0", NULL};
    int rc[4];
    ps_job j = {1, 1, 2, "epoch 1.", 0, 0, 0};   /* the worker dies (the step moves by 1 or 2) */
    run_ps_job(&j, args, oargs, outs, rc);
    ck_assert_msg(j.killed_at > 0 && rc[0] == 0 && rc[1] == 0, "ps %d, master %d:\n%s\n%s",
                  rc[0], rc[1], tail(outs[0]), tail(outs[1]));
    ck_assert_msg(strstr(outs[0], "worker 0 (127.0.0.1:") && strstr(outs[0], "ended (its "
                  "connection closed); serving the others"), "%s", tail(outs[0]));
    ck_assert_msg(strstr(outs[1], "finished at global step 8"), "%s", tail(outs[1]));
    const char *line = strstr(outs[0], "worker 0 (");
    while (line && line > outs[0] && line[-1] != '\n') line--;
    printf("[tools] a killed worker, the ps goes on: %.*s\n", (int)strcspn(line, "\n"), line);

    /* ps 1 dies: the master stops, naming it, and keeps its last checkpoint */
    snprintf(dir, sizeof dir, "%s/async_fault_ps", g_root);
    const char *args2[] = {TRAIN_FLAGS(dir, "0"), "--threads=1", "--log_every_n_steps=1",
                           "--save_interval_secs=1", "--dist_timeout_secs=20", NULL};
    ps_job j2 = {2, 0, 1, "global step 30:", 0, 0, 0};
    run_ps_job(&j2, args2, args2, outs, rc);
    double took = j2.master_done_at - j2.killed_at;
    ck_assert_msg(j2.killed_at > 0 && rc[2] == 1 && strstr(outs[2], "ps 1 (127.0.0.1:") &&
                  strstr(outs[2], "it ended"), "master %d:\n%s", rc[2], tail(outs[2]));
    ck_assert_msg(took < 5, "named after %.1f s", took);
    ck_assert(file_exists(dir, "checkpoint"));
    line = strstr(outs[2], "ps 1 (127.0.0.1:");
    while (line && line > outs[2] && line[-1] != '\n') line--;
    printf("[tools] a killed ps, named by the master after %.2f s: %.*s\n", took,
           (int)strcspn(line, "\n"), line);
    const char *again[] = {TRAIN_FLAGS(dir, "60"), "--threads=1", NULL};
    ps_job j3 = {2, 0, -1, NULL, 0, 0, 0};
    run_ps_job(&j3, again, again, outs, rc);
    ck_assert_msg(rc[0] == 0 && rc[1] == 0 && rc[2] == 0 && strstr(outs[2], "resuming from") &&
                  strstr(outs[2], "finished at global step 60"), "%d %d %d:\n%s", rc[0], rc[1],
                  rc[2], tail(outs[2]));

    /* a worker started with other flags (another optimizer) is refused before it pushes
     * anything; the others train on */
    snprintf(dir, sizeof dir, "%s/async_fault_flags", g_root);
    const char *margs[] = {TRAIN_FLAGS(dir, "20"), "--threads=1", NULL};
    const char *wargs[] = {TRAIN_FLAGS(other, "20"), "--threads=1", "--optimizer=sgd", NULL};
    ps_job j4 = {1, 1, -1, NULL, 0, 0, 0};
    run_ps_job(&j4, margs, wargs, outs, rc);
    ck_assert_msg(rc[0] == 0 && rc[1] == 0 && strstr(outs[1], "finished at global step 20"),
                  "ps %d, master %d:\n%s\n%s", rc[0], rc[1], tail(outs[0]), tail(outs[1]));
    ck_assert_msg(rc[2] == 1 && strstr(outs[2], "holds other variables or another optimizer"),
                  "worker %d:\n%s", rc[2], tail(outs[2]));

    /* SIGTERM to a ps (the platform ending it): it stops serving at once, says goodbye to
     * the workers and exits 0, saying so; the master stops, naming it, at once (not at its
     * timeout: a wait for the ps's answer used to see the connection close only then) */
    snprintf(dir, sizeof dir, "%s/async_fault_term", g_root);
    const char *targs[] = {TRAIN_FLAGS(dir, "0"), "--threads=1", "--log_every_n_steps=1",
                           "--dist_timeout_secs=6", NULL};
    ps_job j5 = {1, 0, 0, "global step 5:", 0, 0, SIGTERM};
    run_ps_job(&j5, targs, targs, outs, rc);
    ck_assert_msg(j5.killed_at > 0 && rc[0] == 0 && strstr(outs[0], "interrupted at global "
                  "step"), "ps %d:\n%s", rc[0], tail(outs[0]));
    ck_assert_msg(rc[1] == 1 && strstr(outs[1], "ps 0 (127.0.0.1:") &&
                  strstr(outs[1], "it ended"), "master %d:\n%s", rc[1], tail(outs[1]));
    ck_assert_msg(j5.master_done_at - j5.killed_at < 5, "the master took %.1f s (its "
                  "timeout: 6 s)", j5.master_done_at - j5.killed_at);
}
END_TEST

/* mpirun -np 2 slimnet-train, where an MPI is installed (Open MPI or MPICH; skipped
 * otherwise): the ranks come from the launcher's variables, the rendezvous from
 * MASTER_PORT on 127.0.0.1, and the two processes of batch 4 train as one of batch 8. */
START_TEST(distributed_mpirun) {
    char mpirun[PATH_MAX] = "", out[65536];
    FILE *w = popen("command -v mpirun 2>/dev/null", "r");
    if (w && fgets(mpirun, sizeof mpirun, w)) mpirun[strcspn(mpirun, "\n")] = 0;
    if (w) pclose(w);
    if (!mpirun[0]) {
        printf("[tools] mpirun is not installed: the mpirun variant is skipped\n");
        return;
    }
    char version[256] = "";
    FILE *v = popen("mpirun --version 2>&1", "r");
    if (v && !fgets(version, sizeof version, v)) version[0] = 0;
    if (v) pclose(v);
    bool open_mpi = strstr(version, "Open MPI") || strstr(version, "OpenRTE");
    char one[PATH_MAX + 16], two[PATH_MAX + 16];
    snprintf(one, sizeof one, "%s/mpi_one", g_root);
    snprintf(two, sizeof two, "%s/mpi_two", g_root);
    const char *single[] = {TRAIN_FLAGS(one, "12"), "--threads=1", NULL};
    ck_assert_msg(run_tool(out, sizeof out, "slimnet-train", single) == 0, "%s", out);

    char train[PATH_MAX + 64], port[16];
    snprintf(train, sizeof train, "%s/slimnet-train", g_bin);
    snprintf(port, sizeof port, "%d", free_ports());
    const char *flags[] = {TRAIN_FLAGS(two, "12"), "--batch_size=4", "--threads=1", NULL};
    const char *argv[80];
    int n = 0;
    argv[n++] = mpirun;
    if (open_mpi) {   /* two slots on a machine of any size; CI runs as root */
        argv[n++] = "--oversubscribe";
        if (geteuid() == 0) argv[n++] = "--allow-run-as-root";
    }
    argv[n++] = "-np";
    argv[n++] = "2";
    argv[n++] = train;
    for (int i = 0; flags[i] && n < 79; i++) argv[n++] = flags[i];
    argv[n] = NULL;
    char master_port[32];
    snprintf(master_port, sizeof master_port, "MASTER_PORT=%s", port);
    const char *env[] = {"TF_CONFIG", master_port, NULL};
    int fd;
    pid_t pid = spawn(argv, env, &fd);
    int rc = finish(pid, fd, out, sizeof out);
    ck_assert_msg(rc == 0, "%s: %d\n%s", mpirun, rc, out);
    ck_assert_msg(strstr(out, "rank 0 of 2") && strstr(out, "rank 1 of 2") &&
                  strstr(out, "batch 8;"), "%s", out);
    char a[PATH_MAX + 32], b[PATH_MAX + 32];
    snprintf(a, sizeof a, "%s/model.ckpt-12", one);
    snprintf(b, sizeof b, "%s/model.ckpt-12", two);
    assert_close_ckpt(a, b, 1e-4);
    printf("[tools] %s: mpirun -np 2 trains as one process of twice the batch\n",
           open_mpi ? "Open MPI" : "MPICH");
}
END_TEST

Suite *suite_tools(void) {
    Suite *s = suite_create("tools");
    TCase *tc = tcase_create("tools");
    tcase_add_unchecked_fixture(tc, suite_setup, suite_teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, train_eval_classify);
    tcase_add_test(tc, train_bf16);
    tcase_add_test(tc, resume_is_deterministic);
    tcase_add_test(tc, fine_tune_scopes);
    tcase_add_test(tc, nan_stops_without_checkpoint);
    tcase_add_test(tc, sigint_saves);
    tcase_add_test(tc, bad_flags);
    tcase_add_test(tc, bad_command_lines);
    tcase_add_test(tc, resume_copied_and_damaged);
    tcase_add_test(tc, convert_empty_class);
    tcase_add_test(tc, distributed_equals_one);
    tcase_add_test(tc, distributed_faults);
    tcase_add_test(tc, distributed_mpirun);
    tcase_add_test(tc, async_parameter_servers);
    tcase_add_test(tc, async_faults);
    suite_add_tcase(s, tc);
    return s;
}
