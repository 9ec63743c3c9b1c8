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
from sipsa_tf.data import synthetic
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
        return ["sipsa_tf.images", "--checkpoint=" + prefix,
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


# ---------------------------------------------------------------- a full disk

def _mount_tmpfs(path, size):
    """Mounts a tmpfs of ``size`` bytes at ``path``; False where mounting is not allowed."""
    import subprocess
    mount = shutil.which("mount")
    if mount is None or os.geteuid() != 0:
        return False
    os.makedirs(path, exist_ok=True)
    done = subprocess.run([mount, "-t", "tmpfs", "-o", "size=%d" % size, "tmpfs", path],
                          capture_output=True, check=False)
    return done.returncode == 0


def _unmount(path):
    import subprocess
    subprocess.run(["umount", path], capture_output=True, check=False)


def test_full_disk_during_a_trainer_save(tmp_path, monkeypatch):
    """Checkpoints go to a folder with room for one checkpoint, not two: a tmpfs made here where
    the test may mount one (root, mount allowed), otherwise a patched writer that writes part of
    a TensorFlow ``.tempstate`` file and then fails as TensorFlow does on a full disk
    (ResourceExhaustedError, 'No space left on device'). The second save fails with one line
    naming the last complete checkpoint, nothing of the failed save is left, and a rerun with
    room resumes from that checkpoint."""
    import io
    import tensorflow as tf
    from sipsa_tf.training import loop as train_loop
    from sipsa_tf.training.config import TrainConfig
    from sipsa_tf.cli import common as cli
    from sipsa_tf.training import graph as training_graph
    scenes = synthetic.generate(str(tmp_path / "scenes"), seed=5, n_train=1, n_road=0,
                                n_test=0, ms_size=16)
    ckpt_dir = str(tmp_path / "ckpt")
    settings = dict(data_dir=scenes, log_dir=str(tmp_path / "log"), checkpoint_dir=ckpt_dir,
                    batch_size=1, ms_patch=8, crops_per_image=1, readers=1, shuffle_buffer=2,
                    iters_per_epoch=1, keep_checkpoints=0, threads=1, progress="off")
    quiet = dict(stdout=open(os.devnull, "w"), stderr=open(os.devnull, "w"))
    # the size of one checkpoint, from a run elsewhere
    first = train_loop.train(TrainConfig(**dict(
        settings, checkpoint_dir=str(tmp_path / "sizing"), log_dir=str(tmp_path / "sizing"),
        max_steps=1)), **quiet)
    size = sum(os.path.getsize(p) for p in glob.glob(first["checkpoint"] + ".*"))
    mounted = _mount_tmpfs(ckpt_dir, size * 3 // 2 + 64 * 1024)
    try:
        if not mounted:  # the patched writer
            save = training_graph.TrainGraph.save

            def failing_save(self, session, prefix):
                if prefix.endswith("-2"):
                    with open(prefix + ".data-00000-of-00001.tempstate123", "wb") as f:
                        f.write(b"\0" * 1000)
                    raise tf.errors.ResourceExhaustedError(
                        None, None, prefix + ".data-00000-of-00001.tempstate123; "
                        "No space left on device")
                return save(self, session, prefix)

            monkeypatch.setattr(training_graph.TrainGraph, "save", failing_save)
        stream = io.StringIO()
        code = cli.guarded(lambda: train_loop.train(TrainConfig(
            **dict(settings, max_steps=2)), **quiet), stream=stream)
        lines = stream.getvalue().splitlines()
        assert code == 1 and len(lines) == 1, lines
        last = os.path.join(ckpt_dir, "model.ckpt-1")
        assert lines[0].startswith("error: " + os.path.join(ckpt_dir, "model.ckpt-2")), lines
        assert "No space left on device" in lines[0]
        assert lines[0].endswith("the last complete checkpoint is %s" % last), lines
        left = sorted(n for n in os.listdir(ckpt_dir) if "ckpt" in n)
        assert left == ["model.ckpt-1.data-00000-of-00001", "model.ckpt-1.index"], left
        # room again: the rerun resumes from step 1
        if mounted:  # the same tmpfs, grown (its files stay)
            import subprocess
            subprocess.run(["mount", "-o", "remount,size=%d" % (8 * size), ckpt_dir],
                           check=True, capture_output=True)
        else:
            monkeypatch.setattr(training_graph.TrainGraph, "save", save)
        history = train_loop.train(TrainConfig(**dict(settings, max_steps=2)), **quiet)
        assert history["resumed_from"] == last and history["step"] == 2
        print("full disk made by", "a tmpfs" if mounted else "a patched writer")
    finally:
        if mounted:
            _unmount(ckpt_dir)


def test_full_disk_during_an_evaluation_write(tmp_path, monkeypatch):
    """A patched writer: the temporary file of results.csv gets half its bytes, then the write
    fails with ENOSPC as on a full disk (the panels before it are written). One line naming
    results.csv and the last complete output (a panel), exit 1, no temporary file left."""
    import errno
    import io
    from sipsa_tf.evaluation import suite as ev
    from sipsa_tf.cli import common as cli
    from sipsa_tf.evaluation import reports
    from sipsa_tf.utils import files
    write_bytes = files.write_bytes

    def full_disk(path, payload):
        if os.path.basename(path) != "results.csv":
            return write_bytes(path, payload)
        with files.atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                f.write(payload[:len(payload) // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), tmp)

    monkeypatch.setattr(reports.files, "write_bytes", full_disk)
    out = str(tmp_path / "out")
    config = ev.EvalConfig(out_dir=out, data_dir=str(tmp_path / "absent"), auto_data=True,
                           n_synthetic=1, synthetic_size=24, methods=("nearest", "brovey"),
                           panel_crop=32, progress="off")
    stream = io.StringIO()
    code = cli.guarded(lambda: ev.run(config, stdout=open(os.devnull, "w")), stream=stream)
    lines = stream.getvalue().splitlines()
    assert code == 1 and len(lines) == 1, lines
    written = sorted(os.listdir(out))
    assert written and all(n.startswith("panel_") and n.endswith(".png") for n in written), written
    assert lines[0].startswith("error: %s: not written (No space left on device; the last "
                               "complete output is %s" % (os.path.join(out, "results.csv"), out)), lines
