"""Writes tests/reference/zoo_vars.json: the variables of every zoo network as TF-slim builds it.

For each model of nets/models.def this builds TF-slim's network in graph mode
(tf.compat.v1), under the family's arg_scope with its default weight decay, exactly as
research/slim's nets_factory.get_network_fn does, and records:

  variables              [name, shape, trainable] of every global variable, in creation order
  total_params           elements of all variables (moving statistics included)
  trainable_params       elements of the trainable ones
  regularization_losses  len(REGULARIZATION_LOSSES): which weights carry an L2 term
  logits_shape           shape of the returned logits (batch 2)
  aux_logits_shape       shape of end_points['AuxLogits'], or null
  end_points             the end_points keys, sorted
  default_image_size     the function's default_image_size
  global_pool            the function's global_pool default (null: it has no such argument);
                         the networks are built with it, so the test builds with it too

and, for every model, at the reduced input size of FORWARD:

  forward                {"size", "global_pool", "num_classes", "batch", "logits",
                         "aux_logits"}: the outputs in inference mode for deterministic
                         inputs and variables (see fill() below), which slimnet reproduces
                         exactly, so no weights need to be stored
  gradients              the gradient of the training loss in inference mode (batch norm on
                         the moving statistics): the losses, and per trainable variable the
                         gradient's L2 norm, sum, three elements and four random projections
                         (a sketch that bounds the whole gradient's error), in float32 and in
                         float64, and how far TensorFlow's own float32 is from float64 over a
                         few draws of its rounding (see gradient_record() below)
  training               the same for one training step (is_training=True, dropout off), and
                         per moving mean/variance its norm and three elements after the
                         step's update

The C suite `zoo` (tests/test_zoo.c) builds the same networks with slimnet and compares
names, shapes, order, trainability, counts and regularization losses one for one, then runs
the forward passes and compares the logits, the inference-mode gradients, and the training
step: losses, gradients and moving statistics.

Where the network code comes from: tf_slim (pinned in requirements.txt) ships only a few
nets (alexnet, overfeat, vgg, inception_v1-3, resnet_v1/v2), so the networks are taken from
research/slim itself as packaged on PyPI in the sdist tf-models-research-object-detection
2.8.0.post1 (its slim/nets/ is research/slim/nets of tensorflow/models, ported to tf_slim and
tf.compat.v1).  The sdist is fetched with pip (pinned by version and sha256), and only its
slim/nets/ is unpacked, into tests/reference/out/zoo_src/ (git-ignored).  nets_factory.py
itself cannot be imported (its nasnet import needs tensorflow.contrib), so MODELS below
mirrors its networks_map and arg_scopes_map for the models slimnet has.

Usage: tests/reference/.venv/bin/python tests/reference/make_zoo_fixtures.py [--slim-src DIR]
  --slim-src: a directory holding research/slim's nets/ package (skips the download).
  --only A,B --update: regenerates models A and B only, in place in the output file (the
    others are kept as they are; the TensorFlow, tf_slim and source pins must be the same).
"""
import argparse
import hashlib
import inspect
import json
import os
import subprocess
import sys
import tarfile
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

HERE = os.path.dirname(os.path.abspath(__file__))
OUT_JSON = os.path.join(HERE, "zoo_vars.json")
SRC_CACHE = os.path.join(HERE, "out", "zoo_src")
SDIST = "tf-models-research-object-detection==2.8.0.post1"
SDIST_FILE = "tf_models_research_object_detection-2.8.0.post1.tar.gz"
SDIST_SHA256 = "c701ea455646553a64c5f161641e8d5a94054b162b81961dcfff3dd619870004"

BATCH = 2

