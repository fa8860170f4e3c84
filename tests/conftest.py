"""Fixtures that start real services as processes (and stop them)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
import redis
import redis.asyncio as aioredis

from stack.processes import free_port
from stack.redis_server import redis_url, start_redis


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory) -> Iterator[str]:
    """A real redis-server process for the whole session; yields its URL."""
    port = free_port()
    root = tmp_path_factory.mktemp("redis")
    service = start_redis(port, root / "data", root)
    try:
        yield redis_url(port)
    finally:
        service.stop()


@pytest.fixture
def redis_client(redis_server) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_server, decode_responses=True)
    client.flushdb()
    yield client
    client.close()


@pytest_asyncio.fixture
async def redis_async(redis_server) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(redis_server, decode_responses=True)
    await client.flushdb()
    yield client
    await client.aclose()
