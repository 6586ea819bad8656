#!/usr/bin/env python3
"""slimnet-ckpt lists TensorFlow's checkpoints as TensorFlow's inspect_checkpoint does.

    check_inspect.py SLIMNET_CKPT_BINARY

For every checkpoint the fixture generator wrote (tests/reference/out/ckpt/*), runs
`python -m tensorflow.python.tools.inspect_checkpoint --file_name=PREFIX` and
`slimnet-ckpt PREFIX` and requires the same lines.  TensorFlow prints a partitioned
variable's slices under their raw binary keys (lines starting with NUL); slimnet prints the
whole variable once, so those lines are compared by total parameter count only.  V1
files are listed by TensorFlow in hash order with ", N slices" on partitioned variables:
those are compared as sorted lists without the suffix.
"""
import glob
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def prefixes():
    for d in sorted(glob.glob(os.path.join(HERE, "out", "ckpt", "*"))):
        if not os.path.isdir(d):
            continue
        idx = sorted(glob.glob(os.path.join(d, "*.index")))
        if idx:                                   # V2: the prefix of the bundle
            yield idx[0][: -len(".index")]
            continue
        v1 = sorted(f for f in glob.glob(os.path.join(d, "model.ckpt-*"))
                    if not f.endswith(".meta"))
        if len(v1) == 1:                          # V1: the file itself
            yield v1[0]
        elif v1:                                  # sharded V1: TF's glob pattern
            yield v1[0].rsplit("-", 3)[0] + "-?????-of-" + v1[0].rsplit("-", 1)[1]


def main():
    binary = sys.argv[1]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    passed = failed = 0
    for p in prefixes():
        tf_out = subprocess.run(
            [sys.executable, "-m", "tensorflow.python.tools.inspect_checkpoint",
             "--file_name=" + p], capture_output=True, env=env, check=True).stdout
        sn_out = subprocess.run([binary, p], capture_output=True, check=True).stdout
        tf_lines = [l for l in tf_out.decode("latin-1").splitlines() if not l.startswith("\0")]
        sn_lines = sn_out.decode().splitlines()
        sliced = {l.split(" (")[0] for l in sn_lines if l and not l.startswith("#")} - \
                 {l.split(" (")[0] for l in tf_lines}
        sn_cmp = [l for l in sn_lines if l.split(" (")[0] not in sliced]
        if not p.endswith(".index") and not os.path.exists(p + ".index"):
            # V1: TF lists in its hash map's order and marks partitioned variables with
            # ", N slices"; slimnet sorts by name, as for V2.
            tf_lines = sorted(l.split(", ")[0] for l in tf_lines[:-2]) + tf_lines[-2:]
            sn_cmp = sorted(sn_cmp[:-2]) + sn_cmp[-2:]
        if tf_lines == sn_cmp:
            passed += 1
            print(f"ok   {p} ({len(sn_lines) - 2} tensors, {len(sliced)} partitioned)")
        else:
            failed += 1
            print(f"FAIL {p}\n  tf: {tf_lines}\n  sn: {sn_cmp}")
    print(f"check_inspect: {passed} passed, {failed} failed")
    return 1 if failed or not passed else 0


if __name__ == "__main__":
    sys.exit(main())
