"""The reward: pure checks, screening and rules, and the pipeline that gathers verdicts and vectors for them."""
