"""Continuum (arXiv 2511.02230): pin a paused request's KV for a time-to-live.

TTL as rent-or-buy. Holding the KV of a paused request costs C*M bytes for every second of the
call (preserve waste grows linearly); letting it go costs a fixed amount once the call returns:
the reload (min of chunked-recompute and, within the swap budget, swap waste) plus the queueing
benefit pinning preserves (a request whose KV is gone waits `requeue_delay_s` to be re-admitted,
counted as its KV held idle for that long, C*M*requeue_delay_s). The break-even hold time is
    break_even_s = (reload waste + C*M*requeue_delay_s) / (C*M)
Pinning for longer than that always costs more than evicting at once would have. With a
predicted call duration: a call predicted to return within break-even is pinned for break-even
(it survives a modest overrun; past break-even evicting was right in hindsight); a call predicted
to run longer is evicted at once. Expired pins are evicted: swapped (largest context first, while
the swap budget lasts, when swap wastes less than discard), else discarded.

Its queue order, program-level FCFS, is policies/program_fcfs.py.
"""

from __future__ import annotations

from common.schemas import Strategy
from engine_worker.policies import waste
from engine_worker.policies.cost_model import CostModel
from engine_worker.policies.handling_types import BatchState, Handling, PausedRequest


def _reload_waste(p: PausedRequest, batch: BatchState, cm: CostModel, swap_fits: bool) -> tuple[float, float, float]:
    """(discard waste, swap waste, the cheaper usable one)."""
    wd = waste.chunked_discard(p.context_tokens, batch.running_context_tokens, cm, cached=p.cached_tokens)
    ws = waste.swap(p.context_tokens, batch.running_context_tokens + p.context_tokens, cm)
    return wd, ws, min(wd, ws) if swap_fits else wd


def break_even_s(p: PausedRequest, batch: BatchState, cm: CostModel) -> float:
    held_bytes = p.context_tokens * cm.kv_bytes_per_token
    if held_bytes <= 0:
        return 0.0
    _, _, reload = _reload_waste(p, batch, cm, swap_fits=p.context_tokens <= batch.swap_budget_tokens)
    return reload / held_bytes + p.requeue_delay_s


def ttl_s(p: PausedRequest, batch: BatchState, cm: CostModel) -> float:
    """How long its KV stays pinned from the start of the call; 0: evict at once."""
    predicted = p.predicted_duration_s if p.predicted_duration_s is not None else p.expected_duration_s
    limit = break_even_s(p, batch, cm)
    return limit if predicted <= limit else 0.0


def pin_with_ttl(paused: list[PausedRequest], batch: BatchState, cm: CostModel) -> list[Handling]:
    """The 'continuum' handling policy (handling.POLICIES)."""
    budget = batch.swap_budget_tokens
    out: dict[str, Handling] = {}
    expired = []
    for p in paused:
        wp = waste.preserve(p.expected_duration_s, p.context_tokens, cm)
        wd, ws, _ = _reload_waste(p, batch, cm, swap_fits=False)
        if p.elapsed_s < ttl_s(p, batch, cm):
            out[p.request_id] = Handling(p.request_id, Strategy.PRESERVE, wp, wd, ws)
        else:
            expired.append((p, wp, wd, ws))
    # Largest first: it frees the most memory per swap decision.
    expired.sort(key=lambda e: (-e[0].context_tokens, e[0].request_id))
    for p, wp, wd, ws in expired:
        strategy = Strategy.DISCARD
        if p.context_tokens <= budget and ws < wd:
            budget -= p.context_tokens
            strategy = Strategy.SWAP
        out[p.request_id] = Handling(p.request_id, strategy, wp, wd, ws)
    return [out[p.request_id] for p in paused]
