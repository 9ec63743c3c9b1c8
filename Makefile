# sipsa-tf developer and user commands.
#   make install         create .venv with the package, the test tools and Dask (the [dask] extra)
#   make test            run the test suite (CPU, a few minutes)
# Inside the Docker image there is no .venv: call with PY=python3 NO_INSTALL=1.
PYTHON ?= python3
VENV ?= .venv
PY ?= $(VENV)/bin/python
PIP := $(VENV)/bin/pip
NO_INSTALL ?=
INSTALL_DEP := $(if $(NO_INSTALL),,install)

.PHONY: install test

install: $(VENV)/.installed

$(VENV)/.installed: setup.py
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip
	$(PIP) install -e ".[test,dask]"
	touch $@

test: $(INSTALL_DEP)
	$(PY) -m pytest -q tests

# make train        [DATA_DIR=] [FLAGFILE=experiments/cpu_small.flags] [FLAGS="--max_steps 100"]
#                   [LOG_DIR=logs] [CHECKPOINT_DIR=] [STRATEGY=]: logs (and checkpoints) go to
#                   $(LOG_DIR)/<flag file name>; a rerun resumes. Without DATA_DIR on the command
#                   line, synthetic scenes are generated into $(SYNTHETIC_DIR) (once) and used.
# make test-images  [CHECKPOINT=$(BUNDLED_CHECKPOINT)] [TEST_DIR=] [OUT_DIR=$(LOG_DIR)/test_images]
#                   [FLAGS=]: without TEST_DIR on the command line, the synthetic test scenes.
# DATA_DIR, TEST_DIR and CHECKPOINT_DIR count only when given (command line or environment), since
# docker/docker.mk gives them defaults meant for the mounts of the docker-* targets.
FLAGFILE ?= experiments/cpu_small.flags
FLAGS ?=
# --strategy of the trainer when given (docker-train: mirrored over every GPU of the container)
STRATEGY ?=
LOG_DIR ?= $(CURDIR)/logs
SYNTHETIC_DIR ?= data/synthetic
BUNDLED_CHECKPOINT ?= checkpoints/wald_stage1j
OUT_DIR ?= $(LOG_DIR)/test_images
RUN_NAME ?= $(basename $(notdir $(FLAGFILE)))
given = $(filter command environment override,$(firstword $(origin $(1))))

.PHONY: train test-images

train: $(INSTALL_DEP)
	$(PY) -m sipsa_tf.train --flagfile=$(FLAGFILE) \
	  $(if $(call given,DATA_DIR),--data_dir=$(DATA_DIR),--data_dir=$(SYNTHETIC_DIR) --generate_synthetic) \
	  --log_dir=$(LOG_DIR)/$(RUN_NAME) \
	  $(if $(call given,CHECKPOINT_DIR),--checkpoint_dir=$(CHECKPOINT_DIR)/$(RUN_NAME)) \
	  $(if $(STRATEGY),--strategy=$(STRATEGY)) $(FLAGS)

test-images: $(INSTALL_DEP)
	$(PY) -m sipsa_tf.images --checkpoint=$(or $(CHECKPOINT),$(BUNDLED_CHECKPOINT)) \
	  $(if $(call given,TEST_DIR),--test_dir=$(TEST_DIR)) --out_dir=$(OUT_DIR) $(FLAGS)

# make evaluate     [GRIP_DIR=../shared/data/grip] [CHECKPOINT=$(BUNDLED_CHECKPOINT)] [ADAPT_STEPS=0]
#                   [EVAL_DIR=$(LOG_DIR)/evaluation] [FLAGS=]: methods x images x protocols
#                   (results.csv, results.md, PNG panels) on the held-out regions of $(SPLIT)
#                   (SPLIT= evaluates whole images); the synthetic test scenes when GRIP_DIR
#                   does not exist; SIPSA-Net from the bundled checkpoint if present, else random.
GRIP_DIR ?= ../shared/data/grip
SPLIT ?= experiments/grip_split.json
EVAL_DIR ?= $(LOG_DIR)/evaluation
ADAPT_STEPS ?= 0
eval_checkpoint = $(or $(CHECKPOINT),$(wildcard $(BUNDLED_CHECKPOINT)))
.PHONY: evaluate

