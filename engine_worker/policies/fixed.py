"""The fixed handling policies: every paused request gets the same strategy (`preserve`, `vllm`,
`improved-discard`, `swap` in handling.POLICIES)."""

from __future__ import annotations

from common.schemas import Strategy
from engine_worker.policies.cost_model import CostModel
from engine_worker.policies.handling_types import BatchState, Decide, Handling, PausedRequest, waste_figures


def always(strategy: Strategy) -> Decide:
    def policy(paused: list[PausedRequest], batch: BatchState, cm: CostModel) -> list[Handling]:
        return [Handling(p.request_id, strategy, *waste_figures(p, batch, cm)) for p in paused]

    policy.__name__ = f"always_{strategy}"
    return policy
