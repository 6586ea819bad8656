/* ckpt_state.c: a training folder's checkpoints: the `checkpoint` state file (text-format
 * CheckpointState, as tf.train.Saver writes it), the latest checkpoint it names
 * (sn_ckpt_latest), the newest complete one found by listing the folder (sn_ckpt_newest),
 * and recording a new one while dropping the oldest (sn_ckpt_state_update).
 *
 * A state file may name paths outside its folder: TF1 writes absolute paths, so a copied or
 * moved train folder still names the original's files.  Such a name is resolved by its
 * basename inside the folder first (the copy), as after a move, and nothing outside the
 * folder is ever deleted. */
#include "bytes.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <glob.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define STATE_FILE "checkpoint"
#define STATE_MAX_BYTES (16u << 20)   /* a state file is a few lines; more is not one */

/* ---- the state file ------------------------------------------------------------------------- */

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

/* Appends v (taken over) to s->all; false when out of memory (v is then the caller's). */
static bool state_push(state *s, char *v) {
    char **l = realloc(s->all, ((size_t)s->n + 1) * sizeof *l);
    if (!l) return false;
    l[s->n++] = v;
    s->all = l;
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
    *exists = true;
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
    if (st == SN_OK && memchr(text, '\0', (size_t)size))
        st = sn__fail(ctx, SN_ERR_FORMAT, "'%s': not a text file", path);
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
            } else if (!state_push(s, v)) {
                free(v);
                st = sn__fail(ctx, SN_ERR_NOMEM, "out of memory reading '%s'", path);
            }
        }
        p = eol ? eol + 1 : p + strlen(p);
    }
    free(text);
    if (st == SN_OK && (!s->latest || !s->latest[0]))
        st = sn__fail(ctx, SN_ERR_FORMAT, "'%s' names no model_checkpoint_path", path);
    if (st != SN_OK) state_free(s);
    return st;
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

/* ---- paths ---------------------------------------------------------------------------------- */

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

/* Whether the file or prefix `path` lies directly in the folder whose realpath is dir_real
 * (NULL: unknown, so no). */
static bool in_dir(const char *dir_real, const char *path) {
    const char *slash = strrchr(path, '/');
    char parent[PATH_MAX], real[PATH_MAX];
    size_t n = !slash ? 0 : slash == path ? 1 : (size_t)(slash - path);
    if (!dir_real || n == 0 || n >= sizeof parent) return false;
    memcpy(parent, path, n);
    parent[n] = '\0';
    return realpath(parent, real) && strcmp(real, dir_real) == 0;
}

