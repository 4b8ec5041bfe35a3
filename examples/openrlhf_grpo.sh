#!/usr/bin/env bash
# OpenRLHF 0.11.2: GRPO-style training (group_norm advantages) whose rewards come from a running medix-reward
# service, through OpenRLHF's own HTTP reward client (`SingleTurnAgentExecutor._fetch_rewards_via_http`).
#
#   MEDIX_REWARD_URL=http://reward-host:8080 MODEL=Qwen/Qwen2.5-3B-Instruct DATA=~/data/medix.jsonl \
#     examples/openrlhf_grpo.sh [more OpenRLHF flags]
#
# DATA rows hold `prompt` (chat messages) and `ground_truth` ("<TAG> answer"), which OpenRLHF sends as the
# label. An item the service cannot score is HTTP 502 `unscored`: OpenRLHF 0.11.2 tries 5 times, 1 s apart,
# then logs "Failed to fetch reward from remote RM" and leaves the sample without a reward. Start the service
# with MEDIX_REWARD_ADAPTERS__FALLBACK=0.0 to get 0.0 for such items instead (logged, counted).
# tests/trainers/test_openrlhf.py parses these flags with OpenRLHF's own argparse and runs its reward client.
set -euo pipefail

MEDIX_REWARD_URL=${MEDIX_REWARD_URL:-http://127.0.0.1:8080}
MODEL=${MODEL:-Qwen/Qwen2.5-3B-Instruct}
DATA=${DATA:-$HOME/data/medix.jsonl}

python3 -m openrlhf.cli.train_ppo_ray \
  --actor.model_name_or_path "$MODEL" \
  --reward.remote_url "$MEDIX_REWARD_URL/openrlhf/get_reward" \
  --data.prompt_dataset "$DATA" \
  --data.input_key prompt \
  --data.label_key ground_truth \
  --data.apply_chat_template \
  --algo.advantage.estimator group_norm \
  --rollout.n_samples_per_prompt 8 \
  --rollout.max_new_tokens 1024 \
  --vllm.num_engines 1 \
  --train.colocate_all \
  "$@"
