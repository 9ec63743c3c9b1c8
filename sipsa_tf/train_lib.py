"""Session-based SIPSA-Net trainer: AdamW, schedule, atomic checkpoints, resume, logs, summaries.

Reference: Lee, Seo, Kim, "Shift-Invariant Pan Sharpening with Moving Object Alignment for
Satellite Imagery", CVPR 2021 (SPEC.md sections 5-7 describe the original training script).

* Optimiser: Adam (beta1 0.9, beta2 0.999, eps 1e-8) with decoupled weight decay, as the original's
  ``tf.contrib.opt.extend_with_decoupled_weight_decay(AdamOptimizer)``: before each Adam update
  ``var -= wd * var`` (not scaled by the learning rate). Here the gradients are computed before the
  decay (the decay ops wait for every gradient), so the step is exactly
  ``var <- var (1 - wd) - lr_t m / (sqrt(v) + eps)`` with m, v from the gradient at the old var.
  Variables are named as the original's (``.../Adam``, ``.../Adam_1``, ``beta1_power``,
  ``beta2_power``, int32 ``global_step``), so its checkpoints resume here.
* Schedule: lr = 1e-4 r, wd = 1e-7 r, r = 1 while ``global_step <= boundary``, then 0.1
  (``piecewise_constant``; boundary 49,999 = total iterations / 2 - 1 in the original).
* Loss: the lean formulation of the original loss (:mod:`sipsa_tf.losses`, same value and
  gradient), optionally per-sample or literal.
* Checkpoints ``model.ckpt-<step>`` written atomically (temporary prefix, rename, then the
  ``checkpoint`` state file), ``flags.txt`` beside; a restart with the same directory resumes from
  the last complete checkpoint.
* Logs: the original's lines (``epcIndex ... |iter ... |train ...``, ``[Align X] ...``,
  ``[4ch SCC] ...``) to ``train_log.txt`` and stdout, a one-line progress bar with ETA on stderr,
  TensorBoard events (loss terms, lr, test metrics, MS | PAN | aligned | output panels) and
  ``train_scalars.csv``.

Library code only: the command line is :mod:`sipsa_tf.train`.
"""
import contextlib
import csv
import dataclasses
import glob
import io
import os
import re
import sys
import time

import numpy as np
import tensorflow as tf

from sipsa_tf import (checkpoints, data, inference, losses, model, network, quality, runlock,
                      supervised, test_images)

ADAM_BETA1 = 0.9
ADAM_BETA2 = 0.999
ADAM_EPSILON = 1e-8
CHECKPOINT_BASENAME = "model.ckpt"
TEMP_MARK = ".tmp-"
STATE_FILE = "checkpoint"
FLAGS_FILE = "flags.txt"
LOG_FILE = "train_log.txt"
SCALARS_FILE = "train_scalars.csv"
IMAGES_FOLDER = "Imgs"
LOSS_TERMS = ("loss", "edge_big", "color_big", "edge_small", "color_small")
OBJECTIVES = {"original": LOSS_TERMS, "wald": ("loss",)}  # objective -> its loss terms


