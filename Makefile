# mtbsync developer commands. `make demo` and `make test` do all set-up themselves on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup chromium demo test test-all lint format bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

# The browser tests drive the system Chromium (Debian package) through Playwright's Python package;
# `playwright install` is not needed.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ]; then SUDO=; elif command -v sudo >/dev/null 2>&1; then SUDO=sudo; \
		else echo "chromium is missing: install it as root (apt-get install chromium chromium-driver)"; exit 1; fi; \
		$$SUDO apt-get update && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium chromium-driver; }

demo: setup
	$(VENV)/bin/mtbsync demo --out demo_out

test: setup chromium
	$(PY) -m pytest

test-all: setup chromium
	$(PY) -m pytest -m "not gpu"

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

format: setup
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: setup
	$(PY) benchmarks/bench_matching.py
	$(PY) benchmarks/bench_pipeline.py
	$(PY) benchmarks/accuracy.py --tool ours
	$(PY) benchmarks/conditions.py --json .bench/conditions/dev.json
	$(PY) benchmarks/calibrate_confidence.py --collect --fit
	$(PY) benchmarks/gps_accuracy.py --repeats 3 --sample 30
	$(PY) benchmarks/bench_telemetry.py
	$(PY) benchmarks/bench_ingest.py --trials 5
	$(PY) benchmarks/bench_store.py
	$(PY) benchmarks/bench_sse_load.py --seconds 30 --clients 50

clean:
	rm -rf demo_out .pytest_cache .ruff_cache
