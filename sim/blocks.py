"""The paged KV pool: fixed-size blocks, reference counts, and a prefix cache of freed full blocks.

As vLLM's block pool: a block freed by its last holder goes to the tail of the free queue and,
if it was full, keeps its hash, so a later request with the same prefix takes it back without
recomputing it (a hit); allocation takes from the head, evicting the oldest cached hashes first
(LRU). Hashes are (owner, block index): a context only grows by appending, so a full block of a
request never changes, and the bench sends every request its own prompt text (no sharing across
requests to model).

Invariants (tests/sim/test_blocks.py): every block is either free (in the queue once) or held
(refcount > 0); a block is freed once per reference taken; held + free = total.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable


class BlockPool:
    def __init__(self, num_blocks: int, block_size: int):
        if num_blocks < 1 or block_size < 1:
            raise ValueError("num_blocks and block_size must be positive")
        self.num_blocks = num_blocks
        self.block_size = block_size
        self._refs = [0] * num_blocks
        self._hash: list[Hashable | None] = [None] * num_blocks
        self._free: OrderedDict[int, None] = OrderedDict((b, None) for b in range(num_blocks))
        """Free blocks, oldest freed first (evicted first)."""
        self._cached: dict[Hashable, int] = {}
        """Hash -> block, for full blocks still holding their content (held or free)."""
        self.allocations = 0
        self.frees = 0

    @property
    def num_free(self) -> int:
        return len(self._free)

    def usage(self) -> float:
        return 1.0 - len(self._free) / self.num_blocks

    def blocks_for(self, tokens: int) -> int:
        return -(-tokens // self.block_size)

    def cached_prefix(self, owner: Hashable, tokens: int) -> int:
        """How many leading full blocks of `owner`'s first `tokens` tokens the cache holds."""
        n = 0
        while (n + 1) * self.block_size <= tokens and (owner, n) in self._cached:
            n += 1
        return n

    def take_cached(self, owner: Hashable, count: int) -> list[int]:
        """References the first `count` cached full blocks of `owner` (cached_prefix said they are there)."""
        out = []
        for index in range(count):
            block = self._cached[(owner, index)]
            if self._refs[block] == 0:
                del self._free[block]
            self._refs[block] += 1
            self.allocations += 1
            out.append(block)
        return out

    def can_allocate(self, count: int) -> bool:
        return count <= len(self._free)

    def allocate(self, count: int) -> list[int]:
        if count > len(self._free):
            raise MemoryError(f"{count} blocks asked, {len(self._free)} free")
        out = []
        for _ in range(count):
            block, _ = self._free.popitem(last=False)
            old = self._hash[block]
            if old is not None:  # evicted: its content is overwritten
                del self._cached[old]
                self._hash[block] = None
            self._refs[block] = 1
            self.allocations += 1
            out.append(block)
        return out

    def seal(self, block: int, key: Hashable) -> None:
        """A held block is now full with the content named `key`: cacheable once freed."""
        if self._refs[block] <= 0:
            raise ValueError(f"block {block} is not held")
        if key in self._cached or self._hash[block] is not None:
            return  # the same content twice, or already sealed: keep the first
        self._hash[block] = key
        self._cached[key] = block

    def free(self, blocks: list[int]) -> None:
        """Drops one reference per block; in reverse so a request's tail is evicted before its head."""
        for block in reversed(blocks):
            if self._refs[block] <= 0:
                raise ValueError(f"block {block} freed more often than taken")
            self._refs[block] -= 1
            self.frees += 1
            if self._refs[block] == 0:
                self._free[block] = None

    def check(self) -> None:
        """The invariants, loudly (the property tests call it after every step)."""
        held = sum(1 for r in self._refs if r > 0)
        if any(r < 0 for r in self._refs) or held + len(self._free) != self.num_blocks:
            raise AssertionError("block accounting broken")
        if any(self._refs[b] != 0 for b in self._free):
            raise AssertionError("a held block is in the free queue")
        if self.allocations - self.frees != sum(self._refs):
            raise AssertionError("references taken and freed do not balance")
