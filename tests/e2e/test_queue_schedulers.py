"""The queue-order policy really orders vLLM's queues (engine_worker/engine_core/queue_scheduler.py).

One running slot (max_num_seqs=1) makes the order visible: while a long request of program A
runs, a short request of program A arrives, then one of program B. FCFS runs A's first (it
arrived first); Autellix's program-level attained service runs B's first (program A has already
received service, B none).
"""

from __future__ import annotations

import asyncio

import httpx
import pytest

from stack.models import build_tiny
from stack.processes import free_port
from stack.services import Stack, StackConfig

MODEL = "SmolLM2-135M-Instruct"


def _start(scheduler: str, tmp_path_factory) -> Stack:
    cfg = StackConfig(
        model_path=str(build_tiny()), state_dir=tmp_path_factory.mktemp(f"stack-{scheduler}"),
        gateway_port=free_port(), engine_metrics_port=free_port(), estimator_port=free_port(),
        executor_metrics_port=free_port(), redis_port=free_port(), time_scale=0.02,
        worker_env={"AUGSERVE_SCHEDULER": scheduler, "AUGSERVE_MAX_NUM_SEQS": "1",
                    # Autellix's starvation guard (5 s) would promote both short requests to FCFS
                    # if the long one ran past it on a loaded machine: out of the way here.
                    "AUGSERVE_SCHEDULER_OPTIONS": '{"starvation_s": 600}' if scheduler == "autellix" else "{}"},
    )
    return Stack(cfg).start()


def _body(program: str, tokens: int, stream: bool = False) -> dict:
    return {"model": MODEL, "messages": [{"role": "user", "content": f"Program {program} says hello."}],
            "temperature": 0, "program_id": program, "stream": stream,
            "plan": {"segments": [{"generate_tokens": tokens}]}}


async def _finish_order(url: str) -> list[str]:
    """Which of A's and B's short requests finished first, with A's long one running."""
    done: list[str] = []
    async with httpx.AsyncClient(timeout=180) as client:
        async def short(program: str) -> None:
            response = await client.post(f"{url}/v1/chat/completions", json=_body(program, 16))
            assert response.status_code == 200, response.text
            done.append(program)

        async with client.stream("POST", f"{url}/v1/chat/completions", json=_body("A", 400, stream=True)) as long:
            lines = long.aiter_lines()
            async for line in lines:  # the long request is running once its first token streams
                if line.startswith("data:") and '"content"' in line:
                    break
            first = asyncio.create_task(short("A"))
            await asyncio.sleep(0.2)  # a distinct, later arrival for B (ordering input, not a wait for a condition)
            second = asyncio.create_task(short("B"))
            async for _ in lines:
                pass
        await asyncio.gather(first, second)
    return done


@pytest.fixture(scope="module")
def orders(tmp_path_factory) -> dict[str, list[str]]:
    out = {}
    for scheduler in ("fcfs", "autellix"):
        stack = _start(scheduler, tmp_path_factory)
        try:
            out[scheduler] = asyncio.run(_finish_order(stack.cfg.gateway_url))
            status = httpx.get(f"{stack.cfg.gateway_url}/v1/models", timeout=10).json()
            out[f"{scheduler}-status"] = status
        finally:
            stack.stop()
    return out


def test_fcfs_runs_the_earlier_arrival_first(orders):
    assert orders["fcfs"] == ["A", "B"]


def test_autellix_runs_the_program_with_least_service_first(orders):
    assert orders["autellix"] == ["B", "A"]


def test_the_active_scheduler_is_shown_in_the_model_card(orders):
    for scheduler in ("fcfs", "autellix"):
        workers = orders[f"{scheduler}-status"]["data"][0]["workers"]
        assert [w["scheduler"] for w in workers.values()] == [scheduler]
