"""Starting and stopping the stack's processes: shared by `make run` and the test fixtures.

Every child runs in its own process group so that stopping it also stops what it spawned
(Celery's prefork children, vLLM's engine-core process): no orphans after Ctrl-C or a test.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


_HANDED_OUT: set[int] = set()


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def free_port() -> int:
    """A free port BELOW the kernel's ephemeral range: a port the OS hands out (bind to 0) can be
    taken by any outgoing connection (vLLM, Redis and Celery clients open many) before the service
    that was meant to listen on it binds it."""
    low, _ = _ephemeral_range()
    for _ in range(200):
        port = random.randrange(10000, max(10001, low))
        if port in _HANDED_OUT:  # picked before, maybe not bound yet by its service
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            _HANDED_OUT.add(port)
            return port
    raise RuntimeError("no free port below the ephemeral range")


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


@dataclass
class Service:
    """One child process of the stack, with its log file."""

    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    log_path: Path | None = None
    process: subprocess.Popen | None = None
    _group_reaped: bool = field(default=False, repr=False)

    def start(self, log_dir: Path) -> Service:
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"{self.name}.log"
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "PYTHONUNBUFFERED": "1", **self.env}
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            self.argv, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
        log.close()
        self._group_reaped = False
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def wait_until(self, ready: Callable[[], bool], timeout_s: float, what: str) -> None:
        """Polls `ready` until it holds; fails at once if the process died."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"{self.name} exited while waiting for {what}:\n{self.log_tail()}")
            if ready():
                return
            time.sleep(0.2)
        raise TimeoutError(f"{self.name}: no {what} after {timeout_s:.0f}s:\n{self.log_tail()}")

    def stop(self, timeout_s: float = 15.0) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                pass
        self.kill_group()

    def kill_group(self) -> None:
        """SIGKILLs the whole process group, the leader's children included (those that ignored
        SIGTERM or outlived their parent: a crashed engine worker's engine core). The group id is
        the leader's pid (start_new_session), still valid after the leader exited: Linux hands out
        no pid that is in use as a group id."""
        if self.process is None or self._group_reaped:
            return  # once only: an emptied group's id may be a new process's pid by now
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass  # nothing left in the group
        try:
            self.process.wait(timeout=5)
            self._group_reaped = True
        except subprocess.TimeoutExpired:
            pass


def python_module(name: str, module: str, *args: str, env: dict[str, str] | None = None) -> Service:
    return Service(name=name, argv=[sys.executable, "-m", module, *args], env=env or {})
