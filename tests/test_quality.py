"""Tests of sipsa_tf.evaluation.quality: hand-worked values, independent loop implementations, sewar.

Where sewar 0.4.10 (``sewar.full_ref`` / ``sewar.no_ref``) differs from the toolbox definitions
implemented here, and how each comparison is set up:

* ``uqi(GT, P, ws=8)``: sewar takes window *means* (``uniform_filter``) but plugs them into the
  formula of the toolbox's img_qi.m, which is written for window *sums* (``filter2(ones)``):
  ``4 (N E[xy] - E[x]E[y]) E[x]E[y] / ((N (E[x^2] + E[y^2]) - E[x]^2 - E[y]^2) (E[x]^2 + E[y]^2))``
  with N = ws^2. With means, ``N E[xy] - E[x]E[y]`` is not proportional to the covariance, so the
  value is not Wang & Bovik's Q (0.939 instead of 0.931 on one 8x8 window of the test data). It
  also averages a same-size map over ``[s:-s, s:-s]``, s = round(ws/2), which is not the set of
  valid windows. No parameter makes it coincide, so ``q_index`` is checked against a hand value
  and an explicit loop, and one test pins sewar's formula above to document the difference.
* ``d_lambda``, ``d_s``, ``qnr``: built on that ``uqi`` with a sliding 8x8 window at both scales;
  ``d_s`` degrades the PAN by a ws x ws box filter and PIL bicubic resize. Their aggregation
  (pairs of bands, exponents p/q, alpha/beta) is compared with ours by replacing
  ``sewar.no_ref.uqi`` with a textbook sliding-window UIQI (written in this module with loops),
  giving our functions the same windows (block=block_lr=8, shift=1) and sewar's own degraded PAN
  as ``pan_lr``. Our defaults (toolbox: non-overlapping 32x32 blocks, block/ratio at the MS
  scale, MTF-filtered PAN) differ on purpose.
* ``sam``: sewar returns radians, ours degrees; both skip zero-norm pixels. Equal after
  conversion.
* ``ergas(GT, P, r=0.25)``: sewar's ``r`` is low/high resolution (1/4) and multiplies 100 * r;
  ours takes ``ratio=4`` and uses 100 / ratio (toolbox). Equal with r = 1/ratio; note the argument
  order (sewar: reference first; ours: fused first).
* ``scc``: sewar high-passes with the 3x3 Laplacian-like kernel (applied twice by
  ``generic_laplace``) and averages local correlation coefficients over 8x8 windows; ours
  correlates Sobel gradient magnitudes (toolbox SCC.m kernels) per band over the inner pixels.
  They only coincide when the fused image is a positive affine map of the reference (both 1); for
  a negated image sewar gives -1 and ours 1 (gradient magnitudes ignore the sign).
* ``q2n``: sewar 0.4.10 ports q2n.m faithfully (no uint16 cast either); equal to 1e-12.
"""
import itertools
import math

import numpy as np
import pytest
import sewar
import sewar.no_ref
from scipy.ndimage import uniform_filter
from sewar.utils import imresize as sewar_imresize

from sipsa_tf.evaluation import quality


def _rng(seed=0):
    return np.random.default_rng(seed)


def _textbook_q(a, b):
    """Wang & Bovik Q of two equally sized windows, from np.cov (population moments)."""
    a = np.asarray(a, np.float64).ravel()
    b = np.asarray(b, np.float64).ravel()
    cov = np.cov(np.stack([a, b]), bias=True)
    ma, mb = a.mean(), b.mean()
    return 4 * cov[0, 1] * ma * mb / ((cov[0, 0] + cov[1, 1]) * (ma ** 2 + mb ** 2))


def _loop_q(x, y, block, shift=1):
    """Mean of the textbook Q over the windows of a shift grid, with explicit loops."""
    values = []
    for i in range(0, x.shape[0] - block + 1, shift):
        for j in range(0, x.shape[1] - block + 1, shift):
            values.append(_textbook_q(x[i:i + block, j:j + block], y[i:i + block, j:j + block]))
    return float(np.mean(values))


