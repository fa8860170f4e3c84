"""Program-affinity routing (Autellix, arXiv 2502.13965), pure: which worker a program's next call goes to.

Keep a program's calls on the worker that holds its KV/prefix, unless that worker is dead or
loaded more than `margin` above the least-loaded live one; then the shared pool decides.
gateway/routing.py gathers the inputs from Redis and applies the decision. No Redis, no clock:
`now` is passed in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal


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
