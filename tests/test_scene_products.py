"""Real-product inputs of the scene tool (docs/scenes.md): formats GDAL opens, co-registration
from georeferencing, refusals, COG output.

The fixtures are made here by GDAL's command-line tools (gdal_translate, gdalbuildvrt, gdalwarp;
installed by .ci/run) from small random rasters: a georeferenced GeoTIFF pair (PAN 2 m, MS 8 m,
UTM 33N), the same pair as JPEG 2000 (lossless), as NITF and with the PAN as a VRT mosaic of 4
GeoTIFF tiles; a half-MS-pixel origin offset; sizes off 4:1 as in a WorldView pair (PAN 27511 x
26068 against MS 6877 x 6516: 3 and 4 PAN pixels beyond 4x the MS); an MS beyond the PAN on two
sides; and the refused pairs (different CRSs, RPCs only, pixel ratio 2, disjoint extents, rotated
grids, padding without nodata). Where the grids coincide the output must equal, bit for bit, the
output of the same pixels as a plain (non-georeferenced) TIFF pair, which is read by pixel grid
as before. Where the MS is resampled, the MS read onto the grid must equal what gdalwarp makes of
it on the same grid (within 1e-5 of the data range), and the output what the whole-image network
makes of that. COG outputs are checked with GDAL's validate_cloud_optimized_geotiff.py (from
python3-gdal, which gdal-bin installs) and gdalinfo. The refusals run the command line with a
``tensorflow`` module that fails to import ahead on the path: each must be one line, exit status
1, before TensorFlow loads.

Origins are at 499999, 4000001 (m) so that the pixel centres of the corners are whole metres:
NITF's IGEOLO stores them so.
"""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tifffile

from conftest import (REPO_ROOT, assert_one_line_error, geotiff_tags, require_executables,
                      require_shared, run_command, write_pair)
from sipsa_tf import scene
from sipsa_tf.inference import Pansharpener
from sipsa_tf.io import raster as rasters
from sipsa_tf.scene import grid as grids

H, W = 24, 28          # MS pixels of the base pair (PAN 96 x 112)
X0, Y0 = 499999.0, 4000001.0
PAN_PX, MS_PX = 2.0, 8.0
BANDS = (3, 1, 4)
# float32 output against the whole-image network: compiled and uncompiled FAMs differ by up to
# 1.4e-6 (test_scene.py, TILED_TOLERANCE); in [0, 1] units.
TOLERANCE = 5e-6
GDAL_ENV = {"GDAL_PAM_ENABLED": "NO"}  # no .aux.xml beside the fixtures: their own metadata


def _gdal(*args):
    tool, = require_executables(args[0])
    done = run_command([tool] + [str(a) for a in args[1:]], env=GDAL_ENV)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _ullr(x0, y0, px, h, w):
    return ["-a_ullr", x0, y0, x0 + w * px, y0 - h * px]


def _georef(folder, name, array, x0, y0, px, srs="EPSG:32633"):
    """``array`` as a GeoTIFF made by gdal_translate (plain TIFF in, -a_srs, -a_ullr)."""
    raw = os.path.join(folder, "raw_" + name + ".tif")
    tifffile.imwrite(raw, array, photometric="minisblack",
                     planarconfig="contig" if array.ndim == 3 else None)
    out = os.path.join(folder, name + ".tif")
    _gdal("gdal_translate", "-q", "-a_srs", srs, *_ullr(x0, y0, px, *array.shape[:2]), raw, out)
    os.remove(raw)
    return out


def _arrays(rng, h, w, dtype=np.uint16, high=2047):
    """Random MS and PAN DN from 1 to ``high`` (0 is left for nodata)."""
    ms = rng.random((h, w, 4))
    pan = np.kron(ms.mean(axis=2), np.ones((4, 4))) * 0.7 + 0.3 * rng.random((4 * h, 4 * w))
    return ((1 + ms * (high - 1)).astype(dtype), (1 + pan * (high - 1)).astype(dtype))


