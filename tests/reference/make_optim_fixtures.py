#!/usr/bin/env python3
"""Writes tests/reference/optim_steps.json: TensorFlow's optimizers, moving averages and
learning-rate schedules on small tensors, for slimnet's `optim` suite (tests/test_optim.c).

Run with the pinned virtualenv (tests/reference/setup.sh):
    tests/reference/.venv/bin/python tests/reference/make_optim_fixtures.py [--out FILE]

What it records (every float is a float32 value written exactly, as a decimal double):
  variables   three float32 variables, "net/w" (3,4), "net/b" (5,) and "frozen/v" (2,),
              their initial values, and the gradients fed at each of STEPS steps
  lr          the learning rate fed at each step (a placeholder, as a decaying rate is)
  optimizers  for each case: the tf.compat.v1.train optimizer built exactly as TF-slim's
              train_image_classifier._configure_optimizer builds it from its flags (the
              case's "params", named as slimnet's sn_optim_params fields), applied with
              apply_gradients(global_step=...) to the variables train_image_classifier's
              _get_variables_to_train picks for --trainable_scopes (case "trainable_scopes",
              null = all); after each step: global_step, every variable, and every
              optimizer variable (slots and beta1_power/beta2_power) by TensorFlow's name
  ema         tf.train.ExponentialMovingAverage(decay, num_updates) over the variables,
              applied after new values are assigned, with and without num_updates
  schedules   tf.compat.v1.train.exponential_decay (staircase=True) and polynomial_decay
              (power 1, cycle False) with decay_steps computed as train_image_classifier
              computes it, at chosen global steps
"""
import argparse
import json
import os
import platform
import re
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_slim  # noqa: E402,F401  (its version is recorded: the pinned pair)

tf1 = tf.compat.v1
tf1.logging.set_verbosity(tf1.logging.ERROR)

STEPS = 3
VARS = [("net/w", (3, 4)), ("net/b", (5,)), ("frozen/v", (2,))]

# train_image_classifier's flag defaults (upstream), in slimnet's field names.
SLIM_FLAGS = dict(momentum=0.9, nesterov=0, rmsprop_decay=0.9, rmsprop_momentum=0.9,
                  epsilon=1.0, adam_beta1=0.9, adam_beta2=0.999, adadelta_rho=0.95,
                  adagrad_initial_accumulator=0.1, ftrl_lr_power=-0.5,
                  ftrl_initial_accumulator=0.1, ftrl_l1=0.0, ftrl_l2=0.0)

# (case, --optimizer, overrides of the flag defaults, trainable_scopes)
CASES = [
    ("sgd", "sgd", {}, None),
    ("momentum", "momentum", {}, None),
    ("momentum_nesterov", "momentum", {"nesterov": 1}, None),
    ("rmsprop", "rmsprop", {}, None),
    ("adam", "adam", {}, None),
    ("adagrad", "adagrad", {}, None),
    ("adadelta", "adadelta", {}, None),
    ("ftrl", "ftrl", {}, None),
    # Small epsilons (TF1's own defaults) make the denominators matter.
    ("rmsprop_eps", "rmsprop", {"epsilon": 1e-10, "rmsprop_momentum": 0.5}, None),
    ("adam_eps", "adam", {"epsilon": 1e-8, "adam_beta1": 0.8, "adam_beta2": 0.99}, None),
    ("adadelta_eps", "adadelta", {"epsilon": 1e-6, "adadelta_rho": 0.9}, None),
    # FTRL's regularized and general-power paths.
    ("ftrl_l1l2", "ftrl", {"ftrl_l1": 0.05, "ftrl_l2": 0.1}, None),
    ("ftrl_power", "ftrl", {"ftrl_lr_power": -0.7, "ftrl_l1": 0.01,
                            "ftrl_initial_accumulator": 0.5}, None),
    # --trainable_scopes: only net/* is updated; frozen/v gets no slots.
    ("adam_scopes", "adam", {}, "net"),
    ("momentum_scopes", "momentum", {}, "net/w, frozen"),
    # Scopes match TF's variable names "<name>:0" from the start (re.match).
    ("sgd_scopes_colon", "sgd", {}, "net/b:0,frozen/.:"),
]


def f32list(a):
    return [float(x) for x in np.asarray(a, dtype=np.float32).ravel()]


