"""One trainer per log directory (sipsa_tf.runlock): a live holder refuses a second trainer with
one line naming it; a holder killed with -9 leaves a lock file that blocks nothing."""
import os
import signal
import subprocess
import sys

import pytest

from conftest import QUIET_TF, REPO_ROOT, assert_one_line_error, command_env, run_command
from sipsa_tf import runlock
from sipsa_tf.data import synthetic

HOLDER = ("import sys, time\n"
          "from sipsa_tf import runlock\n"
          "with runlock.hold(sys.argv[1]):\n"
          "    print('held', flush=True)\n"
          "    time.sleep(120)\n")


def _start_holder(directory):
    """A process holding ``directory``'s lock; returns once it says so."""
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(directory)], cwd=REPO_ROOT,
                            env=command_env(QUIET_TF), stdout=subprocess.PIPE, text=True)
    try:
        line = _readline(proc, timeout=60)
    except BaseException:
        proc.kill()
        raise
    assert line.strip() == "held"
    return proc


def _readline(proc, timeout):
    import selectors
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            raise TimeoutError("the lock holder said nothing in %d s" % timeout)
    return proc.stdout.readline()


def test_second_holder_in_the_same_process_is_refused(tmp_path):
    with runlock.hold(str(tmp_path)):
        with pytest.raises(runlock.DirectoryBusy, match="pid %d on" % os.getpid()):
            with runlock.hold(str(tmp_path)):
                pass
    with runlock.hold(str(tmp_path)):  # released at the end of the block
        pass


def test_a_lock_left_by_a_killed_run_does_not_block(tmp_path):
    proc = _start_holder(tmp_path)
    try:
        with pytest.raises(runlock.DirectoryBusy, match="pid %d on" % proc.pid):
            with runlock.hold(str(tmp_path)):
                pass
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert os.path.exists(tmp_path / runlock.LOCK_NAME)  # the file stays ...
    with runlock.hold(str(tmp_path)) as path:            # ... and blocks nothing
        with open(path) as f:
            assert f.read().startswith("pid %d on" % os.getpid())


def test_trainer_on_a_busy_log_dir_exits_1_with_one_line(tmp_path):
    root = synthetic.generate(str(tmp_path / "scenes"), seed=3, n_train=2, n_road=0, n_test=1,
                              ms_size=32)
    log_dir = tmp_path / "log"
    proc = _start_holder(log_dir)
    try:
        result = run_command(
            [sys.executable, "-m", "sipsa_tf.train", "--data_dir", root, "--log_dir",
             str(log_dir), "--batch_size=1", "--ms_patch=16", "--max_steps=1"],
            env={"TF_CPP_MIN_LOG_LEVEL": None, "SIPSA_TF_VERBOSE": None})  # as a user runs it
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    line = assert_one_line_error(result, str(log_dir), "pid %d on" % proc.pid)
    assert result.stderr == line + "\n"  # exactly one line: no TensorFlow log or deprecation
    assert not [n for n in os.listdir(log_dir) if n.startswith("model.ckpt")]
