# Two commands on a fresh machine:  `make demo`  and  `make test`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
PYTHON ?= python3
DEMO_OUT ?= demo

.PHONY: demo test lab bench readme sync clean-venv test-slow docs

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

# the runtime install (what a user gets) and the dev install (nbdev pins, jupyterlab, pytest, nionswift-io)
$(VENV)/.installed: setup.py settings.ini | $(PY)
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.installed-dev: setup.py settings.ini | $(PY)
	$(PY) -m pip install -q -e ".[dev]"
	touch $@ $(VENV)/.installed

# run the package's main job on the built-in example movie; results and figures in $(DEMO_OUT)/
demo: $(VENV)/.installed
	$(BIN)/stemdefect demo --out $(DEMO_OUT)

# every check: clean + in-sync notebooks, README in step, notebook tests, pytest
test: $(VENV)/.installed-dev
	$(PY) tools/check_sync.py
	$(PY) tools/make_readme.py --check
	$(BIN)/nbdev_test --n_workers 2 --timing
	$(PY) -m pytest -q --durations=15 tests

# the heavy `#| slow` cells as well
test-slow: $(VENV)/.installed-dev
	STEMDEFECT_SLOW=1 $(BIN)/nbdev_test --n_workers 1 --flags slow --timing

# the course as static HTML pages with their figures: every lesson executed at full scale -> _docs/index.html
docs: $(VENV)/.installed-dev
	$(PY) tools/make_docs.py --jobs 2

lab: $(VENV)/.installed-dev
	$(BIN)/jupyter lab nbs/

bench: $(VENV)/.installed
	$(PY) bench/bench_all.py

# after editing notebooks: export the library, clean the notebooks, regenerate README.md
sync: $(VENV)/.installed-dev
	$(BIN)/nbdev_export
	$(BIN)/nbdev_clean
	$(PY) tools/make_readme.py

clean-venv:
	rm -rf $(VENV)
