"""Scene-scale SIPSA-Net pan-sharpening: GeoTIFF in, GeoTIFF out, tile by tile.

Reference: Lee, Seo, Kim, "Shift-Invariant Pan Sharpening with Moving Object Alignment for
Satellite Imagery", CVPR 2021. The network normalises with local statistics only (9 x 9 Gaussian
moments), so a pixel of the output depends on the inputs within a bounded receptive field
(:data:`RECEPTIVE_FIELD_MS` MS pixels, measured by ``tests/test_scene.py``). The scene is cut into
core tiles of ``tile`` x ``tile`` PAN pixels; each is computed from a window of the scene that
extends the core by a halo of at least the receptive field on every side that is not a scene edge
(windows are clipped to the scene, never padded, so the REFLECT/SAME padding at the scene edges is
the whole image's). The output of the core therefore equals the whole-image output.

The network runs in two stages (:class:`TileModel`). Its MS-resolution part (43% of the FLOPs,
little memory) runs on the whole window; its PAN-resolution tail (57% of the FLOPs, most of the
memory: 64 channels at PAN resolution) runs only on the core, in pieces of at most ``tail_tile``
PAN pixels, each grown by :data:`TAIL_MARGIN` PAN pixels (the tail's receptive field is 3 PAN
pixels). Large tiles thus keep the halo's share of the work small while the pieces bound the
memory. Inputs are read window by window (memory-mapped or decoded segment by segment), the output
is written tile by tile into a temporary file renamed into place at the end, so peak memory
depends on the tile sizes and not on the scene size.
"""
import dataclasses
import math
import os
import sys
import time

import numpy as np

from sipsa_tf.io import geotiff
from sipsa_tf.constants import MS_BANDS, SCALE
from sipsa_tf.errors import UserError
from sipsa_tf.io import pairs
from sipsa_tf.utils import display, files
from sipsa_tf.utils.progress import Progress

# TensorFlow (and the modules that build graphs) is imported by TileModel only, so that bad input
# is reported without loading it.
MIN_MS_SIZE = 5  # model.MIN_MS_SIZE (tests/test_scene.py checks they agree)
# Receptive field of one output pixel on each side: 123 PAN pixels measured by perturbing single
# input pixels (tests/test_scene.py), rounded up to whole MS pixels.
RECEPTIVE_FIELD_MS = 31
DEFAULT_HALO_MS = 32
# PAN pixels kept around a core for the PAN-resolution tail (receptive field 3 PAN pixels).
TAIL_MARGIN = 4
DEFAULT_TILE = 2048
DEFAULT_TAIL_TILE = 768
SCAN_ROWS = 1024


class SceneError(UserError):
    """Inputs or options that cannot be processed; the message is one sentence."""


