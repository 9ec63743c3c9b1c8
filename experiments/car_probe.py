"""Can SIPSA-Net's kernel branch learn the moving cars? A probe, with and without a correlation.

    .venv/bin/python experiments/car_probe.py --out logs/car_probe.md [--steps 3000] [--state DIR]

SIPSA-Net (Lee, Seo, Kim, CVPR 2021); docs/training.md, "The feature alignment module". Stages
D-H taught the feature alignment module (FAM) the global MS shift but not the cars' own motion:
on the cars' MS pixels its end-point error stays near the zero predictor's, even on the
synthetic scenes it was trained on. This probe asks whether that is the training signal or the
branch itself. It trains kernel branches alone (no feature or fusion branch, nothing restored),
with the same crops in the same order, on synthetic scenes only (the training generator of
``--synthetic_fraction``: ``--scenes`` scenes of MS 64, 75% displaced by up to 2 MS px, cars
moving 4-14 PAN px), with the cross-entropy alignment term (``--align_loss=ce``, moving-pixel
weight ``--local_weight``, the block-mean target), Adam at ``--lr`` (x0.1 after 80% of the
steps). With ``--real_fraction`` that share of the crops comes instead from the real training
regions of ``--split`` (Wald-degraded, 60% displaced by up to 2 MS px, as the trainer's crops;
they have no cars); ``--real_weight`` weighs their pixels against the synthetic crops' (a real
crop's truth is its global shift everywhere, 0 on the 40% not displaced, so a weight above 1
holds D still where real imagery does not move). Variants:

- ``original``: the kernel branch's layers as SIPSA-Net has them (conv01-conv11: two 9 x 9
  convolutions on [space_to_depth(PAN), MS], residual blocks, 81 logits, softmax), He-normal
  initialisation (residual convolutions x 0.1), as ``--fam_reinit``.
- ``correlation``: the same, plus the smallest matching layer we could think of: two 3 x 3
  convolutions make 16-channel features of the PAN (from its space_to_depth) and of the MS, and
  their correlation at each of the 81 taps (mean over channels of PAN feature x MS feature read
  at the tap) is added to the 81 logits. This is a change of the graph (new variables), so it
  could not restore into the original code; it is here to measure, not to ship.

Measured on the misalignment benchmark's scenes (``benchmarks/misalignment.py``, as
``benchmarks/alignment.py`` measures them; MS 48, offsets d PAN px): the EPE on the moving cars'
MS pixels (at least half covered; truth: global shift + car motion, block mean) beside the zero
predictor's and the global-only predictor's (the true global shift everywhere: what a FAM that
ignores the cars at best achieves), and the EPE elsewhere; and (``--still``) |D| on the
unshifted real pairs of the validation strip, where it should be 0. Writes a markdown report to
``--out``.
"""
import argparse
import json
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
VARIANTS = ("original", "correlation")
FEATURES = 16  # channels of the correlation's PAN and MS features


def _conv(x, size, n_out, name, gain=1.0):
    import tensorflow as tf
    n_in = int(x.shape[-1])
    std = gain * np.sqrt(2.0 / (size * size * n_in))
    w = tf.compat.v1.get_variable("w_" + name, [size, size, n_in, n_out], tf.float32,
                                  tf.compat.v1.initializers.random_normal(stddev=std))
    b = tf.compat.v1.get_variable("b_" + name, [n_out], tf.float32,
                                  tf.compat.v1.zeros_initializer())
    return tf.nn.conv2d(x, w, strides=1, padding="SAME") + b


def correlation(a, b, half):
    """Per tap k = (dy, dx) of the (2 half + 1)^2 grid (row-major, as the FAM's taps): the mean
    over channels of a[i, j] * b[i + dy, j + dx] (b = 0 outside). a, b: (B, h, w, C) ->
    (B, h, w, (2 half + 1)^2)."""
    import tensorflow as tf
    h, w = tf.shape(a)[1], tf.shape(a)[2]
    bp = tf.pad(b, [[0, 0], [half, half], [half, half], [0, 0]])
    taps = []
    for dy in range(2 * half + 1):
        for dx in range(2 * half + 1):
            taps.append(tf.reduce_mean(a * bp[:, dy:dy + h, dx:dx + w, :], axis=3))
    return tf.stack(taps, axis=3)


