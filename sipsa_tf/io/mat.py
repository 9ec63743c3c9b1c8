"""The one reader of pan-sharpening ``.mat`` files (GRIP-UNINA layout).

Keys: ``I_PAN`` (H, W), ``I_MS_LR`` or ``I_MS`` (H/4, W/4, bands), optional ``RGB_indexes``
(1-based R, G, B band numbers) and ``L`` (bits per sample). Used by the converter
(:func:`sipsa_tf.data.convert_mat`), the evaluation
(:func:`sipsa_tf.evaluation.scenes.load_mat`) and
the Wald training regions, so a file one of them accepts the others accept too (docs/design.md,
"Inputs").
"""
import collections
import os

import numpy as np

from sipsa_tf.constants import MS_BANDS
from sipsa_tf.errors import UserError
from sipsa_tf.io import pairs

# Default R, G, B bands (1-based) by MS band count: WorldView-2/3, B-G-R-NIR sensors, RGB.
DEFAULT_RGB_BANDS = {8: (5, 3, 2), 4: (3, 2, 1), 3: (1, 2, 3)}
MS_KEYS = ("I_MS_LR", "I_MS")

MatImage = collections.namedtuple(
    "MatImage", ["path", "name", "pan", "ms", "ms_key", "rgb_bands", "bits"])
MatImage.__doc__ = """A ``.mat`` pan-sharpening example as stored.

Attributes:
    path, name: the file and its stem.
    pan: (H, W) array as stored (any numeric type).
    ms: (H/4, W/4, bands) array as stored, every band.
    ms_key: "I_MS_LR" or "I_MS".
    rgb_bands: 1-based R, G, B band numbers (given, else the file's ``RGB_indexes``, else
        :data:`DEFAULT_RGB_BANDS`).
    bits: the file's ``L``, or None.
"""


def _first_line(err):
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def read_mat(path, rgb_bands=None, error=UserError):
    """Reads and checks a ``.mat`` file.

    Args:
        path: the file (read with ``scipy.io.loadmat``).
        rgb_bands: 1-based R, G, B band numbers overriding the file's.
        error: the :class:`~sipsa_tf.errors.UserError` subclass raised.

    Returns:
        :class:`MatImage`.

    Raises:
        ``error``: unreadable file, missing keys, sizes not exactly 4x, NaN/Inf, bands out of
        range (one sentence naming the file).
    """
    import scipy.io

    try:
        mat = scipy.io.loadmat(path)
    except Exception as err:  # scipy raises several types for bad files
        raise error("%s: unreadable .mat file (%s)" % (path, _first_line(err)))
    ms_key = next((k for k in MS_KEYS if k in mat), None)
    if "I_PAN" not in mat or ms_key is None:
        keys = ", ".join(k for k in mat if not k.startswith("__")) or "nothing"
        raise error("%s: needs I_PAN and I_MS_LR or I_MS (found: %s)" % (path, keys))
    pan, ms = np.asarray(mat["I_PAN"]), np.asarray(mat[ms_key])
    if pan.ndim == 3 and pan.shape[2] == 1:
        pan = pan[:, :, 0]
    if pan.ndim != 2 or ms.ndim != 3:
        raise error("%s: I_PAN must be (H, W) and %s (h, w, bands); got %s and %s"
                    % (path, ms_key, pan.shape, ms.shape))
    problem = pairs.size_problem("%s: I_PAN" % path, pan.shape, ms_key, ms.shape)
    if problem:
        if ms.shape[:2] == pan.shape:
            problem += " (this %s looks upsampled to the PAN size)" % ms_key
        raise error(problem)
    for key, a in (("I_PAN", pan), (ms_key, ms)):
        if not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
            raise error("%s: %s has unsupported type %s" % (path, key, a.dtype))
        if np.issubdtype(a.dtype, np.floating) and not np.all(np.isfinite(a)):
            raise error("%s: %s contains NaN or Inf values" % (path, key))
    n_bands = ms.shape[2]
    if rgb_bands is None:
        if "RGB_indexes" in mat:
            rgb_bands = np.asarray(mat["RGB_indexes"]).ravel()
        elif n_bands in DEFAULT_RGB_BANDS:
            rgb_bands = DEFAULT_RGB_BANDS[n_bands]
        else:
            raise error("%s: %d MS bands and no RGB_indexes; pass the R, G, B band numbers"
                        % (path, n_bands))
    rgb_bands = tuple(int(b) for b in rgb_bands)
    if len(rgb_bands) != MS_BANDS or not all(1 <= b <= n_bands for b in rgb_bands):
        raise error("%s: RGB bands %s must be three numbers in 1..%d"
                    % (path, ",".join(map(str, rgb_bands)), n_bands))
    bits = int(np.asarray(mat["L"]).ravel()[0]) if "L" in mat else None
    name = os.path.splitext(os.path.basename(path))[0]
    return MatImage(path, name, pan, ms, ms_key, rgb_bands, bits)
