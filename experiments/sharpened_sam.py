"""Is WorldView-3 example b's spectral angle the FAM's softness? A diagnostic.

    .venv/bin/python experiments/sharpened_sam.py --checkpoints checkpoints/wald_fam_i \\
        --out logs/sharpened_sam.md

SIPSA-Net (Lee, Seo, Kim, CVPR 2021); docs/training.md, "The feature alignment module". The
aligning stages (E, F, I, L) lose 0.2-0.3 deg of SAM on WorldView-3 example b against stage 1j.
Their FAM spreads its weight over several taps where stage 1j's is one-hot, and a soft kernel
mixes neighbouring MS features. This fuses each held-out region, unshifted, at reduced
resolution (``sipsa_tf.evaluation.alignment.DisplacedWald``, no border excluded) with the FAM's
own weights and with them made one-hot at their largest tap (``experiments/oracle_fam.py``'s
``sharpened``), each with and without the de-normalisation statistics moved by the FAM
(``+stats``), and reports Q2n and SAM beside GSA's. It diagnoses; it chooses nothing.
"""
import argparse
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)

MODES = ("model", "sharpened", "model+stats", "sharpened+stats")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoints", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--part", default="held_out")
    parser.add_argument("--data_dir", default="../shared/data/grip")
    parser.add_argument("--split", default="experiments/grip_split.json")
    args = parser.parse_args(argv)
    import oracle_fam
    from sipsa_tf.constants import SCALE
    from sipsa_tf.data import supervised
    from sipsa_tf.evaluation import alignment, baselines, quality
    regions = supervised.load_regions(supervised.load_split(args.split), args.part,
                                      args.data_dir)
    lines = ["# Q2n / SAM (deg) with the FAM's weights as they are and made one-hot\n",
             "Command: `python experiments/sharpened_sam.py %s`. %s regions of `%s`, unshifted."
             "\n" % (" ".join(sys.argv[1:] if argv is None else argv), args.part, args.split),
             "| checkpoint | image | GSA | " + " | ".join(MODES) + " |",
             "| --- | --- | --- |" + " --- |" * len(MODES)]

    def indices(fused, reference):
        ind = quality.reduced_resolution_indices(fused, reference, SCALE,
                                                 block=min(32, *reference.shape[:2]))
        return "%.3f / %.2f" % (ind["q2n"], ind["sam"])

    for checkpoint in args.checkpoints.split(","):
        net = oracle_fam.FedKernel(checkpoint)
        for region in regions:
            wald = alignment.DisplacedWald(region.ms, region.pan, region.gains)
            ms, pan = wald.ms_lr.astype(np.float32), wald.pan_lr.astype(np.float32)
            gsa = baselines.fuse("gsa", wald.ms_lr, wald.pan_lr, SCALE, sensor=region.gains)
            lines.append("| %s | %s | %s | %s |" % (
                os.path.basename(checkpoint.rstrip("/")), region.name,
                indices(gsa, wald.reference),
                " | ".join(indices(net(ms, pan, m, (0.0, 0.0)), wald.reference) for m in MODES)))
            print(lines[-1], flush=True)
    from sipsa_tf.evaluation import reports
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    reports.atomic_write(args.out, ("\n".join(lines) + "\n").encode("utf-8"))


if __name__ == "__main__":
    main()
