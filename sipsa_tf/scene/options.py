"""Options of the scene tool and the checks of its inputs (before TensorFlow is loaded).

Part of the scene tool, :mod:`sipsa_tf.scene` (docs/design.md, "Package layout").
"""
import collections
import dataclasses
import os
import sys

import numpy as np

from sipsa_tf.constants import MS_BANDS, SCALE
from sipsa_tf.core import precision as precisions
from sipsa_tf.errors import UserError
from sipsa_tf.io import geotiff, mat as mat_io, pairs
from sipsa_tf.scene import grid as grids


# TensorFlow (and the modules that build graphs) is imported by TileModel only, so that bad input
# is reported without loading it.
MIN_MS_SIZE = 5  # model.MIN_MS_SIZE (tests/test_scene.py checks they agree)

# Receptive field of one output pixel on each side: 123 PAN pixels measured by perturbing single
# input pixels (tests/test_scene.py), rounded up to whole MS pixels.
RECEPTIVE_FIELD_MS = 31

DEFAULT_HALO_MS = 32

DEFAULT_TILE = 2048

DEFAULT_TAIL_TILE = 768

SCAN_ROWS = 1024



class SceneError(UserError):
    """Inputs or options that cannot be processed; the message is one sentence."""



@dataclasses.dataclass
class SceneOptions:
    """Options of :func:`pansharpen_scene` (the command line flags of ``sipsa-pansharpen``).

    Attributes:
        bands: three 1-based MS band numbers fed to the network as its 3 MS bands, in order
            (R, G, B). None: from the MS band count (:func:`default_bands`).
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
        precision: "float32" (default), "bfloat16" or "float16": the dtype of the network's
            convolutions (:mod:`sipsa_tf.core.precision`).
        extent: "intersection" (the whole MS cells both inputs cover) or "pan" (every whole MS
            cell of the PAN, padded with nodata where the MS is missing); georeferenced pairs
            only (:mod:`sipsa_tf.scene.grid`).
        resampling: "bilinear" or "cubic": how the MS is resampled onto the PAN's grid where
            the grids do not coincide.
        cog: write the output (and aligned MS) as Cloud-Optimised GeoTIFFs with averaged
            internal overviews instead of tiled GeoTIFFs.
        cog_blocksize: the COG's tile size in pixels.
        cog_compress: the COG's compression, one of :data:`sipsa_tf.io.geotiff.COG_COMPRESSIONS`.
    """
    bands: tuple = None
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
    precision: str = precisions.FLOAT32
    extent: str = "intersection"
    resampling: str = "bilinear"
    cog: bool = False
    cog_blocksize: int = geotiff.COG_BLOCKSIZE
    cog_compress: str = "deflate"

    def outputs(self, out_path):
        """The files a scene with output ``out_path`` writes: it, then the aligned MS and the
        preview where asked for."""
        return [p for p in (out_path, self.aligned_out, self.preview) if p]

    def validate(self):
        """Raises SceneError for option values that cannot work."""
        precisions.check_name(self.precision)
        if self.bands is not None and len(self.bands) != MS_BANDS:
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
        for name, value, allowed in (("extent", self.extent, grids.EXTENTS),
                                     ("resampling", self.resampling, grids.RESAMPLINGS),
                                     ("cog_compress", self.cog_compress,
                                      geotiff.COG_COMPRESSIONS)):
            if value not in allowed:
                raise SceneError("--%s must be %s, got %r" % (name, " or ".join(allowed), value))
        if self.cog_blocksize % 16 or not 64 <= self.cog_blocksize <= 4096:
            raise SceneError("--cog_blocksize must be a multiple of 16 from 64 to 4096, got %d"
                             % self.cog_blocksize)



def parse_bands(text):
    """'5,3,2' -> (5, 3, 2) (:func:`sipsa_tf.io.pairs.parse_bands`); raises SceneError."""
    return pairs.parse_bands(text, what="--bands", error=SceneError)



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



def default_bands(path, n_bands):
    """The MS bands (1-based R, G, B) used when ``--bands`` is not given.

    3 bands: 1,2,3. 4 and 8 bands: the usual order of those sensors (4: B, G, R, NIR as
    QuickBird, IKONOS, GeoEye-1, WorldView-4 -> 3,2,1; 8: WorldView-2/3 -> 5,3,2; the rule of
    :data:`sipsa_tf.io.mat.DEFAULT_RGB_BANDS`, also used for the ``.mat`` files), with a one-line
    warning (:func:`warn_default_bands`) naming them and ``--bands``: running is more useful than a
    refusal for the common sensors, and the line says what was assumed. Any other count is
    refused, since no usual order exists.

    Raises:
        SceneError: neither 3, 4 nor 8 bands.
    """
    if n_bands == MS_BANDS:
        return (1, 2, 3)
    if n_bands not in mat_io.DEFAULT_RGB_BANDS:
        raise SceneError("%s has %d bands: say which are R,G,B with --bands (1-based, e.g. "
                         "--bands=5,3,2 for 8-band WorldView-2/3)" % (path, n_bands))
    return mat_io.DEFAULT_RGB_BANDS[n_bands]


