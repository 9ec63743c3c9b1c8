"""The training graph: data, forward pass, loss, AdamW step, test ops and saver.

Reference: Lee, Seo, Kim, "Shift-Invariant Pan Sharpening with Moving Object Alignment for
Satellite Imagery", CVPR 2021; docs/design.md ("Loss and its quirks", "Optimiser and schedule").
Re-exported by :mod:`sipsa_tf.train_lib`.
"""
import numpy as np
import tensorflow as tf

from sipsa_tf import checkpoints
from sipsa_tf.core import losses, model, network, precision
from sipsa_tf.session import make_session_config
from sipsa_tf.training import test_step as test_images
from sipsa_tf.training.config import OBJECTIVES
from sipsa_tf.training.optimizer import AdamWOptimizer, schedule


class TrainGraph:
    """The training graph: data, forward pass, loss, AdamW step, test ops and saver.

    Built in its own ``tf.Graph`` (finalised), so it works whether eager execution is on or off.

    Args:
        config: :class:`TrainConfig` (uses batch/schedule/loss settings and the seed).
        dataset_fn: optional callable returning a ``tf.data.Dataset`` of (ms, pan) batches; called
            inside the graph. Without it, ``ms`` and ``pan`` must be fed.
        test_ops: also build the test step's subgraph (``test``; None without it).

    Attributes:
        ms, pan: the batch the step trains on, (B, p, p, 3) and (B, 4p, 4p, 1), values
            DN / img_div; feedable (they default to the dataset's batch).
        target: (B, 4p, 4p, 3) reference of the Wald objective (None for the original).
        loss_terms: dict of scalar tensors (``loss`` is loss_G, or the Wald L1; the log shows
            loss x 1000); ``loss_names`` lists its keys in log order.
        gradients: list of gradient tensors, in the order of ``network_variables``.
        train_op: one AdamW step (increments global_step; a float16 step with non-finite
            gradients is skipped, see ``precision.DynamicLossScale``).
        loss_scale: the float16 run's :class:`precision.DynamicLossScale`, else None.
        step_after: global_step after ``train_op`` (fetch it together with train_op).
        learning_rate, weight_decay: scheduled scalars.
        test: :class:`test_images.TestOps` sharing the network variables.
        network_variables, optimizer_variables: lists of variables.
        saver: saves every global variable under its name.
    """

    def __init__(self, config, dataset_fn=None, test_ops=True):
        self.config = config
        self.graph = tf.Graph()
        with self.graph.as_default():
            tf.compat.v1.set_random_seed(config.seed)
            self.global_step = tf.compat.v1.Variable(0, name="global_step", trainable=False)
            self.learning_rate, self.weight_decay = schedule(
                self.global_step, config.boundary, config.learning_rate, config.weight_decay,
                config.lr_decay)
            self.iterator = None
            wald = config.objective == "wald"
            names = ("ms", "pan", "target") if wald else ("ms", "pan")
            channels = {"ms": 3, "pan": 1, "target": 3}
            batch = [None] * len(names)
            if dataset_fn is not None:
                self.iterator = tf.compat.v1.data.make_initializable_iterator(dataset_fn())
                batch = self.iterator.get_next()
            inputs = {}
            for name, tensor in zip(names, batch):
                shape = [None, None, None, channels[name]]
                inputs[name] = (tf.compat.v1.placeholder(tf.float32, shape, name=name)
                                if tensor is None else
                                tf.compat.v1.placeholder_with_default(tensor, shape, name=name))
            self.ms, self.pan = inputs["ms"], inputs["pan"]
            self.target = inputs.get("target")
            policy = precision.policy(config.precision)
            fwd = model.forward(self.ms, self.pan, policy=policy)
            self.forward = fwd
            self.loss_names = OBJECTIVES[config.objective]
            if wald:
                self.loss_terms = losses.supervised_l1(fwd.output, self.target)
            else:
                self.loss_terms = losses.sipsa_loss(
                    fwd.out4, fwd.aligned4, fwd.ms_n, fwd.pan_n,
                    per_sample=config.per_sample_loss, literal=config.literal_loss)
            self.network_variables = network.network_variables(self.graph)
            optimizer = AdamWOptimizer(self.weight_decay, self.learning_rate)
            grads_and_vars, self.train_op, self.loss_scale = precision.minimize(
                optimizer, self.loss_terms["loss"], self.network_variables, self.global_step,
                policy)
            self.gradients = [g for g, _ in grads_and_vars]
            with tf.control_dependencies([self.train_op]):
                self.step_after = tf.identity(self.global_step.read_value())
            self.optimizer_variables = (
                [optimizer.get_slot(v, name) for v in self.network_variables
                 for name in ("m", "v")] + list(optimizer._get_beta_accumulators()))
            self.test = test_images.build_test_ops() if test_ops else None
            everything = tf.compat.v1.global_variables()
            self.saver = tf.compat.v1.train.Saver(
                var_list={v.op.name: v for v in everything}, max_to_keep=None,
                save_relative_paths=True)
            self._warm_start_variables = {
                False: list(self.network_variables),
                True: (list(self.network_variables) + self.optimizer_variables
                       + [self.global_step])}
            self._warm_start_savers = {
                key: tf.compat.v1.train.Saver(var_list={v.op.name: v for v in variables})
                for key, variables in self._warm_start_variables.items()}
            self.init_op = tf.group(tf.compat.v1.global_variables_initializer(),
                                    tf.compat.v1.local_variables_initializer())
        self.graph.finalize()

    def session(self):
        """A new session on this graph (thread counts from the config)."""
        config = make_session_config(self.config.threads)
        return tf.compat.v1.Session(graph=self.graph, config=config)

    def initialize(self, session):
        """Initialises every variable (and the data iterator)."""
        session.run(self.init_op)
        if self.iterator is not None:
            session.run(self.iterator.initializer)

    def feed(self, ms, pan, target=None):
        """feed_dict training on a given batch instead of the dataset's (``target``: Wald)."""
        feed = {self.ms: np.asarray(ms, np.float32), self.pan: np.asarray(pan, np.float32)}
        if target is not None:
            feed[self.target] = np.asarray(target, np.float32)
        return feed

    def restore_from(self, session, prefix, include_optimizer=False):
        """Restores the network (and optionally the Adam slots, beta powers and global_step)
        from any checkpoint holding them under the original names (e.g. the original's).

        Raises:
            checkpoints.CheckpointError: listing every missing or mis-shaped variable.
        """
        checkpoints.check_variables(prefix, self._warm_start_variables[bool(include_optimizer)])
        with self.graph.as_default():
            self._warm_start_savers[bool(include_optimizer)].restore(session, prefix)

    def save(self, session, prefix):
        """Saves every variable under ``prefix`` (no meta graph, no state file)."""
        with self.graph.as_default():
            self.saver.save(session, prefix, write_meta_graph=False, write_state=False)

    def restore(self, session, prefix):
        """Restores every variable from a checkpoint written by :meth:`save`."""
        with self.graph.as_default():
            self.saver.restore(session, prefix)
