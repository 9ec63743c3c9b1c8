"""Windowed reading of scene rasters through GDAL (rasterio), in any format GDAL opens.

Reference: Lee, Seo, Kim, "Shift-Invariant Pan Sharpening with Moving Object Alignment for
Satellite Imagery", CVPR 2021. SIPSA-Net needs only pixels; this module reads the PAN and MS of a
scene window by window (GeoTIFF, COG, JPEG 2000, NITF, DIMAP, .TIL, VRT, ...: every driver of the
GDAL that the rasterio wheel bundles), with their georeferencing, nodata, per-dataset masks and
GDAL's NBITS metadata (docs/scenes.md). Memory is bounded by the window and GDAL's block cache,
never by the scene.
"""
import contextlib
import logging
import os
import warnings

import numpy as np

from sipsa_tf.errors import UserError

SUPPORTED_DTYPES = ("uint8", "uint16", "int16", "float32")

# A MATLAB .mat file (the GRIP-UNINA examples) starts with this text; such a file is converted to
# TIFFs first, and the error says how.
MAT_MAGIC = b"MATLAB"
MAT_HINT = ("%s: a MATLAB .mat file, not a TIFF; convert it first: python -m sipsa_tf.convert_mat "
            "--out_dir=<folder> --layout=flat <file>.mat (writes <name>_ms.tif and <name>_pan.tif)")


class RasterError(UserError):
    """An input raster that cannot be used; the message names the file and the problem."""


@contextlib.contextmanager
def quiet_gdal():
    """GDAL's own messages held back (rasterio raises them as exceptions, which are reported in
    one line) and rasterio's warning that a plain TIFF has no georeferencing (expected: such
    pairs are matched by pixel grid)."""
    import rasterio
    logger = logging.getLogger("rasterio")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
            with rasterio.Env(CPL_LOG="/dev/null"):
                yield rasterio
    finally:
        logger.setLevel(level)


def _first_line(err):
    return str(err).strip().split("\n")[0] or type(err).__name__


def _kind(path):
    return "TIFF" if path.lower().endswith((".tif", ".tiff")) else "raster"


class Raster:
    """Windowed reader of a raster GDAL opens.

    Args:
        path: the file (or a GDAL connection string such as a VRT or .TIL mosaic).

    Attributes:
        path: as given.
        height, width, bands: size; ``bands`` is GDAL's band count.
        dtype: NumPy dtype, one of :data:`SUPPORTED_DTYPES` (the same for every band).
        nodata: band 1's nodata value as a float, or None.
        transform: GDAL's geotransform as an ``affine.Affine`` (identity when there is none).
        crs: the coordinate reference system (``rasterio.crs.CRS``) or None.
        georeferenced: True when the file has a geotransform (not GCPs or RPCs alone).
        sensor_geometry: "RPC" or "GCP" when the file has only sensor geometry, else None.
        nbits: GDAL's NBITS of each band (``IMAGE_STRUCTURE`` metadata), None where absent.
        masked: True when band 1 has a per-dataset mask (not a nodata value or alpha band).
        driver: GDAL's driver name.

    Raises:
        RasterError: missing, empty or unreadable file, or an unsupported data type.
    """

    def __init__(self, path):
        self.path = path
        self._src = None
        if not os.path.exists(path):
            raise RasterError("%s: no such file" % path)
        if os.path.isfile(path) and os.path.getsize(path) == 0:
            raise RasterError("%s: empty file (0 bytes)" % path)
        if os.path.isfile(path):
            with open(path, "rb") as f:
                if f.read(len(MAT_MAGIC)) == MAT_MAGIC:
                    raise RasterError(MAT_HINT % path)
        with quiet_gdal() as rasterio:
            try:
                self._src = rasterio.open(path)
            except Exception as err:  # RasterioIOError and what GDAL's drivers raise
                raise RasterError("%s: not a readable %s (%s)"
                                  % (path, _kind(path), _first_line(err)))
            try:
                self._init(rasterio)
            except Exception:
                self.close()
                raise

    def _init(self, rasterio):
        src = self._src
        self.driver = src.driver
        self.height, self.width, self.bands = src.height, src.width, src.count
        if self.bands == 0 or self.height == 0 or self.width == 0:
            raise RasterError("%s: image has no pixels (%d x %d, %d bands)"
                              % (self.path, self.height, self.width, self.bands))
        dtypes = sorted(set(src.dtypes))
        if len(dtypes) != 1 or dtypes[0] not in SUPPORTED_DTYPES:
            raise RasterError("%s: unsupported data type %s (supported: %s)"
                              % (self.path, "/".join(dtypes), ", ".join(SUPPORTED_DTYPES)))
        self.dtype = np.dtype(dtypes[0])
        self.nodata = None if src.nodata is None else float(src.nodata)
        self.crs = src.crs
        self.transform = src.transform
        gcps, _ = src.gcps
        self.georeferenced = not src.transform.is_identity or (
            src.crs is not None and not gcps and not src.rpcs)
        self.sensor_geometry = None
        if not self.georeferenced:
            self.sensor_geometry = "RPC" if src.rpcs else ("GCP" if gcps else None)
        self.nbits = []
        for band in range(1, self.bands + 1):
            value = src.tags(band, ns="IMAGE_STRUCTURE").get("NBITS")
            self.nbits.append(int(value) if value and value.isdigit() else None)
        flags = src.mask_flag_enums[0]
        self.masked = rasterio.enums.MaskFlags.per_dataset in flags and not (
            rasterio.enums.MaskFlags.nodata in flags or rasterio.enums.MaskFlags.alpha in flags)

    @property
    def shape(self):
        """(height, width, bands)."""
        return self.height, self.width, self.bands

    def _window(self, y0, y1, x0, x1):
        from rasterio.windows import Window
        return Window(x0, y0, x1 - x0, y1 - y0)

    def read(self, y0, y1, x0, x1, bands=None):
        """Reads rows [y0, y1) x columns [x0, x1) (inside the image).

        Args:
            y0, y1, x0, x1: the window.
            bands: 0-based band indices (default: all).

        Returns:
            (y1 - y0, x1 - x0, len(bands)) array of the file's dtype.
        """
        bands = list(range(self.bands)) if bands is None else list(bands)
        with quiet_gdal():
            try:
                data = self._src.read([b + 1 for b in bands], window=self._window(y0, y1, x0, x1))
            except Exception as err:
                raise RasterError("%s: cannot read rows %d-%d, columns %d-%d (%s)"
                                  % (self.path, y0, y1, x0, x1, _first_line(err)))
        return np.moveaxis(data, 0, -1)

    def read_valid(self, y0, y1, x0, x1):
        """The per-dataset mask of a window as (y1 - y0, x1 - x0) bool (True: valid), or None
        when the file has no such mask (:attr:`masked`)."""
        if not self.masked:
            return None
        with quiet_gdal():
            try:
                mask = self._src.read_masks(1, window=self._window(y0, y1, x0, x1))
            except Exception as err:
                raise RasterError("%s: cannot read the mask (%s)" % (self.path, _first_line(err)))
        return mask > 0

    def row_bands(self, rows):
        """Yields (y0, y1) row ranges of about ``rows`` rows covering the image (for scans)."""
        for y0 in range(0, self.height, rows):
            yield y0, min(self.height, y0 + rows)

    @property
    def dataset(self):
        """The open ``rasterio`` dataset (for warping)."""
        return self._src

    def close(self):
        """Closes the file."""
        if self._src is not None:
            self._src.close()
            self._src = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
