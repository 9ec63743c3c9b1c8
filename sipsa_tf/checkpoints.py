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
        if not indexes:
            raise CheckpointError("%s: no checkpoint found (no *.index file in this directory)"
                                  % path)
        prefixes = [p[:-len(".index")] for p in indexes]
        return max(prefixes, key=lambda p: (prefix_step(p), os.path.getmtime(p + ".index")))
    if os.path.exists(path + ".index"):
        return path
    if path.endswith(".index") and os.path.exists(path):
        return path[:-len(".index")]
    raise CheckpointError("%s: no checkpoint found (expected %s.index or a directory)"
                          % (path, path))


def read_shapes(prefix):
    """{variable name: shape list} stored in a checkpoint."""
    try:
        return {name: list(shape) for name, shape in tf.train.list_variables(prefix)}
    except Exception as err:  # corrupt or unreadable files
        raise CheckpointError("%s: unreadable checkpoint (%s)" % (prefix, str(err).split("\n")[0]))


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
    saver.restore(session, prefix)
