"""Is the WorldView-3 SAM gap of the aligning FAMs an image-border effect? A diagnostic.

    .venv/bin/python experiments/border_probe.py --checkpoint checkpoints/wald_fam_f \\
        --out_dir logs/border_f [--pad 4]

SIPSA-Net (Lee, Seo, Kim, CVPR 2021); docs/training.md, "The feature alignment module". The
FAM reads features up to 4 MS pixels away and the original graph reads zeros beyond the image
(``local_conv``). At reduced resolution the WorldView-3 examples are 8 x 8 MS pixels, so every
pixel is within 4 of an edge. This runs the evaluation suite (``--split`` held-out part; GSA and
SIPSA-Net) with SIPSA-Net's inputs reflect-padded by ``--pad`` MS pixels (4 x ``--pad`` PAN
pixels) and its output cropped back, to compare with the unpadded report of
``python -m sipsa_tf.evaluate``. It diagnoses; it does not choose a checkpoint (held-out data).
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--out_dir", required=True)
    parser.add_argument("--pad", type=int, default=4)
    parser.add_argument("--data_dir", default="../shared/data/grip")
    parser.add_argument("--split", default="experiments/grip_split.json")
    args = parser.parse_args(argv)
    from sipsa_tf.constants import SCALE
    from sipsa_tf.evaluation import methods, suite
    plain = methods.Methods.fuse
    p = args.pad

    def padded(self, name, ms, pan, scene, protocol=""):
        if name != "sipsa" or p == 0:
            return plain(self, name, ms, pan, scene, protocol)
        msp = np.pad(ms, ((p, p), (p, p), (0, 0)), mode="reflect")
        panp = np.pad(pan, ((SCALE * p, SCALE * p), (SCALE * p, SCALE * p)), mode="reflect")
        out = plain(self, name, msp, panp, scene, protocol)
        return out[SCALE * p:-SCALE * p, SCALE * p:-SCALE * p]

    methods.Methods.fuse = padded
    suite.run(suite.EvalConfig(
        out_dir=args.out_dir, data_dir=args.data_dir, split=args.split, methods=("gsa", "sipsa"),
        protocols=("reduced",), checkpoint=args.checkpoint, panels=False, progress="off",
        command="python experiments/border_probe.py " + " ".join(sys.argv[1:])))


if __name__ == "__main__":
    main()
