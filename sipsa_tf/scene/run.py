"""Pan-sharpening a scene tile by tile: reading, encoding, nodata, preview, atomic outputs.

Part of the scene tool, :mod:`sipsa_tf.scene` (docs/design.md, "Package layout").
"""
import math
import sys
import time

import numpy as np

from sipsa_tf.constants import MS_BANDS, SCALE
from sipsa_tf.io import geotiff
from sipsa_tf.io.raster import Raster
from sipsa_tf.scene import grid as grids
from sipsa_tf.scene.options import SceneOptions, _check_outputs, check_inputs
from sipsa_tf.scene.plan import _pieces, plan_tiles, window_note
from sipsa_tf.scene.tile_model import TileModel, sharpen_window
from sipsa_tf.utils import display, files
from sipsa_tf.utils.progress import Progress


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

    @staticmethod
    def part(step, y0, x0, values, invalid):
        """The pixels of a tile at (y0, x0) that the preview keeps: (row, column, pixels)."""
        fy, fx = (-y0) % step, (-x0) % step
        part = values[fy::step, fx::step].astype(np.float32)
        if invalid is not None:
            part[invalid[fy::step, fx::step]] = np.nan
        return (y0 + fy) // step, (x0 + fx) // step, part

    def place(self, py, px, part):
        """Puts a :meth:`part` into the preview."""
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



def _invalid_mask(pan, ms, nodata, valid=None):
    """(4h, 4w) bool: PAN or any MS band equals nodata (or is NaN), or ``valid`` (the inputs'
    masks, (4h, 4w) bool) is False; None if there is none."""
    invalid = ~np.isfinite(pan[..., 0]) if pan.dtype.kind == "f" else np.zeros(pan.shape[:2], bool)
    if valid is not None:
        invalid |= ~valid
    ms_invalid = ~np.all(np.isfinite(ms), axis=-1) if ms.dtype.kind == "f" else None
    if nodata is not None:
        invalid |= pan[..., 0] == nodata
        hit = np.any(ms == nodata, axis=-1)
        ms_invalid = hit if ms_invalid is None else ms_invalid | hit
    if ms_invalid is not None:
        invalid |= np.repeat(np.repeat(ms_invalid, SCALE, axis=0), SCALE, axis=1)
    return invalid if invalid.any() else None



def pansharpen_scene(checkpoint, pan_path, ms_path, out_path, options=None, tile_model=None,
                     on_tile=None, stream=None, say=None):
    """Pan-sharpens a scene: PAN and MS (any raster GDAL opens) in, a tiled compressed GeoTIFF
    (or COG) out.

    Args:
        checkpoint: checkpoint prefix or directory (ignored when ``tile_model`` is given).
        pan_path: one-band raster (GeoTIFF, COG, JPEG 2000, NITF, DIMAP, .TIL, VRT, ...).
        ms_path: raster with at least 3 bands, same data type as the PAN; its pixels 4x the
            PAN's (georeferenced pairs: co-registered from the geotransforms,
            :mod:`sipsa_tf.scene.grid`; otherwise exactly 4x smaller in pixels).
        out_path: the fused image: 3 bands on the output grid (the PAN's, cropped to whole MS
            pixels and per ``options.extent``), with the PAN's georeferencing (a GeoTIFF PAN's
            tags copied when the grid is the PAN's whole grid), tiled ``options.tile`` and
            deflate-compressed, or a COG (``options.cog``); type per ``options.out_type``.
        options: :class:`SceneOptions`.
        tile_model: a :class:`TileModel` to reuse (the caller closes it).
        on_tile: optional callback ``on_tile(done, total)`` after each tile.
        stream: where the progress bar goes (default stderr).
        say: optional callback given the grid's one-line note (what was cropped, padded or
            resampled) and :func:`~sipsa_tf.scene.plan.window_note`'s, before the work starts.

    Returns:
        dict: tiles, seconds, megapixels (PAN), bits, nodata, outputs (paths written), grid
        (the note or None).

    Raises:
        SceneError, raster.RasterError, checkpoints.CheckpointError (all ValueError), OSError.
        Nothing is left at the output paths (nor temporary files) when anything fails or the
        run is interrupted.
    """
    options = options or SceneOptions()
    options.validate()
    _check_outputs(options.outputs(out_path), (pan_path, ms_path))
    with Raster(pan_path) as pan, Raster(ms_path) as ms:
        inputs = check_inputs(pan, ms, options)
    if say is not None and inputs.grid.note:
        say(inputs.grid.note)
    own_model = tile_model is None
    if own_model:
        tile_model = TileModel.for_options(checkpoint, options)
    writer, progress, start = None, None, time.time()
    try:
        with grids.open_sources(inputs.grid, inputs.nodata) as sources:
            writer = SceneWriter(out_path, options, inputs)
            tiles = plan_tiles(inputs.grid.height, inputs.grid.width, options.tile // SCALE,
                               options.halo)
            note = window_note(tile_model.forward_options, tiles)
            if say is not None and note:
                say(note)
            pieces = [len(_pieces(core, options.tail_tile)[0]) for core, _ in tiles]
            progress = Progress(sum(pieces), desc="pansharpen", stream=stream,
                                mode=options.progress)
            _sharpen_tiles(tile_model, sources, tiles, inputs, options, writer, progress,
                           on_tile)
            writer.commit()
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    finally:
        if progress is not None:
            progress.close()
        if own_model:
            tile_model.close()
    height, width = inputs.grid.pan_size
    return {"tiles": len(tiles), "pieces": sum(pieces), "seconds": time.time() - start,
            "megapixels": height * width / 1e6, "bits": inputs.bits, "nodata": inputs.nodata,
            "outputs": writer.outputs, "grid": inputs.grid.note}


