"""FastServe's skip-join multi-level feedback queue (FastServe, arXiv 2305.05920).

Queue i has quantum q0 * 2^i. A new request skips the queues whose quantum is shorter than its
prefill (profiled forward time of its context): a long prompt would use up a short quantum in its
first iteration anyway. Compute time received at a level counts against that level's quantum; once
it is used up the request drops one level (the remainder carries into the next level, so a long
step can drop it several). A WAITING request not served for `starvation_s` goes back to the top.
Order: level, then original arrival. Paused requests keep their level (the call is not service)
and are never promoted (they wait on the API, not on the scheduler); their rank still matters
for which KV to offload (kv_offload.py). A request away at a call after its KV was discarded or
swapped is missing from the snapshots for the call's length: its level is kept for `memory_s`
after it was last seen, so it comes back where it left, not at its skip-join level.

MLFQ is preemptive: a job that used up its quantum falls below newer ones and gives them its
slot (`preemptive`: the engine's scheduler then hands running slots over by rank,
preemption.py). `preempt=False` keeps the levels for admission only. FastServe swaps a preempted
job's KV to host memory; vLLM's preemption frees it, so the job recomputes its context when it
runs again. Left unchecked that thrashes: on this CPU a 200-token context costs ~0.7 s to
recompute, far above the 10 ms top quantum, and under load every step would preempt someone
(measured: 1.9 tokens/s against FCFS's 22.6 at 1 req/s with two running slots). So a running job
can be preempted only once it has run `min_slice_recomputes` times its recompute cost since it
was (re-)admitted (`preemptible`): recomputation then stays a bounded share of its run time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from engine_worker.policies.cost_model import CostModel
from engine_worker.policies.queue_order import QueuedRequest, check_unique, fcfs_key

Q0_S = 0.01
"""FastServe's code: 10 ms quantum at the top level."""
STARVATION_CODE_S = 3.0
"""The released code's promotion threshold (checked every 1000 iterations there, every `order` here)."""
STARVATION_PAPER_S = 0.3
"""The paper notes' 300 ms: the issue reports both."""
QUANTUM_SLACK_S = 1e-9
"""Summed float step times land a hair under a quantum they exactly fill: count those as spent."""
NUM_LEVELS = 16
"""The code creates queues on demand; a cap keeps the level finite (q0 * 2^15 is ~5 minutes)."""
MIN_SLICE_RECOMPUTES = 4.0
"""Ours: a preempted job's recompute is at most a quarter of the slice it ran before it."""
MEMORY_S = 900.0
"""How long the level of a request missing from the snapshots is kept (it may be at a call)."""


@dataclass
class _LevelState:
    """Mutable per-request bookkeeping, private to the policy."""
    level: int
    used_s: float = 0.0
    """Compute received at the current level."""
    starvation_clock_s: float | None = None
    """When its waiting clock last restarted: it ran, or it was promoted."""


class FastServe:
    def __init__(self, cost_model: CostModel, q0_s: float = Q0_S, starvation_s: float = STARVATION_CODE_S,
                 num_levels: int = NUM_LEVELS, preempt: bool = True, memory_s: float = MEMORY_S,
                 min_slice_recomputes: float = MIN_SLICE_RECOMPUTES):
        if q0_s <= 0 or starvation_s <= 0 or num_levels < 1 or memory_s < 0 or min_slice_recomputes < 0:
            raise ValueError("q0_s and starvation_s must be positive, num_levels at least 1, memory_s and "
                             "min_slice_recomputes non-negative")
        self.cost_model = cost_model
        self.q0_s = q0_s
        self.starvation_s = starvation_s
        self.num_levels = num_levels
        self.preemptive = preempt
        self.min_slice_recomputes = min_slice_recomputes
        self.memory_s = memory_s
        self._states: dict[str, _LevelState] = {}
        self._last_seen: dict[str, float] = {}
        self._unseen: dict[str, tuple[float, float]] = {}
        """Service observed before the request's first snapshot: (seconds, when)."""

    def quantum_s(self, level: int) -> float:
        return self.q0_s * 2 ** level

    def join_level(self, context_tokens: int) -> int:
        """Skip-join: the first level whose quantum covers the prefill."""
        prefill_s = self.cost_model.fwd_s(context_tokens)
        for level in range(self.num_levels):
            if self.quantum_s(level) >= prefill_s:
                return level
        return self.num_levels - 1

    def preemptible(self, computed_tokens: int, running_for_s: float) -> bool:
        """May a job that has run `running_for_s` since its admission, with `computed_tokens` of
        KV that preemption would throw away, give up its slot now?"""
        return running_for_s >= self.min_slice_recomputes * self.cost_model.fwd_s(computed_tokens)

    def level_of(self, request_id: str) -> int | None:
        state = self._states.get(request_id)
        return None if state is None else state.level

    def order(self, snapshots: Sequence[QueuedRequest], now: float) -> list[str]:
        check_unique(snapshots)
        for s in snapshots:
            self._last_seen[s.request_id] = now
        for rid in [rid for rid, seen in self._last_seen.items() if now - seen > self.memory_s]:
            del self._last_seen[rid]
            self._states.pop(rid, None)
        for s in snapshots:
            state = self._states.get(s.request_id)
            if state is None:
                state = self._states[s.request_id] = _LevelState(self.join_level(s.context_tokens))
                seconds, when = self._unseen.pop(s.request_id, (0.0, None))
                self._charge(state, seconds, when)
            if s.state == "waiting" and now - self._waiting_since(s, state) >= self.starvation_s:
                state.level, state.used_s = 0, 0.0
                # Restart its waiting clock so it is not re-promoted after every later demotion.
                state.starvation_clock_s = now
        self._unseen.clear()
        return [s.request_id for s in sorted(snapshots, key=lambda s: (self._states[s.request_id].level, *fcfs_key(s)))]

    def observe(self, ran: Mapping[str, float], now: float) -> None:
        for request_id, seconds in ran.items():
            state = self._states.get(request_id)
            if state is None:
                before, _ = self._unseen.get(request_id, (0.0, now))
                self._unseen[request_id] = (before + seconds, now)
            else:
                self._charge(state, seconds, now)

    def _charge(self, state: _LevelState, seconds: float, when: float | None) -> None:
        state.used_s += seconds
        while state.used_s >= self.quantum_s(state.level) - QUANTUM_SLACK_S and state.level < self.num_levels - 1:
            state.used_s = max(0.0, state.used_s - self.quantum_s(state.level))
            state.level += 1
        if when is not None:
            state.starvation_clock_s = when

    @staticmethod
    def _waiting_since(s: QueuedRequest, state: _LevelState) -> float:
        return (s.waiting_since_s if state.starvation_clock_s is None
                else max(s.waiting_since_s, state.starvation_clock_s))
