"""The graph core of SIPSA-Net (Lee, Seo, Kim, CVPR 2021): pure TensorFlow, no I/O.

``ops`` (primitive operations), ``network`` (the generator and its variables), ``model``
(normalisation and the forward pass), ``losses`` (the training loss), ``metrics`` (the original's
test metrics). See docs/design.md.
"""