# name -> (module path, function, arg scope function, image size, num_classes).
# num_classes follows the released checkpoints (1000 for the Caffe-converted VGG/ResNet-v1,
# 1001 with a background class for the rest); the C test uses what is recorded.
MODELS = [
    ("lenet", "nets.lenet", "lenet", "lenet_arg_scope", 28, 10),
    ("cifarnet", "nets.cifarnet", "cifarnet", "cifarnet_arg_scope", 32, 10),
    ("alexnet_v2", "nets.alexnet", "alexnet_v2", "alexnet_v2_arg_scope", 224, 1000),
    ("overfeat", "nets.overfeat", "overfeat", "overfeat_arg_scope", 231, 1000),
    ("vgg_a", "nets.vgg", "vgg_a", "vgg_arg_scope", 224, 1000),
    ("vgg_16", "nets.vgg", "vgg_16", "vgg_arg_scope", 224, 1000),
    ("vgg_19", "nets.vgg", "vgg_19", "vgg_arg_scope", 224, 1000),
    ("inception_v1", "nets.inception", "inception_v1", "inception_v3_arg_scope", 224, 1001),
    ("inception_v2", "nets.inception", "inception_v2", "inception_v3_arg_scope", 224, 1001),
    ("inception_v3", "nets.inception", "inception_v3", "inception_v3_arg_scope", 299, 1001),
    ("inception_v4", "nets.inception", "inception_v4", "inception_v4_arg_scope", 299, 1001),
    ("inception_resnet_v2", "nets.inception", "inception_resnet_v2",
     "inception_resnet_v2_arg_scope", 299, 1001),
    ("resnet_v1_50", "nets.resnet_v1", "resnet_v1_50", "resnet_arg_scope", 224, 1000),
    ("resnet_v1_101", "nets.resnet_v1", "resnet_v1_101", "resnet_arg_scope", 224, 1000),
    ("resnet_v1_152", "nets.resnet_v1", "resnet_v1_152", "resnet_arg_scope", 224, 1000),
    ("resnet_v1_200", "nets.resnet_v1", "resnet_v1_200", "resnet_arg_scope", 224, 1000),
    ("resnet_v2_50", "nets.resnet_v2", "resnet_v2_50", "resnet_arg_scope", 224, 1001),
    ("resnet_v2_101", "nets.resnet_v2", "resnet_v2_101", "resnet_arg_scope", 224, 1001),
    ("resnet_v2_152", "nets.resnet_v2", "resnet_v2_152", "resnet_arg_scope", 224, 1001),
    ("resnet_v2_200", "nets.resnet_v2", "resnet_v2_200", "resnet_arg_scope", 224, 1001),
    ("mobilenet_v1", "nets.mobilenet_v1", "mobilenet_v1", "mobilenet_v1_arg_scope", 224, 1001),
    ("mobilenet_v1_075", "nets.mobilenet_v1", "mobilenet_v1_075", "mobilenet_v1_arg_scope",
     224, 1001),
    ("mobilenet_v1_050", "nets.mobilenet_v1", "mobilenet_v1_050", "mobilenet_v1_arg_scope",
     224, 1001),
    ("mobilenet_v1_025", "nets.mobilenet_v1", "mobilenet_v1_025", "mobilenet_v1_arg_scope",
     224, 1001),
    ("mobilenet_v2", "nets.mobilenet.mobilenet_v2", "mobilenet", "training_scope", 224, 1001),
    ("mobilenet_v2_140", "nets.mobilenet.mobilenet_v2", "mobilenet_v2_140", "training_scope",
     224, 1001),
    ("mobilenet_v2_035", "nets.mobilenet.mobilenet_v2", "mobilenet_v2_035", "training_scope",
     224, 1001),
    ("mobilenet_v3_small", "nets.mobilenet.mobilenet_v3", "small", "training_scope", 224, 1001),
    ("mobilenet_v3_large", "nets.mobilenet.mobilenet_v3", "large", "training_scope", 224, 1001),
    ("mobilenet_v3_small_minimalistic", "nets.mobilenet.mobilenet_v3", "small_minimalistic",
     "training_scope", 224, 1001),
    ("mobilenet_v3_large_minimalistic", "nets.mobilenet.mobilenet_v3", "large_minimalistic",
     "training_scope", 224, 1001),
    ("mobilenet_edgetpu", "nets.mobilenet.mobilenet_v3", "edge_tpu", "training_scope", 224, 1001),
    ("mobilenet_edgetpu_075", "nets.mobilenet.mobilenet_v3", "edge_tpu_075", "training_scope",
     224, 1001),
]


