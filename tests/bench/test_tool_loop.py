"""The stock-vLLM tool loop: request construction and response reading (pure), the calls the
client runs itself (the executor's real functions), and the whole loop of StockClient against a
stand-in /v1/completions (httpx.MockTransport) that checks every re-submitted context. The real
stock server runs in tests/bench/test_smoke.py."""

from __future__ import annotations

import json

import httpx
import pytest

from bench.client_calls import run_call, run_sync
from bench.engine_settings import EngineSettings
from bench.stock import server_args
from bench.stock_client import StockClient
from bench.tool_loop import (
    RESUBMIT,
    SegmentResult,
    check_segment,
    note_resubmit,
    read_payload,
    resumed_context,
    segment_request,
)
from bench.workload import BenchRequest, without_calls

PROMPT = [1, 2, 3, 4]
PLAN = {"segments": [
    {"generate_tokens": 3, "api": "tts", "duration_s": 0.05, "return_tokens": 2},
    {"generate_tokens": 2, "api": "calculator", "arguments": {"expression": "6 * 7"}, "return_tokens": 3},
    {"generate_tokens": 4},
]}


def test_segment_request_asks_for_exactly_n_greedy_tokens_with_their_ids():
    body = segment_request("m", PROMPT, 7, stream=True)
    assert body == {"model": "m", "prompt": PROMPT, "max_tokens": 7, "ignore_eos": True, "temperature": 0,
                    "return_token_ids": True, "stream": True, "stream_options": {"include_usage": True}}
    assert "stream_options" not in segment_request("m", PROMPT, 7, stream=False)
    assert body["prompt"] is not PROMPT  # a copy: the loop keeps growing its own list


def test_the_resumed_context_is_everything_so_far():
    assert resumed_context(PROMPT, [9, 9], [5]) == [1, 2, 3, 4, 9, 9, 5]


def test_reading_a_stream_and_a_plain_response():
    streamed = SegmentResult()
    read_payload({"choices": [{"token_ids": [], "finish_reason": None}]}, streamed, 1.0)
    read_payload({"choices": [{"token_ids": [7], "finish_reason": None}]}, streamed, 2.0)
    read_payload({"choices": [{"token_ids": [8], "finish_reason": "length"}]}, streamed, 3.0)
    read_payload({"choices": [], "usage": {"prompt_tokens": 10, "prompt_tokens_details": {"cached_tokens": 4}}},
                 streamed, 4.0)
    assert (streamed.token_ids, streamed.finish_reason, streamed.first_token_s) == ([7, 8], "length", 2.0)
    assert streamed.computed_prompt_tokens == 6 and check_segment(streamed, 2) is None

    plain = SegmentResult()
    read_payload({"choices": [{"token_ids": [1, 2, 3], "finish_reason": "length"}],
                  "usage": {"prompt_tokens": 5, "prompt_tokens_details": None}}, plain, 1.0)
    assert plain.computed_prompt_tokens == 5  # no cache details: all computed
    assert "2 asked" in check_segment(plain, 2)

    failed = SegmentResult()
    read_payload({"error": {"message": "prompt too long"}}, failed, 1.0)
    assert check_segment(failed, 2) == "prompt too long"


def test_a_resubmission_is_noted_on_the_call_before_it():
    record = {"api": "tts", "strategy": RESUBMIT, "returned_tokens": 4}
    note_resubmit(record, SegmentResult(prompt_tokens=300, cached_tokens=256, first_token_s=5.5), submitted_s=5.0)
    # 44 computed, of which the 4 returned tokens and the last generated one are not recomputation
    assert record["recomputed_tokens"] == 39 and record["recompute_s"] == pytest.approx(0.5)


def test_real_kinds_run_in_the_client():
    assert run_sync("calculator", {"expression": "6 * 7"}, {}) == "42"
    assert run_sync("calculator", {"expression": "1 / 0"}, {}).startswith("error:")
    assert run_sync("qa", {"query": "longest river in the world"}, {})
    episodes: dict = {}
    intro = run_sync("ve", {"episode": "e1", "action": "look"}, episodes)
    assert "Your task is to" in intro and "e1" in episodes
    assert "Your task is to" not in run_sync("ve", {"episode": "e1", "action": "look"}, episodes)


async def test_stand_ins_wait_their_stated_duration():
    import time

    began = time.monotonic()
    assert await run_call({"api": "image", "duration_s": 0.2}, {}) == "[image result]"
    assert time.monotonic() - began >= 0.2


