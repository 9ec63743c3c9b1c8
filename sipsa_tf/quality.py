"""Standard pan-sharpening quality indices and the MTF-based Wald protocol (NumPy + SciPy only).

The definitions follow the MATLAB pan-sharpening toolbox of Vivone et al., which is the reference
implementation used by the pan-sharpening literature:

* G. Vivone, L. Alparone, J. Chanussot, M. Dalla Mura, A. Garzelli, G. Licciardi, R. Restaino,
  L. Wald, "A Critical Comparison Among Pansharpening Algorithms", IEEE TGRS 53(5), 2015.
* G. Vivone, M. Dalla Mura, A. Garzelli, R. Restaino, G. Scarpa, M. O. Ulfarsson, L. Alparone,
  J. Chanussot, "A New Benchmarking of Pansharpening Methods: Revisiting pansharpening with
  classical and emerging pansharpening methods", IEEE GRSM 9(1), 2021 (preprint 2020).

They are used here to evaluate the TensorFlow port of SIPSA-Net (J. Lee, S. Seo, M. Kim,
"SIPSA-Net: Shift-Invariant Pan Sharpening with Moving Object Alignment for Satellite Imagery",
CVPR 2021) against the classical baselines of :mod:`sipsa_tf.baselines`.

Conventions
-----------
* Images are NumPy arrays ``(H, W, C)`` (a 2-D ``(H, W)`` array is one band); any real dtype and
  any radiometric scale (DN, reflectance, [0, 1]) unless a function says otherwise. Everything is
  computed in float64.
* PAN is ``(H, W)`` or ``(H, W, 1)``.
* Full-reference indices take ``(x, y)`` = ``(fused, reference)``. Only ERGAS (normalised by the
  reference band means) and Q2n (blocks normalised by the reference statistics) depend on the
  order.
* Ideal values: Q = Q2n = SCC = QNR = HQNR = 1, SAM = ERGAS = D_lambda = D_s = 0.

Differences from the MATLAB toolbox (all deliberate and small):

* ``q2n`` does not cast the images to ``uint16`` first (the toolbox's ``q2n.m`` does, which
  rounds float data); on integer-valued data both agree.
* The window-based UIQI treats a window as flat when the sum of its two variances is below
  ``1e-12`` times the sum of its two mean squares, to absorb float rounding; ``img_qi.m`` tests
  for exact zero.
* ``d_lambda``/``d_s``: the block UIQI uses ``img_qi.m``'s conventions for flat windows instead
  of returning NaN like the toolbox's local ``uqi`` helper.
* ``d_s`` degrades the PAN with its MTF-matched Gaussian and decimation (as :func:`degrade`)
  rather than with MATLAB's ``imresize`` (bicubic with anti-aliasing).
"""
import math
import numbers

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy import ndimage

__all__ = [
    "MTF_GAINS", "DEFAULT_GAINS", "sensor_subset", "q_index", "q2n", "sam", "ergas", "scc", "d_lambda", "d_s",
    "qnr", "d_lambda_khan", "hqnr", "mtf_kernel", "mtf_filter", "decimate", "degrade",
    "reduced_resolution_indices", "full_resolution_indices",
]

# Amplitude of the sensor MTF at the Nyquist frequency of each MS band (band order of the
# products) and of the PAN. All values are the ones hard-coded in Vivone et al.'s toolbox
# (genMTF.m for the MS bands, MTF_PAN.m for the PAN; TGRS 2015 / GRSM 2021 versions); the toolbox
# takes the MTF-matched Gaussian filter design from Aiazzi et al., PE&RS 72(5), 2006.
MTF_GAINS = {
    # QuickBird, bands B, G, R, NIR: genMTF.m case 'QB'; PAN: MTF_PAN.m case 'QB'.
    "QB": {"ms": (0.34, 0.32, 0.30, 0.22), "pan": 0.15},
    # IKONOS, bands B, G, R, NIR: genMTF.m case 'IKONOS'; PAN: MTF_PAN.m case 'IKONOS'.
    "IKONOS": {"ms": (0.26, 0.28, 0.29, 0.28), "pan": 0.17},
    # GeoEye-1, bands B, G, R, NIR: genMTF.m case {'GeoEye1','WV4'}; PAN: MTF_PAN.m same case.
    "GeoEye1": {"ms": (0.23, 0.23, 0.23, 0.23), "pan": 0.16},
    # WorldView-2, 8 bands (coastal ... NIR2): genMTF.m case 'WV2' (0.35 x 7, then 0.27);
    # PAN: MTF_PAN.m case 'WV2'.
    "WV2": {"ms": (0.35,) * 7 + (0.27,), "pan": 0.11},
    # WorldView-3, 8 VNIR bands: genMTF.m case 'WV3'; PAN: MTF_PAN.m case 'WV3'.
    "WV3": {"ms": (0.325, 0.355, 0.360, 0.350, 0.365, 0.360, 0.335, 0.315), "pan": 0.14},
}

# Gains used when the sensor is unknown: genMTF.m 'otherwise' branch and MTF_PAN.m case 'none'.
DEFAULT_GAINS = {"ms": 0.3, "pan": 0.15}

_SENSOR_ALIASES = {
    "qb": "QB", "quickbird": "QB",
    "ikonos": "IKONOS",
    "geoeye1": "GeoEye1", "geoeye-1": "GeoEye1", "ge1": "GeoEye1",
    "wv2": "WV2", "worldview2": "WV2", "worldview-2": "WV2",
    "wv3": "WV3", "worldview3": "WV3", "worldview-3": "WV3",
}

