"""Applies the handling policy to this worker's paused requests, re-evaluated every tick.

Mechanism only: it snapshots the paused requests into frozen PausedRequest values, asks the
configured policy (engine_worker/policies) for decisions, and carries out the ones that change
something. A paused request starts preserved (its vLLM session holds its KV); a discard decision
sets its `release` event, and the owning session then ends its vLLM request, returning the blocks
to the pool (full blocks stay in the prefix cache until evicted). Discard is one-way: a discarded
request is recomputed when it resumes. Swap needs a KV connector and is not built yet: the swap
budget handed to the policy is 0, so `infercept` chooses between preserve and discard.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from engine_worker.policies.cost_model import CostModel
from engine_worker.policies.duration import DurationMode, expected_duration
from engine_worker.policies.handling import POLICIES, BatchState, Handling, PausedRequest

log = logging.getLogger(__name__)

HIGH_KV_USAGE = 0.9
"""Above this pool usage a discarded request's blocks are assumed evicted before it resumes."""


@dataclass
class Paused:
    request_id: str
    api: str
    context_tokens: int
    started: float
    oracle_s: float | None
    release: asyncio.Event = field(default_factory=asyncio.Event)
    decision: Handling | None = None
    predicted_s: float = 0.0

    @property
    def strategy(self) -> str:
        return "discard" if self.release.is_set() else "preserve"


class InterceptController:
    def __init__(self, policy: str, cost_model: CostModel, duration_mode: DurationMode, block_size: int,
                 running_context: Callable[[], int], kv_usage: Callable[[], float],
                 history_remaining: Callable[[str, float], float] | None = None, interval_s: float = 0.05,
                 clock: Callable[[], float] = time.monotonic):
        self._decide = POLICIES[policy]
        self.policy = policy
        self.cost_model = cost_model
        self._mode = duration_mode
        self._block_size = block_size
        self._running_context = running_context
        self._kv_usage = kv_usage
        self._history_remaining = history_remaining
        self._interval_s = interval_s
        self._clock = clock
        self._paused: dict[str, Paused] = {}

    def pause(self, request_id: str, api: str, context_tokens: int, oracle_s: float | None) -> Paused:
        entry = Paused(request_id, api, context_tokens, self._clock(), oracle_s)
        self._paused[request_id] = entry
        self.tick()  # decide at once: baselines discard on the spot
        return entry

    def resume(self, entry: Paused) -> None:
        self._paused.pop(entry.request_id, None)

    def counts(self) -> dict[str, int]:
        out = {"preserve": 0, "discard": 0}
        for entry in self._paused.values():
            out[entry.strategy] += 1
        return out

    def _snapshot(self, entry: Paused, now: float) -> PausedRequest:
        elapsed = now - entry.started
        remaining = self._history_remaining(entry.api, elapsed) if self._mode == "history" and self._history_remaining else None
        entry.predicted_s = expected_duration(self._mode, elapsed, remaining, entry.oracle_s)
        full_blocks = entry.context_tokens // self._block_size * self._block_size
        cached = full_blocks if self._kv_usage() < HIGH_KV_USAGE else 0
        return PausedRequest(entry.request_id, entry.context_tokens, entry.predicted_s, cached)

    def tick(self) -> list[Handling]:
        now = self._clock()
        candidates = [e for e in self._paused.values() if not e.release.is_set()]
        if not candidates:
            return []
        batch = BatchState(running_context_tokens=self._running_context(), swap_budget_tokens=0)
        decisions = self._decide([self._snapshot(e, now) for e in candidates], batch, self.cost_model)
        for decision in decisions:
            entry = self._paused[decision.request_id]
            entry.decision = decision
            if decision.strategy == "discard":
                entry.release.set()
        return decisions

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            try:
                self.tick()
            except Exception:
                log.exception("policy tick failed; paused requests stay as they are")
