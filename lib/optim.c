/* optim.c: TF1's optimizers (slot variables and one fused update kernel per variable),
 * train_image_classifier's learning-rate schedules, and ExponentialMovingAverage.
 *
 * Memory: an optimizer's slot variables, and an EMA's shadow variables, live in one block
 * of the net's device memory each, carved into named slices (256-byte aligned, as the net's
 * parameters), so a checkpoint can list them by TF's names and the update kernels see
 * plain float arrays.  Adam's beta1_power and beta2_power are two scalar slices of the same
 * block: the kernels read them where they are, and a restored checkpoint sets them there. */
#include <math.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "graph.h"

#define ALIGN 256

static size_t align_up(size_t b) { return (b + ALIGN - 1) / ALIGN * ALIGN; }

/* ---- kinds --------------------------------------------------------------------------------- */

/* kind, flag value, TF1's default optimizer name, slots per variable, non-slot scalars. */
#define SN__OPTIM_KINDS(X)                                   \
    X(SN_OPTIM_SGD,      "sgd",      "GradientDescent", 0, 0) \
    X(SN_OPTIM_MOMENTUM, "momentum", "Momentum",        1, 0) \
    X(SN_OPTIM_RMSPROP,  "rmsprop",  "RMSProp",         2, 0) \
    X(SN_OPTIM_ADAM,     "adam",     "Adam",            2, 2) \
    X(SN_OPTIM_ADAGRAD,  "adagrad",  "Adagrad",         1, 0) \
    X(SN_OPTIM_ADADELTA, "adadelta", "Adadelta",        2, 0) \
    X(SN_OPTIM_FTRL,     "ftrl",     "Ftrl",            2, 0)

typedef struct kind_info {
    const char *flag, *tf_name;
    int slots, non_slots;
} kind_info;

static const kind_info *kind_of(sn_optim_kind kind) {
    static const kind_info table[] = {
#define SN__KIND_ROW(k, flag, name, slots, non_slots) [k] = {flag, name, slots, non_slots},
        SN__OPTIM_KINDS(SN__KIND_ROW)
#undef SN__KIND_ROW
    };
    if ((int)kind < 0 || (size_t)kind >= sizeof table / sizeof table[0]) return NULL;
    return &table[kind];
}

const char *sn_optim_kind_name(sn_optim_kind kind) {
    const kind_info *k = kind_of(kind);
    return k ? k->flag : NULL;
}

sn_status sn_optim_kind_from_name(const char *name, sn_optim_kind *kind) {
    for (int k = 0; name && kind_of((sn_optim_kind)k); k++) {
        if (strcmp(kind_of((sn_optim_kind)k)->flag, name) == 0) {
            *kind = (sn_optim_kind)k;
            return SN_OK;
        }
    }
    return SN_ERR_NOT_FOUND;
}

sn_optim_params sn_optim_params_default(sn_optim_kind kind) {
    sn_optim_params p = {0};
    p.kind = kind;
    p.momentum = 0.9f;
    p.rmsprop_decay = 0.9f;
    p.rmsprop_momentum = 0.9f;
    p.epsilon = 1.0f;
    p.adam_beta1 = 0.9f;
    p.adam_beta2 = 0.999f;
    p.adadelta_rho = 0.95f;
    p.adagrad_initial_accumulator = 0.1f;
    p.ftrl_lr_power = -0.5f;
    p.ftrl_initial_accumulator = 0.1f;
    return p;
}

sn_optim_params sn_optim_params_tf1(sn_optim_kind kind) {
    sn_optim_params p = sn_optim_params_default(kind);
    p.rmsprop_momentum = 0.0f;
    p.epsilon = kind == SN_OPTIM_RMSPROP ? 1e-10f : 1e-8f;
    return p;
}

/* ---- named slices of one device block (optimizer slots, EMA shadows) ------------------------ */

typedef struct slot {
    char *name;          /* TF's name, owned */
    int node;            /* the variable it belongs to, or -1 (beta powers) */
    size_t numel;
    size_t off;          /* bytes into the block */
    float *p;            /* block + off */
} slot;

