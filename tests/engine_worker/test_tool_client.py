"""ToolClient on a real Redis (broker and reply stream), the test playing the executor: it takes
the sent task off the broker's queue and XADDs results to the reply stream as tasks do.

One result per call reaches the request: the first; a second for the same call_id, or one after
the call's deadline, is dropped."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections.abc import AsyncIterator

import pytest_asyncio
import redis.asyncio as aioredis

from common.names import CELERY_QUEUE
from common.schemas import ToolCallTask, ToolResult
from engine_worker.tool_client import ToolClient

DB = 8
"""A database of its own for the broker's queue and the reply stream."""


@pytest_asyncio.fixture
async def broker(redis_server: str) -> AsyncIterator[tuple[str, aioredis.Redis]]:
    url = redis_server.rsplit("/", 1)[0] + f"/{DB}"
    client = aioredis.from_url(url, decode_responses=True)
    await client.flushdb()
    yield url, client
    await client.aclose()


async def _client(url: str, client: aioredis.Redis, timeout_s: float) -> tuple[ToolClient, asyncio.Task]:
    tools = ToolClient(client, url, "engine-test", timeout_s)
    return tools, asyncio.create_task(tools.read_results())


async def _sent_call(client: aioredis.Redis, timeout_s: float = 10.0) -> ToolCallTask:
    """The next task on the broker's queue, decoded as the executor would (kombu's JSON envelope,
    base64 body: [args, kwargs, embed])."""
    deadline = time.monotonic() + timeout_s
    while (raw := await client.rpop(CELERY_QUEUE)) is None:
        assert time.monotonic() < deadline, "no task on the broker's queue"
        await asyncio.sleep(0.02)
    envelope = json.loads(raw)
    _args, kwargs, _embed = json.loads(base64.b64decode(envelope["body"]))
    return ToolCallTask.model_validate(kwargs)


def _result(call: ToolCallTask, content: str) -> str:
    now = time.time()
    return ToolResult(call_id=call.call_id, api=call.api, ok=True, content=content,
                      started_at=now, ended_at=now).model_dump_json()


async def _reply_stream_drained(client: aioredis.Redis, stream: str, timeout_s: float = 10.0) -> None:
    """The reader trims what it has read: an empty stream means every entry was handled."""
    deadline = time.monotonic() + timeout_s
    while await client.xlen(stream):
        assert time.monotonic() < deadline, f"{stream} still holds unread results"
        await asyncio.sleep(0.02)


async def test_two_results_for_one_call_reach_the_request_once(broker, caplog) -> None:
    caplog.set_level(logging.INFO, logger="engine_worker.tool_client")
    url, client = broker
    tools, reader = await _client(url, client, timeout_s=30)
    try:
        pending = asyncio.create_task(tools.call(request_id="r1", api="chatbot", arguments={}, duration_s=1.0))
        call = await _sent_call(client)
        # Both arrive in one read: the first reaches the request, the second is dropped.
        async with client.pipeline(transaction=True) as pipe:
            pipe.xadd(call.reply_to, {"result": _result(call, "first")})
            pipe.xadd(call.reply_to, {"result": _result(call, "second")})
            await pipe.execute()
        result = await asyncio.wait_for(pending, 10)
        assert (result.call_id, result.ok, result.content) == (call.call_id, True, "first")
        await client.xadd(call.reply_to, {"result": _result(call, "third")})  # after the call ended
        await _reply_stream_drained(client, call.reply_to)
        dropped = [r for r in caplog.records if r.getMessage().startswith(f"dropped a result of call {call.call_id}")]
        assert len(dropped) == 2
    finally:
        reader.cancel()


async def test_a_result_after_the_deadline_is_dropped(broker) -> None:
    url, client = broker
    tools, reader = await _client(url, client, timeout_s=1.0)
    try:
        result = await tools.call(request_id="r2", api="chatbot", arguments={}, duration_s=5.0)
        assert not result.ok and result.error == "chatbot call timed out after 1s"
        call = await _sent_call(client)
        assert call.call_id == result.call_id
        await client.xadd(call.reply_to, {"result": _result(call, "late")})
        await _reply_stream_drained(client, call.reply_to)
        # The reader carries on: the next call still gets its result.
        pending = asyncio.create_task(tools.call(request_id="r3", api="calculator", arguments={"expression": "1"}))
        nxt = await _sent_call(client)
        await client.xadd(nxt.reply_to, {"result": _result(nxt, "1")})
        assert (await asyncio.wait_for(pending, 10)).content == "1"
    finally:
        reader.cancel()
