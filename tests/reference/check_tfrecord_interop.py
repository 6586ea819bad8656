#!/usr/bin/env python3
"""Reads the TFRecord files slimnet wrote with TensorFlow and TF-slim (make parity).

    tests/reference/.venv/bin/python tests/reference/check_tfrecord_interop.py [MANIFEST]

MANIFEST (default tests/reference/out/tfrecord/slimnet/manifest.json) is written by
slimnet's data_parity suite.  For each TFRecord file (no compression, GZIP, ZLIB):
tf.data.TFRecordDataset with its compression_type reads every record; tf.train.Example
parses it and every feature must have the manifest's kind and values (int64 exactly, floats
bit for bit, bytes byte for byte); tf.io.parse_single_example reads TF-slim's image keys;
the image decodes with tf.io.decode_png to slimnet's source pixels exactly, and with
tf.io.decode_jpeg(dct_method="INTEGER_ACCURATE") to slimnet's own decode exactly.

For the FER folder slimnet-convert's library wrote: info.json and labels.txt as the UAI
fork's fer.py and TF-slim's dataset_utils.read_label_file read them; every record through
TF-slim's own TFExampleDecoder with fer.py's keys and handlers (Image(), Tensor(label)), and
the whole split through slim.dataset.Dataset + DatasetDataProvider (TF-slim's input path,
graph mode).  Each record must be one source image (sha256 of image/encoded), with its
label, and decode to its height and width.  Exits 1 on any mismatch.
"""
import hashlib
import json
import os
import struct
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_slim as slim  # noqa: E402

tf1 = tf.compat.v1
tf.get_logger().setLevel("ERROR")  # the queue-based path prints deprecation notes


def float_bits(x):
    return "%08x" % struct.unpack("<I", struct.pack("<f", x))[0]


def check_example(ex, want, fail, where):
    feats = ex.features.feature
    if set(feats.keys()) != set(want.keys()):
        fail(f"{where}: keys {sorted(feats.keys())} != {sorted(want.keys())}")
        return
    for key, w in want.items():
        f = feats[key]
        kind = f.WhichOneof("kind") or "none"
        if kind != w["kind"]:
            fail(f"{where}: {key} is {kind}, expected {w['kind']}")
        elif "values" in w:
            got = [str(v) for v in f.int64_list.value]
            if got != w["values"]:
                fail(f"{where}: {key} = {got}, expected {w['values']}")
        elif "bits" in w:
            got = [float_bits(v) for v in f.float_list.value]
            if got != w["bits"]:
                fail(f"{where}: {key} bits {got}, expected {w['bits']}")
        elif "hex" in w:
            got = [v.hex() for v in f.bytes_list.value]
            if got != w["hex"]:
                fail(f"{where}: {key} bytes differ")


def check_file(base, entry, fail):
    path = os.path.join(base, entry["path"])
    comp = "" if entry["compression"] == "NONE" else entry["compression"]
    raws = [r.numpy() for r in tf.data.TFRecordDataset(path, compression_type=comp)]
    if len(raws) != len(entry["records"]):
        fail(f"{path}: {len(raws)} records, expected {len(entry['records'])}")
        return 0
    spec = {
        "image/encoded": tf.io.FixedLenFeature((), tf.string),
        "image/format": tf.io.FixedLenFeature((), tf.string),
        "image/class/label": tf.io.FixedLenFeature((), tf.int64),
        "image/height": tf.io.FixedLenFeature((), tf.int64),
        "image/width": tf.io.FixedLenFeature((), tf.int64),
        "extra/int64s": tf.io.VarLenFeature(tf.int64),
    }
    for i, (raw, rec) in enumerate(zip(raws, entry["records"])):
        where = f"{path} record {i}"
        check_example(tf.train.Example.FromString(raw), rec["features"], fail, where)
        img = rec["image"]
        p = tf.io.parse_single_example(raw, spec)
        if (p["image/format"].numpy().decode() != img["format"]
                or int(p["image/class/label"]) != img["label"]
                or int(p["image/height"]) != img["height"]
                or int(p["image/width"]) != img["width"]):
            fail(f"{where}: parse_single_example: TF-slim keys differ")
        ints = [str(v) for v in p["extra/int64s"].values.numpy()]
        if ints != rec["features"]["extra/int64s"]["values"]:
            fail(f"{where}: parse_single_example: extra/int64s differ")
        enc = p["image/encoded"]
        if img["format"] == "png":
            px = tf.io.decode_png(enc, channels=img["channels"]).numpy()
            want = img["source_hex"]
        else:
            px = tf.io.decode_jpeg(enc, channels=img["channels"],
                                   dct_method="INTEGER_ACCURATE").numpy()
            want = img["slimnet_decoded_hex"]
        if list(px.shape) != [img["height"], img["width"], img["channels"]]:
            fail(f"{where}: decoded shape {px.shape}")
        elif px.tobytes().hex() != want:
            ref = np.frombuffer(bytes.fromhex(want), np.uint8).reshape(px.shape)
            diff = np.abs(px.astype(int) - ref.astype(int)).max()
            fail(f"{where}: {img['format']} pixels differ by up to {diff}")
    return len(raws)


def read_label_file(path):
    """TF-slim's datasets/dataset_utils.read_label_file."""
    with open(path) as f:
        lines = filter(None, f.read().split("\n"))
    labels = {}
    for line in lines:
        index = line.index(":")
        labels[int(line[:index])] = line[index + 1:]
    return labels


