"""Supervised training data: Wald-protocol crops of real imagery and synthetic scenes with truth.

Usage::

    split = supervised.load_split("experiments/grip_split.json")
    regions = supervised.load_regions(split, "train", "../shared/data/grip")
    sources = [supervised.WaldImage(r) for r in regions]
    sources += supervised.synthetic_sources(n=64, ms_size=64, seed=0, max_offset=2.0)
    ds = supervised.dataset(sources, patch=16, batch_size=4, seed=0,
                            displacement=supervised.Displacement())
    # ds yields (ms (4, 16, 16, 3), pan (4, 64, 64, 1), target (4, 64, 64, 3)) float32 batches

SIPSA-Net (Lee, Seo, Kim, CVPR 2021) is trained without a reference. With the compute of a small
machine that objective alone does not give a network that pan-sharpens (docs/training.md); a
reduced-resolution (Wald) pretraining does. Every crop here is a triple (MS input, PAN input,
target at PAN resolution):

* :class:`WaldImage`: a real PAN/MS pair degraded once with the sensor's MTF-matched filters
  (:func:`sipsa_tf.evaluation.quality.degrade`); the MS input comes from the degraded MS, the
  PAN input is
  the degraded PAN, the target is the original MS.
* :class:`SyntheticScene`: a synthetic road scene (:mod:`sipsa_tf.data.synthetic`) whose MS is
  acquired with a global PAN/MS offset and with cars that moved between the two instants; the
  target is the PAN-instant scene's R, G, B at PAN resolution (the colours of the MS on the
  geometry of the PAN, what the misalignment benchmark scores).

Misregistration augmentation (:class:`Displacement`): the MS input of a Wald crop is sampled
from the MTF-filtered MS at displaced positions (a global sub-pixel offset of up to
``max_offset`` MS pixels plus a smooth local field) while the target stays on the PAN's grid, so
the supervision itself teaches the feature alignment module to align. Every supervised crop
also knows that displacement: a fourth element ``flow`` (4p, 4p, 2), where each PAN pixel's
content lies in the MS; its 4 x 4 block means are the soft displacement the
FAM should produce (:func:`sipsa_tf.core.ops.fam_displacement`; MS pixels), which the optional
alignment term of the training objective uses (``--align_weight``, docs/training.md).

The split of the real imagery into training and held-out regions is a JSON file
(``experiments/grip_split.json``): no reported quality number comes from training pixels.
"""
import collections
import dataclasses
import json
import os

import numpy as np
from scipy import ndimage

from sipsa_tf import data
from sipsa_tf.data import synthetic
from sipsa_tf.evaluation import quality, scenes
from sipsa_tf.constants import SCALE
from sipsa_tf.errors import UserError

PARTS = ("train", "held_out")
OPTIONAL_PARTS = ("validation",)  # for choosing stages and checkpoints (never held-out pixels)
SYNTHETIC_STREAM = 71   # rng stream of the training scenes (the benchmarks use 51, 52 and the
                        # synthetic sets 0-3): the training scenes are never benchmark scenes
TRUTH_SIGMA = 0.5       # the PAN's blur in synthetic.acquire, given to the synthetic truth

Region = collections.namedtuple("Region", ["name", "ms", "pan", "gains", "sensor"])
Region.__doc__ = """A part of a real PAN/MS pair.

name: ``<file stem>`` or ``<file stem>[r0:r1]`` (MS rows).
ms: (h, w, 3) float32 R, G, B, DN / (2^bits - 1). pan: (4h, 4w) float32, same scale.
gains: MTF gains {"ms": 3 gains, "pan": gain} of the three bands (``quality.sensor_subset``).
sensor: sensor name or None.
"""


# ------------------------------------------------------------------------- split

