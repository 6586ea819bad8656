#!/usr/bin/env python3
"""Writes tests/reference/preprocess.json + preprocess.bin: TF-slim's preprocessing
functions run by TensorFlow on small synthetic images, for slimnet's `preprocess` suite
(tests/test_preprocess.c).

Run with the pinned virtualenv (tests/reference/setup.sh):
    tests/reference/.venv/bin/python tests/reference/make_preprocess_fixtures.py \\
        [--sdist FILE | --slim-src DIR] [--samples N]

Where the preprocessing code comes from: research/slim's preprocessing/ package as the
pinned PyPI sdist tf-models-research-object-detection 2.8.0.post1 ships it (the same pin and
sha256 as make_zoo_fixtures.py; --sdist takes a local copy of that file, checked by its
sha256; --slim-src a folder holding preprocessing/).  It is unpacked into
tests/reference/out/preprocess_src/ (git-ignored).

What it records (preprocess.bin: little-endian float32, everything at the "offset" (in floats)
the manifest gives; preprocess.json: the manifest):
  images           three uint8 images (stored as float32): "color37x53" (37x53x3), "gray45x48"
                   (45x48x1), "small20x30" (20x30x3, smaller than some outputs); smooth
                   gradients, noise, and pixels with equal channels, black and white, so that
                   every branch of TF's RGB<->HSV code is taken
  cases            one preprocessed image per case: kind, is_training, fast_mode,
                   use_grayscale, out size, vgg resize sides, and for training the draw
                   (sn_preprocess_draw's fields).  "source" says how TensorFlow computed it:
                     "tf_slim": TF-slim's own preprocess_image(), with its random ops replaced
                       by the draw (tf.random_uniform returns the drawn resize side, crop
                       offsets, resize method and color ordering in call order;
                       random_flip_left_right / random_brightness / random_saturation /
                       random_hue / random_contrast / random_crop /
                       sample_distorted_bounding_box become flip_left_right / adjust_* /
                       slice / the drawn box).  The same case is also computed by "tf_ops"
                       below and the two must agree bit for bit.
                     "tf_ops": the same chain of TensorFlow operations written out here,
                       for what TF-slim cannot run: 1-channel images in vgg, inception train
                       and cifarnet train, use_grayscale in vgg and cifarnet train (their
                       shapes are fixed at 3 channels), and non-square lenet / cifarnet eval
                       sizes (TF-slim passes (width, height) to
                       resize_image_with_crop_or_pad).  There slimnet's documented choices
                       apply: vgg subtracts the means' gray value from one channel, inception
                       skips saturation and hue on one channel.
                   Boxes for inception train come from tf.image.sample_distorted_bounding_box
                   itself (seeded), the other draws from numpy (seeded), in TF-slim's ranges.
  resize_bilinear  tf.compat.v1.image.resize_bilinear (align_corners=False) of float images,
                   up, down, mixed, 1, 2 and 3 channels, and the same size
  boxes            statistics of SAMPLES draws of tf.image.sample_distorted_bounding_box as
                   inception_preprocessing.distorted_bounding_box_crop calls it (bbox = the
                   whole image), for a few image sizes: mean and standard deviation of the
                   box's y, x, height, width, and the frequencies of the whole image (the
                   fallback) and of boxes touching the bottom / right edge.  slimnet draws
                   its boxes from its own generator; the suite checks that its statistics
                   agree within 5 standard errors.
"""
import argparse
import hashlib
import importlib
import json
import os
import platform
import subprocess
import sys
import tarfile
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from make_zoo_fixtures import SDIST, SDIST_FILE, SDIST_SHA256, sha256  # noqa: E402

OUT_JSON = os.path.join(HERE, "preprocess.json")
OUT_BIN = os.path.join(HERE, "preprocess.bin")
SRC_CACHE = os.path.join(HERE, "out", "preprocess_src")

VGG_MEANS = (123.68, 116.78, 103.94)
GRAY_WEIGHTS = (0.2989, 0.5870, 0.1140)


# ---- the preprocessing package ---------------------------------------------------------------

