/* restore.c: nets restored from and saved to checkpoints.
 *
 * Restoring follows TF-slim's warm start (research/slim/train_image_classifier.py's
 * _get_init_fn): variables matched by exact name, --checkpoint_exclude_scopes as plain
 * string prefixes, --ignore_missing_vars, and strict shape checks made for every variable
 * before any value changes.  Saving writes what tf.train.Saver writes for a TF-slim
 * training run: "<dir>/model.ckpt-<step>" (V2) with global_step, then the state file
 * (ckpt_state.c).
 * Only slimnet.h's net API is used here, as a user program could. */
#include "table.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- restore ------------------------------------------------------------------------------ */

sn_restore_params sn_restore_params_default(void) {
    sn_restore_params p = {NULL, 0, 0, 0};
    return p;
}

void sn_restore_report_free(sn_restore_report *r) {
    if (!r) return;
    char **lists[] = {r->restored, r->excluded, r->missing, r->unused, r->mismatched};
    int counts[] = {r->n_restored, r->n_excluded, r->n_missing, r->n_unused, r->n_mismatched};
    for (int l = 0; l < 5; l++) {
        for (int i = 0; i < counts[l]; i++) free(lists[l][i]);
        free(lists[l]);
    }
    free(r->checkpoint);
    memset(r, 0, sizeof *r);
}

/* Appends a copy of s to a report list; false when out of memory. */
static bool report_add(char ***list, int *n, const char *s) {
    char *c = strdup(s);
    char **l = c ? realloc(*list, ((size_t)*n + 1) * sizeof *l) : NULL;
    if (!l) {
        free(c);
        return false;
    }
    l[(*n)++] = c;
    *list = l;
    return true;
}

/* Whether name starts with one of the comma-separated, whitespace-trimmed scopes. */
static bool excluded_by(const char *scopes, const char *name) {
    if (!scopes) return false;
    const char *p = scopes;
    while (*p) {
        const char *end = strchr(p, ',');
        if (!end) end = p + strlen(p);
        const char *a = p, *b = end;
        while (a < b && isspace((unsigned char)*a)) a++;
        while (b > a && isspace((unsigned char)b[-1])) b--;
        if (b > a && strncmp(name, a, (size_t)(b - a)) == 0) return true;
        p = *end ? end + 1 : end;
    }
    return false;
}

enum { VAR_RESTORE, VAR_EXCLUDED, VAR_MISSING, VAR_MISMATCHED };

