"""Many more concurrent streams than engine slots: every one ends whole, and no request whose
last segment ended holds a slot while its session waits to be closed.

The real stack on the tiny model with 4 running slots (max_num_seqs). A request is one vLLM
streaming-input session (engine_worker/session.py); a session whose segment ends with its input
still open waits in WAITING_FOR_STREAMING_REQ, holding a slot, until the worker's close comes
back through its event loop. At 1,000 streams that round trip was slower than the batch, so the
slots filled with finished sessions (vLLM's "Deferred") and the engine stood idle between batches
(README "Faults"). The engine reports every such request at the very step its segment ends
(`augserve_engine_deferred_request_steps_total`), so the check needs no timing: a segment that
cannot be followed by another (a plan's last, a chat turn without server-side tools) must never
be deferred; a request paused at a call must (it keeps its KV and its slot, by design).
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import Iterator

import httpx
import pytest

from stack.models import build_tiny
from stack.processes import free_port
from stack.services import Stack, StackConfig
from tests.e2e.conftest import running

MODEL = "SmolLM2-135M-Instruct"
SLOTS = 4
STREAMS = 48
"""12 x the slots: batches of finished sessions would have to be released 12 times over."""
TOKENS = 8


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[Stack]:
    cfg = StackConfig(
        model_path=str(build_tiny()), state_dir=tmp_path_factory.mktemp("stack-streams"),
        gateway_port=free_port(), engine_metrics_port=free_port(), estimator_port=free_port(),
        executor_metrics_port=free_port(), redis_port=free_port(), time_scale=0.02,
        worker_env={"AUGSERVE_MAX_NUM_SEQS": str(SLOTS), "AUGSERVE_KV_CACHE_BYTES": str(64 << 20),
                    "AUGSERVE_MAX_MODEL_LEN": "512"},
        gateway_env={"AUGSERVE_MAX_MODEL_LEN": "512"},
    )
    yield from running(cfg)


def _deferred_request_steps(stack: Stack) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{stack.cfg.engine_metrics_port}/metrics", timeout=10) as r:
        text = r.read().decode()
    prefix = 'augserve_engine_deferred_request_steps_total{worker="engine-0"} '
    values = [float(line[len(prefix):]) for line in text.splitlines() if line.startswith(prefix)]
    assert values, "the worker exports no augserve_engine_deferred_request_steps_total"
    return values[0]


def _body(i: int, stream: bool, plan: dict | None) -> dict:
    body = {"model": MODEL, "messages": [{"role": "user", "content": f"Stream {i}: say something."}],
            "temperature": 0, "stream": stream, "max_tokens": TOKENS}
    if stream:
        body["stream_options"] = {"include_usage": True}
    if plan is not None:
        body["plan"] = plan
    return body


async def _stream(client: httpx.AsyncClient, body: dict) -> dict:
    """The stream's finish reason, usage and whether it ended with [DONE]."""
    finish, usage, done = None, None, False
    async with client.stream("POST", "/v1/chat/completions", json=body) as response:
        assert response.status_code == 200, await response.aread()
        async for line in response.aiter_lines():
            if line.strip() == "data: [DONE]":
                done = True
            elif line.startswith("data:"):
                chunk = json.loads(line[5:])
                if chunk.get("usage"):
                    usage = chunk["usage"]
                for choice in chunk.get("choices", []):
                    finish = choice.get("finish_reason") or finish
    return {"finish": finish, "usage": usage, "done": done}


def _many(stack: Stack) -> list[dict]:
    async def go() -> list[dict]:
        async with httpx.AsyncClient(base_url=stack.cfg.gateway_url, timeout=240) as client:
            # Every other one a scripted plan (ignore_eos: exactly TOKENS), the others plain chat turns.
            return await asyncio.gather(*(
                _stream(client, _body(i, True, {"segments": [{"generate_tokens": TOKENS}]} if i % 2 == 0 else None))
                for i in range(STREAMS)))
    return asyncio.run(go())


def test_every_stream_ends_whole_and_no_ended_session_holds_a_slot(stack):
    before = _deferred_request_steps(stack)
    results = _many(stack)
    assert all(r["done"] and r["finish"] in ("stop", "length") for r in results), results
    assert all(r["usage"]["completion_tokens"] == TOKENS for r in results[::2]), results[::2]
    assert all(0 < r["usage"]["completion_tokens"] <= TOKENS for r in results), results
    assert _deferred_request_steps(stack) == before, "an ended request waited in the engine for its close"


def test_a_request_paused_at_a_call_still_keeps_its_session_open(stack):
    """The other side of the check above: a session paused at a call is deferred (its KV and slot
    are kept for the result), so the metric does see a waiting session when there is one."""
    before = _deferred_request_steps(stack)
    plan = {"segments": [{"generate_tokens": 4, "api": "calculator", "arguments": {"expression": "6*7"},
                          "return_tokens": 3},
                         {"generate_tokens": 4}]}
    response = httpx.post(f"{stack.cfg.gateway_url}/v1/chat/completions", json=_body(0, False, plan), timeout=120)
    assert response.status_code == 200, response.text
    assert response.json()["usage"]["completion_tokens"] == 8
    assert _deferred_request_steps(stack) > before
