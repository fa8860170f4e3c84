"""Autellix: PLAS ordering and its starvation guard (its routing: tests/gateway/test_program_affinity.py)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine_worker.policies.autellix import Plas
from engine_worker.policies.cost_model import CostModel
from engine_worker.policies.queue_order import QueuedRequest
from tests.engine_worker.queue_sim import Job, simulate

CM = CostModel(fwd_s_per_token=1e-4, fwd_base_s=1e-2, swap_s_per_token=1e-5, kv_bytes_per_token=1000,
               saturation_tokens=100)


def req(rid: str, arrival: float, program: str | None = None, state: str = "waiting") -> QueuedRequest:
    return QueuedRequest(rid, arrival, state, 100, program_id=program, last_scheduled_s=arrival)


def test_least_served_program_first_ties_by_arrival():
    plas = Plas()
    snapshots = [req("busy-1", 0.0, "busy"), req("busy-2", 1.0, "busy"), req("fresh", 2.0, "fresh"),
                 req("solo-a", 3.0), req("solo-b", 2.5)]
    plas.order(snapshots, 0.0)
    plas.observe({"busy-1": 0.3, "busy-2": 0.3, "solo-a": 0.2}, 0.1)
    assert plas.program_service_s("busy") == pytest.approx(0.6)
    # fresh and solo-b have no service: arrival decides; then solo-a (0.2 s); busy's 0.6 s counts for both its requests.
    assert plas.order(snapshots, 0.2) == ["fresh", "solo-b", "solo-a", "busy-1", "busy-2"]


def test_a_programs_service_outlives_its_finished_requests():
    plas = Plas()
    plas.order([req("agent-call-1", 0.0, "agent")], 0.0)
    plas.observe({"agent-call-1": 2.0}, 2.0)
    plas.order([], 2.5)  # call 1 finished; the agent is in a tool call
    later = [req("newcomer", 3.0, "other"), req("agent-call-2", 2.9, "agent")]
    assert plas.order(later, 3.0) == ["newcomer", "agent-call-2"]


def test_service_before_the_first_snapshot_is_credited_to_the_program():
    plas = Plas()
    plas.observe({"early": 0.5}, 0.5)
    plas.order([req("early", 0.0, "p")], 0.6)
    assert plas.program_service_s("p") == pytest.approx(0.5)


def test_starving_waiting_requests_go_first_until_they_run():
    plas = Plas(starvation_s=1.0)
    snapshots = [req("heavy", 0.0, "heavy"), req("light", 0.5, "light")]
    plas.order(snapshots, 0.0)
    plas.observe({"heavy": 5.0}, 0.1)
    assert plas.order(snapshots, 1.09) == ["light", "heavy"]  # heavy last ran at 0.1: 0.99 s waited
    assert plas.order(snapshots, 1.1) == ["heavy", "light"]  # 1 s without service: promoted
    plas.observe({"heavy": 0.02}, 1.12)
    assert plas.order(snapshots, 1.13) == ["light", "heavy"]  # it ran: the clock restarts
    paused = [req("heavy", 0.0, "heavy", state="paused"), req("light", 0.5, "light")]
    assert plas.order(paused, 50.0) == ["light", "heavy"]  # in a call: not starving on the scheduler


@settings(max_examples=10, deadline=None)
@given(guard=st.sampled_from([0.1, 0.4, 1.0]))
def test_a_long_program_under_a_stream_of_short_programs_is_served_within_the_guard(guard):
    slice_s, horizon = 0.02, 200
    jobs = [Job("long", 0.0, 0, 500, program_id="long")] + [
        Job(f"s{i:03d}", slice_s * i, 0, 1, program_id=f"short-{i}") for i in range(horizon)]
    result = simulate(Plas(starvation_s=guard), jobs, CM, slice_s=slice_s, token_s=slice_s, until_s=horizon * slice_s)
    served = result.served_at["long"]
    gaps = [b - a - slice_s for a, b in zip(served, served[1:])] + [horizon * slice_s - served[-1] - slice_s]
    assert max(gaps) <= guard + slice_s + 1e-9
