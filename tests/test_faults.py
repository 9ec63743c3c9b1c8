"""Faults: a truncated or corrupt checkpoint, a full disk (issue 24; docs/design.md, "Errors").

A checkpoint whose data file is cut short (100 kB, as a failed copy leaves it) or whose ``.index``
is missing gives one line everywhere it is restored, ``error: <prefix>: checkpoint data is
truncated or corrupt (...)``, exit status 1 and no output: the scene tool, the test-image tool,
the evaluation, and :class:`~sipsa_tf.inference.Pansharpener` (a CheckpointError). The trainer's
resume past such a checkpoint is tested in tests/test_train.py
(test_restart_after_a_kill_mid_save_resumes_step_and_optimizer_state: a truncated newest
checkpoint and data without its index). A full disk is made with a patched writer (see each test).
"""
import glob
import os
import shutil
import sys

import numpy as np
import pytest

from conftest import QUIET_TF, assert_one_line_error, run_command, write_pair
from sipsa_tf import synthetic
from sipsa_tf.checkpoints import CheckpointError
from sipsa_tf.inference import Pansharpener

CORRUPT = "checkpoint data is truncated or corrupt"
TRUNCATED_SIZE = 100 * 1024  # bytes


def _damaged(random_checkpoint, directory, fault):
    """A copy of ``random_checkpoint`` in ``directory`` with its data file truncated to 100 kB
    (``fault`` "truncated") or its index removed ("no_index"); returns the copy's prefix."""
    os.makedirs(directory)
    for path in glob.glob(random_checkpoint + ".*"):
        shutil.copy(path, directory)
    prefix = os.path.join(directory, os.path.basename(random_checkpoint))
    if fault == "truncated":
        data, = glob.glob(prefix + ".data-*")
        assert os.path.getsize(data) > TRUNCATED_SIZE
        with open(data, "r+b") as f:
            f.truncate(TRUNCATED_SIZE)
    else:
        os.remove(prefix + ".index")
    return prefix


FAULTS = ["truncated", "no_index"]


@pytest.mark.parametrize("fault", FAULTS)
def test_pansharpener_raises_one_clear_error(random_checkpoint, tmp_path, fault):
    prefix = _damaged(random_checkpoint, str(tmp_path / "ckpt"), fault)
    for given in (prefix, os.path.dirname(prefix)):
        with pytest.raises(CheckpointError) as raised:
            Pansharpener(given)
        message = str(raised.value)
        assert message.startswith(prefix + ": " + CORRUPT + " ("), message
        assert "\n" not in message
        assert ("Read less bytes" in message) if fault == "truncated" else (
            "no .index file" in message)


@pytest.fixture(scope="module")
def scene_pair(tmp_path_factory):
    rng = np.random.default_rng(0)
    directory = str(tmp_path_factory.mktemp("pair"))
    ms = (rng.random((24, 24, 3)) * 2047).astype(np.uint16)
    pan = (rng.random((96, 96)) * 2047).astype(np.uint16)
    return write_pair(directory, ms, pan)  # (MS path, PAN path)


@pytest.fixture(scope="module")
def test_scenes(tmp_path_factory):
    root = synthetic.generate(str(tmp_path_factory.mktemp("scenes")), seed=5, n_train=1,
                              n_road=0, n_test=1, ms_size=16)
    return os.path.join(root, synthetic.TEST_FOLDER)


def _tool(name, prefix, out, inputs):
    """The command line of tool ``name`` reading checkpoint ``prefix`` and writing ``out``."""
    if name == "pansharpen":
        ms, pan = inputs["pair"]
        return ["sipsa_tf.pansharpen", "--checkpoint=" + prefix, "--pan=" + pan, "--ms=" + ms,
                "--out=" + out, "--progress=off"]
    if name == "test_images":
        return ["sipsa_tf.test_images_main", "--checkpoint=" + prefix,
                "--test_dir=" + inputs["scenes"], "--out_dir=" + out]
    return ["sipsa_tf.evaluate", "--checkpoint=" + prefix, "--out_dir=" + out,
            "--data_dir=" + out + "_absent", "--auto_data", "--n_synthetic=1",
            "--synthetic_size=24", "--methods=sipsa", "--progress=off"]


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("tool", ["pansharpen", "test_images", "evaluate"])
def test_tools_say_one_line_and_write_nothing(random_checkpoint, scene_pair, test_scenes,
                                              tmp_path, tool, fault):
    prefix = _damaged(random_checkpoint, str(tmp_path / "ckpt"), fault)
    out = str(tmp_path / ("out.tif" if tool == "pansharpen" else "out"))
    args = _tool(tool, prefix, out, {"pair": scene_pair, "scenes": test_scenes})
    result = run_command([sys.executable, "-m"] + args, env=QUIET_TF)
    assert_one_line_error(result, "error: %s: %s (" % (prefix, CORRUPT))
    assert not os.path.exists(out)
    assert sorted(os.listdir(tmp_path)) == ["ckpt"]  # no temporary file either