typedef struct slot_table {
    sn_net *net;
    slot *s;
    int n, cap;
    void *block;
    size_t bytes;
} slot_table;

static sn_status table_add(slot_table *t, int node, const char *var, const char *suffix,
                           size_t numel) {
    if (t->n == t->cap) {
        int cap = t->cap ? 2 * t->cap : 16;
        slot *s = realloc(t->s, (size_t)cap * sizeof *s);
        if (!s) return sn__fail(t->net->ctx, SN_ERR_NOMEM, "optimizer: out of memory");
        t->s = s;
        t->cap = cap;
    }
    size_t len = (var ? strlen(var) + 1 : 0) + strlen(suffix) + 1;
    char *name = malloc(len);
    if (!name) return sn__fail(t->net->ctx, SN_ERR_NOMEM, "optimizer: out of memory");
    if (var) {
        strcpy(name, var);
        strcat(name, "/");
        strcat(name, suffix);
    } else {
        strcpy(name, suffix);
    }
    t->s[t->n++] = (slot){.name = name, .node = node, .numel = numel};
    return SN_OK;
}

/* Allocates the block for every slot added and zeroes it.  Each variable's slot starts on
 * an ALIGN boundary; the non-slot scalars (Adam's beta1_power, beta2_power) are packed
 * together, so a kernel gets both as one pointer. */
static sn_status table_alloc(slot_table *t) {
    size_t total = 0;
    for (int i = 0; i < t->n; i++) {
        if (t->s[i].node >= 0) total = align_up(total);
        t->s[i].off = total;
        total += t->s[i].numel * sizeof(float);
    }
    total = align_up(total);
    SN_TRY(SN__CALL(t->net, alloc, &t->block, total));
    t->bytes = total;
    for (int i = 0; i < t->n; i++) t->s[i].p = (float *)((char *)t->block + t->s[i].off);
    return total ? SN__CALL(t->net, zero, t->block, total) : SN_OK;
}

static void table_free(slot_table *t) {
    if (t->block) t->net->k->free(&t->net->dev, t->block);
    for (int i = 0; i < t->n; i++) free(t->s[i].name);
    free(t->s);
}

static int table_find(const slot_table *t, const char *name) {
    for (int i = 0; name && i < t->n; i++)
        if (strcmp(t->s[i].name, name) == 0) return i;
    return -1;
}

static sn_status table_info(const slot_table *t, int i, sn_slot_info *info) {
    if (i < 0 || i >= t->n || !info) return SN_ERR_INVALID_ARG;
    const slot *s = &t->s[i];
    memset(info, 0, sizeof *info);
    info->name = s->name;
    if (s->node >= 0) {
        const sn__node *nd = &t->net->g->nodes[s->node];
        info->var = nd->name;
        info->rank = nd->rank;
        memcpy(info->dims, t->net->dims[s->node], (size_t)nd->rank * sizeof(int64_t));
    }
    return SN_OK;
}

static sn_status table_lookup(const slot_table *t, const char *name, const char *what,
                              int *i) {
    *i = table_find(t, name);
    if (*i < 0)
        return sn__fail(t->net->ctx, SN_ERR_NOT_FOUND, "%s: no slot named '%s'", what,
                        name ? name : "(null)");
    return SN_OK;
}

static sn_status table_get(slot_table *t, const char *name, const char *what,
                           sn_tensor **out) {
    int i;
    sn_slot_info info;
    if (!out) return SN_ERR_INVALID_ARG;
    *out = NULL;
    SN_TRY(table_lookup(t, name, what, &i));
    SN_TRY(table_info(t, i, &info));
    SN_TRY(sn_tensor_new(t->net->ctx, SN_DTYPE_F32, info.rank, info.dims, out));
    sn_status st = SN__CALL(t->net, to_host, (*out)->data, t->s[i].p,
                            t->s[i].numel * sizeof(float));
    if (st != SN_OK) {
        sn_tensor_free(*out);
        *out = NULL;
    }
    return st;
}