def configure_optimizer(name, p, lr):
    """train_image_classifier._configure_optimizer, with FLAGS replaced by p."""
    t = tf1.train
    if name == "adadelta":
        return t.AdadeltaOptimizer(lr, rho=p["adadelta_rho"], epsilon=p["epsilon"])
    if name == "adagrad":
        return t.AdagradOptimizer(
            lr, initial_accumulator_value=p["adagrad_initial_accumulator"])
    if name == "adam":
        return t.AdamOptimizer(lr, beta1=p["adam_beta1"], beta2=p["adam_beta2"],
                               epsilon=p["epsilon"])
    if name == "ftrl":
        return t.FtrlOptimizer(lr, learning_rate_power=p["ftrl_lr_power"],
                               initial_accumulator_value=p["ftrl_initial_accumulator"],
                               l1_regularization_strength=p["ftrl_l1"],
                               l2_regularization_strength=p["ftrl_l2"])
    if name == "momentum":
        # TF-slim passes name='Momentum'; use_nesterov is not a TF-slim flag but is
        # MomentumOptimizer's own argument.
        return t.MomentumOptimizer(lr, momentum=p["momentum"], name="Momentum",
                                   use_nesterov=bool(p["nesterov"]))
    if name == "rmsprop":
        return t.RMSPropOptimizer(lr, decay=p["rmsprop_decay"],
                                  momentum=p["rmsprop_momentum"], epsilon=p["epsilon"])
    if name == "sgd":
        return t.GradientDescentOptimizer(lr)
    raise ValueError(name)


def variables_to_train(trainable_scopes):
    """train_image_classifier._get_variables_to_train."""
    if trainable_scopes is None:
        return tf1.trainable_variables()
    scopes = [scope.strip() for scope in trainable_scopes.split(",")]
    out = []
    for scope in scopes:
        out.extend(tf1.get_collection(tf1.GraphKeys.TRAINABLE_VARIABLES, scope))
    return out


def run_case(case, opt_name, overrides, scopes, init, grads, lrs):
    p = dict(SLIM_FLAGS)
    p.update(overrides)
    with tf.Graph().as_default():
        gs = tf1.train.create_global_step()
        vs = {}
        for name, shape in VARS:
            scope, leaf = name.split("/")
            with tf1.variable_scope(scope):
                vs[name] = tf1.get_variable(leaf, initializer=tf.constant(init[name]))
        train_vars = variables_to_train(scopes)
        g_ph = {n: tf1.placeholder(tf.float32, s) for n, s in VARS}
        lr_ph = tf1.placeholder(tf.float32, ())
        opt = configure_optimizer(opt_name, p, lr_ph)
        op = opt.apply_gradients([(g_ph[v.op.name], v) for v in train_vars], global_step=gs)
        opt_vars = sorted(opt.variables(), key=lambda v: v.op.name)
        steps = []
        with tf1.Session() as s:
            s.run(tf1.global_variables_initializer())
            for k in range(STEPS):
                feed = {g_ph[n]: grads[k][n] for n, _ in VARS}
                feed[lr_ph] = lrs[k]
                s.run(op, feed)
                steps.append({
                    "global_step": int(s.run(gs)),
                    "vars": {n: f32list(s.run(v)) for n, v in vs.items()},
                    "slots": {v.op.name: f32list(s.run(v)) for v in opt_vars},
                })
        return {
            "case": case,
            "optimizer": opt_name,
            "tf_class": type(opt).__name__,
            "params": p,
            "trainable_scopes": scopes,
            "trained": [v.op.name for v in train_vars],
            "slot_names": [v.op.name for v in opt_vars],
            "slot_shapes": {v.op.name: v.shape.as_list() for v in opt_vars},
            "steps": steps,
        }


def run_ema(init, rs):
    """EMA over every variable: new values assigned, then apply, at given num_updates."""
    names = [n for n, _ in VARS]
    shape = dict(VARS)
    num_updates = [0, 1, 7, 1000]
    values = [{n: rs.standard_normal(shape[n]).astype(np.float32) for n in names}
              for _ in num_updates]
    out = []
    for decay, with_updates in ((0.9, True), (0.99, False), (0.9999, True)):
        with tf.Graph().as_default():
            nu = tf1.get_variable("num_updates", initializer=tf.constant(0, tf.int64),
                                  trainable=False)
            vs = {}
            for name in names:
                scope, leaf = name.split("/")
                with tf1.variable_scope(scope):
                    vs[name] = tf1.get_variable(leaf, initializer=tf.constant(init[name]))
            ema = tf1.train.ExponentialMovingAverage(decay,
                                                     num_updates=nu if with_updates else None)
            apply = ema.apply([vs[n] for n in names])
            val_ph = {n: tf1.placeholder(tf.float32, shape[n]) for n in names}
            assigns = [vs[n].assign(val_ph[n]) for n in names]
            nu_ph = tf1.placeholder(tf.int64, ())
            nu_assign = nu.assign(nu_ph)
            steps = []
            with tf1.Session() as s:
                s.run(tf1.global_variables_initializer())
                for k, n_up in enumerate(num_updates):
                    feed = {val_ph[n]: values[k][n] for n in names}
                    feed[nu_ph] = n_up
                    s.run(assigns + [nu_assign], feed)
                    s.run(apply)
                    steps.append({
                        "num_updates": n_up if with_updates else -1,
                        "values": {n: f32list(values[k][n]) for n in names},
                        "shadows": {ema.average(vs[n]).op.name: f32list(
                            s.run(ema.average(vs[n]))) for n in names},
                    })
            out.append({"decay": decay, "with_num_updates": with_updates,
                        "shadow_names": [ema.average(vs[n]).op.name for n in names],
                        "steps": steps})
    return out