def _sewar_uqi_replacement(GT, P, ws=8):
    """Textbook sliding-window UIQI with sewar's uqi signature (2-D or 3-D inputs)."""
    GT = np.atleast_3d(np.asarray(GT, np.float64))
    P = np.atleast_3d(np.asarray(P, np.float64))
    return float(np.mean([_loop_q(GT[:, :, c], P[:, :, c], ws) for c in range(GT.shape[2])]))


def _scene(h=32, w=32, c=4, seed=0):
    """Smooth positive test scene (H, W, C) with band-dependent structure."""
    rng = _rng(seed)
    base = uniform_filter(rng.random((h, w)), 3, mode="wrap")
    bands = [100 + 80 * (k + 1) * base + 20 * uniform_filter(rng.random((h, w)), 2)
             for k in range(c)]
    return np.stack(bands, axis=-1)


# ------------------------------------------------------------------------------------- Q ----

def test_q_index_hand_value():
    x = np.array([[1.0, 2.0], [3.0, 4.0]])
    y = np.array([[2.0, 2.0], [3.0, 5.0]])
    # means 2.5, 3; variances 1.25, 1.5; covariance 1.25:
    # Q = 4 * 1.25 * 2.5 * 3 / ((1.25 + 1.5) * (2.5^2 + 3^2)) = 37.5 / 41.9375
    assert quality.q_index(x, y, block=2) == pytest.approx(37.5 / 41.9375, rel=1e-12)


def test_q_index_matches_explicit_loops_and_per_band():
    rng = _rng(1)
    x = rng.random((9, 11, 2)) * 50
    y = x + rng.normal(0, 5, x.shape)
    value, per_band = quality.q_index(x, y, block=4, return_per_band=True)
    expected = [_loop_q(x[:, :, c], y[:, :, c], 4) for c in range(2)]
    np.testing.assert_allclose(per_band, expected, rtol=1e-10)
    assert value == pytest.approx(np.mean(expected), rel=1e-10)


def test_q_index_flat_window_conventions_of_img_qi():
    ones = np.ones((4, 4))
    assert quality.q_index(5 * ones, 5 * ones, block=4) == pytest.approx(1.0)
    # Both windows flat: 2 mx my / (mx^2 + my^2) = 16 / 20.
    assert quality.q_index(2 * ones, 4 * ones, block=4) == pytest.approx(0.8)
    assert quality.q_index(0 * ones, 0 * ones, block=4) == 1.0


def test_q_index_rejects_bad_input():
    with pytest.raises(ValueError, match="same shape"):
        quality.q_index(np.ones((8, 8, 2)), np.ones((8, 8, 3)), block=4)
    with pytest.raises(ValueError, match="larger than the image"):
        quality.q_index(np.ones((8, 8)), np.ones((8, 8)), block=16)
    with pytest.raises(ValueError, match="block"):
        quality.q_index(np.ones((8, 8)), np.ones((8, 8)), block=1)


def test_sewar_uqi_is_not_the_textbook_index():
    """Documents the sewar 0.4.10 difference described in the module docstring."""
    rng = _rng(1)
    x = rng.random((8, 8))
    y = x + 0.3 * rng.random((8, 8))
    # A 9x9 padded copy makes sewar's [4:-4] crop keep exactly the one valid 8x8 window.
    pad = ((0, 1), (0, 1))
    sewar_value = sewar.uqi(np.pad(y, pad, mode="edge"), np.pad(x, pad, mode="edge"), ws=8)
    n = 64.0
    mx, my = x.mean(), y.mean()
    exy, exx, eyy = (x * y).mean(), (x * x).mean(), (y * y).mean()
    means_in_sums_formula = (4 * (n * exy - mx * my) * mx * my
                             / ((n * (exx + eyy) - mx ** 2 - my ** 2) * (mx ** 2 + my ** 2)))
    assert sewar_value == pytest.approx(means_in_sums_formula, rel=1e-12)
    ours = quality.q_index(x, y, block=8)
    assert ours == pytest.approx(_textbook_q(x, y), rel=1e-12)
    assert abs(ours - sewar_value) > 1e-3


