"""SIPSA-Net's training loss: edge losses and the shift-invariant spectral (colour) losses.

Reference: Lee, Seo, Kim, "Shift-Invariant Pan Sharpening with Moving Object Alignment for
Satellite Imagery", CVPR 2021; docs/design.md, "Loss and its quirks". All terms are computed in the
normalised domain. The colour loss compares the output with circularly shifted copies of the
upsampled MS and keeps, per pixel and channel, the smallest absolute difference; the shift lists
are data (``data/shift_candidates.json``, the original's order, duplicates included).
"""
import functools
import json
import os

import tensorflow as tf

from sipsa_tf.core import ops
from sipsa_tf.constants import SCALE

EDGE_WEIGHT = 10.0
COLOR_WEIGHT = 5.0
BIG_WEIGHT = 4.0  # the PAN-resolution terms count four times
_SHIFTS_FILE = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data",
                            "shift_candidates.json")


@functools.lru_cache(maxsize=None)
def shift_candidates():
    """The two shift lists of the original, in its order.

    Returns:
        dict with 'pan_scale' (98 (dy, dx) in PAN pixels) and 'ms_scale' (98 (dy, dx) in MS
        pixels), each a tuple of int pairs.
    """
    with open(_SHIFTS_FILE, encoding="utf-8") as f:
        raw = json.load(f)
    return {key: tuple(tuple(int(v) for v in pair) for pair in raw[key])
            for key in ("pan_scale", "ms_scale")}


def _distinct(shifts):
    """Shifts in first-seen order without repeats (a repeat cannot lower a minimum)."""
    return tuple(dict.fromkeys(shifts))


def edge_loss(y, guide):
    """mean | |sobel2(mean_c y)| - |sobel2(guide)| |.

    Args:
        y: (B, H, W, 3) tensor.
        guide: (B, H, W, 1) tensor.

    Returns:
        Scalar tensor.
    """
    grey = tf.reduce_mean(y, axis=3, keepdims=True)
    return tf.reduce_mean(tf.abs(tf.abs(ops.sobel2(grey)) - tf.abs(ops.sobel2(guide))))


def shifted_min_literal(y, ref, shifts, per_sample=False):
    """Minimum |y - roll(ref, t)| over shifts (and batch), via the original's stacked tensor.

    Stacks len(shifts) x B differences, as the original does; the reference for
    :func:`shifted_min`.

    Args:
        y: (B, H, W, C) tensor.
        ref: (B, H, W, C) tensor.
        shifts: sequence of (dy, dx).
        per_sample: minimum over shifts only, per batch item (else over shifts and batch).

    Returns:
        (H, W, C) tensor, or (B, H, W, C) with per_sample.
    """
    rolled = tf.stack([tf.roll(ref, shift=list(t), axis=[1, 2]) for t in shifts], axis=0)
    diff = tf.abs(y[None] - rolled)  # (T, B, H, W, C)
    if per_sample:
        return tf.reduce_min(diff, axis=0)
    shape = tf.shape(diff)
    return tf.reduce_min(tf.reshape(diff, tf.concat([[-1], shape[2:]], axis=0)), axis=0)


def shifted_min(y, ref, shifts, per_sample=False):
    """Same value as :func:`shifted_min_literal`, without the (T x B) stack.

    Runs through the distinct shifts keeping, per element, the reference value that gives the
    smallest difference (no gradient), then returns |y - chosen reference|: the same value, and
    the gradient of the minimum (sign(y - r*) at the minimising entry), while holding only a few
    (B, H, W, C) tensors at any time.

    Args/Returns: as :func:`shifted_min_literal`.
    """
    ref = tf.stop_gradient(ref)
    y_fixed = tf.stop_gradient(y)
    best = None
    chosen = None
    for t in _distinct(tuple(shifts)):
        candidate = tf.roll(ref, shift=list(t), axis=[1, 2])
        diff = tf.abs(y_fixed - candidate)
        if best is None:
            best, chosen = diff, candidate
        else:
            better = diff < best
            best = tf.where(better, diff, best)
            chosen = tf.where(better, candidate, chosen)
    per_item = tf.abs(y - tf.stop_gradient(chosen))  # (B, H, W, C), equals best in value
    if per_sample:
        return per_item
    batch = tf.shape(y)[0]
    pick = tf.stop_gradient(tf.one_hot(tf.argmin(best, axis=0), batch, axis=0, dtype=y.dtype))
    return tf.reduce_sum(pick * per_item, axis=0)


