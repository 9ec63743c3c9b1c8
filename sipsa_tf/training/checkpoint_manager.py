"""Atomic ``model.ckpt-<step>`` checkpoints of a training run: save, prune, find the latest, resume.

Reference: Lee, Seo, Kim, "Shift-Invariant Pan Sharpening with Moving Object Alignment for
Satellite Imagery", CVPR 2021; docs/design.md ("Checkpoints") describes the original's semantics as
this port implements them. Re-exported by :mod:`sipsa_tf.training.loop`.
"""
import glob
import os
import re

import tensorflow as tf

from sipsa_tf import checkpoints
from sipsa_tf.utils import files

CHECKPOINT_BASENAME = "model.ckpt"
TEMP_MARK = ".tmp-"
STATE_FILE = checkpoints.STATE_FILE


class SaveError(OSError):
    """A checkpoint that could not be written (full disk, I/O error); the message names the last
    complete checkpoint, from which the next run resumes."""


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
        """Deletes what an interrupted save left behind: temporary files (TensorFlow's
        ``.tempstate`` among them) and data shards whose index was never written (the index is
        renamed last). Returns the removed file names."""
        removed = []
        orphan = re.compile(re.escape(CHECKPOINT_BASENAME) + r"-(\d+)\.data-\d+-of-\d+$")
        for name in sorted(os.listdir(self.directory)):
            match = orphan.match(name)
            if match and not os.path.exists(self.prefix(int(match.group(1))) + ".index"):
                os.remove(os.path.join(self.directory, name))
                removed.append(name)
            elif (name.startswith(TEMP_MARK + CHECKPOINT_BASENAME)
                  or name == STATE_FILE + ".tmp" or files.is_temporary(name, STATE_FILE)):
                path = os.path.join(self.directory, name)
                if os.path.isdir(path):
                    import shutil
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    os.remove(path)
                removed.append(name)
        return removed

    def remove_unreadable(self):
        """Deletes the checkpoints here whose index, data shards or tensors cannot be read
        (truncated or corrupt files), so that a resume starts from the newest complete one and
        a later save of the same step is not mixed with them. Returns their prefixes."""
        unreadable = []
        for step in self.all_steps():
            prefix = self.prefix(step)
            if not self.is_complete(prefix):
                for path in glob.glob(glob.escape(prefix) + ".*"):
                    os.remove(path)
                unreadable.append(prefix)
        return unreadable

    def all_steps(self):
        """Steps of every ``model.ckpt-<step>.index`` here, ascending (complete or not)."""
        steps = []
        pattern = os.path.join(self.directory, CHECKPOINT_BASENAME + "-*.index")
        for path in glob.glob(pattern):
            step = checkpoints.prefix_step(path[:-len(".index")])
            if step >= 0:
                steps.append(step)
        return sorted(steps)

    @staticmethod
    def is_complete(prefix):
        """True if the index, every data shard and every tensor of ``prefix`` can be read."""
        if not os.path.exists(prefix + ".index") or checkpoints.missing_data(prefix):
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

    def _failed(self, step, tmp, final, err):
        """Removes what the failed save of ``step`` wrote (its temporary files, TensorFlow's
        ``.tempstate`` files among them, and data renamed before the index) and raises
        :class:`SaveError` naming the last complete checkpoint."""
        for path in glob.glob(glob.escape(tmp) + ".*") + glob.glob(glob.escape(final) + ".*"):
            files.remove(path)
        last = self.latest()
        reason = err.strerror if isinstance(err, OSError) and err.strerror else (
            checkpoints.error_line(getattr(err, "message", None) or str(err)))
        raise SaveError("%s: checkpoint of step %d not saved (%s); the last complete checkpoint "
                        "is %s" % (final, step, reason, last or "none")) from None

    def _read_state(self):
        return checkpoints.read_state(self.directory)

    def _write_state(self, latest, kept):
        lines = ['model_checkpoint_path: "%s"' % os.path.basename(latest)]
        lines += ['all_model_checkpoint_paths: "%s"' % os.path.basename(p) for p in kept]
        files.write_text(os.path.join(self.directory, STATE_FILE), "\n".join(lines) + "\n")

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
            try:
                save_fn(tmp)
                for path in glob.glob(glob.escape(tmp) + ".data-*"):
                    os.replace(path, final + path[len(tmp):])
                os.replace(tmp + ".index", final + ".index")
            except (tf.errors.OpError, OSError) as err:
                self._failed(step, tmp, final, err)
        steps = [s for s in self.all_steps() if s <= step]
        kept = steps[-self.keep:] if self.keep > 0 else steps
        self._write_state(final, [self.prefix(s) for s in kept])
        for old in steps:
            if old not in kept:
                for path in glob.glob(glob.escape(self.prefix(old)) + ".*"):
                    os.remove(path)
        return final
