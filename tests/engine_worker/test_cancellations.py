"""CancelWatch on a real Redis: the gateway's cancel keys, read for the requests a worker serves."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio
import redis.asyncio as aioredis

from common.names import cancelled_request
from engine_worker.cancellations import CancelWatch


@pytest_asyncio.fixture
async def redis(redis_server) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(redis_server, decode_responses=True)
    await client.flushdb()
    yield client
    await client.aclose()


async def test_only_the_served_requests_with_a_cancel_key_are_cancelled(redis):
    await redis.set(cancelled_request("gone"), 1)
    await redis.set(cancelled_request("someone-elses"), 1)
    watch = CancelWatch(redis)
    assert await watch.cancelled(["gone", "alive"]) == {"gone"}
    assert await watch.cancelled([]) == set()
