"""The one home of the 2-98 percentile display stretch (PNG panels, previews, test images).

The original writes its test images stretched per channel between the 2nd and 98th percentiles
of the image itself, truncated to 8 bits (docs/design.md, "Metrics and test images");
:func:`stretch` with ``original=True`` reproduces that exactly. The evaluation panels and the
scene preview use the same stretch with rounding (and NaN-free percentiles for the preview).
"""
import numpy as np

STRETCH_PERCENTILES = (2, 98)


def percentiles(x, axis=None):
    """(low, high): the 2nd and 98th percentiles of ``x`` over ``axis`` (NaN ignored)."""
    x = np.asarray(x)
    if x.dtype.kind == "f" and not np.all(np.isfinite(x)):
        return tuple(np.nanpercentile(x, STRETCH_PERCENTILES, axis=axis))
    return tuple(np.percentile(x, STRETCH_PERCENTILES, axis=axis))


def stretch(x, low, high, eps=1e-6, dtype=np.float64, original=False):
    """Maps [low, high] to [0, 255] as uint8 (per channel when low/high are vectors).

    Args:
        x: array; ``low``/``high`` broadcast against it.
        eps: smallest divisor (flat images).
        dtype: arithmetic type.
        original: the original's variant: clip ``x`` to [low, high] first and truncate;
            otherwise clip the result to [0, 1] and round to nearest. NaN maps to 0.

    Returns:
        uint8 array of the shape of ``x``.
    """
    x = np.asarray(x).astype(dtype)
    low, high = np.asarray(low), np.asarray(high)  # their own type, as each caller had it
    if original:
        y = (np.clip(x, low, high) - low) / np.maximum(high - low, eps)
        return np.uint8(np.clip(y, 0.0, 1.0) * 255.0)
    y = np.clip(np.nan_to_num((x - low) / np.maximum(high - low, eps)), 0.0, 1.0)
    return np.uint8(y * 255.0 + 0.5)
