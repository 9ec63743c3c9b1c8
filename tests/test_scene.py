"""Scene-scale pan-sharpening (sipsa_tf.scene, python -m sipsa_tf.pansharpen).

Tiled output is compared with the whole-image :class:`Pansharpener` (an independent graph with no
tiling), on a scene large enough that most tiles' windows end inside it, and a tiling plan with too
small a halo is shown to fail that comparison. Georeferencing (GeoKeyDirectory, GeoDouble/
AsciiParams, pixel scale, tie point or transformation, GDAL_NODATA) is read back with tifffile and
GDAL's gdalinfo (skipped without GDAL, failed when the environment variable CI is set). Also: the
bit-depth rules (uint8, uint16, int16's 15 bits, float32 needing --bits), NaN as nodata, BigTIFF
output (its 2 GiB threshold lowered for the test: writing 2 GiB would take minutes), bad input,
interruption in-process and by SIGTERM to the command, and `make pansharpen` with the
bundled checkpoint.
"""
import json
import os
import signal
import sys

import numpy as np
import pytest
import tifffile

from sipsa_tf import scene
from sipsa_tf.core import model
from sipsa_tf.constants import BUNDLED_CHECKPOINT
from sipsa_tf.inference import Pansharpener
from sipsa_tf.scene import run as scene_run

from conftest import (REPO_ROOT, SUBPROCESS_TIMEOUT, Watched, command_env, geotiff_tags,
                      require_executables, run_command, write_pair, write_random_checkpoint)
from sipsa_tf.io import geotiff, raster

