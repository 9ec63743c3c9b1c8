# sipsa-tf developer and user commands.
#   make install         create .venv with the package and the test tools
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
	$(PIP) install -e ".[test]"
	touch $@

test: $(INSTALL_DEP)
	$(PY) -m pytest -q tests

-include docker/docker.mk
