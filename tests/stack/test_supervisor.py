"""The supervisor of `make run` with real processes: a real redis-server SIGKILLed comes back on
its port with its data (AOF), and a crashed service's leftovers are killed before its restart and
nothing of it outlives stop()."""

from __future__ import annotations

import os
import signal
import sys
import textwrap
import time
from pathlib import Path

import redis

from stack.processes import Service, free_port
from stack.redis_server import redis_service, redis_url
from stack.supervisor import Supervisor

DEADLINE_S = 20.0


def _poll_until(condition, supervisor: Supervisor | None, what: str, timeout_s: float = DEADLINE_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"no {what} within {timeout_s:.0f}s"
        if supervisor is not None:
            supervisor.poll()
        time.sleep(0.05)


def _gone(pid: int) -> bool:
    """Exited (a zombie waiting for init to reap it counts: it runs nothing)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (FileNotFoundError, ProcessLookupError):
        return True


def _pings(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_timeout=0.5).ping())
    except redis.ConnectionError:
        return False


def test_a_killed_redis_is_restarted_on_its_port_with_its_data(tmp_path):
    port = free_port()
    url = redis_url(port)
    service = redis_service(port, tmp_path / "data").start(tmp_path / "logs")
    supervisor = Supervisor([service], tmp_path / "logs", progress=lambda _m: None, first_s=0.2)
    try:
        _poll_until(lambda: _pings(url), None, "PING")
        client = redis.Redis.from_url(url, decode_responses=True)
        client.set("queued", "request-1")
        client.xgroup_create("requests", "workers", id="0", mkstream=True)
        client.xadd("requests", {"request": "r1"})
        client.xreadgroup("workers", "engine-0", {"requests": ">"}, count=1)  # now pending on engine-0
        first_pid = service.process.pid
        # What Redis promises is the data once it is in the append-only file (fsynced before the
        # reply with appendfsync always; polled anyway, so the test checks the restart, not that).
        aof = tmp_path / "data" / "appendonly.aof"
        _poll_until(lambda: aof.exists() and b"engine-0" in aof.read_bytes() and b"request-1" in aof.read_bytes(),
                    None, "the writes in the append-only file")

        os.kill(first_pid, signal.SIGKILL)
        _poll_until(lambda: supervisor.restarts_total == 1 and _pings(url), supervisor, "restarted Redis")

        assert service.process.pid != first_pid
        client = redis.Redis.from_url(url, decode_responses=True)
        assert client.get("queued") == "request-1"
        assert client.xpending("requests", "workers")["consumers"] == [{"name": "engine-0", "pending": 1}]
    finally:
        service.stop()
    assert _gone(service.process.pid)


# A leader that starts a child of its own (as the engine worker starts vLLM's engine core) and
# records both pids, one line per start.
_FAMILY = textwrap.dedent("""
    import os, subprocess, sys, time
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    with open(sys.argv[1], "a") as f:
        f.write(f"{os.getpid()} {child.pid}\\n")
    time.sleep(600)
""")


def _family(pids_file: Path) -> list[tuple[int, int]]:
    if not pids_file.exists():
        return []
    return [tuple(map(int, line.split())) for line in pids_file.read_text().splitlines()]


def test_a_crashed_service_is_restarted_and_stop_leaves_no_orphans(tmp_path):
    pids_file = tmp_path / "pids"
    service = Service("family", [sys.executable, "-c", _FAMILY, str(pids_file)]).start(tmp_path / "logs")
    messages: list[str] = []
    supervisor = Supervisor([service], tmp_path / "logs", progress=messages.append, first_s=0.2)
    try:
        _poll_until(lambda: len(_family(pids_file)) == 1, supervisor, "first start")
        leader, child = _family(pids_file)[0]

        os.kill(leader, signal.SIGKILL)  # a crash: its child is left running
        _poll_until(lambda: len(_family(pids_file)) == 2, supervisor, "restart")

        assert _gone(child), "the crashed leader's child outlived the restart"
        assert service.alive() and supervisor.restarts_total == 1
        assert any("family exited" in m for m in messages) and any("family restarted" in m for m in messages)
        new_leader, new_child = _family(pids_file)[1]
    finally:
        service.stop()
    _poll_until(lambda: _gone(new_leader) and _gone(new_child), None, "everything stopped", timeout_s=5)


def test_restarts_back_off_up_to_the_cap(tmp_path):
    now = [0.0]
    service = Service("quitter", [sys.executable, "-c", "raise SystemExit(3)"]).start(tmp_path / "logs")
    supervisor = Supervisor([service], tmp_path / "logs", progress=lambda _m: None, first_s=1.0, cap_s=4.0,
                            clock=lambda: now[0])
    try:
        delays = []
        for _ in range(4):
            service.process.wait(timeout=10)
            supervisor.poll()  # notices the exit, schedules the restart
            due_at = supervisor.restart_due_at(service)
            delays.append(due_at - now[0])
            now[0] = due_at
            supervisor.poll()  # starts it again
        assert delays == [1.0, 2.0, 4.0, 4.0]
    finally:
        service.stop()