# The command line's environment: the repository on the path, TensorFlow's log level untouched
# (the tool itself must keep stderr to one line).
CLI_ENV = {"PYTHONPATH": REPO_ROOT}
GAIN = 3.0  # random weights scaled up: the tiles' edges would show if the halo were too small


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A random-initialised checkpoint with its convolution weights scaled by GAIN."""
    return write_random_checkpoint(str(tmp_path_factory.mktemp("ckpt") / "model-1"), seed=7,
                                   gain=GAIN)


@pytest.fixture(scope="module")
def tile_model(checkpoint):
    m = scene.TileModel(checkpoint)
    yield m
    m.close()


@pytest.fixture(scope="module")
def whole(checkpoint):
    p = Pansharpener(checkpoint)
    yield p
    p.close()


def _write_pair(directory, ms, pan, nodata=None):
    """A georeferenced PAN and a tiled, compressed MS; returns (PAN path, MS path)."""
    ms_path, pan_path = write_pair(directory, ms, pan,
                                   ms_options=dict(tile=(16, 16), compression="zlib"),
                                   pan_options=dict(extratags=geotiff_tags(nodata=nodata)))
    return pan_path, ms_path


def _scene(rng, h, w, bands, high, dtype):
    """Smooth-ish random MS and PAN DN (so the network sees structure, not only noise)."""
    ms = rng.random((h, w, bands))
    pan = np.kron(ms.mean(axis=2), np.ones((4, 4))) * 0.7 + 0.3 * rng.random((4 * h, 4 * w))
    return (ms * high).astype(dtype), (pan * high).astype(dtype)


def test_min_size_agrees_with_model():
    assert scene.MIN_MS_SIZE == model.MIN_MS_SIZE


@pytest.mark.parametrize("n,core,halo", [(60, 24, 32), (70, 24, 32), (10, 16, 32), (200, 64, 31)])
def test_plan_covers_the_scene_once_with_the_halo(n, core, halo):
    plan = scene.axis_plan(n, core, halo)
    covered = np.zeros(n, int)
    for (c0, c1), (w0, w1) in plan:
        covered[c0:c1] += 1
        assert 0 <= w0 <= c0 < c1 <= w1 <= n
        assert c0 - w0 >= halo or w0 == 0
        assert w1 - c1 >= halo or w1 == n
        assert w1 - w0 == min(n, core + 2 * halo)  # one window size for all tiles
    np.testing.assert_array_equal(covered, 1)


@pytest.mark.parametrize("c0,c1,w0,w1,piece", [(0, 96, 0, 224, 40), (128, 256, 0, 384, 50),
                                               (350, 400, 222, 400, 64), (0, 40, 0, 40, 64)])
def test_tail_pieces_cover_the_core_with_their_margin(c0, c1, w0, w1, piece):
    """Pieces of a core [c0, c1) in a window [w0, w1) (PAN pixels, both axes alike)."""
    pieces = scene.split(c0, c1, piece)
    covered = np.zeros(c1, int)
    length = pieces[0][1] - pieces[0][0] + 2 * scene.TAIL_MARGIN
    for s0, s1 in pieces:
        covered[s0:s1] += 1
        assert s1 - s0 <= piece
        tail, crop = scene.tail_box((s0, s1, s0, s1), (w0, w1, w0, w1), (length, length))
        t0, t1 = w0 + tail[0], w0 + tail[0] + tail[2]
        assert w0 <= t0 <= s0 < s1 <= t1 <= w1
        assert s0 - t0 >= scene.TAIL_MARGIN or t0 == w0
        assert t1 - s1 >= scene.TAIL_MARGIN or t1 == w1
        assert t1 - t0 == min(w1 - w0, length)  # one tail shape
        assert crop == (s0 - t0, s0 - t0, s1 - s0, s1 - s0)
    np.testing.assert_array_equal(covered[c0:], 1)


def test_receptive_field_is_within_the_halo(whole):
    """Perturbing one input pixel changes the output only within RECEPTIVE_FIELD_MS MS pixels."""
    rng = np.random.default_rng(3)
    n, c = 72, 36
    ms, pan = rng.random((n, n, 3), np.float32), rng.random((4 * n, 4 * n), np.float32)
    base = whole(ms, pan)["output"]
    reach = []  # in PAN pixels, from the perturbed input pixel's edge to the farthest change
    for which, offset in (("ms", None), ("pan", 0), ("pan", 3)):
        ms2, pan2 = ms.copy(), pan.copy()
        if which == "ms":
            ms2[c, c] += 0.5
            first, last = 4 * c, 4 * c + 3
        else:
            pan2[4 * c + offset, 4 * c + offset] += 0.5
            first = last = 4 * c + offset
        rows = np.nonzero(np.abs(whole(ms2, pan2)["output"] - base).max(axis=(1, 2)) > 0)[0]
        reach.append(max(first - rows.min(), rows.max() - last))
    assert max(reach) > 100  # the perturbation does spread (so the bound below is meaningful)
    assert max(reach) <= 4 * scene.RECEPTIVE_FIELD_MS <= 4 * scene.DEFAULT_HALO_MS


# Tiled vs whole image: MS 160 x 160 (PAN 640) in 7 x 7 cores of 96 PAN pixels (24 MS) with the
# default 32-MS-pixel halo, i.e. windows of 88 MS pixels. Every window is smaller than the scene on
# both axes, so every tile has a window edge inside the scene, and the 9 tiles of the central 3 x 3
# cores have windows that touch no scene edge.
#
# The network is random with a large far-field response (FAR_FIELD, write_random_checkpoint's
# ``corner``): with the original's random weights (x3) a tiling plan given 3/4 of the halo (24 MS =
# 96 PAN pixels, below the 123-pixel receptive field) changed the output by only 1.6e-6 while the
# tiled-vs-whole noise was 8.3e-7 under oneDNN's AVX2 kernels (as on AVX2-only AMD EPYC), so the
# test could not tell them apart there. Measured on this network (160 x 160 scene, max |tiled -
# whole| in [0, 1] units, output; docs/design.md, "Numerical noise"):
#   noise: AVX2 6.6e-7, AVX-512 6e-8, AVX-512 + AMX (default here) 6e-8, oneDNN off 1.8e-7,
#          XLA off (TF_XLA_FLAGS=--tf_xla_clustering_fuel=0) the same as on;
#   3/4-halo mutation: 1.17e-3 on every path, 1800x the largest noise.
# The tolerance sits 7.6x above the largest noise and 230x below the mutation.
#
# Each side gets its own fresh model: the FAM is XLA-compiled (ops.local_conv_fused), and
# TensorFlow compiles a cluster for the first input shape it runs at once but runs later shapes
# uncompiled for a while; fresh models see one shape each (the scene, the windows), so both sides
# are compiled alike and only the tiling differs.
TILED_MS, TILED_TILE = 160, 96
TILED_TOLERANCE = 5e-6
FAR_FIELD = dict(seed=7, gain=GAIN, corner=6.0, out_scale=0.003)


@pytest.fixture(scope="module")
def far_checkpoint(tmp_path_factory):
    """A random checkpoint with a large far-field response (FAR_FIELD)."""
    return write_random_checkpoint(str(tmp_path_factory.mktemp("far") / "model-1"), **FAR_FIELD)


@pytest.fixture(scope="module")
def tiled_case(tmp_path_factory, far_checkpoint):
    """The tiled-vs-whole scene (4 uint16 bands, bands 3,1,4 used) and the whole-image result."""
    rng = np.random.default_rng(21)
    directory = str(tmp_path_factory.mktemp("tiled"))
    ms, pan = _scene(rng, TILED_MS, TILED_MS, 4, 2047, np.uint16)
    pan_path, ms_path = _write_pair(directory, ms, pan)
    with Pansharpener(far_checkpoint) as fresh:
        ref = fresh(ms[..., [2, 0, 3]] / np.float32(2047), pan / np.float32(2047))
    return directory, ms, pan, pan_path, ms_path, ref


def _tiled(tiled_case, checkpoint, name, aligned=False, tail_tile=48, say=None):
    """The tiled run, with a fresh TileModel (see above); returns (summary, output, aligned).
    ``tail_tile`` 48: the PAN-resolution tail runs in 2 x 2 pieces per tile."""
    directory, _, _, pan_path, ms_path, _ = tiled_case
    out = os.path.join(directory, name + ".tif")
    aligned_out = os.path.join(directory, name + "_aligned.tif") if aligned else None
    opts = scene.SceneOptions(bands=(3, 1, 4), tile=TILED_TILE, tail_tile=tail_tile,
                              out_type="float32", aligned_out=aligned_out, progress="off")
    fresh = scene.TileModel(checkpoint)
    try:
        summary = scene.pansharpen_scene(None, pan_path, ms_path, out, opts, tile_model=fresh,
                                         say=say)
    finally:
        fresh.close()
    return summary, out, aligned_out


def test_tiling_plan_of_the_tiled_test_has_interior_tiles():
    core, halo = TILED_TILE // 4, scene.DEFAULT_HALO_MS
    plan = scene.plan_tiles(TILED_MS, TILED_MS, core, halo)
    assert len(plan) == 49
    for (cy0, cy1, cx0, cx1), (wy0, wy1, wx0, wx1) in plan:
        assert wy1 - wy0 == wx1 - wx0 == core + 2 * halo < TILED_MS
    interior = [c for c, w in plan if min(c[0] - w[0], w[1] - c[1], c[2] - w[2], w[3] - c[3])
                >= halo and 0 < w[0] and w[1] < TILED_MS and 0 < w[2] and w[3] < TILED_MS]
    assert len(interior) == 9  # cores 2..4 on both axes: windows clipped by no scene edge


def test_tiled_equals_whole_image(tiled_case, far_checkpoint):
    """Tiled == whole to TILED_TOLERANCE (5e-6; noise measured 6.6e-7 at most, AVX2), while a
    3/4 halo differs by 1.17e-3 (test below): see the comment above TILED_TOLERANCE."""
    directory, ms, pan, _, _, ref = tiled_case
    notes = []
    summary, out, aligned = _tiled(tiled_case, far_checkpoint, "out", aligned=True,
                                   say=notes.append)
    assert summary["tiles"] == 49 and summary["bits"] == 11
    assert notes == []  # the original graph is local: no note on the tiling
    got = tifffile.imread(out) / 2047.0
    assert got.shape == (4 * TILED_MS, 4 * TILED_MS, 3)
    with tifffile.TiffFile(out) as tif:
        assert (tif.pages.first.tilelength, tif.pages.first.tilewidth) == (96, 96)
    assert np.abs(got - ref["output"]).max() <= TILED_TOLERANCE
    assert np.abs(tifffile.imread(aligned) / 2047.0 - ref["aligned"]).max() <= TILED_TOLERANCE
    # The halo matters: a tile computed without it differs from the whole image near its edge.
    tile_model = scene.TileModel(far_checkpoint)
    try:
        alone, _ = tile_model(ms[:24, :24][..., [2, 0, 3]] / np.float32(2047),
                              pan[:96, :96] / np.float32(2047), (0, 0, 96, 96))
    finally:
        tile_model.close()
    assert np.abs(alone - ref["output"][:96, :96]).max() > 1e-3


def test_a_halo_below_the_receptive_field_shows(tiled_case, far_checkpoint, monkeypatch):
    """The tiling plan gets 3/4 of the halo (24 MS pixels) while the option check sees 32: the
    tiled result then differs from the whole image (measured 1.17e-3 on AVX2, AVX-512, AMX and
    without oneDNN, XLA on and off) by at least 100x the tolerance above (5e-6; the noise it
    covers: 6.6e-7 at most), so that test sees a halo that is too small."""
    plan_tiles = scene.plan_tiles
    # Patched where the run looks it up (sipsa_tf.scene re-exports it; patching there is unseen).
    monkeypatch.setattr(scene_run, "plan_tiles",
                        lambda h, w, core, halo: plan_tiles(h, w, core, halo * 3 // 4))
    _, out, _ = _tiled(tiled_case, far_checkpoint, "short_halo", tail_tile=TILED_TILE)
    difference = np.abs(tifffile.imread(out) / 2047.0 - tiled_case[-1]["output"]).max()
    assert difference > 100 * TILED_TOLERANCE, difference


def test_a_flat_mean_checkpoint_says_its_output_depends_on_the_tile(tiled_case, tmp_path):
    """--fam_flat_mean takes the flat quarter and its mean FAM weights over what the network
    sees: per window in a scene, so tiled != whole (measured 1.98e-3 here, 400x the tolerance
    above), and the run says so in one line. The original graph (the same weights without
    flags.txt) says nothing (test_tiled_equals_whole_image)."""
    from sipsa_tf import checkpoints
    flat_prefix = write_random_checkpoint(str(tmp_path / "model-1"), **FAR_FIELD)
    (tmp_path / checkpoints.FLAGS_FILE).write_text("--fam_flat_mean\n")
    notes = []
    _, out, _ = _tiled(tiled_case, flat_prefix, "flat_mean", say=notes.append)
    assert len(notes) == 1 and "--fam_flat_mean" in notes[0] and "49 tiles" in notes[0], notes
    _, ms, pan = tiled_case[:3]
    with Pansharpener(flat_prefix) as fresh:
        whole_flat = fresh(ms[..., [2, 0, 3]] / np.float32(2047), pan / np.float32(2047))
    difference = np.abs(tifffile.imread(out) / 2047.0 - whole_flat["output"]).max()
    assert difference > 100 * TILED_TOLERANCE, difference


@pytest.mark.parametrize("dtype,high,bits", [(np.uint8, 255, 8), (np.uint16, 65535, 16),
                                             (np.uint16, 4095, 12), (np.int16, 20000, 15),
                                             (np.int16, 2047, 11)])
def test_integer_inputs_keep_their_type(tmp_path, rng, tile_model, whole, dtype, high, bits):
    ms, pan = _scene(rng, 24, 20, 3, high, dtype)
    pan_path, ms_path = _write_pair(str(tmp_path), ms, pan)
    out, preview = str(tmp_path / "out.tif"), str(tmp_path / "preview.png")
    opts = scene.SceneOptions(tile=64, progress="off", preview=preview, preview_size=40)
    summary = scene.pansharpen_scene(None, pan_path, ms_path, out, opts, tile_model=tile_model)
    assert summary["bits"] == bits
    scale = np.float32(2 ** bits - 1)
    ref = whole(ms / scale, pan / scale)["output"]
    got = tifffile.imread(out)
    assert got.dtype == dtype and got.shape == (96, 80, 3)
    assert np.abs(got.astype(np.float64) - np.rint(ref * scale)).max() <= 1
    from PIL import Image
    with Image.open(preview) as img:
        assert img.mode == "RGB" and img.size == (80 // 3 + 1, 96 // 3)  # every 3rd pixel
        stretched = np.asarray(img)
    assert stretched.min() == 0 and stretched.max() == 255


def _gdal_geo(path):
    gdalinfo, = require_executables("gdalinfo")
    done = run_command([gdalinfo, "-json", path])
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    return info["geoTransform"], info["coordinateSystem"]["wkt"], info["size"]


GEO_CODES = (33550, 33922, 34264, 34735, 34736, 34737, 42113)


def _georeferenced_output(directory, rng, tile_model, transform):
    """PAN/MS with the GeoTIFF tags (a rotated grid if ``transform``), and the tool's output."""
    ms, pan = _scene(rng, 20, 24, 3, 2047, np.uint16)
    # A rotated grid: ModelTransformation instead of pixel scale + tie point. The GeoKeys also
    # live in GeoDoubleParams and GeoAsciiParams, so that copying tags 34736 and 34737 is
    # exercised.
    rotation = ((0.3, 0.4, 0, 500000.0, 0.4, -0.3, 0, 4e6, 0, 0, 0, 0, 0, 0, 0, 1)
                if transform else None)
    ms_path, pan_path = write_pair(directory, ms, pan, pan_options=dict(
        extratags=geotiff_tags(double_params=True, nodata="0", transformation=rotation)))
    out = os.path.join(directory, "out.tif")
    scene.pansharpen_scene(None, pan_path, ms_path, out,
                           scene.SceneOptions(tile=64, progress="off"), tile_model=tile_model)
    return pan_path, out


