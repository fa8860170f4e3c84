"""The engine settings every system of one bench run gets, set explicitly (never left to
defaults that happen to match), and the check that the running engines really use them.

vLLM's CPU backend shows why defaults are not a control: it reserves cores for the front-end
process, one more when a KV connector is loaded (vllm/utils/ompmultiprocessing.py), so stock
vLLM's server bound its engine to 1 core of this 2-core machine and our worker (which loads the
swap connector) to both. Here both get VLLM_CPU_OMP_THREADS_BIND with the same core list.

What each engine then really runs with is read back (common.engine_facts) and compared; the
bench refuses to compare systems whose engines differ (bench.summary).
"""

from __future__ import annotations

import os
from dataclasses import dataclass


def allowed_cpus() -> str:
    """This process's CPUs as a vLLM core list ("0-1", "0,2-3")."""
    ranges: list[list[int]] = []
    for cpu in sorted(os.sched_getaffinity(0)):
        if ranges and cpu == ranges[-1][1] + 1:
            ranges[-1][1] = cpu
        else:
            ranges.append([cpu, cpu])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in ranges)


@dataclass(frozen=True)
class EngineSettings:
    dtype: str
    kv_cache_bytes: int
    max_model_len: int
    max_num_seqs: int
    max_num_batched_tokens: int
    enable_chunked_prefill: bool
    async_scheduling: bool
    block_size: int
    cpu_cores: str
    """VLLM_CPU_OMP_THREADS_BIND: the cores the engine's OpenMP threads are bound to."""

    def cpu_env(self) -> dict[str, str]:
        # With an explicit core list vLLM binds exactly it; no cores are reserved on top.
        return {"VLLM_CPU_OMP_THREADS_BIND": self.cpu_cores, "VLLM_CPU_NUM_OF_RESERVED_CPU": "0"}

    def stock_args(self) -> list[str]:
        """vLLM's OpenAI server CLI for these settings (prefix caching on, eager, as our worker)."""
        return [
            "--dtype", self.dtype, "--kv-cache-memory-bytes", str(self.kv_cache_bytes),
            "--max-model-len", str(self.max_model_len), "--max-num-seqs", str(self.max_num_seqs),
            "--max-num-batched-tokens", str(self.max_num_batched_tokens),
            "--enable-chunked-prefill" if self.enable_chunked_prefill else "--no-enable-chunked-prefill",
            "--async-scheduling" if self.async_scheduling else "--no-async-scheduling",
            "--block-size", str(self.block_size), "--enforce-eager", "--enable-prefix-caching",
        ]

    def worker_env(self) -> dict[str, str]:
        """Our engine worker's AUGSERVE_* settings for the same engine (engine_worker.settings)."""
        return {
            "AUGSERVE_DTYPE": self.dtype, "AUGSERVE_KV_CACHE_BYTES": str(self.kv_cache_bytes),
            "AUGSERVE_MAX_MODEL_LEN": str(self.max_model_len), "AUGSERVE_MAX_NUM_SEQS": str(self.max_num_seqs),
            "AUGSERVE_MAX_NUM_BATCHED_TOKENS": str(self.max_num_batched_tokens),
            "AUGSERVE_ENABLE_CHUNKED_PREFILL": str(self.enable_chunked_prefill).lower(),
            "AUGSERVE_ASYNC_SCHEDULING": str(self.async_scheduling).lower(),
            "AUGSERVE_BLOCK_SIZE": str(self.block_size), "AUGSERVE_ENFORCE_EAGER": "true",
            **self.cpu_env(),
        }
