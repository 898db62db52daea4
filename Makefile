# Two entry points, both self-contained on a fresh clone (Python 3.10+, PyPI reachable; make test: npm too):
#   make test   create .venv, install everything, fetch the tests' Llama vocabulary (npm), lint, run the whole test suite
#   make demo   the main job: tune on val, then baseline / ScalingVis / AdaptVis on test, on the embedded trained model
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
RESULTS := results/main_job

.PHONY: test lint demo clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first and pinned: this release is the one available as a local wheel on our CI machines.
	$(BIN)/python -m pip install -q -c constraints.txt torch torchvision
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[test]"
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The tests' Llama-2 vocabulary (tests/llama_vocabulary.py), from the npm registry; never committed.
LLAMA_VOCAB := $(VENV)/npm/llama-tokenizer-js-1.2.2.tgz
$(LLAMA_VOCAB):
	mkdir -p $(VENV)/npm && cd $(VENV)/npm && npm pack --silent llama-tokenizer-js@1.2.2

# Two pytest workers, whole files per worker (module fixtures are built once), one torch thread per
# process: most of the suite's time is real lmms-eval subprocesses whose ~30 s start-up is
# single-threaded, so two at a time beat one run with two threads (23 -> 18 min on 2 vCPUs;
# docs/BENCHMARKS.md). `make test TEST_WORKERS=0` runs in one process.
TEST_WORKERS ?= 2
test: lint $(LLAMA_VOCAB)
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile

demo: $(STAMP)
	$(BIN)/python scripts/main_job.py --output $(RESULTS)

clean:
	rm -rf $(VENV) $(RESULTS)
