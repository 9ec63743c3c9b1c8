"""Kept for existing imports: this module lives at :mod:`sipsa_tf.data.synthetic`
(synthetic scenes, docs/design.md).

Importing ``sipsa_tf.synthetic`` gives that very module (same object, every name);
``python -m sipsa_tf.synthetic`` runs its command line.
"""
import sys

from sipsa_tf.data import synthetic as _moved

if __name__ == "__main__":
    raise SystemExit(_moved.main())
sys.modules[__name__] = _moved
