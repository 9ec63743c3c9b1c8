"""Misalignment benchmark: fusion quality versus PAN/MS offset, with moving objects.

    .venv/bin/python benchmarks/misalignment.py --out_dir docs/misalignment \\
        [--checkpoint checkpoints/wald_stage1j] [--adapt_steps 50] [--scenes 3]

SIPSA-Net (J. Lee, S. Seo, M. Kim, "SIPSA-Net: Shift-Invariant Pan Sharpening with Moving Object
Alignment for Satellite Imagery", CVPR 2021) claims robustness to a global PAN/MS misregistration
and to objects that move between the PAN and MS acquisitions. This measures it on synthetic scenes
whose high-resolution ground truth is known:

* a scene (fields, roads, buildings, 10-19 cars) is drawn at PAN resolution at the PAN instant
  and at the MS instant, cars having moved 4-14 PAN pixels along their roads
  (:func:`sipsa_tf.data.synthetic.render_scene`, road-heavy);
* the MS-instant scene is shifted by a global offset of d PAN pixels, (dy, dx) = (d / 2, d),
  d = 0..8 (bilinear, reflected borders), then acquired as in the training data
  (:func:`sipsa_tf.data.synthetic.acquire` with its own random offset set to 0: optics blur, 4 x 4
  averaging, R G B, 11-bit noise); the PAN comes from the PAN-instant scene;
* the ground truth is the PAN-instant scene's R, G, B at PAN resolution, blurred like the PAN
  (Gaussian sigma 0.5 PAN pixels): the colours of the MS on the geometry of the PAN, which is
  what SIPSA-Net is trained to produce.

Per method, scene and offset: Q2n, Q, SAM, ERGAS and SCC against the ground truth
(:func:`sipsa_tf.evaluation.quality.reduced_resolution_indices`), and the ghosting measure
:func:`sipsa_tf.evaluation.plots.ghosting` (edge energy that the ground truth lacks, relative to the
ground truth's edge energy; 0 is ideal) over the whole image (``ghost``) and within 3 PAN pixels
of the moving cars (``ghost_moving``), all on the image without a 16-pixel border (so that the
reflected border of the shift does not count). Writes ``misalignment.csv``,
``misalignment.md`` (means over scenes, one table per index, the command line) and
``misalignment.png`` (index versus offset, drawn with PIL) and one panel around cars at the
smallest and largest offset into ``--out_dir``.
"""
import argparse
import os
import sys
import time

import numpy as np
from scipy import ndimage

from sipsa_tf.data import synthetic
from sipsa_tf.evaluation import alignment, quality
from sipsa_tf.evaluation.methods import Methods
from sipsa_tf.evaluation.panels import PANEL_COLOURS, panel, save_png
from sipsa_tf.evaluation.plots import ghosting, line_plot, plot_grid
from sipsa_tf.evaluation.reports import HIGHER_IS_BETTER, LABELS, atomic_write, write_csv
from sipsa_tf.evaluation.scenes import EvaluationError, Scene
from sipsa_tf.constants import SCALE
from sipsa_tf.utils.progress import Progress

MARGIN = 16          # PAN pixels left out at each border
GT_SIGMA = 0.5       # the PAN's blur in synthetic.acquire
MOVING_RADIUS = 3    # PAN pixels around the moving cars
INDEX_KEYS = ("q2n", "q", "sam", "ergas", "scc", "ghost", "ghost_moving")
PLOTTED = ("q2n", "ergas", "sam", "scc", "ghost", "ghost_moving")


def misaligned_scene(seed, index, ms_size, offset):
    """One synthetic scene with a global PAN/MS offset of ``offset`` PAN pixels.

    Returns:
        (ms (h, w, 3) float32 in [0, 1], pan (4h, 4w) float32, ground truth (4h, 4w, 3)
        float64, moving-object mask (4h, 4w) bool, info dict).
    """
    rng = np.random.default_rng([seed, 51, index])
    pan_time, ms_time, info = synthetic.render_scene(rng, SCALE * ms_size, road_heavy=True)
    shift = (0.5 * offset, float(offset), 0.0)
    shifted = ndimage.shift(ms_time, shift, order=1, mode="reflect") if offset else ms_time
    noise_rng = np.random.default_rng([seed, 52, index])  # the same noise at every offset
    ms, pan, _ = synthetic.acquire(noise_rng, pan_time, shifted, max_offset=0.0)
    truth = ndimage.gaussian_filter(pan_time[:, :, :3], (GT_SIGMA, GT_SIGMA, 0))
    moving = np.any(np.abs(pan_time - ms_time) > 1e-9, axis=2)
    moving = ndimage.binary_dilation(moving, iterations=MOVING_RADIUS)
    scale = float(synthetic.DN_MAX)
    return ((ms / scale).astype(np.float32), (pan / scale).astype(np.float32), truth, moving,
            info)


