/* table.h: internal.  TensorFlow's table ("SSTable", LevelDB's layout) reader and writer,
 * the OrderedCode slice keys and TF dtypes the checkpoint code shares (its byte-level
 * helpers: bytes.h), and the reader state of an sn_ckpt, which ckpt_v2.c
 * (V2 bundles and the public reader), ckpt_v1.c (V1 tensor-slice files) and restore.c share.
 * Formats: docs/formats.md, "Tables" to "The checkpoint state file".  Nothing here is
 * public. */
#ifndef SN_IO_TABLE_H
#define SN_IO_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "../sn_internal.h"
#include "../slimnet.h"
#include "bytes.h"

/* ---- table reader ---------------------------------------------------------------------- */

typedef struct sn__table sn__table;

/* Opens a table: reads and checks the footer (magic), then reads the index block.  Blocks
 * are read on demand with pread, their masked CRC32C checked, snappy blocks decompressed.
 * Every handle, varint and length is bounded by the file size before use. */
sn_status sn__table_open(sn_ctx *ctx, const char *path, sn__table **out);
void sn__table_close(sn__table *t);
const char *sn__table_path(const sn__table *t);
uint64_t sn__table_file_size(const sn__table *t);

/* Iteration in key order.  key/val point into the iterator's current block and stay valid
 * until the next call on the iterator.  After first/next, `valid` is false at the end. */
typedef struct sn__table_iter {
    sn__table *t;
    size_t index_pos;        /* index entry of the current block */
    uint8_t *block_mem;      /* owned: the current block, decompressed */
    const uint8_t *block;
    size_t block_limit;      /* end of the entries (the restart array follows) */
    uint64_t block_off;      /* file offset of the block, for error messages */
    size_t pos;              /* next entry in the block */
    sn__buf keybuf;
    bool valid;
    const uint8_t *key, *val;
    size_t klen, vlen;
} sn__table_iter;
sn_status sn__table_iter_first(sn__table *t, sn__table_iter *it);
sn_status sn__table_iter_next(sn__table_iter *it);
void sn__table_iter_free(sn__table_iter *it);

/* Point lookup.  *found false when absent (not an error).  *val is valid until the next
 * lookup on t (the table keeps the last block read). */
sn_status sn__table_get(sn__table *t, const void *key, size_t klen, bool *found,
                        const uint8_t **val, size_t *vlen);
/* Frees the block kept by the last lookup (V1 blocks can hold a whole 400 MB tensor). */
void sn__table_drop_cache(sn__table *t);

/* ---- table writer (TensorFlow's TableBuilder, byte for byte) ---------------------------- */

#define SN__TABLE_BLOCK_SIZE 262144      /* TF's table::Options::block_size */
#define SN__TABLE_RESTART_INTERVAL 16     /* block_restart_interval of data blocks */

typedef struct sn__table_builder sn__table_builder;
/* snappy = 1 compresses a block when that saves at least 1/8 of it (TF's rule); V2 index
 * files are written with snappy = 0 as TensorFlow writes them. */
sn_status sn__table_builder_new(sn_ctx *ctx, int snappy, sn__table_builder **out);
/* Keys must be strictly increasing (memcmp order): SN_ERR_INVALID_ARG otherwise. */
sn_status sn__table_builder_add(sn__table_builder *b, const void *key, size_t klen,
                                const void *val, size_t vlen);
/* Writes the last block, the empty metaindex, the index and the footer.  *data (owned by
 * the builder) holds the whole file. */
sn_status sn__table_builder_finish(sn__table_builder *b, const uint8_t **data, size_t *n);
void sn__table_builder_free(sn__table_builder *b);

/* ---- OrderedCode keys of tensor slices (docs/formats.md, "OrderedCode slice keys") --- */

/* EncodeTensorNameSlice(name, slice): length[d] = -1 means the full dimension. */
void sn__slice_key(sn__buf *out, const char *name, int rank, const int64_t *start,
                   const int64_t *length);

/* ---- TensorFlow dtypes ----------------------------------------------------------------- */

