# docker/docker.mk: the pinned image (docker/Dockerfile), GPU or CPU variant, and the commands that run
# inside it. Included by the top-level Makefile; docker/README.md has the details.
#
#   make docker-build         build $(IMAGE), the GPU variant     [BASE_IMAGE=nvidia/cuda:<tag>@sha256:<digest>]
#   make docker-build-cpu     build $(CPU_IMAGE), the CPU variant [BASE_IMAGE=<Debian/Ubuntu with python3.11, make>]
#   make docker-base-cpu      make the local Debian base $(CPU_BASE_IMAGE) with debootstrap, unless present
#   make docker-wheels        download the locked wheels into $(WHEELHOUSE) (offline image builds)
#   make docker-train         `make train` in the image, on all GPUs (mirrored) [DATA_DIR= LOG_DIR= CHECKPOINT_DIR= FLAGS=]
#   make docker-test-images   `make test-images` in the image [TEST_DIR= CHECKPOINT= LOG_DIR= CHECKPOINT_DIR= FLAGS=]
#   make docker-shell         interactive bash in the image, same mounts as docker-train
#   make docker-lint          hadolint docker/Dockerfile; any finding fails
#   make docker-lock          regenerate docker/requirements.lock (hash-locked, from setup.py)
#
# Host directories may be given relative to the repository: they are made absolute here, because
# `docker run -v` would take a relative source for the name of a Docker volume.

DOCKER ?= docker
IMAGE ?= sipsa-tf:gpu
# Empty means the Dockerfile's default tag; pass <tag>@sha256:<digest> to pin the base by digest.
BASE_IMAGE ?=
# The CPU variant: its image, and the base made by docker-base-cpu when BASE_IMAGE is not given
# (Debian $(DEBIAN_SUITE), whose python3 is 3.11, with make; from $(DEBIAN_MIRROR) by debootstrap, as root).
CPU_IMAGE ?= sipsa-tf:cpu
CPU_BASE_IMAGE ?= local/debian-py:$(DEBIAN_SUITE)
DEBIAN_SUITE ?= bookworm
DEBIAN_MIRROR ?= http://deb.debian.org/debian
# Wheels of docker/requirements.lock for an offline build: when this folder holds wheels, the image
# build installs from them only (hashes still checked), otherwise from the package index.
WHEELHOUSE := docker/wheelhouse
# Value of `docker run --gpus`; empty runs without GPUs (CPU only, for checking a setup).
GPUS ?= all
# docker-train's --strategy: with GPUs, data-parallel over all of them (mirrored); without, one device.
DOCKER_STRATEGY ?= $(if $(GPUS),mirrored)
# Host directories, mounted at /data (read-only), /logs and /checkpoints. DATA_DIR and TEST_DIR count
# only when given (command line or environment), as for `make train` and `make test-images`: without
# them, docker-train generates the synthetic scenes into $(SYNTHETIC_DIR) on the host (once; its parent
# is mounted read-write at /synthetic) and docker-test-images uses the synthetic test scenes.
DATA_DIR ?= $(CURDIR)/data
LOG_DIR ?= $(CURDIR)/logs
CHECKPOINT_DIR ?= $(CURDIR)/checkpoints
# docker-test-images: host directory of test scenes (mounted read-only at /test), and the checkpoint,
# either under CHECKPOINT_DIR on the host or a path relative to the repository copy in the image.
TEST_DIR ?= $(DATA_DIR)
CHECKPOINT ?=
FLAGS ?=
# Run as the calling user, so files written to the mounts belong to them. Empty: the image's own
# unprivileged user (uid 1000).
DOCKER_USER ?= $(shell id -u):$(shell id -g)
HADOLINT ?= $(or $(VENV),.venv)/bin/hadolint
# docker-lock: a throwaway venv for pip-tools, with the Python minor version of the image.
LOCK_PYTHON ?= python3.11
LOCK_VENV ?= /tmp/sipsa-tf-pip-tools
PIP_TOOLS_VERSION ?= 7.6.2

