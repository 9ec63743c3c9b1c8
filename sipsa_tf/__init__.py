"""sipsa-tf: SIPSA-Net pan-sharpening in TensorFlow 2.x graph mode (tf.compat.v1).

Lee, Seo, Kim, "Shift-Invariant Pan Sharpening with Moving Object Alignment for Satellite
Imagery", CVPR 2021. ``from sipsa_tf import Pansharpener`` imports TensorFlow on first use only.
"""
__version__ = "0.1.0"
__all__ = ["Pansharpener", "CheckpointError"]


def __getattr__(name):
    if name == "Pansharpener":
        from sipsa_tf.inference import Pansharpener
        return Pansharpener
    if name == "CheckpointError":
        from sipsa_tf.checkpoints import CheckpointError
        return CheckpointError
    raise AttributeError("module 'sipsa_tf' has no attribute %r" % name)
