"""ToolClient on a real Redis: the result of a call adopted from a dead worker is taken from that
worker's reply stream (where nobody else reads it)."""

from __future__ import annotations

import asyncio

from common.names import tool_result_stream
from common.schemas import ToolResult
from engine_worker.tool_client import ToolClient


def result(call_id: str) -> ToolResult:
    return ToolResult(call_id=call_id, api="chatbot", ok=True, content="done", started_at=1.0, ended_at=2.0)


async def test_an_adopted_calls_result_is_taken_from_the_dead_workers_reply_stream(redis_async, redis_server):
    client = ToolClient(redis_async, redis_server, "live", timeout_s=5)
    dead = tool_result_stream("dead")
    await redis_async.xadd(dead, {"result": result("other").model_dump_json()})
    future = asyncio.get_running_loop().create_future()
    watch = asyncio.create_task(client._watch(dead, "mine", future))
    await redis_async.xadd(dead, {"result": result("mine").model_dump_json()})
    got = await asyncio.wait_for(future, 5)
    await watch
    assert got.call_id == "mine"
    remaining = [f["result"] for _, f in await redis_async.xrange(dead)]
    assert remaining == [result("other").model_dump_json()]


async def test_a_result_already_on_the_dead_workers_stream_is_used_without_sending_the_call(redis_async, redis_server):
    client = ToolClient(redis_async, redis_server, "live", timeout_s=5)
    dead = tool_result_stream("dead")
    await redis_async.xadd(dead, {"result": result("landed").model_dump_json()})
    # No executor is listening: had the call been sent, it would only time out (after 5 s).
    got = await asyncio.wait_for(client.call(request_id="r", api="chatbot", arguments={}, call_id="landed",
                                             also_watch=dead), 2)
    assert got.ok and got.call_id == "landed" and await redis_async.xlen(dead) == 0


async def test_a_result_that_came_before_its_call_was_asked_again_is_kept_for_it(redis_async, redis_server):
    # A worker restarted under its id reads what came to its reply stream while it was down
    # before it resumes the request that made the call.
    client = ToolClient(redis_async, redis_server, "restarted", timeout_s=5)
    await redis_async.xadd(tool_result_stream("restarted"), {"result": result("early").model_dump_json()})
    reader = asyncio.create_task(client.read_results())
    try:
        deadline = asyncio.get_running_loop().time() + 5
        while await redis_async.xlen(tool_result_stream("restarted")):  # read (and trimmed) by the reader
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.02)
        got = await asyncio.wait_for(client.call(request_id="r", api="chatbot", arguments={}, call_id="early"), 2)
        assert got.call_id == "early" and got.ok
    finally:
        reader.cancel()
