"""What each paused request's KV gets this iteration: preserve, discard or swap.

Policies are registered by name (PolicyName, the type of the worker's `policy` setting): adding
one adds a function here and a name, not a branch in the engine.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

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


def infercept(paused: list[PausedRequest], batch: BatchState, cm: CostModel) -> list[Handling]:
    """The paper's rule: sort by min(preserve, chunked discard) descending; swap out in that order
    while the swap budget lasts; the rest discard if that wastes less, else preserve."""
    scored = [(p, *waste_figures(p, batch, cm)) for p in paused]
    scored.sort(key=lambda s: (-min(s[1], s[2]), s[0].request_id))
    budget = batch.swap_budget_tokens
    out: list[Handling] = []
    for p, wp, wd, ws in scored:
        # Pipelined, budgeted swap overlaps compute, so within budget it beats both (the paper).
        if p.context_tokens <= budget:
            budget -= p.context_tokens
            strategy = Strategy.SWAP
        else:
            strategy = Strategy.DISCARD if wd < wp else Strategy.PRESERVE
        out.append(Handling(p.request_id, strategy, wp, wd, ws))
    return out


def memory_in_demand(batch: BatchState) -> bool:
    """Whether a paused request's blocks could serve someone now: a request waits to be admitted,
    or the running batch has less than one free block per request left to grow into. Otherwise
    memory held by a paused request wastes nothing: no one is kept out by it."""
    return batch.waiting_requests > 0 or batch.free_blocks <= batch.running_requests


def infercept_on_demand(paused: list[PausedRequest], batch: BatchState, cm: CostModel) -> list[Handling]:
    """InferCept's rule applied only while memory is in demand (memory_in_demand); until then
    every paused request keeps its KV. The paper's waste counts memory x time held as waste even
    when the pool is idle, so it swaps out a 60 ms calculator call's context that no one needed:
    every such swap costs a copy out and in, and the resume recomputes the partial last block
    that a preserved session keeps. Decisions are re-made every tick, so a request preserved
    while the pool had room is swapped or discarded as soon as demand appears."""
    if memory_in_demand(batch):
        return infercept(paused, batch, cm)
    return [Handling(p.request_id, Strategy.PRESERVE, *waste_figures(p, batch, cm)) for p in paused]


def infercept_code(paused: list[PausedRequest], batch: BatchState, cm: CostModel) -> list[Handling]:
    """The released code's variant: everyone starts preserved; each iteration the candidates whose
    discard waste is below their preserve waste are discarded, except the one with the highest
    discard waste, which is swapped out when the budget takes it (the code swaps it partially;
    our swap moves whole requests), else kept."""
    scored = [(p, *waste_figures(p, batch, cm)) for p in paused]
    candidates = [s for s in scored if s[2] < s[1]]
    spared = max(candidates, key=lambda s: (s[2], s[0].request_id))[0].request_id if candidates else None
    out = []
    for p, wp, wd, ws in scored:
        if p.request_id == spared:
            strategy = Strategy.SWAP if p.context_tokens <= batch.swap_budget_tokens else Strategy.PRESERVE
        else:
            strategy = Strategy.DISCARD if wd < wp else Strategy.PRESERVE
        out.append(Handling(p.request_id, strategy, wp, wd, ws))
    return out


Decide = Callable[[list[PausedRequest], BatchState, CostModel], list[Handling]]


def _always(strategy: Strategy) -> Decide:
    def policy(paused: list[PausedRequest], batch: BatchState, cm: CostModel) -> list[Handling]:
        return [Handling(p.request_id, strategy, *waste_figures(p, batch, cm)) for p in paused]

    policy.__name__ = f"always_{strategy}"
    return policy


def _continuum(paused: list[PausedRequest], batch: BatchState, cm: CostModel) -> list[Handling]:
    # Imported on call: continuum.py builds on this module's types, so a top-level import would be circular.
    from engine_worker.policies.continuum import pin_with_ttl

    return pin_with_ttl(paused, batch, cm)


def _fastserve(paused: list[PausedRequest], batch: BatchState, cm: CostModel) -> list[Handling]:
    # Imported on call, as _continuum: fastserve_offload.py builds on this module's types.
    from engine_worker.policies.fastserve_offload import offload_ahead

    return offload_ahead(paused, batch, cm)


@dataclass(frozen=True)
class HandlingPolicy:
    """A registered policy: its decision (called like the function it wraps) and what the
    mechanism asks of it beyond that."""

    decide: Decide
    requeue_at_back: bool = False
    """A request resumed after its KV was discarded re-enters the queue at the back, as a new one
    (stock vLLM's behaviour), instead of at its ORIGINAL arrival (engine_worker/session.py)."""

    def __call__(self, paused: list[PausedRequest], batch: BatchState, cm: CostModel) -> list[Handling]:
        return self.decide(paused, batch, cm)


class PolicyName(StrEnum):
    """The handling policies by name (the worker's AUGSERVE_POLICY): the keys of POLICIES."""

    PRESERVE = "preserve"
    VLLM = "vllm"
    IMPROVED_DISCARD = "improved-discard"
    SWAP = "swap"
    INFERCEPT = "infercept"
    INFERCEPT_ON_DEMAND = "infercept-on-demand"
    INFERCEPT_CODE = "infercept-code"
    CONTINUUM = "continuum"
    FASTSERVE = "fastserve"


POLICIES: dict[PolicyName, HandlingPolicy] = {
    PolicyName.INFERCEPT: HandlingPolicy(infercept),
    PolicyName.INFERCEPT_ON_DEMAND: HandlingPolicy(infercept_on_demand),  # InferCept's rule while memory is in demand
    PolicyName.INFERCEPT_CODE: HandlingPolicy(infercept_code),
    PolicyName.VLLM: HandlingPolicy(_always(Strategy.DISCARD), requeue_at_back=True),  # as a new request (queue order)
    PolicyName.IMPROVED_DISCARD: HandlingPolicy(_always(Strategy.DISCARD)),  # re-queued at the front (original arrival)
    PolicyName.PRESERVE: HandlingPolicy(_always(Strategy.PRESERVE)),
    PolicyName.SWAP: HandlingPolicy(_always(Strategy.SWAP)),
    PolicyName.CONTINUUM: HandlingPolicy(_continuum),  # pinned for a TTL, then evicted (continuum.py)
    # preserved; the latest to resume swapped out ahead of need (fastserve_offload.py)
    PolicyName.FASTSERVE: HandlingPolicy(_fastserve),
}
