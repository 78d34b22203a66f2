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
## (one line: the total, checked against fail_under in pyproject.toml). The suite runs on
## TEST_WORKERS xdist workers (0: in this one process), each with a Postgres of its own, all
## appending to one exchange log. Then the check of that whole log runs alone (its two parts
## side by side), and its coverage is added to theirs before the total is checked.
TEST_WORKERS ?= 3
CHECK_WORKERS := $(if $(filter 0,$(TEST_WORKERS)),0,2)

test: setup lint typecheck browser
	@log=$$(mktemp -d) && trap 'rm -rf "$$log"' EXIT && \
	export CONNECTOR_SANDBOX_RECORD="$$log/exchanges.jsonl" && set -x && \
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadgroup -m 'not soak and not after_all_exchanges' \
		--cov --cov-report= --cov-fail-under=0 && \
	$(PY) -m pytest -n $(CHECK_WORKERS) -m after_all_exchanges --cov --cov-append --cov-report= \
		tests/contract/test_exchanges.py

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
