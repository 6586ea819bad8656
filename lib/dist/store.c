/* store.c: the rendezvous store of a process group (dist_internal.h says what it is for).
 *
 * Protocol over TCP, little-endian.  A request is u8 op, u32 a, u32 b, then a + b bytes:
 *   HELLO     a: the rank's name, b = 4: i32 rank           reply u8 0
 *   SET       a: key, b: value                              no reply
 *   GET       a: key, b = 0                                 reply u8 found, u32 n, n bytes
 *   PROGRESS  a = 0, b = 9: i64 collective, i8 done (0 entered, 1 finished, -1 failed)
 *                                                           no reply
 *   STATUS    a = 0, b = 0                                  reply u32 size, then a rank each:
 *             u8 state, i64 entered, finished, failed, u32 n, n bytes of name
 *   BYE       a = 0, b = 0: the rank leaves on purpose        no reply
 * A key has at most 1 KB, a value 16 MB, the store 64K keys and 256 MB; a connection that
 * sends more, an unknown op or a bad rank is closed.  The server is one thread polling every connection (non-blocking
 * reads into each one's buffer); it is only ever on a job's own network, like PyTorch's
 * TCPStore, and has no authentication. */
#include "dist_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { OP_HELLO = 1, OP_SET = 2, OP_GET = 3, OP_PROGRESS = 4, OP_STATUS = 5, OP_BYE = 6 };
#define MAX_KEY 1024u
#define MAX_VAL (16u << 20)
#define MAX_KEYS 65536          /* and at most MAX_BYTES of keys and values in all */
#define MAX_BYTES ((size_t)256 << 20)
#define HEADER 9

static int64_t now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void put_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static uint32_t get_u32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static void put_i64(uint8_t *p, int64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)((uint64_t)v >> (8 * i));
}
static int64_t get_i64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
    return (int64_t)v;
}

/* Sends or receives all n bytes by deadline (ms on the monotonic clock; -1: none).
 * 0, -1 on an error (errno set; ETIMEDOUT, or EPIPE for a closed connection). */
