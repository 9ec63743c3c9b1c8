"""The images of an evaluation: GRIP-UNINA ``.mat`` files, test folders, synthetic scenes.

Part of the evaluation suite (:mod:`sipsa_tf.evaluation`; docs/design.md, "Metrics and test
images").
"""
import dataclasses
import os

import numpy as np

from sipsa_tf import data
from sipsa_tf.data import synthetic
from sipsa_tf.evaluation import quality
from sipsa_tf.constants import SCALE
from sipsa_tf.errors import UserError
from sipsa_tf.io import mat as mat_io


# Sensor of a GRIP-UNINA file, from a token of its name (case-insensitive), first match wins.
SENSOR_TOKENS = (("wv3", "WV3"), ("wv2", "WV2"), ("ik", "IKONOS"), ("ge1", "GeoEye1"),
                 ("geoeye", "GeoEye1"), ("qb", "QB"), ("quickbird", "QB"))
DEFAULT_MAX_PAN = 512
MIN_MS = 20  # reduced protocol: MS/4 must reach SIPSA-Net's 5 MS pixels


class EvaluationError(UserError):
    """Bad evaluation input (file, folder, method, setting); the message is one line."""


@dataclasses.dataclass
class Scene:
    """One image to evaluate.

    Attributes:
        name: short name (file stem).
        ms: (h, w, 3) float32 R, G, B in [0, 1] (DN / (2^bits - 1)); h, w multiples of 4.
        pan: (4h, 4w) float32, same scale.
        sensor: sensor name (a key of ``quality.MTF_GAINS``) or None (generic gains).
        gains: dict {"ms": 3 gains, "pan": gain} for :mod:`sipsa_tf.evaluation.quality`.
        note: what was done to the image (crop), or "".
    """
    name: str
    ms: np.ndarray
    pan: np.ndarray
    sensor: object = None
    gains: dict = None
    note: str = ""


def sensor_from_name(name):
    """The sensor of a GRIP-style file name (``WV3_example_a``, ``imgIK``...), or None."""
    low = name.lower()
    for token, sensor in SENSOR_TOKENS:
        if token in low:
            return sensor
    return None


def centre_crop(ms, pan, max_pan):
    """Centre crop so that the PAN side is at most ``max_pan`` and the MS a multiple of 4.

    Returns:
        (ms, pan, note): note says what was cropped ("" if nothing).
    """
    h, w = ms.shape[:2]
    limit = max(max_pan // SCALE, SCALE)
    new_h, new_w = (min(n, limit) // SCALE * SCALE for n in (h, w))
    if (new_h, new_w) == (h, w):
        return ms, pan, ""
    y, x = (h - new_h) // 2, (w - new_w) // 2
    note = "centre crop: MS %dx%d of %dx%d (PAN %dx%d)" % (new_h, new_w, h, w, SCALE * new_h,
                                                            SCALE * new_w)
    return (ms[y:y + new_h, x:x + new_w],
            pan[SCALE * y:SCALE * (y + new_h), SCALE * x:SCALE * (x + new_w)], note)


def _make_scene(name, ms, pan, scale, sensor, bands, max_pan):
    if min(ms.shape[:2]) < MIN_MS:
        raise EvaluationError("%s: the MS is %dx%d; the evaluation needs at least %dx%d"
                              % (name, ms.shape[0], ms.shape[1], MIN_MS, MIN_MS))
    ms, pan, note = centre_crop(ms, pan, max_pan)
    return Scene(name, (ms / scale).astype(np.float32), (pan / scale).astype(np.float32),
                 sensor, quality.sensor_subset(sensor, bands), note)


def load_mat(path, max_pan=DEFAULT_MAX_PAN, sensor="auto"):
    """Reads a GRIP-UNINA style ``.mat`` file as a :class:`Scene` (R, G, B bands only).

    Args:
        path: file with ``I_PAN`` (H, W), ``I_MS_LR`` or ``I_MS`` (H/4, W/4, bands) and
            optionally ``RGB_indexes`` (1-based) and ``L`` (bits; default 11).
        max_pan: centre-crop the PAN to at most this side.
        sensor: 'auto' (from the file name, see ``SENSOR_TOKENS``), a sensor name, or None.

    Raises:
        EvaluationError: unreadable file, missing keys, bad sizes, NaN (naming the file).
    """
    image = mat_io.read_mat(path, error=EvaluationError)
    bands, n_bands = image.rgb_bands, image.ms.shape[2]
    ms, pan = image.ms.astype(np.float64), image.pan.astype(np.float64)
    bits = image.bits if image.bits is not None else 11
    name = os.path.splitext(os.path.basename(path))[0]
    if sensor == "auto":
        sensor = sensor_from_name(name)
    if sensor is not None and len(quality.MTF_GAINS[sensor]["ms"]) != n_bands:
        raise EvaluationError("%s: %d MS bands, but %s has %d" % (
            path, n_bands, sensor, len(quality.MTF_GAINS[sensor]["ms"])))
    rgb = ms[:, :, [b - 1 for b in bands]]
    return _make_scene(name, rgb, pan, 2.0 ** bits - 1, sensor, bands if sensor else (1, 2, 3),
                       max_pan)


def synthetic_scenes(n=4, ms_size=64, seed=0):
    """The synthetic test scenes (``sipsa_tf.data.synthetic``, set 'test'), generic MTF gains."""
    return [_make_scene("synthetic_%d" % i, *synthetic.make_scene(seed, "test", i, ms_size)[:2],
                        synthetic.DN_MAX, None, (1, 2, 3), SCALE * ms_size) for i in range(n)]


def load_scenes(data_dir, max_pan=DEFAULT_MAX_PAN, sensor="auto"):
    """All scenes of a folder: its ``*.mat`` files, else a test folder (``RGB/``, ``PAN/``).

    Raises:
        EvaluationError / data.DataError: missing folder, no images, bad files.
    """
    if not os.path.isdir(data_dir):
        raise EvaluationError("%s: no such folder" % data_dir)
    mats = sorted(f for f in os.listdir(data_dir) if f.lower().endswith(".mat"))
    if mats:
        return [load_mat(os.path.join(data_dir, f), max_pan, sensor) for f in mats]
    pairs = data.find_test_pairs(data_dir)
    data.check_pairs(pairs, MIN_MS, "the evaluation needs %d x %d MS pixels" % (MIN_MS, MIN_MS),
                     what="evaluation data %s" % data_dir, root=data_dir)
    scenes = []
    for pair in pairs:
        name = os.path.splitext(os.path.basename(pair.pan))[0]
        ms = np.asarray(data.read_image(pair.ms), np.float64)[..., :3]
        pan = np.squeeze(np.asarray(data.read_image(pair.pan), np.float64))
        sens = sensor_from_name(name) if sensor == "auto" else sensor
        scenes.append(_make_scene(name, ms, pan, data.IMG_DIV, sens,
                                  (1, 2, 3) if sens is None else _rgb_of(sens), max_pan))
    return scenes


def _rgb_of(sensor):
    return data.DEFAULT_RGB_BANDS[len(quality.MTF_GAINS[sensor]["ms"])]