def warn_default_bands(path, n_bands, bands, stream=None):
    """The one-line warning of :func:`default_bands` for more than 3 bands (once the inputs
    passed every check, so that a refused pair gets its error line only)."""
    if n_bands != MS_BANDS:
        print("warning: %s has %d bands and no --bands was given: using bands %s as R,G,B (the "
              "usual order of %d-band sensors); pass --bands to choose others"
              % (path, n_bands, ",".join(map(str, bands)), n_bands), file=stream or sys.stderr)


# What check_inputs found: 0-based MS band indices, bits, nodata (or None), the output grid
# (sipsa_tf.scene.grid.Grid) and the inputs' data type.
Inputs = collections.namedtuple("Inputs", "bands bits nodata grid dtype")


def _nbits(raster, bands):
    """GDAL's NBITS of the bands (a list), if every one of them has it, else None."""
    found = [raster.nbits[b] for b in bands]
    return max(found) if all(found) else None


def check_inputs(pan, ms, options):
    """Checks a PAN/MS pair (open :class:`~sipsa_tf.io.raster.Raster` s) against the options.

    Returns:
        :data:`Inputs`.

    Raises:
        SceneError: one sentence naming the file and the problem.
    """
    if pan.bands != 1:
        raise SceneError("%s: the PAN must have one band, found %d" % (pan.path, pan.bands))
    if ms.bands < MS_BANDS:
        raise SceneError("%s: the MS must have at least 3 bands, found %d" % (ms.path, ms.bands))
    chosen = options.bands if options.bands is not None else default_bands(ms.path, ms.bands)
    for band in chosen:
        if not 1 <= band <= ms.bands:
            raise SceneError("%s: --bands %d is out of range; the file has %d bands (1 to %d)"
                             % (ms.path, band, ms.bands, ms.bands))
    if pan.dtype != ms.dtype:
        raise SceneError("%s and %s have different data types (%s and %s)"
                         % (pan.path, ms.path, pan.dtype, ms.dtype))
    bands = [b - 1 for b in chosen]
    nodata = options.nodata if options.nodata is not None else pan.nodata
    if nodata is not None and pan.dtype.kind in "ui":
        info = np.iinfo(pan.dtype)
        if not (info.min <= nodata <= info.max and float(nodata).is_integer()):
            raise SceneError("%s: nodata %g is not a value of its type %s"
                             % (pan.path, nodata, pan.dtype))
    masked = [r.path for r in (pan, ms) if r.masked]
    if masked and nodata is None:
        raise SceneError("%s has a mask of invalid pixels but no nodata value marks them in the "
                         "output: give --nodata" % masked[0])
    grid = grids.plan(pan, ms, options.extent, options.resampling, nodata, error=SceneError)
    if min(grid.height, grid.width) < MIN_MS_SIZE:
        raise SceneError("%s is %d x %d%s; the smallest MS supported is %d x %d pixels"
                         % (ms.path, grid.height, grid.width,
                            "" if grid.ms_row == 0 and grid.ms_col == 0 and grid.whole_pan
                            else " on the output grid", MIN_MS_SIZE, MIN_MS_SIZE))
    bits = options.bits
    if not bits:
        if pan.dtype == np.float32:
            raise SceneError("%s: float32 data needs --bits (values are DN / (2^bits - 1))"
                             % pan.path)
        nbits = (_nbits(pan, [0]), _nbits(ms, bands))
        if all(nbits):
            bits = max(nbits)
        else:
            peak = max(_scan_max(pan, [0], nodata), _scan_max(ms, bands, nodata, SCALE))
            bits = _auto_bits(pan.dtype, peak)
    elif pan.dtype != np.float32 and bits > 8 * pan.dtype.itemsize:
        raise SceneError("%s: --bits %d does not fit its data type %s"
                         % (pan.path, bits, pan.dtype))
    if options.bands is None:
        warn_default_bands(ms.path, ms.bands, chosen)
    return Inputs(bands, bits, nodata, grid, pan.dtype)



def _check_outputs(paths, inputs):
    for path in paths:
        directory = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(directory):
            raise SceneError("%s: the output directory %s does not exist" % (path, directory))
        if any(os.path.abspath(path) == os.path.abspath(p) for p in inputs):
            raise SceneError("%s: an output would overwrite an input" % path)
    if len(set(os.path.abspath(p) for p in paths)) != len(paths):
        raise SceneError("the output paths must differ: %s" % ", ".join(paths))