@pytest.mark.parametrize("transform", [False, True])
def test_output_carries_the_pan_georeferencing(tmp_path, rng, tile_model, transform):
    pan_path, out = _georeferenced_output(str(tmp_path), rng, tile_model, transform)
    with tifffile.TiffFile(pan_path) as a, tifffile.TiffFile(out) as b:
        for code in GEO_CODES:
            assert (code in a.pages.first.tags) == (code in b.pages.first.tags)
            if code in a.pages.first.tags:
                assert a.pages.first.tags[code].value == b.pages.first.tags[code].value
        assert all(code in a.pages.first.tags for code in (34736, 34737))
        assert b.pages.first.is_tiled and b.pages.first.tilewidth == 64
        assert b.pages.first.tilelength == 64
        keys = b.pages.first.geotiff_tags
        assert keys["ProjectedCSTypeGeoKey"] == 32633
        assert keys["GTCitationGeoKey"] == "UTM 33N" and keys["ProjLinearUnitSizeGeoKey"] == 1.0


@pytest.mark.parametrize("transform", [False, True])
def test_gdalinfo_reads_the_pan_georeferencing_in_the_output(tmp_path, rng, tile_model,
                                                              transform):
    """The cross-check by GDAL: same geotransform and coordinate system as the PAN."""
    require_executables("gdalinfo")
    pan_path, out = _georeferenced_output(str(tmp_path), rng, tile_model, transform)
    assert _gdal_geo(out)[:2] == _gdal_geo(pan_path)[:2]
    assert _gdal_geo(out)[2] == [96, 80]
    assert "32633" in _gdal_geo(out)[1]


