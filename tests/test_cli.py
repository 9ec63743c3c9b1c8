"""The command lines as a new user meets them (issue 23): quiet by default, --help that lists the
flags, errors that point to the fix, make targets that name their variables."""
import os
import re
import sys

import numpy as np
import pytest
import scipy.io
import tifffile

from sipsa_tf import checkpoint_paths
from sipsa_tf.data import synthetic

from conftest import REPO_ROOT, assert_one_line_error, run_command

BIN = os.path.dirname(sys.executable)
# The environment of a user who set nothing: TensorFlow's own variables and ours removed.
PLAIN = {"TF_CPP_MIN_LOG_LEVEL": None, "SIPSA_TF_VERBOSE": None}
# A line TensorFlow (C++ or Python) writes: glog-style prefixes, absl, deprecations.
TF_LINE = re.compile(r"^[IWEF]\d{4} |absl::InitializeLog|cpu_feature_guard|"
                     r"To enable the following instructions|Instructions for updating|"
                     r"WARNING:tensorflow|cuInit|cuda|oneDNN|XLA|MLIR")


def tf_lines(stderr):
    return [line for line in stderr.splitlines() if TF_LINE.search(line)]


def _pair(directory, n_bands=3, ms_size=32):
    rng = np.random.default_rng(0)
    os.makedirs(directory, exist_ok=True)
    ms, pan = os.path.join(directory, "ms.tif"), os.path.join(directory, "pan.tif")
    tifffile.imwrite(ms, rng.integers(1, 2000, (ms_size, ms_size, n_bands), dtype=np.uint16),
                     **({"photometric": "rgb"} if n_bands == 3 else {"planarconfig": "contig"}))
    tifffile.imwrite(pan, rng.integers(1, 2000, (4 * ms_size, 4 * ms_size), dtype=np.uint16))
    return pan, ms


def _pansharpen(*args, env=PLAIN):
    return run_command([os.path.join(BIN, "sipsa-pansharpen"), *args], env=env)


def test_pansharpen_is_quiet_by_default_and_verbose_on_request(tmp_path):
    pan, ms = _pair(str(tmp_path))
    out = str(tmp_path / "out.tif")
    quiet = _pansharpen("--pan", pan, "--ms", ms, "--out", out, "--progress=off")
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr == ""  # the default checkpoint was used: no --checkpoint given
    assert "wrote %s" % out in quiet.stdout
    verbose = _pansharpen("--pan", pan, "--ms", ms, "--out", out, "--progress=off",
                          env=dict(PLAIN, SIPSA_TF_VERBOSE="1"))
    assert verbose.returncode == 0, verbose.stderr
    assert len(tf_lines(verbose.stderr)) >= 3, verbose.stderr  # what quiet hides


def test_make_test_images_is_quiet_and_its_names_are_stable(tmp_path):
    test_dir = synthetic.generate(str(tmp_path / "scenes"), seed=1, n_train=0, n_road=0,
                                  n_test=1, ms_size=32)
    out_dir = tmp_path / "out"
    command = ["make", "--no-print-directory", "test-images", "NO_INSTALL=1",
               "PY=" + sys.executable, "TEST_DIR=" + os.path.join(test_dir, synthetic.TEST_FOLDER),
               "OUT_DIR=%s" % out_dir]
    first = run_command(command, env=dict(PLAIN, CHECKPOINT=None))
    assert first.returncode == 0, first.stderr
    assert first.stderr == ""
    names = sorted(os.listdir(out_dir))
    again = run_command(command, env=dict(PLAIN, CHECKPOINT=None))
    assert again.returncode == 0, again.stderr
    assert sorted(os.listdir(out_dir)) == names  # a rerun overwrites
    pngs = [n for n in names if n.endswith(".png")]
    assert pngs and all(re.fullmatch(r"[\w]+\.png", n) for n in pngs), pngs
    assert "test_000_03_ours.png" in pngs and "test_000_02_msnn_aligned.png" in pngs, pngs


@pytest.mark.parametrize("script,flags", [
    ("sipsa-pansharpen", ["--pan", "--ms", "--out", "--bands", "--checkpoint", "--preview",
                          "--verbose"]),
    ("sipsa-evaluate", ["--data_dir", "--methods", "--checkpoint", "--out_dir", "--verbose"]),
    ("sipsa-train", ["--data_dir", "--log_dir", "--max_steps", "--verbose"]),
])
def test_console_scripts_list_their_flags(script, flags):
    result = run_command([os.path.join(BIN, script), "--help"], env=PLAIN)
    assert "Traceback" not in result.stderr  # absl's --help exits with status 1
    text = result.stdout + result.stderr
    for flag in flags:
        assert re.search(r"^  --(\[no\])?%s:" % flag[2:], text, re.M), (flag, text[:2000])
    assert "%%" not in text
    assert tf_lines(result.stderr) == []