class SceneWriter:
    """The outputs of one scene while it is computed: the output (and aligned MS) GeoTIFFs
    (or COGs) written tile by tile in row-major order to temporary files, and the preview.

    Args:
        out_path: the output path (``options.aligned_out``, ``options.preview``: the others).
        options: :class:`SceneOptions`.
        inputs: :data:`~sipsa_tf.scene.options.Inputs` from :func:`check_inputs` (its grid
            gives the size and georeferencing).

    Attributes:
        encode: the :class:`_Encoder` of the tiles.
        preview_step: the preview's decimation step, or None.
        outputs: the paths written.
    """

    def __init__(self, out_path, options, inputs):
        out_dtype = inputs.dtype if options.out_type == "native" else np.float32
        self.outputs = options.outputs(out_path)
        self.encode = _Encoder(inputs.bits, out_dtype, inputs.nodata)
        self._sinks = _open_sinks(inputs.grid, (out_path, options.aligned_out), out_dtype,
                                  options, inputs.nodata)
        height, width = inputs.grid.pan_size
        self._preview = (_Preview(options.preview, height, width, options.preview_size)
                         if options.preview else None)
        self.preview_step = self._preview.step if self._preview is not None else None

    def put(self, encoded, part):
        """The next tile in row-major order, as :func:`sharpen_tile` returns it."""
        for sink, values in zip(self._sinks, encoded):
            sink.put(values)
        if part is not None:
            self._preview.place(*part)

    def commit(self):
        """Finishes every file and renames them into place."""
        for sink in self._sinks:
            sink.finish()
        if self._preview is not None:
            self._preview.write()
        for sink in self._sinks:
            sink.commit()

    def abort(self):
        """Deletes the temporary files (safe to call more than once)."""
        for sink in self._sinks:
            sink.abort()


