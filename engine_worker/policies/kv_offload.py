"""FastServe's proactive KV management: which idle requests' KV to offload to host, which to upload.

Input: the requests that are NOT running this iteration (paused at a call, or queued/preempted)
and hold KV somewhere, in priority order (highest first, e.g. FastServe's `order`). The device
should hold the KV of the longest priority prefix that fits in the free blocks plus what those
requests already hold on device, minus a reserve kept free for the running batch to grow into (the
paper: the maximum batch size). Everything after that prefix is offload material, lowest priority
first; host-resident requests inside it are uploaded, highest priority first, so they are on device
before they are scheduled. A strict prefix guarantees nothing is ever offloaded to make room for a
request of lower priority.

Invariants (tests/engine_worker/test_kv_offload.py): tokens moved (out + in) never exceed the swap
budget; an upload never leaves fewer than `reserve_blocks` free; offloads are lowest priority first,
uploads highest priority first, and every offloaded request ranks below every uploaded one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class KvHolder:
    request_id: str
    kv_tokens: int
    on_device: bool
    """False: its KV sits in host memory (swapped out)."""


@dataclass(frozen=True)
class KvMoves:
    offload: tuple[str, ...]
    """Device -> host, in the order to issue them (lowest priority first)."""
    upload: tuple[str, ...]
    """Host -> device, in the order to issue them (highest priority first), after the offloads."""
    free_blocks_after: int


def blocks_for(tokens: int, block_size: int) -> int:
    return -(-tokens // block_size)


def plan_kv_moves(by_priority: Sequence[KvHolder], free_blocks: int, reserve_blocks: int, block_size: int,
                  swap_budget_tokens: int) -> KvMoves:
    if block_size < 1 or free_blocks < 0 or reserve_blocks < 0 or swap_budget_tokens < 0:
        raise ValueError("block_size must be positive; free/reserve blocks and the budget non-negative")
    capacity = (free_blocks + sum(blocks_for(h.kv_tokens, block_size) for h in by_priority if h.on_device)
                - reserve_blocks)
    keep = 0
    for h in by_priority:
        need = blocks_for(h.kv_tokens, block_size)
        if need > capacity:
            break
        capacity -= need
        keep += 1
    # Lowest priority first: the next to be scheduled keep their KV longest.
    offload_queue = [h for h in reversed(by_priority[keep:]) if h.on_device]
    upload_queue = [h for h in by_priority[:keep] if not h.on_device]

    free, budget = free_blocks, swap_budget_tokens
    offload: list[str] = []
    upload: list[str] = []

    def offload_next() -> bool:
        nonlocal free, budget
        if not offload_queue or offload_queue[0].kv_tokens > budget:
            return False
        h = offload_queue.pop(0)
        free += blocks_for(h.kv_tokens, block_size)
        budget -= h.kv_tokens
        offload.append(h.request_id)
        return True

    # Restore the reserve first: the running batch needs it whatever else moves.
    while free < reserve_blocks and offload_next():
        pass
    for h in upload_queue:
        need = blocks_for(h.kv_tokens, block_size)
        while free - need < reserve_blocks and offload_next():
            pass
        if free - need < reserve_blocks or h.kv_tokens > budget:
            break  # strict priority: a lower one does not jump ahead of one that cannot move yet
        free -= need
        budget -= h.kv_tokens
        upload.append(h.request_id)
    return KvMoves(tuple(offload), tuple(upload), free)
