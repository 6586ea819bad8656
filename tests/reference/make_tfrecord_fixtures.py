#!/usr/bin/env python3
"""Writes TFRecord files of tf.train.Examples with TensorFlow, for slimnet's data_parity suite
(make parity).

    tests/reference/.venv/bin/python tests/reference/make_tfrecord_fixtures.py [--out DIR]

Output, under DIR (default tests/reference/out/tfrecord, git-ignored):
    none.tfrecord       tf.io.TFRecordWriter, no compression
    gzip.tfrecord.gz    the same records, TFRecordOptions(compression_type="GZIP")
    zlib.tfrecord.zz    the same records, "ZLIB"
    empty.tfrecord      a file with no records
    manifest.json       for every file its compression and records; for every record every
                        feature: kind, values (int64 as decimal strings, floats as the hex
                        of their IEEE bits, bytes as hex or, for images, sha256 + length),
                        and for the image the pixels TensorFlow decodes as hex, with
                        channels 0 and 3: "decoded" (tf.io.decode_image, TF's default
                        JPEG IDCT, INTEGER_FAST) and "decoded_accurate" (decode_jpeg with
                        dct_method="INTEGER_ACCURATE").

Each record has TF-slim's image keys (datasets/dataset_utils.py image_to_tfexample:
image/encoded from tf.io.encode_jpeg / encode_png, image/format, image/class/label,
image/height, image/width) plus lists slimnet must read exactly: floats with -0.0, inf,
subnormals and NaN; int64 at both ends of the range; several bytes values with NULs and an
empty one; an empty float list; a Feature with no list set.
"""
import argparse
import hashlib
import json
import os
import shutil
import struct

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

FILES = [("none.tfrecord", "NONE"), ("gzip.tfrecord.gz", "GZIP"), ("zlib.tfrecord.zz", "ZLIB")]


def float_hex(x):
    return "%08x" % struct.unpack("<I", struct.pack("<f", x))[0]


