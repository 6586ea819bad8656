/* pb.c: see pb.h. */
#include "pb.h"

#include <stdint.h>

static const ProtobufCMessage *sub(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f,
                                   size_t i) {
    const char *base = (const char *)m;
    if (f->label == PROTOBUF_C_LABEL_REPEATED)
        return (*(ProtobufCMessage *const *const *)(base + f->offset))[i];
    return *(ProtobufCMessage *const *)(base + f->offset);
}

bool sn__pb_has_field0(const ProtobufCMessage *m) {
    if (!m) return false;
    for (unsigned i = 0; i < m->n_unknown_fields; i++)
        if (m->unknown_fields[i].tag == 0) return true;
    const ProtobufCMessageDescriptor *d = m->descriptor;
    for (unsigned k = 0; k < d->n_fields; k++) {
        const ProtobufCFieldDescriptor *f = &d->fields[k];
        if (f->type != PROTOBUF_C_TYPE_MESSAGE) continue;
        const char *base = (const char *)m;
        size_t n = 1;
        if (f->label == PROTOBUF_C_LABEL_REPEATED)
            n = *(const size_t *)(base + f->quantifier_offset);
        else if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
                 *(const uint32_t *)(base + f->quantifier_offset) != f->id)
            continue;   /* another member of the oneof is set */
        for (size_t i = 0; i < n; i++)
            if (sn__pb_has_field0(sub(m, f, i))) return true;
    }
    return false;
}