# Relative thresholds below which window variances / mean squares count as zero (float rounding).
_FLAT_RTOL = 1e-12


# --------------------------------------------------------------------------------------------
# Input handling
# --------------------------------------------------------------------------------------------

def _as_image(a, name):
    """Returns ``a`` as a float64 ``(H, W, C)`` array or raises ValueError."""
    a = np.asarray(a)
    if a.dtype == object or not (np.issubdtype(a.dtype, np.integer)
                                 or np.issubdtype(a.dtype, np.floating)
                                 or a.dtype == bool):
        raise ValueError("%s must be a real numeric array, got dtype %s." % (name, a.dtype))
    if a.ndim == 2:
        a = a[:, :, np.newaxis]
    elif a.ndim != 3:
        raise ValueError("%s must be an (H, W) or (H, W, C) array, got shape %s."
                         % (name, a.shape))
    if a.shape[0] < 1 or a.shape[1] < 1 or a.shape[2] < 1:
        raise ValueError("%s must not be empty, got shape %s." % (name, a.shape))
    return a.astype(np.float64)


def _as_pan(a, name="pan"):
    """Returns a PAN image as a float64 ``(H, W)`` array or raises ValueError."""
    a = np.asarray(a)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim != 2:
        raise ValueError("%s must be an (H, W) or (H, W, 1) array, got shape %s."
                         % (name, a.shape))
    return _as_image(a, name)[:, :, 0]


def _same_shape(x, y, xname="x", yname="y"):
    x = _as_image(x, xname)
    y = _as_image(y, yname)
    if x.shape != y.shape:
        raise ValueError("%s and %s must have the same shape, got %s and %s."
                         % (xname, yname, x.shape, y.shape))
    return x, y


def _check_ratio(ratio):
    if isinstance(ratio, bool) or not isinstance(ratio, numbers.Integral) or ratio < 1:
        raise ValueError("ratio must be a positive integer, got %r." % (ratio,))
    return int(ratio)


def _check_block(block, name="block"):
    if isinstance(block, bool) or not isinstance(block, numbers.Integral) or block < 2:
        raise ValueError("%s must be an integer >= 2, got %r." % (name, block))
    return int(block)


def _scale_between(high, low, hname="fused", lname="ms"):
    """Integer s with high spatial size = s * low spatial size, or ValueError."""
    (hh, hw), (lh, lw) = high.shape[:2], low.shape[:2]
    if hh % lh or hw % lw or hh // lh != hw // lw:
        raise ValueError("%s (%dx%d) must be an integer multiple, the same along both axes, "
                         "of %s (%dx%d)." % (hname, hh, hw, lname, lh, lw))
    return hh // lh


# --------------------------------------------------------------------------------------------
# Universal image quality index (Wang & Bovik 2002) over windows
# --------------------------------------------------------------------------------------------

def _box_means(a, block, shift):
    """Means of ``a`` over block x block windows with top-left corners on a ``shift`` grid."""
    rows = sliding_window_view(a, block, axis=1)[:, ::shift].sum(axis=-1)
    return sliding_window_view(rows, block, axis=0)[::shift].sum(axis=-1) / float(block * block)


def _uiqi_map(x, y, block, shift):
    """UIQI of two 2-D arrays on every block x block window of a ``shift`` grid.

    Flat-window conventions of the toolbox's img_qi.m: both windows flat (variance sum zero)
    and a non-zero mean sum -> 2 mx my / (mx^2 + my^2); both means zero -> 1.
    """
    h, w = x.shape
    if block > h or block > w:
        raise ValueError("block (%d) is larger than the image (%dx%d)." % (block, h, w))
    mx = _box_means(x, block, shift)
    my = _box_means(y, block, shift)
    sxx = _box_means(x * x, block, shift)
    syy = _box_means(y * y, block, shift)
    sxy = _box_means(x * y, block, shift)
    vsum = (sxx - mx * mx) + (syy - my * my)
    cxy = sxy - mx * my
    msum = mx * mx + my * my
    flat = vsum <= _FLAT_RTOL * (sxx + syy)
    dark = msum == 0
    q = np.ones_like(mx)
    sel = flat & ~dark
    q[sel] = 2.0 * mx[sel] * my[sel] / msum[sel]
    sel = ~flat & ~dark
    q[sel] = 4.0 * cxy[sel] * mx[sel] * my[sel] / (vsum[sel] * msum[sel])
    return q


def q_index(x, y, block=32, return_per_band=False):
    """Universal image quality index Q (UIQI, Wang & Bovik 2002), averaged over bands.

    For each band, Q = 4 cov(x, y) mean(x) mean(y) / ((var(x) + var(y)) (mean(x)^2 + mean(y)^2))
    is computed on every ``block`` x ``block`` window sliding with stride 1 ("valid" windows
    only, as ``filter2(..., 'valid')`` in the toolbox's ``img_qi.m`` called by ``Q.m`` with
    block 32), averaged over the windows, then averaged over the bands. Flat windows follow
    ``img_qi.m`` (see module docstring).

    Args:
        x: fused image, (H, W, C) or (H, W).
        y: reference image, same shape.
        block: window side in pixels (>= 2, <= H and W). Toolbox default 32.
        return_per_band: if True also return the per-band values.

    Note: ``sewar.uqi`` (0.4.10) is not the same index: it feeds window means into img_qi's
    formula for window sums and averages a cropped same-size map (see tests/test_quality.py).

    Returns:
        float in [-1, 1] (1 = identical); with ``return_per_band`` the tuple
        ``(mean, per_band)`` where ``per_band`` has shape (C,).
    """
    x, y = _same_shape(x, y)
    block = _check_block(block)
    per_band = np.array([_uiqi_map(x[:, :, c], y[:, :, c], block, 1).mean()
                         for c in range(x.shape[2])])
    value = float(per_band.mean())
    return (value, per_band) if return_per_band else value


