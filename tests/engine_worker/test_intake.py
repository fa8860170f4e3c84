"""RequestStream on a real Redis: the own and the shared stream, acks on the stream an entry came
from, and adoption of a dead or stopped worker's entries."""

from __future__ import annotations

import json
import time

import redis.asyncio as aioredis

from common.names import (
    ENGINE_GROUP,
    ENGINE_REQUEST_STREAM,
    WORKER_STREAMS_SET,
    WORKERS_HASH,
    engine_worker_stream,
    program_holder,
)
from engine_worker.intake import RequestStream

STALE_S = 10.0


async def beat(redis: aioredis.Redis, worker_id: str, age_s: float = 0.0) -> None:
    await redis.hset(WORKERS_HASH, worker_id, json.dumps({"worker_id": worker_id, "inflight": 0,
                                                          "heartbeat_at": time.time() - age_s}))


async def put(redis: aioredis.Redis, stream: str, name: str) -> str:
    return await redis.xadd(stream, {"request": name})


def names(entries) -> list[str]:
    return [e.fields["request"] for e in entries]


async def test_a_worker_reads_its_own_stream_first_then_the_shared_one(redis_async):
    a, b = RequestStream(redis_async, "a"), RequestStream(redis_async, "b")
    await a.ensure_group()
    await b.ensure_group()
    assert await redis_async.smembers(WORKER_STREAMS_SET) == {"a", "b"}
    await put(redis_async, ENGINE_REQUEST_STREAM, "shared-1")
    await put(redis_async, engine_worker_stream("a"), "for-a")
    await put(redis_async, engine_worker_stream("b"), "for-b")
    got = await a.next_requests(count=10, block_ms=100)
    assert names(got) == ["for-a", "shared-1"]
    assert [e.stream for e in got] == [engine_worker_stream("a"), ENGINE_REQUEST_STREAM]
    assert names(await b.next_requests(count=10, block_ms=100)) == ["for-b"]  # never a's entries
    assert await a.next_requests(count=10, block_ms=50) == []


async def test_ack_acknowledges_and_deletes_on_the_stream_the_entry_came_from(redis_async):
    a = RequestStream(redis_async, "a")
    await a.ensure_group()
    own = engine_worker_stream("a")
    # The same entry id on both streams: only the stream tells them apart.
    await redis_async.xadd(own, {"request": "own"}, id="5-0")
    await redis_async.xadd(ENGINE_REQUEST_STREAM, {"request": "shared"}, id="5-0")
    first, second = await a.next_requests(count=10, block_ms=100)
    assert first.key == (own, "5-0") and second.key == (ENGINE_REQUEST_STREAM, "5-0")
    await a.ack(first)
    assert await redis_async.xlen(own) == 0 and (await redis_async.xpending(own, ENGINE_GROUP))["pending"] == 0
    assert await redis_async.xlen(ENGINE_REQUEST_STREAM) == 1
    assert (await redis_async.xpending(ENGINE_REQUEST_STREAM, ENGINE_GROUP))["pending"] == 1
    await a.ack(second)
    assert await redis_async.xlen(ENGINE_REQUEST_STREAM) == 0


async def test_a_live_worker_adopts_a_dead_workers_pending_and_undelivered_entries(redis_async):
    live, dead = RequestStream(redis_async, "live"), RequestStream(redis_async, "dead")
    await live.ensure_group()
    await dead.ensure_group()
    await beat(redis_async, "live")
    await beat(redis_async, "dead")
    await put(redis_async, engine_worker_stream("dead"), "own-read")
    await put(redis_async, ENGINE_REQUEST_STREAM, "shared-read")
    assert names(await dead.next_requests(count=10, block_ms=100)) == ["own-read", "shared-read"]
    await put(redis_async, engine_worker_stream("dead"), "own-unread")
    assert await live.claim_from_dead_workers(STALE_S) == []  # its heartbeat is fresh: alive
    await beat(redis_async, "dead", age_s=STALE_S)
    claimed = await live.claim_from_dead_workers(STALE_S)
    assert sorted(names(claimed)) == ["own-read", "own-unread", "shared-read"]
    dead_stream = engine_worker_stream("dead")
    assert {e.stream for e in claimed} == {dead_stream, ENGINE_REQUEST_STREAM}
    # Adopted entries are pending on the live worker, on the stream they came from; the dead
    # worker's stream stays until they are acked, then goes with its registry entry.
    assert (await redis_async.xpending(dead_stream, ENGINE_GROUP))["consumers"] == [{"name": "live", "pending": 2}]
    assert await redis_async.sismember(WORKER_STREAMS_SET, "dead")
    for entry in claimed:
        await live.ack(entry)
    assert await live.claim_from_dead_workers(STALE_S) == []
    assert not await redis_async.exists(dead_stream)
    assert await redis_async.smembers(WORKER_STREAMS_SET) == {"live"}
    assert await redis_async.xlen(ENGINE_REQUEST_STREAM) == 0


