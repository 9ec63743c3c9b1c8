"""The training graph: data, forward pass, loss, AdamW step, test ops and saver.

Reference: Lee, Seo, Kim, "Shift-Invariant Pan Sharpening with Moving Object Alignment for
Satellite Imagery", CVPR 2021; docs/design.md ("Loss and its quirks", "Optimiser and schedule").
Re-exported by :mod:`sipsa_tf.training.loop`.
"""
import numpy as np
import tensorflow as tf

from sipsa_tf import checkpoints
from sipsa_tf.core import losses, model, network, precision
from sipsa_tf.session import make_session_config
from sipsa_tf.training import distribute, image_eval
from sipsa_tf.training.optimizer import AdamWOptimizer, schedule


class TrainGraph:
    """The training graph: data, forward pass, loss, AdamW step, test ops and saver.

    Built in its own ``tf.Graph`` (finalised), so it works whether eager execution is on or off.

    With ``config.strategy`` other than ``default`` the step runs on several replicas
    (:mod:`sipsa_tf.training.distribute`): the dataset's batch is the global batch, the inputs
    are not feedable (``ms``, ``pan``, ``target``, ``forward`` and ``gradients`` are None), the
    loss terms are the means over replicas, and the saver reads and writes the first replica's
    copies under the same names as the one-device graph.

    Args:
        config: :class:`TrainConfig` (uses batch/schedule/loss settings, the strategy and the
            seed).
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
        test: :class:`image_eval.TestOps` sharing the network variables.
        network_variables, optimizer_variables: lists of variables.
        saver: saves every global variable under its name.
        replicas: :class:`distribute.Replicas`, or None for the one-device graph.
    """

    def __init__(self, config, dataset_fn=None, test_ops=True):
        self.config = config
        self.graph = tf.Graph()
        self.replicas = None
        self._sync_op = None
        self.policy = precision.policy(config.precision)
        self.loss_scale = None
        with self.graph.as_default():
            tf.compat.v1.set_random_seed(config.seed)
            if config.strategy == "default":
                optimizer = self._build_one_device(config, dataset_fn)
            else:
                with distribute.quiet_info():
                    self.replicas = distribute.build(config.strategy, config.devices,
                                                     config.batch_size)
                    optimizer = self._build_replicated(config, dataset_fn)
            self.optimizer_variables = (
                [optimizer.get_slot(v, name) for v in self.network_variables
                 for name in ("m", "v")] + list(optimizer._get_beta_accumulators()))
            self.test = (image_eval.build_test_ops(**config.forward_options) if test_ops
                         else None)
            everything = tf.compat.v1.global_variables()
            self.saver = tf.compat.v1.train.Saver(
                var_list={v.op.name: self._stored(v) for v in everything}, max_to_keep=None,
                save_relative_paths=True)
            self._warm_start_variables = {
                False: list(self.network_variables),
                True: (list(self.network_variables) + self.optimizer_variables
                       + [self.global_step])}
            self._warm_start_savers = {
                key: tf.compat.v1.train.Saver(
                    var_list={v.op.name: self._stored(v) for v in variables})
                for key, variables in self._warm_start_variables.items()}
            if self.replicas is not None:
                # a restore writes the first replica's copies; this copies them to the others
                self._sync_op = tf.group([
                    copy.assign(values[0]) for values in
                    (distribute.local_values(self.replicas, v) for v in everything)
                    for copy in values[1:]])
            self.init_op = tf.group(tf.compat.v1.global_variables_initializer(),
                                    tf.compat.v1.local_variables_initializer())
            if self.replicas is None:
                self._iterator_init = (None if self.iterator is None
                                       else self.iterator.initializer)
        self.graph.finalize()

    def _temperature(self):
        """The FAM softmax temperature of ``--fam_temperature``: T0 at step 0, linearly down to
        1 at ``--fam_temperature_steps``, 1 after; None without the option (original graph)."""
        config = self.config
        if not config.temperature:
            return None
        progress = tf.minimum(tf.cast(self.global_step, tf.float32)
                              / float(config.fam_temperature_steps), 1.0)
        return config.fam_temperature - (config.fam_temperature - 1.0) * progress

    def _objective(self, batch):
        """Forward pass and loss terms of a batch (dict ms, pan[, target[, flow]])."""
        fwd = model.forward(batch["ms"], batch["pan"], policy=self.policy,
                            temperature=self._temperature(),
                            **self.config.forward_options)
        if self.config.objective == "wald":
            terms = losses.supervised_l1(fwd.output, batch["target"], self.config.edge_weight)
            if self.config.align_weight > 0:
                terms = losses.with_alignment(terms, fwd.kernel, batch["flow"],
                                              self.config.align_weight, self.config.align_loss,
                                              self.config.align_local_weight,
                                              self.config.align_target)
            if self.config.sam_weight > 0:
                terms = losses.with_spectral_angle(terms, fwd.output, batch["target"],
                                                   self.config.sam_weight)
        else:
            terms = losses.sipsa_loss(
                fwd.out4, fwd.aligned4, fwd.ms_n, fwd.pan_n,
                per_sample=self.config.per_sample_loss, literal=self.config.literal_loss)
        return fwd, terms

    def _schedule(self, config, **aggregation):
        self.global_step = tf.compat.v1.Variable(0, name="global_step", trainable=False,
                                                 **aggregation)
        self.learning_rate, self.weight_decay = schedule(
            self.global_step, config.boundary, config.learning_rate, config.weight_decay,
            config.lr_decay)
        self.loss_names = config.loss_names
        return AdamWOptimizer(self.weight_decay, self.learning_rate)

    def _build_one_device(self, config, dataset_fn):
        """The one-device graph (``--strategy=default``): feedable inputs, one AdamW step."""
        optimizer = self._schedule(config)
        self.iterator = None
        names = config.input_names
        channels = {"ms": 3, "pan": 1, "target": 3, "flow": 2}
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
        self.flow = inputs.get("flow")
        self.forward, self.loss_terms = self._objective(inputs)
        self.network_variables = network.network_variables(self.graph)
        branch_names = network.kernel_branch_names()
        # A gated variable's gradient is zero while its gate is shut (Adam's moments of a fresh
        # run stay zero, so it does not move; its weight decay of 1e-7 per step still runs).
        if config.freeze_steps > 0:
            # until --freeze_steps only the kernel branch learns
            optimizer.gate = (branch_names,
                              tf.cast(self.global_step >= config.freeze_steps, tf.float32))
        elif config.freeze_kernel_branch:
            # everything learns but the kernel branch
            optimizer.gate = ({v.op.name for v in self.network_variables} - branch_names,
                              tf.constant(0.0))
        grads_and_vars, self.train_op, self.loss_scale = precision.minimize(
            optimizer, self.loss_terms["loss"], self.network_variables, self.global_step,
            self.policy)
        self.reinit_op = _kernel_branch_init(
            network.kernel_branch_variables(self.network_variables)) if config.fam_reinit else None
        self.gradients = [g for g, _ in grads_and_vars]
        with tf.control_dependencies([self.train_op]):
            self.step_after = tf.identity(self.global_step.read_value())
        return optimizer

    def _build_replicated(self, config, dataset_fn):
        """The data-parallel graph: each replica takes its share of the dataset's global batch,
        the gradients of loss / replicas are summed over replicas, one AdamW step updates every
        copy (:mod:`sipsa_tf.training.distribute`)."""
        if dataset_fn is None:
            raise ValueError("a replicated TrainGraph needs a dataset_fn")
        strategy, count = self.replicas.strategy, self.replicas.count
        names = config.input_names
        with strategy.scope():
            optimizer = self._schedule(
                config, aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
            self.iterator = strategy.make_dataset_iterator(dataset_fn())

            def step_fn(batch):
                _, terms = self._objective(dict(zip(names, batch)))
                variables = network.network_variables(tf.compat.v1.get_default_graph())
                self.network_variables = variables  # before the optimizer adds its slots
                grads_and_vars = optimizer.compute_gradients(terms["loss"] / count,
                                                             var_list=variables)
                update = optimizer.apply_gradients(grads_and_vars,
                                                   global_step=self.global_step)
                with tf.control_dependencies([update]):
                    return {k: tf.identity(v) for k, v in terms.items()}

            self._iterator_init = self.iterator.initializer
            per_replica = strategy.experimental_run(step_fn, self.iterator)
            self.loss_terms = {k: strategy.reduce(tf.distribute.ReduceOp.MEAN, v, axis=None)
                               for k, v in per_replica.items()}
            self.train_op = tf.group([t for v in per_replica.values()
                                      for t in distribute.local_values(self.replicas, v)])
            with tf.control_dependencies([self.train_op]):
                self.step_after = tf.identity(self.global_step.read_value())
        self.ms = self.pan = self.target = self.flow = self.forward = None
        self.gradients = None
        self.reinit_op = None
        return optimizer

    def reinitialize_kernel_branch(self, session):
        """Runs ``--fam_reinit``: new weights for convolutions 1-11 (see _kernel_branch_init)."""
        session.run(self.reinit_op)

    def _stored(self, variable):
        """What a saver reads and writes for ``variable``: itself, or the first replica's copy
        (a restore is followed by the copy to the other replicas)."""
        if self.replicas is None:
            return variable
        return distribute.local_values(self.replicas, variable)[0]

    def session(self):
        """A new session on this graph (thread counts from the config; devices and cluster
        from the strategy)."""
        config = make_session_config(self.config.threads)
        if self.replicas is None:
            return tf.compat.v1.Session(graph=self.graph, config=config)
        return tf.compat.v1.Session(self.replicas.target, graph=self.graph,
                                    config=self.replicas.session_config(config))

    def initialize(self, session):
        """Initialises every variable (and the data iterator)."""
        session.run(self.init_op)
        if self._iterator_init is not None:
            session.run(self._iterator_init)

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
            checkpoints.restore_with(session, self._warm_start_savers[bool(include_optimizer)],
                                     prefix)
        self._sync(session)

    def save(self, session, prefix):
        """Saves every variable under ``prefix`` (no meta graph, no state file)."""
        with self.graph.as_default():
            self.saver.save(session, prefix, write_meta_graph=False, write_state=False)

    def restore(self, session, prefix):
        """Restores every variable from a checkpoint written by :meth:`save`."""
        with self.graph.as_default():
            checkpoints.restore_with(session, self.saver, prefix)
        self._sync(session)

    def _sync(self, session):
        if self._sync_op is not None:
            session.run(self._sync_op)


# Residual convolutions of the kernel branch (y + conv(lrelu(y))): conv03 and conv05-conv11.
_RESIDUAL_KERNEL_LAYERS = (3,) + tuple(range(5, 12))
RESIDUAL_INIT_SCALE = 0.1


def _kernel_branch_init(variables):
    """``--fam_reinit``: He-normal weights (residual convolutions x 0.1), zero biases.

    Gives the kernel branch gradients again after its softmax has saturated (docs/training.md,
    "The feature alignment module"); names and shapes are unchanged.
    """
    assigns = []
    for v in variables:
        shape = v.shape.as_list()
        if v.op.name.split("/")[-1].startswith("b_"):
            assigns.append(v.assign(tf.zeros(shape)))
            continue
        number = int(v.op.name[-2:])
        std = np.sqrt(2.0 / (shape[0] * shape[1] * shape[2]))
        if number in _RESIDUAL_KERNEL_LAYERS:
            std *= RESIDUAL_INIT_SCALE
        assigns.append(v.assign(tf.random.normal(shape, stddev=std)))
    return tf.group(assigns)
