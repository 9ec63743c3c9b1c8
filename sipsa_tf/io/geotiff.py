"""GeoTIFF and Cloud-Optimised GeoTIFF output of scene-scale pan-sharpening, tile by tile.

Reference: Lee, Seo, Kim, "Shift-Invariant Pan Sharpening with Moving Object Alignment for
Satellite Imagery", CVPR 2021. SIPSA-Net itself needs only pixels; this module writes scene-sized
rasters without holding a whole scene in memory (the inputs are read by
:mod:`sipsa_tf.io.raster`, through GDAL; docs/scenes.md):

- :class:`TiffSink` writes a tiled, deflate-compressed (Geo)TIFF from tiles given in row-major
  order, in a background thread, into a temporary file that :meth:`TiffSink.commit` renames into
  place; :meth:`TiffSink.abort` removes it. Optionally GDAL then sets its georeferencing and turns
  it into a COG (internal overviews, averaged), still before the rename.
- The GeoTIFF georeferencing tags (ModelPixelScale, ModelTiepoint, ModelTransformation,
  GeoKeyDirectory, GeoDoubleParams, GeoAsciiParams) of a GeoTIFF PAN and GDAL_NODATA are carried
  over verbatim when the output is the PAN's whole grid.
"""
import os
import queue
import threading

import numpy as np
import tifffile

from sipsa_tf.io.raster import RasterError  # noqa: F401 (re-exported: errors of the inputs)
from sipsa_tf.utils import files

# GeoTIFF georeferencing tags, copied from the PAN to every output.
GEO_TAGS = {
    33550: "ModelPixelScale",
    33922: "ModelTiepoint",
    34264: "ModelTransformation",
    34735: "GeoKeyDirectory",
    34736: "GeoDoubleParams",
    34737: "GeoAsciiParams",
}
NODATA_TAG = 42113  # GDAL_NODATA, ASCII
BIGTIFF_BYTES = 2 << 30
DEFLATE_LEVEL = 1  # of the output (see TiffSink)
# COG output: GDAL COG driver compressions offered, and the default block (tile) size
COG_COMPRESSIONS = ("deflate", "zstd", "lzw", "none")
COG_BLOCKSIZE = 512


def read_geo_tags(path):
    """The GeoTIFF georeferencing tags of the first image of a TIFF, as a list of
    ``(code, datatype, count, value)``; [] for a file tifffile cannot read (JPEG 2000, NITF, a
    VRT, ...), whose georeferencing GDAL writes instead (:class:`TiffSink`'s ``georeference``)."""
    try:
        with tifffile.TiffFile(path) as tif:
            tags = tif.pages.first.tags
            return [(code, int(tags[code].dtype), tags[code].count, tags[code].value)
                    for code in GEO_TAGS if code in tags]
    except Exception:  # not a TIFF: tifffile raises many types
        return []


def _first_line(err):
    text = str(err).strip().split("\n")[0] or type(err).__name__
    return text


def extratags(geo_tags, nodata=None):
    """tifffile ``extratags`` carrying the GeoTIFF tags and, if given, GDAL_NODATA."""
    tags = [(code, datatype, count, value, True) for code, datatype, count, value in geo_tags]
    if nodata is not None:
        text = ("%d" % nodata) if float(nodata).is_integer() else repr(float(nodata))
        tags.append((NODATA_TAG, 2, 0, text, True))
    return tags


temporary_path = files.temporary_path  # re-exported; the one home is sipsa_tf.utils.files


class _Abort(Exception):
    """Raised inside the writer thread's tile iterator to stop writing."""


