"""Drop-in reward functions for RL trainers, each calling a running medix-reward service.

- `easyr1`: EasyR1 and the MediX-R1 fork (`worker.reward.reward_function=PATH:compute_score`)
- `verl`: verl's `custom_reward_function` (single, async, and batch forms)
- `trl`: TRL GRPOTrainer `reward_funcs` (composite and per component, sync and async)
OpenRLHF and slime call the service directly: see the service's `/openrlhf/get_reward` and `/slime/reward`.
"""