static sn_status table_set(slot_table *t, const char *name, const char *what,
                           const sn_tensor *x) {
    int i;
    sn_slot_info info;
    if (!x) return SN_ERR_INVALID_ARG;
    SN_TRY(table_lookup(t, name, what, &i));
    SN_TRY(table_info(t, i, &info));
    bool ok = x->dtype == SN_DTYPE_F32 && x->rank == info.rank;
    for (int d = 0; ok && d < info.rank; d++) ok = x->dims[d] == info.dims[d];
    if (!ok) {
        char a[128], b[128];
        return sn__fail(t->net->ctx, SN_ERR_SHAPE, "%s '%s': tensor is %s %s, expected "
                        "float32 %s", what, name, sn_dtype_name(x->dtype),
                        sn__dims_str(x->rank, x->dims, a, sizeof a),
                        sn__dims_str(info.rank, info.dims, b, sizeof b));
    }
    return SN__CALL(t->net, to_dev, t->s[i].p, x->data, t->s[i].numel * sizeof(float));
}

/* Sets slots [first, first+count) with stride `stride` to `value` through one host buffer. */
static sn_status table_fill(slot_table *t, int first, int stride, int count, float value) {
    size_t maxn = 0;
    for (int k = 0; k < count; k++)
        if (t->s[first + k * stride].numel > maxn) maxn = t->s[first + k * stride].numel;
    if (maxn == 0 || value == 0.0f) return SN_OK;   /* the block starts zeroed */
    float *host = malloc(maxn * sizeof(float));
    if (!host) return sn__fail(t->net->ctx, SN_ERR_NOMEM, "optimizer: out of memory");
    for (size_t i = 0; i < maxn; i++) host[i] = value;
    sn_status st = SN_OK;
    for (int k = 0; k < count && st == SN_OK; k++) {
        const slot *s = &t->s[first + k * stride];
        st = SN__CALL(t->net, to_dev, s->p, host, s->numel * sizeof(float));
    }
    free(host);
    return st;
}

/* ---- the optimizer -------------------------------------------------------------------------- */

struct sn_optim {
    sn_net *net;
    sn_optim_params p;
    char *name, *scopes;       /* owned copies behind p.name, p.trainable_scopes */
    const kind_info *k;
    int n_vars;
    int *vars;                 /* node of each variable in the trainable set */
    slot_table t;              /* non-slot scalars first, then slots_per_var per variable */
    int64_t global_step;
};

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

static sn_status check_params(sn_ctx *ctx, const sn_optim_params *p) {
    const char *bad = NULL;
    if (!kind_of(p->kind)) bad = "unknown kind";
    else if (p->kind == SN_OPTIM_ADAGRAD && !(p->adagrad_initial_accumulator > 0.0f))
        bad = "adagrad_initial_accumulator must be > 0";
    else if (p->kind == SN_OPTIM_FTRL && !(p->ftrl_lr_power <= 0.0f))
        bad = "ftrl_lr_power must be <= 0";
    else if (p->kind == SN_OPTIM_FTRL && !(p->ftrl_initial_accumulator >= 0.0f))
        bad = "ftrl_initial_accumulator must be >= 0";
    else if (p->kind == SN_OPTIM_FTRL && !(p->ftrl_l1 >= 0.0f && p->ftrl_l2 >= 0.0f))
        bad = "ftrl_l1 and ftrl_l2 must be >= 0";
    else if (p->name && !p->name[0]) bad = "empty name";
    if (bad) return sn__fail(ctx, SN_ERR_INVALID_ARG, "optimizer: %s", bad);
    return SN_OK;
}

/* Compiles the comma-separated scopes of `list` (whitespace stripped, empty entries
 * skipped) into *re (*n of them).  The caller frees them with regfree and free. */
