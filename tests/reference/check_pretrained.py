"""A published TF-slim checkpoint classified by slimnet-classify gives TensorFlow's answer.

Usage: .venv/bin/python check_pretrained.py BUILD_BIN_DIR   (run by `make parity`)

Users start from TF-slim's published checkpoints (inception_v3_2016_08_28 ->
inception_v3.ckpt, resnet_v1_50_2016_08_28 -> resnet_v1_50.ckpt, mobilenet_v2_1.0_224.ckpt,
v3-large_224_1.0_float -> ema/model-540000).
They cannot be downloaded here, so TensorFlow writes checkpoints of the same shape and naming:

1. research/slim's network (the pinned sdist of make_zoo_fixtures.py), built as
   nets_factory.get_network_fn does for eval_image_classifier (the family's arg scope with
   weight_decay 0.0, is_training=False, num_classes = dataset classes - labels_offset); every
   variable takes make_zoo_fixtures.fill()'s deterministic He-scaled value (moving statistics
   included; the logits layer then rescaled so that the softmax is neither flat nor
   saturated); tf.train.Saver over the model variables alone (moving statistics and
   inception_v3's AuxLogits included, as in the published files; no global_step, no
   optimizer slots) writes inception_v3.ckpt and resnet_v1_50.ckpt as single V1 files (as in
   the 2016 tarballs) and mobilenet_v2_1.0_224.ckpt and mobilenet_v3_large's model-540000
   as V2 bundles.
     inception_v3  1001 classes (background first), inception preprocessing, 299
     resnet_v1_50  1000 classes (Caffe-converted), vgg preprocessing, 224; TF-slim's imagenet
                   has 1001 labels, so eval runs with labels_offset=1
     mobilenet_v2  1001 classes, nets/mobilenet/mobilenet_v2.mobilenet under
                   mobilenet_v2.training_scope, inception preprocessing, 224
     mobilenet_v3_large  1001 classes, nets/mobilenet/mobilenet_v3.large under
                   mobilenet_v3.training_scope, inception preprocessing, 224; a V2 bundle
                   named as the published v3-large_224_1.0_float/ema/model-540000
2. Five JPEGs of different sizes (500x375, 300x450, 640x480, 128x128, and a 260x200
   grayscale one): smooth random color fields plus noise, written by tf.io.encode_jpeg; a
   labels.txt as TF-slim's imagenet one ("0:background", "1:tench, Tinca tinca", ...) with
   synthetic names, 1001 lines, and nothing else (no info.json).
3. TensorFlow: decode_jpeg(channels=3) (default dct_method, as TF-slim),
   preprocessing_factory.get_preprocessing(model, is_training=False) at the model's default
   size, the network, softmax.
4. slimnet-classify --model_name=M --checkpoint_path=<tmp>/<file> --labels_dir=...
   [--labels_offset=1] --top_k=5 on the image folder (and resnet_v1_50 without
   --labels_offset must fail, naming the logits' 1001 vs 1000 shapes).  Its restore report
   (stderr) must say that every variable was restored and no checkpoint tensor was left
   unused; for every image its five classes must be TensorFlow's top five (two classes swapped
   only where TensorFlow's two probabilities are within PRINT_TOL) and each probability
   within PRINT_TOL of TensorFlow's (slimnet prints 4 decimals: 5e-5 rounding plus float
   error).
Prints one line per model; exits non-zero on any mismatch.
"""
import glob
import os
import re
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np  # noqa: E402

# (model, num_classes of the net, labels_offset, checkpoint file, format): the published
# 2016 checkpoints are single V1 files, mobilenet_v2's (2018) a V2 bundle.
CASES = [("inception_v3", 1001, 0, "inception_v3.ckpt", "V1"),
         ("resnet_v1_50", 1000, 1, "resnet_v1_50.ckpt", "V1"),
         ("mobilenet_v2", 1001, 0, "mobilenet_v2_1.0_224.ckpt", "V2"),
         ("mobilenet_v3_large", 1001, 0, "model-540000", "V2")]
NUM_LABELS = 1001                 # TF-slim's imagenet: background + 1000
TOP_K = 5
PRINT_TOL = 1e-4                  # probabilities are printed with 4 decimals
LOGIT_STD = 3.0                   # the logits' spread over the classes (see tensorflow_side)
IMAGES = [("a_500x375", 375, 500, 3), ("b_300x450", 450, 300, 3), ("c_640x480", 480, 640, 3),
          ("d_128x128", 128, 128, 3), ("e_260x200_gray", 200, 260, 1)]


def run(args):
    p = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        sys.exit("check_pretrained: %s failed (%d):\n%s%s" % (" ".join(args), p.returncode,
                                                             p.stdout, p.stderr))
    return p.stdout, p.stderr


def label_name(i):
    """Synthetic imagenet-style names: a common name, then a Latin one after ", "."""
    return "background" if i == 0 else "thing %d, Res synthetica%d" % (i, i)