def test_bigtiff_output(tmp_path, rng, tile_model, monkeypatch):
    """Beyond BIGTIFF_BYTES the output is a BigTIFF; the threshold (2 GiB) is lowered here."""
    ms, pan = _scene(rng, 20, 24, 3, 2047, np.uint16)
    pan_path, ms_path = _write_pair(str(tmp_path), ms, pan)
    opts = scene.SceneOptions(tile=64, progress="off")
    small, big = str(tmp_path / "small.tif"), str(tmp_path / "big.tif")
    scene.pansharpen_scene(None, pan_path, ms_path, small, opts, tile_model=tile_model)
    assert 96 * 80 * 3 * 2 < geotiff.BIGTIFF_BYTES
    monkeypatch.setattr(geotiff, "BIGTIFF_BYTES", 96 * 80 * 3 * 2 - 1)
    scene.pansharpen_scene(None, pan_path, ms_path, big, opts, tile_model=tile_model)
    with tifffile.TiffFile(small) as a, tifffile.TiffFile(big) as b:
        assert not a.is_bigtiff and b.is_bigtiff
        np.testing.assert_array_equal(a.asarray(), b.asarray())
        assert b.pages.first.tags[33922].value == a.pages.first.tags[33922].value
    with open(big, "rb") as f:
        assert f.read(4) == b"II+\x00"  # BigTIFF magic 43
    with raster.Raster(big) as reader:  # GDAL reads the BigTIFF too
        np.testing.assert_array_equal(reader.read(0, 80, 0, 96), tifffile.imread(small))


