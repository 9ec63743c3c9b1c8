"""Kept for existing imports: this module lives at :mod:`sipsa_tf.evaluation.baselines`
(the evaluation, docs/design.md).

Importing ``sipsa_tf.baselines`` gives that very module (same object, every name).
"""
import sys

from sipsa_tf.evaluation import baselines as _moved

if __name__ != "__main__":
    sys.modules[__name__] = _moved
