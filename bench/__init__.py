"""The benchmark: replays the InferCept request mixture against the whole stack, one intercept
policy at a time, over HTTP exactly as a client app would, and reports normalized latency,
throughput and what the policy did with paused requests.

    python -m bench --quick         # ~3 min on 2 cores (see bench/config.py for what it runs)
    python -m bench                 # the full profile: every policy, the rate sweep

Modules, in dependency order: trace (the data file) -> workload (plans, arrivals) -> prompts
(filler text of exact token length) -> client (load generator) -> metrics (pure) -> report
(table, JSON, plots) -> runner (one stack per policy) -> __main__ (CLI).
"""
