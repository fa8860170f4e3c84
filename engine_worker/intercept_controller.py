"""Applies the handling policy to this worker's paused requests, re-evaluated every tick.

Mechanism only: it snapshots the paused requests into frozen PausedRequest values, asks the
configured policy (engine_worker/policies) for decisions, and carries out the ones that change
something. A paused request starts preserved (its vLLM session holds its KV); a discard or swap
decision sets `released_as` and its `release` event, and the owning session then ends its vLLM
request: a discard returns the blocks to the pool (full blocks stay in the prefix cache until
evicted), a swap has the KV connector copy them to the host buffer first (engine_worker/engine_core/kv_swap).
Both are one-way for the pause: the resumed request recomputes or loads its context.

The policy's swap budget per tick is what one forward step of the running batch can hide
(T_swap(n) = T_fwd(batch)), capped by the room left in the host buffer; a swap decision that
does not fit the buffer keeps the request preserved.

Pool-aware policies (`fastserve`) also get the pool's free blocks and the reserve to keep. The
engine reports usage only as of its last step, and a released request's blocks return to the pool
a few steps after the release (the abort reaches the engine core, a swap's copy-out completes); an
idle engine does not step at all. Until the engine has stepped past that point, the released
blocks are counted as free already, so one release is not answered by another every tick.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from common.schemas import Strategy
from engine_worker.policies.cost_model import CostModel
from engine_worker.policies.duration import DurationMode, expected_duration
from engine_worker.policies.handling import POLICIES, PolicyName
from engine_worker.policies.handling_types import BatchState, Handling, PausedRequest
from engine_worker.policies.kv_offload import blocks_for

log = logging.getLogger(__name__)

HIGH_KV_USAGE = 0.9
"""Above this pool usage a discarded request's blocks are assumed evicted before it resumes."""
SETTLE_STEPS = 3
"""Engine steps between a release and its blocks showing as free, beyond a swap's copy steps."""


@dataclass
class Paused:
    request_id: str
    api: str
    context_tokens: int
    started: float
    oracle_s: float | None
    release: asyncio.Event = field(default_factory=asyncio.Event)
    released_as: Strategy | None = None
    """DISCARD or SWAP once released."""
    decision: Handling | None = None
    predicted_s: float = 0.0
    freed_by_step: int = 0
    """Once released: the engine step by which its blocks are back in the pool (see free_blocks)."""

    @property
    def strategy(self) -> Strategy:
        return self.released_as or Strategy.PRESERVE


