"""Time slicing (policies/preemption.py): running slots go to strictly better-ranked waiters only."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from engine_worker.policies.cost_model import CostModel
from engine_worker.policies.fastserve import FastServe
from engine_worker.policies.preemption import time_slice_victims
from engine_worker.policies.queue_order import QueuedRequest

CM = CostModel(fwd_s_per_token=1e-3, fwd_base_s=1e-2, swap_s_per_token=1e-5, kv_bytes_per_token=1000,
               saturation_tokens=256)


def test_a_better_waiter_takes_the_worst_running_slot():
    assert time_slice_victims({"a": 0, "long": 5}, [("short", 1)], free_slots=0) == ["long"]


def test_a_free_slot_is_used_before_anyone_is_preempted():
    assert time_slice_victims({"long": 5}, [("short", 1)], free_slots=1) == []
    assert time_slice_victims({"long": 5, "b": 4}, [("s1", 0), ("s2", 1)], free_slots=1) == ["long"]


def test_no_preemption_for_a_worse_or_no_waiter():
    assert time_slice_victims({"a": 0, "b": 1}, [("late", 2)], free_slots=0) == []
    assert time_slice_victims({"a": 0}, [], free_slots=0) == []


def test_the_pass_stops_at_the_first_waiter_that_cannot_win():
    # w1 displaces r2; w3 cannot beat r0, the worst one left.
    assert time_slice_victims({"r0": 0, "r2": 2}, [("w1", 1), ("w3", 3)], free_slots=0) == ["r2"]


ranked = st.lists(st.integers(0, 1000), min_size=0, max_size=12, unique=True)


@given(ranked, st.integers(0, 12), st.integers(0, 4))
def test_hand_over_is_strict_and_maximal(all_ranks, split, free):
    split = min(split, len(all_ranks))
    running = {f"r{rank}": rank for rank in all_ranks[:split]}
    waiting = [(f"w{rank}", rank) for rank in all_ranks[split:]]
    victims = time_slice_victims(running, waiting, free)
    assert len(set(victims)) == len(victims) and set(victims) <= set(running)
    queue = sorted(rank for _, rank in waiting)
    assert len(victims) <= max(0, len(queue) - free)
    # The i-th victim (worst first) is displaced by the (free + i)-th best waiter, which outranks it.
    for i, rid in enumerate(victims):
        assert running[rid] > queue[free + i]
    assert [running[v] for v in victims] == sorted((running[v] for v in victims), reverse=True)
    # Maximal: nobody left waiting outranks anyone left running.
    kept = [rank for rid, rank in running.items() if rid not in victims]
    still_waiting = queue[free + len(victims):]
    if kept and still_waiting:
        assert min(still_waiting) > max(kept)


def test_fastserve_is_preemptive_unless_told_not_to():
    assert FastServe(CM).preemptive is True
    assert FastServe(CM, preempt=False).preemptive is False


def test_fastserve_keeps_the_level_of_a_request_away_at_a_call():
    policy = FastServe(CM, memory_s=60.0)
    policy.order([QueuedRequest("r", 0.0, "running", 0)], 0.0)
    policy.observe({"r": 0.05}, 0.1)  # 10 + 20 ms spent, 20 of level 2's 40: level 2
    assert policy.level_of("r") == 2
    policy.order([QueuedRequest("other", 1.0, "waiting", 0)], 1.0)  # "r" is away at its call
    assert policy.level_of("r") == 2
    policy.order([QueuedRequest("r", 0.0, "waiting", 40, last_scheduled_s=30.0)], 30.0)
    assert policy.level_of("r") == 2  # back where it left, not at its skip-join level (3 for 40 tokens)
    policy.order([QueuedRequest("other", 1.0, "waiting", 0)], 200.0)
    assert policy.level_of("r") is None  # gone past memory_s: forgotten


def test_a_running_job_is_preemptible_only_after_running_its_recompute_cost_times_the_factor():
    policy = FastServe(CM, min_slice_recomputes=4.0)
    # 200 computed tokens recompute in 0.21 s here, so it must have run 0.84 s since admission.
    assert not policy.preemptible(200, 0.8)
    assert policy.preemptible(200, 0.85)
    assert FastServe(CM, min_slice_recomputes=0.0).preemptible(10_000, 0.0)