def load_split(path):
    """Reads and checks a split file.

    The file is JSON: ``{"train": [entry, ...], "held_out": [entry, ...]}``, each entry
    ``{"file": "imgIK.mat", "ms_rows": [r0, r1]}`` (``ms_rows`` optional: the whole image; rows
    of the MS, the PAN rows are 4x). An optional ``"validation"`` list of the same form holds
    the regions used to choose stages, checkpoints and weights. No two parts may overlap.

    Raises:
        data.DataError: unreadable file or bad entries (naming the file).
    """
    try:
        with open(path, encoding="utf-8") as f:
            split = json.load(f)
    except (OSError, ValueError) as err:
        raise data.DataError("%s: cannot read the split file (%s)" % (path, err))
    problems = []
    if not isinstance(split, dict):
        raise data.DataError("%s: a split file holds a JSON object" % path)
    for part in PARTS:
        entries = split.get(part)
        if not isinstance(entries, list) or not entries:
            problems.append("'%s' must be a non-empty list" % part)
            continue
        for entry in entries:
            rows = entry.get("ms_rows") if isinstance(entry, dict) else None
            if not isinstance(entry, dict) or not isinstance(entry.get("file"), str):
                problems.append("%s entry %r has no 'file'" % (part, entry))
            elif rows is not None and not (isinstance(rows, list) and len(rows) == 2
                                           and all(isinstance(r, int) for r in rows)
                                           and 0 <= rows[0] < rows[1]):
                problems.append("%s entry %s: 'ms_rows' must be [first, end) with "
                                "0 <= first < end" % (part, entry["file"]))
    for part in OPTIONAL_PARTS:
        if part in split and (not isinstance(split[part], list) or not all(
                isinstance(e, dict) and isinstance(e.get("file"), str) for e in split[part])):
            problems.append("'%s' must be a list of entries with a 'file'" % part)
    if not problems:
        parts = [p for p in PARTS + OPTIONAL_PARTS if p in split]
        for i, first in enumerate(parts):
            for second in parts[i + 1:]:
                for a in split[first]:
                    for b in split[second]:
                        if a["file"] == b["file"] and _overlap(a.get("ms_rows"),
                                                               b.get("ms_rows")):
                            problems.append("%s region %s overlaps %s region %s" % (
                                _PART_LABELS[first], _entry_name(a), _PART_LABELS[second],
                                _entry_name(b)))
    if problems:
        raise data.DataError("%s: %s" % (path, "; ".join(problems)))
    return split


_PART_LABELS = {"train": "training", "held_out": "held-out", "validation": "validation"}


def _overlap(a, b):
    if a is None or b is None:
        return True
    return a[0] < b[1] and b[0] < a[1]


def _entry_name(entry):
    stem = os.path.splitext(os.path.basename(entry["file"]))[0]
    rows = entry.get("ms_rows")
    return stem if rows is None else "%s[%d:%d]" % (stem, rows[0], rows[1])


def load_regions(split, part, data_dir):
    """The regions of one part of a split, read from ``data_dir``.

    Args:
        split: a dict from :func:`load_split`.
        part: "train" or "held_out".
        data_dir: folder of the ``.mat`` files the split names.

    Returns:
        list of :class:`Region`.

    Raises:
        data.DataError: a missing or bad file, or rows outside the image (naming the file).
    """
    if part not in PARTS + OPTIONAL_PARTS:
        raise ValueError("part must be one of %s, got %r" % (PARTS + OPTIONAL_PARTS, part))
    if part not in split:
        raise data.DataError("the split file has no '%s' part" % part)
    regions, cache = [], {}
    for entry in split[part]:
        path = os.path.join(data_dir, entry["file"])
        if not os.path.isfile(path):
            raise data.DataError("%s: no such file (named by the split)" % path)
        if path not in cache:
            cache[path] = scenes.load_mat(path, max_pan=np.iinfo(np.int32).max)
        scene = cache[path]
        ms, pan = scene.ms, scene.pan
        rows = entry.get("ms_rows")
        if rows is not None:
            if rows[1] > ms.shape[0]:
                raise data.DataError("%s: the split asks for MS rows %d:%d of an image of %d rows"
                                     % (path, rows[0], rows[1], ms.shape[0]))
            ms = ms[rows[0]:rows[1]]
            pan = pan[SCALE * rows[0]:SCALE * rows[1]]
        regions.append(Region(_entry_name(entry), np.ascontiguousarray(ms),
                              np.ascontiguousarray(pan), scene.gains, scene.sensor))
    return regions


# ------------------------------------------------------------------------- displacement

