"""Keeps the stack's services running: a service that exits is started again, with backoff.

`make run` polls one Supervisor over its Stack's services (stack/run.py). A dead service's whole
process group is killed first (an engine worker's vLLM engine core, Celery's pool processes can
outlive their parent and would hold ports and memory), then the same command is started again
into the same log. Restarts of one service back off: first_s, doubled per crash, capped at cap_s;
a service that stayed up healthy_after_s counts as recovered and its backoff starts over.

The other services ride out the restart themselves: Redis comes back with its data (AOF,
stack/redis_server.py) and every client reconnects (common/redis_retry.py); a restarted engine
worker resumes the requests it held (engine_worker/intake.py own_pending).

Not thread-safe, and not meant to be: one loop polls it, and that loop also stops the stack.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from stack.processes import Service


@dataclass
class _Restarts:
    failures: int = 0
    due_at: float | None = None
    """When the dead service is started again (None: it is running)."""
    started_at: float = 0.0


class Supervisor:
    def __init__(self, services: list[Service], log_dir: Path, progress: Callable[[str], None] = print,
                 first_s: float = 1.0, cap_s: float = 30.0, healthy_after_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not 0 < first_s <= cap_s:
            raise ValueError("need 0 < first_s <= cap_s")
        self.services = services
        self.log_dir = log_dir
        self.first_s, self.cap_s, self.healthy_after_s = first_s, cap_s, healthy_after_s
        self._progress = progress
        self._clock = clock
        now = clock()
        self._state = {id(s): _Restarts(started_at=now) for s in services}
        self.restarts_total = 0

    def poll(self) -> None:
        """Notices exits and starts what is due; call it every second or so."""
        now = self._clock()
        for service in self.services:
            state = self._state.setdefault(id(service), _Restarts(started_at=now))
            if service.alive():
                if state.failures and now - state.started_at >= self.healthy_after_s:
                    state.failures = 0
                continue
            if state.due_at is None:
                self._crashed(service, state, now)
            if now >= state.due_at:  # type: ignore[operator]  # _crashed set it
                self._restart(service, state, now)

    def restart_due_at(self, service: Service) -> float | None:
        """When the dead `service` is started again (clock time); None while it runs."""
        state = self._state.get(id(service))
        return state.due_at if state else None

    def _crashed(self, service: Service, state: _Restarts, now: float) -> None:
        code = service.process.returncode if service.process is not None else None
        service.kill_group()  # what it left behind, before a new one binds the same ports
        delay = min(self.cap_s, self.first_s * 2 ** state.failures)
        state.failures += 1
        state.due_at = now + delay
        self._progress(f"  {service.name} exited (code {code}); restart {state.failures} in {delay:.0f}s "
                       f"(log: {service.log_path})\n{service.log_tail(15)}")

    def _restart(self, service: Service, state: _Restarts, now: float) -> None:
        service.start(self.log_dir)
        state.due_at, state.started_at = None, now
        self.restarts_total += 1
        self._progress(f"  {service.name} restarted (pid {service.process.pid})")  # type: ignore[union-attr]  # started
