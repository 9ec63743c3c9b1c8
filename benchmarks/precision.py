"""bfloat16 (or float16) against float32 in one process: speed, output difference and quality.

SIPSA-Net (Lee, Seo, Kim, CVPR 2021) under the precision policy of
:mod:`sipsa_tf.core.precision` (docs/design.md, "Precision")::

    .venv/bin/python benchmarks/precision.py [--precision bfloat16] [--size 1024]
        [--scene_size 4096] [--train_steps 200] [--rounds 5]

Everything is measured in this one process, float32 and the low precision interleaved, so that
the machine's speed drifting (other jobs) hits both alike; the ratios are the result:

1. ``whole image``: :class:`sipsa_tf.Pansharpener` on one ``--size``^2 PAN image (bundled
   weights): the first call of each (graph optimisation, oneDNN primitives; building excluded),
   then ``--rounds`` timed calls after two warm-ups (the second lets XLA compile the FAM);
   fastest and median.
2. ``scene tool``: :func:`sipsa_tf.scene.pansharpen_scene` on a ``--scene_size``^2 uint16
   GeoTIFF pair (0 skips it), one untimed run then one timed run per precision.
3. ``training step``: AdamW steps of :class:`sipsa_tf.training.graph.TrainGraph` (Wald
   objective, the bundled checkpoint's batch 4 and MS crop 32), on the same fed batch, interleaved;
   then ``--train_steps`` steps from the same random initialisation (``--seed``) on the same
   fixed sequence of batches from the GRIP split's training regions: the loss of the last step,
   the mean of the last 20, and the loss of both final weights on one held batch (float32).
4. ``output difference``: |low - float32| in DN (11-bit: x 2047), max and 99.9th percentile,
   over the held-out regions of ``--split`` at full resolution and at reduced resolution.
5. ``held-out quality``: Q2n, SAM and ERGAS at reduced resolution (Wald protocol, as
   ``python -m sipsa_tf.evaluate --split``) on the same regions, per image and mean.

Needs the GRIP images (``--data_dir``, default ../shared/data/grip) for 3-5; without them those
parts are skipped, saying so.
"""
import os
import statistics
import sys
import tempfile
import time

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from scene_speed import _inputs  # noqa: E402  (the same synthetic image pairs)
from sipsa_tf.constants import BUNDLED_CHECKPOINT  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

flags.DEFINE_string("precision", "bfloat16", "The low precision compared with float32.")
flags.DEFINE_string("checkpoint", os.path.join(REPO, BUNDLED_CHECKPOINT),
                    "Weights of the inference and quality parts.")
flags.DEFINE_integer("size", 1024, "PAN side of the whole-image timing.")
flags.DEFINE_integer("rounds", 5, "Timed calls per precision (interleaved).")
flags.DEFINE_integer("scene_size", 4096, "PAN side of the scene-tool timing (0: skip).")
flags.DEFINE_integer("train_steps", 200, "Steps of the loss comparison (0: skip).")
flags.DEFINE_integer("timed_steps", 10, "Interleaved timed training steps per precision.")
flags.DEFINE_integer("seed", 0, "Seed of the initialisation and the training batches.")
flags.DEFINE_string("data_dir", os.path.join(REPO, "..", "shared", "data", "grip"),
                    "GRIP .mat files.")
flags.DEFINE_string("split", os.path.join(REPO, "experiments", "grip_split.json"),
                    "Split file: held-out regions for parts 4-5, training regions for part 3.")
FLAGS = flags.FLAGS

DN = 2047.0


def _timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _interleaved(fns, rounds):
    """{name: [seconds]} of ``rounds`` calls of each fn, the calls interleaved."""
    times = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            times[name].append(_timed(fn))
    return times


def _line(label, times, low):
    ref, got = times["float32"], times[low]
    print("%-34s float32 %7.3f s (median %7.3f)  %s %7.3f s (median %7.3f)  x %.2f (medians "
          "x %.2f)" % (label, min(ref), statistics.median(ref), low, min(got),
                       statistics.median(got), min(ref) / min(got),
                       statistics.median(ref) / statistics.median(got)), flush=True)


def whole_image(low, checkpoint, n, rounds):
    from sipsa_tf import Pansharpener
    ms, pan = _inputs(n)
    nets = {name: Pansharpener(checkpoint, precision=name) for name in ("float32", low)}
    try:
        first = {name: [_timed(lambda p=p: p(ms, pan))] for name, p in nets.items()}
        _line("whole image %d^2, first call" % n, first, low)
        for p in nets.values():
            p(ms, pan)
        _line("whole image %d^2, warm" % n,
              _interleaved({name: (lambda p=p: p(ms, pan)) for name, p in nets.items()},
                           rounds), low)
    finally:
        for p in nets.values():
            p.close()