class TiffSink:
    """Writes a tiled, deflate-compressed (Geo)TIFF tile by tile, atomically.

    Deflate level :data:`DEFLATE_LEVEL`, with horizontal differencing (TIFF predictor 2) for
    integer types: on Landsat 8 PAN data, 2x faster than deflate's default level without a
    predictor, and a smaller file (72% of raw instead of 79%). float32 output has no predictor
    (tifffile's floating-point predictor needs the optional ``imagecodecs`` package).

    Tiles are ``put`` in row-major order of a grid of ``tile`` pixels (edge tiles may be
    smaller). A background thread encodes and writes them to a temporary file beside ``path``;
    at most ``depth`` tiles wait in memory. :meth:`commit` renames the file to ``path``;
    :meth:`abort` (or any failure) deletes it.

    Args:
        path: final output path.
        shape: (height, width, bands) of the image.
        dtype: NumPy dtype written.
        tile: tile side in pixels, or (height, width); multiples of 16.
        extratags: tifffile extratags (see :func:`extratags`).
        depth: queue length.
        georeference: None, or (CRS as WKT or None, GDAL geotransform of 6 numbers) that GDAL
            writes into the file once the tiles are written (when there are no tags to copy).
        cog: None, or (block size, compression of :data:`COG_COMPRESSIONS`): once written (and
            georeferenced), the file is copied by GDAL's COG driver into a Cloud-Optimised
            GeoTIFF with averaged internal overviews (same pixels, nodata and georeferencing),
            which :meth:`commit` renames into place instead.
    """

    def __init__(self, path, shape, dtype, tile, extratags=(), depth=2, georeference=None,
                 cog=None):
        self.path = path
        self._georeference, self._cog = georeference, cog
        self._tmp = temporary_path(path)
        self._queue = queue.Queue(maxsize=depth)
        self._error = None
        nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
        photometric = "rgb" if shape[-1] == 3 else "minisblack"
        tile = (tile, tile) if np.isscalar(tile) else tuple(tile)
        kwargs = dict(shape=tuple(shape), dtype=np.dtype(dtype), tile=tile,
                      compression="zlib", compressionargs={"level": DEFLATE_LEVEL},
                      predictor=bool(np.issubdtype(dtype, np.integer)),
                      photometric=photometric, planarconfig="contig",
                      extratags=list(extratags), metadata=None, bigtiff=nbytes > BIGTIFF_BYTES)
        self._thread = threading.Thread(target=self._write, args=(kwargs,), daemon=True)
        self._thread.start()

    def _tiles(self):
        while True:
            item = self._queue.get()
            if item is None:
                return
            if item is _Abort:
                raise _Abort()
            yield item

    def _write(self, kwargs):
        try:
            tifffile.imwrite(self._tmp, self._tiles(), **kwargs)
        except BaseException as err:  # reported to the main thread by put/commit
            self._error = err

    def _put(self, item):
        while True:
            if not self._thread.is_alive():
                return False
            try:
                self._queue.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue

    def _check(self):
        if self._error is not None and not isinstance(self._error, _Abort):
            raise OSError("%s: writing failed (%s)" % (self.path, _first_line(self._error)))

    def put(self, tile):
        """Queues the next tile, (h, w, bands) of the sink's dtype."""
        self._check()
        if not self._put(tile):
            self._check()
            raise OSError("%s: the writer stopped early" % self.path)

    def finish(self):
        """Waits until every tile is written to the temporary file (then georeferences it and
        makes the COG, where asked)."""
        self._put(None)
        self._thread.join()
        self._check()
        if self._georeference is not None:
            set_georeference(self._tmp, *self._georeference, name=self.path)
        if self._cog is not None:
            cog = temporary_path(self.path)
            try:
                write_cog(self._tmp, cog, *self._cog, name=self.path)
            except BaseException:
                files.remove(cog)
                raise
            files.remove(self._tmp)
            self._tmp = cog

    def commit(self):
        """Renames the finished temporary file to ``path``."""
        os.replace(self._tmp, self.path)
        self._tmp = None

    def abort(self):
        """Stops the writer and deletes the temporary file (safe to call more than once)."""
        if self._thread.is_alive():
            self._put(_Abort)
            self._thread.join()
        files.remove(self._tmp)
        self._tmp = None


def set_georeference(path, crs_wkt, transform, name=None):
    """Sets the CRS (WKT, or None for none) and GDAL geotransform of a GeoTIFF in place.

    Raises:
        OSError: naming ``name`` (default ``path``) when GDAL cannot.
    """
    from affine import Affine
    from sipsa_tf.io.raster import quiet_gdal
    with quiet_gdal() as rasterio:
        try:
            with rasterio.open(path, "r+") as dst:
                if crs_wkt:
                    dst.crs = rasterio.crs.CRS.from_wkt(crs_wkt)
                dst.transform = Affine.from_gdal(*transform)
        except rasterio.errors.RasterioError as err:
            raise OSError("%s: setting the georeferencing failed (%s)"
                          % (name or path, _first_line(err)))


def cog_options(blocksize=COG_BLOCKSIZE, compress="deflate"):
    """GDAL COG driver creation options: ``blocksize`` tiles, ``compress``ion (with the
    predictor where it compresses), averaged overviews, BigTIFF where needed."""
    options = dict(BLOCKSIZE=int(blocksize), COMPRESS=compress.upper(),
                   OVERVIEW_RESAMPLING="AVERAGE", RESAMPLING="AVERAGE", BIGTIFF="IF_SAFER",
                   NUM_THREADS="ALL_CPUS")
    if compress in ("deflate", "zstd", "lzw"):
        options["PREDICTOR"] = "YES"
    return options


def write_cog(source, target, blocksize=COG_BLOCKSIZE, compress="deflate", name=None):
    """Copies the GeoTIFF ``source`` into a Cloud-Optimised GeoTIFF ``target`` (GDAL's COG
    driver, :func:`cog_options`).

    Raises:
        OSError: naming ``name`` (default ``target``) when GDAL fails (e.g. the disk is full).
    """
    from sipsa_tf.io.raster import quiet_gdal
    with quiet_gdal() as rasterio:
        import rasterio.shutil
        try:
            rasterio.shutil.copy(source, target, driver="COG", **cog_options(blocksize, compress))
        except rasterio.errors.RasterioError as err:
            raise OSError("%s: writing the COG failed (%s)" % (name or target, _first_line(err)))
