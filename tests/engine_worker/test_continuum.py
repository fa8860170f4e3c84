"""Continuum: TTL pinning as a handling policy, and program-level FCFS."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine_worker.policies import waste
from engine_worker.policies.continuum import break_even_s, pin_with_ttl, ttl_s
from engine_worker.policies.cost_model import CostModel
from engine_worker.policies.handling import POLICIES
from engine_worker.policies.handling_types import BatchState, PausedRequest
from engine_worker.policies.program_fcfs import ProgramFcfs
from engine_worker.policies.queue_order import QueuedRequest

CM = CostModel(fwd_s_per_token=1e-4, fwd_base_s=1e-2, swap_s_per_token=1e-5, kv_bytes_per_token=1000,
               saturation_tokens=100)
NO_SWAP = BatchState(running_context_tokens=1000, swap_budget_tokens=0)


def paused(rid: str = "r", context: int = 500, predicted: float | None = 0.1, elapsed: float = 0.0,
           requeue: float = 0.0) -> PausedRequest:
    return PausedRequest(rid, context, expected_duration_s=elapsed, elapsed_s=elapsed, predicted_duration_s=predicted,
                         requeue_delay_s=requeue)


def test_break_even_is_the_reload_waste_in_seconds_of_holding_plus_the_requeue_delay():
    p = paused(requeue=0.25)
    reload = waste.chunked_discard(500, 1000, CM)
    assert break_even_s(p, NO_SWAP, CM) == pytest.approx(reload / (500 * 1000) + 0.25)


def test_swap_within_budget_lowers_the_break_even_when_it_is_cheaper():
    with_swap = BatchState(1000, swap_budget_tokens=10_000)
    expected = min(waste.chunked_discard(500, 1000, CM), waste.swap(500, 1500, CM)) / (500 * 1000)
    assert break_even_s(paused(), with_swap, CM) == pytest.approx(expected)
    assert break_even_s(paused(), with_swap, CM) < break_even_s(paused(), NO_SWAP, CM)


def test_a_call_predicted_within_break_even_is_pinned_for_break_even_else_not_at_all():
    limit = break_even_s(paused(requeue=1.0), NO_SWAP, CM)
    assert ttl_s(paused(predicted=limit * 0.9, requeue=1.0), NO_SWAP, CM) == pytest.approx(limit)
    assert ttl_s(paused(predicted=limit * 1.1, requeue=1.0), NO_SWAP, CM) == 0.0


def test_a_larger_queueing_benefit_pins_longer_calls():
    long_call = 2.0
    assert ttl_s(paused(predicted=long_call, requeue=0.0), NO_SWAP, CM) == 0.0
    assert ttl_s(paused(predicted=long_call, requeue=3.0), NO_SWAP, CM) > long_call


def test_without_a_prediction_the_expected_duration_is_used():
    p = PausedRequest("r", 500, expected_duration_s=100.0, requeue_delay_s=1.0)
    assert ttl_s(p, NO_SWAP, CM) == 0.0


def test_pinned_until_the_ttl_then_evicted():
    ttl = ttl_s(paused(requeue=1.0), NO_SWAP, CM)
    assert ttl > 0
    before = pin_with_ttl([paused(elapsed=ttl * 0.99, requeue=1.0)], NO_SWAP, CM)
    after = pin_with_ttl([paused(elapsed=ttl, requeue=1.0)], NO_SWAP, CM)
    assert before[0].strategy == "preserve" and after[0].strategy == "discard"


def test_expired_pins_swap_largest_first_while_the_budget_lasts_then_discard():
    batch = BatchState(1000, swap_budget_tokens=900)
    expired = [paused("small", 300, predicted=1e6), paused("big", 800, predicted=1e6),
               paused("mid", 500, predicted=1e6)]
    decisions = {d.request_id: d.strategy for d in POLICIES["continuum"](expired, batch, CM)}
    assert decisions == {"big": "swap", "small": "discard", "mid": "discard"}  # 800 used, 100 left


@given(st.lists(st.builds(PausedRequest, request_id=st.uuids().map(str), context_tokens=st.integers(1, 4000),
                          expected_duration_s=st.floats(0, 120), elapsed_s=st.floats(0, 120),
                          predicted_duration_s=st.one_of(st.none(), st.floats(0, 120)),
                          requeue_delay_s=st.floats(0, 30)),
                max_size=30, unique_by=lambda p: p.request_id),
       st.integers(0, 20000), st.integers(0, 5000))
def test_decides_everyone_once_in_input_order_within_the_swap_budget(paused_list, running, budget):
    decisions = POLICIES["continuum"](paused_list, BatchState(running, budget), CM)
    assert [d.request_id for d in decisions] == [p.request_id for p in paused_list]
    by_id = {p.request_id: p for p in paused_list}
    assert sum(by_id[d.request_id].context_tokens for d in decisions if d.strategy == "swap") <= budget
    for d in decisions:
        p = by_id[d.request_id]
        assert (d.strategy == "preserve") == (p.elapsed_s < ttl_s(p, BatchState(running, budget), CM))


def test_program_fcfs_orders_by_the_programs_first_arrival():
    order = ProgramFcfs()
    turn_1 = [QueuedRequest("agent-turn-1", 0.0, "running", 100, program_id="agent"),
              QueuedRequest("solo", 5.0, "waiting", 100)]
    assert order.order(turn_1, 5.0) == ["agent-turn-1", "solo"]
    # The agent's first request finished; its next turn arrives later than "solo" yet goes first.
    turn_2 = [QueuedRequest("solo", 5.0, "waiting", 100),
              QueuedRequest("agent-turn-2", 9.0, "waiting", 100, program_id="agent"),
              QueuedRequest("other", 7.0, "waiting", 100, program_id="other-agent")]
    assert order.order(turn_2, 9.0) == ["agent-turn-2", "solo", "other"]
    assert order.program_arrival("agent") == 0.0


def test_program_fcfs_forgets_idle_programs():
    order = ProgramFcfs(program_memory_s=10.0)
    order.order([QueuedRequest("a1", 0.0, "waiting", 1, program_id="a")], 0.0)
    order.order([], 11.0)
    assert order.program_arrival("a") is None