def _block_q(x, y, block, shift):
    """Mean of the UIQI map of two 2-D arrays (``shift`` None -> non-overlapping blocks)."""
    return float(_uiqi_map(x, y, block, block if shift is None else shift).mean())


# --------------------------------------------------------------------------------------------
# Q2n (Garzelli & Nencini 2009): hypercomplex UIQI
# --------------------------------------------------------------------------------------------

def _cd_conj(a):
    """Cayley-Dickson conjugate over the last axis (negates all but the real part)."""
    out = -a
    out[..., 0] = a[..., 0]
    return out


def _cd_mul(p, q):
    """Cayley-Dickson product of hypercomplex numbers stored on the last axis (size 2^k).

    Recursive on halves p = (a, b), q = (c, d):
    p q = (a c - d* b, a* d* + c b*), with * the conjugate; for scalars it is the real product.
    This is the convention of the toolbox's onion_mult.m / onion_mult2D.m: the complex product
    for 2 components; for 4 it equals Hamilton's quaternion product with the sign of its 4th
    component flipped (a linear isometry, so the moduli used by Q2n are Hamilton's); for 8 it is
    likewise norm-multiplicative, |p q| = |p| |q|.
    """
    n = p.shape[-1]
    if n == 1:
        return p * q
    h = n // 2
    a, b = p[..., :h], p[..., h:]
    c, d = q[..., :h], q[..., h:]
    first = _cd_mul(a, c) - _cd_mul(_cd_conj(d), b)
    second = _cd_mul(_cd_conj(a), _cd_conj(d)) + _cd_mul(c, _cd_conj(b))
    return np.concatenate([first, second], axis=-1)


def _onions_quality(ref, fus):
    """Q2n value of each block: ref, fus of shape (..., b, b, N), N a power of two."""
    npix = ref.shape[-3] * ref.shape[-2]
    k = npix / (npix - 1.0)
    axes = (-3, -2)
    mean = ref.mean(axis=axes, keepdims=True)
    std = ref.std(axis=axes, ddof=1, keepdims=True)
    std = np.where(std == 0, np.finfo(np.float64).eps, std)
    r = (ref - mean) / std + 1.0
    # The toolbox only shifts the fused band when the reference block band has zero mean.
    f = np.where(mean == 0, fus - mean + 1.0, (fus - mean) / std + 1.0)
    f = _cd_conj(f)
    m1 = r.mean(axis=axes)
    m2 = f.mean(axis=axes)
    n1 = (m1 * m1).sum(axis=-1)
    n2 = (m2 * m2).sum(axis=-1)
    e1 = (r * r).sum(axis=-1).mean(axis=(-2, -1))
    e2 = (f * f).sum(axis=-1).mean(axis=(-2, -1))
    var_sum = k * (e1 + e2) - k * (n1 + n2)
    mean_bias = 2.0 * np.sqrt(n1 * n2) / (n1 + n2)
    cov = k * _cd_mul(r, f).mean(axis=axes) - k * _cd_mul(m1, m2)
    zero = var_sum == 0
    scale = np.where(zero, 0.0, mean_bias * 2.0 / np.where(zero, 1.0, var_sum))
    q = cov * scale[..., np.newaxis]
    q[zero, -1] = mean_bias[zero]
    return np.sqrt((q * q).sum(axis=-1))


