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
CHAOS_ARGS ?=
FUZZ_EXAMPLES ?= 500

.PHONY: help
help: ## List the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) \
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
proto: venv ## Regenerate libs/api and the gateway descriptor set from protos/ (and k8s/ from them)
	$(PY) protos/generate.py
	$(PY) -m devstack.openapi --out gateway/generated/openapi.json
	$(PY) -m devstack.k8s_sync

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
test: lint bench-venv ## Install, lint, then run every test against real PostgreSQL, Redis and Envoy
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

.PHONY: bench-venv
bench-venv: venv ## Install requirements-bench.txt (FastAPI reference, chart) into .venv when changed
	@want=$$(cat requirements-bench.txt requirements.txt | sha256sum); \
	if [ "$$(cat $(VENV)/.requirements-bench.sha256 2>/dev/null)" != "$$want" ]; then \
	  echo "installing requirements-bench.txt into $(VENV)"; \
	  $(PIP) install -q -r requirements-bench.txt -c requirements.txt; \
	  echo "$$want" > $(VENV)/.requirements-bench.sha256; \
	fi

.PHONY: bench
# When make started, before any prerequisite: `make bench` reports its time installs included.
bench: BENCH_STARTED := $(shell date +%s)
bench: bench-venv bench-deps ## Benchmark beside ceilings and the FastAPI reference (starts a stack if none runs); writes docs/benchmarks.md and .png
	$(PY) -m devstack bench $(if $(DURATION),--duration $(DURATION)) \
	  $(if $(CONCURRENCY),--concurrency $(CONCURRENCY)) $(BENCH_ARGS)
	@echo "make bench: $$(( $$(date +%s) - $(BENCH_STARTED) )) s in all, installs included"

.PHONY: chaos
chaos: venv ## Fault suite on a stack of its own (replica loss, PostgreSQL/Redis restarts, worker kill -9); writes docs/reliability.md
	$(PY) -m devstack.chaos --out docs/reliability.md $(CHAOS_ARGS)

.PHONY: fuzz
fuzz: venv ## Fuzz the REST API through a live gateway (schemathesis, FUZZ_EXAMPLES cases per operation); writes docs/fuzzing.md
	MEDSTATION_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) MEDSTATION_FUZZ_ADMIN=1 MEDSTATION_FUZZ_SEED=random \
	  MEDSTATION_FUZZ_REPORT=docs/fuzzing.md $(PY) -m pytest -p no:cacheprovider tests/test_fuzz.py

.PHONY: k8s-sync
k8s-sync: venv ## Regenerate the k8s/ files made from the gateway template, descriptor and alert rules
	$(PY) -m devstack.k8s_sync

.PHONY: k8s-check
k8s-check: venv ## Render the k8s/ overlays offline and check them (schemas, probes, security, policies)
	$(PY) -m devstack.k8s_render check

.PHONY: clean
clean: ## Remove run state (.run: logs, traces) and caches; keeps .venv
	rm -rf .run .mypy_cache .ruff_cache .pytest_cache build dist
	find . -path ./.venv -prune -o \( -name __pycache__ -o -name '*.egg-info' \) -type d -print0 \
	  | xargs -0 rm -rf