@pytest.mark.parametrize("module,flag", [
    ("sipsa_tf.pansharpen", "--bands"), ("sipsa_tf.evaluate", "--methods"),
    ("sipsa_tf.train", "--log_dir"), ("sipsa_tf.images", "--test_dir"),
    ("sipsa_tf.convert_mat", "--rgb_bands"), ("sipsa_tf.data.synthetic", "--out_dir")])
def test_python_m_entries_list_their_flags(module, flag):
    result = run_command([sys.executable, "-m", module, "--help"], env=PLAIN)
    assert "Traceback" not in result.stderr
    text = result.stdout + result.stderr
    assert flag in text and "%%" not in text, text[:2000]


def test_wrong_checkpoint_lists_the_bundled_ones_before_tensorflow(tmp_path):
    pan, ms = _pair(str(tmp_path))
    for command in ([os.path.join(BIN, "sipsa-pansharpen"), "--pan", pan, "--ms", ms,
                     "--out", str(tmp_path / "o.tif")],
                    [sys.executable, "-m", "sipsa_tf.images", "--out_dir", str(tmp_path / "i")],
                    [os.path.join(BIN, "sipsa-evaluate"), "--methods=sipsa",
                     "--out_dir", str(tmp_path / "e")]):
        result = run_command(command + ["--checkpoint", "checkpoints/wald_stage1x"], env=PLAIN)
        line = assert_one_line_error(result, "checkpoints/wald_stage1x", "bundled checkpoints: ",
                                     "checkpoints/wald_stage1j")
        assert result.stderr == line + "\n"  # nothing from TensorFlow: it was not loaded
    assert not os.path.exists(tmp_path / "o.tif")


def test_checkpoint_check_in_the_library(tmp_path):
    assert checkpoint_paths.check("") == checkpoint_paths.default_checkpoint()
    assert checkpoint_paths.default_checkpoint() in checkpoint_paths.bundled_checkpoints()
    (tmp_path / "empty").mkdir()
    with pytest.raises(checkpoint_paths.CheckpointPathError, match="no checkpoint in this folder"):
        checkpoint_paths.check(str(tmp_path / "empty"))


def test_a_mat_input_names_convert_mat(tmp_path):
    mat = str(tmp_path / "scene.mat")
    scipy.io.savemat(mat, {"I_PAN": np.ones((64, 64), np.uint16)})
    pan, ms = _pair(str(tmp_path))
    result = _pansharpen("--pan", mat, "--ms", ms, "--out", str(tmp_path / "o.tif"))
    assert_one_line_error(result, mat, "MATLAB .mat file", "python -m sipsa_tf.convert_mat")


def test_make_pansharpen_names_its_variables():
    result = run_command(["make", "--no-print-directory", "pansharpen", "NO_INSTALL=1",
                          "PY=" + sys.executable, "MS=ms.tif"], env={"PAN": None, "OUT": None})
    assert result.returncode != 0
    assert "make pansharpen: PAN= OUT= required, e.g. make pansharpen PAN=" in result.stderr


@pytest.mark.parametrize("n_bands,expected", [(4, "3,2,1"), (8, "5,3,2")])
def test_many_band_ms_without_bands_warns_with_the_usual_rgb(tmp_path, n_bands, expected):
    from sipsa_tf import scene
    pan, ms = _pair(str(tmp_path), n_bands=n_bands, ms_size=16)
    result = _pansharpen("--pan", pan, "--ms", ms, "--out", str(tmp_path / "o.tif"),
                         "--progress=off")
    assert result.returncode == 0, result.stderr
    warning = "warning: %s has %d bands and no --bands was given: using bands %s as R,G,B" % (
        ms, n_bands, expected)
    assert result.stderr.splitlines() == [result.stderr.splitlines()[0]]
    assert result.stderr.startswith(warning), result.stderr
    with pytest.raises(scene.SceneError, match="has 5 bands: say which are R,G,B with --bands"):
        scene.default_bands("x.tif", 5)


def test_make_train_is_quiet(tmp_path):
    data_dir = synthetic.generate(str(tmp_path / "scenes"), seed=3, n_train=2, n_road=0,
                                  n_test=1, ms_size=32)
    result = run_command(["make", "--no-print-directory", "train", "NO_INSTALL=1",
                          "PY=" + sys.executable, "DATA_DIR=" + data_dir,
                          "LOG_DIR=%s" % (tmp_path / "logs"),
                          "FLAGS=--max_steps=1 --batch_size=1 --ms_patch=16"], env=PLAIN)
    assert result.returncode == 0, result.stderr
    assert "checkpoint: " in result.stdout
    assert tf_lines(result.stderr) == [], result.stderr
    # what remains on stderr is the project's own progress bar
    assert all(line.startswith("epoch ") for line in result.stderr.splitlines()), result.stderr
