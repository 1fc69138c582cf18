# Two commands do all set-up: `make run` and `make test`. Both create and use .venv.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PRESET ?= small

.PHONY: run test lint bench clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

# torch first, and only when absent, so pip never swaps in a different (e.g. CUDA) build.
$(VENV)/.torch: $(VENV)/bin/python
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install --quiet "torch==2.13.0"
	touch $@

$(VENV)/.installed: $(VENV)/.torch pyproject.toml
	$(PY) -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.torch pyproject.toml
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@ $(VENV)/.installed

run: $(VENV)/.installed
	$(VENV)/bin/llmlab speedrun --preset $(PRESET)

test: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check src tests bench
	$(PY) -m pytest -n 2 src tests

lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check src tests bench

# the peers only benches measure (sentencepiece, THULAC, pkuseg) come with the bench extra
$(VENV)/.installed-bench: $(VENV)/.torch pyproject.toml
	$(PY) -m pip install --quiet -e ".[dev,bench]"
	touch $@ $(VENV)/.installed-dev $(VENV)/.installed

bench: $(VENV)/.installed-bench
	for f in bench/*.py; do $(PY) $$f || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
