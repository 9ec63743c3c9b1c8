"""Evaluation of pan-sharpening: methods x images x protocols, with the standard indices.

Compares SIPSA-Net (J. Lee, S. Seo, M. Kim, "SIPSA-Net: Shift-Invariant Pan Sharpening with
Moving Object Alignment for Satellite Imagery", CVPR 2021) with classical baselines
(:mod:`.baselines`), GDAL's weighted Brovey (:mod:`.external`) and SIPSA-Net adapted to each
scene (:mod:`sipsa_tf.training.adapt`), under the two protocols of Vivone et al. (IEEE TGRS 2015;
IEEE GRSM 2021) with the indices of :mod:`.quality` (docs/design.md, "Metrics and test images"):

* ``reduced`` (Wald protocol): PAN and MS are degraded by 4 with the sensor's MTF-matched
  filters and decimated; each method fuses the degraded pair and the result is compared with the
  original MS: Q2n, Q (UIQI), SAM (degrees), ERGAS, SCC.
* ``full``: each method fuses the original pair; no reference exists: D_lambda, D_s, QNR,
  D_lambda (Khan), HQNR.

SIPSA-Net takes 3 bands, so every method gets the same three bands (R, G, B; the file's
``RGB_indexes``), and the MTF gains are those of these bands of the file's sensor
(:func:`.quality.sensor_subset`). Images: the GRIP-UNINA ``.mat`` files, a test folder
(``RGB/``, ``PAN/`` TIFFs, 11-bit), or the synthetic test scenes. Large images are
centre-cropped.

The parts: :mod:`.scenes` (the images), :mod:`.methods` (who fuses), :mod:`.protocols`
(reduced/full and their indices), :mod:`.reports` (``results.csv``, ``results.md``),
:mod:`.panels` (PNG panels), :mod:`.plots` (line charts and the ghosting measure of the
misalignment benchmark) and :mod:`.suite` (:class:`~.suite.EvalConfig` and :func:`~.suite.run`,
the library behind ``python -m sipsa_tf.evaluate``). Every file is written to a temporary name
and renamed. This package's ``__init__`` imports nothing: ``from sipsa_tf.evaluation import
quality`` loads only the indices.
"""