def scene_tool(low, checkpoint, n):
    import numpy as np
    import tifffile
    from sipsa_tf import scene
    ms, pan = _inputs(n)
    with tempfile.TemporaryDirectory() as tmp:
        pan_path, ms_path = os.path.join(tmp, "pan.tif"), os.path.join(tmp, "ms.tif")
        tifffile.imwrite(pan_path, np.rint(pan * DN).astype(np.uint16))
        tifffile.imwrite(ms_path, np.rint(ms * DN).astype(np.uint16), photometric="rgb")
        del ms, pan
        models = {name: scene.TileModel(checkpoint, precision=name) for name in ("float32", low)}
        try:
            runs = {name: (lambda m=m, name=name: scene.pansharpen_scene(
                None, pan_path, ms_path, os.path.join(tmp, "out_%s.tif" % name),
                scene.SceneOptions(progress="off"), tile_model=m))
                for name, m in models.items()}
            _interleaved(runs, 1)  # compiles and oneDNN primitives for the tile shapes
            _line("scene tool %d^2 (GeoTIFF to GeoTIFF)" % n, _interleaved(runs, 1), low)
            a, b = (tifffile.imread(os.path.join(tmp, "out_%s.tif" % name)).astype(np.float64)
                    for name in ("float32", low))
            diff = np.abs(a - b)
            print("  scene tool output difference: max %.0f DN, 99.9th percentile %.2f DN"
                  % (diff.max(), np.percentile(diff, 99.9)))
        finally:
            for m in models.values():
                m.close()


def _train_graph(name, seed):
    from sipsa_tf.training.config import TrainConfig
    from sipsa_tf.training.graph import TrainGraph
    return TrainGraph(TrainConfig(data_dir="-", log_dir="-", objective="wald", batch_size=4,
                                  ms_patch=32, seed=seed, precision=name), test_ops=False)


def _training_batches(n, seed):
    from sipsa_tf.data import supervised
    regions = supervised.load_regions(supervised.load_split(FLAGS.split), "train",
                                      FLAGS.data_dir)
    sources = [supervised.WaldImage(r) for r in regions]
    stream = supervised.batches(sources, 32, 4, seed, supervised.Displacement(2.0, 0.5, 0.25))
    return [next(stream) for _ in range(n)]


def training(low, steps, timed_steps, seed):
    import numpy as np
    batches = _training_batches(steps + 1, seed)
    held = batches.pop()
    graphs = {name: _train_graph(name, seed) for name in ("float32", low)}
    sessions = {name: g.session() for name, g in graphs.items()}
    try:
        for name, g in graphs.items():
            g.initialize(sessions[name])
        fetch = {name: [g.loss_terms["loss"], g.train_op] for name, g in graphs.items()}
        history = {name: [] for name in graphs}
        for batch in batches:
            for name, g in graphs.items():
                history[name].append(float(sessions[name].run(fetch[name], g.feed(*batch))[0]))
        # Timing on one fed batch, after the loss run (warm).
        steps_fns = {name: (lambda name=name, g=g: sessions[name].run(fetch[name],
                                                                      g.feed(*held)))
                     for name, g in graphs.items()}
        _line("training step (Wald, batch 4, MS 32)", _interleaved(steps_fns, timed_steps), low)
        weights = {name: sessions[name].run(g.network_variables) for name, g in graphs.items()}
    finally:
        for s in sessions.values():
            s.close()
    # Both final networks evaluated in float32 on the held batch.
    ref_graph = graphs["float32"]
    held_loss = {}
    with ref_graph.session() as session:
        ref_graph.initialize(session)
        for name, values in weights.items():
            for var, value in zip(ref_graph.network_variables, values):
                var.load(value, session)
            held_loss[name] = float(session.run(ref_graph.loss_terms["loss"],
                                                ref_graph.feed(*held)))
    ref, got = history["float32"], history[low]
    print("  loss after %d steps (x1000): step %d float32 %.3f, %s %.3f (%+.2f%%); mean of the "
          "last 20 float32 %.3f, %s %.3f (%+.2f%%); first step %.3f / %.3f" % (
              steps, steps, 1e3 * ref[-1], low, 1e3 * got[-1], 100 * (got[-1] / ref[-1] - 1),
              1e3 * np.mean(ref[-20:]), low, 1e3 * np.mean(got[-20:]),
              100 * (np.mean(got[-20:]) / np.mean(ref[-20:]) - 1), 1e3 * ref[0], 1e3 * got[0]))
    print("  final weights on a held batch, float32 arithmetic (x1000): float32-trained %.3f, "
          "%s-trained %.3f (%+.2f%%)" % (1e3 * held_loss["float32"], low, 1e3 * held_loss[low],
                                         100 * (held_loss[low] / held_loss["float32"] - 1)))


