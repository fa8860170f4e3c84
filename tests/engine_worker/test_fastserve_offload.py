"""The `fastserve` handling policy: preserve while the pool has room, offload the latest to resume
ahead of need, only as many as restore the reserve, within the swap budget."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine_worker.policies.cost_model import GPTJ_A100 as CM
from engine_worker.policies.fastserve_offload import by_priority, offload_ahead, remaining_s
from engine_worker.policies.handling import POLICIES
from engine_worker.policies.handling_types import BatchState, PausedRequest
from engine_worker.policies.kv_offload import blocks_for

BLOCK = 16


def call(rid: str, context: int, remaining: float, elapsed: float = 1.0) -> PausedRequest:
    """A paused request whose call is predicted to return in `remaining` seconds."""
    return PausedRequest(rid, context, expected_duration_s=elapsed + remaining, elapsed_s=elapsed,
                         predicted_duration_s=elapsed + remaining)


def batch(free: int, reserve: int, budget: int = 100_000) -> BatchState:
    return BatchState(running_context_tokens=500, swap_budget_tokens=budget, free_blocks=free,
                      reserve_blocks=reserve, block_size=BLOCK)


def swapped(paused: list[PausedRequest], state: BatchState) -> set[str]:
    return {d.request_id for d in offload_ahead(paused, state, CM) if d.strategy == "swap"}


PAUSED = [call("soon", 160, remaining=0.1), call("mid", 160, remaining=1.0), call("late", 320, remaining=5.0),
          call("latest", 160, remaining=9.0)]  # 10, 10, 20, 10 blocks


@pytest.mark.parametrize("free, reserve, budget, expected", [
    (100, 8, 100_000, set()),                    # plenty of room: everyone keeps its KV
    (8, 8, 100_000, set()),                      # exactly at the reserve: nothing to do yet
    (0, 0, 100_000, set()),                      # no reserve asked for (the default): never offloads
    (5, 8, 100_000, {"latest"}),                 # 3 short: the latest to resume (10 blocks) is enough
    (0, 25, 100_000, {"latest", "late"}),        # 25 short: latest (10) then late (20)
    (0, 35, 100_000, {"latest", "late", "mid"}),
    (0, 25, 159, set()),                         # the budget cannot take even the lowest: nobody jumps it
    (0, 25, 400, {"latest"}),                    # the budget stops the offload after the lowest
    (0, 1_000, 100_000, {"latest", "late", "mid", "soon"}),  # a reserve beyond the pool: all of them
])
def test_offloads_the_latest_to_resume_only_below_the_reserve(free, reserve, budget, expected):
    assert swapped(PAUSED, batch(free, reserve, budget)) == expected


def test_every_paused_request_gets_one_decision_with_its_waste_figures():
    decisions = offload_ahead(PAUSED, batch(5, 8), CM)
    assert sorted(d.request_id for d in decisions) == sorted(p.request_id for p in PAUSED)
    assert all(d.waste_preserve > 0 and d.waste_discard > 0 and d.waste_swap > 0 for d in decisions)
    assert POLICIES["fastserve"](PAUSED, batch(5, 8), CM) == decisions


def test_the_soonest_resume_ranks_highest_with_or_without_a_prediction():
    # With a prediction: predicted total - elapsed.
    assert remaining_s(call("a", 10, remaining=2.0, elapsed=3.0)) == pytest.approx(2.0)
    # An overrun call is due now, not in negative time.
    assert remaining_s(PausedRequest("o", 10, 5.0, elapsed_s=5.0, predicted_duration_s=4.0)) == 0.0
    # The `elapsed` estimate makes no prediction: a call is expected to run about as long again.
    fresh, old = PausedRequest("fresh", 10, 0.2, elapsed_s=0.2), PausedRequest("old", 10, 4.0, elapsed_s=4.0)
    assert [p.request_id for p in by_priority([old, fresh])] == ["fresh", "old"]
    assert swapped([old, fresh], batch(0, 1)) == {"old"}


def test_existing_policies_ignore_the_new_batch_fields():
    # The defaults keep every earlier policy's inputs as they were.
    plain, filled = BatchState(500, 1000), batch(0, 50, budget=1000)
    for name in ("infercept", "infercept-code", "preserve", "swap", "continuum"):
        assert ([d.strategy for d in POLICIES[name](PAUSED, plain, CM)]
                == [d.strategy for d in POLICIES[name](PAUSED, filled, CM)]), name


paused_lists = st.lists(
    st.builds(PausedRequest, request_id=st.uuids().map(str), context_tokens=st.integers(1, 3000),
              expected_duration_s=st.floats(0, 60), elapsed_s=st.floats(0, 60),
              predicted_duration_s=st.none() | st.floats(0, 120)),
    max_size=20, unique_by=lambda p: p.request_id)


@given(paused_lists, st.integers(0, 400), st.integers(0, 200), st.sampled_from([1, 16, 128]), st.integers(0, 20_000))
def test_budget_reserve_and_priority_invariants(paused, free, reserve, block_size, budget):
    state = BatchState(running_context_tokens=100, swap_budget_tokens=budget, free_blocks=free,
                       reserve_blocks=reserve, block_size=block_size)
    decisions = offload_ahead(paused, state, CM)
    assert sorted(d.request_id for d in decisions) == sorted(p.request_id for p in paused)
    assert {d.strategy for d in decisions} <= {"preserve", "swap"}
    out = [p for p in by_priority(paused) if p.request_id in {d.request_id for d in decisions if d.strategy == "swap"}]
    kept = [p for p in by_priority(paused) if p not in out]
    # Never more tokens than the budget.
    assert sum(p.context_tokens for p in out) <= budget
    # Nothing is offloaded while the reserve holds.
    if free >= reserve:
        assert not out
    # Never offloaded while a lower-priority (later-resuming) request stays preserved.
    rank = {p.request_id: i for i, p in enumerate(by_priority(paused))}
    if out and kept:
        assert min(rank[p.request_id] for p in out) > max(rank[p.request_id] for p in kept)
    # Only as many as needed: without the last (highest-priority) one offloaded, still short.
    freed = sum(blocks_for(p.context_tokens, block_size) for p in out)
    if out:
        assert free + freed - blocks_for(out[0].context_tokens, block_size) < reserve
    # And as many as the budget allows: short of the reserve only when the next one does not fit it.
    if free + freed < reserve and kept:
        assert kept[-1].context_tokens > budget - sum(p.context_tokens for p in out)
