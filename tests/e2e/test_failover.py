"""An engine worker SIGKILLed mid-generation: its requests continue on the other worker, and every
client sees what it would have seen without the fault (tiny random-weight model, greedy).

Five requests of one program, so program-affinity routing puts them all on one worker (the
program's holder): two streaming long generations (a plan and a plain chat turn), one streaming
plan generating after a calculator call, and two paused at chatbot calls, one whose result lands
while nobody reads it (the dead worker's reply stream) and one whose result comes only after the
takeover (the call is sent again under its call id). They run once without a fault as the
reference; then again, and the holder is killed once the requests' own output streams (what the
gateway relays) show each of them in that state. Each must end with exactly the reference's
tokens, text, usage and calls, streams uninterrupted, served by the survivor; a later request
succeeds; and once the survivor is killed too, a request gets a clear 503.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator

import httpx
import pytest
import redis

from common.names import PREFIX
from common.schemas import OutputEnvelope
from engine_worker.checkpoint import Checkpoint, replay
from stack.models import build_tiny
from stack.processes import free_port
from stack.services import Stack, StackConfig
from tests.e2e.conftest import EXACT_DTYPE

MODEL = "SmolLM2-135M-Instruct"
WORKERS = ("engine-0", "engine-1")
PROGRAM = "failover"
LONG = 800
"""Tokens of the long generations: still running when the kill comes, and long after."""
SHORT_CALL_S = 3.0
"""Over before the survivor takes over (5 missed 1 s heartbeats, claims every 5 s): its result
waits on the dead worker's reply stream."""
LONG_CALL_S = 16.0
"""Still running when the survivor takes over (within 11 s of the kill)."""
TAKEOVER_BOUND_S = 120.0


def _chat(content: str, stream: bool, **fields) -> dict:
    body = {"model": MODEL, "messages": [{"role": "user", "content": content}], "temperature": 0,
            "program_id": PROGRAM, "return_token_ids": True, "stream": stream, **fields}
    if stream:
        body["stream_options"] = {"include_usage": True}
    return body


def _plan(*segments: dict) -> dict:
    return {"segments": list(segments)}


def _chatbot(seconds: float) -> dict:
    # Two returned tokens: the stand-in's fixed header, so every run reads the same result.
    return {"generate_tokens": 8, "api": "chatbot", "duration_s": seconds, "return_tokens": 2}


