"""Pulls requests from the gateway's streams (consumer group) and publishes their output events.

Pull-based load balancing: a worker reads a request only when it has room for it. Besides the
shared stream every worker reads its own (program-affinity routing puts requests there). A request
stays pending in the group until its final event is published (XACK then), so when a worker dies
another can claim what it held and continue it from its output events (engine_worker/checkpoint.py).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import cast

import redis.asyncio as aioredis
from redis.typing import EncodableT, FieldT, KeyT, StreamIdT

from common.names import (
    ENGINE_GROUP,
    ENGINE_REQUEST_STREAM,
    OUTPUT_STREAM_TTL_S,
    WORKER_STREAMS_SET,
    WORKERS_HASH,
    engine_worker_stream,
    output_stream,
    program_holder,
)
from common.redis_replies import ClaimedEntries, StreamEntries, StreamsReply
from common.redis_retry import retry_async
from common.schemas import EngineRequest, ErrorEvent, FinalEvent, OutputEnvelope, OutputEvent, WorkerStatus

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Entry:
    """One request entry. Entry ids are per stream, so an entry is tracked and acked by both."""

    stream: str
    entry_id: str
    fields: dict

    @property
    def key(self) -> tuple[str, str]:
        return (self.stream, self.entry_id)


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RequestStream:
    """This worker's intake: its own stream (requests routed to it by program affinity) and the
    shared stream, both through ENGINE_GROUP, read in one XREADGROUP call, own stream first."""

    def __init__(self, redis: aioredis.Redis, worker_id: str):
        self._redis = redis
        self.worker_id = worker_id
        self.own_stream = engine_worker_stream(worker_id)

    async def ensure_group(self) -> None:
        """Creates the group on both streams (from id 0: entries added before it are delivered)
        and registers the own stream, so it is adopted if this worker dies or stops."""
        await self._redis.sadd(WORKER_STREAMS_SET, self.worker_id)
        for stream in (self.own_stream, ENGINE_REQUEST_STREAM):
            await _create_group(self._redis, stream)

    async def next_requests(self, count: int, block_ms: int = 1000) -> list[Entry]:
        """New entries for this consumer, own stream first. COUNT applies per stream, so there
        may be up to 2 x `count`."""
        streams: dict[KeyT, StreamIdT] = {self.own_stream: ">", ENGINE_REQUEST_STREAM: ">"}
        try:
            reply = cast(StreamsReply, await self._redis.xreadgroup(ENGINE_GROUP, self.worker_id, streams,
                                                                    count=count, block=block_ms))
        except aioredis.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            # A stream was deleted under us (adopted while this worker looked dead): recreate.
            log.warning("request stream group missing, recreating: %s", exc)
            await self.ensure_group()
            return []
        return _entries(reply)

    async def own_pending(self) -> list[Entry]:
        """Entries pending on this consumer name from an earlier run of this worker id (it died,
        it was restarted by the supervisor): nobody else claims them, since the name is alive again,
        so this worker treats them as claimed from a dead worker."""
        entries: list[Entry] = []
        for stream in (self.own_stream, ENGINE_REQUEST_STREAM):
            reply = cast(StreamsReply, await self._redis.xreadgroup(ENGINE_GROUP, self.worker_id, {stream: "0"},
                                                                    count=1000))
            # Pending entries deleted meanwhile come back with no fields: nothing left to run.
            entries += [e for e in _entries(reply) if e.fields]
        return entries

    async def ack(self, entry: Entry) -> None:
        await self._redis.xack(entry.stream, ENGINE_GROUP, entry.entry_id)
        await self._redis.xdel(entry.stream, entry.entry_id)

    async def claim_from_dead_workers(self, stale_after_s: float) -> list[Entry]:
        """Entries of workers whose heartbeat is stale or absent, now owned by this worker: what
        they had pending on the shared stream, and everything in their own streams (pending or
        never delivered). A dead worker's stream is deleted once it is empty, i.e. after the
        adopted entries are acked (deleting it earlier would lose them if this worker died too)."""
        beats = {_text(k): v for k, v in (await self._redis.hgetall(WORKERS_HASH)).items()}
        now = time.time()

        def dead(name: str) -> bool:
            if name == self.worker_id:
                return False
            beat = beats.get(name)
            return beat is None or now - WorkerStatus.model_validate_json(beat).heartbeat_at >= stale_after_s

        claimed: list[Entry] = []
        for consumer in await self._redis.xinfo_consumers(ENGINE_REQUEST_STREAM, ENGINE_GROUP):
            name = _text(consumer["name"])
            if consumer["pending"] == 0 or not dead(name):
                continue
            claimed += await self._claim_pending(ENGINE_REQUEST_STREAM, name)
            await self._redis.xgroup_delconsumer(ENGINE_REQUEST_STREAM, ENGINE_GROUP, name)
            await self._redis.hdel(WORKERS_HASH, name)
            log.warning("claimed shared-stream request(s) from dead worker %s", name)
        for worker in sorted(_text(m) for m in await self._redis.smembers(WORKER_STREAMS_SET)):
            if dead(worker):
                claimed += await self._adopt_stream(worker, dead)
        return claimed

    async def _claim_pending(self, stream: str, consumer: str) -> list[Entry]:
        pending = await self._redis.xpending_range(stream, ENGINE_GROUP, min="-", max="+", count=1000,
                                                   consumername=consumer)
        ids: list[StreamIdT] = [p["message_id"] for p in pending]
        if not ids:
            return []
        entries = cast(ClaimedEntries, await self._redis.xclaim(stream, ENGINE_GROUP, self.worker_id, 0, ids))
        # XCLAIM answers entries deleted meanwhile with no fields: nothing left to run there.
        return [Entry(stream, _text(eid), fields) for eid, fields in entries if fields]

    async def _adopt_stream(self, worker: str, dead) -> list[Entry]:
        stream = engine_worker_stream(worker)
        # The gateway may have routed to the worker just before it died, creating the stream
        # without a group if the worker never made one: make sure there is one to read through.
        await _create_group(self._redis, stream)
        adopted: list[Entry] = []
        for consumer in await self._redis.xinfo_consumers(stream, ENGINE_GROUP):
            name = _text(consumer["name"])
            if consumer["pending"] and dead(name):  # the owner, or an adopter that died too
                adopted += await self._claim_pending(stream, name)
                await self._redis.xgroup_delconsumer(stream, ENGINE_GROUP, name)
        while True:  # entries the dead worker never read
            reply = cast(StreamsReply, await self._redis.xreadgroup(ENGINE_GROUP, self.worker_id, {stream: ">"},
                                                                    count=256))
            fresh = _entries(reply)
            if not fresh:
                break
            adopted += fresh
        if await self._redis.eval(_DELETE_IF_EMPTY, 2, stream, WORKER_STREAMS_SET, worker):
            log.info("deleted the empty request stream of dead worker %s", worker)
        if adopted:
            log.warning("adopted %d request(s) from the stream of dead worker %s", len(adopted), worker)
        return adopted

    async def record_holder(self, program_id: str, ttl_s: float) -> None:
        """This worker now holds the program's KV/prefix (as far as anyone can tell: see
        WorkerSettings.program_affinity_ttl_s); the gateway routes the program's next calls here."""
        await self._redis.set(program_holder(program_id), self.worker_id, px=max(1, int(ttl_s * 1000)))

    async def output_events(self, request_id: str) -> list[OutputEvent]:
        """The request's output events so far, in order (the gateway deletes them once it has
        relayed the last one, so a request already answered reads as none)."""
        entries = cast(StreamEntries, await self._redis.xrange(output_stream(request_id)))
        return [OutputEnvelope.model_validate_json(fields.get(b"event") or fields["event"]).event
                for _eid, fields in entries]