def fetch_preprocessing(sdist):
    """Unpacks slim/preprocessing/ of the pinned sdist into SRC_CACHE once; returns it."""
    stamp = os.path.join(SRC_CACHE, ".sha256")
    if os.path.exists(stamp) and open(stamp).read().strip() == SDIST_SHA256:
        return SRC_CACHE
    with tempfile.TemporaryDirectory() as tmp:
        if sdist:
            path = sdist
        else:
            subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                            "--disable-pip-version-check", "-d", tmp, SDIST], check=True)
            path = os.path.join(tmp, SDIST_FILE)
        got = sha256(path)
        if got != SDIST_SHA256:
            sys.exit("make_preprocess_fixtures: %s has sha256 %s, expected %s"
                     % (path, got, SDIST_SHA256))
        prefix = SDIST_FILE[:-len(".tar.gz")] + "/slim/"
        with tarfile.open(path) as tar:
            members = [m for m in tar.getmembers()
                       if m.name.startswith(prefix + "preprocessing/") and m.isfile()]
            for m in members:
                m.name = m.name[len(prefix):]
            os.makedirs(SRC_CACHE, exist_ok=True)
            tar.extractall(SRC_CACHE, members=members)
    with open(stamp, "w") as f:
        f.write(SDIST_SHA256 + "\n")
    return SRC_CACHE


# ---- inputs ----------------------------------------------------------------------------------

def make_images():
    rs = np.random.RandomState(20240611)
    h, w = 37, 53
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.stack([255 * x / (w - 1), 255 * y / (h - 1),
                    128 + 100 * np.sin(0.3 * x + 0.2 * y)], axis=-1)
    img += rs.normal(0, 18, img.shape)
    img = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    img[3, :, :] = img[3, :, :1]                 # a gray row: r == g == b
    img[5, :, 1] = img[5, :, 0]                  # r == g
    img[7, :, 2] = img[7, :, 1]                  # g == b
    img[9, :, 2] = img[9, :, 0]                  # r == b
    img[11, ::2] = 0                             # black
    img[11, 1::2] = 255                          # white
    img[13, :, 0] = 255                          # saturated red channel
    color = img

    y, x = np.mgrid[0:45, 0:48].astype(np.float64)
    g = 128 + 90 * np.cos(0.17 * x) * np.sin(0.11 * y + 0.5) + rs.normal(0, 10, (45, 48))
    gray = np.clip(np.rint(g), 0, 255).astype(np.uint8)[:, :, None]

    small = rs.randint(0, 256, (20, 30, 3)).astype(np.uint8)
    small[0, :, :] = small[0, :, :1]
    return {"color37x53": color, "gray45x48": gray, "small20x30": small}


def f32(v):
    return float(np.float32(v))


# ---- TF-slim with its random ops replaced by a draw -----------------------------------------

class Proxy:
    """Forwards every attribute to `base` except the overridden ones."""

    def __init__(self, base, **over):
        self._base = base
        self._over = over

    def __getattr__(self, name):
        if name in self._over:
            return self._over[name]
        return getattr(self._base, name)