def test_float32_input_with_nan_as_nodata(tmp_path, rng, tile_model, whole):
    """float32 DN need --bits; NaN in the PAN or an MS band makes the output pixel NaN."""
    ms, pan = _scene(rng, 20, 24, 3, 2047, np.float32)
    ms[5:7, 9, 2] = np.nan   # an 8 x 4 PAN block
    pan[60:63, 3:5] = np.nan
    pan_path, ms_path = _write_pair(str(tmp_path), ms, pan)
    out = str(tmp_path / "out.tif")
    with pytest.raises(scene.SceneError, match="float32 data needs --bits"):
        scene.pansharpen_scene(None, pan_path, ms_path, out,
                               scene.SceneOptions(progress="off"), tile_model=tile_model)
    summary = scene.pansharpen_scene(None, pan_path, ms_path, out,
                                     scene.SceneOptions(bits=11, tile=64, progress="off"),
                                     tile_model=tile_model)
    assert summary["bits"] == 11 and summary["nodata"] is None
    got = tifffile.imread(out)
    assert got.dtype == np.float32 and got.shape == (80, 96, 3)
    invalid = np.zeros((80, 96), bool)
    invalid[20:28, 36:40] = True
    invalid[60:63, 3:5] = True
    assert np.all(np.isnan(got[invalid])) and np.all(np.isfinite(got[~invalid]))
    # The valid pixels: the network on the data with NaN read as 0, in DN (float32 output).
    # Measured: 1.1e-6 in [0, 1] units (the XLA-compiled FAM here, uncompiled in `whole` or the
    # other way round; see TILED_TOLERANCE).
    ref = whole(np.nan_to_num(ms) / np.float32(2047), np.nan_to_num(pan) / np.float32(2047))
    assert np.abs(got[~invalid] - 2047 * ref["output"][~invalid]).max() <= 2047 * 5e-6


