"""Co-registration of a scene's PAN and MS from their georeferencing: the output grid.

Part of the scene tool, :mod:`sipsa_tf.scene` (docs/scenes.md, "Co-registration"); SIPSA-Net
(Lee, Seo, Kim, CVPR 2021) fuses an MS image whose pixels are exactly
:data:`~sipsa_tf.constants.SCALE` PAN pixels. The output grid is the PAN's: the MS is read onto
the grid of cells of ``SCALE`` x ``SCALE`` PAN pixels anchored at the PAN's origin. Where the
MS's own pixels are those cells (same pixel size, origin offset by whole MS pixels) it is read as
it is; otherwise GDAL's warper resamples it onto the cells (``--resampling``), window by window.

- Both files georeferenced (a geotransform): the rules of docs/scenes.md; refused, in one
  sentence, are a pixel-size ratio away from 4, different CRSs, rotated or sheared grids and
  extents that do not overlap. ``extent="intersection"`` keeps the whole cells that both cover;
  ``extent="pan"`` keeps every whole cell of the PAN and pads where the MS is missing with
  nodata.
- Sensor geometry only (RPCs or GCPs, no geotransform): refused, orthorectify first.
- Otherwise (a plain TIFF on either side): the pixel grids, the PAN exactly 4x the MS
  (:func:`sipsa_tf.io.pairs.check_sizes`), as for non-georeferenced pairs.
"""
import dataclasses
import math

import numpy as np

from sipsa_tf.constants import SCALE
from sipsa_tf.io import pairs

# Relative tolerance of "the same pixel size" and "a whole number of pixels" (GeoTIFFs store
# doubles; products round their pixel sizes in metadata to about 1e-9).
EXACT = 1e-7
# A pixel-size ratio within this fraction of SCALE is taken as SCALE (the MS is resampled onto
# cells of exactly SCALE PAN pixels; e.g. 4.0004 for rounded pixel sizes).
RATIO_TOLERANCE = 0.02
RESAMPLINGS = ("bilinear", "cubic")
EXTENTS = ("intersection", "pan")


@dataclasses.dataclass(frozen=True)
class Grid:
    """Where a scene's output lies and how its MS is read (a small picklable plan).

    Attributes:
        pan_path, ms_path: the inputs.
        row, col: the output's top-left PAN pixel in the PAN (multiples of ``SCALE``).
        height, width: the output in MS cells (the output is ``SCALE`` times larger).
        ms_row, ms_col: the MS pixel of cell (0, 0) when the MS is read as it is, else None.
        ms_transform: the cells' geotransform (6 GDAL numbers) when the MS is resampled, else
            None.
        resampling: "bilinear" or "cubic" (used only when resampling).
        crs_wkt: the PAN's CRS as WKT, or None.
        transform: the output's geotransform (6 GDAL numbers), or None when the PAN has none.
        whole_pan: True when the output is exactly the PAN's grid (its GeoTIFF tags are copied).
        note: one line saying what was cropped, padded or resampled, or None.
    """
    pan_path: str
    ms_path: str
    row: int
    col: int
    height: int
    width: int
    ms_row: int = None
    ms_col: int = None
    ms_transform: tuple = None
    resampling: str = "bilinear"
    crs_wkt: str = None
    transform: tuple = None
    whole_pan: bool = True
    note: str = None

    @property
    def resampled(self):
        """True when the MS is resampled onto the cells."""
        return self.ms_transform is not None

    @property
    def pan_size(self):
        """(rows, columns) of the output in PAN pixels."""
        return SCALE * self.height, SCALE * self.width


def _whole(value):
    """The integer ``value`` is, within :data:`EXACT`, or None."""
    nearest = round(value)
    return int(nearest) if abs(value - nearest) <= EXACT * max(1.0, abs(value)) else None


def _refuse(error, text):
    raise error(text)


def _pixel_grid(pan, ms, error):
    pairs.check_sizes(pan.path, (pan.height, pan.width), ms.path, (ms.height, ms.width),
                      error=error)
    return Grid(pan.path, ms.path, 0, 0, ms.height, ms.width, ms_row=0, ms_col=0,
                transform=None if pan.transform.is_identity else tuple(pan.transform.to_gdal()),
                crs_wkt=pan.crs.to_wkt() if pan.crs else None)


