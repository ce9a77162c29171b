# Two entry points for a fresh machine; each builds .venv and installs into it.
#   make demo   analyse the bundled example checkpoint, write out/demo/report.html
#   make test   run the whole test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
BASE   := $(VENV)/.netinit-installed
STAMP  := $(VENV)/.netinit-test-installed

.PHONY: venv demo test bench clean

# netinit and its own dependencies (torch pinned first: the CPU wheel)
$(BASE): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e . torch==2.13.0
	touch $(BASE)

# + pytest, ruff, the experiments' extra and the frameworks the format tests make real files with
# (Keras, Flax/JAX, ONNX)
$(STAMP): $(BASE)
	$(BIN)/python -m pip install --quiet -e '.[test,frameworks,experiments]' torch==2.13.0
	touch $(STAMP)

venv: $(STAMP)

demo: $(BASE)
	mkdir -p out
	$(BIN)/netinit analyze data/examples/mlp_digits.safetensors -o out/demo --centrality auto
	$(BIN)/netinit rewire data/examples/mlp_digits_init.safetensors -o out/mlp_digits_init_rewired.safetensors --seed 0 --report out/rewire_report.csv --force

test: $(STAMP)
	$(BIN)/python -m ruff check netinit tests bench
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python bench/bench_rewire.py
	$(BIN)/python bench/bench_analyze.py

clean:
	rm -rf $(VENV) out
