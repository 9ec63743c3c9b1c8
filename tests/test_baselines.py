"""Tests of sipsa_tf.evaluation.baselines: shapes, hand-checked interpolation, CS invariants, bad input.

The last test runs the reduced-resolution (Wald) protocol on a crop of the GRIP IKONOS image in
../shared/data/grip (skipped when that folder is absent).
"""
import os

import numpy as np
import pytest

from sipsa_tf.evaluation import baselines, quality

GRIP = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                     "shared", "data", "grip"))
CS_METHODS = ["brovey", "ihs", "gs", "gsa"]


def _inputs(h=8, w=6, c=4, ratio=4, seed=0):
    rng = np.random.default_rng(seed)
    ms = rng.integers(100, 2000, (h, w, c)).astype(np.uint16)
    pan = rng.integers(100, 2000, (ratio * h, ratio * w)).astype(np.uint16)
    return ms, pan


@pytest.mark.parametrize("method", sorted(baselines.METHODS))
def test_shapes_and_dtype(method):
    ms, pan = _inputs()
    out = baselines.fuse(method, ms, pan, ratio=4)
    assert out.shape == (32, 24, 4)
    assert out.dtype == np.float32
    assert np.all(np.isfinite(out))
    np.testing.assert_array_equal(baselines.fuse(method, ms, pan[:, :, np.newaxis]), out)


