# patronlink: `make run` to try it, `make test` to check it. Needs only Python 3.11+ and make.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8000
PYTEST_ARGS ?=
# bench/ is optional (not every checkout has it yet): lint what exists.
LINT_PATHS := src tests $(wildcard bench)

.PHONY: install run test soak lint types unit bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "patronlink needs Python 3.11 or newer; set PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

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
test: lint types
	$(BIN)/pytest -n 2 -m "not soak" $(PYTEST_ARGS)

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
