"""The LLM judge: verdict types and error codes, prompts and reply parsing (pure), and the client that calls it.

Empty on purpose: importing `medix_reward.judge.prompts` must not import the HTTP client.
"""
