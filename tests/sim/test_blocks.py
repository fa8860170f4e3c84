"""The block pool: references balance, cached prefixes survive until evicted, LRU eviction."""

from hypothesis import given
from hypothesis import strategies as st

from sim.blocks import BlockPool


def test_a_freed_full_block_is_a_prefix_hit_until_evicted():
    pool = BlockPool(4, 16)
    blocks = pool.allocate(2)
    pool.seal(blocks[0], ("r", 0))
    pool.free(blocks)
    assert pool.cached_prefix("r", 40) == 1
    again = pool.take_cached("r", 1)
    assert again == [blocks[0]] and pool.num_free == 3
    pool.free(again)
    pool.allocate(4)  # evicts everything
    assert pool.cached_prefix("r", 40) == 0


def test_freeing_more_than_taken_fails_loudly():
    pool = BlockPool(2, 16)
    blocks = pool.allocate(1)
    pool.free(blocks)
    try:
        pool.free(blocks)
    except ValueError:
        return
    raise AssertionError("double free accepted")


@given(st.lists(st.tuples(st.integers(0, 5), st.integers(1, 6), st.booleans()), max_size=60))
def test_every_block_is_freed_once_per_reference(ops):
    """Random owners allocate, seal, free and re-take their prefixes; the accounting holds after every op."""
    pool = BlockPool(12, 4)
    held: dict[int, list[int]] = {}
    for owner, count, seal in ops:
        if owner in held:
            blocks = held.pop(owner)
            if seal:
                for i, b in enumerate(blocks):
                    pool.seal(b, (owner, i))
            pool.free(blocks)
        else:
            hit = pool.cached_prefix(owner, count * 4)
            blocks = pool.take_cached(owner, hit)
            if pool.can_allocate(count - hit):
                held[owner] = blocks + pool.allocate(count - hit)
            else:
                pool.free(blocks)
        pool.check()
    for blocks in held.values():
        pool.free(blocks)
    pool.check()
    assert pool.num_free == pool.num_blocks and pool.allocations == pool.frees
