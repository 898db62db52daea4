# Two entry points, both self-contained on a fresh clone (Python 3.10+, PyPI reachable; make test: npm too):
#   make test   create .venv, install everything, fetch the tests' Llama vocabulary (npm), lint, run the whole test suite
#   make demo   run the main job (WhatsUp Controlled_A, AdaptVis) on the embedded default
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO := .demo

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

test: lint $(LLAMA_VOCAB)
	$(BIN)/python -m pytest -q

demo: $(STAMP)
	$(BIN)/python scripts/build_demo.py $(DEMO)
	ADAPTVIS_DATA_DIR=$(DEMO)/data ADAPTVIS_IMAGE_ROOT=$(DEMO)/images HF_HUB_OFFLINE=1 \
	$(BIN)/lmms-eval --model llava_adaptvis \
	  --model_args pretrained=$(DEMO)/llava-1.5-tiny,device=cpu,method=adapt_vis,alpha1=0.5,alpha2=1.5,threshold=0.3,trace=$(DEMO)/trace.jsonl \
	  --tasks whatsup_controlled_a --batch_size 4 --output_path $(DEMO)/results --log_samples
	$(BIN)/python scripts/show_results.py $(DEMO)/results --task whatsup_controlled_a

clean:
	rm -rf $(VENV) $(DEMO)
