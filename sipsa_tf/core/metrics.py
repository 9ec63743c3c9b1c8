"""The original SIPSA-Net test metrics (ERGAS, SCC, SCC2, Q, D_lambda, D_s, QNR) as graph ops.

Reference: Lee, Seo, Kim, "Shift-Invariant Pan Sharpening with Moving Object Alignment for
Satellite Imagery", CVPR 2021; docs/design.md, "Metrics and test images". These are the original
code's own definitions, kept exactly so that reported numbers compare with the paper's training
logs; the standard indices of the pansharpening literature are in
:mod:`sipsa_tf.evaluation.quality`. All
inputs are (B, H, W, C) float32 tensors with values in [0, 1].
"""
import tensorflow as tf

from sipsa_tf.core import ops
from sipsa_tf.constants import SCALE

Q_BLOCK = 32
ERGAS_EPS = 1e-10
SCC_EPS = 1e-10
Q_EPS = 1e-16
METRIC_NAMES = ("ergas", "scc", "q", "qnr")
# Smallest MS height/width for the Q index: REFLECT padding up to a multiple of 32 must not
# exceed the image (ceil((32 - h) / 2) <= h - 1).
MIN_MS_SIZE_FOR_Q = 12


def ergas(x, ref, scale=SCALE):
    """ERGAS as the original computes it.

    Per (batch, channel) mse / (mean(ref)^2 + 1e-10); mean over channels;
    (100 / scale) sqrt(. + 1e-10); mean over the batch.
    """
    mse = tf.reduce_mean(tf.square(ref - x), axis=[1, 2])
    ref_mean = tf.reduce_mean(ref, axis=[1, 2])
    per_item = tf.reduce_mean(mse / (tf.square(ref_mean) + ERGAS_EPS), axis=1)
    return tf.reduce_mean((100.0 / scale) * tf.sqrt(per_item + ERGAS_EPS))


def _sobel_rows(x):
    """Depthwise [[1,2,1],[0,0,0],[-1,-2,-1]] cross-correlation with zero padding 1."""
    xp = tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]])
    top = xp[:, :-2, :-2] + 2.0 * xp[:, :-2, 1:-1] + xp[:, :-2, 2:]
    bottom = xp[:, 2:, :-2] + 2.0 * xp[:, 2:, 1:-1] + xp[:, 2:, 2:]
    return top - bottom


def scc(x, pan):
    """Spatial correlation of Sobel (row-direction) responses, as the original computes it.

    PAN is repeated to x's channels; per batch item
    sum(gx gp) / sqrt(sum gx^2 + eps) / sqrt(sum gp^2 + eps) over H, W, C; mean over the batch.

    Args:
        x: (B, H, W, C) tensor.
        pan: (B, H, W, 1) tensor.
    """
    gx = _sobel_rows(x)
    gp = _sobel_rows(tf.tile(pan, [1, 1, 1, ops.channels(x)]))
    m11 = tf.reduce_sum(gx * gx, axis=[1, 2, 3])
    m22 = tf.reduce_sum(gp * gp, axis=[1, 2, 3])
    m12 = tf.reduce_sum(gx * gp, axis=[1, 2, 3])
    return tf.reduce_mean(m12 / tf.sqrt(tf.abs(m22) + SCC_EPS) / tf.sqrt(tf.abs(m11) + SCC_EPS))


def scc2(x, pan):
    """SCC of the channel mean of x against PAN."""
    return scc(tf.reduce_mean(x, axis=3, keepdims=True), pan)


def _pad_to_multiple(x, block):
    """REFLECT-pads H and W up to a multiple of ``block``, ceil(extra / 2) before."""
    size = tf.shape(x)[1:3]
    extra = (block - size % block) % block
    before = (extra + 1) // 2
    after = extra - before
    return tf.pad(x, [[0, 0], [before[0], after[0]], [before[1], after[1]], [0, 0]],
                  mode="REFLECT")


