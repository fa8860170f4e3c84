"""What each paused request's KV gets this iteration (preserve, discard or swap): the handling
policies by name.

Policies are registered by name (PolicyName, the type of the worker's `policy` setting): adding
one adds a module (over handling_types.py's snapshots) and an entry here, not a branch in the engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from common.schemas import Strategy
from engine_worker.policies.continuum import pin_with_ttl
from engine_worker.policies.cost_model import CostModel
from engine_worker.policies.fastserve_offload import offload_ahead
from engine_worker.policies.fixed import always
from engine_worker.policies.handling_types import BatchState, Decide, Handling, PausedRequest
from engine_worker.policies.infercept import infercept, infercept_code, infercept_on_demand


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
    PolicyName.VLLM: HandlingPolicy(always(Strategy.DISCARD), requeue_at_back=True),  # as a new request (queue order)
    PolicyName.IMPROVED_DISCARD: HandlingPolicy(always(Strategy.DISCARD)),  # re-queued at the front (original arrival)
    PolicyName.PRESERVE: HandlingPolicy(always(Strategy.PRESERVE)),
    PolicyName.SWAP: HandlingPolicy(always(Strategy.SWAP)),
    PolicyName.CONTINUUM: HandlingPolicy(pin_with_ttl),  # pinned for a TTL, then evicted (continuum.py)
    # preserved; the latest to resume swapped out ahead of need (fastserve_offload.py)
    PolicyName.FASTSERVE: HandlingPolicy(offload_ahead),
}