def write_inputs(tf, img_dir, labels_dir):
    os.makedirs(img_dir)
    os.makedirs(labels_dir)
    with open(os.path.join(labels_dir, "labels.txt"), "w") as f:
        for i in range(NUM_LABELS):
            f.write("%d:%s\n" % (i, label_name(i)))
    rs = np.random.RandomState(20240612)
    g = tf.Graph()
    with g.as_default():
        coarse = tf.placeholder(tf.float32, [1, None, None, None])
        noise = tf.placeholder(tf.float32, [None, None, None])
        size = tf.placeholder(tf.int32, [2])
        field = tf.image.resize_bicubic(coarse, size)[0] + noise
        enc = tf.io.encode_jpeg(tf.cast(tf.clip_by_value(tf.round(field), 0, 255), tf.uint8),
                                quality=90)
        with tf.Session() as sess:
            for name, h, w, c in IMAGES:
                # a few blobs of color over the whole image, then pixel noise
                cz = 128 + 90 * rs.uniform(-1, 1, (1, 5, 6, c))
                data = sess.run(enc, {coarse: cz, size: [h, w],
                                      noise: rs.normal(0, 12, (h, w, c))})
                with open(os.path.join(img_dir, name + ".jpg"), "wb") as f:
                    f.write(data)


def tensorflow_side(tf, slim, importlib, zoo, pf, model, classes, ckpt, fmt, img_dir):
    """Writes the checkpoint; returns (number of variables, {path: softmax})."""
    entry = [e for e in zoo.MODELS if e[0] == model][0]
    _, module, fn_name, scope_name, _, _ = entry
    mod = importlib.import_module(module)
    fn, arg_scope_fn = getattr(mod, fn_name), getattr(mod, scope_name)
    size = fn.default_image_size
    g = tf.Graph()
    with g.as_default():
        data = tf.placeholder(tf.string, [])
        image = tf.image.decode_jpeg(data, channels=3)
        image = pf.get_preprocessing(model, is_training=False)(image, size, size)
        with slim.arg_scope(arg_scope_fn(weight_decay=0.0)):   # nets_factory.get_network_fn
            logits, end_points = fn(image[None], num_classes=classes, is_training=False)
        prob = tf.nn.softmax(logits)[0]
        variables = tf.global_variables()
        if {v.op.name for v in variables} != {v.op.name for v in slim.get_model_variables()}:
            sys.exit("check_pretrained: %s has variables that are not model variables" % model)
        if model == "inception_v3" and not any("AuxLogits" in v.op.name for v in variables):
            sys.exit("check_pretrained: inception_v3 built without its AuxLogits")
        assigns, feed, head = [], {}, {}
        for v in variables:
            shape = v.get_shape().as_list()
            ph = tf.placeholder(tf.float32, shape)
            assigns.append(v.assign(ph))
            feed[ph] = zoo.fill(v.op.name, shape)
            if shape[-1] == classes and "AuxLogits" not in v.op.name:
                head[v.op.name] = (v.assign(ph), ph, feed[ph])   # the logits layer
        if len(head) != 2:
            sys.exit("check_pretrained: %s: logits layer not found (%s)" % (model, list(head)))
        saver = tf.train.Saver(slim.get_model_variables(),
                               write_version=getattr(tf.train.SaverDef, fmt))
        cfg = tf.ConfigProto(intra_op_parallelism_threads=2, inter_op_parallelism_threads=1)
        paths = [os.path.join(img_dir, n) for n in sorted(os.listdir(img_dir))]
        blobs = [open(p, "rb").read() for p in paths]
        with tf.Session(config=cfg) as sess:
            sess.run(assigns, feed)
            del feed
            # A trained net's softmax is neither flat nor saturated: the logits layer (weights
            # and biases, so the logits scale exactly) is rescaled to logits of standard
            # deviation LOGIT_STD over the classes, on average over the images.
            std = np.mean([sess.run(logits, {data: b}).std() for b in blobs])
            sess.run([a for a, _, _ in head.values()],
                     {ph: val * np.float32(LOGIT_STD / std) for _, ph, val in head.values()})
            saver.save(sess, ckpt, write_meta_graph=False, write_state=False)
            probs = {p: sess.run(prob, {data: b}).astype(np.float64)
                     for p, b in zip(paths, blobs)}
    return len(variables), probs


def parse_classify(out, img_dir, id_of):
    """{path: [(label id, probability)]} from slimnet-classify's stdout: "name (id) p, ..."
    (the id must be the one labels.txt gives the name)."""
    res = {}
    for line in out.splitlines():
        path, sep, rest = line.partition(": ")
        if not sep or not path.startswith(img_dir + "/"):
            continue
        items = re.findall(r"(.+?) \((\d+)\) (\d+\.\d{4})(?:, |$)", rest)
        if ", ".join("%s (%s) %s" % it for it in items) != rest:
            sys.exit("check_pretrained: cannot parse slimnet-classify's line %r" % line)
        for name, i, _ in items:
            if id_of.get(name, int(i)) != int(i):
                sys.exit("check_pretrained: %r printed with id %s, labels.txt gives %d"
                         % (name, i, id_of[name]))
        res[path] = [(int(i), float(p)) for _, i, p in items]
    return res