static const char *base_name(const char *p) {
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

/* Where the state file's entry `name` is, as a checkpoint in buf: in dir, as it is; outside
 * dir, the same basename in dir if that exists (the folder was moved or copied; said with a
 * warning), else the outside path.  *found false when no such checkpoint exists. */
static sn_status locate(sn_ctx *ctx, const char *dir, const char *dir_real, const char *name,
                        char *buf, size_t len, bool *found) {
    SN_TRY(resolve(ctx, dir, name, buf, len));
    *found = true;
    if (in_dir(dir_real, buf)) {
        *found = ckpt_exists(buf);
        return SN_OK;
    }
    char alt[PATH_MAX];
    if (snprintf(alt, sizeof alt, "%s/%s", dir, base_name(name)) < (int)sizeof alt &&
        ckpt_exists(alt)) {
        if (strlen(alt) >= len)
            return sn__fail(ctx, SN_ERR_INVALID_ARG, "checkpoint path does not fit in %zu "
                            "bytes: '%s'", len, alt);
        sn__log(ctx, SN_LOG_WARN, "'%s/%s' names '%s', outside the folder; using '%s' (the "
                "folder was moved or copied)", dir, STATE_FILE, name, alt);
        strcpy(buf, alt);
    } else if (ckpt_exists(buf)) {
        sn__log(ctx, SN_LOG_WARN, "'%s/%s' names '%s', outside the folder, and the folder has "
                "no '%s': using the outside checkpoint", dir, STATE_FILE, name,
                base_name(name));
    } else {
        *found = false;
    }
    return SN_OK;
}

sn_status sn_ckpt_latest(sn_ctx *ctx, const char *dir, char *buf, size_t len) {
    if (!dir || !buf || len == 0)
        return sn__fail(ctx, SN_ERR_INVALID_ARG, "sn_ckpt_latest: invalid arguments");
    state s;
    bool exists, found = false;
    SN_TRY(state_read(ctx, dir, &s, &exists));
    if (!exists)
        return sn__fail(ctx, SN_ERR_NOT_FOUND, "no checkpoint state file '%s/%s'", dir,
                        STATE_FILE);
    char dir_real[PATH_MAX];
    const char *real = realpath(dir, dir_real);
    sn_status st = locate(ctx, dir, real, s.latest, buf, len, &found);
    if (st == SN_OK && !found)
        st = sn__fail(ctx, SN_ERR_FORMAT, "'%s/%s' names checkpoint '%s', which does not "
                      "exist", dir, STATE_FILE, s.latest);
    state_free(&s);
    return st;
}

/* ---- listing the folder --------------------------------------------------------------------- */

typedef struct listed {
    char *name;        /* "model.ckpt-700": "<name>.index" is in the folder */
    long long step;    /* the number after the name's last '-'; -1 without one */
} listed;

static int by_step(const void *a, const void *b) {
    const listed *x = a, *y = b;
    if (x->step != y->step) return x->step < y->step ? -1 : 1;
    return strcmp(x->name, y->name);
}

static void list_free(listed *l, int n) {
    for (int i = 0; i < n; i++) free(l[i].name);
    free(l);
}

/* The V2 checkpoints in dir (every "<name>.index"), oldest first: by global step, then by
 * name. */
static sn_status list_ckpts(sn_ctx *ctx, const char *dir, listed **out, int *n_out) {
    *out = NULL;
    *n_out = 0;
    DIR *d = opendir(dir);
    if (!d) return sn__fail(ctx, errno == ENOENT ? SN_ERR_NOT_FOUND : SN_ERR_IO,
                            "cannot list '%s': %s", dir, strerror(errno));
    listed *l = NULL;
    int n = 0, cap = 0;
    sn_status st = SN_OK;
    for (struct dirent *e; st == SN_OK && (e = readdir(d));) {
        size_t k = strlen(e->d_name);
        if (k <= 6 || strcmp(e->d_name + k - 6, ".index") != 0) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            listed *g = realloc(l, (size_t)cap * sizeof *g);
            if (!g) {
                st = sn__fail(ctx, SN_ERR_NOMEM, "out of memory listing '%s'", dir);
                break;
            }
            l = g;
        }
        char *name = strndup(e->d_name, k - 6);
        if (!name) {
            st = sn__fail(ctx, SN_ERR_NOMEM, "out of memory listing '%s'", dir);
            break;
        }
        const char *dash = strrchr(name, '-');
        char *end = NULL;
        long long step = dash && dash[1] ? strtoll(dash + 1, &end, 10) : -1;
        l[n].name = name;
        l[n].step = end && !*end && step >= 0 ? step : -1;
        n++;
    }
    closedir(d);
    if (st != SN_OK) {
        list_free(l, n);
        return st;
    }
    if (n > 1) qsort(l, (size_t)n, sizeof *l, by_step);
    *out = l;
    *n_out = n;
    return SN_OK;
}

sn_status sn_ckpt_newest(sn_ctx *ctx, const char *dir, char *buf, size_t len) {
    if (!dir || !buf || len == 0)
        return sn__fail(ctx, SN_ERR_INVALID_ARG, "sn_ckpt_newest: invalid arguments");
    listed *l;
    int n;
    SN_TRY(list_ckpts(ctx, dir, &l, &n));
    sn_status st = SN_ERR_NOT_FOUND;
    for (int i = n - 1; i >= 0 && st != SN_OK; i--) {
        char prefix[PATH_MAX];
        sn_ckpt *ck = NULL;
        if (snprintf(prefix, sizeof prefix, "%s/%s", dir, l[i].name) >= (int)sizeof prefix ||
            sn_ckpt_open(ctx, prefix, &ck) != SN_OK)
            continue;   /* incomplete or damaged: the one before */
        sn_ckpt_close(ck);
        st = snprintf(buf, len, "%s", prefix) < (int)len
                 ? SN_OK
                 : sn__fail(ctx, SN_ERR_INVALID_ARG, "checkpoint path does not fit in %zu "
                            "bytes: '%s'", len, prefix);
        if (st != SN_OK) break;
    }
    list_free(l, n);
    if (st == SN_ERR_NOT_FOUND)
        return sn__fail(ctx, SN_ERR_NOT_FOUND, "'%s' holds no complete checkpoint", dir);
    return st;
}

