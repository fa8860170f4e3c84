"""Program-affinity routing in the gateway, on a real Redis: which stream a request lands in."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from prometheus_client import REGISTRY
from pydantic import ValidationError

from common.names import ENGINE_REQUEST_STREAM, WORKER_STREAMS_SET, WORKERS_HASH, engine_worker_stream, program_holder
from common.schemas import EngineRequest
from tests.gateway.conftest import MODEL, final

pytestmark = pytest.mark.asyncio

WORKERS = {"holder": (1, 0.0), "idle": (0, 0.0), "busy": (5, 0.0), "dead": (0, 60.0)}
"""worker id -> (in-flight requests, heartbeat age in seconds)."""
HOLDERS = {"p-live": "holder", "p-busy": "busy", "p-dead": "dead", "p-gone": "stopped"}


async def _registry(redis) -> None:
    now = time.time()
    await redis.hset(WORKERS_HASH, mapping={w: json.dumps({"worker_id": w, "inflight": n, "heartbeat_at": now - age})
                                            for w, (n, age) in WORKERS.items()})
    for program, worker in HOLDERS.items():
        await redis.set(program_holder(f"local/{program}"), worker, ex=600)  # as the anonymous caller names it


async def _landing(gw, program: str | None, *, header: bool = False) -> str:
    """Sends one chat request and answers it from whichever request stream it landed in."""
    redis = gw.engine.redis
    streams = [ENGINE_REQUEST_STREAM] + [engine_worker_stream(w) for w in WORKERS]
    last = {s: (await redis.xinfo_stream(s))["last-generated-id"] if await redis.exists(s) else "0-0" for s in streams}
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
    headers = {}
    if program is not None and header:
        headers["X-Program-Id"] = program
    elif program is not None:
        body["program_id"] = program
    task = asyncio.create_task(gw.http.post("/v1/chat/completions", json=body, headers=headers))
    reply = await redis.xread(last, count=1, block=10_000)
    assert reply, "the request reached no request stream"
    stream, [(_, fields)] = reply[0]
    request = EngineRequest.model_validate_json(fields["request"])
    assert request.program_id == (None if program is None else f"local/{program}")  # the caller's namespace
    await gw.engine.emit(request.request_id, final().model_copy(update={"worker_id": "holder"}))
    response = await task
    assert response.status_code == 200, response.text
    assert response.json()["system_fingerprint"] == "holder"
    return stream


def _routed(route: str, reason: str) -> float:
    return REGISTRY.get_sample_value("augserve_gateway_routed_requests_total",
                                     {"route": route, "reason": reason}) or 0.0


async def test_program_affinity_sends_a_live_unloaded_holders_program_to_its_stream(start_gateway):
    gw = await start_gateway(routing="program-affinity", routing_margin=2)
    await _registry(gw.engine.redis)
    before = _routed("affinity", "holder")
    assert await _landing(gw, "p-live") == engine_worker_stream("holder")
    assert await _landing(gw, "p-live", header=True) == engine_worker_stream("holder")
    assert _routed("affinity", "holder") == before + 2
    # Registered with its entry, so a worker dying before it reads the stream does not strand it.
    assert await gw.engine.redis.sismember(WORKER_STREAMS_SET, "holder")


@pytest.mark.parametrize(("program", "reason"), [
    (None, "no_program"),
    ("p-new", "no_holder"),
    ("p-busy", "holder_overloaded"),  # 5 in flight, 5 above the idle worker: over the margin of 2
    ("p-dead", "holder_dead"),        # heartbeat 60 s old
    ("p-gone", "holder_dead"),        # not in the registry at all
])
async def test_program_affinity_sends_everything_else_to_the_shared_stream(start_gateway, program, reason):
    gw = await start_gateway(routing="program-affinity", routing_margin=2)
    await _registry(gw.engine.redis)
    before = _routed("shared", reason)
    assert await _landing(gw, program) == ENGINE_REQUEST_STREAM
    assert _routed("shared", reason) == before + 1


async def test_pull_routing_ignores_holders_and_reports_its_mode(gw):
    await _registry(gw.engine.redis)
    before = _routed("shared", "pull")
    assert await _landing(gw, "p-live") == ENGINE_REQUEST_STREAM
    assert _routed("shared", "pull") == before + 1
    card = (await gw.http.get("/v1/models")).json()["data"][0]
    assert card["routing"] == {"mode": "pull", "margin": 4.0, "worker_stale_s": 10.0}


async def test_the_holders_load_is_reread_after_the_cache_period(start_gateway):
    gw = await start_gateway(routing="program-affinity", routing_margin=2)
    await _registry(gw.engine.redis)
    assert await _landing(gw, "p-busy") == ENGINE_REQUEST_STREAM
    status = {"worker_id": "busy", "inflight": 0, "heartbeat_at": time.time()}
    await gw.engine.redis.hset(WORKERS_HASH, "busy", json.dumps(status))
    deadline = time.monotonic() + 5
    while await _landing(gw, "p-busy") != engine_worker_stream("busy"):  # within the 0.5 s cache
        assert time.monotonic() < deadline, "the routing never saw the holder's lower load"


async def test_routing_settings_are_validated(make_settings):
    assert make_settings(routing="program-affinity").routing == "program-affinity"
    with pytest.raises(ValidationError, match="pull.*program-affinity"):
        make_settings(routing="least-loaded")
    with pytest.raises(ValidationError, match="routing_margin"):
        make_settings(routing_margin=-1)
