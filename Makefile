# `make test` and `make demo` set everything up on a fresh machine: they create .venv when it is
# missing and install nnrecipe with its test extras through constraints.txt (which pins the CPU wheel
# of torch); the stamp file skips the install when pyproject.toml and constraints.txt did not change.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test demo demo-images install clean bench

install: $(STAMP)

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(PY) pyproject.toml constraints.txt
	$(PY) -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

# two worker processes, a test file each (pytest-xdist): the tests train on one thread each, and the
# machines have 2 cores; a file's module-scoped fixtures then train once
test: $(STAMP)
	$(PY) -m pytest -q -n 2 --dist loadfile

demo: $(STAMP)
	$(PY) scripts/demo_data.py demo/breast_cancer.csv
	$(VENV)/bin/nnrecipe train demo/breast_cancer.csv --target diagnosis --out demo/runs \
		--note "make demo: breast cancer, the recipe's defaults"

# images (issue 20): scikit-learn's 8x8 digits written as PNG files in a folder per class (no download), then
# `nnrecipe train` on the folder
demo-images: $(STAMP)
	$(PY) scripts/image_data.py digits demo/digits
	$(VENV)/bin/nnrecipe train demo/digits --out demo/runs \
		--note "make demo-images: digits as PNG images, the recipe's defaults"

bench: $(STAMP)
	$(PY) benchmarks/engine.py

clean:
	rm -rf $(VENV) demo .pytest_cache
