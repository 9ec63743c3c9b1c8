"""Kept for existing imports: this module lives at :mod:`sipsa_tf.core.losses`
(the graph core, docs/design.md).

Importing ``sipsa_tf.losses`` gives that very module (same object, every name).
"""
import sys

from sipsa_tf.core import losses as _moved

if __name__ != "__main__":
    sys.modules[__name__] = _moved
