"""The trainer's parts: settings, optimiser, checkpoint manager, run logs (docs/design.md).

The training loop itself is :mod:`sipsa_tf.training.loop`; the command line :mod:`sipsa_tf.train`.
Scene adaptation (:mod:`sipsa_tf.training.adapt`) uses the optimiser from here without the loop.
"""
