"""A discrete-event simulator of one engine, on the worker's own policy objects.

engine.py steps the engine iteration by iteration (blocks.py: the paged KV pool with prefix
reuse; state.py: a request's mutable state); it calls handling.POLICIES and
schedulers.make_scheduler from engine_worker/policies unchanged, so a policy change shows up in
the worker and here alike. hardware.py: cost models per hardware x model, with their sources;
workload.py: the bench's workloads (bench.workload) and a user's trace; run.py: one run, reported
by bench.metrics; sweep.py: rate sweeps and sustainable rates (bench.sustainable); rank.py: the
operator's ranking; validate_cpu.py and reproduce.py: the two validations. `python -m sim`.
"""
