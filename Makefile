# The two commands of the README: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed
	$(BIN)/pip install -q -e '.[test]'
	touch $@

$(VENV)/.installed-bench: pyproject.toml $(VENV)/.installed
	$(BIN)/pip install -q -e '.[bench]'
	touch $@

demo: $(VENV)/.installed
	$(BIN)/python experiments/quickstart.py --workdir runs/dates

# The tests' XLA programs, like the programs', get the malloc tunables of s2s_jax.hugepages
# (huge pages, freed buffers kept); a GLIBC_TUNABLES of the caller's own stands.
test: $(VENV)/.installed-test
	$(BIN)/ruff check s2s_jax tests experiments benchmarks notebooks
	GLIBC_TUNABLES=$${GLIBC_TUNABLES:-glibc.malloc.hugetlb=1:glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=1099511627776} $(BIN)/python -m pytest -q -n 2 --dist loadgroup

# Speed beside the PyTorch reference (BENCHMARKS.md): alternating rounds, ratios min/median/max.
bench: $(VENV)/.installed-bench
	$(BIN)/python -m benchmarks.compare --rounds 3 --ablate-recurrence

lint: $(VENV)/.installed-test
	$(BIN)/ruff check s2s_jax tests experiments benchmarks notebooks

clean:
	rm -rf $(VENV) runs
