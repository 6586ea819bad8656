/* tensor.c: host tensors, borrowed or owned. */
#include <stdlib.h>
#include <string.h>
#include "sn_internal.h"

size_t sn_dtype_size(sn_dtype dt) {
    switch (dt) {
    case SN_DTYPE_F32: return 4;
    case SN_DTYPE_I32: return 4;
    case SN_DTYPE_I64: return 8;
    case SN_DTYPE_U8: return 1;
    }
    return 0;
}

const char *sn_dtype_name(sn_dtype dt) {
    switch (dt) {
    case SN_DTYPE_F32: return "float32";
    case SN_DTYPE_I32: return "int32";
    case SN_DTYPE_I64: return "int64";
    case SN_DTYPE_U8: return "uint8";
    }
    return "unknown";
}

static sn_status tensor_make(sn_ctx *ctx, sn_dtype dt, int rank, const int64_t *dims,
                             sn_tensor **out, size_t *nbytes) {
    if (!out) return sn__fail(ctx, SN_ERR_INVALID_ARG, "tensor: out is NULL");
    *out = NULL;
    if (sn_dtype_size(dt) == 0)
        return sn__fail(ctx, SN_ERR_INVALID_ARG, "tensor: unknown dtype %d", (int)dt);
    if (rank < 0 || rank > SN_MAX_RANK || (rank > 0 && !dims))
        return sn__fail(ctx, SN_ERR_INVALID_ARG, "tensor: rank %d outside [0, %d]", rank,
                        SN_MAX_RANK);
    size_t n;
    if (!sn__numel(rank, dims, &n) || !sn__mul_size(n, sn_dtype_size(dt), nbytes)) {
        char buf[128];
        return sn__fail(ctx, SN_ERR_INVALID_ARG, "tensor: invalid or too large shape %s",
                        sn__dims_str(rank, dims, buf, sizeof buf));
    }
    sn_tensor *t = calloc(1, sizeof *t);
    if (!t) return sn__fail(ctx, SN_ERR_NOMEM, "tensor: out of memory");
    t->ctx = ctx;
    t->dtype = dt;
    t->rank = rank;
    for (int i = 0; i < rank; i++) t->dims[i] = dims[i];
    *out = t;
    return SN_OK;
}

sn_status sn_tensor_new(sn_ctx *ctx, sn_dtype dt, int rank, const int64_t *dims,
                        sn_tensor **out) {
    size_t nbytes;
    SN_TRY(tensor_make(ctx, dt, rank, dims, out, &nbytes));
    (*out)->data = calloc(1, nbytes ? nbytes : 1);
    if (!(*out)->data) {
        free(*out);
        *out = NULL;
        return sn__fail(ctx, SN_ERR_NOMEM, "tensor: cannot allocate %zu bytes", nbytes);
    }
    (*out)->owned = true;
    return SN_OK;
}

sn_status sn_tensor_wrap(sn_ctx *ctx, void *data, sn_dtype dt, int rank, const int64_t *dims,
                         sn_ownership own, sn_tensor **out) {
    size_t nbytes;
    SN_TRY(tensor_make(ctx, dt, rank, dims, out, &nbytes));
    if (!data && nbytes) {
        free(*out);
        *out = NULL;
        return sn__fail(ctx, SN_ERR_INVALID_ARG, "tensor_wrap: data is NULL");
    }
    if (own == SN_COPY) {
        (*out)->data = malloc(nbytes ? nbytes : 1);
        if (!(*out)->data) {
            free(*out);
            *out = NULL;
            return sn__fail(ctx, SN_ERR_NOMEM, "tensor: cannot allocate %zu bytes", nbytes);
        }
        if (nbytes) memcpy((*out)->data, data, nbytes);
        (*out)->owned = true;
    } else {
        (*out)->data = data;
    }
    return SN_OK;
}

sn_status sn_tensor_new_pinned(sn_ctx *ctx, sn_dtype dt, int rank, const int64_t *dims,
                               sn_tensor **out) {
    size_t nbytes;
    SN_TRY(tensor_make(ctx, dt, rank, dims, out, &nbytes));
    void *p = NULL;
    if (ctx->k && ctx->k->host_alloc && ctx->k->host_alloc(&ctx->dev, &p, nbytes) == SN_OK &&
        p) {
        memset(p, 0, nbytes);
        (*out)->data = p;
        (*out)->owned = true;
        (*out)->pinned = true;
        return SN_OK;
    }
    sn_tensor_free(*out);   /* no page-locked memory: an ordinary tensor does the same job */
    return sn_tensor_new(ctx, dt, rank, dims, out);
}

void sn_tensor_free(sn_tensor *t) {
    if (!t) return;
    if (t->owned && t->pinned) (void)t->ctx->k->host_free(&t->ctx->dev, t->data);
    else if (t->owned) free(t->data);
    free(t);
}

void *sn_tensor_data(const sn_tensor *t) { return t->data; }
sn_dtype sn_tensor_dtype(const sn_tensor *t) { return t->dtype; }
int sn_tensor_rank(const sn_tensor *t) { return t->rank; }
int64_t sn_tensor_dim(const sn_tensor *t, int i) {
    return (i >= 0 && i < t->rank) ? t->dims[i] : 0;
}
int64_t sn_tensor_numel(const sn_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->rank; i++) n *= t->dims[i];
    return n;
}
size_t sn_tensor_nbytes(const sn_tensor *t) {
    return (size_t)sn_tensor_numel(t) * sn_dtype_size(t->dtype);
}

sn_status sn_tensor_copy(sn_tensor *dst, const sn_tensor *src) {
    if (dst->dtype != src->dtype || sn_tensor_numel(dst) != sn_tensor_numel(src)) {
        char a[128], b[128];
        return sn__fail(dst->ctx, SN_ERR_SHAPE, "tensor_copy: %s %s into %s %s",
                        sn_dtype_name(src->dtype), sn__dims_str(src->rank, src->dims, a, 128),
                        sn_dtype_name(dst->dtype), sn__dims_str(dst->rank, dst->dims, b, 128));
    }
    memcpy(dst->data, src->data, sn_tensor_nbytes(src));
    return SN_OK;
}
