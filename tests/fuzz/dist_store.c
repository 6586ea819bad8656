/* dist_store.c: fuzz target for the rendezvous store's server (lib/dist/store.c), the one
 * part of the process group that parses bytes from the network.  Input: a byte that sizes
 * the group (1..8), then what up to four connections send, one after the other, the parts
 * separated by FZ_SEP.  Each connection's replies are read until the server closes it.
 * Afterwards the store must still serve a real client: hello, status, set and get. */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "../../lib/dist/dist_internal.h"
#include "fuzz.h"

/* Sends n bytes to the server at port while reading its replies, then reads until it closes
 * the connection. */
static void converse(int port, const uint8_t *p, size_t n) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    FZ_CHECK(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) FZ_CHECK(errno == EINPROGRESS);
    size_t sent = 0;
    bool out = true;
    for (;;) {
        struct pollfd pf = {fd, (short)(POLLIN | (out ? POLLOUT : 0)), 0};
        int r = poll(&pf, 1, 10000);
        if (r < 0 && errno == EINTR) continue;
        FZ_CHECK(r == 1);   /* the server neither reads, answers nor closes: it hangs */
        if (pf.revents & POLLOUT) {
            ssize_t k = sent < n ? send(fd, p + sent, n - sent, MSG_NOSIGNAL) : 0;
            if (k > 0) sent += (size_t)k;
            if (sent == n || k < 0) {
                shutdown(fd, SHUT_WR);
                out = false;
            }
        }
        if (pf.revents & (POLLIN | POLLHUP | POLLERR)) {
            uint8_t buf[4096];
            ssize_t k = recv(fd, buf, sizeof buf, 0);
            if (k == 0 || (k < 0 && errno != EAGAIN && errno != EINTR)) break;
        }
    }
    close(fd);
}

SN_FUZZ_TARGET(dist_store) {
    if (size < 1) return 0;
    int ranks = 1 + data[0] % 8;
    const uint8_t *part[4];
    size_t len[4];
    int n = fz_split(data + 1, size - 1, part, len, 4);
    sn__store_server *server = NULL;
    char err[256];
    FZ_CHECK(sn__store_server_start("127.0.0.1", 0, ranks, &server, err, sizeof err) == 0);
    int port = sn__store_server_port(server);
    FZ_CHECK(port > 0);
    for (int i = 0; i < n; i++) converse(port, part[i], len[i]);
    sn__store *client = NULL;
    FZ_CHECK(sn__store_connect("127.0.0.1", port, ranks - 1, "fuzz", 5000, &client, err,
                               sizeof err) == 0);
    sn__rank_state st[8];
    FZ_CHECK(sn__store_status(client, ranks, st) == 0);
    FZ_CHECK(st[ranks - 1].state == SN__RANK_HERE && !strcmp(st[ranks - 1].name, "fuzz"));
    for (int r = 0; r < ranks; r++) fz_touch(st[r].name, strlen(st[r].name));
    FZ_CHECK(sn__store_set(client, "fuzz/key", "value", 5) == 0);
    void *v = NULL;
    size_t vn = 0;
    FZ_CHECK(sn__store_get(client, "fuzz/key", 1000, &v, &vn) == 0);
    FZ_CHECK(vn == 5 && !memcmp(v, "value", 5));
    free(v);
    sn__store_close(client);
    sn__store_server_stop(server, 0);
    return 0;
}
