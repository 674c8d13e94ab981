# Two commands do all the set-up on a fresh machine:  make demo  |  make test
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# pip (and venv's ensurepip) runs `rustc --version` for its user agent; where rustc is a rustup proxy that
# writes ~/.rustup: pointed into the venv, set-up leaves nothing in HOME.
NOHOME := RUSTUP_HOME=$(abspath $(VENV))/.rustup
PIP    := $(NOHOME) $(BIN)/python -m pip
# CPU machines: torch pinned to the 2.13.0 CPU wheel (an unpinned torch pulls a multi-GB CUDA build).
# GPU users: install your CUDA torch into .venv first and run with CONSTRAINTS= (see README).
CONSTRAINTS ?= -c constraints.txt
# The library versions whose messages and behaviour the tests match (see the file).
TEST_CONSTRAINTS ?= -c constraints-test.txt

.PHONY: demo lint test test-fast bench screenshots clean

$(BIN)/python:
	$(NOHOME) $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml constraints.txt constraints-test.txt
	$(PIP) install -q $(CONSTRAINTS) $(TEST_CONSTRAINTS) -e ".[test,hf,lightning,bench]"
	touch $@

# demo: the package and its runtime dependencies only (no test extras, no test pins); make test adds them
$(VENV)/.installed-demo: $(BIN)/python pyproject.toml constraints.txt
	$(PIP) install -q $(CONSTRAINTS) -e .
	touch $@

demo: $(VENV)/.installed-demo
	@if [ -d runs/digits-lr ]; then echo "runs/digits-lr exists: showing its report (rm -r runs/digits-lr to run again)"; \
	  $(BIN)/sweep report runs/digits-lr; \
	else $(BIN)/sweep run examples/digits.yaml; fi

# ruff and mypy first (seconds), so a style or type error fails before the long suite starts
LINTED := orchestrator cluster schedules bench

lint: $(VENV)/.installed
	$(BIN)/ruff check $(LINTED) tests
	$(BIN)/ruff format --check $(LINTED) tests
	$(BIN)/mypy $(LINTED)

test: lint
	$(BIN)/python -m pytest -q -ra --durations=15

test-fast: $(VENV)/.installed
	$(BIN)/python -m pytest -q -m "not slow"

bench: $(VENV)/.installed
	$(BIN)/python -m bench.regret

# docs/tensorboard.png and docs/tensorboard_hparams.png, from a small sweep in a real TensorBoard and a
# headless Chromium (Debian: apt-get install chromium); fails when no browser is found
screenshots: $(VENV)/.installed
	SWEEP_SCREENSHOTS=$(abspath docs) $(BIN)/python -m pytest -q -p no:cacheprovider \
	  tests/test_monitor.py::test_real_sweep_in_tensorboard

clean:
	rm -rf $(VENV) runs *.egg-info