def q_index(y, x, block=Q_BLOCK):
    """Q (UIQI) per channel on non-overlapping blocks, as the original computes it.

    Each channel is REFLECT-padded to a multiple of 32; per 32 x 32 block
    4 cov mx my / ((vx + vy)(mx^2 + my^2) + 1e-16) with population moments; mean over blocks.

    Args:
        y, x: (B, H, W, C) tensors.

    Returns:
        (B, C) tensor.
    """
    def blocks(t):
        return tf.nn.space_to_depth(_pad_to_multiple(t, block), block)  # channel-major blocks

    channels = ops.channels(y)
    # Each channel separately: move channels into the batch axis.
    def per_channel(t):
        t = tf.transpose(t, [0, 3, 1, 2])
        shape = tf.shape(t)
        return tf.reshape(t, tf.stack([shape[0] * shape[1], shape[2], shape[3], 1]))

    yb = blocks(per_channel(y))
    xb = blocks(per_channel(x))
    ym = tf.reduce_mean(yb, axis=3, keepdims=True)
    xm = tf.reduce_mean(xb, axis=3, keepdims=True)
    yc = yb - ym
    xc = xb - xm
    cov = tf.reduce_mean(xc * yc, axis=3, keepdims=True)
    vx = tf.reduce_mean(xc * xc, axis=3, keepdims=True)
    vy = tf.reduce_mean(yc * yc, axis=3, keepdims=True)
    q = 4.0 * cov * xm * ym / ((vx + vy) * (xm * xm + ym * ym) + Q_EPS)
    q = tf.reduce_mean(q, axis=[1, 2, 3])
    return tf.reshape(q, [-1, channels])


def d_lambda(fused, ms):
    """Spectral distortion as the original computes it.

    Sum over all C x C ordered channel pairs (the diagonal included, as in the original) of
    |Q(fused_i, fused_j) - Q(ms_i, ms_j)|, divided by C (C - 1); mean over the batch.
    """
    channels = ops.channels(fused)
    firsts = [i for i in range(channels) for _ in range(channels)]
    seconds = [j for _ in range(channels) for j in range(channels)]

    def pairs(t):
        return (tf.gather(t, seconds, axis=3), tf.gather(t, firsts, axis=3))

    q_fused = q_index(*pairs(fused))
    q_ms = q_index(*pairs(ms))
    per_item = tf.reduce_sum(tf.abs(q_fused - q_ms), axis=1) / (channels * (channels - 1))
    return tf.reduce_mean(per_item)


def d_s(fused, pan, ms, scale=SCALE):
    """Spatial distortion: mean over c of |Q(fused_c, pan) - Q(ms_c, satdown(pan))|."""
    channels = ops.channels(fused)
    q_high = q_index(fused, tf.tile(pan, [1, 1, 1, channels]))
    q_low = q_index(ms, tf.tile(ops.satdown(pan, scale), [1, 1, 1, channels]))
    return tf.reduce_mean(tf.abs(q_high - q_low))


def qnr(fused, pan, ms, scale=SCALE):
    """QNR = |1 - D_lambda| |1 - D_s|."""
    return tf.abs(1.0 - d_lambda(fused, ms)) * tf.abs(1.0 - d_s(fused, pan, ms, scale))


def test_metrics(output, aligned, ms, pan, scale=SCALE):
    """The two metric lists of the original test step.

    Args:
        output: (B, 4h, 4w, 3) clipped fused image.
        aligned: (B, 4h, 4w, 3) clipped aligned MS.
        ms: (B, h, w, 3) MS input.
        pan: (B, 4h, 4w, 1) PAN input.

    Returns:
        (align_x, align_o): lists of scalar tensors [ERGAS, SCC, Q, QNR]; the second list has
        SCC2 of ``aligned`` in place of SCC.
    """
    small = ops.satdown(output, scale)
    shared_ergas = ergas(small, ms, scale)
    shared_q = tf.reduce_mean(q_index(small, ms))
    shared_qnr = qnr(output, pan, ms, scale)
    return ([shared_ergas, scc(output, pan), shared_q, shared_qnr],
            [shared_ergas, scc2(aligned, pan), shared_q, shared_qnr])
