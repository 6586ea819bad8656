/* nets_factory.c: models by name, as TF-slim's nets_factory.get_network_fn. */
#include <stdio.h>
#include <string.h>
#include "nets.h"

typedef struct model_entry {
    const char *name;
    int size;
    const char *preprocessing;
    sn_status (*build)(sn_graph *, sn_node, const sn_model_params *, sn_model *);
} model_entry;

static const model_entry models[] = {
#define SN_MODEL(name, size, prep) {#name, size, prep, sn__net_##name},
#include "models.def"
#undef SN_MODEL
};
enum { N_MODELS = sizeof models / sizeof models[0] };

sn_model_params sn_model_params_default(void) {
    sn_model_params p;
    memset(&p, 0, sizeof p);
    p.num_classes = 1000;
    p.is_training = 1;
    p.dropout_keep_prob = -1.0f;
    p.spatial_squeeze = 1;
    p.global_pool = 1;
    p.weight_decay = -1.0f;
    return p;
}

int sn_model_count(void) { return N_MODELS; }
const char *sn_model_name(int i) { return i >= 0 && i < N_MODELS ? models[i].name : NULL; }

static const model_entry *find(const char *name) {
    for (int i = 0; i < N_MODELS; i++)
        if (strcmp(models[i].name, name) == 0) return &models[i];
    return NULL;
}

int sn_model_default_image_size(const char *name) {
    const model_entry *m = find(name);
    return m ? m->size : 0;
}

sn_status sn_model_build(sn_graph *g, const char *name, sn_node images,
                         const sn_model_params *p, sn_model *out) {
    const model_entry *m = find(name);
    if (!m) {
        /* The builder's sticky error carries the message, with the names we know. */
        char known[1024] = "";
        for (int i = 0; i < N_MODELS; i++) {
            strncat(known, i ? ", " : "", sizeof known - strlen(known) - 1);
            strncat(known, models[i].name, sizeof known - strlen(known) - 1);
        }
        sn_status st = SN_ERR_NOT_FOUND;
        char msg[1200];
        snprintf(msg, sizeof msg, "unknown model_name '%s' (known: %s)", name, known);
        sn_graph_fail(g, st, msg);
        return st;
    }
    sn_model_params mp = p ? *p : sn_model_params_default();
    memset(out, 0, sizeof *out);
    out->logits = out->aux_logits = out->predictions = SN_NO_NODE;
    out->default_image_size = m->size;
    out->preprocessing = m->preprocessing;
    sn_defaults_push(g);
    *sn_graph_defaults(g) = sn_defaults_slim();
    sn_graph_defaults(g)->is_training = mp.is_training;
    sn_status st = m->build(g, images, &mp, out);
    sn_defaults_pop(g);
    return st != SN_OK ? st : sn_graph_status(g);
}

sn_status sn__net_finish(sn_graph *g, const sn_model_params *p, sn_node logits, sn_node aux,
                         const char *pred_name, sn_model *out) {
    out->logits = logits;
    out->aux_logits = aux;
    if (logits != SN_NO_NODE) sn_graph_end_point(g, logits, NULL);
    if (aux != SN_NO_NODE) sn_graph_end_point(g, aux, NULL);
    if (p->num_classes > 0 && logits != SN_NO_NODE && sn_node_rank(g, logits) == 2) {
        out->predictions = sn_op_softmax(g, logits);
        sn_graph_end_point(g, out->predictions, pred_name);
    }
    return sn_graph_status(g);
}