def scores(fused, truth, moving):
    """The benchmark's indices of one fused image (without the border)."""
    inner = (slice(MARGIN, -MARGIN), slice(MARGIN, -MARGIN))
    f, t, m = np.asarray(fused, np.float64)[inner], truth[inner], moving[inner]
    values = quality.reduced_resolution_indices(f, t, SCALE, block=32)
    values["ghost"] = ghosting(f, t)
    values["ghost_moving"] = ghosting(f, t, mask=m)
    return values


def _car_centre(moving):
    density = ndimage.uniform_filter(moving.astype(np.float64), 48)
    inner = np.zeros_like(density)
    inner[MARGIN:-MARGIN, MARGIN:-MARGIN] = density[MARGIN:-MARGIN, MARGIN:-MARGIN]
    return np.unravel_index(np.argmax(inner), inner.shape)


def fam_table(fam_rows, offsets):
    """Markdown: SIPSA-Net's FAM end-point error per offset, global and on the moving cars,
    each beside the zero predictor's (MS pixels; :func:`alignment.synthetic_epe`)."""
    lines = ["## SIPSA-Net's feature alignment module: end-point error (MS pixels; lower is "
             "better; zero predictor in brackets)\n",
             "| | %s |" % " | ".join("d=%g" % d for d in offsets),
             "|" + " --- |" * (len(offsets) + 1)]
    for key, label in (("epe_global", "global offset"), ("epe_cars", "moving cars")):
        cells = []
        for d in offsets:
            mine = [r for r in fam_rows if r["offset"] == d]
            cells.append("%.3f (%.3f)" % (np.nanmean([r[key] for r in mine]),
                                          np.nanmean([r[key + "_zero"] for r in mine])))
        lines.append("| %s | %s |" % (label, " | ".join(cells)))
    return "\n".join(lines) + "\n"


def mean_table(rows, key, methods, offsets):
    """Markdown table of the mean of ``key`` over scenes: methods x offsets, best in bold."""
    means = {(m, d): float(np.nanmean([r[key] for r in rows
                                       if r["method"] == m and r["offset"] == d]))
             for m in methods for d in offsets}
    pick = max if HIGHER_IS_BETTER[key] else min
    best = {d: pick(means[(m, d)] for m in methods) for d in offsets}
    lines = ["| method | %s |" % " | ".join("d=%g" % d for d in offsets),
             "|" + " --- |" * (len(offsets) + 1)]
    for m in methods:
        lines.append("| %s | %s |" % (m, " | ".join(
            ("**%.4f**" if means[(m, d)] == best[d] else "%.4f") % means[(m, d)]
            for d in offsets)))
    return "\n".join(lines) + "\n", means


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out_dir", required=True)
    parser.add_argument("--checkpoint", default=None,
                        help="SIPSA-Net checkpoint (default: random initialisation)")
    parser.add_argument("--methods", default="nearest,bicubic,brovey,ihs,gs,gsa,gdal,sipsa")
    parser.add_argument("--adapt_steps", type=int, default=0,
                        help="> 0 adds sipsa_adapted (adapted per scene and offset)")
    parser.add_argument("--adapt_lr", type=float, default=1e-4)
    parser.add_argument("--offsets", default="0,1,2,3,4,5,6,7,8", help="PAN pixels")
    parser.add_argument("--scenes", type=int, default=3)
    parser.add_argument("--ms_size", type=int, default=48)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--panel_crop", type=int, default=96)
    parser.add_argument("--progress", default="auto", choices=("auto", "on", "off"))
    return parser.parse_args(argv)


