"""Speed and peak memory of scene-scale SIPSA-Net pan-sharpening (Lee, Seo, Kim, CVPR 2021).

    .venv/bin/python benchmarks/scene_speed.py [--sizes 512,1024,4096] [--repeats 2] [--rounds 1]

Prints, in one run, PAN megapixels per second and peak RSS for square PAN scenes of each size:

- ``whole``: the in-memory :class:`sipsa_tf.inference.Pansharpener` (lean FAM under XLA), one image;
- ``literal``: ``Pansharpener(literal=True)``, the original's formulation (FAM through an explicit
  81-tap patch tensor), one image;
- ``tiled``: the scene tool :func:`sipsa_tf.scene.pansharpen_scene`, GeoTIFF to GeoTIFF, default
  tile 2048, tail pieces 768 and halo 32 MS pixels (reading, halo, writing all included); at
  1024^2 also with tile 512 (2 x 2 tiles) so that the halo is paid there too.

Each configuration runs in a fresh subprocess (its peak RSS, ``ru_maxrss``, includes TensorFlow
itself); the first two calls at a size are warm-ups (the second lets XLA compile the
FAM) and the best of ``--repeats`` timed calls is kept.
In-memory runs whose RSS, extrapolated from the largest smaller size, would not fit in 80% of the
available memory are skipped, saying so. The reference is a 3 x 3, 64 -> 64 ``tf.nn.conv2d`` on a
1024 x 1024 map in another subprocess of the same run; FLOP rates are given as a fraction of its
rate. The FLOP count per PAN pixel is counted on the inference graph (see :func:`count_flops`).
With ``--rounds R`` every configuration runs R times, the rounds interleaved (whole, literal,
tiled, whole, ...), so that the machine's speed drifting during the run affects all of them; the
fastest round and the largest peak RSS are reported.

``--one_shot`` measures what a user pays instead: for each of ``--sizes`` (default here: 1024 and
2048), one fresh process per configuration, no warm-up, the process's whole wall time
(interpreter, imports, graph building, restore, XLA compiles, reading, fusing, writing):

- ``cli``: ``python -m sipsa_tf.pansharpen`` on uint16 GeoTIFFs with ``--checkpoint`` (default the
  bundled one), exactly as a user runs it;
- ``literal``: a process that builds ``Pansharpener(literal=True)`` (the original's formulation)
  from the same checkpoint and fuses the same arrays once.

It prints the seconds per size and the marginal throughput between the two sizes (extra PAN
pixels / extra seconds, which leaves out the fixed start-up cost), and their ratio.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

from sipsa_tf.constants import BUNDLED_CHECKPOINT  # no TensorFlow import

REF_SIZE, REF_CHANNELS = 1024, 64


def _rss_gb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # kB on Linux


def _inputs(n, seed=0):
    rng = np.random.default_rng(seed)
    ms = rng.random((n // 4, n // 4, 3), np.float32)
    pan = np.kron(ms.mean(axis=2), np.ones((4, 4), np.float32)) * 0.7 \
        + 0.3 * rng.random((n, n), np.float32)
    return ms, pan


def _best(fn, repeats):
    # Warm-up: graph optimisation and oneDNN primitives for this shape; the second call lets XLA
    # compile the FAM (it compiles lazily, not on the first call with a shape).
    fn()
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def child_memory(kind, n, repeats):
    """Pansharpener (lean or literal) on one n x n PAN image."""
    from sipsa_tf.inference import Pansharpener
    ms, pan = _inputs(n)
    with Pansharpener(None, seed=0, literal=kind == "literal") as p:
        seconds = _best(lambda: p(ms, pan), repeats)
    return {"seconds": seconds}


def _write_pair(directory, n):
    """The n x n PAN and its MS as uint16 (11-bit) TIFFs in ``directory``; returns the paths."""
    import tifffile
    ms, pan = _inputs(n)
    pan_path, ms_path = os.path.join(directory, "pan.tif"), os.path.join(directory, "ms.tif")
    tifffile.imwrite(pan_path, np.rint(pan * 2047).astype(np.uint16))
    tifffile.imwrite(ms_path, np.rint(ms * 2047).astype(np.uint16), photometric="rgb")
    return pan_path, ms_path


def child_tiled(n, repeats, tile, cog=False):
    """The scene tool on n x n PAN GeoTIFFs (uint16, 11-bit) written to a temporary folder
    (``cog``: COG output, ``--cog``)."""
    from sipsa_tf import scene
    with tempfile.TemporaryDirectory() as tmp:
        pan_path, ms_path = _write_pair(tmp, n)
        model = scene.TileModel(None, seed=0)
        options = scene.SceneOptions(tile=tile, bits=11, progress="off",
                                     **({"cog": True} if cog else {}))
        out = os.path.join(tmp, "out.tif")

        def run():
            return scene.pansharpen_scene(None, pan_path, ms_path, out, options, tile_model=model)

        if n >= 2 * tile:  # several tiles: warm up on the first tile's window instead
            core, window = scene.plan_tiles(n // 4, n // 4, tile // 4, options.halo)[0]
            for _ in range(2):  # twice: XLA compiles the FAM lazily
                _warm_window(model, core, window, options.tail_tile)
            seconds = min(run()["seconds"] for _ in range(max(1, repeats - 1)))
        else:
            seconds = _best(run, repeats)
        tiles = len(scene.plan_tiles(n // 4, n // 4, tile // 4, options.halo))
        model.close()
    return {"seconds": seconds, "tiles": tiles}


def _warm_window(model, core, window, tail_tile):
    """One window with the shapes of the scene's first tile (boxes in MS pixels)."""
    from sipsa_tf import scene
    ms, pan = _inputs(4 * (window[1] - window[0]))
    ms, pan = ms[:, :window[3] - window[2]], pan[:, :4 * (window[3] - window[2])]
    scene.sharpen_window(model, ms, pan, core, window, tail_tile)


