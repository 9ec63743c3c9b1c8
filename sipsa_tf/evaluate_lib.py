"""Evaluation suite: methods x images x protocols, with the standard pan-sharpening indices.

Compares SIPSA-Net (J. Lee, S. Seo, M. Kim, "SIPSA-Net: Shift-Invariant Pan Sharpening with
Moving Object Alignment for Satellite Imagery", CVPR 2021) with classical baselines
(:mod:`sipsa_tf.baselines`), GDAL's weighted Brovey (:mod:`sipsa_tf.external`) and SIPSA-Net
adapted to each scene (:mod:`sipsa_tf.adapt`), under the two protocols of Vivone et al. (IEEE TGRS
2015; IEEE GRSM 2021) with the indices of :mod:`sipsa_tf.quality`:

* ``reduced`` (Wald protocol): PAN and MS are degraded by 4 with the sensor's MTF-matched
  filters and decimated; each method fuses the degraded pair and the result is compared with the
  original MS: Q2n, Q (UIQI), SAM (degrees), ERGAS, SCC.
* ``full``: each method fuses the original pair; no reference exists: D_lambda, D_s, QNR,
  D_lambda (Khan), HQNR.

SIPSA-Net takes 3 bands, so every method gets the same three bands (R, G, B; the file's
``RGB_indexes``), and the MTF gains are those of these bands of the file's sensor
(:func:`sipsa_tf.quality.sensor_subset`). Images: the GRIP-UNINA ``.mat`` files (keys ``I_PAN``,
``I_MS``/``I_MS_LR``, ``RGB_indexes``, ``L``), a test folder (``RGB/``, ``PAN/`` TIFFs, 11-bit),
or the synthetic test scenes (:mod:`sipsa_tf.synthetic`). Large images are centre-cropped.

Outputs in ``out_dir``: ``results.csv`` (one row per image, protocol and method),
``results.md`` (mean tables per protocol, per-image tables, notes), and one PNG panel per image
and protocol (crops of the MS, the PAN, each method and, where a reference exists, the absolute
error maps). Every file is written to a temporary name and renamed.

This module also holds what the misalignment benchmark (``benchmarks/misalignment.py``) shares:
:func:`ghosting`, a double-edge measure, and :func:`line_plot`, a PIL line chart.
"""
import collections
import csv
import dataclasses
import io
import math
import os
import sys
import time

import numpy as np

from sipsa_tf import baselines, data, external, quality, synthetic
from sipsa_tf.errors import UserError
from sipsa_tf.io import mat as mat_io
from sipsa_tf.constants import SCALE
from sipsa_tf.utils import display, files
from sipsa_tf.utils.progress import Progress
PROTOCOLS = ("reduced", "full")
REDUCED_INDICES = ("q2n", "q", "sam", "ergas", "scc")
FULL_INDICES = ("d_lambda", "d_s", "qnr", "d_lambda_khan", "hqnr")
INDICES = {"reduced": REDUCED_INDICES, "full": FULL_INDICES}
# True: higher is better (ideal 1), False: lower is better (ideal 0).
HIGHER_IS_BETTER = {"q2n": True, "q": True, "sam": False, "ergas": False, "scc": True,
                    "d_lambda": False, "d_s": False, "qnr": True, "d_lambda_khan": False,
                    "hqnr": True, "ghost": False, "ghost_moving": False}
LABELS = {"q2n": "Q2n", "q": "Q", "sam": "SAM (deg)", "ergas": "ERGAS", "scc": "SCC",
          "d_lambda": "D_lambda", "d_s": "D_s", "qnr": "QNR", "d_lambda_khan": "D_lambda(K)",
          "hqnr": "HQNR", "ghost": "ghost", "ghost_moving": "ghost (moving)"}
CSV_COLUMNS = ("image", "sensor", "protocol", "method") + REDUCED_INDICES + FULL_INDICES + (
    "seconds",)
SIPSA_METHODS = ("sipsa", "sipsa_adapted")
ALL_METHODS = tuple(baselines.METHODS) + tuple(external.METHODS) + SIPSA_METHODS
DEFAULT_METHODS = ALL_METHODS
# Sensor of a GRIP-UNINA file, from a token of its name (case-insensitive), first match wins.
SENSOR_TOKENS = (("wv3", "WV3"), ("wv2", "WV2"), ("ik", "IKONOS"), ("ge1", "GeoEye1"),
                 ("geoeye", "GeoEye1"), ("qb", "QB"), ("quickbird", "QB"))