/* ---- recording a checkpoint ----------------------------------------------------------------- */

/* Deletes the files of V2 checkpoint `prefix` (index, data shards, meta graph). */
static void delete_ckpt_files(const char *prefix) {
    char p[2 * PATH_MAX + 64];
    snprintf(p, sizeof p, "%s.index", prefix);
    unlink(p);
    snprintf(p, sizeof p, "%s.meta", prefix);
    unlink(p);
    /* The shards by pattern, the prefix itself taken literally: a name with '*' or '?' in
     * the state file must not delete other checkpoints' data (fuzzing found
     * "model.ckpt*2" deleting model.ckpt-2's). */
    size_t k = 0;
    for (const char *c = prefix; *c && k + 2 < PATH_MAX * 2; c++) {
        if (strchr("*?[]\\", *c)) p[k++] = '\\';
        p[k++] = *c;
    }
    snprintf(p + k, sizeof p - k,
             ".data-[0-9][0-9][0-9][0-9][0-9]-of-[0-9][0-9][0-9][0-9][0-9]");
    glob_t g;
    if (glob(p, 0, NULL, &g) == 0)
        for (size_t i = 0; i < g.gl_pathc; i++) unlink(g.gl_pathv[i]);
    globfree(&g);
}

/* The process id in the name of a temporary file that sn_ckpt_write or the state file's
 * atomic write leaves when killed mid-write: "<file>.tmp<pid>" where <file> is the state
 * file, an index or a data shard.  0 for any other name. */
static long tmp_pid(const char *name) {
    const char *t = NULL;
    for (const char *p = strstr(name, ".tmp"); p; p = strstr(p + 1, ".tmp")) t = p;
    if (!t || !isdigit((unsigned char)t[4])) return 0;
    char *end;
    long pid = strtol(t + 4, &end, 10);
    if (*end || pid <= 0) return 0;
    size_t k = (size_t)(t - name);
    unsigned a, b;
    int used = 0;
    bool ours = (k == strlen(STATE_FILE) && !strncmp(name, STATE_FILE, k)) ||
                (k > 6 && !strncmp(t - 6, ".index", 6)) ||
                (k > 22 && sscanf(t - 22, ".data-%5u-of-%5u%n", &a, &b, &used) == 2 &&
                 used == 22);
    return ours ? pid : 0;
}

/* Removes the temporary files of writers that died mid-write (their process is gone). */
static void remove_stale_tmp(sn_ctx *ctx, const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    for (struct dirent *e; (e = readdir(d));) {
        long pid = tmp_pid(e->d_name);
        if (!pid || pid == (long)getpid() || kill((pid_t)pid, 0) == 0 || errno != ESRCH)
            continue;
        char p[PATH_MAX];
        if (snprintf(p, sizeof p, "%s/%s", dir, e->d_name) < (int)sizeof p && unlink(p) == 0)
            sn__log(ctx, SN_LOG_INFO, "removed '%s', left by process %ld when it died while "
                    "writing", p, pid);
    }
    closedir(d);
}

/* A damaged state file is rebuilt from the checkpoints in the folder, oldest first. */
static sn_status state_from_listing(sn_ctx *ctx, const char *dir, state *s) {
    listed *l;
    int n;
    SN_TRY(list_ckpts(ctx, dir, &l, &n));
    sn_status st = SN_OK;
    for (int i = 0; i < n && st == SN_OK; i++) {
        if (state_push(s, l[i].name)) l[i].name = NULL;
        else st = sn__fail(ctx, SN_ERR_NOMEM, "out of memory");
    }
    list_free(l, n);
    return st;
}

/* The name to record for checkpoint `name` in dir's state file: relative to dir when it
 * lies in dir (named relative to dir, or as "<dir>/<file>" with dir as given), or when it
 * is an outside absolute path whose basename is in dir (a moved or copied folder); else as
 * it is.  NULL when out of memory. */