@dataclasses.dataclass
class SceneOptions:
    """Options of :func:`pansharpen_scene` (the command line flags of ``sipsa-pansharpen``).

    Attributes:
        bands: three 1-based MS band numbers fed to the network as its 3 MS bands, in order.
        bits: bits per sample of the data; values are DN / (2^bits - 1). 0: from the data type
            (uint8: 8; uint16/int16: 11 if no valid value exceeds 2047, 12 if none exceeds 4095,
            else 16 (15 for int16); float32 input needs an explicit value).
        nodata: nodata value; None: the PAN's GDAL_NODATA tag, if any.
        tile: core tile side in PAN pixels (multiple of 16); also the output TIFF tile size.
            The MS-resolution part of the network runs on the tile plus its halo.
        tail_tile: largest piece side on which the PAN-resolution tail runs (sets the peak
            memory together with ``tile``).
        halo: halo in MS pixels, at least :data:`RECEPTIVE_FIELD_MS`.
        out_type: "native" (the input's type; DN rounded and clipped) or "float32" (DN, unrounded).
        aligned_out: optional path of the aligned MS (same georeferencing and type as the output).
        preview: optional path of an 8-bit PNG preview (2-98 percentile stretch per band).
        preview_size: longest side of the preview (the output decimated by an integer factor).
        threads: TensorFlow intra-op threads (0: TensorFlow's default).
        progress: "auto", "on" or "off" (progress bar with ETA on stderr).
    """
    bands: tuple = (1, 2, 3)
    bits: int = 0
    nodata: float = None
    tile: int = DEFAULT_TILE
    tail_tile: int = DEFAULT_TAIL_TILE
    halo: int = DEFAULT_HALO_MS
    out_type: str = "native"
    aligned_out: str = None
    preview: str = None
    preview_size: int = 2048
    threads: int = 0
    progress: str = "auto"

    def validate(self):
        """Raises SceneError for option values that cannot work."""
        if len(self.bands) != MS_BANDS:
            raise SceneError("--bands must name exactly 3 MS bands (1-based), got %s"
                             % ",".join(str(b) for b in self.bands))
        if self.bits and not 1 <= self.bits <= 16:
            raise SceneError("--bits must be between 1 and 16 (0: from the data type), got %d"
                             % self.bits)
        if self.tile % 16 or self.tile < 64:
            raise SceneError("--tile must be a multiple of 16 and at least 64, got %d" % self.tile)
        if self.tail_tile < 16:
            raise SceneError("--tail_tile must be at least 16, got %d" % self.tail_tile)
        if self.halo < RECEPTIVE_FIELD_MS:
            raise SceneError("--halo must be at least the receptive field, %d MS pixels, got %d"
                             % (RECEPTIVE_FIELD_MS, self.halo))
        if self.out_type not in ("native", "float32"):
            raise SceneError("--out_type must be native or float32, got %r" % self.out_type)
        if self.progress not in ("auto", "on", "off"):
            raise SceneError("--progress must be auto, on or off, got %r" % self.progress)
        if self.preview_size < 16:
            raise SceneError("--preview_size must be at least 16, got %d" % self.preview_size)


def parse_bands(text):
    """'5,3,2' -> (5, 3, 2) (:func:`sipsa_tf.io.pairs.parse_bands`); raises SceneError."""
    return pairs.parse_bands(text, what="--bands", error=SceneError)


def _grow(c0, c1, pad, lo, hi, length):
    """[c0, c1) grown by ``pad`` on each side, clipped to [lo, hi), then grown (inside [lo, hi))
    to ``length`` if possible, so that the boxes of almost all tiles have one size."""
    a0, a1 = max(lo, c0 - pad), min(hi, c1 + pad)
    a1 = min(hi, max(a1, a0 + length))
    return max(lo, min(a0, a1 - length)), a1


def axis_plan(n, core, halo):
    """Cores and windows along one axis, in MS pixels.

    Cores tile [0, n) in steps of ``core``. Each window is the core grown by ``halo`` and clipped
    to [0, n), then grown (still inside [0, n)) to ``core + 2 halo`` pixels where possible, so
    almost all windows have one size. The halo is >= ``halo`` wherever it is not the scene edge.

    Returns:
        list of ((c0, c1), (w0, w1)).
    """
    return [((c0, min(n, c0 + core)), _grow(c0, min(n, c0 + core), halo, 0, n, core + 2 * halo))
            for c0 in range(0, n, core)]


def plan_tiles(height, width, core, halo):
    """Row-major list of (core, window) boxes ``(y0, y1, x0, x1)`` in MS pixels."""
    rows, cols = axis_plan(height, core, halo), axis_plan(width, core, halo)
    return [((cy[0], cy[1], cx[0], cx[1]), (wy[0], wy[1], wx[0], wx[1]))
            for cy, wy in rows for cx, wx in cols]