def _check_georeferencing(pan, ms, error):
    """Refusals of a georeferenced pair (one sentence each); returns the (x, y) size ratios."""
    for r in (pan, ms):
        if r.transform.b or r.transform.d:
            _refuse(error, "%s: its grid is rotated or sheared (geotransform %s); resample it "
                    "to a north-up grid first, e.g. gdalwarp" % (
                        r.path, ", ".join("%g" % v for v in r.transform.to_gdal())))
    if (pan.crs is None) != (ms.crs is None) or (pan.crs and pan.crs != ms.crs):
        name = lambda r: r.crs.to_string() if r.crs else "none"  # noqa: E731
        _refuse(error, "%s and %s are in different coordinate systems (%s and %s); reproject "
                "the MS onto the PAN's first, e.g. gdalwarp -t_srs" % (
                    pan.path, ms.path, name(pan), name(ms)))
    rx, ry = ms.transform.a / pan.transform.a, ms.transform.e / pan.transform.e
    if rx <= 0 or ry <= 0:
        _refuse(error, "%s and %s have grids that run in opposite directions (pixel sizes "
                "%g x %g and %g x %g); flip one first, e.g. gdalwarp" % (
                    pan.path, ms.path, pan.transform.a, pan.transform.e, ms.transform.a,
                    ms.transform.e))
    if max(abs(rx / SCALE - 1), abs(ry / SCALE - 1)) > RATIO_TOLERANCE:
        found = ("%.2fx" % rx if abs(rx - ry) < 0.005 else "%.2fx (columns) and %.2fx (rows)"
                 % (rx, ry))
        _refuse(error, "%s: MS pixel is %s the PAN's (%s); SIPSA-Net needs %dx" % (
            ms.path, found, pan.path, SCALE))
    return rx, ry


def _axis(n_pan, ms_lo, ms_hi, extent):
    """Cells [c0, c1) kept along one axis, and (PAN pixels cropped before, after; cells padded
    before, after).

    Args:
        n_pan: PAN pixels along the axis.
        ms_lo, ms_hi: the MS's extent along the axis in cells (from the PAN's origin).
        extent: "intersection" or "pan".
    """
    cells = n_pan // SCALE
    if extent == "pan":
        c0, c1 = 0, cells
    else:
        c0 = max(0, math.ceil(ms_lo - EXACT))
        c1 = min(cells, math.floor(ms_hi + EXACT))
    pad = (max(0, min(c1, math.ceil(ms_lo - EXACT)) - c0),
           max(0, c1 - max(c0, math.floor(ms_hi + EXACT))))
    return (c0, c1), (SCALE * c0, n_pan - SCALE * c1), pad


def _note(pan, kept, crops, pads, resampled, resampling, extent):
    parts = []
    sides = (("top", "bottom"), ("left", "right"))
    cropped = ["%d %s" % (n, side) for pair, names in zip(crops, sides)
               for n, side in zip(pair, names) if n]
    padded = ["%d %s" % (n, side) for pair, names in zip(pads, sides)
              for n, side in zip(pair, names) if n]
    if cropped:
        parts.append("PAN pixels cropped: %s" % ", ".join(cropped))
    if padded:
        parts.append("MS pixels padded with nodata (no MS there): %s" % ", ".join(padded))
    if resampled:
        parts.append("MS resampled onto the PAN's grid (%s)" % resampling)
    if not parts:
        return None
    (r0, r1), (c0, c1) = kept
    return ("grid (--extent=%s): output is PAN rows %d-%d, columns %d-%d of %d x %d; %s"
            % (extent, SCALE * r0, SCALE * r1 - 1, SCALE * c0, SCALE * c1 - 1, pan.height,
               pan.width, "; ".join(parts)))