def test_nodata_is_honoured(tmp_path, rng, tile_model):
    ms, pan = _scene(rng, 20, 24, 3, 2047, np.uint16)
    ms, pan = np.maximum(ms, 1), np.maximum(pan, 1)  # no nodata but the blocks below
    ms[0:3, 0:2, 1] = 0      # MS nodata: a 12 x 8 PAN block
    pan[40:44, 50:60] = 0    # PAN nodata
    pan_path, ms_path = _write_pair(str(tmp_path), ms, pan, nodata="0")
    out = str(tmp_path / "out.tif")
    scene.pansharpen_scene(None, pan_path, ms_path, out, scene.SceneOptions(progress="off"),
                           tile_model=tile_model)
    with tifffile.TiffFile(out) as tif:  # default tile 2048, cut down to the 80 x 96 scene
        assert (tif.pages.first.tilelength, tif.pages.first.tilewidth) == (80, 96)
        got = tif.pages.first.asarray()
    invalid = np.zeros(pan.shape, bool)
    invalid[0:12, 0:8] = True
    invalid[40:44, 50:60] = True
    assert np.all(got[invalid] == 0)
    assert np.all(got[~invalid] != 0)  # a valid pixel never carries the nodata value


def _cli(*args):
    return run_command([sys.executable, "-m", "sipsa_tf.pansharpen"] + list(args), env=CLI_ENV)


