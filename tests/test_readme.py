"""The README's quick start, run from the README text itself (issue 23), on a small scene.

The three command lines of the ``sh`` block under "## Quick start" run in a scratch checkout (the
Makefile and checkpoints/ linked) beside a scratch ``../shared/data/grip/imgWV2.mat``: a
synthetic 8-band scene of 32 x 32 MS pixels with the keys of the GRIP-UNINA file. Only the
interpreter is replaced (``.venv/bin/python`` -> this one; ``make`` gets ``NO_INSTALL=1
PY=...``). The files the README says to look at must exist, and no TensorFlow log line may
reach stderr.
"""
import os
import shlex
import subprocess
import sys

import numpy as np
import scipy.io

from conftest import REPO_ROOT
from test_cli import tf_lines


def quick_start_commands():
    with open(os.path.join(REPO_ROOT, "README.md"), encoding="utf-8") as f:
        text = f.read()
    section = text[text.index("## Quick start"):]
    block = section[section.index("```sh\n") + len("```sh\n"):]
    return [line for line in block[:block.index("```")].splitlines() if line.strip()]


def test_readme_is_short_and_keeps_the_ci_commands():
    with open(os.path.join(REPO_ROOT, "README.md"), encoding="utf-8") as f:
        text = f.read()
    assert len(text.splitlines()) <= 200
    assert "make install" in text and "make test " in text  # what .ci/run runs
    assert os.path.isfile(os.path.join(REPO_ROOT, "docs", "heldout_panel.png"))


def test_quick_start_runs_from_the_readme(tmp_path):
    commands = quick_start_commands()
    assert [c.split()[0] for c in commands] == ["make", ".venv/bin/python", "make"], commands
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    for name in ("Makefile", "checkpoints"):
        os.symlink(os.path.join(REPO_ROOT, name), checkout / name)
    grip = tmp_path / "shared" / "data" / "grip"
    grip.mkdir(parents=True)
    rng = np.random.default_rng(0)
    scipy.io.savemat(str(grip / "imgWV2.mat"), {
        "I_MS": rng.integers(100, 2000, (32, 32, 8)).astype(np.uint16),
        "I_PAN": rng.integers(100, 2000, (128, 128)).astype(np.uint16),
        "L": 11, "RGB_indexes": np.array([[5, 3, 2]])})
    env = {k: v for k, v in os.environ.items()
           if k not in ("TF_CPP_MIN_LOG_LEVEL", "SIPSA_TF_VERBOSE", "CHECKPOINT", "LOG_DIR")}
    for command in commands:
        args = shlex.split(command)
        if args[0] == "make":
            args[1:1] = ["--no-print-directory", "NO_INSTALL=1", "PY=" + sys.executable]
        elif args[0] == ".venv/bin/python":
            args[0] = sys.executable
        result = subprocess.run(args, cwd=str(checkout), env=env, capture_output=True, text=True,
                                timeout=600)
        assert result.returncode == 0, (command, result.stderr)
        assert tf_lines(result.stderr) == [], (command, result.stderr)
    images = checkout / "logs" / "test_images"
    for suffix in ("03_ours", "01_pan", "02_msnn", "02_msnn_aligned"):
        assert (images / ("test_000_%s.png" % suffix)).is_file(), sorted(os.listdir(images))
    assert (images / "metrics.md").is_file()
    for name in ("out/grip/imgWV2_pan.tif", "out/grip/imgWV2_ms.tif", "out/imgWV2.tif",
                 "out/imgWV2.png"):
        assert (checkout / name).is_file(), name
