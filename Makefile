# The two commands of README.md: `make demo` and `make test`. Both install from scratch into
# .venv when it is missing, so they are true on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CORES ?= 2
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: demo test test-fast lint install bench clean

$(BIN)/biospike: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch is pinned to the CPU build (see README: elsewhere add --extra-index-url for CPU wheels)
	$(BIN)/pip install --quiet -e '.[test]'
	# NeuroBench's metrics need only torch and snntorch; its declared dependencies pull torchaudio
	# (and with it a CUDA torch), so it is installed without them
	$(BIN)/pip install --quiet --no-deps 'neurobench==2.3.0'
	touch $@

install: $(BIN)/biospike

demo: install
	$(BIN)/snakemake --cores $(CORES)

lint: install
	$(BIN)/ruff check src tests benchmarks

test: install lint
	$(BIN)/pytest

test-fast: install
	$(BIN)/pytest -m "not slow and not slurm"

bench: install
	$(BIN)/pip install --quiet -e '.[bench]'
	for b in benchmarks/*.py; do case $$b in */_*) ;; *) $(BIN)/python $$b --quick || exit 1;; esac; done

clean:
	rm -rf results .snakemake data/demo
