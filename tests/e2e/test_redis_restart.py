"""Redis SIGKILLed under load and restarted on its port a few seconds later: every service keeps
serving (tiny model). Requests paused at a stand-in call and one generating while Redis is gone
all end within a bound (done, or a clear error), the executor puts the stand-in deliveries it held
back on the queue, and new requests afterwards succeed with every process still alive."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import urllib.request
from collections.abc import Iterator

import httpx
import pytest
import redis

from stack.services import Stack
from tests.e2e.conftest import running, tiny_fault_stack

MODEL = "SmolLM2-135M-Instruct"
CALL_S = 6.0
"""The paused requests' chatbot call: long enough to span the outage."""
OUTAGE_S = 3.0
"""How long Redis stays down: the scenario itself (a restart a few seconds later), not a wait
for some condition."""
END_BOUND_S = 90.0
"""Every in-flight request ends within this long of the kill: Celery reconnects within ~6 s of the
restart, the call's own timeout is 60 s (AUGSERVE_API_CALL_TIMEOUT_S), with room for a loaded CPU."""


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[Stack]:
    cfg = tiny_fault_stack(tmp_path_factory.mktemp("stack-redis-restart"), 60)
    yield from running(cfg)


def _body(*segments: dict) -> dict:
    return {"model": MODEL, "messages": [{"role": "user", "content": "Hello through a Redis restart."}],
            "temperature": 0, "plan": {"segments": list(segments)}}


PAUSED = _body({"generate_tokens": 4, "api": "chatbot", "duration_s": CALL_S, "return_tokens": 4},
               {"generate_tokens": 4})
GENERATING = _body({"generate_tokens": 400})
CALCULATOR = _body({"generate_tokens": 3, "api": "calculator", "arguments": {"expression": "12*7"}, "return_tokens": 3},
                   {"generate_tokens": 3})


async def _ended(client: httpx.AsyncClient, body: dict) -> tuple[float, httpx.Response]:
    response = await client.post("/v1/chat/completions", json=body)
    return time.monotonic(), response


def _poll(condition, what: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"no {what} within {timeout_s:.0f}s"
        time.sleep(0.1)


def _pings(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_timeout=0.5).ping())
    except redis.ConnectionError:
        return False


def _estimator_sees_redis(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
            return b'"redis":true' in response.read()
    except OSError:
        return False


def _kill_and_restart_redis(stack: Stack) -> float:
    """SIGKILLs the real redis-server, and after OUTAGE_S starts the same command again (same port,
    same data dir, so its AOF). Returns when it was killed."""
    service = next(s for s in stack.services if s.name == "redis")
    os.killpg(service.process.pid, signal.SIGKILL)
    service.process.wait(timeout=10)
    killed_at = time.monotonic()
    time.sleep(OUTAGE_S)
    service.start(stack.cfg.state_dir / "logs")
    _poll(lambda: _pings(stack.cfg.redis_url), "PING from the restarted Redis", 20)
    return killed_at


async def _scenario(stack: Stack) -> dict:
    async with httpx.AsyncClient(base_url=stack.cfg.gateway_url, timeout=END_BOUND_S + 30) as client:
        assert (await client.post("/v1/chat/completions", json=CALCULATOR)).status_code == 200  # warm
        in_flight = [asyncio.create_task(_ended(client, PAUSED)) for _ in range(3)]
        in_flight.append(asyncio.create_task(_ended(client, GENERATING)))
        deadline = time.monotonic() + 30
        while stack.worker_status().get("paused", 0) < 3:  # heartbeat: every second here
            assert time.monotonic() < deadline, f"the requests never paused: {stack.worker_status()}"
            await asyncio.sleep(0.1)
        killed_at = await asyncio.to_thread(_kill_and_restart_redis, stack)
        ended = await asyncio.wait_for(asyncio.gather(*in_flight), END_BOUND_S)
        afterwards = [await client.post("/v1/chat/completions", json=body) for body in (CALCULATOR, PAUSED)]
    return {"killed_at": killed_at, "ended": ended, "afterwards": afterwards}


def test_every_service_survives_a_redis_restart_with_requests_in_flight(stack):
    result = asyncio.run(_scenario(stack))

    for ended_at, response in result["ended"]:
        assert ended_at - result["killed_at"] < END_BOUND_S
        if response.status_code != 200:  # allowed, if it says what happened
            assert response.status_code >= 500 and response.json()["error"]["message"], response.text
    outcomes = [r.status_code for _, r in result["ended"]]
    # Redis keeps everything (AOF) and every client waits for it: nothing in flight should be lost.
    assert outcomes == [200] * 4, [r.text for _, r in result["ended"]]
    for _, response in result["ended"][:3]:
        (call,) = response.json()["interceptions"]
        assert call["api"] == "chatbot" and call["ok"], call.get("error")  # the dict's repr gets cut

    calculator, paused = result["afterwards"]
    assert calculator.status_code == 200 and calculator.json()["interceptions"][0]["result"].startswith("84")
    assert paused.status_code == 200 and paused.json()["interceptions"][0]["ok"]
    assert not stack.dead(), [(s.name, s.log_tail()) for s in stack.dead()]
    _poll(lambda: _estimator_sees_redis(stack.cfg.estimator_port), "estimator reading Redis again", 10)