def slim_overrides(tf, case):
    """tf and tf.image stand-ins that make TF-slim's random choices the case's draw."""
    d = case["draw"] or {}
    kind = case["kind"]
    if kind == "vgg":
        ints = [("resize_side", case["resize_side_min"], case["resize_side_max"] + 1),
                ("crop_y", 0, None), ("crop_x", 0, None)]
    elif kind == "inception":
        n = 1 if case["fast_mode"] else 4
        ints = [("resize_method", 0, n), ("color_ordering", 0, n)]
    else:
        ints = []
    calls = []

    def random_uniform(shape, minval=0, maxval=None, dtype=tf.float32, seed=None, name=None):
        assert dtype == tf.int32 and list(shape) == [], (shape, dtype)
        field, lo, hi = ints[len(calls)]
        assert minval == lo, (field, minval, lo)
        if hi is not None:
            assert maxval == hi, (field, maxval, hi)
        calls.append(field)
        return tf.constant(d[field], tf.int32)

    def random_crop(value, size, seed=None, name=None):
        assert list(size[:2]) == [case["out_height"], case["out_width"]]
        return tf.slice(value, [d["crop_y"], d["crop_x"], 0], size)

    def random_flip_left_right(image, seed=None):
        return tf.image.flip_left_right(image) if d["flip"] else image

    def random_brightness(image, max_delta, seed=None):
        assert max_delta in (63, 32. / 255.), max_delta
        return tf.image.adjust_brightness(image, d["brightness"])

    def random_saturation(image, lower, upper, seed=None):
        assert (lower, upper) == (0.5, 1.5)
        return tf.image.adjust_saturation(image, d["saturation"])

    def random_hue(image, max_delta, seed=None):
        assert max_delta == 0.2
        return tf.image.adjust_hue(image, d["hue"])

    def random_contrast(image, lower, upper, seed=None):
        assert (lower, upper) in ((0.2, 1.8), (0.5, 1.5))
        return tf.image.adjust_contrast(image, d["contrast"])

    def sample_distorted_bounding_box(image_size, bounding_boxes, **kw):
        assert kw["min_object_covered"] == 0.1 and tuple(kw["aspect_ratio_range"]) == (
            0.75, 1.33) and tuple(kw["area_range"]) == (0.05, 1.0) and kw[
            "max_attempts"] == 100 and kw["use_image_if_no_bounding_boxes"]
        h, w = case["image_shape"][:2]
        y, x, bh, bw = d["crop_y"], d["crop_x"], d["crop_h"], d["crop_w"]
        box = [[[y / h, x / w, (y + bh) / h, (x + bw) / w]]]
        return (tf.constant([y, x, 0], tf.int32), tf.constant([bh, bw, -1], tf.int32),
                tf.constant(box, tf.float32))

    image = Proxy(tf.image, random_flip_left_right=random_flip_left_right,
                  random_brightness=random_brightness, random_saturation=random_saturation,
                  random_hue=random_hue, random_contrast=random_contrast,
                  sample_distorted_bounding_box=sample_distorted_bounding_box)
    proxy = Proxy(tf, random_uniform=random_uniform, random_crop=random_crop, image=image)
    return proxy, lambda: (calls, [f for f, _, _ in ints])


def run_slim(tf, modules, case, img):
    mod = modules[case["kind"]]
    g = tf.Graph()
    with g.as_default():
        ph = tf.placeholder(tf.uint8, [None, None, img.shape[2]])
        proxy, used = slim_overrides(tf, case)
        kw = {"is_training": bool(case["is_training"]),
              "use_grayscale": bool(case["use_grayscale"])}
        if case["kind"] == "vgg":
            kw.update(resize_side_min=case["resize_side_min"],
                      resize_side_max=case["resize_side_max"])
        if case["kind"] == "inception":
            kw.update(fast_mode=bool(case["fast_mode"]), add_image_summaries=False)
        if case["kind"] == "cifarnet":
            kw.update(add_image_summaries=False)
        saved = mod.tf
        mod.tf = proxy
        try:
            out = mod.preprocess_image(ph, case["out_height"], case["out_width"], **kw)
        finally:
            mod.tf = saved
        calls, expected = used()
        if case["is_training"]:
            assert calls == expected, (case["name"], calls, expected)
        with tf.Session() as s:
            return s.run(out, {ph: img})


# ---- the same chains written out with TensorFlow operations ---------------------------------

def gray_mean():
    """The means' gray value as slimnet computes it: float32, r*wr + g*wg + b*wb."""
    m = [np.float32(v) for v in VGG_MEANS]
    wt = [np.float32(v) for v in GRAY_WEIGHTS]
    return (m[0] * wt[0] + m[1] * wt[1]) + m[2] * wt[2]