def sipsa_loss(out4, aligned4, ms_n, pan_n, per_sample=False, literal=False):
    """The original training loss ``loss_G`` (the logged train loss is this x 1000).

    loss = 4 (10 edge_big + 5 color_big) + 10 edge_small + 5 color_small.

    Args:
        out4: (B, 4h, 4w, >=3) network output (normalised domain).
        aligned4: (B, h, w, >=3) aligned MS (normalised domain).
        ms_n: (B, h, w, 3) normalised MS.
        pan_n: (B, 4h, 4w, 1) normalised PAN.
        per_sample: minimum over shifts per batch item instead of the original's minimum over
            shifts and batch items together.
        literal: use the original's stacked formulation (memory ~ 98 x B images).

    Returns:
        dict of scalar tensors: loss, edge_big, color_big, edge_small, color_small.
    """
    shifted = shifted_min_literal if literal else shifted_min
    shifts = shift_candidates()
    out = out4[..., :3]
    aligned = aligned4[..., :3]
    ref_big = ops.resize_blur(ms_n, SCALE)
    ref_small = ops.satdown(ref_big, SCALE)
    terms = {
        "edge_big": edge_loss(out, pan_n),
        "color_big": tf.reduce_mean(shifted(out, ref_big, shifts["pan_scale"], per_sample)),
        "edge_small": edge_loss(aligned, ops.satdown(pan_n, SCALE)),
        "color_small": tf.reduce_mean(
            shifted(aligned, ref_small, shifts["ms_scale"], per_sample)),
    }
    terms["loss"] = (BIG_WEIGHT * (EDGE_WEIGHT * terms["edge_big"]
                                   + COLOR_WEIGHT * terms["color_big"])
                     + EDGE_WEIGHT * terms["edge_small"] + COLOR_WEIGHT * terms["color_small"])
    return terms


def sobel_magnitude(images):
    """Per-band Sobel gradient magnitude (edges of the image reflected, as ``tf.image.sobel_edges``).

    Args:
        images: (B, H, W, C) float32.

    Returns:
        (B, H, W, C) float32 >= 0: sqrt(gy^2 + gx^2) with the unnormalised 3x3 Sobel kernels
        (a unit step gives 4); a 1e-12 floor under the root keeps the gradient finite.
    """
    gy_gx = tf.image.sobel_edges(images)
    return tf.sqrt(tf.reduce_sum(tf.square(gy_gx), axis=-1) + 1e-12)


def edge_excess(output, target, radius=1):
    """Edges of ``output`` that ``target`` lacks: mean of max(|grad O| - D_r(|grad T|), 0).

    The training counterpart of the ghosting measure (``sipsa_tf.evaluation.plots.ghosting``,
    docs/misalignment.md): D_r is a max filter of radius ``radius``, so an edge drawn within
    ``radius`` pixels of a reference edge, or blur, costs nothing; a second copy of an edge
    (a ghost), ringing or a checkerboard does.

    Args:
        output, target: (B, H, W, C) float32 on the same scale.
        radius: dilation radius in pixels.

    Returns:
        scalar float32 >= 0 (mean over pixels and bands).
    """
    size = 2 * radius + 1
    allowed = tf.nn.max_pool2d(sobel_magnitude(target), size, 1, "SAME")
    return tf.reduce_mean(tf.nn.relu(sobel_magnitude(output) - allowed))


def supervised_l1(output, target, edge_weight=0.0):
    """Mean absolute error of the de-normalised output against a reference (Wald objective).

    Args:
        output: (B, H, W, 3) fused image (``model.Forward.output``), values in [0, 1] units.
        target: (B, H, W, 3) reference at the same scale (the original MS under the Wald
            protocol, or a synthetic scene's truth).
        edge_weight: > 0 adds ``edge_weight * edge_excess(output, target)`` to the loss.

    Returns:
        dict with ``loss`` (scalar float32 tensor); with ``edge_weight`` > 0 also ``l1`` and
        ``edge_excess``, in the order of :func:`supervised_terms`.
    """
    l1 = tf.reduce_mean(tf.abs(output - target))
    if edge_weight <= 0:
        return {"loss": l1}
    excess = edge_excess(output, target)
    return {"loss": l1 + edge_weight * excess, "l1": l1, "edge_excess": excess}