# Inference-mode forward passes: model -> (image size, global_pool or None for the network's
# default).  The same list is in tests/test_zoo.c.  Sizes are small but leave every VALID
# layer room: 107 is the least inception_v3/v4 and inception_resnet_v2 take (their aux heads'
# 5x5 VALID pool on the 17x17 grid, 5x5 there); alexnet_v2, overfeat and the VGGs keep their
# default size, as their fc6 window needs it; inception_v1's fixed 7x7 average pool needs
# 224, so at 96 it pools globally.
FORWARD = {
    "lenet": (28, None), "cifarnet": (32, None), "alexnet_v2": (224, None),
    "overfeat": (231, None), "vgg_a": (224, None), "vgg_16": (224, None),
    "vgg_19": (224, None), "inception_v1": (96, True), "inception_v2": (96, None),
    "inception_v3": (107, None), "inception_v4": (115, None),
    "inception_resnet_v2": (107, None), "resnet_v1_50": (64, None),
    "resnet_v1_101": (64, None), "resnet_v1_152": (64, None), "resnet_v1_200": (64, None),
    "resnet_v2_50": (64, None), "resnet_v2_101": (64, None), "resnet_v2_152": (64, None),
    "resnet_v2_200": (64, None), "mobilenet_v1": (96, None), "mobilenet_v1_075": (64, None),
    "mobilenet_v1_050": (96, None), "mobilenet_v1_025": (64, None),
    "mobilenet_v2": (96, None), "mobilenet_v2_140": (64, None), "mobilenet_v2_035": (96, None),
    "mobilenet_v3_small": (96, None), "mobilenet_v3_large": (96, None),
    "mobilenet_v3_small_minimalistic": (64, None), "mobilenet_v3_large_minimalistic": (64, None),
    "mobilenet_edgetpu": (96, None), "mobilenet_edgetpu_075": (64, None),
}
FORWARD_CLASSES = 10


def fnv1a32(text):
    h = 0x811C9DC5
    for b in text.encode():
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h


def uniform(name, n):
    """n values in [-1, 1) from the variable's name: murmur3's finalizer over
    i * 0x9E3779B1 + fnv1a32(name), all in uint32 arithmetic (tests/test_zoo.c: zoo_uniform)."""
    return uniform_range(name, 0, n)


def uniform_range(name, lo, hi):
    """Values lo..hi-1 of uniform(name, hi)."""
    import numpy as np
    x = np.arange(lo, hi, dtype=np.uint64) * np.uint64(0x9E3779B1) + np.uint64(fnv1a32(name))
    x &= np.uint64(0xFFFFFFFF)
    x ^= x >> np.uint64(16)
    x = (x * np.uint64(0x85EBCA6B)) & np.uint64(0xFFFFFFFF)
    x ^= x >> np.uint64(13)
    x = (x * np.uint64(0xC2B2AE35)) & np.uint64(0xFFFFFFFF)
    x ^= x >> np.uint64(16)
    return x.astype(np.float64) / 4294967296.0 * 2.0 - 1.0


def fill(name, shape):
    """The deterministic value of a variable, by the last part of its name.  Weights are
    He-scaled (variance 2 / fan_in) and moving variances close to 1, so that the signal
    neither vanishes nor explodes through a hundred layers and the logits keep depending on
    the input."""
    import numpy as np
    n = int(np.prod(shape)) if shape else 1
    u = uniform(name, n)
    leaf = name.rsplit("/", 1)[-1]
    if leaf == "depthwise_weights":
        v = u * np.sqrt(6.0 / (shape[0] * shape[1]))
    elif leaf in ("weights", "pointwise_weights"):
        v = u * np.sqrt(6.0 / int(np.prod(shape[:-1])))
    elif leaf == "gamma":
        v = 1.0 + 0.2 * u
    elif leaf == "moving_variance":
        v = 1.0 + 0.1 * u
    else:   # biases, beta, moving_mean
        v = 0.1 * u
    return v.astype(np.float32).reshape(shape)


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fetch_slim_src():
    """Unpacks slim/nets/ of the pinned sdist into SRC_CACHE once; returns the folder."""
    stamp = os.path.join(SRC_CACHE, ".sha256")
    if os.path.exists(stamp) and open(stamp).read().strip() == SDIST_SHA256:
        return SRC_CACHE
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                        "--disable-pip-version-check", "-d", tmp, SDIST], check=True)
        path = os.path.join(tmp, SDIST_FILE)
        got = sha256(path)
        if got != SDIST_SHA256:
            sys.exit("make_zoo_fixtures: %s has sha256 %s, expected %s" % (SDIST_FILE, got,
                                                                           SDIST_SHA256))
        prefix = SDIST_FILE[:-len(".tar.gz")] + "/slim/"
        with tarfile.open(path) as tar:
            members = [m for m in tar.getmembers()
                       if m.name.startswith(prefix + "nets/") and m.isfile()]
            for m in members:
                m.name = m.name[len(prefix):]
            os.makedirs(SRC_CACHE, exist_ok=True)
            tar.extractall(SRC_CACHE, members=members)
    with open(stamp, "w") as f:
        f.write(SDIST_SHA256 + "\n")
    return SRC_CACHE