def q2n(x, y, block=32, shift=32, return_map=False):
    """Q2n / Q4 / Q8 hypercomplex quality index (Garzelli & Nencini 2009), as the toolbox q2n.m.

    The C bands of each pixel are one hypercomplex number (zero bands are appended up to the
    next power of two: 2 complex, 4 quaternion, 8 octonion, ...). Each ``block`` x ``block``
    block on a ``shift`` grid (default: non-overlapping 32 x 32) is normalised per band by the
    reference block's mean and standard deviation; the block value is
    |sigma_xy| / (sigma_x^2 + sigma_y^2) * 2 * 2 |m_x| |m_y| / (|m_x|^2 + |m_y|^2), with the
    hypercomplex covariance sigma_xy = E[y x*] - E[y] E[x]*. If the grid does not fit the image,
    the image is extended at the bottom/right by mirror reflection, as q2n.m does. The index is
    the mean over the blocks.

    Args:
        x: fused image, (H, W, C).
        y: reference image, same shape.
        block: block side in pixels (>= 2). Toolbox default 32.
        shift: block stride in pixels (>= 1). Toolbox default 32.
        return_map: if True also return the (rows, cols) map of block values.

    Returns:
        float in [0, 1] (1 = identical); with ``return_map`` the tuple ``(value, map)``.
    """
    x, y = _same_shape(x, y)
    block = _check_block(block)
    if isinstance(shift, bool) or not isinstance(shift, numbers.Integral) or shift < 1:
        raise ValueError("shift must be a positive integer, got %r." % (shift,))
    h, w, c = y.shape
    rows, cols = -(-h // shift), -(-w // shift)
    pad_h = max(0, (rows - 1) * shift + block - h)
    pad_w = max(0, (cols - 1) * shift + block - w)
    n = 1 << (c - 1).bit_length()
    pad = ((0, pad_h), (0, pad_w), (0, 0))
    x = np.pad(np.pad(x, pad, mode="symmetric"), ((0, 0), (0, 0), (0, n - c)))
    y = np.pad(np.pad(y, pad, mode="symmetric"), ((0, 0), (0, 0), (0, n - c)))
    # Blocks as (rows, cols, block, block, n).
    xb = np.moveaxis(sliding_window_view(x, (block, block), axis=(0, 1))[::shift, ::shift], 2, -1)
    yb = np.moveaxis(sliding_window_view(y, (block, block), axis=(0, 1))[::shift, ::shift], 2, -1)
    qmap = _onions_quality(yb[:rows, :cols], xb[:rows, :cols])
    value = float(qmap.mean())
    return (value, qmap) if return_map else value


# --------------------------------------------------------------------------------------------
# SAM, ERGAS, SCC
# --------------------------------------------------------------------------------------------

def sam(x, y, return_map=False):
    """Spectral angle mapper (Yuhas et al. 1992), mean over pixels, in degrees.

    Angle between the spectra of each pixel, arccos(<x, y> / (|x| |y|)), computed in the
    numerically stable form 2 atan2(|u - v|, |u + v|) with u = x/|x|, v = y/|y| (exactly 0 for
    identical spectra). As in the toolbox's SAM.m the mean is taken over the pixels where
    |x| |y| is non-zero.

    Args:
        x: fused image, (H, W, C).
        y: reference image, same shape.
        return_map: if True also return the (H, W) angle map in degrees (NaN where undefined).

    Returns:
        float in [0, 180] (0 = identical spectra; NaN if no pixel has two non-zero spectra);
        with ``return_map`` the tuple ``(value, map)``.
    """
    x, y = _same_shape(x, y)
    nx = np.sqrt((x * x).sum(axis=-1))
    ny = np.sqrt((y * y).sum(axis=-1))
    valid = (nx * ny) > 0
    angle = np.full(nx.shape, np.nan)
    u = x[valid] / nx[valid][:, np.newaxis]
    v = y[valid] / ny[valid][:, np.newaxis]
    angle[valid] = np.degrees(2.0 * np.arctan2(np.sqrt(((u - v) ** 2).sum(axis=-1)),
                                               np.sqrt(((u + v) ** 2).sum(axis=-1))))
    value = float(angle[valid].mean()) if valid.any() else float("nan")
    return (value, angle) if return_map else value


def ergas(x, y, ratio=4):
    """ERGAS (Wald 2000; toolbox ERGAS.m): 100 / ratio * sqrt(mean_c(RMSE_c^2 / mean(y_c)^2)).

    Args:
        x: fused image, (H, W, C).
        y: reference image, same shape; every band must have a non-zero mean.
        ratio: PAN/MS scale ratio (toolbox convention: 100/ratio, i.e. 25 for ratio 4).

    Returns:
        float >= 0 (0 = identical), in percent-like units.
    """
    x, y = _same_shape(x, y)
    if not isinstance(ratio, numbers.Real) or isinstance(ratio, bool) or ratio <= 0:
        raise ValueError("ratio must be a positive number, got %r." % (ratio,))
    mse = ((x - y) ** 2).mean(axis=(0, 1))
    mu = y.mean(axis=(0, 1))
    if np.any(mu == 0):
        raise ValueError("ERGAS is undefined because a reference band has zero mean.")
    return float(100.0 / ratio * np.sqrt(np.mean(mse / mu ** 2)))


def _sobel_magnitude(band):
    return np.hypot(ndimage.sobel(band, axis=0, mode="constant"),
                    ndimage.sobel(band, axis=1, mode="constant"))


def scc(x, y, mode="band"):
    """Spatial correlation coefficient between the Sobel edge maps of two images.

    Edge map: Sobel gradient magnitude sqrt(Gx^2 + Gy^2) with the 3x3 kernels
    [1, 2, 1]^T [-1, 0, 1] and its transpose (scipy.ndimage.sobel, the kernels of MATLAB's
    fspecial('sobel') used by the toolbox's SCC.m; not a Laplacian high-pass).

    * ``mode='band'`` (default): the edge maps are computed on each full band and only the inner
      pixels (the 1-pixel border dropped, so no boundary handling enters) are kept; per band the
      Pearson correlation coefficient of the two edge maps is taken, then the mean over bands.
      A band where both edge maps are constant scores 1 if they are equal, else 0; one constant
      edge map scores 0.
    * ``mode='toolbox'``: exactly SCC.m: crop the 1-pixel border first, Sobel with zero padding,
      then one global uncentred correlation over all bands,
      sum(Ex * Ey) / sqrt(sum(Ex^2) sum(Ey^2)).

    Args:
        x: fused image, (H, W, C) with H, W >= 3.
        y: reference image, same shape.
        mode: 'band' or 'toolbox'.

    Returns:
        float in [-1, 1] for 'band', [0, 1] for 'toolbox' (1 = same edge structure).
    """
    x, y = _same_shape(x, y)
    if x.shape[0] < 3 or x.shape[1] < 3:
        raise ValueError("scc needs images of at least 3x3 pixels, got %dx%d."
                         % x.shape[:2])
    if mode == "toolbox":
        ex = np.stack([_sobel_magnitude(x[1:-1, 1:-1, c]) for c in range(x.shape[2])], -1)
        ey = np.stack([_sobel_magnitude(y[1:-1, 1:-1, c]) for c in range(y.shape[2])], -1)
        den = np.sqrt((ex * ex).sum() * (ey * ey).sum())
        if den == 0:
            return 1.0 if np.array_equal(ex, ey) else 0.0
        return float((ex * ey).sum() / den)
    if mode != "band":
        raise ValueError("mode must be 'band' or 'toolbox', got %r." % (mode,))
    values = []
    for c in range(x.shape[2]):
        ex = _sobel_magnitude(x[:, :, c])[1:-1, 1:-1].ravel()
        ey = _sobel_magnitude(y[:, :, c])[1:-1, 1:-1].ravel()
        dx = ex - ex.mean()
        dy = ey - ey.mean()
        sx, sy = np.sqrt((dx * dx).sum()), np.sqrt((dy * dy).sum())
        if sx == 0 or sy == 0:
            values.append(1.0 if (sx == 0 and sy == 0 and np.array_equal(ex, ey)) else 0.0)
        else:
            values.append(float((dx * dy).sum() / (sx * sy)))
    return float(np.mean(values))


# --------------------------------------------------------------------------------------------
# MTF-matched filters and the Wald protocol
# --------------------------------------------------------------------------------------------

def _resolve_gains(sensor, n_bands, pan):
    """Per-band Nyquist gains for ``sensor`` (name, None, a number or a sequence)."""
    if isinstance(sensor, dict):  # {"ms": gains of the bands used, "pan": gain}
        return _resolve_gains(sensor["pan" if pan else "ms"], n_bands, pan)
    if sensor is None or (isinstance(sensor, str) and sensor.lower() == "none"):
        gains = [DEFAULT_GAINS["pan" if pan else "ms"]] * n_bands
    elif isinstance(sensor, str):
        key = sensor if sensor in MTF_GAINS else _SENSOR_ALIASES.get(sensor.lower())
        if key is None:
            raise ValueError("unknown sensor %r; use one of %s, None, or explicit gains."
                             % (sensor, ", ".join(sorted(MTF_GAINS))))
        if pan:
            gains = [MTF_GAINS[key]["pan"]] * n_bands
        else:
            gains = list(MTF_GAINS[key]["ms"])
            if len(gains) != n_bands:
                raise ValueError("sensor %r has %d MS bands but the image has %d bands; pass "
                                 "pan=True for a PAN image or give the gains explicitly."
                                 % (key, len(gains), n_bands))
    elif isinstance(sensor, numbers.Real):
        gains = [float(sensor)] * n_bands
    else:
        gains = [float(g) for g in sensor]
        if len(gains) != n_bands:
            raise ValueError("%d gains were given for an image with %d bands."
                             % (len(gains), n_bands))
    return gains


def sensor_subset(sensor, bands):
    """MTF gains of some bands of a sensor, usable as ``sensor`` everywhere in this module.

    Args:
        sensor: a name of ``MTF_GAINS`` (or an alias), or None for the generic gains.
        bands: 1-based band numbers in the sensor's band order (e.g. (5, 3, 2): R, G, B of
            WorldView-2/3).

    Returns:
        dict ``{"ms": [gain per selected band], "pan": PAN gain}``.
    """
    if sensor is None:
        return {"ms": [DEFAULT_GAINS["ms"]] * len(bands), "pan": DEFAULT_GAINS["pan"]}
    key = sensor if sensor in MTF_GAINS else _SENSOR_ALIASES.get(str(sensor).lower())
    if key is None:
        raise ValueError("unknown sensor %r; use one of %s or None."
                         % (sensor, ", ".join(sorted(MTF_GAINS))))
    gains = MTF_GAINS[key]["ms"]
    if not all(1 <= int(b) <= len(gains) for b in bands):
        raise ValueError("bands %s out of range for %s (%d bands)." % (tuple(bands), key,
                                                                      len(gains)))
    return {"ms": [gains[int(b) - 1] for b in bands], "pan": MTF_GAINS[key]["pan"]}


def mtf_kernel(gain, ratio=4, kernel_size=41):
    """MTF-matched low-pass FIR filter, exactly as the toolbox's genMTF.m / MTF_PAN.m build it.

    A Gaussian *frequency response* with standard deviation
    alpha = sqrt(((N - 1) * fcut / 2)^2 / (-2 ln gain)) samples, fcut = 1 / ratio, is sampled on
    the N x N grid (``fspecial('gaussian', N, alpha)`` normalised to a peak of 1), turned into a
    spatial kernel by frequency sampling (``fsamp2``: centred inverse 2-D DFT) and windowed by a
    circularly symmetric Kaiser window (beta = 0.5, MATLAB's ``kaiser(N)``) made from the 1-D
    window by rotation (``fwind1``, Huang's method). The design intends a gain of ``gain`` at the
    MS Nyquist frequency (1 / (2 ratio) cycles/pixel); because fsamp2 spaces the N samples
    2/N apart while the design assumes 2/(N-1), and because of the window, the realised gain is
    about 6% lower (e.g. 0.28 for 0.3 at ratio 4) and the DC gain is about 0.998 (not
    renormalised, as in the toolbox).

    Args:
        gain: amplitude of the MTF at the MS Nyquist frequency, in (0, 1).
        ratio: PAN/MS scale ratio (positive integer).
        kernel_size: odd kernel side N (toolbox: 41).

    Returns:
        (N, N) float64 kernel, symmetric.
    """
    ratio = _check_ratio(ratio)
    if not 0 < gain < 1:
        raise ValueError("the MTF gain must be in (0, 1), got %r." % (gain,))
    n = int(kernel_size)
    if n != kernel_size or n < 3 or n % 2 == 0:
        raise ValueError("kernel_size must be an odd integer >= 3, got %r." % (kernel_size,))
    alpha = math.sqrt(((n - 1) * (1.0 / ratio) / 2.0) ** 2 / (-2.0 * math.log(gain)))
    t = np.arange(n) - (n - 1) / 2.0
    g = np.exp(-(t[:, np.newaxis] ** 2 + t[np.newaxis, :] ** 2) / (2.0 * alpha * alpha))
    g[g < np.finfo(np.float64).eps * g.max()] = 0.0    # as fspecial
    response = g / g.max()
    h = np.real(np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(response))))
    tw = t / (n - 1)
    radius = np.hypot(tw[:, np.newaxis], tw[np.newaxis, :])
    window = np.interp(radius, tw, np.kaiser(n, 0.5))
    window[radius > tw[-1]] = 0.0
    return h * window