DEFAULT_MAX_PAN = 512
MIN_MS = 20  # reduced protocol: MS/4 must reach SIPSA-Net's 5 MS pixels
BLOCK = 32
ERROR_FRACTION = 0.25  # error maps: white at 1/4 of the displayed (2-98 percentile) range
PANEL_COLOURS = 256     # panels are saved as palette PNGs of this many colours (small files)


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
        gains: dict {"ms": 3 gains, "pan": gain} for :mod:`sipsa_tf.quality`.
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
    """The synthetic test scenes (``sipsa_tf.synthetic``, set 'test'), generic MTF gains."""
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


# ------------------------------------------------------------------ methods

class Methods:
    """The methods to run, behind one interface: ``methods.fuse(name, ms, pan, scene)``.

    Args:
        names: method names (see ``ALL_METHODS``).
        checkpoint: SIPSA-Net checkpoint for 'sipsa' and the start of 'sipsa_adapted'; None for
            a random initialisation (only meaningful with adaptation).
        adapt_steps: steps of scene adaptation for 'sipsa_adapted' (must be > 0 to run it).
        adapt_options: keyword arguments of :meth:`sipsa_tf.adapt.Adapter.adapt` (crop, batch,
            seed) and of :class:`~sipsa_tf.adapt.Adapter` (lr, wd).

    Attributes:
        names: the methods that will run; skipped: {name: reason} for those that cannot
        (GDAL absent); adaptation: list of dicts (scene, protocol, loss before/after, seconds).
    """

    def __init__(self, names, checkpoint=None, adapt_steps=0, adapt_options=None, seed=0):
        unknown = [n for n in names if n not in ALL_METHODS]
        if unknown or not names:
            raise EvaluationError("unknown method(s) %s; choose from %s" % (
                ", ".join(unknown) or "(none given)", ", ".join(ALL_METHODS)))
        if adapt_steps < 0:
            raise EvaluationError("adapt_steps must be >= 0, got %d" % adapt_steps)
        if "sipsa_adapted" in names and adapt_steps == 0:
            raise EvaluationError("method sipsa_adapted needs --adapt_steps > 0")
        self.skipped, self.gdal_version = {}, None
        if "gdal" in names:
            ok, reason = external.gdal_status()
            if ok:
                self.gdal_version = reason
            else:
                self.skipped["gdal"] = reason
        self.names = [n for n in names if n not in self.skipped]
        self.checkpoint, self.adapt_steps = checkpoint, int(adapt_steps)
        options = dict(adapt_options or {})
        self._adapter_options = {k: options.pop(k) for k in ("lr", "wd") if k in options}
        self._adapt_options = options
        self.seed = seed
        self.adaptation = []
        self._sipsa = self._adapter = None
        if "sipsa" in self.names:
            from sipsa_tf import inference
            self._sipsa = inference.Pansharpener(checkpoint, seed=seed)
        if "sipsa_adapted" in self.names:
            from sipsa_tf import adapt
            source = self._sipsa if self._sipsa is not None else checkpoint
            self._adapter = adapt.Adapter(source, seed=seed, **self._adapter_options)

    def source(self):
        """What SIPSA-Net starts from, as text."""
        return self.checkpoint or "random initialisation (seed %d)" % self.seed

    def fuse(self, name, ms, pan, scene, protocol=""):
        """Fuses (h, w, 3) ``ms`` with (4h, 4w) ``pan`` by method ``name``.

        Returns:
            (4h, 4w, 3) float64 fused image in the scale of the inputs ([0, 1]).
        """
        if name in baselines.METHODS:
            extra = {"sensor": scene.gains} if name == "gsa" else {}
            return baselines.fuse(name, ms, pan, SCALE, **extra)
        if name in external.METHODS:
            return external.fuse(name, ms, pan, SCALE)
        if name == "sipsa":
            return self._sipsa(ms, pan)["output"]
        adapted = self._adapter.adapt(ms, pan, self.adapt_steps, **self._adapt_options)
        try:
            self.adaptation.append({"image": scene.name, "protocol": protocol,
                                    "loss_before": adapted.loss_before,
                                    "loss_after": adapted.loss_after,
                                    "seconds": adapted.seconds})
            return adapted(ms, pan)["output"]
        finally:
            adapted.close()

    def close(self):
        for obj in (self._sipsa, self._adapter):
            if obj is not None:
                obj.close()


