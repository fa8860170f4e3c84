"""Stop strings, logprobs, n, seed, penalties and structured outputs at the gateway: what reaches
the engine, and the OpenAI shapes of what comes back (the official client reads them)."""

from __future__ import annotations

import asyncio

import pytest

from common.schemas import DeltaEvent, StructuredOutput, TokenLogprob, TopLogprob
from tests.gateway.conftest import MODEL, final

pytestmark = pytest.mark.asyncio

USER = [{"role": "user", "content": "Hi!"}]
LP = [TokenLogprob(token="Hel", logprob=-0.5, top_logprobs=[TopLogprob(token="Hel", logprob=-0.5),
                                                             TopLogprob(token="Hi", logprob=-1.25)]),
      TokenLogprob(token="lo", logprob=-0.25, top_logprobs=[TopLogprob(token="lo", logprob=-0.25),
                                                            TopLogprob(token="p", logprob=-2.0)])]


def with_logprobs(event, logprobs=LP):
    return event.model_copy(update={"logprobs": logprobs})


async def test_sampling_fields_reach_the_engine(gw):
    task = asyncio.create_task(gw.openai().chat.completions.create(
        model=MODEL, messages=USER, stop=["\n", "Observation:"], seed=7, presence_penalty=0.5, frequency_penalty=-0.5,
        logit_bias={"5": -100}, logprobs=True, top_logprobs=2,
        extra_body={"include_stop_str_in_output": True, "top_k": 20, "min_p": 0.05, "repetition_penalty": 1.1}))
    req = await gw.engine.next_request()
    s = req.sampling
    assert (s.stop, s.include_stop_str_in_output, s.seed, s.logprobs) == (["\n", "Observation:"], True, 7, 2)
    assert (s.presence_penalty, s.frequency_penalty, s.logit_bias) == (0.5, -0.5, {5: -100.0})
    assert (s.top_k, s.min_p, s.repetition_penalty) == (20, 0.05, 1.1)
    await gw.engine.emit(req.request_id, final())
    await task


@pytest.mark.parametrize("fields,expected", [
    ({"response_format": {"type": "json_object"}}, StructuredOutput(json_object=True)),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "p", "strict": True, "schema": {
        "type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}}}},
     StructuredOutput(json_schema={"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]})),
    ({"structured_outputs": {"choice": ["yes", "no"]}}, StructuredOutput(choice=["yes", "no"])),
    ({"structured_outputs": {"json": '{"type": "array"}', "disable_any_whitespace": True}},
     StructuredOutput(json_schema={"type": "array"}, compact=True)),
    ({"guided_regex": "[0-9]+"}, StructuredOutput(regex="[0-9]+")),
    ({"guided_grammar": 'root ::= "a"'}, StructuredOutput(grammar='root ::= "a"')),
])
async def test_output_constraints_reach_the_engine(gw, fields, expected):
    task = asyncio.create_task(gw.http.post("/v1/chat/completions", json={"model": MODEL, "messages": USER, **fields}))
    req = await gw.engine.next_request()
    assert req.sampling.structured == expected
    await gw.engine.emit(req.request_id, final())
    assert (await task).status_code == 200


async def test_chat_logprobs_in_openais_shape(gw):
    task = asyncio.create_task(gw.openai().chat.completions.create(model=MODEL, messages=USER, logprobs=True,
                                                                   top_logprobs=2))
    req = await gw.engine.next_request()
    await gw.engine.emit(req.request_id, with_logprobs(final("Hello", completion_tokens=2)))
    content = (await task).choices[0].logprobs.content
    assert [(c.token, c.logprob) for c in content] == [("Hel", -0.5), ("lo", -0.25)]
    assert [(t.token, t.logprob) for t in content[0].top_logprobs] == [("Hel", -0.5), ("Hi", -1.25)]
    assert content[1].bytes == list(b"lo")


async def test_streamed_chat_logprobs_ride_with_their_text(gw):
    async def consume():
        stream = await gw.openai().chat.completions.create(model=MODEL, messages=USER, logprobs=True, top_logprobs=2,
                                                           stream=True)
        return [chunk async for chunk in stream]

    task = asyncio.create_task(consume())
    req = await gw.engine.next_request()
    await gw.engine.emit(req.request_id, DeltaEvent(text="Hel", token_ids=[1], logprobs=LP[:1]),
                         DeltaEvent(text="lo", token_ids=[2], logprobs=LP[1:]),
                         with_logprobs(final("Hello", completion_tokens=2)))
    chunks = [c for c in await task if c.choices and c.choices[0].logprobs]
    assert [[t.token for t in c.choices[0].logprobs.content] for c in chunks] == [["Hel"], ["lo"]]


async def test_completion_logprobs_in_the_legacy_shape(gw):
    task = asyncio.create_task(gw.openai().completions.create(model=MODEL, prompt="Say", logprobs=2))
    req = await gw.engine.next_request()
    assert req.sampling.logprobs == 2
    await gw.engine.emit(req.request_id, with_logprobs(final("Hello", completion_tokens=2)))
    logprobs = (await task).choices[0].logprobs
    assert logprobs.tokens == ["Hel", "lo"] and logprobs.token_logprobs == [-0.5, -0.25]
    assert logprobs.top_logprobs == [{"Hel": -0.5, "Hi": -1.25}, {"lo": -0.25, "p": -2.0}]
    assert logprobs.text_offset == [0, 3]


async def test_n_choices_are_n_engine_requests_with_their_own_seeds(gw):
    task = asyncio.create_task(gw.openai().chat.completions.create(model=MODEL, messages=USER, n=3, seed=41))
    reqs = [await gw.engine.next_request() for _ in range(3)]
    base = reqs[0].request_id
    assert [r.request_id for r in reqs] == [base, f"{base}-1", f"{base}-2"]
    assert [r.sampling.seed for r in reqs] == [41, 42, 43]
    prompt = len(reqs[0].prompt_token_ids)
    for i, r in reversed(list(enumerate(reqs))):  # the choices finish in any order
        await gw.engine.emit(r.request_id, final(f"answer {i}", prompt_tokens=prompt + i, completion_tokens=3))
    completion = await task
    assert [(c.index, c.message.content) for c in completion.choices] == [(0, "answer 0"), (1, "answer 1"),
                                                                         (2, "answer 2")]
    # The prompt counts once; what the server appended to a choice's context (here 1 and 2 tokens) counts too.
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (prompt + 1 + 2, 9)


async def test_n_choices_stream_interleaved_each_with_its_index(gw):
    async def consume():
        stream = await gw.openai().completions.create(model=MODEL, prompt="Say", n=2, stream=True,
                                                      stream_options={"include_usage": True})
        return [chunk async for chunk in stream]

    task = asyncio.create_task(consume())
    a, b = await gw.engine.next_request(), await gw.engine.next_request()
    await gw.engine.emit(b.request_id, DeltaEvent(text="B1", token_ids=[1]))
    await gw.engine.emit(a.request_id, DeltaEvent(text="A1", token_ids=[1]))
    await gw.engine.emit(b.request_id, final("B1", completion_tokens=1))
    await gw.engine.emit(a.request_id, DeltaEvent(text="A2", token_ids=[2]), final("A1A2", completion_tokens=2))
    chunks = await task
    texts = {0: "", 1: ""}
    for c in chunks:
        for choice in c.choices:
            texts[choice.index] += choice.text
    assert texts == {0: "A1A2", 1: "B1"}
    assert sorted(ch.index for c in chunks for ch in c.choices if ch.finish_reason) == [0, 1]
    assert chunks[-1].usage.completion_tokens == 3 and chunks[-1].choices == []
