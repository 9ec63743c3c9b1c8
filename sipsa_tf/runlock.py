"""One writer per run directory: an advisory lock held by a trainer for as long as it runs.

Usage::

    from sipsa_tf import runlock
    with runlock.hold("logs/run1"):
        ...  # train; a second trainer on logs/run1 gets runlock.DirectoryBusy

Two trainers on one ``--log_dir`` would write the same ``model.ckpt-N`` files and interleave the
rows of ``train_scalars.csv``. :func:`hold` takes an exclusive ``flock`` on
``<dir>/.sipsa-train.lock`` and writes the holder (pid, host, start time, command) into it. The
kernel drops the lock when the process ends in any way (``kill -9`` included), so a lock file
left behind never blocks the next run: only a live holder does. ``flock`` is local to one
machine (and unreliable on some network file systems); docs/training.md says so.
"""
import contextlib
import datetime
import fcntl
import os
import socket
import sys

from sipsa_tf.errors import UserError

LOCK_NAME = ".sipsa-train.lock"


class DirectoryBusy(UserError):
    """Another live process holds the directory's lock (the message names it)."""


def _describe_holder(path):
    try:
        with open(path) as f:
            holder = f.read().strip()
    except OSError:
        holder = ""
    return holder or "a process that has not written its name yet"


@contextlib.contextmanager
def hold(directory):
    """Holds the exclusive lock of ``directory`` (created if missing) for the ``with`` block.

    Args:
        directory: the run's log or checkpoint folder.

    Raises:
        DirectoryBusy: another live process holds it; the message names that process.
    """
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, LOCK_NAME)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DirectoryBusy(
                "%s is in use by another trainer (%s); wait for it to end or choose another "
                "--log_dir" % (directory, _describe_holder(path))) from None
        os.ftruncate(fd, 0)
        started = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
        os.write(fd, ("pid %d on %s, started %s: %s\n" % (
            os.getpid(), socket.gethostname(), started, " ".join(sys.argv))).encode())
        yield path
    finally:
        os.close(fd)  # closing the descriptor releases the flock
