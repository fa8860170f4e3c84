"""The soak's faults (bench.soak): which service dies when, and the killing itself.

A fault is a SIGKILL of a service's whole process group, as a container dies (an engine worker's
vLLM engine core and Celery's pool processes go with their parent). Bringing it back is not done
here: the stack runs under stack.supervisor, exactly as `make run` does, and the supervisor
restarts what died after its backoff. The injector only kills, then watches until the service
serves again, and records both times.

The schedule is pure (times and targets, no processes); FaultInjector carries it out.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import cast

import redis

from common.names import WORKERS_HASH
from stack.processes import Service, port_open
from stack.services import Stack, http_ok

FAULT_KINDS = ("redis", "executor", "engine")
"""What a schedule may name: Redis, the Celery executor, an engine worker (taken in turn)."""
READY_TIMEOUT_S = 300.0
"""How long a killed service may take to serve again (a vLLM engine worker restarting on two busy
cores takes a minute or more) before the fault counts as not survived."""
SETTLED_TIMEOUT_S = 120.0
"""How long the next fault waits for every service to be up before it is skipped."""


@dataclass(frozen=True)
class PlannedFault:
    at_s: float
    """Seconds from the soak's start."""
    service: str
    """The Stack service's name: redis, api-executor, engine-0, engine-1, ..."""


def schedule(kinds: Sequence[str], engine_workers: Sequence[str], *, first_s: float, every_s: float,
             until_s: float) -> list[PlannedFault]:
    """One fault every `every_s` from `first_s` while before `until_s`, cycling through `kinds`;
    each `engine` fault takes the next engine worker in turn. With a single engine worker there is
    no one to fail over to, so `engine` is refused."""
    unknown = [k for k in kinds if k not in FAULT_KINDS]
    if unknown:
        raise ValueError(f"unknown fault kinds {unknown}: choose from {', '.join(FAULT_KINDS)}")
    if "engine" in kinds and len(engine_workers) < 2:
        raise ValueError("engine faults need at least two engine workers (one to fail over to)")
    if not kinds:
        return []
    if first_s < 0 or every_s <= 0:
        raise ValueError("need first_s >= 0 and every_s > 0")
    services = {"redis": "redis", "executor": "api-executor"}
    planned, engine_turn, at, i = [], 0, first_s, 0
    while at < until_s:
        kind = kinds[i % len(kinds)]
        if kind == "engine":
            name = engine_workers[engine_turn % len(engine_workers)]
            engine_turn += 1
        else:
            name = services[kind]
        planned.append(PlannedFault(round(at, 3), name))
        at += every_s
        i += 1
    return planned


@dataclass
class FaultRecord:
    service: str
    planned_s: float
    killed_s: float | None = None
    ready_s: float | None = None
    """When it served again (restarted by the supervisor); None: it did not within READY_TIMEOUT_S."""
    skipped: str | None = None
    """Why it was not injected (the stack had not recovered from the last one)."""
    in_flight: dict = field(default_factory=dict)
    """What the engine workers held just before the kill: {worker: {inflight, paused}}."""

    @property
    def down_s(self) -> float | None:
        if self.killed_s is None or self.ready_s is None:
            return None
        return round(self.ready_s - self.killed_s, 2)

    @property
    def survived(self) -> bool:
        return self.killed_s is not None and self.ready_s is not None


class FaultInjector:
    def __init__(self, stack: Stack, clock: Callable[[], float], log: Callable[[str], None] = print) -> None:
        self.stack = stack
        self.clock = clock
        self.log = log
        self.records: list[FaultRecord] = []

    def _service(self, name: str) -> Service:
        return next(s for s in self.stack.services if s.name == name)

    def _workers(self) -> dict[str, dict]:
        try:
            client = redis.Redis.from_url(self.stack.cfg.redis_url, socket_timeout=1)
            raw = cast(dict[bytes, bytes], client.hgetall(WORKERS_HASH))
        except redis.RedisError:
            return {}
        return {k.decode(): json.loads(v) for k, v in raw.items()}

    def ready(self, name: str, since_wall: float = 0.0) -> bool:
        """The service answers as the stack's start-up waits for it (an engine worker: a heartbeat
        written after `since_wall`, so not one left in Redis by its killed predecessor)."""
        service = self._service(name)
        if not service.alive():
            return False
        cfg = self.stack.cfg
        if name == "redis":
            try:
                return bool(redis.Redis.from_url(cfg.redis_url, socket_timeout=0.5).ping())
            except redis.RedisError:
                return False
        if name == "api-executor":
            return port_open(cfg.executor_metrics_port)
        if name == "estimator":
            return http_ok(f"http://127.0.0.1:{cfg.estimator_port}/health")
        if name == "gateway":
            return http_ok(f"{cfg.gateway_url}/health")
        status = self._workers().get(name)
        return status is not None and status.get("heartbeat_at", 0) >= since_wall

    def all_ready(self) -> bool:
        return all(self.ready(s.name) for s in self.stack.services)

    async def _until(self, condition: Callable[[], bool], timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if await asyncio.to_thread(condition):
                return True
            await asyncio.sleep(0.2)
        return False

    async def run(self, plan: Sequence[PlannedFault], latest_s: float) -> list[FaultRecord]:
        """Carries out the plan in order, no kill after `latest_s` (the load is over by then);
        returns (and keeps in self.records) what happened."""
        for fault in plan:
            await asyncio.sleep(max(0.0, fault.at_s - self.clock()))
            record = FaultRecord(fault.service, fault.at_s)
            self.records.append(record)
            settled = await self._until(lambda: self.clock() >= latest_s or self.all_ready(), SETTLED_TIMEOUT_S)
            if not settled or self.clock() >= latest_s:
                record.skipped = ("the stack had not recovered from the previous fault" if not settled
                                  else "the load was over")
                self.log(f"  fault {fault.service} at {fault.at_s:.0f}s skipped: {record.skipped}")
                continue
            await self._kill(record)
        return self.records

    async def _kill(self, record: FaultRecord) -> None:
        service = self._service(record.service)
        record.in_flight = {w: {"inflight": s.get("inflight"), "paused": s.get("paused")}
                            for w, s in (await asyncio.to_thread(self._workers)).items()}
        old = service.process
        os.killpg(old.pid, signal.SIGKILL)  # type: ignore[union-attr]  # a started service
        record.killed_s = round(self.clock(), 3)
        killed_wall = time.time()
        self.log(f"  fault: SIGKILL {record.service} (pid {old.pid}) at {record.killed_s:.1f}s; "  # type: ignore[union-attr]
                 f"the engine workers held {record.in_flight}")
        restarted = await self._until(lambda: service.process is not old and self.ready(record.service, killed_wall),
                                      READY_TIMEOUT_S)
        if restarted:
            record.ready_s = round(self.clock(), 3)
            self.log(f"  fault: {record.service} serving again {record.down_s:.1f}s after the kill")
        else:
            self.log(f"  fault: {record.service} NOT serving {READY_TIMEOUT_S:.0f}s after the kill")
