"""The trainer's parts: settings, optimiser, checkpoint manager, run logs (docs/design.md).

The training loop itself is :mod:`sipsa_tf.train_lib`; the command line :mod:`sipsa_tf.train`.
Scene adaptation (:mod:`sipsa_tf.adapt`) uses the optimiser from here without the loop.
"""
