"""Would a global image registration before the network carry the robustness? A probe.

    .venv/bin/python experiments/register_probe.py --checkpoints checkpoints/wald_stage1j \\
        --out logs/register_probe.md [--part held_out]

SIPSA-Net (Lee, Seo, Kim, CVPR 2021); docs/training.md, "The feature alignment module". The
robustness table (docs/misalignment.md) shifts the whole MS by 0.5, 1 and 2 MS pixels and
compares the Q2n drop of SIPSA-Net with GSA's. The FAM-based stages miss it on imgIK
(experiments/oracle_fam.py: even a perfect FAM loses 0.014 there at 0.5 px, since bilinear
taps mix neighbouring features). A global shift, though, can be measured from the images and
undone before the network sees the MS, as a classical pipeline does. This probe measures that:

- the shift is estimated by maximising the correlation between the PAN, brought to the MS's
  resolution (the sensor's MTF low-pass, decimated by 4), and the MS's band mean moved back by
  a candidate shift (cubic spline): integer candidates within +-``--search`` MS pixels, then a
  0.05-pixel grid within +-0.5 pixel of the best (images with fewer than 8 MS pixels left
  inside that margin, the 8 x 8 WorldView-3 examples, are not registered);
- the MS is moved back by the estimate (a spline of ``--order``, edge values) when the estimate
  exceeds ``--min_shift`` on either axis, and fused as it is otherwise;
- the robustness measurement is then run with that in front of the network
  (``sipsa_tf.evaluation.alignment.robustness``), against GSA's drop as the table has it
  (GSA not registered) and, in a second table, with GSA registered the same way.

It also reports the estimation error for each robustness shift, and (``--sections
resampling``) what resampling the MS alone costs the fusion, with no registration error: the
aligned MS moved by 0.5 MS px and back (cubic spline; Fourier, reflect-padded), and the
0.5-px-shifted MS moved back by exactly 0.5 (splines of order 3 and 5; Fourier). It measures;
it ships nothing.
"""
import argparse
import os
import sys

import numpy as np
from scipy import ndimage

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def _corr(a, b):
    a = a - a.mean()
    b = b - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum() + 1e-12))


def estimate_shift(ms_lr, pan, gains, search=3, step=0.05):
    """(dy, dx) MS pixels by which the MS content is displaced from the PAN's.

    ms_lr: (h, w, bands); pan: (4h, 4w). The content at p of the MS is the PAN's at p - s.
    """
    from sipsa_tf.constants import SCALE
    from sipsa_tf.evaluation import quality
    pan_low = quality.decimate(quality.mtf_filter(np.asarray(pan, np.float64), gains, SCALE,
                                                  pan=True), SCALE)
    band_mean = np.asarray(ms_lr, np.float64).mean(axis=2)
    m = search + 1
    if min(band_mean.shape) - 2 * m < 8:
        return (0.0, 0.0)  # too small to measure: fused as it is
    target = pan_low[m:-m, m:-m]

    def score(s):
        moved = ndimage.shift(band_mean, (-s[0], -s[1]), order=3, mode="nearest")
        return _corr(target, moved[m:-m, m:-m])

    grid = [(float(y), float(x)) for y in range(-search, search + 1)
            for x in range(-search, search + 1)]
    best = max(grid, key=score)
    fine = np.arange(-0.5, 0.5 + 1e-9, step)
    best = max(((best[0] + y, best[1] + x) for y in fine for x in fine), key=score)
    return tuple(float(round(v, 3)) for v in best)


def register(ms_lr, pan, gains, min_shift, order):
    """``ms_lr`` moved back by its estimated shift (a spline of ``order``), or as it is when the
    estimate is within ``min_shift`` on both axes."""
    s = estimate_shift(ms_lr, pan, gains)
    if max(abs(v) for v in s) <= min_shift:
        return ms_lr
    return spline_move(ms_lr, (-s[0], -s[1]), order).astype(ms_lr.dtype)


def fourier_move(ms, shift, pad=8):
    """Band-wise Fourier shift of ``ms`` by ``shift`` (content moves by +shift), reflect-padded."""
    out = []
    for c in range(ms.shape[2]):
        padded = np.pad(np.asarray(ms[:, :, c], np.float64), pad, mode="reflect")
        moved = np.real(np.fft.ifft2(ndimage.fourier_shift(np.fft.fft2(padded), shift)))
        out.append(moved[pad:-pad, pad:-pad])
    return np.stack(out, axis=2)


def spline_move(ms, shift, order):
    """Band-wise spline shift of ``ms`` by ``shift`` (content moves by +shift), edge values."""
    return np.stack([ndimage.shift(ms[:, :, c], shift, order=order, mode="nearest")
                     for c in range(ms.shape[2])], axis=2)


RESAMPLINGS = (
    ("round trip, cubic", lambda w: spline_move(spline_move(w.ms_lr, (0.5, 0), 3), (-0.5, 0), 3)),
    ("round trip, Fourier", lambda w: fourier_move(fourier_move(w.ms_lr, (0.5, 0)), (-0.5, 0))),
    ("shifted 0.5, not undone", lambda w: w.ms_shifted((0.5, 0.0))),
    ("shifted 0.5, undone, cubic", lambda w: spline_move(w.ms_shifted((0.5, 0.0)), (-0.5, 0), 3)),
    ("shifted 0.5, undone, order 5",
     lambda w: spline_move(w.ms_shifted((0.5, 0.0)), (-0.5, 0), 5)),
    ("shifted 0.5, undone, Fourier", lambda w: fourier_move(w.ms_shifted((0.5, 0.0)), (-0.5, 0))),
)


