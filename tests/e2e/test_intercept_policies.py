"""Each handling policy really moves KV memory, and none changes a greedy request's tokens.

Stacks on the tiny random-weight model (same architecture and tokenizer as the default) with a
small KV pool, one per policy. The pool is read from vLLM's own `vllm:kv_cache_usage_perc`
gauge on the engine worker's metrics port while a scripted request is paused at a call. The
stacks export their spans to the session's OTLP receiver: a discard shows in the request's trace.
"""

from __future__ import annotations

import asyncio
import re
import time

import httpx
import pytest

from engine_worker.cost_profile import kv_bytes_per_token
from stack.models import build_tiny
from stack.processes import free_port
from stack.services import Stack, StackConfig
from tests.e2e.conftest import EXACT_DTYPE
from tests.otlp_receiver import OtlpReceiver

MODEL = "SmolLM2-135M-Instruct"
POOL_BYTES = 16 << 20
KV_BYTES = kv_bytes_per_token(str(build_tiny()), EXACT_DTYPE)
"""The tiny model's KV bytes per token in these stacks (they compare the policies' tokens exactly)."""
LONG_PROMPT = "The quick brown fox jumps over the lazy dog. " * 60  # ~600 tokens: 4+ full blocks
PAUSING_PLAN = {"segments": [
    {"generate_tokens": 8, "api": "tts", "duration_s": 4.0, "return_tokens": 6},
    {"generate_tokens": 8, "api": "calculator", "arguments": {"expression": "6*7"}, "return_tokens": 2},
    {"generate_tokens": 8},
]}


def _start(policy: str, tmp_path_factory, otlp_endpoint: str) -> Stack:
    cfg = StackConfig(
        model_path=str(build_tiny()), state_dir=tmp_path_factory.mktemp(f"stack-{policy}"),
        gateway_port=free_port(), engine_metrics_port=free_port(), estimator_port=free_port(),
        executor_metrics_port=free_port(), redis_port=free_port(), time_scale=0.02,
        worker_env={"AUGSERVE_POLICY": policy, "AUGSERVE_KV_CACHE_BYTES": str(POOL_BYTES),
                    "AUGSERVE_DTYPE": EXACT_DTYPE,
                    # One running slot: the probe can run during the call only if the paused request
                    # gave its slot back with its KV (a preserved session keeps both).
                    "AUGSERVE_MAX_NUM_SEQS": "2" if policy == "preserve" else "1"},
        otlp_endpoint=otlp_endpoint,
    )
    return Stack(cfg).start()


def _metric(text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)}(?:{{[^}}]*}})? ([0-9.e+-]+)$", text, re.M)
    assert match, f"{name} not exported"
    return float(match.group(1))


async def _pool_usage_while_paused(stack: Stack) -> tuple[float, dict, float]:
    """Starts the pausing request, waits until it is paused, makes the engine step once (a
    1-token probe, so the usage gauge is fresh) and reads the pool usage. Returns it, the
    paused request's final response and when the probe finished."""
    url = stack.cfg.gateway_url
    metrics_url = f"http://127.0.0.1:{stack.cfg.engine_metrics_port}/metrics"
    async with httpx.AsyncClient(timeout=120) as client:
        paused = asyncio.create_task(client.post(f"{url}/v1/chat/completions", json={
            "model": MODEL, "messages": [{"role": "user", "content": LONG_PROMPT}], "temperature": 0,
            "plan": PAUSING_PLAN, "return_token_ids": True}))
        deadline = time.monotonic() + 60
        while True:
            text = (await client.get(metrics_url)).text
            if sum(float(v) for v in re.findall(r"^augserve_engine_paused_requests{[^}]*} ([0-9.]+)$",
                                                text, re.M)) >= 1:
                break
            assert time.monotonic() < deadline and not paused.done(), "the request never paused"
            await asyncio.sleep(0.05)
        probe = await client.post(f"{url}/v1/completions", json={"model": MODEL, "prompt": "hi", "max_tokens": 1})
        assert probe.status_code == 200, probe.text
        probe_done = time.time()
        usage = _metric((await client.get(metrics_url)).text, "vllm:kv_cache_usage_perc")
        response = await paused
    assert response.status_code == 200, response.text
    return usage, response.json(), probe_done


@pytest.fixture(scope="module")
def results(tmp_path_factory, otlp) -> dict[str, tuple[float, dict, float]]:
    out = {}
    for policy in ("preserve", "improved-discard", "vllm", "swap"):
        stack = _start(policy, tmp_path_factory, otlp.endpoint)
        try:
            out[policy] = asyncio.run(_pool_usage_while_paused(stack))
        finally:
            stack.stop()
    return out


def test_preserve_keeps_the_paused_context_in_the_pool(results):
    usage, body, _ = results["preserve"]
    assert [r["strategy"] for r in body["interceptions"]] == ["preserve", "preserve"]
    first = body["interceptions"][0]
    # It held its whole context for the whole call: memory x time = waste.
    assert first["held_kv_byte_seconds"] >= 0.95 * first["duration_s"] * first["context_tokens"] * KV_BYTES
    # ~600 context tokens (5 blocks of 128) stay in the pool beside the probe's one block.
    assert usage >= 5 * 128 / (POOL_BYTES / KV_BYTES)  # blocks / pool blocks