@pytest.fixture(scope="module")
def nets(random_checkpoint):
    """The scene tool's TileModel and the whole-image Pansharpener (the reference), random
    weights."""
    tiled, whole = scene.TileModel(random_checkpoint), Pansharpener(random_checkpoint)
    yield tiled, whole
    tiled.close()
    whole.close()


@pytest.fixture(scope="module")
def tile_model(nets):
    return nets[0]


def _options(**kwargs):
    kwargs.setdefault("tile", 64)  # 16 MS pixels: 2 x 2 tiles on the base pair
    return scene.SceneOptions(bands=BANDS, progress="off", **kwargs)


def _run(tile_model, pan, ms, out, **kwargs):
    notes = []
    summary = scene.pansharpen_scene(None, pan, ms, out, _options(**kwargs),
                                     tile_model=tile_model, say=notes.append)
    assert notes == ([summary["grid"]] if summary["grid"] else [])
    return summary


def _plain(folder, tile_model, ms, pan, name="plain", **kwargs):
    """The output of the arrays as a plain TIFF pair (pixel grid, the behaviour before GDAL)."""
    sub = os.path.join(folder, name)
    os.makedirs(sub, exist_ok=True)
    ms_path, pan_path = write_pair(sub, ms, pan)
    out = os.path.join(sub, "out.tif")
    _run(tile_model, pan_path, ms_path, out, **kwargs)
    return tifffile.imread(out)


def _geo(path):
    with rasters.Raster(path) as r:
        return r.transform.to_gdal(), r.crs.to_epsg() if r.crs else None, (r.height, r.width)


@pytest.fixture(scope="module")
def base(tmp_path_factory, tile_model):
    """The base georeferenced pair and the plain pair's output."""
    folder = str(tmp_path_factory.mktemp("products"))
    ms, pan = _arrays(np.random.default_rng(5), H, W)
    pan_path = _georef(folder, "pan", pan, X0, Y0, PAN_PX)
    ms_path = _georef(folder, "ms", ms, X0, Y0, MS_PX)
    return dict(folder=folder, ms=ms, pan=pan, pan_path=pan_path, ms_path=ms_path,
                plain=_plain(folder, tile_model, ms, pan))


def test_coinciding_grids_read_as_they_are_and_equal_the_plain_pair(base, tile_model):
    out = os.path.join(base["folder"], "geotiff_out.tif")
    summary = _run(tile_model, base["pan_path"], base["ms_path"], out)
    assert summary["grid"] is None and summary["bits"] == 11
    with rasters.Raster(base["pan_path"]) as pan, rasters.Raster(base["ms_path"]) as ms:
        grid = grids.plan(pan, ms)
    assert not grid.resampled and grid.whole_pan and (grid.ms_row, grid.ms_col) == (0, 0)
    np.testing.assert_array_equal(tifffile.imread(out), base["plain"])
    assert _geo(out) == _geo(base["pan_path"])


def _jp2(base, folder):
    pan, ms = (os.path.join(folder, n + ".jp2") for n in ("pan", "ms"))
    for src, dst in ((base["pan_path"], pan), (base["ms_path"], ms)):
        _gdal("gdal_translate", "-q", "-of", "JP2OpenJPEG", "-co", "QUALITY=100", "-co",
              "REVERSIBLE=YES", src, dst)
    return pan, ms


def _nitf(base, folder):
    pan, ms = (os.path.join(folder, n + ".ntf") for n in ("pan", "ms"))
    for src, dst in ((base["pan_path"], pan), (base["ms_path"], ms)):
        _gdal("gdal_translate", "-q", "-of", "NITF", src, dst)
    return pan, ms