def run_ops(tf, case, img):
    d = case["draw"]
    kind, train = case["kind"], case["is_training"]
    oh, ow = case["out_height"], case["out_width"]
    gray = case["use_grayscale"] and img.shape[2] == 3
    g = tf.Graph()
    with g.as_default():
        ph = tf.placeholder(tf.uint8, [None, None, img.shape[2]])
        x = ph
        if kind in ("lenet", "cifarnet"):
            x = tf.to_float(x)
            if gray:
                x = tf.image.rgb_to_grayscale(x)
            if kind == "cifarnet" and train:
                x = tf.pad(x, [[4, 4], [4, 4], [0, 0]])
                x = tf.slice(x, [d["crop_y"], d["crop_x"], 0], [oh, ow, -1])
                if d["flip"]:
                    x = tf.image.flip_left_right(x)
                x = tf.image.adjust_brightness(x, d["brightness"])
                x = tf.image.adjust_contrast(x, d["contrast"])
            else:
                x = tf.image.resize_image_with_crop_or_pad(x, oh, ow)
            if kind == "lenet":
                x = tf.div(tf.subtract(x, 128.0), 128.0)
            else:
                x = tf.image.per_image_standardization(x)
        elif kind == "vgg":
            side = d["resize_side"] if train else case["resize_side_min"]
            shape = tf.shape(x)
            h, w = tf.to_float(shape[0]), tf.to_float(shape[1])
            s = tf.to_float(tf.constant(side, tf.int32))
            scale = tf.cond(tf.greater(h, w), lambda: s / w, lambda: s / h)
            nh, nw = tf.to_int32(tf.rint(h * scale)), tf.to_int32(tf.rint(w * scale))
            x = tf.image.resize_bilinear(tf.expand_dims(x, 0), [nh, nw], align_corners=False)[0]
            if train:
                y0, x0 = d["crop_y"], d["crop_x"]
            else:
                y0, x0 = (nh - oh) // 2, (nw - ow) // 2
            x = tf.slice(x, tf.stack([y0, x0, 0]), [oh, ow, -1])
            if gray:
                x = tf.image.rgb_to_grayscale(x)
            if train and d["flip"]:
                x = tf.image.flip_left_right(x)
            if img.shape[2] == 3 and not gray:
                x = x - tf.constant(VGG_MEANS, tf.float32)
            else:
                x = x - tf.constant(gray_mean(), tf.float32)
        else:
            x = tf.image.convert_image_dtype(x, tf.float32)
            if not train:
                if gray:
                    x = tf.image.rgb_to_grayscale(x)
                x = tf.image.central_crop(x, 0.875)
                x = tf.image.resize_bilinear(tf.expand_dims(x, 0), [oh, ow],
                                             align_corners=False)[0]
            else:
                x = tf.slice(x, [d["crop_y"], d["crop_x"], 0], [d["crop_h"], d["crop_w"], -1])
                x = tf.image.resize_images(x, [oh, ow], d["resize_method"])
                if d["flip"]:
                    x = tf.image.flip_left_right(x)
                color = img.shape[2] == 3
                ops = {"b": lambda t: tf.image.adjust_brightness(t, d["brightness"]),
                       "s": lambda t: tf.image.adjust_saturation(t, d["saturation"]) if color
                       else t,
                       "h": lambda t: tf.image.adjust_hue(t, d["hue"]) if color else t,
                       "c": lambda t: tf.image.adjust_contrast(t, d["contrast"])}
                if case["fast_mode"]:
                    order = "bs" if d["color_ordering"] == 0 else "sb"
                else:
                    order = ["bshc", "sbch", "chbs", "hscb"][d["color_ordering"]]
                for op in order:
                    x = ops[op](x)
                x = tf.clip_by_value(x, 0.0, 1.0)
                if gray:
                    x = tf.image.rgb_to_grayscale(x)
            x = tf.multiply(tf.subtract(x, 0.5), 2.0)
        with tf.Session() as s:
            return s.run(x, {ph: img})


def slim_supports(case, c):
    """Whether TF-slim's own function runs this case (see the module docstring)."""
    kind, train, gray = case["kind"], case["is_training"], case["use_grayscale"]
    square = case["out_height"] == case["out_width"]
    if gray and c == 1:
        return False
    if kind == "lenet" or (kind == "cifarnet" and not train):
        return square
    if kind == "cifarnet" or kind == "vgg":
        return c == 3 and not gray
    return c == 3 or not train   # inception


# ---- the cases --------------------------------------------------------------------------------

def sample_box(tf, h, w, seed):
    # tf.compat.v1's sample_distorted_bounding_box ignores the graph seed: explicit op seeds
    g = tf.Graph()
    with g.as_default():
        begin, size, _ = tf.image.sample_distorted_bounding_box(
            [h, w, 3], tf.constant([0.0, 0.0, 1.0, 1.0], tf.float32, [1, 1, 4]), seed=seed,
            seed2=1, min_object_covered=0.1, aspect_ratio_range=(0.75, 1.33),
            area_range=(0.05, 1.0), max_attempts=100, use_image_if_no_bounding_boxes=True)
        with tf.Session() as s:
            b, z = s.run([begin, size])
    return int(b[0]), int(b[1]), int(z[0]), int(z[1])