def fer_decoder():
    """The UAI fork's datasets/fer.py decoder (the flowers.py one, format default 'jpg')."""
    keys_to_features = {
        "image/encoded": tf1.FixedLenFeature((), tf.string, default_value=""),
        "image/format": tf1.FixedLenFeature((), tf.string, default_value="jpg"),
        "image/class/label": tf1.FixedLenFeature(
            [], tf.int64, default_value=tf.zeros([], dtype=tf.int64)),
    }
    items_to_handlers = {
        "image": slim.tfexample_decoder.Image(),
        "label": slim.tfexample_decoder.Tensor("image/class/label"),
    }
    return slim.tfexample_decoder.TFExampleDecoder(keys_to_features, items_to_handlers)


def check_fer(base, fer, fail):
    d = os.path.join(base, fer["dir"])
    with open(os.path.join(d, "info.json")) as f:
        info = json.load(f)  # the fork reads it with json.load
    if (info["num_class"] != fer["num_class"] or info["num_sample_train"] != fer["num_train"]
            or info["num_sample_test"] != fer["num_test"]):
        fail(f"{d}/info.json: {info}")
    labels = read_label_file(os.path.join(d, "labels.txt"))
    if labels != dict(enumerate(fer["class_names"])):
        fail(f"{d}/labels.txt: {labels}")
    sources = {s["sha256"]: s for s in fer["sources"]}
    seen = {}
    counts = {"train": info["num_sample_train"], "test": info["num_sample_test"]}
    for split, n in counts.items():
        pattern = os.path.join(d, f"fer_{split}*.tfrecord")  # the descriptor's pattern
        g = tf.Graph()
        with g.as_default():
            serialized = tf1.placeholder(tf.string, [])
            image, label = fer_decoder().decode(serialized, ["image", "label"])
            # TF-slim's own input path over the split: Dataset + DatasetDataProvider.
            dataset = slim.dataset.Dataset(
                data_sources=pattern, reader=tf1.TFRecordReader, decoder=fer_decoder(),
                num_samples=n, items_to_descriptions={}, num_classes=info["num_class"] + 1,
                labels_to_names=labels)
            provider = slim.dataset_data_provider.DatasetDataProvider(
                dataset, num_readers=1, shuffle=False, num_epochs=1)
            p_image, p_label = provider.get(["image", "label"])
            with tf1.Session(graph=g) as sess:
                sess.run([tf1.global_variables_initializer(), tf1.local_variables_initializer()])
                files = sorted(tf1.gfile.Glob(pattern))
                if not files:
                    fail(f"{pattern}: no files")
                raws = [raw for fn in files for raw in tf1.io.tf_record_iterator(fn)]
                want_labels = []
                for raw in raws:
                    ex = tf.train.Example.FromString(raw)
                    enc = ex.features.feature["image/encoded"].bytes_list.value[0]
                    sha = hashlib.sha256(enc).hexdigest()
                    src = sources.get(sha)
                    if src is None:
                        fail(f"{pattern}: a record matches no source image")
                        continue
                    seen[sha] = seen.get(sha, 0) + 1
                    want_labels.append(src["label"])
                    img, lab = sess.run([image, label], {serialized: raw})
                    fmt = ex.features.feature["image/format"].bytes_list.value[0].decode()
                    if (lab != src["label"] or img.shape != (src["height"], src["width"], 3)
                            or fmt != src["format"]):
                        fail(f"{pattern}: TFExampleDecoder gives label {lab}, shape "
                             f"{img.shape}, format {fmt}; expected {src}")
                coord = tf1.train.Coordinator()
                threads = tf1.train.start_queue_runners(sess, coord)
                got = []
                try:
                    while True:
                        img, lab = sess.run([p_image, p_label])
                        got.append((img.shape, int(lab)))
                except tf.errors.OutOfRangeError:
                    pass
                coord.request_stop()
                coord.join(threads)
        if sorted(lab for _, lab in got) != sorted(want_labels):
            fail(f"{pattern}: DatasetDataProvider labels differ from the sources'")
        if len(got) != n:
            fail(f"{pattern}: DatasetDataProvider read {len(got)} records, info.json says {n}")
        shapes = sorted((s["height"], s["width"], 3) for s in sources.values())
        if not set(shp for shp, _ in got) <= set(shapes):
            fail(f"{pattern}: DatasetDataProvider image shapes {sorted(got)} not sources'")
    if sorted(seen) != sorted(sources) or any(v != 1 for v in seen.values()):
        fail(f"{d}: records and source images do not match one to one "
             f"({len(seen)} of {len(sources)})")
    return sum(counts.values())


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "out", "tfrecord",
                                                              "slimnet", "manifest.json")
    base = os.path.dirname(path)
    with open(path) as f:
        manifest = json.load(f)
    errors = []
    fail = errors.append
    total = 0
    for entry in manifest["files"]:
        n_before = len(errors)
        try:
            total += check_file(base, entry, fail)
        except Exception as e:  # a file TF cannot read is a failure, not a crash
            fail(f"{entry['path']}: {type(e).__name__}: {e}")
        print(f"{'ok  ' if len(errors) == n_before else 'FAIL'} {entry['compression']:4} "
              f"{entry['path']} ({len(entry['records'])} records)")
    if "fer" in manifest:
        n_before = len(errors)
        try:
            n = check_fer(base, manifest["fer"], fail)
        except Exception as e:
            fail(f"fer: {type(e).__name__}: {e}")
            n = 0
        print(f"{'ok  ' if len(errors) == n_before else 'FAIL'} fer conversion ({n} records, "
              f"TF-slim TFExampleDecoder + DatasetDataProvider)")
    for e in errors:
        print("FAIL", e)
    print(f"check_tfrecord_interop: {total} records in {len(manifest['files'])} files, "
          f"{len(errors)} failures")
    return 1 if errors or not total else 0


if __name__ == "__main__":
    sys.exit(main())
