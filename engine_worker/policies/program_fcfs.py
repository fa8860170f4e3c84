"""Continuum's queue order (arXiv 2511.02230), program-level FCFS: every request of a program is
ordered by the program's FIRST arrival (kept after the program's earlier requests finish), so a
multi-turn agent is not sent to the back of the queue at each turn; then by the request's own
arrival. Its handling policy, TTL pinning, is policies/continuum.py.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from engine_worker.policies.queue_order import QueuedRequest, check_unique, fcfs_key

PROGRAM_MEMORY_S = 3600.0
"""How long a program's first arrival is remembered after its last request was seen."""


class ProgramFcfs:
    """Queue order: program's first arrival, then the request's arrival, then id."""

    def __init__(self, program_memory_s: float = PROGRAM_MEMORY_S):
        self.program_memory_s = program_memory_s
        self._first_arrival: dict[str, float] = {}
        self._last_seen: dict[str, float] = {}

    def program_arrival(self, program: str) -> float | None:
        return self._first_arrival.get(program)

    def order(self, snapshots: Sequence[QueuedRequest], now: float) -> list[str]:
        check_unique(snapshots)
        for s in snapshots:
            first = self._first_arrival.get(s.program)
            self._first_arrival[s.program] = s.arrival_s if first is None else min(first, s.arrival_s)
            self._last_seen[s.program] = now
        for program, seen in list(self._last_seen.items()):
            if now - seen > self.program_memory_s:
                del self._last_seen[program], self._first_arrival[program]
        return [s.request_id for s in sorted(snapshots, key=lambda s: (self._first_arrival[s.program], *fcfs_key(s)))]

    def observe(self, ran: Mapping[str, float], now: float) -> None:
        return None