def supervised_terms(edge_weight=0.0, align_weight=0.0, align_loss="epe", sam_weight=0.0):
    """The keys :func:`supervised_l1` (with :func:`with_alignment` and
    :func:`with_spectral_angle`) returns, in log order (``loss`` first; ``l1`` whenever another
    term is added)."""
    extra = ((("edge_excess",) if edge_weight > 0 else ())
             + (("align_epe",) + (("align_ce",) if align_loss == "ce" else ())
                if align_weight > 0 else ())
             + (("sam",) if sam_weight > 0 else ()))
    return ("loss",) + (("l1",) + extra if extra else ())


def spectral_angle(output, target, eps=1e-12):
    """Mean spectral angle between two images, radians: the training form of SAM.

    Per pixel atan2(|o x t|, o . t) over the three bands, which keeps a finite gradient where
    the spectra agree (arccos of the normalised dot product does not); ``eps`` under the square
    root of |o x t|^2 keeps it finite where they are parallel.

    Args:
        output, target: (B, H, W, 3) float32 on the same scale (values DN / img_div).
        eps: floor of |o x t|^2.

    Returns:
        scalar float32 in [0, pi]: the mean over pixels (the quality index ``sam`` of
        sipsa_tf.evaluation.quality is the same mean in degrees, over non-zero pixels).
    """
    cross = tf.linalg.cross(output, target)
    sine = tf.sqrt(tf.reduce_sum(tf.square(cross), axis=-1) + eps)
    cosine = tf.reduce_sum(output * target, axis=-1)
    return tf.reduce_mean(tf.atan2(sine, cosine))


def with_spectral_angle(terms, output, target, weight):
    """Adds ``weight`` x :func:`spectral_angle` (logged as ``sam``) to a supervised
    objective's terms (``--sam_weight``, docs/training.md).

    Args:
        terms: the dict of :func:`supervised_l1` (or :func:`with_alignment`).
        output, target: as for :func:`supervised_l1`, three bands.
        weight: > 0.

    Returns:
        dict with ``loss`` (the sum), ``l1`` and the other terms, and ``sam`` (radians).
    """
    out = dict(terms)
    out.setdefault("l1", terms["loss"])
    out["sam"] = spectral_angle(output, target)
    out["loss"] = terms["loss"] + weight * out["sam"]
    return out


def alignment_epe(displacement, truth):
    """Mean end-point error of the FAM's soft displacement against a known displacement.

    Args:
        displacement: (B, h, w, 2) soft displacement D in MS pixels
            (:func:`sipsa_tf.core.ops.fam_displacement`).
        truth: (B, h, w, 2) where each pixel's content lies in the MS, MS pixels.

    Returns:
        scalar float32 >= 0: mean over pixels of sqrt(|D - truth|^2 + 1e-8) (the floor keeps
        the gradient finite where D equals the truth; the value there is 1e-4).
    """
    return tf.reduce_mean(tf.sqrt(tf.reduce_sum(tf.square(displacement - truth), axis=-1)
                                  + 1e-8))


def tap_targets(truth):
    """The known displacement as weights over the FAM's 81 taps (bilinear on the tap grid).

    Args:
        truth: (B, h, w, 2) displacement in MS pixels; clipped to the kernel's [-4, 4].

    Returns:
        (B, h, w, 81) float32, >= 0, summing to 1 over the taps, whose expectation
        sum_k t_k (dy_k, dx_k) is the (clipped) truth.
    """
    half = ops.FAM_KERNEL // 2
    truth = tf.clip_by_value(truth, -float(half), float(half))
    offsets = tf.constant(ops.fam_offsets())  # (81, 2)
    weights = tf.nn.relu(1.0 - tf.abs(truth[..., None, :] - offsets))  # (B, h, w, 81, 2)
    return weights[..., 0] * weights[..., 1]


def local_motion_weights(truth, local_weight):
    """Per-pixel weights that favour pixels moving apart from their crop.

    A pixel whose known displacement differs from its crop's mean displacement (a moving car, a
    local distortion) gets ``1 + local_weight * ||truth - mean||``; a pixel moving with its crop
    gets 1. Such pixels are a few percent of a crop, so an unweighted mean hardly sees them.

    Args:
        truth: (B, h, w, 2) known displacement, MS pixels.
        local_weight: >= 0; 0 gives weights of 1 everywhere.

    Returns:
        (B, h, w) float32 weights >= 1.
    """
    mean = tf.reduce_mean(truth, axis=(1, 2), keepdims=True)
    local = tf.sqrt(tf.reduce_sum(tf.square(truth - mean), axis=-1) + 1e-12)
    return 1.0 + local_weight * local


