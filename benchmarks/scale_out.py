"""Scaling out on one machine: training replicas and scene workers, as ratios in one run.

SIPSA-Net (Lee, Seo, Kim, CVPR 2021). Two measurements (docs/scaling.md):

* training: AdamW steps/s of the session trainer (:class:`sipsa_tf.training.loop.TrainGraph`) on one
  device (``--strategy=default``, the reference) and with ``--strategy=mirrored`` over two
  CPU devices made by the session (``/cpu:0,/cpu:1``), the same global batch for both; each in
  its own process, with its peak RSS and the RSS the steps add (per replica: divided by the
  replicas). Both CPU devices share the process's thread pool: on a CPU this measures the
  strategy's overhead, not a speed-up, which needs one GPU per replica.
* scenes: a 4096^2 PAN uint16 scene (bundled default checkpoint) through the single-process scene tool (the reference) and
  through a Dask LocalCluster of 1 and 2 worker processes (``sipsa_tf.scene.cluster``), the
  cores shared out between the workers; wall time (workers started before, their tile models
  built by their first tile, inside the timing), MPix/s and the workers' peak RSS.

    .venv/bin/python benchmarks/scale_out.py [--part=both|train|scene] [--scene_size=4096]

Results depend on what else runs on the machine; the script prints the load average.
"""
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np
from absl import app, flags

from sipsa_tf.constants import BUNDLED_CHECKPOINT  # no TensorFlow import

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from scene_speed import _inputs, _write_pair  # noqa: E402  (the same synthetic image pairs)

flags.DEFINE_enum("part", "both", ["both", "train", "scene"], "What to measure.")
flags.DEFINE_integer("batch_size", 4, "Training: global batch (split over the replicas).")
flags.DEFINE_integer("ms_patch", 32, "Training: MS crop size (PAN is 4x).")
flags.DEFINE_integer("steps", 20, "Training: timed steps per configuration.")
flags.DEFINE_integer("warmup", 3, "Training: untimed steps first.")
flags.DEFINE_integer("scene_size", 4096, "Scenes: PAN side in pixels.")
flags.DEFINE_integer("tile", 1024, "Scenes: --tile (PAN pixels).")
flags.DEFINE_string("child", None, "Internal: one training configuration (devices).")
FLAGS = flags.FLAGS

TRAIN_CONFIGURATIONS = (("2 replicas (mirrored, /cpu:0,/cpu:1)", "/cpu:0,/cpu:1"),
                        ("1 device (default)", ""))  # the last is the reference


def _peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def measure_training(devices, batch_size, ms_patch, steps, warmup):
    """Steps/s and memory of one configuration (this process)."""
    import tensorflow as tf
    from sipsa_tf.training import loop
    tf.compat.v1.disable_v2_behavior()
    crops = [_inputs(4 * ms_patch, seed) for seed in range(batch_size)]
    ms_batch = np.stack([ms for ms, _ in crops])
    pan_batch = np.stack([pan for _, pan in crops])[..., None]
    config = loop.TrainConfig(data_dir="-", log_dir="-", batch_size=batch_size,
                                   ms_patch=ms_patch, strategy="mirrored" if devices
                                   else "default", devices=devices or None)
    graph = loop.TrainGraph(
        config, lambda: tf.data.Dataset.from_tensors((ms_batch, pan_batch)).repeat(),
        test_ops=False)
    fetches = {"loss": graph.loss_terms["loss"], "step": graph.step_after,
               "train": graph.train_op}
    with graph.session() as session:
        graph.initialize(session)
        rss_before = _peak_rss_mb()
        for _ in range(warmup):
            session.run(fetches)
        start = time.perf_counter()
        for _ in range(steps):
            session.run(fetches)
        elapsed = time.perf_counter() - start
    replicas = graph.replicas.count if graph.replicas else 1
    return {"steps_per_s": steps / elapsed, "peak_rss_mb": _peak_rss_mb(),
            "step_rss_mb": _peak_rss_mb() - rss_before, "replicas": replicas}