# ----------------------------------------------------------------------------------- Q2n ----

def _sigma(v):
    out = np.array(v, np.float64)
    out[..., 3] = -out[..., 3]
    return out


def _hamilton(p, q):
    a1, b1, c1, d1 = np.moveaxis(p, -1, 0)
    a2, b2, c2, d2 = np.moveaxis(q, -1, 0)
    return np.stack([a1 * a2 - b1 * b2 - c1 * c2 - d1 * d2,
                     a1 * b2 + b1 * a2 + c1 * d2 - d1 * c2,
                     a1 * c2 - b1 * d2 + c1 * a2 + d1 * b2,
                     a1 * d2 + b1 * c2 - c1 * b2 + d1 * a2], axis=-1)


def test_cayley_dickson_product_is_a_normed_algebra():
    rng = _rng(2)
    p, q = rng.normal(size=(2, 5, 4))
    # Toolbox quaternion product = Hamilton's product with its 4th component negated.
    np.testing.assert_allclose(quality._cd_mul(p, q), _sigma(_hamilton(p, q)), atol=1e-12)
    for n in (2, 4, 8):
        p, q = rng.normal(size=(2, n))
        np.testing.assert_allclose(np.linalg.norm(quality._cd_mul(p, q)),
                                   np.linalg.norm(p) * np.linalg.norm(q), rtol=1e-12)
        z_zbar = quality._cd_mul(p, quality._cd_conj(p))
        np.testing.assert_allclose(z_zbar, np.r_[(p * p).sum(), np.zeros(n - 1)], atol=1e-12)


def _normalised(ref, fus):
    mean = ref.mean(axis=(0, 1))
    std = ref.std(axis=(0, 1), ddof=1)
    return (ref - mean) / std + 1, (fus - mean) / std + 1


def test_q2n_single_block_two_bands_by_complex_numbers():
    rng = _rng(3)
    ref = rng.integers(10, 200, (4, 4, 2)).astype(float)
    fus = ref + rng.normal(0, 20, ref.shape)
    r, f = _normalised(ref, fus)
    zr = r[:, :, 0] + 1j * r[:, :, 1]
    zf = f[:, :, 0] + 1j * f[:, :, 1]
    k = 16 / 15
    cov = k * (np.mean(zr * np.conj(zf)) - np.mean(zr) * np.conj(np.mean(zf)))
    var_sum = k * (np.mean(abs(zr) ** 2) + np.mean(abs(zf) ** 2)
                   - abs(np.mean(zr)) ** 2 - abs(np.mean(zf)) ** 2)
    bias = 2 * abs(np.mean(zr)) * abs(np.mean(zf)) / (abs(np.mean(zr)) ** 2
                                                      + abs(np.mean(zf)) ** 2)
    expected = abs(cov) * 2 / var_sum * bias
    assert quality.q2n(fus, ref, block=4, shift=4) == pytest.approx(expected, rel=1e-12)