def resampling_section(checkpoint, scenes):
    """Markdown rows: Q2n drop (border 1 MS px) of each resampling of the MS, per image."""
    from sipsa_tf import inference
    from sipsa_tf.constants import SCALE
    from sipsa_tf.evaluation import alignment
    lines = ["\n## %s: what resampling the MS costs (Q2n drop, shift along y)\n" % checkpoint,
             "| image | aligned Q2n | " + " | ".join(n for n, _ in RESAMPLINGS) + " |",
             "| --- | --- |" + " --- |" * len(RESAMPLINGS)]
    net = inference.Pansharpener(checkpoint)
    try:
        for scene in scenes:
            wald = alignment.DisplacedWald(scene.ms, scene.pan, scene.gains)
            if min(wald.ms_lr.shape[:2]) < 16:
                continue
            ref = alignment._inner(wald.reference, 1, SCALE)
            pan = wald.pan_lr.astype(np.float32)

            def q2n(ms):
                out = net(ms.astype(np.float32), pan)["output"]
                return alignment._q2n(alignment._inner(out, 1, SCALE), ref)

            base = q2n(wald.ms_lr)
            lines.append("| %s | %.3f | %s |" % (scene.name, base, " | ".join(
                "%.3f" % (base - q2n(make(wald))) for _, make in RESAMPLINGS)))
            print(lines[-1], flush=True)
    finally:
        net.close()
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoints", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--part", default="held_out")
    parser.add_argument("--min_shift", type=float, default=0.1)
    parser.add_argument("--order", type=int, default=3, help="spline order of the move back")
    parser.add_argument("--sections", default="estimate,robustness",
                        help="comma-separated: estimate, robustness, resampling")
    parser.add_argument("--data_dir", default="../shared/data/grip")
    parser.add_argument("--split", default="experiments/grip_split.json")
    args = parser.parse_args(argv)
    from sipsa_tf import inference
    from sipsa_tf.constants import SCALE
    from sipsa_tf.data import supervised
    from sipsa_tf.evaluation import alignment, baselines
    from sipsa_tf.evaluation.scenes import Scene
    regions = supervised.load_regions(supervised.load_split(args.split), args.part,
                                      args.data_dir)
    scenes = [Scene(r.name, r.ms, r.pan, r.sensor, r.gains) for r in regions]
    sections = args.sections.split(",")
    lines = ["# Robustness with a global registration in front of the network\n",
             "Command: `python experiments/register_probe.py %s`. %s regions of `%s`.\n"
             % (" ".join(sys.argv[1:] if argv is None else argv), args.part, args.split)]
    if "estimate" in sections:
        lines += ["## Estimated shift (MS px) against the applied one\n",
                  "| image | applied | estimated |", "| --- | --- | --- |"]
    for scene in (scenes if "estimate" in sections else []):
        wald = alignment.DisplacedWald(scene.ms, scene.pan, scene.gains)
        for shift in ((0.0, 0.0),) + tuple(
                s for o in alignment.ROBUSTNESS_OFFSETS for s in ((o, 0.0), (0.0, o))):
            est = estimate_shift(wald.ms_shifted(shift), wald.pan_lr, scene.gains)
            lines.append("| %s | %s | %s |" % (scene.name, shift, est))
            print(lines[-1], flush=True)
    for checkpoint in args.checkpoints.split(",") if "resampling" in sections else []:
        lines += resampling_section(checkpoint, scenes)
    for checkpoint in args.checkpoints.split(",") if "robustness" in sections else []:
        net = inference.Pansharpener(checkpoint)
        try:
            for label, use_gsa_reg in (("GSA as in the table", False),
                                       ("GSA registered too", True)):
                rows = []
                for scene in scenes:
                    gains = scene.gains

                    def fuse(ms, pan, _gains=gains):
                        return net(register(ms, pan, _gains, args.min_shift, args.order), pan)
                    if use_gsa_reg:
                        orig = baselines.fuse

                        def gsa_reg(method, ms, pan, ratio, sensor=None, _o=orig):
                            return _o(method, register(ms, pan, sensor, args.min_shift,
                                                       args.order), pan, ratio, sensor=sensor)
                        baselines.fuse = gsa_reg
                    try:
                        rows += alignment.robustness(fuse, [scene])
                    finally:
                        if use_gsa_reg:
                            baselines.fuse = orig
                ok = sum(r["ok"] for r in rows)
                lines += ["\n## %s, registered (%s)\n" % (checkpoint, label),
                          alignment.robustness_table(rows),
                          "%d of %d cells within GSA's drop + 0.01.\n" % (ok, len(rows))]
                print("\n".join(lines[-3:]), flush=True)
        finally:
            net.close()
    from sipsa_tf.evaluation import reports
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    reports.atomic_write(args.out, ("\n".join(lines) + "\n").encode("utf-8"))


if __name__ == "__main__":
    main()
