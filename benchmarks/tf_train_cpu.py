#!/usr/bin/env python3
"""TensorFlow CPU peer for bench_train: training images/s of TF-slim networks, synthetic data.

    tests/reference/.venv/bin/python benchmarks/tf_train_cpu.py [--model resnet_v1_50]
        [--batch 32] [--size 224] [--classes 1000] [--steps 10] [--warmup 2] [--threads 2]

The same step as bench_train: TF-slim's network (training mode: batch norm in batch
statistics, dropout on), sparse softmax cross-entropy + the arg_scope's L2 regularization
losses, plain SGD (learning rate 0.01), built with tf_slim.learning.create_train_op in TF1
graph mode (tf.compat.v1), so batch norm's moving-average updates run every step as in
slim's train_image_classifier.py.  Inputs are a constant random batch in the graph, labels
i % classes.  Intra- and inter-op thread pools both get --threads (default 2, to match a
slimnet run with --threads 2).  Prints bench_train's lines: model/batch/size/device, the loss
over the steps, the median step time and images/s.

lenet and cifarnet are research/slim/nets/{lenet,cifarnet}.py (not in the tf_slim wheel),
restated here layer for layer; resnet_v1_* come from tf_slim.nets; mobilenet_v1 and
mobilenet_v3_large from research/slim's own nets (make_zoo_fixtures.py's copy).  Examples:

    --model lenet --size 48 --batch 32
    --model cifarnet --size 48 --batch 32
    --model resnet_v1_50 --size 224 --batch 8
"""
import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_slim as slim  # noqa: E402
from tf_slim.nets import inception_v3, resnet_v1, vgg  # noqa: E402

tf1 = tf.compat.v1


def lenet(images, num_classes, is_training, dropout_keep_prob=0.5, scope="LeNet"):
    """research/slim/nets/lenet.py."""
    with tf1.variable_scope(scope, "LeNet", [images]):
        net = slim.conv2d(images, 32, [5, 5], scope="conv1")
        net = slim.max_pool2d(net, [2, 2], 2, scope="pool1")
        net = slim.conv2d(net, 64, [5, 5], scope="conv2")
        net = slim.max_pool2d(net, [2, 2], 2, scope="pool2")
        net = slim.flatten(net)
        net = slim.fully_connected(net, 1024, scope="fc3")
        net = slim.dropout(net, dropout_keep_prob, is_training=is_training, scope="dropout3")
        return slim.fully_connected(net, num_classes, activation_fn=None, scope="fc4")


def lenet_arg_scope(weight_decay=0.0):
    with slim.arg_scope([slim.conv2d, slim.fully_connected],
                        weights_regularizer=slim.l2_regularizer(weight_decay),
                        weights_initializer=tf1.truncated_normal_initializer(stddev=0.1),
                        activation_fn=tf.nn.relu) as sc:
        return sc


def cifarnet(images, num_classes, is_training, dropout_keep_prob=0.5, scope="CifarNet"):
    """research/slim/nets/cifarnet.py."""
    with tf1.variable_scope(scope, "CifarNet", [images]):
        net = slim.conv2d(images, 64, [5, 5], scope="conv1")
        net = slim.max_pool2d(net, [2, 2], 2, scope="pool1")
        net = tf.nn.lrn(net, 4, bias=1.0, alpha=0.001 / 9.0, beta=0.75, name="norm1")
        net = slim.conv2d(net, 64, [5, 5], scope="conv2")
        net = tf.nn.lrn(net, 4, bias=1.0, alpha=0.001 / 9.0, beta=0.75, name="norm2")
        net = slim.max_pool2d(net, [2, 2], 2, scope="pool2")
        net = slim.flatten(net)
        net = slim.fully_connected(net, 384, scope="fc3")
        net = slim.dropout(net, dropout_keep_prob, is_training=is_training, scope="dropout3")
        net = slim.fully_connected(net, 192, scope="fc4")
        return slim.fully_connected(net, num_classes, biases_initializer=tf1.zeros_initializer(),
                                    weights_initializer=tf1.truncated_normal_initializer(
                                        stddev=1 / 192.0),
                                    weights_regularizer=None, activation_fn=None, scope="logits")


def cifarnet_arg_scope(weight_decay=0.004):
    with slim.arg_scope([slim.conv2d],
                        weights_initializer=tf1.truncated_normal_initializer(stddev=5e-2),
                        activation_fn=tf.nn.relu):
        with slim.arg_scope([slim.fully_connected],
                            biases_initializer=tf1.constant_initializer(0.1),
                            weights_initializer=tf1.truncated_normal_initializer(stddev=0.04),
                            weights_regularizer=slim.l2_regularizer(weight_decay),
                            activation_fn=tf.nn.relu) as sc:
            return sc


