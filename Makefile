# latbench: `make demo` runs the main job, `make test` runs lint, type check and tests.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
EXTRAS := dev,litert,ssh,android,gpu

.PHONY: install sysdeps demo test test-slow lint typecheck bench clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[$(EXTRAS)]'
	touch $(STAMP)

install: $(STAMP)

# System packages the tests drive for real: sshd (SSH transport), adb (Android transport),
# chromium (report rendering). Installed only when missing; needs root or sudo.
SYSDEPS_BINS := /usr/sbin/sshd /usr/bin/adb /usr/bin/chromium
sysdeps:
	@missing=0; for b in $(SYSDEPS_BINS); do test -x $$b || missing=1; done; \
	if [ $$missing = 1 ]; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends \
	    openssh-server adb chromium >/dev/null; \
	fi

demo: install
	$(BIN)/latbench demo

lint: install
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/ruff check src tests benchmarks

typecheck: install
	$(BIN)/mypy

test: install sysdeps lint typecheck
	$(BIN)/pytest

test-slow: install sysdeps
	$(BIN)/pytest -m slow

bench: install
	@for f in benchmarks/bench_*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

clean:
	rm -rf $(VENV) build dist src/*.egg-info .mypy_cache .ruff_cache
