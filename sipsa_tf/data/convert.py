"""Converting pan-sharpening ``.mat`` files to the TIFF pairs the trainer and tests read.

Part of :mod:`sipsa_tf.data` (layouts described there; docs/design.md, "Training data").
"""
import os

import numpy as np

from sipsa_tf.data.discovery import DataError, FLAT_MS_SUFFIX, FLAT_PAN_SUFFIX
from sipsa_tf.io import mat as mat_io
from sipsa_tf.io import pairs
from sipsa_tf.utils import files


DEFAULT_RGB_BANDS = mat_io.DEFAULT_RGB_BANDS  # 1-based R, G, B by MS band count



def convert_mat(mat_path, out_dir, rgb_bands=None, name=None, layout="folders", to_bits=None):
    """Converts a pan-sharpening ``.mat`` file to uint16 TIFFs that the trainer and tests read.

    Keys as in the GRIP-UNINA files: ``I_PAN`` (H, W), ``I_MS_LR`` or ``I_MS`` (h, w, bands) at
    1/4 of the PAN size, optional ``RGB_indexes`` (1-based) and ``L`` (bits per pixel).

    Args:
        mat_path: the ``.mat`` file (read with ``scipy.io.loadmat``).
        out_dir: destination; ``layout='folders'`` writes ``RGB/<name>.tif`` and
            ``PAN/<name>.tif`` (a test folder, or the insides of ``Trgbn_TRAIN``),
            ``'flat'`` writes ``<name>_ms.tif`` and ``<name>_pan.tif``.
        rgb_bands: 1-based band numbers for R, G, B. Default: the file's ``RGB_indexes``, else
            5,3,2 for 8 bands (WorldView-2/3), 3,2,1 for 4 bands (B, G, R, NIR order), 1,2,3
            for 3 bands.
        name: output file name without extension (default: the .mat file's name).
        to_bits: rescale DN from the file's ``L`` bits to this many (e.g. 11 so that the default
            ``--img_div 2047`` applies); default keeps the DN unchanged.

    Returns:
        dict: ms_path, pan_path, rgb_bands, bits (the file's L or None), ms_shape, pan_shape,
        note (advice on --img_div, or "").

    Raises:
        DataError: missing keys, wrong sizes, NaN, bands out of range.
    """
    import tifffile

    image = mat_io.read_mat(mat_path, rgb_bands, error=DataError)
    rgb_bands, bits, ms, pan = image.rgb_bands, image.bits, image.ms, image.pan
    rgb = ms[:, :, [b - 1 for b in rgb_bands]].astype(np.float64)
    pan = pan.astype(np.float64)
    note = ""
    if to_bits is not None:
        if bits is None:
            raise DataError("%s: no L (bits) variable; cannot rescale to %d bits"
                            % (mat_path, to_bits))
        factor = (2.0 ** to_bits - 1) / (2.0 ** bits - 1)
        rgb, pan = rgb * factor, pan * factor
    elif bits is not None and bits != 11:
        note = ("%d-bit data: use --img_div %d (or convert with --to_bits 11)"
                % (bits, 2 ** bits - 1))

    def to_uint16(a):
        return np.clip(np.round(a), 0, np.iinfo(np.uint16).max).astype(np.uint16)

    name = name or os.path.splitext(os.path.basename(mat_path))[0]
    if layout == "folders":
        ms_path = os.path.join(out_dir, "RGB", name + ".tif")
        pan_path = os.path.join(out_dir, "PAN", name + ".tif")
    elif layout == "flat":
        ms_path = os.path.join(out_dir, name + FLAT_MS_SUFFIX + ".tif")
        pan_path = os.path.join(out_dir, name + FLAT_PAN_SUFFIX + ".tif")
    else:
        raise DataError("layout must be 'folders' or 'flat', got %r" % layout)
    for path in (ms_path, pan_path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
    with files.atomic_paths(ms_path, pan_path) as (ms_tmp, pan_tmp):  # renamed when both exist
        tifffile.imwrite(ms_tmp, to_uint16(rgb), photometric="rgb")
        tifffile.imwrite(pan_tmp, to_uint16(pan), photometric="minisblack")
    return {"ms_path": ms_path, "pan_path": pan_path, "rgb_bands": rgb_bands, "bits": bits,
            "ms_shape": rgb.shape, "pan_shape": pan.shape, "note": note}



def parse_bands(text):
    """'5,3,2' -> (5, 3, 2) (:func:`sipsa_tf.io.pairs.parse_bands`)."""
    return pairs.parse_bands(text, what="--rgb_bands", error=DataError)
