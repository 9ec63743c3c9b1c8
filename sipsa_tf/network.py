"""Kept for existing imports: this module lives at :mod:`sipsa_tf.core.network`
(the graph core, docs/design.md).

Importing ``sipsa_tf.network`` gives that very module (same object, every name).
"""
import sys

from sipsa_tf.core import network as _moved

if __name__ != "__main__":
    sys.modules[__name__] = _moved
