"""Builds vLLM's AsyncLLM from the worker's settings.

AsyncLLM (engine core in its own process) rather than the in-process LLMEngine: resumable
streaming-input sessions are an AsyncLLM feature, and the core process keeps stepping the model
while this process's event loop serves Redis, dispatches API calls and relays output.
"""

from __future__ import annotations

import os

from engine_worker.engine_stats import EngineStatsLogger
from engine_worker.settings import WorkerSettings


def build_engine(settings: WorkerSettings):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from vllm.engine.arg_utils import AsyncEngineArgs
    from vllm.v1.engine.async_llm import AsyncLLM

    args = AsyncEngineArgs(
        model=settings.model_path,
        served_model_name=[settings.model_id],
        dtype=settings.engine_dtype,
        max_model_len=settings.max_model_len,
        kv_cache_memory_bytes=settings.kv_cache_bytes,
        max_num_seqs=settings.max_num_seqs,
        enforce_eager=settings.enforce_eager,
        enable_prefix_caching=True,
        # Lower priority values run first; sessions give each request its ORIGINAL arrival time.
        scheduling_policy="priority",
    )
    return AsyncLLM.from_engine_args(args, stat_loggers=[EngineStatsLogger])
