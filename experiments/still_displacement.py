"""How far does the feature alignment module move an MS that is not displaced at all?

    .venv/bin/python experiments/still_displacement.py --checkpoints a,b [--part validation]

SIPSA-Net (Lee, Seo, Kim, CVPR 2021); docs/training.md, "The feature alignment module". On the
unshifted reduced-resolution (Wald) pair of each region of ``--part`` of ``--split``, the FAM's
soft displacement D should be zero everywhere. Prints, per checkpoint and region, |D| in MS
pixels (mean, median, 90th percentile; 2 MS pixels left out at each border), the mean D, and
the mean |D| on the quarter of pixels with the least texture
(``alignment.least_textured``: the PAN's coefficient of variation over the 9 x 9 MS pixels the
FAM reads) beside that on the rest;
with ``--panel``, a PNG of PAN | MS | D (``benchmarks/alignment.py``'s colours) per checkpoint
and region. A kernel branch that reports motion where there is none moves real MS features for
nothing.
"""
import argparse
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoints", required=True, help="comma-separated")
    parser.add_argument("--split", default="experiments/grip_split_val.json")
    parser.add_argument("--part", default="validation", choices=("validation", "held_out"))
    parser.add_argument("--data_dir", default="../shared/data/grip")
    parser.add_argument("--panel", default=None, help="PNG of PAN | MS | D per row")
    args = parser.parse_args(argv)
    sys.path.insert(0, os.path.join(HERE, ".."))
    from sipsa_tf.data import supervised
    from sipsa_tf.evaluation import alignment
    from sipsa_tf.inference import Pansharpener
    regions = supervised.load_regions(supervised.load_split(args.split), args.part,
                                      args.data_dir)
    items = []
    print("| checkpoint | region | mean |D| | median | 90th pct | mean D (dy, dx) | "
          "least-texture quarter | rest |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for checkpoint in args.checkpoints.split(","):
        with Pansharpener(checkpoint) as net:
            for region in regions:
                wald = alignment.DisplacedWald(region.ms, region.pan, region.gains)
                full = net.alignment(wald.ms_lr.astype(np.float32),
                                     wald.pan_lr.astype(np.float32))["displacement"]
                items.append(("%s %s" % (os.path.basename(os.path.normpath(checkpoint)),
                              region.name), wald.ms_lr, wald.pan_lr, full))
                s = alignment.still_statistics(full, wald.pan_lr)
                print("| %s | %s | %.3f | %.3f | %.3f | (%.2f, %.2f) | %.3f | %.3f |" % (
                    checkpoint, region.name, s["mean"], s["median"], s["p90"], s["mean_dy"],
                    s["mean_dx"], s["flat"], s["rest"]), flush=True)

    if args.panel:
        sys.path.insert(0, os.path.join(HERE, "..", "benchmarks"))
        from alignment import displacement_panel  # benchmarks/alignment.py
        from sipsa_tf.evaluation import panels
        panels.save_png(displacement_panel(items), args.panel)
        print("panel: %s" % args.panel)


if __name__ == "__main__":
    main()
