/* nets.h: the zoo builders, shared by the files of nets/.  They use only slimnet.h, as a user
 * program would; the factory (nets_factory.c) is their one caller. */
#ifndef SN_NETS_H
#define SN_NETS_H

#include "../lib/slimnet.h"

#define SN_MODEL(name, size, prep)                                                   \
    sn_status sn__net_##name(sn_graph *g, sn_node images, const sn_model_params *p,   \
                             sn_model *out);
#include "models.def"
#undef SN_MODEL

/* The family default unless the caller overrides it (p->weight_decay >= 0). */
static inline float sn__wd(const sn_model_params *p, float family_default) {
    return p->weight_decay >= 0.0f ? p->weight_decay : family_default;
}

/* Marks logits and aux logits as end points, adds the softmax end point pred_name
 * ("predictions" or "Predictions", as the family names it), fills out; returns the graph
 * status. */
sn_status sn__net_finish(sn_graph *g, sn_node logits, sn_node aux, const char *pred_name,
                         sn_model *out);

#endif
