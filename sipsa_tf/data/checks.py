"""Reading and checking every PAN/MS pair once, before training or testing starts.

Part of :mod:`sipsa_tf.data` (layouts described there; docs/design.md, "Training data").
"""
import collections
import concurrent.futures

import numpy as np

from sipsa_tf.constants import IMG_DIV, MS_BANDS, SCALE
from sipsa_tf.data.discovery import _display, _raise
from sipsa_tf.io import pairs


ImageInfo = collections.namedtuple("ImageInfo", ["pair", "ms_shape", "pan_shape"])



def read_image(path):
    """Reads a TIFF with tifffile.

    Raises:
        ValueError: the file holds no image (tifffile returns an empty array for a TIFF header
            without pages); otherwise whatever tifffile raises for a broken file.
    """
    import tifffile
    image = tifffile.imread(path)
    if np.size(image) == 0:
        raise ValueError("no image in the file")
    return image



def _shape_problems(ms, pan, min_ms_size, size_reason, names):
    """Problems of a decoded pair, each as (which file, text); file None: the text names both."""
    problems = []
    if ms.ndim != 3 or ms.shape[2] != MS_BANDS:
        bands = ms.shape[2] if ms.ndim == 3 else (1 if ms.ndim == 2 else None)
        what = ("%d bands" % bands) if bands is not None else "shape %s" % (ms.shape,)
        problems.append(("ms", "MS has %s, expected (h, w, 3) R, G, B; select 3 bands first "
                         "(python -m sipsa_tf.convert_mat does for .mat files)" % what))
    if not (pan.ndim == 2 or (pan.ndim == 3 and pan.shape[2] == 1)):
        problems.append(("pan", "PAN has shape %s, expected a single band (H, W)" % (pan.shape,)))
    for key, a in (("ms", ms), ("pan", pan)):
        if not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
            problems.append((key, "unsupported pixel type %s" % a.dtype))
        elif np.issubdtype(a.dtype, np.floating) and not np.all(np.isfinite(a)):
            problems.append((key, "contains NaN or Inf values (%d pixels)"
                             % int(np.size(a) - np.count_nonzero(np.isfinite(a)))))
    if problems:
        return problems
    h, w = ms.shape[:2]
    size = pairs.size_problem(names["pan"], pan.shape, names["ms"], ms.shape,
                              crop=pairs.TRAINING_CROP)
    if size:
        problems.append((None, size))
    elif min(h, w) < min_ms_size:
        problems.append(("ms", "MS is %dx%d, smaller than %dx%d (%s)"
                         % (h, w, min_ms_size, min_ms_size, size_reason)))
    return problems



def check_pair(pair, min_ms_size=1, size_reason="the minimum", root=None):
    """Reads and checks one pair.

    Returns:
        (info, problems): an :class:`ImageInfo` (None if unusable) and "file: problem" strings.
    """
    def shown(path):
        return _display(path, root) if root else path

    arrays, problems = {}, []
    for key in ("ms", "pan"):
        path = getattr(pair, key)
        try:
            arrays[key] = np.asarray(read_image(path))
        except Exception as err:  # tifffile raises many kinds for broken files
            reason = str(err).strip().split("\n")[0] or type(err).__name__
            problems.append("%s: unreadable (%s)" % (shown(path), reason))
    if problems:
        return None, problems
    names = {key: shown(getattr(pair, key)) for key in ("ms", "pan")}
    found = _shape_problems(arrays["ms"], arrays["pan"], min_ms_size, size_reason, names)
    if found:
        return None, [text if key is None else "%s: %s" % (names[key], text)
                      for key, text in found]
    return ImageInfo(pair, arrays["ms"].shape, arrays["pan"].shape), []



def check_pairs(pairs, min_ms_size=1, size_reason="the minimum", what="data", root=None,
                workers=4):
    """Reads every file once and checks it (readable, bands, 4x ratio, size, NaN/Inf).

    Args:
        pairs: list of :class:`Pair` (duplicates are checked once).
        min_ms_size: smallest MS height/width accepted (e.g. the training patch).
        size_reason: why, for the message.
        what: what the pairs are, for the message (e.g. "training data /path").
        root: folder that file names are shown relative to.
        workers: files read in parallel.

    Returns:
        {pair: ImageInfo}.

    Raises:
        DataError: naming every bad file, in one message.
    """
    unique = list(dict.fromkeys(pairs))
    with concurrent.futures.ThreadPoolExecutor(max(1, workers)) as pool:
        results = list(pool.map(lambda p: check_pair(p, min_ms_size, size_reason, root), unique))
    problems = [text for _, found in results for text in found]
    if problems:
        _raise(problems, what)
    return {info.pair: info for info, _ in results}



def load_pair(pair, img_div=IMG_DIV):
    """Reads a pair as float32, PAN cropped to 4x the MS as the original's training reader.

    Returns:
        (ms (h, w, 3), pan (4h, 4w, 1)), float32 values / img_div.
    """
    ms = np.asarray(read_image(pair.ms))
    pan = np.asarray(read_image(pair.pan))
    if pan.ndim == 2:
        pan = pan[:, :, None]
    h, w = pan.shape[0] // SCALE, pan.shape[1] // SCALE
    ms = ms[:h, :w, :MS_BANDS].astype(np.float32) / np.float32(img_div)
    pan = pan[:SCALE * h, :SCALE * w, :1].astype(np.float32) / np.float32(img_div)
    return ms, pan
