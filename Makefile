# Two commands for a fresh machine:  `make demo` (main job) and `make test` (test suite).
# Both create or reuse the virtual environment in .venv by themselves.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: setup demo test test-fast lint benchmark clean

setup: $(STAMP)

# torch and torchvision first, pinned together (other torch builds pull several GB here).
$(STAMP): pyproject.toml Makefile
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install --quiet -e '.[dev,export,mediapipe]'
	touch $(STAMP)

demo: setup
	$(VENV)/bin/vicokd demo

test: setup
	$(PY) -m pytest -q

test-fast: setup
	$(PY) -m pytest -q -m "not slow"

lint: setup
	$(VENV)/bin/ruff check src tests benchmarks

benchmark: setup
	$(VENV)/bin/vicokd benchmark

clean:
	rm -rf $(VENV) .pytest_cache