# docker-wheels: the wheels for the image's platform (Python 3.11, glibc <= 2.35: Ubuntu 22.04 and
# Debian 12 bases), whatever the host's Python; the host's pip settings are switched off as for
# docker-lock, so the files are those on the default index.
WHEELS_PY ?= $(if $(wildcard $(PY)),$(PY),$(PYTHON))
docker_wheel_tags = $(foreach v,$(shell seq 5 35),--platform manylinux_2_$(v)_x86_64) \
  --platform manylinux2014_x86_64 --platform manylinux2010_x86_64 --platform manylinux1_x86_64 \
  --python-version 3.11 --implementation cp --abi cp311 --abi abi3 --abi none
docker_build = $(DOCKER) build -f docker/Dockerfile

# The image has no .venv: its Makefile runs with the image's python3 and skips the `install` step.
docker_make = make PY=python3 NO_INSTALL=1
docker_run = $(DOCKER) run --rm $(if $(GPUS),--gpus $(GPUS)) $(if $(DOCKER_USER),--user $(DOCKER_USER))
docker_outputs = -v $(abspath $(LOG_DIR)):/logs -v $(abspath $(CHECKPOINT_DIR)):/checkpoints
docker_flags = $(if $(FLAGS),FLAGS='$(FLAGS)')
# Training data: DATA_DIR read-only at /data when given, else the synthetic scenes' parent folder.
docker_synthetic = $(patsubst %/,%,$(SYNTHETIC_DIR))
docker_synthetic_parent = $(abspath $(dir $(docker_synthetic)))
docker_train_data = $(if $(call given,DATA_DIR),-v $(abspath $(DATA_DIR)):/data:ro,-v $(docker_synthetic_parent):/synthetic)
docker_train_args = $(if $(call given,DATA_DIR),DATA_DIR=/data,SYNTHETIC_DIR=/synthetic/$(notdir $(docker_synthetic)))
docker_test_given = $(or $(call given,TEST_DIR),$(call given,DATA_DIR))
# Create output directories up front; left to Docker they would appear owned by root.
docker_mkdirs = mkdir -p $(abspath $(LOG_DIR)) $(abspath $(CHECKPOINT_DIR))
docker_need_dir = test -d $(abspath $(1)) || { echo "$(2)=$(1) is not a directory" >&2; exit 1; }
# CHECKPOINT as the container sees it: under CHECKPOINT_DIR -> under /checkpoints; a relative path
# outside it is kept (it resolves in the image's copy of the repository); an absolute one is an error.
docker_ckpt_dir = $(abspath $(CHECKPOINT_DIR))
docker_ckpt_abs = $(abspath $(CHECKPOINT))
docker_checkpoint = $(if $(CHECKPOINT),CHECKPOINT=$(if $(filter $(docker_ckpt_dir) $(docker_ckpt_dir)/%,$(docker_ckpt_abs)),/checkpoints$(patsubst $(docker_ckpt_dir)%,%,$(docker_ckpt_abs)),$(if $(filter /%,$(CHECKPOINT)),$(error CHECKPOINT=$(CHECKPOINT) is outside CHECKPOINT_DIR=$(CHECKPOINT_DIR), the only checkpoint directory the container sees),$(CHECKPOINT))))

.PHONY: docker-build docker-build-cpu docker-base-cpu docker-wheels docker-train docker-test-images \
  docker-shell docker-lint docker-lock

docker-build:
	mkdir -p $(WHEELHOUSE)
	$(docker_build) $(if $(BASE_IMAGE),--build-arg BASE_IMAGE=$(BASE_IMAGE)) -t $(IMAGE) .

docker-build-cpu: docker-wheels $(if $(BASE_IMAGE),,docker-base-cpu)
	$(docker_build) --build-arg VARIANT=cpu --build-arg BASE_IMAGE=$(or $(BASE_IMAGE),$(CPU_BASE_IMAGE)) \
	  -t $(CPU_IMAGE) .

