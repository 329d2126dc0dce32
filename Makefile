# One command sets up and runs the console on the lab (`make demo`), one sets up and runs
# every test (`make test`). Both work as root on a fresh Debian machine.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
LAB_INVENTORY ?= /var/lib/wgconsole-lab/inventory.yaml

.PHONY: setup demo test lint unit lab-down bench bench-console bench-ops bench-metrics

$(PY):
	@python3 -m venv --help >/dev/null 2>&1 && python3 -c 'import ensurepip' 2>/dev/null || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv python3-pip; }
	python3 -m venv $(VENV)

setup: $(PY)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	$(PY) -c 'from wgconsole.lab.manager import ensure_packages; ensure_packages()'

demo: setup
	@$(VENV)/bin/wgconsole lab status >/dev/null 2>&1 || $(VENV)/bin/wgconsole lab up
	$(VENV)/bin/wgconsole -i $(LAB_INVENTORY)

lint: setup
	$(VENV)/bin/ruff check wgconsole tests benchmarks
	$(VENV)/bin/ruff format --check wgconsole tests benchmarks
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache

unit: setup
	$(VENV)/bin/pytest -q -m 'not lab' -n 2

# The lab tests in one session (its order keeps the two guests apart and runs the secrets
# check last) and, at the same time, the unit tests in a second one on both cores
# (pytest-xdist): they need no lab, and the lab tests leave the cores idle for much of their
# time (they wait on the emulated guests), so the two together take little more than the lab
# tests alone. The unit tests' output is kept in a file and printed after the lab tests'.
# Both always run; the exit status is 1 if either failed.
UNIT_LOG = artifacts/unit-tests.log
test: setup lint
	mkdir -p artifacts; \
	$(VENV)/bin/pytest -v -rA --durations=15 -m 'not lab' -n 2 > $(UNIT_LOG) 2>&1 & unit=$$!; \
	rc=0; \
	$(VENV)/bin/pytest -v -rA --durations=15 -m lab || rc=1; \
	wait $$unit || rc=1; \
	echo "=== the unit tests (run alongside the lab tests) ==="; cat $(UNIT_LOG); \
	exit $$rc

# Benchmarks print figures (no timed tests). bench_scale boots its own lab (3 gateways x 10,000
# peers, 50,000 LB entries, 20 ms netem) in /var/lib/wgconsole-lab-bench, 127.0.0.1:2520-2524,
# and takes it down at the end; BENCH_ARGS=--keep leaves it running, --reuse uses it again.
bench: setup
	$(PY) -m benchmarks.bench_scale $(BENCH_ARGS)
	$(PY) benchmarks/bench_metrics.py

# The console's refresh on the UI thread with 5,000 clients and 50,000 LB entries (no lab).
bench-console: setup
	$(PY) benchmarks/bench_console.py

# What clients feel during maintenance: boots its own lab (2 gateways, 6 clients pinging through
# their tunnels) in /var/lib/wgconsole-lab-benchops, 127.0.0.1:2680-2683, runs drain, undrain,
# rebalance and a weight change 5 times each, then the unplanned cases (gateway-01's host
# leaving the network, its wg0 going down) with `wgconsole guard` running in the guest, takes
# it down; then the same on a director pair (/var/lib/wgconsole-lab-benchops-pair,
# 127.0.0.1:2700-2704) for 5 LB failovers, and writes benchmarks/results/ops.json.
# BENCH_ARGS="--ops drain,host-leaves,wg0-down --json FILE" runs a part of it.
bench-ops: setup
	$(PY) -m benchmarks.bench_ops $(BENCH_ARGS)

# `wgconsole metrics` at 10,000 clients (no lab): the exposition's size, rendering, and scrapes
# served from memory over HTTP on 127.0.0.1. `make bench` runs it too.
bench-metrics: setup
	$(PY) benchmarks/bench_metrics.py

lab-down: $(PY)
	$(VENV)/bin/wgconsole lab down