sn_status sn_net_restore(sn_net *net, const char *path, const sn_restore_params *p,
                         sn_restore_report *report) {
    const sn_graph *g = sn_net_graph(net);
    sn_ctx *ctx = sn_graph_ctx(g);
    sn_restore_params def = sn_restore_params_default();
    if (!p) p = &def;
    sn_restore_report local;
    sn_restore_report *r = report ? report : &local;
    memset(r, 0, sizeof *r);
    sn_ckpt *ck = NULL;
    SN_TRY(sn_ckpt_open(ctx, path, &ck));
    int nv = sn_graph_num_vars(g), nt = sn_ckpt_count(ck);
    int *what = calloc((size_t)nv + 1, sizeof *what);
    int *src = calloc((size_t)nv + 1, sizeof *src);   /* the tensor each variable takes */
    bool *used = calloc((size_t)nt + 1, sizeof *used);
    sn_status st = (what && src && used) ? SN_OK
                                         : sn__fail(ctx, SN_ERR_NOMEM, "restore: out of memory");
    bool oom = !(r->checkpoint = strdup(sn_ckpt_path(ck)));
    char first_bad[SN_ERRMSG_LEN] = "", first_missing[512] = "";
    size_t scratch_bytes = 0;
    /* Pass 1: classify every variable; nothing changes yet. */
    for (int v = 0; st == SN_OK && v < nv; v++) {
        sn_var_info vi;
        st = sn_graph_var(g, v, &vi);
        if (st != SN_OK) break;
        int ti = -1;
        if (p->use_moving_averages) {
            char avg[1024];
            snprintf(avg, sizeof avg, "%s/ExponentialMovingAverage", vi.name);
            ti = sn_ckpt_find(ck, avg);
        }
        if (ti < 0) ti = sn_ckpt_find(ck, vi.name);
        if (ti >= 0) used[ti] = true;
        src[v] = ti;
        if ((p->model_vars_only && !(vi.flags & SN_VAR_MODEL)) ||
            excluded_by(p->exclude_scopes, vi.name)) {
            what[v] = VAR_EXCLUDED;
            oom |= !report_add(&r->excluded, &r->n_excluded, vi.name);
            continue;
        }
        if (ti < 0) {
            what[v] = VAR_MISSING;
            oom |= !report_add(&r->missing, &r->n_missing, vi.name);
            if (!first_missing[0]) snprintf(first_missing, sizeof first_missing, "%s", vi.name);
            continue;
        }
        sn_ckpt_info ci;
        sn_ckpt_info_at(ck, ti, &ci);
        bool same = ci.tf_dtype == 1 && ci.rank == vi.rank;   /* variables are float32 */
        for (int d = 0; same && d < vi.rank; d++) same = ci.dims[d] == vi.dims[d];
        if (!same) {
            char a[160], b[160], line[512];
            snprintf(line, sizeof line, "%s: net %s float32, checkpoint %s %s", vi.name,
                     sn__dims_str(vi.rank, vi.dims, a, sizeof a),
                     sn__dims_str(ci.rank, ci.dims, b, sizeof b), ci.dtype_name);
            what[v] = VAR_MISMATCHED;
            oom |= !report_add(&r->mismatched, &r->n_mismatched, line);
            if (!first_bad[0]) snprintf(first_bad, sizeof first_bad, "%s", line);
            continue;
        }
        what[v] = VAR_RESTORE;
        if (ci.nbytes > scratch_bytes) scratch_bytes = (size_t)ci.nbytes;
    }
    for (int i = 0; st == SN_OK && i < nt; i++) {
        sn_ckpt_info ci;
        sn_ckpt_info_at(ck, i, &ci);
        if (!used[i]) oom |= !report_add(&r->unused, &r->n_unused, ci.name);
    }
    if (st == SN_OK && oom) st = sn__fail(ctx, SN_ERR_NOMEM, "restore: out of memory");
    if (st == SN_OK && r->n_mismatched > 0)
        st = sn__fail(ctx, SN_ERR_SHAPE, "restore from '%s': %d variable(s) do not match the "
                      "checkpoint; first: %s", sn_ckpt_path(ck), r->n_mismatched, first_bad);
    if (st == SN_OK && r->n_missing > 0 && !p->ignore_missing_vars)
        st = sn__fail(ctx, SN_ERR_NOT_FOUND, "restore from '%s': %d variable(s) missing from "
                      "the checkpoint (first: '%s'); set ignore_missing_vars to skip them",
                      sn_ckpt_path(ck), r->n_missing, first_missing);
    /* Pass 2: read each tensor into one host buffer, then into the net's variable. */
    void *scratch = NULL;
    if (st == SN_OK && !(scratch = malloc(scratch_bytes ? scratch_bytes : 1)))
        st = sn__fail(ctx, SN_ERR_NOMEM, "restore: cannot allocate %zu bytes", scratch_bytes);
    for (int v = 0; st == SN_OK && v < nv; v++) {
        if (what[v] != VAR_RESTORE) continue;
        sn_var_info vi;
        sn_ckpt_info ci;
        sn_graph_var(g, v, &vi);
        sn_ckpt_info_at(ck, src[v], &ci);
        sn_tensor *t = NULL;
        st = sn_tensor_wrap(ctx, scratch, SN_DTYPE_F32, vi.rank, vi.dims, SN_BORROW, &t);
        if (st == SN_OK) st = sn_ckpt_read_into(ck, ci.name, t);
        if (st == SN_OK) st = sn_net_set_var(net, vi.name, t);
        sn_tensor_free(t);
        if (st == SN_OK && !report_add(&r->restored, &r->n_restored, vi.name))
            st = sn__fail(ctx, SN_ERR_NOMEM, "restore: out of memory");
    }
    free(scratch);
    free(what);
    free(src);
    free(used);
    sn_ckpt_close(ck);
    if (!report) sn_restore_report_free(&local);
    return st;
}

