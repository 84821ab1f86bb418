# fcn-gui: the two commands a newcomer runs are `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: run test lint dist dist-check bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip setuptools wheel

$(VENV)/.installed: $(PY) pyproject.toml
	$(PY) -m pip install -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(PY) -m pip install -e ".[test]"
	touch $@

$(VENV)/.installed-dist: $(VENV)/.installed
	$(PY) -m pip install -e ".[dist]"
	touch $@

## run: create .venv if needed, install, open the app on the bundled sample photos
## (first installs the system libraries Qt's window needs when it can: root with apt-get)
run: $(VENV)/.installed
	$(PY) -m fcn_gui.desktop_check --install
	$(VENV)/bin/fcn-gui resources/samples

## test: create .venv if needed, install with test extras, lint and run every test offscreen
## (two worker processes, a test file each: a file's shared models are built once)
test: $(VENV)/.installed-test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -n 2 --dist loadfile

lint: $(VENV)/.installed-test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

## dist: standalone one-folder build in dist/fcn-gui (several minutes)
dist: $(VENV)/.installed-dist
	$(VENV)/bin/pyinstaller --noconfirm fcn_gui.spec

## dist-check: build, then smoke-test the frozen executable
dist-check: dist
	$(PY) bench/dist_check.py dist/fcn-gui

bench: $(VENV)/.installed
	$(PY) bench/inference.py

clean:
	rm -rf build dist out .pytest_cache
