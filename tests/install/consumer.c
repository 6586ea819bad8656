/* consumer.c: a program outside the tree that finds slimnet through pkg-config (CI builds
 * it against `make install` to keep the README's linking instructions true). */
#include <slimnet.h>
#include <stdio.h>
int main(void) {
    sn_ctx *ctx; sn_ctx_params p = sn_ctx_params_default();
    if (sn_ctx_new(&p, &ctx) != SN_OK) return 1;
    sn_graph *g; sn_graph_new(ctx, &g);
    int64_t d[4] = {SN_BATCH, 224, 224, 3};
    sn_node x = sn_input(g, "images", SN_DTYPE_F32, 4, d);
    sn_model m; sn_model_params mp = sn_model_params_default();
    if (sn_model_build(g, "resnet_v1_50", x, &mp, &m) != SN_OK) return 2;
    long long params = 0;
    for (int i = 0; i < sn_graph_num_vars(g); i++) { sn_var_info v; sn_graph_var(g, i, &v);
        long long n = 1; for (int k = 0; k < v.rank; k++) n *= v.dims[k]; params += n; }
    printf("slimnet %s: resnet_v1_50 has %d variables, %lld parameters\n", sn_version(), sn_graph_num_vars(g), params);
    sn_graph_free(g); sn_ctx_free(ctx); return 0;
}
