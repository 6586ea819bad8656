/* env.c: the process group a process belongs to, from its environment (sn_dist_env_read).
 *
 * In this order of precedence:
 *   TF_CONFIG (TensorFlow's, as the vendor's platform and TF-slim's train script use it):
 *     {"cluster": {"chief"|"master": ["host:port"], "worker": [...], "ps": [...],
 *      "evaluator": [...]}, "task": {"type": "worker", "index": 1}}
 *     The group is the chief (or master) and the workers: the chief is rank 0, worker i is
 *     rank i + 1 (rank i without a chief).  Rank 0's host:port serves the rendezvous; ps
 *     and evaluator tasks are outside the group (rank -1).  With ps tasks, env->cluster is
 *     the asynchronous mode's group of every task but the evaluator: ps i is rank i, then
 *     the chief and the workers; ps 0's host:port serves its rendezvous.
 *   torchrun:   RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT;
 *   Open MPI:   OMPI_COMM_WORLD_RANK, _SIZE, _LOCAL_RANK, _LOCAL_SIZE;
 *   MPICH/PMI:  PMI_RANK, PMI_SIZE, MPI_LOCALRANKID, MPI_LOCALNRANKS;
 *   Slurm:      SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID, SLURM_NNODES.
 * The launchers give rank and size; the rendezvous is MASTER_ADDR:MASTER_PORT, by default
 * 127.0.0.1:29500 when every process runs on one machine (MASTER_ADDR is required across
 * machines).  SN_DIST_HOST names this process's own address for the others (default: the
 * TF_CONFIG entry's host; 127.0.0.1 with a loopback master; else the host name). */
#include <cjson/cJSON.h>
#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "../sn_internal.h"

#define MAX_TF_CONFIG (1 << 20)
#define DEFAULT_PORT 29500

sn_dist_params sn_dist_params_default(void) {
    sn_dist_params p;
    memset(&p, 0, sizeof p);
    p.size = 1;
    p.master_port = DEFAULT_PORT;
    snprintf(p.master_addr, sizeof p.master_addr, "127.0.0.1");
    p.timeout_secs = 300;
    return p;
}

sn_status sn_dist_backend_from_name(const char *name, sn_dist_backend *out) {
    static const char *names[] = {"gloo", "nccl"};
    for (int b = 0; b < 2; b++)
        if (name && out && !strcmp(name, names[b])) {
            *out = (sn_dist_backend)b;
            return SN_OK;
        }
    return SN_ERR_INVALID_ARG;
}

const char *sn_dist_backend_name(sn_dist_backend b) {
    return b == SN_DIST_GLOO ? "gloo" : b == SN_DIST_NCCL ? "nccl" : "unknown";
}

/* "host:port" or "[v6]:port" into host and port. */
static bool split_hostport(const char *s, char *host, size_t cap, int *port) {
    const char *colon = s[0] == '[' ? strstr(s, "]:") : strrchr(s, ':');
    if (!colon) return false;
    const char *h = s[0] == '[' ? s + 1 : s;
    size_t n = (size_t)(colon - h);
    const char *p = colon + (s[0] == '[' ? 2 : 1);
    char *end;
    long v = strtol(p, &end, 10);
    if (n == 0 || n >= cap || *end || end == p || v < 1 || v > 65535) return false;
    memcpy(host, h, n);
    host[n] = '\0';
    *port = (int)v;
    return true;
}

static bool is_loopback(const char *host) {
    return !strcmp(host, "localhost") || !strncmp(host, "127.", 4) || !strcmp(host, "::1");
}

/* An integer environment variable; false when unset. */
static bool env_int(sn_ctx *ctx, const char *name, long lo, long hi, long *out,
                    sn_status *st) {
    const char *v = getenv(name);
    if (!v || !*v) return false;
    char *end;
    long x = strtol(v, &end, 10);
    if (*end || x < lo || x > hi) {
        *st = sn__fail(ctx, SN_ERR_INVALID_ARG, "environment: %s='%s' is not an integer in "
                       "[%ld, %ld]", name, v, lo, hi);
        return false;
    }
    *out = x;
    return true;
}

/* This process's own address: SN_DIST_HOST, else given (the TF_CONFIG entry), else
 * loopback for a loopback master, else the host name. */
static void own_host(sn_dist_params *p, const char *given) {
    const char *h = getenv("SN_DIST_HOST");
    if (h && *h) snprintf(p->host, sizeof p->host, "%s", h);
    else if (given) snprintf(p->host, sizeof p->host, "%s", given);
    else if (is_loopback(p->master_addr)) snprintf(p->host, sizeof p->host, "127.0.0.1");
    else if (gethostname(p->host, sizeof p->host) != 0) p->host[0] = '\0';
    p->host[sizeof p->host - 1] = '\0';
}

