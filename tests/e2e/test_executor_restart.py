"""The executor SIGKILLed (its whole process group) while requests are paused at stand-in calls,
and started again a few seconds later (tiny model): the calls it held are run by the restarted
executor, each request completes with its call's real result, once, long before the engine
worker's call deadline; the recovery time (kill to result at the engine worker) is printed."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import Iterator

import httpx
import pytest
import redis

from api_executor import reclaim
from stack.processes import port_open
from stack.services import Stack
from tests.e2e.conftest import running, tiny_fault_stack

MODEL = "SmolLM2-135M-Instruct"
N_PAUSED = 4
CALL_S = 6.0
"""The paused requests' chatbot call: long enough to span the kill and the restart."""
RESTART_AFTER_S = 3.0
"""The scenario: the executor is started again this long after the kill (not a wait for a condition)."""
CALL_TIMEOUT_S = 60.0
"""The engine worker's deadline per call (AUGSERVE_API_CALL_TIMEOUT_S): what used to end these requests."""
RECOVERY_BOUND_S = 25.0
"""Every result reaches the engine worker within this long of the kill: the restart, the
executor's start-up on a loaded 2-core machine, the dead one's liveness ttl (5 s) and a scan."""


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[Stack]:
    cfg = tiny_fault_stack(tmp_path_factory.mktemp("stack-executor-restart"), CALL_TIMEOUT_S)
    yield from running(cfg)


def _body(*segments: dict) -> dict:
    return {"model": MODEL, "messages": [{"role": "user", "content": "Hello through an executor restart."}],
            "temperature": 0, "plan": {"segments": list(segments)}}


PAUSED = _body({"generate_tokens": 4, "api": "chatbot", "duration_s": CALL_S, "return_tokens": 4},
               {"generate_tokens": 4})
CALCULATOR = _body({"generate_tokens": 3, "api": "calculator", "arguments": {"expression": "12*7"}, "return_tokens": 3},
                   {"generate_tokens": 3})


def _held_deliveries(client: redis.Redis) -> int:
    """Stand-in deliveries the executor has received and holds until due (unacked, with a holder)."""
    holds = client.hgetall(reclaim.HOLDERS_KEY)
    return sum(1 for tag, raw in client.hgetall("unacked").items()
               if tag in holds and json.loads(raw)[0]["headers"]["task"] == "api.deliver")


def _reclaimed_total(port: int) -> float:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    for line in text.splitlines():
        if line.startswith("augserve_executor_reclaimed_messages_total "):
            return float(line.split()[1])
    return 0.0


def _kill_and_restart_executor(stack: Stack) -> tuple[float, float]:
    """SIGKILLs the executor's process group (main process and pool), starts the same command
    RESTART_AFTER_S later; returns (killed at, serving its metrics again at), wall clock."""
    service = next(s for s in stack.services if s.name == "api-executor")
    os.killpg(service.process.pid, signal.SIGKILL)
    killed_at = time.time()
    service.process.wait(timeout=10)
    time.sleep(RESTART_AFTER_S)
    service.start(stack.cfg.state_dir / "logs")
    service.wait_until(lambda: port_open(stack.cfg.executor_metrics_port), 60, "metrics port")
    return killed_at, time.time()


async def _scenario(stack: Stack) -> dict:
    client = redis.Redis.from_url(stack.cfg.redis_url, decode_responses=True)
    async with httpx.AsyncClient(base_url=stack.cfg.gateway_url, timeout=CALL_TIMEOUT_S + 60) as http:
        assert (await http.post("/v1/chat/completions", json=CALCULATOR)).status_code == 200  # warm
        in_flight = [asyncio.create_task(http.post("/v1/chat/completions", json=PAUSED)) for _ in range(N_PAUSED)]
        deadline = time.monotonic() + 30
        while stack.worker_status().get("paused", 0) < N_PAUSED or _held_deliveries(client) < N_PAUSED:
            assert time.monotonic() < deadline, f"the calls were never held: {stack.worker_status()}"
            await asyncio.sleep(0.1)
        killed_at, restarted_at = await asyncio.to_thread(_kill_and_restart_executor, stack)
        responses = await asyncio.wait_for(asyncio.gather(*in_flight), CALL_TIMEOUT_S + 30)
        afterwards = await http.post("/v1/chat/completions", json=PAUSED)
    client.close()
    return {"killed_at": killed_at, "restarted_at": restarted_at, "responses": responses, "afterwards": afterwards}


def test_calls_held_by_a_killed_executor_complete_after_its_restart(stack):
    result = asyncio.run(_scenario(stack))

    killed_at = result["killed_at"]
    assert [r.status_code for r in result["responses"]] == [200] * N_PAUSED, [r.text for r in result["responses"]]
    recovery = []
    for response in result["responses"]:
        (call,) = response.json()["interceptions"]  # one call, one result
        assert call["api"] == "chatbot" and call["ok"], call
        assert call["result"].startswith("[user follow-up]") and "timed out" not in call["result"], call
        assert call["api_s"] >= CALL_S  # the stand-in's real wait, not an early or error answer
        recovery.append(call["ended_at"] - killed_at)
    print(f"\nexecutor killed, restarted {RESTART_AFTER_S:g} s later (serving again "
          f"{result['restarted_at'] - killed_at:.2f} s after the kill); results reached the engine worker "
          f"{', '.join(f'{s:.2f}' for s in sorted(recovery))} s after the kill (deadline {CALL_TIMEOUT_S:g} s)")
    assert max(recovery) < RECOVERY_BOUND_S
    # The restarted executor reclaimed them (not the broker's hour-long visibility timeout).
    assert _reclaimed_total(stack.cfg.executor_metrics_port) >= N_PAUSED

    afterwards = result["afterwards"]
    assert afterwards.status_code == 200 and afterwards.json()["interceptions"][0]["ok"], afterwards.text
    assert not stack.dead(), [(s.name, s.log_tail()) for s in stack.dead()]