def make_cases(tf, images):
    rs = np.random.RandomState(7)
    cases = []

    def add(name, image, kind, out, train=0, gray=0, fast=1, sides=(36, 60), **draw):
        h, w, c = images[image].shape
        case = {"name": name, "image": image, "image_shape": [h, w, c], "kind": kind,
                "is_training": train, "fast_mode": fast, "use_grayscale": gray,
                "out_height": out[0], "out_width": out[1], "resize_side_min": sides[0],
                "resize_side_max": sides[1], "draw": None}
        if train and kind != "lenet":
            case["draw"] = make_draw(tf, case, rs, **draw)
        cases.append(case)

    for image, c in (("color37x53", 3), ("small20x30", 3), ("gray45x48", 1)):
        small = image == "small20x30"
        add(image + "/lenet", image, "lenet", (28, 28))
        add(image + "/lenet_25x27", image, "lenet", (25, 27))
        add(image + "/cifarnet_eval", image, "cifarnet", (24, 24))
        add(image + "/cifarnet_train", image, "cifarnet", (24, 24), train=1, flip=1)
        add(image + "/vgg_eval", image, "vgg", (32, 32))
        add(image + "/vgg_eval_24x34", image, "vgg", (24, 34))
        add(image + "/vgg_train", image, "vgg", (32, 32), train=1, flip=1)
        add(image + "/inception_eval", image, "inception", (32, 32) if small else (24, 20))
        add(image + "/inception_train_fast", image, "inception", (24, 20), train=1, flip=1,
            seed=1)
        add(image + "/inception_train_fast_flip0", image, "inception", (24, 20), train=1,
            flip=0, seed=2)
        for k in range(4):     # every ordering, with every resize method
            add("%s/inception_train_full_o%d_m%d" % (image, k, (k + c) % 4), image,
                "inception", (24, 20), train=1, fast=0, flip=k % 2, seed=10 + k,
                color_ordering=k, resize_method=(k + c) % 4)
        if c == 3:
            add(image + "/lenet_gray", image, "lenet", (28, 28), gray=1)
            add(image + "/cifarnet_eval_gray", image, "cifarnet", (24, 24), gray=1)
            add(image + "/cifarnet_train_gray", image, "cifarnet", (24, 24), train=1, gray=1,
                flip=0)
            add(image + "/vgg_eval_gray", image, "vgg", (32, 32), gray=1)
            add(image + "/vgg_train_gray", image, "vgg", (32, 32), train=1, gray=1, flip=0)
            add(image + "/inception_eval_gray", image, "inception", (24, 20), gray=1)
            add(image + "/inception_train_fast_gray", image, "inception", (24, 20), train=1,
                gray=1, flip=1, seed=3)
            add(image + "/inception_train_full_gray", image, "inception", (24, 20), train=1,
                gray=1, fast=0, flip=0, seed=4, color_ordering=3, resize_method=0)
            # hue shifts beyond TF-slim's 0.2 wrap around the hue circle both ways
            add(image + "/inception_train_hue_wrap+", image, "inception", (24, 20), train=1,
                fast=0, flip=0, seed=5, color_ordering=3, resize_method=0, hue=0.9)
            add(image + "/inception_train_hue_wrap-", image, "inception", (24, 20), train=1,
                fast=0, flip=0, seed=6, color_ordering=2, resize_method=0, hue=-0.7,
                saturation=1.9)
    return cases


