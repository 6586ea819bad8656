#!/usr/bin/env python3
"""The TensorFlow peer of slimnet-serve for bench_serve.sh: a minimal Python HTTP server that
answers TF Serving's :predict for one TF-slim classifier, the way a user without TF Serving
would write one.

    tests/reference/.venv/bin/python benchmarks/tf_serve_cpu.py --model resnet_v1_50 \
        --checkpoint_path TRAIN_DIR --port 8601 [--threads 2] [--classes 1000]

The network is tf_train_cpu.MODELS' TF-slim one in inference mode, restored with
tf.compat.v1.train.Saver from the same checkpoint slimnet-serve serves (slimnet writes TF's
V2 bundles with TF-slim's names).  A request's images ({"instances": [{"b64": ...}]}) are
decoded, resized to the network's size and mean-centred in the graph (tf.io.decode_image,
tf.image.resize: close to TF-slim's eval preprocessing in cost), and run in one session call
(sessions are thread-safe: concurrent requests run concurrently, without batching).  The
answer is the same JSON as slimnet-serve's: {"predictions": [{"classes", "probabilities",
"logits"}]}.  http.server.ThreadingHTTPServer, one thread per connection.
"""
import argparse
import base64
import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_slim as slim  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tf_train_cpu import MODELS  # noqa: E402

tf1 = tf.compat.v1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="resnet_v1_50", choices=sorted(MODELS))
    ap.add_argument("--checkpoint_path", required=True)
    ap.add_argument("--port", type=int, default=8601)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--classes", type=int, default=1000)
    a = ap.parse_args()
    net_fn, arg_scope, size = MODELS[a.model]

    g = tf.Graph()
    with g.as_default():
        encoded = tf1.placeholder(tf.string, [None])

        def prep(b):
            img = tf.io.decode_image(b, channels=3, expand_animations=False)
            img = tf.image.resize(tf.cast(img, tf.float32), [size, size])
            return img - 128.0

        images = tf.map_fn(prep, encoded, fn_output_signature=tf.float32)
        with slim.arg_scope(arg_scope()):
            logits = net_fn(images, a.classes, False)
        probs = tf.nn.softmax(logits)
        saver = tf1.train.Saver(slim.get_model_variables())
        cfg = tf1.ConfigProto(intra_op_parallelism_threads=a.threads,
                              inter_op_parallelism_threads=a.threads)
        sess = tf1.Session(graph=g, config=cfg)
        path = a.checkpoint_path
        if os.path.isdir(path):
            path = tf1.train.latest_checkpoint(path)
        saver.restore(sess, path)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def answer(self, code, obj):
            body = json.dumps(obj).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            try:
                n = int(self.headers.get("Content-Length", "0"))
                req = json.loads(self.rfile.read(n))
                imgs = [base64.b64decode(x["b64"]) for x in req["instances"]]
                lg, pr = sess.run([logits, probs], {encoded: imgs})
            except Exception as e:  # noqa: BLE001 - any bad request is a 400
                self.answer(400, {"error": str(e)})
                return
            self.answer(200, {"predictions": [
                {"classes": int(np.argmax(p)), "probabilities": p.tolist(),
                 "logits": l.tolist()} for l, p in zip(lg, pr)]})

    srv = ThreadingHTTPServer(("127.0.0.1", a.port), Handler)
    print(f"tf_serve_cpu: {a.model} TensorFlow {tf.__version__} at http://127.0.0.1:{a.port}",
          flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