@dataclasses.dataclass
class Displacement:
    """How far the MS input of a supervised crop is displaced from the PAN and the target.

    Attributes:
        max_offset: global offset, uniform in [-max_offset, max_offset] MS pixels per axis
            (sub-pixel values included).
        local_offset: amplitude (MS pixels) of a smooth local displacement field (a random
            3 x 3 grid of offsets, bilinearly interpolated), added to half of the displaced crops.
        aligned_fraction: fraction of crops left exactly aligned.
    """
    max_offset: float = 2.0
    local_offset: float = 0.5
    aligned_fraction: float = 0.25

    def validate(self):
        if self.max_offset < 0 or self.local_offset < 0:
            raise UserError("offsets must be >= 0, got max_offset=%s local_offset=%s"
                             % (self.max_offset, self.local_offset))
        if not 0 <= self.aligned_fraction <= 1:
            raise UserError("aligned_fraction must be in [0, 1], got %s" % self.aligned_fraction)

    @property
    def margin(self):
        """Target pixels kept clear at the borders so that displaced samples stay inside."""
        return int(np.ceil(SCALE * (self.max_offset + self.local_offset)))

    def field(self, rng, patch):
        """A displacement field of one crop, in target (high-resolution) pixels.

        Returns:
            (dy, dx): (patch, patch) float64 arrays, or (0.0, 0.0) for an aligned crop.
        """
        if rng.random() < self.aligned_fraction:
            return 0.0, 0.0
        dy, dx = rng.uniform(-1, 1, size=2) * SCALE * self.max_offset
        if self.local_offset > 0 and rng.random() < 0.5:
            grid = rng.uniform(-1, 1, size=(2, 3, 3)) * SCALE * self.local_offset
            zoom = (patch / 3.0, patch / 3.0)
            dy = dy + ndimage.zoom(grid[0], zoom, order=1, mode="nearest", grid_mode=True)
            dx = dx + ndimage.zoom(grid[1], zoom, order=1, mode="nearest", grid_mode=True)
        return dy, dx


NO_DISPLACEMENT = Displacement(0.0, 0.0, 1.0)


# ------------------------------------------------------------------------- sources

