"""Autellix (arXiv 2502.13965): programs are the scheduling unit.

PLAS, program-level attained service: a request's priority is the compute its whole program has
received so far (every request sharing its program_id, finished ones included; a request without
a program is a program of its own). Least-served first, ties by original arrival. Short agent
programs thus finish ahead of long ones without any length prediction, and a program's later
calls do not restart at the top as a fresh request would. Starvation guard: a WAITING request not
served for `starvation_s` goes ahead of everything not promoted, oldest first, until it runs.

Autellix's routing (a program's calls kept on the worker that holds its KV/prefix) is the
gateway's: gateway/program_affinity.py.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from engine_worker.policies.queue_order import QueuedRequest, check_unique, fcfs_key

STARVATION_S = 5.0
"""Ours, not the paper's: long enough that PLAS decides in steady state, short next to an SLO of
tens of seconds end to end."""
PROGRAM_MEMORY_S = 3600.0
"""How long a program's attained service is remembered after its last request was seen."""


class Plas:
    def __init__(self, starvation_s: float = STARVATION_S, program_memory_s: float = PROGRAM_MEMORY_S):
        if starvation_s <= 0 or program_memory_s <= 0:
            raise ValueError("starvation_s and program_memory_s must be positive")
        self.starvation_s = starvation_s
        self.program_memory_s = program_memory_s
        self._program_of: dict[str, str] = {}
        self._service: dict[str, float] = {}
        """Attained compute seconds per program."""
        self._program_seen: dict[str, float] = {}
        self._last_ran: dict[str, float] = {}
        self._unseen: dict[str, float] = {}
        """Service of requests that ran before their first snapshot named their program."""

    def program_service_s(self, program: str) -> float:
        return self._service.get(program, 0.0)

    def order(self, snapshots: Sequence[QueuedRequest], now: float) -> list[str]:
        check_unique(snapshots)
        present = {s.request_id for s in snapshots}
        self._program_of = {s.request_id: s.program for s in snapshots}
        self._last_ran = {rid: t for rid, t in self._last_ran.items() if rid in present}
        for s in snapshots:
            self._service[s.program] = self._service.get(s.program, 0.0) + self._unseen.pop(s.request_id, 0.0)
            self._program_seen[s.program] = now
        self._unseen.clear()
        for program, seen in list(self._program_seen.items()):
            if now - seen > self.program_memory_s:
                del self._program_seen[program]
                self._service.pop(program, None)

        def key(s: QueuedRequest) -> tuple[int, float, float, str]:
            if s.state == "waiting" and now - self._waiting_since(s) >= self.starvation_s:
                return (0, 0.0, *fcfs_key(s))
            return (1, self._service[s.program], *fcfs_key(s))

        return [s.request_id for s in sorted(snapshots, key=key)]

    def observe(self, ran: Mapping[str, float], now: float) -> None:
        for request_id, seconds in ran.items():
            self._last_ran[request_id] = now
            program = self._program_of.get(request_id)
            if program is None:
                self._unseen[request_id] = self._unseen.get(request_id, 0.0) + seconds
            else:
                self._service[program] = self._service.get(program, 0.0) + seconds

    def _waiting_since(self, s: QueuedRequest) -> float:
        last_ran = self._last_ran.get(s.request_id)
        return s.waiting_since_s if last_ran is None else max(s.waiting_since_s, last_ran)
