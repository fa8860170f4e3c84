"""FastServe's proactive KV offload/upload plan: priorities, reserve, swap budget."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine_worker.policies.kv_offload import KvHolder, blocks_for, plan_kv_moves

BLOCK = 16


def test_uploads_the_next_to_run_and_offloads_the_lowest_to_make_room():
    by_priority = [
        KvHolder("next", 320, on_device=False),    # 20 blocks, on host: must come back
        KvHolder("mid", 160, on_device=True),      # 10 blocks, stays
        KvHolder("low", 320, on_device=True),      # 20 blocks: offloaded first
        KvHolder("lowest", 160, on_device=True),   # 10 blocks
    ]
    moves = plan_kv_moves(by_priority, free_blocks=10, reserve_blocks=8, block_size=BLOCK, swap_budget_tokens=10_000)
    # capacity = 10 free + 40 held - 8 reserve = 42: "next" (20) and "mid" (10) fit, "low" (20) does not.
    assert moves.offload == ("lowest", "low")
    assert moves.upload == ("next",)
    assert moves.free_blocks_after == 10 + 30 - 20


def test_the_reserve_is_restored_even_without_uploads():
    by_priority = [KvHolder("a", 160, True), KvHolder("b", 160, True), KvHolder("c", 160, True)]
    moves = plan_kv_moves(by_priority, free_blocks=2, reserve_blocks=12, block_size=BLOCK, swap_budget_tokens=10_000)
    assert moves.offload == ("c",) and moves.upload == () and moves.free_blocks_after == 12


def test_the_swap_budget_stops_moves_in_priority_order():
    by_priority = [KvHolder("h1", 100, False), KvHolder("h2", 100, False), KvHolder("h3", 100, False)]
    moves = plan_kv_moves(by_priority, free_blocks=100, reserve_blocks=0, block_size=BLOCK, swap_budget_tokens=250)
    assert moves.upload == ("h1", "h2")  # h3 would take 300 tokens in all


def test_an_upload_that_cannot_fit_the_reserve_blocks_the_ones_behind_it():
    by_priority = [KvHolder("big", 800, False), KvHolder("small", 16, False)]
    moves = plan_kv_moves(by_priority, free_blocks=40, reserve_blocks=0, block_size=BLOCK, swap_budget_tokens=500)
    assert moves.upload == ()  # "big" fits memory but not this iteration's budget; "small" must not jump it


def test_nonsense_is_refused():
    with pytest.raises(ValueError):
        plan_kv_moves([], free_blocks=0, reserve_blocks=0, block_size=0, swap_budget_tokens=0)


holders = st.lists(st.builds(KvHolder, request_id=st.uuids().map(str), kv_tokens=st.integers(1, 2000),
                             on_device=st.booleans()), max_size=20, unique_by=lambda h: h.request_id)


@given(holders, st.integers(0, 300), st.integers(0, 100), st.sampled_from([1, 16, 32]), st.integers(0, 6000))
def test_budget_reserve_and_priority_invariants(by_priority, free, reserve, block_size, budget):
    moves = plan_kv_moves(by_priority, free, reserve, block_size, budget)
    index = {h.request_id: i for i, h in enumerate(by_priority)}
    by_id = {h.request_id: h for h in by_priority}
    assert sum(by_id[r].kv_tokens for r in (*moves.offload, *moves.upload)) <= budget
    assert all(by_id[r].on_device for r in moves.offload) and not any(by_id[r].on_device for r in moves.upload)
    assert [index[r] for r in moves.offload] == sorted((index[r] for r in moves.offload), reverse=True)
    assert [index[r] for r in moves.upload] == sorted(index[r] for r in moves.upload)
    if moves.offload and moves.upload:
        assert min(index[r] for r in moves.offload) > max(index[r] for r in moves.upload)
    freed = sum(blocks_for(by_id[r].kv_tokens, block_size) for r in moves.offload)
    taken = sum(blocks_for(by_id[r].kv_tokens, block_size) for r in moves.upload)
    assert moves.free_blocks_after == free + freed - taken
    if moves.upload:
        assert moves.free_blocks_after >= reserve  # an upload never eats into the reserve
    assert moves.free_blocks_after >= min(free, reserve)  # moves never make a reserve shortfall worse
