"""The engine worker's configuration: one typed object, read from the environment once."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, model_validator

from common.schemas import HEARTBEAT_S
from common.settings import CommonSettings
from engine_worker.policies.handling import PolicyName
from engine_worker.policies.lamps import SERVING_STARVATION_THRESHOLD
from engine_worker.policies.schedulers import SchedulerName


def native_bf16() -> bool:
    if Path("/dev/nvidiactl").exists():
        return True
    cpuinfo = Path("/proc/cpuinfo")
    flags = cpuinfo.read_text() if cpuinfo.exists() else ""
    return "avx512_bf16" in flags or "amx_bf16" in flags


def engine_dtype_for(dtype: str) -> str:
    """The dtype the engine runs for a configured one: auto is bfloat16 where it is native (GPUs,
    CPUs with AVX512-BF16/AMX), else float32. The benchmark gives stock vLLM the same."""
    if dtype != "auto":
        return dtype
    return "bfloat16" if native_bf16() else "float32"


def _default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


SCHEDULER_DEFAULTS: dict[str, dict] = {
    SchedulerName.LAMPS: {"starvation_threshold": SERVING_STARVATION_THRESHOLD}}
"""Options a scheduler gets when AUGSERVE_SCHEDULER_OPTIONS is not set (lamps.py says why)."""


def default_scheduler_options(scheduler: str) -> dict:
    return dict(SCHEDULER_DEFAULTS.get(scheduler, {}))


class WorkerSettings(CommonSettings):
    worker_id: str = Field(default_factory=_default_worker_id)
    """Consumer name in the request stream's group; results of its API calls come back to it."""
    model_path: str
    """Local Hugging Face model folder (weights, config, tokenizer with chat template)."""
    model_id: str = "SmolLM2-135M-Instruct"
    """The name clients use (OpenAI `model`)."""
    dtype: Literal["bfloat16", "float32", "float16", "auto"] = "auto"
    """auto: bfloat16 on GPUs and on CPUs with native bf16 (AVX512-BF16/AMX), else float32: on an
    AVX2-only CPU bf16 measured 4-7x slower than float32 (bench/config.py)."""
    max_model_len: Annotated[int, Field(ge=64, le=131072)] = 4096
    kv_cache_bytes: Annotated[int, Field(ge=1 << 20)] = 512 << 20
    """Size of vLLM's KV pool: the memory that paused requests compete for."""
    swap_space_bytes: Annotated[int, Field(ge=0)] = 1 << 30
    """Host buffer for swapped-out KV (engine_worker/engine_core/kv_swap); 0 disables swapping."""
    max_num_seqs: Annotated[int, Field(ge=1, le=1024)] = 64
    max_inflight: Annotated[int, Field(ge=1, le=4096)] = 256
    """Requests this worker holds at once (running, queued in vLLM or paused at a call)."""
    enforce_eager: bool = True
    """torch.compile costs 15-43 s at start-up on CPU for little gain on small models."""
    max_num_batched_tokens: Annotated[int, Field(ge=16)] | None = None
    """Token budget of one engine step (None: vLLM's default). The benchmark sets it, and the
    settings below, explicitly for every system it compares."""
    enable_chunked_prefill: bool | None = None
    """None: vLLM's default (on)."""
    async_scheduling: bool | None = None
    """None: vLLM's default (off on CPU)."""
    block_size: Annotated[int, Field(ge=1)] | None = None
    """KV block size in tokens (None: the platform's, 128 on CPU)."""
    metrics_port: Annotated[int, Field(ge=0, le=65535)] = 0
    """Prometheus port of this worker (0: none)."""
    metrics_host: str = "127.0.0.1"
    """Address the metrics port binds; 0.0.0.0 in containers so Prometheus can scrape it."""
    cancel_poll_s: Annotated[float, Field(gt=0, le=60)] = 0.5
    """How often the worker checks whether the clients of its requests went away (one MGET)."""
    heartbeat_s: Annotated[float, Field(gt=0, le=60)] = HEARTBEAT_S
    """Status in WORKERS_HASH this often; MISSED_HEARTBEATS_DEAD (common.schemas) missed ones and
    the others adopt this worker's requests."""
    program_affinity_ttl_s: Annotated[float, Field(gt=0, le=86_400)] = 600.0
    """How long this worker stays a program's holder (augserve:program:<id>) after starting one of
    its requests; the gateway's program-affinity routing sends the program's next calls here. A
    bounded guess: whether the program's prefix is still in this worker's prefix cache is not
    known outside vLLM (it may be evicted sooner under memory pressure), and 10 minutes covers the
    gaps between an agent's calls (tool and human turns) without pinning a program forever."""
    policy: PolicyName = PolicyName.INFERCEPT_ON_DEMAND
    """What a paused request's KV cache gets (engine_worker/policies/handling.py): `preserve` keeps
    it, `vllm` discards it and re-queues the resumed request at the back, `improved-discard`
    discards and keeps its original place, `swap` copies it to the host buffer, `infercept`
    chooses by minimum waste every tick, `infercept-on-demand` does so only while a request waits
    for memory (else preserves), `infercept-code` is the released code's variant of that
    rule, `continuum` pins it for a TTL then evicts it, `fastserve` keeps it until the pool's free
    blocks fall below `offload_reserve_blocks`, then swaps out the latest to resume first."""
    offload_reserve_blocks: Annotated[int, Field(ge=0)] | None = None
    """Free KV blocks the `fastserve` policy keeps for the running batch to grow into (FastServe:
    the maximum batch size). None: one block per running slot, min(max_num_seqs, pool blocks // 2):
    each running request holds at least one block and may need one more, so no more than half the
    pool's blocks can be running slots with a block to grow into."""
    scheduler: SchedulerName = SchedulerName.LAMPS
    """Queue order in the engine (engine_worker/engine_core/queue_scheduler.py): FCFS by original arrival,
    FastServe's skip-join MLFQ, LAMPS' memory-over-time ranking (the default: it won the fair
    full-scale bench, README), Continuum's program-level FCFS, Autellix's program-level attained
    service."""
    scheduler_options: dict | None = None
    """Keyword options of the scheduler (JSON), e.g. {"starvation_s": 0.3} for FastServe. None:
    the serving defaults of the chosen scheduler (SCHEDULER_DEFAULTS), {} the policy's own."""
    scheduler_every: Annotated[int, Field(ge=1, le=10000)] = 1
    """Re-order the queues every this many engine steps."""
    duration_estimate: Literal["elapsed", "history", "oracle"] = "elapsed"
    """Call duration in the preserve waste: time since the call began (the paper), the
    estimator's history conditional on it, or the plan's stated duration (comparisons only)."""
    policy_interval_s: Annotated[float, Field(gt=0, le=10)] = 0.05
    """How often paused requests are re-evaluated."""

    @model_validator(mode="after")
    def _scheduler_defaults(self) -> WorkerSettings:
        if self.scheduler_options is None:
            self.scheduler_options = default_scheduler_options(self.scheduler)
        return self

    @property
    def engine_dtype(self) -> str:
        return engine_dtype_for(self.dtype)

    def reserve_blocks_for(self, pool_blocks: int) -> int:
        """The `fastserve` policy's reserve in a pool of this many usable blocks."""
        if self.offload_reserve_blocks is not None:
            return self.offload_reserve_blocks
        return min(self.max_num_seqs, pool_blocks // 2)
