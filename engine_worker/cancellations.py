"""Which of this worker's requests their clients abandoned.

The gateway sets `cancelled_request(id)` when a client disconnects or its request times out
(gateway/engine.py). The worker polls the keys of the requests it serves, one MGET per poll, and
cancels their tasks: vLLM aborts a request whose output stream is cancelled, freeing its slot and
blocks, and a request paused at a call stops waiting for it.
"""

from __future__ import annotations

from collections.abc import Collection

import redis.asyncio as aioredis

from common.names import cancelled_request


class CancelWatch:
    def __init__(self, redis: aioredis.Redis):
        self._redis = redis

    async def cancelled(self, request_ids: Collection[str]) -> set[str]:
        ids = list(request_ids)
        if not ids:
            return set()
        values = await self._redis.mget([cancelled_request(rid) for rid in ids])
        return {rid for rid, value in zip(ids, values) if value is not None}
