"""How much of a model's loss under misregistration would a perfect FAM remove? A diagnostic.

    .venv/bin/python experiments/oracle_fam.py --checkpoint checkpoints/wald_fam_i \\
        --out logs/oracle_i.md [--part held_out]

SIPSA-Net (Lee, Seo, Kim, CVPR 2021); docs/training.md, "The feature alignment module". The
robustness table (docs/misalignment.md) compares the Q2n drop of SIPSA-Net under a global MS
shift with GSA's. This runs the same measurement (``sipsa_tf.evaluation.alignment``: the MS
displaced by 0.5, 1 and 2 MS pixels along y and along x, border excluded, the worse direction)
three times on one checkpoint, replacing only the FAM's 81 softmax weights (the graph's
``kernel`` tensor is fed):

- ``model``: the FAM's own weights (the robustness table's figure);
- ``oracle``: the bilinear tap weights of the true shift everywhere (one-hot at an integer
  shift, two or four taps at a sub-pixel one); in the aligned case the centre tap;
- ``sharpened``: the model's own weights made one-hot at their largest tap.
- ``flat-centre``: the model's own weights, but the centre tap (no displacement) on the quarter
  of MS pixels with the least texture (``alignment.least_textured`` of the PAN), where the
  image cannot tell a displacement (the aperture problem).
- ``flat-mean``: as ``flat-centre``, but those pixels get the mean of the model's own weights
  over the other three quarters (the image's global displacement as the textured part reads
  it) instead of the centre tap.
- ``model+stats``, ``oracle+stats``, ``flat-centre+stats``, ``flat-mean+stats``: as without,
  and the output is de-normalised with the MS's local mean and standard deviation moved by the
  same FAM weights (the network de-normalises with the statistics of the MS as it came,
  misregistered; this variant changes the forward graph, not its variables, and is here to
  measure). Beyond the image the moved statistics read mirrored values, not the FAM's zeros.

``--extra_border`` excludes more of the border than the table does, to see how much of a drop
comes from the content shifted in at the edges (nearest values), which the network's receptive
field carries inwards.

If the oracle's drop is small where the model's is large, a better FAM would remove that loss;
if not, the fusion (or the sub-pixel mixing of features that the graph allows) is what loses it.
It diagnoses; it chooses nothing.
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

MODES = ("model", "oracle", "sharpened", "flat-centre", "flat-mean", "model+stats",
         "oracle+stats", "flat-centre+stats", "flat-mean+stats")


def bilinear_taps(shift, h, w):
    """(1, h, w, 81) FAM weights whose soft displacement is ``shift`` (dy, dx) everywhere."""
    from sipsa_tf.evaluation import alignment
    offsets = alignment.fam_offsets()
    weights = np.zeros(len(offsets))
    sy, sx = shift
    for ty, wy in ((np.floor(sy), 1 - (sy - np.floor(sy))), (np.floor(sy) + 1, sy - np.floor(sy))):
        for tx, wx in ((np.floor(sx), 1 - (sx - np.floor(sx))),
                       (np.floor(sx) + 1, sx - np.floor(sx))):
            if wy * wx > 0:
                k = np.flatnonzero((offsets[:, 0] == ty) & (offsets[:, 1] == tx))[0]
                weights[k] += wy * wx
    return np.broadcast_to(weights, (1, h, w, len(offsets))).astype(np.float32)


def _moved(stat, kernel):
    """The FAM applied to a statistic, reading edge-mirrored values beyond the image (the FAM
    reads zeros there, which would pull a local mean to black at the borders)."""
    import tensorflow as tf
    from sipsa_tf.core import ops
    half = ops.FAM_KERNEL // 2
    pad = [[0, 0], [half, half], [half, half], [0, 0]]
    out = ops.local_conv_fused(tf.pad(stat, pad, mode="SYMMETRIC"), tf.pad(kernel, pad))
    return out[:, half:-half, half:-half, :]


class FedKernel:
    """SIPSA-Net on one checkpoint whose FAM weights can be replaced."""

    def __init__(self, checkpoint):
        import tensorflow as tf
        from sipsa_tf import checkpoints, session
        from sipsa_tf.constants import SCALE
        from sipsa_tf.core import model, network, ops
        self.graph = tf.Graph()
        with self.graph.as_default():
            self.ms = tf.compat.v1.placeholder(tf.float32, [1, None, None, 3])
            self.pan = tf.compat.v1.placeholder(tf.float32, [1, None, None, 1])
            fwd = model.forward(self.ms, self.pan, fam=ops.local_conv_fused)
            self.kernel = fwd.kernel
            self.output = tf.clip_by_value(fwd.output, 0.0, 1.0)
            # The de-normalisation with the MS statistics moved by the same FAM weights.
            _, _, mean, std = model.normalise(self.ms, self.pan)
            moved = [ops.resize_blur(_moved(t, fwd.kernel), SCALE) for t in (mean, std)]
            self.output_moved = tf.clip_by_value(
                fwd.out4[..., :3] * moved[1] + moved[0], 0.0, 1.0)
            self.session = session.open_session(
                self.graph, network.network_variables(self.graph),
                checkpoints.resolve(checkpoint), session.make_session_config())
        self.graph.finalize()

    def __call__(self, ms, pan, mode, shift):
        feed = {self.ms: ms[None], self.pan: pan[None, :, :, None]}
        output = self.output
        if mode.endswith("+stats"):
            mode, output = mode[:-len("+stats")], self.output_moved
        if mode == "oracle":
            feed[self.kernel] = bilinear_taps(shift, *ms.shape[:2])
        elif mode == "sharpened":
            k = self.session.run(self.kernel, feed)
            feed[self.kernel] = (k == k.max(axis=-1, keepdims=True)).astype(np.float32)
        elif mode in ("flat-centre", "flat-mean"):
            from sipsa_tf.evaluation import alignment
            k = self.session.run(self.kernel, feed)
            flat = alignment.least_textured(pan)[None, :, :, None]
            fill = (bilinear_taps((0.0, 0.0), *ms.shape[:2]) if mode == "flat-centre"
                    else k[0][~flat[0, :, :, 0]].mean(axis=0))
            feed[self.kernel] = np.where(flat, fill, k)
        return self.session.run(output, feed)[0]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--part", default="held_out")
    parser.add_argument("--extra_border", type=int, default=0,
                        help="MS pixels excluded beyond the table's ceil(offset)")
    parser.add_argument("--data_dir", default="../shared/data/grip")
    parser.add_argument("--split", default="experiments/grip_split.json")
    args = parser.parse_args(argv)
    from sipsa_tf.constants import SCALE
    from sipsa_tf.data import supervised
    from sipsa_tf.evaluation import alignment, baselines
    net = FedKernel(args.checkpoint)
    regions = supervised.load_regions(supervised.load_split(args.split), args.part,
                                      args.data_dir)
    lines = ["# Q2n drop under a global MS shift with the FAM's weights replaced\n",
             "Command: `python experiments/oracle_fam.py %s`. %s regions of `%s`; drop = "
             "aligned Q2n - shifted Q2n on the same inner area (border ceil(offset) + %d MS "
             "pixels), the worse of y and x.\n"
             % (" ".join(sys.argv[1:] if argv is None else argv), args.part, args.split,
                args.extra_border),
             "| image | offset | GSA | " + " | ".join(MODES) + " | aligned Q2n (" +
             " / ".join(MODES) + ") |", "| --- |" + " --- |" * (3 + len(MODES))]
    for region in regions:
        wald = alignment.DisplacedWald(region.ms, region.pan, region.gains)
        pan = wald.pan_lr.astype(np.float32)
        for offset in alignment.ROBUSTNESS_OFFSETS:
            border = alignment.border_for((offset, offset)) + args.extra_border
            if 2 * border >= min(wald.ms_lr.shape[:2]):
                lines.append("| %s | %g | (image too small for that border) |"
                             % (region.name, offset))
                continue
            ref = alignment._inner(wald.reference, border, SCALE)

            def q2n(image):
                return alignment._q2n(alignment._inner(image, border, SCALE), ref)

            base = {m: q2n(net(wald.ms_lr.astype(np.float32), pan, m, (0.0, 0.0)))
                    for m in MODES}
            gsa0 = q2n(baselines.fuse("gsa", wald.ms_lr, wald.pan_lr, SCALE, sensor=region.gains))
            drops = {m: [] for m in MODES}
            gsa = []
            for shift in ((offset, 0.0), (0.0, offset)):
                ms = wald.ms_shifted(shift)
                for m in MODES:
                    drops[m].append(base[m] - q2n(net(ms.astype(np.float32), pan, m, shift)))
                gsa.append(gsa0 - q2n(baselines.fuse("gsa", ms, wald.pan_lr, SCALE,
                                                     sensor=region.gains)))
            lines.append("| %s | %g | %.3f | %s | %s |" % (
                region.name, offset, max(gsa),
                " | ".join("%.3f" % max(drops[m]) for m in MODES),
                " / ".join("%.3f" % base[m] for m in MODES)))
            print(lines[-1], flush=True)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