REQUESTS = {
    "stream-plan": _chat("Tell me a long story.", True, plan=_plan({"generate_tokens": LONG})),
    "stream-chat": _chat("Tell me another long story.", True, max_tokens=LONG, ignore_eos=True),
    "stream-after-call": _chat("Compute, then talk.", True, plan=_plan(
        {"generate_tokens": 6, "api": "calculator", "arguments": {"expression": "6*7"}, "return_tokens": 2},
        {"generate_tokens": LONG})),
    "paused-short": _chat("Ask me something.", False, plan=_plan(_chatbot(SHORT_CALL_S), {"generate_tokens": 24})),
    "paused-long": _chat("Ask me something else.", True, plan=_plan(_chatbot(LONG_CALL_S), {"generate_tokens": 24})),
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[Stack]:
    cfg = StackConfig(
        model_path=str(build_tiny()), state_dir=tmp_path_factory.mktemp("stack-failover"),
        gateway_port=free_port(), engine_metrics_port=free_port(), estimator_port=free_port(),
        executor_metrics_port=free_port(), redis_port=free_port(), time_scale=0.02,
        extra_engine_workers=(WORKERS[1],),
        worker_env={"AUGSERVE_HEARTBEAT_S": "1", "AUGSERVE_KV_CACHE_BYTES": str(64 << 20),
                    "AUGSERVE_MAX_MODEL_LEN": "2048", "AUGSERVE_POLICY": "preserve",
                    "AUGSERVE_DTYPE": EXACT_DTYPE},
        gateway_env={"AUGSERVE_ROUTING": "program-affinity", "AUGSERVE_ROUTING_MARGIN": "100",
                     "AUGSERVE_MAX_MODEL_LEN": "2048", "AUGSERVE_WORKER_STALE_S": "5",
                     "AUGSERVE_NO_WORKER_GRACE_S": "3"},
    )
    running = Stack(cfg).start()
    try:
        yield running
    finally:
        running.stop()


async def _post(client: httpx.AsyncClient, body: dict) -> dict:
    """What the client got: for a stream, every data line parsed, the text and the finish chunk."""
    if not body["stream"]:
        response = await client.post("/v1/chat/completions", json=body)
        assert response.status_code == 200, response.text
        reply = response.json()
        choice = reply["choices"][0]
        return {"token_ids": choice["token_ids"], "text": choice["message"]["content"], "usage": reply["usage"],
                "interceptions": reply["interceptions"], "worker": reply["system_fingerprint"],
                "finish_reason": choice["finish_reason"]}
    lines: list[str] = []
    async with client.stream("POST", "/v1/chat/completions", json=body) as response:
        assert response.status_code == 200, await response.aread()
        async for line in response.aiter_lines():
            if line:
                lines.append(line)
    assert all(line.startswith("data: ") for line in lines), lines
    assert lines[-1] == "data: [DONE]", lines[-3:]
    chunks = [json.loads(line[6:]) for line in lines[:-1]]
    assert not [c for c in chunks if "error" in c], [c for c in chunks if "error" in c]
    finishes = [c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert len(finishes) == 1, finishes
    (finish,) = finishes
    usage = [c["usage"] for c in chunks if not c["choices"]]
    assert len(usage) == 1
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    return {"token_ids": finish["choices"][0]["token_ids"], "text": text, "usage": usage[0],
            "interceptions": finish["interceptions"], "worker": finish["system_fingerprint"],
            "finish_reason": finish["choices"][0]["finish_reason"]}


async def _run_all(client: httpx.AsyncClient) -> dict[str, asyncio.Task]:
    return {name: asyncio.create_task(_post(client, body)) for name, body in REQUESTS.items()}


def _checkpoints(client: redis.Redis) -> list[Checkpoint]:
    """Every request's progress as its output stream (what the gateway relays) shows it."""
    found = []
    for key in client.scan_iter(f"{PREFIX}:out:*"):
        events = [OutputEnvelope.model_validate_json(f["event"]).event for _, f in client.xrange(key)]
        found.append(replay(events))
    return found


def _mid_flight(cps: list[Checkpoint]) -> bool:
    """Both chatbot calls pending, one request generating after its call, two generating their
    first segment, none of them near their end."""
    live = [cp for cp in cps if not cp.ended]
    paused = [cp for cp in live if cp.pending is not None and cp.pending.api == "chatbot"]
    after_call = [cp for cp in live if cp.segment_index == 1 and 8 <= len(cp.open_tokens) < LONG // 2]
    first = [cp for cp in live
             if cp.segment_index == 0 and cp.pending is None and 16 <= len(cp.open_tokens) < LONG // 2]
    return len(paused) == 2 and len(after_call) == 1 and len(first) == 2


async def _poll(condition, what: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not await asyncio.to_thread(condition):
        assert time.monotonic() < deadline, f"no {what} within {timeout_s:.0f}s"
        await asyncio.sleep(0.05)


async def _scenario(stack: Stack) -> dict:
    r = redis.Redis.from_url(stack.cfg.redis_url, decode_responses=True)
    async with httpx.AsyncClient(base_url=stack.cfg.gateway_url, timeout=TAKEOVER_BOUND_S + 60) as client:
        warm = await _post(client, _chat("Who holds this program?", False, plan=_plan({"generate_tokens": 4})))
        holder = warm["worker"]
        reference = {name: await task for name, task in (await _run_all(client)).items()}

        running = await _run_all(client)
        await _poll(lambda: _mid_flight(_checkpoints(r)), "requests in flight in every state", 60)
        victim = next(s for s in stack.services if s.name == holder)
        await asyncio.to_thread(victim.kill_group)
        killed_at = time.monotonic()
        faulted = {name: await asyncio.wait_for(task, TAKEOVER_BOUND_S) for name, task in running.items()}
        ended_in_s = time.monotonic() - killed_at
        later = await _post(client, _chat("And after that?", True, plan=_plan({"generate_tokens": 8})))

        survivor = next(s for s in stack.services if s.name in WORKERS and s.name != holder)
        dead_before = sorted(s.name for s in stack.dead())
        await asyncio.to_thread(survivor.kill_group)
        started = time.monotonic()
        orphan = await client.post("/v1/chat/completions", json=_chat("Anyone there?", False, plan=_plan(
            {"generate_tokens": 4})))
        orphan_s = time.monotonic() - started
    return {"holder": holder, "reference": reference, "faulted": faulted, "ended_in_s": ended_in_s,
            "later": later, "dead_before": dead_before, "orphan": orphan, "orphan_s": orphan_s}


def test_a_killed_workers_requests_continue_on_the_other_exactly_as_without_the_fault(stack):
    result = asyncio.run(_scenario(stack))
    holder = result["holder"]
    survivor = next(w for w in WORKERS if w != holder)
    assert result["dead_before"] == [holder]
    for name, ref in result["reference"].items():
        got = result["faulted"][name]
        assert ref["worker"] == holder and got["worker"] == survivor, (name, ref["worker"], got["worker"])
        assert got["token_ids"] == ref["token_ids"], name
        assert got["text"] == ref["text"], name  # streams: every delta once, none missing
        assert got["usage"] == ref["usage"] and got["finish_reason"] == ref["finish_reason"], name
        assert [(c["api"], c["ok"], c["result"], c["context_tokens"], c["returned_tokens"])
                for c in got["interceptions"]] == [
            (c["api"], c["ok"], c["result"], c["context_tokens"], c["returned_tokens"])
            for c in ref["interceptions"]], name
    # The short call's result was waiting; the long one's came from its one run: a pause as long
    # as the call, from its original start.
    for name, seconds in (("paused-short", SHORT_CALL_S), ("paused-long", LONG_CALL_S)):
        (call,) = result["faulted"][name]["interceptions"]
        assert call["duration_s"] >= seconds, (name, call)
    assert result["faulted"]["paused-long"]["interceptions"][0]["duration_s"] < LONG_CALL_S + 10
    assert result["ended_in_s"] < TAKEOVER_BOUND_S
    later = result["later"]
    assert later["worker"] == survivor and len(later["token_ids"]) == 8
    orphan = result["orphan"]
    assert orphan.status_code == 503, orphan.text
    assert orphan.json()["error"]["code"] == "no_engine_worker"
    assert result["orphan_s"] < 30  # the survivor's heartbeat goes stale (5 s), then the grace (3 s)
