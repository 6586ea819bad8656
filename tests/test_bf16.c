/* test_bf16.c: mixed precision (sn_compile_params.precision = SN_PRECISION_BF16) on the CPU,
 * where every op runs emulated (lib/bf16.c): the encoding, and whole networks against their
 * float32 selves.  The CUDA bf16 kernels are held to this path in test_cuda_net.c. */
#include <stdio.h>
#include <string.h>
#include "testutil.h"
#include "../kernels/kernels.h"

static float from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Round to nearest even on the bit patterns around every kind of boundary; the expectations
 * follow from the definition (bf16 = the upper 16 bits of a float32, ties to the even one). */
START_TEST(test_bf16_encode) {
    static const struct { uint32_t in; uint16_t out; } c[] = {
        {0x3f800000u, 0x3f80u},   /* 1 */
        {0x3f808000u, 0x3f80u},   /* 1 + 2^-8: a tie, 0x3f80 is even */
        {0x3f818000u, 0x3f82u},   /* 1 + 3*2^-8: a tie, up to the even 0x3f82 */
        {0x3f808001u, 0x3f81u},   /* just above the tie */
        {0x3f807fffu, 0x3f80u},   /* just below it */
        {0xbf818000u, 0xbf82u},   /* the sign does not change the rounding */
        {0x7f7f7fffu, 0x7f7fu},   /* below the tie under the largest bf16 */
        {0x7f7fffffu, 0x7f80u},   /* FLT_MAX rounds to infinity, as in TensorFlow */
        {0x7f800000u, 0x7f80u},   /* inf */
        {0xff800000u, 0xff80u},   /* -inf */
        {0x80000000u, 0x8000u},   /* -0 */
        {0x00008000u, 0x0000u},   /* subnormal tie, down to even 0 */
        {0x00018000u, 0x0002u},   /* subnormal tie, up to even 2 */
        {0x00017fffu, 0x0001u},
        {0x7f800001u, 0x7fc0u},   /* a signalling NaN whose payload would truncate to inf */
        {0xffc12345u, 0xffc1u},   /* a quiet NaN keeps its sign and top payload bits */
    };
    for (size_t k = 0; k < sizeof c / sizeof c[0]; k++) {
        uint16_t got = sn__bf16_encode(from_bits(c[k].in));
        ck_assert_msg(got == c[k].out, "encode(0x%08x) = 0x%04x, expected 0x%04x", c[k].in, got,
                      c[k].out);
        if (c[k].in == 0x7f800001u || c[k].in == 0xffc12345u)
            ck_assert(isnan(sn__bf16_decode(got)));
    }
    ck_assert(sn__bf16_decode(0x3f81u) == 1.0f + 1.0f / 128.0f);
    ck_assert(sn__bf16_decode(0x0001u) == from_bits(0x00010000u));
    /* Every bf16 value survives decode then encode. */
    for (uint32_t h = 0; h < 65536; h++) {
        float f = sn__bf16_decode((uint16_t)h);
        if (f == f) ck_assert_int_eq(sn__bf16_encode(f), h);
    }
} END_TEST

