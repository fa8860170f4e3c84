"""A simulated request's mutable state, private to the engine (sim/engine.py)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Literal

from common.schemas import Strategy
from engine_worker.policies.handling_types import Handling
from engine_worker.policies.queue_order import QueuedRequest
from sim.workload import SimRequest, SimSegment

KvPlace = Literal["none", "device", "out", "host", "in", "gone"]
"""none: never computed; device: blocks held; out/in: copying to/from the host buffer; host: all
on host; gone: freed (discarded, preempted or finished; the prefix cache may still hold blocks)."""

_order = itertools.count()


@dataclass
class Interception:
    api: str
    started_s: float
    returns_s: float
    api_s: float
    """The call's own run time (what normalized latency subtracts)."""
    context_tokens: int
    returned_tokens: int
    strategy: Strategy = Strategy.PRESERVE
    decision: Handling | None = None
    recomputed_tokens: int = 0
    resumed_s: float | None = None
    """When its request first ran again after the call."""


@dataclass(eq=False)
class ReqState:
    req: SimRequest
    phase: Literal["pending", "waiting", "running", "paused", "done"] = "pending"
    kv: KvPlace = "none"
    seg: int = 0
    seg_generated: int = 0
    generated: int = 0
    context: int = 0
    computed: int = 0
    blocks: list[int] = field(default_factory=list)
    swap_left: int = 0
    swapped_tokens: int = 0
    calls_done: int = 0
    queue_arrival_s: float = 0.0
    """Arrival as the queue order sees it: the original one, or the resubmission for `vllm`."""
    enqueued_s: float | None = None
    last_ran_s: float | None = None
    running_since_s: float | None = None
    attained_s: float = 0.0
    call_started_s: float = 0.0
    context_at_pause: int = 0
    first_token_s: float | None = None
    end_s: float | None = None
    preempt_recomputed: int = 0
    interceptions: list[Interception] = field(default_factory=list)
    order_key: int = field(default_factory=lambda: next(_order))
    snapshot_key: tuple | None = None
    snapshot: QueuedRequest | None = None
    """The last queue-order snapshot and what it was built from (rebuilt only when that changes)."""

    def __post_init__(self) -> None:
        self.context = self.req.prompt_tokens

    @property
    def id(self) -> str:
        return self.req.request_id

    @property
    def segment(self) -> SimSegment:
        return self.req.segments[self.seg]

    def __lt__(self, other: ReqState) -> bool:  # heap ties
        return self.order_key < other.order_key