def kernel_logits(ms_n, pan_n, variant):
    """The 81 FAM logits of a kernel branch (module docstring), (B, h, w, 81)."""
    import tensorflow as tf
    from sipsa_tf.core import network, ops
    from sipsa_tf.constants import SCALE
    lrelu = lambda t: ops.lrelu(t, network.LEAK)
    p16 = ops.space_to_depth(pan_n, SCALE)
    taps = ops.FAM_KERNEL ** 2
    a = _conv(tf.concat([p16, ms_n], axis=3), 9, 32, "c01")
    a = _conv(lrelu(a), 9, 32, "c02")
    a = a + _conv(lrelu(a), 3, 32, "c03", gain=0.1)
    a = _conv(lrelu(a), 3, taps, "c04")
    for n in range(5, 12):
        a = a + _conv(lrelu(a), 3, taps, "c%02d" % n, gain=0.1)
    logits = lrelu(a)
    if variant == "correlation":
        fp = _conv(lrelu(_conv(p16, 3, FEATURES, "p1")), 3, FEATURES, "p2")
        fm = _conv(lrelu(_conv(ms_n, 3, FEATURES, "m1")), 3, FEATURES, "m2")
        logits = logits + correlation(fp, fm, ops.FAM_KERNEL // 2)
    return logits


def benchmark_rows(run_fn, scenes, offsets, ms_size=48):
    """EPEs of ``run_fn(ms, pan) -> D (h, w, 2)`` on the misalignment benchmark's scenes."""
    sys.path.insert(0, os.path.join(HERE, "..", "benchmarks"))
    from misalignment import misaligned_scene
    from sipsa_tf.evaluation import alignment
    rows = []
    for index in range(scenes):
        for d in offsets:
            ms, pan, _, _, info = misaligned_scene(0, index, ms_size, d)
            shift = (0.5 * d, float(d))
            truth, cars = alignment.synthetic_truth(shift, info["car_list"], ms_size)
            disp = run_fn(ms, pan)
            inner = (slice(2, -2), slice(2, -2))
            disp, truth, cars = disp[inner], truth[inner], cars[inner]
            glob = np.broadcast_to(np.asarray(shift) / 4.0, truth.shape)
            rows.append({"d": d, "n": int(cars.sum()),
                         "cars": alignment.endpoint_error(disp, truth, cars),
                         "cars_zero": alignment.endpoint_error(0 * disp, truth, cars),
                         "cars_global": alignment.endpoint_error(glob, truth, cars),
                         "rest": alignment.endpoint_error(disp, truth, ~cars),
                         "rest_zero": alignment.endpoint_error(0 * disp, truth, ~cars)})
    return rows


def still_rows(run_fn, args):
    """|D| of ``run_fn`` on the unshifted Wald pair of each ``--still`` region of ``--split``,
    where the truth is 0 (as ``experiments/still_displacement.py`` measures a network)."""
    from sipsa_tf.data import supervised
    from sipsa_tf.evaluation import alignment
    rows = []
    for region in supervised.load_regions(supervised.load_split(args.split), args.still,
                                          args.data_dir):
        wald = alignment.DisplacedWald(region.ms, region.pan, region.gains)
        s = alignment.still_statistics(
            run_fn(wald.ms_lr.astype(np.float32), wald.pan_lr.astype(np.float32)), wald.pan_lr)
        rows.append((region.name, s["mean"], s["p90"]))
    return rows


def run_variant(variant, args, sources, log, real=(), shift=None):
    import tensorflow as tf
    from sipsa_tf.core import losses, model, ops
    from sipsa_tf.evaluation import alignment
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.set_random_seed(args.seed)
        ms = tf.compat.v1.placeholder(tf.float32, [None, None, None, 3])
        pan = tf.compat.v1.placeholder(tf.float32, [None, None, None, 1])
        truth = tf.compat.v1.placeholder(tf.float32, [None, None, None, 2])
        crop_weights = tf.compat.v1.placeholder(tf.float32, [None])
        lr = tf.compat.v1.placeholder(tf.float32, [])
        ms_n, pan_n, _, _ = model.normalise(ms, pan)
        with tf.compat.v1.variable_scope("probe"):
            kernel = tf.nn.softmax(kernel_logits(ms_n, pan_n, variant), axis=3)
        disp = ops.fam_displacement(kernel)
        loss = losses.alignment_cross_entropy(kernel, truth, local_weight=args.local_weight,
                                              crop_weights=crop_weights)
        train = tf.compat.v1.train.AdamOptimizer(lr).minimize(loss)
        n_params = sum(int(np.prod(v.shape)) for v in tf.compat.v1.trainable_variables())
        saver = tf.compat.v1.train.Saver(
            var_list={v.op.name: v for v in tf.compat.v1.global_variables()}, max_to_keep=1)
        session = tf.compat.v1.Session(graph=graph)
        session.run(tf.compat.v1.global_variables_initializer())
    rng = np.random.default_rng(args.seed)
    start, losses_seen, first = time.time(), [], 1
    state_dir = os.path.join(args.state, variant) if args.state else None
    if state_dir:
        os.makedirs(state_dir, exist_ok=True)
    latest = tf.train.latest_checkpoint(state_dir) if state_dir else None
    if latest:
        with graph.as_default():  # a Saver outside its graph takes the eager path
            saver.restore(session, latest)
        with open(os.path.join(state_dir, "state.json")) as f:
            state = json.load(f)
        rng.bit_generator.state = state["rng"]
        losses_seen, first = state["losses"], state["step"] + 1
        log("%s: resumed from step %d (%s)" % (variant, state["step"], state_dir))
    for step in range(first, args.steps + 1):
        crops, weights = [], []
        for _ in range(args.batch):
            from_real = bool(real) and rng.random() < args.real_fraction
            crops.append(real[rng.integers(len(real))].crop(rng, args.ms_patch, shift)
                         if from_real
                         else sources[rng.integers(len(sources))].crop(rng, args.ms_patch))
            weights.append(args.real_weight if from_real else 1.0)
        feed = {ms: np.stack([c[0] for c in crops]), pan: np.stack([c[1] for c in crops]),
                truth: alignment.block_mean(np.stack([c[3] for c in crops])),
                crop_weights: np.asarray(weights, np.float32),
                lr: args.lr * (0.1 if step > 0.8 * args.steps else 1.0)}
        _, value = session.run([train, loss], feed)
        losses_seen.append(value)
        if step % args.every == 0:
            log("%s: step %d, cross-entropy %.3f (mean of the last %d), %.1f steps/s"
                % (variant, step, np.mean(losses_seen[-args.every:]), args.every,
                   (step - first + 1) / (time.time() - start)))
            if state_dir:
                with graph.as_default():
                    saver.save(session, os.path.join(state_dir, "probe"), global_step=step)
                tmp = os.path.join(state_dir, "state.json.tmp")
                with open(tmp, "w") as f:
                    json.dump({"step": step, "rng": rng.bit_generator.state,
                               "losses": [float(v) for v in losses_seen]}, f)
                os.replace(tmp, os.path.join(state_dir, "state.json"))
        if args.stop_after and step >= args.stop_after:
            log("%s: stopped after step %d of %d (--stop_after); not measured"
                % (variant, step, args.steps))
            session.close()
            return None, None, n_params, (first - 1, time.time() - start)

    def run_fn(m, p):
        return session.run(disp, {ms: m[None], pan: p[None, :, :, None]})[0]

    rows = benchmark_rows(run_fn, args.scenes, args.offsets)
    still = still_rows(run_fn, args) if args.still else []
    session.close()
    return rows, still, n_params, (first - 1, time.time() - start)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--every", type=int, default=500)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--ms_patch", type=int, default=24)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--local_weight", type=float, default=20.0)
    parser.add_argument("--scenes", type=int, default=3, help="benchmark scenes measured")
    parser.add_argument("--train_scenes", type=int, default=256)
    parser.add_argument("--offsets", default="0,2,4,8", help="PAN pixels (benchmark's d)")
    parser.add_argument("--seed", type=int, default=27)
    parser.add_argument("--real_fraction", type=float, default=0.0)
    parser.add_argument("--real_weight", type=float, default=1.0,
                        help="weight of each real crop's pixels in the cross-entropy (1: as "
                             "a synthetic crop's non-car pixels); holds D at the real crops' "
                             "global truth, 0 on the 40%% that are not displaced")
    parser.add_argument("--still", default="validation", choices=("", "validation", "held_out"),
                        help="part of --split whose unshifted pairs measure |D| (truth 0); "
                             "empty: not measured")
    parser.add_argument("--stop_after", type=int, default=0,
                        help="stop training after this step (with --state: resumable), "
                             "without measuring or writing the report")
    parser.add_argument("--state", default=None,
                        help="folder for a resumable state (the branch, Adam, the crop stream), "
                             "saved every --every steps; a run with the same flags resumes")
    parser.add_argument("--data_dir", default="../shared/data/grip")
    parser.add_argument("--split", default="experiments/grip_split_val.json")
    args = parser.parse_args(argv)
    if args.real_weight <= 0:
        parser.error("--real_weight must be > 0, got %s" % args.real_weight)
    args.offsets = [int(v) for v in args.offsets.split(",")]
    variants = args.variants.split(",")
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        parser.error("unknown variant(s) %s; known: %s" % (sorted(unknown), ", ".join(VARIANTS)))
    sys.path.insert(0, os.path.join(HERE, ".."))
    from sipsa_tf.data import supervised
    shifts = supervised.Displacement(max_offset=2.0, local_offset=0.5, aligned_fraction=0.25)
    sources = supervised.synthetic_sources(args.train_scenes, 64, args.seed, shifts)
    real, real_shift = [], supervised.Displacement(max_offset=2.0, local_offset=0.5,
                                                   aligned_fraction=0.4)
    if args.real_fraction > 0:
        split = supervised.load_split(args.split)
        real = [supervised.WaldImage(r)
                for r in supervised.load_regions(split, "train", args.data_dir)]
    log = lambda line: print(line, flush=True)
    lines = ["# Moving-car probe: kernel branch alone, with and without a correlation", "",
             "Command: `python experiments/car_probe.py %s`." % " ".join(sys.argv[1:]), ""]
    results, stills = {}, {}
    for variant in variants:
        rows, still, n_params, (resumed, seconds) = run_variant(variant, args, sources, log,
                                                                real, real_shift)
        if rows is None:
            return
        results[variant] = rows
        stills[variant] = still
        ran = max(args.steps - resumed, 0)
        lines.append("- `%s`: %d parameters, %d steps; %d run here in %.0f s%s." % (
            variant, n_params, args.steps, ran, seconds,
            " (resumed from the state saved at step %d)" % resumed if resumed else ""))
    lines += ["", "Misalignment benchmark scenes (%d, MS 48), EPE in MS pixels:" % args.scenes,
              "", "| variant | d (PAN px) | car pixels | EPE cars | zero | global only | "
              "EPE elsewhere | zero |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for variant, rows in results.items():
        for d in args.offsets:
            sel = [r for r in rows if r["d"] == d]
            weights = np.array([r["n"] for r in sel], float)
            mean = lambda key: float(np.average([r[key] for r in sel], weights=weights))
            lines.append("| %s | %d | %d | %.3f | %.3f | %.3f | %.3f | %.3f |" % (
                variant, d, int(weights.sum()), mean("cars"), mean("cars_zero"),
                mean("cars_global"), np.mean([r["rest"] for r in sel]),
                np.mean([r["rest_zero"] for r in sel])))
    if args.still:
        lines += ["", "Unshifted real pairs (the %s part of %s, Wald-degraded; truth 0), |D| in MS "
                  "pixels, 2 px border left out:" % (args.still, args.split), "",
                  "| variant | region | mean |D| | 90th pct |", "| --- | --- | --- | --- |"]
        for variant, rows in stills.items():
            lines += ["| %s | %s | %.3f | %.3f |" % ((variant,) + row) for row in rows]
    with open(args.out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