evaluate: $(INSTALL_DEP)
	$(PY) -m sipsa_tf.evaluate --data_dir=$(GRIP_DIR) --auto_data \
	  $(if $(and $(SPLIT),$(wildcard $(GRIP_DIR)/*.mat)),--split=$(SPLIT)) \
	  $(if $(eval_checkpoint),--checkpoint=$(eval_checkpoint)) --adapt_steps=$(ADAPT_STEPS) \
	  --out_dir=$(EVAL_DIR) $(FLAGS)

# make pansharpen    PAN=pan.tif MS=ms.tif OUT=out.tif [CHECKPOINT=$(BUNDLED_CHECKPOINT)]
#                   [FLAGS="--bands=5,3,2 --preview=out.png"]: pan-sharpens a (Geo)TIFF scene tile by
#                   tile (python -m sipsa_tf.pansharpen --help lists the flags).
.PHONY: pansharpen

# the variables of $(1) that are empty, as "PAN= MS=" (for the message of a target that needs them)
PANSHARPEN_USAGE = required, e.g. make pansharpen PAN=pan.tif MS=ms.tif OUT=out.tif [FLAGS=--preview=out.png]
missing = $(strip $(foreach v,$(1),$(if $($(v)),,$(v)=)))

pansharpen: $(INSTALL_DEP)
	@$(if $(call missing,PAN MS OUT),echo "make pansharpen: $(call missing,PAN MS OUT) $(PANSHARPEN_USAGE)" >&2; exit 2)
	$(PY) -m sipsa_tf.pansharpen --checkpoint=$(or $(CHECKPOINT),$(BUNDLED_CHECKPOINT)) \
	  --pan=$(PAN) --ms=$(MS) --out=$(OUT) $(FLAGS)

-include docker/docker.mk

# make test-cpu-matrix  the numerics-sensitive tests (fixture fidelity, tiled == whole, precision,
#                   Dask == single process) under each oneDNN ISA cap this CPU can emulate and with
#                   oneDNN off, each with XLA on and off (the FAM's jit_scope; clustering fuel 0
#                   compiles nothing). Noise floors measured this way: docs/design.md, "Numerical
#                   noise". Not in .ci/run: 8 runs of ~2 min exceed its time budget.
NUMERICS_TESTS ?= tests/test_fixture.py tests/test_precision.py tests/test_scene_cluster.py \
  "tests/test_scene.py::test_tiled_equals_whole_image" \
  "tests/test_scene.py::test_a_halo_below_the_receptive_field_shows"
CPU_MATRIX ?= ONEDNN_MAX_CPU_ISA=AVX2 ONEDNN_MAX_CPU_ISA=AVX512_CORE \
  ONEDNN_MAX_CPU_ISA=AVX512_CORE_AMX TF_ENABLE_ONEDNN_OPTS=0
XLA_MATRIX ?= on off
.PHONY: test-cpu-matrix

test-cpu-matrix: $(INSTALL_DEP)
	@set -e; for cpu in $(CPU_MATRIX); do for xla in $(XLA_MATRIX); do \
	  echo "== $$cpu, XLA $$xla"; \
	  env $$cpu \
	    TF_XLA_FLAGS="$$( [ $$xla = off ] && echo --tf_xla_clustering_fuel=0 )" \
	    $(PY) -m pytest -q -p no:cacheprovider $(NUMERICS_TESTS); \
	done; done

# make readme-picture  the README's picture (docs/heldout_panel.png): SIPSA-Net (bundled
#                   checkpoint) and GSA on the held-out bottom quarter of imgWV2 (GRIP data, full
#                   resolution, a 96 x 96 PAN-pixel crop); the evaluation's files stay in
#                   $(LOG_DIR)/readme_picture.
.PHONY: readme-picture

readme-picture: $(INSTALL_DEP)
	$(PY) -m sipsa_tf.evaluate --data_dir=$(GRIP_DIR) --split=$(SPLIT) --methods=sipsa,gsa \
	  --protocols=full --panel_images='imgWV2[240:320]' --panel_crop=96 --progress=off \
	  --checkpoint=$(or $(CHECKPOINT),$(BUNDLED_CHECKPOINT)) --out_dir=$(LOG_DIR)/readme_picture
	cp $(LOG_DIR)/readme_picture/panel_imgWV2_240-320_full.png docs/heldout_panel.png