# Atomic, so an entry added between the check and the delete is never dropped with the stream.
_DELETE_IF_EMPTY = """
if redis.call('XLEN', KEYS[1]) == 0 then
  redis.call('DEL', KEYS[1])
  redis.call('SREM', KEYS[2], ARGV[1])
  return 1
end
return 0
"""


async def _create_group(redis: aioredis.Redis, stream: str) -> None:
    try:
        await redis.xgroup_create(stream, ENGINE_GROUP, id="0", mkstream=True)
    except aioredis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def missing_stream_or_group(exc: aioredis.ResponseError) -> bool:
    """What a Redis restarted without its data answers: the group (NOGROUP) or the stream (XINFO:
    no such key) is gone; ensure_group recreates both."""
    text = str(exc)
    return "NOGROUP" in text or "no such key" in text


def _entries(reply: StreamsReply) -> list[Entry]:
    return [Entry(_text(stream), _text(eid), fields) for stream, entries in reply or [] for eid, fields in entries]


def parse_request(fields: dict) -> EngineRequest:
    raw = fields.get(b"request") or fields.get("request")
    return EngineRequest.model_validate_json(raw)  # type: ignore[arg-type]  # None fails as malformed


class OutputPublisher:
    def __init__(self, redis: aioredis.Redis):
        self._redis = redis

    async def emit(self, request_id: str, *events: OutputEvent) -> None:
        """Publishes the events in one transaction: all of them or none, in order (a segment's
        last tokens and how it ended must never be split by a death: see common.schemas).
        Through a Redis restart (bounded: common.redis_retry): the gateway reads on from the last
        event it saw, so a request whose events only wait keeps going."""
        key = output_stream(request_id)
        payloads: list[dict[FieldT, EncodableT]] = [{"event": OutputEnvelope(event=event).model_dump_json()}
                                                     for event in events]
        last = isinstance(events[-1], (FinalEvent, ErrorEvent)) if events else False

        async def publish() -> None:
            if len(payloads) == 1 and not last:  # the common case, one delta: no transaction needed
                await self._redis.xadd(key, payloads[0])
                return
            async with self._redis.pipeline(transaction=True) as pipe:
                for payload in payloads:
                    pipe.xadd(key, payload)
                if last:
                    pipe.expire(key, OUTPUT_STREAM_TTL_S)
                await pipe.execute()

        if payloads:
            await retry_async(publish, f"output of {request_id}", log)
