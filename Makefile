# The table of contents of what a developer can do here.
VENV ?= .venv
PY := $(VENV)/bin/python
# The shared MNIST copy beside the checkout, when there is one (tests and training read MNIST_DIR).
SHARED_MNIST := $(abspath ../shared/data/mnist)
ifeq ($(origin MNIST_DIR), undefined)
ifneq ($(wildcard $(SHARED_MNIST)),)
export MNIST_DIR := $(SHARED_MNIST)
endif
endif

.PHONY: run test lint format schemas bench bench-triton bench-shared compare train clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[local,test]'
	touch $@

run: $(VENV)/.installed  ## start Redis (embedded unless REDIS_URL is set), workers and web; print the URL
	$(PY) -m stack

test: $(VENV)/.installed  ## run the test suite against real Redis, workers and model
	$(PY) -m pytest

lint: $(VENV)/.installed  ## ruff check and format check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(VENV)/.installed
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

schemas: $(VENV)/.installed  ## regenerate web/inference_types.py from the protocol's spec (web/inference_spec/)
	$(PY) web/inference_spec/generate.py

bench: $(VENV)/.installed  ## throughput and latency of the whole service against the in-process limit (~3 min)
	$(PY) -m bench

bench-triton: $(VENV)/.installed  ## Triton's perf_analyzer against a private stack (~1 min; fetches the tool once)
	$(PY) -m bench.perf_analyzer

bench-shared: $(VENV)/.installed  ## a polite client's latency while another client misbehaves (~1 min)
	$(PY) -m bench.shared

compare: $(VENV)/.installed  ## accuracy, training time and prediction cost of every recipe (3 seeds) and architecture (~20 min)
	$(PY) -m model.evaluation compare

train: $(VENV)/.installed  ## retrain the shipped default model, its LiteRT export and the number scoring fitted to it
	$(PY) -m model.training train --recipe strong --out model/shipped/default.keras
	$(PY) -m model.runtimes.litert model/shipped/default.keras model/shipped/default.tflite
	$(PY) -m model.numbers fit

clean:
	rm -rf $(VENV) var .pytest_cache
