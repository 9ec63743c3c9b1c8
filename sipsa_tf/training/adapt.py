"""Scene adaptation: fine-tune SIPSA-Net on the very scene it is about to fuse.

SIPSA-Net (J. Lee, S. Seo, M. Kim, "SIPSA-Net: Shift-Invariant Pan Sharpening with Moving Object
Alignment for Satellite Imagery", CVPR 2021) is trained with an unsupervised loss: edge terms
against the PAN and shift-invariant colour terms against the MS
(:func:`sipsa_tf.core.losses.sipsa_loss`).
It needs no reference image, so it can also be minimised on the target scene itself before fusing
it ("test-time" or "zero-shot" adaptation, as done for pan-sharpening CNNs by Ciotola et al.,
IEEE TGRS 2022): a network trained elsewhere (or not at all) is fitted to the scene's own sensor,
radiometry and PAN/MS misregistration.

:func:`adapt` builds its own graph and session: the forward pass and the loss on random crops of
the scene, and AdamW (Adam with decoupled weight decay, as the original trainer; the optimiser of
:mod:`sipsa_tf.training.loop`) with a constant learning rate and weight decay. It starts from a
:class:`~sipsa_tf.inference.Pansharpener`, a checkpoint, or a random initialisation (``None``),
and returns an :class:`AdaptedPansharpener`: a Pansharpener holding the adapted weights, with the
loss history and a :meth:`~AdaptedPansharpener.save` method. Variable names are the original's
(``op_net/G/w_convNN`` / ``b_convNN``) throughout, so saved adapted weights restore in the
original code as well.

The reduced- and full-resolution protocols of Vivone et al. (IEEE TGRS 2015; IEEE GRSM 2021) in
which adapted models are evaluated are in :mod:`sipsa_tf.evaluation`.
"""
import os
import shutil
import tempfile
import time

import numpy as np
import tensorflow as tf

from sipsa_tf import checkpoints, data, inference
from sipsa_tf.core import losses, model, network
from sipsa_tf.io import validation
from sipsa_tf.errors import UserError
from sipsa_tf.utils.closing import Closing

__all__ = ["AdaptedPansharpener", "Adapter", "adapt", "initial_weights", "save_weights", "check_settings", "DEFAULT_CROP",
           "DEFAULT_BATCH"]

DEFAULT_CROP = 32       # MS pixels (PAN crops are 4x): the scale of the original's test crops
DEFAULT_BATCH = 4       # the original's batch size
DEFAULT_EVAL_CROPS = 4


def save_weights(weights, prefix):
    """Writes network weights as a TensorFlow checkpoint under their names.

    Args:
        weights: dict {variable name (e.g. 'op_net/G/w_conv01'): NumPy array}.
        prefix: checkpoint prefix to write (``prefix.index``, ``prefix.data-*``); no state
            file and no meta graph, as the original saves.

    Returns:
        prefix.
    """
    graph = tf.Graph()
    with graph.as_default():
        holders = {name: tf.compat.v1.Variable(np.asarray(value), name=name.replace("/", "_"),
                                               trainable=False)
                   for name, value in weights.items()}
        saver = tf.compat.v1.train.Saver(var_list=holders)
        init = tf.compat.v1.variables_initializer(list(holders.values()))
    with tf.compat.v1.Session(graph=graph) as session:
        session.run(init)
        saver.save(session, prefix, write_meta_graph=False, write_state=False)
    return prefix


def initial_weights(source, seed=0):
    """The network weights to start from, as a dict {name: array}.

    Args:
        source: a :class:`~sipsa_tf.inference.Pansharpener` (its current weights), a checkpoint
            prefix or directory (only ``op_net/G/*`` is read), or None (the original's random
            initialisation with graph seed ``seed``).
        seed: used only when ``source`` is None.

    Returns:
        dict {variable name: float32 array}, the names of ``network.network_variables``.

    Raises:
        checkpoints.CheckpointError: checkpoint missing or not fitting SIPSA-Net.
    """
    if isinstance(source, inference.Pansharpener):
        return _read(source.session, source.variables)
    with inference.Pansharpener(source, seed=seed) as fresh:
        return _read(fresh.session, fresh.variables)