def run(args, command):
    """Runs the benchmark; returns the rows."""
    offsets = [float(d) for d in args.offsets.split(",")]
    names = [m for m in args.methods.split(",") if m]
    if args.adapt_steps > 0 and "sipsa_adapted" not in names:
        names.append("sipsa_adapted")
    if args.ms_size < 2 * MARGIN // SCALE + 8 or args.scenes < 1:
        raise ValueError("need --scenes >= 1 and --ms_size >= %d" % (2 * MARGIN // SCALE + 8))
    methods = Methods(names, args.checkpoint, args.adapt_steps,
                         {"lr": args.adapt_lr, "seed": args.seed}, seed=args.seed)
    os.makedirs(args.out_dir, exist_ok=True)
    bar = Progress(args.scenes * len(offsets) * len(methods.names), "misalignment",
                   mode=args.progress)
    rows, done, start = [], 0, time.time()
    fam_rows = []  # the FAM's end-point error (SIPSA-Net; docs/alignment.md)
    try:
        for index in range(args.scenes):
            for d in offsets:
                ms, pan, truth, moving, info = misaligned_scene(args.seed, index, args.ms_size, d)
                scene = Scene("scene_%d" % index, ms, pan, None,
                                 quality.sensor_subset(None, (1, 2, 3)))
                fused_by = {}
                for name in methods.names:
                    t0 = time.time()
                    fused = methods.fuse(name, ms, pan, scene, "offset %g" % d)
                    row = {"scene": index, "offset": d, "method": name, "cars": info["cars"],
                           "seconds": time.time() - t0}
                    row.update(scores(fused, truth, moving))
                    rows.append(row)
                    if name == "sipsa":
                        fam = alignment.synthetic_epe(methods.pansharpener, ms, pan,
                                                      (0.5 * d, float(d)), info["car_list"])
                        fam.pop("displacement")
                        fam_rows.append(dict(fam, offset=d))
                    fused_by[name] = np.asarray(fused, np.float64)
                    done += 1
                    bar.update(done, "scene %d offset %g %s" % (index, d, name))
                if index == 0 and d in (offsets[0], offsets[-1]):
                    image = panel((ms, pan, truth), fused_by, args.panel_crop,
                                     centre=_car_centre(moving))
                    save_png(image, os.path.join(args.out_dir, "misalignment_panel_d%g.png"
                                                    % d), PANEL_COLOURS)
    finally:
        bar.close()
        methods.close()
    columns = ("scene", "offset", "method", "cars") + INDEX_KEYS + ("seconds",)
    write_csv(rows, os.path.join(args.out_dir, "misalignment.csv"), columns)
    parts = ["# Misalignment benchmark\n",
             "Command: `%s` (%.0f s on this machine).\n" % (command, time.time() - start),
             "Synthetic road scenes (MS %dx%d, PAN %dx%d; %s cars), global PAN/MS offset "
             "(dy, dx) = (d/2, d) PAN pixels, ground truth = PAN-instant scene (see "
             "`benchmarks/misalignment.py`). Means over %d scene(s); border of %d PAN pixels "
             "left out. SIPSA-Net starts from: %s.\n"
             % (args.ms_size, args.ms_size, SCALE * args.ms_size, SCALE * args.ms_size,
                "/".join(str(r["cars"]) for r in rows if r["offset"] == offsets[0]
                         and r["method"] == methods.names[0]), args.scenes, MARGIN,
                methods.source())]
    for name, reason in methods.skipped.items():
        parts.append("%s skipped: %s\n" % (name, reason))
    if fam_rows:
        parts.append(fam_table(fam_rows, offsets))
    plots = []
    for key in INDEX_KEYS:
        arrow = "higher is better" if HIGHER_IS_BETTER[key] else "lower is better"
        table, means = mean_table(rows, key, methods.names, offsets)
        parts.append("## %s (%s)\n\n%s" % (LABELS[key], arrow, table))
        if key in PLOTTED:
            plots.append(line_plot(offsets, {m: [means[(m, d)] for d in offsets]
                                                for m in methods.names},
                                      "%s (%s)" % (LABELS[key], arrow),
                                      "PAN/MS offset d (PAN pixels)"))
    save_png(plot_grid(plots, 2), os.path.join(args.out_dir, "misalignment.png"))
    atomic_write(os.path.join(args.out_dir, "misalignment.md"),
                     "\n".join(parts).encode("utf-8"))
    print("\n".join(parts))
    return rows


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    command = "python benchmarks/misalignment.py " + " ".join(
        sys.argv[1:] if argv is None else argv)
    from sipsa_tf import checkpoints
    try:
        run(args, command)
    except (EvaluationError, checkpoints.CheckpointError, ValueError, OSError) as err:
        print("error: %s" % str(err).replace("\n", " "), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
