"""Program-affinity routing with two real engine workers (tiny model): a program's sequential
calls all run on the worker that holds it; when that worker is loaded beyond the margin, the
program's next call goes to the shared stream and the other worker serves it.

Each worker holds at most 2 requests (AUGSERVE_MAX_INFLIGHT), so once the holder has two requests
paused at a stand-in call it reads nothing more, and only the other worker can take the
overflow: which worker serves it is then determined, not a race between the two.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx
import pytest

from gateway.routing import CACHE_S
from stack.models import build_tiny
from stack.processes import free_port
from stack.services import Stack, StackConfig

MODEL = "SmolLM2-135M-Instruct"
WORKERS = {"engine-0", "engine-1"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[Stack]:
    cfg = StackConfig(
        model_path=str(build_tiny()), state_dir=tmp_path_factory.mktemp("stack-affinity"),
        gateway_port=free_port(), engine_metrics_port=free_port(), estimator_port=free_port(),
        executor_metrics_port=free_port(), redis_port=free_port(), time_scale=0.02,
        extra_engine_workers=("engine-1",),
        worker_env={"AUGSERVE_MAX_INFLIGHT": "2", "AUGSERVE_HEARTBEAT_S": "1", "AUGSERVE_KV_CACHE_BYTES": str(64 << 20),
                    "AUGSERVE_MAX_MODEL_LEN": "512"},
        gateway_env={"AUGSERVE_ROUTING": "program-affinity", "AUGSERVE_ROUTING_MARGIN": "1",
                     "AUGSERVE_MAX_MODEL_LEN": "512"},
    )
    running = Stack(cfg).start()
    try:
        yield running
    finally:
        running.stop()


def _body(program: str, *segments: dict) -> dict:
    return {"model": MODEL, "messages": [{"role": "user", "content": f"Program {program} says hello."}],
            "temperature": 0, "program_id": program, "plan": {"segments": list(segments) or [{"generate_tokens": 4}]}}


async def _served_by(client: httpx.AsyncClient, body: dict) -> str:
    response = await client.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
    return response.json()["system_fingerprint"]


async def _wait_for_inflight(client: httpx.AsyncClient, worker: str, n: int, timeout_s: float = 30) -> None:
    """Until the worker's heartbeat (what the gateway routes on) reports `n` requests in flight."""
    deadline = time.monotonic() + timeout_s
    while True:
        workers = (await client.get("/v1/models")).json()["data"][0]["workers"]
        if workers[worker]["inflight"] >= n:
            return
        assert time.monotonic() < deadline, f"{worker} never had {n} requests in flight: {workers}"
        await asyncio.sleep(0.1)


async def _scenario(url: str) -> dict:
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        card = (await client.get("/v1/models")).json()["data"][0]
        assert set(card["workers"]) == WORKERS and card["routing"]["mode"] == "program-affinity"
        steady = [await _served_by(client, _body("steady")) for _ in range(4)]

        holder = await _served_by(client, _body("hot"))
        # Two calls of the program that pause at a 6 s call: routed to the holder, they fill it.
        paused = _body("hot", {"generate_tokens": 2, "api": "chatbot", "duration_s": 6, "return_tokens": 2},
                       {"generate_tokens": 2})
        long_calls = [asyncio.create_task(_served_by(client, paused)) for _ in range(2)]
        await _wait_for_inflight(client, holder, 2)
        # The gateway's copy of the loads is up to CACHE_S old by design: a known bound to wait
        # out so that it has seen the heartbeat above too (no endpoint shows that copy).
        await asyncio.sleep(CACHE_S)
        overflow = await _served_by(client, _body("hot"))
        long_served = await asyncio.gather(*long_calls)
        metrics = (await client.get("/metrics")).text
    return {"steady": steady, "holder": holder, "overflow": overflow, "long": long_served, "metrics": metrics}


def test_a_program_stays_on_its_holder_until_the_holder_is_loaded_beyond_the_margin(stack):
    result = asyncio.run(_scenario(stack.cfg.gateway_url))
    steady = result["steady"]
    assert len(set(steady)) == 1 and steady[0] in WORKERS, steady  # every call on the first call's worker
    holder = result["holder"]
    assert result["long"] == [holder, holder]
    assert result["overflow"] == (WORKERS - {holder}).pop()
    metrics = result["metrics"]
    affinity = _sample(metrics, 'augserve_gateway_routed_requests_total{reason="holder",route="affinity"}')
    assert affinity >= 3 + 2  # steady's calls 2-4 and the two paused ones
    assert _sample(metrics, 'augserve_gateway_routed_requests_total{reason="holder_overloaded",route="shared"}') == 1
    assert _sample(metrics, 'augserve_gateway_routed_requests_total{reason="no_holder",route="shared"}') == 2
    assert not stack.dead()


def _sample(text: str, series: str) -> float:
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return 0.0