static sn_status compile_scopes(sn_ctx *ctx, const char *list, regex_t **re, int *n) {
    *re = NULL;
    *n = 0;
    int cap = 1;
    for (const char *c = list; *c; c++) cap += *c == ',';
    regex_t *r = malloc((size_t)cap * sizeof *r);
    char *buf = malloc(strlen(list) + 1);
    if (!r || !buf) {
        free(r);
        free(buf);
        return sn__fail(ctx, SN_ERR_NOMEM, "optimizer: out of memory");
    }
    sn_status st = SN_OK;
    const char *c = list;
    while (st == SN_OK) {
        const char *end = strchr(c, ',');
        if (!end) end = c + strlen(c);
        const char *a = c, *b = end;
        while (a < b && (*a == ' ' || *a == '\t' || *a == '\n' || *a == '\r')) a++;
        while (b > a && (b[-1] == ' ' || b[-1] == '\t' || b[-1] == '\n' || b[-1] == '\r')) b--;
        if (b > a) {
            memcpy(buf, a, (size_t)(b - a));
            buf[b - a] = '\0';
            int e = regcomp(&r[*n], buf, REG_EXTENDED);
            if (e != 0) {
                char msg[256];
                regerror(e, &r[*n], msg, sizeof msg);
                st = sn__fail(ctx, SN_ERR_INVALID_ARG, "optimizer: trainable scope '%s' is "
                              "not a valid regular expression: %s", buf, msg);
            } else {
                (*n)++;
            }
        }
        if (!*end) break;
        c = end + 1;
    }
    free(buf);
    if (st != SN_OK) {
        for (int i = 0; i < *n; i++) regfree(&r[i]);
        free(r);
        *n = 0;
        return st;
    }
    *re = r;
    return SN_OK;
}

/* Whether one of the scopes matches at the start of "<name>:0", as Python's re.match
 * against the TF variable's name.  The leftmost match starts at 0 whenever one does. */
static bool scope_match(const regex_t *re, int n, const char *name, char *buf) {
    strcpy(buf, name);
    strcat(buf, ":0");
    regmatch_t m;
    for (int i = 0; i < n; i++)
        if (regexec(&re[i], buf, 1, &m, 0) == 0 && m.rm_so == 0) return true;
    return false;
}

/* The trainable set: trainable variables with a gradient, filtered by the scopes. */
static sn_status select_vars(sn_optim *opt) {
    sn_net *net = opt->net;
    const sn_graph *g = net->g;
    regex_t *re = NULL;
    int n_re = 0;
    bool filter = opt->scopes && opt->scopes[0];
    if (filter) SN_TRY(compile_scopes(net->ctx, opt->scopes, &re, &n_re));
    size_t maxlen = 0;
    for (int v = 0; v < g->n_vars; v++) {
        size_t l = strlen(g->nodes[g->vars[v]].name);
        if (l > maxlen) maxlen = l;
    }
    char *buf = malloc(maxlen + 3);
    opt->vars = malloc((size_t)(g->n_vars ? g->n_vars : 1) * sizeof *opt->vars);
    sn_status st = SN_OK;
    if (!buf || !opt->vars) st = sn__fail(net->ctx, SN_ERR_NOMEM, "optimizer: out of memory");
    for (int v = 0; v < g->n_vars && st == SN_OK; v++) {
        int i = g->vars[v];
        const sn__node *nd = &g->nodes[i];
        if (!(nd->p.var.flags & SN_VAR_TRAINABLE) || !net->grad[i]) continue;
        if (filter && !scope_match(re, n_re, nd->name, buf)) continue;
        opt->vars[opt->n_vars++] = i;
    }
    free(buf);
    for (int i = 0; i < n_re; i++) regfree(&re[i]);
    free(re);
    if (st == SN_OK && opt->n_vars == 0) {
        if (!net->backward_ok)
            st = sn__fail(net->ctx, SN_ERR_INVALID_ARG, "optimizer: no variables to optimize "
                          "(the net was compiled with backward = 0)");
        else if (filter)
            st = sn__fail(net->ctx, SN_ERR_INVALID_ARG, "optimizer: no variables to optimize: "
                          "no trainable variable matches trainable_scopes '%s'", opt->scopes);
        else
            st = sn__fail(net->ctx, SN_ERR_INVALID_ARG, "optimizer: no variables to optimize "
                          "(the net has no trainable variable)");
    }
    return st;
}

