# Every target sets up .venv itself: `make run` and `make test` are all a newcomer needs.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
export QT_API := pyside6

.PHONY: run test bench package lint clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch is pinned here, not in pyproject: the CPU wheel of 2.13.0 is found locally when present.
	$(PY) -m pip install -q "torch==2.13.0"
	$(PY) -m pip install -q -e ".[test]"
	touch $(STAMP)

# Bytecode written up front: where PYTHONDONTWRITEBYTECODE is set, every launch would compile app/ and core/ again (~0.2 s).
COMPILE := $(PY) -m compileall -q app core tests > /dev/null

run: $(STAMP)
	@$(COMPILE)
	@$(PY) -m app.linux_check   # one line naming the system packages to install, where Qt's are missing
	$(VENV)/bin/edge-of-chaos

test: $(STAMP)
	# Two workers, one per core; a file's tests stay together (module fixtures such as the lecture-hall probe run once).
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q -p no:cacheprovider -n 2 --dist loadfile
	$(VENV)/bin/ruff check core app tests packaging
	$(VENV)/bin/lint-imports

bench: $(STAMP)
	@$(COMPILE)
	QT_QPA_PLATFORM=offscreen $(PY) -m tests.benchmarks

package: $(STAMP)
	$(PY) -m pip install -q -e ".[package]"
	$(PY) packaging/build.py

lint: $(STAMP)
	$(VENV)/bin/ruff check core app tests packaging
	$(VENV)/bin/lint-imports

clean:
	rm -rf $(VENV) build dist *.egg-info
