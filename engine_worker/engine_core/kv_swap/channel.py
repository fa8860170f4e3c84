"""The engine worker's end of the swap path: mark a request before aborting it, read copy times."""

from __future__ import annotations

from dataclasses import dataclass

from common.names import kv_swap_stats
from engine_worker.engine_core.kv_swap import marks


@dataclass(frozen=True)
class SwapTimes:
    out_s: float = 0.0
    in_s: float = 0.0


class SwapChannel:
    def __init__(self, redis, worker_id: str):
        self._redis = redis
        self._worker_id = worker_id

    async def mark(self, vllm_request_id: str) -> None:
        await marks.mark(self._redis, self._worker_id, vllm_request_id)

    async def unmark(self, vllm_request_id: str) -> None:
        await marks.unmark(self._redis, self._worker_id, vllm_request_id)

    async def times(self, vllm_request_id: str) -> SwapTimes:
        raw = await self._redis.hgetall(kv_swap_stats(vllm_request_id))
        values = {k.decode() if isinstance(k, bytes) else k: float(v) for k, v in raw.items()}
        return SwapTimes(values.get("out_s", 0.0), values.get("in_s", 0.0))
