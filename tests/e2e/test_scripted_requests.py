"""Scripted requests (the `plan` extension) through every real part of the stack."""

from __future__ import annotations

import asyncio

import httpx

from engine_worker.tokens import TokenCodec

MODEL = "SmolLM2-135M-Instruct"
PROMPT = "Tell me a story about a robot who learns to paint."

THREE_CALLS = {
    "segments": [
        {"generate_tokens": 12, "api": "calculator", "arguments": {"expression": "(12 + 30) * 2"}, "return_tokens": 3},
        {"generate_tokens": 9, "api": "qa", "arguments": {"query": "capital of France"}, "return_tokens": 20},
        {"generate_tokens": 7, "api": "image", "duration_s": 0.3, "return_tokens": 11},
        {"generate_tokens": 10},
    ]
}


def _chat(plan: dict, **extra) -> dict:
    return {"model": MODEL, "messages": [{"role": "user", "content": PROMPT}], "temperature": 0,
            "plan": plan, **extra}


def test_three_interceptions_of_different_kinds_complete_with_exact_accounting(gateway_url):
    response = httpx.post(f"{gateway_url}/v1/chat/completions", json=_chat(THREE_CALLS), timeout=120)
    assert response.status_code == 200, response.text
    body = response.json()
    records = body["interceptions"]
    assert [r["api"] for r in records] == ["calculator", "qa", "image"]
    assert [r["returned_tokens"] for r in records] == [3, 20, 11]
    assert all(r["ok"] for r in records), records
    assert records[0]["result"].strip().startswith("84")  # the calculator really computed it
    assert records[2]["duration_s"] >= 0.3 * 0.99  # the stand-in waited its stated duration
    # Each call paused the request where the context had grown by exactly the scripted amounts.
    prompt_tokens = body["usage"]["prompt_tokens"] - (3 + 20 + 11)
    assert [r["context_tokens"] for r in records] == [
        prompt_tokens + 12, prompt_tokens + 12 + 3 + 9, prompt_tokens + 12 + 3 + 9 + 20 + 7,
    ]
    assert body["usage"]["completion_tokens"] == 12 + 9 + 7 + 10
    assert body["usage"]["total_tokens"] == body["usage"]["prompt_tokens"] + 38
    assert body["choices"][0]["finish_reason"] == "stop"
    starts = [r["started_at"] for r in records]
    assert starts == sorted(starts) and all(r["ended_at"] >= r["started_at"] for r in records)


def test_final_tokens_equal_one_uninterrupted_greedy_generation(gateway_url, model_path):
    """The pause changes nothing: each segment equals plain greedy decoding over its context."""
    response = httpx.post(f"{gateway_url}/v1/chat/completions", json=_chat(THREE_CALLS, return_token_ids=True),
                          timeout=120)
    assert response.status_code == 200, response.text
    body = response.json()
    generated = body["choices"][0]["token_ids"]
    codec = TokenCodec(model_path)
    context = list(body["prompt_token_ids"])
    offset = 0
    for segment, record in zip(THREE_CALLS["segments"], body["interceptions"] + [None]):
        n = segment["generate_tokens"]
        reference = httpx.post(f"{gateway_url}/v1/completions", timeout=120, json={
            "model": MODEL, "prompt": context, "max_tokens": n, "temperature": 0, "ignore_eos": True,
            "return_token_ids": True})
        assert reference.status_code == 200, reference.text
        expected = reference.json()["choices"][0]["token_ids"]
        assert generated[offset:offset + n] == expected, f"segment at token {offset} differs"
        context += generated[offset:offset + n]
        offset += n
        if record is not None:
            context += codec.exact_length(record["result"], record["returned_tokens"])
    assert offset == len(generated)


async def test_eight_concurrent_requests_some_paused_all_complete(gateway_url):
    plans = []
    for i in range(8):
        if i % 2:
            plans.append({"segments": [
                {"generate_tokens": 6, "api": "tts", "duration_s": 3.0, "return_tokens": 5},
                {"generate_tokens": 4, "api": "calculator", "arguments": {"expression": f"{i}*{i}"},
                 "return_tokens": 2},
                {"generate_tokens": 5}]})
        else:
            plans.append({"segments": [{"generate_tokens": 12 + i}]})
    async with httpx.AsyncClient(timeout=120) as client:
        responses = await asyncio.gather(*[
            client.post(f"{gateway_url}/v1/chat/completions", json=_chat(plan)) for plan in plans])
    for i, response in enumerate(responses):
        assert response.status_code == 200, response.text
        body = response.json()
        expected_calls = 2 if i % 2 else 0
        assert len(body["interceptions"]) == expected_calls
        assert body["usage"]["completion_tokens"] == sum(s["generate_tokens"] for s in plans[i]["segments"])
    # A paused request never blocks the others: every unpaused request finished while the
    # paused ones were still waiting on their 3 s calls.
    quick = [r.elapsed.total_seconds() for i, r in enumerate(responses) if i % 2 == 0]
    paused = [r.elapsed.total_seconds() for i, r in enumerate(responses) if i % 2]
    assert min(paused) >= 3.0
    assert max(quick) < min(paused)