/* A one-conv net over input `in` (dims d) with weights "w" set to wv: its float32 output. */
static float *conv_f32(const float *in, const int64_t *d, const float *wv, const int64_t *wd,
                       int stride, int64_t *out_numel) {
    sn_ctx *ctx = tu_ctx();
    sn_graph *g = NULL;
    ck_assert_int_eq(sn_graph_new(ctx, &g), SN_OK);
    sn_init z = sn_init_zeros();
    sn_node x = sn_input(g, "x", SN_DTYPE_F32, 4, d);
    sn_node y = sn_op_conv2d(g, x, sn_variable(g, "w", 4, wd, &z, SN_VAR_TRAINABLE), stride,
                             stride, 1, SN_PAD_SAME);
    sn_graph_end_point(g, y, "y");
    sn_compile_params pp = sn_compile_params_default();
    pp.backward = 0;
    pp.batch_size = d[0];
    sn_net *net = NULL;
    ck_assert_int_eq(sn_net_compile(g, &pp, &net), SN_OK);
    sn_tensor *t = NULL, *o = NULL;
    ck_assert_int_eq(sn_tensor_wrap(ctx, (void *)wv, SN_DTYPE_F32, 4, wd, SN_BORROW, &t), SN_OK);
    ck_assert_int_eq(sn_net_set_var(net, "w", t), SN_OK);
    sn_tensor_free(t);
    ck_assert_int_eq(sn_tensor_wrap(ctx, (void *)in, SN_DTYPE_F32, 4, d, SN_BORROW, &t), SN_OK);
    ck_assert_int_eq(sn_net_set_input(net, x, t), SN_OK);
    sn_tensor_free(t);
    ck_assert_int_eq(sn_net_forward(net), SN_OK);
    ck_assert_int_eq(sn_net_get_output(net, y, &o), SN_OK);
    *out_numel = sn_tensor_numel(o);
    float *r = malloc((size_t)*out_numel * sizeof *r);
    memcpy(r, sn_tensor_data(o), (size_t)*out_numel * sizeof *r);
    sn_tensor_free(o);
    sn_net_free(net);
    sn_graph_free(g);
    sn_ctx_free(ctx);
    return r;
}

static void round_bf16(float *v, int64_t n) {
    for (int64_t i = 0; i < n; i++) v[i] = sn__bf16_decode(sn__bf16_encode(v[i]));
}

/* Where the roundings are, exactly: image (float32) -> conv -> relu -> conv (stride 2) in
 * bf16 is, bit for bit, the float32 convolution of the image and the weights both rounded to
 * bf16 (a convolution multiplies bf16 operands), rounded; relu (exact on bf16 values); the
 * float32 convolution of that with the rounded weights, rounded.  With the relu fused into
 * the first convolution (an inference net) or not, since relu commutes with rounding. */
START_TEST(test_bf16_rounding_points) {
    const int64_t xd[4] = {2, 9, 9, 5}, w1d[4] = {3, 3, 5, 8}, w2d[4] = {3, 3, 8, 6};
    size_t nx = 2 * 9 * 9 * 5;
    float *x = malloc(nx * sizeof *x);
    tu_fill(x, nx, 21);
    for (int fuse = 0; fuse < 2; fuse++) {
        sn_ctx *ctx = tu_ctx();
        sn_graph *g = NULL;
        ck_assert_int_eq(sn_graph_new(ctx, &g), SN_OK);
        sn_init tn = {.kind = SN_INIT_TRUNCATED_NORMAL, .stddev = 0.3f};
        int64_t in[4] = {SN_BATCH, 9, 9, 5};
        sn_node xi = sn_input(g, "x", SN_DTYPE_F32, 4, in);
        sn_node c1 = sn_op_conv2d(g, xi, sn_variable(g, "w1", 4, w1d, &tn, SN_VAR_TRAINABLE), 1,
                                  1, 1, SN_PAD_SAME);
        sn_node c2 = sn_op_conv2d(g, sn_op_relu(g, c1),
                                  sn_variable(g, "w2", 4, w2d, &tn, SN_VAR_TRAINABLE), 2, 2, 1,
                                  SN_PAD_SAME);
        sn_graph_end_point(g, c2, "c2");
        sn_compile_params pp = sn_compile_params_default();
        pp.batch_size = 2;
        pp.backward = 0;
        pp.fuse = fuse;
        pp.precision = SN_PRECISION_BF16;
        sn_net *net = NULL;
        ck_assert_msg(sn_net_compile(g, &pp, &net) == SN_OK, "%s", sn_ctx_errmsg(ctx));
        sn_tensor *t = NULL, *w1 = NULL, *w2 = NULL, *out = NULL;
        ck_assert_int_eq(sn_tensor_wrap(ctx, x, SN_DTYPE_F32, 4, xd, SN_BORROW, &t), SN_OK);
        ck_assert_int_eq(sn_net_set_input(net, xi, t), SN_OK);
        sn_tensor_free(t);
        ck_assert_int_eq(sn_net_forward(net), SN_OK);
        ck_assert_int_eq(sn_net_get_output(net, c2, &out), SN_OK);
        ck_assert_int_eq(sn_net_get_var(net, "w1", &w1), SN_OK);
        ck_assert_int_eq(sn_net_get_var(net, "w2", &w2), SN_OK);
        round_bf16(sn_tensor_data(w1), sn_tensor_numel(w1));
        round_bf16(sn_tensor_data(w2), sn_tensor_numel(w2));
        int64_t n1 = 0, n2 = 0;
        float *xr = malloc(nx * sizeof *xr);
        memcpy(xr, x, nx * sizeof *xr);
        round_bf16(xr, (int64_t)nx);
        float *r = conv_f32(xr, xd, sn_tensor_data(w1), w1d, 1, &n1);
        free(xr);
        for (int64_t i = 0; i < n1; i++) r[i] = r[i] > 0.0f ? r[i] : 0.0f;
        round_bf16(r, n1);
        const int64_t rd[4] = {2, 9, 9, 8};
        float *ref = conv_f32(r, rd, sn_tensor_data(w2), w2d, 2, &n2);
        round_bf16(ref, n2);
        ck_assert_int_eq(n2, sn_tensor_numel(out));
        ck_assert_msg(memcmp(ref, sn_tensor_data(out), (size_t)n2 * sizeof(float)) == 0,
                      "fuse %d: the bf16 net's output is not the reference's bits", fuse);
        free(r);
        free(ref);
        sn_tensor_free(out);
        sn_tensor_free(w1);
        sn_tensor_free(w2);
        sn_net_free(net);
        sn_graph_free(g);
        sn_ctx_free(ctx);
    }
    free(x);
} END_TEST

