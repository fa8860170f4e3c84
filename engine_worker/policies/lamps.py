"""LAMPS: memory-over-time ranking with a predicted handling strategy (LAMPS, arXiv 2410.18248).

Per segment of a request (at arrival, and again after each call) it predicts what the intercept
policy will do with its KV during the coming call, min(preserve, chunked discard, swap) waste from
the predicted pre-call output length and call duration, and scores the request by the memory it
will hold over that span, in bytes x seconds:
  - generating o tokens from context C0, one decode step each: step_s * M * sum_{i=1..o} (C0 + i)
  - during the call, under the predicted strategy: that strategy's waste (waste.py): preserve holds
    C*M for the call, discard/swap cost their recompute/copy stall instead.
Waiting and paused (swapped) requests are ranked smallest score first; running requests stay
first, in FCFS order (LAMPS does not preempt for rank). Scores are cached per segment and the
order is recomputed only every `resort_every` iterations (the paper's overhead cut); in between,
the last order is reused and newcomers go after it in FCFS order.

Starvation: each iteration in which a waiting request does not run while others do adds one to its
counter; past `starvation_threshold` it is promoted ahead of every other waiting request for
`starvation_quantum` iterations (LAMPS' code: 100 and 100000). The promotion lands at the next
re-sort, so a waiting request reaches the front within threshold + resort_every iterations.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from common.schemas import Strategy
from engine_worker.policies import waste
from engine_worker.policies.cost_model import CostModel
from engine_worker.policies.output_length import DEFAULT_TOKENS
from engine_worker.policies.queue_order import QueuedRequest, check_unique, fcfs_key

STARVATION_THRESHOLD = 100
STARVATION_QUANTUM = 100_000
SERVING_STARVATION_THRESHOLD = 1000
"""The worker's default when it runs LAMPS (WorkerSettings): the code's 100 iterations are ~2-5 s
on a GPU but ~10 s on this machine's ~100 ms CPU steps, and promotion is FCFS for 100,000
iterations, so at 100 every request that waited 10 s queues in arrival order again and the
ranking is gone under exactly the load it is for. 1000 (~100 s here) still bounds the wait."""


@dataclass(frozen=True)
class SegmentScore:
    """What LAMPS predicted for one segment of a request; loggable as is."""
    strategy: Strategy | None
    """None: no call expected, the request runs to completion."""
    waste_preserve: float
    waste_discard: float
    waste_swap: float
    memory_over_time: float


def decode_memory_over_time(context_tokens: int, output_tokens: int, step_s: float, kv_bytes_per_token: int) -> float:
    """KV held while generating `output_tokens` one step at a time from `context_tokens`."""
    o = output_tokens
    return step_s * kv_bytes_per_token * (o * context_tokens + o * (o + 1) / 2)


def score_segment(s: QueuedRequest, running_context_tokens: int, cm: CostModel, step_s: float,
                  default_output_tokens: int = DEFAULT_TOKENS, allow_swap: bool = True) -> SegmentScore:
    # A paused request is inside its call: nothing left to generate before it.
    output = 0 if s.state == "paused" else (s.predicted_output_tokens if s.predicted_output_tokens is not None
                                            else default_output_tokens)
    before = decode_memory_over_time(s.context_tokens, output, step_s, cm.kv_bytes_per_token)
    if s.predicted_call_s is None:
        return SegmentScore(None, 0.0, 0.0, 0.0, before)
    at_call = s.context_tokens + output
    wp = waste.preserve(s.predicted_call_s, at_call, cm)
    wd = waste.chunked_discard(at_call, running_context_tokens, cm)
    ws = waste.swap(at_call, running_context_tokens + at_call, cm)
    options: list[tuple[float, Strategy]] = [(wp, Strategy.PRESERVE), (wd, Strategy.DISCARD)]
    if allow_swap:
        options.append((ws, Strategy.SWAP))
    during, strategy = min(options)  # ties: the name decides, so the choice is deterministic
    return SegmentScore(strategy, wp, wd, ws, before + during)


class Lamps:
    def __init__(self, cost_model: CostModel, resort_every: int = 1, starvation_threshold: int = STARVATION_THRESHOLD,
                 starvation_quantum: int = STARVATION_QUANTUM, step_s: float | None = None,
                 default_output_tokens: int = DEFAULT_TOKENS, allow_swap: bool = True):
        if resort_every < 1 or starvation_threshold < 0 or starvation_quantum < 1:
            raise ValueError("resort_every and starvation_quantum must be at least 1, the threshold non-negative")
        self.cost_model = cost_model
        self.resort_every = resort_every
        self.starvation_threshold = starvation_threshold
        self.starvation_quantum = starvation_quantum
        # A saturated step by default: only the ratio to call-time waste matters for the ranking.
        self.step_s = step_s if step_s is not None else cost_model.fwd_s(cost_model.saturation_tokens)
        self.default_output_tokens = default_output_tokens
        self.allow_swap = allow_swap
        self._scores: dict[tuple[str, int], SegmentScore] = {}
        self._passed_over: dict[str, int] = {}
        self._promoted_left: dict[str, int] = {}
        """Iterations of promotion left, per promoted request."""
        self._waiting: set[str] = set()
        """Waiting as of the last snapshot: who can be passed over."""
        self._last_order: list[str] | None = None
        self._iterations_since_sort = 0
        self.sorts = 0
        """Times the order was recomputed (the cadence is observable)."""

    def score(self, s: QueuedRequest, running_context_tokens: int) -> SegmentScore:
        key = (s.request_id, s.calls_done)
        if key not in self._scores:
            self._scores[key] = score_segment(s, running_context_tokens, self.cost_model, self.step_s,
                                              self.default_output_tokens, self.allow_swap)
        return self._scores[key]

    def is_promoted(self, request_id: str) -> bool:
        return request_id in self._promoted_left

    def order(self, snapshots: Sequence[QueuedRequest], now: float) -> list[str]:
        check_unique(snapshots)
        present = {s.request_id for s in snapshots}
        self._forget_absent(present)
        self._waiting = {s.request_id for s in snapshots if s.state == "waiting"}
        if self._last_order is not None and self._iterations_since_sort < self.resort_every:
            kept = [rid for rid in self._last_order if rid in present]
            known = set(kept)
            newcomers = sorted((s for s in snapshots if s.request_id not in known), key=fcfs_key)
            self._last_order = kept + [s.request_id for s in newcomers]
            return list(self._last_order)
        for s in snapshots:
            if s.state == "waiting" and s.request_id not in self._promoted_left \
                    and self._passed_over.get(s.request_id, 0) > self.starvation_threshold:
                self._promoted_left[s.request_id] = self.starvation_quantum
        running_context = sum(s.context_tokens for s in snapshots if s.state == "running")
        running = sorted((s for s in snapshots if s.state == "running"), key=fcfs_key)
        promoted = sorted((s for s in snapshots if s.state != "running" and s.request_id in self._promoted_left),
                          key=fcfs_key)
        ranked = sorted((s for s in snapshots if s.state != "running" and s.request_id not in self._promoted_left),
                        key=lambda s: (self.score(s, running_context).memory_over_time, *fcfs_key(s)))
        self._last_order = [s.request_id for s in (*running, *promoted, *ranked)]
        self._iterations_since_sort = 0
        self.sorts += 1
        return list(self._last_order)

    def observe(self, ran: Mapping[str, float], now: float) -> None:
        self._iterations_since_sort += 1
        for request_id in list(self._promoted_left):
            self._promoted_left[request_id] -= 1
            if self._promoted_left[request_id] <= 0:
                del self._promoted_left[request_id]
                self._passed_over.pop(request_id, None)
        for request_id in ran:
            self._passed_over.pop(request_id, None)
            self._waiting.discard(request_id)
        if ran:
            for request_id in self._waiting:
                self._passed_over[request_id] = self._passed_over.get(request_id, 0) + 1

    def _forget_absent(self, present: set[str]) -> None:
        self._scores = {k: v for k, v in self._scores.items() if k[0] in present}
        self._passed_over = {k: v for k, v in self._passed_over.items() if k in present}
        self._promoted_left = {k: v for k, v in self._promoted_left.items() if k in present}
