#!/usr/bin/env python3
"""TensorFlow's own accuracy peer for asynchronous training (accuracy_ps.sh, issue 16).

    tests/reference/.venv/bin/python benchmarks/tf_ps_accuracy.py --data_dir D --out O
        [--ps 2 --workers 2 | --ps 0 --workers 1] [--steps 10000] [--seed 1]

Trains research/slim's lenet on a slimnet-convert'ed FER dataset (fer_train.tfrecord,
fer_test.tfrecord) with make demo's recipe, as train_image_classifier.py builds it in TF1
graph mode: TF-slim's decoder (JPEG, 3 channels), lenet preprocessing with --use_grayscale
(rgb_to_grayscale, crop or pad to 28, (x - 128) / 128), one-hot softmax cross-entropy, weight
decay 0, momentum 0.9, learning rate 0.01 decayed polynomially to 0.0001 over
int(49000 * 6.6 / 32) steps, batch 32.  With --ps 0 --workers 1 it is one process and one
session (local training); otherwise it starts the cluster as the vendor's platform does:
every ps task a tf.distribute.Server, every worker a between-graph replica whose variables
replica_device_setter places round robin on the ps tasks, trained asynchronously through a
MonitoredTrainingSession until the global step reaches --steps (worker 0 is the chief: it
initializes and writes the last checkpoint).  Each worker reads the whole training set,
shuffled with its own seed, as slim's DatasetDataProvider does.  Then the test set is
classified from the chief's checkpoint and the last line printed is

    tf_ps_accuracy: workers W ps P steps S seed K: accuracy A (N images), T s training

Every process uses one thread for TensorFlow's op pools, as accuracy_ps.sh's slimnet runs.
"""
import argparse
import json
import os
import socket
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import tensorflow as tf  # noqa: E402
import tf_slim as slim  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tf_train_cpu import lenet, lenet_arg_scope  # noqa: E402

tf1 = tf.compat.v1
tf1.disable_eager_execution()

NUM_TRAIN = 49000
BATCH = 32


def config():
    return tf1.ConfigProto(intra_op_parallelism_threads=1, inter_op_parallelism_threads=1)


def decode(record):
    f = tf1.parse_single_example(record, {
        "image/encoded": tf1.FixedLenFeature((), tf.string),
        "image/class/label": tf1.FixedLenFeature((), tf.int64)})
    image = tf.image.decode_jpeg(f["image/encoded"], channels=3)
    image = tf.image.rgb_to_grayscale(image)
    image = tf.cast(image, tf.float32)
    image = tf.image.resize_with_crop_or_pad(image, 28, 28)
    image = (image - 128.0) / 128.0
    return image, f["image/class/label"]


def train_graph(a, task, cluster):
    """The training graph of one replica; returns (train_op, global_step)."""
    tf1.set_random_seed(a.seed * 1000 + task)   # each worker its own dropout masks
    if cluster:
        dev = tf1.train.replica_device_setter(ps_tasks=a.ps, worker_device="/job:worker/task:%d"
                                              % task, cluster=cluster)
    else:
        dev = "/cpu:0"
    with tf.device("/job:worker/task:%d/cpu:0" % task if cluster else "/cpu:0"):
        ds = tf.data.TFRecordDataset(os.path.join(a.data_dir, "fer_train.tfrecord"))
        ds = ds.shuffle(NUM_TRAIN, seed=a.seed * 1000 + task, reshuffle_each_iteration=True)
        ds = ds.repeat().map(decode).batch(BATCH, drop_remainder=True).prefetch(2)
        images, labels = tf1.data.make_one_shot_iterator(ds).get_next()
    with tf1.device(dev):
        step = tf1.train.get_or_create_global_step()
        with slim.arg_scope(lenet_arg_scope(weight_decay=0.0)):
            logits = lenet(images, 10, is_training=True)
        tf1.losses.softmax_cross_entropy(tf.one_hot(labels, 10), logits)
        loss = tf1.losses.get_total_loss()
        decay_steps = int(NUM_TRAIN * 6.6 / BATCH)
        lr = tf1.train.polynomial_decay(0.01, step, decay_steps, 0.0001, power=1.0, cycle=False)
        opt = tf1.train.MomentumOptimizer(lr, 0.9)
        return opt.minimize(loss, global_step=step), step


