"""Shared test helpers: paths to ../shared, graph-mode ops on NumPy arrays, required external
tools, random-weight checkpoints, running a command line (with a deadline, or watching its output
with one), GeoTIFF tags and MS/PAN image pairs.

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
import tifffile

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.normpath(os.path.join(REPO_ROOT, "..", "shared"))
FIXTURE_DIR = os.path.join(SHARED, "fixtures", "legacy_sipsa")
SPEC_DIR = os.path.join(SHARED, "spec")
# Every subprocess a test starts is given at most this many seconds (TensorFlow's import and a
# graph build take ~10 s here; the slowest command-line test runs ~30 s).
SUBPROCESS_TIMEOUT = 300
# The environment (on top of the test's) of a command whose stderr is checked: TensorFlow's C++
# log lines left out.
QUIET_TF = {"TF_CPP_MIN_LOG_LEVEL": "3"}


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


def command_env(env=None):
    """The test's environment with ``env`` laid over it; a value of None removes that variable
    (e.g. ``{"CHECKPOINT": None}``, so that a Makefile default applies)."""
    merged = dict(os.environ)
    for name, value in (env or {}).items():
        if value is None:
            merged.pop(name, None)
        else:
            merged[name] = value
    return merged


def run_command(args, timeout=SUBPROCESS_TIMEOUT, env=None, cwd=REPO_ROOT):
    """Runs a command to its end, capturing stdout and stderr as text.

    Args:
        args: the command (a list).
        timeout: seconds it may take; past that ``subprocess.TimeoutExpired`` fails the test.
        env: variables set (or, with None, removed) on top of the test's environment; see
            :func:`command_env`.
        cwd: the working directory (the repository by default).

    Returns:
        The ``subprocess.CompletedProcess``.
    """
    return subprocess.run(args, capture_output=True, text=True, cwd=cwd, env=command_env(env),
                          timeout=timeout)


def assert_one_line_error(result, *needles):
    """``result`` exited with status 1, without a traceback, with exactly one ``error: `` line on
    stderr that contains each of ``needles``; returns that line."""
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    lines = [s for s in result.stderr.splitlines() if s.startswith("error: ")]
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def write_random_checkpoint(prefix, seed=3, gain=1.0, corner=1.0, out_scale=1.0):
    """Saves the original's random initialisation (graph seed ``seed``) as a checkpoint.

    Args:
        prefix: the checkpoint prefix to write (no state file, no meta graph).
        seed: the graph seed of the initialisation.
        gain: factor applied to every convolution kernel (``w_conv*``); a gain above 1 makes
            the random network's response strong enough for tile seams to show.
        corner: further factor on the first tap (offset (-(k-1)/2, -(k-1)/2)) of every k x k
            kernel with k > 1. Above 1 it favours the path that reads, at every layer, the pixel
            farthest up and left, so an output pixel depends strongly on the pixels at the far
            edge of the receptive field (a large far-field response).
        out_scale: factor on the two 1 x 1 convolutions that give the output and the aligned MS
            (``w_conv29``, ``w_conv17``), to keep a strong network's output inside [0, 1].

    Returns:
        prefix.
    """
    from sipsa_tf.training import adapt  # here, so that test files without TensorFlow load fast
    weights = adapt.initial_weights(None, seed=seed)
    for name, value in weights.items():
        if "w_conv" not in name:
            continue
        value = value * np.float32(gain)
        if value.shape[0] > 1:
            value[0, 0] *= np.float32(corner)
        if name.endswith(("w_conv17", "w_conv29")):
            value = value * np.float32(out_scale)
        weights[name] = value
    return adapt.save_weights(weights, prefix)


@pytest.fixture(scope="session")
def random_checkpoint(tmp_path_factory):
    """A random-initialised SIPSA-Net checkpoint (seed 3) shared by the whole session; tests must
    not write into its folder."""
    return write_random_checkpoint(str(tmp_path_factory.mktemp("random_checkpoint") / "model-0"))


def geotiff_tags(double_params=False, nodata=None, transformation=None):
    """tifffile ``extratags`` of a UTM 33N GeoTIFF: pixel scale (33550), tie point (33922), GeoKey
    directory (34735) and ASCII params (34737).

    Args:
        double_params: the GeoKey directory also refers to GeoDoubleParams (34736, holding
            ProjLinearUnitSizeGeoKey) and cites GTCitationGeoKey; otherwise it cites
            PCSCitationGeoKey (3073) and has no double params.
        nodata: a GDAL nodata string (42113), or None for none.
        transformation: 16 numbers of a ModelTransformation (34264), or None for none.

    Returns:
        list of (code, dtype, count, value, writeonce).
    """
    tags = [(33550, "d", 3, (0.5, 0.5, 0.0), True),
            (33922, "d", 6, (0.0, 0.0, 0.0, 500000.0, 4000000.0, 0.0), True)]
    if double_params:
        tags += [(34735, "H", 24, (1, 1, 0, 5, 1024, 0, 1, 1, 1025, 0, 1, 1, 1026, 34737, 8, 0,
                                   3072, 0, 1, 32633, 3077, 34736, 1, 0), True),
                 (34736, "d", 1, (1.0,), True)]
    else:
        tags.append((34735, "H", 20, (1, 1, 0, 4, 1024, 0, 1, 1, 1025, 0, 1, 1, 3072, 0, 1, 32633,
                                      3073, 34737, 10, 0), True))
    tags.append((34737, "s", 0, "UTM 33N|", True))
    if transformation is not None:
        tags.append((34264, "d", 16, tuple(transformation), True))
    if nodata is not None:
        tags.append((42113, "s", 0, nodata, True))
    return tags


def write_tiff(path, array, **kwargs):
    """Writes ``array`` with ``tifffile.imwrite(path, array, **kwargs)``, creating the folder
    first; returns path."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tifffile.imwrite(path, array, **kwargs)
    return path


def write_pair(folder, ms, pan, name=None, folders=("RGB", "PAN"), ms_options=None,
               pan_options=None):
    """Writes an MS image and its PAN image as TIFFs.

    Args:
        folder: where the pair goes.
        ms, pan: the arrays, (h, w, bands) and (4h, 4w) usually.
        name: None for ``folder/ms.tif`` and ``folder/pan.tif``; otherwise the pair's name,
            written as ``folder/<folders[0]>/<name>.tif`` and ``folder/<folders[1]>/<name>.tif``
            (the original's layout), or as ``<name>_ms.tif`` and ``<name>_pan.tif`` in
            ``folder`` when ``folders`` is None.
        folders: (MS folder, PAN folder) names when ``name`` is given.
        ms_options, pan_options: ``tifffile.imwrite`` keywords; the MS is written with
            ``photometric="minisblack"`` and contiguous bands unless told otherwise.

    Returns:
        (MS path, PAN path).
    """
    if name is None:
        ms_path, pan_path = os.path.join(folder, "ms.tif"), os.path.join(folder, "pan.tif")
    elif folders is None:
        ms_path = os.path.join(folder, name + "_ms.tif")
        pan_path = os.path.join(folder, name + "_pan.tif")
    else:
        ms_path = os.path.join(folder, folders[0], name + ".tif")
        pan_path = os.path.join(folder, folders[1], name + ".tif")
    ms_options = dict(ms_options or {})
    ms_options.setdefault("photometric", "minisblack")
    if np.ndim(ms) == 3:
        ms_options.setdefault("planarconfig", "contig")
    return (write_tiff(ms_path, ms, **ms_options),
            write_tiff(pan_path, pan, **(pan_options or {})))


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