class WaldImage:
    """One real region degraded once by the Wald protocol; crops with a displaced MS input.

    Attributes:
        ms_filtered: (h, w, 3) float32, the MS after the MTF-matched low-pass (before
            decimation); the MS input is sampled from it.
        ms_lr, pan_lr: the degraded pair, equal to ``quality.degrade(ms, pan, gains)``:
            (h/4, w/4, 3) and (h, w).
        target: (h, w, 3) float32, the original MS.
    """

    def __init__(self, region):
        ms = np.asarray(region.ms, np.float64)
        pan = np.asarray(region.pan, np.float64)
        h, w = ms.shape[:2]
        if h % SCALE or w % SCALE or pan.shape != (SCALE * h, SCALE * w):
            raise data.DataError("%s: MS %dx%d must be a multiple of %d and the PAN %d times it, "
                                 "got PAN %s" % (region.name, h, w, SCALE, SCALE, pan.shape))
        self.name = region.name
        self.ms_filtered = quality.mtf_filter(ms, region.gains, SCALE).astype(np.float32)
        self.pan_lr = quality.decimate(quality.mtf_filter(pan, region.gains, SCALE, pan=True),
                                       SCALE).astype(np.float32)
        self.ms_lr = quality.decimate(self.ms_filtered, SCALE)
        self.target = np.asarray(region.ms, np.float32)
        self.weight = float(h * w)

    def max_patch(self):
        return min(self.target.shape[:2]) // SCALE

    def crop(self, rng, patch, displacement):
        """One (ms (p, p, 3), pan (4p, 4p, 1), target (4p, 4p, 3), flow (4p, 4p, 2)) crop.

        ``flow`` is where, in the MS input, each PAN pixel's content lies (MS pixels; the same
        on the 4 x 4 PAN pixels of an MS pixel here): the MS is sampled at positions moved by
        the field (dy, dx), so the content of a PAN position lies at -(dy, dx) / 4 in the MS
        input.
        """
        h, w = self.target.shape[:2]
        big = SCALE * patch
        margin = min(displacement.margin, (h - big) // 2, (w - big) // 2)
        y = int(rng.integers(margin, h - big - margin + 1))
        x = int(rng.integers(margin, w - big - margin + 1))
        dy, dx = displacement.field(rng, patch)
        grid = SCALE * np.arange(patch, dtype=np.float64) + SCALE // 2
        rows = (y + grid)[:, None] + dy + np.zeros((1, patch))
        cols = (x + grid)[None, :] + dx + np.zeros((patch, 1))
        if np.isscalar(dy) and dy == 0 and dx == 0:
            ms = self.ms_filtered[y + SCALE // 2:y + big:SCALE, x + SCALE // 2:x + big:SCALE]
        else:
            ms = np.stack([ndimage.map_coordinates(self.ms_filtered[:, :, c], [rows, cols],
                                                   order=1, mode="nearest")
                           for c in range(self.ms_filtered.shape[2])], axis=2)
        pan = self.pan_lr[y:y + big, x:x + big, None]
        flow = -np.stack(np.broadcast_arrays(np.broadcast_to(dy, (patch, patch)),
                                             np.broadcast_to(dx, (patch, patch))), axis=2)
        flow = np.repeat(np.repeat(flow / SCALE, SCALE, axis=0), SCALE, axis=1)
        return (ms.astype(np.float32), pan, self.target[y:y + big, x:x + big],
                flow.astype(np.float32))


class SyntheticScene:
    """A synthetic road scene acquired with a global PAN/MS offset and moving cars.

    Built as the misalignment benchmark builds its scenes (``benchmarks/misalignment.py``), from
    a different random stream, with a random offset: the MS-instant scene is shifted by
    (dy, dx) uniform in +-``max_offset`` MS pixels (or not at all, with probability
    ``aligned_fraction``) and acquired by :func:`sipsa_tf.data.synthetic.acquire`; the target is the
    PAN-instant scene's R, G, B with the PAN's blur.
    """

    def __init__(self, seed, index, ms_size, displacement):
        rng = np.random.default_rng([seed, SYNTHETIC_STREAM, index])
        pan_time, ms_time, info = synthetic.render_scene(rng, SCALE * ms_size,
                                                         road_heavy=bool(index % 2))
        offset = (0.0, 0.0)
        if rng.random() >= displacement.aligned_fraction:
            offset = tuple(rng.uniform(-1, 1, size=2) * SCALE * displacement.max_offset)
            ms_time = ndimage.shift(ms_time, offset + (0.0,), order=1, mode="reflect")
        ms, pan, _ = synthetic.acquire(rng, pan_time, ms_time, max_offset=0.0)
        scale = np.float32(synthetic.DN_MAX)
        self.name = "synthetic_%d" % index
        self.offset = offset
        self.ms = ms.astype(np.float32) / scale
        self.pan = pan.astype(np.float32)[:, :, None] / scale
        self.target = ndimage.gaussian_filter(pan_time[:, :, :3], (TRUTH_SIGMA, TRUTH_SIGMA, 0)
                                              ).astype(np.float32)
        self.weight = float(SCALE * ms_size) ** 2
        # where each PAN pixel's content lies in the MS: the global offset, plus the motion of
        # a car on the pixels a car covers at the PAN instant (MS pixels, at PAN resolution)
        cars, _ = synthetic.car_flow(info["car_list"], SCALE * ms_size)
        self.flow = ((cars + np.array(offset)) / SCALE).astype(np.float32)

    def max_patch(self):
        return min(self.ms.shape[:2])

    def crop(self, rng, patch, displacement=None):
        h, w = self.ms.shape[:2]
        y, x = int(rng.integers(0, h - patch + 1)), int(rng.integers(0, w - patch + 1))
        big = SCALE * patch
        Y, X = SCALE * y, SCALE * x
        return (self.ms[y:y + patch, x:x + patch], self.pan[Y:Y + big, X:X + big],
                self.target[Y:Y + big, X:X + big], self.flow[Y:Y + big, X:X + big])


class FullResImage:
    """A real region at full resolution, for the original (unsupervised) objective."""

    def __init__(self, region):
        self.name = region.name
        self.ms = np.asarray(region.ms, np.float32)
        self.pan = np.asarray(region.pan, np.float32)[:, :, None]
        self.weight = float(self.ms.shape[0] * self.ms.shape[1])

    def max_patch(self):
        return min(self.ms.shape[:2])

    def crop(self, rng, patch, displacement=None):
        ms, pan = data.random_crops(self.ms, self.pan, 1, patch, rng)
        return ms[0], pan[0]


def synthetic_sources(n, ms_size, seed, displacement):
    """``n`` :class:`SyntheticScene` objects (about 0.1 s each at ms_size 64)."""
    return [SyntheticScene(seed, i, ms_size, displacement) for i in range(n)]


# ------------------------------------------------------------------------- batches

def _augment(arrays, rng, vector=None):
    """One random left-right flip and rot90 shared by every array of the batch.

    ``vector``: index of an array of (dy, dx) displacements (B, 4p, 4p, 2), whose vectors turn
    with the image: a left-right flip negates dx; each rot90 (counter-clockwise) maps (dy, dx)
    to (-dx, dy).
    """
    flip, k = bool(rng.integers(2)), int(rng.integers(4))
    out = []
    for i, a in enumerate(arrays):
        if flip:
            a = a[:, :, ::-1]
            if i == vector:
                a = a * np.array([1, -1], a.dtype)
        a = np.rot90(a, k, axes=(1, 2))
        if i == vector:
            for _ in range(k):
                a = np.stack([-a[..., 1], a[..., 0]], axis=-1)
        out.append(np.ascontiguousarray(a))
    return out


def batches(sources, patch, batch_size, seed, displacement=NO_DISPLACEMENT,
            synthetic_fraction=None, augment=True, flow=False):
    """An endless generator of batches drawn from ``sources``.

    Args:
        sources: objects with ``crop(rng, patch, displacement)`` and ``weight`` (e.g.
            :class:`WaldImage`, :class:`SyntheticScene`, :class:`FullResImage`).
        patch: MS crop size p.
        batch_size: crops per batch.
        seed: the stream's seed.
        displacement: :class:`Displacement` of the Wald crops.
        synthetic_fraction: if given, the share of crops from :class:`SyntheticScene` sources;
            otherwise sources are drawn in proportion to their area.
        augment: one flip + rot90 per batch.
        flow: keep the supervised crops' fourth element, the FAM's target displacement
            (B, 4p, 4p, 2) at PAN resolution; without it the batches of supervised crops are
            (ms, pan, target).

    Yields:
        tuples of stacked arrays, one per element of a crop.
    """
    too_small = [s.name for s in sources if s.max_patch() < patch]
    if too_small:
        raise data.DataError("smaller than the training patch (%d MS pixels): %s"
                             % (patch, ", ".join(too_small)))
    weights = np.array([s.weight for s in sources], np.float64)
    if synthetic_fraction is not None:
        is_syn = np.array([isinstance(s, SyntheticScene) for s in sources])
        if is_syn.any() and (~is_syn).any():
            weights = np.where(is_syn, synthetic_fraction * weights / weights[is_syn].sum(),
                               (1 - synthetic_fraction) * weights / weights[~is_syn].sum())
    weights = weights / weights.sum()
    rng = np.random.default_rng(seed)
    while True:
        picks = rng.choice(len(sources), size=batch_size, p=weights)
        crops = [sources[i].crop(rng, patch, displacement) for i in picks]
        arrays = [np.stack(parts) for parts in zip(*crops)]
        if len(arrays) == 4 and not flow:
            arrays = arrays[:3]
        vector = 3 if len(arrays) == 4 else None
        yield tuple(_augment(arrays, rng, vector) if augment else arrays)


def dataset(sources, patch, batch_size, seed, displacement=NO_DISPLACEMENT,
            synthetic_fraction=None, augment=True, flow=False):
    """:func:`batches` as a ``tf.data.Dataset`` (prefetched).

    Returns:
        Dataset of (ms (B, p, p, 3), pan (B, 4p, 4p, 1)[, target (B, 4p, 4p, 3)[, flow
        (B, 4p, 4p, 2)]]) float32, with a target for Wald/synthetic sources and the flow with
        ``flow``.
    """
    import tensorflow as tf
    supervised = not isinstance(sources[0], FullResImage)
    big = SCALE * patch
    spec = [tf.TensorSpec([batch_size, patch, patch, 3], tf.float32),
            tf.TensorSpec([batch_size, big, big, 1], tf.float32)]
    if supervised:
        spec.append(tf.TensorSpec([batch_size, big, big, 3], tf.float32))
        if flow:
            spec.append(tf.TensorSpec([batch_size, big, big, 2], tf.float32))
    if any(isinstance(s, FullResImage) != (not supervised) for s in sources):
        raise UserError("sources mix full-resolution and supervised images")

    def generate():
        return batches(sources, patch, batch_size, seed, displacement, synthetic_fraction,
                       augment, flow and supervised)

    return tf.data.Dataset.from_generator(generate, output_signature=tuple(spec)).prefetch(4)