def _bad_inputs(directory, rng):
    """name -> (files to write {name: array or bytes}, extra flags, expected message part)."""
    ms, pan = _scene(rng, 10, 12, 8, 2047, np.uint16)
    return {
        "ratio": ({"pan.tif": pan[:-1, :-3], "ms.tif": ms}, [],
                  "ms.tif (10 x 12), i.e. 40 x 48: off by -1 rows and -3 "
                  "columns"),
        "band": ({"pan.tif": pan, "ms.tif": ms}, ["--bands=5,9,2"],
                 "--bands 9 is out of range; the file has 8 bands (1 to 8)"),
        "empty": ({"pan.tif": b"", "ms.tif": ms}, [], "pan.tif: empty file (0 bytes)"),
        "unreadable": ({"pan.tif": pan, "ms.tif": b"GIF89a not a tiff"}, [],
                       "ms.tif: not a readable TIFF"),
        "dtype": ({"pan.tif": pan.astype(np.complex64), "ms.tif": ms}, [],
                  "pan.tif: unsupported data type complex64"),
        "float": ({"pan.tif": pan.astype(np.float32), "ms.tif": ms.astype(np.float32)}, [],
                  "pan.tif: float32 data needs --bits (values are DN / (2^bits - 1))"),
    }


@pytest.mark.parametrize("case", ["ratio", "band", "empty", "unreadable", "dtype", "float"])
def test_bad_input_gives_one_line_and_status_1(tmp_path, rng, checkpoint, case):
    files, flags, message = _bad_inputs(str(tmp_path), rng)[case]
    for name, content in files.items():
        if isinstance(content, bytes):
            (tmp_path / name).write_bytes(content)
        else:
            tifffile.imwrite(str(tmp_path / name), content, photometric="minisblack",
                             planarconfig="contig" if content.ndim == 3 else None)
    before = sorted(os.listdir(str(tmp_path)))
    res = _cli("--checkpoint=" + checkpoint, "--pan=" + str(tmp_path / "pan.tif"),
               "--ms=" + str(tmp_path / "ms.tif"), "--out=" + str(tmp_path / "out.tif"), *flags)
    assert res.returncode == 1
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], res.stderr
    assert "Traceback" not in res.stderr
    assert sorted(os.listdir(str(tmp_path))) == before


@pytest.mark.parametrize("failure", [KeyboardInterrupt, RuntimeError])
def test_interrupted_run_leaves_nothing(tmp_path, rng, tile_model, failure):
    ms, pan = _scene(rng, 20, 24, 3, 2047, np.uint16)
    pan_path, ms_path = _write_pair(str(tmp_path), ms, pan)
    before = sorted(os.listdir(str(tmp_path)))

    def stop(done, total):
        if done == 2:
            raise failure("stop")

    opts = scene.SceneOptions(tile=64, progress="off", aligned_out=str(tmp_path / "al.tif"),
                              preview=str(tmp_path / "p.png"))
    with pytest.raises(failure):
        scene.pansharpen_scene(None, pan_path, ms_path, str(tmp_path / "out.tif"), opts,
                               tile_model=tile_model, on_tile=stop)
    assert sorted(os.listdir(str(tmp_path))) == before


def test_sigterm_to_the_command_leaves_nothing(tmp_path, rng, checkpoint):
    """SIGTERM once the first piece is done (its progress line is on stderr): status 130, one
    line saying so, no output and no temporary file. 10 x 10 tiles: several seconds of work are
    left when the signal arrives. The tool turns SIGTERM into the KeyboardInterrupt that SIGINT
    (Ctrl-C) raises in Python anyway, so from there on both take the same path, which
    test_interrupted_run_leaves_nothing also checks in-process; one command-line run (SIGTERM,
    the one with a handler of its own) keeps the suite's time down."""
    ms, pan = _scene(rng, 160, 160, 3, 2047, np.uint16)
    pan_path, ms_path = _write_pair(str(tmp_path), ms, pan)
    before = sorted(os.listdir(str(tmp_path)))
    run = Watched([sys.executable, "-m", "sipsa_tf.pansharpen", "--checkpoint=" + checkpoint,
                   "--pan=" + pan_path, "--ms=" + ms_path, "--out=" + str(tmp_path / "out.tif"),
                   "--aligned_out=" + str(tmp_path / "al.tif"), "--tile=64", "--progress=on"],
                  env=command_env(CLI_ENV), cwd=REPO_ROOT)
    run.wait_for("pansharpen |", timeout=SUBPROCESS_TIMEOUT)  # a piece is done
    run.proc.send_signal(signal.SIGTERM)
    assert run.finish(timeout=120) == 130, run.stderr[-2000:]
    assert "interrupted; no output written" in run.stderr
    assert "Traceback" not in run.stderr
    assert sorted(os.listdir(str(tmp_path))) == before