def test_q2n_single_block_three_bands_by_quaternions():
    rng = _rng(4)
    ref = rng.integers(10, 200, (4, 4, 3)).astype(float)
    fus = ref + rng.normal(0, 20, ref.shape)
    r, f = _normalised(ref, fus)
    # Zero 4th band: the toolbox normalises it to 1 (zero mean -> only shifted). The toolbox
    # product is Hamilton's up to the sign of the 4th component, which keeps the modulus.
    qr = np.concatenate([r, np.ones((4, 4, 1))], axis=-1).reshape(-1, 4)
    qf = np.concatenate([f, np.ones((4, 4, 1))], axis=-1).reshape(-1, 4)
    conj = np.array([1, -1, -1, -1])
    k = 16 / 15
    cov = k * (_hamilton(qr, qf * conj).mean(axis=0)
               - _hamilton(qr.mean(axis=0), qf.mean(axis=0) * conj))
    m1, m2 = np.linalg.norm(qr.mean(axis=0)), np.linalg.norm(qf.mean(axis=0))
    var_sum = k * ((qr ** 2).sum(1).mean() + (qf ** 2).sum(1).mean() - m1 ** 2 - m2 ** 2)
    expected = np.linalg.norm(cov) * 2 / var_sum * 2 * m1 * m2 / (m1 ** 2 + m2 ** 2)
    assert quality.q2n(fus, ref, block=4, shift=4) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("shape", [(64, 64, 4), (64, 64, 8), (64, 64, 3), (50, 70, 4)])
def test_q2n_matches_sewar(shape):
    rng = _rng(5)
    ref = rng.integers(0, 2048, shape).astype(float)
    fus = ref + rng.normal(0, 200, shape)
    assert quality.q2n(fus, ref) == pytest.approx(sewar.q2n(ref, fus, 32, 32), rel=1e-12)


def test_q2n_map_shape_and_overlapping_shift():
    ref = _scene(48, 48, 4)
    fus = ref + _rng(6).normal(0, 2, ref.shape)
    value, qmap = quality.q2n(fus, ref, block=16, shift=8, return_map=True)
    assert qmap.shape == (6, 6)
    assert value == pytest.approx(qmap.mean())
    assert value == pytest.approx(sewar.q2n(ref, fus, 16, 8), rel=1e-12)


# ----------------------------------------------------------------------- SAM, ERGAS, SCC ----

def test_sam_hand_value_and_sewar():
    x = np.array([[[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 0.0]]])
    y = np.array([[[1.0, 1.0, 0.0], [0.0, 3.0, 0.0], [4.0, 1.0, 1.0]]])
    # 45 degrees, 0 degrees, and a zero spectrum that is skipped.
    value, angle_map = quality.sam(x, y, return_map=True)
    assert value == pytest.approx(22.5, rel=1e-12)
    assert np.isnan(angle_map[0, 2])
    rng = _rng(7)
    a = rng.random((6, 5, 4))
    b = a + 0.2 * rng.random(a.shape)
    assert quality.sam(a, b) == pytest.approx(math.degrees(sewar.sam(b, a)), rel=1e-10)


def test_ergas_hand_value_and_sewar():
    y = np.stack([np.full((2, 2), 10.0), np.full((2, 2), 20.0)], axis=-1)
    x = y + np.array([1.0, 2.0])
    # 100/4 * sqrt(((1/10)^2 + (2/20)^2) / 2) = 25 * 0.1
    assert quality.ergas(x, y, ratio=4) == pytest.approx(2.5, rel=1e-12)
    rng = _rng(8)
    ref = rng.random((7, 6, 3)) + 1
    fus = ref + rng.normal(0, 0.1, ref.shape)
    assert quality.ergas(fus, ref, ratio=4) == pytest.approx(sewar.ergas(ref, fus, r=0.25),
                                                             rel=1e-12)
    with pytest.raises(ValueError, match="zero mean"):
        quality.ergas(x, np.zeros_like(y))


def _loop_sobel_magnitude(band):
    gx = np.zeros_like(band)
    gy = np.zeros_like(band)
    weights = {-1: 1.0, 0: 2.0, 1: 1.0}
    for i in range(1, band.shape[0] - 1):
        for j in range(1, band.shape[1] - 1):
            gy[i, j] = sum(weights[d] * (band[i + 1, j + d] - band[i - 1, j + d])
                           for d in (-1, 0, 1))
            gx[i, j] = sum(weights[d] * (band[i + d, j + 1] - band[i + d, j - 1])
                           for d in (-1, 0, 1))
    return np.sqrt(gx ** 2 + gy ** 2)[1:-1, 1:-1]


