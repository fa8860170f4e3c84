"""The swap path's parts that run without an engine: step planning, the record book, the copies."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from engine_worker.engine_core.kv_swap.host_store import HostStore, block_dim
from engine_worker.engine_core.kv_swap.swap_book import SwapBook
from engine_worker.engine_core.kv_swap.transfers import PendingTransfer, plan_step, split_budget

BS = 4  # tokens per block in these tests


def test_budget_split_follows_pool_usage():
    assert split_budget(100, 0.9) == (90, 10)
    assert split_budget(100, 0.0) == (0, 100)


def test_an_idle_direction_lends_its_share():
    out = [PendingTransfer("a", "a", "out", list(range(10)))]
    step = plan_step(out, [], budget_tokens=8 * BS, pool_usage=0.1, block_size=BS)
    assert sum(len(c.device_blocks) for c in step.copies) == 8


def test_every_pending_direction_moves_at_least_a_block():
    out = [PendingTransfer("a", "a", "out", [1, 2])]
    incoming = [PendingTransfer("b", "b2", "in", [3, 4])]
    step = plan_step(out, incoming, budget_tokens=0, pool_usage=0.5, block_size=BS)
    assert {c.direction for c in step.copies} == {"out", "in"}


@settings(max_examples=200, deadline=None)
@given(sizes=st.lists(st.integers(1, 12), min_size=1, max_size=5), budget_blocks=st.integers(1, 20),
       usage=st.floats(0, 1))
def test_chunks_cover_each_transfer_once_in_order_within_budget(sizes, budget_blocks, usage):
    out = [PendingTransfer(f"r{i}", f"r{i}", "out", list(range(100 * i, 100 * i + n))) for i, n in enumerate(sizes)]
    seen: dict[str, list[int]] = {}
    lasts = set()
    for _ in range(sum(sizes) + 1):
        step = plan_step(out, [], budget_blocks * BS, usage, BS)
        assert sum(len(c.device_blocks) for c in step.copies) <= budget_blocks
        for c in step.copies:
            assert list(c.record_blocks) == list(range(len(seen.get(c.key, [])),
                                                       len(seen.get(c.key, [])) + len(c.device_blocks)))
            seen.setdefault(c.key, []).extend(c.device_blocks)
            if c.last:
                lasts.add(c.key)
    assert all(seen[t.key] == t.device_blocks for t in out)
    assert lasts == {t.key for t in out}


def _book(capacity_blocks=10):
    return SwapBook(block_size=BS, block_bytes=100, capacity_bytes=capacity_blocks * 100)


def test_a_record_is_saved_then_loaded_into_the_resumed_requests_blocks():
    book = _book()
    context = list(range(10))  # 10 tokens: 3 blocks
    assert book.start_save("req", "req-x1", context, 10, [7, 8, 9, 11])
    assert book.match("req~1-x2", "req", context + [5, 6], local_tokens=0) is None  # still saving
    book.plan(1 << 20, 0.5)
    book.finished({"req-x1"}, set())
    # The prefix cache kept the first block: load the other two, 10 - 4 tokens.
    assert book.match("req~1-x2", "req", context + [5, 6], local_tokens=4) == 6
    book.start_load("req~1-x2", [20, 21, 22, 23], 6)
    step = book.plan(1 << 20, 0.5)
    (copy,) = step.copies
    assert copy.direction == "in" and copy.device_blocks == (21, 22) and copy.record_blocks == (1, 2)
    assert book.busy()
    book.finished(set(), {"req~1-x2"})
    assert not book.records and not book.busy()


def test_a_full_host_buffer_turns_a_swap_into_a_discard():
    book = _book(capacity_blocks=3)
    assert book.start_save("a", "a-1", list(range(8)), 8, [1, 2])
    assert not book.start_save("b", "b-1", list(range(8)), 8, [3, 4])


def test_a_resume_that_does_not_continue_the_record_recomputes():
    book = _book()
    book.start_save("req", "req-1", [1, 2, 3, 4, 5], 5, [1, 2])
    book.plan(1 << 20, 0.5)
    book.finished({"req-1"}, set())
    assert book.match("other", "req", [9, 9, 9, 9, 9, 9], 0) == 0
    assert "req" not in book.records


def test_the_last_prompt_token_is_always_computed():
    book = _book()
    book.start_save("req", "req-1", list(range(8)), 8, [1, 2])
    book.plan(1 << 20, 0.5)
    book.finished({"req-1"}, set())
    assert book.match("next", "req", list(range(8)), 0) == 7


def test_unclaimed_records_expire():
    now = [0.0]
    book = SwapBook(BS, 100, 1000, ttl_s=10, clock=lambda: now[0])
    book.start_save("req", "req-1", list(range(4)), 4, [1])
    book.plan(1 << 20, 0.5)
    book.finished({"req-1"}, set())
    now[0] = 11
    assert book.expired() == ["req"] and not book.records


def test_a_resume_never_waits_forever_for_a_copy_out():
    now = [0.0]
    book = SwapBook(BS, 100, 1000, clock=lambda: now[0], save_timeout_s=5)
    book.start_save("req", "req-1", list(range(8)), 8, [1, 2])
    assert book.match("req~1", "req", list(range(9)), 0) is None  # still saving: ask again
    now[0] = 6
    assert book.match("req~1", "req", list(range(9)), 0) == 0  # given up: recompute


def test_block_dimension_is_found_in_cpu_and_gpu_layouts():
    assert block_dim((64, 2, 128, 128), 64) == 0  # CPU: [blocks, K/V, ...]
    assert block_dim((2, 64, 16, 8, 64), 64) == 1  # flash-attention: [K/V, blocks, ...]
    assert block_dim((2, 2, 16, 8, 64), 2, cuda=True) == 1
    assert block_dim((2, 2, 16, 8, 64), 2, cuda=False) == 0


def test_host_store_round_trips_blocks_between_pool_slots():
    torch.manual_seed(0)
    layers = {f"l{i}": torch.randn(6, 2, BS, 3) for i in range(2)}
    originals = {name: t[[1, 4]].clone() for name, t in layers.items()}
    store = HostStore(layers, num_blocks=6)
    book = _book()
    book.start_save("req", "req-1", list(range(8)), 8, [1, 4])
    step = book.plan(1 << 20, 0.5)
    store.run(step.copies, {"req": 2})
    (done,) = store.completed()
    assert done.request_id == "req-1" and done.direction == "out" and done.seconds >= 0
    for t in layers.values():
        t.zero_()  # the pool reuses the blocks
    book.finished({"req-1"}, set())
    book.match("req~1", "req", list(range(8)) + [1], 0)
    book.start_load("req~1", [3, 5], 8)
    step = book.plan(1 << 20, 0.5)
    store.run(step.copies, {})
    (done,) = store.completed()
    assert done.direction == "in" and store.held_bytes() == 0
    for name, t in layers.items():
        assert torch.equal(t[[3, 5]], originals[name])
