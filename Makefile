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

.PHONY: run test test-fast lint format schemas lock bench bench-ab bench-triton bench-shared bench-peers bench-autoscale compare train clean

# Installs, each remembered by a stamp and redone when pyproject.toml changes: what running needs
# (the service and the embedded Redis), then on top of it the test or the lint tools (dependency groups).
# uv installs them: from empty caches it takes a fraction of pip's time (docs/benchmarks.md). The venv
# is made without pip (installing pip into it took 12-24 s here) and uv comes from the interpreter's
# own pip, or from pip in the venv where the interpreter has none.
UV := $(VENV)/bin/uv
UV_INSTALL := $(UV) pip install --quiet --python $(PY)

$(UV):
	python3 -m venv --without-pip $(VENV)
	python3 -m pip --python $(PY) install --quiet uv 2>/dev/null || { python3 -m venv $(VENV) && $(PY) -m pip install --quiet uv; }

$(VENV)/.installed-run: pyproject.toml | $(UV)
	$(UV_INSTALL) -e '.[local]'
	touch $@

# The tests start hundreds of processes, perhaps where bytecode may not be written (CI, or
# PYTHONDONTWRITEBYTECODE): every installed module is compiled once here, as pip would have. A module
# that does not compile is left to fail where it is imported, as pip leaves it.
$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed-run
	$(UV_INSTALL) --group test
	-$(PY) -m compileall -qq -j 0 "$$($(PY) -c 'import sysconfig; print(sysconfig.get_path("purelib"))')"
	touch $@

$(VENV)/.installed-lint: pyproject.toml $(VENV)/.installed-run
	$(UV_INSTALL) --group lint
	touch $@

run: $(VENV)/.installed-run  ## start Redis (embedded unless REDIS_URL is set), workers and web; print the URL
	$(PY) -m stack

# Every test, in TEST_WORKERS processes (pytest-xdist): most of a service test's time is spent
# waiting on processes it started, so two at once took 14 min on 2 cores where one after the other
# took 28. Each test module runs whole in one of them (its stack is started once; nothing is shared
# across modules: every Redis, port and network namespace is a test's own).
TEST_WORKERS ?= 2

test: $(VENV)/.installed-test  ## run every test: tests/fast and tests/service (real Redis, workers, gunicorn, Chromium)
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile

# The fast tier leaves out its few tests marked slow (the shipped model's accuracy over hundreds of
# renderings and numbers, minutes of CPU); `make test` runs them.
test-fast: $(VENV)/.installed-test  ## the in-process tier (tests/fast: Flask's test client, real Redis), under 3 min
	$(PY) -m pytest tests/fast -m "not slow"

lint: $(VENV)/.installed-lint  ## ruff, and the layering contracts of pyproject.toml (import-linter)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

format: $(VENV)/.installed-lint
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

schemas: $(VENV)/.installed-test  ## regenerate web/inference_types.py from the protocol's spec (web/inference_spec/)
	$(PY) web/inference_spec/generate.py

# The Docker image installs exactly these, with their hashes: Linux x86_64, Python 3.11, the ops extra.
lock: | $(UV)  ## compile requirements.lock again from pyproject.toml (after changing a dependency)
	$(UV) pip compile pyproject.toml --extra ops --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
		--generate-hashes --no-header --quiet -o requirements.lock

bench: $(VENV)/.installed-test  ## throughput and latency of the whole service against the in-process limit (~3 min)
	$(PY) -m bench

bench-ab: $(VENV)/.installed-test  ## make bench for this checkout and commit BEFORE, taking turns, as ratios (~11 min a round)
	@test -n "$(BEFORE)" || { echo "usage: make bench-ab BEFORE=<commit> [ROUNDS=3]"; exit 2; }
	$(PY) -m bench.ab $(BEFORE) --rounds $(or $(ROUNDS),3)

bench-triton: $(VENV)/.installed-test  ## Triton's perf_analyzer against a private stack (~1 min; fetches the tool once)
	$(PY) -m bench.perf_analyzer

bench-peers: $(VENV)/.installed-test  ## this service and Seldon MLServer, one after the other, same load (~8 min; installs MLServer once)
	$(PY) -m bench.peers

bench-shared: $(VENV)/.installed-test  ## a polite client's latency while another client misbehaves (~1 min)
	$(PY) -m bench.shared

bench-autoscale: $(VENV)/.installed-test  ## KEDA's rule from deploy/kubernetes scaling real predict workers on a rising and falling load (~2 min)
	$(PY) -m bench.autoscale

compare: $(VENV)/.installed-run  ## accuracy, training time and prediction cost of every recipe (3 seeds) and architecture (~1 hour on 2 cores)
	$(PY) -m model.evaluation compare

train: $(VENV)/.installed-run  ## retrain the shipped default model, its LiteRT export and the number scoring fitted to it
	$(PY) -m model.training train --recipe strong --out model/shipped/default.keras
	$(PY) -m model.runtimes.litert model/shipped/default.keras model/shipped/default.tflite
	$(PY) -m model.numbers fit

clean:
	rm -rf $(VENV) var .pytest_cache
