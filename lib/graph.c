/* graph.c: the graph builder: nodes, sticky errors, name scopes, arg_scope defaults,
 * inputs, variables and their collections, end points. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "graph.h"

sn_defaults sn_defaults_slim(void) {
    sn_defaults d;
    memset(&d, 0, sizeof d);
    d.weights_init = sn_init_xavier(1);
    d.biases_init = sn_init_zeros();
    d.weight_decay = 0.0f;
    d.regularize_depthwise = 1;
    d.activation = SN_ACT_RELU;
    d.batch_norm = 0;
    d.bn_decay = 0.999f;
    d.bn_epsilon = 0.001f;
    d.bn_center = 1;
    d.bn_scale = 0;
    d.conv_padding = SN_PAD_SAME;
    d.pool_padding = SN_PAD_VALID;
    d.pool_stride = 2;
    d.is_training = 1;
    d.trainable = 1;
    return d;
}

sn_status sn_graph_new(sn_ctx *ctx, sn_graph **out) {
    if (!out) return SN_ERR_INVALID_ARG;
    sn_graph *g = calloc(1, sizeof *g);
    if (!g) return sn__fail(ctx, SN_ERR_NOMEM, "graph: out of memory");
    g->ctx = ctx;
    g->defs[0] = sn_defaults_slim();
    *out = g;
    return SN_OK;
}

void sn_graph_free(sn_graph *g) {
    if (!g) return;
    for (int i = 0; i < g->n_nodes; i++) {
        if (g->nodes[i].in != g->nodes[i].in_small) free(g->nodes[i].in);
        free(g->nodes[i].name);
    }
    free(g->nodes);
    free(g->vars);
    free(g->reg);
    free(g);
}

sn_status sn_graph_status(const sn_graph *g) { return g->err; }
const char *sn_graph_errmsg(const sn_graph *g) { return g->errmsg; }
sn_ctx *sn_graph_ctx(const sn_graph *g) { return g->ctx; }

sn_node sn__graph_fail(sn_graph *g, sn_status st, const char *fmt, ...) {
    if (g->err != SN_OK) return SN_NO_NODE;   /* keep the first error */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g->errmsg, sizeof g->errmsg, fmt, ap);
    va_end(ap);
    g->err = st;
    sn__fail(g->ctx, st, "%s", g->errmsg);
    return SN_NO_NODE;
}

sn_node sn_graph_fail(sn_graph *g, sn_status st, const char *msg) {
    return sn__graph_fail(g, st, "%s", msg);
}

bool sn__graph_check(sn_graph *g, sn_node n, const char *what) {
    if (g->err != SN_OK) return false;
    if (n < 0 || n >= g->n_nodes) {
        sn__graph_fail(g, SN_ERR_INVALID_ARG, "%s: invalid input node %d (in scope '%s')",
                       what, (int)n, g->scope);
        return false;
    }
    return true;
}

sn_node sn__graph_add(sn_graph *g, sn__op op, sn_dtype dt, int rank, const int64_t *dims,
                      int n_in, const sn_node *in) {
    if (g->err != SN_OK) return SN_NO_NODE;
    if (rank < 0 || rank > SN_MAX_RANK)
        return sn__graph_fail(g, SN_ERR_INVALID_ARG, "rank %d outside [0, %d]", rank,
                              SN_MAX_RANK);
    for (int i = 0; i < rank; i++) {
        if (dims[i] < 0 && !(i == 0 && dims[i] == SN_BATCH)) {
            char buf[128];
            return sn__graph_fail(g, SN_ERR_SHAPE, "invalid shape %s in scope '%s'",
                                  sn__dims_str(rank, dims, buf, sizeof buf), g->scope);
        }
    }
    /* dims often points into g->nodes (an input's shape): copy it before the array moves. */
    int64_t dcopy[SN_MAX_RANK];
    for (int i = 0; i < rank; i++) dcopy[i] = dims[i];
    dims = dcopy;
    if (g->n_nodes == g->cap_nodes) {
        int cap = g->cap_nodes ? g->cap_nodes * 2 : 256;
        sn__node *nn = realloc(g->nodes, (size_t)cap * sizeof *nn);
        if (!nn) return sn__graph_fail(g, SN_ERR_NOMEM, "graph: out of memory");
        g->nodes = nn;
        g->cap_nodes = cap;
        /* in pointers into in_small moved with the array */
        for (int i = 0; i < g->n_nodes; i++)
            if (g->nodes[i].n_in <= 4) g->nodes[i].in = g->nodes[i].in_small;
    }
    sn__node *n = &g->nodes[g->n_nodes];
    memset(n, 0, sizeof *n);
    n->op = op;
    n->dtype = dt;
    n->rank = rank;
    for (int i = 0; i < rank; i++) n->dims[i] = dims[i];
    n->n_in = n_in;
    if (n_in <= 4) {
        n->in = n->in_small;
    } else {
        n->in = malloc((size_t)n_in * sizeof *n->in);
        if (!n->in) return sn__graph_fail(g, SN_ERR_NOMEM, "graph: out of memory");
    }
    for (int i = 0; i < n_in; i++) n->in[i] = in[i];
    return g->n_nodes++;
}

