# The two commands of the README: `make demo` and `make test`. Both set everything up on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
FMNIST_DIR := /usr/share/datasets/fashion-mnist
# Prepared TFDS datasets are reused from here by the tests, the demo and the study.
export TFDS_DATA_DIR ?= $(CURDIR)/.cache/tensorflow_datasets
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: demo test lint venv fashion-mnist clean

venv: $(VENV)/.installed

$(VENV)/.installed: setup.py constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "bireal_larq needs Python 3.11 (the pinned TensorFlow 2.15.1 stack); found " + sys.version.split()[0])'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip<25" wheel setuptools
	$(PY) -m pip install --quiet -c constraints.txt -e ".[test,lint]"
	touch $@

# Offline Fashion-MNIST: the four .gz files of Debian's dataset-fashion-mnist package.
fashion-mnist:
	@if [ -f $(FMNIST_DIR)/train-images-idx3-ubyte.gz ]; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist) \
	  || echo "WARNING: could not install dataset-fashion-mnist; Fashion-MNIST tests will be skipped"; \
	else \
	  echo "NOTE: Fashion-MNIST files are missing from $(FMNIST_DIR)."; \
	  echo "      Install them with: sudo apt-get install dataset-fashion-mnist"; \
	fi

test: venv fashion-mnist
	$(PY) -m pytest -n 2 --dist loadgroup -q

lint: venv
	$(VENV)/bin/ruff check bireal_larq tests experiments benchmarks

demo: venv fashion-mnist
	$(PY) -m bireal_larq.demo --output_dir=runs/demo

clean:
	rm -rf $(VENV) .cache runs