def run_worker(a, task):
    cluster = None
    target = ""
    if a.ps:
        cluster = tf.train.ClusterSpec(json.loads(a.cluster))
        server = tf.distribute.Server(cluster, job_name="worker", task_index=task, config=config())
        target = server.target
    with tf.Graph().as_default():
        train_op, step = train_graph(a, task, cluster)
        chief = task == 0
        hooks = [tf1.train.StopAtStepHook(last_step=a.steps)]
        chief_hooks = [tf1.train.CheckpointSaverHook(a.out, save_steps=10 ** 9)]
        cfg = config()
        if cluster:   # a worker talks to the ps tasks and itself only
            cfg.device_filters[:] = ["/job:ps", "/job:worker/task:%d" % task]
        with tf1.train.MonitoredTrainingSession(
                master=target, is_chief=chief, checkpoint_dir=a.out if chief else None,
                hooks=hooks, chief_only_hooks=chief_hooks, save_checkpoint_secs=None,
                save_checkpoint_steps=None, save_summaries_steps=None,
                save_summaries_secs=None, log_step_count_steps=0, config=cfg) as sess:
            n = 0
            while not sess.should_stop():
                _, g = sess.run([train_op, step])
                n += 1
                if chief and g // 1000 != (g - 1) // 1000:
                    print("tf_ps_accuracy: worker %d: global step %d" % (task, g), flush=True)
        print("tf_ps_accuracy: worker %d: %d steps of its own" % (task, n), flush=True)


def run_ps(a, task):
    cluster = tf.train.ClusterSpec(json.loads(a.cluster))
    tf.distribute.Server(cluster, job_name="ps", task_index=task, config=config()).join()


def evaluate(a):
    with tf.Graph().as_default():
        ds = tf.data.TFRecordDataset(os.path.join(a.data_dir, "fer_test.tfrecord"))
        ds = ds.map(decode).batch(500)
        images, labels = tf1.data.make_one_shot_iterator(ds).get_next()
        with slim.arg_scope(lenet_arg_scope()):
            logits = lenet(images, 10, is_training=False)
        right = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(logits, 1), labels), tf.int64))
        count = tf.size(labels, out_type=tf.int64)
        saver = tf1.train.Saver(slim.get_model_variables())
        with tf1.Session(config=config()) as sess:
            saver.restore(sess, tf1.train.latest_checkpoint(a.out))
            r = n = 0
            while True:
                try:
                    dr, dn = sess.run([right, count])
                except tf.errors.OutOfRangeError:
                    break
                r += dr
                n += dn
    return r / n, n


def free_ports(k):
    socks = [socket.socket() for _ in range(k)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data_dir", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--ps", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--steps", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--role", choices=["ps", "worker"])
    ap.add_argument("--index", type=int, default=0)
    ap.add_argument("--cluster")
    a = ap.parse_args()
    if a.role == "ps":
        return run_ps(a, a.index)
    if a.role == "worker":
        return run_worker(a, a.index)
    if a.ps == 0 and a.workers != 1:
        sys.exit("tf_ps_accuracy: --ps 0 (local training) needs --workers 1")
    os.makedirs(a.out, exist_ok=True)
    t0 = time.time()
    if a.ps == 0:
        run_worker(a, 0)
    else:
        ports = free_ports(a.ps + a.workers)
        cluster = {"ps": ["127.0.0.1:%d" % p for p in ports[:a.ps]],
                   "worker": ["127.0.0.1:%d" % p for p in ports[a.ps:]]}
        me = [sys.executable, os.path.abspath(__file__), "--data_dir", a.data_dir, "--out", a.out,
              "--ps", str(a.ps), "--workers", str(a.workers), "--steps", str(a.steps),
              "--seed", str(a.seed), "--cluster", json.dumps(cluster)]
        ps = [subprocess.Popen(me + ["--role", "ps", "--index", str(i)]) for i in range(a.ps)]
        workers = [subprocess.Popen(me + ["--role", "worker", "--index", str(i)])
                   for i in range(a.workers)]
        rcs = [w.wait() for w in workers]
        for p in ps:
            p.kill()
            p.wait()
        if any(rcs):
            sys.exit("tf_ps_accuracy: a worker failed: exit codes %s" % rcs)
    secs = time.time() - t0
    acc, n = evaluate(a)
    print("tf_ps_accuracy: workers %d ps %d steps %d seed %d: accuracy %.4f (%d images), "
          "%.0f s training" % (a.workers, a.ps, a.steps, a.seed, acc, n, secs), flush=True)


if __name__ == "__main__":
    main()
