"""POST /v1/chat/completions: what lands on the engine stream, and how events come back."""

from __future__ import annotations

import asyncio
import json

import pytest

from common.schemas import ErrorEvent, InterceptionEvent, ToolCall
from common.tool_format import forced_call_prefix, tools_system_text
from gateway.settings import SMOLLM_DEFAULT_SYSTEM
from tests.gateway.conftest import MODEL, assert_openai_error, delta, final, record

pytestmark = pytest.mark.asyncio

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
CALCULATOR = {"type": "function", "function": {
    "name": "calculator", "description": "Evaluate arithmetic",
    "parameters": {"type": "object", "properties": {"expression": {"type": "string"}}, "required": ["expression"]}}}


def chat_body(**extra):
    return {"model": MODEL, "messages": [{"role": "user", "content": "Hi!"}], **extra}


async def test_request_lands_on_the_engine_stream_templated_and_tokenized(gw, tokenizer):
    task = asyncio.create_task(gw.http.post("/v1/chat/completions", json=chat_body(
        max_tokens=17, temperature=0.5, top_p=0.9, seed=3, program_id="prog-1")))
    req = await gw.engine.next_request()
    text = tokenizer.apply_chat_template([{"role": "user", "content": "Hi!"}], tokenize=False,
                                         add_generation_prompt=True)
    assert req.prompt_token_ids == tokenizer.encode(text, add_special_tokens=False)
    assert req.request_id.startswith("chatcmpl-") and req.model == MODEL
    assert req.sampling.max_tokens == 17 and req.sampling.temperature == 0.5 and req.sampling.top_p == 0.9
    assert req.sampling.seed == 3 and req.sampling.stop_token_ids == [tokenizer.eos_token_id]
    assert req.program_id == "local/prog-1" and req.server_tools == [] and req.client_tools == []
    assert req.forced_tool is None and req.plan is None and req.arrival_time > 0
    await gw.engine.emit(req.request_id, delta("Hello"), delta(" there"), final("Hello there"))
    response = await task
    assert response.status_code == 200, response.text
    assert response.headers["x-request-id"] == req.request_id


async def test_non_streaming_response_has_the_openai_shape_and_interceptions(gw):
    task = asyncio.create_task(gw.http.post("/v1/chat/completions", json=chat_body()))
    req = await gw.engine.next_request()
    await gw.engine.emit(req.request_id, delta("4"), InterceptionEvent(record=record()), delta("2"),
                         final("42", prompt_tokens=30, completion_tokens=2, interceptions=[record()]))
    body = (await task).json()
    assert body["id"] == req.request_id and body["object"] == "chat.completion" and body["model"] == MODEL
    assert isinstance(body["created"], int)
    assert body["choices"] == [{"index": 0, "message": {"role": "assistant", "content": "42"},
                                "finish_reason": "stop", "logprobs": None}]
    assert body["usage"] == {"prompt_tokens": 30, "completion_tokens": 2, "total_tokens": 32}
    assert body["interceptions"] == [record().model_dump(mode="json")]
    # The output stream is gone once the final event has been read.
    assert await gw.engine.redis.exists(f"augserve:out:{req.request_id}") == 0


async def test_default_max_tokens_applies_when_the_request_sets_none(gw):
    task = asyncio.create_task(gw.http.post("/v1/chat/completions", json=chat_body()))
    req = await gw.engine.next_request()
    assert req.sampling.max_tokens == gw.settings.default_max_tokens and req.sampling.temperature == 1.0
    await gw.engine.emit(req.request_id, final())
    assert (await task).status_code == 200


async def test_max_completion_tokens_and_program_id_header(gw):
    task = asyncio.create_task(gw.http.post("/v1/chat/completions", json=chat_body(max_completion_tokens=9),
                                            headers={"X-Program-Id": "agent-7"}))
    req = await gw.engine.next_request()
    assert req.sampling.max_tokens == 9 and req.program_id == "local/agent-7"  # namespaced: gateway/auth.py
    await gw.engine.emit(req.request_id, final())
    assert (await task).status_code == 200


