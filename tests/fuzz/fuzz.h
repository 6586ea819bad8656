/* fuzz.h: the fuzz targets, libFuzzer harnesses for every parser of untrusted bytes
 * (targets.def lists them).  Each tests/fuzz/<name>.c body is compiled twice:
 *   - into the test binary, as sn_fuzz_<name>(): the fuzz_corpus suite (tests/test_fuzz.c)
 *     feeds it every file of tests/fuzz/corpus/<name>/, so that `make test` replays each
 *     regression input (CI also runs it under AddressSanitizer and UBSan);
 *   - by `make fuzz`, with clang -fsanitize=fuzzer,address,undefined and -DSN_FUZZ_MAIN,
 *     into build/fuzz/bin/fuzz_<name>, whose LLVMFuzzerTestOneInput calls the same body.
 * A target returns 0 for any input.  It checks invariants of its own with FZ_CHECK, which
 * aborts (a crash to the fuzzer, a failed test to the replay). */
#ifndef SN_FUZZ_H
#define SN_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include "../../lib/slimnet.h"

#ifdef SN_FUZZ_MAIN
#define SN_FUZZ_ENTRY(name)                                                   \
    int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);             \
    int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {            \
        return sn_fuzz_##name(data, size);                                    \
    }
#else
#define SN_FUZZ_ENTRY(name)
#endif

#define SN_FUZZ_TARGET(name)                                                  \
    int sn_fuzz_##name(const uint8_t *data, size_t size);                     \
    SN_FUZZ_ENTRY(name)                                                       \
    int sn_fuzz_##name(const uint8_t *data, size_t size)

/* An invariant of the target: a violation aborts with the place and the condition. */
#define FZ_CHECK(cond)                                                        \
    do {                                                                      \
        if (!(cond)) {                                                        \
            fprintf(stderr, "%s:%d: fuzz invariant failed: %s\n", __FILE__,   \
                    __LINE__, #cond);                                         \
            abort();                                                          \
        }                                                                     \
    } while (0)

/* The parts of a multi-file input, separated by FZ_SEP (e.g. an index and its data). */
#define FZ_SEP "\n--slimnet-fuzz-part--\n"
#define FZ_MAX_PARTS 8

/* A CPU context of one thread that logs nothing, made once per process. */
sn_ctx *fz_ctx(void);
/* A scratch folder of this process (under /dev/shm when it exists), made once and removed
 * at exit; fz_clear empties it. */
const char *fz_dir(void);
void fz_clear(void);
/* Writes n bytes to <fz_dir>/<name> and returns the path (valid until the 8th call after). */
const char *fz_write(const char *name, const void *p, size_t n);
/* Splits data at FZ_SEP into at most max parts; returns their count (>= 1). */
int fz_split(const uint8_t *data, size_t size, const uint8_t **part, size_t *len, int max);
/* Reads every tensor of an open checkpoint (sn_ckpt_read, or sn_ckpt_read_raw for the
 * dtypes sn_tensor lacks), as restoring and slimnet-ckpt do. */
void fz_read_ckpt(sn_ckpt *ck);
/* Reads every byte of p (so that the sanitizers check the whole buffer); returns a digest. */
uint8_t fz_touch(const void *p, size_t n);

#endif
