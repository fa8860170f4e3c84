"""Resident memory of a service: every process of its process group (a service and what it
spawned: vLLM's engine core, Celery's pool processes), read from /proc (Linux)."""

from __future__ import annotations

import os
from pathlib import Path

PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


def _group_of(stat: str) -> int:
    # /proc/PID/stat: "pid (comm) state ppid pgrp ..."; comm may hold spaces and parentheses.
    return int(stat.rsplit(")", 1)[1].split()[2])


def group_rss_bytes(pgid: int) -> int:
    """Summed RSS of the live processes whose process group is `pgid` (0 when none is left)."""
    total = 0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if _group_of((proc / "stat").read_text()) != pgid:
                continue
            resident_pages = int((proc / "statm").read_text().split()[1])
        except (OSError, ValueError, IndexError):
            continue  # exited meanwhile
        total += resident_pages * PAGE_BYTES
    return total