def resnet(fn):
    def build(images, num_classes, is_training):
        logits, _ = fn(images, num_classes=num_classes, is_training=is_training)
        return tf.reshape(logits, [-1, num_classes])   # spatial_squeeze is on: (N, classes)
    return build


def aux_free(fn):
    """Networks returning (logits, end_points); the aux head is left out of the timing."""
    def build(images, num_classes, is_training):
        return fn(images, num_classes=num_classes, is_training=is_training)[0]
    return build


def zoo_src(module, fn_name, scope_name):
    """A network of research/slim itself (not in the tf_slim wheel), from the copy that
    tests/reference/make_zoo_fixtures.py unpacks into tests/reference/out/zoo_src."""
    def load():
        import importlib
        import sys
        src = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "tests",
                           "reference", "out", "zoo_src")
        if not os.path.isdir(os.path.join(src, "nets")):
            raise SystemExit("tf_train_cpu: %s needs research/slim's nets in %s (run "
                             "tests/reference/make_zoo_fixtures.py once)" % (fn_name, src))
        sys.path.insert(0, src)
        mod = importlib.import_module(module)
        return getattr(mod, fn_name), getattr(mod, scope_name)

    def build(images, num_classes, is_training):
        return load()[0](images, num_classes=num_classes, is_training=is_training)[0]

    def arg_scope():
        return load()[1]()
    return build, arg_scope


# name: (network, arg_scope, default image size), as nets_factory
MODELS = {
    "mobilenet_v1": zoo_src("nets.mobilenet_v1", "mobilenet_v1", "mobilenet_v1_arg_scope") +
                    (224,),
    "mobilenet_v3_large": zoo_src("nets.mobilenet.mobilenet_v3", "large", "training_scope") +
                          (224,),
    "lenet": (lenet, lenet_arg_scope, 28),
    "cifarnet": (cifarnet, cifarnet_arg_scope, 32),
    "resnet_v1_50": (resnet(resnet_v1.resnet_v1_50), resnet_v1.resnet_arg_scope, 224),
    "resnet_v1_101": (resnet(resnet_v1.resnet_v1_101), resnet_v1.resnet_arg_scope, 224),
    "resnet_v1_152": (resnet(resnet_v1.resnet_v1_152), resnet_v1.resnet_arg_scope, 224),
    "inception_v3": (aux_free(inception_v3.inception_v3), inception_v3.inception_v3_arg_scope,
                     299),
    "vgg_16": (aux_free(vgg.vgg_16), vgg.vgg_arg_scope, 224),
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="resnet_v1_50", choices=sorted(MODELS))
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--size", type=int, default=0, help="0: the network's default")
    ap.add_argument("--classes", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--infer", type=int, default=0,
                    help="1: inference only (is_training=False, logits), as bench_train --infer")
    a = ap.parse_args()
    net_fn, arg_scope, default_size = MODELS[a.model]
    size = a.size or default_size

    g = tf.Graph()
    with g.as_default():
        tf1.set_random_seed(1)
        rng = np.random.default_rng(1)
        images = tf.constant(rng.uniform(-1, 1, (a.batch, size, size, 3)).astype(np.float32))
        labels = tf.constant(np.arange(a.batch, dtype=np.int32) % a.classes)
        with slim.arg_scope(arg_scope()):
            logits = net_fn(images, a.classes, not a.infer)
        if a.infer:
            train_op = tf.reduce_mean(logits)   # the step: one forward pass
        else:
            tf1.losses.sparse_softmax_cross_entropy(labels, logits)
            total_loss = tf1.losses.get_total_loss()   # + the regularization losses
            train_op = slim.learning.create_train_op(
                total_loss, tf1.train.GradientDescentOptimizer(0.01))
        cfg = tf1.ConfigProto(intra_op_parallelism_threads=a.threads,
                              inter_op_parallelism_threads=a.threads)
        with tf1.Session(graph=g, config=cfg) as sess:
            sess.run(tf1.global_variables_initializer())
            times, losses = [], []
            for step in range(a.warmup + a.steps):
                t0 = time.perf_counter()
                losses.append(sess.run(train_op))
                if step >= a.warmup:
                    times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    print(f"model {a.model}  batch {a.batch}  size {size}  device TensorFlow {tf.__version__} "
          f"CPU, {a.threads} threads")
    print(f"loss {losses[0]:.4f} -> {losses[-1]:.4f} over {a.warmup + a.steps} steps")
    what = "inference" if a.infer else "train step"
    print(f"{what}: median {med * 1e3:.1f} ms = {a.batch / med:.1f} images/s")


if __name__ == "__main__":
    main()