def _read(session, variables):
    """{variable name: value} of ``variables`` in ``session``."""
    return {v.op.name: np.asarray(x) for v, x in zip(variables, session.run(variables))}


class AdaptedPansharpener(inference.Pansharpener):
    """A :class:`~sipsa_tf.inference.Pansharpener` holding weights adapted to one scene.

    Use it exactly like a Pansharpener (``p(ms, pan)``, ``p.test_metrics``,
    ``p.training_loss``). Built by :func:`adapt`.

    Attributes:
        weights: dict {variable name: array} of the adapted network.
        history: list of the training loss (``loss_G``) of each step's batch.
        loss_before, loss_after: mean loss over the fixed evaluation crops before and after
            adaptation (the same crops, one at a time).
        settings: dict of the adaptation settings (steps, lr, wd, crop, batch, seed, source).
        seconds: wall time of the adaptation.
    """

    def __init__(self, weights, history, loss_before, loss_after, settings, seconds,
                 per_sample=False, session_config=None):
        tmp = tempfile.mkdtemp(prefix="sipsa-adapted-")
        try:
            prefix = save_weights(weights, os.path.join(tmp, "adapted"))
            super().__init__(prefix, per_sample=per_sample, session_config=session_config)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        self.checkpoint = None  # the temporary files are gone; save() writes real ones
        self.weights = weights
        self.history = list(history)
        self.loss_before = loss_before
        self.loss_after = loss_after
        self.settings = dict(settings)
        self.seconds = seconds

    def save(self, prefix):
        """Writes the adapted weights as a checkpoint (original variable names).

        Args:
            prefix: e.g. ``adapted/model-100``; the folder is created.

        Returns:
            prefix (loadable with ``Pansharpener(prefix)`` or the original code).
        """
        folder = os.path.dirname(os.path.abspath(prefix))
        os.makedirs(folder, exist_ok=True)
        return save_weights(self.weights, prefix)


def _augment(ms, pan, rng):
    """One random flip + rot90 shared by MS and PAN of the whole batch (the trainer's)."""
    if rng.random() < 0.5:
        ms, pan = ms[:, :, ::-1], pan[:, :, ::-1]
    k = int(rng.integers(4))
    return (np.ascontiguousarray(np.rot90(ms, k, axes=(1, 2))),
            np.ascontiguousarray(np.rot90(pan, k, axes=(1, 2))))


