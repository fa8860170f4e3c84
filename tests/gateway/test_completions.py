"""POST /v1/completions: a raw prompt, no chat template."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.gateway.conftest import MODEL, delta, final, record

pytestmark = pytest.mark.asyncio


async def test_string_prompt_is_tokenized_without_template(gw, tokenizer):
    task = asyncio.create_task(gw.http.post("/v1/completions", json={
        "model": MODEL, "prompt": "Once upon a time", "max_tokens": 5, "temperature": 0}))
    req = await gw.engine.next_request()
    assert req.request_id.startswith("cmpl-")
    assert req.prompt_token_ids == tokenizer.encode("Once upon a time", add_special_tokens=False)
    assert req.sampling.max_tokens == 5 and req.sampling.temperature == 0.0
    assert req.server_tools == [] and req.client_tools == [] and req.forced_tool is None
    await gw.engine.emit(req.request_id, delta(" there"), final(" there was", completion_tokens=3))
    response = await task
    body = response.json()
    assert response.headers["x-request-id"] == req.request_id == body["id"]
    assert body["object"] == "text_completion" and body["model"] == MODEL
    assert body["choices"] == [{"index": 0, "text": " there was", "finish_reason": "stop", "logprobs": None}]
    assert body["usage"]["completion_tokens"] == 3 and body["interceptions"] == []


async def test_token_prompt_plan_and_return_token_ids(gw):
    plan = {"segments": [{"generate_tokens": 2, "api": "tts", "duration_s": 0.1, "return_tokens": 2},
                         {"generate_tokens": 3}]}
    task = asyncio.create_task(gw.http.post("/v1/completions", json={
        "model": MODEL, "prompt": [[5, 6, 7]], "plan": plan, "return_token_ids": True}))
    req = await gw.engine.next_request()
    assert req.prompt_token_ids == [5, 6, 7] and req.plan.generated_tokens == 5
    assert req.sampling.stop_token_ids == []
    await gw.engine.emit(req.request_id, final("abcde", completion_tokens=5, interceptions=[record(api="tts")]))
    body = (await task).json()
    assert body["prompt_token_ids"] == [5, 6, 7] and body["choices"][0]["token_ids"] == [0, 1, 2, 3, 4]
    assert body["interceptions"][0]["api"] == "tts"


async def test_streaming_completion_through_the_openai_client(gw):
    async def consume():
        stream = await gw.openai().completions.create(model=MODEL, prompt="Hi", max_tokens=4, stream=True,
                                                      stream_options={"include_usage": True},
                                                      extra_body={"ignore_eos": True})
        return [chunk async for chunk in stream]

    task = asyncio.create_task(consume())
    req = await gw.engine.next_request()
    assert req.sampling.stop_token_ids == []
    await gw.engine.emit(req.request_id, delta("a"), delta("b"), final("ab", finish_reason="length"))
    chunks = await task
    assert "".join(c.choices[0].text for c in chunks if c.choices) == "ab"
    assert [c.choices[0].finish_reason for c in chunks if c.choices] == [None, None, "length"]
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == 23


async def test_chat_return_token_ids_streaming(gw):
    task = asyncio.create_task(gw.http.post("/v1/chat/completions", json={
        "model": MODEL, "messages": [{"role": "user", "content": "x"}], "stream": True, "return_token_ids": True}))
    req = await gw.engine.next_request()
    await gw.engine.emit(req.request_id, final("abc", completion_tokens=3))
    lines = [x for x in (await task).text.split("\n\n") if x]
    finish = json.loads(lines[-2].removeprefix("data: "))
    assert finish["prompt_token_ids"] == req.prompt_token_ids and finish["choices"][0]["token_ids"] == [0, 1, 2]