docker-wheels:
	env -u PIP_FIND_LINKS -u PIP_EXTRA_INDEX_URL PIP_CONFIG_FILE=/dev/null \
	  $(WHEELS_PY) -m pip download --quiet --require-hashes --only-binary=:all: --no-deps \
	  $(docker_wheel_tags) -r docker/requirements.lock -d $(WHEELHOUSE)

# debootstrap needs root; the root file system is built in a temporary folder, removed afterwards.
docker-base-cpu:
	@if $(DOCKER) image inspect $(CPU_BASE_IMAGE) >/dev/null 2>&1; then \
	  echo "$(CPU_BASE_IMAGE) is present (docker rmi it to rebuild)"; \
	else \
	  rootfs=$$(mktemp -d) && trap 'rm -rf "$$rootfs"' EXIT && \
	  echo "debootstrap $(DEBIAN_SUITE) from $(DEBIAN_MIRROR) into $$rootfs" && \
	  debootstrap --variant=minbase --include=python3,python3-venv,make \
	    $(DEBIAN_SUITE) "$$rootfs" $(DEBIAN_MIRROR) >"$$rootfs.log" 2>&1 \
	    || { tail -n 20 "$$rootfs.log" >&2; rm -f "$$rootfs.log"; exit 1; }; rm -f "$$rootfs.log" && \
	  tar -C "$$rootfs" -c . | $(DOCKER) import \
	    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
	    --message "debootstrap --variant=minbase $(DEBIAN_SUITE) with python3, python3-venv, make" \
	    - $(CPU_BASE_IMAGE); \
	fi

docker-train:
	@$(if $(call given,DATA_DIR),$(call docker_need_dir,$(DATA_DIR),DATA_DIR))
	$(docker_mkdirs) $(if $(call given,DATA_DIR),,$(docker_synthetic_parent))
	$(docker_run) $(docker_train_data) $(docker_outputs) $(IMAGE) \
	  $(docker_make) train $(docker_train_args) LOG_DIR=/logs CHECKPOINT_DIR=/checkpoints \
	  $(if $(DOCKER_STRATEGY),STRATEGY=$(DOCKER_STRATEGY)) $(docker_flags)

docker-test-images:
	@$(if $(docker_test_given),$(call docker_need_dir,$(TEST_DIR),TEST_DIR))
	$(docker_mkdirs)
	$(docker_run) $(if $(docker_test_given),-v $(abspath $(TEST_DIR)):/test:ro) $(docker_outputs) $(IMAGE) \
	  $(docker_make) test-images $(if $(docker_test_given),TEST_DIR=/test) LOG_DIR=/logs \
	  CHECKPOINT_DIR=/checkpoints $(docker_checkpoint) $(docker_flags)

docker-shell:
	$(docker_mkdirs)
	$(docker_run) -it $(if $(wildcard $(abspath $(DATA_DIR))),-v $(abspath $(DATA_DIR)):/data:ro) \
	  $(docker_outputs) $(IMAGE) bash

docker-lint:
	$(HADOLINT) --failure-threshold style docker/Dockerfile

# Machine-wide pip settings (extra indexes, local wheel folders) are switched off so that the hashes
# are those of the files the image build downloads from the default index.
docker-lock:
	$(LOCK_PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip install --quiet 'pip-tools==$(PIP_TOOLS_VERSION)'
	env -u PIP_FIND_LINKS -u PIP_EXTRA_INDEX_URL PIP_CONFIG_FILE=/dev/null \
	  CUSTOM_COMPILE_COMMAND='make docker-lock' \
	  $(LOCK_VENV)/bin/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras \
	  --no-emit-index-url --no-emit-find-links --output-file=docker/requirements.lock \
	  setup.py docker/requirements.in