def _vrt_mosaic(base, folder):
    """The PAN cut into 2 x 2 GeoTIFF tiles (gdal_translate -srcwin) and mosaicked again by
    gdalbuildvrt."""
    tiles = []
    for y in (0, 48):
        for x in (0, 60):
            tile = os.path.join(folder, "pan_%d_%d.tif" % (y, x))
            _gdal("gdal_translate", "-q", "-srcwin", x, y, 60 if x == 0 else 52, 48,
                  base["pan_path"], tile)
            tiles.append(tile)
    vrt = os.path.join(folder, "pan.vrt")
    _gdal("gdalbuildvrt", "-q", vrt, *tiles)
    return vrt, base["ms_path"]


@pytest.mark.parametrize("kind,driver", [("jp2", "JP2OpenJPEG"), ("nitf", "NITF"),
                                         ("vrt", "VRT")])
def test_other_formats_give_the_same_output(base, tile_model, tmp_path, kind, driver):
    pan, ms = {"jp2": _jp2, "nitf": _nitf, "vrt": _vrt_mosaic}[kind](base, str(tmp_path))
    with rasters.Raster(pan) as r:
        assert r.driver == driver
    assert _geo(pan) == _geo(base["pan_path"])  # the fixture kept the georeferencing
    out = str(tmp_path / "out.tif")
    summary = _run(tile_model, pan, ms, out)
    assert summary["grid"] is None
    np.testing.assert_array_equal(tifffile.imread(out), base["plain"])
    # Not a GeoTIFF PAN: the output's georeferencing is written by GDAL, the same grid.
    assert _geo(out) == _geo(base["pan_path"])


def _grid_bounds(out):
    (x0, px, _, y0, _, py), _, (h, w) = _geo(out)
    return x0, y0 + h * py, x0 + w * px, y0


@pytest.mark.parametrize("resampling", ["bilinear", "cubic"])
def test_half_pixel_offset_is_resampled_as_gdalwarp_does(tmp_path, nets, resampling):
    """MS origin half an MS pixel right of and below the PAN's (float32 DN, --bits 11): the MS
    read onto the PAN's grid equals gdalwarp's on the same grid; the output equals the
    whole-image network on gdalwarp's MS and the PAN cropped alike."""
    folder = str(tmp_path)
    tile_model, whole = nets
    ms, pan = _arrays(np.random.default_rng(8), H + 1, W + 1, np.float32)
    pan = pan[:4 * H, :4 * W]
    pan_path = _georef(folder, "pan", pan, X0, Y0, PAN_PX)
    ms_path = _georef(folder, "ms", ms, X0 + MS_PX / 2, Y0 - MS_PX / 2, MS_PX)
    out = str(tmp_path / "out.tif")
    summary = _run(tile_model, pan_path, ms_path, out, bits=11, out_type="float32",
                   resampling=resampling)
    # The MS starts half a cell in: the first whole cell is cell 1 on both axes, and the MS
    # ends half a cell beyond the PAN's last cell.
    assert summary["grid"] == (
        "grid (--extent=intersection): output is PAN rows 4-95, columns 4-111 of 96 x 112; "
        "PAN pixels cropped: 4 top, 4 left; MS resampled onto the PAN's grid (%s)" % resampling)
    ref_path = str(tmp_path / "warped.tif")
    _gdal("gdalwarp", "-q", "-r", resampling, "-tr", MS_PX, MS_PX, "-te",
          *_grid_bounds(out), ms_path, ref_path)
    ref = tifffile.imread(ref_path)
    assert ref.shape == (H - 1, W - 1, 4)
    with rasters.Raster(pan_path) as p, rasters.Raster(ms_path) as m:
        grid = grids.plan(p, m, resampling=resampling)
    assert grid.resampled and (grid.height, grid.width) == (H - 1, W - 1)
    with grids.open_sources(grid) as sources:
        got = sources.ms(0, H - 1, 0, W - 1, [0, 1, 2, 3])
        np.testing.assert_array_equal(sources.pan(0, 4 * H - 4, 0, 4 * W - 4)[..., 0],
                                      pan[4:, 4:])
    assert np.abs(got - ref).max() <= 1e-5 * 2047
    assert np.abs(got - ms[:-2, :-2]).max() > 1  # it was resampled
    expected = whole(ref[..., [b - 1 for b in BANDS]] / np.float32(2047),
                     pan[4:, 4:] / np.float32(2047))["output"]
    assert np.abs(tifffile.imread(out) / 2047 - expected).max() <= TOLERANCE
    assert _geo(out)[0] == (X0 + 4 * PAN_PX, PAN_PX, 0, Y0 - 4 * PAN_PX, 0, -PAN_PX)


