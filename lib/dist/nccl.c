/* nccl.c: the NCCL engine of the process group (dist_internal.h, sn__nccl_api), compiled in
 * CUDA builds with NCCL (make NCCL=auto or 1) and reached through sn__backend_nccl
 * (backend.c).
 *
 * A communicator is made non-blocking (ncclConfig_t.blocking = 0): no NCCL call blocks the
 * host, and every wait here is a poll of ncclCommGetAsyncError and of a CUDA event against
 * a deadline, so that a peer that dies or stops costs at most the group's timeout (NCCL's
 * own kernels would spin forever on a peer that left).  Giving up aborts the communicator.
 *
 * The collectives run on a communication stream of the communicator's own.  Each queued
 * collective first makes that stream wait for an event recorded on the compute stream
 * (the caller's sn__dev), so it reads the gradients only once the backward has written
 * them, while the compute stream goes on with the rest of the backward; the final wait
 * makes the compute stream wait for the communication stream in turn. */
#include "dist_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <nccl.h>
#include "../../kernels/cuda/cuda_internal.h"

_Static_assert(sizeof(ncclUniqueId) == SN__NCCL_ID_BYTES, "ncclUniqueId's size");

struct sn__nccl {
    ncclComm_t comm;
    int device;
    int rank, size;
    cudaStream_t stream;          /* the communication stream */
    cudaEvent_t ready;            /* recorded on the compute stream before each collective */
    cudaEvent_t done;             /* recorded on the communication stream by wait */
    int aborted;
};

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void pause_us(long us) {
    struct timespec t = {0, us * 1000};
    nanosleep(&t, NULL);
}

/* "what: NCCL's string (NCCL's last message)" into err; returns SN__NCCL_ERROR. */
static int nccl_err(ncclComm_t comm, ncclResult_t r, const char *what, char *err, size_t cap) {
    const char *last = ncclGetLastError(comm);
    snprintf(err, cap, "%s: %s%s%.300s%s", what, ncclGetErrorString(r),
             last && *last ? " (" : "", last ? last : "", last && *last ? ")" : "");
    return SN__NCCL_ERROR;
}

static int cuda_err(cudaError_t e, const char *what, char *err, size_t cap) {
    (void)cudaGetLastError();
    snprintf(err, cap, "%s: %s", what, cudaGetErrorString(e));
    return SN__NCCL_ERROR;
}

static void give_up(sn__nccl *c) {
    if (c->comm && !c->aborted) ncclCommAbort(c->comm);
    c->aborted = 1;
}

/* Polls until the communicator has no call in progress and, when ev is given, ev has
 * completed: SN__NCCL_OK, or the reason it gave up (the communicator then aborted). */
static int settle(sn__nccl *c, cudaEvent_t ev, double deadline, sn__nccl_gone_fn gone,
                  void *arg, const char *what, char *err, size_t cap) {
    double next_check = now_s() + 0.5;
    for (long spins = 0;; spins++) {
        ncclResult_t state = ncclSuccess;
        ncclResult_t r = ncclCommGetAsyncError(c->comm, &state);
        if (r != ncclSuccess || (state != ncclSuccess && state != ncclInProgress)) {
            nccl_err(c->comm, r != ncclSuccess ? r : state, what, err, cap);
            give_up(c);
            return SN__NCCL_ERROR;
        }
        if (state == ncclSuccess) {
            cudaError_t e = ev ? cudaEventQuery(ev) : cudaSuccess;
            if (e == cudaSuccess) return SN__NCCL_OK;
            if (e != cudaErrorNotReady) {
                cuda_err(e, what, err, cap);
                give_up(c);
                return SN__NCCL_ERROR;
            }
        }
        double t = now_s();
        if (t >= deadline) {
            snprintf(err, cap, "%s: no progress before the deadline", what);
            give_up(c);
            return SN__NCCL_TIMEOUT;
        }
        if (gone && t >= next_check) {
            next_check = t + 0.5;
            if (gone(arg)) {
                snprintf(err, cap, "%s: abandoned, a peer is gone", what);
                give_up(c);
                return SN__NCCL_GONE;
            }
        }
        /* a short spin first (a bucket's all-reduce takes microseconds), then sleep */
        if (spins > 200) pause_us(spins > 2000 ? 200 : 20);
    }
}

