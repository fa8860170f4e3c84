"""Builds vLLM's AsyncLLM from the worker's settings.

AsyncLLM (engine core in its own process) rather than the in-process LLMEngine: resumable
streaming-input sessions are an AsyncLLM feature, and the core process keeps stepping the model
while this process's event loop serves Redis, dispatches API calls and relays output.
"""

from __future__ import annotations

import os

from engine_worker.engine_stats import EngineStatsLogger
from engine_worker.profile_store import cache_path
from engine_worker.settings import WorkerSettings


def build_engine(settings: WorkerSettings):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from vllm.config import KVTransferConfig
    from vllm.engine.arg_utils import AsyncEngineArgs
    from vllm.v1.engine.async_llm import AsyncLLM

    from engine_worker.engine_core.queue_scheduler import CONFIG_KEY, QueueSchedulerConfig

    profile_path = str(cache_path(settings.model_path, settings.engine_dtype))  # both plugins read it
    args = AsyncEngineArgs(
        model=settings.model_path,
        served_model_name=[settings.model_id],
        dtype=settings.engine_dtype,
        max_model_len=settings.max_model_len,
        kv_cache_memory_bytes=settings.kv_cache_bytes,
        max_num_seqs=settings.max_num_seqs,
        enforce_eager=settings.enforce_eager,
        enable_prefix_caching=True,
        # None leaves vLLM's default: the benchmark gives each explicitly, to every system alike.
        **{name: value for name, value in (
            ("max_num_batched_tokens", settings.max_num_batched_tokens),
            ("enable_chunked_prefill", settings.enable_chunked_prefill),
            ("async_scheduling", settings.async_scheduling), ("block_size", settings.block_size))
           if value is not None},
        # Lower priority values run first; sessions give each request its ORIGINAL arrival time.
        scheduling_policy="priority",
        kv_transfer_config=_swap_connector(settings, KVTransferConfig, profile_path),
        scheduler_cls="engine_worker.engine_core.queue_scheduler.PolicyScheduler",
        additional_config={CONFIG_KEY: QueueSchedulerConfig(
            name=settings.scheduler, options=settings.scheduler_options, every=settings.scheduler_every,
            profile_path=profile_path).model_dump(mode="json")},
    )
    return AsyncLLM.from_engine_args(args, stat_loggers=[EngineStatsLogger])


def effective_config(engine) -> dict:
    """The running engine's settings as common.engine_facts reads them: its VllmConfig dumped
    as vLLM's own /server_info endpoint dumps it (the stock server's side of a comparison)."""
    import pydantic
    from vllm.config import VllmConfig

    from common.engine_facts import config_facts

    return config_facts(pydantic.TypeAdapter(VllmConfig).dump_python(engine.vllm_config, mode="json", fallback=str))


def _swap_connector(settings: WorkerSettings, config_cls, profile_path: str):
    """The connector that swaps paused requests' KV to host memory (engine_worker/engine_core/kv_swap).

    Loaded for every policy, so all of them run the same engine; only swap decisions use it.
    """
    from engine_worker.engine_core.kv_swap.connector import SwapConnectorConfig

    extra = SwapConnectorConfig(
        redis_url=settings.redis_url, worker_id=settings.worker_id, capacity_bytes=settings.swap_space_bytes,
        profile_path=profile_path)
    return config_cls(kv_connector="HostSwapConnector",
                      kv_connector_module_path="engine_worker.engine_core.kv_swap.connector",
                      kv_role="kv_both", kv_connector_extra_config=extra.model_dump())