static int io_all(int fd, void *buf, size_t n, bool out, int64_t deadline) {
    uint8_t *p = buf;
    while (n > 0) {
        int wait = -1;
        if (deadline >= 0) {
            int64_t left = deadline - now_ms();
            if (left <= 0) {
                errno = ETIMEDOUT;
                return -1;
            }
            wait = left > 1000000 ? 1000000 : (int)left;
        }
        struct pollfd pf = {fd, out ? POLLOUT : POLLIN, 0};
        int r = poll(&pf, 1, wait);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return -1;
        if (r == 0) continue;   /* the deadline is checked above */
        ssize_t k = out ? send(fd, p, n, MSG_NOSIGNAL) : recv(fd, p, n, 0);
        if (k < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) continue;
        if (k < 0) return -1;
        if (k == 0) {
            errno = EPIPE;
            return -1;
        }
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/* ---- server ------------------------------------------------------------------------------ */

typedef struct kv {
    uint8_t *key, *val;
    uint32_t klen, vlen;
} kv;

typedef struct conn {
    int fd;
    int rank;                  /* -1 until its hello */
    uint8_t hdr[HEADER];
    size_t hgot;
    uint8_t *body;             /* a + b bytes once the header is in */
    uint32_t a, b;
    size_t bgot;
} conn;

struct sn__store_server {
    int lfd, wake[2], size;
    _Atomic int open;          /* connections, for sn__store_server_stop's linger */
    pthread_t thread;
    kv *kv;
    int nkv, kcap;
    size_t bytes;              /* keys and values held */
    conn *c;
    int nc, ccap;
    sn__rank_state *ranks;
};

static kv *find(sn__store_server *s, const uint8_t *key, uint32_t n) {
    for (int i = 0; i < s->nkv; i++)
        if (s->kv[i].klen == n && memcmp(s->kv[i].key, key, n) == 0) return &s->kv[i];
    return NULL;
}

static int set(sn__store_server *s, const uint8_t *key, uint32_t klen, const uint8_t *val,
               uint32_t vlen) {
    kv *e = find(s, key, klen);
    size_t held = s->bytes - (e ? e->vlen : 0) + (e ? 0 : klen) + vlen;
    if (held > MAX_BYTES || (!e && s->nkv >= MAX_KEYS)) return -1;
    if (!e) {
        if (s->nkv == s->kcap) {
            int cap = s->kcap ? 2 * s->kcap : 64;
            kv *g = realloc(s->kv, (size_t)cap * sizeof *g);
            if (!g) return -1;
            s->kv = g;
            s->kcap = cap;
        }
        e = &s->kv[s->nkv];
        memset(e, 0, sizeof *e);
        if (!(e->key = malloc(klen ? klen : 1))) return -1;
        memcpy(e->key, key, klen);
        e->klen = klen;
        s->nkv++;
    }
    uint8_t *v = malloc(vlen ? vlen : 1);
    if (!v) return -1;
    memcpy(v, val, vlen);
    free(e->val);
    e->val = v;
    e->vlen = vlen;
    s->bytes = held;
    return 0;
}

/* A complete request of c: handled, 0; -1 closes the connection. */
static int handle(sn__store_server *s, conn *c) {
    const uint8_t *key = c->body, *val = c->body + c->a;
    int64_t deadline = now_ms() + 5000;   /* a client that does not read its reply */
    switch (c->hdr[0]) {
    case OP_HELLO: {
        if (c->b != 4) return -1;
        int32_t r = (int32_t)get_u32(val);
        if (r < 0 || r >= s->size) return -1;
        c->rank = r;
        sn__rank_state *st = &s->ranks[r];
        st->state = SN__RANK_HERE;
        size_t n = c->a < sizeof st->name - 1 ? c->a : sizeof st->name - 1;
        memcpy(st->name, key, n);
        st->name[n] = '\0';
        uint8_t ok = 0;
        return io_all(c->fd, &ok, 1, true, deadline);
    }
    case OP_SET:
        return set(s, key, c->a, val, c->b);
    case OP_GET: {
        kv *e = find(s, key, c->a);
        uint8_t head[5] = {e != NULL};
        put_u32(head + 1, e ? e->vlen : 0);
        if (io_all(c->fd, head, 5, true, deadline)) return -1;
        return e && e->vlen ? io_all(c->fd, e->val, e->vlen, true, deadline) : 0;
    }
    case OP_PROGRESS: {
        if (c->b != 9 || c->rank < 0) return -1;
        sn__rank_state *st = &s->ranks[c->rank];
        int64_t seq = get_i64(val);
        int8_t done = (int8_t)val[8];
        if (done == 0) st->entered = seq;
        else if (done > 0) st->finished = seq;
        else st->failed = seq;
        return 0;
    }
    case OP_STATUS: {
        uint8_t head[4];
        put_u32(head, (uint32_t)s->size);
        if (io_all(c->fd, head, 4, true, deadline)) return -1;
        for (int r = 0; r < s->size; r++) {
            const sn__rank_state *st = &s->ranks[r];
            uint8_t rec[29];
            rec[0] = (uint8_t)st->state;
            put_i64(rec + 1, st->entered);
            put_i64(rec + 9, st->finished);
            put_i64(rec + 17, st->failed);
            uint32_t n = (uint32_t)strlen(st->name);
            put_u32(rec + 25, n);
            if (io_all(c->fd, rec, 29, true, deadline) ||
                io_all(c->fd, (void *)st->name, n, true, deadline))
                return -1;
        }
        return 0;
    }
    case OP_BYE:
        if (c->rank >= 0) s->ranks[c->rank].state = SN__RANK_LEFT;
        c->rank = -1;   /* its connection closing next is no news */
        return 0;
    }
    return -1;
}

/* Reads what c has sent; 0, or -1 when the connection ends (closed, an error, a bad
 * request). */
static int serve_conn(sn__store_server *s, conn *c) {
    for (;;) {
        if (c->hgot < HEADER) {
            ssize_t k = recv(c->fd, c->hdr + c->hgot, HEADER - c->hgot, 0);
            if (k < 0) return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -1;
            if (k == 0) return -1;
            c->hgot += (size_t)k;
            if (c->hgot < HEADER) continue;
            c->a = get_u32(c->hdr + 1);
            c->b = get_u32(c->hdr + 5);
            if (c->a > MAX_KEY || c->b > MAX_VAL) return -1;
            c->bgot = 0;
            if (!(c->body = malloc((size_t)c->a + c->b + 1))) return -1;
        }
        size_t want = (size_t)c->a + c->b;
        if (c->bgot < want) {
            ssize_t k = recv(c->fd, c->body + c->bgot, want - c->bgot, 0);
            if (k < 0) return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -1;
            if (k == 0) return -1;
            c->bgot += (size_t)k;
            if (c->bgot < want) continue;
        }
        int r = handle(s, c);
        free(c->body);
        c->body = NULL;
        c->hgot = 0;
        if (r) return -1;
    }
}

static void drop(sn__store_server *s, int i) {
    conn *c = &s->c[i];
    if (c->rank >= 0) s->ranks[c->rank].state = SN__RANK_GONE;
    close(c->fd);
    free(c->body);
    s->c[i] = s->c[--s->nc];
    s->open--;
}

static void *serve(void *arg) {
    sn__store_server *s = arg;
    struct pollfd *pf = NULL;
    int pcap = 0;
    for (;;) {
        if (s->nc + 2 > pcap) {
            pcap = 2 * (s->nc + 2);
            struct pollfd *g = realloc(pf, (size_t)pcap * sizeof *g);
            if (!g) break;
            pf = g;
        }
        pf[0] = (struct pollfd){s->wake[0], POLLIN, 0};
        pf[1] = (struct pollfd){s->lfd, POLLIN, 0};
        for (int i = 0; i < s->nc; i++) pf[2 + i] = (struct pollfd){s->c[i].fd, POLLIN, 0};
        int n = s->nc;
        if (poll(pf, (nfds_t)(n + 2), -1) < 0) {
            if (errno == EINTR) continue;
            break;
        }
        if (pf[0].revents) break;   /* stop */
        /* connections first, from the last: drop() moves the last one into a hole */
        for (int i = n - 1; i >= 0; i--)
            if (pf[2 + i].revents && serve_conn(s, &s->c[i])) drop(s, i);
        if (pf[1].revents & POLLIN) {
            int fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd < 0) continue;
            if (s->nc == s->ccap) {
                int cap = s->ccap ? 2 * s->ccap : 16;
                conn *g = realloc(s->c, (size_t)cap * sizeof *g);
                if (!g) {
                    close(fd);
                    continue;
                }
                s->c = g;
                s->ccap = cap;
            }
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            s->c[s->nc++] = (conn){.fd = fd, .rank = -1};
            s->open++;
        }
    }
    free(pf);
    return NULL;
}

static void errf(char *err, size_t cap, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    if (err && cap) vsnprintf(err, cap, fmt, ap);
    va_end(ap);
}

int sn__store_server_start(const char *host, int port, int size, sn__store_server **out,
                           char *err, size_t cap) {
    *out = NULL;
    sn__store_server *s = calloc(1, sizeof *s);
    if (!s || !(s->ranks = calloc((size_t)size, sizeof *s->ranks))) {
        free(s);
        errf(err, cap, "out of memory");
        return -1;
    }
    s->size = size;
    s->lfd = s->wake[0] = s->wake[1] = -1;
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    struct addrinfo hints = {.ai_flags = AI_PASSIVE, .ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM}, *ai = NULL;
    int gai = getaddrinfo(host && *host ? host : NULL, ps, &hints, &ai);
    if (gai) {
        errf(err, cap, "cannot resolve '%s': %s", host ? host : "", gai_strerror(gai));
        free(s->ranks);
        free(s);
        return -1;
    }
    int why = 0;
    for (struct addrinfo *a = ai; a && s->lfd < 0; a = a->ai_next) {
        int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) {
            why = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, a->ai_addr, a->ai_addrlen) == 0 && listen(fd, 128) == 0) {
            s->lfd = fd;
        } else {
            why = errno;
            close(fd);
        }
    }
    freeaddrinfo(ai);
    if (s->lfd < 0 || pipe2(s->wake, O_CLOEXEC) != 0 ||
        pthread_create(&s->thread, NULL, serve, s) != 0) {
        errf(err, cap, "cannot listen on %s:%d: %s", host && *host ? host : "*", port,
             strerror(s->lfd < 0 ? why : errno));
        if (s->lfd >= 0) close(s->lfd);
        if (s->wake[0] >= 0) close(s->wake[0]), close(s->wake[1]);
        free(s->ranks);
        free(s);
        return -1;
    }
    *out = s;
    return 0;
}