async def test_tools_split_into_server_and_client_side_and_render_into_the_system_turn(gw, tokenizer):
    task = asyncio.create_task(gw.http.post("/v1/chat/completions", json=chat_body(tools=[WEATHER, CALCULATOR])))
    req = await gw.engine.next_request()
    assert req.server_tools == ["calculator"] and req.client_tools == ["get_weather"]
    system = SMOLLM_DEFAULT_SYSTEM + tools_system_text([WEATHER, CALCULATOR])
    text = tokenizer.apply_chat_template([{"role": "system", "content": system}, {"role": "user", "content": "Hi!"}],
                                         tokenize=False, add_generation_prompt=True)
    assert req.prompt_token_ids == tokenizer.encode(text, add_special_tokens=False)
    await gw.engine.emit(req.request_id, final())
    assert (await task).status_code == 200


async def test_registered_http_api_is_a_server_tool(start_gateway):
    gw = await start_gateway(http_apis={"lookup": {"url": "http://127.0.0.1:9/lookup"}})
    lookup = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}
    task = asyncio.create_task(gw.http.post("/v1/chat/completions", json=chat_body(tools=[lookup, WEATHER])))
    req = await gw.engine.next_request()
    assert req.server_tools == ["lookup"] and req.client_tools == ["get_weather"]
    await gw.engine.emit(req.request_id, final())
    assert (await task).status_code == 200


async def test_unsupported_fields_at_their_defaults_are_accepted(gw):
    """What clients send as defaults (vllm bench serve, vLLM's own clients) passes; another value is a 400."""
    task = asyncio.create_task(gw.http.post("/v1/chat/completions", json=chat_body(
        use_beam_search=False, length_penalty=1, min_tokens=0, stop_token_ids=[], skip_special_tokens=True,
        add_generation_prompt=True, echo=False, modalities=["text"], chat_template_kwargs={}, priority=0,
        stream_options={"include_usage": True, "continuous_usage_stats": False}, stream=True)))
    req = await gw.engine.next_request()
    await gw.engine.emit(req.request_id, final())
    assert (await task).status_code == 200


async def test_named_tool_choice_forces_the_call_under_the_tools_schema(gw, tokenizer):
    task = asyncio.create_task(gw.http.post("/v1/chat/completions", json=chat_body(
        tools=[WEATHER, CALCULATOR], tool_choice={"type": "function", "function": {"name": "get_weather"}})))
    req = await gw.engine.next_request()
    assert req.forced_tool == "get_weather"
    assert req.forced_call_schema == WEATHER["function"]["parameters"]  # the arguments are generated under it
    prefix = forced_call_prefix("get_weather", None)
    assert tokenizer.decode(req.prompt_token_ids).endswith("<|im_start|>assistant\n" + prefix)
    await gw.engine.emit(req.request_id, final())
    assert (await task).status_code == 200


async def test_unconstrained_named_tool_choice_opens_the_lone_string_argument(gw, tokenizer):
    task = asyncio.create_task(gw.http.post("/v1/chat/completions", json=chat_body(
        tools=[WEATHER, CALCULATOR], tool_choice={"type": "function", "function": {"name": "get_weather"}},
        constrain_tool_calls=False)))
    req = await gw.engine.next_request()
    assert req.forced_tool == "get_weather" and req.forced_call_schema is None
    prefix = forced_call_prefix("get_weather", WEATHER["function"]["parameters"])
    assert tokenizer.decode(req.prompt_token_ids).endswith("<|im_start|>assistant\n" + prefix)
    await gw.engine.emit(req.request_id, final())
    assert (await task).status_code == 200


async def test_required_over_several_tools_constrains_whole_calls_to_any_of_them(gw, tokenizer):
    task = asyncio.create_task(gw.http.post("/v1/chat/completions", json=chat_body(
        tools=[WEATHER, CALCULATOR], tool_choice="required")))
    req = await gw.engine.next_request()
    assert req.forced_tool is None and req.parallel_tool_calls
    schema = req.forced_call_schema  # vLLM's "required" grammar: one call or more (parallel_tool_calls unset)
    assert schema["type"] == "array" and schema["minItems"] == 1 and "maxItems" not in schema
    names = [branch["properties"]["name"]["const"] for branch in schema["items"]["anyOf"]]
    assert names == ["get_weather", "calculator"]
    assert tokenizer.decode(req.prompt_token_ids).endswith("<|im_start|>assistant\n<tool_call>\n")
    await gw.engine.emit(req.request_id, final())
    assert (await task).status_code == 200