def shape_list(t):
    return [int(d) if d is not None else None for d in t.get_shape().as_list()]


def build(tf, slim, importlib, entry):
    name, module, fn_name, scope_name, size, num_classes = entry
    mod = importlib.import_module(module)
    fn = getattr(mod, fn_name)
    arg_scope_fn = getattr(mod, scope_name)
    graph = tf.Graph()
    with graph.as_default():
        images = tf.placeholder(tf.float32, [BATCH, size, size, 3], name="images")
        # nets_factory.get_network_fn: the network inside arg_scopes_map[name](weight_decay),
        # called with num_classes and is_training.  The family's default weight decay is
        # used so that the regularizers exist and can be counted.
        with slim.arg_scope(arg_scope_fn()):
            logits, end_points = fn(images, num_classes=num_classes, is_training=True)
        trainable = {v.name for v in tf.trainable_variables()}
        variables = []
        total = trainable_total = 0
        for v in tf.global_variables():
            shape = [int(d) for d in v.get_shape().as_list()]
            n = 1
            for d in shape:
                n *= d
            is_trainable = v.name in trainable
            total += n
            trainable_total += n if is_trainable else 0
            variables.append([v.op.name, shape, 1 if is_trainable else 0])
        aux = end_points.get("AuxLogits")
        gp = inspect.signature(fn).parameters.get("global_pool")
        return {
            "image_size": size,
            "default_image_size": getattr(fn, "default_image_size", None),
            "global_pool": gp.default if gp is not None else None,
            "num_classes": num_classes,
            "batch": BATCH,
            "variables": variables,
            "total_params": total,
            "trainable_params": trainable_total,
            "regularization_losses": len(tf.losses.get_regularization_losses()),
            "logits_shape": shape_list(logits),
            "aux_logits_shape": shape_list(aux) if aux is not None else None,
            "end_points": sorted(end_points.keys()),
        }


def forward(tf, slim, importlib, entry, size, global_pool):
    """Logits of the network in inference mode on deterministic images and variables."""
    import numpy as np
    name, module, fn_name, scope_name, _, _ = entry
    mod = importlib.import_module(module)
    fn = getattr(mod, fn_name)
    kwargs = {} if global_pool is None else {"global_pool": global_pool}
    graph = tf.Graph()
    with graph.as_default():
        images = tf.placeholder(tf.float32, [BATCH, size, size, 3], name="images")
        with slim.arg_scope(getattr(mod, scope_name)()):
            logits, end_points = fn(images, num_classes=FORWARD_CLASSES, is_training=False,
                                    **kwargs)
        aux = end_points.get("AuxLogits")
        # One run assigns every variable: a run per variable would prune the graph each time.
        assigns, values = [], {}
        for v in tf.global_variables():
            shape = v.get_shape().as_list()
            ph = tf.placeholder(tf.float32, shape)
            assigns.append(v.assign(ph))
            values[ph] = fill(v.op.name, shape)
        with tf.Session(graph=graph) as sess:
            sess.run(assigns, values)
            feed = {images: uniform("images", BATCH * size * size * 3)
                    .astype(np.float32).reshape(BATCH, size, size, 3)}
            outs = sess.run([logits] + ([aux] if aux is not None else []), feed)
    def rows(a):
        return [[float("%.7g" % x) for x in r] for r in np.asarray(a).reshape(BATCH, -1)]
    gp = inspect.signature(fn).parameters.get("global_pool")
    return {
        "size": size,
        "global_pool": global_pool if global_pool is not None else (
            gp.default if gp is not None else None),
        "num_classes": FORWARD_CLASSES,
        "batch": BATCH,
        "logits": rows(outs[0]),
        "aux_logits": rows(outs[1]) if aux is not None else None,
    }


