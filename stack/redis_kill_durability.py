"""Does a SIGKILLed redis-server keep every write it acknowledged? Evidence for the stack's
`appendfsync` choice (stack/redis_server.py), not a test: a loss shows only while a slow fsync
makes Redis hold its AOF write back, so run it beside disk load (`--disk-load`).

    python -m stack.redis_kill_durability --rounds 15 --disk-load everysec always

Each round: start Redis with the mode, LPUSH `--writes` values (each acknowledged), SIGKILL it,
start it again on the same data dir and count what is left.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import redis

from stack.processes import free_port
from stack.redis_server import redis_url, start_redis

VALUE = b"x" * 2000
"""Big enough that the AOF grows by megabytes a round, so its fsyncs take time."""


def lost_writes(mode: str, writes: int, workdir: Path) -> int:
    """The stack's own Redis command (stack.redis_server), but for `mode`."""
    data_dir = Path(tempfile.mkdtemp(dir=workdir))
    port = free_port()
    service = start_redis(port, data_dir, workdir, appendfsync=mode)
    client = redis.Redis.from_url(redis_url(port))
    for _ in range(writes):
        client.lpush("q", VALUE)
    service.kill_group()  # SIGKILL
    service = start_redis(port, data_dir, workdir, appendfsync=mode)
    try:
        return writes - int(redis.Redis.from_url(redis_url(port)).llen("q"))
    finally:
        service.stop()


@contextlib.contextmanager
def disk_load(workdir: Path) -> Iterator[None]:
    """256 MiB written then fsynced, in a loop, on the AOFs' file system: the flush of that much
    dirty data is what stalls Redis's own fsync."""
    stop = threading.Event()

    def write() -> None:
        block = b"\0" * (4 << 20)
        with open(workdir / "disk-load", "wb") as f:
            while not stop.is_set():
                for _ in range(64):
                    f.write(block)
                f.flush()
                os.fsync(f.fileno())
                f.seek(0)

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modes", nargs="+", choices=["always", "everysec", "no"])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--writes", type=int, default=3000)
    parser.add_argument("--disk-load", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        workdir = Path(tmp)
        with disk_load(workdir) if args.disk_load else contextlib.nullcontext():
            for mode in args.modes:
                losses = [lost_writes(mode, args.writes, workdir) for _ in range(args.rounds)]
                print(f"appendfsync {mode}: rounds that lost acknowledged writes {sum(n > 0 for n in losses)}"
                      f"/{args.rounds}, writes lost {sum(losses)} of {args.rounds * args.writes}", flush=True)


if __name__ == "__main__":
    main()