typedef struct run {
    sn_ctx *ctx;
    sn_graph *g;
    sn_net *net;
    sn_node logits, loss, images, labels;
} run;

static void build(run *r, const char *model, int precision, int64_t batch, int64_t size,
                  int fuse) {
    r->ctx = tu_ctx();
    ck_assert_int_eq(sn_graph_new(r->ctx, &r->g), SN_OK);
    int64_t in[4] = {SN_BATCH, size, size, 3}, ld[1] = {SN_BATCH};
    r->images = sn_input(r->g, "images", SN_DTYPE_F32, 4, in);
    r->labels = sn_input(r->g, "labels", SN_DTYPE_I32, 1, ld);
    sn_model_params mp = sn_model_params_default();
    mp.num_classes = 10;
    sn_model m;
    ck_assert_msg(sn_model_build(r->g, model, r->images, &mp, &m) == SN_OK, "%s",
                  sn_graph_errmsg(r->g));
    r->logits = m.logits;
    r->loss = sn_op_softmax_xent(r->g, m.logits, r->labels, 0.0f);
    sn_compile_params pp = sn_compile_params_default();
    pp.batch_size = batch;
    pp.precision = precision;
    pp.fuse = fuse;
    ck_assert_msg(sn_net_compile(r->g, &pp, &r->net) == SN_OK, "%s", sn_ctx_errmsg(r->ctx));
}

static void feed(run *r, const float *x, const int32_t *y, int64_t batch, int64_t size) {
    int64_t xd[4] = {batch, size, size, 3}, yd[1] = {batch};
    sn_tensor *xt = NULL, *yt = NULL;
    ck_assert_int_eq(sn_tensor_wrap(r->ctx, (void *)x, SN_DTYPE_F32, 4, xd, SN_BORROW, &xt),
                     SN_OK);
    ck_assert_int_eq(sn_tensor_wrap(r->ctx, (void *)y, SN_DTYPE_I32, 1, yd, SN_BORROW, &yt),
                     SN_OK);
    ck_assert_int_eq(sn_net_set_input(r->net, r->images, xt), SN_OK);
    ck_assert_int_eq(sn_net_set_input(r->net, r->labels, yt), SN_OK);
    sn_tensor_free(xt);
    sn_tensor_free(yt);
}

static void free_run(run *r) {
    sn_net_free(r->net);
    sn_graph_free(r->g);
    sn_ctx_free(r->ctx);
}

