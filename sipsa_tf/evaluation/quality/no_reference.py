"""No-reference quality indices: D_lambda, D_s, QNR, Khan's D_lambda, HQNR.

Part of :mod:`sipsa_tf.evaluation.quality` (definitions, references and conventions there;
docs/design.md, "Metrics and test images").
"""
from sipsa_tf.evaluation.quality._checks import (_as_image, _as_pan, _check_block, _check_ratio,
                                                  _scale_between)
from sipsa_tf.evaluation.quality.mtf import decimate, mtf_filter
from sipsa_tf.evaluation.quality.reference import _block_q, q2n


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