def _train_child(devices):
    args = [sys.executable, os.path.abspath(__file__), "--child=" + (devices or "default"),
            "--batch_size=%d" % FLAGS.batch_size, "--ms_patch=%d" % FLAGS.ms_patch,
            "--steps=%d" % FLAGS.steps, "--warmup=%d" % FLAGS.warmup]
    result = subprocess.run(args, capture_output=True, text=True,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    if result.returncode != 0:
        raise SystemExit("error: training child %s failed: %s"
                         % (devices, result.stderr.strip()[-2000:]))
    return json.loads(result.stdout.strip().splitlines()[-1])


def train_part():
    print("training: global batch %d, MS %d^2 (PAN %d^2), %d timed steps after %d, each "
          "configuration in its own process" % (FLAGS.batch_size, FLAGS.ms_patch,
                                                4 * FLAGS.ms_patch, FLAGS.steps, FLAGS.warmup))
    results = [(name, _train_child(devices)) for name, devices in TRAIN_CONFIGURATIONS]
    ref = results[-1][1]
    print("| configuration | steps/s | x speed | peak RSS MiB | step RSS MiB | per replica |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, r in results:
        print("| %s | %.2f | %.2f | %.0f | %.0f | %.0f |" % (
            name, r["steps_per_s"], r["steps_per_s"] / ref["steps_per_s"], r["peak_rss_mb"],
            r["step_rss_mb"], r["step_rss_mb"] / r["replicas"]))


def scene_part():
    import dataclasses
    from sipsa_tf import scene
    from sipsa_tf.scene import cluster
    n = FLAGS.scene_size
    checkpoint = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                              BUNDLED_CHECKPOINT)
    with tempfile.TemporaryDirectory() as tmp:
        pan_path, ms_path = _write_pair(tmp, n)
        options = scene.SceneOptions(tile=FLAGS.tile, progress="off")
        rows = []
        start = time.perf_counter()
        scene.pansharpen_scene(checkpoint, pan_path, ms_path, os.path.join(tmp, "one.tif"),
                               options)
        rows.append(("one process (scene tool)", time.perf_counter() - start, None))
        for workers in (1, 2):
            client = cluster.start_client(workers=workers)
            try:
                opts = dataclasses.replace(
                    options, threads=cluster.local_threads(workers, options.threads))
                start = time.perf_counter()
                cluster.pansharpen_on_cluster(client, checkpoint,
                                              [(pan_path, ms_path, os.path.join(
                                                  tmp, "w%d.tif" % workers))], opts)
                seconds = time.perf_counter() - start
                rss = client.run(_peak_rss_mb)
            finally:
                client.close()
                client.cluster.close()
            rows.append(("LocalCluster, %d worker%s x %d threads" % (
                workers, "s" if workers > 1 else "", opts.threads), seconds,
                max(rss.values())))
    ref = rows[0][1]
    mpix = n * n / 1e6
    print("scenes: %d^2 PAN uint16, --tile %d (%d tiles), %d cores" % (
        n, FLAGS.tile, (-(-n // FLAGS.tile)) ** 2, os.cpu_count()))
    print("| run | seconds | PAN MPix/s | x speed | largest worker peak RSS MiB |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, seconds, rss in rows:
        print("| %s | %.1f | %.3f | %.2f | %s |" % (name, seconds, mpix / seconds, ref / seconds,
                                                 "-" if rss is None else "%.0f" % rss))


def main(argv):
    del argv
    if FLAGS.child:
        devices = "" if FLAGS.child == "default" else FLAGS.child
        print(json.dumps(measure_training(devices, FLAGS.batch_size, FLAGS.ms_patch,
                                          FLAGS.steps, FLAGS.warmup)))
        return 0
    print("load average at start: %.2f %.2f %.2f" % os.getloadavg())
    if FLAGS.part in ("both", "train"):
        train_part()
    if FLAGS.part in ("both", "scene"):
        scene_part()
    print("load average at end: %.2f %.2f %.2f" % os.getloadavg())
    return 0


if __name__ == "__main__":
    app.run(main)
