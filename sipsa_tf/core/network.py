"""The SIPSA-Net generator: kernel branch, feature alignment module and fusion branch.

Reference: Lee, Seo, Kim, "Shift-Invariant Pan Sharpening with Moving Object Alignment for
Satellite Imagery", CVPR 2021; docs/design.md, "Network" and "Feature alignment module". The
network is a pure function of normalised tensors; its variables live in the single scope
``op_net/G`` with the original names ``w_convNN`` / ``b_convNN`` (numbers 12 and 18 unused), so
checkpoints written by the original code restore by name. A precision policy
(:mod:`sipsa_tf.core.precision`; docs/design.md, "Precision") sets the dtype in which most
convolutions multiply; everything between them stays float32.
"""
import contextlib

import numpy as np
import tensorflow as tf

from sipsa_tf.core import ops, precision
from sipsa_tf.constants import MS_BANDS, SCALE

OUTER_SCOPE = "op_net"  # the original's tf.make_template name
INNER_SCOPE = "G"       # the network's own variable scope
SCOPE = OUTER_SCOPE + "/" + INNER_SCOPE
LEAK = 0.1
INIT_GAIN = 0.1  # the original's 'ini' option of its fan-average uniform initialiser

# Layer numbers the original counter passes over without creating a convolution.
SKIPPED_LAYER_NUMBERS = (12, 18)
# The kernel branch (the FAM's 81 logits): convolutions 1-11 (docs/training.md, "The feature
# alignment module").
KERNEL_BRANCH_LAYERS = tuple(range(1, 12))


def fan_avg_uniform(shape, tile=1):
    """The original initialiser: uniform in +-sqrt(3 * gain / n), n = fan average.

    Args:
        shape: [k, k, in, out] of the variable.
        tile: the variable's out axis holds ``tile`` copies of an [k, k, in, out / tile] draw
            (conv25, whose output is rearranged by depth_to_space); n counts the full ``out``.

    Returns:
        An initializer callable for ``tf.compat.v1.get_variable``.
    """
    k_h, k_w, n_in, n_out = shape
    base_out = n_out // tile
    fan = (k_h * k_w * n_in + k_h * k_w * n_out) / 2.0
    limit = float(np.sqrt(3.0 * INIT_GAIN / fan))

    def initializer(var_shape, dtype=tf.float32, partition_info=None):
        del partition_info
        draw = tf.random.uniform([k_h, k_w, n_in, base_out], -limit, limit, dtype=dtype,
                                 seed=_determinism_op_seed())
        return tf.tile(draw, [1, 1, 1, tile]) if tile > 1 else draw

    return initializer


def _determinism_op_seed():
    """Op seed for the initialiser: None, except in an unseeded graph with op determinism on.

    With ``TF_DETERMINISTIC_OPS=1`` (set in the Docker image, docker/README.md) TensorFlow refuses
    to build a random op that has neither a graph nor an op seed, even in a graph that only
    restores a checkpoint and never runs its initialisers. Such a graph gets the fixed op seed 0;
    graphs with a seed, and all graphs without op determinism, are unchanged.
    """
    if tf.compat.v1.get_default_graph().seed is not None:
        return None  # and no get_seed call, which would advance the graph's op-seed counter
    try:
        tf.compat.v1.get_seed(None)  # unseeded graph: raises exactly when op determinism is on
    except RuntimeError:
        return 0
    return None


class _Convs:
    """Creates the numbered convolutions in order, as the original's layer counter does.

    The variables are float32. Under a low-precision policy a convolution casts its input and
    kernel to the policy's dtype where it reads them and returns float32 (the bias is added in
    float32); ``float32=True`` keeps one convolution float32 whatever the policy.
    """

    def __init__(self, policy):
        self.number = 0
        self.policy = policy

    def __call__(self, x, size, n_out, tile=1, float32=False):
        self.number += 1
        while self.number in SKIPPED_LAYER_NUMBERS:
            self.number += 1
        n_in = ops.channels(x)
        shape = [size, size, n_in, n_out]
        w = tf.compat.v1.get_variable("w_conv%02d" % self.number, shape, tf.float32,
                                      initializer=fan_avg_uniform(shape, tile))
        b = tf.compat.v1.get_variable("b_conv%02d" % self.number, [n_out], tf.float32,
                                      initializer=tf.compat.v1.zeros_initializer())
        if float32 or not self.policy.low:
            return tf.nn.conv2d(x, w, strides=1, padding="SAME") + b
        low = self.policy.compute
        return self.policy.float32(tf.nn.conv2d(low(x), low(w), strides=1, padding="SAME")) + b

    def residual(self, x, size, blocks):
        """``blocks`` pre-activation residual blocks y = y + conv(lrelu(y))."""
        for _ in range(blocks):
            x = x + self(ops.lrelu(x, LEAK), size, ops.channels(x))
        return x


