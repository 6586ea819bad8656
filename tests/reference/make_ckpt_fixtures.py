#!/usr/bin/env python3
"""Writes TensorFlow checkpoints for slimnet's checkpoint tests (make parity).

Run with the pinned virtualenv (tests/reference/setup.sh):
    tests/reference/.venv/bin/python tests/reference/make_ckpt_fixtures.py [--out DIR]

Output, under DIR (default tests/reference/out/ckpt, git-ignored):
    v2_all/       V2 bundle with every dtype TF variables take here, scalars, a 4 MiB tensor,
                  a partitioned variable (fixed_size_partitioner), a string tensor
    v2_plain/     V2 bundle of float32/int32/int64/uint8 only (slimnet rewrites it and
                  compares the files byte for byte)
    v1_all/       V1 file (Saver write_version=V1) with the same tensors V1 can hold
    v1_sharded/   V1 save sharded over two devices: model.ckpt-7-0000K-of-00002
    manifest.json every tensor: name, dtype, shape, sha256 of its little-endian row-major
                  bytes (strings: the hex of each element), and each checkpoint's prefix

TensorFlow 2.12 cannot write snappy-compressed tables: TensorSliceWriter and BundleWriter
both set kNoCompression explicitly, and no Python API exposes the table writer.  slimnet's
own tests craft snappy tables, and check_slimnet_ckpt.py proves TensorFlow reads them.
"""
import argparse
import hashlib
import json
import os
import shutil
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

tf1 = tf.compat.v1


def values(seed):
    """name -> numpy value, deterministic.  Names are created out of sorted order on
    purpose: TensorFlow sorts them when it writes."""
    rs = np.random.RandomState(seed)
    v = {}
    v["net/conv1/weights"] = rs.standard_normal((3, 3, 4, 8)).astype(np.float32)
    v["net/conv1/biases"] = rs.standard_normal((8,)).astype(np.float32)
    v["net/BatchNorm/moving_variance"] = rs.uniform(0.5, 2, (8,)).astype(np.float32)
    v["big/embedding"] = rs.standard_normal((1024, 1024)).astype(np.float32)  # 4 MiB
    v["counts"] = rs.randint(-2**31, 2**31 - 1, (5,), dtype=np.int64).astype(np.int32)
    v["global_step"] = np.array(7, dtype=np.int64)
    v["ids"] = rs.randint(-2**62, 2**62, (2, 3), dtype=np.int64)
    v["pixels"] = rs.randint(0, 256, (4, 4, 3)).astype(np.uint8)
    v["scalar_f"] = np.array(-0.0, dtype=np.float32)
    v["empty"] = np.zeros((0, 3), dtype=np.float32)
    v["a/b/c/deep-name.x"] = rs.standard_normal((2, 1, 1, 2, 1)).astype(np.float32)
    return v


def extra_values(seed):
    """Dtypes slimnet tensors do not have: read as raw bytes."""
    rs = np.random.RandomState(seed)
    return {
        "x/float64": rs.standard_normal((3, 2)),
        "x/bool": rs.randint(0, 2, (5,)).astype(bool),
        "x/int16": rs.randint(-30000, 30000, (4,)).astype(np.int16),
        "x/int8": rs.randint(-128, 128, (6,)).astype(np.int8),
        "x/float16": rs.standard_normal((3,)).astype(np.float16),
    }


def raw_bytes(a):
    a = np.ascontiguousarray(a)
    if a.dtype.byteorder == ">":
        a = a.astype(a.dtype.newbyteorder("<"))
    return a.tobytes()


def describe(name, value, tf_dtype):
    d = {"name": name, "dtype": tf_dtype.name, "shape": list(np.shape(value))}
    if tf_dtype == tf.string:
        flat = np.asarray(value, dtype=object).reshape(-1)
        d["strings_hex"] = [bytes(s).hex() for s in flat]
    else:
        b = raw_bytes(value)
        d["nbytes"] = len(b)
        d["sha256"] = hashlib.sha256(b).hexdigest()
    return d


