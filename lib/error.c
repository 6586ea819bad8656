/* error.c: status names, the per-context error message, logging, checked size arithmetic. */
#include <stdio.h>
#include <string.h>
#include "sn_internal.h"

const char *sn_status_name(sn_status st) {
    switch (st) {
#define SN__NAME(name, value, text) case name: return #name;
        SN_STATUS_LIST(SN__NAME)
#undef SN__NAME
    }
    return "SN_UNKNOWN";
}

const char *sn_status_str(sn_status st) {
    switch (st) {
#define SN__TEXT(name, value, text) case name: return text;
        SN_STATUS_LIST(SN__TEXT)
#undef SN__TEXT
    }
    return "unknown status";
}

sn_status sn__vfail(sn_ctx *ctx, sn_status st, const char *fmt, va_list ap) {
    if (ctx) {
        vsnprintf(ctx->errmsg, sizeof ctx->errmsg, fmt, ap);
        sn__log(ctx, SN_LOG_DEBUG, "%s: %s", sn_status_name(st), ctx->errmsg);
    }
    return st;
}

sn_status sn__fail(sn_ctx *ctx, sn_status st, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    sn__vfail(ctx, st, fmt, ap);
    va_end(ap);
    return st;
}

void sn__log(sn_ctx *ctx, sn_log_level level, const char *fmt, ...) {
    if (!ctx || !ctx->p.log || level < ctx->p.log_level) return;
    char buf[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    ctx->p.log(ctx->p.log_user, level, buf);
}

const char *sn_ctx_errmsg(const sn_ctx *ctx) { return ctx ? ctx->errmsg : ""; }

bool sn__mul_size(size_t a, size_t b, size_t *out) {
    if (a != 0 && b > SIZE_MAX / a) return false;
    *out = a * b;
    return true;
}

bool sn__numel(int rank, const int64_t *dims, size_t *out) {
    size_t n = 1;
    for (int i = 0; i < rank; i++) {
        if (dims[i] < 0 || !sn__mul_size(n, (size_t)dims[i], &n)) return false;
    }
    *out = n;
    return true;
}

const char *sn__dims_str(int rank, const int64_t *dims, char *buf, size_t len) {
    size_t used = 0;
    used += (size_t)snprintf(buf, len, "[");
    for (int i = 0; i < rank && used < len; i++) {
        if (dims[i] == SN_BATCH)
            used += (size_t)snprintf(buf + used, len - used, "%s?", i ? "," : "");
        else
            used += (size_t)snprintf(buf + used, len - used, "%s%lld", i ? "," : "",
                                     (long long)dims[i]);
    }
    if (used < len) snprintf(buf + used, len - used, "]");
    return buf;
}

uint64_t sn__hash_str(const char *s, uint64_t h) {
    if (h == 0) h = 1469598103934665603ull;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return h;
}