def mtf_filter(image, sensor=None, ratio=4, kernel_size=41, pan=False):
    """Low-pass filters each band with its MTF-matched kernel (toolbox MTF.m / MTF_PAN.m).

    Boundary: replicate the edge pixels (``mode='nearest'``), as ``imfilter(..., 'replicate')``
    in the toolbox.

    Args:
        image: (H, W, C) or (H, W) array.
        sensor: 'WV3', 'WV2', 'QB', 'IKONOS', 'GeoEye1' (see ``MTF_GAINS``; a few aliases such as
            'GE1' are accepted), None/'none' for the toolbox defaults (0.3 MS, 0.15 PAN), a
            single gain, one gain per band, or a dict ``{"ms": ..., "pan": ...}`` of any of
            these (e.g. the gains of a band subset such as the RGB bands of an 8-band sensor,
            see :func:`sensor_subset`).
        ratio: PAN/MS scale ratio.
        kernel_size: odd FIR size (toolbox: 41).
        pan: use the sensor's PAN gain for every band instead of the per-band MS gains.

    Returns:
        float64 array of the input's shape.
    """
    squeeze = np.ndim(image) == 2
    img = _as_image(image, "image")
    gains = _resolve_gains(sensor, img.shape[2], pan)
    out = np.empty_like(img)
    kernels = {}
    for c, gain in enumerate(gains):
        if gain not in kernels:
            kernels[gain] = mtf_kernel(gain, ratio, kernel_size)
        out[:, :, c] = _correlate_replicate(img[:, :, c], kernels[gain])
    return out[:, :, 0] if squeeze else out


