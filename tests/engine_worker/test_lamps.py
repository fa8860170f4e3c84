"""LAMPS: predicted strategy, memory-over-time score, ranking, re-sort cadence, starvation."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine_worker.policies import waste
from engine_worker.policies.cost_model import CostModel
from engine_worker.policies.lamps import Lamps, decode_memory_over_time, score_segment
from engine_worker.policies.queue_order import QueuedRequest
from tests.engine_worker.queue_sim import Job, simulate

CM = CostModel(fwd_s_per_token=1e-4, fwd_base_s=1e-2, swap_s_per_token=1e-5, kv_bytes_per_token=1000,
               saturation_tokens=100)
STEP = 0.02


def req(rid: str, arrival: float = 0.0, state: str = "waiting", context: int = 100, output: int | None = 50,
        call_s: float | None = None, calls_done: int = 0) -> QueuedRequest:
    return QueuedRequest(rid, arrival, state, context, predicted_output_tokens=output, predicted_call_s=call_s,
                         calls_done=calls_done)


def test_decode_memory_over_time_sums_the_growing_context():
    # 3 steps from 10 tokens: holds 11, 12, 13 tokens for one step each.
    assert decode_memory_over_time(10, 3, 0.5, 1000) == pytest.approx(0.5 * 1000 * (11 + 12 + 13))


@pytest.mark.parametrize(("call_s", "strategy"), [(0.0001, "preserve"), (30.0, "swap")])
def test_the_predicted_strategy_is_the_least_wasteful_one(call_s, strategy):
    s = req("r", context=300, output=100, call_s=call_s)
    score = score_segment(s, running_context_tokens=2000, cm=CM, step_s=STEP)
    assert score.strategy == strategy
    at_call = 400
    assert score.waste_preserve == pytest.approx(waste.preserve(call_s, at_call, CM))
    assert score.waste_discard == pytest.approx(waste.chunked_discard(at_call, 2000, CM))
    assert score.waste_swap == pytest.approx(waste.swap(at_call, 2400, CM))
    chosen = min(score.waste_preserve, score.waste_discard, score.waste_swap)
    assert score.memory_over_time == pytest.approx(decode_memory_over_time(300, 100, STEP, 1000) + chosen)


def test_without_swap_a_long_call_is_predicted_discarded():
    s = req("r", context=300, output=100, call_s=30.0)
    assert score_segment(s, 2000, CM, STEP, allow_swap=False).strategy == "discard"


def test_no_call_expected_scores_the_decode_only():
    score = score_segment(req("r", context=300, output=100), 2000, CM, STEP)
    assert (score.strategy is None
            and score.memory_over_time == pytest.approx(decode_memory_over_time(300, 100, STEP, 1000)))


def test_waiting_ranked_by_score_running_stays_first_in_fcfs():
    policy = Lamps(CM, step_s=STEP)
    snapshots = [
        req("run-late", 5.0, "running", output=1), req("run-early", 1.0, "running", output=900),
        req("long-call", 0.0, call_s=60.0),  # holds its KV (or pays to drop it) for a minute
        req("long-output", 0.5, output=800),
        req("short", 2.0, output=10),
        req("swapped-back", 0.2, "paused", call_s=0.001),  # in a short call: nothing left to decode before it
    ]
    assert policy.order(snapshots, 0.0) == ["run-early", "run-late", "swapped-back", "short", "long-call",
                                            "long-output"]


def test_scores_are_cached_per_segment():
    policy = Lamps(CM, step_s=STEP)
    first = policy.score(req("r", output=10), 0)
    assert policy.score(req("r", output=999), 0) is first  # same segment: the arrival-time prediction
    assert policy.score(req("r", output=999, calls_done=1), 0) != first  # after a call: re-scored


@settings(max_examples=30, deadline=None)
@given(k=st.integers(1, 8), iterations=st.integers(1, 40))
def test_the_order_is_recomputed_only_every_k_iterations(k, iterations):
    policy = Lamps(CM, resort_every=k, step_s=STEP)
    long_first = [req("a", 0.0, output=1000), req("b", 1.0, output=10)]
    for i in range(iterations):
        order = policy.order(long_first, float(i))
        policy.observe({}, float(i) + 0.5)
    assert policy.sorts == -(-iterations // k)
    assert order == ["b", "a"]


def test_between_sorts_the_last_order_holds_and_newcomers_queue_behind_it():
    policy = Lamps(CM, resort_every=3, step_s=STEP)
    assert policy.order([req("big", 0.0, output=500), req("small", 1.0, output=5)], 0.0) == ["small", "big"]
    policy.observe({"small": 0.02}, 0.02)
    tiny = req("tiny", 2.0, output=1)
    assert (policy.order([req("big", 0.0, output=500), req("small", 1.0, output=5), tiny], 0.02)
            == ["small", "big", "tiny"])
    policy.observe({}, 0.04)
    policy.observe({}, 0.06)
    assert (policy.order([req("big", 0.0, output=500), req("small", 1.0, output=5), tiny], 0.06)
            == ["tiny", "small", "big"])


def test_passed_over_past_the_threshold_promotes_for_a_quantum():
    policy = Lamps(CM, starvation_threshold=2, starvation_quantum=2, step_s=STEP)
    snapshots = [req("big", 0.0, output=500), req("small", 1.0, output=5)]
    for t in range(3):
        assert policy.order(snapshots, t) == ["small", "big"]
        policy.observe({"small": 0.02}, t + 0.5)  # "big" passed over: 1, 2, 3 times
    assert policy.order(snapshots, 3) == ["big", "small"] and policy.is_promoted("big")
    policy.observe({"small": 0.02}, 3.5)
    policy.observe({"small": 0.02}, 4.5)  # quantum of 2 iterations spent
    assert not policy.is_promoted("big")
    assert policy.order(snapshots, 5) == ["small", "big"]


def test_iterations_where_nothing_ran_pass_no_one_over():
    policy = Lamps(CM, starvation_threshold=0, step_s=STEP)
    policy.order([req("big", 0.0, output=500), req("small", 1.0, output=5)], 0.0)
    policy.observe({}, 0.5)
    assert policy.order([req("big", 0.0, output=500), req("small", 1.0, output=5)], 1.0) == ["small", "big"]


def _long_under_short_stream(slice_s: float) -> list[Job]:
    # Each short job needs 2 slices and one arrives every 2 slices: without the guard the long
    # one (predicted 1000 tokens, a far worse score) never leaves the waiting queue.
    return [Job("long", 0.0, 0, 200, predicted_output_tokens=1000)] + [
        Job(f"s{i:03d}", 2 * slice_s * i, 0, 2, predicted_output_tokens=2) for i in range(150)]


@settings(max_examples=8, deadline=None)
@given(threshold=st.integers(5, 40), k=st.integers(1, 5))
def test_a_long_request_under_a_stream_of_short_ones_runs_within_the_guard(threshold, k):
    slice_s = 0.02
    policy = Lamps(CM, starvation_threshold=threshold, resort_every=k, step_s=STEP)
    result = simulate(policy, _long_under_short_stream(slice_s), CM, slice_s=slice_s, token_s=slice_s,
                      until_s=300 * slice_s)
    # Passed over threshold+1 times, promoted at the next re-sort, then it waits for the one
    # running short job (at most 2 slices: running stays first) to finish.
    assert result.served_at["long"][0] <= (threshold + 1 + k + 2) * slice_s + 1e-9


def test_without_the_guard_the_long_request_never_runs():
    slice_s = 0.02
    # resort_every=1: with a stale order a newcomer queues behind the long one, which then runs.
    policy = Lamps(CM, starvation_threshold=10**9, resort_every=1, step_s=STEP)
    result = simulate(policy, _long_under_short_stream(slice_s), CM, slice_s=slice_s, token_s=slice_s,
                      until_s=300 * slice_s)
    assert "long" not in result.served_at and len(result.finish_s) >= 140