/* ---- save --------------------------------------------------------------------------------- */

sn_save_params sn_save_params_default(void) {
    sn_save_params p = {5, 0, NULL};
    return p;
}

/* mkdir -p. */
static sn_status make_dirs(sn_ctx *ctx, const char *dir) {
    char p[PATH_MAX];
    if (snprintf(p, sizeof p, "%s", dir) >= (int)sizeof p)
        return sn__fail(ctx, SN_ERR_INVALID_ARG, "path too long: '%s'", dir);
    for (char *s = p + 1;; s++) {
        if (*s != '/' && *s != '\0') continue;
        char c = *s;
        *s = '\0';
        if (mkdir(p, 0755) != 0 && errno != EEXIST)
            return sn__fail(ctx, SN_ERR_IO, "cannot create folder '%s': %s", p, strerror(errno));
        *s = c;
        if (!c) break;
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return sn__fail(ctx, SN_ERR_IO, "'%s' is not a folder", dir);
    return SN_OK;
}

sn_status sn_net_save(sn_net *net, const char *dir, int64_t step, const sn_save_params *p,
                      char *prefix_out, size_t prefix_len) {
    const sn_graph *g = sn_net_graph(net);
    sn_ctx *ctx = sn_graph_ctx(g);
    sn_save_params def = sn_save_params_default();
    if (!p) p = &def;
    if (!dir || p->n_extra < 0 || (p->n_extra > 0 && !p->extra))
        return sn__fail(ctx, SN_ERR_INVALID_ARG, "sn_net_save: invalid arguments");
    SN_TRY(make_dirs(ctx, dir));
    char prefix[PATH_MAX];
    if (snprintf(prefix, sizeof prefix, "%s/model.ckpt-%lld", dir, (long long)step) >=
        (int)sizeof prefix)
        return sn__fail(ctx, SN_ERR_INVALID_ARG, "path too long: '%s'", dir);
    int nv = sn_graph_num_vars(g), n = nv + 1 + p->n_extra;
    sn_ckpt_entry *e = calloc((size_t)n, sizeof *e);
    sn_tensor **vals = calloc((size_t)nv + 1, sizeof *vals);
    sn_status st = (e && vals) ? SN_OK : sn__fail(ctx, SN_ERR_NOMEM, "save: out of memory");
    /* Host copies of the variables (the net may live on a GPU). */
    for (int v = 0; st == SN_OK && v < nv; v++) {
        sn_var_info vi;
        st = sn_graph_var(g, v, &vi);
        if (st == SN_OK) st = sn_net_get_var(net, vi.name, &vals[v]);
        e[v].name = vi.name;
        e[v].tensor = vals[v];
    }
    int64_t gs = step;
    sn_tensor *gst = NULL;
    if (st == SN_OK) st = sn_tensor_wrap(ctx, &gs, SN_DTYPE_I64, 0, NULL, SN_BORROW, &gst);
    if (st == SN_OK) {
        e[nv].name = "global_step";
        e[nv].tensor = gst;
        for (int i = 0; i < p->n_extra; i++) e[nv + 1 + i] = p->extra[i];
        st = sn_ckpt_write(ctx, prefix, n, e);
    }
    if (st == SN_OK) st = sn_ckpt_state_update(ctx, dir, prefix, p->max_to_keep);
    if (st == SN_OK && prefix_out) {
        if (snprintf(prefix_out, prefix_len, "%s", prefix) >= (int)prefix_len)
            st = sn__fail(ctx, SN_ERR_INVALID_ARG, "save: prefix_out too small for '%s'", prefix);
    }
    sn_tensor_free(gst);
    for (int v = 0; vals && v < nv; v++) sn_tensor_free(vals[v]);
    free(vals);
    free(e);
    return st;
}