def plan(pan, ms, extent="intersection", resampling="bilinear", nodata=None, error=ValueError):
    """The output grid of a PAN/MS pair (open :class:`~sipsa_tf.io.raster.Raster` s).

    Args:
        pan, ms: the inputs.
        extent: "intersection" or "pan" (see the module docstring).
        resampling: "bilinear" or "cubic".
        nodata: the nodata value in use (padding needs one), or None.
        error: the exception class raised.

    Returns:
        :class:`Grid`.

    Raises:
        ``error``: one sentence naming the file(s) and the problem.
    """
    if extent not in EXTENTS:
        _refuse(error, "--extent must be %s, got %r" % (" or ".join(EXTENTS), extent))
    if resampling not in RESAMPLINGS:
        _refuse(error, "--resampling must be %s, got %r" % (" or ".join(RESAMPLINGS), resampling))
    for r in (pan, ms):
        if r.sensor_geometry:
            _refuse(error, "%s has %s sensor geometry but no geotransform; orthorectify first, "
                    "e.g. gdalwarp -rpc -to RPC_DEM=dem.tif (GCPs: gdalwarp -tps)"
                    % (r.path, "RPC" if r.sensor_geometry == "RPC" else "only GCP"))
    if not (pan.georeferenced and ms.georeferenced):
        return _pixel_grid(pan, ms, error)
    _check_georeferencing(pan, ms, error)
    p, m = pan.transform, ms.transform
    cell_x, cell_y = SCALE * p.a, SCALE * p.e
    # The MS's extent in cells from the PAN's origin.
    lo_x, lo_y = (m.c - p.c) / cell_x, (m.f - p.f) / cell_y
    hi_x, hi_y = lo_x + ms.width * m.a / cell_x, lo_y + ms.height * m.e / cell_y
    rows, crop_y, pad_y = _axis(pan.height, lo_y, hi_y, extent)
    cols, crop_x, pad_x = _axis(pan.width, lo_x, hi_x, extent)
    if (rows[1] <= rows[0] or cols[1] <= cols[0]
            or min(hi_y, pan.height / SCALE) <= max(lo_y, 0) + EXACT
            or min(hi_x, pan.width / SCALE) <= max(lo_x, 0) + EXACT):
        _refuse(error, "%s and %s do not overlap (MS extent %s, PAN extent %s in their CRS)" % (
            pan.path, ms.path, _bounds(ms), _bounds(pan)))
    if (any(pad_y) or any(pad_x)) and nodata is None:
        _refuse(error, "%s does not cover all of %s (--extent=pan pads %s MS pixels); padding "
                "needs a nodata value: give --nodata, or use --extent=intersection" % (
                    ms.path, pan.path, "/".join(str(n) for n in pad_y + pad_x)))
    same_size = abs(cell_x / m.a - 1) <= EXACT and abs(cell_y / m.e - 1) <= EXACT
    # The MS pixel of cell (rows[0], cols[0]) when the cells are the MS's pixels.
    off_y, off_x = _whole(rows[0] - lo_y), _whole(cols[0] - lo_x)
    direct = same_size and off_y is not None and off_x is not None
    origin = (p.c + SCALE * cols[0] * p.a, p.f + SCALE * rows[0] * p.e)
    transform = (origin[0], p.a, 0.0, origin[1], 0.0, p.e)
    cells = (origin[0], cell_x, 0.0, origin[1], 0.0, cell_y)
    note = _note(pan, (rows, cols), (crop_y, crop_x), (pad_y, pad_x), not direct, resampling,
                 extent)
    return Grid(pan.path, ms.path, SCALE * rows[0], SCALE * cols[0], rows[1] - rows[0],
                cols[1] - cols[0], ms_row=off_y if direct else None,
                ms_col=off_x if direct else None, ms_transform=None if direct else cells,
                resampling=resampling, crs_wkt=pan.crs.to_wkt() if pan.crs else None,
                transform=transform,
                whole_pan=(rows[0], cols[0]) == (0, 0) and SCALE * rows[1] == pan.height
                and SCALE * cols[1] == pan.width, note=note)


def _bounds(r):
    left, top = r.transform * (0, 0)
    right, bottom = r.transform * (r.width, r.height)
    return "%.6g..%.6g x %.6g..%.6g" % (min(left, right), max(left, right), min(top, bottom),
                                      max(top, bottom))


