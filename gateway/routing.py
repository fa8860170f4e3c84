"""Which request stream a request goes to: the shared one, or a worker's own (program affinity).

The decision is program_affinity.py's `route` (pure); this module gathers its
inputs from Redis: the program's holder (augserve:program:<id>, written by the worker that last
started one of its requests) and the workers' loads and heartbeats (WORKERS_HASH). The loads are
cached for CACHE_S, so a burst of requests costs one HGETALL, plus one GET per request with a
program id.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from redis.asyncio import Redis

from common.names import ENGINE_REQUEST_STREAM, WORKERS_HASH, engine_worker_stream, program_holder
from common.schemas import WorkerStatus
from gateway.program_affinity import RouteDecision, WorkerLoad, live, route

log = logging.getLogger(__name__)

CACHE_S = 0.5
"""Heartbeats come every ~2 s, so a fresher copy of the loads would not be more accurate."""


@dataclass(frozen=True)
class Placement:
    stream: str
    decision: RouteDecision | None
    """None in pull mode (no decision to make)."""

    @property
    def route(self) -> str:
        return "affinity" if self.decision and self.decision.worker_id else "shared"

    @property
    def reason(self) -> str:
        return self.decision.reason if self.decision else "pull"


SHARED = Placement(ENGINE_REQUEST_STREAM, None)


class Router:
    def __init__(self, redis: Redis, mode: str, margin: float, stale_after_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.redis = redis
        self.mode = mode
        self.margin = margin
        self.stale_after_s = stale_after_s
        self._clock = clock
        self._loads: list[WorkerLoad] = []
        self._loads_at = float("-inf")

    def describe(self) -> dict:
        return {"mode": self.mode, "margin": self.margin, "worker_stale_s": self.stale_after_s}

    async def place(self, program_id: str | None) -> Placement:
        if self.mode == "pull":
            return SHARED
        if program_id is None:
            return Placement(ENGINE_REQUEST_STREAM, RouteDecision(None, "no_program"))
        holder = cast(str | None, await self.redis.get(program_holder(program_id)))  # decode_responses
        workers = [w if w.worker_id != holder
                   else WorkerLoad(w.worker_id, w.load, w.heartbeat_at, frozenset({program_id}))
                   for w in await self._worker_loads()]
        if holder is not None and all(w.worker_id != holder for w in workers):
            # Gone from the registry (stopped, or removed as dead by a peer): a holder without a heartbeat.
            workers.append(WorkerLoad(holder, 0.0, float("-inf"), frozenset({program_id})))
        decision = route(program_id, workers, self.margin, now=time.time(), stale_after_s=self.stale_after_s)
        # Not the least-loaded worker's own stream when the holder does not fit: the loads are a
        # heartbeat old, and a burst would all land on the one worker that looked idlest; the
        # shared stream is balanced by each worker's real room when it reads.
        stream = engine_worker_stream(decision.worker_id) if decision.worker_id else ENGINE_REQUEST_STREAM
        return Placement(stream, decision)

    async def any_worker_alive(self) -> bool:
        """Some engine worker's heartbeat is fresh (loads cached for CACHE_S, as for routing)."""
        return bool(live(await self._worker_loads(), now=time.time(), stale_after_s=self.stale_after_s))

    async def _worker_loads(self) -> list[WorkerLoad]:
        if self._clock() - self._loads_at < CACHE_S:
            return self._loads
        loads = []
        for worker_id, raw in cast(dict[str, str], await self.redis.hgetall(WORKERS_HASH)).items():
            try:
                status = WorkerStatus.model_validate_json(raw)
                loads.append(WorkerLoad(worker_id, float(status.inflight + status.backlog), status.heartbeat_at))
            except ValueError:
                log.warning("ignoring worker %s: unreadable status %r", worker_id, raw)
        self._loads, self._loads_at = loads, self._clock()
        return loads
