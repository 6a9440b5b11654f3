# `make test` and `make demo` set everything up on a fresh machine: they create .venv when it is
# missing and install nnrecipe with its test extras through constraints.txt (which pins the CPU wheel
# of torch); the stamp file skips the install when pyproject.toml and constraints.txt did not change.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test demo install clean bench

install: $(STAMP)

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(PY) pyproject.toml constraints.txt
	$(PY) -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

demo: $(STAMP)
	$(PY) scripts/demo_data.py demo/breast_cancer.csv
	$(VENV)/bin/nnrecipe train demo/breast_cancer.csv --target diagnosis --out demo/runs \
		--note "make demo: breast cancer, the recipe's defaults"

bench: $(STAMP)
	$(PY) benchmarks/engine.py

clean:
	rm -rf $(VENV) demo .pytest_cache
