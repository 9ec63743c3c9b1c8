"""The one home of the PAN/MS size rule, the ratio and band constants and the band parser.

SIPSA-Net (Lee, Seo, Kim, CVPR 2021) fuses a 3-band MS image with a 1-band PAN exactly
:data:`SCALE` times larger in both directions (docs/design.md, "Inputs"). Every entry point (the
Python API, the scene tool, the trainer's data checks, the ``.mat`` reader used by the converter
and the evaluation) checks a pair with :func:`size_problem` and reports it in the same words.
"""
import re

from sipsa_tf.constants import MS_BANDS, PAN_BANDS, SCALE  # noqa: F401 (re-exported)
from sipsa_tf.errors import UserError

# The original's training reader crops PAN rows/columns beyond 4x the MS (at most SCALE - 1).
TRAINING_CROP = SCALE - 1


def size_problem(pan_name, pan_size, ms_name, ms_size, ratio=SCALE, crop=0):
    """Why a PAN of ``pan_size`` does not fit an MS of ``ms_size``, or None if it does.

    Args:
        pan_name, ms_name: how the two images are named in the message (file names, or
            ``file: I_PAN``).
        pan_size, ms_size: (rows, columns).
        ratio: PAN pixels per MS pixel (4 for SIPSA-Net; the classical baselines take any).
        crop: surplus PAN rows/columns (at most ``ratio - 1``) accepted because the reader crops
            them (the original's training reader: :data:`TRAINING_CROP`); 0 elsewhere.

    Returns:
        None, or one sentence: ``<pan> is H x W pixels (rows x columns) but must be exactly 4x
        <ms> (h x w), i.e. 4h x 4w: off by +r rows and +c columns``.
    """
    (ph, pw), (h, w) = (int(n) for n in pan_size[:2]), (int(n) for n in ms_size[:2])
    want = (ratio * h, ratio * w)
    if 0 <= ph - want[0] <= crop and 0 <= pw - want[1] <= crop:
        return None
    return ("%s is %d x %d pixels (rows x columns) but must be exactly %dx %s (%d x %d), i.e. "
            "%d x %d: off by %+d rows and %+d columns"
            % (pan_name, ph, pw, ratio, ms_name, h, w, want[0], want[1], ph - want[0],
               pw - want[1]))


def check_sizes(pan_name, pan_size, ms_name, ms_size, ratio=SCALE, crop=0, error=UserError):
    """Raises ``error`` with :func:`size_problem`'s sentence if the sizes do not fit."""
    problem = size_problem(pan_name, pan_size, ms_name, ms_size, ratio, crop)
    if problem:
        raise error(problem)


def parse_bands(text, count=MS_BANDS, what="bands", error=UserError):
    """'5,3,2' -> (5, 3, 2): ``count`` comma-separated 1-based band numbers.

    Raises:
        ``error``: anything else, in one sentence naming ``what`` (e.g. ``--bands``).
    """
    parts = str(text if text is not None else "").split(",")
    if len(parts) != count or not all(re.fullmatch(r"\s*\d+\s*", p) for p in parts):
        raise error("%s must be %d comma-separated 1-based band numbers such as %s, got %r"
                    % (what, count, ",".join(str(b) for b in (5, 3, 2, 7, 8, 1)[:count]), text))
    bands = tuple(int(p) for p in parts)
    if min(bands) < 1:
        raise error("%s are 1-based band numbers, got %r" % (what, text))
    return bands


def check_arrays(ms, pan, ratio=SCALE, finite=False, error=UserError):
    """Checks an (h, w, C) MS array and an (H, W[, 1]) PAN array for the classical methods.

    Args:
        ms, pan: NumPy arrays of real numbers (any number of MS bands).
        ratio: PAN pixels per MS pixel (a positive integer).
        finite: also refuse NaN and Inf.
        error: the exception class raised.

    Returns:
        (ms, pan as (H, W), int ratio), arrays as given otherwise.

    Raises:
        ``error``: one sentence; sizes in the words of :func:`size_problem`.
    """
    import numbers

    import numpy as np
    if isinstance(ratio, bool) or not isinstance(ratio, numbers.Integral) or ratio < 1:
        raise error("ratio must be a positive integer, got %r" % (ratio,))
    ms, pan = np.asarray(ms), np.asarray(pan)
    for name, arr in (("ms", ms), ("pan", pan)):
        if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
            raise error("%s must be a real numeric array, got dtype %s" % (name, arr.dtype))
        if finite and not np.all(np.isfinite(arr)):
            raise error("%s contains NaN or Inf values" % name)
    if ms.ndim != 3 or min(ms.shape) < 1:
        raise error("ms must be a non-empty (h, w, C) array, got shape %s" % (ms.shape,))
    if pan.ndim == 3 and pan.shape[2] == 1:
        pan = pan[:, :, 0]
    if pan.ndim != 2:
        raise error("pan must be an (H, W) or (H, W, 1) array, got shape %s" % (pan.shape,))
    check_sizes("pan", pan.shape, "ms", ms.shape, int(ratio), error=error)
    return ms, pan, int(ratio)
