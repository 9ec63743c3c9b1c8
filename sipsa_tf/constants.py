"""The ratio and band constants of SIPSA-Net (Lee, Seo, Kim, CVPR 2021), defined once.

The network fuses a 3-band MS image (R, G, B) with a 1-band PAN exactly 4x larger in both
directions (docs/design.md, "Inputs"). Every module takes these names from here.
"""
SCALE = 4        # PAN pixels per MS pixel, in each direction
MS_BANDS = 3     # MS bands the network takes (R, G, B)
PAN_BANDS = 1
IMG_DIV = 2047.0  # the original's value scale: DN / 2047 (11-bit data)
FAM_KERNEL = 9   # the feature alignment module's per-pixel kernel is 9 x 9 (81 softmax taps)
# --fam_flat_mean: the share of MS pixels counted as flat (the least-textured), in the graph
# (sipsa_tf.core.ops.fill_flat) and in its NumPy twin (sipsa_tf.evaluation.alignment).
FLAT_SHARE = 0.25

# The bundled default checkpoint, relative to the project root: the weights `make test-images`,
# `make pansharpen` and `make evaluate` use (the Makefile's BUNDLED_CHECKPOINT; a test keeps the two
# equal) and the benchmarks' default. How it was trained: checkpoints/README.md.
BUNDLED_CHECKPOINT = "checkpoints/wald_stage1j"
