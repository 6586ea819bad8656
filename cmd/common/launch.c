/* launch.c: see launch.h. */
#include "launch.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int launch_plan(int num_clones, int cluster_found, int on_cpu, int gpus) {
    return num_clones > 1 && !cluster_found && !on_cpu && gpus >= num_clones ? num_clones : 0;
}

int launch_free_port(char *err, size_t cap) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t n = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &n) != 0) {
        snprintf(err, cap, "no free port on 127.0.0.1: %s", strerror(errno));
        if (fd >= 0) close(fd);
        return -1;
    }
    close(fd);
    return ntohs(a.sin_port);
}

void launch_vars(int rank, int n, int port, char vars[LAUNCH_VARS][64]) {
    snprintf(vars[0], 64, "RANK=%d", rank);
    snprintf(vars[1], 64, "WORLD_SIZE=%d", n);
    snprintf(vars[2], 64, "LOCAL_RANK=%d", rank);
    snprintf(vars[3], 64, "LOCAL_WORLD_SIZE=%d", n);
    snprintf(vars[4], 64, "MASTER_ADDR=127.0.0.1");
    snprintf(vars[5], 64, "MASTER_PORT=%d", port);
    snprintf(vars[6], 64, "%s=%d", LAUNCH_MARK, n);
}

int launch_setenv(int rank, int n, int port) {
    char vars[LAUNCH_VARS][64];
    launch_vars(rank, n, port, vars);
    for (int i = 0; i < LAUNCH_VARS; i++) {
        char *eq = strchr(vars[i], '=');
        *eq = '\0';
        if (setenv(vars[i], eq + 1, 1) != 0) return -1;
    }
    return 0;
}

pid_t launch_spawn(const char *exe, char *const argv[], int rank, int n, int port, char *err,
                   size_t cap) {
    pid_t parent = getpid();
    fflush(stdout);
    fflush(stderr);
    /* Until exec the child runs this program's signal handlers: a SIGTERM from launch_reap
     * in that window must end the child alone, so the signals wait until they are reset. */
    sigset_t stop, old;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    sigprocmask(SIG_BLOCK, &stop, &old);
    pid_t pid = fork();
    if (pid != 0) {
        int e = errno;
        sigprocmask(SIG_SETMASK, &old, NULL);
        if (pid < 0) snprintf(err, cap, "cannot start rank %d: fork: %s", rank, strerror(e));
        return pid;
    }
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    sigprocmask(SIG_SETMASK, &old, NULL);
    /* the child: it ends with its parent, even one killed outright */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent) _exit(127);
    if (launch_setenv(rank, n, port) != 0) _exit(127);
    execv(exe, argv);
    fprintf(stderr, "rank %d: cannot run %s: %s\n", rank, exe, strerror(errno));
    _exit(127);
}

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Waits for the children left (status into st) until the clock passes `until`; returns how
 * many are left. */
static int reap_until(pid_t *pids, int *st, int n, double until) {
    for (;;) {
        int left = 0;
        for (int i = 0; i < n; i++) {
            if (pids[i] <= 0) continue;
            pid_t r = waitpid(pids[i], &st[i], WNOHANG);
            if (r == pids[i] || (r < 0 && errno == ECHILD)) pids[i] = -pids[i];
            else left++;
        }
        if (!left || now_s() >= until) return left;
        struct timespec t = {0, 20 * 1000000};
        nanosleep(&t, NULL);
    }
}

static void signal_left(const pid_t *pids, int n, int sig) {
    for (int i = 0; i < n; i++)
        if (pids[i] > 0) kill(pids[i], sig);
}

int launch_reap(pid_t *pids, int n, int first_rank, int kill_now, double grace_s, char *msg,
                size_t cap) {
    int *st = calloc((size_t)(n > 0 ? n : 1), sizeof *st);
    int *killed = calloc((size_t)(n > 0 ? n : 1), sizeof *killed);
    if (!st || !killed) {   /* still no zombie: plain blocking waits */
        for (int i = 0; i < n; i++)
            if (pids[i] > 0) kill(pids[i], SIGKILL), waitpid(pids[i], NULL, 0);
        free(st);
        free(killed);
        snprintf(msg, cap, "out of memory while waiting for the ranks");
        return 1;
    }
    int left = kill_now ? n : reap_until(pids, st, n, now_s() + grace_s);
    if (left) {
        for (int i = 0; i < n; i++) killed[i] = !kill_now && pids[i] > 0;
        signal_left(pids, n, SIGTERM);
        if (reap_until(pids, st, n, now_s() + 5.0)) {
            signal_left(pids, n, SIGKILL);
            for (int i = 0; i < n; i++)
                if (pids[i] > 0 && waitpid(pids[i], &st[i], 0) == pids[i]) pids[i] = -pids[i];
        }
    }
    int rc = 0;
    msg[0] = '\0';
    for (int i = 0; i < n && !rc; i++) {
        pid_t pid = pids[i] < 0 ? -pids[i] : pids[i];
        if (pid == 0) continue;
        int s = st[i];
        if (killed[i])
            snprintf(msg, cap, "rank %d (pid %d) did not end within %.0f s; killed",
                     first_rank + i, (int)pid, grace_s);
        else if (kill_now)
            continue;   /* stopped on purpose: this process failed */
        else if (WIFEXITED(s) && WEXITSTATUS(s) != 0)
            snprintf(msg, cap, "rank %d (pid %d) exited with status %d", first_rank + i,
                     (int)pid, WEXITSTATUS(s));
        else if (WIFSIGNALED(s))
            snprintf(msg, cap, "rank %d (pid %d) was killed by signal %d (%s)",
                     first_rank + i, (int)pid, WTERMSIG(s), strsignal(WTERMSIG(s)));
        else
            continue;
        rc = 1;
    }
    free(st);
    free(killed);
    return rc;
}