def test_scc_matches_explicit_sobel_and_pearson():
    rng = _rng(9)
    x = rng.random((7, 8, 2))
    y = x + 0.5 * rng.random(x.shape)
    expected = []
    for c in range(2):
        ex = _loop_sobel_magnitude(x[:, :, c]).ravel()
        ey = _loop_sobel_magnitude(y[:, :, c]).ravel()
        expected.append(np.corrcoef(ex, ey)[0, 1])
    assert quality.scc(x, y) == pytest.approx(np.mean(expected), rel=1e-10)


def test_scc_toolbox_mode_matches_explicit_definition():
    rng = _rng(10)
    x = rng.random((7, 8, 2))
    y = x + 0.5 * rng.random(x.shape)

    def edges(img):
        # SCC.m: crop the border, then Sobel with zero padding on the cropped band.
        out = []
        for c in range(img.shape[2]):
            inner = np.pad(img[1:-1, 1:-1, c], 1)
            out.append(_loop_sobel_magnitude(inner))
        return np.stack(out, -1)

    ex, ey = edges(x), edges(y)
    expected = (ex * ey).sum() / math.sqrt((ex ** 2).sum() * (ey ** 2).sum())
    assert quality.scc(x, y, mode="toolbox") == pytest.approx(expected, rel=1e-10)


def test_scc_against_sewar_where_definitions_coincide():
    rng = _rng(11)
    x = rng.random((16, 16, 2))
    affine = 2 * x + 3
    assert quality.scc(x, affine) == pytest.approx(1.0, abs=1e-12)
    assert sewar.scc(x, affine) == pytest.approx(1.0, abs=1e-9)
    # Documented difference: sign of the high-pass.
    assert sewar.scc(x, -x) == pytest.approx(-1.0, abs=1e-9)
    assert quality.scc(x, -x) == pytest.approx(1.0, abs=1e-12)


# ------------------------------------------------------------------- perfect vs degraded ----

def test_reduced_resolution_perfect_is_ideal_and_degraded_is_worse():
    ref = _scene(64, 64, 4)
    perfect = quality.reduced_resolution_indices(ref.copy(), ref, ratio=4, block=32)
    assert perfect["q2n"] == pytest.approx(1.0, abs=1e-12)
    assert perfect["q"] == pytest.approx(1.0, abs=1e-12)
    assert perfect["sam"] == 0.0
    assert perfect["ergas"] == 0.0
    assert perfect["scc"] == pytest.approx(1.0, abs=1e-12)
    noisy = ref + _rng(12).normal(0, 5, ref.shape)
    blurred = uniform_filter(noisy, size=(3, 3, 1))
    worse = quality.reduced_resolution_indices(blurred, ref, ratio=4, block=32)
    assert worse["q2n"] < perfect["q2n"]
    assert worse["q"] < perfect["q"]
    assert worse["sam"] > perfect["sam"]
    assert worse["ergas"] > perfect["ergas"]
    assert worse["scc"] < perfect["scc"]


# ---------------------------------------------------------------------- no-reference -----

def test_d_lambda_matches_block_loops_and_is_zero_for_replicated_ms():
    rng = _rng(13)
    ms = rng.random((8, 8, 3)) + 0.5
    fused = np.repeat(np.repeat(ms, 4, 0), 4, 1) + 0.05 * rng.random((32, 32, 3))
    expected = np.mean([abs(_loop_q(fused[:, :, i], fused[:, :, j], 16, 16)
                            - _loop_q(ms[:, :, i], ms[:, :, j], 4, 4)) ** 2
                        for i, j in itertools.combinations(range(3), 2)]) ** 0.5
    assert quality.d_lambda(fused, ms, block=16, p=2) == pytest.approx(expected, rel=1e-10)
    # Pixel replication keeps every block's moments: no spectral distortion.
    replicated = np.repeat(np.repeat(ms, 4, 0), 4, 1)
    assert quality.d_lambda(replicated, ms, block=16) == pytest.approx(0.0, abs=1e-12)


