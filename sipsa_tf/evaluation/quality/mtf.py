"""Sensor MTF gains, MTF-matched filters, decimation and the Wald protocol's degradation.

Part of :mod:`sipsa_tf.evaluation.quality` (definitions, references and conventions there;
docs/design.md, "Metrics and test images").
"""
import math
import numbers

import numpy as np

from sipsa_tf.evaluation.quality._checks import _as_image, _as_pan, _check_ratio


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
