/* pb.h: what protobuf-c accepts and TensorFlow's protobuf parser refuses.  Not installed. */
#ifndef SN_IO_PB_H
#define SN_IO_PB_H

#include <stdbool.h>
#include <protobuf-c/protobuf-c.h>

/* Whether an unpacked message, or any message inside it, holds a field with number 0.
 * protobuf-c refuses a one-byte key for field 0 but takes an overlong one ("82 00": field
 * 0, length-delimited) as an unknown field; TensorFlow's parser refuses the message. */
bool sn__pb_has_field0(const ProtobufCMessage *m);

#endif
