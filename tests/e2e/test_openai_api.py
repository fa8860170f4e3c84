"""What OpenAI and vLLM users expect, through the official `openai` client against the whole stack
(default model, real vLLM engine): stop strings, logprobs, n and seed, structured outputs, tool
calls generated under their schema."""

from __future__ import annotations

import json
import re

import jsonschema
import openai
import pytest

from tests.e2e.test_openai_client import CALCULATOR, MODEL

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"},
                                                    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
                   "required": ["city", "unit"], "additionalProperties": False}}}
SEARCH = {"type": "function", "function": {
    "name": "web_search", "description": "Searches the web.",
    "parameters": {"type": "object", "properties": {"query": {"type": "string"},
                                                    "max_results": {"type": "integer", "minimum": 1, "maximum": 10}},
                   "required": ["query", "max_results"], "additionalProperties": False}}}
COLORS = [{"role": "user", "content": "Name three colors, one per line."}]
SHORT_ANSWERS = ("Reply with the single word yes.", "What is 2+2? Answer with the number only.", "Say hi.")
"""Prompts the model answers in fewer than 32 tokens, greedy (the first that does is used)."""


@pytest.fixture(scope="module")
def client(gateway_url) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway_url}/v1", api_key="unused-locally", max_retries=0, timeout=120)


def chat(client, **kwargs):
    return client.chat.completions.create(model=MODEL, **{"temperature": 0, "max_tokens": 40, **kwargs})


def streamed_text(chunks, index: int = 0) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices and c.choices[0].index == index)


# -- stop strings --------------------------------------------------------------------------

def test_stop_string_cuts_chat_text_stream_and_not(client):
    free = chat(client, messages=COLORS).choices[0].message.content
    assert "\n" in free  # so the stop string really falls inside the answer
    cut = chat(client, messages=COLORS, stop=["\n"])
    assert cut.choices[0].message.content == free.split("\n")[0] and cut.choices[0].finish_reason == "stop"
    chunks = list(chat(client, messages=COLORS, stop=["\n"], stream=True))
    assert streamed_text(chunks) == free.split("\n")[0]
    kept = chat(client, messages=COLORS, stop=["\n"], extra_body={"include_stop_str_in_output": True})
    assert kept.choices[0].message.content == free.split("\n")[0] + "\n"


def test_stop_string_spanning_tokens_on_completions(client):
    prompt = "The capital of France is"
    free = client.completions.create(model=MODEL, prompt=prompt, temperature=0, max_tokens=20).choices[0].text
    words = free.split()
    assert len(words) >= 3
    stop = f"{words[1]} {words[2]}"  # several tokens, one stop string
    expected = free[:free.index(stop)]
    got = client.completions.create(model=MODEL, prompt=prompt, temperature=0, max_tokens=20, stop=[stop])
    assert got.choices[0].text == expected and got.choices[0].finish_reason == "stop"
    streamed = "".join(c.choices[0].text for c in client.completions.create(
        model=MODEL, prompt=prompt, temperature=0, max_tokens=20, stop=[stop], stream=True) if c.choices)
    assert streamed == expected


def test_stop_strings_leave_tool_call_detection_alone(client):
    """A stop string that occurs inside the call's JSON does not cut the call (it is not text the
    client sees): the server-side call runs, and the answer after it is cut."""
    response = chat(client, messages=[{"role": "user", "content": "What is 12*7?"}], tools=[CALCULATOR],
                    tool_choice={"type": "function", "function": {"name": "calculator"}}, stop=['"', "*"],
                    max_tokens=80)
    records = response.model_extra["interceptions"]
    assert len(records) == 1 and records[0]["api"] == "calculator" and records[0]["ok"]
    content = response.choices[0].message.content or ""
    assert '"' not in content and "*" not in content


# -- logprobs -----------------------------------------------------------------------------