def run_schedules():
    """train_image_classifier._configure_learning_rate at chosen steps."""
    configs = [
        # (num_samples, num_epochs_per_decay, batch_size, replicas_to_aggregate)
        (3320, 2.0, 32, None),       # flowers train, the flag defaults
        (28709, 2.5, 64, None),      # FER2013 train
        (3320, 2.0, 32, 2),          # sync_replicas: decay_steps becomes a float
        (1312, 1.0, 32, None),       # 41 steps: float32(41) * (1/41) < 1, see below
        (1000, 0.03, 32, None),      # int() rounds to 0 steps: the schedules divide by 0
    ]
    base = [0, 1, 2, 102, 103, 206, 207, 208, 413, 414, 1000, 5000, 123456]
    out = []
    for num_samples, epochs, bs, replicas in configs:
        decay_steps = int(num_samples * epochs / bs)
        if replicas:
            decay_steps /= replicas
        if decay_steps == 0:
            continue   # TF divides by zero here (inf/nan rates); slimnet reports an error
        # Around the multiples of decay_steps: Grappler turns step / decay_steps (a constant)
        # into step * (1 / decay_steps), which can round a multiple just below the integer.
        ds = int(decay_steps)
        steps = sorted(set(base + [m * ds + e for m in (1, 2, 3) for e in (-1, 0, 1)]))
        with tf.Graph().as_default():
            gs = tf1.placeholder(tf.int64, ())
            lr, factor, end = 0.01, 0.94, 0.0001
            expo = tf1.train.exponential_decay(lr, gs, decay_steps, factor, staircase=True)
            poly = tf1.train.polynomial_decay(lr, gs, decay_steps, end, power=1.0,
                                              cycle=False)
            fixed = tf.constant(lr)
            rows = []
            with tf1.Session() as s:
                for st in steps:
                    e, p_, f = s.run([expo, poly, fixed], {gs: st})
                    rows.append({"step": st, "exponential": float(e), "polynomial": float(p_),
                                 "fixed": float(f)})
        out.append({"num_samples": num_samples, "num_epochs_per_decay": epochs,
                    "batch_size": bs, "replicas_to_aggregate": replicas or 1,
                    "decay_steps": float(decay_steps), "learning_rate": 0.01,
                    "decay_factor": 0.94, "end_learning_rate": 0.0001, "rows": rows})
    return out


def main():
    ap = argparse.ArgumentParser()
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(here, "optim_steps.json"))
    args = ap.parse_args()

    rs = np.random.RandomState(20240611)
    init = {n: rs.standard_normal(s).astype(np.float32) for n, s in VARS}
    grads = [{n: (rs.standard_normal(s) * 0.5).astype(np.float32) for n, s in VARS}
             for _ in range(STEPS)]
    lrs = [np.float32(x) for x in (0.1, 0.05, 0.2)]
    fixture = {
        "generator": "tests/reference/make_optim_fixtures.py",
        "tensorflow": tf.__version__,
        "tf_slim": tf_slim.__version__ if hasattr(tf_slim, "__version__") else "1.1.0",
        "numpy": np.__version__,
        "python": platform.python_version(),
        "variables": [{"name": n, "shape": list(s), "init": f32list(init[n])}
                      for n, s in VARS],
        "grads": [{n: f32list(g[n]) for n, _ in VARS} for g in grads],
        "lr": [float(x) for x in lrs],
        "optimizers": [run_case(c, o, ov, sc, init, grads, lrs) for c, o, ov, sc in CASES],
        "ema": run_ema(init, rs),
        "schedules": run_schedules(),
    }
    text = json.dumps(fixture, indent=1)
    # One line per list of numbers: small, and readable in a diff.
    text = re.sub(r"\[\s*([-+0-9.e,\s]+?)\s*\]",
                  lambda m: "[" + ", ".join(m.group(1).split()).replace(",,", ",") + "]", text)
    with open(args.out, "w") as f:
        f.write(text + "\n")
    print("wrote", args.out, file=sys.stderr)


if __name__ == "__main__":
    main()