def _block_mean(x):
    """(B, 4h, 4w, C) -> (B, h, w, C): the mean of each MS pixel's 4 x 4 PAN pixels."""
    return tf.nn.avg_pool2d(x, ksize=SCALE, strides=SCALE, padding="VALID")


def block_targets(pan_truth):
    """Tap weights of a displacement known at PAN resolution, per MS pixel.

    Each PAN pixel's displacement gives bilinear tap weights (:func:`tap_targets`); an MS pixel
    gets the mean of its 4 x 4 PAN pixels' weights: a mixture whose expectation is the block
    mean of the displacement. Where an MS pixel is part car and part road the mixture has one
    mode on the car's motion and one on the road's, which the 81-tap kernel can represent,
    while the block mean's own tap weights point between the two, where neither lies.

    Args:
        pan_truth: (B, 4h, 4w, 2) displacement in MS pixels, at PAN resolution.

    Returns:
        (B, h, w, 81) float32, >= 0, summing to 1 over the taps.
    """
    return _block_mean(tap_targets(pan_truth))


def alignment_cross_entropy(kernel, truth, local_weight=0.0, targets=None, crop_weights=None):
    """Cross-entropy of the FAM's softmax against :func:`tap_targets` of the truth.

    Unlike :func:`alignment_epe`, which only sees the kernel's expectation, this scores every
    tap, so a one-hot kernel on a wrong tap is expensive and keeps a gradient.

    Args:
        kernel: (B, h, w, 81) softmax weights (``Forward.kernel``).
        truth: (B, h, w, 2) known displacement, MS pixels.
        local_weight: >= 0; with w > 0 the mean over pixels is weighted by
            :func:`local_motion_weights` (``--align_local_weight``).
        targets: optional (B, h, w, 81) tap weights to score against instead of
            ``tap_targets(truth)`` (e.g. :func:`block_targets`).
        crop_weights: optional (B,) weights > 0, one per crop, multiplying the per-pixel
            weights (e.g. to weigh real crops, whose truth is known exactly, against
            synthetic ones).

    Returns:
        scalar float32 >= 0 (mean, or weighted mean, over pixels of
        -sum_k t_k log(p_k + 1e-8)).
    """
    if targets is None:
        targets = tap_targets(truth)
    ce = -tf.reduce_sum(targets * tf.math.log(kernel + 1e-8), axis=-1)
    if local_weight <= 0 and crop_weights is None:
        return tf.reduce_mean(ce)
    weights = (local_motion_weights(truth, local_weight) if local_weight > 0
               else tf.ones_like(ce))
    if crop_weights is not None:
        weights = weights * tf.reshape(tf.cast(crop_weights, ce.dtype), [-1, 1, 1])
    return tf.reduce_sum(weights * ce) / tf.reduce_sum(weights)


ALIGN_LOSSES = ("epe", "ce")  # --align_loss
ALIGN_TARGETS = ("mean", "mixture")  # --align_target


def with_alignment(terms, kernel, pan_truth, weight, kind="epe", local_weight=0.0,
                   target="mean"):
    """Adds ``weight`` x the alignment term to a supervised objective's terms.

    Args:
        terms: the dict of :func:`supervised_l1`.
        kernel: (B, h, w, 81) FAM softmax weights.
        pan_truth: (B, 4h, 4w, 2) known displacement at PAN resolution, MS pixels; its 4 x 4
            block means are the truth of the soft displacement D.
        weight: > 0.
        kind: "epe" (:func:`alignment_epe` of the soft displacement, which is always logged)
            or "ce" (:func:`alignment_cross_entropy`, logged as ``align_ce``).
        local_weight: the cross-entropy's weight on pixels moving apart from their crop
            (:func:`local_motion_weights`; "ce" only).
        target: the cross-entropy's tap weights (``--align_target``): "mean", those of the
            block mean (:func:`tap_targets`); "mixture", the block mean of the PAN pixels'
            (:func:`block_targets`).

    Returns:
        dict with ``loss`` (the sum), ``l1`` (and ``edge_excess`` if present), ``align_epe``
        and, with "ce", ``align_ce``.
    """
    truth = _block_mean(pan_truth)
    out = dict(terms)
    out.setdefault("l1", terms["loss"])
    out["align_epe"] = alignment_epe(ops.fam_displacement(kernel), truth)
    term = out["align_epe"]
    if kind == "ce":
        targets = block_targets(pan_truth) if target == "mixture" else None
        out["align_ce"] = term = alignment_cross_entropy(kernel, truth, local_weight, targets)
    out["loss"] = terms["loss"] + weight * term
    return out
