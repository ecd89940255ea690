# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt
STAMP  := $(VENV)/.installed
EXTRAS ?= dev,train,export,onnx,remote,prune

.PHONY: install demo test test-slow fuzz lint-imports clean

$(STAMP): pyproject.toml constraints.txt Makefile
	$(PYTHON) -m venv $(VENV)
	$(PIP) -e ".[$(EXTRAS)]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) -m edgekit.demo

test: $(STAMP)
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

test-slow: $(STAMP)
	$(PY) -m pytest -m "slow" $(PYTEST_ARGS)

# Property tests (tests/fuzz: label parsers, letterbox, NMS, manifest and model YAML readers) with fresh
# random inputs, round after round, for FUZZ_SECONDS (10 minutes); `make test` runs them with 40 examples each.
FUZZ_SECONDS ?= 600
fuzz: $(STAMP)
	nice -n 10 $(PY) tests/fuzz/run_fuzz.py $(FUZZ_SECONDS)

# The layers contract in pyproject.toml ([tool.importlinter]), checked on a real install tree:
# grimp walks a package's folder, and the editable install maps export/, runtime/, boards/ from
# elsewhere. Run from build/ so the checkout's own edgekit/ folder is not on the path.
IMPORT_TREE := build/import-tree
lint-imports: $(STAMP)
	rm -rf $(IMPORT_TREE)
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation --target $(IMPORT_TREE) .
	cd build && PYTHONPATH=$(CURDIR)/$(IMPORT_TREE) $(CURDIR)/$(VENV)/bin/lint-imports --no-cache $(CURDIR)/pyproject.toml

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
