"""Pan-sharpening a scene tile by tile: reading, encoding, nodata, preview, atomic outputs.

Part of the scene tool, :mod:`sipsa_tf.scene` (docs/design.md, "Package layout").
"""
import math
import sys
import time

import numpy as np

from sipsa_tf.constants import MS_BANDS, SCALE
from sipsa_tf.io import geotiff
from sipsa_tf.scene.options import SceneOptions, _check_outputs, check_inputs
from sipsa_tf.scene.plan import _pieces, plan_tiles
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
        own_model = tile_model is None
        if own_model:
            tile_model = TileModel(checkpoint, threads=options.threads,
                                   precision=options.precision)
        sinks, progress, start = [], None, time.time()
        try:
            out_dtype = pan.dtype if options.out_type == "native" else np.float32
            sinks = _open_sinks(pan, (out_path, options.aligned_out), out_dtype, options.tile,
                                nodata)
            preview = (_Preview(options.preview, pan.height, pan.width, options.preview_size)
                       if options.preview else None)
            tiles = plan_tiles(ms.height, ms.width, options.tile // SCALE, options.halo)
            pieces = [len(_pieces(core, options.tail_tile)[0]) for core, _ in tiles]
            progress = Progress(sum(pieces), desc="pansharpen", stream=stream,
                                mode=options.progress)
            _sharpen_tiles(tile_model, pan, ms, tiles, (bands, bits, nodata), options,
                           (sinks, _Encoder(bits, out_dtype, nodata), preview), progress, on_tile)
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


def _open_sinks(pan, paths, dtype, tile, nodata):
    """One :class:`~sipsa_tf.io.geotiff.TiffSink` per given path, with the PAN's georeferencing.

    TIFF tiles are the core tiles, no larger than the scene (rounded up to 16) on either axis.
    """
    tags = geotiff.extratags(pan.geo_tags, nodata)
    shape = (pan.height, pan.width, MS_BANDS)
    tiff_tile = tuple(min(tile, -(-n // 16) * 16) for n in shape[:2])
    sinks = []
    try:
        for path in paths:
            if path:
                sinks.append(geotiff.TiffSink(path, shape, dtype, tiff_tile, tags))
    except BaseException:
        for sink in sinks:
            sink.abort()
        raise
    return sinks


def _sharpen_tiles(tile_model, pan, ms, tiles, inputs, options, outputs, progress, on_tile):
    """Reads, sharpens and writes every tile.

    Args:
        inputs: (0-based MS band indices, bits, nodata) from :func:`check_inputs`.
        outputs: (sinks: output then aligned, encoder, preview or None).
    """
    (bands, bits, nodata), (sinks, encode, preview) = inputs, outputs
    scale = float(2 ** bits - 1)
    start, megapixels, pieces_done = time.time(), 0.0, 0

    def piece_done(pixels):
        nonlocal megapixels, pieces_done
        megapixels, pieces_done = megapixels + pixels / 1e6, pieces_done + 1
        progress.update(pieces_done, "%.3f MPix/s" % (megapixels / max(time.time() - start, 1e-9)))

    for done, (core, window) in enumerate(tiles, 1):
        ms_win = ms.read(window[0], window[1], window[2], window[3], bands)
        pan_win = pan.read(*(SCALE * v for v in window))
        results = sharpen_window(
            tile_model, np.nan_to_num(ms_win.astype(np.float32) / scale),
            np.nan_to_num(pan_win[..., 0].astype(np.float32) / scale), core, window,
            options.tail_tile, aligned=options.aligned_out is not None, on_piece=piece_done)
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


def print_summary(summary, stream=None):
    """Prints what :func:`pansharpen_scene` wrote."""
    stream = stream or sys.stdout
    stream.write("wrote %s: %.2f PAN megapixels in %d tiles, %.1f s (%.3f MPix/s), bits=%d%s\n"
                 % (", ".join(summary["outputs"]), summary["megapixels"], summary["tiles"],
                    summary["seconds"], summary["megapixels"] / max(summary["seconds"], 1e-9),
                    summary["bits"], "" if summary["nodata"] is None
                    else ", nodata=%g" % summary["nodata"]))
