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
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import redis

from stack.processes import free_port
from stack.redis_server import redis_server_binary

VALUE = b"x" * 2000
"""Big enough that the AOF grows by megabytes a round, so its fsyncs take time."""


def _start(data_dir: Path, port: int, mode: str) -> tuple[subprocess.Popen, redis.Redis]:
    process = subprocess.Popen(
        [redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data_dir),
         "--save", "", "--appendonly", "yes", "--appendfsync", mode],
        stdout=subprocess.DEVNULL)
    client = redis.Redis(port=port)
    for _ in range(200):
        with contextlib.suppress(redis.ConnectionError):
            client.ping()
            return process, client
        process.poll()
        if process.returncode is not None:
            raise RuntimeError(f"redis-server exited ({process.returncode})")
        time.sleep(0.05)
    raise RuntimeError("redis-server did not answer PING")


def lost_writes(mode: str, writes: int, workdir: Path) -> int:
    data_dir = Path(tempfile.mkdtemp(dir=workdir))
    port = free_port()
    process, client = _start(data_dir, port, mode)
    for _ in range(writes):
        client.lpush("q", VALUE)
    process.send_signal(signal.SIGKILL)
    process.wait()
    process, client = _start(data_dir, port, mode)
    try:
        return writes - int(client.llen("q"))
    finally:
        process.kill()
        process.wait()


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