def test_the_stock_server_gets_our_engine_settings():
    engine = EngineSettings(dtype="float32", kv_cache_bytes=123, max_model_len=384, max_num_seqs=64,
                            max_num_batched_tokens=512, enable_chunked_prefill=False, async_scheduling=False,
                            block_size=128, cpu_cores="0-1")
    args = server_args(__import__("pathlib").Path("/m"), "name", engine, port=9)
    pairs = dict(zip(args[::1], args[1::1]))
    assert (pairs["--dtype"], pairs["--kv-cache-memory-bytes"], pairs["--max-model-len"], pairs["--max-num-seqs"],
            pairs["--max-num-batched-tokens"], pairs["--block-size"]) == ("float32", "123", "384", "64", "512", "128")
    assert {"--enforce-eager", "--enable-prefix-caching", "--enable-prompt-tokens-details",
            "--no-enable-chunked-prefill", "--no-async-scheduling"} <= set(args)
    worker = engine.worker_env()  # our worker gets the same, and both the same cores
    assert (worker["AUGSERVE_MAX_NUM_BATCHED_TOKENS"], worker["AUGSERVE_ENABLE_CHUNKED_PREFILL"],
            worker["AUGSERVE_BLOCK_SIZE"], worker["VLLM_CPU_OMP_THREADS_BIND"]) == ("512", "false", "128", "0-1")
    assert engine.cpu_env() == {"VLLM_CPU_OMP_THREADS_BIND": "0-1", "VLLM_CPU_NUM_OF_RESERVED_CPU": "0"}


def test_without_calls_keeps_the_prompt_and_the_generated_tokens():
    request = BenchRequest(0, "k", "tts", 1.5, 40, PLAN)
    (flat,) = without_calls([request])
    assert flat.plan == {"segments": [{"generate_tokens": 9}]} and flat.prompt_tokens == 40 and flat.arrival_s == 1.5


class Prompts:
    def build(self, tokens, rng):
        return "text"

    def token_ids(self, text):
        return list(PROMPT)


class Codec:
    def exact_length(self, text, length):
        return [100 + len(text)] * length


def _stock_server(sent: list[dict]):
    """A stand-in /v1/completions: tokens 50, 51, ... per segment; caches nothing but the first prompt."""

    async def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        sent.append(body)
        ids = list(range(50 + 10 * len(sent), 50 + 10 * len(sent) + body["max_tokens"]))
        cached = len(PROMPT) if len(sent) > 1 else 0
        chunks = [{"choices": [{"token_ids": [i], "finish_reason": "length" if i == ids[-1] else None}]} for i in ids]
        chunks.append({"choices": [], "usage": {"prompt_tokens": len(body["prompt"]),
                                                "prompt_tokens_details": {"cached_tokens": cached}}})
        data = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
        return httpx.Response(200, content=data.encode(), headers={"content-type": "text/event-stream"})

    return httpx.MockTransport(handler)


async def test_the_client_runs_the_loop_and_resubmits_the_whole_context():
    sent: list[dict] = []
    client = StockClient("http://stock", "m", Prompts(), Codec(), seed=0, transport=_stock_server(sent))
    (rec,) = await client.run_open([BenchRequest(0, "k", "tts", 0.0, 4, PLAN)], window_s=0.1, drain_s=10)
    assert rec.ok, rec.error
    tts_result, calc_result = [100 + len("[tts result]")] * 2, [100 + len("42")] * 3
    assert [b["prompt"] for b in sent] == [
        PROMPT,
        PROMPT + [60, 61, 62] + tts_result,
        PROMPT + [60, 61, 62] + tts_result + [70, 71] + calc_result,
    ]
    assert [b["max_tokens"] for b in sent] == [3, 2, 4] and all(b["ignore_eos"] for b in sent)
    assert (rec.completion_tokens, rec.prompt_tokens) == (9, 4 + 2 + 3)
    tts, calc = rec.interceptions
    assert tts["api"] == "tts" and tts["strategy"] == RESUBMIT and tts["duration_s"] >= 0.05
    assert tts["returned_tokens"] == 2 and tts["context_tokens"] == 7 and tts["held_kv_byte_seconds"] == 0.0
    # re-submitted less the cached prompt, less the returned tokens and the last generated token
    assert tts["recomputed_tokens"] == 9 - 4 - 3 and calc["recomputed_tokens"] == 14 - 4 - 4
    assert tts["api_s"] >= 0.05 and tts["api_s"] <= tts["duration_s"]
    assert rec.arrival_s <= rec.first_token_s <= rec.end_s


async def test_a_short_segment_fails_the_request_with_a_clear_error():
    async def handler(request):
        chunk = {"choices": [{"token_ids": [5], "finish_reason": "stop"}]}
        return httpx.Response(200, content=f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n".encode())

    client = StockClient("http://stock", "m", Prompts(), Codec(), seed=0, transport=httpx.MockTransport(handler))
    (rec,) = await client.run_open([BenchRequest(0, "k", "tts", 0.0, 4, PLAN)], window_s=0.1, drain_s=10)
    assert not rec.ok and "segment generated 1 tokens, 3 asked" in rec.error
