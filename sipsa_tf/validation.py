"""Kept for existing imports: this module lives at :mod:`sipsa_tf.io.validation`
(inputs, docs/design.md).

Importing ``sipsa_tf.validation`` gives that very module (same object, every name).
"""
import sys

from sipsa_tf.io import validation as _moved

if __name__ != "__main__":
    sys.modules[__name__] = _moved
