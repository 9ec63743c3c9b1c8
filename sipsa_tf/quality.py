"""Kept for existing imports: this module lives at :mod:`sipsa_tf.evaluation.quality`
(the literature's quality indices and the Wald protocol, docs/design.md).

Importing ``sipsa_tf.quality`` gives that very module (same object, every name).
"""
import sys

from sipsa_tf.evaluation import quality as _moved

if __name__ != "__main__":
    sys.modules[__name__] = _moved
