"""Which block copies run in one engine step.

Swap-out and swap-in share one budget of tokens per step: as many as can be copied while the
step's forward pass runs, T_swap(n) = T_fwd(batch) (InferCept's swap pipelining). The budget is
split between the two directions by how full the KV pool is: a full pool favours moving KV out,
a roomy one bringing it back. Each pending transfer moves whole blocks, oldest first, and every
direction with work moves at least one block per step, so no transfer stalls.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Direction = Literal["out", "in"]


@dataclass
class PendingTransfer:
    """One request's blocks on their way out to the host buffer or back into the pool."""

    key: str
    """The swap record: the vLLM id of the request whose KV was swapped out."""
    request_id: str
    """The vLLM request holding the pool blocks (the aborted one going out, its successor coming in)."""
    direction: Direction
    device_blocks: list[int]
    """Pool block ids, in token order: record block i lives in device_blocks[i]."""
    first_block: int = 0
    """Record index of device_blocks[0] (a swap-in skips blocks the prefix cache already holds)."""
    copied: int = 0
    """Blocks of device_blocks already copied."""

    @property
    def remaining(self) -> int:
        return len(self.device_blocks) - self.copied


@dataclass(frozen=True)
class BlockCopy:
    """A chunk of one transfer to copy in this step."""

    key: str
    request_id: str
    direction: Direction
    device_blocks: tuple[int, ...]
    record_blocks: tuple[int, ...]
    """Indices into the swap record's blocks, parallel to device_blocks."""
    last: bool
    """This chunk completes the transfer."""


@dataclass
class StepPlan:
    copies: list[BlockCopy] = field(default_factory=list)

    def tokens(self, block_size: int) -> int:
        return sum(len(c.device_blocks) for c in self.copies) * block_size


def split_budget(budget_tokens: int, pool_usage: float) -> tuple[int, int]:
    """(out, in) token budgets: the out share is the pool's usage, the in share its free part."""
    usage = min(1.0, max(0.0, pool_usage))
    out = int(budget_tokens * usage)
    return out, budget_tokens - out


def _take(pending: list[PendingTransfer], budget_blocks: int) -> list[BlockCopy]:
    copies = []
    budget_blocks = max(1, budget_blocks) if any(t.remaining for t in pending) else 0
    for t in pending:
        if budget_blocks <= 0:
            break
        n = min(t.remaining, budget_blocks)
        if n <= 0:
            continue
        start = t.copied
        copies.append(BlockCopy(
            t.key, t.request_id, t.direction, tuple(t.device_blocks[start:start + n]),
            tuple(range(t.first_block + start, t.first_block + start + n)), last=start + n == len(t.device_blocks)))
        t.copied += n
        budget_blocks -= n
    return copies


def plan_step(outgoing: list[PendingTransfer], incoming: list[PendingTransfer], budget_tokens: int,
              pool_usage: float, block_size: int) -> StepPlan:
    """Advances the pending transfers (in place) by this step's budget and returns the copies.

    A direction whose share is unused (nothing pending) lends it to the other.
    """
    out_tokens, in_tokens = split_budget(budget_tokens, pool_usage)
    if not any(t.remaining for t in incoming):
        out_tokens, in_tokens = budget_tokens, 0
    elif not any(t.remaining for t in outgoing):
        out_tokens, in_tokens = 0, budget_tokens
    plan = StepPlan()
    plan.copies += _take(outgoing, out_tokens // block_size)
    plan.copies += _take(incoming, in_tokens // block_size)
    return plan