/* Slots and their initial values, as TF1's _create_slots. */
static sn_status create_slots(sn_optim *opt) {
    slot_table *t = &opt->t;
    const sn_optim_params *p = &opt->p;
    int ns = opt->k->slots, nn = opt->k->non_slots;
    char suffix1[300];
    snprintf(suffix1, sizeof suffix1, "%s_1", opt->name);
    if (p->kind == SN_OPTIM_ADAM) {
        SN_TRY(table_add(t, -1, NULL, "beta1_power", 1));
        SN_TRY(table_add(t, -1, NULL, "beta2_power", 1));
    }
    for (int v = 0; v < opt->n_vars; v++) {
        int i = opt->vars[v];
        const char *var = opt->net->g->nodes[i].name;
        if (ns > 0) SN_TRY(table_add(t, i, var, opt->name, opt->net->numel[i]));
        if (ns > 1) SN_TRY(table_add(t, i, var, suffix1, opt->net->numel[i]));
    }
    SN_TRY(table_alloc(t));
    switch (p->kind) {
    case SN_OPTIM_RMSPROP:     /* "rms" (the mean square) starts at ONES */
        return table_fill(t, nn, ns, opt->n_vars, 1.0f);
    case SN_OPTIM_ADAM:
        SN_TRY(table_fill(t, 0, 1, 1, p->adam_beta1));
        return table_fill(t, 1, 1, 1, p->adam_beta2);
    case SN_OPTIM_ADAGRAD:
        return table_fill(t, nn, ns, opt->n_vars, p->adagrad_initial_accumulator);
    case SN_OPTIM_FTRL:        /* "accum" starts at the initial value, "linear" at zero */
        return table_fill(t, nn, ns, opt->n_vars, p->ftrl_initial_accumulator);
    default:
        return SN_OK;
    }
}

sn_status sn_optim_new(sn_net *net, const sn_optim_params *p, sn_optim **out) {
    if (!net || !p || !out) return SN_ERR_INVALID_ARG;
    *out = NULL;
    SN_TRY(check_params(net->ctx, p));
    sn_optim *opt = calloc(1, sizeof *opt);
    if (!opt) return sn__fail(net->ctx, SN_ERR_NOMEM, "optimizer: out of memory");
    opt->net = net;
    opt->t.net = net;
    opt->p = *p;
    opt->k = kind_of(p->kind);
    opt->name = dup_str(p->name ? p->name : opt->k->tf_name);
    opt->scopes = p->trainable_scopes ? dup_str(p->trainable_scopes) : NULL;
    opt->p.name = opt->name;
    opt->p.trainable_scopes = opt->scopes;
    sn_status st = SN_OK;
    if (!opt->name || (p->trainable_scopes && !opt->scopes))
        st = sn__fail(net->ctx, SN_ERR_NOMEM, "optimizer: out of memory");
    else if (strlen(opt->name) > 256)
        st = sn__fail(net->ctx, SN_ERR_INVALID_ARG, "optimizer: name longer than 256 bytes");
    if (st == SN_OK) st = select_vars(opt);
    if (st == SN_OK) st = create_slots(opt);
    if (st != SN_OK) {
        sn_optim_free(opt);
        return st;
    }
    *out = opt;
    return SN_OK;
}

void sn_optim_free(sn_optim *opt) {
    if (!opt) return;
    table_free(&opt->t);
    free(opt->vars);
    free(opt->name);
    free(opt->scopes);
    free(opt);
}

