# patronlink: `make run` to try it, `make test` to check it. Needs only Python 3.11+ and make.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8000
PYTEST_ARGS ?=
# bench/ is optional (not every checkout has it yet): lint what exists.
LINT_PATHS := src tests $(wildcard bench)
# Every package of the runtime and the dev tools at an exact version with its hashes, for every
# platform and Python >= 3.11 (uv's universal resolution). `make lock` writes it from pyproject.toml.
LOCK   := requirements.lock
LOCK_ARGS ?=

.PHONY: install lock audit run test long soak lint types unit bench clean

install: $(VENV)/.installed

# pip and setuptools are brought up to date first: the ones a new venv gets from ensurepip are
# old (setuptools 65.5 has known vulnerabilities). Then the lock, with hashes checked, and the
# project itself without touching its dependencies.
$(VENV)/.installed: pyproject.toml $(LOCK)
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "patronlink needs Python 3.11 or newer; set PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools
	$(BIN)/python -m pip install --quiet --require-hashes -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	@touch $@

# After a change of dependencies in pyproject.toml: `make lock`, then `make install`. Versions
# already in the lock are kept where they still fit; `make lock LOCK_ARGS=--upgrade` takes the
# newest of everything.
lock:
	@test -x $(BIN)/uv || { $(PYTHON) -m venv $(VENV) && $(BIN)/python -m pip install --quiet 'uv>=0.9'; }
	$(BIN)/uv pip compile pyproject.toml --extra dev --universal --python-version 3.11 \
		--generate-hashes --custom-compile-command 'make lock' --quiet $(LOCK_ARGS) -o $(LOCK)

# Known vulnerabilities in the locked packages (pip-audit); skipped with a message when no
# vulnerability service can be reached.
audit: install
	$(BIN)/python .ci/audit.py $(LOCK)

run: install
	$(BIN)/patronlink db upgrade
	$(BIN)/patronlink demo
	@echo
	@echo "patronlink is starting on http://$(HOST):$(PORT) with the demo agency DK-761500"
	@echo "  health:      curl http://$(HOST):$(PORT)/healthz"
	@echo "  API docs:    http://$(HOST):$(PORT)/docs"
	@echo "  staff token: TOKEN=\$$($(BIN)/patronlink token create --name me)"
	@echo "  patrons:     curl -H \"Authorization: Bearer \$$TOKEN\" http://$(HOST):$(PORT)/api/v1/agencies/DK-761500/patrons"
	@echo "  renew by SMS (texts go to this console):"
	@echo "     curl 'http://$(HOST):$(PORT)/rest/DK-761500/smsgateway?user=sms&password=demo-inbound-password&shortcode=1910&countrycode=45&number=52903991&text=Horsens%20forny%20alle'"
	@echo
	PATRONLINK_LOG_FORMAT=console $(BIN)/patronlink serve --host $(HOST) --port $(PORT)

lint: install
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)
	$(BIN)/lint-imports

types: install
	$(BIN)/mypy

# Lint, types, contracts and the suite: the README's test command, a few minutes on two cores.
# The long runs (fault injection with kills, the 10,000-text chaos run, the schema fuzz; marker
# `slow`) and the soak have targets of their own; CI runs all three.
test: lint types audit
	$(BIN)/pytest -n 2 --dist worksteal -m "not soak and not slow" $(PYTEST_ARGS)

# The long runs (marker `slow`, 3-4 minutes on two cores with PostgreSQL).
long: install
	$(BIN)/pytest -n 2 --dist worksteal -m "slow and not soak" --slow $(PYTEST_ARGS)

# The soak (tests/e2e/test_soak.py, 10 minutes; PATRONLINK_SOAK_SECONDS shortens it) runs on its
# own: its latency figures mean something only when no other test loads the same cores.
soak: install
	$(BIN)/pytest -m soak $(PYTEST_ARGS)

unit: install
	$(BIN)/pytest tests/unit

bench: install
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