int sn__store_server_port(const sn__store_server *s) {
    struct sockaddr_storage a;
    socklen_t n = sizeof a;
    if (getsockname(s->lfd, (struct sockaddr *)&a, &n) != 0) return -1;
    return ntohs(a.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&a)->sin6_port
                                         : ((struct sockaddr_in *)&a)->sin_port);
}

void sn__store_server_stop(sn__store_server *s, int linger_ms) {
    if (!s) return;
    /* the others may still ask who failed, or be saying goodbye: wait for them to go */
    for (int64_t end = now_ms() + linger_ms; s->open > 0 && now_ms() < end;) {
        struct timespec pause = {0, 10 * 1000000};
        nanosleep(&pause, NULL);
    }
    char b = 1;
    if (write(s->wake[1], &b, 1) == 1) pthread_join(s->thread, NULL);
    close(s->wake[0]);
    close(s->wake[1]);
    close(s->lfd);
    for (int i = 0; i < s->nc; i++) {
        close(s->c[i].fd);
        free(s->c[i].body);
    }
    for (int i = 0; i < s->nkv; i++) {
        free(s->kv[i].key);
        free(s->kv[i].val);
    }
    free(s->kv);
    free(s->c);
    free(s->ranks);
    free(s);
}

/* ---- client ------------------------------------------------------------------------------ */

