"""What the handling policies decide over and return: a paused request, the batch, a decision.

Shared by every handling policy (infercept.py, fixed.py, continuum.py, fastserve_offload.py) and
the registry (handling.py); imports none of them. waste_figures: the three wastes of one paused
request, which every decision reports.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from common.schemas import Strategy
from engine_worker.policies import waste
from engine_worker.policies.cost_model import CostModel


@dataclass(frozen=True)
class PausedRequest:
    request_id: str
    context_tokens: int
    expected_duration_s: float
    """Duration used in the preserve waste (elapsed, history-conditional or oracle estimate)."""
    cached_tokens: int = 0
    """Tokens of its context expected to survive in the prefix cache if discarded."""
    elapsed_s: float = 0.0
    """Time since its call began (TTL policies compare it with the pin's lifetime)."""
    predicted_duration_s: float | None = None
    """The estimator's predicted total call duration; None: use expected_duration_s."""
    requeue_delay_s: float = 0.0
    """Expected wait for re-admission if its KV is gone (the scheduler's current queueing delay)."""


@dataclass(frozen=True)
class BatchState:
    running_context_tokens: int
    """Context tokens of the requests running this iteration (C_batch)."""
    swap_budget_tokens: int
    """Tokens the swap path may move this iteration (shared by out and in)."""
    free_blocks: int = 0
    """Free blocks in the KV pool (what the pool-aware `fastserve` policy keeps above its reserve)."""
    reserve_blocks: int = 0
    """Blocks to keep free for the running batch to grow into; 0 (the default) never offloads."""
    block_size: int = 16
    """Tokens per KV block, to turn a paused context into the blocks offloading it frees."""
    waiting_requests: int = 0
    """Requests the engine holds that wait to be admitted (paused sessions not counted)."""
    running_requests: int = 0
    """Requests running this iteration (each may need one more block to grow into)."""


@dataclass(frozen=True)
class Handling:
    request_id: str
    strategy: Strategy
    waste_preserve: float
    waste_discard: float
    waste_swap: float


def waste_figures(p: PausedRequest, batch: BatchState, cm: CostModel) -> tuple[float, float, float]:
    others = batch.running_context_tokens
    return (
        waste.preserve(p.expected_duration_s, p.context_tokens, cm),
        waste.chunked_discard(p.context_tokens, others, cm, cached=p.cached_tokens),
        waste.swap(p.context_tokens, batch.running_context_tokens + p.context_tokens, cm),
    )


Decide = Callable[[list[PausedRequest], BatchState, CostModel], list[Handling]]