static int unique_id(unsigned char id[SN__NCCL_ID_BYTES], char *err, size_t cap) {
    ncclUniqueId u;
    ncclResult_t r = ncclGetUniqueId(&u);
    if (r != ncclSuccess) return nccl_err(NULL, r, "ncclGetUniqueId", err, cap);
    memcpy(id, u.internal, SN__NCCL_ID_BYTES);
    return SN__NCCL_OK;
}

static void destroy(sn__nccl *c) {
    if (!c) return;
    int cur = -1;
    if (cudaGetDevice(&cur) != cudaSuccess || cur != c->device) cudaSetDevice(c->device);
    if (c->comm && !c->aborted) {
        /* Finalize flushes the communicator's work (polled: it is non-blocking); a peer
         * that is gone by now makes it fail, and then the communicator is aborted. */
        ncclResult_t r = ncclCommFinalize(c->comm);
        char err[64];
        if (r == ncclSuccess || r == ncclInProgress)
            settle(c, NULL, now_s() + 10.0, NULL, NULL, "ncclCommFinalize", err, sizeof err);
        else
            give_up(c);
        if (!c->aborted) ncclCommDestroy(c->comm);
    }
    if (c->ready) cudaEventDestroy(c->ready);
    if (c->done) cudaEventDestroy(c->done);
    if (c->stream) cudaStreamDestroy(c->stream);
    free(c);
}

static int create(sn__dev *dev, const unsigned char id[SN__NCCL_ID_BYTES], int rank, int size,
                  double deadline, sn__nccl_gone_fn gone, void *arg, sn__nccl **out, char *err,
                  size_t cap) {
    *out = NULL;
    if (!dev || dev->backend != SN__BACKEND_CUDA || !dev->cuda) {
        snprintf(err, cap, "NCCL needs a CUDA device");
        return SN__NCCL_ERROR;
    }
    sn__nccl *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, cap, "out of memory");
        return SN__NCCL_ERROR;
    }
    c->device = ((struct sn__cuda *)dev->cuda)->device;
    c->rank = rank;
    c->size = size;
    cudaError_t e = cudaSetDevice(c->device);
    if (e == cudaSuccess) e = cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking);
    if (e == cudaSuccess) e = cudaEventCreateWithFlags(&c->ready, cudaEventDisableTiming);
    if (e == cudaSuccess) e = cudaEventCreateWithFlags(&c->done, cudaEventDisableTiming);
    if (e != cudaSuccess) {
        cuda_err(e, "NCCL's stream", err, cap);
        destroy(c);
        return SN__NCCL_ERROR;
    }
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;
    ncclUniqueId u;
    memcpy(u.internal, id, SN__NCCL_ID_BYTES);
    ncclResult_t r = ncclCommInitRankConfig(&c->comm, size, u, rank, &config);
    if (r != ncclSuccess && r != ncclInProgress) {
        nccl_err(c->comm, r, "ncclCommInitRankConfig", err, cap);
        give_up(c);
        destroy(c);
        return SN__NCCL_ERROR;
    }
    int st = settle(c, NULL, deadline, gone, arg, "ncclCommInitRankConfig", err, cap);
    if (st != SN__NCCL_OK) {
        destroy(c);
        return st;
    }
    *out = c;
    return SN__NCCL_OK;
}

static int same_device(const sn__nccl *c, const sn__dev *dev) {
    return dev && dev->backend == SN__BACKEND_CUDA && dev->cuda &&
           ((const struct sn__cuda *)dev->cuda)->device == c->device;
}