enum {
    SN__DT_FLOAT = 1, SN__DT_DOUBLE = 2, SN__DT_INT32 = 3, SN__DT_UINT8 = 4,
    SN__DT_INT16 = 5, SN__DT_INT8 = 6, SN__DT_STRING = 7, SN__DT_COMPLEX64 = 8,
    SN__DT_INT64 = 9, SN__DT_BOOL = 10, SN__DT_BFLOAT16 = 14, SN__DT_UINT16 = 17,
    SN__DT_COMPLEX128 = 18, SN__DT_HALF = 19, SN__DT_UINT32 = 22, SN__DT_UINT64 = 23
};
/* Bytes per element of a fixed-size TF dtype; 0 for DT_STRING and unknown values. */
size_t sn__tf_dtype_size(int dt);
/* "float32", "string", ...; NULL for an unknown value. */
const char *sn__tf_dtype_name(int dt);
/* The sn_dtype of a TF dtype, if slimnet tensors have one. */
bool sn__tf_to_sn_dtype(int tf, sn_dtype *out);
int sn__sn_to_tf_dtype(sn_dtype dt);

/* ---- the reader behind an sn_ckpt ------------------------------------------------------ */

/* One stored piece of a tensor: the whole tensor (one piece, every length -1) or one part
 * of a partitioned variable. */
typedef struct sn__ck_piece {
    int64_t start[SN_MAX_RANK];
    int64_t length[SN_MAX_RANK];  /* -1: the whole dimension */
    int src;                      /* V1: table of the piece; V2: index in sn_ckpt.v2_pieces */
} sn__ck_piece;

/* What a V2 index entry says about its bytes in a data shard. */
typedef struct sn__ck_extent {
    int shard;
    uint64_t offset, size;
    uint32_t crc_masked;
    int tf_dtype;
    int rank;
    int64_t dims[SN_MAX_RANK];
} sn__ck_extent;

/* A tensor as listed.  V2 plain tensors have no pieces (their bytes are `ext`); V1 tensors
 * and V2 partitioned tensors have n_pieces >= 1. */
typedef struct sn__ck_tensor {
    char *name;
    int tf_dtype;
    int rank;
    int64_t dims[SN_MAX_RANK];
    uint64_t nbytes;              /* fixed-size dtypes: numel * size; V2 strings: stored size */
    sn__ck_extent ext;            /* V2 plain tensors */
    int n_pieces;
    sn__ck_piece *pieces;
} sn__ck_tensor;

struct sn_ckpt {
    sn_ctx *ctx;
    int version;                  /* 1 or 2 */
    char *path;                   /* the prefix (V2) or file (V1) opened */
    int n;                        /* tensors, sorted by name */
    sn__ck_tensor *t;
    /* V2 */
    int n_shards;
    int *shard_fd;
    uint64_t *shard_size;
    char **shard_path;
    int n_v2_pieces;
    sn__ck_extent *v2_pieces;
    /* V1 */
    int n_tables;
    sn__table **tables;
};

/* From the messages of tensor_bundle.proto (forward-declared so that this header does not
 * need the generated one): a TensorShapeProto into rank/dims, rejecting unknown ranks,
 * negative or overflowing dims and rank > SN_MAX_RANK; TensorSliceProtos appended to
 * t->pieces (src = 0).  Messages name file and tensor. */
struct Snckpt__TensorShapeProto;
struct Snckpt__TensorSliceProto;
sn_status sn__ckpt_shape_from_proto(sn_ctx *ctx, const struct Snckpt__TensorShapeProto *s,
                                    const char *file, const char *tensor, int *rank,
                                    int64_t *dims);
sn_status sn__ckpt_pieces_from_protos(sn_ckpt *ck, sn__ck_tensor *t, size_t n,
                                      struct Snckpt__TensorSliceProto **sl, const char *file);

/* Fills ck (version 1) from the V1 table file(s) at path. */
sn_status sn__ckpt_v1_open(sn_ckpt *ck, int n_files, char **files);
/* Reads V1 tensor t into out (t->nbytes bytes, zero-filled by the caller). */
sn_status sn__ckpt_v1_read(sn_ckpt *ck, const sn__ck_tensor *t, void *out);
/* Checks a piece list against the tensor shape: each piece inside the tensor, pieces
 * disjoint and together covering it.  SN_ERR_FORMAT names the file and tensor. */
sn_status sn__ckpt_check_pieces(sn_ckpt *ck, const sn__ck_tensor *t);
/* Copies a piece (row-major, its own extents) into its place in the full tensor. */
void sn__ckpt_place_piece(void *full, const int64_t *full_dims, int rank,
                          const int64_t *start, const int64_t *len, const void *piece,
                          size_t esize);
/* Volume and per-dimension lengths of a piece (resolving -1). */
uint64_t sn__ckpt_piece_dims(const sn__ck_tensor *t, const sn__ck_piece *p, int64_t *len);
void sn__ckpt_free_tensors(sn_ckpt *ck);

#endif
