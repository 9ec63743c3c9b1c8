"""The precision policy: which dtype SIPSA-Net's convolutions compute in, and what stays float32.

Reference: Lee, Seo, Kim, "Shift-Invariant Pan Sharpening with Moving Object Alignment for
Satellite Imagery", CVPR 2021; docs/design.md, "Precision". One home for the rule, used by the
network (:mod:`sipsa_tf.core.network`), the API, the scene tool, the evaluation and the trainer:

- ``float32`` (the default) builds exactly the float32 graph (no cast is added anywhere).
- ``bfloat16`` / ``float16``: the wide convolutions (20 of 27, 93% of the FLOPs) multiply in the
  low dtype and return float32 (:func:`sipsa_tf.core.network.sipsa_net` says which). Everything
  between convolutions (leaky ReLU, residual sums, concatenations), the local normalisation and
  de-normalisation, the kernel softmax, the feature alignment module's products and sums, the
  loss and the optimiser stay float32: measured, 16-bit tensors between the convolutions moved
  the output more and ran no faster. Variables stay float32 and are cast where a convolution
  reads them, so checkpoints are the same whatever the precision.
- ``float16`` training multiplies the loss by a dynamic loss scale (:class:`DynamicLossScale`).

Choosing a low precision on hardware that does not compute it natively is said once per process
on stderr (:func:`hardware_warning`), never silently slower. This module imports TensorFlow only
inside its functions, so option checks (:func:`check_name`) run before TensorFlow is loaded.
"""
import os
import sys

from sipsa_tf.errors import UserError

FLOAT32 = "float32"
PRECISIONS = (FLOAT32, "bfloat16", "float16")

# /proc/cpuinfo flags of CPUs whose oneDNN kernels compute the dtype natively.
NATIVE_CPU_FLAGS = {"bfloat16": ("avx512_bf16", "amx_bf16")}

# float16 loss scaling: the starting scale, how many finite steps in a row double it, the factor.
LOSS_SCALE_START = 2.0 ** 15
LOSS_SCALE_PERIOD = 2000
LOSS_SCALE_FACTOR = 2.0

_warned = set()


def check_name(name, what="--precision"):
    """Returns ``name`` if it is a precision; raises UserError (one sentence) otherwise."""
    if name not in PRECISIONS:
        raise UserError("%s must be one of %s, got %r" % (what, ", ".join(PRECISIONS), name))
    return name


