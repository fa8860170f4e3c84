"""The engine settings a fair comparison must hold equal, as a running vLLM engine reports them.

Two sources, the same for every system so that neither side is read differently:
- the engine's VllmConfig after start-up, dumped to JSON the way vLLM's own `/server_info`
  endpoint does (`TypeAdapter(VllmConfig).dump_python(config, mode="json", fallback=str)`): the
  stock server serves it with VLLM_SERVER_DEV_MODE=1, our engine worker puts the facts taken
  from it into its status. The front-end's copy is updated with the pool size the engine core
  allocated (`num_gpu_blocks`), so it is the effective pool, not the requested one.
- the engine core's log: vLLM's CPU backend binds each worker's OpenMP threads to cores and
  logs "core ids=[...]" and "reserved_cpus=[...]". The cores an engine really computes on are
  only known there (vLLM reserves cores for its front-end differently depending on, e.g.,
  whether a KV connector is loaded).

Kept free of vLLM imports: the bench reads facts without loading vLLM.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict

COMPARED = ("dtype", "max_model_len", "block_size", "kv_pool_blocks", "enable_prefix_caching",
            "enable_chunked_prefill", "max_num_batched_tokens", "max_num_seqs", "async_scheduling",
            "enforce_eager", "kv_cache_dtype", "cpu_core_ids")
"""Fields that must be equal between two systems for their figures to be compared."""

_CORE_IDS = re.compile(r"local_rank=(\d+), core ids=\[([0-9, ]*)\]")
_RESERVED = re.compile(r"reserved_cpus=\[([0-9, ]*)\]")


class EngineFacts(BaseModel):
    """What one running engine really uses (see the module docstring for where each comes from)."""

    model_config = ConfigDict(frozen=True)

    dtype: str
    max_model_len: int
    block_size: int
    kv_pool_blocks: int
    """Blocks the engine core allocated (vLLM's num_gpu_blocks, null block included)."""
    enable_prefix_caching: bool
    enable_chunked_prefill: bool
    max_num_batched_tokens: int
    max_num_seqs: int
    async_scheduling: bool
    enforce_eager: bool
    kv_cache_dtype: str
    scheduling_policy: str
    """Not compared: our worker runs vLLM's priority policy to keep a resumed request's original
    arrival, stock vLLM its default FCFS. Recorded so the difference is visible."""
    cpu_core_ids: list[list[int]] | None = None
    """Cores of each engine worker rank's OpenMP threads (CPU backend); None on GPUs or when the
    log did not say."""
    reserved_cpus: list[int] | None = None


def config_facts(config: dict[str, Any]) -> dict[str, Any]:
    """The config-side fields of EngineFacts from a VllmConfig dumped to JSON (see above)."""
    model, cache, sched = config["model_config"], config["cache_config"], config["scheduler_config"]
    return {
        "dtype": str(model["dtype"]).removeprefix("torch."),
        "max_model_len": int(model["max_model_len"]),
        "block_size": int(cache["block_size"]),
        "kv_pool_blocks": int(cache["num_gpu_blocks"] or 0),
        "enable_prefix_caching": bool(cache["enable_prefix_caching"]),
        "enable_chunked_prefill": bool(sched["enable_chunked_prefill"]),
        "max_num_batched_tokens": int(sched["max_num_batched_tokens"]),
        "max_num_seqs": int(sched["max_num_seqs"]),
        "async_scheduling": bool(sched["async_scheduling"]),
        "enforce_eager": bool(model["enforce_eager"]),
        "kv_cache_dtype": str(cache["cache_dtype"]),
        "scheduling_policy": str(sched["policy"]),
    }


def cpu_binding(log_text: str) -> tuple[list[list[int]] | None, list[int] | None]:
    """The last OpenMP binding an engine core logged: core ids per rank, reserved cpus."""
    blocks = log_text.split("OpenMP thread binding info")
    if len(blocks) < 2:
        return None, None
    last = blocks[-1]
    ranks = sorted((int(rank), _ids(ids)) for rank, ids in _CORE_IDS.findall(last))
    reserved = _RESERVED.search(last)
    return [ids for _, ids in ranks] or None, _ids(reserved.group(1)) if reserved else None


def _ids(text: str) -> list[int]:
    return [int(v) for v in text.replace(" ", "").split(",") if v]


def facts(config_fields: dict[str, Any], log_text: str) -> EngineFacts:
    """EngineFacts from config_facts' output and the engine's log."""
    core_ids, reserved = cpu_binding(log_text)
    return EngineFacts(**config_fields, cpu_core_ids=core_ids, reserved_cpus=reserved)


def differences(by_system: dict[str, EngineFacts | None]) -> dict[str, dict[str, Any]]:
    """Compared fields whose values differ between systems ({field: {system: value}}); a system
    whose facts could not be read differs in every field."""
    out: dict[str, dict[str, Any]] = {}
    for name in COMPARED:
        values = {system: (None if f is None else getattr(f, name)) for system, f in by_system.items()}
        if len({repr(v) for v in values.values()}) > 1 or any(v is None and name != "cpu_core_ids"
                                                                    for v in values.values()):
            out[name] = values
    return out
