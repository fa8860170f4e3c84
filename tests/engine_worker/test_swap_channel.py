"""The swap path's two ends on a real Redis: the worker's mark (swap_channel) and the engine
core's take (engine_core/kv_swap/marks), which run in different processes and meet only there."""

from __future__ import annotations

import redis

from common.names import kv_swap_stats
from engine_worker.engine_core.kv_swap import marks
from engine_worker.swap_channel import SwapChannel, SwapTimes


async def test_a_mark_is_taken_once_by_the_core_and_only_for_its_worker(redis_async, redis_server):
    await SwapChannel(redis_async, "worker-a").mark("req-1~2")
    core = redis.Redis.from_url(redis_server)  # the connector's client is synchronous
    try:
        assert not marks.take(core, "worker-b", "req-1~2")  # another worker's core
        assert not marks.take(core, "worker-a", "req-1")  # another vLLM id of the same request
        assert marks.take(core, "worker-a", "req-1~2")
        assert not marks.take(core, "worker-a", "req-1~2")  # once: a second abort is a discard
    finally:
        core.close()


async def test_copy_times_read_back_as_the_connector_wrote_them(redis_async):
    channel = SwapChannel(redis_async, "worker-a")
    assert await channel.times("never-swapped") == SwapTimes(0.0, 0.0)
    await redis_async.hset(kv_swap_stats("req-9"), mapping={"out_s": "0.25", "in_s": "0.125"})
    assert await channel.times("req-9") == SwapTimes(out_s=0.25, in_s=0.125)


def test_a_redis_outage_reads_as_no_mark_instead_of_raising_in_the_engine_step():
    unreachable = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    assert not marks.take(unreachable, "worker-a", "req-1")
