"""Evaluation suite: methods x images x protocols, with the standard pan-sharpening indices.

Compares SIPSA-Net (J. Lee, S. Seo, M. Kim, "SIPSA-Net: Shift-Invariant Pan Sharpening with
Moving Object Alignment for Satellite Imagery", CVPR 2021) with classical baselines
(:mod:`sipsa_tf.baselines`), GDAL's weighted Brovey (:mod:`sipsa_tf.external`) and SIPSA-Net
adapted to each scene (:mod:`sipsa_tf.adapt`), under the two protocols of Vivone et al. (IEEE TGRS
2015; IEEE GRSM 2021) with the indices of :mod:`sipsa_tf.quality`:

* ``reduced`` (Wald protocol): PAN and MS are degraded by 4 with the sensor's MTF-matched
  filters and decimated; each method fuses the degraded pair and the result is compared with the
  original MS: Q2n, Q (UIQI), SAM (degrees), ERGAS, SCC.
* ``full``: each method fuses the original pair; no reference exists: D_lambda, D_s, QNR,
  D_lambda (Khan), HQNR.

SIPSA-Net takes 3 bands, so every method gets the same three bands (R, G, B; the file's
``RGB_indexes``), and the MTF gains are those of these bands of the file's sensor
(:func:`sipsa_tf.quality.sensor_subset`). Images: the GRIP-UNINA ``.mat`` files (keys ``I_PAN``,
``I_MS``/``I_MS_LR``, ``RGB_indexes``, ``L``), a test folder (``RGB/``, ``PAN/`` TIFFs, 11-bit),
or the synthetic test scenes (:mod:`sipsa_tf.synthetic`). Large images are centre-cropped.

Outputs in ``out_dir``: ``results.csv`` (one row per image, protocol and method),
``results.md`` (mean tables per protocol, per-image tables, notes), and one PNG panel per image
and protocol (crops of the MS, the PAN, each method and, where a reference exists, the absolute
error maps). Every file is written to a temporary name and renamed.

This module also holds what the misalignment benchmark (``benchmarks/misalignment.py``) shares:
:func:`ghosting`, a double-edge measure, and :func:`line_plot`, a PIL line chart.

The suite lives in :mod:`sipsa_tf.evaluation` (scenes, methods, protocols, reports, panels,
plots, suite); this module gathers its names.
"""
from sipsa_tf.constants import SCALE  # noqa: F401
from sipsa_tf.evaluation.scenes import (  # noqa: F401
    DEFAULT_MAX_PAN, EvaluationError, MIN_MS, SENSOR_TOKENS, Scene, _make_scene, _rgb_of,
    centre_crop, load_mat, load_scenes, sensor_from_name, synthetic_scenes)
from sipsa_tf.evaluation.methods import (  # noqa: F401
    ALL_METHODS, DEFAULT_METHODS, Methods, SIPSA_METHODS)
from sipsa_tf.evaluation.protocols import (  # noqa: F401
    BLOCK, FULL_INDICES, INDICES, PROTOCOLS, REDUCED_INDICES, evaluate, indices,
    protocol_inputs)
from sipsa_tf.evaluation.reports import (  # noqa: F401
    CSV_COLUMNS, HIGHER_IS_BETTER, LABELS, _fmt, atomic_write, markdown_report, markdown_table,
    write_csv)
from sipsa_tf.evaluation.panels import (  # noqa: F401
    ERROR_FRACTION, PANEL_COLOURS, _font, _rgb, _stretch, labelled_grid, panel, save_png)
from sipsa_tf.evaluation.plots import (  # noqa: F401
    PLOT_COLOURS, _sobel_magnitude, ghosting, line_plot, plot_grid)
from sipsa_tf.evaluation.suite import (  # noqa: F401
    EvalConfig, run)
