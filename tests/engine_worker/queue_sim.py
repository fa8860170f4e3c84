"""A pure time-sliced single-server simulator for queue-order policies (test harness).

Model: one server; time advances in slices of `slice_s`. At the start of every slice the policy
orders the unfinished, arrived jobs (snapshots as the engine's scheduler would build them) and the
first `batch_size` of them each receive `slice_s` of service (no batching speed-up: a slice is the
server's whole capacity split into `batch_size` lanes, each lane serving one job). A job needs
`prefill_s + output_tokens * token_s` of service, where prefill_s is the cost model's forward time
of its prompt; it finishes inside the slice in which its service is complete (the exact instant
is interpolated). A job that ran in the previous slice is `running`, every other one `waiting`;
there are no API calls. After each slice the policy observes who ran and for how long. JCT =
finish - arrival.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from engine_worker.policies.cost_model import CostModel
from engine_worker.policies.queue_order import QueuedRequest, QueueOrder


@dataclass(frozen=True)
class Job:
    request_id: str
    arrival_s: float
    prompt_tokens: int
    output_tokens: int
    program_id: str | None = None
    predicted_output_tokens: int | None = None


@dataclass
class SimResult:
    finish_s: dict[str, float] = field(default_factory=dict)
    served_at: dict[str, list[float]] = field(default_factory=dict)
    """Start times of the slices in which each job ran."""

    def jct(self, jobs: list[Job]) -> dict[str, float]:
        return {j.request_id: self.finish_s[j.request_id] - j.arrival_s for j in jobs if j.request_id in self.finish_s}

    def mean_jct(self, jobs: list[Job]) -> float:
        values = self.jct(jobs)
        return sum(values.values()) / len(values)


def simulate(policy: QueueOrder, jobs: list[Job], cm: CostModel, slice_s: float = 0.02, token_s: float = 0.02,
             batch_size: int = 1, until_s: float | None = None) -> SimResult:
    demand = {j.request_id: cm.fwd_s(j.prompt_tokens) + j.output_tokens * token_s for j in jobs}
    attained = dict.fromkeys(demand, 0.0)
    last_ran: dict[str, float] = {}
    running: set[str] = set()
    pending = sorted(jobs, key=lambda j: (j.arrival_s, j.request_id))
    live: dict[str, Job] = {}
    result = SimResult()
    step = 0  # time is step * slice_s: summing floats would drift past arrival instants
    while pending or live:
        now = step * slice_s
        if until_s is not None and now >= until_s - 1e-9:
            break
        while pending and pending[0].arrival_s <= now + 1e-9:
            job = pending.pop(0)
            live[job.request_id] = job
        if not live:
            step = max(step + 1, math.ceil(pending[0].arrival_s / slice_s - 1e-9))
            continue
        snapshots = [_snapshot(live[rid], attained[rid], last_ran.get(rid), rid in running, token_s, cm)
                     for rid in live]
        chosen = policy.order(snapshots, now)[:batch_size]
        ran: dict[str, float] = {}
        for rid in chosen:
            remaining = demand[rid] - attained[rid]
            used = min(slice_s, remaining)
            attained[rid] += used
            ran[rid] = used
            result.served_at.setdefault(rid, []).append(now)
            if attained[rid] >= demand[rid] - 1e-12:
                result.finish_s[rid] = now + used
                del live[rid]
        step += 1
        now = step * slice_s
        for rid in ran:
            last_ran[rid] = now
        running = {rid for rid in ran if rid in live}
        policy.observe(ran, now)
    return result


def _snapshot(job: Job, attained_s: float, last_ran_s: float | None, running: bool, token_s: float,
              cm: CostModel) -> QueuedRequest:
    generated = max(0, int((attained_s - cm.fwd_s(job.prompt_tokens)) / token_s)) if attained_s else 0
    return QueuedRequest(
        request_id=job.request_id, arrival_s=job.arrival_s, state="running" if running else "waiting",
        context_tokens=job.prompt_tokens + generated, generated_tokens=generated, program_id=job.program_id,
        attained_s=attained_s, last_scheduled_s=last_ran_s if last_ran_s is not None else job.arrival_s,
        predicted_output_tokens=job.predicted_output_tokens)
