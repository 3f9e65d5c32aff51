# The two commands of the README: `make demo` and `make test`. Both set everything up on first use.
#
# STACK picks the lock file and the Python it needs:
#   main (default)  locks/main.txt       Python 3.12, TensorFlow 2.21 + tf-keras   -> .venv
#   reference       locks/reference.txt  Python 3.11, TensorFlow 2.15.1 (Keras 2)  -> .venv-reference
# PYTHON=/path/to/python3.X overrides the search for the interpreter (scripts/find_python.sh).
STACK ?= main
ifeq ($(STACK),main)
  PY_VERSION := 3.12
  VENV ?= .venv
else ifeq ($(STACK),reference)
  PY_VERSION := 3.11
  VENV ?= .venv-reference
else
  $(error STACK=$(STACK) is not a stack; valid: main, reference)
endif
LOCK := locks/$(STACK).txt
PY := $(VENV)/bin/python
FMNIST_DIR := /usr/share/datasets/fashion-mnist
# Prepared TFDS datasets are reused from here by the tests, the demo and the study.
export TFDS_DATA_DIR ?= $(CURDIR)/.cache/tensorflow_datasets
export TF_CPP_MIN_LOG_LEVEL ?= 2
# A notebook platform's order: TensorFlow 2.20, Keras 3 and tf-keras 2.20 are installed first,
# then this package (not editable) on top (see `make smoke-notebook`).
NOTEBOOK_VENV := .venv-notebook
NOTEBOOK_LOCK := locks/notebook.txt

.PHONY: demo test smoke faults smoke-notebook lint venv fashion-mnist chromium clean

venv: $(VENV)/.installed

# The venv is rebuilt when the lock or the packaging changes, or when it holds another Python.
$(VENV)/.installed: setup.py $(LOCK)
	@python="$(PYTHON)"; \
	if [ -z "$$python" ]; then python="$$(scripts/find_python.sh $(PY_VERSION))" || exit 1; fi; \
	if [ -x $(PY) ] && [ "$$($(PY) -c 'import sys; print("%d.%d" % sys.version_info[:2])')" != "$(PY_VERSION)" ]; then \
	  echo "$(VENV) holds another Python than $(PY_VERSION); recreating it"; rm -rf $(VENV); fi; \
	test -x $(PY) || "$$python" -m venv $(VENV)
	@$(PY) -c 'import sys; v = "%d.%d" % sys.version_info[:2]; sys.exit(0 if v == "$(PY_VERSION)" else "$(VENV) has Python " + v + "; $(LOCK) needs Python $(PY_VERSION) (PYTHON=$(PYTHON))")' \
	  || { rm -rf $(VENV); exit 1; }
	$(PY) -m pip install --quiet --upgrade "pip<25" wheel setuptools
	$(PY) -m pip install --quiet -c $(LOCK) -e ".[test,lint,zoo]"
	# larq-zoo's own pins (protobuf<3.21, zookeeper's tensorflow-datasets<4.9) conflict with
	# TF >= 2.20; its model code runs without them (tests and benchmarks only).
	$(PY) -m pip install --quiet --no-deps -c $(LOCK) larq-zoo zookeeper
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

# Headless Chromium for the test that screenshots the demo's HTML report (tests/test_report.py).
chromium:
	@if command -v chromium >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) \
	  || echo "WARNING: could not install chromium; the report screenshot test will be skipped"; \
	else \
	  echo "NOTE: chromium is missing; the report screenshot test will be skipped."; \
	  echo "      Install it with: sudo apt-get install chromium"; \
	fi

test: venv fashion-mnist chromium
	$(PY) -m pytest -n 2 --dist loadgroup -q

# A few minutes: build, fit, kill and resume, export and verify, weights, the notebook.
smoke: venv fashion-mnist
	$(PY) -m pytest -n 2 --dist loadgroup -q -m "smoke and not slow"

# The whole fault-injection suite, slow cases included (about half an hour on 2 cores), and its
# table in results/faults.md (docs/faults.md).
faults: venv fashion-mnist
	$(PY) scripts/fault_report.py --output=results/faults.md

$(NOTEBOOK_VENV)/.installed: setup.py $(NOTEBOOK_LOCK)
	@python="$(PYTHON)"; \
	if [ -z "$$python" ]; then python="$$(scripts/find_python.sh 3.12)" || exit 1; fi; \
	rm -rf $(NOTEBOOK_VENV) && "$$python" -m venv $(NOTEBOOK_VENV)
	$(NOTEBOOK_VENV)/bin/python -m pip install --quiet --upgrade "pip<25" wheel setuptools
	$(NOTEBOOK_VENV)/bin/python -m pip install --quiet -c $(NOTEBOOK_LOCK) \
	  tensorflow keras tf-keras pytest pytest-timeout pytest-xdist nbclient nbformat ipykernel
	$(NOTEBOOK_VENV)/bin/python -m pip install --quiet -c $(NOTEBOOK_LOCK) .
	touch $@

# The smoke set where Keras 3 is what `import tensorflow` gives (Kaggle / Colab images); pytest
# runs from its own entry point so that the installed package, not the checkout, is imported.
smoke-notebook: $(NOTEBOOK_VENV)/.installed fashion-mnist
	$(NOTEBOOK_VENV)/bin/pytest -n 2 --dist loadgroup -q -m "smoke and not slow" -p no:cacheprovider

lint: venv
	$(VENV)/bin/ruff check bireal_larq tests experiments benchmarks

demo: venv fashion-mnist
	$(PY) -m bireal_larq.demo --output_dir=runs/demo

clean:
	rm -rf .venv .venv-reference $(NOTEBOOK_VENV) .cache runs
