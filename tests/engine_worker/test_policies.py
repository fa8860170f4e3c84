"""The waste equations and handling policies, alone (no engine)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine_worker.policies import waste
from engine_worker.policies.cost_model import GPTJ_A100, CostModel
from engine_worker.policies.handling import POLICIES
from engine_worker.policies.handling_types import BatchState, PausedRequest
from engine_worker.policies.infercept import infercept

CM = CostModel(fwd_s_per_token=1e-4, fwd_base_s=1e-2, swap_s_per_token=1e-5, kv_bytes_per_token=1000,
               saturation_tokens=100)


@pytest.mark.parametrize(("duration", "context", "expected"), [(2.0, 100, 2.0 * 100 * 1000), (0.0, 500, 0.0)])
def test_preserve_waste_is_duration_times_kv(duration, context, expected):
    assert waste.preserve(duration, context, CM) == pytest.approx(expected)


def test_discard_waste_counts_the_stalled_others():
    t = 1e-4 * 200 + 1e-2
    assert waste.discard(200, 300, CM) == pytest.approx(t * 200 * 1000 + t * 300 * 1000)


def test_chunked_discard_halves_own_waste_and_splits_the_stall():
    own = (1e-4 * 250 + 1e-2) * 250 * 1000 / 2
    stall = 3 * (1e-4 * (250 / 3) + 1e-2) * 400 * 1000  # 3 chunks of <= S=100 tokens
    assert waste.chunked_discard(250, 400, CM) == pytest.approx(own + stall)


def test_prefix_cached_tokens_are_not_recomputed():
    assert waste.chunked_discard(300, 100, CM, cached=300) == 0.0
    assert waste.chunked_discard(300, 100, CM, cached=200) == pytest.approx(waste.chunked_discard(100, 100, CM))


def test_swap_waste_is_two_copies_times_the_batch():
    assert waste.swap(100, 1000, CM) == pytest.approx(2 * 1e-5 * 100 * 1000 * 1000)


def test_gptj_swap_budget_matches_the_paper():
    assert GPTJ_A100.swap_budget_tokens(384) == pytest.approx(605, abs=1)


def test_infercept_swaps_the_costliest_within_budget_then_picks_the_cheaper():
    paused = [
        PausedRequest("long-call", 500, expected_duration_s=30.0),   # huge preserve waste
        PausedRequest("short-call", 500, expected_duration_s=0.0001),  # preserve is ~free
        PausedRequest("mid", 400, expected_duration_s=5.0),
    ]
    decisions = {d.request_id: d for d in infercept(paused, BatchState(2000, swap_budget_tokens=600), CM)}
    assert decisions["long-call"].strategy == "swap"  # costliest first, fits the budget
    assert decisions["short-call"].strategy == "preserve"
    assert decisions["mid"].strategy == "discard"  # no budget left; discard wastes less than 5 s idle
    assert decisions["mid"].waste_discard < decisions["mid"].waste_preserve


paused_lists = st.lists(
    st.builds(PausedRequest, request_id=st.uuids().map(str), context_tokens=st.integers(1, 4000),
              expected_duration_s=st.floats(0, 120), cached_tokens=st.integers(0, 4000)),
    max_size=30, unique_by=lambda p: p.request_id)


@given(paused_lists, st.integers(0, 20000), st.integers(0, 5000))
def test_infercept_respects_the_swap_budget_and_decides_each_request_once(paused, running, budget):
    decisions = infercept(paused, BatchState(running, budget), CM)
    assert sorted(d.request_id for d in decisions) == sorted(p.request_id for p in paused)
    by_id = {p.request_id: p for p in paused}
    assert sum(by_id[d.request_id].context_tokens for d in decisions if d.strategy == "swap") <= budget
    for d in decisions:
        if d.strategy == "discard":
            assert d.waste_discard < d.waste_preserve
        if d.strategy == "preserve":
            assert d.waste_preserve <= d.waste_discard


@given(paused_lists)
def test_fixed_policies_choose_their_strategy_for_everyone(paused):
    for name, strategy in [("preserve", "preserve"), ("swap", "swap"), ("vllm", "discard"),
                           ("improved-discard", "discard")]:
        decisions = POLICIES[name](paused, BatchState(100, 0), CM)
        # one decision per paused request, in order, each the policy's one strategy (exact: an
        # empty answer for a non-empty list fails)
        assert [(d.request_id, d.strategy) for d in decisions] == [(p.request_id, strategy) for p in paused], name


def test_infercept_code_spares_the_costliest_discard_candidate():
    paused = [
        PausedRequest("a", 300, expected_duration_s=20.0),
        PausedRequest("b", 900, expected_duration_s=20.0),  # highest discard waste of the candidates
        PausedRequest("c", 300, expected_duration_s=0.0),   # preserve is free: not a candidate
    ]
    decisions = {d.request_id: d.strategy for d in POLICIES["infercept-code"](paused, BatchState(1000, 0), CM)}
    assert decisions == {"a": "discard", "b": "preserve", "c": "preserve"}


@given(paused_lists)
def test_infercept_code_never_discards_when_preserving_is_cheaper(paused):
    for d in POLICIES["infercept-code"](paused, BatchState(500, 0), CM):
        if d.strategy == "discard":
            assert d.waste_discard < d.waste_preserve


def _paused_mix() -> list[PausedRequest]:
    return [PausedRequest("calc", 300, 0.06), PausedRequest("human", 900, 20.0), PausedRequest("image", 500, 3.0)]


def test_on_demand_preserves_everyone_while_no_one_needs_the_memory():
    idle = BatchState(400, swap_budget_tokens=10_000, free_blocks=40, block_size=16, waiting_requests=0,
                      running_requests=3)
    decisions = POLICIES["infercept-on-demand"](_paused_mix(), idle, CM)
    assert {d.request_id: d.strategy for d in decisions} == {"calc": "preserve", "human": "preserve",
                                                             "image": "preserve"}
    # InferCept's rule as written moves them all on the same state: the budget takes all three.
    assert {d.strategy for d in infercept(_paused_mix(), idle, CM)} == {"swap"}
    assert [d.waste_preserve for d in decisions] == [d.waste_preserve for d in
                                                   sorted(infercept(_paused_mix(), idle, CM),
                                                          key=lambda d: ["calc", "human", "image"].index(d.request_id))]


@pytest.mark.parametrize("pressure", [
    {"waiting_requests": 1, "free_blocks": 40, "running_requests": 3},  # an arrival waits for admission
    {"waiting_requests": 0, "free_blocks": 3, "running_requests": 3},   # the batch has no block to grow into
])
def test_on_demand_applies_infercepts_rule_under_memory_demand(pressure):
    batch = BatchState(400, swap_budget_tokens=600, block_size=16, **pressure)
    ours = POLICIES["infercept-on-demand"](_paused_mix(), batch, CM)
    assert [(d.request_id, d.strategy) for d in ours] == [(d.request_id, d.strategy)
                                                         for d in infercept(_paused_mix(), batch, CM)]
    assert {d.strategy for d in ours} != {"preserve"}
