/* restore.c: the `checkpoint` state file, and nets restored from and saved to checkpoints.
 *
 * Restoring follows train_image_classifier's warm start (spec/slim-features.md §4.4):
 * variables matched by exact name, --checkpoint_exclude_scopes as plain string prefixes,
 * --ignore_missing_vars, and strict shape checks made for every variable before any value
 * changes.  Saving writes what tf.train.Saver writes for a TF-slim training run:
 * "<dir>/model.ckpt-<step>" (V2) with global_step, then the state file.
 * Only slimnet.h's net API is used here, as a user program could. */
#include "table.h"

#include <ctype.h>
#include <errno.h>
#include <glob.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define STATE_FILE "checkpoint"
#define STATE_MAX_BYTES (16u << 20)   /* a state file is a few lines; more is not one */

/* ---- the state file (text-format CheckpointState, spec §7) -------------------------------- */

typedef struct state {
    char *latest;      /* model_checkpoint_path, or NULL */
    char **all;        /* all_model_checkpoint_paths, oldest first */
    int n;
} state;

static void state_free(state *s) {
    free(s->latest);
    for (int i = 0; i < s->n; i++) free(s->all[i]);
    free(s->all);
    memset(s, 0, sizeof *s);
}

static bool push_str(char ***list, int *n, char *s) {
    char **l = realloc(*list, ((size_t)*n + 1) * sizeof *l);
    if (!l) return false;
    l[(*n)++] = s;
    *list = l;
    return true;
}

/* Parses a quoted text-format string at *p (C escapes as protobuf's CUnescape); returns a
 * new string or NULL (malformed or out of memory). */
static char *parse_quoted(const char **p) {
    char q = **p;
    if (q != '"' && q != '\'') return NULL;
    const char *s = *p + 1;
    size_t cap = strlen(s) + 1;
    char *out = malloc(cap), *o = out;
    if (!out) return NULL;
    while (*s && *s != q && *s != '\n') {
        if (*s != '\\') {
            *o++ = *s++;
            continue;
        }
        s++;
        int c = (unsigned char)*s;
        static const char from[] = "ntrabfv\\'\"?", to[] = "\n\t\r\a\b\f\v\\'\"?";
        const char *k = c ? strchr(from, c) : NULL;
        if (k) {
            *o++ = to[k - from];
            s++;
        } else if (c >= '0' && c <= '7') {            /* up to 3 octal digits */
            int v = 0;
            for (int i = 0; i < 3 && *s >= '0' && *s <= '7'; i++) v = v * 8 + (*s++ - '0');
            *o++ = (char)v;
        } else if (c == 'x' && isxdigit((unsigned char)s[1])) {
            int v = 0;
            s++;
            for (int i = 0; i < 2 && isxdigit((unsigned char)*s); i++, s++)
                v = v * 16 + (isdigit((unsigned char)*s) ? *s - '0' : (tolower(*s) - 'a' + 10));
            *o++ = (char)v;
        } else {
            free(out);
            return NULL;
        }
    }
    if (*s != q) {
        free(out);
        return NULL;
    }
    *o = '\0';
    *p = s + 1;
    return out;
}

/* Reads dir/checkpoint.  *exists false (and SN_OK) when there is none.  Unknown fields
 * (newer TF's timestamps) are ignored. */
