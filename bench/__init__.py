"""The benchmark: replays the InferCept request mixture against our stack (one intercept policy at
a time) and against stock vLLM (its own OpenAI server, the tool loop in the client), over HTTP
exactly as a client app would, and reports normalized latency, throughput, the sustainable rate
and what each system did with paused requests.

    python -m bench --quick         # < 3 min on 2 idle cores (see bench/config.py for what it runs)
    python -m bench                 # the full profile: every system, the rate sweep, zero-interception

Modules, in dependency order: trace (the data file) -> workload (plans, arrivals) -> prompts
(filler text of exact token length) -> client (load generator) -> tool_loop, client_calls,
stock_client (stock vLLM's client-side loop) -> stock (its server) -> systems (ours or stock,
one interface) -> metrics, sustainable, summary (pure) -> report (tables, JSON), plots ->
runner -> __main__ (CLI).
"""