static char *record_name(sn_ctx *ctx, const char *dir, const char *real, const char *name) {
    char path[PATH_MAX];
    bool mine = resolve(ctx, dir, name, path, sizeof path) == SN_OK && in_dir(real, path);
    /* "<dir>/<name>", dir relative to the working folder (sn_net_save's prefix): in dir */
    size_t dl = strlen(dir);
    while (dl > 1 && dir[dl - 1] == '/') dl--;
    if (!mine && name[0] != '/' && !strncmp(name, dir, dl) && name[dl] == '/' &&
        !strchr(name + dl + 1, '/'))
        mine = true;
    if (!mine && name[0] == '/' &&
        snprintf(path, sizeof path, "%s/%s", dir, base_name(name)) < (int)sizeof path)
        mine = ckpt_exists(path);
    return strdup(mine ? base_name(name) : name);
}

sn_status sn_ckpt_state_update(sn_ctx *ctx, const char *dir, const char *prefix,
                               int max_to_keep) {
    if (!dir || !prefix || !prefix[0] || max_to_keep < 0)
        return sn__fail(ctx, SN_ERR_INVALID_ARG, "sn_ckpt_state_update: invalid arguments");
    char dir_real[PATH_MAX], path[PATH_MAX];
    const char *real = realpath(dir, dir_real);
    size_t dl = strlen(dir);
    while (dl > 1 && dir[dl - 1] == '/') dl--;
    if (snprintf(path, sizeof path, "%.*s/%s", (int)dl, dir, STATE_FILE) >= (int)sizeof path)
        return sn__fail(ctx, SN_ERR_INVALID_ARG, "path too long: '%s'", dir);
    state s;
    bool exists;
    sn_status st = state_read(ctx, dir, &s, &exists);
    if (st == SN_ERR_FORMAT) {   /* damaged: said, and replaced by a sound one */
        char why[SN_ERRMSG_LEN];
        snprintf(why, sizeof why, "%s", ctx->errmsg);
        sn__log(ctx, SN_LOG_WARN, "%s; rewriting it from the checkpoints in the folder", why);
        st = state_from_listing(ctx, dir, &s);
    }
    for (int i = 0; st == SN_OK && i < s.n; i++) {
        char *r = record_name(ctx, dir, real, s.all[i]);
        if (!r) {
            st = sn__fail(ctx, SN_ERR_NOMEM, "out of memory");
            break;
        }
        free(s.all[i]);
        s.all[i] = r;
    }
    char *mine = st == SN_OK ? record_name(ctx, dir, real, prefix) : NULL;
    if (st == SN_OK && !mine) st = sn__fail(ctx, SN_ERR_NOMEM, "out of memory");
    if (st == SN_OK) {   /* the new checkpoint goes last; an older entry for it is dropped */
        int k = 0;
        for (int i = 0; i < s.n; i++) {
            if (strcmp(s.all[i], mine) == 0) free(s.all[i]);
            else s.all[k++] = s.all[i];
        }
        s.n = k;
        if (!state_push(&s, mine)) {
            free(mine);
            st = sn__fail(ctx, SN_ERR_NOMEM, "out of memory");
        }
    }
    int first = (st == SN_OK && max_to_keep > 0 && s.n > max_to_keep) ? s.n - max_to_keep : 0;
    sn__buf out = {0};
    if (st == SN_OK) {
        sn__buf_put(&out, "model_checkpoint_path: ", 23);
        put_escaped(&out, s.all[s.n - 1]);
        for (int i = first; i < s.n; i++) {
            sn__buf_put(&out, "all_model_checkpoint_paths: ", 28);
            put_escaped(&out, s.all[i]);
        }
        st = out.oom ? sn__fail(ctx, SN_ERR_NOMEM, "out of memory")
                     : sn__file_write_atomic(ctx, path, out.p, out.n);
    }
    /* Only once the new state is on disk do the dropped checkpoints go, and only from dir. */
    for (int i = 0; st == SN_OK && i < first; i++) {
        char p[PATH_MAX];
        if (resolve(ctx, dir, s.all[i], p, sizeof p) != SN_OK) continue;
        if (in_dir(real, p)) delete_ckpt_files(p);
        else sn__log(ctx, SN_LOG_INFO, "dropped '%s' from '%s' without deleting it: it is "
                     "outside the folder", s.all[i], path);
    }
    if (st == SN_OK) remove_stale_tmp(ctx, dir);
    sn__buf_free(&out);
    state_free(&s);
    return st;
}