sn_status sn_optim_step(sn_optim *opt, float lr) {
    if (!opt) return SN_ERR_INVALID_ARG;
    sn_net *net = opt->net;
    const sn_optim_params *p = &opt->p;
    int ns = opt->k->slots, nn = opt->k->non_slots;
    for (int v = 0; v < opt->n_vars; v++) {
        int i = opt->vars[v];
        float *w = net->val[i];
        const float *g = net->grad[i];
        int64_t n = (int64_t)net->numel[i];
        float *s0 = ns > 0 ? opt->t.s[nn + v * ns].p : NULL;
        float *s1 = ns > 1 ? opt->t.s[nn + v * ns + 1].p : NULL;
        switch (p->kind) {
        case SN_OPTIM_SGD:
            SN_TRY(SN__CALL(net, accum, w, g, -lr, n));
            break;
        case SN_OPTIM_MOMENTUM:
            SN_TRY(SN__CALL(net, momentum_apply, w, s0, g, lr, p->momentum, p->nesterov != 0,
                            n));
            break;
        case SN_OPTIM_RMSPROP:
            SN_TRY(SN__CALL(net, rmsprop_apply, w, s0, s1, g, lr, p->rmsprop_decay,
                            p->rmsprop_momentum, p->epsilon, n));
            break;
        case SN_OPTIM_ADAM:
            SN_TRY(SN__CALL(net, adam_apply, w, s0, s1, g, opt->t.s[0].p, lr, p->adam_beta1,
                            p->adam_beta2, p->epsilon, n));
            break;
        case SN_OPTIM_ADAGRAD:
            SN_TRY(SN__CALL(net, adagrad_apply, w, s0, g, lr, n));
            break;
        case SN_OPTIM_ADADELTA:
            SN_TRY(SN__CALL(net, adadelta_apply, w, s0, s1, g, lr, p->adadelta_rho,
                            p->epsilon, n));
            break;
        case SN_OPTIM_FTRL:
            SN_TRY(SN__CALL(net, ftrl_apply, w, s0, s1, g, lr, p->ftrl_l1, p->ftrl_l2,
                            p->ftrl_lr_power, n));
            break;
        }
    }
    if (p->kind == SN_OPTIM_ADAM) {   /* _finish: beta1_power *= beta1, beta2_power *= beta2 */
        SN_TRY(SN__CALL(net, scale_fwd, opt->t.s[0].p, opt->t.s[0].p, p->adam_beta1, 1));
        SN_TRY(SN__CALL(net, scale_fwd, opt->t.s[1].p, opt->t.s[1].p, p->adam_beta2, 1));
    }
    opt->global_step++;
    return SN_OK;
}

int64_t sn_optim_global_step(const sn_optim *opt) { return opt->global_step; }
void sn_optim_set_global_step(sn_optim *opt, int64_t step) { opt->global_step = step; }
const sn_optim_params *sn_optim_get_params(const sn_optim *opt) { return &opt->p; }
int sn_optim_num_vars(const sn_optim *opt) { return opt->n_vars; }

const char *sn_optim_var_name(const sn_optim *opt, int i) {
    if (i < 0 || i >= opt->n_vars) return NULL;
    return opt->net->g->nodes[opt->vars[i]].name;
}

int sn_optim_num_slots(const sn_optim *opt) { return opt->t.n; }
sn_status sn_optim_slot(const sn_optim *opt, int i, sn_slot_info *info) {
    return table_info(&opt->t, i, info);
}
int sn_optim_find_slot(const sn_optim *opt, const char *name) {
    return table_find(&opt->t, name);
}
sn_status sn_optim_get_slot(sn_optim *opt, const char *name, sn_tensor **out) {
    return table_get(&opt->t, name, "optimizer get_slot", out);
}
sn_status sn_optim_set_slot(sn_optim *opt, const char *name, const sn_tensor *t) {
    return table_set(&opt->t, name, "optimizer set_slot", t);
}
size_t sn_optim_memory(const sn_optim *opt) { return opt->t.bytes; }

/* ---- learning-rate schedules ---------------------------------------------------------------- */

static const char *const lr_names[] = {"fixed", "exponential", "polynomial"};

