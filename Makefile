# Two commands do everything on a fresh Debian machine: `make demo` and `make test`.
# Both install what is missing first: system packages (once, non-interactively), the
# virtualenv, and the package with its dev extras.

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
SYSTEM_PACKAGES := zookeeper default-jre-headless libkrb5-dev gcc krb5-kdc krb5-admin-server krb5-user rsync chromium
PYTEST_ARGS ?=

.PHONY: setup system venv test test-unit test-integration test-e2e demo bench lint clean

setup: system venv

# apt-get update runs at most once, and only when something is missing.
system:
	@missing=""; for p in $(SYSTEM_PACKAGES); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing system packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON)"; exit 1; }
	[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

# pytest exits 5 when it collects nothing; that is not a failure of the suite.
test: setup
	$(BIN)/pytest -n 2 --dist loadgroup $(PYTEST_ARGS) tests; rc=$$?; [ $$rc -eq 5 ] && rc=0; exit $$rc

test-unit: setup
	$(BIN)/pytest -q tests/unit

lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy

demo: setup
	$(BIN)/tandem demo

bench: setup
	$(BIN)/python bench/webhdfs.py
	$(BIN)/python bench/incremental.py
	$(BIN)/python bench/parse.py
	$(BIN)/python bench/throttle.py
	$(BIN)/python bench/copy_engine.py
	$(BIN)/python bench/gateway.py
	$(BIN)/python bench/ui.py

clean:
	-$(BIN)/tandem down
	rm -rf .tandem