def compare(model, offset, tf_probs, ours, nvars, report):
    """Returns (failures, summary line)."""
    failures = []
    m = re.search(r"restored (\d+) variables from (\S+) \(excluded (\d+), missing (\d+), "
                  r"unused checkpoint tensors (\d+), mismatched (\d+)\)", report)
    if not m:
        failures.append("%s: no restore report in slimnet-classify's stderr:\n%s"
                        % (model, report))
    elif (int(m.group(1)), m.group(3), m.group(4), m.group(5), m.group(6)) != \
            (nvars, "0", "0", "0", "0"):
        failures.append("%s: restore report %r, expected all %d variables restored and no "
                        "checkpoint tensor unused" % (model, m.group(0), nvars))
    worst, swaps, top1, digits, entries = 0.0, 0, [], 0, 0
    for path, p in sorted(tf_probs.items()):
        got = ours.get(path)
        if got is None or len(got) != TOP_K:
            failures.append("%s: %s: slimnet-classify printed %r" % (model, path, got))
            continue
        want = [int(i) + offset for i in np.argsort(-p, kind="stable")[:TOP_K]]
        top1.append(p.max())
        for j, (label, prob) in enumerate(got):
            cls = label - offset
            if not 0 <= cls < len(p):
                failures.append("%s: %s: label %d out of range" % (model, path, label))
                continue
            worst = max(worst, abs(prob - p[cls]))
            entries += 1
            digits += "%.4f" % prob == "%.4f" % p[cls]
            if abs(prob - p[cls]) > PRINT_TOL:
                failures.append("%s: %s: %s: slimnet %.4f, TensorFlow %.6f"
                                % (model, path, label_name(label), prob, p[cls]))
            if label != want[j]:
                if abs(p[cls] - p[want[j] - offset]) <= PRINT_TOL:
                    swaps += 1
                else:
                    failures.append("%s: %s: rank %d is %s (TF %.6f), TensorFlow's is %s "
                                    "(%.6f)" % (model, path, j + 1, label_name(label), p[cls],
                                                label_name(want[j]), p[want[j] - offset]))
    line = ("%-13s %d variables restored, %d images: top-%d identical%s; probabilities: "
            "max |diff| %.1e, %d/%d printed as TF's rounded to 4 decimals; TF top-1 %.3f..%.3f"
            % (model, nvars, len(tf_probs), TOP_K,
               " (%d swaps of classes within %.0e)" % (swaps, PRINT_TOL) if swaps else "",
               worst, digits, entries, min(top1 or [0]), max(top1 or [0])))
    return failures, line


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    bin_dir = os.path.abspath(sys.argv[1])
    t0 = time.time()
    import importlib
    import make_zoo_fixtures as zoo
    import make_preprocess_fixtures as mpf
    sys.path.insert(0, zoo.fetch_slim_src())
    sys.path.insert(0, mpf.fetch_preprocessing(None))
    import tensorflow.compat.v1 as tf
    import tf_slim as slim
    from preprocessing import preprocessing_factory as pf
    tf.disable_eager_execution()
    tf.logging.set_verbosity(tf.logging.ERROR)
    id_of = {label_name(i): i for i in range(NUM_LABELS)}
    failures = []
    with tempfile.TemporaryDirectory(prefix="slimnet-pretrained-") as tmp:
        img_dir, labels_dir = os.path.join(tmp, "images"), os.path.join(tmp, "labels")
        write_inputs(tf, img_dir, labels_dir)
        for model, classes, offset, ckpt_name, fmt in CASES:
            ckpt = os.path.join(tmp, ckpt_name)
            nvars, tf_probs = tensorflow_side(tf, slim, importlib, zoo, pf, model, classes,
                                              ckpt, fmt, img_dir)
            args = [os.path.join(bin_dir, "slimnet-classify"), "--model_name=" + model,
                    "--checkpoint_path=" + ckpt, "--labels_dir=" + labels_dir,
                    "--top_k=%d" % TOP_K, "--device=cpu", "--threads=2"]
            out, err = run(args + ["--labels_offset=%d" % offset, img_dir])
            if offset:
                # Forgetting --labels_offset must fail loudly, not shift every class name.
                p = subprocess.run(args + [os.path.join(img_dir, IMAGES[0][0] + ".jpg")],
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                shapes = r"net \[([\d,]*,)?%d\] float32, checkpoint \[([\d,]*,)?%d\]" % (
                    classes + offset, classes)
                if p.returncode != 1 or not re.search(shapes, p.stdout):
                    failures.append("%s without --labels_offset: exit %d, %r"
                                    % (model, p.returncode, p.stdout))
            f, line = compare(model, offset, tf_probs, parse_classify(out, img_dir, id_of),
                              nvars, err)
            failures += f
            print(line.replace(" variables", " variables (%s)" % fmt, 1), flush=True)
            for path in glob.glob(ckpt + "*"):
                os.remove(path)
    if failures:
        for f in failures:
            print("FAIL:", f)
        sys.exit("check_pretrained: %d mismatches between slimnet-classify and TensorFlow"
                 % len(failures))
    print("check_pretrained: OK (%.0f s)" % (time.time() - t0))


if __name__ == "__main__":
    main()