def test_chat_logprobs_for_every_token_of_every_segment(client):
    response = chat(client, messages=[{"role": "user", "content": "What is 12*7?"}], tools=[CALCULATOR],
                    tool_choice={"type": "function", "function": {"name": "calculator"}}, logprobs=True,
                    top_logprobs=2, max_tokens=60)
    content = response.choices[0].logprobs.content
    assert len(response.model_extra["interceptions"]) == 1
    assert len(content) == response.usage.completion_tokens  # the call's tokens and the answer's
    for position in content:
        assert position.logprob <= 0 and len(position.top_logprobs) == 2
        assert position.top_logprobs[0].logprob >= position.top_logprobs[1].logprob
        assert position.top_logprobs[0].logprob >= position.logprob  # the sampled token may rank below the top
    streamed = [lp for c in chat(client, messages=COLORS, logprobs=True, top_logprobs=1, stream=True)
                if c.choices and c.choices[0].logprobs for lp in c.choices[0].logprobs.content]
    whole = chat(client, messages=COLORS, logprobs=True, top_logprobs=1).choices[0].logprobs.content
    assert [p.token for p in streamed] == [p.token for p in whole]


def test_completion_logprobs(client):
    got = client.completions.create(model=MODEL, prompt="One, two,", temperature=0, max_tokens=8, logprobs=3)
    lp = got.choices[0].logprobs
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == got.usage.completion_tokens
    assert all(len(top) <= 3 and max(top.values()) >= chosen for top, chosen in zip(lp.top_logprobs, lp.token_logprobs))
    assert "".join(lp.tokens) == got.choices[0].text


# -- n and seed ---------------------------------------------------------------------------

def test_n_choices_each_sampled_with_its_own_seed(client):
    kwargs = dict(messages=[{"role": "user", "content": "Write a word."}], temperature=1.0, max_tokens=12, seed=1234)
    first = chat(client, n=3, **kwargs)
    assert [c.index for c in first.choices] == [0, 1, 2]
    again = chat(client, n=3, **kwargs)
    assert [c.message.content for c in again.choices] == [c.message.content for c in first.choices]  # seeded
    assert len({c.message.content for c in first.choices}) > 1  # each choice its own sample
    assert first.usage.completion_tokens >= 3  # summed over the choices
    chunks = list(chat(client, n=2, stream=True, **kwargs))
    assert [streamed_text(chunks, i) for i in (0, 1)] == [c.message.content for c in first.choices[:2]]


def test_n_choices_pause_at_calls_independently(client):
    response = chat(client, n=2, messages=[{"role": "user", "content": "What is 6*7?"}], tools=[CALCULATOR],
                    tool_choice={"type": "function", "function": {"name": "calculator"}}, temperature=0.8, seed=5,
                    max_tokens=60)
    assert len(response.choices) == 2
    assert len(response.model_extra["interceptions"]) == 2  # one call per choice, each its own session


# -- structured outputs -------------------------------------------------------------------

PERSON = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
          "required": ["name", "age"], "additionalProperties": False}


def test_json_schema_response_format_validates(client):
    response = chat(client, messages=[{"role": "user", "content": "Describe a person as JSON."}], max_tokens=80,
                    response_format={"type": "json_schema", "json_schema": {"name": "person", "strict": True,
                                                                            "schema": PERSON}})
    jsonschema.validate(json.loads(response.choices[0].message.content), PERSON)


def test_json_object_response_format_parses(client):
    # A small model asked for "a JSON object about Paris" nests keys until max_tokens (still JSON
    # so far, but unfinished): asked for a flat answer, it closes the object.
    response = chat(client, messages=[{"role": "user", "content": 'Reply with JSON like {"capital": "..."}: '
                                                                  "what is the capital of France?"}],
                    max_tokens=120, response_format={"type": "json_object"})
    assert response.choices[0].finish_reason == "stop"
    assert isinstance(json.loads(response.choices[0].message.content), dict)


def test_vllm_structured_outputs_and_guided_extras(client):
    choice = chat(client, messages=[{"role": "user", "content": "Is the sky blue?"}],
                  extra_body={"structured_outputs": {"choice": ["yes", "no"]}}).choices[0].message.content
    assert choice in ("yes", "no")
    digits = client.completions.create(model=MODEL, prompt="The year is", temperature=0, max_tokens=6,
                                       extra_body={"guided_regex": "[0-9]{4}"}).choices[0].text
    assert re.fullmatch("[0-9]{4}", digits)


