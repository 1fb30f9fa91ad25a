# swarmrl developer entry points. `make test` and `make demo` set everything up themselves.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-test
# torch is pinned here (not in pyproject) so this machine's CPU build is used; users stay free.
PIP_INSTALL := $(PY) -m pip install -q --disable-pip-version-check -c constraints.txt

.PHONY: test demo lint clean proto

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) -e '.[test]'
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check swarmrl tests benchmarks

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info

# The main job on the embedded default: a simulated swarm of tiny models, progress bar + report.
demo: $(STAMP)
	$(VENV)/bin/swarmrl sim --out runs/demo

# Regenerate the control API's Python code after editing swarmrl/node/proto/control.proto.
# Run from the repository root (-I .) so the generated imports are package-absolute.
proto: $(STAMP)
	$(PIP_INSTALL) -e '.[dev]'
	$(PY) -m grpc_tools.protoc -I . --python_out=. --pyi_out=. --grpc_python_out=. \
		swarmrl/node/proto/control.proto
