"""Engine workers dying under a request: while one is alive the request waits (a live worker
continues what a dead one held, on the same output stream); once none has been alive for
no_worker_grace_s, the client gets a 503 saying so, streaming or not."""

from __future__ import annotations

import asyncio
import json
import time

from common.names import WORKERS_HASH
from tests.gateway.conftest import MODEL, assert_openai_error, delta, final

BODY = {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}]}
GRACE_S = 0.5


async def beat(redis, worker_id: str, age_s: float = 0.0) -> None:
    await redis.hset(WORKERS_HASH, worker_id, json.dumps({"worker_id": worker_id, "inflight": 1,
                                                          "heartbeat_at": time.time() - age_s}))


async def test_no_live_worker_fails_the_request_with_a_503(start_gateway, redis_async):
    gw = await start_gateway(no_worker_grace_s=GRACE_S, worker_stale_s=5)
    await beat(redis_async, "engine-0", age_s=60)  # SIGKILLed long ago: its last heartbeat stays
    started = time.monotonic()
    response = await gw.http.post("/v1/chat/completions", json=BODY)
    assert_openai_error(response, 503, "no engine worker is alive")
    assert response.json()["error"]["code"] == "no_engine_worker"
    assert time.monotonic() - started < GRACE_S + 5


async def test_a_stream_whose_last_worker_dies_ends_with_a_503_error_event(start_gateway, redis_async):
    gw = await start_gateway(no_worker_grace_s=GRACE_S, worker_stale_s=5)
    await beat(redis_async, "engine-0")

    async def start_then_die() -> None:
        request = await gw.engine.next_request()
        await gw.engine.emit(request.request_id, delta("Hel"))
        await redis_async.hdel(WORKERS_HASH, "engine-0")

    worker = asyncio.create_task(start_then_die())
    async with gw.http.stream("POST", "/v1/chat/completions", json={**BODY, "stream": True}) as response:
        assert response.status_code == 200
        lines = [line async for line in response.aiter_lines() if line.startswith("data: ")]
    await worker
    assert json.loads(lines[1][6:])["choices"][0]["delta"]["content"] == "Hel"
    error = json.loads(lines[-2][6:])["error"]
    assert error["code"] == "no_engine_worker" and lines[-1] == "data: [DONE]"


async def test_a_request_waits_past_the_grace_while_a_worker_is_alive(start_gateway, redis_async):
    gw = await start_gateway(no_worker_grace_s=GRACE_S, worker_stale_s=5)
    await beat(redis_async, "engine-1")

    async def answer_late() -> None:
        request = await gw.engine.next_request()
        deadline = time.monotonic() + 4 * GRACE_S  # a survivor taking over: silence past the grace
        while time.monotonic() < deadline:
            await beat(redis_async, "engine-1")
            await asyncio.sleep(0.1)
        await gw.engine.emit(request.request_id, delta("Hello"), final("Hello"))

    worker = asyncio.create_task(answer_late())
    response = await gw.http.post("/v1/chat/completions", json=BODY)
    await worker
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == "Hello"