def test_discard_returns_the_paused_context_to_the_pool(results):
    preserved, _, _ = results["preserve"]
    for policy in ("improved-discard", "vllm"):
        usage, body, _ = results[policy]
        records = body["interceptions"]
        assert records[0]["strategy"] == "discard"
        held_whole_call = records[0]["duration_s"] * records[0]["context_tokens"] * KV_BYTES
        assert records[0]["held_kv_byte_seconds"] < 0.5 * held_whole_call
        assert usage < preserved / 2, (policy, usage, preserved)
        # Resuming recomputed only what the prefix cache no longer held: at most the context.
        assert 0 < records[0]["recomputed_tokens"] <= records[0]["context_tokens"] + records[0]["returned_tokens"]


def test_swap_moves_the_paused_context_out_of_the_pool_and_back(results):
    preserved, _, _ = results["preserve"]
    usage, body, _ = results["swap"]
    records = body["interceptions"]
    assert [r["strategy"] for r in records] == ["swap", "swap"]
    first = records[0]
    assert usage < preserved / 2, (usage, preserved)
    # The connector copied the context out and back, and measured both copies.
    assert first["swapped_bytes"] >= first["context_tokens"] * KV_BYTES
    assert first["swap_out_s"] > 0 and first["swap_in_s"] > 0
    # Loaded, not recomputed: only the re-sent token and the call's result are prefilled, far
    # less than a discard recomputes (its partial last block at least).
    assert first["recomputed_tokens"] <= first["returned_tokens"] + 1
    discarded = results["improved-discard"][1]["interceptions"][0]
    assert first["recomputed_tokens"] < discarded["recomputed_tokens"]


def test_a_paused_request_without_kv_gives_its_running_slot_back(results):
    for policy in ("improved-discard", "vllm", "swap"):
        _, body, probe_done = results[policy]
        # With one slot (max_num_seqs=1) the probe ran while the first call was still going.
        assert probe_done < body["interceptions"][0]["ended_at"], policy


def test_every_policy_yields_the_same_greedy_tokens(results):
    tokens = {policy: body["choices"][0]["token_ids"] for policy, (_, body, _) in results.items()}
    assert len(tokens["preserve"]) == 24
    assert tokens["improved-discard"] == tokens["preserve"]
    assert tokens["vllm"] == tokens["preserve"]
    assert tokens["swap"] == tokens["preserve"]


def _trace_of(otlp: OtlpReceiver, request_id: str, what: str) -> str:
    """The trace of a request, once one of its spans has arrived."""
    ours = otlp.wait_for(lambda got: any(s.attributes.get("augserve.request_id") == request_id for s in got), 60, what)
    return next(s.trace_id for s in ours if s.attributes.get("augserve.request_id") == request_id)


def test_discard_and_recompute_are_spans_of_the_interception(results, otlp: OtlpReceiver):
    _usage, body, _ = results["improved-discard"]
    discarded = {r["call_id"]: r for r in body["interceptions"] if r["strategy"] == "discard"}
    assert discarded
    trace_id = _trace_of(otlp, body["id"], "span of the discarded request")
    spans = otlp.wait_for(lambda got: sum(s.name == "kv recompute" for s in got) == len(discarded)
                          and sum(s.name.startswith("interception ") for s in got) == len(body["interceptions"]),
                          60, "recompute spans", trace_id=trace_id)
    interceptions = {s.span_id: s for s in spans if s.name.startswith("interception ")}
    for span in (s for s in spans if s.name in ("kv discard", "kv recompute")):
        parent = interceptions[span.parent_id].attributes
        record = discarded[parent["gen_ai.tool.call.id"]]
        assert parent["augserve.strategy"] == "discard"
        assert parent["augserve.recomputed_tokens"] == record["recomputed_tokens"]
        if span.name == "kv discard":
            assert span.attributes["augserve.kv.tokens"] == record["context_tokens"]
            assert span.attributes["augserve.kv.bytes"] == record["context_tokens"] * KV_BYTES
        else:
            assert span.attributes["augserve.recomputed_tokens"] == record["recomputed_tokens"] > 0
            assert abs((span.end_ns - span.start_ns) / 1e9 - record["recompute_s"]) < 0.01


def test_swap_out_and_in_are_spans_of_the_interception(results, otlp: OtlpReceiver):
    _usage, body, _ = results["swap"]
    swapped = {r["call_id"]: r for r in body["interceptions"] if r["strategy"] == "swap"}
    assert swapped
    trace_id = _trace_of(otlp, body["id"], "span of the swapped request")
    spans = otlp.wait_for(lambda got: sum(s.name == "kv swap-in" for s in got) == len(swapped), 60,
                          "swap spans", trace_id=trace_id)
    interceptions = {s.span_id: s for s in spans if s.name.startswith("interception ")}
    for span in (s for s in spans if s.name in ("kv swap", "kv swap-out", "kv swap-in")):
        parent = interceptions[span.parent_id].attributes
        record = swapped[parent["gen_ai.tool.call.id"]]
        assert parent["augserve.strategy"] == "swap"
        if span.name == "kv swap-out":
            assert span.attributes["augserve.swap_s"] == record["swap_out_s"] > 0
        if span.name == "kv swap-in":
            assert span.attributes["augserve.swap_s"] == record["swap_in_s"] > 0
            assert span.attributes["augserve.kv.bytes"] == record["swapped_bytes"] > 0
