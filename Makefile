# Every target builds the project's own virtual environment first; nothing is installed by hand.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# Main job: a lin-kv test of Rast under partitions, with the embedded runner.
NODES ?= 3
TIME ?= 30
RATE ?= 100
CHECK_ARGS ?=

# Simulation sweeps: make sim SEEDS=1-1000 STEPS=20000 NODES=5
SEEDS ?= 1-200
STEPS ?= 20000
SIM_ARGS ?=

# CI's simulation sweep: 1,000 swarm seeds (every fault class, disk failures included) on two cores.
SIM_CI_SEEDS ?= 1-1000
SIM_CI_STEPS ?= 10000
SIM_CI_JOBS ?= 2

.PHONY: all venv test test-fast mutants check maelstrom bench bench-quick bench-node sim sim-ci soak clean

all: test

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	$(PY) -m compileall -q rast_maelstrom  # bytecode for bin/rast's first start (restart time)
	touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

test-fast: $(STAMP)
	$(PY) -m pytest -m "not e2e"

# Every named mutant (tools/mutants.py) must be killed by its tests; run by CI after `make test`.
mutants: $(STAMP)
	$(PY) tools/mutants.py $(MUTANTS_ARGS)

check: $(STAMP)
	bin/maelstrom-py test -w lin-kv --bin bin/rast --node-count $(NODES) --concurrency 2n \
	  --rate $(RATE) --time-limit $(TIME) --nemesis partition --nemesis-interval 5 $(CHECK_ARGS)

sim: $(STAMP)
	$(PY) -m rast_maelstrom.sim --seeds $(SEEDS) --steps $(STEPS) --nodes $(NODES) $(SIM_ARGS)

sim-ci: $(STAMP)
	$(PY) -m rast_maelstrom.sim --seeds $(SIM_CI_SEEDS) --steps $(SIM_CI_STEPS) --nodes 3,5 \
	  --jobs $(SIM_CI_JOBS) --require-all-faults -q

BENCH_STAMP := $(VENV)/.bench-installed
$(BENCH_STAMP): $(STAMP)
	$(PY) -m pip install -q -e '.[test,bench]'
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(PY) bench/run.py $(BENCH_ARGS)

# One node on a pipe, no runner: turnaround and CPU per message kind.
bench-node: $(STAMP)
	$(PY) bench/node_bench.py $(BENCH_ARGS)

bench-quick: $(BENCH_STAMP)
	$(PY) bench/run.py --quick $(BENCH_ARGS)

# The same test under the real Maelstrom jar, where it is installed.
maelstrom: $(STAMP)
	@if [ -n "$$MAELSTROM_JAR" ] && [ -f "$$MAELSTROM_JAR" ]; then \
	  java -Djava.awt.headless=true -jar "$$MAELSTROM_JAR" test -w lin-kv --bin "$(CURDIR)/bin/rast" \
	    --node-count $(NODES) --concurrency 2n --rate $(RATE) --time-limit $(TIME) --nemesis partition; \
	elif command -v maelstrom >/dev/null 2>&1; then \
	  maelstrom test -w lin-kv --bin "$(CURDIR)/bin/rast" \
	    --node-count $(NODES) --concurrency 2n --rate $(RATE) --time-limit $(TIME) --nemesis partition; \
	else \
	  echo "The real Maelstrom is not installed here."; \
	  echo "Get maelstrom.tar.bz2 from https://github.com/jepsen-io/maelstrom/releases (needs Java 11+,"; \
	  echo "gnuplot and graphviz), then either put its 'maelstrom' script on PATH or set"; \
	  echo "MAELSTROM_JAR=/path/to/maelstrom/lib/maelstrom.jar and run 'make maelstrom' again."; \
	  echo "Without it, 'make check' runs the same test under the embedded runner."; \
	  exit 2; \
	fi

clean:
	rm -rf $(VENV) store .pytest_cache .hypothesis *.egg-info

# Soak (a program, not a test): 3 nodes with --data-dir under saturation with kill, pause and
# partition for SOAK_MINUTES; RSS and data-dir size per minute, snapshots, restarts, throughput.
SOAK_MINUTES ?= 10
SOAK_ARGS ?=
soak: $(STAMP)
	$(PY) bench/soak.py --minutes $(SOAK_MINUTES) $(SOAK_ARGS)
