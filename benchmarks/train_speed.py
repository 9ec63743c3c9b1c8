"""Training speed and peak memory: the lean loss against the original's literal (stacked 98 x B) loss.

SIPSA-Net (Lee, Seo, Kim, CVPR 2021) takes, for every pixel, the minimum of |y - roll(ref, t)|
over 98 shifts t and the batch; the original stacks the 98 x B shifted images (memory ~ 98 x B
images, for the loss and its gradient). :mod:`sipsa_tf.core.losses` computes the same value and
gradient with a running minimum. This script times full AdamW training steps
(:class:`sipsa_tf.training.loop.TrainGraph`) with both, each configuration in its own subprocess so
that the peak resident memory (``ru_maxrss``) of one does not hide the other's, and prints the
ratios against the literal loss (the reference)::

    .venv/bin/python benchmarks/train_speed.py [--batch_size 2 --ms_patch 32 --steps 30]

Both configurations train on the same fixed batch of synthetic crops (sipsa_tf.data.synthetic).
"""
import json
import os
import resource
import subprocess
import sys
import time

from absl import app, flags

flags.DEFINE_integer("batch_size", 2, "Crops per batch.")
flags.DEFINE_integer("ms_patch", 32, "MS crop size (PAN is 4x).")
flags.DEFINE_integer("steps", 30, "Timed training steps per configuration.")
flags.DEFINE_integer("warmup", 3, "Untimed steps first.")
flags.DEFINE_integer("threads", 0, "TensorFlow threads (0: default).")
flags.DEFINE_enum("child", None, ["lean", "literal"], "Internal: measure one configuration.")
FLAGS = flags.FLAGS

CONFIGURATIONS = ("lean", "literal")  # the last one is the reference of the ratios


def _peak_rss_mb():
    """Peak resident set size of this process in MiB (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def measure(name, batch_size, ms_patch, steps, warmup, threads):
    """Builds the training graph with the ``name`` loss and times ``steps`` AdamW steps.

    Returns:
        dict: its_per_s, peak_rss_mb, rss_before_mb (after building, before the first step),
        first_loss (loss x 1000 of the first step), loss_drop (first - last loss x 1000).
    """
    import numpy as np
    import tensorflow as tf
    from sipsa_tf import data
    from sipsa_tf.data import synthetic
    from sipsa_tf.training import loop

    tf.compat.v1.disable_v2_behavior()
    rng = np.random.default_rng(0)
    ms_dn, pan_dn, _ = synthetic.make_scene(0, "train", 0, max(2 * ms_patch, 16))
    ms = ms_dn.astype(np.float32) / data.IMG_DIV
    pan = pan_dn.astype(np.float32)[..., None] / data.IMG_DIV
    ms_batch, pan_batch = data.random_crops(ms, pan, batch_size, ms_patch, rng)
    config = loop.TrainConfig(data_dir="-", log_dir="-", batch_size=batch_size,
                                   ms_patch=ms_patch, literal_loss=(name == "literal"),
                                   threads=threads)
    graph = loop.TrainGraph(config, test_ops=False)
    fetches = {"loss": graph.loss_terms["loss"], "step": graph.step_after,
               "train": graph.train_op}
    with graph.session() as session:
        graph.initialize(session)
        feed = graph.feed(ms_batch, pan_batch)
        rss_before = _peak_rss_mb()
        losses = [float(session.run(fetches, feed)["loss"]) for _ in range(warmup)]
        start = time.perf_counter()
        for _ in range(steps):
            losses.append(float(session.run(fetches, feed)["loss"]))
        elapsed = time.perf_counter() - start
    return {"its_per_s": steps / elapsed, "peak_rss_mb": _peak_rss_mb(),
            "rss_before_mb": rss_before, "first_loss": losses[0] * 1000.0,
            "loss_drop": (losses[0] - losses[-1]) * 1000.0}


def _run_child(name):
    args = [sys.executable, os.path.abspath(__file__), "--child", name,
            "--batch_size=%d" % FLAGS.batch_size, "--ms_patch=%d" % FLAGS.ms_patch,
            "--steps=%d" % FLAGS.steps, "--warmup=%d" % FLAGS.warmup,
            "--threads=%d" % FLAGS.threads]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run(args, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        tail = result.stderr.strip().splitlines()[-1:] or ["(no output)"]
        raise SystemExit("error: the %s configuration failed: %s" % (name, tail[0]))
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv):
    del argv
    if FLAGS.child:
        print(json.dumps(measure(FLAGS.child, FLAGS.batch_size, FLAGS.ms_patch, FLAGS.steps,
                                 FLAGS.warmup, FLAGS.threads)))
        return 0
    print("SIPSA-Net training steps, batch %d, MS %dx%d (PAN %dx%d), %d timed steps after %d; "
          "each configuration in its own process" % (
              FLAGS.batch_size, FLAGS.ms_patch, FLAGS.ms_patch, 4 * FLAGS.ms_patch,
              4 * FLAGS.ms_patch, FLAGS.steps, FLAGS.warmup))
    results = {}
    for name in CONFIGURATIONS:
        print("measuring %s ..." % name, file=sys.stderr, flush=True)
        results[name] = _run_child(name)
    ref = results[CONFIGURATIONS[-1]]
    print("%-8s %9s %9s %15s %15s %13s %11s" % ("loss", "it/s", "x speed", "peak RSS MiB",
                                                  "step RSS MiB", "x step RSS", "loss x1000"))
    for name in CONFIGURATIONS:
        r = results[name]
        step_rss = r["peak_rss_mb"] - r["rss_before_mb"]
        ref_step_rss = ref["peak_rss_mb"] - ref["rss_before_mb"]
        print("%-8s %9.2f %9.2f %15.0f %15.0f %13.2f %11.3f" % (
            name, r["its_per_s"], r["its_per_s"] / ref["its_per_s"], r["peak_rss_mb"],
            step_rss, step_rss / max(ref_step_rss, 1e-9), r["first_loss"]))
    print("(x columns: ratio to the literal loss; step RSS: peak RSS minus RSS after building "
          "the graph; same first loss = same loss value)")
    return 0


if __name__ == "__main__":
    app.run(main)
