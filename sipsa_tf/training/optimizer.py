"""AdamW with the original's decoupled weight decay, and the original's schedule.

Reference: Lee, Seo, Kim, "Shift-Invariant Pan Sharpening with Moving Object Alignment for
Satellite Imagery", CVPR 2021; docs/design.md ("Optimiser and schedule") describes the original's
semantics as this port implements them. Re-exported by :mod:`sipsa_tf.training.loop`.
"""
import tensorflow as tf

ADAM_BETA1 = 0.9
ADAM_BETA2 = 0.999
ADAM_EPSILON = 1e-8


class AdamWOptimizer(tf.compat.v1.train.AdamOptimizer):
    """Adam with decoupled weight decay: ``var -= weight_decay * var`` before each Adam update.

    As ``tf.contrib.opt.extend_with_decoupled_weight_decay(tf.train.AdamOptimizer)`` of the
    original, with one ordering guarantee added: the decay of every variable runs after all
    gradients of the step are computed, so they are the gradients at the undecayed weights.
    Slot and accumulator names are Adam's (``Adam``, ``Adam_1``, ``beta1_power``,
    ``beta2_power``).

    Args:
        weight_decay: float or scalar tensor (not multiplied by the learning rate).
        learning_rate, beta1, beta2, epsilon: Adam's.
    """

    def __init__(self, weight_decay, learning_rate, beta1=ADAM_BETA1, beta2=ADAM_BETA2,
                 epsilon=ADAM_EPSILON, name="Adam"):
        super().__init__(learning_rate, beta1, beta2, epsilon, use_locking=False, name=name)
        self._weight_decay = weight_decay
        self._weight_decay_t = None
        self._gradients_done = []
        # (names of the variables that always learn, 0/1 scalar tensor): the other variables'
        # gradients are multiplied by the scalar (--freeze_steps); None: no gate
        self.gate = None

    def compute_gradients(self, loss, var_list=None, **kwargs):
        grads_and_vars = super().compute_gradients(loss, var_list=var_list, **kwargs)
        if self.gate is None:
            return grads_and_vars
        free, open_ = self.gate
        return [(g if g is None or v.op.name in free else g * open_, v)
                for g, v in grads_and_vars]

    def _prepare(self):
        super()._prepare()
        self._weight_decay_t = tf.convert_to_tensor(self._weight_decay, name="weight_decay")

    def apply_gradients(self, grads_and_vars, global_step=None, name=None):
        grads_and_vars = list(grads_and_vars)
        self._gradients_done = [g for g, _ in grads_and_vars if g is not None]
        return super().apply_gradients(grads_and_vars, global_step=global_step, name=name)

    def _distributed_apply(self, distribution, grads_and_vars, global_step=None, name=None):
        # under a tf.distribute strategy: the decay of every copy waits for every replica's
        # gradients (one device goes through apply_gradients only)
        grads_and_vars = list(grads_and_vars)
        self._gradients_done = [t for g, _ in grads_and_vars if g is not None
                                for t in distribution.experimental_local_results(g)]
        return super()._distributed_apply(distribution, grads_and_vars, global_step, name)

    def _decay(self, var):
        with tf.control_dependencies(self._gradients_done):
            decay = tf.cast(self._weight_decay_t, var.dtype.base_dtype) * tf.identity(var)
            return var.assign_sub(decay, use_locking=self._use_locking).op

    def _apply_dense(self, grad, var):
        with tf.control_dependencies([self._decay(var)]):
            return super()._apply_dense(grad, var)

    def _resource_apply_dense(self, grad, var):
        with tf.control_dependencies([self._decay(var)]):
            return super()._resource_apply_dense(grad, var)

    def _apply_sparse(self, grad, var):
        with tf.control_dependencies([self._decay(var)]):
            return super()._apply_sparse(grad, var)

    def _resource_apply_sparse(self, grad, var, indices):
        with tf.control_dependencies([self._decay(var)]):
            return super()._resource_apply_sparse(grad, var, indices)


def schedule(global_step, boundary, learning_rate=1e-4, weight_decay=1e-7, decay=0.1):
    """The original's piecewise-constant schedule.

    Returns:
        (learning_rate, weight_decay) scalar tensors: base values while global_step <= boundary,
        times ``decay`` afterwards.
    """
    rate = tf.compat.v1.train.piecewise_constant(global_step, [int(boundary)], [1.0, decay])
    return learning_rate * rate, weight_decay * rate
