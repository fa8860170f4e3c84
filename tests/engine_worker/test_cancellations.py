"""CancelWatch on a real Redis: the gateway's cancel keys, read for the requests a worker serves."""

from __future__ import annotations

from common.names import cancelled_request
from engine_worker.cancellations import CancelWatch


async def test_only_the_served_requests_with_a_cancel_key_are_cancelled(redis_async):
    await redis_async.set(cancelled_request("gone"), 1)
    await redis_async.set(cancelled_request("someone-elses"), 1)
    watch = CancelWatch(redis_async)
    assert await watch.cancelled(["gone", "alive"]) == {"gone"}
    assert await watch.cancelled([]) == set()