struct sn__store {
    int fd;
    char where[300];          /* "the rendezvous store at host:port" */
    char err[640];
    pthread_mutex_t mu;       /* one request at a time: the trainer and a comm thread */
};

const char *sn__store_error(const sn__store *s) { return s->err; }

static int fail(sn__store *s, const char *what) {
    int e = errno;
    snprintf(s->err, sizeof s->err, "%s: %s: %s", s->where, what,
             e == EPIPE || e == ECONNRESET ? "the connection closed (its process ended?)"
             : e == ETIMEDOUT ? "no answer in time" : strerror(e));
    return -1;
}

/* One TCP connection to host:port by deadline, or -1 (errno). */
static int dial(const char *host, int port, int64_t deadline) {
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai = NULL;
    if (getaddrinfo(host, ps, &hints, &ai) != 0) {
        errno = EHOSTUNREACH;
        return -1;
    }
    int fd = -1;
    for (struct addrinfo *a = ai; a && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
        if (fd < 0) continue;
        int r = connect(fd, a->ai_addr, a->ai_addrlen);
        if (r < 0 && errno == EINPROGRESS) {
            struct pollfd pf = {fd, POLLOUT, 0};
            int64_t left = deadline - now_ms();
            int e = 0;
            socklen_t el = sizeof e;
            r = left > 0 && poll(&pf, 1, (int)left) == 1 &&
                getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el) == 0 && e == 0 ? 0 : -1;
            if (r < 0) errno = e ? e : ETIMEDOUT;
        }
        if (r < 0) {
            int e = errno;
            close(fd);
            fd = -1;
            errno = e;
        }
    }
    freeaddrinfo(ai);
    if (fd >= 0) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    return fd;
}

static int request(sn__store *s, uint8_t op, const void *a, uint32_t an, const void *b,
                   uint32_t bn, int64_t deadline) {
    uint8_t h[HEADER] = {op};
    put_u32(h + 1, an);
    put_u32(h + 5, bn);
    if (io_all(s->fd, h, HEADER, true, deadline) ||
        (an && io_all(s->fd, (void *)a, an, true, deadline)) ||
        (bn && io_all(s->fd, (void *)b, bn, true, deadline)))
        return -1;
    return 0;
}

int sn__store_connect(const char *host, int port, int rank, const char *name, int timeout_ms,
                      sn__store **out, char *err, size_t cap) {
    *out = NULL;
    sn__store *s = calloc(1, sizeof *s);
    if (!s) {
        errf(err, cap, "out of memory");
        return -1;
    }
    snprintf(s->where, sizeof s->where, "the rendezvous store at %s:%d", host, port);
    pthread_mutex_init(&s->mu, NULL);
    int64_t deadline = now_ms() + timeout_ms;
    int why = 0;
    do {   /* the server may not be up yet: start order does not matter */
        if ((s->fd = dial(host, port, deadline)) >= 0) break;
        why = errno;
        struct timespec pause = {0, 50 * 1000000};
        nanosleep(&pause, NULL);
    } while (now_ms() < deadline);
    if (s->fd < 0) {
        errf(err, cap, "%s: no answer within %.1f s (%s)", s->where, timeout_ms / 1000.0,
             strerror(why ? why : ETIMEDOUT));
        free(s);
        return -1;
    }
    uint8_t r[4], ok = 1;
    put_u32(r, (uint32_t)rank);
    if (request(s, OP_HELLO, name, (uint32_t)strlen(name), r, 4, deadline) ||
        io_all(s->fd, &ok, 1, false, deadline) || ok != 0) {
        fail(s, "saying hello");
        errf(err, cap, "%s", s->err);
        sn__store_close(s);
        return -1;
    }
    *out = s;
    return 0;
}

