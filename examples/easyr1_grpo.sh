#!/usr/bin/env bash
# EasyR1 (and the MediX-R1 fork): GRPO whose rewards come from a running medix-reward service, through EasyR1's
# batch reward function loader (`worker.reward.reward_function=PATH:NAME`).
#
#   MEDIX_REWARD_URL=http://reward-host:8080 MODEL=Qwen/Qwen2.5-VL-7B-Instruct examples/easyr1_grpo.sh [overrides]
#
# Run it from an EasyR1 checkout (EasyR1 is not on PyPI, so our tier checks this command's reward keys and calls
# the adapter as EasyR1 calls it: tests/client/test_recipes.py). Add `"fallback": 0.0` to the kwargs to score an item
# the service could not score as 0.0 (logged, counted) instead of failing the step.
set -euo pipefail

MEDIX_REWARD_URL=${MEDIX_REWARD_URL:-http://127.0.0.1:8080}
MODEL=${MODEL:-Qwen/Qwen2.5-VL-7B-Instruct}
ADAPTER=$(python3 -c 'import medix_reward_client.adapters.easyr1 as m; print(m.__file__)')

python3 -m verl.trainer.main \
  config=examples/config.yaml \
  worker.actor.model.model_path="$MODEL" \
  worker.reward.reward_type=batch \
  worker.reward.reward_function="$ADAPTER:compute_score" \
  worker.reward.reward_function_kwargs="{\"url\": \"$MEDIX_REWARD_URL\"}" \
  "$@"
