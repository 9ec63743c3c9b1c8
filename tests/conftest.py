"""Shared test helpers: paths to ../shared, graph-mode ops on NumPy arrays, required external
tools, and watching a subprocess's output with a deadline.

Tests import this module as ``conftest`` (pytest puts ``tests/`` on ``sys.path`` under both
``python -m pytest`` and ``.venv/bin/pytest``); never as ``tests.conftest``, which only the former
can import.
"""
import os
import shutil
import signal
import subprocess
import threading
import time

import numpy as np
import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.normpath(os.path.join(REPO_ROOT, "..", "shared"))
FIXTURE_DIR = os.path.join(SHARED, "fixtures", "legacy_sipsa")
SPEC_DIR = os.path.join(SHARED, "spec")
# Every subprocess a test starts is given at most this many seconds (TensorFlow's import and a
# graph build take ~10 s here; the slowest command-line test runs ~30 s).
SUBPROCESS_TIMEOUT = 300


def require_shared(*parts):
    """The path under ../shared, or skip the test saying that ../shared is absent."""
    path = os.path.join(SHARED, *parts)
    if not os.path.exists(path):
        pytest.skip("%s not found: the shared fixtures/data folder is absent beside the repo"
                    % path)
    return path


def missing_tool(reason):
    """Skips the test, saying ``reason``; fails it instead when the environment variable CI is
    set (CI installs GDAL, so a missing tool there is a broken install, not an optional extra)."""
    if os.environ.get("CI"):
        pytest.fail("CI=%s but %s (the CI install step must provide it)"
                    % (os.environ["CI"], reason), pytrace=False)
    pytest.skip(reason)


def require_executables(*names):
    """Full paths of the executables, or :func:`missing_tool` naming the ones not on the PATH."""
    paths = [shutil.which(name) for name in names]
    missing = [name for name, path in zip(names, paths) if path is None]
    if missing:
        missing_tool("%s not found on the PATH" % ", ".join(missing))
    return paths


def run_graph(fn, *arrays, fetch_grads_of=None):
    """Builds ``fn`` on constants in a fresh graph and evaluates it in a session.

    Args:
        fn: maps tensors to a tensor (or a structure of tensors).
        arrays: NumPy inputs, turned into float32 constants.

    Returns:
        The evaluated result.
    """
    import tensorflow as tf  # here, so that test files without TensorFlow load fast
    graph = tf.Graph()
    with graph.as_default():
        tensors = [tf.constant(np.asarray(a, np.float32)) for a in arrays]
        result = fn(*tensors)
        with tf.compat.v1.Session(graph=graph) as sess:
            return sess.run(result)


class Watched:
    """A subprocess whose stderr is read by a thread, so waiting for a line has a real deadline.

    Args:
        args, **kwargs: as for ``subprocess.Popen`` (stdout is discarded, stderr is watched).
    """

    def __init__(self, args, **kwargs):
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     **kwargs)
        self._chunks, self._lock = [], threading.Lock()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self):
        for chunk in iter(lambda: os.read(self.proc.stderr.fileno(), 4096), b""):
            with self._lock:
                self._chunks.append(chunk)

    @property
    def stderr(self):
        with self._lock:
            return b"".join(self._chunks).decode("utf-8", "replace")

    def wait_for(self, needle, timeout):
        """Waits until ``needle`` appears on stderr; fails the test (killing the process) if the
        process ends or ``timeout`` seconds pass first."""
        deadline = time.monotonic() + timeout
        while needle not in self.stderr:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                state = ("exited with %s" % self.proc.returncode
                         if self.proc.poll() is not None else "timed out")
                self.kill()
                pytest.fail("%r never appeared on stderr (%s): %s"
                            % (needle, state, self.stderr[-2000:]))
            time.sleep(0.05)

    def finish(self, timeout):
        """Waits for the exit (killing the process after ``timeout`` s); returns its status."""
        try:
            status = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail("did not exit within %d s: %s" % (timeout, self.stderr[-2000:]))
        self._thread.join(10)
        return status

    def kill(self):
        """Kills the process (and its process group if it leads one, e.g. make's children)."""
        if self.proc.poll() is None:
            try:
                if os.getpgid(self.proc.pid) == self.proc.pid:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                else:
                    self.proc.kill()
            except ProcessLookupError:
                pass
            self.proc.wait(30)
        self._thread.join(10)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