def save(outdir, name, tensors, version, partitioned=None, strings=None, shard_devices=None,
         bf16=None):
    """Creates variables holding `tensors` and saves them with tf.compat.v1.train.Saver.

    partitioned: name -> (value, num_shards) saved as a partitioned variable.
    strings: name -> numpy object array of bytes.  bf16: name -> float32 value stored as
    bfloat16.  shard_devices: a list of devices; variables go round-robin and the save is
    sharded (one file per device)."""
    d = os.path.join(outdir, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    manifest = []
    g = tf.Graph()
    config = tf1.ConfigProto(device_count={"CPU": len(shard_devices) if shard_devices else 1})
    with g.as_default():
        assigns = []
        var_list = []
        for i, (n, val) in enumerate(tensors.items()):
            dev = shard_devices[i % len(shard_devices)] if shard_devices else "/cpu:0"
            with tf1.device(dev):
                v = tf1.Variable(val, name=n, use_resource=False)
            var_list.append(v)
            manifest.append(describe(n, val, v.dtype.base_dtype))
        for n, val in (strings or {}).items():
            v = tf1.Variable(val, name=n, dtype=tf.string, use_resource=False)
            var_list.append(v)
            manifest.append(describe(n, val, tf.string))
        for n, val in (bf16 or {}).items():
            v = tf1.Variable(tf.cast(tf.constant(val), tf.bfloat16), name=n, use_resource=False)
            var_list.append(v)
            bits = (val.view(np.uint32) >> 16).astype(np.uint16)   # exact when val is bf16
            manifest.append({"name": n, "dtype": "bfloat16", "shape": list(val.shape),
                             "nbytes": bits.nbytes,
                             "sha256": hashlib.sha256(raw_bytes(bits)).hexdigest()})
        for n, (val, k) in (partitioned or {}).items():
            pv = tf1.get_variable(n, shape=val.shape, dtype=tf.float32,
                                  initializer=tf1.zeros_initializer(),
                                  partitioner=tf1.fixed_size_partitioner(k), use_resource=False)
            for part in pv:
                off = part._save_slice_info.var_offset
                sl = tuple(slice(o, o + s) for o, s in zip(off, part.shape.as_list()))
                assigns.append(tf1.assign(part, val[sl]))
            var_list.append(pv)
            manifest.append(describe(n, val, tf.float32))
        saver = tf1.train.Saver(var_list, write_version=version,
                                sharded=bool(shard_devices))
        with tf1.Session(graph=g, config=config) as sess:
            sess.run(tf1.global_variables_initializer())
            sess.run(assigns)
            prefix = saver.save(sess, os.path.join(d, "model.ckpt"), global_step=7)
    check(prefix, manifest)
    ver = 2 if version == tf1.train.SaverDef.V2 else 1
    return {"dir": name, "prefix": os.path.relpath(prefix, outdir), "version": ver,
            "tensors": sorted(manifest, key=lambda t: t["name"].encode())}


def check(prefix, manifest):
    """Reads the checkpoint back with TensorFlow: the fixture is what the manifest says."""
    r = tf.train.load_checkpoint(prefix)
    shapes = r.get_variable_to_shape_map()
    for t in manifest:
        assert t["name"] in shapes, (prefix, t["name"])
        try:
            v = r.get_tensor(t["name"])
        except tf.errors.UnimplementedError:
            # TF's V1 reader (TensorSliceReader::GetTensor) refuses float16 and partitioned
            # tensors; the values are still the ones assigned above.
            assert prefix.endswith("-7") and "dtype" in t and not os.path.exists(
                prefix + ".index"), (prefix, t["name"])
            t["tf_reads_back"] = False
            continue
        if isinstance(v, bytes):   # a string scalar comes back as bytes
            v = np.array(v, dtype=object)
        assert list(v.shape) == t["shape"], (prefix, t["name"], v.shape)
        if "sha256" in t:
            b = raw_bytes(v.view(np.uint16) if t["dtype"] == "bfloat16" else v)
            assert hashlib.sha256(b).hexdigest() == t["sha256"], (prefix, t["name"])
        else:
            got = [bytes(s).hex() for s in np.asarray(v, dtype=object).reshape(-1)]
            assert got == t["strings_hex"], (prefix, t["name"])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(here, "out", "ckpt"))
    args = ap.parse_args()
    tf1.disable_eager_execution()
    os.makedirs(args.out, exist_ok=True)
    V1, V2 = tf1.train.SaverDef.V1, tf1.train.SaverDef.V2
    rs = np.random.RandomState(3)
    part = {"part/emb": (rs.standard_normal((10, 6)).astype(np.float32), 3),
            "part/col": (rs.standard_normal((4, 9)).astype(np.float32).T.copy(), 2)}
    strings = {"s/names": np.array([b"ab", b"", b"\x00\xff\x80", b"x" * 300], dtype=object),
               "s/scalar": np.array(b"hello", dtype=object)}
    bf16 = {"x/bfloat16": (np.array([1.0, -2.5, 3.140625, 0.0], dtype=np.float32))}
    base, extra = values(1), extra_values(2)
    ckpts = [
        save(args.out, "v2_all", {**base, **extra}, V2, part, strings, bf16=bf16),
        save(args.out, "v2_plain", values(4), V2),
        save(args.out, "v1_all", {**base, **extra}, V1, part, strings),
        save(args.out, "v1_sharded", values(5), V1, shard_devices=["/cpu:0", "/cpu:1"]),
    ]
    out = {"tensorflow": tf.__version__, "checkpoints": ckpts}
    tmp = os.path.join(args.out, "manifest.json.tmp")
    with open(tmp, "w") as f:
        json.dump(out, f, indent=1)
    os.replace(tmp, os.path.join(args.out, "manifest.json"))
    n = sum(len(c["tensors"]) for c in ckpts)
    print(f"make_ckpt_fixtures: {len(ckpts)} checkpoints, {n} tensors in {args.out}")


if __name__ == "__main__":
    sys.exit(main())