def sipsa_net(ms_n, pan_n, fam=None, pan_window=None, policy=None, temperature=None,
              with_kernel=False, kernel_fn=None):
    """SIPSA-Net on normalised inputs.

    Must be called inside :func:`network_scope` (or any scope; variables are created with
    ``get_variable`` relative to the current variable scope).

    Args:
        ms_n: (B, h, w, 3) normalised MS, h, w >= 1.
        pan_n: (B, 4h, 4w, 1) normalised PAN.
        fam: the feature alignment op, ``ops.local_conv`` (default) or ``ops.local_conv_literal``.
        pan_window: optional callable ``pan_window(tensor, name)`` cutting a window out of the
            PAN-resolution tensors it is handed, (B, 4h, 4w, C) -> (B, H', W', C); ``name`` says
            which tensor it is ("u": the depth_to_space output, "pan_n"). The PAN-resolution
            tail (after depth_to_space) then runs on that window only, and ``out4`` is
            (B, H', W', 4). Used by tiled inference (sipsa_tf.scene): the result equals the full
            computation except within the tail's receptive field (3 PAN pixels) of a window edge
            that is not an image edge.
        policy: a :class:`sipsa_tf.core.precision.Policy` or its name (default float32). Under a
            low precision the wide convolutions (32 to 81 channels in and out: 93% of the FLOPs)
            multiply in its dtype; the convolutions that read the normalised inputs or read or
            write the 4-channel tensors (the aligned MS, the depth_to_space input and output, the
            output) stay float32, as do all tensors between convolutions, the softmax and the FAM
            (docs/design.md, "Precision", has the measurements behind this choice).

        kernel_fn: optional callable on the (B, h, w, 81) softmax weights, returning the
            weights the FAM then uses (and ``with_kernel`` returns); no variables.

    Returns:
        (out4, aligned4): (B, 4h, 4w, 4) fused output and (B, h, w, 4) aligned MS, both in the
        normalised domain; channel 4 of each is computed and unused.
    """
    fam = fam or ops.local_conv
    conv = _Convs(precision.policy(policy))
    p16 = ops.space_to_depth(pan_n, SCALE)

    # Kernel branch: per-pixel 9 x 9 alignment kernels (81 softmax taps) at MS resolution.
    a = conv(tf.concat([p16, ms_n], axis=3), 9, 32, float32=True)
    a = conv(ops.lrelu(a, LEAK), 9, 32)
    a = conv.residual(a, 3, 1)
    a = conv(ops.lrelu(a, LEAK), 3, ops.FAM_KERNEL ** 2)
    a = conv.residual(a, 3, 7)
    logits = ops.lrelu(a, LEAK)
    if temperature is not None:
        logits = logits / temperature
    kernel = tf.nn.softmax(logits, axis=3)
    if kernel_fn is not None:
        kernel = kernel_fn(kernel)

    # Feature branch and alignment.
    f = conv(ms_n, 3, 64, float32=True)
    f = conv.residual(f, 3, 3)
    aligned4 = conv(fam(f, kernel), 1, 4, float32=True)

    # Fusion branch: MS resolution, then depth_to_space to PAN resolution.
    u = conv(tf.concat([p16, aligned4], axis=3), 3, 64, float32=True)
    u = conv.residual(u, 3, 5)
    u = tf.nn.depth_to_space(conv(u, 3, 4 * SCALE * SCALE, tile=SCALE * SCALE, float32=True),
                             SCALE)
    if pan_window is not None:
        u, pan_n = pan_window(u, "u"), pan_window(pan_n, "pan_n")
    u = conv(u, 3, 64, float32=True)
    u = conv.residual(u, 3, 2)
    out4 = conv(tf.concat([u, tf.abs(ops.sobel2(pan_n))], axis=3), 1, 4, float32=True)
    return (out4, aligned4, kernel) if with_kernel else (out4, aligned4)


@contextlib.contextmanager
def network_scope():
    """Enters the network's variable scope ``op_net/G`` with AUTO_REUSE.

    Every graph built inside it (training, test, inference) shares one set of variables.
    """
    with tf.compat.v1.variable_scope(OUTER_SCOPE, reuse=tf.compat.v1.AUTO_REUSE):
        with tf.compat.v1.variable_scope(INNER_SCOPE, reuse=tf.compat.v1.AUTO_REUSE):
            yield


def kernel_branch_names():
    """The full names of the kernel branch's variables (``op_net/G/w_conv01``-``b_conv11``)."""
    return {"%s/%s_conv%02d" % (SCOPE, kind, n) for n in KERNEL_BRANCH_LAYERS
            for kind in ("w", "b")}


def kernel_branch_variables(variables):
    """The kernel branch's variables (``w_conv01``-``b_conv11``) among ``variables``."""
    names = kernel_branch_names()
    return [v for v in variables if v.op.name in names]


def network_variables(graph=None):
    """The network's global variables (``op_net/G/*``) in ``graph`` (default: current)."""
    graph = graph or tf.compat.v1.get_default_graph()
    return [v for v in graph.get_collection(tf.compat.v1.GraphKeys.GLOBAL_VARIABLES)
            if v.op.name.startswith(SCOPE + "/")]