static sn_status state_read(sn_ctx *ctx, const char *dir, state *s, bool *exists) {
    memset(s, 0, sizeof *s);
    *exists = false;
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/%s", dir, STATE_FILE) >= (int)sizeof path)
        return sn__fail(ctx, SN_ERR_INVALID_ARG, "path too long: '%s'", dir);
    int fd;
    uint64_t size;
    sn_status st = sn__file_open(ctx, path, &fd, &size);
    if (st == SN_ERR_NOT_FOUND) return SN_OK;
    SN_TRY(st);
    if (size > STATE_MAX_BYTES) {
        close(fd);
        return sn__fail(ctx, SN_ERR_FORMAT, "'%s': %llu bytes is too large for a checkpoint "
                        "state file", path, (unsigned long long)size);
    }
    char *text = malloc((size_t)size + 1);
    if (!text) {
        close(fd);
        return sn__fail(ctx, SN_ERR_NOMEM, "out of memory reading '%s'", path);
    }
    st = sn__file_pread(ctx, fd, text, (size_t)size, 0, path);
    close(fd);
    text[size] = '\0';
    int line = 1;
    for (const char *p = text; st == SN_OK && *p; line++) {
        const char *eol = strchr(p, '\n');
        while (*p == ' ' || *p == '\t') p++;
        const char *name = p;
        while (isalnum((unsigned char)*p) || *p == '_') p++;
        size_t nlen = (size_t)(p - name);
        while (*p == ' ' || *p == '\t') p++;
        bool latest = nlen == 21 && !strncmp(name, "model_checkpoint_path", nlen);
        bool all = nlen == 26 && !strncmp(name, "all_model_checkpoint_paths", nlen);
        if ((latest || all) && *p == ':') {
            p++;
            while (*p == ' ' || *p == '\t') p++;
            char *v = parse_quoted(&p);
            if (!v) {
                st = sn__fail(ctx, SN_ERR_FORMAT, "'%s' line %d: malformed string", path, line);
            } else if (latest) {
                free(s->latest);
                s->latest = v;
            } else if (!push_str(&s->all, &s->n, v)) {
                free(v);
                st = sn__fail(ctx, SN_ERR_NOMEM, "out of memory reading '%s'", path);
            }
        }
        p = eol ? eol + 1 : p + strlen(p);
    }
    free(text);
    if (st != SN_OK) {
        state_free(s);
        return st;
    }
    *exists = true;
    return SN_OK;
}

/* Text-format string as TF's CEscape writes it: \n \r \t \" \' \\, octal otherwise. */
static void put_escaped(sn__buf *b, const char *s) {
    sn__buf_put_u8(b, '"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char esc[8];
        const char *e = NULL;
        switch (*p) {
        case '\n': e = "\\n"; break;
        case '\r': e = "\\r"; break;
        case '\t': e = "\\t"; break;
        case '"': e = "\\\""; break;
        case '\'': e = "\\'"; break;
        case '\\': e = "\\\\"; break;
        default:
            if (*p < 0x20 || *p >= 0x7f) {
                snprintf(esc, sizeof esc, "\\%03o", *p);
                e = esc;
            }
        }
        if (e) sn__buf_put(b, e, strlen(e));
        else sn__buf_put_u8(b, *p);
    }
    sn__buf_put(b, "\"\n", 2);
}

/* A path from the state file, resolved against dir when relative. */
static sn_status resolve(sn_ctx *ctx, const char *dir, const char *p, char *buf, size_t len) {
    int n = p[0] == '/' ? snprintf(buf, len, "%s", p) : snprintf(buf, len, "%s/%s", dir, p);
    if (n < 0 || (size_t)n >= len)
        return sn__fail(ctx, SN_ERR_INVALID_ARG, "checkpoint path does not fit in %zu bytes: "
                        "'%s'", len, p);
    return SN_OK;
}

/* Whether a checkpoint exists at prefix (V2 index, V1 file or V1 shards). */
static bool ckpt_exists(const char *prefix) {
    char probe[PATH_MAX + 64];
    struct stat s;
    snprintf(probe, sizeof probe, "%s.index", prefix);
    if (stat(probe, &s) == 0) return true;
    if (stat(prefix, &s) == 0 && S_ISREG(s.st_mode)) return true;
    /* Sharded V1: TF's state file names the pattern "model.ckpt-7-?????-of-00002". */
    if (strpbrk(prefix, "?*["))
        snprintf(probe, sizeof probe, "%s", prefix);
    else
        snprintf(probe, sizeof probe, "%s-[0-9][0-9][0-9][0-9][0-9]-of-[0-9][0-9][0-9][0-9][0-9]",
                 prefix);
    glob_t g;
    bool found = glob(probe, 0, NULL, &g) == 0 && g.gl_pathc > 0;
    globfree(&g);
    return found;
}

sn_status sn_ckpt_latest(sn_ctx *ctx, const char *dir, char *buf, size_t len) {
    if (!dir || !buf || len == 0)
        return sn__fail(ctx, SN_ERR_INVALID_ARG, "sn_ckpt_latest: invalid arguments");
    state s;
    bool exists;
    SN_TRY(state_read(ctx, dir, &s, &exists));
    sn_status st = SN_OK;
    if (!exists)
        st = sn__fail(ctx, SN_ERR_NOT_FOUND, "no checkpoint state file '%s/%s'", dir,
                      STATE_FILE);
    else if (!s.latest || !s.latest[0])
        st = sn__fail(ctx, SN_ERR_NOT_FOUND, "'%s/%s' names no model_checkpoint_path", dir,
                      STATE_FILE);
    if (st == SN_OK) st = resolve(ctx, dir, s.latest, buf, len);
    if (st == SN_OK && !ckpt_exists(buf)) {
        /* A moved training folder keeps TF1's absolute paths: try the same name in dir. */
        const char *base = strrchr(s.latest, '/');
        char alt[PATH_MAX];
        if (base && snprintf(alt, sizeof alt, "%s/%s", dir, base + 1) < (int)sizeof alt &&
            ckpt_exists(alt) && strlen(alt) < len)
            strcpy(buf, alt);
        else
            st = sn__fail(ctx, SN_ERR_NOT_FOUND, "'%s/%s' names checkpoint '%s', which does "
                          "not exist", dir, STATE_FILE, buf);
    }
    state_free(&s);
    return st;
}

