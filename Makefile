# The two commands a newcomer needs: `make run` and `make test`.
SHELL := /bin/bash
UV := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
PORT ?= 8080
ROLE ?= all

.PHONY: help install promtool chromium run stack-up stack-down stack-status migrate test test-unit lint typecheck bench eval-linkage chaos soak clean

help:
	@echo "make run    - start the local stack (PostgreSQL, Kafka, S3), migrate, serve all roles on :$(PORT)"
	@echo "make test   - ruff, mypy (strict) and the whole test suite (starts its own stack on free ports)"
	@echo "make bench  - benchmarks (writes benchmarks/results/latest.json)"
	@echo "make eval-linkage - Febrl4 end to end through the service, scored (writes benchmarks/results/linkage.json)"
	@echo "make chaos  - 10,000 records under a schedule of real faults, then checked (writes benchmarks/results/chaos.json)"
	@echo "make soak   - 30 minutes at half the measured capacity, all roles; flat or not (writes benchmarks/results/soak.json)"

# uv is installed with pip when the machine lacks it. Bytecode is compiled once at install:
# every server, CLI and bench process imports litestar, asyncpg, confluent-kafka and obstore,
# and without .pyc files (PYTHONDONTWRITEBYTECODE, or a read-only venv) that took 2.6 s a
# process here instead of 1.2 s.
install:
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	@$(UV) sync --frozen --compile-bytecode

# promtool (checks and unit-tests the alert rules in the suite), from Debian's prometheus package
# when it is not on PATH: extracted alone, no Prometheus server installed or started.
promtool:
	@deploy/prometheus/install-promtool.sh

# chromium (the console's browser tests drive it through Playwright), from Debian's package
# when it is not on PATH.
chromium:
	@tests/support/install-chromium.sh

run: install
	$(UV) run exchange stack up
	$(UV) run exchange migrate
	$(UV) run exchange serve --role=$(ROLE) --port $(PORT)

stack-up: install
	$(UV) run exchange stack up

stack-down:
	$(UV) run exchange stack down

stack-status:
	$(UV) run exchange stack status

migrate: install
	$(UV) run exchange migrate

lint: install
	$(UV) run ruff check src tests migrations benchmarks deploy

typecheck: install
	$(UV) run mypy

test: lint typecheck promtool chromium
	$(UV) run pytest

test-unit: install promtool
	$(UV) run pytest tests/unit

bench: install
	$(UV) run exchange bench

eval-linkage: install
	$(UV) run exchange eval-linkage

# CHAOS_ARGS passes options through, e.g. `make chaos CHAOS_ARGS="--count 2000 --rounds 1"`.
chaos: install
	$(UV) run exchange chaos $(CHAOS_ARGS)

# SOAK_ARGS likewise, e.g. `make soak SOAK_ARGS="--duration 600 --rate 50"`.
soak: install
	$(UV) run exchange soak $(SOAK_ARGS)

clean:
	-$(UV) run exchange stack down
	rm -rf .exchange