@dataclasses.dataclass
class TrainConfig:
    """Every setting of a training run; field names are the command-line flag names.

    Defaults are the original's settings (Proposed_10_16_0.py), except paths.
    """
    data_dir: str = None
    log_dir: str = None
    checkpoint_dir: str = None      # default: log_dir
    test_folder: str = "Test"       # <data_dir>/<test_folder>/{RGB,PAN}; skipped if absent
    test_dir: str = None            # overrides test_folder; must exist
    pair_by_order: bool = False
    img_div: float = data.IMG_DIV
    batch_size: int = 4
    ms_patch: int = 128
    crops_per_image: int = 30
    readers: int = 6
    shuffle_buffer: int = 300
    augment: bool = True
    learning_rate: float = 1e-4
    weight_decay: float = 1e-7
    lr_boundary: int = -1           # -1: epochs * iters_per_epoch / 2 - 1, as the original
    lr_decay: float = 0.1
    epochs: int = 10
    iters_per_epoch: int = 10000
    max_steps: int = 0              # > 0: stop at this global step
    per_sample_loss: bool = False
    literal_loss: bool = False
    test_every: int = 1
    save_every: int = 0             # > 0: also save every this many steps
    keep_checkpoints: int = 5       # 0 keeps all
    summary_every: int = 50
    seed: int = 0
    init_checkpoint: str = None
    init_optimizer: bool = False
    threads: int = 0                # intra/inter-op threads; 0: TensorFlow's default
    progress: str = "auto"          # auto (bar on a terminal, 10% lines otherwise), on, off
    objective: str = "original"     # original (unsupervised) or wald (supervised, docs/training.md)
    split: str = None               # split file: train on its "train" regions of data_dir/*.mat
    synthetic_fraction: float = 0.0  # wald: share of crops from synthetic scenes with truth
    synthetic_scenes: int = 64      # wald: how many synthetic scenes (MS synthetic_size^2)
    synthetic_size: int = 64
    max_offset: float = 2.0         # wald: global MS displacement, MS pixels
    local_offset: float = 0.5       # wald: local MS displacement field amplitude, MS pixels
    aligned_fraction: float = 0.25  # wald: share of crops left aligned
    synthetic_aligned_fraction: float = None  # wald: share of synthetic scenes left aligned
                                              # (default: aligned_fraction)

    @property
    def total_steps(self):
        """The global step training stops at."""
        total = self.epochs * self.iters_per_epoch
        return min(total, self.max_steps) if self.max_steps > 0 else total

    @property
    def boundary(self):
        """The global step after which lr and wd drop by lr_decay."""
        if self.lr_boundary >= 0:
            return self.lr_boundary
        return int(self.epochs * self.iters_per_epoch / 2 - 1)

    def validate(self):
        """Raises ValueError naming the first bad setting."""
        positive = ("batch_size", "ms_patch", "crops_per_image", "readers", "shuffle_buffer",
                    "epochs", "iters_per_epoch", "test_every", "img_div")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ValueError("--%s must be positive, got %s" % (name, getattr(self, name)))
        if self.ms_patch < model.MIN_MS_SIZE:
            raise ValueError("--ms_patch must be at least %d, got %d"
                             % (model.MIN_MS_SIZE, self.ms_patch))
        if not self.data_dir:
            raise ValueError("--data_dir is required")
        if not self.log_dir:
            raise ValueError("--log_dir is required")
        if self.progress not in ("auto", "on", "off"):
            raise ValueError("--progress must be auto, on or off, got %r" % self.progress)
        if self.objective not in OBJECTIVES:
            raise ValueError("--objective must be one of %s, got %r"
                             % (", ".join(OBJECTIVES), self.objective))
        if not 0 <= self.synthetic_fraction <= 1:
            raise ValueError("--synthetic_fraction must be in [0, 1], got %s"
                             % self.synthetic_fraction)
        if self.synthetic_fraction > 0 and self.objective != "wald":
            raise ValueError("--synthetic_fraction needs --objective=wald")
        self.displacement().validate()
        self.displacement(synthetic=True).validate()

    def displacement(self, synthetic=False):
        """The misregistration augmentation of the Wald objective (of the real crops, or of
        the synthetic scenes with ``synthetic``)."""
        aligned = self.aligned_fraction
        if synthetic and self.synthetic_aligned_fraction is not None:
            aligned = self.synthetic_aligned_fraction
        return supervised.Displacement(self.max_offset, self.local_offset, aligned)

    def to_flags(self):
        """The settings as a flag file (``--flagfile`` reads it back)."""
        lines = []
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if value is None:
                continue
            if isinstance(value, bool):
                lines.append("--%s%s" % ("" if value else "no", field.name))
            else:
                lines.append("--%s=%s" % (field.name, value))
        return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------- optimiser

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

    def _prepare(self):
        super()._prepare()
        self._weight_decay_t = tf.convert_to_tensor(self._weight_decay, name="weight_decay")

    def apply_gradients(self, grads_and_vars, global_step=None, name=None):
        grads_and_vars = list(grads_and_vars)
        self._gradients_done = [g for g, _ in grads_and_vars if g is not None]
        return super().apply_gradients(grads_and_vars, global_step=global_step, name=name)

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


