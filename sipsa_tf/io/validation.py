"""Checks of the arrays given to the Python API, with one-sentence error messages.

Reference: Lee, Seo, Kim, "Shift-Invariant Pan Sharpening with Moving Object Alignment for
Satellite Imagery", CVPR 2021. SIPSA-Net takes 3-band MS and 1-band PAN at exactly 4x the MS size.
"""
import numpy as np

from sipsa_tf.errors import InputError
from sipsa_tf.io.pairs import MS_BANDS, SCALE, check_sizes


def _as_nhwc(array, name, bands):
    a = np.asarray(array)
    if a.ndim == 2:
        a = a[None, :, :, None]
    elif a.ndim == 3:
        a = a[None]
    elif a.ndim != 4:
        raise InputError("%s must have 2 to 4 dimensions, got shape %s" % (name, a.shape))
    if a.shape[-1] != bands:
        raise InputError("%s must have %d band%s in the last axis, got shape %s"
                         % (name, bands, "s" if bands > 1 else "", np.asarray(array).shape))
    return a


def _check_values(a, name):
    if not np.issubdtype(a.dtype, np.floating):
        raise InputError(
            "%s has integer type %s of unknown scale; pass float values in [0, 1], e.g. DN / 2047 "
            "for 11-bit data" % (name, a.dtype))
    if not np.all(np.isfinite(a)):
        raise InputError("%s contains NaN or Inf values" % name)


def check_pair(ms, pan, min_ms_size, ms_name="ms", pan_name="pan"):
    """Validates an MS/PAN pair and returns them as (B, h, w, 3) and (B, 4h, 4w, 1) float32.

    Args:
        ms: (h, w, 3) or (B, h, w, 3) float array, values DN / 2047.
        pan: (4h, 4w), (4h, 4w, 1) or (B, 4h, 4w, 1) float array.
        min_ms_size: smallest MS height and width accepted.
        ms_name, pan_name: names used in messages (e.g. file names).

    Raises:
        InputError (a ValueError): with one sentence saying what is wrong; sizes in the words of
        :func:`sipsa_tf.io.pairs.size_problem`.
    """
    ms4 = _as_nhwc(ms, ms_name, MS_BANDS)
    pan4 = _as_nhwc(pan, pan_name, 1)
    _check_values(ms4, ms_name)
    _check_values(pan4, pan_name)
    if ms4.shape[0] != pan4.shape[0]:
        raise InputError("%s and %s have different batch sizes (%d and %d)"
                         % (ms_name, pan_name, ms4.shape[0], pan4.shape[0]))
    h, w = ms4.shape[1:3]
    ph, pw = pan4.shape[1:3]
    check_sizes(pan_name, (ph, pw), ms_name, (h, w), error=InputError)
    if min(h, w) < min_ms_size:
        raise InputError("%s is %dx%d; the smallest size supported is %dx%d MS pixels (%dx%d PAN)"
                         % (ms_name, h, w, min_ms_size, min_ms_size,
                            SCALE * min_ms_size, SCALE * min_ms_size))
    return ms4.astype(np.float32), pan4.astype(np.float32)
