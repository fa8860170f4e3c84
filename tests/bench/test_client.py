"""The load client against a stand-in gateway (httpx.MockTransport): what it sends, what it
records from streamed and plain responses, failures, the drain cut, open and closed loop."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from bench.client import UNFINISHED, LoadClient
from bench.workload import BenchRequest

PLAN = {"segments": [{"generate_tokens": 3, "api": "tts", "duration_s": 0.01, "return_tokens": 2},
                     {"generate_tokens": 2}]}
RECORD = {"call_id": "c1", "api": "tts", "arguments": {}, "result": "long text", "duration_s": 0.01,
          "strategy": "preserve", "context_tokens": 40, "returned_tokens": 2, "ok": True, "recomputed_tokens": 0}
USAGE = {"prompt_tokens": 42, "completion_tokens": 5, "total_tokens": 47}


class Prompts:
    def build(self, tokens, rng):
        return " ".join(["word"] * tokens)


def _requests(arrivals) -> list[BenchRequest]:
    return [BenchRequest(i, f"k{i}", "tts", a, 40, PLAN) for i, a in enumerate(arrivals)]


def _sse(*chunks) -> bytes:
    return b"".join(f"data: {c if isinstance(c, str) else json.dumps(c)}\n\n".encode() for c in chunks)


def _stream_body() -> bytes:
    head = {"id": "x", "object": "chat.completion.chunk"}
    opening = {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
    return _sse({**head, "choices": [opening]},
                {**head, "choices": [{"index": 0, "delta": {"content": "abc"}, "finish_reason": None}]},
                {**head, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "interceptions": [RECORD]},
                {**head, "choices": [], "usage": USAGE}, "[DONE]")


def _client(handler, stream=True) -> tuple[LoadClient, list[dict]]:
    sent: list[dict] = []

    async def record(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content))
        return await handler(request)

    return LoadClient("http://gw", "model-x", Prompts(), seed=0, stream=stream,
                      transport=httpx.MockTransport(record)), sent


async def test_open_loop_streams_and_records_everything():
    async def handler(request):
        return httpx.Response(200, content=_stream_body(), headers={"content-type": "text/event-stream"})

    client, sent = _client(handler)
    records = await client.run_open(_requests([0.0, 0.0, 0.2]), window_s=0.3, drain_s=5)
    assert sent[0]["plan"] == PLAN and sent[0]["temperature"] == 0 and sent[0]["stream"] is True
    assert sent[0]["stream_options"] == {"include_usage": True} and sent[0]["model"] == "model-x"
    assert sent[0]["messages"] == [{"role": "user", "content": " ".join(["word"] * 40)}]
    for rec in records:
        assert rec.ok and rec.status == 200 and rec.finish_reason == "stop"
        assert (rec.prompt_tokens, rec.completion_tokens, rec.planned_tokens) == (42, 5, 5)
        assert rec.interceptions == [{k: v for k, v in RECORD.items() if k not in ("call_id", "arguments", "result")}]
        assert rec.arrival_s <= rec.sent_s <= rec.first_token_s <= rec.end_s
    assert records[2].sent_s >= 0.2  # sent at its arrival time


async def test_plain_responses():
    async def handler(request):
        choice = {"index": 0, "message": {"content": "abc"}, "finish_reason": "stop"}
        return httpx.Response(200, json={"choices": [choice], "usage": USAGE, "interceptions": [RECORD]})

    client, sent = _client(handler, stream=False)
    (rec,) = await client.run_open(_requests([0.0]), window_s=0.1, drain_s=5)
    assert "stream_options" not in sent[0] and rec.ok and rec.first_token_s is None
    assert rec.completion_tokens == 5 and rec.interceptions[0]["strategy"] == "preserve"


@pytest.mark.parametrize(("response", "error"), [
    (httpx.Response(400, json={"error": {"message": "the plan needs 900 tokens"}}), "the plan needs 900 tokens"),
    (httpx.Response(200, content=_sse({"error": {"message": "engine died"}}, "[DONE]")), "engine died"),
    (httpx.Response(200, content=_sse({"choices": [{"index": 0, "delta": {}, "finish_reason": "error"}]}, "[DONE]")),
     "finish_reason 'error'"),
])
async def test_failures_are_recorded_with_their_message(response, error):
    async def handler(request):
        return response

    client, _ = _client(handler)
    (rec,) = await client.run_open(_requests([0.0]), window_s=0.1, drain_s=5)
    assert not rec.ok and rec.error == error and rec.end_s is not None


async def test_requests_still_running_at_the_drain_end_are_cut_and_marked():
    release = asyncio.Event()

    async def handler(request):
        await release.wait()  # never set: the gateway never answers
        return httpx.Response(200)

    client, _ = _client(handler)
    (rec,) = await client.run_open(_requests([0.0]), window_s=0.1, drain_s=0.2)
    assert not rec.ok and rec.error == UNFINISHED and rec.end_s is None and rec.sent_s is not None


async def test_closed_loop_keeps_n_requests_in_flight_until_the_window_ends():
    in_flight = peak = 0

    async def handler(request):
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.05)
        in_flight -= 1
        return httpx.Response(200, content=_stream_body())

    client, _ = _client(handler)
    records = await client.run_closed(_requests([0.0] * 100), concurrency=3, window_s=0.4, drain_s=5)
    assert peak == 3 and 6 <= len(records) < 100 and all(r.ok for r in records)
    assert [r.arrival_s for r in records] == sorted(r.arrival_s for r in records)
    assert all(r.arrival_s < 0.4 and abs(r.sent_s - r.arrival_s) < 0.05 for r in records)


async def test_the_stacks_operator_key_is_sent():
    seen: list[str | None] = []

    async def handler(request):
        seen.append(request.headers.get("authorization"))
        return httpx.Response(200, content=_stream_body(), headers={"content-type": "text/event-stream"})

    client = LoadClient("http://gw", "model-x", Prompts(), seed=0, transport=httpx.MockTransport(handler),
                        api_key="bench-operator-key")
    await client.run_open(_requests([0.0]), window_s=0.1, drain_s=5)
    assert seen == ["Bearer bench-operator-key"]
