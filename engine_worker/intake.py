"""Pulls requests from the gateway's stream (consumer group) and publishes their output events.

Pull-based load balancing: a worker reads a request only when it has room for it. A request
stays pending in the group until its final event is published (XACK then), so when a worker dies
another can claim what it held: re-run it if it had emitted nothing yet, else fail it cleanly.
"""

from __future__ import annotations

import json
import logging
import time

import redis.asyncio as aioredis

from common.names import ENGINE_GROUP, ENGINE_REQUEST_STREAM, OUTPUT_STREAM_TTL_S, WORKERS_HASH, output_stream
from common.schemas import EngineRequest, ErrorEvent, FinalEvent, OutputEnvelope, OutputEvent

log = logging.getLogger(__name__)


class RequestStream:
    def __init__(self, redis: aioredis.Redis, worker_id: str):
        self._redis = redis
        self.worker_id = worker_id

    async def ensure_group(self) -> None:
        try:
            await self._redis.xgroup_create(ENGINE_REQUEST_STREAM, ENGINE_GROUP, id="0", mkstream=True)
        except aioredis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def next_requests(self, count: int, block_ms: int = 1000) -> list[tuple[str, dict]]:
        """Up to `count` new entries for this consumer: (entry id, fields)."""
        reply = await self._redis.xreadgroup(
            ENGINE_GROUP, self.worker_id, {ENGINE_REQUEST_STREAM: ">"}, count=count, block=block_ms,
        )
        return [(eid, fields) for _s, entries in reply or [] for eid, fields in entries]

    async def ack(self, entry_id: str) -> None:
        await self._redis.xack(ENGINE_REQUEST_STREAM, ENGINE_GROUP, entry_id)
        await self._redis.xdel(ENGINE_REQUEST_STREAM, entry_id)

    async def claim_from_dead_workers(self, stale_after_s: float) -> list[tuple[str, dict]]:
        """Entries pending on consumers whose heartbeat stopped, now owned by this worker."""
        claimed: list[tuple[str, dict]] = []
        consumers = await self._redis.xinfo_consumers(ENGINE_REQUEST_STREAM, ENGINE_GROUP)
        beats = await self._redis.hgetall(WORKERS_HASH)
        now = time.time()
        for consumer in consumers:
            name = consumer["name"]
            name = name.decode() if isinstance(name, bytes) else name
            if name == self.worker_id or consumer["pending"] == 0:
                continue
            beat = beats.get(name.encode()) or beats.get(name)
            last = json.loads(beat)["heartbeat_at"] if beat else 0.0
            if now - last < stale_after_s:
                continue
            pending = await self._redis.xpending_range(
                ENGINE_REQUEST_STREAM, ENGINE_GROUP, min="-", max="+", count=1000, consumername=name,
            )
            ids = [p["message_id"] for p in pending]
            if ids:
                claimed += await self._redis.xclaim(ENGINE_REQUEST_STREAM, ENGINE_GROUP, self.worker_id, 0, ids)
            await self._redis.xgroup_delconsumer(ENGINE_REQUEST_STREAM, ENGINE_GROUP, name)
            await self._redis.hdel(WORKERS_HASH, name)
            log.warning("claimed %d request(s) from dead worker %s", len(ids), name)
        return claimed

    async def has_output(self, request_id: str) -> bool:
        return await self._redis.xlen(output_stream(request_id)) > 0


def parse_request(fields: dict) -> EngineRequest:
    raw = fields.get(b"request") or fields.get("request")
    return EngineRequest.model_validate_json(raw)


class OutputPublisher:
    def __init__(self, redis: aioredis.Redis):
        self._redis = redis

    async def emit(self, request_id: str, event: OutputEvent) -> None:
        key = output_stream(request_id)
        await self._redis.xadd(key, {"event": OutputEnvelope(event=event).model_dump_json()})
        if isinstance(event, (FinalEvent, ErrorEvent)):
            await self._redis.expire(key, OUTPUT_STREAM_TTL_S)
