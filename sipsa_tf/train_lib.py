"""Kept for existing imports: this module lives at :mod:`sipsa_tf.training.loop`
(the trainer, docs/design.md).

Importing ``sipsa_tf.train_lib`` gives that very module (same object, every name).
"""
import sys

from sipsa_tf.training import loop as _moved

if __name__ != "__main__":
    sys.modules[__name__] = _moved
