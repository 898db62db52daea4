# Entry points, each self-contained on a fresh clone (Python 3.11, PyPI reachable; tests: npm too):
#   make ci         what CI runs: `make test`, then `make canary`
#   make test       create .venv from requirements.lock, fetch the tests' Llama vocabulary (npm), lint, run every test
#   make test-fast  the fast layer alone (no lmms-eval subprocesses, no training)
#   make test-e2e   the end-to-end layer alone (real lmms-eval runs, training)
#   make canary     install WITHOUT the lock (the newest releases pyproject.toml allows) into .venv-canary,
#                   print what differs from the lock, run the fast layer and one real lmms-eval evaluation
#   make demo       the main job: tune on val, then baseline / ScalingVis / AdaptVis on test, on the embedded model
#   make lock       re-resolve requirements.lock from pyproject.toml under constraints.txt (uv, in its own venv)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
RESULTS := results/main_job
# pip itself is not in the lock (pip freeze leaves it out): pinned here.
PIP_VERSION := 26.3
UV_VERSION := 0.13.10
LOCK_FLAGS := --extra test --python-version 3.11 --python-platform x86_64-manylinux_2_28 -c constraints.txt

.PHONY: ci test test-fast test-e2e lint demo canary lock clean

# The venv is exactly the lock: rebuilt from scratch whenever the lock or pyproject.toml changes, the
# package itself installed without dependencies, and the result checked against the lock.
$(STAMP): pyproject.toml requirements.lock
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q pip==$(PIP_VERSION)
	$(BIN)/python -m pip install -q -r requirements.lock
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	$(BIN)/python scripts/lock_drift.py --lock requirements.lock --strict
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The tests' Llama-2 vocabulary (tests/support/llama_vocabulary.py), from the npm registry; never committed.
LLAMA_VOCAB := $(VENV)/npm/llama-tokenizer-js-1.2.2.tgz
$(LLAMA_VOCAB): $(STAMP)
	mkdir -p $(VENV)/npm && cd $(VENV)/npm && npm pack --silent llama-tokenizer-js@1.2.2

# Two pytest workers, whole files per worker (module fixtures are built once), one torch thread per
# process: most of the suite's time is real lmms-eval subprocesses whose ~30 s start-up is
# single-threaded, so two at a time beat one run with two threads (docs/reports/BENCHMARKS.md).
# `make test TEST_WORKERS=0` runs in one process.
TEST_WORKERS ?= 2
PYTEST := OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile
test: lint $(LLAMA_VOCAB)
	$(PYTEST)

test-fast: $(STAMP) $(LLAMA_VOCAB)
	$(PYTEST) -m "not e2e"

test-e2e: $(STAMP) $(LLAMA_VOCAB)
	$(PYTEST) -m e2e

ci: test canary

# The canary: what a user who runs `pip install adaptvis-eval` today gets. torch/torchvision are the CI
# machines' releases (as in the lock); everything else is the newest release pyproject.toml allows.
# CANARY_FORCE="pkg==version ..." installs those on top, to show the canary catching a broken release.
CANARY_VENV := .venv-canary
CANARY_FORCE ?=
TORCH_PINS := $(shell grep -E '^(torch|torchvision)==' constraints.txt)
canary: $(LLAMA_VOCAB)
	rm -rf $(CANARY_VENV)
	$(PYTHON) -m venv $(CANARY_VENV)
	$(CANARY_VENV)/bin/python -m pip install -q pip==$(PIP_VERSION)
	$(CANARY_VENV)/bin/python -m pip install -q $(TORCH_PINS)
	$(CANARY_VENV)/bin/python -m pip install -q -e ".[test]"
	$(if $(CANARY_FORCE),$(CANARY_VENV)/bin/python -m pip install -q $(CANARY_FORCE))
	$(CANARY_VENV)/bin/python scripts/canary.py --lock requirements.lock --vocabulary $(LLAMA_VOCAB) --workers $(TEST_WORKERS) --reference-bin $(BIN)

lock:
	$(PYTHON) -m venv $(VENV)-uv
	$(VENV)-uv/bin/python -m pip install -q uv==$(UV_VERSION)
	$(VENV)-uv/bin/uv pip compile pyproject.toml $(LOCK_FLAGS) --custom-compile-command "make lock" -o requirements.lock

demo: $(STAMP)
	$(BIN)/python scripts/main_job.py --output $(RESULTS)

clean:
	rm -rf $(VENV) $(VENV)-uv $(CANARY_VENV) $(RESULTS)
