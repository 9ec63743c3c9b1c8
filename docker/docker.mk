# docker/docker.mk: the pinned GPU image (docker/Dockerfile) and the commands that run inside it.
# Included by the top-level Makefile; docker/README.md has the details.
#
#   make docker-build         build $(IMAGE)                  [BASE_IMAGE=nvidia/cuda:<tag>@sha256:<digest>]
#   make docker-train         `make train` in the image       [DATA_DIR= LOG_DIR= CHECKPOINT_DIR= FLAGS=]
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
# Value of `docker run --gpus`; empty runs without GPUs (CPU only, for checking a setup).
GPUS ?= all
# Host directories, mounted at /data (read-only), /logs and /checkpoints.
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

# The image has no .venv: its Makefile runs with the image's python3 and skips the `install` step.
docker_make = make PY=python3 NO_INSTALL=1
docker_run = $(DOCKER) run --rm $(if $(GPUS),--gpus $(GPUS)) $(if $(DOCKER_USER),--user $(DOCKER_USER))
docker_data = -v $(abspath $(DATA_DIR)):/data:ro
docker_outputs = -v $(abspath $(LOG_DIR)):/logs -v $(abspath $(CHECKPOINT_DIR)):/checkpoints
docker_flags = $(if $(FLAGS),FLAGS='$(FLAGS)')
# Create output directories up front; left to Docker they would appear owned by root.
docker_mkdirs = mkdir -p $(abspath $(LOG_DIR)) $(abspath $(CHECKPOINT_DIR))
docker_need_dir = test -d $(abspath $(1)) || { echo "$(2)=$(1) is not a directory" >&2; exit 1; }
# CHECKPOINT as the container sees it: under CHECKPOINT_DIR -> under /checkpoints; a relative path
# outside it is kept (it resolves in the image's copy of the repository); an absolute one is an error.
docker_ckpt_dir = $(abspath $(CHECKPOINT_DIR))
docker_ckpt_abs = $(abspath $(CHECKPOINT))
docker_checkpoint = $(if $(CHECKPOINT),CHECKPOINT=$(if $(filter $(docker_ckpt_dir) $(docker_ckpt_dir)/%,$(docker_ckpt_abs)),/checkpoints$(patsubst $(docker_ckpt_dir)%,%,$(docker_ckpt_abs)),$(if $(filter /%,$(CHECKPOINT)),$(error CHECKPOINT=$(CHECKPOINT) is outside CHECKPOINT_DIR=$(CHECKPOINT_DIR), the only checkpoint directory the container sees),$(CHECKPOINT))))

.PHONY: docker-build docker-train docker-test-images docker-shell docker-lint docker-lock

docker-build:
	DOCKER_BUILDKIT=1 $(DOCKER) build -f docker/Dockerfile \
	  $(if $(BASE_IMAGE),--build-arg BASE_IMAGE=$(BASE_IMAGE)) -t $(IMAGE) .

docker-train:
	@$(call docker_need_dir,$(DATA_DIR),DATA_DIR)
	$(docker_mkdirs)
	$(docker_run) $(docker_data) $(docker_outputs) $(IMAGE) \
	  $(docker_make) train DATA_DIR=/data LOG_DIR=/logs CHECKPOINT_DIR=/checkpoints $(docker_flags)

docker-test-images:
	@$(call docker_need_dir,$(TEST_DIR),TEST_DIR)
	$(docker_mkdirs)
	$(docker_run) -v $(abspath $(TEST_DIR)):/test:ro $(docker_outputs) $(IMAGE) \
	  $(docker_make) test-images TEST_DIR=/test LOG_DIR=/logs CHECKPOINT_DIR=/checkpoints \
	  $(docker_checkpoint) $(docker_flags)

docker-shell:
	$(docker_mkdirs)
	$(docker_run) -it $(if $(wildcard $(abspath $(DATA_DIR))),$(docker_data)) $(docker_outputs) $(IMAGE) bash

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