static const cJSON *task_list(sn_ctx *ctx, const cJSON *cluster, const char *type,
                              sn_status *st) {
    const cJSON *l = cJSON_GetObjectItemCaseSensitive(cluster, type);
    if (!l || *st != SN_OK) return l;
    const cJSON *e;
    if (!cJSON_IsArray(l)) {
        *st = sn__fail(ctx, SN_ERR_FORMAT, "TF_CONFIG: cluster.%s is not a list", type);
        return NULL;
    }
    cJSON_ArrayForEach(e, l) {
        char host[256];
        int port;
        if (!cJSON_IsString(e) || !split_hostport(e->valuestring, host, sizeof host, &port)) {
            *st = sn__fail(ctx, SN_ERR_FORMAT, "TF_CONFIG: cluster.%s has an entry that is not "
                           "\"host:port\"", type);
            return NULL;
        }
    }
    return l;
}

static sn_status from_tf_config(sn_ctx *ctx, const char *text, sn_dist_env *env) {
    if (strlen(text) > MAX_TF_CONFIG)
        return sn__fail(ctx, SN_ERR_FORMAT, "TF_CONFIG: longer than 1 MB");
    cJSON *root = cJSON_Parse(text);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return sn__fail(ctx, SN_ERR_FORMAT, "TF_CONFIG is not a JSON object");
    }
    sn_status st = SN_OK;
    const cJSON *cluster = cJSON_GetObjectItemCaseSensitive(root, "cluster");
    const cJSON *task = cJSON_GetObjectItemCaseSensitive(root, "task");
    const cJSON *type = task ? cJSON_GetObjectItemCaseSensitive(task, "type") : NULL;
    const cJSON *index = task ? cJSON_GetObjectItemCaseSensitive(task, "index") : NULL;
    if (!cJSON_IsObject(cluster) || !cJSON_IsObject(task) || !cJSON_IsString(type))
        st = sn__fail(ctx, SN_ERR_FORMAT, "TF_CONFIG: needs \"cluster\" (an object) and "
                      "\"task\" with a \"type\"");
    const cJSON *chief = task_list(ctx, cluster, "chief", &st);
    const cJSON *master = task_list(ctx, cluster, "master", &st);
    const cJSON *worker = task_list(ctx, cluster, "worker", &st);
    const cJSON *ps = task_list(ctx, cluster, "ps", &st);
    const cJSON *evaluator = task_list(ctx, cluster, "evaluator", &st);
    if (st == SN_OK && chief && master)
        st = sn__fail(ctx, SN_ERR_FORMAT, "TF_CONFIG: cluster has both \"chief\" and "
                      "\"master\"");
    const cJSON *head = chief ? chief : master;
    int heads = head ? cJSON_GetArraySize(head) : 0;
    int workers = worker ? cJSON_GetArraySize(worker) : 0;
    if (st == SN_OK && heads > 1)
        st = sn__fail(ctx, SN_ERR_FORMAT, "TF_CONFIG: cluster.%s lists %d tasks (one at most)",
                      chief ? "chief" : "master", heads);
    if (st == SN_OK && heads + workers == 0)
        st = sn__fail(ctx, SN_ERR_FORMAT, "TF_CONFIG: cluster has no chief, master or worker");
    if (st != SN_OK) {
        cJSON_Delete(root);
        return st;
    }
    const char *t = type->valuestring;
    /* (a double out of long's range must not reach the cast) */
    double di = cJSON_IsNumber(index) ? index->valuedouble : 0;
    long idx = di >= 0 && di < (double)INT_MAX ? (long)di : -1;
    const cJSON *mine = !strcmp(t, "chief") ? chief : !strcmp(t, "master") ? master
                      : !strcmp(t, "worker") ? worker : !strcmp(t, "ps") ? ps
                      : !strcmp(t, "evaluator") ? evaluator : NULL;
    if (!mine || idx < 0 || idx >= cJSON_GetArraySize(mine) ||
        (index && (!cJSON_IsNumber(index) || index->valuedouble != (double)idx))) {
        st = sn__fail(ctx, SN_ERR_FORMAT, "TF_CONFIG: task %s %g is not in the cluster (%s)",
                      t, di, mine ? "index out of range"
                      : "type must be chief, master, worker, ps or evaluator");
        cJSON_Delete(root);
        return st;
    }
    sn_dist_params *p = &env->params;
    snprintf(env->source, sizeof env->source, "TF_CONFIG");
    snprintf(env->task_type, sizeof env->task_type, "%s", t);
    env->task_index = (int)idx;
    env->num_ps = ps ? cJSON_GetArraySize(ps) : 0;
    env->num_workers = heads + workers;
    p->size = heads + workers;
    bool in_group = mine == head || mine == worker;
    p->rank = !in_group ? -1 : mine == head ? 0 : (int)idx + heads;
    /* rank 0: the chief, else the first worker ("chief": [] is no chief) */
    const char *first = cJSON_GetArrayItem(heads ? head : worker, 0)->valuestring;
    split_hostport(first, p->master_addr, sizeof p->master_addr, &p->master_port);
    const char *me = cJSON_GetArrayItem(mine, (int)idx)->valuestring;
    char my_host[256];
    int my_port;
    split_hostport(me, my_host, sizeof my_host, &my_port);
    own_host(p, my_host);
    snprintf(p->name, sizeof p->name, "%s %ld (%s)", t, idx, me);
    for (int r = 0; r < heads + workers; r++) {   /* the roster, in rank order */
        const cJSON *l = r < heads ? head : worker;
        int k = r < heads ? r : r - heads;
        size_t used = strlen(p->roster);
        snprintf(p->roster + used, sizeof p->roster - used, "%s %d (%s)\n",
                 l == chief ? "chief" : l == master ? "master" : "worker", k,
                 cJSON_GetArrayItem(l, k)->valuestring);
    }
    long local = 0;
    if (env_int(ctx, "SN_DIST_LOCAL_RANK", 0, 1 << 20, &local, &st)) p->local_rank = (int)local;
    /* The asynchronous mode's group: the ps tasks first (ps 0 serves the rendezvous), then
     * the chief and the workers in the order above. */
    sn_dist_params *c = &env->cluster;
    *c = *p;
    c->rank = -1;
    c->size = 0;
    c->roster[0] = '\0';
    if (env->num_ps > 0 && mine != evaluator) {
        int nps = env->num_ps;
        c->size = nps + heads + workers;
        c->rank = mine == ps ? (int)idx : nps + p->rank;
        split_hostport(cJSON_GetArrayItem(ps, 0)->valuestring, c->master_addr,
                       sizeof c->master_addr, &c->master_port);
        for (int r = 0; r < nps; r++) {
            size_t used = strlen(c->roster);
            snprintf(c->roster + used, sizeof c->roster - used, "ps %d (%s)\n", r,
                     cJSON_GetArrayItem(ps, r)->valuestring);
        }
        size_t used = strlen(c->roster);
        snprintf(c->roster + used, sizeof c->roster - used, "%s", p->roster);
    }
    cJSON_Delete(root);
    return st;
}

