"""Windowed reading through GDAL (sipsa_tf.io.raster) of TIFFs written by tifffile in every
layout, and atomic tiled writing (sipsa_tf.io.geotiff), checked with tifffile."""
import os

import numpy as np
import pytest
import tifffile

from conftest import geotiff_tags, write_tiff
from sipsa_tf.io import geotiff, raster as rasters

LAYOUTS = {
    "contiguous": dict(),
    "tiled_zlib": dict(tile=(16, 32), compression="zlib"),
    "strips_zlib": dict(rowsperstrip=7, compression="zlib"),
    "planar_tiled": dict(tile=(16, 16), compression="zlib", planarconfig="separate"),
}


def _write(path, data, **kwargs):
    photometric = "minisblack"
    if data.ndim == 3:
        if kwargs.setdefault("planarconfig", "contig") == "separate":
            data = np.moveaxis(data, -1, 0)
    write_tiff(path, data, photometric=photometric, extratags=geotiff_tags(), **kwargs)


@pytest.mark.parametrize("layout,bands", [(layout, bands) for layout in sorted(LAYOUTS)
                                          for bands in (0, 4)
                                          if bands or not layout.startswith("planar")])
def test_windows_equal_the_whole_image(tmp_path, rng, layout, bands):
    shape = (53, 71, bands) if bands else (53, 71)
    data = rng.integers(0, 4096, shape).astype(np.uint16)
    path = str(tmp_path / "img.tif")
    _write(path, data, **LAYOUTS[layout])
    full = data if bands else data[..., None]
    with rasters.Raster(path) as raster:
        assert raster.shape == full.shape and raster.dtype == np.uint16
        assert raster.georeferenced and raster.transform.a == 0.5
        for y0, y1, x0, x1 in [(0, 53, 0, 71), (5, 40, 3, 70), (50, 53, 60, 71), (17, 18, 0, 1)]:
            np.testing.assert_array_equal(raster.read(y0, y1, x0, x1), full[y0:y1, x0:x1])
        if bands:
            np.testing.assert_array_equal(raster.read(9, 30, 11, 45, [3, 0, 2]),
                                          full[9:30, 11:45][..., [3, 0, 2]])


def test_geo_tags_and_nodata_are_read(tmp_path):
    path = str(tmp_path / "img.tif")
    write_tiff(path, np.zeros((8, 8), np.uint8), extratags=geotiff_tags(nodata="255"))
    with rasters.Raster(path) as raster:
        assert raster.nodata == 255.0 and raster.crs.to_epsg() == 32633
        assert raster.transform.to_gdal() == (500000.0, 0.5, 0.0, 4000000.0, 0.0, -0.5)
        assert raster.nbits == [None] and not raster.masked and raster.sensor_geometry is None
    tags = {code: value for code, _, _, value in geotiff.read_geo_tags(path)}
    assert tags[33550] == (0.5, 0.5, 0.0)
    assert tags[34735][-4:] == (3073, 34737, 10, 0)
    assert tags[34737].startswith("UTM 33N")


@pytest.mark.parametrize("content,message", [
    (b"", "empty file (0 bytes)"),
    (b"this is not an image", "not a readable TIFF"),
])
def test_unusable_files_are_named(tmp_path, content, message):
    path = str(tmp_path / "bad.tif")
    with open(path, "wb") as f:
        f.write(content)
    with pytest.raises(rasters.RasterError) as err:
        rasters.Raster(path)
    assert str(err.value).startswith(path + ": ") and message in str(err.value)


def test_missing_file_and_unsupported_type(tmp_path):
    with pytest.raises(rasters.RasterError, match="no such file"):
        rasters.Raster(str(tmp_path / "nothing.tif"))
    path = str(tmp_path / "f64.tif")
    tifffile.imwrite(path, np.zeros((8, 8), np.float64))
    with pytest.raises(rasters.RasterError, match="unsupported data type float64"):
        rasters.Raster(path)


def test_sink_writes_tiles_with_tags_atomically(tmp_path, rng):
    data = rng.integers(0, 2048, (100, 90, 3)).astype(np.uint16)
    path = str(tmp_path / "out.tif")
    tags = geotiff.extratags([(c, d, n, v) for c, d, n, v, _ in
                              [(33550, 12, 3, (0.5, 0.5, 0.0), True)]], nodata=0)
    sink = geotiff.TiffSink(path, data.shape, data.dtype, 32, tags)
    for y in range(0, 100, 32):
        for x in range(0, 90, 32):
            sink.put(data[y:y + 32, x:x + 32])
    sink.finish()
    assert not os.path.exists(path)  # nothing at the final path before commit
    sink.commit()
    assert os.listdir(str(tmp_path)) == ["out.tif"]
    with tifffile.TiffFile(path) as tif:
        page = tif.pages.first
        np.testing.assert_array_equal(page.asarray(), data)
        assert (page.tilelength, page.tilewidth) == (32, 32)
        assert page.compression == tifffile.COMPRESSION.ADOBE_DEFLATE
        assert page.predictor == tifffile.PREDICTOR.HORIZONTAL
        assert page.tags[33550].value == (0.5, 0.5, 0.0)
        assert page.tags[42113].value == "0"


def test_sink_float32_round_trips_without_predictor(tmp_path, rng):
    data = rng.random((40, 48, 3)).astype(np.float32)
    path = str(tmp_path / "f.tif")
    sink = geotiff.TiffSink(path, data.shape, data.dtype, 32)
    for y in range(0, 40, 32):
        for x in range(0, 48, 32):
            sink.put(data[y:y + 32, x:x + 32])
    sink.finish()
    sink.commit()
    with tifffile.TiffFile(path) as tif:
        assert tif.pages.first.predictor == tifffile.PREDICTOR.NONE
        np.testing.assert_array_equal(tif.pages.first.asarray(), data)
    with rasters.Raster(path) as raster:
        np.testing.assert_array_equal(raster.read(3, 35, 5, 41), data[3:35, 5:41])


def test_sink_abort_leaves_nothing(tmp_path):
    path = str(tmp_path / "out.tif")
    sink = geotiff.TiffSink(path, (64, 64, 3), np.uint8, 32)
    sink.put(np.zeros((32, 32, 3), np.uint8))
    sink.abort()
    sink.abort()
    assert os.listdir(str(tmp_path)) == []