def test_a_grammar_vllm_cannot_compile_is_a_400(client):
    with pytest.raises(openai.BadRequestError) as caught:
        chat(client, messages=COLORS, extra_body={"structured_outputs": {"grammar": "root ::= ( unclosed"}})
    assert caught.value.status_code == 400


# -- ignore_eos ----------------------------------------------------------------------------

def test_ignore_eos_generates_past_the_end_of_the_turn(client):
    """vLLM's own end-of-sequence check stops a request whatever its stop token ids: ignore_eos
    must reach it (`vllm bench serve --ignore-eos` counts on every request's exact length)."""
    short = next((messages for messages in ([{"role": "user", "content": text}] for text in SHORT_ANSWERS)
                  if chat(client, messages=messages, max_tokens=32).choices[0].finish_reason == "stop"), None)
    assert short is not None, "no prompt of SHORT_ANSWERS ends on its own within 32 tokens"
    past = chat(client, messages=short, max_tokens=32, extra_body={"ignore_eos": True})
    assert past.choices[0].finish_reason == "length" and past.usage.completion_tokens == 32


# -- tool calls under their schema --------------------------------------------------------

def test_forced_call_arguments_follow_the_tools_schema(client):
    response = chat(client, messages=[{"role": "user", "content": "Search the web for the tallest building."}],
                    tools=[SEARCH], tool_choice={"type": "function", "function": {"name": "web_search"}})
    call = response.choices[0].message.tool_calls[0]
    assert response.choices[0].finish_reason == "tool_calls" and call.function.name == "web_search"
    jsonschema.validate(json.loads(call.function.arguments), SEARCH["function"]["parameters"])


def test_a_constrained_call_cut_at_max_tokens_is_length_and_unrepaired(client):
    """Cut before its JSON is whole, a call generated under its schema is answered as written, with
    finish_reason "length" (as vLLM and OpenAI do), not closed into a call missing its required keys."""
    response = chat(client, messages=[{"role": "user", "content": "Find recipes for banana bread."}], max_tokens=6,
                    tools=[SEARCH], tool_choice={"type": "function", "function": {"name": "web_search"}})
    choice = response.choices[0]
    assert choice.finish_reason == "length" and response.usage.completion_tokens == 6
    call = choice.message.tool_calls[0].function
    assert call.name == "web_search" and call.arguments.startswith('{"query')
    with pytest.raises(ValueError):
        json.loads(call.arguments)


def test_required_makes_parallel_calls_in_one_turn_and_one_without_them(client):
    """vLLM's grammar for "required": an array of whole calls. Asked about three cities, the model
    calls the weather tool for more than one in the same turn (it may go on until the token cap:
    then the last call is the cut one, as written); with parallel_tool_calls false, exactly one."""
    messages = [{"role": "user", "content": "Weather in Paris, Oslo and Rome?"}]
    schema = WEATHER["function"]["parameters"]
    choice = chat(client, messages=messages, tools=[WEATHER], tool_choice="required", max_tokens=120).choices[0]
    calls = choice.message.tool_calls
    whole = calls[:-1] if choice.finish_reason == "length" else calls
    assert choice.finish_reason in ("tool_calls", "length") and len(whole) >= 2, calls
    for call in whole:
        assert call.function.name == "get_weather"
        jsonschema.validate(json.loads(call.function.arguments), schema)
    assert len({json.loads(c.function.arguments)["city"] for c in whole}) >= 2  # different cities, one turn
    assert len({c.id for c in calls}) == len(calls)

    one = chat(client, messages=messages, tools=[WEATHER], tool_choice="required", max_tokens=120,
               parallel_tool_calls=False).choices[0]
    assert one.finish_reason == "tool_calls" and len(one.message.tool_calls) == 1
    jsonschema.validate(json.loads(one.message.tool_calls[0].function.arguments), schema)


def test_required_over_several_tools_calls_one_of_them_validly(client):
    response = chat(client, messages=[{"role": "user", "content": "How warm is it in Oslo, in celsius?"}],
                    tools=[SEARCH, WEATHER], tool_choice="required")
    call = response.choices[0].message.tool_calls[0]
    schema = {"web_search": SEARCH, "get_weather": WEATHER}[call.function.name]["function"]["parameters"]
    jsonschema.validate(json.loads(call.function.arguments), schema)
