"""Program-affinity routing (Autellix): the pure rule the gateway's router applies."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.program_affinity import RouteDecision, WorkerLoad, route

NOW, STALE = 1000.0, 10.0


def w(worker_id: str, load: float, *programs: str, beat_age_s: float = 1.0) -> WorkerLoad:
    return WorkerLoad(worker_id, load, NOW - beat_age_s, frozenset(programs))


@pytest.mark.parametrize(("holder_load", "margin", "expected"), [
    (10.0, 5.0, RouteDecision("holder", "holder")),        # 10 - 6 = 4 <= 5: affinity wins
    (11.0, 5.0, RouteDecision("holder", "holder")),        # exactly the margin
    (11.5, 5.0, RouteDecision(None, "holder_overloaded")),  # over it: the shared pool balances
])
def test_route_keeps_a_program_on_its_holder_within_the_margin(holder_load, margin, expected):
    workers = [w("holder", holder_load, "agent"), w("idle", 6.0), w("busy", 20.0)]
    assert route("agent", workers, margin, now=NOW, stale_after_s=STALE) == expected


def test_route_sends_to_the_shared_pool_without_a_live_holder():
    workers = [w("w1", 5.0, "p"), w("w2", 3.0, "p"), w("w3", 1.0), w("gone", 0.0, "q", beat_age_s=STALE)]
    decide = lambda program: route(program, workers, 2.0, now=NOW, stale_after_s=STALE)  # noqa: E731
    assert decide("p") == RouteDecision("w2", "holder")  # the least loaded of two holders
    assert decide("unknown") == RouteDecision(None, "no_holder")
    assert decide(None) == RouteDecision(None, "no_program")
    assert decide("q") == RouteDecision(None, "holder_dead")  # heartbeat exactly stale_after_s old
    assert route("p", [], 1.0, now=NOW, stale_after_s=STALE) == RouteDecision(None, "no_holder")
    # A dead worker's zero load is not the bar a live holder is measured against.
    assert route("p", [w("w1", 4.0, "p"), w("dead", 0.0, beat_age_s=60)], 1.0, now=NOW,
                 stale_after_s=STALE) == RouteDecision("w1", "holder")


workers_st = st.lists(
    st.builds(WorkerLoad, worker_id=st.text("abc", min_size=1, max_size=3), load=st.floats(0, 100),
              heartbeat_at=st.floats(NOW - 2 * STALE, NOW), program_ids=st.frozensets(st.sampled_from(["p", "q"]))),
    max_size=8, unique_by=lambda w: w.worker_id)


@given(workers_st, st.floats(0, 50))
def test_route_never_picks_a_dead_or_overloaded_holder(workers, margin):
    decision = route("p", workers, margin, now=NOW, stale_after_s=STALE)
    if decision.worker_id is None:
        return
    live = [x for x in workers if NOW - x.heartbeat_at < STALE]
    chosen = next(x for x in live if x.worker_id == decision.worker_id)
    assert "p" in chosen.program_ids
    assert chosen.load - min(x.load for x in live) <= margin


@given(workers_st, st.floats(0, 50))
def test_route_always_picks_a_fresh_holder_within_the_margin(workers, margin):
    live = [x for x in workers if NOW - x.heartbeat_at < STALE]
    fits = [x for x in live if "p" in x.program_ids and x.load - min(y.load for y in live) <= margin]
    decision = route("p", workers, margin, now=NOW, stale_after_s=STALE)
    assert (decision.worker_id is not None) == bool(fits)
    if fits:
        assert decision.worker_id in {x.worker_id for x in fits}