/* Deletes the files of V2 checkpoint `prefix` (index, data shards, meta graph). */
static void delete_ckpt_files(const char *prefix) {
    char p[PATH_MAX + 64];
    snprintf(p, sizeof p, "%s.index", prefix);
    unlink(p);
    snprintf(p, sizeof p, "%s.meta", prefix);
    unlink(p);
    snprintf(p, sizeof p, "%s.data-[0-9][0-9][0-9][0-9][0-9]-of-[0-9][0-9][0-9][0-9][0-9]",
             prefix);
    glob_t g;
    if (glob(p, 0, NULL, &g) == 0)
        for (size_t i = 0; i < g.gl_pathc; i++) unlink(g.gl_pathv[i]);
    globfree(&g);
}

sn_status sn_ckpt_state_update(sn_ctx *ctx, const char *dir, const char *prefix,
                               int max_to_keep) {
    if (!dir || !prefix || !prefix[0] || max_to_keep < 0)
        return sn__fail(ctx, SN_ERR_INVALID_ARG, "sn_ckpt_state_update: invalid arguments");
    /* Inside dir, record the name relative to it, so the folder can be moved. */
    size_t dl = strlen(dir);
    while (dl > 1 && dir[dl - 1] == '/') dl--;
    const char *rel = prefix;
    if (strncmp(prefix, dir, dl) == 0 && prefix[dl] == '/' && !strchr(prefix + dl + 1, '/'))
        rel = prefix + dl + 1;
    state s;
    bool exists;
    SN_TRY(state_read(ctx, dir, &s, &exists));
    char *mine = strdup(rel);
    sn_status st = mine ? SN_OK : sn__fail(ctx, SN_ERR_NOMEM, "out of memory");
    /* The new checkpoint goes last; an older entry for the same name is dropped. */
    int k = 0;
    for (int i = 0; st == SN_OK && i < s.n; i++) {
        if (strcmp(s.all[i], rel) == 0) free(s.all[i]);
        else s.all[k++] = s.all[i];
    }
    s.n = k;
    if (st == SN_OK && !push_str(&s.all, &s.n, mine)) {
        free(mine);
        st = sn__fail(ctx, SN_ERR_NOMEM, "out of memory");
    }
    int first = (st == SN_OK && max_to_keep > 0 && s.n > max_to_keep) ? s.n - max_to_keep : 0;
    sn__buf out = {0};
    if (st == SN_OK) {
        sn__buf_put(&out, "model_checkpoint_path: ", 23);
        put_escaped(&out, rel);
        for (int i = first; i < s.n; i++) {
            sn__buf_put(&out, "all_model_checkpoint_paths: ", 28);
            put_escaped(&out, s.all[i]);
        }
        char path[PATH_MAX];
        if (out.oom)
            st = sn__fail(ctx, SN_ERR_NOMEM, "out of memory");
        else if (snprintf(path, sizeof path, "%.*s/%s", (int)dl, dir, STATE_FILE) >=
                 (int)sizeof path)
            st = sn__fail(ctx, SN_ERR_INVALID_ARG, "path too long: '%s'", dir);
        else
            st = sn__file_write_atomic(ctx, path, out.p, out.n);
    }
    /* Only once the new state is on disk do the dropped checkpoints go. */
    for (int i = 0; st == SN_OK && i < first; i++) {
        char p[PATH_MAX];
        if (resolve(ctx, dir, s.all[i], p, sizeof p) == SN_OK) delete_ckpt_files(p);
    }
    sn__buf_free(&out);
    state_free(&s);
    return st;
}

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

static bool report_add(char ***list, int *n, const char *s) {
    char *c = strdup(s);
    if (c && push_str(list, n, c)) return true;
    free(c);
    return false;
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
