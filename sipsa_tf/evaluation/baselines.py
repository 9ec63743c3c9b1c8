"""Classical pan-sharpening baselines in NumPy/SciPy, for comparison with SIPSA-Net.

SIPSA-Net (J. Lee, S. Seo, M. Kim, CVPR 2021) is compared in the literature with interpolation
and component-substitution (CS) methods; the CS methods here follow the formulations of the
pan-sharpening toolbox of Vivone et al. ("A Critical Comparison Among Pansharpening
Algorithms", IEEE TGRS 2015; "A New Benchmarking of Pansharpening Methods", IEEE GRSM 2021).

One interface: ``fuse(method, ms, pan, ratio=4, **kw) -> (H, W, C) float32`` with ``METHODS``
mapping each name to its function:

=========  ==================================================================================
nearest    pixel replication of the MS (no PAN)
bicubic    Keys cubic convolution (a = -0.5) of the MS, MATLAB ``imresize`` alignment (no PAN)
brovey     Brovey transform (Gillespie et al. 1987)
ihs        generalised IHS, fast additive form (Tu et al. 2001)
gs         Gram-Schmidt, mode 1: intensity = mean of the MS bands (Laben & Brower 2000)
gsa        adaptive Gram-Schmidt: intensity by regression of the MS on the PAN (Aiazzi et al. 2007)
=========  ==================================================================================

Inputs: ``ms`` (h, w, C) and ``pan`` (ratio*h, ratio*w) or (ratio*h, ratio*w, 1), any real dtype
and scale. The CS methods upsample the MS with the 'bicubic' method first (keyword
``upsample='nearest'`` to change it).

Note: a runner for GDAL's external ``gdal_pansharpen`` is maintained separately (not in this
module); it can be registered as ``METHODS['gdal']`` with the same ``(ms, pan, ratio, **kw)``
signature.
"""

import numpy as np

from sipsa_tf.evaluation import quality
from sipsa_tf.errors import InputError
from sipsa_tf.io import pairs

__all__ = ["METHODS", "fuse", "nearest", "bicubic", "brovey", "ihs", "gram_schmidt", "gsa",
           "upsample_nearest", "upsample_bicubic"]


# --------------------------------------------------------------------------------------------
# Input checks and interpolation
# --------------------------------------------------------------------------------------------

def _check_inputs(ms, pan, ratio):
    """Validates the inputs; returns float64 ms (h, w, C), pan (H, W) and the int ratio."""
    ms, pan, ratio = pairs.check_arrays(ms, pan, ratio, error=InputError)
    return ms.astype(np.float64), pan.astype(np.float64), ratio


def upsample_nearest(image, ratio):
    """Replicates every pixel of an (h, w, C) array into a ratio x ratio block."""
    return np.repeat(np.repeat(image, ratio, axis=0), ratio, axis=1)


def _keys(d, a=-0.5):
    """Keys (1981) cubic convolution kernel, a = -0.5 (MATLAB imresize 'bicubic')."""
    d = np.abs(d)
    return np.where(d <= 1, (a + 2) * d ** 3 - (a + 3) * d ** 2 + 1,
                    np.where(d < 2, a * d ** 3 - 5 * a * d ** 2 + 8 * a * d - 4 * a, 0.0))


def _cubic_matrix(n, ratio):
    """(ratio*n, n) interpolation matrix of 1-D cubic convolution upsampling by ``ratio``.

    Output pixel i samples the input at u = (i + 0.5) / ratio - 0.5 (pixel centres aligned as in
    MATLAB imresize); taps outside [0, n) are mirrored (half-sample symmetric, as imresize).
    """
    u = (np.arange(ratio * n) + 0.5) / ratio - 0.5
    taps = np.floor(u)[:, np.newaxis] - 1 + np.arange(4)[np.newaxis, :]
    weights = _keys(u[:, np.newaxis] - taps)
    taps = taps.astype(np.int64) % (2 * n)
    taps = np.where(taps >= n, 2 * n - 1 - taps, taps)
    mat = np.zeros((ratio * n, n))
    np.add.at(mat, (np.repeat(np.arange(ratio * n), 4), taps.ravel()), weights.ravel())
    return mat


