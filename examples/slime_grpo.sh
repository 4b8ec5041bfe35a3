#!/usr/bin/env bash
# slime: rewards from a running medix-reward service through slime's remote reward model (`--rm-type remote_rm`).
#
#   MEDIX_REWARD_URL=http://reward-host:8080 examples/slime_grpo.sh [your model, data and parallelism flags]
#
# Run it from a slime checkout (slime is not on PyPI, so our tier checks this command's reward flags and posts
# to the service as slime's remote_rm does: tests/client/test_recipes.py). The label is the ground truth
# ("<TAG> answer"). An item the service could not score is HTTP 502 `unscored`; start the service with
# MEDIX_REWARD_ADAPTERS__FALLBACK=0.0 to get 0.0 instead (logged, counted).
set -euo pipefail

MEDIX_REWARD_URL=${MEDIX_REWARD_URL:-http://127.0.0.1:8080}

python3 train.py \
  --rm-type remote_rm \
  --rm-url "$MEDIX_REWARD_URL/slime/reward" \
  --reward-key reward \
  "$@"
