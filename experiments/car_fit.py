"""Does a checkpoint's FAM follow the moving cars of the synthetic scenes it was trained on?

    .venv/bin/python experiments/car_fit.py checkpoints/wald_fam_g [more checkpoints ...]

SIPSA-Net (Lee, Seo, Kim, CVPR 2021); docs/training.md, "The feature alignment module". The
benchmark (``benchmarks/alignment.py``) measures the moving cars on scenes the model never saw;
this measures them on the training generator's own scenes (``--synthetic_fraction``: the first
``--scenes`` of seed ``--seed``, MS 64, 75% displaced by up to 2 MS px), to tell a fit that
fails from one that does not generalise. Per checkpoint, over the MS pixels (3 px border
excluded) whose block-mean displacement departs from the scene's global offset by more than
``--departs`` MS px (the cars' pixels): the FAM's end-point error, the zero predictor's, and the
global-only predictor's (the scene's true offset everywhere: a FAM that ignores the cars, at
best); and the EPE elsewhere beside the zero predictor's.
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def measure(checkpoint, scenes, departs):
    from sipsa_tf import Pansharpener
    from sipsa_tf.constants import SCALE
    from sipsa_tf.evaluation import alignment
    sums = {"cars": [], "zero": [], "global": [], "rest": [], "rest_zero": []}
    with Pansharpener(checkpoint) as model:
        for scene in scenes:
            disp = model.alignment(scene.ms, scene.pan[:, :, 0])["displacement"]
            h, w = scene.ms.shape[:2]
            truth = alignment.block_mean(scene.flow)
            glob = np.broadcast_to(np.asarray(scene.offset) / SCALE, truth.shape)
            inner = np.zeros((h, w), bool)
            inner[3:-3, 3:-3] = True
            cars = (np.linalg.norm(truth - glob, axis=-1) > departs) & inner
            rest = ~cars & inner
            err = np.linalg.norm(disp - truth, axis=-1)
            sums["cars"] += list(err[cars])
            sums["zero"] += list(np.linalg.norm(truth, axis=-1)[cars])
            sums["global"] += list(np.linalg.norm(truth - glob, axis=-1)[cars])
            sums["rest"] += list(err[rest])
            sums["rest_zero"] += list(np.linalg.norm(truth, axis=-1)[rest])
    return {k: (float(np.mean(v)), len(v)) for k, v in sums.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--scenes", type=int, default=24)
    parser.add_argument("--seed", type=int, default=27, help="the training run's --seed")
    parser.add_argument("--departs", type=float, default=0.5)
    args = parser.parse_args(argv)
    from sipsa_tf.data import supervised
    shifts = supervised.Displacement(max_offset=2.0, local_offset=0.5, aligned_fraction=0.25)
    scenes = supervised.synthetic_sources(args.scenes, 64, args.seed, shifts)
    print("| checkpoint | car pixels | EPE cars | zero | global only | EPE elsewhere | zero |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for checkpoint in args.checkpoints:
        m = measure(checkpoint, scenes, args.departs)
        print("| %s | %d | %.3f | %.3f | %.3f | %.3f | %.3f |" % (
            checkpoint, m["cars"][1], m["cars"][0], m["zero"][0], m["global"][0], m["rest"][0],
            m["rest_zero"][0]), flush=True)


if __name__ == "__main__":
    main()