# Gradients: the same networks, sizes, variables and images as FORWARD, differentiated twice:
#   "gradients"  in inference mode (is_training=False: batch norm on the moving statistics,
#                no dropout), where float32 is well conditioned and every variable's gradient
#                must match to 1e-4 of its norm;
#   "training"   one training step (is_training=True: batch norm on batch statistics, moving
#                statistics updated) with dropout off, so that TensorFlow's gradients are
#                deterministic.  Every network has a switch for it: the function's own
#                dropout_keep_prob argument, except MobileNet v2, whose keep probability comes
#                from its arg scope (mobilenet.training_scope(dropout_keep_prob=...)); the
#                ResNets have no dropout.
# Each is run in float32 (the reference slimnet is held to) and again with the whole network
# in float64 (the same float32 weights and images, widened; tf_slim builds every layer in the
# input's dtype, and batch norm leaves the fused kernel, which has no float64), which is the
# exact answer to ~1e-15: it tells how far from exact TensorFlow's own float32 is, so that a
# tolerance is measured against rounding, not guessed.
TRAIN_LABELS_SEED = "labels"
AUX_WEIGHT = 0.4   # train_image_classifier.py: the aux logits' cross-entropy weight
N_PROJ = 4         # random projections per gradient (see projections())
CHUNK = 1 << 22


def labels_for(batch, classes):
    """Deterministic labels: floor((u + 1) / 2 * classes) of uniform("labels")."""
    import numpy as np
    u = uniform(TRAIN_LABELS_SEED, batch)
    return [int(x) for x in np.minimum(np.floor((u + 1.0) / 2.0 * classes), classes - 1)]


def g7(x):
    return float("%.7g" % x)


def g9(x):
    return float("%.9g" % x)