def upsample_bicubic(image, ratio):
    """Bicubic (Keys, a = -0.5) upsampling of an (h, w, C) array by an integer ``ratio``.

    Equivalent to MATLAB ``imresize(image, ratio, 'bicubic')`` (same kernel, pixel-centre
    alignment and symmetric boundary). Separable: rows then columns, as matrix products.
    """
    rows = _cubic_matrix(image.shape[0], ratio)
    cols = _cubic_matrix(image.shape[1], ratio)
    out = np.tensordot(rows, image, axes=(1, 0))                 # (H, w, C)
    return np.moveaxis(np.tensordot(cols, out, axes=(1, 1)), 0, 1)  # (H, W, C)


_UPSAMPLERS = {"bicubic": upsample_bicubic, "nearest": upsample_nearest}


def _upsampled(ms, ratio, upsample):
    if upsample not in _UPSAMPLERS:
        raise ValueError("upsample must be one of %s, got %r."
                         % (", ".join(sorted(_UPSAMPLERS)), upsample))
    return _UPSAMPLERS[upsample](ms, ratio)


def _match_moments(pan, intensity):
    """PAN with the mean and standard deviation of ``intensity`` (toolbox 'equalisation')."""
    std = pan.std()
    if std == 0:
        return pan - pan.mean() + intensity.mean()
    return (pan - pan.mean()) * (intensity.std() / std) + intensity.mean()


def _gs_inject(ms_up, pan, intensity):
    """Gram-Schmidt injection F_k = MS_k + g_k (P - I), g_k = cov(MS_k, I) / var(I)."""
    p = _match_moments(pan, intensity)
    i0 = intensity - intensity.mean()
    var = (i0 * i0).mean()
    if var == 0:
        gains = np.zeros(ms_up.shape[2])
    else:
        ms0 = ms_up - ms_up.mean(axis=(0, 1))
        gains = np.einsum("hwc,hw->c", ms0, i0) / (i0.size * var)
    return ms_up + gains * (p - intensity)[:, :, np.newaxis]


# --------------------------------------------------------------------------------------------
# Methods
# --------------------------------------------------------------------------------------------

def nearest(ms, pan, ratio=4):
    """Nearest-neighbour upsampling of the MS (each pixel becomes a ratio x ratio block).

    The PAN is only used to check the sizes.
    """
    ms, _, ratio = _check_inputs(ms, pan, ratio)
    return upsample_nearest(ms, ratio)


def bicubic(ms, pan, ratio=4):
    """Bicubic interpolation of the MS ("EXP" in Vivone et al. 2015), no PAN detail.

    Keys' cubic convolution with a = -0.5 and MATLAB ``imresize`` geometry (see
    :func:`upsample_bicubic`); not ``scipy.ndimage.zoom(order=3)``, which is a cubic B-spline
    with corner-aligned sampling.
    """
    ms, _, ratio = _check_inputs(ms, pan, ratio)
    return upsample_bicubic(ms, ratio)


def brovey(ms, pan, ratio=4, upsample="bicubic"):
    """Brovey transform (Gillespie, Kahle, Walker 1987; toolbox BT.m).

    I = mean of the upsampled MS bands, P' = PAN with the mean and standard deviation of I,
    F_k = MS_k * P' / I (F_k = MS_k where I = 0).
    """
    ms, pan, ratio = _check_inputs(ms, pan, ratio)
    ms_up = _upsampled(ms, ratio, upsample)
    intensity = ms_up.mean(axis=2)
    p = _match_moments(pan, intensity)
    safe = np.where(intensity == 0, 1.0, intensity)
    gain = np.where(intensity == 0, 1.0, p / safe)
    return ms_up * gain[:, :, np.newaxis]


