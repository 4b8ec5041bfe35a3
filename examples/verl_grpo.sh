#!/usr/bin/env bash
# verl 0.9.1: GRPO whose rewards come from a running medix-reward service, through verl's reward loop
# (`NaiveRewardManager`, many samples in flight with the async reward function).
#
#   MEDIX_REWARD_URL=http://reward-host:8080 MODEL=Qwen/Qwen2.5-VL-3B-Instruct DATA=~/data/medix \
#     examples/verl_grpo.sh [more verl overrides]
#
# DATA holds train.parquet and test.parquet in verl's RL format: `data_source`, `prompt` (chat messages) and
# `reward_model: {"ground_truth": "<TAG> answer"}` per row. The reward keys live under `reward.` in verl 0.9:
# the older top-level `custom_reward_function.*` still parses but 0.9.1's trainer ignores it, and the reward
# loop has no `batch` manager (`compute_score_batch` is for EasyR1-style batch managers only).
# Add `+reward.custom_reward_function.reward_kwargs.fallback=0.0` to score an item the service could not score
# as 0.0 (logged, counted) instead of failing the step. tests/trainers/test_verl.py composes these overrides
# against verl's own config and runs its reward loop with them.
set -euo pipefail

MEDIX_REWARD_URL=${MEDIX_REWARD_URL:-http://127.0.0.1:8080}
MODEL=${MODEL:-Qwen/Qwen2.5-VL-3B-Instruct}
DATA=${DATA:-$HOME/data/medix}
ADAPTER=$(python3 -c 'import medix_reward_client.adapters.verl as m; print(m.__file__)')

python3 -m verl.trainer.main_ppo \
  algorithm.adv_estimator=grpo \
  data.train_files="$DATA/train.parquet" \
  data.val_files="$DATA/test.parquet" \
  data.train_batch_size=64 \
  data.max_prompt_length=1024 \
  data.max_response_length=1024 \
  actor_rollout_ref.model.path="$MODEL" \
  actor_rollout_ref.actor.optim.lr=1e-6 \
  actor_rollout_ref.actor.ppo_mini_batch_size=32 \
  actor_rollout_ref.rollout.name=vllm \
  actor_rollout_ref.rollout.n=8 \
  trainer.n_gpus_per_node=8 \
  trainer.nnodes=1 \
  reward.custom_reward_function.path="$ADAPTER" \
  reward.custom_reward_function.name=compute_score_async \
  +reward.custom_reward_function.reward_kwargs.url="$MEDIX_REWARD_URL" \
  "$@"