def _open_sinks(grid, paths, dtype, options, nodata):
    """One :class:`~sipsa_tf.io.geotiff.TiffSink` per given path, with the PAN's georeferencing:
    a GeoTIFF PAN's tags copied when the output is its whole grid, else set by GDAL.

    TIFF tiles are the core tiles, no larger than the scene (rounded up to 16) on either axis.
    """
    geo_tags = geotiff.read_geo_tags(grid.pan_path) if grid.whole_pan else []
    tags = geotiff.extratags(geo_tags, nodata)
    georeference = (grid.crs_wkt, grid.transform) if (
        grid.transform is not None and not geo_tags) else None
    cog = (options.cog_blocksize, options.cog_compress) if options.cog else None
    shape = grid.pan_size + (MS_BANDS,)
    tiff_tile = tuple(min(options.tile, -(-n // 16) * 16) for n in shape[:2])
    sinks = []
    try:
        for path in paths:
            if path:
                sinks.append(geotiff.TiffSink(path, shape, dtype, tiff_tile, tags,
                                              georeference=georeference, cog=cog))
    except BaseException:
        for sink in sinks:
            sink.abort()
        raise
    return sinks


def _sharpen_tiles(tile_model, sources, tiles, inputs, options, writer, progress, on_tile):
    """Reads, sharpens and writes every tile.

    Args:
        sources: the scene's :class:`~sipsa_tf.scene.grid.Sources`.
        inputs: :data:`~sipsa_tf.scene.options.Inputs` from :func:`check_inputs`.
        writer: the scene's :class:`SceneWriter`.
    """
    start, megapixels, pieces_done = time.time(), 0.0, 0

    def piece_done(pixels):
        nonlocal megapixels, pieces_done
        megapixels, pieces_done = megapixels + pixels / 1e6, pieces_done + 1
        progress.update(pieces_done, "%.3f MPix/s" % (megapixels / max(time.time() - start, 1e-9)))

    for done, (core, window) in enumerate(tiles, 1):
        writer.put(*sharpen_tile(tile_model, sources, core, window, inputs, options,
                                 writer.encode, writer.preview_step, piece_done))
        if on_tile is not None:
            on_tile(done, len(tiles))


def sharpen_tile(tile_model, sources, core, window, inputs, options, encode, preview_step=None,
                 on_piece=None):
    """Reads one tile's window, sharpens it and encodes its core (the work of one tile, in this
    process or on a cluster worker, :mod:`sipsa_tf.scene.cluster`).

    Args:
        sources: the scene's :class:`~sipsa_tf.scene.grid.Sources` (output coordinates).
        core, window: MS boxes (y0, y1, x0, x1) from :func:`~sipsa_tf.scene.plan.plan_tiles`.
        inputs: :data:`~sipsa_tf.scene.options.Inputs` from :func:`check_inputs`.
        encode: the output's :class:`_Encoder`.
        preview_step: the preview's decimation step, or None without a preview.

    Returns:
        (encoded, part): the output tile (and the aligned MS tile) in the output type, and the
        preview's decimated piece of the output (:meth:`_Preview.part`) or None.
    """
    bands, bits, nodata = inputs.bands, inputs.bits, inputs.nodata
    scale = float(2 ** bits - 1)
    ms_win = sources.ms(window[0], window[1], window[2], window[3], bands)
    pan_win = sources.pan(*(SCALE * v for v in window))
    results = sharpen_window(
        tile_model, np.nan_to_num(ms_win.astype(np.float32) / scale),
        np.nan_to_num(pan_win[..., 0].astype(np.float32) / scale), core, window,
        options.tail_tile, aligned=options.aligned_out is not None, on_piece=on_piece)
    # Core of the window, in window coordinates (MS and PAN), for the nodata mask.
    ry, rx = core[0] - window[0], core[2] - window[2]
    ch, cw = core[1] - core[0], core[3] - core[2]
    invalid = _invalid_mask(
        pan_win[SCALE * ry:SCALE * (ry + ch), SCALE * rx:SCALE * (rx + cw)],
        ms_win[ry:ry + ch, rx:rx + cw], nodata,
        sources.valid(*(SCALE * v for v in core)))
    encoded = [encode(values, invalid) for values in results if values is not None]
    part = None
    if preview_step is not None:
        part = _Preview.part(preview_step, SCALE * core[0], SCALE * core[2], results[0],
                             invalid)
    return encoded, part


def count_tiles(tiles, pieces=None):
    """'1 tile', '4 tiles', or '1 tile (4 pieces)' when the network ran on more pieces than
    tiles (``--tail_tile``): the pieces are what the progress bar counts."""
    text = "%d tile%s" % (tiles, "" if tiles == 1 else "s")
    if pieces and pieces != tiles:
        text += " (%d pieces)" % pieces
    return text


def print_summary(summary, stream=None):
    """Prints what :func:`pansharpen_scene` wrote."""
    stream = stream or sys.stdout
    stream.write("wrote %s: %.2f PAN megapixels in %s, %.1f s (%.3f MPix/s), bits=%d%s\n"
                 % (", ".join(summary["outputs"]), summary["megapixels"],
                    count_tiles(summary["tiles"], summary.get("pieces")),
                    summary["seconds"], summary["megapixels"] / max(summary["seconds"], 1e-9),
                    summary["bits"], "" if summary["nodata"] is None
                    else ", nodata=%g" % summary["nodata"]))
