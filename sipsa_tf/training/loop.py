"""Session-based SIPSA-Net trainer: AdamW, schedule, atomic checkpoints, resume, logs, summaries.

Reference: Lee, Seo, Kim, "Shift-Invariant Pan Sharpening with Moving Object Alignment for
Satellite Imagery", CVPR 2021; docs/design.md ("Optimiser and schedule", "Training data",
"Checkpoints") describes the original training script as this port implements it.

* Optimiser: Adam (beta1 0.9, beta2 0.999, eps 1e-8) with decoupled weight decay, as the original's
  ``tf.contrib.opt.extend_with_decoupled_weight_decay(AdamOptimizer)``: before each Adam update
  ``var -= wd * var`` (not scaled by the learning rate). Here the gradients are computed before the
  decay (the decay ops wait for every gradient), so the step is exactly
  ``var <- var (1 - wd) - lr_t m / (sqrt(v) + eps)`` with m, v from the gradient at the old var.
  Variables are named as the original's (``.../Adam``, ``.../Adam_1``, ``beta1_power``,
  ``beta2_power``, int32 ``global_step``), so its checkpoints resume here.
* Schedule: lr = 1e-4 r, wd = 1e-7 r, r = 1 while ``global_step <= boundary``, then 0.1
  (``piecewise_constant``; boundary 49,999 = total iterations / 2 - 1 in the original).
* Loss: the lean formulation of the original loss (:mod:`sipsa_tf.core.losses`, same value and
  gradient), optionally per-sample or literal.
* Checkpoints ``model.ckpt-<step>`` written atomically (temporary prefix, rename, then the
  ``checkpoint`` state file), ``flags.txt`` beside; a restart with the same directory resumes from
  the last complete checkpoint.
* Strategies (``--strategy``, :mod:`sipsa_tf.training.distribute`): the step on one device, or
  data-parallel over devices or workers; only the chief writes logs, summaries, test images and
  checkpoints (a multi_worker worker other than the chief resumes from them, writes nothing).
* Logs: the original's lines (``epcIndex ... |iter ... |train ...``, ``[Align X] ...``,
  ``[4ch SCC] ...``) to ``train_log.txt`` and stdout, a one-line progress bar with ETA on stderr,
  TensorBoard events (loss terms, lr, test metrics, MS | PAN | aligned | output panels) and
  ``train_scalars.csv``.

Library code only: the command line is :mod:`sipsa_tf.train`.
"""
import contextlib
import csv
import dataclasses
import os
import tempfile
import time

import numpy as np
import tensorflow as tf

from sipsa_tf import checkpoints, data, runlock
from sipsa_tf.data import supervised
from sipsa_tf.constants import SCALE
from sipsa_tf.evaluation import quality
from sipsa_tf.training import distribute, image_eval
# Re-exported so that ``sipsa_tf.training.loop.<name>`` keeps working; each has its home in
# sipsa_tf.training or sipsa_tf.utils.
from sipsa_tf.training.checkpoint_manager import (  # noqa: F401
    CHECKPOINT_BASENAME, STATE_FILE, TEMP_MARK, CheckpointManager)
from sipsa_tf.training.graph import TrainGraph  # noqa: F401
from sipsa_tf.training.config import LOSS_TERMS, OBJECTIVES, TrainConfig  # noqa: F401
from sipsa_tf.training.logs import (  # noqa: F401
    FLAGS_FILE, IMAGES_FOLDER, LOG_FILE, SCALARS_FILE, RunLog, Summaries, write_flags)
from sipsa_tf.training.optimizer import (  # noqa: F401
    ADAM_BETA1, ADAM_BETA2, ADAM_EPSILON, AdamWOptimizer, schedule)
from sipsa_tf.utils.progress import Progress  # noqa: F401


# ------------------------------------------------------------------------- training

def _stream_seed(seed, step):
    """Seed of the data stream for a run starting at ``step`` (a resumed run draws new crops)."""
    return int((seed * 1000003 + step) % (2 ** 31 - 1))


