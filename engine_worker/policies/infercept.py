"""InferCept's rule (arXiv 2402.01869) and two variants: the `infercept`, `infercept-on-demand` and
`infercept-code` handling policies (handling.POLICIES)."""

from __future__ import annotations

from common.schemas import Strategy
from engine_worker.policies.cost_model import CostModel
from engine_worker.policies.handling_types import BatchState, Handling, PausedRequest, waste_figures


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
