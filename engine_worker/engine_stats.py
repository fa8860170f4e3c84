"""The engine's per-step scheduler stats (KV pool usage, running/waiting counts), kept for the
intercept controller. A vLLM stat logger: vLLM calls `record` after every engine step."""

from __future__ import annotations

from dataclasses import dataclass

from vllm.v1.metrics.loggers import StatLoggerBase


@dataclass
class EngineSnapshot:
    kv_cache_usage: float = 0.0
    num_running: int = 0
    num_waiting: int = 0
    num_deferred: int = 0
    """Waiting requests the scheduler skipped at the last step (vLLM's "Deferred"): above all,
    sessions paused between two chunks of input, each still holding a running slot."""
    steps: int = 0
    """Engine steps recorded so far: tells the controller whether the usage is older than a release."""
    deferred_request_steps: int = 0
    """num_deferred summed over every step recorded: slot-steps held by requests that could not run
    (a paused session that waits for a call's result, or one whose last segment ended but whose
    input is still open: see session.py `_last_segment`)."""


LATEST = EngineSnapshot()
"""One engine per worker process, so one module-level snapshot."""


class EngineStatsLogger(StatLoggerBase):
    def __init__(self, vllm_config, engine_index: int = 0):
        self.block_size = vllm_config.cache_config.block_size

    def record(self, scheduler_stats, iteration_stats, mm_cache_stats=None, engine_idx: int = 0):
        if scheduler_stats is not None:
            LATEST.kv_cache_usage = scheduler_stats.kv_cache_usage
            LATEST.num_running = scheduler_stats.num_running_reqs
            LATEST.num_waiting = scheduler_stats.num_waiting_reqs
            LATEST.num_deferred = scheduler_stats.num_skipped_waiting_reqs
            LATEST.steps += 1
            LATEST.deferred_request_steps += scheduler_stats.num_skipped_waiting_reqs

    def log_engine_initialized(self):
        pass
