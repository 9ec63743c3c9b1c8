"""Kept for existing imports: this module lives at :mod:`sipsa_tf.io.geotiff`
(inputs and outputs, docs/design.md).

Importing ``sipsa_tf.geotiff`` gives that very module (same object, every name).
"""
import sys

from sipsa_tf.io import geotiff as _moved

if __name__ != "__main__":
    sys.modules[__name__] = _moved