def check_settings(ms, pan, steps, crop, batch, eval_crops):
    """Checks one scene and the adaptation settings before anything is built.

    Returns:
        (ms (h, w, 3) float32, pan (4h, 4w, 1) float32, crop reduced to the scene's size).

    Raises:
        ValueError: bad image pair or settings (one line saying which).
    """
    ms4, pan4 = validation.check_pair(ms, pan, model.MIN_MS_SIZE)
    if ms4.shape[0] != 1:
        raise UserError("adapt takes one scene, got a batch of %d" % ms4.shape[0])
    for name, value in (("steps", steps), ("batch", batch), ("eval_crops", eval_crops)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise UserError("%s must be a non-negative integer, got %r" % (name, value))
    if batch < 1:
        raise UserError("batch must be at least 1, got %d" % batch)
    crop = int(min(crop, ms4.shape[1], ms4.shape[2]))
    if crop < model.MIN_MS_SIZE:
        raise UserError("crop must be at least %d MS pixels, got %d" % (model.MIN_MS_SIZE, crop))
    return ms4[0], pan4[0], crop


class _AdaptGraph:
    """Forward pass, loss and AdamW step on fed crops, in a graph of its own."""

    def __init__(self, lr, wd, per_sample, seed):
        from sipsa_tf.training.optimizer import AdamWOptimizer

        self.graph = tf.Graph()
        with self.graph.as_default():
            tf.compat.v1.set_random_seed(seed)
            self.ms = tf.compat.v1.placeholder(tf.float32, [None, None, None, 3], "ms")
            self.pan = tf.compat.v1.placeholder(tf.float32, [None, None, None, 1], "pan")
            fwd = model.forward(self.ms, self.pan)
            self.loss = losses.sipsa_loss(fwd.out4, fwd.aligned4, fwd.ms_n, fwd.pan_n,
                                          per_sample=per_sample)["loss"]
            self.variables = network.network_variables(self.graph)
            self.init_network = tf.compat.v1.variables_initializer(self.variables)
            self.saver = tf.compat.v1.train.Saver(var_list={v.op.name: v for v in self.variables})
            optimizer = AdamWOptimizer(wd, lr)
            grads = optimizer.compute_gradients(self.loss, var_list=self.variables)
            self.train_op = optimizer.apply_gradients(grads)
            self.init = tf.compat.v1.global_variables_initializer()
            self.holders = {v.op.name: tf.compat.v1.placeholder(v.dtype.base_dtype, v.shape)
                            for v in self.variables}
            self.load = tf.group(*[v.assign(self.holders[v.op.name]) for v in self.variables])
        self.graph.finalize()

    def starting_weights(self, session, source):
        """Reads the weights of ``source`` (see :class:`Adapter`) through this graph."""
        if isinstance(source, inference.Pansharpener):
            return initial_weights(source)
        if source is None:
            session.run(self.init_network)
        else:
            checkpoints.check_variables(source, self.variables)
            with self.graph.as_default():  # the Saver would otherwise act eagerly in TF2
                checkpoints.restore_with(session, self.saver, source)
        return _read(session, self.variables)


class Adapter(Closing):
    """Adapts one starting network to scene after scene, building the graph only once.

    Building the training graph takes a few seconds; an evaluation adapting to many scenes makes
    one Adapter and calls :meth:`adapt` per scene. Every call starts again from the same
    starting weights with fresh Adam slots, so calls are independent of each other.

    Args:
        source: where to start: a :class:`~sipsa_tf.inference.Pansharpener` (left unchanged),
            a checkpoint prefix or directory, or None for the original's random initialisation
            (seeded by ``seed``).
        lr: Adam learning rate (the original's initial 1e-4), constant.
        wd: decoupled weight decay per step (the original's initial 1e-7), constant.
        per_sample: loss minimum over shifts per batch item (see ``Pansharpener``).
        seed: seeds the random initialisation when ``source`` is None.
        session_config: optional ``tf.compat.v1.ConfigProto`` for the sessions.

    Raises:
        ValueError: bad settings; checkpoints.CheckpointError: unusable checkpoint.
    """

    def __init__(self, source, lr=1e-4, wd=1e-7, per_sample=False, seed=0, session_config=None):
        if not (lr >= 0 and wd >= 0):
            raise UserError("lr and wd must be non-negative, got %r and %r" % (lr, wd))
        if isinstance(source, inference.Pansharpener):
            self.source_text = source.checkpoint or "Pansharpener (in memory)"
        elif source is None:
            self.source_text = "random initialisation (seed %d)" % seed
        else:
            self.source_text = checkpoints.resolve(source)
        self.lr, self.wd, self.per_sample = float(lr), float(wd), bool(per_sample)
        self.session_config = session_config
        self._graph = _AdaptGraph(lr, wd, per_sample, seed)
        self._session = tf.compat.v1.Session(graph=self._graph.graph, config=session_config)
        try:
            self.weights = self._graph.starting_weights(
                self._session, self.source_text if isinstance(source, str) else source)
        except Exception:
            self._session.close()
            raise

    def _reset(self):
        g = self._graph
        self._session.run(g.init)  # fresh Adam slots and beta powers
        self._session.run(g.load, {g.holders[name]: value for name, value in self.weights.items()})

    def _loss(self, ms, pan):
        g = self._graph
        return float(self._session.run(g.loss, {g.ms: ms, g.pan: pan}))

    def adapt(self, ms, pan, steps, crop=DEFAULT_CROP, batch=DEFAULT_BATCH, seed=0,
              progress=None, augment=True, eval_crops=DEFAULT_EVAL_CROPS):
        """Fine-tunes the starting network on one scene; see :func:`adapt` for the arguments.

        Returns:
            :class:`AdaptedPansharpener`.
        """
        ms3, pan3, crop = check_settings(ms, pan, steps, crop, batch, eval_crops)
        start = time.time()
        self._reset()
        rng = np.random.default_rng([seed, 0])
        if eval_crops:
            eval_ms, eval_pan = data.random_crops(ms3, pan3, eval_crops, crop,
                                                  np.random.default_rng([seed, 1]))

        def eval_loss():
            if eval_crops == 0:
                return float("nan")
            return float(np.mean([self._loss(eval_ms[i:i + 1], eval_pan[i:i + 1])
                                  for i in range(eval_crops)]))

        g = self._graph
        loss_before = eval_loss()
        history = []
        for step in range(1, steps + 1):
            ms_b, pan_b = data.random_crops(ms3, pan3, batch, crop, rng)
            if augment:
                ms_b, pan_b = _augment(ms_b, pan_b, rng)
            _, loss = self._session.run([g.train_op, g.loss], {g.ms: ms_b, g.pan: pan_b})
            history.append(float(loss))
            if progress is not None:
                progress(step, steps, float(loss))
        loss_after = eval_loss() if steps else loss_before
        adapted = _read(self._session, g.variables)
        settings = {"steps": int(steps), "lr": self.lr, "wd": self.wd, "crop": crop,
                    "batch": int(batch), "seed": int(seed), "per_sample": self.per_sample,
                    "augment": bool(augment), "source": self.source_text}
        return AdaptedPansharpener(adapted, history, loss_before, loss_after, settings,
                                   time.time() - start, per_sample=self.per_sample,
                                   session_config=self.session_config)

    def close(self):
        """Releases the training session."""
        self._session.close()


def adapt(pansharpener_or_checkpoint, ms, pan, steps, lr=1e-4, wd=1e-7, crop=DEFAULT_CROP,
          batch=DEFAULT_BATCH, seed=0, per_sample=False, progress=None, augment=True,
          eval_crops=DEFAULT_EVAL_CROPS, session_config=None):
    """Fine-tunes SIPSA-Net on one scene with its own unsupervised loss, then returns it.

    Each step draws ``batch`` random crops of the scene (``crop`` x ``crop`` MS pixels and the
    PAN under them, whole MS pixels apart, as the trainer's crops), applies one random flip and
    rot90 to the batch (``augment``), and takes one AdamW step on the original loss ``loss_G``
    (:func:`sipsa_tf.core.losses.sipsa_loss`; the shift minimum over shifts and batch items, or per
    item with ``per_sample``). The learning rate and the decoupled weight decay are constant.
    No reference image is used anywhere.

    Example::

        p = adapt("checkpoints/", ms, pan, steps=50)   # or adapt(None, ...) from scratch
        fused = p(ms, pan)["output"]
        p.loss_before, p.loss_after, p.history
        p.save("adapted/model-50")

    Args:
        pansharpener_or_checkpoint: where to start: a :class:`~sipsa_tf.inference.Pansharpener`
            (left unchanged), a checkpoint prefix or directory, or None for the original's random
            initialisation (seeded by ``seed``).
        ms: (h, w, 3) float MS of the scene, values in [0, 1] (DN / 2047 for 11-bit data).
        pan: (4h, 4w) or (4h, 4w, 1) float PAN, same scale.
        steps: number of AdamW steps (0 returns the starting weights, as a new object).
        lr: Adam learning rate (the original's initial 1e-4).
        wd: decoupled weight decay per step (the original's initial 1e-7).
        crop: MS crop side; reduced to the scene's size if larger; at least 5.
        batch: crops per step.
        seed: seeds the crops, the augmentation and (from None) the initialisation.
        per_sample: loss minimum over shifts per batch item (see ``Pansharpener``).
        progress: optional callable ``progress(step, steps, loss)`` called after every step.
        augment: random flip/rot90 per batch.
        eval_crops: number of fixed crops (drawn once from ``seed``) on which ``loss_before``
            and ``loss_after`` are measured, one crop at a time.
        session_config: optional ``tf.compat.v1.ConfigProto`` for the sessions.

    Returns:
        :class:`AdaptedPansharpener` with the adapted weights.

    Raises:
        ValueError: bad image pair (see :class:`~sipsa_tf.inference.Pansharpener`), or bad
            settings; checkpoints.CheckpointError: unusable checkpoint.
    """
    check_settings(ms, pan, steps, crop, batch, eval_crops)
    with Adapter(pansharpener_or_checkpoint, lr=lr, wd=wd, per_sample=per_sample, seed=seed,
                 session_config=session_config) as adapter:
        return adapter.adapt(ms, pan, steps, crop=crop, batch=batch, seed=seed,
                             progress=progress, augment=augment, eval_crops=eval_crops)