def test_d_s_matches_block_loops_and_is_zero_for_replicated_images():
    rng = _rng(14)
    ms = rng.random((8, 8, 3)) + 0.5
    pan_lr = rng.random((8, 8)) + 0.5
    pan = np.repeat(np.repeat(pan_lr, 4, 0), 4, 1)
    fused = np.repeat(np.repeat(ms, 4, 0), 4, 1)
    assert quality.d_s(fused, ms, pan, block=16, pan_lr=pan_lr) == pytest.approx(0, abs=1e-12)
    noisy = fused + 0.1 * rng.random(fused.shape)
    expected = np.mean([abs(_loop_q(noisy[:, :, c], pan, 16, 16)
                            - _loop_q(ms[:, :, c], pan_lr, 4, 4)) for c in range(3)])
    assert quality.d_s(noisy, ms, pan, block=16, pan_lr=pan_lr) == pytest.approx(expected,
                                                                              rel=1e-10)
    # Without pan_lr the PAN is MTF-filtered and decimated (the `degrade` path).
    default_lr = quality.decimate(quality.mtf_filter(pan, "QB", 4, pan=True), 4)
    assert quality.d_s(noisy, ms, pan, block=16, sensor="QB") == pytest.approx(
        quality.d_s(noisy, ms, pan, block=16, pan_lr=default_lr), rel=1e-12)


def test_no_reference_aggregation_matches_sewar(monkeypatch):
    monkeypatch.setattr(sewar.no_ref, "uqi", _sewar_uqi_replacement)
    rng = _rng(15)
    ms = rng.random((8, 8, 3)) + 0.5
    pan = rng.random((32, 32)) + 0.5
    fused = np.repeat(np.repeat(ms, 4, 0), 4, 1) * (0.8 + 0.4 * pan[:, :, None])
    pan_lr = sewar_imresize(uniform_filter(pan, size=7), (8, 8)).astype(np.float64)
    windows = dict(block=8, block_lr=8, shift=1)
    for p in (1, 2):
        assert quality.d_lambda(fused, ms, p=p, **windows) == pytest.approx(
            sewar.no_ref.d_lambda(ms, fused, p=p), rel=1e-10)
        assert quality.d_s(fused, ms, pan, q=p, pan_lr=pan_lr, **windows) == pytest.approx(
            sewar.no_ref.d_s(pan, ms, fused, q=p, r=4, ws=7), rel=1e-10)
    value, dl, ds = quality.qnr(fused, ms, pan, p=2, q=1, alpha=1, beta=2, pan_lr=pan_lr,
                                **windows)
    assert value == pytest.approx(sewar.no_ref.qnr(pan, ms, fused, alpha=1, beta=2, p=2, q=1,
                                                   r=4, ws=7), rel=1e-10)
    assert value == pytest.approx((1 - dl) * (1 - ds) ** 2)


def test_khan_d_lambda_and_hqnr():
    hr = _scene(64, 64, 4, seed=16)
    pan = hr.mean(axis=-1)
    ms = quality.decimate(quality.mtf_filter(hr, "IKONOS", 4), 4)
    # The MS is exactly the MTF-degraded fused image: no spectral distortion.
    assert quality.d_lambda_khan(hr, ms, "IKONOS", block=8) == pytest.approx(0.0, abs=1e-12)
    noisy = hr + _rng(16).normal(0, 10, hr.shape)
    assert quality.d_lambda_khan(noisy, ms, "IKONOS", block=8) > 1e-3
    good = quality.hqnr(hr, ms, pan, sensor="IKONOS", block=16)
    bad = quality.hqnr(noisy, ms, pan, sensor="IKONOS", block=16)
    assert good[0] == pytest.approx((1 - good[1]) * (1 - good[2]))
    assert bad[0] < good[0]
    indices = quality.full_resolution_indices(hr, ms, pan, ratio=4, sensor="IKONOS", block=16)
    assert set(indices) == {"d_lambda", "d_s", "qnr", "d_lambda_khan", "hqnr"}
    assert indices["hqnr"] == pytest.approx(good[0])
    assert indices["qnr"] == pytest.approx((1 - indices["d_lambda"]) * (1 - indices["d_s"]))
    with pytest.raises(ValueError, match="ratio times"):
        quality.d_lambda_khan(hr, hr, "IKONOS")