const char *sn_lr_decay_name(sn_lr_decay type) {
    if ((int)type < 0 || (size_t)type >= sizeof lr_names / sizeof lr_names[0]) return NULL;
    return lr_names[type];
}

sn_status sn_lr_decay_from_name(const char *name, sn_lr_decay *type) {
    for (size_t i = 0; name && i < sizeof lr_names / sizeof lr_names[0]; i++) {
        if (strcmp(lr_names[i], name) == 0) {
            *type = (sn_lr_decay)i;
            return SN_OK;
        }
    }
    return SN_ERR_NOT_FOUND;
}

sn_lr_params sn_lr_params_default(void) {
    sn_lr_params p = {0};
    p.type = SN_LR_EXPONENTIAL;
    p.learning_rate = 0.01f;
    p.end_learning_rate = 0.0001f;
    p.decay_factor = 0.94f;
    p.decay_steps = 0.0;
    p.power = 1.0f;
    p.cycle = 0;
    p.staircase = 1;
    return p;
}

double sn_lr_decay_steps(int64_t num_samples, double num_epochs_per_decay, int64_t batch_size,
                         int replicas_to_aggregate) {
    if (batch_size < 1 || replicas_to_aggregate < 1) return 0.0;
    /* Python: int(num_samples * num_epochs_per_decay / batch_size), in doubles. */
    double steps = trunc((double)num_samples * num_epochs_per_decay / (double)batch_size);
    return steps / (double)replicas_to_aggregate;
}

/* Every step below is a float32 operation of the graph TF-slim runs, in its order.  That
 * graph divides by decay_steps, a constant, and TF's graph optimizer (Grappler's constant
 * folding) rewrites x / c as x * (1/c) with 1/c rounded to float32; so does this function,
 * because the two differ: with decay_steps 41, 41 * (1/41) rounds to just below 1, and
 * TF-slim's staircase takes its first step down at global step 42, not 41 (the fixture in
 * tests/reference/optim_steps.json records it).  Where the divisor is not a constant
 * (polynomial decay with cycle), the graph divides, and so does this. */
float sn_learning_rate(const sn_lr_params *p, int64_t global_step) {
    if (!p || global_step < 0) return NAN;
    const float lr = p->learning_rate;
    if (p->type == SN_LR_FIXED) return lr;
    if (!(p->decay_steps > 0.0)) return NAN;
    const float step = (float)global_step, ds = (float)p->decay_steps, inv_ds = 1.0f / ds;
    if (p->type == SN_LR_EXPONENTIAL) {
        float e = step * inv_ds;
        if (p->staircase) e = floorf(e);
        return lr * powf(p->decay_factor, e);
    }
    if (p->type == SN_LR_POLYNOMIAL) {
        float frac;
        if (p->cycle) {   /* the horizon: the first multiple of decay_steps >= step */
            float d = ds * (step == 0.0f ? 1.0f : ceilf(step * inv_ds));
            frac = step / d;
        } else {
            frac = fminf(step, ds) * inv_ds;
        }
        return (lr - p->end_learning_rate) * powf(1.0f - frac, p->power) +
               p->end_learning_rate;
    }
    return NAN;
}

/* ---- moving averages ------------------------------------------------------------------------ */

struct sn_ema {
    sn_net *net;
    float decay;
    slot_table t;
};