def ihs(ms, pan, ratio=4, upsample="bicubic"):
    """Generalised IHS, fast additive form (Tu, Su, Shyu, Huang 2001; toolbox IHS.m).

    I = mean of the upsampled MS bands, P' = PAN with the mean and standard deviation of I,
    F_k = MS_k + (P' - I) for every band.
    """
    ms, pan, ratio = _check_inputs(ms, pan, ratio)
    ms_up = _upsampled(ms, ratio, upsample)
    intensity = ms_up.mean(axis=2)
    return ms_up + (_match_moments(pan, intensity) - intensity)[:, :, np.newaxis]


def gram_schmidt(ms, pan, ratio=4, upsample="bicubic"):
    """Gram-Schmidt spectral sharpening, mode 1 (Laben & Brower 2000; toolbox GS.m).

    The synthetic low-resolution PAN is the mean of the upsampled MS bands, I; P' = PAN with the
    mean and standard deviation of I; F_k = MS_k + g_k (P' - I) with g_k = cov(MS_k, I) / var(I)
    (the closed form of the Gram-Schmidt forward/backward transform).
    """
    ms, pan, ratio = _check_inputs(ms, pan, ratio)
    ms_up = _upsampled(ms, ratio, upsample)
    return _gs_inject(ms_up, pan, ms_up.mean(axis=2))


def gsa(ms, pan, ratio=4, upsample="bicubic", sensor=None):
    """Adaptive Gram-Schmidt (Aiazzi, Baronti, Selva, IEEE TGRS 2007; toolbox GSA.m).

    The PAN is degraded to the MS scale (MTF-matched PAN filter of ``sensor`` and decimation, as
    :func:`sipsa_tf.evaluation.quality.degrade`); weights w and a bias b are fitted by least
    squares,
    P_lr ~ sum_k w_k MS_k + b, on the original MS; the intensity is I = sum_k w_k MS~_k + b on
    the upsampled MS; then the Gram-Schmidt injection of :func:`gram_schmidt`.
    """
    ms, pan, ratio = _check_inputs(ms, pan, ratio)
    ms_up = _upsampled(ms, ratio, upsample)
    pan_lr = quality.decimate(quality.mtf_filter(pan, sensor, ratio, pan=True), ratio)
    design = np.concatenate([ms.reshape(-1, ms.shape[2]), np.ones((pan_lr.size, 1))], axis=1)
    coef = np.linalg.lstsq(design, pan_lr.ravel(), rcond=None)[0]
    intensity = ms_up @ coef[:-1] + coef[-1]
    return _gs_inject(ms_up, pan, intensity)


METHODS = {
    "nearest": nearest,
    "bicubic": bicubic,
    "brovey": brovey,
    "ihs": ihs,
    "gs": gram_schmidt,
    "gsa": gsa,
}


def fuse(method, ms, pan, ratio=4, **kw):
    """Pan-sharpens ``ms`` with ``pan`` by one of the registered ``METHODS``.

    Args:
        method: a key of ``METHODS``.
        ms: (h, w, C) multispectral image, any real dtype/scale.
        pan: (ratio*h, ratio*w) or (ratio*h, ratio*w, 1) panchromatic image.
        ratio: PAN/MS scale ratio (positive integer).
        **kw: method options (``upsample`` for the CS methods, ``sensor`` for 'gsa').

    Returns:
        (ratio*h, ratio*w, C) float32 array, in the scale of the inputs.

    Raises:
        ValueError: unknown method or inconsistent input shapes.
    """
    if method not in METHODS:
        raise ValueError("unknown method %r; choose one of %s."
                         % (method, ", ".join(sorted(METHODS))))
    ms, pan, ratio = _check_inputs(ms, pan, ratio)
    return np.asarray(METHODS[method](ms, pan, ratio, **kw), dtype=np.float32)