def _correlate_replicate(band, kernel):
    """Same-size correlation with edge replication, via the FFT of the padded band.

    Equal (to float rounding) to ``scipy.ndimage.correlate(band, kernel, mode='nearest')`` but
    O(HW log HW) instead of O(HW N^2) for the 41 x 41 kernels.
    """
    n = kernel.shape[0]
    pad = n // 2
    padded = np.pad(band, pad, mode="edge")
    shape = padded.shape
    spectrum = np.fft.rfft2(padded) * np.fft.rfft2(kernel[::-1, ::-1], s=shape)
    full = np.fft.irfft2(spectrum, s=shape)
    return full[n - 1:n - 1 + band.shape[0], n - 1:n - 1 + band.shape[1]]


def decimate(image, ratio=4, offset=None):
    """Keeps one pixel in ``ratio`` along both axes, starting at ``offset`` (default ratio // 2).

    The default offset reproduces MATLAB's ``imresize(I, 1/ratio, 'nearest')`` used by the
    toolbox (0-based rows/cols ratio//2, ratio//2 + ratio, ...), i.e. the pixel nearest to the
    centre of each ratio x ratio cell.
    """
    ratio = _check_ratio(ratio)
    offset = ratio // 2 if offset is None else int(offset)
    if not 0 <= offset < ratio:
        raise ValueError("offset must be in [0, ratio), got %r." % (offset,))
    return np.asarray(image)[offset::ratio, offset::ratio]


def degrade(ms, pan, sensor=None, ratio=4):
    """Wald-protocol degradation: MTF-matched low-pass then decimation by ``ratio``.

    MS bands use the sensor's MS gains, the PAN its PAN gain (the 2015 toolbox's
    resize_images.m used ``imresize`` for the PAN instead); decimation as :func:`decimate`.

    Args:
        ms: (h, w, C) multispectral image, h and w multiples of ``ratio``.
        pan: (ratio*h, ratio*w) or (ratio*h, ratio*w, 1) panchromatic image.
        sensor: see :func:`mtf_filter`.
        ratio: PAN/MS scale ratio.

    Returns:
        ``(ms_lr, pan_lr)``: float64 (h/ratio, w/ratio, C) and PAN at (h, w) with the input's
        number of dimensions.
    """
    ratio = _check_ratio(ratio)
    ms_img = _as_image(ms, "ms")
    pan_img = _as_pan(pan)
    h, w = ms_img.shape[:2]
    if h % ratio or w % ratio:
        raise ValueError("the MS size (%dx%d) must be a multiple of ratio %d." % (h, w, ratio))
    if pan_img.shape != (ratio * h, ratio * w):
        raise ValueError("PAN must be ratio times the MS size: got PAN %dx%d for MS %dx%d and "
                         "ratio %d." % (pan_img.shape + (h, w, ratio)))
    ms_lr = decimate(mtf_filter(ms_img, sensor, ratio), ratio)
    pan_lr = decimate(mtf_filter(pan_img, sensor, ratio, pan=True), ratio)
    if np.ndim(pan) == 3:
        pan_lr = pan_lr[:, :, np.newaxis]
    return ms_lr, pan_lr


# --------------------------------------------------------------------------------------------
# No-reference indices: QNR (Alparone et al. 2008) and HQNR (Aiazzi et al. 2014, Vivone 2020)
# --------------------------------------------------------------------------------------------