/* The communication stream waits for what dev's stream has queued so far. */
static int follow(sn__nccl *c, sn__dev *dev, char *err, size_t cap) {
    if (c->aborted) {
        snprintf(err, cap, "the NCCL communicator was aborted after an earlier failure");
        return SN__NCCL_ERROR;
    }
    if (!same_device(c, dev)) {
        snprintf(err, cap, "the buffer is not on the communicator's GPU %d", c->device);
        return SN__NCCL_ERROR;
    }
    cudaStream_t compute = ((struct sn__cuda *)dev->cuda)->stream;
    cudaError_t e = cudaSetDevice(c->device);
    if (e == cudaSuccess) e = cudaEventRecord(c->ready, compute);
    if (e == cudaSuccess) e = cudaStreamWaitEvent(c->stream, c->ready, 0);
    return e == cudaSuccess ? SN__NCCL_OK : cuda_err(e, "the communication stream", err, cap);
}

/* After a collective call: queued, or in progress (NCCL still connecting: polled). */
static int queued(sn__nccl *c, ncclResult_t r, double deadline, sn__nccl_gone_fn gone,
                  void *arg, const char *what, char *err, size_t cap) {
    if (r == ncclSuccess) return SN__NCCL_OK;
    if (r == ncclInProgress) return settle(c, NULL, deadline, gone, arg, what, err, cap);
    nccl_err(c->comm, r, what, err, cap);
    give_up(c);
    return SN__NCCL_ERROR;
}

static int mean_f32(sn__nccl *c, sn__dev *dev, float *p, size_t n, double deadline,
                    sn__nccl_gone_fn gone, void *arg, char *err, size_t cap) {
    int st = follow(c, dev, err, cap);
    if (st != SN__NCCL_OK) return st;
    ncclResult_t r = ncclAllReduce(p, p, n, ncclFloat32, ncclAvg, c->comm, c->stream);
    return queued(c, r, deadline, gone, arg, "ncclAllReduce", err, cap);
}

static int broadcast(sn__nccl *c, sn__dev *dev, void *p, size_t bytes, int root,
                     double deadline, sn__nccl_gone_fn gone, void *arg, char *err, size_t cap) {
    int st = follow(c, dev, err, cap);
    if (st != SN__NCCL_OK) return st;
    ncclResult_t r = ncclBroadcast(p, p, bytes, ncclUint8, root, c->comm, c->stream);
    return queued(c, r, deadline, gone, arg, "ncclBroadcast", err, cap);
}

static int wait_all(sn__nccl *c, sn__dev *dev, double deadline, sn__nccl_gone_fn gone,
                    void *arg, double *compute_s, double *comm_s, char *err, size_t cap) {
    *compute_s = *comm_s = 0;
    double t0 = now_s();
    /* dev's own stream first (the backward's tail, not communication): follow records
     * `ready` at its end */
    int st = follow(c, dev, err, cap);
    if (st == SN__NCCL_OK)
        st = settle(c, c->ready, deadline, gone, arg, "the backward before NCCL", err, cap);
    double t1 = now_s();
    *compute_s = t1 - t0;
    if (st != SN__NCCL_OK) return st;
    cudaStream_t compute = ((struct sn__cuda *)dev->cuda)->stream;
    cudaError_t e = cudaEventRecord(c->done, c->stream);
    if (e == cudaSuccess) e = cudaStreamWaitEvent(compute, c->done, 0);
    if (e != cudaSuccess) {
        cuda_err(e, "waiting for NCCL", err, cap);
        give_up(c);
        return SN__NCCL_ERROR;
    }
    st = settle(c, c->done, deadline, gone, arg, "NCCL's collectives", err, cap);
    *comm_s = now_s() - t1;
    return st;
}

static const sn__nccl_api api = {
    .unique_id = unique_id,
    .create = create,
    .destroy = destroy,
    .same_device = same_device,
    .mean_f32 = mean_f32,
    .broadcast = broadcast,
    .wait = wait_all,
};

const sn__nccl_api *sn__nccl_engine(void) { return &api; }