def images(rs):
    """(pixels, codec, quality) of each record: sizes, channel counts and codecs vary."""
    out = []
    shapes = [(12, 16, 3), (9, 7, 1), (20, 11, 3), (5, 5, 1), (16, 24, 3), (3, 2, 3)]
    for i, shape in enumerate(shapes):
        px = rs.randint(0, 256, shape).astype(np.uint8)
        if i % 3 == 2:  # smooth content as well as noise
            px = np.clip(np.cumsum(px.astype(np.int32), axis=1) // (shape[1]), 0, 255)
            px = px.astype(np.uint8)
        codec = "png" if i % 2 else "jpeg"
        out.append((px, codec, [95, 75, 50][i % 3]))
    return out


def make_records(rs):
    records = []
    for i, (px, codec, quality) in enumerate(images(rs)):
        if codec == "jpeg":
            enc = tf.io.encode_jpeg(px, quality=quality).numpy()
        else:
            enc = tf.io.encode_png(px).numpy()
        floats = np.array([1.5, -0.0, np.inf, -np.inf, 1e-45, 3.4028235e38, np.nan,
                           float(i)], dtype=np.float32)
        ints = [0, -1, 2**63 - 1, -2**63, 2**31, i * 1000003]
        blobs = [b"", b"a\x00b", bytes(range(256)), ("r%d" % i).encode()]
        feat = {
            "image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[enc])),
            "image/format": tf.train.Feature(
                bytes_list=tf.train.BytesList(value=[codec.encode()])),
            "image/class/label": tf.train.Feature(int64_list=tf.train.Int64List(value=[i % 4])),
            "image/height": tf.train.Feature(
                int64_list=tf.train.Int64List(value=[px.shape[0]])),
            "image/width": tf.train.Feature(int64_list=tf.train.Int64List(value=[px.shape[1]])),
            "extra/floats": tf.train.Feature(float_list=tf.train.FloatList(value=floats)),
            "extra/int64s": tf.train.Feature(int64_list=tf.train.Int64List(value=ints)),
            "extra/bytes": tf.train.Feature(bytes_list=tf.train.BytesList(value=blobs)),
            "extra/empty_floats": tf.train.Feature(float_list=tf.train.FloatList(value=[])),
            "extra/none": tf.train.Feature(),
        }
        ex = tf.train.Example(features=tf.train.Features(feature=feat))
        # TF's default JPEG decode (dct_method "", i.e. INTEGER_FAST: decode_image and
        # TF-slim's tfexample_decoder.Image) and its INTEGER_ACCURATE one differ.
        decoded, accurate = {}, {}
        for ch in (0, 3):
            d = tf.io.decode_image(enc, channels=ch, expand_animations=False).numpy()
            decoded[str(ch)] = {"shape": list(d.shape), "hex": d.tobytes().hex()}
            if codec == "jpeg":
                d = tf.io.decode_jpeg(enc, channels=ch, dct_method="INTEGER_ACCURATE").numpy()
            accurate[str(ch)] = {"shape": list(d.shape), "hex": d.tobytes().hex()}
        features = {
            "image/encoded": {"kind": "bytes_list", "sha256": [hashlib.sha256(enc).hexdigest()],
                              "len": [len(enc)]},
            "image/format": {"kind": "bytes_list", "hex": [codec.encode().hex()]},
            "image/class/label": {"kind": "int64_list", "values": [str(i % 4)]},
            "image/height": {"kind": "int64_list", "values": [str(px.shape[0])]},
            "image/width": {"kind": "int64_list", "values": [str(px.shape[1])]},
            "extra/floats": {"kind": "float_list", "bits": [float_hex(x) for x in floats]},
            "extra/int64s": {"kind": "int64_list", "values": [str(v) for v in ints]},
            "extra/bytes": {"kind": "bytes_list", "hex": [b.hex() for b in blobs]},
            "extra/empty_floats": {"kind": "float_list", "bits": []},
            "extra/none": {"kind": "none"},
        }
        records.append((ex.SerializeToString(), {
            "features": features,
            "image": {"format": codec, "label": i % 4, "height": int(px.shape[0]),
                      "width": int(px.shape[1]), "channels": int(px.shape[2]),
                      "source_hex": px.tobytes().hex(), "decoded": decoded,
                      "decoded_accurate": accurate},
        }))
    return records


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(here, "out", "tfrecord"))
    args = ap.parse_args()
    out = args.out
    keep = os.path.join(out, "slimnet")  # written by the C suite: not ours to delete
    if os.path.isdir(out):
        for name in os.listdir(out):
            p = os.path.join(out, name)
            if p != keep:
                shutil.rmtree(p) if os.path.isdir(p) else os.remove(p)
    os.makedirs(out, exist_ok=True)
    records = make_records(np.random.RandomState(20240601))
    manifest = {"tensorflow": tf.__version__, "files": []}
    for name, comp in FILES:
        opts = tf.io.TFRecordOptions(compression_type="" if comp == "NONE" else comp)
        with tf.io.TFRecordWriter(os.path.join(out, name), opts) as w:
            for raw, _ in records:
                w.write(raw)
        manifest["files"].append({"path": name, "compression": comp,
                                  "records": [m for _, m in records]})
    with tf.io.TFRecordWriter(os.path.join(out, "empty.tfrecord")):
        pass
    manifest["files"].append({"path": "empty.tfrecord", "compression": "NONE", "records": []})
    # Sanity: TensorFlow reads back what it wrote, with the same count.
    for f in manifest["files"]:
        ds = tf.data.TFRecordDataset(os.path.join(out, f["path"]),
                                     compression_type=f["compression"].replace("NONE", ""))
        assert sum(1 for _ in ds) == len(f["records"]), f["path"]
    tmp = os.path.join(out, "manifest.json.tmp")
    with open(tmp, "w") as fh:
        json.dump(manifest, fh, indent=1)
    os.replace(tmp, os.path.join(out, "manifest.json"))
    print(f"make_tfrecord_fixtures: {len(manifest['files'])} files, {len(records)} records "
          f"each, in {out}")


if __name__ == "__main__":
    main()
