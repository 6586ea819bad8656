/* dist_internal.h: the parts of the process group (lib/dist/): the rendezvous store
 * (store.c), the Gloo shim (gloo.cc, the only C++ in lib/) and the group (dist.c).
 * Not installed. */
#ifndef SN_DIST_INTERNAL_H
#define SN_DIST_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include "../slimnet.h"
#include "../../kernels/kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- the rendezvous store (store.c) --------------------------------------------------------
 * A small key-value server that rank 0 runs on the chief's address, and the client every
 * rank (rank 0 too) keeps connected to it.  It is what PyTorch's TCPStore is to c10d: Gloo
 * exchanges its addresses through it, and it knows who is there: a rank says hello with its
 * name and keeps its connection, reports each collective it enters, finishes or fails, and
 * the server sees a connection close when its process ends. */

typedef struct sn__store_server sn__store_server;
typedef struct sn__store sn__store;

/* Where a rank stands, as the server saw it: never said hello, here, its connection closed
 * (its process ended), or it said goodbye (sn__store_close). */
enum { SN__RANK_ABSENT = 0, SN__RANK_HERE = 1, SN__RANK_GONE = 2, SN__RANK_LEFT = 3 };
typedef struct sn__rank_state {
    int state;              /* SN__RANK_* */
    int64_t entered;        /* last collective entered (0: none) */
    int64_t finished;       /* last collective finished */
    int64_t failed;         /* last collective that failed (0: none) */
    char name[160];         /* "worker 1 (10.0.0.2:2222)", from its hello */
} sn__rank_state;

/* Listens on host:port (host NULL or "": every address) for a group of size ranks.  The
 * server runs in a thread of its own until sn__store_server_stop.  Errors into err. */
int sn__store_server_start(const char *host, int port, int size, sn__store_server **out,
                           char *err, size_t cap);
/* The port it listens on (port 0 asks the system for a free one). */
int sn__store_server_port(const sn__store_server *s);
/* Stops the server once every connection has closed, or linger_ms has passed. */
void sn__store_server_stop(sn__store_server *s, int linger_ms);

/* Connects to the server at host:port, retrying until timeout_ms has passed (the server may
 * start later), and says hello as rank with name.  0, or -1 with the reason in err. */
int sn__store_connect(const char *host, int port, int rank, const char *name, int timeout_ms,
                      sn__store **out, char *err, size_t cap);
void sn__store_close(sn__store *s);
/* Every call below: 0, or -1 with the reason in the store's error (sn__store_error). */
int sn__store_set(sn__store *s, const char *key, const void *val, size_t n);
/* Waits up to timeout_ms for key; *val (malloc'd, the caller frees) and *n.  1 when the key
 * did not come in time (no error: the caller names who is missing). */
int sn__store_get(sn__store *s, const char *key, int timeout_ms, void **val, size_t *n);
/* What is known of collective seq: entered, finished (done = 1) or failed (done = -1). */
int sn__store_progress(sn__store *s, int64_t seq, int done);
/* The state of every rank (size entries, the caller's array). */
int sn__store_status(sn__store *s, int size, sn__rank_state *out);
const char *sn__store_error(const sn__store *s);

/* ---- Gloo (gloo.cc) ---------------------------------------------------------------------- */

typedef struct sn__gloo sn__gloo;

/* A full mesh of TCP pairs between the size ranks, this one listening on host (an address
 * or name of this machine the others can reach), the addresses exchanged through store.
 * timeout_ms bounds the connection and every collective.  0, or -1 with the reason in err
 * (the missing rank is not known here: the caller asks the store). */
int sn__gloo_new(sn__store *store, int rank, int size, const char *host, int timeout_ms,
                 sn__gloo **out, char *err, size_t cap);
void sn__gloo_free(sn__gloo *g);

enum { SN__GLOO_F32 = 0, SN__GLOO_I32 = 1, SN__GLOO_I64 = 2 };
/* In-place sum of n elements over the ranks (ring all-reduce), broadcast from root,
 * barrier.  tag tells concurrent collectives apart.  0, or -1 with Gloo's message in err. */
int sn__gloo_allreduce_sum(sn__gloo *g, void *buf, size_t n, int type, uint32_t tag,
                           char *err, size_t cap);
int sn__gloo_broadcast(sn__gloo *g, void *buf, size_t bytes, int root, uint32_t tag,
                       char *err, size_t cap);
int sn__gloo_barrier(sn__gloo *g, uint32_t tag, char *err, size_t cap);

/* Point-to-point messages over the mesh (ps.c): a registered buffer, sent to one rank or
 * received from one rank or from several (whichever sends first) on a slot; a message may be shorter
 * than the receiving buffer, never longer (Gloo would abort the process).  The waits return
 * 0 when done, 1 when aborted (sn__gloo_abort_recv from another thread), -1 with Gloo's
 * message in err (the peer's connection closed; a timeout, after which every pair of the
 * mesh is closed).  timeout_ms < 0: no timeout. */
typedef struct sn__gloo_buf sn__gloo_buf;
int sn__gloo_buf_new(sn__gloo *g, void *p, size_t bytes, sn__gloo_buf **out, char *err,
                     size_t cap);