static float scalar(run *r, sn_node n) {
    sn_tensor *t = NULL;
    ck_assert_int_eq(sn_net_get_output(r->net, n, &t), SN_OK);
    float v = ((const float *)sn_tensor_data(t))[0];
    sn_tensor_free(t);
    return v;
}

/* ||a - b|| / ||b|| over one gradient. */
static double rel_l2(const float *a, const float *b, int64_t n) {
    double d = 0, s = 0;
    for (int64_t i = 0; i < n; i++) {
        d += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        s += (double)b[i] * b[i];
    }
    return sqrt(d) / (sqrt(s) + 1e-30);
}

/* Networks without batch norm: bf16 moves the logits by a few bf16 ulps.  Gradients at
 * random initialization are sums with heavy cancellation (loss ~ ln 10, logits ~ 0), so
 * bf16's 2^-8 rounding of every activation gradient shows as 3-13% (L2, mean over the
 * variables; measured: cifarnet 2.8%, lenet 3.1%, alexnet_v2 7.7%, vgg_a 12.9%). */
static const struct { const char *model; int64_t size; } nets[] = {
    {"cifarnet", 32}, {"lenet", 28}, {"alexnet_v2", 224}, {"vgg_a", 224},
};

/* A bf16 net computes what its float32 self does, to bf16's precision: the same graph, seed
 * and input in both precisions. */
START_TEST(test_bf16_net_matches_fp32) {
    const char *model = nets[_i].model;
    const int64_t batch = 2, size = nets[_i].size;
    size_t n = (size_t)(batch * size * size * 3);
    float *x = malloc(n * sizeof *x);
    tu_fill(x, n, 5);
    int32_t y[2] = {3, 7};
    run a, b;
    build(&a, model, SN_PRECISION_FP32, batch, size, 1);
    build(&b, model, SN_PRECISION_BF16, batch, size, 1);
    sn_net_memory ma = sn_net_memory_info(a.net), mb = sn_net_memory_info(b.net);
    for (int k = 0; k < 2; k++) {
        run *r = k ? &b : &a;
        feed(r, x, y, batch, size);
        ck_assert_msg(sn_net_forward(r->net) == SN_OK, "%s", sn_ctx_errmsg(r->ctx));
        ck_assert_msg(sn_net_backward(r->net, r->loss) == SN_OK, "%s", sn_ctx_errmsg(r->ctx));
    }
    sn_tensor *la = NULL, *lb = NULL;
    ck_assert_int_eq(sn_net_get_output(a.net, a.logits, &la), SN_OK);
    ck_assert_int_eq(sn_net_get_output(b.net, b.logits, &lb), SN_OK);
    double e_logits = tu_max_rel_err(sn_tensor_data(lb), sn_tensor_data(la),
                                     (size_t)sn_tensor_numel(la));
    float loss_a = scalar(&a, a.loss), loss_b = scalar(&b, b.loss);
    double worst = 0, sum = 0;
    const char *worst_name = "";
    int cnt = 0;
    for (int v = 0; v < sn_graph_num_vars(a.g); v++) {
        sn_var_info vi;
        sn_graph_var(a.g, v, &vi);
        if (!(vi.flags & SN_VAR_TRAINABLE)) continue;
        sn_tensor *ga = NULL, *gb = NULL;
        ck_assert_int_eq(sn_net_get_grad(a.net, vi.name, &ga), SN_OK);
        ck_assert_int_eq(sn_net_get_grad(b.net, vi.name, &gb), SN_OK);
        double e = rel_l2(sn_tensor_data(gb), sn_tensor_data(ga), sn_tensor_numel(ga));
        if (e > worst || e != e) {
            worst = e != e ? INFINITY : e;
            worst_name = vi.name;
        }
        sum += e;
        cnt++;
        sn_tensor_free(ga);
        sn_tensor_free(gb);
    }
    printf("[bf16] %s %lldx%lld: arena %.1f MB float32, %.1f MB bf16; logits max rel err %.3g, "
           "loss %.6f vs %.6f, gradients rel L2 mean %.3g worst %.3g (%s)\n", model,
           (long long)size, (long long)size, ma.arena / 1e6, mb.arena / 1e6, e_logits, loss_b,
           loss_a, sum / cnt, worst, worst_name);
    fflush(stdout);
    ck_assert(mb.arena < 0.6 * ma.arena);
    ck_assert_msg(e_logits <= 1e-2, "logits differ by %.3g", e_logits);
    ck_assert_msg(fabsf(loss_b - loss_a) <= 1e-2f * loss_a, "loss %g vs %g", loss_b, loss_a);
    ck_assert_msg(sum / cnt <= 0.2, "gradients differ by %.3g on average", sum / cnt);
    sn_tensor_free(la);
    sn_tensor_free(lb);
    free_run(&a);
    free_run(&b);
    free(x);
} END_TEST