def _checkpoint_step(prefix):
    try:
        return int(tf.train.load_checkpoint(prefix).get_tensor("global_step"))
    except Exception:
        return 0


def prepare_data(config):
    """Finds and checks every training and test file before anything is built.

    Returns:
        (pairs, description, scenes, test_dir): scenes is [] when there is no test set;
        ``pairs`` are TIFF pairs, or in-memory sources (:mod:`sipsa_tf.data.supervised`) with
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
        scenes = image_eval.check_and_load(test_dir, config.img_div, config.pair_by_order)
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
        data.check_pairs(pairs, SCALE * config.ms_patch, "the Wald training patch, "
                         "4 x --ms_patch", what="training data %s" % config.data_dir,
                         root=config.data_dir, workers=max(1, config.readers))
        regions = []
        for pair in pairs:
            ms, pan = data.load_pair(pair, config.img_div)
            h, w = (n // SCALE * SCALE for n in ms.shape[:2])
            regions.append(supervised.Region(
                os.path.basename(pair.ms), ms[:h, :w], pan[:SCALE * h, :SCALE * w, 0],
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
    if not distribute.is_chief(config):
        return _follow(config, pairs, description, checkpoint_dir, stdout, stderr)
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


class _ReadOnlyCheckpoints(CheckpointManager):
    """The checkpoints of a multi_worker run as a worker other than the chief sees them: it
    resumes from the chief's newest complete checkpoint and writes nothing."""

    def remove_temporary(self):
        return []

    def remove_unreadable(self):
        return []

    def save(self, save_fn, step):
        return None


def _follow(config, pairs, description, checkpoint_dir, stdout, stderr):
    """A multi_worker worker other than the chief: trains in step with the others; its log,
    summaries and flags go to a scratch folder removed at the end (only the chief writes)."""
    with tempfile.TemporaryDirectory(prefix="sipsa-worker-") as scratch:
        config = dataclasses.replace(config, log_dir=scratch)
        manager = _ReadOnlyCheckpoints(checkpoint_dir, config.keep_checkpoints)
        log = RunLog(os.path.join(scratch, LOG_FILE), stdout)
        try:
            return _train(config, pairs, description, [], scratch, manager, log, stderr)
        finally:
            log.close()


def _train(config, pairs, description, scenes, test_dir, manager, log, stderr):
    removed = manager.remove_temporary()
    unreadable = manager.remove_unreadable()
    resume = manager.latest()
    init_prefix = None
    if resume is None and config.init_checkpoint:
        init_prefix = checkpoints.resolve(config.init_checkpoint)
    start_step = _checkpoint_step(resume) if resume else (
        _checkpoint_step(init_prefix) if init_prefix and config.init_optimizer else 0)

    stamp = image_eval.make_stamp()
    log("SIPSA-Net training (Lee, Seo, Kim, CVPR 2021), run started %s" % stamp)
    log("data: %s (%s)" % (config.data_dir, description))
    log("test set: %s" % ("%s, %d images" % (test_dir, len(scenes)) if scenes
                          else "none (%s not found): test step skipped" % test_dir))
    if removed:
        log("removed leftovers of an interrupted save: %s" % ", ".join(removed))
    for prefix in unreadable:
        log("skipped %s; %s" % (checkpoints.corrupt(prefix, "removed"), "resuming from %s" % resume
                                if resume else "no complete checkpoint left to resume from"))
    write_flags(config, [config.log_dir] + (
        [] if isinstance(manager, _ReadOnlyCheckpoints) else [manager.directory]), log)

    def dataset_fn():
        seed = _stream_seed(config.seed, start_step)
        if isinstance(pairs[0], data.Pair):
            return data.training_dataset(
                pairs, config.ms_patch, config.crops_per_image, config.batch_size,
                config.readers, config.shuffle_buffer, config.img_div, seed, config.augment)
        return supervised.dataset(
            pairs, config.ms_patch, config.batch_size, seed, config.displacement(),
            config.synthetic_fraction if config.synthetic_fraction > 0 else None, config.augment,
            flow="flow" in config.input_names)

    graph = TrainGraph(config, dataset_fn)
    if graph.replicas is not None:
        log("strategy: %s, %d replicas of %d crops%s" % (
            config.strategy, graph.replicas.count, config.batch_size // graph.replicas.count,
            "; the loss's minimum over shifts and batch items is taken per replica"
            if config.objective == "original" and not config.per_sample_loss else ""))
    total = config.total_steps
    summaries = Summaries(config.log_dir, graph.graph)
    history = {"start_step": start_step, "step": start_step, "checkpoint": resume,
               "resumed_from": resume, "epochs": []}
    with graph.session() as session:
        def save_fn(prefix):
            graph.save(session, prefix)

        step = _start(config, graph, session, (resume, init_prefix, start_step), log)
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
                        time_test = _test_epoch(config, graph, session, scenes, stamp, record,
                                                step, first_test, summaries, log)
                        first_test = False
                    _log_epoch(record, step, time_test, log)
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