def test_interrupt_line_names_only_the_outputs_this_run_completed(tmp_path):
    """Ctrl-C can come after outputs are renamed into place (the scenes of --pairs, the Dask
    cluster's shutdown): the line names those, not an older file at an output path."""
    import time
    from sipsa_tf.pansharpen import interrupted_line
    old, new, missing = (str(tmp_path / n) for n in ("old.tif", "new.tif", "missing.tif"))
    open(old, "wb").close()
    os.utime(old, (time.time() - 3600, time.time() - 3600))  # left by an earlier run
    start = time.time()
    assert interrupted_line([old, missing], start) == "interrupted; no output written"
    open(new, "wb").close()
    assert (interrupted_line([old, new, missing], start)
            == "interrupted; complete: %s; nothing else written" % new)


def test_real_landsat_pair_at_ratio_2_is_refused(tmp_path, checkpoint):
    """Landsat 8 (../shared/data): PAN 668 x 935 at twice the MS resolution, not four times."""
    from conftest import require_shared
    folder = require_shared("data", "landsat8_cc0")
    stem = os.path.join(folder, "LC08_L1TP_017051_20151205_20200908_02_T1_B")
    ms = np.stack([tifffile.imread(stem + band + ".TIF") for band in "432"], axis=-1)
    ms_path = str(tmp_path / "ms.tif")
    tifffile.imwrite(ms_path, ms, photometric="rgb")
    res = _cli("--checkpoint=" + checkpoint, "--pan=" + stem + "8.TIF", "--ms=" + ms_path,
               "--out=" + str(tmp_path / "out.tif"))
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert res.stderr.strip().splitlines() == [
        "error: %s8.TIF is 668 x 935 pixels (rows x columns) but must be exactly 4x %s "
        "(334 x 468), i.e. 1336 x 1872: off by -668 rows and -937 columns" % (stem, ms_path)]
    assert os.listdir(str(tmp_path)) == ["ms.tif"]


def test_make_pansharpen_with_the_bundled_checkpoint(tmp_path, rng):
    """``make pansharpen`` with its default checkpoint (the bundled one, Makefile's
    BUNDLED_CHECKPOINT) equals the whole-image network run from that checkpoint."""
    bundled = os.path.join(REPO_ROOT, BUNDLED_CHECKPOINT)
    ms, pan = _scene(rng, 20, 24, 3, 2047, np.uint16)
    pan_path, ms_path = _write_pair(str(tmp_path), ms, pan)
    out = str(tmp_path / "out.tif")
    done = run_command(["make", "--no-print-directory", "pansharpen", "NO_INSTALL=1",
                        "PY=" + sys.executable, "PAN=" + pan_path, "MS=" + ms_path, "OUT=" + out,
                        "FLAGS=--progress=off --tile=64"], env={"CHECKPOINT": None, "FLAGS": None})
    assert done.returncode == 0, done.stderr[-2000:]
    assert "--checkpoint=%s" % BUNDLED_CHECKPOINT in done.stdout  # make echoes the command
    assert "wrote %s: 0.01 PAN megapixels in 4 tiles," % out in done.stdout
    with Pansharpener(bundled) as net:
        ref = net(ms / np.float32(2047), pan / np.float32(2047))["output"]
    got = tifffile.imread(out)
    assert got.dtype == np.uint16 and got.shape == (80, 96, 3)
    assert np.abs(got.astype(np.float64) - np.rint(ref * 2047)).max() <= 1
    # Trained weights, not random ones: the output follows the PAN's detail (correlation of the
    # band mean with the PAN: measured 0.91 here, 0.23 with random weights).
    assert np.corrcoef(got.mean(axis=2).ravel(), pan.ravel())[0, 1] > 0.8