class Sources:
    """The PAN and the MS of a scene read in output coordinates (:class:`Grid`).

    ``pan(y0, y1, x0, x1)`` reads PAN pixels of the output; ``ms(y0, y1, x0, x1, bands)`` reads
    MS cells (as the file's pixels, padded with ``fill`` outside the file, or resampled by GDAL's
    warper with ``fill`` as the nodata of both sides); ``valid(...)`` is the per-dataset masks'
    verdict on PAN pixels, or None. Open with :func:`open_sources`.

    Args:
        grid: the scene's :class:`Grid`.
        pan, ms: the open :class:`~sipsa_tf.io.raster.Raster` s (closed by :meth:`close`).
        fill: the nodata value, or None.
    """

    def __init__(self, grid, pan, ms, fill):
        self.grid, self._pan, self._ms, self._fill = grid, pan, ms, fill

    def pan(self, y0, y1, x0, x1):
        """PAN pixels [y0, y1) x [x0, x1) of the output, (h, w, 1)."""
        g = self.grid
        return self._pan.read(y0 + g.row, y1 + g.row, x0 + g.col, x1 + g.col, [0])

    def ms(self, y0, y1, x0, x1, bands):
        """MS cells [y0, y1) x [x0, x1) of the output, (h, w, len(bands)), the file's type."""
        if self.grid.resampled:
            return _warp(self.grid, self._ms, (y0, y1, x0, x1), bands, self._fill)
        g, ms = self.grid, self._ms
        a0, a1 = y0 + g.ms_row, y1 + g.ms_row
        b0, b1 = x0 + g.ms_col, x1 + g.ms_col
        c0, c1 = max(a0, 0), min(a1, ms.height)
        d0, d1 = max(b0, 0), min(b1, ms.width)
        if (c0, c1, d0, d1) == (a0, a1, b0, b1):
            return ms.read(a0, a1, b0, b1, bands)
        out = np.full((y1 - y0, x1 - x0, len(bands)), self._fill, ms.dtype)
        if c0 < c1 and d0 < d1:
            out[c0 - a0:c1 - a0, d0 - b0:d1 - b0] = ms.read(c0, c1, d0, d1, bands)
        return out

    def valid(self, y0, y1, x0, x1):
        """(h, w) bool of PAN pixels [y0, y1) x [x0, x1) that the inputs' per-dataset masks
        leave valid, or None when neither input has one (MS masks are read cell by cell on the
        MS's own pixels, or warped with the MS)."""
        g = self.grid
        valid = self._pan.read_valid(y0 + g.row, y1 + g.row, x0 + g.col, x1 + g.col)
        if self._ms.masked and not g.resampled:  # resampled: the warper uses valid pixels only
            cy0, cy1, cx0, cx1 = (y0 // SCALE, -(-y1 // SCALE), x0 // SCALE, -(-x1 // SCALE))
            cells = self._ms_cells_valid(cy0, cy1, cx0, cx1)
            up = np.repeat(np.repeat(cells, SCALE, 0), SCALE, 1)
            up = up[y0 - SCALE * cy0:y1 - SCALE * cy0, x0 - SCALE * cx0:x1 - SCALE * cx0]
            valid = up if valid is None else valid & up
        return valid

    def _ms_cells_valid(self, y0, y1, x0, x1):
        g, ms = self.grid, self._ms
        a0, b0 = y0 + g.ms_row, x0 + g.ms_col
        out = np.zeros((y1 - y0, x1 - x0), bool)
        c0, c1 = max(a0, 0), min(a0 + y1 - y0, ms.height)
        d0, d1 = max(b0, 0), min(b0 + x1 - x0, ms.width)
        if c0 < c1 and d0 < d1:
            out[c0 - a0:c1 - a0, d0 - b0:d1 - b0] = ms.read_valid(c0, c1, d0, d1)
        return out

    def close(self):
        for r in (self._pan, self._ms):
            r.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def _warp(grid, ms, box, bands, fill):
    """MS cells ``box`` = (y0, y1, x0, x1) of ``grid`` resampled by GDAL's warper from the MS
    file (only the source window it needs is read), as (h, w, len(bands)).

    The warper computes each cell from the source alone, so a window's cells equal the same
    cells of a whole-grid warp, and gdalwarp's on that grid (tests/test_scene_products.py).
    """
    import rasterio
    import rasterio.warp
    from affine import Affine
    from rasterio.crs import CRS
    from rasterio.enums import Resampling
    from sipsa_tf.io.raster import RasterError, quiet_gdal, _first_line
    y0, y1, x0, x1 = box
    # Without a CRS on either side (checked equal), any CRS given to both makes no reprojection.
    crs = CRS.from_wkt(grid.crs_wkt) if grid.crs_wkt else CRS.from_epsg(3857)
    out = np.full((len(bands), y1 - y0, x1 - x0), 0 if fill is None else fill, ms.dtype)
    with quiet_gdal():
        try:
            rasterio.warp.reproject(
                rasterio.band(ms.dataset, [b + 1 for b in bands]), out, src_crs=ms.crs or crs,
                dst_transform=Affine.from_gdal(*grid.ms_transform) @ Affine.translation(x0, y0),
                dst_crs=crs, resampling=getattr(Resampling, grid.resampling),
                src_nodata=fill, dst_nodata=fill)
        except rasterio.errors.RasterioError as err:
            raise RasterError("%s: cannot resample MS pixels %d-%d, %d-%d (%s)"
                              % (ms.path, y0, y1, x0, x1, _first_line(err)))
    return np.moveaxis(out, 0, -1)


def open_sources(grid, fill=None):
    """Opens the inputs of ``grid`` for reading in output coordinates (:class:`Sources`).

    Args:
        grid: the scene's :class:`Grid`.
        fill: the nodata value (padding, and the warper's nodata), or None.
    """
    from sipsa_tf.io.raster import Raster
    pan = Raster(grid.pan_path)
    try:
        ms = Raster(grid.ms_path)
    except BaseException:
        pan.close()
        raise
    return Sources(grid, pan, ms, fill)