void sn__store_close(sn__store *s) {
    if (!s) return;
    if (s->fd >= 0) {
        request(s, OP_BYE, NULL, 0, NULL, 0, now_ms() + 1000);   /* best effort */
        close(s->fd);
    }
    pthread_mutex_destroy(&s->mu);
    free(s);
}

int sn__store_set(sn__store *s, const char *key, const void *val, size_t n) {
    if (strlen(key) > MAX_KEY || n > MAX_VAL) {
        snprintf(s->err, sizeof s->err, "%s: key '%.40s' or its %zu bytes are too long",
                 s->where, key, n);
        return -1;
    }
    pthread_mutex_lock(&s->mu);
    int r = request(s, OP_SET, key, (uint32_t)strlen(key), val, (uint32_t)n, now_ms() + 30000);
    pthread_mutex_unlock(&s->mu);
    return r ? fail(s, "setting a key") : 0;
}

int sn__store_get(sn__store *s, const char *key, int timeout_ms, void **val, size_t *n) {
    *val = NULL;
    *n = 0;
    int64_t deadline = now_ms() + timeout_ms;
    long pause_ns = 1000000;
    for (;;) {
        uint8_t head[5];
        pthread_mutex_lock(&s->mu);
        int r = request(s, OP_GET, key, (uint32_t)strlen(key), NULL, 0, now_ms() + 30000);
        if (!r) r = io_all(s->fd, head, 5, false, now_ms() + 30000);
        uint32_t len = r ? 0 : get_u32(head + 1);
        uint8_t *buf = NULL;
        if (!r && len > MAX_VAL) {   /* not a store of ours */
            errno = EPROTO;
            r = -1;
        }
        if (!r && head[0]) {
            buf = malloc(len ? len : 1);
            if (!buf) errno = ENOMEM;
            r = !buf || io_all(s->fd, buf, len, false, now_ms() + 30000) ? -1 : 0;
        }
        pthread_mutex_unlock(&s->mu);
        if (r) {
            free(buf);
            return fail(s, "reading a key");
        }
        if (head[0]) {
            *val = buf;
            *n = len;
            return 0;
        }
        if (now_ms() >= deadline) return 1;
        struct timespec t = {0, pause_ns};
        nanosleep(&t, NULL);
        if (pause_ns < 50000000) pause_ns *= 2;
    }
}

int sn__store_progress(sn__store *s, int64_t seq, int done) {
    uint8_t b[9];
    put_i64(b, seq);
    b[8] = (uint8_t)(int8_t)done;
    pthread_mutex_lock(&s->mu);
    int r = request(s, OP_PROGRESS, NULL, 0, b, 9, now_ms() + 30000);
    pthread_mutex_unlock(&s->mu);
    return r ? fail(s, "reporting progress") : 0;
}

int sn__store_status(sn__store *s, int size, sn__rank_state *out) {
    memset(out, 0, (size_t)size * sizeof *out);
    pthread_mutex_lock(&s->mu);
    int64_t deadline = now_ms() + 5000;
    uint8_t head[4];
    int r = request(s, OP_STATUS, NULL, 0, NULL, 0, deadline);
    if (!r) r = io_all(s->fd, head, 4, false, deadline);
    uint32_t n = r ? 0 : get_u32(head);
    if (!r && n > (1u << 20)) {
        errno = EPROTO;
        r = -1;
    }
    for (uint32_t i = 0; !r && i < n; i++) {
        uint8_t rec[29];
        char name[sizeof out->name];
        r = io_all(s->fd, rec, 29, false, deadline);
        uint32_t len = r ? 0 : get_u32(rec + 25);
        if (!r && len > 4096) {
            errno = EPROTO;
            r = -1;
        }
        char junk[4096];
        if (!r) r = io_all(s->fd, len < sizeof name ? name : junk, len, false, deadline);
        if (!r && (int)i < size) {
            out[i].state = rec[0];
            out[i].entered = get_i64(rec + 1);
            out[i].finished = get_i64(rec + 9);
            out[i].failed = get_i64(rec + 17);
            size_t k = len < sizeof name ? len : 0;
            memcpy(out[i].name, name, k);
            out[i].name[k] = '\0';
        }
    }
    pthread_mutex_unlock(&s->mu);
    return r ? fail(s, "asking who is there") : 0;
}
