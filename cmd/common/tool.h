/* tool.h: what slimnet-train, slimnet-eval and slimnet-classify share: the context from
 * --device/--threads/--seed, logging, the dataset from the dataset flags, and printing. */
#ifndef SN_CMD_TOOL_H
#define SN_CMD_TOOL_H

#include <stdint.h>
#include <stdio.h>
#include "../../lib/slimnet.h"

/* First thing in main of the tools that compute: with OpenMP, unless the user set
 * OMP_WAIT_POLICY or GOMP_SPINCOUNT, sets GOMP_SPINCOUNT to a short spin and runs the tool
 * again (libgomp reads it when it loads, before main), so that its threads give up their
 * cores at once when they wait instead of spinning (see tool.c).  Returns when it did
 * nothing or the re-run could not start. */
void tool_init(char **argv);

/* Seconds on the monotonic clock. */
double tool_now(void);

/* A context for --device ("auto", "cpu", "cuda"; auto = CUDA when a device exists and
 * want_gpu, else CPU), --threads and --seed.  Library log lines go to stderr prefixed with
 * the tool's name.  Prints the error and returns NULL on failure. */
sn_ctx *tool_ctx(const char *tool, const char *device, int want_gpu, int threads,
                 uint64_t seed);
/* tool_ctx with sn_ctx_params' CUDA settings allow_tf32 and deterministic, on CUDA device
 * device_index. */
sn_ctx *tool_ctx_cuda(const char *tool, const char *device, int want_gpu, int threads,
                      uint64_t seed, int allow_tf32, int deterministic, int device_index);

/* "12.3 s", "4 min 05 s", "1 h 02 min". */
void tool_duration(double seconds, char *buf, size_t len);

/* Prints "tool: what: <ctx message>" to stderr and returns 1. */
int tool_fail(const char *tool, sn_ctx *ctx, const char *what);

/* Prints a restore report to f: counts, and up to `show` names of each non-empty list. */
void tool_print_restore(FILE *f, const char *tool, const sn_restore_report *r, int show);

/* *v = the int64 (or int32) scalar `name` of the checkpoint at prefix; *found (may be NULL)
 * 0 and *v 0 when it has none.  SN_OK, or the status of opening or reading it (message in
 * ctx). */
sn_status tool_ckpt_int64(sn_ctx *ctx, const char *prefix, const char *name, int64_t *v,
                          int *found);
/* tool_ckpt_int64 of "global_step". */
sn_status tool_global_step(sn_ctx *ctx, const char *prefix, int64_t *step);

/* 0 when name is a network of the zoo; else prints "tool: --model_name=NAME: unknown model;
 * one of: ..." with every name, and returns 2 (the tools' status for a bad flag). */
int tool_check_model(const char *tool, const char *name);

/* The image size to use: flag value if > 0, else the model's default. */
int tool_image_size(const char *model_name, int flag_value);

#endif
