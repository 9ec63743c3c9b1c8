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
CVPR 2021) against the classical baselines of :mod:`sipsa_tf.evaluation.baselines`.

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
from sipsa_tf.evaluation.quality._checks import (  # noqa: F401
    _FLAT_RTOL, _as_image, _as_pan, _check_block, _check_ratio, _same_shape, _scale_between)
from sipsa_tf.evaluation.quality.reference import (  # noqa: F401
    _block_q, _box_means, _cd_conj, _cd_mul, _onions_quality, _sobel_magnitude, _uiqi_map,
    ergas, q2n, q_index, sam, scc)
from sipsa_tf.evaluation.quality.mtf import (  # noqa: F401
    DEFAULT_GAINS, MTF_GAINS, _SENSOR_ALIASES, _correlate_replicate, _resolve_gains, decimate,
    degrade, mtf_filter, mtf_kernel, sensor_subset)
from sipsa_tf.evaluation.quality.no_reference import (  # noqa: F401
    _lr_params, d_lambda, d_lambda_khan, d_s, hqnr, qnr)
from sipsa_tf.evaluation.quality.protocols import (  # noqa: F401
    full_resolution_indices, reduced_resolution_indices)

__all__ = [
    "MTF_GAINS", "DEFAULT_GAINS", "sensor_subset", "q_index", "q2n", "sam", "ergas", "scc",
    "d_lambda", "d_s", "qnr", "d_lambda_khan", "hqnr", "mtf_kernel", "mtf_filter", "decimate",
    "degrade", "reduced_resolution_indices", "full_resolution_indices",
]
