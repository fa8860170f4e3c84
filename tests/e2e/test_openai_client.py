"""The official `openai` client, unchanged, against the gateway (default model, real stack)."""

from __future__ import annotations

import json

import openai
import pytest

from engine_worker.tokens import TokenCodec

MODEL = "SmolLM2-135M-Instruct"
CALCULATOR = {"type": "function", "function": {
    "name": "calculator", "description": "Evaluates an arithmetic expression.",
    "parameters": {"type": "object", "properties": {"expression": {"type": "string"}}, "required": ["expression"]}}}
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


@pytest.fixture(scope="module")
def client(gateway_url) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway_url}/v1", api_key="unused-locally", max_retries=0, timeout=120)


def test_models_lists_the_served_model(client):
    assert MODEL in [m.id for m in client.models.list().data]


def test_plain_chat_completion_writes_coherent_text(client):
    response = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "What is the capital of France?"}],
        temperature=0, max_tokens=30)
    choice = response.choices[0]
    assert "Paris" in choice.message.content
    assert choice.finish_reason in ("stop", "length")
    assert response.usage.completion_tokens > 0
    assert response.usage.total_tokens == response.usage.prompt_tokens + response.usage.completion_tokens


def test_streaming_chat_yields_the_same_text_as_non_streaming(client):
    kwargs = dict(model=MODEL, messages=[{"role": "user", "content": "Name three colors."}], temperature=0,
                  max_tokens=25)
    whole = client.chat.completions.create(**kwargs).choices[0].message.content
    chunks = list(client.chat.completions.create(stream=True, stream_options={"include_usage": True}, **kwargs))
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == whole
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) > 1  # really streamed
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_server_side_tool_runs_inside_the_server_and_generation_resumes(client, model_path):
    response = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "What is 12*7?"}], tools=[CALCULATOR],
        tool_choice={"type": "function", "function": {"name": "calculator"}}, temperature=0, max_tokens=60)
    choice = response.choices[0]
    # The call never reached the client: it ran in the executor and the model went on.
    assert not choice.message.tool_calls
    assert choice.finish_reason in ("stop", "length")
    records = response.model_extra["interceptions"]
    assert len(records) >= 1 and records[0]["api"] == "calculator"
    assert records[0]["returned_tokens"] > 0
    # Usage counts every segment: the tokens of the call turn on top of the visible answer's,
    # and the returned tokens on top of the client's prompt.
    answer_tokens = len(TokenCodec(model_path).encode(choice.message.content or ""))
    assert response.usage.completion_tokens > answer_tokens
    assert response.usage.prompt_tokens > records[0]["returned_tokens"]
    assert response.usage.total_tokens == response.usage.prompt_tokens + response.usage.completion_tokens


def test_client_side_tool_is_returned_as_ordinary_tool_calls(client):
    response = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "What's the weather in Paris?"}],
        tools=[WEATHER, CALCULATOR],
        tool_choice={"type": "function", "function": {"name": "get_weather"}}, temperature=0, max_tokens=40)
    choice = response.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert isinstance(json.loads(call.function.arguments), dict)
    assert response.model_extra["interceptions"] == []
    # The client runs the tool and continues the conversation: the standard loop works.
    followup = client.chat.completions.create(
        model=MODEL, temperature=0, max_tokens=30, tools=[WEATHER, CALCULATOR],
        messages=[{"role": "user", "content": "What's the weather in Paris?"},
                  choice.message.model_dump(exclude_none=True),
                  {"role": "tool", "tool_call_id": call.id, "content": "Sunny, 24 C"}])
    assert followup.choices[0].finish_reason in ("stop", "length", "tool_calls")
    # The call and its result were rendered into the context the model continued from.
    assert followup.usage.prompt_tokens > response.usage.prompt_tokens