@pytest.mark.parametrize("tools", [[WEATHER], [WEATHER, CALCULATOR]])
async def test_required_without_parallel_tool_calls_allows_one_call(gw, tokenizer, tools):
    task = asyncio.create_task(gw.http.post("/v1/chat/completions", json=chat_body(
        tools=tools, tool_choice="required", parallel_tool_calls=False)))
    req = await gw.engine.next_request()
    if len(tools) == 1:  # the one call there can be: named in the prefix, its arguments constrained
        assert req.forced_tool == "get_weather" and req.forced_call_schema == WEATHER["function"]["parameters"]
    else:
        assert req.forced_tool is None and req.forced_call_schema["maxItems"] == 1
    await gw.engine.emit(req.request_id, final())
    assert (await task).status_code == 200


async def test_tool_choice_none_declares_no_tools(gw, tokenizer):
    task = asyncio.create_task(gw.http.post("/v1/chat/completions", json=chat_body(tools=[WEATHER],
                                                                                   tool_choice="none")))
    req = await gw.engine.next_request()
    assert req.server_tools == [] and req.client_tools == [] and "<tools>" not in tokenizer.decode(req.prompt_token_ids)
    await gw.engine.emit(req.request_id, final())
    assert (await task).status_code == 200


async def test_plan_and_ignore_eos_are_carried(gw):
    plan = {"segments": [{"generate_tokens": 5, "api": "calculator", "arguments": {"expression": "1+1"},
                          "return_tokens": 3}, {"generate_tokens": 4}]}
    task = asyncio.create_task(gw.http.post("/v1/chat/completions", json=chat_body(plan=plan, max_tokens=1)))
    req = await gw.engine.next_request()
    assert req.plan is not None and req.plan.model_dump(exclude_defaults=True) == plan
    assert req.sampling.max_tokens == 9 and req.sampling.stop_token_ids == []
    await gw.engine.emit(req.request_id, final())
    assert (await task).status_code == 200
    task = asyncio.create_task(gw.http.post("/v1/chat/completions", json=chat_body(ignore_eos=True)))
    req = await gw.engine.next_request()
    assert req.sampling.stop_token_ids == [] and req.sampling.ignore_eos and req.plan is None
    await gw.engine.emit(req.request_id, final())
    assert (await task).status_code == 200


async def test_client_tool_call_comes_back_as_tool_calls(gw):
    call = ToolCall(id="call_abc", name="get_weather", arguments=json.dumps({"city": "Paris"}))
    task = asyncio.create_task(gw.openai().chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Weather in Paris?"}], tools=[WEATHER]))
    req = await gw.engine.next_request()
    await gw.engine.emit(req.request_id, final('<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}'
                                               "\n</tool_call>", finish_reason="tool_calls", tool_calls=[call]))
    completion = await task
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    assert choice.message.tool_calls[0].id == "call_abc"
    assert choice.message.tool_calls[0].function.name == "get_weather"
    assert json.loads(choice.message.tool_calls[0].function.arguments) == {"city": "Paris"}
    assert completion.model_extra["interceptions"] == []


async def test_streaming_through_the_openai_client(gw):
    record_ = record()

    async def consume():
        stream = await gw.openai().chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "Hi"}], stream=True,
            stream_options={"include_usage": True}, extra_body={"program_id": "p"})
        return [chunk async for chunk in stream]

    task = asyncio.create_task(consume())
    req = await gw.engine.next_request()
    assert req.program_id == "local/p"
    await gw.engine.emit(req.request_id, delta("Hel"), InterceptionEvent(record=record_), delta("lo"),
                         final("Hello", completion_tokens=2, interceptions=[record_]))
    chunks = await task
    assert {c.id for c in chunks} == {req.request_id}
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello"
    finish = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finish) == 1 and finish[0].choices[0].finish_reason == "stop"
    assert finish[0].model_extra["interceptions"] == [record_.model_dump(mode="json")]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 2
    assert chunks[-1].usage.total_tokens == 22


