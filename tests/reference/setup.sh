#!/bin/sh
# Creates tests/reference/.venv (git-ignored) with the pinned TensorFlow + tf_slim, once.
# Usage: tests/reference/setup.sh   (from anywhere; PYTHON=python3.11 to choose the interpreter)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
venv="$here/.venv"
stamp="$venv/.requirements"
if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && cmp -s "$stamp" "$here/requirements.txt"; then
    exit 0
fi
PYTHON=${PYTHON:-python3}
echo "setup.sh: creating $venv (TensorFlow takes a few minutes to install)"
rm -rf "$venv"
"$PYTHON" -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
# Proves the pins work together before recording them as installed.
TF_CPP_MIN_LOG_LEVEL=2 "$venv/bin/python" -c \
    "import tensorflow as tf, tf_slim; from tf_slim.nets import resnet_v1"
cp "$here/requirements.txt" "$stamp"
