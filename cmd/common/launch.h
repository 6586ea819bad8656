/* launch.h: slimnet-train as its own launcher on one machine with several GPUs, as torchrun
 * is: --num_gpus=N starts N-1 copies of the program (ranks 1..N-1, one GPU each) with
 * torchrun's variables, and the launching process becomes rank 0.  The pieces are apart
 * from the trainer so that tests can run them on the CPU. */
#ifndef SN_TOOL_LAUNCH_H
#define SN_TOOL_LAUNCH_H

#include <stddef.h>
#include <sys/types.h>

/* Set in every process of a launched group (its value: the group's size), so that a copy
 * does not launch again and trains one clone on its GPU. */
#define LAUNCH_MARK "SN_TRAIN_LAUNCHED"

/* How many processes --num_clones=N (or --num_gpus=N) runs: N, one per GPU, when the build
 * has CUDA (gpus counts the visible ones), the training is not on the CPU, no cluster is
 * in the environment and there are at least N GPUs; else 0: N clones as one batch on one
 * device (what TF-slim's model_deploy computes, on one device). */
int launch_plan(int num_clones, int cluster_found, int on_cpu, int gpus);

/* A TCP port of 127.0.0.1 that nobody listens on now (bound to port 0, then released), or
 * -1 with the reason in err. */
int launch_free_port(char *err, size_t cap);

/* The variables of rank `rank` of n, one "NAME=value" each, into vars (LAUNCH_VARS of
 * them): RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR=127.0.0.1,
 * MASTER_PORT and LAUNCH_MARK. */
enum { LAUNCH_VARS = 7 };
void launch_vars(int rank, int n, int port, char vars[LAUNCH_VARS][64]);
/* Puts them into this process's environment; 0, or -1. */
int launch_setenv(int rank, int n, int port);

/* Starts rank `rank` of n: exe with argv and the variables, a child that gets SIGTERM
 * when this process ends (no orphan).  The child's pid, or -1 with the reason in err. */
pid_t launch_spawn(const char *exe, char *const argv[], int rank, int n, int port, char *err,
                   size_t cap);

/* Reaps the n children pids[i] (rank first_rank + i; pid <= 0: none).  kill_now: they are
 * sent SIGTERM at once (this process failed); else they get grace_s seconds to end by
 * themselves, then SIGTERM, and every one still there 5 s after SIGTERM gets SIGKILL.
 * Every child is waited for: no zombie.  0 when all exited with status 0, else 1 with the
 * first failure in msg ("rank 2 (pid 123) exited with status 1", "... was killed by signal
 * 9", "... did not end within 30 s; killed"). */
int launch_reap(pid_t *pids, int n, int first_rank, int kill_now, double grace_s, char *msg,
                size_t cap);

#endif