async def test_a_cleanly_stopped_workers_stream_is_adopted_and_one_routed_after_is_not_lost(redis_async):
    live = RequestStream(redis_async, "live")
    await live.ensure_group()
    await beat(redis_async, "live")
    # "gone" registered a stream, then stopped (its heartbeat removed) before reading it.
    await RequestStream(redis_async, "gone").ensure_group()
    await put(redis_async, engine_worker_stream("gone"), "never-read")
    # A gateway that routed to a worker whose stream has no group yet (it SADDs the registry).
    await redis_async.sadd(WORKER_STREAMS_SET, "raced")
    await put(redis_async, engine_worker_stream("raced"), "routed-late")
    claimed = await live.claim_from_dead_workers(STALE_S)
    assert sorted(names(claimed)) == ["never-read", "routed-late"]
    for entry in claimed:
        await live.ack(entry)
    await live.claim_from_dead_workers(STALE_S)
    assert await redis_async.smembers(WORKER_STREAMS_SET) == {"live"}


async def test_a_worker_whose_stream_was_deleted_recreates_its_group(redis_async):
    a = RequestStream(redis_async, "a")
    await a.ensure_group()
    await redis_async.delete(engine_worker_stream("a"))
    await put(redis_async, engine_worker_stream("a"), "after")  # XADD recreates the stream, without a group
    assert await a.next_requests(count=10, block_ms=50) == []  # NOGROUP: the group is recreated from id 0
    assert names(await a.next_requests(count=10, block_ms=100)) == ["after"]


async def test_record_holder_sets_an_expiring_program_key(redis_async):
    a = RequestStream(redis_async, "a")
    await a.record_holder("agent-7", ttl_s=600)
    assert await redis_async.get(program_holder("agent-7")) == "a"
    assert 590_000 < await redis_async.pttl(program_holder("agent-7")) <= 600_000


async def test_a_restarted_worker_gets_back_what_its_previous_run_held(redis_async):
    first = RequestStream(redis_async, "a")
    await first.ensure_group()
    await put(redis_async, ENGINE_REQUEST_STREAM, "held-1")
    await put(redis_async, engine_worker_stream("a"), "held-own")
    done = await put(redis_async, ENGINE_REQUEST_STREAM, "finished")
    await put(redis_async, ENGINE_REQUEST_STREAM, "not-read-yet")
    read = await first.next_requests(count=2, block_ms=100)  # COUNT per stream: not the last one
    await first.ack(next(e for e in read if e.key == (ENGINE_REQUEST_STREAM, done)))
    # The worker dies here; its successor has the same worker id, so nobody else claims these.
    again = RequestStream(redis_async, "a")
    await again.ensure_group()
    assert sorted(names(await again.own_pending())) == ["held-1", "held-own"]
    assert names(await again.next_requests(count=10, block_ms=100)) == ["not-read-yet"]


async def test_groups_lost_with_redis_data_are_recreated_on_read(redis_async):
    a = RequestStream(redis_async, "a")
    await a.ensure_group()
    await redis_async.flushdb()  # what a Redis restarted without its data looks like
    assert await a.next_requests(count=1, block_ms=50) == []  # NOGROUP: recreated, nothing lost here
    await put(redis_async, ENGINE_REQUEST_STREAM, "after")
    assert names(await a.next_requests(count=1, block_ms=100)) == ["after"]
    assert await redis_async.smembers(WORKER_STREAMS_SET) == {"a"}


async def test_output_events_come_back_in_order_and_a_batch_is_published_whole(redis_async):
    from common.names import output_stream
    from common.schemas import CallEvent, DeltaEvent
    from engine_worker.intake import OutputPublisher

    out, stream = OutputPublisher(redis_async), RequestStream(redis_async, "a")
    assert await stream.output_events("r1") == []
    first = DeltaEvent(text="a", token_ids=[1])
    last = DeltaEvent(text="", token_ids=[2])
    ended = CallEvent(call_id="c1", api="chatbot", arguments={}, started_at=1.0, context_tokens=3,
                      segment_text="a", reply_to="augserve:tool-results:a")
    await out.emit("r1", first)
    await out.emit("r1", last, ended)
    assert await stream.output_events("r1") == [first, last, ended]
    assert await redis_async.ttl(output_stream("r1")) == -1  # expires only once the request is over
