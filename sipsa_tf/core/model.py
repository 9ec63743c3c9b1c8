"""Normalisation around SIPSA-Net and the inference / training forward passes.

Reference: Lee, Seo, Kim, "Shift-Invariant Pan Sharpening with Moving Object Alignment for
Satellite Imagery", CVPR 2021; docs/design.md, "Normalisation". Inputs are reflectance-like values
in [0, 1] (digital numbers / 2047 for 11-bit data). The network sees locally normalised MS and PAN
(local mean and standard deviation from a 9 x 9 Gaussian window) and its outputs are mapped back
with the MS statistics.
"""
import collections

import tensorflow as tf

from sipsa_tf.core import network, ops
from sipsa_tf.constants import MS_BANDS, SCALE

STD_EPS = 1e-4
# The smallest MS height/width the graph supports: the 9 x 9 REFLECT-padded Gaussian of the local
# statistics needs more than 4 pixels on each side.
MIN_MS_SIZE = 5

Forward = collections.namedtuple(
    "Forward", ["output", "aligned", "out4", "aligned4", "ms_n", "pan_n", "kernel"])
Forward.__doc__ = """Tensors of one forward pass.

output: (B, 4h, 4w, 3) fused image, de-normalised (unclipped).
aligned: (B, 4h, 4w, 3) aligned MS shown at PAN resolution, de-normalised (unclipped).
out4, aligned4: raw network outputs in the normalised domain, (B, 4h, 4w, 4) and (B, h, w, 4).
ms_n, pan_n: the normalised inputs, (B, h, w, 3) and (B, 4h, 4w, 1).
kernel: (B, h, w, 81) the feature alignment module's softmax weights
(:func:`sipsa_tf.core.ops.fam_displacement` gives its displacement).
"""


def mean_std(x):
    """Local mean and standard deviation: 9 x 9 Gaussian moments, sd = sqrt(|q - m^2| + 1e-4).

    Args:
        x: (B, H, W, C) tensor.

    Returns:
        (mean, std), each (B, H, W, C).
    """
    moments = ops.gauss(tf.concat([x, x * x], axis=3), 9)
    m, q = tf.split(moments, 2, axis=3)
    return m, tf.sqrt(tf.abs(q - m * m) + STD_EPS)


def normalise(ms, pan):
    """The network's inputs: MS and PAN each minus its local mean, over its local sd.

    The PAN's statistics are taken at MS resolution (on the 4 x 4 block means) and brought back
    to PAN resolution by :func:`ops.resize_blur`.

    Args:
        ms: (B, h, w, 3) float32 MS, values DN / 2047.
        pan: (B, 4h, 4w, 1) float32 PAN, same scale.

    Returns:
        (ms_n, pan_n, ms_mean, ms_std): the normalised MS and PAN, and the MS statistics
        (B, h, w, 3) that map the outputs back.
    """
    ms_mean, ms_std = mean_std(ms)
    pan_mean, pan_std = mean_std(ops.satdown(pan, SCALE))
    pan_mean = ops.resize_blur(pan_mean, SCALE)
    pan_std = ops.resize_blur(pan_std, SCALE)
    return (ms - ms_mean) / ms_std, (pan - pan_mean) / pan_std, ms_mean, ms_std


def forward(ms, pan, fam=None, pan_window=None, policy=None, temperature=None,
            align_statistics=False, fam_flat_mean=False):
    """Normalises, runs the network in its scope, and de-normalises.

    Args:
        ms: (B, h, w, 3) float32 MS, values DN / 2047; h, w >= MIN_MS_SIZE.
        pan: (B, 4h, 4w, 1) float32 PAN, same scale.
        fam: optional feature-alignment op (``ops.local_conv_literal`` for the literal graph).
        pan_window: optional callable ``pan_window(tensor, name)`` -> (B, H', W', C) cutting a
            window out of each PAN-resolution tensor it is handed: "u" and "pan_n" (see
            :func:`network.sipsa_net`), then "up_mean", "up_std" (the MS statistics at PAN
            resolution) and "aligned_up"; ``output``, ``aligned`` and ``out4`` are then computed
            on that window only (for tiled inference, :mod:`sipsa_tf.scene`).
        policy: precision policy or its name (:mod:`sipsa_tf.core.precision`; default float32):
            the network's convolutions run in its dtype; the normalisation, de-normalisation and
            every returned tensor are float32.
        temperature: optional scalar tensor dividing the FAM's logits (training only; see
            :func:`network.sipsa_net`).
        align_statistics: False (the original): the outputs are de-normalised with the local
            mean and standard deviation of the MS as it came. True: with those statistics
            moved by the FAM's own weights (:func:`ops.fam_mirrored`), so that a misregistered
            MS does not bring its misregistered local mean back into the output
            (docs/training.md, stage L). Same variables either way; the outputs differ.
        fam_flat_mean: False (the original). True: the FAM's weights on the least-textured
            quarter of MS pixels are replaced by their mean over the rest of the image
            (:func:`ops.fill_flat`), where no displacement can be read locally. Same
            variables; the outputs differ. Computed per input image, so a tiled scene
            (:mod:`sipsa_tf.scene`) takes the quarter per tile.

    Returns:
        A :class:`Forward` of tensors.
    """
    ms_n, pan_n, ms_mean, ms_std = normalise(ms, pan)
    with network.network_scope():
        out4, aligned4, kernel = network.sipsa_net(
            ms_n, pan_n, fam=fam, pan_window=pan_window, policy=policy, temperature=temperature,
            with_kernel=True,
            kernel_fn=(lambda k: ops.fill_flat(k, pan, SCALE)) if fam_flat_mean else None)
    bands = MS_BANDS
    if align_statistics:
        ms_mean, ms_std = (ops.fam_mirrored(fam or ops.local_conv, t, kernel)
                           for t in (ms_mean, ms_std))
    up_mean = ops.resize_blur(ms_mean, SCALE)
    up_std = ops.resize_blur(ms_std, SCALE)
    aligned_up = ops.resize_blur(aligned4[..., :bands], SCALE)
    if pan_window is not None:
        up_mean, up_std, aligned_up = (pan_window(t, name) for t, name in (
            (up_mean, "up_mean"), (up_std, "up_std"), (aligned_up, "aligned_up")))
    output = out4[..., :bands] * up_std + up_mean
    aligned = aligned_up * up_std + up_mean
    return Forward(output, aligned, out4, aligned4, ms_n, pan_n, kernel)