void sn__gloo_buf_free(sn__gloo_buf *b);
int sn__gloo_send(sn__gloo_buf *b, int dst, uint64_t slot, size_t bytes, char *err, size_t cap);
/* bytes from offset into the buffer; several may be in flight (one wait each). */
int sn__gloo_send_at(sn__gloo_buf *b, int dst, uint64_t slot, size_t offset, size_t bytes,
                     char *err, size_t cap);
int sn__gloo_recv(sn__gloo_buf *b, int src, uint64_t slot, char *err, size_t cap);
/* From whichever of the n_src ranks sends first.  Fails at once when one of them has a send
 * announced on its closed connection (the caller drops that rank and posts again). */
int sn__gloo_recv_any(sn__gloo_buf *b, const int *src, int n_src, uint64_t slot, char *err,
                      size_t cap);
int sn__gloo_wait_send(sn__gloo_buf *b, int timeout_ms, char *err, size_t cap);
int sn__gloo_wait_recv(sn__gloo_buf *b, int timeout_ms, int *src, char *err, size_t cap);
void sn__gloo_abort_recv(sn__gloo_buf *b);

/* ---- NCCL (nccl.c, CUDA builds with NCCL only; reached through sn__backend_nccl) ------------------
 * The engine alone, as gloo.cc is: a communicator on one CUDA device with a communication
 * stream and two events.  It knows no store and names nobody: a call that gives up says so
 * (SN__NCCL_*) and the group (dist.c) asks the store who stands out.  Every wait polls
 * ncclCommGetAsyncError and the stream's progress until deadline (CLOCK_MONOTONIC seconds),
 * calling gone(arg) about every half second (non-zero: a peer is gone, give up); giving up
 * aborts the communicator, which is then unusable. */

typedef struct sn__nccl sn__nccl;
enum { SN__NCCL_OK = 0, SN__NCCL_ERROR = -1, SN__NCCL_TIMEOUT = 1, SN__NCCL_GONE = 2 };
typedef int (*sn__nccl_gone_fn)(void *arg);
enum { SN__NCCL_ID_BYTES = 128 };   /* sizeof(ncclUniqueId) */

typedef struct sn__nccl_api {
    /* A fresh unique id (rank 0's) into id. */
    int (*unique_id)(unsigned char id[SN__NCCL_ID_BYTES], char *err, size_t cap);
    /* Rank `rank` of `size` on dev's CUDA device (a non-blocking communicator). */
    int (*create)(sn__dev *dev, const unsigned char id[SN__NCCL_ID_BYTES], int rank, int size,
                  double deadline, sn__nccl_gone_fn gone, void *arg, sn__nccl **out, char *err,
                  size_t cap);
    /* Destroys (or, after a failure, has aborted) the communicator; NULL is a no-op. */
    void (*destroy)(sn__nccl *c);
    /* Whether dev is the communicator's device. */
    int (*same_device)(const sn__nccl *c, const sn__dev *dev);
    /* Queues on the communication stream, after the work dev's stream has queued so far:
     * the mean over the ranks of n floats at device pointer p (in place), or the broadcast
     * of bytes at p from rank root.  Returns once queued (the first call may wait for NCCL's
     * connections, within deadline). */
    int (*mean_f32)(sn__nccl *c, sn__dev *dev, float *p, size_t n, double deadline,
                    sn__nccl_gone_fn gone, void *arg, char *err, size_t cap);
    int (*broadcast)(sn__nccl *c, sn__dev *dev, void *p, size_t bytes, int root,
                     double deadline, sn__nccl_gone_fn gone, void *arg, char *err, size_t cap);
    /* dev's stream waits for everything queued on the communication stream; returns once
     * that is done (polled).  *compute_s: the seconds spent waiting for dev's own stream
     * first (the backward's tail), *comm_s: then for the communication. */
    int (*wait)(sn__nccl *c, sn__dev *dev, double deadline, sn__nccl_gone_fn gone, void *arg,
                double *compute_s, double *comm_s, char *err, size_t cap);
} sn__nccl_api;

/* backend.c: the NCCL engine (nccl.c's sn__nccl_engine), or NULL in a build without NCCL. */
const sn__nccl_api *sn__backend_nccl(void);
const sn__nccl_api *sn__nccl_engine(void);

/* The group's Gloo mesh (NULL for a group of one), for benchmarks/bench_allreduce.c's
 * comparison of the engine alone. */
sn__gloo *sn__dist_gloo(sn_dist *d);

/* The group's parts, for the parameter servers (ps.c): rank r's name from the roster
 * ("ps 1 (10.0.0.4:2222)", else "rank r"), this rank's own name, the store, the timeout. */
void sn__dist_peer_name(const sn_dist *d, int r, char *buf, size_t cap);
const char *sn__dist_name(const sn_dist *d);
sn__store *sn__dist_store(sn_dist *d);
int sn__dist_timeout_ms(const sn_dist *d);
sn_ctx *sn__dist_ctx(sn_dist *d);

#ifdef __cplusplus
}
#endif

#endif