/* Networks with batch norm at random initialization are chaotic in their logits (a 1e-7
 * perturbation moves resnet_v1_50's by ~1e-5; bf16 rounds every activation by up to 2^-9),
 * so their bf16 and float32 values cannot be compared element by element.  What must hold is
 * that bf16 trains as float32 does: ten SGD steps on one batch (memorization) bring the loss
 * down by a like amount. */
static const struct { const char *model; int64_t size; float lr; } bn_nets[] = {
    {"mobilenet_v1", 32, 0.1f}, {"resnet_v1_50", 32, 0.01f},
    {"mobilenet_v3_small", 32, 0.1f},   /* hard swish, squeeze-excite: emulated ops */
};

START_TEST(test_bf16_trains_like_fp32) {
    const char *model = bn_nets[_i].model;
    const int64_t batch = 8, size = bn_nets[_i].size;
    size_t n = (size_t)(batch * size * size * 3);
    float *x = malloc(n * sizeof *x);
    tu_fill(x, n, 9);
    int32_t y[8] = {3, 7, 1, 0, 9, 2, 5, 3};
    float first[2], last[2];
    for (int k = 0; k < 2; k++) {
        run r;
        build(&r, model, k ? SN_PRECISION_BF16 : SN_PRECISION_FP32, batch, size, 1);
        feed(&r, x, y, batch, size);
        for (int step = 0; step < 10; step++) {
            ck_assert_msg(sn_net_forward(r.net) == SN_OK, "%s", sn_ctx_errmsg(r.ctx));
            float l = scalar(&r, r.loss);
            if (step == 0) first[k] = l;
            last[k] = l;
            ck_assert_msg(sn_net_backward(r.net, r.loss) == SN_OK, "%s", sn_ctx_errmsg(r.ctx));
            ck_assert_int_eq(sn_net_sgd_step(r.net, bn_nets[_i].lr), SN_OK);
        }
        free_run(&r);
    }
    printf("[bf16] %s %lldx%lld batch %lld, 10 SGD steps: loss %.4f -> %.4f in float32, "
           "%.4f -> %.4f in bf16\n", model, (long long)size, (long long)size, (long long)batch,
           first[0], last[0], first[1], last[1]);
    fflush(stdout);
    ck_assert(isfinite(last[1]));
    ck_assert_msg(last[0] < 0.5f * first[0], "float32 did not learn: %g -> %g", first[0],
                  last[0]);
    ck_assert_msg(first[0] - last[1] >= 0.8f * (first[0] - last[0]),
                  "bf16 lowered the loss to %g, float32 to %g", last[1], last[0]);
    free(x);
} END_TEST

Suite *suite_bf16(void) {
    Suite *s = suite_create("bf16");
    TCase *tc = tcase_create("bf16");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_bf16_encode);
    tcase_add_test(tc, test_bf16_rounding_points);
    tcase_add_loop_test(tc, test_bf16_net_matches_fp32, 0, (int)(sizeof nets / sizeof nets[0]));
    tcase_add_loop_test(tc, test_bf16_trains_like_fp32, 0,
                        (int)(sizeof bn_nets / sizeof bn_nets[0]));
    suite_add_tcase(s, tc);
    return s;
}