def make_draw(tf, case, rs, flip=0, seed=0, color_ordering=0, resize_method=0, hue=None,
              saturation=None):
    h, w = case["image_shape"][:2]
    oh, ow = case["out_height"], case["out_width"]
    d = {"resize_side": 0, "crop_y": 0, "crop_x": 0, "crop_h": h, "crop_w": w, "flip": flip,
         "color_ordering": 0, "brightness": 0.0, "saturation": 1.0, "hue": 0.0,
         "contrast": 1.0, "resize_method": 0}
    kind = case["kind"]
    if kind == "cifarnet":
        d.update(crop_y=int(rs.randint(0, h + 8 - oh + 1)),
                 crop_x=int(rs.randint(0, w + 8 - ow + 1)), crop_h=oh, crop_w=ow,
                 brightness=f32(rs.uniform(-63, 63)), contrast=f32(rs.uniform(0.2, 1.8)))
    elif kind == "vgg":
        side = int(rs.randint(case["resize_side_min"], case["resize_side_max"] + 1))
        hf, wf, sf = np.float32(h), np.float32(w), np.float32(side)
        scale = sf / wf if hf > wf else sf / hf
        nh, nw = int(np.rint(hf * scale)), int(np.rint(wf * scale))
        d.update(resize_side=side, crop_y=int(rs.randint(0, nh - oh + 1)),
                 crop_x=int(rs.randint(0, nw - ow + 1)), crop_h=oh, crop_w=ow)
    else:
        y, x, bh, bw = sample_box(tf, h, w, 1000 + seed)
        d.update(crop_y=y, crop_x=x, crop_h=bh, crop_w=bw,
                 brightness=f32(rs.uniform(-32. / 255., 32. / 255.)),
                 saturation=f32(rs.uniform(0.5, 1.5) if saturation is None else saturation))
        if not case["fast_mode"]:
            d.update(color_ordering=color_ordering, resize_method=resize_method,
                     hue=f32(rs.uniform(-0.2, 0.2) if hue is None else hue),
                     contrast=f32(rs.uniform(0.5, 1.5)))
    return d


RESIZES = [  # name, (h, w, c), (oh, ow)
    ("up_5x7x3_to_13x11", (5, 7, 3), (13, 11)),
    ("down_37x53x3_to_10x17", (37, 53, 3), (10, 17)),
    ("mixed_9x4x1_to_4x9", (9, 4, 1), (4, 9)),
    ("row_1x6x1_to_3x5", (1, 6, 1), (3, 5)),
    ("two_6x6x2_to_9x4", (6, 6, 2), (9, 4)),
    ("same_4x5x3", (4, 5, 3), (4, 5)),
    ("odd_7x300x3_to_3x299", (7, 300, 3), (3, 299)),
]

# Landscape and portrait: in a portrait image every aspect ratio is wider than the image, so
# GenerateRandomCrop's max_height correction is always taken.
BOX_SIZES = [(375, 500), (500, 375), (37, 53), (53, 37), (7, 9), (9, 7)]


