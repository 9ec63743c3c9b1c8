"""The reduced- and full-resolution protocols: every index of each at once.

Part of :mod:`sipsa_tf.evaluation.quality` (definitions, references and conventions there;
docs/design.md, "Metrics and test images").
"""
from sipsa_tf.evaluation.quality.no_reference import d_lambda, d_lambda_khan, d_s
from sipsa_tf.evaluation.quality.reference import ergas, q2n, q_index, sam, scc


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