def test_sizes_off_4_to_1_are_cropped_or_padded(base, tile_model, tmp_path):
    """PAN 3 rows and 4 columns beyond 4x the MS (the WorldView pair's remainders), same origin:
    --extent=intersection crops them (the MS read as it is: output equal to the plain pair's);
    --extent=pan keeps the 4 columns' whole MS cell, padded with nodata, and needs a nodata
    value."""
    folder = str(tmp_path)
    rng = np.random.default_rng(9)
    pan = np.concatenate([base["pan"], rng.integers(1, 2047, (3, 4 * W), np.uint16)], 0)
    pan = np.concatenate([pan, rng.integers(1, 2047, (4 * H + 3, 4), np.uint16)], 1)
    pan_path = _georef(folder, "pan", pan, X0, Y0, PAN_PX)
    out = str(tmp_path / "out.tif")
    summary = _run(tile_model, pan_path, base["ms_path"], out)
    assert summary["grid"] == ("grid (--extent=intersection): output is PAN rows 0-95, columns "
                               "0-111 of 99 x 116; PAN pixels cropped: 3 bottom, 4 right")
    np.testing.assert_array_equal(tifffile.imread(out), base["plain"])
    assert _geo(out)[0] == _geo(pan_path)[0] and _geo(out)[2] == (96, 112)
    with pytest.raises(scene.SceneError, match="padding needs a nodata value"):
        _run(tile_model, pan_path, base["ms_path"], out, extent="pan")
    padded = str(tmp_path / "padded.tif")
    summary = _run(tile_model, pan_path, base["ms_path"], padded, extent="pan", nodata=0)
    assert summary["grid"] == (
        "grid (--extent=pan): output is PAN rows 0-95, columns 0-115 of 99 x 116; PAN pixels "
        "cropped: 3 bottom; MS pixels padded with nodata (no MS there): 1 right")
    got = tifffile.imread(padded)
    assert got.shape == (96, 116, 3)
    assert np.all(got[:, 112:] == 0) and np.all(got[:, :112] != 0)
    with rasters.Raster(padded) as r:
        assert r.nodata == 0


def test_ms_beyond_the_pan_on_two_sides(base, tile_model, tmp_path):
    """MS 3 pixels beyond the PAN at the top and 2 on the left: read with an offset, nothing
    resampled, the output equals the plain pair of the PAN and the MS's overlapping part."""
    folder = str(tmp_path)
    rng = np.random.default_rng(10)
    ms = np.concatenate([rng.integers(0, 2047, (3, W, 4), np.uint16), base["ms"]], 0)
    ms = np.concatenate([rng.integers(0, 2047, (H + 3, 2, 4), np.uint16), ms], 1)
    ms_path = _georef(folder, "ms", ms, X0 - 2 * MS_PX, Y0 + 3 * MS_PX, MS_PX)
    out = str(tmp_path / "out.tif")
    summary = _run(tile_model, base["pan_path"], ms_path, out)
    assert summary["grid"] is None
    with rasters.Raster(base["pan_path"]) as p, rasters.Raster(ms_path) as m:
        grid = grids.plan(p, m)
    assert not grid.resampled and (grid.ms_row, grid.ms_col) == (3, 2)
    np.testing.assert_array_equal(tifffile.imread(out), base["plain"])