async def test_streamed_tool_calls_without_usage_chunk(gw):
    call = ToolCall(id="call_1", name="get_weather", arguments='{"city": "Oslo"}')
    task = asyncio.create_task(gw.http.post("/v1/chat/completions", json=chat_body(stream=True, tools=[WEATHER])))
    req = await gw.engine.next_request()
    await gw.engine.emit(req.request_id, final("", finish_reason="tool_calls", tool_calls=[call]))
    response = await task
    assert response.headers["content-type"].startswith("text/event-stream")
    lines = [line for line in response.text.split("\n\n") if line]
    assert all(line.startswith("data: ") for line in lines) and lines[-1] == "data: [DONE]"
    chunks = [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]
    assert [c["object"] for c in chunks] == ["chat.completion.chunk"] * 2
    assert chunks[1]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[1]["choices"][0]["delta"]["tool_calls"] == [
        {"index": 0, "id": "call_1", "type": "function", "function": {"name": "get_weather",
                                                                     "arguments": '{"city": "Oslo"}'}}]
    assert "usage" not in chunks[-1]


@pytest.mark.parametrize("stream", [False, True])
async def test_error_event_becomes_that_http_status(gw, stream):
    task = asyncio.create_task(gw.http.post("/v1/chat/completions", json=chat_body(stream=stream)))
    req = await gw.engine.next_request()
    await gw.engine.emit(req.request_id, ErrorEvent(status=503, code="engine_overloaded", message="engine is full"))
    assert assert_openai_error(await task, 503, "engine is full")["code"] == "engine_overloaded"


async def test_error_event_mid_stream_is_an_sse_error(gw):
    from openai import APIError

    async def consume():
        stream = await gw.openai().chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}],
                                                           stream=True)
        return [chunk async for chunk in stream]

    task = asyncio.create_task(consume())
    req = await gw.engine.next_request()
    await gw.engine.emit(req.request_id, delta("partial"), ErrorEvent(status=500, code="engine_crash", message="boom"))
    with pytest.raises(APIError, match="boom"):
        await task


async def test_no_final_event_in_time_is_a_504(start_gateway):
    gw = await start_gateway(request_timeout_s=0.3)
    response = await gw.http.post("/v1/chat/completions", json=chat_body())
    assert_openai_error(response, 504, "no response from the engine within 0.3s")
    assert (await gw.engine.next_request()).request_id == response.headers["x-request-id"]


async def test_bad_request_in_flight_leaves_the_good_one_intact(gw):
    good = asyncio.create_task(gw.http.post("/v1/chat/completions", json=chat_body(stream=True)))
    req = await gw.engine.next_request()
    await gw.engine.emit(req.request_id, delta("one "))
    bad = await gw.http.post("/v1/chat/completions", json=chat_body(max_tokens=0))
    assert_openai_error(bad, 400, "max_tokens")
    await gw.engine.emit(req.request_id, delta("two"), final("one two"))
    response = await good
    assert response.status_code == 200
    assert '"content":"one "' in response.text and '"content":"two"' in response.text
    assert response.text.endswith("data: [DONE]\n\n")
    assert await gw.engine.queued() == 1


async def test_many_concurrent_requests_each_get_their_own_output(gw):
    """More requests in flight than redis-py's default pool (100): each waits on its own stream."""
    n = 150
    tasks = [asyncio.create_task(gw.http.post("/v1/chat/completions", json=chat_body(max_tokens=i + 1)))
             for i in range(n)]
    requests = [await gw.engine.next_request() for _ in range(n)]
    for req in requests:
        await gw.engine.emit(req.request_id, final(f"answer {req.sampling.max_tokens}"))
    responses = await asyncio.gather(*tasks)
    for i, response in enumerate(responses):
        assert response.status_code == 200, response.text
        assert response.json()["choices"][0]["message"]["content"] == f"answer {i + 1}"
