"""Fixtures that start real services as processes (and stop them)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
import redis
import redis.asyncio as aioredis
from hypothesis import settings

from stack.processes import free_port
from stack.redis_server import redis_url, start_redis

# Property tests on a loaded 2-core machine: no per-example deadline (the default 200 ms fails
# on a slow example, not on a wrong one); the number of examples stays each test's own.
settings.register_profile("augserve", deadline=None)
settings.load_profile("augserve")

E2E_PATHS = ("tests/e2e/", "tests/bench/test_smoke.py", "tests/deploy/test_dashboards_prometheus.py")
"""Tests that start the whole stack (vLLM included): marked `e2e`, and `slow`."""
SLOW_PATHS = ("tests/sim/test_reproduce.py", "tests/api_executor/test_worker_lost.py")
"""Not the whole stack, but over ~4 s a test on this machine (`--durations` of `-m "not e2e"`):
the simulator's paper reproductions, executors SIGKILLed and restarted. Marked `slow`, so
`-m "not slow"` is the quick run (2.5 min here beside other jobs; `-m "not e2e"` 4 min)."""


def pytest_collection_modifyitems(config, items) -> None:
    for item in items:
        path = item.nodeid.replace("\\", "/")
        if any(path.startswith(p) for p in E2E_PATHS):
            item.add_marker(pytest.mark.e2e)
            item.add_marker(pytest.mark.slow)
        elif any(path.startswith(p) for p in SLOW_PATHS):
            item.add_marker(pytest.mark.slow)



@pytest.fixture(scope="session")
def redis_server(tmp_path_factory) -> Iterator[str]:
    """A real redis-server process for the whole session; yields its URL."""
    port, password = free_port(), secrets.token_urlsafe(16)  # as every stack's Redis (stack/services.py)
    root = tmp_path_factory.mktemp("redis")
    service = start_redis(port, root / "data", root, password=password)
    try:
        yield redis_url(port, password)
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
