"""TensorFlow and slimnet-train agree: what slimnet trains loads in TensorFlow and predicts
the same there, and a fine-tune from a TensorFlow checkpoint restores and trains exactly the
variables TF-slim would.

Usage: .venv/bin/python check_train_interop.py BUILD_BIN_DIR   (run by `make parity`)

1. A small class-folder tree of noisy 28x28 gray JPEGs (three classes, weak signal, so the
   accuracy is neither 0 nor 1) -> slimnet-convert --dataset_name=fer.
2. slimnet-train trains TF-slim's lenet a few steps; slimnet-eval prints its accuracy.
3. TensorFlow builds research/slim's lenet (the pinned sdist of make_zoo_fixtures.py) in
   inference mode, restores slimnet's checkpoint with a plain tf.train.Saver over the model
   variables, reads fer_test.tfrecord with its own TFRecordDataset + parse_single_example +
   decode_jpeg, applies lenet preprocessing, and must reach the same accuracy; and
   slimnet-classify's probabilities for every image of the tree must equal TensorFlow's
   softmax within 1e-4 (they are printed with 4 decimals).
4. TensorFlow writes a 10-class lenet checkpoint; slimnet-train fine-tunes a 3-class lenet
   from it with --checkpoint_exclude_scopes=LeNet/fc4 --trainable_scopes=LeNet/fc4.  The
   variables TF-slim's _get_init_fn would restore must hold exactly the TF checkpoint's
   values afterwards (they are frozen), and the variables with optimizer slots must be
   exactly TF-slim's _get_variables_to_train().
5. The vendor's asynchronous cluster (TF_CONFIG: master, two ps tasks, a worker; four
   slimnet-train processes) trains lenet; TensorFlow restores the master's checkpoint into
   the graph train_image_classifier builds (lenet, global_step, MomentumOptimizer's slots)
   with a plain tf.train.Saver over every global variable, and reads the global step the
   master reported.
Exits non-zero on any mismatch.
"""
import json
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

CLASSES = ["cat", "dog", "owl"]
PER_CLASS = 50
SIZE = 28


def run(args):
    p = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if p.returncode != 0:
        sys.exit("check_train_interop: %s failed (%d):\n%s" % (" ".join(args), p.returncode,
                                                              p.stdout))
    return p.stdout


def make_tree(tf, np, root):
    rng = np.random.RandomState(11)
    patterns = [rng.uniform(-1, 1, (SIZE, SIZE)) for _ in CLASSES]
    g = tf.Graph()
    with g.as_default():
        ph = tf.placeholder(tf.uint8, [SIZE, SIZE, 1])
        enc = tf.io.encode_jpeg(ph, quality=95)
        with tf.Session() as sess:
            for c, name in enumerate(CLASSES):
                os.makedirs(os.path.join(root, name))
                for i in range(PER_CLASS):
                    img = 128 + 60 * rng.standard_normal((SIZE, SIZE)) + 50 * patterns[c]
                    img = np.clip(img, 0, 255).astype(np.uint8)[:, :, None]
                    data = sess.run(enc, {ph: img})
                    with open(os.path.join(root, name, "%03d.jpg" % i), "wb") as f:
                        f.write(data)


def lenet_preprocess(tf, image):
    # research/slim preprocessing/lenet_preprocessing.py, preprocess_image
    image = tf.cast(image, tf.float32)
    image = tf.image.resize_with_crop_or_pad(image, SIZE, SIZE)
    image = tf.subtract(image, 128.0)
    return tf.div(image, 128.0)


def free_port():
    import socket
    with socket.socket() as a, socket.socket() as b:
        a.bind(("127.0.0.1", 0))
        port = a.getsockname()[1]
        b.bind(("127.0.0.1", 0))   # (TF_CONFIG names more ports; only ps 0's listens)
        return port