# ------------------------------------------------------------------ protocols

def protocol_inputs(scene, protocol):
    """(ms, pan, reference or None) that the methods get under ``protocol``."""
    if protocol == "reduced":
        ms_lr, pan_lr = quality.degrade(scene.ms, scene.pan, scene.gains, SCALE)
        return ms_lr.astype(np.float32), pan_lr.astype(np.float32), scene.ms
    return scene.ms, scene.pan, None


def indices(protocol, fused, scene):
    """The protocol's indices of one fused image, dict {index: float}.

    Blocks (Q, Q2n, QNR windows) are ``BLOCK`` = 32 pixels, or the MS side rounded down to a
    multiple of 4 for smaller images (the reference of the reduced protocol and Khan's
    D_lambda are at the MS scale).
    """
    block = min(BLOCK, min(scene.ms.shape[:2]) // SCALE * SCALE)
    if protocol == "reduced":
        return quality.reduced_resolution_indices(fused, scene.ms, SCALE, block=block)
    return quality.full_resolution_indices(fused, scene.ms, scene.pan, SCALE, scene.gains,
                                           block=block)


def evaluate(scenes, methods, protocols=PROTOCOLS, progress="auto", keep=None):
    """Runs every method on every scene under every protocol.

    Args:
        scenes: list of :class:`Scene`.
        methods: a :class:`Methods`.
        protocols: subset of ``PROTOCOLS``.
        progress: progress bar on stderr ("auto", "on", "off").
        keep: optional callable ``keep(scene, protocol, inputs, fused_by_method)`` receiving the
            images (for panels).

    Returns:
        list of row dicts with the keys of ``CSV_COLUMNS`` that apply.
    """

    bar = Progress(len(scenes) * len(protocols) * len(methods.names), "evaluate",
                   mode=progress)
    rows, done = [], 0
    for scene in scenes:
        for protocol in protocols:
            ms, pan, reference = protocol_inputs(scene, protocol)
            fused_by = collections.OrderedDict()
            for name in methods.names:
                start = time.time()
                fused = np.asarray(methods.fuse(name, ms, pan, scene, protocol), np.float64)
                seconds = time.time() - start
                fused_by[name] = fused
                row = {"image": scene.name, "sensor": scene.sensor or "generic",
                       "protocol": protocol, "method": name, "seconds": seconds}
                row.update(indices(protocol, fused, scene))
                rows.append(row)
                done += 1
                bar.update(done, "%s %s %s" % (scene.name, protocol, name))
            if keep is not None:
                keep(scene, protocol, (ms, pan, reference), fused_by)
    bar.close()
    return rows


# ------------------------------------------------------------------ writing

def atomic_write(path, payload):
    """Writes bytes to ``path`` atomically (:func:`sipsa_tf.utils.files.write_bytes`)."""
    return files.write_bytes(path, payload)


def write_csv(rows, path, columns=CSV_COLUMNS):
    """Rows as CSV (numbers with 6 significant digits; empty where an index does not apply)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["%.6g" % row[c] if isinstance(row.get(c), float) else row.get(c, "")
                         for c in columns])
    return atomic_write(path, out.getvalue().encode("utf-8"))


def _fmt(value):
    return "" if value is None else ("%.4f" % value if abs(value) < 10 else "%.2f" % value)


def markdown_table(rows, keys, columns, label_of=None):
    """A Markdown table with one line per distinct value of ``keys`` (means over the rest).

    Args:
        rows: row dicts.
        keys: tuple of row fields that identify a line (e.g. ("method",)).
        columns: numeric fields to average.
        label_of: optional dict of column headers.

    Returns:
        str, the best value of each column in bold (by ``HIGHER_IS_BETTER``).
    """
    label_of = label_of or LABELS
    groups = collections.OrderedDict()
    for row in rows:
        groups.setdefault(tuple(row[k] for k in keys), []).append(row)
    means = {g: {c: float(np.mean([r[c] for r in rs])) for c in columns}
             for g, rs in groups.items()}
    best = {}
    for c in columns:
        values = [m[c] for m in means.values()]
        if c in HIGHER_IS_BETTER and values:
            best[c] = max(values) if HIGHER_IS_BETTER[c] else min(values)
    arrows = {c: (" ↑" if HIGHER_IS_BETTER[c] else " ↓") if c in HIGHER_IS_BETTER else ""
              for c in columns}
    lines = ["| %s | %s |" % (" | ".join(keys), " | ".join(label_of.get(c, c) + arrows[c]
                                                           for c in columns)),
             "|" + " --- |" * (len(keys) + len(columns))]
    for g, m in means.items():
        cells = [("**%s**" if best.get(c) == m[c] else "%s") % _fmt(m[c]) for c in columns]
        lines.append("| %s | %s |" % (" | ".join(str(v) for v in g), " | ".join(cells)))
    return "\n".join(lines) + "\n"


def markdown_report(rows, scenes, methods, protocols, notes=(), title="Evaluation"):
    """The Markdown report: mean tables per protocol, per-image tables, notes."""
    parts = ["# %s\n" % title]
    descriptions = {
        "reduced": "Reduced resolution (Wald protocol: PAN and MS degraded by 4 with the "
                   "sensor MTF, fused, compared with the original MS)",
        "full": "Full resolution (no reference: QNR and HQNR)"}
    for protocol in protocols:
        sub = [r for r in rows if r["protocol"] == protocol]
        if not sub:
            continue
        cols = INDICES[protocol] + ("seconds",)
        parts.append("## %s, mean over %d image(s)\n" % (descriptions[protocol], len(scenes)))
        parts.append(markdown_table(sub, ("method",), cols))
    for protocol in protocols:
        sub = [r for r in rows if r["protocol"] == protocol]
        if len(scenes) > 1 and sub:
            parts.append("## Per image, %s resolution\n" % protocol)
            parts.append(markdown_table(sub, ("image", "method"), INDICES[protocol]))
    lines = ["## Notes\n", "- Images: " + "; ".join(
        "%s (%s, MS %dx%d%s)" % (s.name, s.sensor or "generic MTF", s.ms.shape[0], s.ms.shape[1],
                                 ", " + s.note if s.note else "") for s in scenes)]
    if any(n in methods.names for n in SIPSA_METHODS):
        lines.append("- SIPSA-Net starts from: %s" % methods.source())
    if methods.adaptation:
        a = methods.adaptation
        lines.append("- sipsa_adapted: %d steps per image and protocol, %s; mean %.1f s per "
                     "adaptation; loss before -> after (mean over fixed crops): %s" % (
                         methods.adapt_steps, ", ".join("%s=%s" % kv for kv in sorted(
                             {**methods._adapter_options, **methods._adapt_options}.items()))
                         or "default settings", float(np.mean([x["seconds"] for x in a])),
                         "; ".join("%s/%s %.3f -> %.3f" % (x["image"], x["protocol"],
                                                           x["loss_before"], x["loss_after"])
                                   for x in a)))
    if methods.gdal_version:
        lines.append("- gdal: %s, weighted Brovey with equal weights, cubic resampling of the MS"
                     % methods.gdal_version)
    for name, reason in methods.skipped.items():
        lines.append("- %s skipped: %s" % (name, reason))
    lines += ["- %s" % n for n in notes]
    lines.append("- seconds: wall time of one fusion on this machine (for sipsa_adapted "
                 "including the adaptation).")
    parts.append("\n".join(lines) + "\n")
    return "\n".join(parts)


# ------------------------------------------------------------------ images

def _font():
    from PIL import ImageFont
    return ImageFont.load_default()


def _stretch(x, low, high):
    return display.stretch(x, low, high)


def _rgb(tile):
    return np.repeat(tile[:, :, None], 3, axis=2) if tile.ndim == 2 else tile


def labelled_grid(rows_of_tiles, labels, gap=2, label_height=12):
    """Tiles (uint8, same size, grey or RGB) in a grid with a text label above each.

    Args:
        rows_of_tiles: list of rows, each a list of (h, w[, 3]) uint8 arrays or None (empty).
        labels: same structure, strings.

    Returns:
        PIL.Image.
    """
    from PIL import Image, ImageDraw

    h, w = next(t for row in rows_of_tiles for t in row if t is not None).shape[:2]
    n_cols = max(len(r) for r in rows_of_tiles)
    cell_h = h + label_height + gap
    canvas = Image.new("RGB", (n_cols * (w + gap) + gap, len(rows_of_tiles) * cell_h + gap),
                       "white")
    draw = ImageDraw.Draw(canvas)
    font = _font()
    for r, (tiles, texts) in enumerate(zip(rows_of_tiles, labels)):
        for c, (tile, text) in enumerate(zip(tiles, texts)):
            x, y = gap + c * (w + gap), gap + r * cell_h
            draw.text((x + 1, y), text, fill="black", font=font)
            if tile is not None:
                canvas.paste(Image.fromarray(_rgb(tile)), (x, y + label_height))
    return canvas


def panel(inputs, fused_by, crop=128, centre=None):
    """PNG panel: MS (nearest), PAN, each method; second row: |error| maps (if reference).

    All colour tiles share one stretch (2-98 percentiles of the MS crop, per band) so that
    methods are compared on the same scale; error maps show the mean absolute error over bands,
    white from ``ERROR_FRACTION`` of the displayed range (mean over bands of the 2-98 percentile
    span) upwards, the same scale for every method of the panel.

    Args:
        inputs: (ms (h, w, 3), pan (4h, 4w), reference (4h, 4w, 3) or None).
        fused_by: {method: (4h, 4w, 3) fused image}.
        crop: side of the square crop in PAN pixels.
        centre: (row, col) of the crop in PAN pixels; default the image centre.

    Returns:
        PIL.Image.
    """
    ms, pan, reference = inputs
    crop = min(crop, pan.shape[0], pan.shape[1])
    cy, cx = centre if centre is not None else (pan.shape[0] // 2, pan.shape[1] // 2)
    y0 = int(np.clip(cy - crop // 2, 0, pan.shape[0] - crop)) // SCALE * SCALE
    x0 = int(np.clip(cx - crop // 2, 0, pan.shape[1] - crop)) // SCALE * SCALE
    window = (slice(y0, y0 + crop), slice(x0, x0 + crop))
    ms_up = np.repeat(np.repeat(ms, SCALE, 0), SCALE, 1)[window]
    low, high = display.percentiles(ms_up, axis=(0, 1))
    pan_c = np.asarray(pan)[window]
    tiles = [_stretch(ms_up, low, high), _stretch(pan_c, *display.percentiles(pan_c))]
    names = ["MS (nearest)", "PAN"]
    errors, error_names = [None, None], ["", ""]
    if reference is not None:
        ref = np.asarray(reference)[window]
        tiles.insert(0, _stretch(ref, low, high))
        names.insert(0, "reference")
        errors.insert(0, None)
        error_max = ERROR_FRACTION * float(np.mean(high - low))
        error_names.insert(0, "|error|: white>=%.3g" % error_max)
    for name, fused in fused_by.items():
        f = fused[window]
        tiles.append(_stretch(f, low, high))
        names.append(name)
        if reference is not None:
            errors.append(_stretch(np.abs(f - ref).mean(axis=2), 0.0, error_max))
            error_names.append(name)
    grid, labels = [tiles], [names]
    if reference is not None:
        grid.append(errors)
        labels.append(error_names)
    return labelled_grid(grid, labels)


def save_png(image, path, colours=None):
    """Saves a PIL image atomically (optimised PNG; a palette of ``colours`` if given)."""
    out = io.BytesIO()
    if colours:
        image = image.convert("RGB").quantize(colors=colours)
    image.save(out, format="PNG", optimize=True)
    return atomic_write(path, out.getvalue())


# ------------------------------------------------------------------ ghosting, plots

def _sobel_magnitude(band):
    from scipy import ndimage
    return np.hypot(ndimage.sobel(band, 0, mode="nearest"), ndimage.sobel(band, 1,
                                                                           mode="nearest"))


def ghosting(fused, reference, mask=None, radius=1):
    """Double-edge (ghosting) measure: edge energy of ``fused`` that the reference lacks.

    G = sum_p sum_k max(|grad F_k|(p) - D_r(|grad R_k|)(p), 0)^2 / sum_p sum_k |grad R_k|(p)^2,
    with |grad| the Sobel gradient magnitude per band and D_r a grey dilation (max filter) of
    radius ``radius`` pixels, which forgives edges displaced by up to ``radius`` pixels. A
    ghost (an object or edge drawn twice, e.g. a car at its MS position beside its PAN position)
    adds edges where the reference has none and raises G; blur only lowers gradients and does not
    (it is measured by ERGAS/SCC). Ideal 0; a duplicate of every edge at a clear distance gives
    about 1.

    Args:
        fused, reference: (H, W, C) images on the same grid and scale.
        mask: optional (H, W) bool; sums only over it (e.g. around moving objects).
        radius: dilation radius in pixels.

    Returns:
        float >= 0 (NaN if the reference has no edge in the mask).
    """
    from scipy import ndimage

    f = np.asarray(fused, np.float64)
    r = np.asarray(reference, np.float64)
    if f.shape != r.shape or f.ndim != 3:
        raise ValueError("fused %s and reference %s must be the same (H, W, C) shape"
                         % (f.shape, r.shape))
    excess = energy = 0.0
    sel = np.ones(f.shape[:2], bool) if mask is None else np.asarray(mask, bool)
    for k in range(f.shape[2]):
        gf, gr = _sobel_magnitude(f[:, :, k]), _sobel_magnitude(r[:, :, k])
        allowed = ndimage.maximum_filter(gr, size=2 * radius + 1, mode="nearest")
        excess += float(np.sum(np.maximum(gf - allowed, 0.0)[sel] ** 2))
        energy += float(np.sum(gr[sel] ** 2))
    return excess / energy if energy > 0 else float("nan")


PLOT_COLOURS = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
                (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207))


def line_plot(x, series, title, xlabel, size=(360, 240)):
    """A small line chart drawn with PIL (no matplotlib).

    Args:
        x: sequence of x values.
        series: dict {name: sequence of y values (NaN allowed)}, drawn in ``PLOT_COLOURS``.
        title, xlabel: texts.
        size: (width, height) of the plot area in pixels (the legend is added on the right).

    Returns:
        PIL.Image.
    """
    from PIL import Image, ImageDraw

    font = _font()
    left, top, bottom, legend = 48, 18, 28, 110
    width, height = size
    image = Image.new("RGB", (left + width + legend, top + height + bottom), "white")
    draw = ImageDraw.Draw(image)
    values = np.array([v for ys in series.values() for v in ys], np.float64)
    values = values[np.isfinite(values)]
    lo, hi = (float(values.min()), float(values.max())) if values.size else (0.0, 1.0)
    if hi - lo < 1e-12:
        lo, hi = lo - 0.5, hi + 0.5
    pad = 0.05 * (hi - lo)
    lo, hi = lo - pad, hi + pad
    x = np.asarray(x, np.float64)
    x_lo, x_hi = float(x.min()), float(x.max()) if x.max() > x.min() else float(x.min()) + 1

    def px(xv, yv):
        return (left + (xv - x_lo) / (x_hi - x_lo) * width,
                top + (1 - (yv - lo) / (hi - lo)) * height)

    draw.rectangle([left, top, left + width, top + height], outline="black")
    for i in range(5):
        yv = lo + (hi - lo) * i / 4
        _, yp = px(x_lo, yv)
        draw.line([left - 3, yp, left, yp], fill="black")
        draw.text((2, yp - 5), "%.3g" % yv, fill="black", font=font)
    for xv in x:
        xp, _ = px(xv, lo)
        draw.line([xp, top + height, xp, top + height + 3], fill="black")
        draw.text((xp - 3, top + height + 4), "%g" % xv, fill="black", font=font)
    draw.text((left, 3), title, fill="black", font=font)
    draw.text((left + width // 2 - 3 * len(xlabel), top + height + 15), xlabel, fill="black",
              font=font)
    for i, (name, ys) in enumerate(series.items()):
        colour = PLOT_COLOURS[i % len(PLOT_COLOURS)]
        points = [px(xv, yv) for xv, yv in zip(x, ys) if math.isfinite(yv)]
        if len(points) > 1:
            draw.line(points, fill=colour, width=2)
        for p in points:
            draw.ellipse([p[0] - 2, p[1] - 2, p[0] + 2, p[1] + 2], fill=colour)
        ly = top + 4 + 13 * i
        draw.line([left + width + 8, ly + 6, left + width + 22, ly + 6], fill=colour, width=3)
        draw.text((left + width + 26, ly), name, fill="black", font=font)
    return image


def plot_grid(images, columns=2):
    """Pastes PIL images (same size) into a grid, row by row."""
    from PIL import Image

    w, h = images[0].size
    rows = int(math.ceil(len(images) / float(columns)))
    canvas = Image.new("RGB", (columns * w, rows * h), "white")
    for i, image in enumerate(images):
        canvas.paste(image, ((i % columns) * w, (i // columns) * h))
    return canvas


# ------------------------------------------------------------------ run

@dataclasses.dataclass
class EvalConfig:
    """Settings of :func:`run` (the flags of ``python -m sipsa_tf.evaluate``)."""
    out_dir: str = "evaluation"
    data_dir: str = None           # None or missing with auto_data: synthetic scenes
    auto_data: bool = False        # data_dir missing -> synthetic scenes instead of an error
    methods: tuple = DEFAULT_METHODS
    protocols: tuple = PROTOCOLS
    checkpoint: str = None         # None: random initialisation
    adapt_steps: int = 0
    adapt_lr: float = 1e-4
    adapt_crop: int = 32
    adapt_batch: int = 4
    max_pan: int = DEFAULT_MAX_PAN
    panel_crop: int = 128
    panels: bool = True
    panel_images: tuple = ()       # image names to draw panels for; empty: all
    command: str = None            # the command line, quoted in the report
    split: str = None              # split file: evaluate its held-out regions of data_dir only
    n_synthetic: int = 4
    synthetic_size: int = 64
    seed: int = 0
    progress: str = "auto"


def run(config, stdout=None):
    """Runs the evaluation and writes ``results.csv``, ``results.md`` and the panels.

    Returns:
        (rows, paths): the result rows and the dict of written files.

    Raises:
        EvaluationError, data.DataError, checkpoints.CheckpointError: bad input (before anything
            is written).
    """
    stdout = stdout or sys.stdout
    bad = [p for p in config.protocols if p not in PROTOCOLS]
    if bad or not config.protocols:
        raise EvaluationError("unknown protocol(s) %s; choose from %s"
                              % (", ".join(bad) or "(none)", ", ".join(PROTOCOLS)))
    notes = ["command: `%s`" % config.command] if config.command else []
    if config.split:
        from sipsa_tf import supervised
        regions = supervised.load_regions(supervised.load_split(config.split), "held_out",
                                          config.data_dir)
        scenes = [Scene(r.name, r.ms, r.pan, r.sensor, r.gains) for r in regions]  # whole
        notes.append("data: the held-out regions of %s in %s, whole" % (config.split,
                                                                        config.data_dir))
    elif config.data_dir and (os.path.isdir(config.data_dir) or not config.auto_data):
        scenes = load_scenes(config.data_dir, config.max_pan)
        if not scenes:
            raise EvaluationError("%s: no images" % config.data_dir)
        notes.append("data: %s" % config.data_dir)
    else:
        scenes = synthetic_scenes(config.n_synthetic, config.synthetic_size, config.seed)
        notes.append("data: %d synthetic test scenes (sipsa_tf.synthetic, seed %d)%s"
                     % (len(scenes), config.seed, " (%s not found)" % config.data_dir
                        if config.data_dir else ""))
    methods = Methods(list(config.methods), config.checkpoint, config.adapt_steps,
                      {"lr": config.adapt_lr, "crop": config.adapt_crop,
                       "batch": config.adapt_batch, "seed": config.seed}, seed=config.seed)
    os.makedirs(config.out_dir, exist_ok=True)
    paths = {}

    def keep(scene, protocol, inputs, fused_by):
        if config.panels and (not config.panel_images or scene.name in config.panel_images):
            path = os.path.join(config.out_dir, "panel_%s_%s.png" % (scene.name, protocol))
            paths[os.path.basename(path)] = save_png(
                panel(inputs, fused_by, config.panel_crop), path, PANEL_COLOURS)

    try:
        rows = evaluate(scenes, methods, config.protocols, config.progress, keep)
        paths["results.csv"] = write_csv(rows, os.path.join(config.out_dir, "results.csv"))
        report = markdown_report(rows, scenes, methods, config.protocols, notes)
        paths["results.md"] = atomic_write(os.path.join(config.out_dir, "results.md"),
                                            report.encode("utf-8"))
    finally:
        methods.close()
    print(report, file=stdout)
    return rows, paths