class InterceptController:
    def __init__(self, policy: PolicyName, cost_model: CostModel, duration_mode: DurationMode, block_size: int,
                 running_context: Callable[[], int], kv_usage: Callable[[], float],
                 history_remaining: Callable[[str, float], float] | None = None, interval_s: float = 0.05,
                 swap_capacity_tokens: int = 0, clock: Callable[[], float] = time.monotonic,
                 total_blocks: int = 0, reserve_blocks: int = 0, engine_steps: Callable[[], int] = lambda: 0,
                 engine_queue: Callable[[], tuple[int, int]] = lambda: (0, 0)):
        self.policy = POLICIES[policy]
        """The handling policy: its decisions, and what the mechanism asks of it (requeue_at_back)."""
        self.cost_model = cost_model
        self._mode = duration_mode
        self._block_size = block_size
        self._running_context = running_context
        self._kv_usage = kv_usage
        self._history_remaining = history_remaining
        self._interval_s = interval_s
        self._swap_capacity_tokens = swap_capacity_tokens
        self._clock = clock
        self.total_blocks = total_blocks
        """Usable blocks of the KV pool (vLLM's num_gpu_blocks less its null block)."""
        self.reserve_blocks = reserve_blocks
        self._engine_steps = engine_steps
        self._engine_queue = engine_queue
        """(running, waiting) requests in the engine as of its last step."""
        self._paused: dict[str, Paused] = {}

    def pause(self, request_id: str, api: str, context_tokens: int, oracle_s: float | None) -> Paused:
        entry = Paused(request_id, api, context_tokens, self._clock(), oracle_s)
        self._paused[request_id] = entry
        self.tick()  # decide at once: baselines discard on the spot
        return entry

    def resume(self, entry: Paused) -> None:
        self._paused.pop(entry.request_id, None)

    def is_paused(self, request_id: str) -> bool:
        return request_id in self._paused

    def paused_count(self) -> int:
        return len(self._paused)

    def counts(self) -> dict[Strategy, int]:
        out = dict.fromkeys(Strategy, 0)
        for entry in self._paused.values():
            out[entry.strategy] += 1
        return out

    def _snapshot(self, entry: Paused, now: float) -> PausedRequest:
        elapsed = now - entry.started
        remaining = (self._history_remaining(entry.api, elapsed)
                     if self._mode == "history" and self._history_remaining else None)
        entry.predicted_s = expected_duration(self._mode, elapsed, remaining, entry.oracle_s)
        full_blocks = entry.context_tokens // self._block_size * self._block_size
        cached = full_blocks if self._kv_usage() < HIGH_KV_USAGE else 0
        total = entry.oracle_s if self._mode == "oracle" else (elapsed + remaining if remaining is not None else None)
        return PausedRequest(entry.request_id, entry.context_tokens, entry.predicted_s, cached,
                             elapsed_s=elapsed, predicted_duration_s=total)

    def tick(self) -> list[Handling]:
        now = self._clock()
        candidates = [e for e in self._paused.values() if not e.release.is_set()]
        if not candidates:
            return []
        running = self._running_context()
        room = self.swap_room_tokens()
        step_budget = self.cost_model.swap_budget_tokens(running)
        running_requests, waiting_requests = self._engine_queue()
        batch = BatchState(running_context_tokens=running, swap_budget_tokens=min(room, step_budget),
                           free_blocks=self.free_blocks(), reserve_blocks=self.reserve_blocks,
                           block_size=self._block_size, waiting_requests=waiting_requests,
                           running_requests=running_requests)
        decisions = self.policy([self._snapshot(e, now) for e in candidates], batch, self.cost_model)
        for decision in decisions:
            entry = self._paused[decision.request_id]
            entry.decision = decision
            if decision.strategy == Strategy.SWAP:
                if entry.context_tokens > room:
                    continue  # the host buffer cannot take it: it stays preserved
                room -= entry.context_tokens
            if decision.strategy in (Strategy.DISCARD, Strategy.SWAP):
                entry.released_as = decision.strategy
                entry.release.set()
                # The abort lands within a step or two; a swap then copies out within the budget
                # of each step, and vLLM frees the blocks the step after the copy completes.
                swap = decision.strategy == Strategy.SWAP
                copy_steps = -(-entry.context_tokens // max(1, step_budget)) if swap else 0
                entry.freed_by_step = self._engine_steps() + SETTLE_STEPS + copy_steps
        return decisions

    def free_blocks(self) -> int:
        """Free blocks of the pool as the engine last reported them, plus the blocks of requests
        released since that the engine has not yet been seen to free."""
        reported = round(self.total_blocks * (1.0 - self._kv_usage()))
        step = self._engine_steps()
        pending = sum(blocks_for(e.context_tokens, self._block_size) for e in self._paused.values()
                      if e.released_as is not None and step < e.freed_by_step)
        return max(0, min(self.total_blocks, reported + pending))

    def swap_room_tokens(self) -> int:
        """Tokens the host buffer can still take (swapped requests hold theirs until resumed)."""
        held = sum(e.context_tokens for e in self._paused.values() if e.released_as == Strategy.SWAP)
        return max(0, self._swap_capacity_tokens - held)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            try:
                self.tick()
            except Exception:
                log.exception("policy tick failed; paused requests stay as they are")
