#!/usr/bin/env python3
"""Reads the event file slimnet wrote with TensorFlow and TensorBoard and checks it (make parity).

    tests/reference/.venv/bin/python tests/reference/check_events.py [DIR]

DIR (default tests/reference/out/events) is written by slimnet's events_parity suite: one
event file and manifest.json, which lists every scalar (tag, step, value) and every histogram
(tag, step, the float32 values) in the order they were written.  The file is read
  1. with tf.compat.v1.train.summary_iterator: the first event is file_version
     "brain.Event:2", then one event per manifest entry, same tag, step and value;
  2. with TensorBoard's own loader, event_accumulator.EventAccumulator: Reload(), then
     Scalars(tag) and Histograms(tag) give every point;
and each histogram must equal, field for field and bit for bit (min, max, num, sum,
sum_squares, bucket_limit, bucket), the HistogramProto TensorFlow's HistogramSummary op
(tf.compat.v1.summary.histogram in a graph session) makes from the same values.
Exits 1 on the first mismatching file, listing every mismatch.
"""
import glob
import json
import math
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorboard.backend.event_processing import event_accumulator as ea  # noqa: E402
from tensorflow.core.framework import summary_pb2  # noqa: E402

tf1 = tf.compat.v1
HISTO_FIELDS = ("min", "max", "num", "sum", "sum_squares")


def same(a, b):
    """Bitwise-equal doubles (NaN equals NaN)."""
    return (math.isnan(a) and math.isnan(b)) or (
        a == b and math.copysign(1, a) == math.copysign(1, b))


def tf_histograms(hists):
    """TF's HistogramProto for each manifest histogram, from the v1 summary op."""
    out = []
    g = tf.Graph()
    with g.as_default():
        x = tf1.placeholder(tf.float32, [None])
        op = tf1.summary.histogram("h", x)
        with tf1.Session(graph=g) as sess:
            for h in hists:
                s = summary_pb2.Summary.FromString(
                    sess.run(op, {x: np.array(h["values"], np.float32)}))
                out.append(s.value[0].histo)
    return out


def compare_histo(where, got, want, fail):
    for f in HISTO_FIELDS:
        if not same(getattr(got, f), getattr(want, f)):
            fail(f"{where}: {f} = {getattr(got, f)!r}, TensorFlow: {getattr(want, f)!r}")
    gl, wl = list(got.bucket_limit), list(want.bucket_limit)
    gb, wb = list(got.bucket), list(want.bucket)
    if len(gl) != len(wl) or not all(same(a, b) for a, b in zip(gl, wl)):
        fail(f"{where}: bucket_limit {gl[:8]}... ({len(gl)}), TensorFlow: {wl[:8]}... ({len(wl)})")
    if len(gb) != len(wb) or not all(same(a, b) for a, b in zip(gb, wb)):
        fail(f"{where}: bucket {gb[:8]}... ({len(gb)}), TensorFlow: {wb[:8]}... ({len(wb)})")


def main():
    d = sys.argv[1] if len(sys.argv) > 1 else "tests/reference/out/events"
    with open(os.path.join(d, "manifest.json")) as f:
        m = json.load(f)
    path = os.path.join(d, m["file"])
    errors = []
    fail = errors.append
    if glob.glob(os.path.join(d, "*tfevents*")) != [path]:
        fail(f"{d}: expected exactly one event file, {m['file']}")
    scalars, hists = m["scalars"], m["histograms"]
    want_histo = tf_histograms(hists)

    # 1. TensorFlow's reader: every event in order.
    events = list(tf1.train.summary_iterator(path))
    first, rest = events[0], events[1:]
    if first.file_version != "brain.Event:2":
        fail(f"{path}: first event has file_version {first.file_version!r}")
    if not m["file"].startswith(f"events.out.tfevents.{int(first.wall_time):010d}."):
        fail(f"{path}: first wall_time {first.wall_time} is not the name's seconds")
    expect = [("scalar", s) for s in scalars] + [("histo", h) for h in hists]
    if len(rest) != len(expect):
        fail(f"{path}: {len(rest)} summary events, manifest has {len(expect)}")
    prev = first.wall_time
    for i, (e, (kind, w)) in enumerate(zip(rest, expect)):
        where = f"{path}: event {i + 1} ({w['tag']} step {w['step']})"
        if e.step != w["step"] or len(e.summary.value) != 1 or e.summary.value[0].tag != w["tag"]:
            fail(f"{where}: got step {e.step}, tags {[x.tag for x in e.summary.value]}")
            continue
        if e.wall_time < prev:
            fail(f"{where}: wall_time {e.wall_time} goes back from {prev}")
        prev = e.wall_time
        v = e.summary.value[0]
        if kind == "scalar":
            want = float(np.float32(w["value"]))
            if v.WhichOneof("value") != "simple_value" or not same(v.simple_value, want):
                fail(f"{where}: {v.WhichOneof('value')} {v.simple_value!r}, expected {want!r}")
        else:
            if v.WhichOneof("value") != "histo":
                fail(f"{where}: {v.WhichOneof('value')}, not a histogram")
            else:
                compare_histo(where, v.histo, want_histo[hists.index(w)], fail)

    # 2. TensorBoard's loader (keep every point, not the default reservoir sample).
    acc = ea.EventAccumulator(d, size_guidance={ea.SCALARS: 0, ea.HISTOGRAMS: 0})
    acc.Reload()
    tags = acc.Tags()
    for t in sorted({s["tag"] for s in scalars}):
        if t not in tags[ea.SCALARS]:
            fail(f"TensorBoard: no scalar tag {t!r} in {tags[ea.SCALARS]}")
            continue
        got = [(p.step, p.value) for p in acc.Scalars(t)]
        want = [(s["step"], float(np.float32(s["value"]))) for s in scalars if s["tag"] == t]
        if got != want:
            fail(f"TensorBoard: scalars {t!r}: {got}, expected {want}")
    for t in sorted({h["tag"] for h in hists}):
        if t not in tags[ea.HISTOGRAMS]:
            fail(f"TensorBoard: no histogram tag {t!r} in {tags[ea.HISTOGRAMS]}")
            continue
        got = acc.Histograms(t)
        want = [(h["step"], want_histo[i]) for i, h in enumerate(hists) if h["tag"] == t]
        if [p.step for p in got] != [s for s, _ in want]:
            fail(f"TensorBoard: histograms {t!r}: steps {[p.step for p in got]}")
            continue
        for p, (step, w) in zip(got, want):
            compare_histo(f"TensorBoard: {t} step {step}", p.histogram_value, w, fail)

    for e in errors:
        print("check_events:", e, file=sys.stderr)
    if errors:
        return 1
    print(f"check_events: {path}: {len(scalars)} scalars and {len(hists)} histograms read back "
          "by TensorFlow and TensorBoard; histograms equal TensorFlow's")
    return 0


if __name__ == "__main__":
    sys.exit(main())
