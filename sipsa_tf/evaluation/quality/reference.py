"""Full-reference quality indices: Q (UIQI), Q2n, SAM, ERGAS, SCC.

Part of :mod:`sipsa_tf.evaluation.quality` (definitions, references and conventions there;
docs/design.md, "Metrics and test images").
"""
import numbers

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy import ndimage

from sipsa_tf.evaluation.quality._checks import _FLAT_RTOL, _check_block, _same_shape


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