def held_out(low, checkpoint):
    import numpy as np
    from sipsa_tf import Pansharpener
    from sipsa_tf.data import supervised
    from sipsa_tf.evaluation import protocols
    from sipsa_tf.evaluation.scenes import Scene
    regions = supervised.load_regions(supervised.load_split(FLAGS.split), "held_out",
                                      FLAGS.data_dir)
    scenes = [Scene(r.name, r.ms, r.pan, r.sensor, r.gains) for r in regions]
    nets = {name: Pansharpener(checkpoint, precision=name) for name in ("float32", low)}
    diffs = {"full": [], "reduced": []}
    rows = []
    try:
        for scene in scenes:
            outs = {}
            for protocol in ("full", "reduced"):
                ms, pan, _ = protocols.protocol_inputs(scene, protocol)
                outs[protocol] = {name: p(ms, pan)["output"] for name, p in nets.items()}
                diffs[protocol].append(np.abs(outs[protocol][low] - outs[protocol]["float32"])
                                       .ravel() * DN)
            rows.append((scene.name, {name: protocols.indices("reduced", outs["reduced"][name],
                                                               scene) for name in nets}))
    finally:
        for p in nets.values():
            p.close()
    for protocol, parts in diffs.items():
        d = np.concatenate(parts)
        print("output difference, held-out regions, %-7s resolution: max %.2f DN, 99.9th "
              "percentile %.2f DN, 99th %.2f DN, mean %.3f DN (%d values)" % (
                  protocol, d.max(), np.percentile(d, 99.9), np.percentile(d, 99), d.mean(),
                  d.size))
    print("held-out quality at reduced resolution (%s vs float32):" % low)
    print("  %-22s %8s %8s %9s %8s %8s %9s %8s %8s %9s" % (
        "image", "Q2n f32", "Q2n low", "diff", "SAM f32", "SAM low", "diff", "ERGAS f32",
        "ERGAS low", "diff"))
    means = {}
    for name, values in rows + [("mean", None)]:
        if values is None:
            values = {p: {k: float(np.mean([v[p][k] for _, v in rows]))
                          for k in ("q2n", "sam", "ergas")} for p in nets}
        cells = []
        for key in ("q2n", "sam", "ergas"):
            a, b = values["float32"][key], values[low][key]
            cells += [a, b, b - a]
        means[name] = cells
        print("  %-22s %8.4f %8.4f %+9.5f %8.3f %8.3f %+9.4f %8.3f %8.3f %+9.4f"
              % ((name,) + tuple(cells)))


def main(argv):
    del argv
    import numpy as np
    import tensorflow as tf
    from sipsa_tf.core import precision
    low = precision.check_name(FLAGS.precision)
    flags_line = sorted(precision.cpu_flags() & {"avx512f", "avx512_bf16", "avx512_fp16",
                                                  "amx_bf16", "amx_tile", "amx_fp16"})
    print("precision benchmark: %s vs float32, TensorFlow %s, NumPy %s, CPU flags: %s; %d CPUs"
          % (low, tf.__version__, np.__version__, " ".join(flags_line), os.cpu_count()))
    print("(one process; ratios are float32 time / %s time)" % low, flush=True)
    grip = os.path.isdir(FLAGS.data_dir)
    whole_image(low, FLAGS.checkpoint, FLAGS.size, FLAGS.rounds)
    if FLAGS.scene_size:
        scene_tool(low, FLAGS.checkpoint, FLAGS.scene_size)
    if not grip:
        print("GRIP images not found in %s: training, output difference and quality skipped"
              % FLAGS.data_dir)
        return 0
    held_out(low, FLAGS.checkpoint)
    if FLAGS.train_steps:
        training(low, FLAGS.train_steps, FLAGS.timed_steps, FLAGS.seed)
    return 0


if __name__ == "__main__":
    app.run(main)
