"""Does the FAM align? End-point error, robustness and displacement panels, per checkpoint.

    .venv/bin/python benchmarks/alignment.py --out_dir docs/alignment \\
        --checkpoints checkpoints/wald_stage1j,checkpoints/wald_stage1g [--part held_out]
        [--split experiments/grip_split_val.json] [--scenes 3]

SIPSA-Net (Lee, Seo, Kim, CVPR 2021) aligns MS features to the PAN with its feature alignment
module (FAM). For each checkpoint this measures, with :mod:`sipsa_tf.evaluation.alignment`
(docs/training.md, "The feature alignment module"):

1. On the real regions of ``--part`` of the split (``held_out`` for reporting, ``validation``
   for choosing), at reduced resolution (Wald protocol): the MS displaced by the global shifts
   of ``alignment.DEFAULT_SHIFTS`` (integer and sub-pixel, up to 3 MS pixels, several
   directions); the FAM's end-point error (EPE) against the known shift beside the zero
   predictor's, the mean largest tap weight and the spatial spread of the displacement D.
2. The robustness table: Q2n drop from the aligned case at offsets of 0.5, 1 and 2 MS pixels
   (worse of y and x), SIPSA-Net against GSA.
3. On the synthetic misalignment benchmark's scenes (``benchmarks/misalignment.py``: road
   scenes whose cars moved 4-14 PAN pixels between the two acquisitions, MS shifted by
   (d/2, d) PAN pixels): the EPE on the pixels without cars (truth: the global shift) and on the
   moving cars' own pixels (truth: shift plus the car's motion; MS pixels at least half covered
   by a car at the PAN instant), each beside the zero predictor's.
4. Panels (``displacement_<checkpoint>.png``): for one real image shifted by (1, -1) MS pixels
   and one synthetic scene at d = 8, the PAN, the MS and D coloured by direction (hue) and length
   (saturation; white = no displacement, full colour = 3 MS pixels).

Writes ``alignment.md`` (tables and the command) and ``alignment.csv`` into ``--out_dir``.
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from misalignment import misaligned_scene  # noqa: E402  (the benchmark's own scenes)

from sipsa_tf.constants import SCALE  # noqa: E402
from sipsa_tf.evaluation import alignment  # noqa: E402

PANEL_SHIFT = (1.0, -1.0)


def measure_synthetic(pansharpener, scenes, offsets, ms_size, seed=0, keep=None):
    """EPE of the FAM on the benchmark scenes (:func:`alignment.synthetic_epe`): rows of scene,
    offset_pan_px, epe_global, epe_cars and their zero predictors, car_pixels, max_tap, spread."""
    rows = []
    for index in range(scenes):
        for d in offsets:
            ms, pan, _, _, info = misaligned_scene(seed, index, ms_size, d)
            row = alignment.synthetic_epe(pansharpener, ms, pan, (0.5 * d, float(d)),
                                          info["car_list"])
            disp = row.pop("displacement")
            rows.append(dict(row, scene=index, offset_pan_px=d))
            if keep is not None:
                keep(index, d, ms, pan, disp)
    return rows


def displacement_panel(items, width=160):
    """PIL image: per item (label, ms, pan, D) a row PAN | MS (nearest) | D coloured, each cut to
    the same centred window (the smallest item's height, at most ``width`` PAN pixels wide),
    and a colour key (D from -3 to 3 MS pixels on both axes; up is dy < 0)."""
    from sipsa_tf.evaluation import panels
    height = min(min(pan.shape[0] for _, _, pan, _ in items), width)
    up = lambda a: np.repeat(np.repeat(a, SCALE, 0), SCALE, 1)
    byte = lambda a: (255 * np.clip(a, 0, 1)).astype(np.uint8)

    def window(a):
        y0 = (a.shape[0] - height) // 2 // SCALE * SCALE
        w = min(width, a.shape[1])
        x0 = (a.shape[1] - w) // 2 // SCALE * SCALE
        out = np.ones((height, width) + a.shape[2:], a.dtype)
        out[:, :w] = a[y0:y0 + height, x0:x0 + w]
        return out

    grid = np.linspace(-3, 3, height)
    key = alignment.flow_colours(np.stack(np.meshgrid(grid, grid, indexing="ij"), axis=-1))
    key = np.pad(key, ((0, 0), (0, width - height), (0, 0)), constant_values=1.0)
    tiles, labels = [], []
    for label, ms, pan, disp in items:
        lo, hi = np.percentile(ms, 2, axis=(0, 1)), np.percentile(ms, 98, axis=(0, 1))
        plo, phi = np.percentile(pan, 2), np.percentile(pan, 98)
        tiles.append([byte(window((pan - plo) / (phi - plo + 1e-12))),
                      byte(window((up(ms) - lo) / (hi - lo + 1e-12))),
                      byte(window(up(alignment.flow_colours(disp)))), byte(key)])
        labels.append([label, "MS", "FAM displacement D", "key: D in [-3, 3]"])
    return panels.labelled_grid(tiles, labels)


def checkpoint_label(checkpoint):
    """A checkpoint's short name: its folder, with the step for a ``model.ckpt-N`` prefix."""
    path = os.path.normpath(checkpoint)
    base = os.path.basename(path)
    if base.startswith("model.ckpt-"):
        return "%s-%s" % (os.path.basename(os.path.dirname(path)), base.rsplit("-", 1)[1])
    return base


def mean_by(rows, key, group):
    out = {}
    for r in rows:
        out.setdefault(r[group], []).append(r[key])
    return {k: float(np.nanmean(v)) for k, v in out.items()}


def run(args, command):
    from sipsa_tf import inference
    from sipsa_tf.data import supervised
    from sipsa_tf.evaluation import panels, reports
    from sipsa_tf.evaluation.scenes import Scene
    split = supervised.load_split(args.split)
    regions = supervised.load_regions(split, args.part, args.data_dir)
    scenes = [Scene(r.name, r.ms, r.pan, r.sensor, r.gains) for r in regions]
    offsets = [float(v) for v in args.offsets.split(",")]
    os.makedirs(args.out_dir, exist_ok=True)
    parts = ["# Does the feature alignment module align?\n",
             "Command: `%s`. Real images: the %s regions of `%s` (reduced resolution, Wald "
             "protocol). Synthetic: %d misalignment-benchmark scene(s), MS %dx%d. EPE and the "
             "displacement D in MS pixels; the zero predictor is D = 0.\n"
             % (command, args.part, args.split, args.scenes, args.ms_size, args.ms_size)]
    csv_rows = []
    start = time.time()
    for checkpoint in [c for c in args.checkpoints.split(",") if c]:
        name = checkpoint_label(checkpoint)
        pansharpener = inference.Pansharpener(checkpoint)
        try:
            items = []

            def keep_real(scene, shift, ms_lr, pan_lr, disp):
                if tuple(shift) == PANEL_SHIFT and len(items) == 0:
                    items.append(("%s shifted %s" % (scene.name, shift), ms_lr, pan_lr, disp))

            real = alignment.measure_real(pansharpener, scenes, alignment.DEFAULT_SHIFTS
                                          + (PANEL_SHIFT,), keep=keep_real)
            robust = alignment.robustness(pansharpener, scenes)

            def keep_syn(index, d, ms, pan, disp):
                if index == 0 and d == offsets[-1]:
                    items.append(("synthetic d=%g" % d, ms, pan, disp))

            syn = measure_synthetic(pansharpener, args.scenes, offsets, args.ms_size, args.seed,
                                    keep_syn)
        finally:
            pansharpener.close()
        panels.save_png(displacement_panel(items),
                        os.path.join(args.out_dir, "displacement_%s.png" % name))
        ok = sum(r["ok"] for r in robust)
        parts.append("## %s\n\n### Real images: EPE against global MS shifts\n\n%s\n"
                     "### Robustness: Q2n drop from the aligned case (SIPSA-Net / GSA; (x): "
                     "more than GSA's drop + 0.01)\n\n%s\n%d of %d cells within GSA's drop + "
                     "0.01.\n" % (name, alignment.summary_table(real),
                                  alignment.robustness_table(robust), ok, len(robust)))
        means = {k: mean_by(syn, k, "offset_pan_px") for k in
                 ("epe_global", "epe_global_zero", "epe_cars", "epe_cars_zero", "spread")}
        lines = ["| d (PAN px) | EPE global (zero) | EPE moving cars (zero) | spread of D |",
                 "| --- | --- | --- | --- |"]
        for d in offsets:
            lines.append("| %g | %.3f (%.3f) | %.3f (%.3f) | %.3f |" % (
                d, means["epe_global"][d], means["epe_global_zero"][d], means["epe_cars"][d],
                means["epe_cars_zero"][d], means["spread"][d]))
        parts.append("### Synthetic benchmark scenes\n\n%s\n\nPanel: `displacement_%s.png`.\n"
                     % ("\n".join(lines), name))
        for r in real:
            csv_rows.append(dict(r, checkpoint=name, kind="real"))
        for r in syn:
            csv_rows.append(dict(r, checkpoint=name, kind="synthetic"))
        for r in robust:
            csv_rows.append(dict(r, checkpoint=name, kind="robustness"))
        print("%s done (%.0f s)" % (name, time.time() - start), file=sys.stderr)
    columns = sorted({k for r in csv_rows for k in r})
    reports.write_csv(csv_rows, os.path.join(args.out_dir, "alignment.csv"), columns)
    reports.atomic_write(os.path.join(args.out_dir, "alignment.md"),
                         "\n".join(parts).encode("utf-8"))
    print("\n".join(parts))


def parse_args(argv):
    from sipsa_tf.constants import BUNDLED_CHECKPOINT
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out_dir", required=True)
    parser.add_argument("--checkpoints", default=BUNDLED_CHECKPOINT,
                        help="comma-separated checkpoint directories or prefixes")
    parser.add_argument("--split", default="experiments/grip_split_val.json")
    parser.add_argument("--part", default="held_out", choices=("held_out", "validation"))
    parser.add_argument("--data_dir", default="../shared/data/grip")
    parser.add_argument("--scenes", type=int, default=3)
    parser.add_argument("--ms_size", type=int, default=48)
    parser.add_argument("--offsets", default="0,2,4,8", help="PAN pixels (benchmark's d)")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    run(args, "python benchmarks/alignment.py " + " ".join(argv))


if __name__ == "__main__":
    main()