def box_stats(tf, h, w, samples):
    per_run = 100
    g = tf.Graph()
    with g.as_default():
        outs = []
        for i in range(per_run):
            begin, size, _ = tf.image.sample_distorted_bounding_box(
                [h, w, 3], tf.constant([0.0, 0.0, 1.0, 1.0], tf.float32, [1, 1, 4]),
                seed=99, seed2=1 + i, min_object_covered=0.1, aspect_ratio_range=(0.75, 1.33),
                area_range=(0.05, 1.0), max_attempts=100, use_image_if_no_bounding_boxes=True)
            outs.append(tf.concat([begin[:2], size[:2]], 0))
        both = tf.stack(outs)
        rows = []
        with tf.Session() as s:
            for _ in range((samples + per_run - 1) // per_run):
                rows.append(s.run(both))
    b = np.concatenate(rows)[:samples].astype(np.float64)   # y, x, h, w
    y, x, bh, bw = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    stats = {"samples": samples, "height": h, "width": w}
    for name, v in (("y", y), ("x", x), ("h", bh), ("w", bw)):
        stats["mean_" + name] = float(v.mean())
        stats["std_" + name] = float(v.std())
    stats["p_whole"] = float(np.mean((bh == h) & (bw == w)))
    stats["p_touch_bottom"] = float(np.mean((y + bh == h) & (bh < h)))
    stats["p_touch_right"] = float(np.mean((x + bw == w) & (bw < w)))
    return stats


# ---- output -----------------------------------------------------------------------------------

def dump(doc):
    """JSON with one case a line."""
    out = ["{"]
    keys = list(doc)
    for i, k in enumerate(keys):
        v = doc[k]
        end = "," if i + 1 < len(keys) else ""
        if isinstance(v, list):
            out.append("  %s: [" % json.dumps(k))
            for j, e in enumerate(v):
                out.append("    %s%s" % (json.dumps(e, separators=(",", ":")),
                                        "," if j + 1 < len(v) else ""))
            out.append("  ]" + end)
        else:
            out.append("  %s: %s%s" % (json.dumps(k), json.dumps(v), end))
    out.append("}")
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sdist", help="a local copy of %s" % SDIST_FILE)
    ap.add_argument("--slim-src", help="folder holding research/slim's preprocessing/")
    ap.add_argument("--samples", type=int, default=20000, help="boxes per image size")
    ap.add_argument("--json", default=OUT_JSON)
    ap.add_argument("--bin", default=OUT_BIN)
    args = ap.parse_args()

    src = args.slim_src or fetch_preprocessing(args.sdist)
    sys.path.insert(0, src)
    import tensorflow
    import tensorflow.compat.v1 as tf
    tf.disable_eager_execution()
    tf.logging.set_verbosity(tf.logging.ERROR)
    try:
        from importlib.metadata import version
        slim_version = version("tf-slim")
    except Exception:  # pragma: no cover
        slim_version = "unknown"
    modules = {k: importlib.import_module("preprocessing.%s_preprocessing" % k)
               for k in ("lenet", "cifarnet", "vgg", "inception")}

    blob = []
    size = [0]

    def put(a):
        a = np.ascontiguousarray(a, dtype="<f4").ravel()
        off = size[0]
        blob.append(a)
        size[0] += a.size
        return off

    images = make_images()
    image_meta = [{"name": k, "shape": list(v.shape), "offset": put(v)}
                  for k, v in images.items()]

    cases = make_cases(tf, images)
    n_slim = 0
    for case in cases:
        img = images[case["image"]]
        ops = run_ops(tf, case, img)
        if slim_supports(case, img.shape[2]):
            got = run_slim(tf, modules, case, img)
            if got.shape != ops.shape or not np.array_equal(got, ops):
                sys.exit("%s: TF-slim and the written-out chain differ (max %g)"
                         % (case["name"], float(np.max(np.abs(got - ops)))))
            case["source"] = "tf_slim"
            n_slim += 1
        else:
            case["source"] = "tf_ops"
        case["shape"] = list(ops.shape)
        case["offset"] = put(ops)
        del case["image_shape"]

    resizes = []
    rs = np.random.RandomState(3)
    for name, shp, (oh, ow) in RESIZES:
        x = rs.uniform(-1.0, 2.0, shp).astype(np.float32)
        g = tf.Graph()
        with g.as_default():
            y = tf.image.resize_bilinear(tf.constant(x[None]), [oh, ow], align_corners=False)[0]
            with tf.Session() as s:
                y = s.run(y)
        resizes.append({"name": name, "in_shape": list(shp), "in_offset": put(x),
                        "out_shape": list(y.shape), "offset": put(y)})

    boxes = [box_stats(tf, h, w, args.samples) for h, w in BOX_SIZES]

    data = np.concatenate(blob)
    with open(args.bin, "wb") as f:
        f.write(data.tobytes())
    doc = {
        "generator": "tests/reference/make_preprocess_fixtures.py",
        "tensorflow": tensorflow.__version__,
        "tf_slim": slim_version,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "slim_preprocessing_source": "%s (PyPI sdist, slim/preprocessing/), sha256 %s"
                                     % (SDIST, SDIST_SHA256)
                                     if not args.slim_src else "local: " + args.slim_src,
        "bin": os.path.basename(args.bin),
        "bin_floats": int(data.size),
        "bin_sha256": hashlib.sha256(data.tobytes()).hexdigest(),
        "images": image_meta,
        "resize_bilinear": resizes,
        "boxes": boxes,
        "cases": cases,
    }
    with open(args.json, "w") as f:
        f.write(dump(doc))
    print("wrote %s and %s: %d cases (%d through TF-slim's own code), %d resizes, "
          "%d box statistics, %d floats" % (args.json, args.bin, len(cases), n_slim,
                                            len(resizes), len(boxes), data.size))


if __name__ == "__main__":
    main()