def cpu_flags(path="/proc/cpuinfo"):
    """The CPU feature flags listed in ``path`` (an empty set where it cannot be read)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def hardware_problem(name, flags, gpu, onednn=True):
    """Why ``name`` would run slower than float32 on this hardware, or None.

    Args:
        name: a precision.
        flags: the CPU's feature flags (:func:`cpu_flags`).
        gpu: a GPU is visible to TensorFlow (then the low precisions are the GPU's business).
        onednn: TensorFlow's oneDNN kernels are on (``TF_ENABLE_ONEDNN_OPTS`` is not 0).

    Returns:
        One sentence, or None when the precision is float32 or native here.
    """
    if name == FLOAT32 or gpu:
        return None
    if name == "float16":
        return ("float16 is meant for GPUs; on a CPU TensorFlow's float16 convolutions are "
                "slower than float32 (docs/design.md, \"Precision\")")
    if not onednn:
        return ("bfloat16 needs TensorFlow's oneDNN kernels on a CPU, and TF_ENABLE_ONEDNN_OPTS=0 "
                "turns them off: it will be slower than float32")
    if not flags & set(NATIVE_CPU_FLAGS[name]):
        return ("this CPU has no native bfloat16 (no %s in /proc/cpuinfo): TensorFlow emulates "
                "it, slower than float32" % " or ".join(NATIVE_CPU_FLAGS[name]))
    return None


def hardware_warning(name, stream=None):
    """Prints one ``warning:`` line on stderr if ``name`` is not native here (once per process
    and precision); returns the sentence or None."""
    if name == FLOAT32:
        return None
    import tensorflow as tf
    gpu = bool(tf.config.list_physical_devices("GPU"))
    onednn = os.environ.get("TF_ENABLE_ONEDNN_OPTS", "1").strip() not in ("0", "false", "False")
    problem = hardware_problem(name, cpu_flags(), gpu, onednn)
    if problem and name not in _warned:
        _warned.add(name)
        print("warning: --precision=%s: %s; running anyway" % (name, problem),
              file=stream or sys.stderr)
    return problem


class Policy:
    """What the graph computes in: the convolutions' dtype, everything else float32.

    Args:
        name: one of :data:`PRECISIONS`.
        warn: say once on stderr when the hardware does not compute it natively.

    Attributes:
        name: the precision's name; low: True unless float32; loss_scaling: float16 training
            scales its loss (:class:`DynamicLossScale`).
    """

    def __init__(self, name=FLOAT32, warn=True):
        self.name = check_name(name)
        self.low = name != FLOAT32
        self.loss_scaling = name == "float16"
        if warn:
            hardware_warning(name)

    @property
    def dtype(self):
        """The convolutions' ``tf.DType``."""
        import tensorflow as tf
        return tf.as_dtype(self.name)

    def compute(self, x):
        """``x`` in the convolutions' dtype (``x`` itself if it already is)."""
        return _cast(x, self.name)

    @staticmethod
    def float32(x):
        """``x`` in float32 (``x`` itself if it already is)."""
        return _cast(x, FLOAT32)

    def __repr__(self):
        return "Policy(%r)" % self.name


def _cast(x, name):
    import tensorflow as tf
    return x if x.dtype.base_dtype.name == name else tf.cast(x, name)


def policy(precision=None):
    """A :class:`Policy` from a name, a Policy (returned as is) or None (float32)."""
    if isinstance(precision, Policy):
        return precision
    return Policy(FLOAT32 if precision is None else precision)


class DynamicLossScale:
    """Dynamic loss scaling for float16 training (Micikevicius et al., "Mixed Precision
    Training", ICLR 2018).

    The loss is multiplied by the scale before backpropagation, so that small float16 gradients
    do not flush to zero, and the gradients are divided by it afterwards (in float32). A step
    whose gradients are not all finite is skipped (the weights, Adam slots and beta powers are
    left alone; the global step still counts it) and halves the scale;
    :data:`LOSS_SCALE_PERIOD` finite steps in a row double it. The scale and the count are
    local variables, not saved: checkpoints stay those of a float32 run, and a resumed run starts
    again from :data:`LOSS_SCALE_START`.

    Args:
        start: the initial scale.
    """

    def __init__(self, start=LOSS_SCALE_START):
        import tensorflow as tf
        local = [tf.compat.v1.GraphKeys.LOCAL_VARIABLES]
        with tf.compat.v1.variable_scope("loss_scale"):
            self.scale = tf.compat.v1.Variable(float(start), trainable=False, name="scale",
                                               collections=local)
            self.good_steps = tf.compat.v1.Variable(0, trainable=False, name="good_steps",
                                                    collections=local)

    def minimize(self, optimizer, loss, var_list, global_step):
        """Gradients of the scaled loss, unscaled; the step applied only if they are finite.

        Returns:
            (grads_and_vars, train_op): the unscaled float32 gradients, and an op that applies
            them (or skips the step) and updates the scale.
        """
        import tensorflow as tf
        scaled = optimizer.compute_gradients(loss * self.scale, var_list=var_list)
        grads_and_vars = [(None if g is None else g / self.scale, v) for g, v in scaled]
        grads = [g for g, _ in grads_and_vars if g is not None]
        finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in grads])
        with tf.compat.v1.init_scope():  # slots outside the cond below
            optimizer._create_slots(var_list)  # pylint: disable=protected-access

        def apply():
            with tf.control_dependencies([optimizer.apply_gradients(
                    grads_and_vars, global_step=global_step)]):
                return tf.constant(True)

        def skip():
            with tf.control_dependencies([global_step.assign_add(1)]):
                return tf.constant(False)

        applied = tf.compat.v1.cond(finite, apply, skip)
        good = tf.where(applied, self.good_steps + 1, 0)
        grow = good >= LOSS_SCALE_PERIOD
        new_scale = tf.where(applied, tf.where(grow, self.scale * LOSS_SCALE_FACTOR, self.scale),
                             tf.maximum(self.scale / LOSS_SCALE_FACTOR, 1.0))
        train_op = tf.group(self.scale.assign(new_scale),
                            self.good_steps.assign(tf.where(grow, 0, good)))
        return grads_and_vars, train_op


def minimize(optimizer, loss, var_list, global_step, precision):
    """One training step under the policy: plain for float32 and bfloat16, loss-scaled for
    float16.

    Args:
        optimizer: a ``tf.compat.v1.train.Optimizer``.
        loss: scalar float32 loss.
        var_list: the trained (float32) variables.
        global_step: incremented by the step.
        precision: a :class:`Policy`.

    Returns:
        (grads_and_vars, train_op, loss_scale): ``loss_scale`` is the
        :class:`DynamicLossScale` or None.
    """
    if not precision.loss_scaling:
        grads_and_vars = optimizer.compute_gradients(loss, var_list=var_list)
        return (grads_and_vars, optimizer.apply_gradients(grads_and_vars, global_step=global_step),
                None)
    loss_scale = DynamicLossScale()
    grads_and_vars, train_op = loss_scale.minimize(optimizer, loss, var_list, global_step)
    return grads_and_vars, train_op, loss_scale
