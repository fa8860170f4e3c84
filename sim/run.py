"""One simulated run as the bench reports one: records shaped like bench.client's, then
bench.metrics.system_metrics over them, so every figure is computed by the bench's own code."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench.metrics import system_metrics
from bench.system_names import split_system
from common.schemas import Strategy
from sim.engine import SimConfig, Simulator, StepStats
from sim.hardware import Deployment
from sim.state import ReqState
from sim.workload import SimRequest


@dataclass(frozen=True)
class SimRun:
    system: str
    records: list[dict[str, Any]]
    metrics: dict[str, Any]
    steps: list[StepStats]
    simulated_s: float
    preemptions: int


def record(r: ReqState) -> dict[str, Any]:
    """A bench.client.RequestRecord-shaped dict (the fields bench.metrics reads)."""
    done = r.end_s is not None
    return {
        "key": r.id, "type": r.req.type, "arrival_s": r.req.arrival_s, "sent_s": r.req.arrival_s,
        "first_token_s": r.first_token_s, "end_s": r.end_s, "ok": done, "status": 200 if done else None,
        "error": None, "prompt_tokens": r.req.prompt_tokens + sum(i.returned_tokens for i in r.interceptions),
        "completion_tokens": r.generated if done else None, "planned_tokens": r.req.generate_tokens,
        "interceptions": [{
            "api": i.api, "duration_s": i.returns_s - i.started_s, "api_s": i.api_s, "context_tokens": i.context_tokens,
            "returned_tokens": i.returned_tokens, "strategy": i.strategy, "ok": True,
            "recomputed_tokens": i.recomputed_tokens,
            **({f"waste_{k}": getattr(i.decision, f"waste_{k}") for k in Strategy}
               if i.decision is not None else {}),
        } for i in r.interceptions],
    }


def config_for(system: str, **options: Any) -> SimConfig:
    """A bench system name (`POLICY[+SCHEDULER][:key=value...]`, bench.systems) as a SimConfig;
    `stock-vllm` is the `vllm` policy without a TTFT budget: the client-side loop's discard and re-queue at the back
    (its HTTP overheads are not modelled)."""
    policy, scheduler, scheduler_options = split_system("vllm:ttft_budget_s=null" if system == "stock-vllm" else system)
    return SimConfig(policy=policy, scheduler=scheduler, scheduler_options=scheduler_options, **options)


def simulate(deployment: Deployment, requests: list[SimRequest], system: str, *, window_s: float,
             drain_s: float | None = None, record_steps: bool = False, **options: Any) -> SimRun:
    horizon = None if drain_s is None else window_s + drain_s
    sim = Simulator(deployment, requests, config_for(system, horizon_s=horizon, record_steps=record_steps, **options))
    states = sim.run()
    records = [record(r) for r in states]
    return SimRun(system, records, system_metrics(records, window_s), sim.steps, sim.now, sim.preemptions)
