# swarmrl developer entry points. `make test` and `make demo` set everything up themselves.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-test
# torch is pinned here (not in pyproject) so this machine's CPU build is used; users stay free.
PIP_INSTALL := $(PY) -m pip install -q --disable-pip-version-check -c constraints.txt

.PHONY: test demo lint clean

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