def test_nearest_replicates_pixels():
    ms, pan = _inputs(h=3, w=5, c=2)
    out = baselines.fuse("nearest", ms, pan)
    for i in range(12):
        for j in range(20):
            np.testing.assert_array_equal(out[i, j], ms[i // 4, j // 4])


def test_bicubic_keys_kernel_by_hand():
    # A linear ramp is reproduced exactly away from the borders (Keys' kernel is exact for
    # polynomials of degree <= 2); sample positions u = (i + 0.5) / 4 - 0.5.
    ramp = np.tile(np.arange(8.0)[:, np.newaxis, np.newaxis], (1, 8, 1))
    out = baselines.fuse("bicubic", ramp, np.zeros((32, 32)))
    u = (np.arange(32) + 0.5) / 4 - 0.5
    np.testing.assert_allclose(out[6:26, 10, 0], u[6:26], atol=1e-5)
    # One output sample written out: row 10 samples u = 10.5 / 4 - 0.5 = 2.125, between taps
    # 1..4 at distances 1.125, 0.125, 0.875, 1.875, with Keys weights (a = -0.5)
    # -0.0479, 0.9639, 0.0908, -0.0068.
    img = np.array([5.0, 1.0, 4.0, 9.0, 2.0, 7.0])[:, np.newaxis, np.newaxis] * np.ones((1, 2, 1))

    def keys(d):
        d = abs(d)
        if d <= 1:
            return 1.5 * d ** 3 - 2.5 * d ** 2 + 1
        return -0.5 * d ** 3 + 2.5 * d ** 2 - 4 * d + 2

    expected = sum(keys(2.125 - t) * img[t, 0, 0] for t in (1, 2, 3, 4))
    out = baselines.fuse("bicubic", img, np.zeros((24, 8)))
    assert out[10, 0, 0] == pytest.approx(expected, rel=1e-6)
    # Constant input stays constant, borders included (weights sum to 1, mirrored taps).
    const = baselines.fuse("bicubic", np.full((3, 3, 2), 7.0), np.zeros((12, 12)))
    np.testing.assert_allclose(const, 7.0, rtol=1e-6)


def _constant_spectrum_scene(seed=1):
    """MS whose pixels share one spectrum shape: ms[x, k] = s_k * b(x)."""
    rng = np.random.default_rng(seed)
    brightness = 500 + 400 * rng.random((8, 8))
    spectrum = np.array([0.6, 0.9, 1.1, 1.4])
    return brightness[:, :, np.newaxis] * spectrum


@pytest.mark.parametrize("method", CS_METHODS)
def test_cs_methods_preserve_ms_when_pan_is_the_intensity(method):
    ms = _constant_spectrum_scene()
    ms_up = baselines.upsample_bicubic(ms, 4)
    pan = ms_up.mean(axis=2)            # PAN = mean of the upsampled bands
    out = baselines.fuse(method, ms, pan)
    np.testing.assert_allclose(out, ms_up, rtol=1e-5)


@pytest.mark.parametrize("method", sorted(baselines.METHODS))
def test_uniform_scene_is_reproduced(method):
    spectrum = np.array([300.0, 500.0, 700.0])
    ms = np.ones((4, 4, 1)) * spectrum
    pan = np.full((16, 16), spectrum.mean())
    out = baselines.fuse(method, ms, pan)
    np.testing.assert_allclose(out, np.ones((16, 16, 1)) * spectrum, rtol=1e-6)


def test_injection_structure_of_ihs_and_brovey():
    ms, pan = _inputs(seed=2)
    ms_up = baselines.upsample_bicubic(ms.astype(np.float64), 4)
    ihs = baselines.fuse("ihs", ms, pan).astype(np.float64)
    detail = ihs - ms_up
    # Additive: the same detail in every band.
    np.testing.assert_allclose(detail, detail[:, :, :1].repeat(4, axis=2), atol=1e-2)
    brovey = baselines.fuse("brovey", ms, pan).astype(np.float64)
    ratio_maps = brovey / ms_up
    # Multiplicative: the same gain in every band.
    np.testing.assert_allclose(ratio_maps, ratio_maps[:, :, :1].repeat(4, axis=2), rtol=1e-5)


def test_bad_inputs_raise_clear_errors():
    ms, pan = _inputs()
    with pytest.raises(ValueError, match=r"pan is 30 x 24 pixels \(rows x columns\) but must be "
                                         r"exactly 4x ms"):
        baselines.fuse("gsa", ms, pan[:30])
    with pytest.raises(ValueError, match=r"ms must be a non-empty \(h, w, C\) array"):
        baselines.fuse("ihs", ms[:, :, 0], pan)
    with pytest.raises(ValueError, match=r"pan must be an \(H, W\) or \(H, W, 1\) array"):
        baselines.fuse("brovey", ms, np.stack([pan, pan], axis=-1))
    with pytest.raises(ValueError, match="ratio must be a positive integer"):
        baselines.fuse("bicubic", ms, pan, ratio=4.0)
    with pytest.raises(ValueError, match="unknown method 'pca'"):
        baselines.fuse("pca", ms, pan)
    with pytest.raises(ValueError, match="upsample must be one of"):
        baselines.fuse("gs", ms, pan, upsample="lanczos")


def test_reduced_resolution_protocol_on_ikonos():
    path = os.path.join(GRIP, "imgIK.mat")
    if not os.path.exists(path):
        pytest.skip("%s not found: the shared data folder is absent beside the repo" % path)
    from scipy.io import loadmat
    data = loadmat(path)
    top = left = 512                     # a 256 x 256 PAN crop and its 64 x 64 MS
    pan = data["I_PAN"][top:top + 256, left:left + 256].astype(np.float64)
    ms = data["I_MS"][top // 4:top // 4 + 64, left // 4:left // 4 + 64].astype(np.float64)
    ms_lr, pan_lr = quality.degrade(ms, pan, "IKONOS", 4)
    scores = {}
    for method in ("bicubic", "gsa"):
        options = {"sensor": "IKONOS"} if method == "gsa" else {}
        fused = baselines.fuse(method, ms_lr, pan_lr, 4, **options)
        scores[method] = quality.reduced_resolution_indices(fused, ms, ratio=4)
    assert scores["gsa"]["q2n"] > scores["bicubic"]["q2n"]
    assert 0 < scores["bicubic"]["q2n"] < 1 and 0 < scores["gsa"]["q2n"] < 1
