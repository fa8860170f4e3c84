"""Autellix (arXiv 2502.13965): programs are the scheduling unit.

PLAS, program-level attained service: a request's priority is the compute its whole program has
received so far (every request sharing its program_id, finished ones included; a request without
a program is a program of its own). Least-served first, ties by original arrival. Short agent
programs thus finish ahead of long ones without any length prediction, and a program's later
calls do not restart at the top as a fresh request would. Starvation guard: a WAITING request not
served for `starvation_s` goes ahead of everything not promoted, oldest first, until it runs.

Routing (for the gateway, pure): keep a program's calls on the worker that holds its KV/prefix,
unless that worker is dead or loaded more than `margin` above the least-loaded live one; then the
shared pool decides (gateway/routing.py applies it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

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


@dataclass(frozen=True)
class WorkerLoad:
    worker_id: str
    load: float
    """In-flight requests of the worker (running, queued in vLLM or paused at a call), as its last
    heartbeat reported them: margin uses the same unit."""
    heartbeat_at: float
    """Wall-clock time of that heartbeat."""
    program_ids: frozenset[str] = frozenset()
    """Programs whose KV/prefix this worker holds (as far as the caller knows)."""


RouteReason = Literal["holder", "no_program", "no_holder", "holder_dead", "holder_overloaded"]


@dataclass(frozen=True)
class RouteDecision:
    worker_id: str | None
    """The worker whose own stream gets the request; None: the shared stream (pull balancing)."""
    reason: RouteReason


def live(workers: Sequence[WorkerLoad], *, now: float, stale_after_s: float) -> list[WorkerLoad]:
    """The workers whose last heartbeat is fresher than `stale_after_s`: the others are dead (the
    rule by which workers adopt each other's requests)."""
    return [w for w in workers if now - w.heartbeat_at < stale_after_s]


def route(program_id: str | None, workers: Sequence[WorkerLoad], margin: float, *, now: float,
          stale_after_s: float) -> RouteDecision:
    """Where the program's next call goes: to a holder of the program (the least loaded, if
    several) whose heartbeat is fresh and whose load is within `margin` of the least-loaded live
    worker; otherwise to the shared pool (None), where whichever worker has room pulls it.

    Never the least-loaded worker by name: loads come from heartbeats, stale by up to a heartbeat
    period, so naming the worker that looked idlest would send a whole burst to one worker, while
    the shared pool is balanced by each worker's real room at the moment it reads.
    """
    if program_id is None:
        return RouteDecision(None, "no_program")
    holders = [w for w in workers if program_id in w.program_ids]
    if not holders:
        return RouteDecision(None, "no_holder")
    alive = live(workers, now=now, stale_after_s=stale_after_s)
    live_holders = [w for w in holders if w in alive]
    if not live_holders:
        return RouteDecision(None, "holder_dead")
    least = min(w.load for w in alive)
    holder = min(live_holders, key=lambda w: (w.load, w.worker_id))
    if holder.load - least > margin:
        return RouteDecision(None, "holder_overloaded")
    return RouteDecision(holder.worker_id, "holder")