sn_status sn_ema_new(sn_net *net, float decay, unsigned var_flags, sn_ema **out) {
    if (!net || !out) return SN_ERR_INVALID_ARG;
    *out = NULL;
    if (!(decay >= 0.0f && decay <= 1.0f))
        return sn__fail(net->ctx, SN_ERR_INVALID_ARG, "moving average: decay %g outside [0, 1]",
                        (double)decay);
    sn_ema *ema = calloc(1, sizeof *ema);
    if (!ema) return sn__fail(net->ctx, SN_ERR_NOMEM, "moving average: out of memory");
    ema->net = net;
    ema->decay = decay;
    ema->t.net = net;
    const sn_graph *g = net->g;
    sn_status st = SN_OK;
    for (int v = 0; v < g->n_vars && st == SN_OK; v++) {
        int i = g->vars[v];
        if (g->nodes[i].p.var.flags & var_flags)
            st = table_add(&ema->t, i, g->nodes[i].name, "ExponentialMovingAverage",
                           net->numel[i]);
    }
    if (st == SN_OK && ema->t.n == 0)
        st = sn__fail(net->ctx, SN_ERR_INVALID_ARG, "moving average: no variable has flags "
                      "0x%x", var_flags);
    if (st == SN_OK) st = table_alloc(&ema->t);
    for (int s = 0; s < ema->t.n && st == SN_OK; s++)
        st = SN__CALL(net, copy, ema->t.s[s].p, net->val[ema->t.s[s].node],
                      ema->t.s[s].numel * sizeof(float));
    if (st != SN_OK) {
        sn_ema_free(ema);
        return st;
    }
    *out = ema;
    return SN_OK;
}

void sn_ema_free(sn_ema *ema) {
    if (!ema) return;
    table_free(&ema->t);
    free(ema);
}

float sn_ema_decay_at(float decay, int64_t num_updates) {
    if (num_updates < 0) return decay;
    const float n = (float)num_updates;
    const float r = (1.0f + n) / (10.0f + n);
    return r < decay ? r : decay;
}

sn_status sn_ema_update(sn_ema *ema, int64_t num_updates) {
    if (!ema) return SN_ERR_INVALID_ARG;
    const float one_minus = 1.0f - sn_ema_decay_at(ema->decay, num_updates);
    for (int s = 0; s < ema->t.n; s++) {
        const slot *sl = &ema->t.s[s];
        SN_TRY(SN__CALL(ema->net, ema_apply, sl->p, ema->net->val[sl->node], one_minus,
                        (int64_t)sl->numel));
    }
    return SN_OK;
}

sn_status sn_ema_assign_to_net(sn_ema *ema) {
    if (!ema) return SN_ERR_INVALID_ARG;
    for (int s = 0; s < ema->t.n; s++) {
        const slot *sl = &ema->t.s[s];
        SN_TRY(SN__CALL(ema->net, copy, ema->net->val[sl->node], sl->p,
                        sl->numel * sizeof(float)));
    }
    return SN_OK;
}

int sn_ema_num_slots(const sn_ema *ema) { return ema->t.n; }
sn_status sn_ema_slot(const sn_ema *ema, int i, sn_slot_info *info) {
    return table_info(&ema->t, i, info);
}
int sn_ema_find_slot(const sn_ema *ema, const char *name) { return table_find(&ema->t, name); }
sn_status sn_ema_get_slot(sn_ema *ema, const char *name, sn_tensor **out) {
    return table_get(&ema->t, name, "moving average get_slot", out);
}
sn_status sn_ema_set_slot(sn_ema *ema, const char *name, const sn_tensor *t) {
    return table_set(&ema->t, name, "moving average set_slot", t);
}

/* For the parameter servers (ps.c): optimizer variable i's device memory, its length, and
 * the node of the variable it belongs to (-1: a non-slot variable). */
sn_status sn__ema_slot_mem(sn_ema *ema, int i, float **p, size_t *numel, int *node) {
    if (!ema || i < 0 || i >= ema->t.n) return SN_ERR_INVALID_ARG;
    *p = ema->t.s[i].p;
    *numel = ema->t.s[i].numel;
    *node = ema->t.s[i].node;
    return SN_OK;
}

float sn__ema_decay(const sn_ema *ema) { return ema ? ema->decay : 0.0f; }
const sn_net *sn__ema_net(const sn_ema *ema) { return ema ? ema->net : NULL; }

sn_status sn__optim_slot_mem(sn_optim *opt, int i, float **p, size_t *numel, int *node) {
    if (!opt || i < 0 || i >= opt->t.n) return SN_ERR_INVALID_ARG;
    *p = opt->t.s[i].p;
    *numel = opt->t.s[i].numel;
    *node = opt->t.s[i].node;
    return SN_OK;
}
