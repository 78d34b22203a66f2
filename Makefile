# Two commands: `make run` and `make test`. Everything else they need, they install.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export CONNECTOR_HOME ?= $(CURDIR)/.connector

.PHONY: setup run test lint typecheck bench soak fuzz clean sandbox browser

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## run: the sandbox, a webhook receiver and the worker on the demo flows (embedded Postgres)
run: setup
	$(VENV)/bin/connector demo --config config/demo.yaml

## browser: the system's Chromium and chromedriver, for the status page's browser test
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
		{ apt-get update -q && DEBIAN_FRONTEND=noninteractive \
		  apt-get install -y -q --no-install-recommends chromium chromium-driver; }

## test: lint, types, then the whole suite against a throwaway Postgres, with branch coverage
## (one line: the total, checked against fail_under in pyproject.toml)
test: setup lint typecheck browser
	$(PY) -m pytest --cov --cov-report=

LINTED := connector triggers actions tests $(wildcard bench) $(wildcard fuzz)

lint: setup
	$(VENV)/bin/ruff check $(LINTED)
	$(VENV)/bin/ruff format --check $(LINTED)

typecheck: setup
	$(VENV)/bin/mypy

bench: setup
	@for script in $(filter-out bench/_%,$(wildcard bench/*.py)); do echo "== $$script"; $(PY) $$script || exit 1; done

## soak: the fault suite (worker processes killed, Postgres restarted and stopped, the
## sandbox and the receiver failing at random); prints its figures
soak: setup
	$(PY) -m pytest -m soak -o timeout=1800 -s tests/soak

FUZZ_STAMP := $(VENV)/.fuzz-installed
FUZZ_SECONDS ?= 600

$(FUZZ_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e '.[dev,fuzz]'
	touch $(FUZZ_STAMP)

## fuzz: atheris on the intake body parser and the flow-file loader, FUZZ_SECONDS each
fuzz: $(FUZZ_STAMP)
	PY=$(PY) FUZZ_SECONDS=$(FUZZ_SECONDS) bash fuzz/run.sh

sandbox: setup
	$(VENV)/bin/connector sandbox --port 8525 --seed demo

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .fuzz