# ------------------------------------------------------------------------ MTF and Wald ----

def test_mtf_gains_table():
    assert set(quality.MTF_GAINS) == {"WV3", "WV2", "QB", "IKONOS", "GeoEye1"}
    assert len(quality.MTF_GAINS["WV3"]["ms"]) == 8
    assert quality.MTF_GAINS["WV2"]["ms"] == (0.35,) * 7 + (0.27,)
    assert quality.MTF_GAINS["IKONOS"] == {"ms": (0.26, 0.28, 0.29, 0.28), "pan": 0.17}


@pytest.mark.parametrize("gain", [0.3, 0.23, 0.14])
def test_mtf_kernel_response(gain):
    kernel = quality.mtf_kernel(gain, ratio=4)
    assert kernel.shape == (41, 41)
    np.testing.assert_allclose(kernel, kernel.T, atol=1e-15)
    np.testing.assert_allclose(kernel, kernel[::-1, ::-1], atol=1e-15)
    assert 0.995 < kernel.sum() < 1.0      # toolbox DC gain, not renormalised
    profile = kernel.sum(axis=0)
    taps = np.arange(41) - 20
    response = abs((profile * np.exp(-2j * np.pi * 0.125 * taps)).sum())
    # fsamp2 places the N response samples 1/N cycles/pixel apart while the design assumes
    # 1/(N - 1): the Gaussian sampled at 5 samples from the centre (gain) is realised at the
    # MS Nyquist 0.125 = 5.125 / N, i.e. gain ** (N / (N - 1)) ** 2 (0.2814 for 0.3). The
    # Kaiser window adds 0.08-0.37% (measured for 0.3, 0.23, 0.14): 1% allowed.
    assert response == pytest.approx(gain ** (41 / 40) ** 2, rel=1e-2)
    assert response < gain


def test_mtf_filter_boundary_and_band_checks():
    flat = np.full((12, 12, 4), 7.0)
    kernel_sum = quality.mtf_kernel(0.26).sum()
    np.testing.assert_allclose(quality.mtf_filter(flat, "IKONOS")[:, :, 0], 7.0 * kernel_sum,
                               rtol=1e-12)   # replicate boundary: no darkening at the edges
    with pytest.raises(ValueError, match="4 MS bands"):
        quality.mtf_filter(np.ones((8, 8, 3)), "IKONOS")
    with pytest.raises(ValueError, match="unknown sensor"):
        quality.mtf_filter(np.ones((8, 8)), "SPOT")
    assert quality.mtf_filter(np.ones((8, 8)), "WV3", pan=True).shape == (8, 8)


def test_decimate_offset_and_degrade_shapes():
    grid = np.arange(64).reshape(8, 8)
    np.testing.assert_array_equal(quality.decimate(grid, 4), [[18, 22], [50, 54]])
    ms, pan = _scene(16, 16, 4), np.ones((64, 64, 1))
    ms_lr, pan_lr = quality.degrade(ms, pan, "GeoEye1", 4)
    assert ms_lr.shape == (4, 4, 4) and pan_lr.shape == (16, 16, 1)
    with pytest.raises(ValueError, match="PAN must be ratio times"):
        quality.degrade(ms, np.ones((60, 64)), "GeoEye1", 4)
    with pytest.raises(ValueError, match="multiple of ratio"):
        quality.degrade(np.ones((10, 10, 4)), np.ones((40, 40)), "GeoEye1", 4)