@pytest.fixture(scope="module")
def fake_tensorflow(tmp_path_factory):
    """A folder with a ``tensorflow`` package that fails to import."""
    folder = tmp_path_factory.mktemp("no_tensorflow")
    (folder / "tensorflow").mkdir()
    (folder / "tensorflow" / "__init__.py").write_text(
        'raise ImportError("TensorFlow was loaded before the inputs were checked")\n')
    return str(folder)


def _refused(fake_tensorflow, folder, pan, ms, *flags):
    before = sorted(os.listdir(folder))
    result = run_command([sys.executable, "-m", "sipsa_tf.pansharpen",
                          "--pan=" + pan, "--ms=" + ms, "--out=" + os.path.join(folder, "o.tif")]
                         + list(flags),
                         env={"PYTHONPATH": fake_tensorflow + os.pathsep + REPO_ROOT})
    assert sorted(os.listdir(folder)) == before
    return result


def _rpc_pan(base, folder):
    """The PAN's pixels with RPCs only (GDAL reads an ``<name>_rpc.txt`` beside a TIFF)."""
    path = os.path.join(folder, "rpc.tif")
    tifffile.imwrite(path, base["pan"])
    lines = ["LINE_OFF: 48", "SAMP_OFF: 56", "LAT_OFF: 36.1", "LONG_OFF: 15.0",
             "HEIGHT_OFF: 100", "LINE_SCALE: 48", "SAMP_SCALE: 56", "LAT_SCALE: 0.001",
             "LONG_SCALE: 0.001", "HEIGHT_SCALE: 100"]
    for kind, first in (("LINE_NUM", [0, 0, -1]), ("LINE_DEN", [1]), ("SAMP_NUM", [0, 1]),
                        ("SAMP_DEN", [1])):
        values = first + [0] * (20 - len(first))
        lines += ["%s_COEFF_%d: %g" % (kind, i, v) for i, v in enumerate(values, 1)]
    with open(os.path.join(folder, "rpc_rpc.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    return path, base["ms_path"]


def _rotated(base, folder):
    """The base pair as VRTs (gdal_translate -of VRT) whose geotransforms are rotated 30
    degrees."""
    import math
    paths = []
    for name, px in (("pan", PAN_PX), ("ms", MS_PX)):
        vrt = os.path.join(folder, name + ".vrt")
        _gdal("gdal_translate", "-q", "-of", "VRT", base[name + "_path"], vrt)
        c, s = px * math.cos(math.pi / 6), px * math.sin(math.pi / 6)
        with open(vrt) as f:
            text = f.read()
        start, end = text.index("<GeoTransform>"), text.index("</GeoTransform>")
        text = text[:start] + "<GeoTransform>%r, %r, %r, %r, %r, %r" % (
            X0, c, -s, Y0, -s, -c) + text[end:]
        with open(vrt, "w") as f:
            f.write(text)
        paths.append(vrt)
    return tuple(paths)


REFUSALS = {
    "crs": (lambda b, f: (b["pan_path"], _georef(f, "ms", b["ms"], X0, Y0, MS_PX,
                                                  srs="EPSG:32634")), [],
            "are in different coordinate systems (EPSG:32633 and EPSG:32634); reproject the "
            "MS onto the PAN's first, e.g. gdalwarp -t_srs"),
    "rpc": (_rpc_pan, [], "rpc.tif has RPC sensor geometry but no geotransform; orthorectify "
            "first, e.g. gdalwarp -rpc -to RPC_DEM="),
    "ratio": (lambda b, f: (b["pan_path"], _georef(f, "ms", b["ms"], X0, Y0, 2 * PAN_PX)), [],
              "ms.tif: MS pixel is 2.00x the PAN's"),
    "disjoint": (lambda b, f: (b["pan_path"], _georef(f, "ms", b["ms"], X0 + 1000, Y0, MS_PX)),
                 [], "do not overlap"),
    "rotated": (_rotated, [], "its grid is rotated or sheared"),
    "padding": (lambda b, f: (b["pan_path"], _georef(f, "ms", b["ms"][:-1], X0, Y0, MS_PX)),
                ["--extent=pan"], "padding needs a nodata value: give --nodata, or use "
                "--extent=intersection"),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_refusals_are_one_line_before_tensorflow(base, fake_tensorflow, tmp_path, case):
    make, flags, message = REFUSALS[case]
    pan, ms = make(base, str(tmp_path))
    result = _refused(fake_tensorflow, str(tmp_path), pan, ms, *flags)
    assert_one_line_error(result, message)
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def _mtl(path):
    """KEY = value pairs of a Landsat MTL file."""
    values = {}
    with open(path) as f:
        for line in f:
            if "=" in line:
                key, value = (part.strip() for part in line.split("=", 1))
                values.setdefault(key, value.strip('"'))
    return values


def test_landsat_ratio_2_pair_is_refused(tmp_path, fake_tensorflow):
    """Landsat 8 (../shared/data): the crops' TIFFs have no georeferencing, their MTL file has
    it (UTM zone, upper-left corner, 15 m PAN and 30 m MS cells); gdal_translate assigns it, and
    the MS is a VRT of bands 4, 3, 2 (gdalbuildvrt -separate)."""
    folder = require_shared("data", "landsat8_cc0")
    stem = os.path.join(folder, "LC08_L1TP_017051_20151205_20200908_02_T1_B")
    mtl = _mtl(stem[:-2] + "_MTL.txt")
    x0, y0 = (float(mtl["CORNER_UL_PROJECTION_%s_PRODUCT" % a]) for a in "XY")
    srs = "EPSG:326%02d" % int(mtl["UTM_ZONE"])
    bands = []
    for band, cell in (("8", "PANCHROMATIC"), ("4", "REFLECTIVE"), ("3", "REFLECTIVE"),
                       ("2", "REFLECTIVE")):
        with rasters.Raster(stem + band + ".TIF") as r:
            size = (r.height, r.width)
        bands.append(str(tmp_path / ("B%s.tif" % band)))
        _gdal("gdal_translate", "-q", "-a_srs", srs,
              *_ullr(x0, y0, float(mtl["GRID_CELL_SIZE_" + cell]), *size),
              stem + band + ".TIF", bands[-1])
    ms = str(tmp_path / "ms.vrt")
    _gdal("gdalbuildvrt", "-q", "-separate", ms, *bands[1:])
    result = _refused(fake_tensorflow, str(tmp_path), bands[0], ms)
    assert_one_line_error(result, "ms.vrt: MS pixel is 2.00x the PAN's (%s); SIPSA-Net "
                          "needs 4x" % bands[0])


def _validate_cog(path):
    """GDAL's validate_cloud_optimized_geotiff.py (python3-gdal, with the system's Python)."""
    python = shutil.which("python3", path="/usr/bin:/usr/local/bin")
    probe = subprocess.run([python, "-c", "import osgeo_utils.samples."
                            "validate_cloud_optimized_geotiff"], capture_output=True)
    if probe.returncode:
        from conftest import missing_tool
        missing_tool("GDAL's validate_cloud_optimized_geotiff (python3-gdal) not found")
    return run_command([python, "-m", "osgeo_utils.samples.validate_cloud_optimized_geotiff",
                        path], env={"PYTHONPATH": None})


def test_cog_output_is_valid_with_overviews(base, tile_model, tmp_path):
    out, aligned = str(tmp_path / "out.tif"), str(tmp_path / "aligned.tif")
    geotiff_out = str(tmp_path / "plain_out.tif")
    _run(tile_model, base["pan_path"], base["ms_path"], geotiff_out, aligned_out=str(
        tmp_path / "plain_aligned.tif"), nodata=0)
    _run(tile_model, base["pan_path"], base["ms_path"], out, cog=True, cog_blocksize=64,
         aligned_out=aligned, nodata=0)
    assert sorted(os.listdir(str(tmp_path))) == ["aligned.tif", "out.tif", "plain_aligned.tif",
                                                 "plain_out.tif"]
    for cog, plain in ((out, geotiff_out), (aligned, str(tmp_path / "plain_aligned.tif"))):
        result = _validate_cog(cog)
        assert result.returncode == 0 and "is a valid cloud optimized GeoTIFF" in result.stdout, \
            result.stdout + result.stderr
        info = json.loads(_gdal("gdalinfo", "-json", cog))
        assert info["metadata"]["IMAGE_STRUCTURE"]["LAYOUT"] == "COG"
        assert info["metadata"]["IMAGE_STRUCTURE"]["COMPRESSION"] == "DEFLATE"
        band = info["bands"][0]
        assert band["block"] == [64, 64] and band["noDataValue"] == 0
        assert [o["size"] for o in band["overviews"]] == [[56, 48]]
        np.testing.assert_array_equal(tifffile.imread(cog), tifffile.imread(plain))
        assert _geo(cog) == _geo(base["pan_path"])
        # The overview is the average of 2 x 2 pixels (GDAL's AVERAGE, rounded).
        with tifffile.TiffFile(cog) as tif:
            full, half = tif.series[0].levels[0].asarray(), tif.series[0].levels[1].asarray()
        mean = full.reshape(48, 2, 56, 2, 3).mean(axis=(1, 3))
        assert np.abs(half - mean).max() <= 1


def test_per_dataset_masks_are_nodata_in_the_output(base, tile_model, tmp_path):
    """A PAN with an internal mask (gdal_translate -mask) and an MS with one: masked PAN pixels
    and the PAN pixels of masked MS pixels are nodata in the output, the rest as without masks;
    without a nodata value the mask is refused."""
    folder = str(tmp_path)
    masks = {}
    for name, shape in (("pan", (4 * H, 4 * W)), ("ms", (H, W))):
        mask = np.full(shape, 255, np.uint8)
        mask[(slice(8, 20), slice(30, 41)) if name == "pan" else (slice(2, 4), slice(20, 23))] = 0
        masks[name] = mask
        mask_path = _georef(folder, name + "_mask", mask, X0, Y0, PAN_PX if name == "pan"
                            else MS_PX)
        singles = []  # gdalbuildvrt -separate takes the first band of each file
        for band in range(1, 2 if name == "pan" else 5):
            singles.append(os.path.join(folder, "%s_b%d.vrt" % (name, band)))
            _gdal("gdal_translate", "-q", "-of", "VRT", "-b", band, base[name + "_path"],
                  singles[-1])
        stack = os.path.join(folder, name + "_stack.vrt")
        _gdal("gdalbuildvrt", "-q", "-separate", stack, *singles, mask_path)
        # the data bands, then the last band as the internal mask
        bands = sum((["-b", str(b)] for b in range(1, 2 if name == "pan" else 5)), [])
        _gdal("gdal_translate", "-q", *bands, "-mask", "2" if name == "pan" else "5",
              "--config", "GDAL_TIFF_INTERNAL_MASK", "YES", stack,
              os.path.join(folder, name + "_masked.tif"))
    pan, ms = (os.path.join(folder, n + "_masked.tif") for n in ("pan", "ms"))
    with rasters.Raster(pan) as p, rasters.Raster(ms) as m:
        assert p.masked and m.masked
    out = str(tmp_path / "out.tif")
    with pytest.raises(scene.SceneError, match="has a mask of invalid pixels but no nodata"):
        _run(tile_model, pan, ms, out)
    _run(tile_model, pan, ms, out, nodata=0)
    got = tifffile.imread(out)
    invalid = (masks["pan"] == 0) | np.kron(masks["ms"] == 0, np.ones((4, 4), bool))
    assert invalid.sum() == 12 * 11 + 2 * 3 * 16  # the two masks do not overlap
    assert np.all(got[invalid] == 0) and np.all(got[~invalid] != 0)
    np.testing.assert_array_equal(got[~invalid], base["plain"][~invalid])