/* ---- scopes --------------------------------------------------------------------------- */

void sn_scope_push(sn_graph *g, const char *name) {
    if (g->err != SN_OK) return;
    if (g->scope_depth >= SN__MAX_SCOPE_DEPTH) {
        sn__graph_fail(g, SN_ERR_INVALID_ARG, "scope '%s': more than %d nested scopes", name,
                       SN__MAX_SCOPE_DEPTH);
        return;
    }
    size_t cur = strlen(g->scope), add = strlen(name);
    if (!name[0] || cur + add + 2 > sizeof g->scope) {
        sn__graph_fail(g, SN_ERR_INVALID_ARG, "scope '%s' under '%s': empty or too long", name,
                       g->scope);
        return;
    }
    g->scope_len[g->scope_depth++] = (int)cur;
    if (cur) g->scope[cur++] = '/';
    memcpy(g->scope + cur, name, add + 1);
}

void sn_scope_pop(sn_graph *g) {
    if (g->err != SN_OK) return;
    if (g->scope_depth == 0) {
        sn__graph_fail(g, SN_ERR_STATE, "sn_scope_pop without a matching push");
        return;
    }
    g->scope[g->scope_len[--g->scope_depth]] = '\0';
}

const char *sn_scope_current(const sn_graph *g) { return g->scope; }

static char *scoped_name(const sn_graph *g, const char *leaf) {
    size_t a = strlen(g->scope), b = strlen(leaf);
    char *s = malloc(a + b + 2);
    if (!s) return NULL;
    if (a) {
        memcpy(s, g->scope, a);
        s[a] = '/';
        memcpy(s + a + 1, leaf, b + 1);
    } else {
        memcpy(s, leaf, b + 1);
    }
    return s;
}

void sn__graph_name(sn_graph *g, sn_node n, const char *leaf) {
    if (g->err != SN_OK || n < 0) return;
    char *s = leaf ? scoped_name(g, leaf) : strdup(g->scope);
    if (!s) {
        sn__graph_fail(g, SN_ERR_NOMEM, "graph: out of memory");
        return;
    }
    free(g->nodes[n].name);
    g->nodes[n].name = s;
}

/* ---- defaults (arg_scope) -------------------------------------------------------------- */

sn_defaults *sn_graph_defaults(sn_graph *g) { return &g->defs[g->defs_depth]; }

void sn_defaults_push(sn_graph *g) {
    if (g->err != SN_OK) return;
    if (g->defs_depth + 1 >= SN__MAX_DEFAULTS_DEPTH) {
        sn__graph_fail(g, SN_ERR_INVALID_ARG, "more than %d nested sn_defaults_push",
                       SN__MAX_DEFAULTS_DEPTH - 1);
        return;
    }
    g->defs[g->defs_depth + 1] = g->defs[g->defs_depth];
    g->defs_depth++;
}

void sn_defaults_pop(sn_graph *g) {
    if (g->err != SN_OK) return;
    if (g->defs_depth == 0) {
        sn__graph_fail(g, SN_ERR_STATE, "sn_defaults_pop without a matching push");
        return;
    }
    g->defs_depth--;
}

/* ---- node facts ----------------------------------------------------------------------- */

int sn_node_rank(const sn_graph *g, sn_node n) {
    return (n >= 0 && n < g->n_nodes) ? g->nodes[n].rank : -1;
}
int64_t sn_node_dim(const sn_graph *g, sn_node n, int i) {
    if (n < 0 || n >= g->n_nodes || i < 0 || i >= g->nodes[n].rank) return 0;
    return g->nodes[n].dims[i];
}
sn_dtype sn_node_dtype(const sn_graph *g, sn_node n) {
    return (n >= 0 && n < g->n_nodes) ? g->nodes[n].dtype : SN_DTYPE_F32;
}
const char *sn_node_name(const sn_graph *g, sn_node n) {
    if (n < 0 || n >= g->n_nodes || !g->nodes[n].name) return "";
    return g->nodes[n].name;
}

sn_node sn_graph_find(const sn_graph *g, const char *name) {
    /* Latest first: a layer output shadows an earlier node of the same scope name. */
    for (int i = g->n_nodes - 1; i >= 0; i--)
        if (g->nodes[i].name && strcmp(g->nodes[i].name, name) == 0) return i;
    return SN_NO_NODE;
}

