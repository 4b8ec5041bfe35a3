"""Development, test and benchmark tools, not the serving path: nothing under `medix_reward_tools` is
imported by the service (`create_app` and what it wires).

- `live`: an ASGI app served by uvicorn in process, on a loopback port (tests, benchmark, scripted judge).
- `scripted_judge`: an OpenAI-compatible judge whose verdicts, latency, capacity and faults a test controls.
- `bench`: the benchmark (`medix-reward bench`); `soak`: the bounded soak (`medix-reward soak`).
- `judge_stack`: the local vLLM judge on CPU (`medix-reward judge prepare|start|stop`).
- `common`: the helpers they share: free ports, waiting until ready, GRPO-shaped batches, percentiles.
"""
