/* crc32c.h: CRC-32C (Castagnoli), as TensorFlow and LevelDB store it.  Internal to libslimnet
 * (used by TFRecord, the checkpoint table and event files).
 *
 * The CRC is the iSCSI one (RFC 3720): reflected polynomial 0x82F63B78, initial value and
 * final XOR 0xFFFFFFFF.  Every CRC stored in a TF file is masked (sn__crc32c_mask), because a
 * CRC computed over data that itself contains CRCs is otherwise weak. */
#ifndef SN_CRC32C_H
#define SN_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* CRC of A||B given crc = CRC(A): sn__crc32c_extend(sn__crc32c(A), B, n).  Start with 0.
 * Uses the SSE4.2 crc32 instruction when the CPU has it, else slicing-by-8 tables. */
uint32_t sn__crc32c_extend(uint32_t crc, const void *data, size_t n);

/* The table-driven path alone, whatever the CPU (for tests and measurements). */
uint32_t sn__crc32c_extend_sw(uint32_t crc, const void *data, size_t n);

/* CRC of n bytes. */
static inline uint32_t sn__crc32c(const void *data, size_t n) {
    return sn__crc32c_extend(0, data, n);
}

/* TF's masking: rotate right by 15 bits, then add a constant (mod 2^32). */
static inline uint32_t sn__crc32c_mask(uint32_t crc) {
    return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

static inline uint32_t sn__crc32c_unmask(uint32_t masked) {
    uint32_t rot = masked - 0xa282ead8u;
    return (rot >> 17) | (rot << 15);
}

#endif
