"""Input checks shared by the quality indices (arrays, ratios, block sizes).

Part of :mod:`sipsa_tf.evaluation.quality` (definitions, references and conventions there;
docs/design.md, "Metrics and test images").
"""
import numbers

import numpy as np


# Relative thresholds below which window variances / mean squares count as zero (float rounding).
_FLAT_RTOL = 1e-12


# --------------------------------------------------------------------------------------------
# Input handling
# --------------------------------------------------------------------------------------------

def _as_image(a, name):
    """Returns ``a`` as a float64 ``(H, W, C)`` array or raises ValueError."""
    a = np.asarray(a)
    if a.dtype == object or not (np.issubdtype(a.dtype, np.integer)
                                 or np.issubdtype(a.dtype, np.floating)
                                 or a.dtype == bool):
        raise ValueError("%s must be a real numeric array, got dtype %s." % (name, a.dtype))
    if a.ndim == 2:
        a = a[:, :, np.newaxis]
    elif a.ndim != 3:
        raise ValueError("%s must be an (H, W) or (H, W, C) array, got shape %s."
                         % (name, a.shape))
    if a.shape[0] < 1 or a.shape[1] < 1 or a.shape[2] < 1:
        raise ValueError("%s must not be empty, got shape %s." % (name, a.shape))
    return a.astype(np.float64)


def _as_pan(a, name="pan"):
    """Returns a PAN image as a float64 ``(H, W)`` array or raises ValueError."""
    a = np.asarray(a)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim != 2:
        raise ValueError("%s must be an (H, W) or (H, W, 1) array, got shape %s."
                         % (name, a.shape))
    return _as_image(a, name)[:, :, 0]


def _same_shape(x, y, xname="x", yname="y"):
    x = _as_image(x, xname)
    y = _as_image(y, yname)
    if x.shape != y.shape:
        raise ValueError("%s and %s must have the same shape, got %s and %s."
                         % (xname, yname, x.shape, y.shape))
    return x, y


def _check_ratio(ratio):
    if isinstance(ratio, bool) or not isinstance(ratio, numbers.Integral) or ratio < 1:
        raise ValueError("ratio must be a positive integer, got %r." % (ratio,))
    return int(ratio)


def _check_block(block, name="block"):
    if isinstance(block, bool) or not isinstance(block, numbers.Integral) or block < 2:
        raise ValueError("%s must be an integer >= 2, got %r." % (name, block))
    return int(block)


def _scale_between(high, low, hname="fused", lname="ms"):
    """Integer s with high spatial size = s * low spatial size, or ValueError."""
    (hh, hw), (lh, lw) = high.shape[:2], low.shape[:2]
    if hh % lh or hw % lw or hh // lh != hw // lw:
        raise ValueError("%s (%dx%d) must be an integer multiple, the same along both axes, "
                         "of %s (%dx%d)." % (hname, hh, hw, lname, lh, lw))
    return hh // lh
