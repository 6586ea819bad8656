/* dist_env.c: fuzz target for the process group's environment (lib/dist/env.c,
 * sn_dist_env_read).  With one part the input is TF_CONFIG; with more, TF_CONFIG is unset
 * and the parts are the launchers' variables in the order of vars[] below (torchrun's,
 * Slurm's and the rendezvous').  Whatever is accepted describes a sane group, and with ps
 * tasks a sane asynchronous group (env.cluster). */
#include <stdbool.h>
#include <string.h>
#include "fuzz.h"

static const char *vars[] = {"RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE",
                             "MASTER_ADDR", "MASTER_PORT", "SLURM_PROCID", "SLURM_NTASKS",
                             "SLURM_NNODES"};
enum { NVARS = sizeof vars / sizeof vars[0] };

/* Sets name to the n bytes at p (up to 64 KB, to the first NUL).  Through putenv and a
 * buffer per variable: glibc's setenv keeps every value it was ever given, a leak of
 * gigabytes over a fuzzing run. */
static void set_var(int i, const char *name, const uint8_t *p, size_t n) {
    static char buf[NVARS + 1][1 << 16];
    size_t k = strlen(name);
    if (n > sizeof buf[i] - k - 2) n = sizeof buf[i] - k - 2;
    memcpy(buf[i], name, k);
    buf[i][k] = '=';
    memcpy(buf[i] + k + 1, p, n);
    buf[i][k + 1 + n] = '\0';
    putenv(buf[i]);
}

static bool terminated(const char *s, size_t cap) { return memchr(s, '\0', cap) != NULL; }

SN_FUZZ_TARGET(dist_env) {
    static const char *others[] = {"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "PMI_RANK",
                                   "PMI_SIZE", "SN_DIST_HOST", "SN_DIST_LOCAL_RANK"};
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) unsetenv(others[i]);
    for (int i = 0; i < NVARS; i++) unsetenv(vars[i]);
    const uint8_t *part[NVARS];
    size_t len[NVARS];
    int n = fz_split(data, size, part, len, NVARS);
    if (n == 1) {
        set_var(NVARS, "TF_CONFIG", part[0], len[0]);
    } else {
        unsetenv("TF_CONFIG");
        for (int i = 0; i < n; i++)
            if (len[i]) set_var(i, vars[i], part[i], len[i]);
    }
    sn_dist_env env;
    if (sn_dist_env_read(fz_ctx(), &env) != SN_OK) return 0;
    const sn_dist_params *p = &env.params;
    FZ_CHECK(p->size >= 1);
    FZ_CHECK(p->rank >= -1 && p->rank < p->size);
    FZ_CHECK(p->master_port >= 1 && p->master_port <= 65535);
    FZ_CHECK(env.num_workers >= 0 && env.num_ps >= 0 && env.task_index >= 0);
    FZ_CHECK(terminated(env.source, sizeof env.source));
    FZ_CHECK(terminated(env.task_type, sizeof env.task_type));
    FZ_CHECK(terminated(p->master_addr, sizeof p->master_addr));
    FZ_CHECK(terminated(p->host, sizeof p->host));
    FZ_CHECK(terminated(p->name, sizeof p->name));
    FZ_CHECK(terminated(p->roster, sizeof p->roster));
    if (env.found && !strcmp(env.source, "TF_CONFIG")) {
        FZ_CHECK(p->size == env.num_workers);
        FZ_CHECK(p->master_addr[0] != '\0');
    }
    /* the asynchronous mode's group: every task but an evaluator, the ps tasks first */
    const sn_dist_params *c = &env.cluster;
    FZ_CHECK(c->size == 0 || c->size == env.num_ps + env.num_workers);
    FZ_CHECK(c->rank >= -1 && c->rank < (c->size > 0 ? c->size : 1));
    FZ_CHECK(c->size == 0 || (c->master_port >= 1 && c->master_port <= 65535));
    FZ_CHECK(terminated(c->master_addr, sizeof c->master_addr));
    FZ_CHECK(terminated(c->roster, sizeof c->roster));
    fz_touch(p->roster, strlen(p->roster));
    fz_touch(c->roster, strlen(c->roster));
    return 0;
}