sn_status sn_dist_env_read(sn_ctx *ctx, sn_dist_env *env) {
    if (!env) return sn__fail(ctx, SN_ERR_INVALID_ARG, "sn_dist_env_read: env is NULL");
    memset(env, 0, sizeof *env);
    env->params = sn_dist_params_default();
    env->cluster = env->params;
    env->cluster.rank = -1;
    env->cluster.size = 0;
    snprintf(env->task_type, sizeof env->task_type, "worker");
    const char *tf = getenv("TF_CONFIG");
    if (tf && *tf) {
        SN_TRY(from_tf_config(ctx, tf, env));
        env->found = 1;
        return SN_OK;
    }
    static const struct {
        const char *source, *rank, *size, *local, *local_size;
    } launchers[] = {
        {"torchrun", "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"},
        {"Open MPI", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE",
         "OMPI_COMM_WORLD_LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_SIZE"},
        {"MPICH/PMI", "PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID", "MPI_LOCALNRANKS"},
        {"Slurm", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID", NULL},
    };
    sn_status st = SN_OK;
    sn_dist_params *p = &env->params;
    for (size_t i = 0; i < sizeof launchers / sizeof launchers[0]; i++) {
        long rank, size, local = 0, local_size = 0, nodes = 0;
        if (!env_int(ctx, launchers[i].size, 1, 1 << 20, &size, &st) ||
            !env_int(ctx, launchers[i].rank, 0, size - 1, &rank, &st)) {
            if (st != SN_OK) return st;
            continue;
        }
        env_int(ctx, launchers[i].local, 0, 1 << 20, &local, &st);
        bool one_machine =
            (launchers[i].local_size &&
             env_int(ctx, launchers[i].local_size, 1, 1 << 20, &local_size, &st) &&
             local_size == size) ||
            (!launchers[i].local_size && env_int(ctx, "SLURM_NNODES", 1, 1 << 20, &nodes, &st) &&
             nodes == 1);
        if (st != SN_OK) return st;
        snprintf(env->source, sizeof env->source, "%s", launchers[i].source);
        p->rank = (int)rank;
        p->size = (int)size;
        p->local_rank = (int)local;
        env->local_size = local_size > 0 ? (int)local_size : one_machine ? (int)size : 0;
        env->task_index = (int)rank;
        env->num_workers = (int)size;
        const char *ma = getenv("MASTER_ADDR");
        long port = DEFAULT_PORT;
        env_int(ctx, "MASTER_PORT", 1, 65535, &port, &st);
        if (st != SN_OK) return st;
        if (ma && *ma) snprintf(p->master_addr, sizeof p->master_addr, "%s", ma);
        else if (!one_machine && size > 1)
            return sn__fail(ctx, SN_ERR_INVALID_ARG, "%s starts %ld processes on several "
                            "machines: set MASTER_ADDR (and MASTER_PORT, default %d) to the "
                            "address of rank 0's machine", launchers[i].source, size,
                            DEFAULT_PORT);
        p->master_port = (int)port;
        own_host(p, NULL);
        snprintf(p->name, sizeof p->name, "rank %ld (%.200s)", rank, p->host);
        env->found = size > 1;
        return SN_OK;
    }
    return SN_OK;
}
