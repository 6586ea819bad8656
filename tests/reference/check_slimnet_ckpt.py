#!/usr/bin/env python3
"""Loads the checkpoints slimnet wrote with TensorFlow and checks every tensor (make parity).

    tests/reference/.venv/bin/python tests/reference/check_slimnet_ckpt.py [MANIFEST]

MANIFEST (default tests/reference/out/slimnet/manifest.json) is written by slimnet's
ckpt_parity suite: for each checkpoint its prefix (V2) or file (V1), its folder when it has
a `checkpoint` state file, and every tensor's name, dtype, shape and the sha256 of its
little-endian row-major bytes.  Each checkpoint is loaded twice: with
tf.train.load_checkpoint (the reader behind tf.train.list_variables), and by restoring
fresh variables with tf.compat.v1.train.Saver (the RestoreV2 op training uses).  A folder
must resolve to the same prefix through tf.train.latest_checkpoint.
"""
import hashlib
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

tf1 = tf.compat.v1


def sha(v):
    a = np.ascontiguousarray(v)
    if a.dtype.byteorder == ">":
        a = a.astype(a.dtype.newbyteorder("<"))
    return hashlib.sha256(a.tobytes()).hexdigest()


def check_reader(c, fail):
    r = tf.train.load_checkpoint(c["prefix"])
    shapes, dtypes = r.get_variable_to_shape_map(), r.get_variable_to_dtype_map()
    want = {t["name"] for t in c["tensors"]}
    if set(shapes) != want:
        fail(f"{c['prefix']}: tensors {sorted(set(shapes) ^ want)} differ from the manifest")
    for t in c["tensors"]:
        n = t["name"]
        if n not in shapes:
            continue
        if dtypes[n].name != t["dtype"] or list(shapes[n]) != t["shape"]:
            fail(f"{c['prefix']}: {n} is {dtypes[n].name} {shapes[n]}, expected "
                 f"{t['dtype']} {t['shape']}")
        elif sha(r.get_tensor(n)) != t["sha256"]:
            fail(f"{c['prefix']}: {n}: values differ")


def check_restore(c, fail):
    g = tf.Graph()
    with g.as_default():
        variables = {t["name"]: tf1.Variable(tf.zeros(t["shape"], t["dtype"]), use_resource=False)
                     for t in c["tensors"]}
        saver = tf1.train.Saver(variables)
        with tf1.Session(graph=g) as sess:
            saver.restore(sess, c["prefix"])
            values = sess.run(variables)
    for t in c["tensors"]:
        if sha(values[t["name"]]) != t["sha256"]:
            fail(f"{c['prefix']}: Saver.restore: {t['name']}: values differ")


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "out", "slimnet",
                                                              "manifest.json")
    with open(path) as f:
        manifest = json.load(f)
    passed = failed = 0
    for c in manifest["checkpoints"]:
        errors = []
        try:
            check_reader(c, errors.append)
            check_restore(c, errors.append)
            if "dir" in c:
                latest = tf.train.latest_checkpoint(c["dir"])
                if latest != c["prefix"]:
                    errors.append(f"{c['dir']}: latest_checkpoint is {latest}")
        except Exception as e:  # a checkpoint TF cannot read is a failure, not a crash
            errors.append(f"{c['prefix']}: {type(e).__name__}: {e}")
        for e in errors:
            print("FAIL", e)
        ok = not errors
        passed += ok
        failed += not ok
        print(f"{'ok  ' if ok else 'FAIL'} V{c['version']} {c['prefix']} "
              f"({len(c['tensors'])} tensors)")
    print(f"check_slimnet_ckpt: {passed} passed, {failed} failed")
    return 1 if failed or not passed else 0


if __name__ == "__main__":
    sys.exit(main())