def _start(config, graph, session, start, log):
    """Initialises the variables, restores ``start`` = (resume, init prefix, start step) and logs
    the run's first lines; returns the global step."""
    resume, init_prefix, start_step = start
    graph.initialize(session)
    if resume:
        graph.restore(session, resume)
        log("resumed from %s (global step %d)" % (resume, start_step))
    elif init_prefix:
        graph.restore_from(session, init_prefix, config.init_optimizer)
        log("initialised from %s (network%s)" % (
            init_prefix, ", Adam slots and global step %d" % start_step
            if config.init_optimizer else " only"))
        if config.fam_reinit:
            graph.reinitialize_kernel_branch(session)
            log("kernel branch (conv01-conv11) re-initialised (--fam_reinit)")
    step = int(session.run(graph.global_step))
    total = config.total_steps
    n_params = sum(int(np.prod(v.shape.as_list())) for v in graph.network_variables)
    log("Total_parameters: %d" % n_params)
    log("global step %d of %d; lr %.3g, wd %.3g (x%g after step %d)" % (
        step, total, config.learning_rate, config.weight_decay, config.lr_decay,
        config.boundary))
    if step >= total:
        log("nothing to do: global step %d >= %d" % (step, total))
    return step


def _test_epoch(config, graph, session, scenes, stamp, record, step, first, summaries, log):
    """The original's test step after an epoch: images, tables, summaries; adds the metrics to
    ``record`` and returns the seconds it took."""
    start = time.time()
    result = image_eval.run_test_set(
        session, graph.test, scenes, os.path.join(config.log_dir, IMAGES_FOLDER), stamp,
        save_inputs=first, panels=2, table_name="metrics_epoch%03d" % record["epoch"],
        log=log if first else None)
    time_test = time.time() - start
    record["test_align_x"] = [float(v) for v in result.mean_x]
    record["test_align_o"] = [float(v) for v in result.mean_o]
    summaries.scalars(step, {
        "test/ergas": result.mean_x[0], "test/scc": result.mean_x[1],
        "test/q": result.mean_x[2], "test/qnr": result.mean_x[3],
        "test/scc2_aligned": result.mean_o[1]})
    summaries.images(step, {"test/%s MS|PAN|aligned|output" % name: panel
                            for name, panel in result.panels})
    return time_test


def _log_epoch(record, step, time_test, log):
    """The original's per-epoch log lines."""
    log("epcIndex {:d} |iter {:d} |train {:0.3f} |time_train {:0.3f} "
        "|time_test {:0.3f} |time_tot {:0.3f}".format(
            record["epoch"], step, record["train_loss"], record["time_train"] / 60,
            time_test / 60, (record["time_train"] + time_test) / 60))
    if "test_align_x" in record:
        for line in image_eval.metric_lines(record["test_align_x"], record["test_align_o"]):
            log(line)


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