void sn_graph_end_point(sn_graph *g, sn_node n, const char *name) {
    if (!sn__graph_check(g, n, "end_point")) return;
    if (name) {
        char *s = strdup(name);
        if (!s) {
            sn__graph_fail(g, SN_ERR_NOMEM, "graph: out of memory");
            return;
        }
        free(g->nodes[n].name);
        g->nodes[n].name = s;
    }
    g->nodes[n].end_point = true;
}

int sn_graph_end_points(const sn_graph *g, sn_node *out, int cap) {
    int count = 0;
    for (int i = 0; g && i < g->n_nodes; i++)
        if (g->nodes[i].end_point) {
            if (out && count < cap) out[count] = i;
            count++;
        }
    return count;
}

/* ---- inputs and variables --------------------------------------------------------------- */

sn_node sn_input(sn_graph *g, const char *name, sn_dtype dt, int rank, const int64_t *dims) {
    if (g->err != SN_OK) return SN_NO_NODE;
    if (dt != SN_DTYPE_F32 && dt != SN_DTYPE_I32)
        return sn__graph_fail(g, SN_ERR_INVALID_ARG, "input '%s': dtype must be float32 or "
                              "int32, not %s", name, sn_dtype_name(dt));
    sn_node n = sn__graph_add(g, SN__OP_input, dt, rank, dims, 0, NULL);
    if (n < 0) return n;
    g->nodes[n].name = strdup(name);
    g->nodes[n].end_point = true;
    if (!g->nodes[n].name) return sn__graph_fail(g, SN_ERR_NOMEM, "graph: out of memory");
    return n;
}

sn_node sn_variable(sn_graph *g, const char *name, int rank, const int64_t *dims,
                    const sn_init *init, unsigned flags) {
    if (g->err != SN_OK) return SN_NO_NODE;
    for (int i = 0; i < rank; i++)
        if (dims[i] < 0)
            return sn__graph_fail(g, SN_ERR_SHAPE, "variable '%s/%s': dim %d is %lld", g->scope,
                                  name, i, (long long)dims[i]);
    char *full = scoped_name(g, name);
    if (!full) return sn__graph_fail(g, SN_ERR_NOMEM, "graph: out of memory");
    for (int v = 0; v < g->n_vars; v++) {
        if (strcmp(g->nodes[g->vars[v]].name, full) == 0) {
            sn__graph_fail(g, SN_ERR_INVALID_ARG, "variable '%s' already exists", full);
            free(full);
            return SN_NO_NODE;
        }
    }
    sn_node n = sn__graph_add(g, SN__OP_variable, SN_DTYPE_F32, rank, dims, 0, NULL);
    if (n < 0) {
        free(full);
        return n;
    }
    if (g->n_vars == g->cap_vars) {
        int cap = g->cap_vars ? 2 * g->cap_vars : 64;
        sn_node *nv = realloc(g->vars, (size_t)cap * sizeof *nv);
        if (!nv) {
            free(full);
            return sn__graph_fail(g, SN_ERR_NOMEM, "graph: out of memory");
        }
        g->vars = nv;
        g->cap_vars = cap;
    }
    sn__node *node = &g->nodes[n];
    node->name = full;
    node->p.var.init = init ? *init : sn_init_zeros();
    node->p.var.flags = flags;
    node->p.var.index = g->n_vars;
    g->vars[g->n_vars++] = n;
    return n;
}

int sn_graph_num_vars(const sn_graph *g) { return g->n_vars; }

sn_status sn_graph_var(const sn_graph *g, int i, sn_var_info *info) {
    if (i < 0 || i >= g->n_vars)
        return sn__fail(g->ctx, SN_ERR_INVALID_ARG, "variable index %d outside [0, %d)", i,
                        g->n_vars);
    const sn__node *n = &g->nodes[g->vars[i]];
    memset(info, 0, sizeof *info);
    info->name = n->name;
    info->rank = n->rank;
    for (int d = 0; d < n->rank; d++) info->dims[d] = n->dims[d];
    info->flags = n->p.var.flags;
    info->node = g->vars[i];
    return SN_OK;
}

void sn__graph_add_reg(sn_graph *g, sn_node loss) {
    if (g->err != SN_OK || loss < 0) return;
    if (g->n_reg == g->cap_reg) {
        int cap = g->cap_reg ? 2 * g->cap_reg : 64;
        sn_node *nr = realloc(g->reg, (size_t)cap * sizeof *nr);
        if (!nr) {
            sn__graph_fail(g, SN_ERR_NOMEM, "graph: out of memory");
            return;
        }
        g->reg = nr;
        g->cap_reg = cap;
    }
    g->reg[g->n_reg++] = loss;
}

const sn_node *sn_graph_regularization_losses(const sn_graph *g, int *n) {
    *n = g->n_reg;
    return g->reg;
}
