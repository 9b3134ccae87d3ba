# Developer entry points. Everything runs from .venv; the Kafka jars are cached under .cache/ (or $NHIGUARD_CACHE_DIR).
# Dev tooling (tools/: the local broker, the demo, the scenario generator) runs from the checkout, not the package.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := venv
.PHONY: venv kafka opa registry demo test bench bench-scale lint broker clean distclean sigkill-repeat soak

venv: $(STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Reinstall only when pyproject.toml (the dependency list) changes. The interpreter is an order-only
# prerequisite: it must exist, but its timestamp should not force a reinstall.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -e '.[dev]'
	touch $@

# Resolve the Kafka broker jars with Maven once (a no-op when cached).
kafka: venv
	$(BIN)/python -m tools.broker --resolve-only

# Build the pinned real OPA once (go install through the Go module proxy; dev tooling in tools/opa.py, not
# installed with nhiguard): the parity tests and the benchmarks compare regopy with it. Prints its path, e.g.
# for `nhiguard policy test --engine both --opa PATH`.
opa: venv
	$(BIN)/python -m tools.opa

# Install the pinned Verdaccio once (npm ci of tools/verdaccio/package-lock.json into the cache dir; dev
# tooling in tools/verdaccio.py): the gate tests publish to and install from a real npm registry.
registry: venv
	$(BIN)/python -m tools.verdaccio --install-only

demo: venv kafka
	$(BIN)/python -m tools.demo

# e.g. make test PYTEST_ARGS='-m "not integration"'
test: venv kafka opa registry
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Benchmarks against a local broker (or $KAFKA_BOOTSTRAP): prints a table, writes bench/results/latest.json.
bench: venv kafka opa
	$(BIN)/python -m bench.run $(BENCH_ARGS)
	$(BIN)/python -m bench.scale --merge-only

# A million identities through one worker (tens of minutes; not part of `make bench`): the worker's peak RSS
# with its state on RocksDB and an LRU in memory, and a sample's decisions against an all-in-memory run.
# Writes bench/results/scale.json and merges rss_mb_at_1m_identities and scale_detail into latest.json
# (`make bench` merges them again after rewriting it).
# e.g. make bench-scale SCALE_ARGS='--identities 100000 --revisits 5000'
bench-scale: venv kafka
	$(BIN)/python -m bench.scale $(SCALE_ARGS)

# The SIGKILL tests N times against one broker, with the pass count of each (minutes per round).
N ?= 30
sigkill-repeat: venv kafka
	$(BIN)/python -m tools.repeat -n $(N) -k test_sigkill_ tests/integration

# Exact accounting under faults (minutes; not part of `make test`, which runs a short version): 50,000
# records while workers are killed, stopped, stalled, wiped, added and removed and the broker is restarted;
# prints a table and exits 1 if a record was lost or decided two ways. e.g. make soak SOAK_ARGS='--rate 200'
soak: venv kafka
	$(BIN)/python -m tools.soak $(SOAK_ARGS)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# e.g. make broker BROKER_ARGS='--port 9092 --data-dir .cache/kafka-data'
broker: venv kafka
	$(BIN)/python -m tools.broker $(BROKER_ARGS)

clean:
	rm -rf build dist *.egg-info .pytest_cache .ruff_cache
	find . -path ./$(VENV) -prune -o -type d -name __pycache__ -exec rm -rf {} +

# Also drops the venv and the cached Kafka jars.
distclean: clean
	rm -rf $(VENV) .cache
