"""Evaluation of pan-sharpening (docs/design.md, "Metrics and test images").

``quality`` (the literature's quality indices and the MTF-based Wald protocol), ``baselines``
(classical methods), ``external`` (GDAL's pan-sharpening), ``suite`` and its parts (methods x
images x protocols, reports and panels; the library behind ``python -m sipsa_tf.evaluate``).
"""
