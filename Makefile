# MedStation — the front door. `make help` lists the targets.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-builtin-rules --no-print-directory

VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
# Root needs no sudo (CI, fresh machines); anyone else installs Debian packages through it.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# Our own packages, installed editable: every lib and every service with a pyproject.toml,
# so a new service needs no change here.
PYPROJECTS := $(sort $(wildcard libs/*/pyproject.toml services/*/pyproject.toml))
PACKAGES := $(patsubst %/pyproject.toml,%,$(PYPROJECTS))
SRC_DIRS := $(sort $(wildcard libs/*/src services/*/src))
TEST_DIRS := $(sort $(wildcard libs/*/tests services/*/tests)) $(wildcard tests)

N ?= 5
TRACE ?=
PATIENTS ?= 10000
DURATION ?=
CONCURRENCY ?=
BENCH_ARGS ?=

.PHONY: help
help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) \
	  | awk 'BEGIN {FS = ":.*## "} {printf "  make %-12s %s\n", $$1, $$2}'
	@echo "  (make traces N=20, make traces TRACE=<trace id>)"

.PHONY: system-deps
system-deps: ## Install PostgreSQL, Redis and python3-venv from Debian when missing
	@missing=(); \
	python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv); \
	if [ -z "$${MEDSTATION_POSTGRES_ADMIN_URL:-}" ] && ! compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null \
	   && ! (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null; then missing+=(postgresql); fi; \
	if [ -z "$${MEDSTATION_REDIS_URL:-}" ] && ! command -v redis-server >/dev/null \
	   && ! (exec 3<>/dev/tcp/127.0.0.1/6379) 2>/dev/null; then missing+=(redis-server); fi; \
	if [ $${#missing[@]} -gt 0 ]; then \
	  echo "installing Debian packages: $${missing[*]}"; \
	  $(SUDO) apt-get update -q; \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends "$${missing[@]}"; \
	fi

.PHONY: venv install
install: venv
venv: system-deps ## Create .venv; install pinned requirements and our packages when changed
	@test -x $(PY) || python3 -m venv $(VENV)
	@want=$$(sha256sum requirements.txt); \
	if [ "$$(cat $(VENV)/.requirements.sha256 2>/dev/null)" != "$$want" ]; then \
	  echo "installing requirements.txt into $(VENV)"; \
	  $(PIP) install -q -r requirements.txt; \
	  echo "$$want" > $(VENV)/.requirements.sha256; \
	fi
	@want=$$(echo "$(PACKAGES)" | cat - $(PYPROJECTS) | sha256sum); \
	if [ "$$(cat $(VENV)/.editables.sha256 2>/dev/null)" != "$$want" ]; then \
	  echo "installing editable: $(PACKAGES)"; \
	  $(PIP) install -q --no-deps $(addprefix -e ,$(PACKAGES)); \
	  echo "$$want" > $(VENV)/.editables.sha256; \
	fi

.PHONY: proto
proto: venv ## Regenerate libs/api and the gateway descriptor set from protos/
	$(PY) protos/generate.py

.PHONY: fmt
fmt: venv ## Format and auto-fix (ruff)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

.PHONY: lint
lint: venv ## ruff check + format check, mypy --strict, buf lint + breaking
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy $(SRC_DIRS) $(TEST_DIRS)
	$(PY) protos/check.py

.PHONY: test
test: lint ## Install, lint, then run every test against real PostgreSQL, Redis and Envoy
	$(PY) -m pytest -p no:cacheprovider $(TEST_DIRS)

.PHONY: run
run: venv ## Start the whole system locally (databases, services, Envoy, trace sink) until Ctrl-C
	$(PY) -m devstack run

.PHONY: traces
traces: venv ## Print the latest N traces (default 5) from `make run` as waterfalls
	@$(PY) -m devstack traces --limit $(N) $(if $(TRACE),--trace $(TRACE))

.PHONY: seed
seed: venv ## Load the demo data set into a running `make run` (PATIENTS=10000), idempotent
	$(PY) -m devstack seed --patients $(PATIENTS)

.PHONY: bench-deps
bench-deps: ## Install wrk and h2load (nghttp2-client) from Debian when missing
	@missing=(); \
	command -v wrk >/dev/null || missing+=(wrk); \
	command -v h2load >/dev/null || missing+=(nghttp2-client); \
	if [ $${#missing[@]} -gt 0 ]; then \
	  echo "installing Debian packages: $${missing[*]}"; \
	  $(SUDO) apt-get update -q; \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends "$${missing[@]}"; \
	fi

.PHONY: bench
bench: venv bench-deps ## Benchmark a running `make run`; writes docs/benchmarks.md (DURATION=5 CONCURRENCY=1,16)
	$(PY) -m devstack bench $(if $(DURATION),--duration $(DURATION)) \
	  $(if $(CONCURRENCY),--concurrency $(CONCURRENCY)) $(BENCH_ARGS)

.PHONY: clean
clean: ## Remove run state (.run: logs, traces) and caches; keeps .venv
	rm -rf .run .mypy_cache .ruff_cache .pytest_cache build dist
	find . -path ./.venv -prune -o \( -name __pycache__ -o -name '*.egg-info' \) -type d -print0 \
	  | xargs -0 rm -rf