def child_literal_once(n, checkpoint):
    """One-shot literal run: build, restore, fuse once (the process's wall time is measured)."""
    from sipsa_tf.inference import Pansharpener
    ms, pan = _inputs(n)
    with Pansharpener(checkpoint, literal=True) as p:
        p(ms, pan)
    return {}


def one_shot(sizes, checkpoint, rounds):
    """Fresh-process wall times of the command line and of the literal formulation."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    seconds = {}
    with tempfile.TemporaryDirectory() as tmp:
        pairs = {}
        for n in sizes:  # written once, read by every round
            folder = os.path.join(tmp, str(n))
            os.makedirs(folder)
            pairs[n] = (folder,) + _write_pair(folder, n)
        for _ in range(rounds):  # interleaved rounds; the fastest is kept
            for n in sizes:
                folder, pan_path, ms_path = pairs[n]
                commands = {
                    "cli": [sys.executable, "-m", "sipsa_tf.pansharpen", "--pan", pan_path,
                            "--ms", ms_path, "--out", os.path.join(folder, "out.tif"),
                            "--checkpoint", checkpoint, "--progress=off"],
                    "literal": [sys.executable, os.path.abspath(__file__), "--child",
                                "literal_once", "--size", str(n), "--checkpoint", checkpoint]}
                for kind, cmd in commands.items():
                    start = time.perf_counter()
                    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
                    elapsed = time.perf_counter() - start
                    if res.returncode != 0:
                        tail = (res.stderr.strip().splitlines() or ["no output"])[-1]
                        raise SystemExit("%s at %d^2 failed: %s" % (kind, n, tail))
                    key = (kind, n)
                    seconds[key] = min(seconds.get(key, float("inf")), elapsed)
    print("one-shot: fresh process each, no warm-up, wall time of the whole process")
    print("%-8s %s" % ("config", " ".join("%9d^2" % n for n in sizes)))
    for kind in ("cli", "literal"):
        print("%-8s %s" % (kind, " ".join("%10.2f s" % seconds[(kind, n)] for n in sizes)))
    small, large = sizes[0], sizes[-1]
    extra = (large * large - small * small) / 1e6
    marginal = {kind: extra / (seconds[(kind, large)] - seconds[(kind, small)])
                for kind in ("cli", "literal")}
    for kind in ("cli", "literal"):
        print("  %s: %.3f MPix/s between %d^2 and %d^2 (%.3f MPix/s overall at %d^2)" % (
            kind, marginal[kind], small, large, small * small / 1e6 / seconds[(kind, small)],
            small))
    print("  cli / literal, marginal throughput: %.2fx" % (marginal["cli"] / marginal["literal"]))


def child_conv(repeats):
    """Rate of a 3 x 3, 64 -> 64 tf.nn.conv2d on a 1024 x 1024 map, GFLOP/s."""
    import tensorflow as tf
    graph = tf.Graph()
    with graph.as_default():
        # Variables, not constants: Grappler would fold a convolution of constants away.
        x = tf.compat.v1.Variable(tf.random.uniform((1, REF_SIZE, REF_SIZE, REF_CHANNELS)))
        w = tf.compat.v1.Variable(tf.random.uniform((3, 3, REF_CHANNELS, REF_CHANNELS)) * 0.01)
        y = tf.reduce_sum(tf.nn.conv2d(x, w, strides=1, padding="SAME"))
        with tf.compat.v1.Session(graph=graph) as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            seconds = _best(lambda: sess.run(y), max(repeats, 3))
    flops = 2.0 * 9 * REF_CHANNELS * REF_CHANNELS * REF_SIZE * REF_SIZE
    return {"seconds": seconds, "gflops": flops / seconds / 1e9}


ELEMENTWISE = {"Add", "AddV2", "Sub", "Mul", "RealDiv", "Maximum", "Minimum", "Sqrt", "Abs",
               "Exp", "Square", "Neg", "BiasAdd"}


def count_flops(ms_size=64):
    """FLOPs per PAN pixel of the inference graph, counted op by op on a fixed-shape graph.

    Conv2D and DepthwiseConv2dNative: 2 per multiply-add (k*k*c_in per output element);
    elementwise arithmetic (Add, Mul, Maximum, Sqrt, ...) and Softmax/AvgPool: 1 per output
    element (Softmax 3, AvgPool k*k). The FAM's 81 multiply-adds per feature are among the
    elementwise Mul/AddV2 ops; they are reported separately as 2 * 81 * 64 per MS pixel.

    Returns:
        dict of FLOPs per PAN pixel: conv (the network's Conv2D), fam, conv_fam (the two: the
        figure used for GFLOP/s), depthwise (Gaussian normalisation), elementwise, total.
    """
    import tensorflow as tf
    from sipsa_tf.core import model, ops
    graph = tf.Graph()
    with graph.as_default():
        fwd = model.forward(tf.zeros([1, ms_size, ms_size, 3]),
                            tf.zeros([1, 4 * ms_size, 4 * ms_size, 1]))
        del fwd
    counts = {"conv": 0.0, "depthwise": 0.0, "elementwise": 0.0}
    for op in graph.get_operations():
        if not op.outputs:
            continue
        shape = op.outputs[0].shape
        if not shape.is_fully_defined():
            continue
        elements = float(np.prod(shape.as_list()))
        if op.type == "Conv2D":
            kh, kw, cin, _ = op.inputs[1].shape.as_list()
            counts["conv"] += 2.0 * elements * kh * kw * cin
        elif op.type == "DepthwiseConv2dNative":
            kh, kw, _, _ = op.inputs[1].shape.as_list()
            counts["depthwise"] += 2.0 * elements * kh * kw
        elif op.type in ELEMENTWISE:
            counts["elementwise"] += elements
        elif op.type == "Softmax":
            counts["elementwise"] += 3.0 * elements
        elif op.type == "AvgPool":
            counts["elementwise"] += elements * 16
    pan_pixels = 16.0 * ms_size * ms_size
    out = {k: v / pan_pixels for k, v in counts.items()}
    out["fam"] = 2.0 * ops.FAM_KERNEL ** 2 * 64 / 16.0
    out["conv_fam"] = out["conv"] + out["fam"]
    out["total"] = out["conv"] + out["depthwise"] + out["elementwise"]
    return out


def run_child(args):
    if args.kind in ("whole", "literal"):
        result = child_memory(args.kind, args.size, args.repeats)
    elif args.kind == "tiled":
        result = child_tiled(args.size, args.repeats, args.tile, args.cog)
    elif args.kind == "conv":
        result = child_conv(args.repeats)
    elif args.kind == "literal_once":
        result = child_literal_once(args.size, args.checkpoint)
    else:
        result = count_flops()
    result["rss_gb"] = _rss_gb()
    print("RESULT " + json.dumps(result))


def _spawn(kind, size=0, repeats=2, tile=1024):
    cmd = [sys.executable, os.path.abspath(__file__), "--child", kind, "--size", str(size),
           "--repeats", str(repeats), "--tile", str(tile)]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    for line in res.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    tail = (res.stderr.strip().splitlines() or ["no output"])[-1]
    return {"error": "exit %d: %s" % (res.returncode, tail)}


def _available_gb():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1e6
    return float("inf")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="512,1024,4096")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=1,
                        help="run every configuration this many times, interleaved; report the "
                             "fastest run and the largest peak RSS")
    parser.add_argument("--tile", type=int, default=None, help="default: the tool's (2048)")
    parser.add_argument("--one_shot", action="store_true",
                        help="fresh-process wall times of the command line and the literal "
                             "formulation, no warm-up (default sizes 1024,2048)")
    parser.add_argument("--checkpoint", default=BUNDLED_CHECKPOINT,
                        help="checkpoint of the one-shot runs")
    parser.add_argument("--cog", action="store_true",
                        help="with --child tiled: COG output (sipsa-pansharpen --cog)")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.tile is None:
        from sipsa_tf import scene  # no TensorFlow import
        args.tile = scene.DEFAULT_TILE
    if args.child:
        args.kind = args.child
        return run_child(args)

    if args.one_shot:
        sizes = [1024, 2048] if args.sizes == parser.get_default("sizes") else \
            [int(s) for s in args.sizes.split(",")]
        return one_shot(sizes, args.checkpoint, args.rounds)
    sizes = [int(s) for s in args.sizes.split(",")]
    flops = _spawn("flops")
    conv = _spawn("conv", repeats=args.repeats)
    print("FLOPs per PAN pixel (counted on the graph): network Conv2D %.1f k + FAM %.1f k = "
          "%.1f k (used below); Gaussian normalisation %.1f k; elementwise %.1f k; all %.1f k"
          % tuple(flops[k] / 1e3 for k in ("conv", "fam", "conv_fam", "depthwise",
                                             "elementwise", "total")))
    print("reference (start of run): 3x3 64->64 tf.nn.conv2d at %d^2: %.2f s, %.1f GFLOP/s"
          % (REF_SIZE, conv["seconds"], conv["gflops"]))
    configs = [(kind, n, args.tile) for kind in ("whole", "literal", "tiled") for n in sizes]
    if 1024 in sizes and args.tile > 512:
        configs.append(("tiled", 1024, 512))
    available = _available_gb()
    runs, skipped = {}, {}
    for round_index in range(args.rounds):  # interleaved, so that drifts hit every configuration
        for kind, n, tile in configs:
            if (kind, n, tile) in skipped:
                continue
            smaller = [m for (k, m, t) in runs if k == kind and m < n and t == tile
                       and "rss_gb" in runs[(k, m, t)][0]]
            if round_index == 0 and kind != "tiled" and smaller:
                m = max(smaller)
                rss = runs[(kind, m, tile)][0]["rss_gb"]
                estimate = rss * (n / m) ** 2
                if estimate > 0.8 * available:
                    skipped[(kind, n, tile)] = (
                        "skipped: RSS would be about %.0f GB (%.2f GB at %d^2 x %.0f), %.0f GB "
                        "available" % (estimate, rss, m, (n / m) ** 2, available))
                    continue
            runs.setdefault((kind, n, tile), []).append(
                _spawn(kind, n, args.repeats if n < 4096 else 1, tile))
    results = {}
    print("\n%-8s %6s %5s %6s %9s %9s %8s %8s  %s" % (
        "config", "PAN", "tile", "tiles", "seconds", "MPix/s", "RSS GB", "of conv",
        "seconds in each round" if args.rounds > 1 else ""))
    for kind, n, tile in configs:
        if (kind, n, tile) in skipped:
            print("%-8s %6d %5s %s" % (kind, n, "-", skipped[(kind, n, tile)]))
            continue
        rounds = runs[(kind, n, tile)]
        errors = [r["error"] for r in rounds if "error" in r]
        if errors:
            print("%-8s %6d %5s failed: %s" % (kind, n, tile, errors[0]))
            continue
        res = dict(rounds[0], seconds=min(r["seconds"] for r in rounds),
                   rss_gb=max(r["rss_gb"] for r in rounds))
        results[(kind, n, tile)] = res
        mpix = n * n / 1e6 / res["seconds"]
        gflops = flops["conv_fam"] * n * n / res["seconds"] / 1e9
        res["mpix"] = mpix
        print("%-8s %6d %5s %6s %9.2f %9.4f %8.2f %7.1f%%  %s" % (
            kind, n, tile if kind == "tiled" else "-", res.get("tiles", 1), res["seconds"], mpix,
            res["rss_gb"], 100 * gflops / conv["gflops"],
            " ".join("%.2f" % r["seconds"] for r in rounds) if args.rounds > 1 else ""))

    def rate(kind, n, tile=args.tile):
        return results.get((kind, n, tile), {}).get("mpix")

    print("\nratios (throughput):")
    for n in sizes:
        for kind in ("whole", "tiled"):
            if rate(kind, n) and rate("literal", n):
                print("  %s / literal at %d^2: %.2fx"
                      % (kind, n, rate(kind, n) / rate("literal", n)))
    if rate("tiled", 1024, 512) and rate("literal", 1024):
        print("  tiled (tile 512, 2x2 tiles with halo) / literal at 1024^2: %.2fx"
              % (rate("tiled", 1024, 512) / rate("literal", 1024)))
    if rate("tiled", 4096) and rate("tiled", 1024):
        print("  tiled 4096^2 / tiled 1024^2: %.2f" % (rate("tiled", 4096) / rate("tiled", 1024)))
    if rate("tiled", 4096) and rate("tiled", 1024, 512):
        print("  tiled 4096^2 / tiled 1024^2 (tile 512): %.2f"
              % (rate("tiled", 4096) / rate("tiled", 1024, 512)))
    conv_end = _spawn("conv", repeats=args.repeats)
    print("  reference conv2d at the end of the run: %.1f GFLOP/s (start: %.1f; the difference "
          "is the machine's load changing)" % (conv_end["gflops"], conv["gflops"]))
    peak = max((r["rss_gb"] for (k, _, _), r in results.items() if k == "tiled" and "rss_gb" in r),
               default=float("nan"))
    print("  peak RSS of the tiled tool over all sizes: %.2f GB" % peak)


if __name__ == "__main__":
    main()
