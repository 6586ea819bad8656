/* crc32c.c: CRC-32C, hardware (SSE4.2) and table-driven.
 *
 * Both paths keep the raw CRC register (no inversion) inside and invert at the ends, so
 * extend(extend(0, A), B) == crc(A||B).  No mutable state: the tables are constants
 * (crc32c_tables.h) and the CPU check is the compiler's cached cpuid. */
#include <string.h>
#include "crc32c.h"
#include "crc32c_tables.h"

#if defined(__GNUC__) && defined(__x86_64__)
#define SN__CRC32C_HW 1
#include <nmmintrin.h>
#else
#define SN__CRC32C_HW 0
#endif

/* Little-endian 32-bit load, whatever the host order (compilers fuse it into one load). */
static inline uint32_t load_le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

uint32_t sn__crc32c_extend_sw(uint32_t crc, const void *data, size_t n) {
    const uint8_t *p = data;
    const uint32_t (*t)[256] = crc32c_slice8;
    uint32_t c = ~crc;
    /* Slicing-by-8: the byte at position i of an 8-byte word is followed by 7-i more bytes
     * of the word, so it is looked up in the table that appends 7-i zero bytes. */
    while (n >= 8) {
        uint32_t lo = c ^ load_le32(p), hi = load_le32(p + 4);
        c = t[7][lo & 0xff] ^ t[6][(lo >> 8) & 0xff] ^ t[5][(lo >> 16) & 0xff] ^
            t[4][lo >> 24] ^ t[3][hi & 0xff] ^ t[2][(hi >> 8) & 0xff] ^
            t[1][(hi >> 16) & 0xff] ^ t[0][hi >> 24];
        p += 8;
        n -= 8;
    }
    while (n--) c = (c >> 8) ^ t[0][(c ^ *p++) & 0xff];
    return ~c;
}

#if SN__CRC32C_HW
/* Block sizes of the three-stream hardware loop: the crc32 instruction has a latency of 3
 * cycles and a throughput of 1, so three independent streams keep it busy.  The streams
 * are joined by shifting a register past a block of zeros (crc32c_long/short tables),
 * which works because the raw register is linear in its input. */
enum { CRC_LONG = 8192, CRC_SHORT = 256 };

static inline uint32_t crc_shift(const uint32_t t[4][256], uint32_t c) {
    return t[0][c & 0xff] ^ t[1][(c >> 8) & 0xff] ^ t[2][(c >> 16) & 0xff] ^ t[3][c >> 24];
}

static inline uint64_t load64(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, 8);   /* x86 is little-endian, as the crc32 instruction expects */
    return v;
}

__attribute__((target("sse4.2")))
static uint32_t crc32c_hw(uint32_t crc, const uint8_t *p, size_t n) {
    uint64_t c0 = (uint32_t)~crc;
    while (n && ((uintptr_t)p & 7)) {
        c0 = _mm_crc32_u8((uint32_t)c0, *p++);
        n--;
    }
    while (n >= 3 * (size_t)CRC_LONG) {
        uint64_t c1 = 0, c2 = 0;
        const uint8_t *end = p + CRC_LONG;
        do {
            c0 = _mm_crc32_u64(c0, load64(p));
            c1 = _mm_crc32_u64(c1, load64(p + CRC_LONG));
            c2 = _mm_crc32_u64(c2, load64(p + 2 * CRC_LONG));
            p += 8;
        } while (p < end);
        c0 = crc_shift(crc32c_long, (uint32_t)c0) ^ c1;
        c0 = crc_shift(crc32c_long, (uint32_t)c0) ^ c2;
        p += 2 * CRC_LONG;
        n -= 3 * CRC_LONG;
    }
    while (n >= 3 * (size_t)CRC_SHORT) {
        uint64_t c1 = 0, c2 = 0;
        const uint8_t *end = p + CRC_SHORT;
        do {
            c0 = _mm_crc32_u64(c0, load64(p));
            c1 = _mm_crc32_u64(c1, load64(p + CRC_SHORT));
            c2 = _mm_crc32_u64(c2, load64(p + 2 * CRC_SHORT));
            p += 8;
        } while (p < end);
        c0 = crc_shift(crc32c_short, (uint32_t)c0) ^ c1;
        c0 = crc_shift(crc32c_short, (uint32_t)c0) ^ c2;
        p += 2 * CRC_SHORT;
        n -= 3 * CRC_SHORT;
    }
    while (n >= 8) {
        c0 = _mm_crc32_u64(c0, load64(p));
        p += 8;
        n -= 8;
    }
    while (n--) c0 = _mm_crc32_u8((uint32_t)c0, *p++);
    return ~(uint32_t)c0;
}
#endif

uint32_t sn__crc32c_extend(uint32_t crc, const void *data, size_t n) {
#if SN__CRC32C_HW
    if (__builtin_cpu_supports("sse4.2")) return crc32c_hw(crc, data, n);
#endif
    return sn__crc32c_extend_sw(crc, data, n);
}
