"""A request whose client goes away is marked cancelled for its engine worker (gateway/engine.py);
one that ends normally is not. (A client disconnecting mid-stream needs a real HTTP server, which
the in-process transport is not: tests/e2e/test_cancellation.py.)"""

from __future__ import annotations

import asyncio
import time

from common.names import cancelled_request
from tests.gateway.conftest import MODEL, delta, final

BODY = {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}]}


async def _wait_for_key(redis, key: str, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not await redis.exists(key):
        assert time.monotonic() < deadline, f"{key} was never set"
        await asyncio.sleep(0.02)


async def test_a_timed_out_request_is_cancelled_for_the_engine(start_gateway, redis_async):
    gw = await start_gateway(request_timeout_s=0.5)
    response = await gw.http.post("/v1/chat/completions", json=BODY)
    assert response.status_code == 504, response.text
    request = await gw.engine.next_request()
    await _wait_for_key(redis_async, cancelled_request(request.request_id))
    assert 0 < await redis_async.ttl(cancelled_request(request.request_id)) <= 600  # expires on its own


async def test_a_finished_request_is_not_cancelled(gw, redis_async):
    async def answer() -> str:
        request = await gw.engine.next_request()
        await gw.engine.emit(request.request_id, delta("Hello"), final("Hello"))
        return request.request_id

    responder = asyncio.create_task(answer())
    response = await gw.http.post("/v1/chat/completions", json=BODY)
    assert response.status_code == 200, response.text
    assert not await redis_async.exists(cancelled_request(await responder))