def sample_index(n):
    """The flat indices whose values are recorded: first, middle, last."""
    return [0, n // 2, n - 1]


def projections(name, g):
    """<g, r_k> for k < N_PROJ, r_k[i] = uniform("proj<k>/" + name)[i], summed in float64.
    A sketch of the whole gradient: for any vector d, E[<d, r_k>^2] = |d|^2 / 3, so the
    projections of two gradients' difference estimate the norm of the difference
    (|d|^2 ~ 3/N_PROJ * sum_k <d, r_k>^2) without storing either gradient."""
    import numpy as np
    out = []
    for k in range(N_PROJ):
        seed = "proj%d/%s" % (k, name)
        acc = 0.0
        for lo in range(0, g.size, CHUNK):
            hi = min(g.size, lo + CHUNK)
            acc += float(np.dot(g[lo:hi], uniform_range(seed, lo, hi)))
        out.append(acc)
    return out


def lrn_any_dtype(tf):
    """tf.nn.lrn's formula in plain ops, for float64 (the LRN kernel has float16/32 only):
    y = x / (bias + alpha * sum of x^2 over the channel window [c-r, c+r]) ^ beta."""
    def lrn(x, depth_radius=5, bias=1.0, alpha=1.0, beta=0.5, name=None):
        r = int(depth_radius)
        c = x.get_shape().as_list()[-1]
        sq = tf.pad(tf.square(x), [[0, 0], [0, 0], [0, 0], [r, r]])
        window = tf.add_n([sq[..., i:i + c] for i in range(2 * r + 1)])
        return tf.divide(x, tf.pow(bias + alpha * window, beta), name=name)
    return lrn


def step(tf, slim, importlib, entry, size, global_pool, is_training, dtype, batch, perturb=0):
    """Losses, logits and gradients of loss = softmax_cross_entropy(one-hot labels, logits)
    + 0.4 * the same of the aux logits (where the network has them) + the regularization
    losses (tf.losses.get_total_loss), as research/slim's train_image_classifier.py builds
    it with label smoothing 0; in training mode also the moving statistics after running
    UPDATE_OPS once.  Arrays come back as float64 numpy arrays."""
    import numpy as np
    name, module, fn_name, scope_name, _, _ = entry
    mod = importlib.import_module(module)
    fn = getattr(mod, fn_name)
    params = inspect.signature(fn).parameters
    kwargs = {} if global_pool is None else {"global_pool": global_pool}
    scope_kwargs = {}
    if "dropout_keep_prob" in params:
        kwargs["dropout_keep_prob"] = 1.0
        dropout = "dropout_keep_prob=1.0"
    elif scope_name == "training_scope":
        scope_kwargs["dropout_keep_prob"] = 1.0
        dropout = "training_scope(dropout_keep_prob=1.0)"
    else:
        dropout = None   # no dropout layer
    labels = labels_for(batch, FORWARD_CLASSES)
    lrn_kernel = tf.nn.lrn
    if dtype != tf.float32:   # cifarnet
        tf.nn.lrn = lrn_any_dtype(tf)
    try:
        return step_graph(tf, slim, mod, fn, scope_name, kwargs, scope_kwargs, dropout, labels,
                          name, size, is_training, dtype, batch, perturb)
    finally:
        tf.nn.lrn = lrn_kernel


def step_graph(tf, slim, mod, fn, scope_name, kwargs, scope_kwargs, dropout, labels, name,
               size, is_training, dtype, batch, perturb):
    import numpy as np
    graph = tf.Graph()
    with graph.as_default():
        images = tf.placeholder(dtype, [batch, size, size, 3], name="images")
        with slim.arg_scope(getattr(mod, scope_name)(**scope_kwargs)):
            logits, end_points = fn(images, num_classes=FORWARD_CLASSES,
                                    is_training=is_training, **kwargs)
        onehot = tf.one_hot(labels, FORWARD_CLASSES, dtype=dtype)
        xent = tf.losses.softmax_cross_entropy(onehot, logits)
        aux = end_points.get("AuxLogits")
        aux_xent = (tf.losses.softmax_cross_entropy(onehot, aux, weights=AUX_WEIGHT)
                    if aux is not None else None)
        regs = tf.losses.get_regularization_losses()
        reg = tf.add_n(regs) if regs else tf.constant(0.0, dtype)   # lenet: weight decay 0
        total = tf.losses.get_total_loss()
        tvars = tf.trainable_variables()
        grads = tf.gradients(total, tvars)
        moving = [v for v in tf.global_variables()
                  if v.op.name.rsplit("/", 1)[-1] in ("moving_mean", "moving_variance")]
        updates = tf.get_collection(tf.GraphKeys.UPDATE_OPS)
        assigns, values = [], {}
        for v in tf.global_variables():
            assert v.dtype.base_dtype == dtype, (name, v.op.name, v.dtype)
            shape = v.get_shape().as_list()
            ph = tf.placeholder(dtype, shape)
            assigns.append(v.assign(ph))
            values[ph] = fill(v.op.name, shape).astype(dtype.as_numpy_dtype)
        with tf.Session(graph=graph) as sess:
            sess.run(assigns, values)
            x = uniform("images", batch * size * size * 3).astype(np.float32)
            if perturb:   # a few ulps: another sample of float32's rounding (see below)
                x = (x + PERTURB * uniform("perturb%d" % perturb, x.size)).astype(np.float32)
            feed = {images: x.astype(dtype.as_numpy_dtype).reshape(batch, size, size, 3)}
            fetch = [total, xent, reg, logits, grads] + ([aux_xent] if aux is not None else [])
            out = sess.run(fetch, feed)
            mvals = []
            if is_training:
                sess.run(updates, feed)
                mvals = sess.run(moving)
    f64 = lambda a: np.asarray(a, dtype=np.float64)
    return {
        "dropout": dropout,
        "labels": labels,
        "has_aux": aux is not None,
        "total_loss": float(out[0]),
        "cross_entropy": float(out[1]),
        "regularization_loss": float(out[2]),
        "aux_cross_entropy": float(out[5]) / AUX_WEIGHT if aux is not None else None,
        "logits": f64(out[3]),
        "grads": [(v.op.name, f64(g).ravel()) for v, g in zip(tvars, out[4])],
        "moving": [(v.op.name, f64(m).ravel()) for v, m in zip(moving, mvals)],
    }


LOSS_KEYS = ("total_loss", "cross_entropy", "aux_cross_entropy", "regularization_loss")


# How far TensorFlow's own float32 is from exact, sampled: the unperturbed run and
# N_SAMPLES - 1 more with every input pixel moved by up to PERTURB (a few float32 ulps), which
# changes the rounding everywhere.  At random weights the gradient is not continuous at the
# test point in every network: float32 rounding flips relu units and max-pool choices that
# sit within rounding of their kink (vgg_16 at 224 has tens of millions of units), and where
# batch norm runs on batch statistics over few values it amplifies rounding; each flip moves
# the gradients of every layer below it.  The samples measure that for TensorFlow itself.
N_SAMPLES = 4
PERTURB = 2.0 ** -22


def gradient_record(tf, slim, importlib, entry, size, global_pool, is_training, batch=BATCH):
    """The fixture's "gradients" (is_training False) or "training" (True) entry:
      the float32 losses, "float64": the float64 losses and logits, and "float32_err": per
        loss the largest |float32 - float64| of the N_SAMPLES float32 runs;
      "grads": per trainable variable, in tf.trainable_variables() order,
        [name, |g|, sum g, g[first], g[middle], g[last], <g,r_0> .. <g,r_3>,   (float32 run)
         |g64|, <g64,r_0> .. <g64,r_3>,                                         (float64 run)
         max over the N_SAMPLES float32 runs of |g32 - g64|]
      "moving" (training): per moving_mean / moving_variance after the step's update
        [name, L2 norm, v[first], v[middle], v[last]] (float32 run)."""
    import numpy as np
    r32 = step(tf, slim, importlib, entry, size, global_pool, is_training, tf.float32, batch)
    r64 = step(tf, slim, importlib, entry, size, global_pool, is_training, tf.float64, batch)
    g64s = [g64 for _, g64 in r64["grads"]]
    err = [float(np.linalg.norm(g - g64)) for (_, g), g64 in zip(r32["grads"], g64s)]
    loss_err = {k: abs(r32[k] - r64[k]) for k in LOSS_KEYS if r32[k] is not None}
    for k in range(1, N_SAMPLES):
        rk = step(tf, slim, importlib, entry, size, global_pool, is_training, tf.float32, batch,
                  perturb=k)
        err = [max(e, float(np.linalg.norm(g - g64)))
               for e, (_, g), g64 in zip(err, rk["grads"], g64s)]
        for key in loss_err:
            loss_err[key] = max(loss_err[key], abs(rk[key] - r64[key]))
        del rk
    rows = []
    for (vname, g), (vname64, g64), e in zip(r32["grads"], r64["grads"], err):
        assert vname == vname64, (vname, vname64)
        rows.append([vname, g7(np.linalg.norm(g)), g7(g.sum())] +
                    [g7(g[i]) for i in sample_index(g.size)] +
                    [g9(p) for p in projections(vname, g)] +
                    [g9(np.linalg.norm(g64))] + [g9(p) for p in projections(vname, g64)] +
                    [g7(e)])
    rec = {
        "size": size,
        "num_classes": FORWARD_CLASSES,
        "batch": batch,
        "is_training": is_training,
        "dropout_off": r32["dropout"],
        "labels": r32["labels"],
        "aux_weight": AUX_WEIGHT if r32["has_aux"] else None,
    }
    for k in LOSS_KEYS:
        rec[k] = g7(r32[k]) if r32[k] is not None else None
    rec["float64"] = {k: g9(r64[k]) if r64[k] is not None else None for k in LOSS_KEYS}
    rec["float64"]["logits"] = [[g9(x) for x in r] for r in r64["logits"].reshape(batch, -1)]
    rec["float32_err"] = {k: g7(v) for k, v in loss_err.items()}
    rec["float32_samples"] = N_SAMPLES
    rec["grads"] = rows
    if is_training:
        rec["moving"] = [[vname, g7(np.linalg.norm(m))] + [g7(m[i]) for i in sample_index(m.size)]
                         for vname, m in r32["moving"]]
    return rec


def dump(doc):
    """JSON with one variable a line: small diffs, readable, still plain JSON."""
    out = ["{"]
    meta = [k for k in doc if k != "models"]
    for k in meta:
        out.append("  %s: %s," % (json.dumps(k), json.dumps(doc[k])))
    out.append('  "models": {')
    names = list(doc["models"])
    for i, name in enumerate(names):
        m = doc["models"][name]
        out.append("    %s: {" % json.dumps(name))
        for k in m:
            if k == "variables":
                continue
            if k in ("gradients", "training"):
                t = m[k]
                out.append('      %s: {' % json.dumps(k))
                for tk in t:
                    if tk in ("grads", "moving"):
                        continue
                    out.append("        %s: %s," % (json.dumps(tk), json.dumps(t[tk])))
                lists = [tk for tk in ("grads", "moving") if tk in t]
                for tk in lists:
                    out.append("        %s: [" % json.dumps(tk))
                    for j, r in enumerate(t[tk]):
                        out.append("          %s%s" % (json.dumps(r, separators=(",", ":")),
                                                       "," if j + 1 < len(t[tk]) else ""))
                    out.append("        ]%s" % ("," if tk != lists[-1] else ""))
                out.append("      },")
                continue
            out.append("      %s: %s," % (json.dumps(k), json.dumps(m[k])))
        out.append('      "variables": [')
        for j, v in enumerate(m["variables"]):
            out.append("        %s%s" % (json.dumps(v, separators=(",", ":")),
                                        "," if j + 1 < len(m["variables"]) else ""))
        out.append("      ]")
        out.append("    }%s" % ("," if i + 1 < len(names) else ""))
    out.append("  }")
    out.append("}")
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--slim-src", help="folder holding research/slim's nets/ package")
    ap.add_argument("--only", help="comma-separated model names (default: all)")
    ap.add_argument("--update", action="store_true",
                    help="with --only: replace just those models in the existing output file "
                         "and keep the others as they are (in MODELS order)")
    ap.add_argument("-o", "--output", default=OUT_JSON)
    args = ap.parse_args()

    src = args.slim_src or fetch_slim_src()
    sys.path.insert(0, src)
    import importlib
    import tensorflow.compat.v1 as tf
    import tf_slim as slim
    import tensorflow
    tf.disable_eager_execution()
    try:
        from importlib.metadata import version
        slim_version = version("tf-slim")
    except Exception:  # pragma: no cover
        slim_version = "unknown"

    wanted = set(args.only.split(",")) if args.only else None
    if args.update and not wanted:
        sys.exit("make_zoo_fixtures: --update needs --only")
    unknown = (wanted or set()) - {e[0] for e in MODELS}
    if unknown:
        sys.exit("make_zoo_fixtures: unknown models: %s" % ", ".join(sorted(unknown)))
    models = {}
    old = None
    if args.update:
        with open(args.output) as f:
            old = json.load(f)
    for entry in MODELS:
        if wanted and entry[0] not in wanted:
            continue
        models[entry[0]] = build(tf, slim, importlib, entry)
        m = models[entry[0]]
        if entry[0] in FORWARD:
            m["forward"] = forward(tf, slim, importlib, entry, *FORWARD[entry[0]])
            m["gradients"] = gradient_record(tf, slim, importlib, entry,
                                             *FORWARD[entry[0]], is_training=False)
            m["training"] = gradient_record(tf, slim, importlib, entry, *FORWARD[entry[0]],
                                            is_training=True)
        print("%-20s %5d variables %11d parameters" % (entry[0], len(m["variables"]),
                                                        m["total_params"]))
    if old is not None:   # every model in MODELS order, the regenerated ones in their place
        for entry in MODELS:
            if entry[0] not in models and entry[0] in old["models"]:
                models[entry[0]] = old["models"][entry[0]]
        models = {e[0]: models[e[0]] for e in MODELS if e[0] in models}
    doc = {
        "generator": "tests/reference/make_zoo_fixtures.py",
        "tensorflow": tensorflow.__version__,
        "tf_slim": slim_version,
        "slim_nets_source": "%s (PyPI sdist, slim/nets/), sha256 %s" % (SDIST, SDIST_SHA256)
                            if not args.slim_src else "local: " + args.slim_src,
        "batch": BATCH,
        "models": models,
    }
    if old is not None:   # one file, one TensorFlow: the kept models must come from the same
        for k in ("tensorflow", "tf_slim", "slim_nets_source", "batch"):
            if old.get(k) != doc[k]:
                sys.exit("make_zoo_fixtures: --update: %s is %r here, %r in %s; regenerate "
                         "every model instead" % (k, doc[k], old.get(k), args.output))
    with open(args.output, "w") as f:
        f.write(dump(doc))
    print("wrote %s (%d models)" % (args.output, len(models)))


if __name__ == "__main__":
    main()