# ------------------------------------------------------------------------- graph

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
        train_op: one AdamW step (increments global_step).
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
            fwd = model.forward(self.ms, self.pan)
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
            grads_and_vars = optimizer.compute_gradients(self.loss_terms["loss"],
                                                         var_list=self.network_variables)
            self.gradients = [g for g, _ in grads_and_vars]
            self.train_op = optimizer.apply_gradients(grads_and_vars,
                                                      global_step=self.global_step)
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
            self.init_op = tf.compat.v1.global_variables_initializer()
        self.graph.finalize()

    def session(self):
        """A new session on this graph (thread counts from the config)."""
        config = inference.make_session_config(self.config.threads)
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


# ------------------------------------------------------------------------- checkpoints

def _step_of(prefix):
    match = re.search(r"-(\d+)$", prefix)
    return int(match.group(1)) if match else -1


class CheckpointManager:
    """Atomic ``model.ckpt-<step>`` checkpoints in one directory, with a ``checkpoint`` file.

    A save writes ``.tmp-model.ckpt-<step>.*``, renames the data files, then the index, and only
    then rewrites the state file (itself written to a temporary file and renamed). A checkpoint
    whose index is present is therefore complete; :meth:`latest` still verifies every candidate
    (all data shards present and every tensor readable) and falls back to older ones, so a run
    killed during a save resumes from the last complete checkpoint.

    Args:
        directory: the checkpoint directory (created).
        keep: how many recent checkpoints to keep (0: all).
    """

    def __init__(self, directory, keep=5):
        self.directory = directory
        self.keep = keep
        os.makedirs(directory, exist_ok=True)

    def prefix(self, step):
        return os.path.join(self.directory, "%s-%d" % (CHECKPOINT_BASENAME, step))

    def remove_temporary(self):
        """Deletes what an interrupted save left behind: temporary files, data shards whose index
        was never written (the index is renamed last) and unreadable checkpoints (truncated or
        corrupt files). Returns the removed file names."""
        removed = []
        orphan = re.compile(re.escape(CHECKPOINT_BASENAME) + r"-(\d+)\.data-\d+-of-\d+$")
        for name in sorted(os.listdir(self.directory)):
            match = orphan.match(name)
            if match and not os.path.exists(self.prefix(int(match.group(1))) + ".index"):
                os.remove(os.path.join(self.directory, name))
                removed.append(name)
            elif (name.startswith(TEMP_MARK + CHECKPOINT_BASENAME)
                  or name == STATE_FILE + ".tmp"):
                path = os.path.join(self.directory, name)
                if os.path.isdir(path):
                    import shutil
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    os.remove(path)
                removed.append(name)
        for step in self.all_steps():
            prefix = self.prefix(step)
            if not self.is_complete(prefix):
                for path in glob.glob(glob.escape(prefix) + ".*"):
                    os.remove(path)
                    removed.append(os.path.basename(path))
        return removed

    def all_steps(self):
        """Steps of every ``model.ckpt-<step>.index`` here, ascending (complete or not)."""
        steps = []
        pattern = os.path.join(self.directory, CHECKPOINT_BASENAME + "-*.index")
        for path in glob.glob(pattern):
            step = _step_of(path[:-len(".index")])
            if step >= 0:
                steps.append(step)
        return sorted(steps)

    @staticmethod
    def is_complete(prefix):
        """True if the index, every data shard and every tensor of ``prefix`` can be read."""
        if not os.path.exists(prefix + ".index"):
            return False
        shards = glob.glob(glob.escape(prefix) + ".data-*-of-*")
        if not shards:
            return False
        match = re.search(r"-of-(\d+)$", shards[0])
        count = int(match.group(1)) if match else 0
        expected = ["%s.data-%05d-of-%05d" % (prefix, i, count) for i in range(count)]
        if count == 0 or not all(os.path.exists(p) for p in expected):
            return False
        try:
            reader = tf.train.load_checkpoint(prefix)
            for name in reader.get_variable_to_shape_map():
                reader.get_tensor(name)
        except Exception:  # missing, truncated or corrupt files
            return False
        return True

    def latest(self):
        """The newest complete checkpoint prefix here, or None."""
        candidates = []
        state = self._read_state()
        if state:
            candidates.append(state)
        candidates += [self.prefix(s) for s in reversed(self.all_steps())]
        for prefix in dict.fromkeys(candidates):
            if self.is_complete(prefix):
                return prefix
        return None

    def _read_state(self):
        path = os.path.join(self.directory, STATE_FILE)
        if not os.path.exists(path):
            return None
        try:
            state = tf.train.get_checkpoint_state(self.directory)
        except Exception:  # an unparsable state file is ignored, the scan decides
            return None
        if not state or not state.model_checkpoint_path:
            return None
        prefix = state.model_checkpoint_path
        return prefix if os.path.isabs(prefix) else os.path.join(self.directory, prefix)

    def _write_state(self, latest, kept):
        lines = ['model_checkpoint_path: "%s"' % os.path.basename(latest)]
        lines += ['all_model_checkpoint_paths: "%s"' % os.path.basename(p) for p in kept]
        tmp = os.path.join(self.directory, STATE_FILE + ".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
        os.replace(tmp, os.path.join(self.directory, STATE_FILE))

    def save(self, save_fn, step):
        """Saves atomically as ``model.ckpt-<step>``; prunes old ones.

        Args:
            save_fn: writes a checkpoint under the prefix it is given (e.g.
                ``lambda p: train_graph.save(session, p)``).
            step: the global step.

        Returns:
            The checkpoint prefix.
        """
        final = self.prefix(step)
        if not self.is_complete(final):
            tmp = os.path.join(self.directory, "%s%s-%d" % (TEMP_MARK, CHECKPOINT_BASENAME, step))
            save_fn(tmp)
            for path in glob.glob(glob.escape(tmp) + ".data-*"):
                os.replace(path, final + path[len(tmp):])
            os.replace(tmp + ".index", final + ".index")
        steps = [s for s in self.all_steps() if s <= step]
        kept = steps[-self.keep:] if self.keep > 0 else steps
        self._write_state(final, [self.prefix(s) for s in kept])
        for old in steps:
            if old not in kept:
                for path in glob.glob(glob.escape(self.prefix(old)) + ".*"):
                    os.remove(path)
        return final


# ------------------------------------------------------------------------- observability

class RunLog:
    """Writes lines to a log file (appending) and to a stream, as the original's save_log."""

    def __init__(self, path, stream=None):
        self.path = path
        self.stream = stream if stream is not None else sys.stdout
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self._file = open(path, "a", encoding="utf-8")

    def __call__(self, line):
        self.stream.write(line + "\n")
        self.stream.flush()
        self._file.write(line + "\n")
        self._file.flush()

    def close(self):
        self._file.close()


def _clock(seconds):
    seconds = int(max(seconds, 0))
    hours, rest = divmod(seconds, 3600)
    return ("%d:%02d:%02d" % (hours, rest // 60, rest % 60)) if hours else \
        ("%02d:%02d" % (rest // 60, rest % 60))


class Progress:
    """A one-line progress bar with rate and ETA.

    On a terminal the line is redrawn in place (at most every ``min_interval`` seconds);
    otherwise a full line is printed every ``every`` (a fraction) of the total.

    Args:
        total: number of steps.
        desc: text before the bar.
        stream: where to write (default stderr).
        mode: "auto", "on" (always redraw in place) or "off".
    """

    def __init__(self, total, desc="", stream=None, mode="auto", every=0.1, min_interval=0.5,
                 width=24):
        self.total, self.desc, self.width = max(int(total), 1), desc, width
        self.stream = stream if stream is not None else sys.stderr
        interactive = getattr(self.stream, "isatty", lambda: False)()
        self.mode = "off" if mode == "off" else ("tty" if mode == "on" or interactive else "lines")
        self.every, self.min_interval = every, min_interval
        self.start = time.time()
        self._last_draw = 0.0
        self._next_fraction = every
        self._drawn = False

    def text(self, done, info=""):
        done = min(done, self.total)
        elapsed = time.time() - self.start
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = (self.total - done) / rate if rate > 0 else 0.0
        filled = int(self.width * done / self.total)
        bar = "#" * filled + "-" * (self.width - filled)
        return "%s |%s| %d/%d %.2f it/s ETA %s%s" % (
            self.desc, bar, done, self.total, rate, _clock(eta), ("  " + info) if info else "")

    def update(self, done, info=""):
        if self.mode == "off":
            return
        now = time.time()
        if self.mode == "tty":
            if now - self._last_draw >= self.min_interval or done >= self.total:
                self.stream.write("\r" + self.text(done, info) + "\033[K")
                self.stream.flush()
                self._last_draw, self._drawn = now, True
        elif done / self.total >= self._next_fraction - 1e-9:
            self.stream.write(self.text(done, info) + "\n")
            self.stream.flush()
            while self._next_fraction <= done / self.total + 1e-9:
                self._next_fraction += self.every

    def close(self):
        if self.mode == "tty" and self._drawn:
            self.stream.write("\n")
            self.stream.flush()


class Summaries:
    """TensorBoard events written from Python values (scalars and uint8 images)."""

    def __init__(self, log_dir, graph):
        with graph.as_default():  # FileWriter refuses to start under eager execution
            self.writer = tf.compat.v1.summary.FileWriter(log_dir)

    def scalars(self, step, values):
        summary = tf.compat.v1.Summary(value=[
            tf.compat.v1.Summary.Value(tag=tag, simple_value=float(v))
            for tag, v in values.items()])
        self.writer.add_summary(summary, step)

    def images(self, step, images):
        from PIL import Image
        entries = []
        for tag, array in images.items():
            buffer = io.BytesIO()
            Image.fromarray(array).save(buffer, format="PNG")
            entries.append(tf.compat.v1.Summary.Value(tag=tag, image=tf.compat.v1.Summary.Image(
                height=array.shape[0], width=array.shape[1],
                colorspace=array.shape[2] if array.ndim == 3 else 1,
                encoded_image_string=buffer.getvalue())))
        self.writer.add_summary(tf.compat.v1.Summary(value=entries), step)

    def flush(self):
        self.writer.flush()

    def close(self):
        self.writer.close()


# ------------------------------------------------------------------------- training

def _stream_seed(seed, step):
    """Seed of the data stream for a run starting at ``step`` (a resumed run draws new crops)."""
    return int((seed * 1000003 + step) % (2 ** 31 - 1))


def _checkpoint_step(prefix):
    try:
        return int(tf.train.load_checkpoint(prefix).get_tensor("global_step"))
    except Exception:
        return 0


def _write_flags(config, directories, log):
    text = config.to_flags()
    for directory in dict.fromkeys(directories):
        path = os.path.join(directory, FLAGS_FILE)
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                old = f.read()
            if old != text:
                was = [line for line in old.splitlines() if line not in text.splitlines()]
                now = [line for line in text.splitlines() if line not in old.splitlines()]
                log("flags changed since the previous run in %s: was %s; now %s"
                    % (directory, " ".join(was) or "-", " ".join(now) or "-"))
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)


def prepare_data(config):
    """Finds and checks every training and test file before anything is built.

    Returns:
        (pairs, description, scenes, test_dir): scenes is [] when there is no test set;
        ``pairs`` are TIFF pairs, or in-memory sources (:mod:`sipsa_tf.supervised`) with
        ``--split`` or ``--objective=wald``.

    Raises:
        data.DataError: naming every bad file.
    """
    if config.split or config.objective == "wald":
        pairs, description = _supervised_sources(config)
    else:
        pairs, description = data.find_training_pairs(config.data_dir, config.pair_by_order)
        data.check_pairs(pairs, config.ms_patch,
                         "the training patch, --ms_patch=%d" % config.ms_patch,
                         what="training data %s" % config.data_dir, root=config.data_dir,
                         workers=max(1, config.readers))
    test_dir = config.test_dir or os.path.join(config.data_dir, config.test_folder)
    scenes = []
    if config.test_dir or os.path.isdir(test_dir):
        scenes = test_images.check_and_load(test_dir, config.img_div, config.pair_by_order)
    return pairs, description, scenes, test_dir


def _supervised_sources(config):
    """In-memory training sources: the split's training regions (or the TIFF pairs of
    data_dir), Wald-degraded for the Wald objective, plus synthetic scenes."""
    if config.split:
        split = supervised.load_split(config.split)
        regions = supervised.load_regions(split, "train", config.data_dir)
        description = "split %s: %s" % (config.split, ", ".join(r.name for r in regions))
    else:
        pairs, description = data.find_training_pairs(config.data_dir, config.pair_by_order)
        data.check_pairs(pairs, data.SCALE * config.ms_patch, "the Wald training patch, "
                         "4 x --ms_patch", what="training data %s" % config.data_dir,
                         root=config.data_dir, workers=max(1, config.readers))
        regions = []
        for pair in pairs:
            ms, pan = data.load_pair(pair, config.img_div)
            h, w = (n // data.SCALE * data.SCALE for n in ms.shape[:2])
            regions.append(supervised.Region(
                os.path.basename(pair.ms), ms[:h, :w], pan[:data.SCALE * h, :data.SCALE * w, 0],
                quality.sensor_subset(None, (1, 2, 3)), None))
    if config.objective == "original":
        return [supervised.FullResImage(r) for r in regions], description
    sources = [supervised.WaldImage(r) for r in regions]
    if config.synthetic_fraction > 0:
        sources += supervised.synthetic_sources(config.synthetic_scenes, config.synthetic_size,
                                                config.seed, config.displacement(synthetic=True))
        description += "; %d synthetic scenes (%.0f%% of the crops)" % (
            config.synthetic_scenes, 100 * config.synthetic_fraction)
    return sources, "Wald protocol, " + description


def train(config, stdout=None, stderr=None):
    """Trains SIPSA-Net as the original script does, with resume and atomic checkpoints.

    Args:
        config: :class:`TrainConfig`.
        stdout: stream for the log lines (default sys.stdout; also written to train_log.txt).
        stderr: stream for the progress bar (default sys.stderr).

    Returns:
        dict: ``step`` (final global step), ``start_step``, ``checkpoint`` (last prefix),
        ``epochs`` (list of dicts epoch/step/train_loss (x1000)/test metrics), ``resumed_from``.

    Raises:
        ValueError (bad settings), data.DataError, checkpoints.CheckpointError,
        runlock.DirectoryBusy (another trainer runs on the log or checkpoint folder).
    """
    config.validate()
    pairs, description, scenes, test_dir = prepare_data(config)
    checkpoint_dir = config.checkpoint_dir or config.log_dir
    with contextlib.ExitStack() as locks:
        # one trainer per folder: a second one is refused with the holder's name
        for directory in sorted({config.log_dir, checkpoint_dir}):
            locks.enter_context(runlock.hold(directory))
        manager = CheckpointManager(checkpoint_dir, config.keep_checkpoints)
        log = RunLog(os.path.join(config.log_dir, LOG_FILE), stdout)
        try:
            return _train(config, pairs, description, scenes, test_dir, manager, log, stderr)
        finally:
            log.close()


def _train(config, pairs, description, scenes, test_dir, manager, log, stderr):
    removed = manager.remove_temporary()
    resume = manager.latest()
    init_prefix = None
    if resume is None and config.init_checkpoint:
        init_prefix = checkpoints.resolve(config.init_checkpoint)
    start_step = _checkpoint_step(resume) if resume else (
        _checkpoint_step(init_prefix) if init_prefix and config.init_optimizer else 0)

    stamp = test_images.make_stamp()
    log("SIPSA-Net training (Lee, Seo, Kim, CVPR 2021), run started %s" % stamp)
    log("data: %s (%s)" % (config.data_dir, description))
    log("test set: %s" % ("%s, %d images" % (test_dir, len(scenes)) if scenes
                          else "none (%s not found): test step skipped" % test_dir))
    if removed:
        log("removed leftovers of an interrupted save: %s" % ", ".join(removed))
    _write_flags(config, [config.log_dir, manager.directory], log)

    def dataset_fn():
        seed = _stream_seed(config.seed, start_step)
        if isinstance(pairs[0], data.Pair):
            return data.training_dataset(
                pairs, config.ms_patch, config.crops_per_image, config.batch_size,
                config.readers, config.shuffle_buffer, config.img_div, seed, config.augment)
        return supervised.dataset(
            pairs, config.ms_patch, config.batch_size, seed, config.displacement(),
            config.synthetic_fraction if config.synthetic_fraction > 0 else None, config.augment)

    graph = TrainGraph(config, dataset_fn)
    total = config.total_steps
    summaries = Summaries(config.log_dir, graph.graph)
    history = {"start_step": start_step, "step": start_step, "checkpoint": resume,
               "resumed_from": resume, "epochs": []}
    with graph.session() as session:
        def save_fn(prefix):
            graph.save(session, prefix)

        graph.initialize(session)
        if resume:
            graph.restore(session, resume)
            log("resumed from %s (global step %d)" % (resume, start_step))
        elif init_prefix:
            graph.restore_from(session, init_prefix, config.init_optimizer)
            log("initialised from %s (network%s)" % (
                init_prefix, ", Adam slots and global step %d" % start_step
                if config.init_optimizer else " only"))
        step = int(session.run(graph.global_step))
        n_params = sum(int(np.prod(v.shape.as_list())) for v in graph.network_variables)
        log("Total_parameters: %d" % n_params)
        log("global step %d of %d; lr %.3g, wd %.3g (x%g after step %d)" % (
            step, total, config.learning_rate, config.weight_decay, config.lr_decay,
            config.boundary))
        if step >= total:
            log("nothing to do: global step %d >= %d" % (step, total))
        first_test = True
        scalars_path = os.path.join(config.log_dir, SCALARS_FILE)
        new_csv = not os.path.exists(scalars_path)
        with open(scalars_path, "a", newline="", encoding="utf-8") as scalars_file:
            scalars_csv = csv.writer(scalars_file)
            if new_csv:
                scalars_csv.writerow(["step", "loss_x1000"] + list(graph.loss_names[1:])
                                     + ["learning_rate", "weight_decay", "steps_per_s"])
            try:
                while step < total:
                    step, record = _run_epoch(config, graph, session, step, total, summaries,
                                              scalars_csv, scalars_file, manager, save_fn,
                                              stderr)
                    epoch = record["epoch"]
                    time_test = 0.0
                    if scenes and (epoch % config.test_every == 0 or epoch == 1
                                   or step >= total):
                        start = time.time()
                        result = test_images.run_test_set(
                            session, graph.test, scenes,
                            os.path.join(config.log_dir, IMAGES_FOLDER), stamp,
                            save_inputs=first_test, panels=2,
                            table_name="metrics_epoch%03d" % epoch,
                            log=log if first_test else None)
                        first_test = False
                        time_test = time.time() - start
                        record["test_align_x"] = [float(v) for v in result.mean_x]
                        record["test_align_o"] = [float(v) for v in result.mean_o]
                        summaries.scalars(step, {
                            "test/ergas": result.mean_x[0], "test/scc": result.mean_x[1],
                            "test/q": result.mean_x[2], "test/qnr": result.mean_x[3],
                            "test/scc2_aligned": result.mean_o[1]})
                        summaries.images(step, {
                            "test/%s MS|PAN|aligned|output" % name: panel
                            for name, panel in result.panels})
                    log("epcIndex {:d} |iter {:d} |train {:0.3f} |time_train {:0.3f} "
                        "|time_test {:0.3f} |time_tot {:0.3f}".format(
                            epoch, step, record["train_loss"], record["time_train"] / 60,
                            time_test / 60, (record["time_train"] + time_test) / 60))
                    if "test_align_x" in record:
                        for line in test_images.metric_lines(record["test_align_x"],
                                                             record["test_align_o"]):
                            log(line)
                    history["checkpoint"] = manager.save(save_fn, step)
                    summaries.flush()
                    history["epochs"].append(record)
                    history["step"] = step
            except KeyboardInterrupt:
                step = int(session.run(graph.global_step))
                history["checkpoint"] = manager.save(save_fn, step)
                log("interrupted at global step %d: saved %s" % (step, history["checkpoint"]))
                raise
            finally:
                summaries.close()
        if history["checkpoint"]:
            log("checkpoint: %s" % history["checkpoint"])
    return history


def _run_epoch(config, graph, session, step, total, summaries, scalars_csv, scalars_file,
               manager, save_fn, stderr):
    """Trains until the end of the current epoch (or ``total``). Returns (step, record)."""
    iters = config.iters_per_epoch
    epoch = step // iters + 1
    end = min(epoch * iters, total)
    progress = Progress(end - step, "epoch %d/%d" % (epoch, config.epochs), stderr,
                        config.progress)
    fetches = {"step": graph.step_after, "terms": graph.loss_terms,
               "lr": graph.learning_rate, "wd": graph.weight_decay, "train": graph.train_op}
    loss_sum, count = 0.0, 0
    terms = graph.loss_names
    window = {k: 0.0 for k in terms}
    window_count, window_start = 0, time.time()
    start = time.time()
    first = step
    while step < end:
        out = session.run(fetches)
        step = int(out["step"])
        loss_sum += float(out["terms"]["loss"]) * 1000.0
        count += 1
        for key in terms:
            window[key] += float(out["terms"][key])
        window_count += 1
        if step % config.summary_every == 0 or step == end:
            now = time.time()
            means = {k: window[k] / window_count for k in terms}
            rate = window_count / max(now - window_start, 1e-9)
            summaries.scalars(step, dict(
                [("train/loss_x1000", means["loss"] * 1000.0)]
                + [("train/" + k, means[k]) for k in terms[1:]]
                + [("train/learning_rate", out["lr"]), ("train/weight_decay", out["wd"]),
                   ("train/steps_per_s", rate)]))
            scalars_csv.writerow(["%d" % step, "%.4f" % (means["loss"] * 1000.0)]
                                 + ["%.6f" % means[k] for k in terms[1:]]
                                 + ["%.3g" % out["lr"], "%.3g" % out["wd"], "%.3f" % rate])
            scalars_file.flush()
            window = {k: 0.0 for k in terms}
            window_count, window_start = 0, now
        if config.save_every > 0 and step % config.save_every == 0 and step < end:
            manager.save(save_fn, step)
        progress.update(step - first, "loss %.3f" % (loss_sum / count))
    progress.close()
    record = {"epoch": epoch, "step": step, "train_loss": loss_sum / max(count, 1),
              "time_train": time.time() - start, "iterations": count}
    return step, record
