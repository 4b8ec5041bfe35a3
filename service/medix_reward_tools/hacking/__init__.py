"""Reward hacking measured in training: GRPO against the running service under each preset
(`medix-reward experiment hacking`; docs/hacking-in-training.md)."""