def check_async(tf, slim, lenet, bin_dir, common, tmp):
    port = free_port()
    cluster = {"master": ["127.0.0.1:%d" % (port + 2)],
               "ps": ["127.0.0.1:%d" % port, "127.0.0.1:%d" % (port + 1)],
               "worker": ["127.0.0.1:%d" % (port + 3)]}
    train = os.path.join(tmp, "async")
    args = [os.path.join(bin_dir, "slimnet-train")] + common + [
        "--train_dir", train, "--train_image_size=28", "--batch_size=16",
        "--optimizer=momentum", "--learning_rate=0.003", "--max_number_of_steps=20",
        "--threads=1", "--dist_timeout_secs=60"]
    procs = []
    for kind, index in (("ps", 0), ("ps", 1), ("worker", 0), ("master", 0)):
        env = dict(os.environ, TF_CONFIG=json.dumps(
            {"cluster": cluster, "task": {"type": kind, "index": index}}))
        procs.append(subprocess.Popen(args, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True))
    outs = [p.communicate(timeout=300)[0] for p in procs]
    if any(p.returncode for p in procs):
        return ["async job: exit codes %s:\n%s" % ([p.returncode for p in procs],
                                                     "\n".join(outs))]
    m = re.search(r"finished at global step (\d+)", outs[3])
    g = tf.Graph()
    with g.as_default():
        x = tf.placeholder(tf.float32, [16, SIZE, SIZE, 3])
        y = tf.placeholder(tf.int64, [16])
        step = tf.train.get_or_create_global_step()
        with slim.arg_scope(lenet.lenet_arg_scope()):
            logits, _ = lenet.lenet(x, num_classes=len(CLASSES), is_training=True)
        loss = tf.losses.sparse_softmax_cross_entropy(y, logits)
        tf.train.MomentumOptimizer(0.003, 0.9).minimize(loss, global_step=step)
        names = sorted(v.op.name for v in tf.global_variables())
        with tf.Session() as sess:
            tf.train.Saver().restore(sess, tf.train.latest_checkpoint(train))
            got = int(sess.run(step))
    print("asynchronous job (master, 2 ps, worker): TensorFlow restored all %d variables "
          "(%s) of the master's checkpoint; global step %d" % (len(names), ", ".join(names),
                                                               got))
    if not m or got != int(m.group(1)):
        return ["async checkpoint: global step %d, the master said %s"
                % (got, m.group(1) if m else "?")]
    return []


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    bin_dir = os.path.abspath(sys.argv[1])
    import numpy as np
    import make_zoo_fixtures as zoo
    sys.path.insert(0, zoo.fetch_slim_src())
    import tensorflow.compat.v1 as tf
    import tf_slim as slim
    from nets import lenet
    tf.disable_eager_execution()
    failures = []

    with tempfile.TemporaryDirectory(prefix="slimnet-train-interop-") as tmp:
        tree, data, train = (os.path.join(tmp, d) for d in ("pics", "data", "train"))
        make_tree(tf, np, tree)
        run([os.path.join(bin_dir, "slimnet-convert"), "--dataset_name=fer", "--pic_path",
             tree, "--dataset_dir", data, "--seed=1"])
        common = ["--dataset_name=fer", "--dataset_dir", data, "--model_name=lenet",
                  "--device=cpu", "--threads=2"]
        run([os.path.join(bin_dir, "slimnet-train")] + common +
            ["--train_dir", train, "--train_image_size=28", "--batch_size=16",
             "--optimizer=momentum", "--learning_rate=0.003", "--max_number_of_steps=12",
             "--seed=2"])
        out = run([os.path.join(bin_dir, "slimnet-eval")] + common +
                  ["--checkpoint_path", train, "--eval_dir", train, "--eval_image_size=28",
                   "--batch_size=32"])
        acc_sn = float(re.search(r"eval/Accuracy\[([0-9.]+)\]", out).group(1))
        ckpt = tf.train.latest_checkpoint(train)

        # 3. TensorFlow evaluates slimnet's checkpoint on the TFRecords slimnet wrote.
        g = tf.Graph()
        with g.as_default():
            ds = tf.data.TFRecordDataset(os.path.join(data, "fer_test.tfrecord"))
            feats = {"image/encoded": tf.FixedLenFeature((), tf.string),
                     "image/format": tf.FixedLenFeature((), tf.string, default_value="jpg"),
                     "image/class/label": tf.FixedLenFeature((), tf.int64)}

            def parse(rec):
                f = tf.parse_single_example(rec, feats)
                img = tf.image.decode_jpeg(f["image/encoded"], channels=3)
                return lenet_preprocess(tf, img), f["image/class/label"]

            images, labels = tf.data.make_one_shot_iterator(
                ds.map(parse).batch(1000)).get_next()
            with slim.arg_scope(lenet.lenet_arg_scope()):
                logits, _ = lenet.lenet(images, num_classes=len(CLASSES), is_training=False)
            saver = tf.train.Saver(slim.get_model_variables())
            with tf.Session() as sess:
                saver.restore(sess, ckpt)
                lg, lb = sess.run([logits, labels])
        acc_tf = float(np.mean(np.argmax(lg, 1) == lb))
        print("accuracy: slimnet-eval %.6f, TensorFlow on slimnet's checkpoint %.6f (%d images)"
              % (acc_sn, acc_tf, len(lb)))
        if abs(acc_sn - acc_tf) > 1e-6:
            failures.append("accuracy differs: slimnet %.6f, TensorFlow %.6f" % (acc_sn, acc_tf))
        if not 0.0 < acc_tf < 1.0:
            print("note: accuracy %.3f is at an extreme; the comparison is weaker" % acc_tf)

        # slimnet-classify on every image vs TensorFlow's softmax on the same files.
        out = run([os.path.join(bin_dir, "slimnet-classify"), "--model_name=lenet",
                   "--checkpoint_path", train, "--eval_image_size=28", "--top_k=3",
                   "--output_format=json", "--device=cpu", tree + "/" + CLASSES[0],
                   tree + "/" + CLASSES[1], tree + "/" + CLASSES[2]])
        ours = {}
        for line in out.splitlines():
            if not line.startswith("{"):
                continue   # the restore report (stderr)
            rec = json.loads(line)
            probs = {}
            for pred in rec["predictions"]:
                if CLASSES[pred["id"]] != pred["label"]:
                    sys.exit("check_train_interop: class %d printed as %r" % (pred["id"],
                                                                            pred["label"]))
                probs[pred["label"]] = pred["probability"]
            ours[rec["image"]] = probs
        paths = sorted(ours)
        g = tf.Graph()
        with g.as_default():
            ph = tf.placeholder(tf.string, [])
            img = lenet_preprocess(tf, tf.image.decode_jpeg(ph, channels=3))[None]
            with slim.arg_scope(lenet.lenet_arg_scope()):
                logits, _ = lenet.lenet(img, num_classes=len(CLASSES), is_training=False)
            prob = tf.nn.softmax(logits)
            saver = tf.train.Saver(slim.get_model_variables())
            with tf.Session() as sess:
                saver.restore(sess, ckpt)
                worst = 0.0
                for path in paths:
                    with open(path, "rb") as f:
                        p = sess.run(prob, {ph: f.read()})[0]
                    for c, name in enumerate(CLASSES):
                        worst = max(worst, abs(ours[path][name] - p[c]))
        print("slimnet-classify vs TensorFlow softmax: %d images, max |diff| %.2e"
              % (len(paths), worst))
        if len(paths) != len(CLASSES) * PER_CLASS or worst > 1e-4:
            failures.append("classify: %d images, max diff %.2e" % (len(paths), worst))

        # 4. Fine-tuning from a TensorFlow checkpoint.
        tf_dir = os.path.join(tmp, "tf_ckpt")
        g = tf.Graph()
        with g.as_default():
            x = tf.placeholder(tf.float32, [1, SIZE, SIZE, 3])
            with slim.arg_scope(lenet.lenet_arg_scope()):
                lenet.lenet(x, num_classes=10, is_training=True)
            tf.train.get_or_create_global_step()
            with tf.Session() as sess:
                sess.run(tf.global_variables_initializer())
                tf_prefix = tf.train.Saver().save(sess, os.path.join(tf_dir, "model.ckpt"))
        # What train_image_classifier computes for a 3-class lenet with these flags.
        exclude, trainable = "LeNet/fc4", "LeNet/fc4"
        g = tf.Graph()
        with g.as_default():
            x = tf.placeholder(tf.float32, [1, SIZE, SIZE, 3])
            with slim.arg_scope(lenet.lenet_arg_scope()):
                lenet.lenet(x, num_classes=len(CLASSES), is_training=True)
            exclusions = [s.strip() for s in exclude.split(",")]
            to_restore = [v.op.name for v in slim.get_model_variables()
                          if not any(v.op.name.startswith(e) for e in exclusions)]
            to_train = []
            for scope in [s.strip() for s in trainable.split(",")]:
                to_train += [v.op.name for v in
                             tf.get_collection(tf.GraphKeys.TRAINABLE_VARIABLES, scope)]
        ft = os.path.join(tmp, "finetune")
        out = run([os.path.join(bin_dir, "slimnet-train")] + common +
                  ["--train_dir", ft, "--train_image_size=28", "--batch_size=16",
                   "--optimizer=momentum", "--max_number_of_steps=5",
                   "--checkpoint_path", tf_prefix, "--checkpoint_exclude_scopes", exclude,
                   "--trainable_scopes", trainable])
        m = re.search(r"restored (\d+) variables", out)
        if not m or int(m.group(1)) != len(to_restore):
            failures.append("fine-tune restored %s variables, TF-slim restores %d"
                            % (m.group(1) if m else "?", len(to_restore)))
        ref = tf.train.load_checkpoint(tf_prefix)
        got = tf.train.load_checkpoint(tf.train.latest_checkpoint(ft))
        for name in to_restore:
            if not np.array_equal(ref.get_tensor(name), got.get_tensor(name)):
                failures.append("%s: not the TF checkpoint's value after fine-tuning" % name)
        slotted = sorted(n[:-len("/Momentum")] for n in got.get_variable_to_shape_map()
                         if n.endswith("/Momentum"))
        if slotted != sorted(to_train):
            failures.append("trained variables %s, TF-slim trains %s" % (slotted,
                                                                         sorted(to_train)))
        for name in to_train:
            if got.get_tensor(name).shape == (500, 10):
                failures.append("%s kept the 10-class shape" % name)
        print("fine-tune from a TF checkpoint: restored %d (%s), trained %s"
              % (len(to_restore), ", ".join(to_restore), ", ".join(sorted(to_train))))

        # 5. An asynchronous job's checkpoint (written from the ps tasks' state).
        failures += check_async(tf, slim, lenet, bin_dir, common, tmp)

    if failures:
        for f in failures:
            print("FAIL:", f)
        sys.exit(1)
    print("check_train_interop: OK")


if __name__ == "__main__":
    main()
