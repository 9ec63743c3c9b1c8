"""Finding, checking and restoring SIPSA-Net checkpoints (original or written by this port).

Reference: Lee, Seo, Kim, "Shift-Invariant Pan Sharpening with Moving Object Alignment for
Satellite Imagery", CVPR 2021. The original saves ``model-100000`` with
``write_meta_graph=False, write_state=False``: a prefix with ``.index`` and ``.data-*`` files and
no ``checkpoint`` state file. Variables are matched by name (``op_net/G/w_convNN`` ...).
"""
import glob
import os
import re

import tensorflow as tf

from sipsa_tf.errors import UserError


class CheckpointError(UserError):
    """A checkpoint that cannot be found, read, or does not fit the graph."""


STATE_FILE = "checkpoint"  # TensorFlow's checkpoint state file
FLAGS_FILE = "flags.txt"  # the training run's settings, written beside its checkpoints
# Training settings that change the forward graph (not its variables): read back by
# forward_options so that a checkpoint runs with the graph it was trained with.
FORWARD_FLAGS = ("align_statistics", "fam_flat_mean")


def prefix_step(prefix):
    """The step number at the end of a checkpoint prefix (``model.ckpt-1200`` -> 1200), or -1."""
    match = re.search(r"-(\d+)$", prefix)
    return int(match.group(1)) if match else -1


def read_state(directory):
    """The latest prefix named by ``directory``'s ``checkpoint`` state file, or None.

    A missing or unparsable state file gives None (the caller then scans for ``*.index``).
    Relative paths in the file are taken relative to ``directory``.
    """
    if not os.path.exists(os.path.join(directory, STATE_FILE)):
        return None
    try:
        state = tf.train.get_checkpoint_state(directory)
    except Exception:  # an unparsable state file is ignored, the scan decides
        return None
    if not state or not state.model_checkpoint_path:
        return None
    prefix = state.model_checkpoint_path
    return prefix if os.path.isabs(prefix) else os.path.join(directory, prefix)


def resolve(path):
    """Turns a checkpoint prefix or a directory into a checkpoint prefix.

    A directory is resolved through its ``checkpoint`` state file if present, else to the
    ``*.index`` file with the highest trailing step number (then the newest file).

    Args:
        path: a prefix such as ``.../model-100000`` or a directory holding one.

    Returns:
        The checkpoint prefix (str).

    Raises:
        CheckpointError: nothing usable at ``path``.
    """
    if os.path.isdir(path):
        candidate = read_state(path)
        if candidate and os.path.exists(candidate + ".index"):
            return candidate
        indexes = glob.glob(os.path.join(path, "*.index"))
        shards = sorted(glob.glob(os.path.join(path, "*.data-*-of-*")))
        if not indexes and shards:
            raise corrupt(shards[0].rsplit(".data-", 1)[0], "no .index file beside %s"
                          % os.path.basename(shards[0]))
        if not indexes:
            raise CheckpointError("%s: no checkpoint found (no *.index file in this directory)"
                                  % path)
        prefixes = [p[:-len(".index")] for p in indexes]
        return max(prefixes, key=lambda p: (prefix_step(p), os.path.getmtime(p + ".index")))
    if os.path.exists(path + ".index"):
        return path
    if path.endswith(".index") and os.path.exists(path):
        return path[:-len(".index")]
    shards = sorted(glob.glob(glob.escape(path) + ".data-*-of-*"))
    if shards:
        raise corrupt(path, "no .index file beside %s" % os.path.basename(shards[0]))
    raise CheckpointError("%s: no checkpoint found (expected %s.index or a directory)"
                          % (path, path))


def corrupt(prefix, reason):
    """The CheckpointError of a checkpoint whose files cannot be read (one line, naming
    ``prefix``): ``<prefix>: checkpoint data is truncated or corrupt (<reason>)``.

    Args:
        prefix: the checkpoint prefix.
        reason: what was found, or the reading error (an exception: its first line).
    """
    if isinstance(reason, BaseException):
        reason = "%s: %s" % (type(reason).__name__, error_line(
            getattr(reason, "message", None) or str(reason)))
    return CheckpointError("%s: checkpoint data is truncated or corrupt (%s)" % (prefix, reason))


_NOISE = ("Graph execution error", "Detected at node", "File ", "Node:", "[[")