def _lr_params(scale, block, shift, block_lr):
    """Window side and stride at the MS scale."""
    if block_lr is None:
        if block % scale:
            raise ValueError("block (%d) must be a multiple of the scale ratio %d; or pass "
                             "block_lr." % (block, scale))
        block_lr = block // scale
        if block_lr < 2:
            raise ValueError("block / ratio must be at least 2, got block %d and ratio %d."
                             % (block, scale))
    block_lr = _check_block(block_lr, "block_lr")
    if shift is None:
        return block_lr, None
    return block_lr, max(1, shift // scale)


def d_lambda(fused, ms, block=32, p=1, shift=None, block_lr=None):
    """Spectral distortion D_lambda of QNR (Alparone et al. 2008; toolbox D_lambda.m).

    D_lambda = (mean over band pairs i < j of |Q(F_i, F_j) - Q(M_i, M_j)|^p)^(1/p), where Q is
    the UIQI on ``block`` x ``block`` windows averaged over windows. ``ms`` may be the original
    low-resolution MS (the QNR paper: its windows are block/s, s = fused size / ms size) or the
    MS interpolated to the fused size (toolbox 1.0 option: same window).

    Args:
        fused: (H, W, C) pan-sharpened image, C >= 2.
        ms: (H/s, W/s, C) MS image, s a positive integer dividing ``block``.
        block: window side at the fused scale (toolbox: 32).
        p: exponent (>= 1).
        shift: window stride at the fused scale; None = non-overlapping blocks (toolbox
            ``blockproc``), 1 = sliding window. At the MS scale the stride is max(1, shift // s)
            (non-overlapping if None).
        block_lr: window side at the MS scale; default block // s.

    Returns:
        float in [0, 1] for typical images (0 = no spectral distortion).
    """
    f = _as_image(fused, "fused")
    m = _as_image(ms, "ms")
    if f.shape[2] != m.shape[2] or f.shape[2] < 2:
        raise ValueError("fused and ms must have the same number (>= 2) of bands, got %d and %d."
                         % (f.shape[2], m.shape[2]))
    block = _check_block(block)
    block_lr, shift_lr = _lr_params(_scale_between(f, m), block, shift, block_lr)
    n = f.shape[2]
    total = 0.0
    for i in range(n - 1):
        for j in range(i + 1, n):
            q_f = _block_q(f[:, :, i], f[:, :, j], block, shift)
            q_m = _block_q(m[:, :, i], m[:, :, j], block_lr, shift_lr)
            total += abs(q_f - q_m) ** p
    return float((total / (n * (n - 1) / 2.0)) ** (1.0 / p))


def d_s(fused, ms, pan, ratio=4, block=32, q=1, sensor=None, shift=None, pan_lr=None,
        block_lr=None):
    """Spatial distortion D_s of QNR (Alparone et al. 2008; toolbox D_s.m).

    D_s = (mean over bands l of |Q(F_l, P) - Q(M_l, P_lr)|^q)^(1/q), with Q the window-averaged
    UIQI (windows ``block`` at the PAN scale, block/s at the MS scale). P_lr is the PAN degraded
    to the MS scale: by default the MTF-matched PAN filter followed by decimation (as
    :func:`degrade`; the toolbox uses MATLAB ``imresize``), or the ``pan_lr`` given.

    Args:
        fused: (H, W, C) pan-sharpened image.
        ms: (H/s, W/s, C) MS image; without ``pan_lr``, s must equal ``ratio``.
        pan: (H, W) or (H, W, 1) PAN image.
        ratio: PAN/MS scale ratio used to degrade the PAN.
        block: window side at the PAN scale (toolbox: 32).
        q: exponent (>= 1).
        sensor: for the PAN MTF gain (see :func:`mtf_filter`).
        shift: window stride, as in :func:`d_lambda`.
        pan_lr: optional PAN already at the MS scale, (H/s, W/s) or (H/s, W/s, 1).
        block_lr: window side at the MS scale; default block // s.

    Returns:
        float in [0, 1] for typical images (0 = no spatial distortion).
    """
    f = _as_image(fused, "fused")
    m = _as_image(ms, "ms")
    p = _as_pan(pan)
    if f.shape[2] != m.shape[2]:
        raise ValueError("fused and ms must have the same number of bands, got %d and %d."
                         % (f.shape[2], m.shape[2]))
    if p.shape != f.shape[:2]:
        raise ValueError("pan (%dx%d) must have the size of fused (%dx%d)."
                         % (p.shape + f.shape[:2]))
    block = _check_block(block)
    scale = _scale_between(f, m)
    if pan_lr is None:
        ratio = _check_ratio(ratio)
        if scale != ratio:
            raise ValueError("ms must be ratio (%d) times smaller than fused, got %d; pass "
                             "pan_lr for other scales." % (ratio, scale))
        p_lr = decimate(mtf_filter(p, sensor, ratio, pan=True), ratio)
    else:
        p_lr = _as_pan(pan_lr, "pan_lr")
        if p_lr.shape != m.shape[:2]:
            raise ValueError("pan_lr (%dx%d) must have the size of ms (%dx%d)."
                             % (p_lr.shape + m.shape[:2]))
    block_lr, shift_lr = _lr_params(scale, block, shift, block_lr)
    total = 0.0
    for band in range(f.shape[2]):
        q_high = _block_q(f[:, :, band], p, block, shift)
        q_low = _block_q(m[:, :, band], p_lr, block_lr, shift_lr)
        total += abs(q_high - q_low) ** q
    return float((total / f.shape[2]) ** (1.0 / q))


def qnr(fused, ms, pan, ratio=4, block=32, p=1, q=1, alpha=1, beta=1, sensor=None, shift=None,
        pan_lr=None, block_lr=None):
    """Quality with No Reference (Alparone et al. 2008; toolbox QNR.m).

    QNR = (1 - D_lambda)^alpha (1 - D_s)^beta, see :func:`d_lambda` and :func:`d_s` for the
    arguments.

    Returns:
        ``(qnr, d_lambda, d_s)``; QNR in [0, 1] for typical images, 1 is ideal.
    """
    dl = d_lambda(fused, ms, block=block, p=p, shift=shift, block_lr=block_lr)
    ds = d_s(fused, ms, pan, ratio=ratio, block=block, q=q, sensor=sensor, shift=shift,
             pan_lr=pan_lr, block_lr=block_lr)
    return float((1.0 - dl) ** alpha * (1.0 - ds) ** beta), dl, ds


def d_lambda_khan(fused, ms, sensor, ratio=4, block=32):
    """Khan's spectral distortion (Khan, Alparone, Chanussot, IEEE TGRS 2009), used by HQNR.

    D_lambda_K = 1 - Q2n(decimate(MTF(fused)), ms): the fused image is low-passed with the MS
    MTF-matched filters, decimated to the MS scale (as :func:`degrade`) and compared with the
    original MS by Q2n on ``block`` x ``block`` blocks at the MS scale (the decimated variant;
    the 2020 toolbox's D_lambda_K.m compares at the PAN scale with the interpolated MS).

    Args:
        fused: (H, W, C) pan-sharpened image.
        ms: (H/ratio, W/ratio, C) original MS image.
        sensor: see :func:`mtf_filter` (None for the generic 0.3 gains).
        ratio: PAN/MS scale ratio.
        block: Q2n block side at the MS scale.

    Returns:
        float in [0, 1] (0 = fused consistent with the MS).
    """
    ratio = _check_ratio(ratio)
    f = _as_image(fused, "fused")
    m = _as_image(ms, "ms")
    h, w, c = m.shape
    if f.shape != (ratio * h, ratio * w, c):
        raise ValueError("fused must be ratio times the MS size with the same bands: got %s for "
                         "MS %s and ratio %d." % (f.shape, m.shape, ratio))
    f_lr = decimate(mtf_filter(f, sensor, ratio), ratio)
    return 1.0 - q2n(f_lr, m, block=block, shift=block)


def hqnr(fused, ms, pan, sensor=None, ratio=4, block=32, q=1, shift=None):
    """Hybrid QNR (Aiazzi et al. 2014; Vivone et al. 2020, toolbox HQNR.m).

    HQNR = (1 - D_lambda_K) (1 - D_s), with :func:`d_lambda_khan` and :func:`d_s`.

    Args:
        fused: (H, W, C) pan-sharpened image.
        ms: (H/ratio, W/ratio, C) original MS image.
        pan: (H, W) or (H, W, 1) PAN image.
        sensor: see :func:`mtf_filter`.
        ratio, block, q, shift: as in :func:`d_s`.

    Returns:
        ``(hqnr, d_lambda_khan, d_s)``; HQNR in [0, 1], 1 is ideal.
    """
    dlk = d_lambda_khan(fused, ms, sensor, ratio=ratio, block=block)
    ds = d_s(fused, ms, pan, ratio=ratio, block=block, q=q, sensor=sensor, shift=shift)
    return float((1.0 - dlk) * (1.0 - ds)), dlk, ds


# --------------------------------------------------------------------------------------------
# Protocol helpers
# --------------------------------------------------------------------------------------------

def reduced_resolution_indices(fused, reference, ratio=4, sensor=None, block=32):
    """Full-reference indices of the reduced-resolution (Wald) protocol.

    Typical use: ``ms_lr, pan_lr = degrade(ms, pan, sensor, ratio)``, fuse ``(ms_lr, pan_lr)``
    and compare the result with the original ``ms`` as reference.

    Args:
        fused: (H, W, C) pan-sharpened image.
        reference: (H, W, C) reference (ground truth) image.
        ratio: PAN/MS scale ratio (ERGAS normalisation).
        sensor: accepted for symmetry with :func:`full_resolution_indices`; these indices do not
            depend on the sensor.
        block: block side for Q2n (non-overlapping) and Q (sliding); at most H and W.

    Returns:
        dict with keys 'q2n', 'q', 'sam' (degrees), 'ergas', 'scc' (mode 'band').
    """
    del sensor
    return {
        "q2n": q2n(fused, reference, block=block, shift=block),
        "q": q_index(fused, reference, block=block),
        "sam": sam(fused, reference),
        "ergas": ergas(fused, reference, ratio=ratio),
        "scc": scc(fused, reference),
    }


def full_resolution_indices(fused, ms, pan, ratio=4, sensor=None, block=32):
    """No-reference indices of the full-resolution protocol.

    Args:
        fused: (H, W, C) pan-sharpened image.
        ms: (H/ratio, W/ratio, C) original MS image.
        pan: (H, W) or (H, W, 1) PAN image.
        ratio: PAN/MS scale ratio.
        sensor: see :func:`mtf_filter`.
        block: block side at the PAN scale (non-overlapping blocks); Khan's D_lambda uses it at
            the MS scale.

    Returns:
        dict with keys 'd_lambda', 'd_s', 'qnr', 'd_lambda_khan', 'hqnr'.
    """
    dl = d_lambda(fused, ms, block=block)
    ds = d_s(fused, ms, pan, ratio=ratio, block=block, sensor=sensor)
    dlk = d_lambda_khan(fused, ms, sensor, ratio=ratio, block=block)
    return {
        "d_lambda": dl,
        "d_s": ds,
        "qnr": float((1.0 - dl) * (1.0 - ds)),
        "d_lambda_khan": dlk,
        "hqnr": float((1.0 - dlk) * (1.0 - ds)),
    }