def split(c0, c1, size):
    """[c0, c1) cut into the fewest pieces of at most ``size``, of (almost) equal length."""
    pieces = -(-(c1 - c0) // size)
    step = -(-(c1 - c0) // pieces)
    return [(a, min(c1, a + step)) for a in range(c0, c1, step)]


def tail_box(sub, window, lengths, margin=TAIL_MARGIN):
    """Where the PAN-resolution tail runs for one sub-tile, and where the sub-tile lies in it.

    The tail is the sub-tile grown by ``margin`` pixels, clipped to the window, then grown inside
    the window to ``lengths`` where possible (one tail shape for almost all sub-tiles).

    Args:
        sub, window: boxes (y0, y1, x0, x1) in PAN pixels of the scene.
        lengths: (height, width) aimed at (the sub-tile sides + 2 margin).
        margin: pixels kept around the sub-tile wherever its edge is not the window's edge.

    Returns:
        (tail, crop): ``tail`` = (top, left, height, width) relative to the window;
        ``crop`` = (top, left, height, width) of the sub-tile relative to the tail.
    """
    starts, sizes, crops = [], [], []
    for s0, s1, w0, w1, length in ((sub[0], sub[1], window[0], window[1], lengths[0]),
                                   (sub[2], sub[3], window[2], window[3], lengths[1])):
        t0, t1 = _grow(s0, s1, margin, w0, w1, length)
        starts.append(t0 - w0)
        sizes.append(t1 - t0)
        crops.append(s0 - t0)
    return ((starts[0], starts[1], sizes[0], sizes[1]),
            (crops[0], crops[1], sub[1] - sub[0], sub[3] - sub[2]))


# What the PAN-resolution tail takes from the rest of the graph, by the names model.forward gives
# them when it hands them to its pan_window hook, with channel counts: the network's
# depth_to_space output, the normalised PAN, the MS statistics and the aligned MS at PAN
# resolution.
TAIL_INPUTS = (("u", 4), ("pan_n", 1), ("up_mean", 3), ("up_std", 3), ("aligned_up", 3))


class TileModel:
    """SIPSA-Net in two stages: MS-resolution part on a window, PAN-resolution tail on pieces.

    One graph and session, built once and finalised; windows of any size share it. The graph is
    ``model.forward`` with its ``pan_window`` hook replacing each PAN-resolution tensor that the
    tail takes (:data:`TAIL_INPUTS`) by a placeholder: :meth:`features` fetches those tensors for
    a window (running only the MS-resolution part), :meth:`tail` feeds crops of them back and
    runs only the tail. Same operations as the whole graph, so the numbers are the same.

    Args:
        checkpoint: prefix or directory; None initialises the weights randomly (with ``seed``).
        threads: TensorFlow intra-op threads (0: default).
        seed: graph-level seed for the random initialisation.
    """

    def __init__(self, checkpoint, threads=0, seed=None):
        import tensorflow as tf
        from sipsa_tf import checkpoints, session
        from sipsa_tf.core import model, network, ops
        self.checkpoint = None if checkpoint is None else checkpoints.resolve(checkpoint)
        self.graph = tf.Graph()
        with self.graph.as_default():
            if seed is not None:
                tf.compat.v1.set_random_seed(seed)
            self._ms = tf.compat.v1.placeholder(tf.float32, [None, None, 3], "ms")
            self._pan = tf.compat.v1.placeholder(tf.float32, [None, None], "pan")
            channels = dict(TAIL_INPUTS)
            self._handed, self._fed = {}, {}

            def substitute(t, name):
                assert name in channels and name not in self._handed, name
                assert t.shape.as_list()[-1] == channels[name], (name, t.shape)
                self._handed[name] = t[0]
                self._fed[name] = tf.compat.v1.placeholder(
                    tf.float32, [None, None, channels[name]], name)
                return self._fed[name][None]

            fwd = model.forward(self._ms[None], self._pan[None, :, :, None],
                                fam=ops.local_conv_fused, pan_window=substitute)
            assert set(self._handed) == set(channels), sorted(self._handed)
            self._output = tf.clip_by_value(fwd.output[0], 0.0, 1.0)
            self._aligned = tf.clip_by_value(fwd.aligned[0], 0.0, 1.0)
            self.variables = network.network_variables(self.graph)
            self.session = session.open_session(
                self.graph, self.variables, self.checkpoint,
                session.make_session_config(threads, inter_op=False))
        self.graph.finalize()

    def features(self, ms, pan, aligned=False):
        """Runs the MS-resolution part on a window.

        Args:
            ms: (h, w, 3) float32 window, DN / (2^bits - 1); h, w >= 5.
            pan: (4h, 4w) float32 window, same scale.
            aligned: also return what the aligned MS needs.

        Returns:
            dict name -> (4h, 4w, channels) float32, the tail's inputs (:data:`TAIL_INPUTS`).
        """
        names = [n for n, _ in TAIL_INPUTS if aligned or n != "aligned_up"]
        values = self.session.run([self._handed[n] for n in names],
                                  {self._ms: ms, self._pan: pan})
        return dict(zip(names, values))

    def tail(self, features, box, aligned=False):
        """Runs the PAN-resolution tail on ``box`` = (top, left, height, width) of the window.

        Returns:
            output (height, width, 3) float32 in [0, 1], and the aligned MS of the same shape
            (or None).
        """
        top, left, height, width = box
        feed = {self._fed[n]: v[top:top + height, left:left + width]
                for n, v in features.items()}
        if aligned:
            return tuple(self.session.run([self._output, self._aligned], feed))
        return self.session.run(self._output, feed), None

    def __call__(self, ms, pan, box, aligned=False):
        """:meth:`features` of a window, then :meth:`tail` on ``box`` of it."""
        return self.tail(self.features(ms, pan, aligned), box, aligned)

    def close(self):
        """Releases the session."""
        self.session.close()


def _pieces(core, tail_tile):
    """The tail's sub-tiles of a core (MS box): (list of PAN boxes, (height, width) of a tail)."""
    rows = split(SCALE * core[0], SCALE * core[1], tail_tile)
    cols = split(SCALE * core[2], SCALE * core[3], tail_tile)
    lengths = tuple(pieces[0][1] - pieces[0][0] + 2 * TAIL_MARGIN for pieces in (rows, cols))
    return [(y0, y1, x0, x1) for y0, y1 in rows for x0, x1 in cols], lengths


def sharpen_window(tile_model, ms, pan, core, window, tail_tile, aligned=False, on_piece=None):
    """SIPSA-Net output (and aligned MS) on the core of one window.

    Args:
        tile_model: a :class:`TileModel`.
        ms: (h, w, 3) float32 MS of the window, DN / (2^bits - 1).
        pan: (4h, 4w) float32 PAN of the window, same scale.
        core, window: boxes (y0, y1, x0, x1) in MS pixels of the scene; the window holds the
            core and a halo of at least the receptive field wherever it is not the scene edge.
        tail_tile: largest side of the pieces on which the PAN-resolution tail runs.
        aligned: also compute the aligned MS.
        on_piece: optional callback ``on_piece(pixels)`` after each piece.

    Returns:
        (output, aligned or None): (4 core height, 4 core width, 3) float32 in [0, 1].
    """
    features = tile_model.features(ms, pan, aligned)
    pan_window = tuple(SCALE * v for v in window)
    shape = (SCALE * (core[1] - core[0]), SCALE * (core[3] - core[2]), MS_BANDS)
    results = [np.empty(shape, np.float32), np.empty(shape, np.float32) if aligned else None]
    boxes, lengths = _pieces(core, tail_tile)
    for sub in boxes:
        box, crop = tail_box(sub, pan_window, lengths)
        at = (slice(sub[0] - SCALE * core[0], sub[1] - SCALE * core[0]),
              slice(sub[2] - SCALE * core[2], sub[3] - SCALE * core[2]))
        for result, values in zip(results, tile_model.tail(features, box, aligned)):
            if result is not None:
                result[at] = values[crop[0]:crop[0] + crop[2], crop[1]:crop[1] + crop[3]]
        if on_piece is not None:
            on_piece(crop[2] * crop[3])
    return tuple(results)


def _auto_bits(dtype, max_value):
    if dtype == np.uint8:
        return 8
    for bits in (11, 12):
        if max_value <= 2 ** bits - 1:
            return bits
    return 15 if dtype == np.int16 else 16


def _scan_max(raster, bands, nodata, factor=1):
    """Largest valid value of ``bands`` of ``raster``, reading row bands."""
    best = -np.inf
    for y0, y1 in raster.row_bands(max(1, SCAN_ROWS // factor)):
        block = raster.read(y0, y1, 0, raster.width, bands)
        if nodata is not None:
            block = block[block != nodata]
        if block.size:
            best = max(best, float(block.max()))
    return best


def check_inputs(pan, ms, options):
    """Checks a PAN/MS pair against the options; returns (band indices 0-based, bits, nodata).

    Raises:
        SceneError: one sentence naming the file and the problem.
    """
    if pan.bands != 1:
        raise SceneError("%s: the PAN must have one band, found %d" % (pan.path, pan.bands))
    if ms.bands < MS_BANDS:
        raise SceneError("%s: the MS must have at least 3 bands, found %d" % (ms.path, ms.bands))
    for band in options.bands:
        if not 1 <= band <= ms.bands:
            raise SceneError("%s: --bands %d is out of range; the file has %d bands (1 to %d)"
                             % (ms.path, band, ms.bands, ms.bands))
    if pan.dtype != ms.dtype:
        raise SceneError("%s and %s have different data types (%s and %s)"
                         % (pan.path, ms.path, pan.dtype, ms.dtype))
    pairs.check_sizes(pan.path, (pan.height, pan.width), ms.path, (ms.height, ms.width),
                      error=SceneError)
    if min(ms.height, ms.width) < MIN_MS_SIZE:
        raise SceneError("%s is %d x %d; the smallest MS supported is %d x %d pixels"
                         % (ms.path, ms.height, ms.width, MIN_MS_SIZE, MIN_MS_SIZE))
    bands = [b - 1 for b in options.bands]
    nodata = options.nodata if options.nodata is not None else pan.nodata
    bits = options.bits
    if not bits:
        if pan.dtype == np.float32:
            raise SceneError("%s: float32 data needs --bits (values are DN / (2^bits - 1))"
                             % pan.path)
        peak = max(_scan_max(pan, [0], nodata), _scan_max(ms, bands, nodata, SCALE))
        bits = _auto_bits(pan.dtype, peak)
    elif pan.dtype != np.float32 and bits > 8 * pan.dtype.itemsize:
        raise SceneError("%s: --bits %d does not fit its data type %s"
                         % (pan.path, bits, pan.dtype))
    return bands, bits, nodata


def _check_outputs(paths, inputs):
    for path in paths:
        directory = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(directory):
            raise SceneError("%s: the output directory %s does not exist" % (path, directory))
        if any(os.path.abspath(path) == os.path.abspath(p) for p in inputs):
            raise SceneError("%s: an output would overwrite an input" % path)
    if len(set(os.path.abspath(p) for p in paths)) != len(paths):
        raise SceneError("the output paths must differ: %s" % ", ".join(paths))


class _Encoder:
    """[0, 1] float tiles -> output values (DN of the output type), with nodata."""

    def __init__(self, bits, dtype, nodata):
        self.scale = float(2 ** bits - 1)
        self.dtype = np.dtype(dtype)
        self.nodata = nodata
        if self.dtype.kind in "ui":
            info = np.iinfo(self.dtype)
            self.low, self.high = info.min, info.max
            if nodata is not None:
                # A valid pixel that rounds to the nodata value is moved one step away from it.
                self.bumped = nodata + 1 if nodata < self.high else nodata - 1

    def __call__(self, values, invalid):
        out = values * self.scale
        if self.dtype.kind in "ui":
            out = np.clip(np.rint(out), self.low, self.high).astype(self.dtype)
            if self.nodata is not None:
                out[out == self.nodata] = self.bumped
        else:
            out = out.astype(self.dtype)
        if invalid is not None:
            out[invalid] = self.nodata
        return out


class _Preview:
    """Decimated copy of the output for an 8-bit percentile-stretched PNG."""

    def __init__(self, path, height, width, size):
        self.path = path
        self.step = max(1, math.ceil(max(height, width) / size))
        self.image = np.full((-(-height // self.step), -(-width // self.step), 3), np.nan,
                             np.float32)

    def add(self, y0, x0, values, invalid):
        fy, fx = (-y0) % self.step, (-x0) % self.step
        part = values[fy::self.step, fx::self.step].astype(np.float32)
        if invalid is not None:
            part[invalid[fy::self.step, fx::self.step]] = np.nan
        py, px = (y0 + fy) // self.step, (x0 + fx) // self.step
        self.image[py:py + part.shape[0], px:px + part.shape[1]] = part

    def write(self):
        from PIL import Image
        out = np.zeros(self.image.shape, np.uint8)
        for band in range(3):
            channel = self.image[..., band]
            valid = channel[np.isfinite(channel)]
            if valid.size:
                out[..., band] = display.stretch(channel, *display.percentiles(valid), eps=1e-12)
        with files.atomic_path(self.path) as tmp:
            Image.fromarray(out, "RGB").save(tmp, format="PNG")


def _invalid_mask(pan, ms, nodata):
    """(4h, 4w) bool: PAN or any MS band equals nodata (or is NaN); None if there is none."""
    invalid = ~np.isfinite(pan[..., 0]) if pan.dtype.kind == "f" else np.zeros(pan.shape[:2], bool)
    ms_invalid = ~np.all(np.isfinite(ms), axis=-1) if ms.dtype.kind == "f" else None
    if nodata is not None:
        invalid |= pan[..., 0] == nodata
        hit = np.any(ms == nodata, axis=-1)
        ms_invalid = hit if ms_invalid is None else ms_invalid | hit
    if ms_invalid is not None:
        invalid |= np.repeat(np.repeat(ms_invalid, SCALE, axis=0), SCALE, axis=1)
    return invalid if invalid.any() else None


def pansharpen_scene(checkpoint, pan_path, ms_path, out_path, options=None, tile_model=None,
                     on_tile=None, stream=None):
    """Pan-sharpens a scene: PAN and MS (Geo)TIFFs in, a tiled compressed GeoTIFF out.

    Args:
        checkpoint: checkpoint prefix or directory (ignored when ``tile_model`` is given).
        pan_path: one-band TIFF/GeoTIFF, 4x the MS size in both directions.
        ms_path: TIFF/GeoTIFF with at least 3 bands, same data type as the PAN.
        out_path: the fused image: 3 bands, the PAN's size and georeferencing (GeoTIFF tags
            copied), tiled ``options.tile`` and deflate-compressed; type per ``options.out_type``.
        options: :class:`SceneOptions`.
        tile_model: a :class:`TileModel` to reuse (the caller closes it).
        on_tile: optional callback ``on_tile(done, total)`` after each tile.
        stream: where the progress bar goes (default stderr).

    Returns:
        dict: tiles, seconds, megapixels (PAN), bits, nodata, outputs (paths written).

    Raises:
        SceneError, geotiff.RasterError, checkpoints.CheckpointError (all ValueError), OSError.
        Nothing is left at the output paths (nor temporary files) when anything fails or the
        run is interrupted.
    """
    options = options or SceneOptions()
    options.validate()
    outputs = [p for p in (out_path, options.aligned_out, options.preview) if p]
    _check_outputs(outputs, (pan_path, ms_path))
    with geotiff.Raster(pan_path) as pan, geotiff.Raster(ms_path) as ms:
        bands, bits, nodata = check_inputs(pan, ms, options)
        if nodata is not None and pan.dtype.kind in "ui":
            info = np.iinfo(pan.dtype)
            if not (info.min <= nodata <= info.max and float(nodata).is_integer()):
                raise SceneError("%s: nodata %g is not a value of its type %s"
                                 % (pan_path, nodata, pan.dtype))
        own_model = tile_model is None
        if own_model:
            tile_model = TileModel(checkpoint, threads=options.threads)
        sinks, progress = [], None
        try:
            out_dtype = pan.dtype if options.out_type == "native" else np.float32
            encode = _Encoder(bits, out_dtype, nodata)
            tags = geotiff.extratags(pan.geo_tags, nodata)
            shape = (pan.height, pan.width, MS_BANDS)
            # TIFF tiles = core tiles; no larger than the scene (rounded up to 16) on either axis.
            tiff_tile = tuple(min(options.tile, -(-n // 16) * 16) for n in shape[:2])
            for path in (out_path, options.aligned_out):
                if path:
                    sinks.append(geotiff.TiffSink(path, shape, out_dtype, tiff_tile, tags))
            preview = (_Preview(options.preview, pan.height, pan.width, options.preview_size)
                       if options.preview else None)
            tiles = plan_tiles(ms.height, ms.width, options.tile // SCALE, options.halo)
            pieces = [len(_pieces(core, options.tail_tile)[0]) for core, _ in tiles]
            progress = Progress(sum(pieces), desc="pansharpen", stream=stream,
                                mode=options.progress)
            scale = float(2 ** bits - 1)
            start, megapixels, pieces_done = time.time(), 0.0, 0
            for done, (core, window) in enumerate(tiles, 1):
                ms_win = ms.read(window[0], window[1], window[2], window[3], bands)
                pan_win = pan.read(*(SCALE * v for v in window))

                def piece_done(pixels):
                    nonlocal megapixels, pieces_done
                    megapixels, pieces_done = megapixels + pixels / 1e6, pieces_done + 1
                    progress.update(pieces_done, "%.3f MPix/s"
                                    % (megapixels / max(time.time() - start, 1e-9)))

                results = sharpen_window(
                    tile_model, np.nan_to_num(ms_win.astype(np.float32) / scale),
                    np.nan_to_num(pan_win[..., 0].astype(np.float32) / scale), core, window,
                    options.tail_tile, aligned=options.aligned_out is not None,
                    on_piece=piece_done)
                # Core of the window, in window coordinates (MS and PAN), for the nodata mask.
                ry, rx = core[0] - window[0], core[2] - window[2]
                ch, cw = core[1] - core[0], core[3] - core[2]
                invalid = _invalid_mask(
                    pan_win[SCALE * ry:SCALE * (ry + ch), SCALE * rx:SCALE * (rx + cw)],
                    ms_win[ry:ry + ch, rx:rx + cw], nodata)
                for i, values in enumerate(r for r in results if r is not None):
                    sinks[i].put(encode(values, invalid))
                    if i == 0 and preview is not None:
                        preview.add(SCALE * core[0], SCALE * core[2], values, invalid)
                if on_tile is not None:
                    on_tile(done, len(tiles))
            for sink in sinks:
                sink.finish()
            if preview is not None:
                preview.write()
            for sink in sinks:
                sink.commit()
        except BaseException:
            for sink in sinks:
                sink.abort()
            raise
        finally:
            if progress is not None:
                progress.close()
            if own_model:
                tile_model.close()
    return {"tiles": len(tiles), "seconds": time.time() - start,
            "megapixels": pan.height * pan.width / 1e6, "bits": bits, "nodata": nodata,
            "outputs": outputs}


def print_summary(summary, stream=None):
    """Prints what :func:`pansharpen_scene` wrote."""
    stream = stream or sys.stdout
    stream.write("wrote %s: %.2f PAN megapixels in %d tiles, %.1f s (%.3f MPix/s), bits=%d%s\n"
                 % (", ".join(summary["outputs"]), summary["megapixels"], summary["tiles"],
                    summary["seconds"], summary["megapixels"] / max(summary["seconds"], 1e-9),
                    summary["bits"], "" if summary["nodata"] is None
                    else ", nodata=%g" % summary["nodata"]))