def error_line(text):
    """The first line of a TensorFlow error message that says what went wrong (graph-mode
    errors wrap it in lines naming the node and where it was defined)."""
    lines = [line.strip() for line in text.split("\n")]
    useful = [line for line in lines if line and not line.startswith(_NOISE)]
    return (useful or lines or [""])[0]


def read_shapes(prefix):
    """{variable name: shape list} stored in a checkpoint.

    Raises:
        CheckpointError: the index cannot be read (:func:`corrupt`).
    """
    try:
        return {name: list(shape) for name, shape in tf.train.list_variables(prefix)}
    except (tf.errors.OpError, ValueError) as err:  # truncated, corrupt or missing files
        raise corrupt(prefix, err) from None


def missing_data(prefix):
    """What is missing of ``prefix``'s data shards (``.data-NNNNN-of-MMMMM``): None when every
    shard named by the first one's count exists, else a short description."""
    shards = sorted(glob.glob(glob.escape(prefix) + ".data-*-of-*"))
    if not shards:
        return "no data file beside %s.index" % os.path.basename(prefix)
    match = re.search(r"-of-(\d+)$", shards[0])
    count = int(match.group(1)) if match else 0
    expected = ["%s.data-%05d-of-%05d" % (prefix, i, count) for i in range(count)]
    absent = [p for p in expected if not os.path.exists(p)]
    if count == 0 or absent:
        return "missing %s" % (os.path.basename(absent[0]) if absent else shards[0])
    return None


def restore_with(session, saver, prefix):
    """``saver.restore(session, prefix)``, with unreadable data as one :func:`corrupt` error.

    The one place where the package restores a checkpoint's values (inference, scene tiles,
    test images, evaluation, adaptation, the trainer's resume and warm start): a data file that
    is truncated, corrupt or missing raises CheckpointError instead of TensorFlow's
    ``OutOfRangeError`` / ``DataLossError`` / ``NotFoundError`` traceback.
    """
    missing = missing_data(prefix)
    if missing:
        raise corrupt(prefix, missing)
    try:
        saver.restore(session, prefix)
    except (tf.errors.OutOfRangeError, tf.errors.DataLossError, tf.errors.NotFoundError) as err:
        raise corrupt(prefix, err) from None


def check_variables(prefix, variables):
    """Raises one CheckpointError naming every missing or mis-shaped variable.

    Args:
        prefix: checkpoint prefix.
        variables: the graph variables that must be restored from it.
    """
    stored = read_shapes(prefix)
    missing, misshaped = [], []
    for var in variables:
        name = var.op.name
        expected = var.shape.as_list()
        if name not in stored:
            missing.append(name)
        elif stored[name] != expected:
            misshaped.append("%s (checkpoint %s, graph %s)" % (name, stored[name], expected))
    if missing or misshaped:
        parts = []
        if missing:
            parts.append("missing: " + ", ".join(missing))
        if misshaped:
            parts.append("wrong shape: " + ", ".join(misshaped))
        raise CheckpointError("%s: checkpoint does not fit SIPSA-Net; %s"
                              % (prefix, "; ".join(parts)))


def restore(session, prefix, variables):
    """Checks, then restores ``variables`` by name from ``prefix`` (other entries are ignored)."""
    check_variables(prefix, variables)
    saver = tf.compat.v1.train.Saver(var_list={v.op.name: v for v in variables})
    restore_with(session, saver, prefix)


def forward_options(prefix):
    """The forward-graph options a checkpoint was trained with, from the ``flags.txt`` beside it.

    A checkpoint of the original code, or one without ``flags.txt``, gets the original graph.

    Args:
        prefix: a checkpoint prefix (:func:`resolve`).

    Returns:
        dict: ``align_statistics`` and ``fam_flat_mean`` (bools), for
        :func:`sipsa_tf.core.model.forward`.
    """
    options = {name: False for name in FORWARD_FLAGS}
    path = os.path.join(os.path.dirname(prefix), FLAGS_FILE)
    if not os.path.exists(path):
        return options
    with open(path, encoding="utf-8") as f:
        for line in f:
            flag = line.strip().lstrip("-")
            name, _, value = flag.partition("=")
            if name in options:
                options[name] = value.lower() not in ("false", "0") if value else True
            elif name.startswith("no") and name[2:] in options and not value:
                options[name[2:]] = False
    return options
