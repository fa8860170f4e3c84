"""The engine worker's end of the swap path (runs in the worker process).

A paused request leaves the pool by being aborted, and an abort carries no parameters, so before
aborting a request whose KV is to be swapped the worker adds its vLLM id to a per-worker set in
Redis (`common.names.kv_swap_marks`); the connector, in the engine-core process, takes the mark
out when the request finishes (engine_worker/engine_core/kv_swap/marks.py) and copies the blocks
to the host buffer instead of freeing them. The connector writes each copy's time under
`common.names.kv_swap_stats`, read back here for the interception's record.
"""

from __future__ import annotations

from dataclasses import dataclass

from common.names import kv_swap_marks, kv_swap_stats


@dataclass(frozen=True)
class SwapTimes:
    out_s: float = 0.0
    in_s: float = 0.0


class SwapChannel:
    def __init__(self, redis, worker_id: str):
        self._redis = redis
        self._worker_id = worker_id

    async def mark(self, vllm_request_id: str) -> None:
        """Asks the connector to swap this request's KV out when its abort lands."""
        await self._redis.sadd(kv_swap_marks(self._worker_id), vllm_request_id)

    async def times(self, vllm_request_id: str) -> SwapTimes:
        raw = await self._redis.hgetall(kv_swap_stats(vllm_request_id))
        values = {k.decode() if isinstance(k, bytes) else k: float(v) for k, v in raw.items()}
        return SwapTimes(values.get("out_s", 0.0), values.get("in_s", 0.0))
