"""The bench's CPU scheduling on a shared machine (`--realtime`): SCHED_RR for every process it
starts; with `--engine-core-below`, each system's vLLM engine core one priority BELOW the
processes that serve it.

Under one flat SCHED_RR priority, the engine core's OpenMP threads, busy for a whole step,
hold both cores; a front-end process that wakes (vLLM's API server or our engine worker turning a
step's outputs into tokens, the gateway, Redis, the Celery executor, the bench's client) waits for
a 100 ms round-robin slice to expire before it runs (sched_rr_timeslice_ms), and every hop a
request makes pays that. With the engine core below them, a woken front-end preempts it at once
and the engine computes in the rest: the split a GPU deployment has, where the host's processes
never wait for the accelerator's kernels. Every system gets the same rule, stock vLLM's API server
and client as our stack, and what each engine core really runs with is read back per thread.
Measured at the headline's rates it served fewer requests on both systems (a woken front-end
stops one of the step's OpenMP threads while the others spin at the barrier), so it is not the
default (bench/README.md "Run order").
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REALTIME_PRIORITY = 10
ENGINE_CORE_PRIORITY = REALTIME_PRIORITY - 1
ENGINE_CORE_TITLE = "VLLM::EngineCore"
"""vLLM's engine-core process title (vllm/v1/engine/core.py, set through setproctitle)."""
PROC = Path("/proc")
RR_TIMESLICE = PROC / "sys/kernel/sched_rr_timeslice_ms"
"""The round-robin slice of every SCHED_RR task on the machine (the kernel's default: 100 ms)."""


def enter_realtime() -> str:
    """This process, and so every process it starts from now on (the policy is inherited), runs
    under SCHED_RR. Raises ValueError with the reason when the OS refuses."""
    try:
        os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(REALTIME_PRIORITY))
    except (PermissionError, OSError) as exc:
        raise ValueError(f"--realtime needs root or CAP_SYS_NICE to set SCHED_RR: {exc}") from None
    return f"SCHED_RR priority {REALTIME_PRIORITY}"


def describe(tid: int) -> str:
    """A task's scheduling policy as the kernel reports it."""
    policy = os.sched_getscheduler(tid)
    if policy in (os.SCHED_RR, os.SCHED_FIFO):
        name = "SCHED_RR" if policy == os.SCHED_RR else "SCHED_FIFO"
        return f"{name} priority {os.sched_getparam(tid).sched_priority}"
    return "normal"


def current_scheduling() -> str:
    """The scheduling policy the systems inherit (recorded with the results)."""
    described = describe(0)
    return f"normal (nice {os.nice(0)})" if described == "normal" else described


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    for task in (PROC / str(pid) / "task").glob("*"):
        try:
            kids += [int(c) for c in (task / "children").read_text().split()]
        except OSError:  # the task ended meanwhile
            continue
    return kids


def descendants(roots: list[int]) -> list[int]:
    """Every live process under `roots` (the roots included)."""
    seen: list[int] = []
    todo = list(roots)
    while todo:
        pid = todo.pop()
        if pid in seen or not (PROC / str(pid)).exists():
            continue
        seen.append(pid)
        todo += _children(pid)
    return seen


def _title(pid: int) -> str:
    try:
        return (PROC / str(pid) / "cmdline").read_bytes().split(b"\0", 1)[0].decode(errors="replace")
    except OSError:
        return ""


def engine_cores(roots: list[int]) -> list[int]:
    """The vLLM engine-core processes among `roots`' descendants."""
    return [pid for pid in descendants(roots) if _title(pid).startswith(ENGINE_CORE_TITLE)]


def threads(pid: int) -> list[int]:
    return [int(t.name) for t in (PROC / str(pid) / "task").glob("*")]


def lower_engine_cores(roots: list[int], priority: int = ENGINE_CORE_PRIORITY) -> dict[str, str]:
    """Puts every thread of every engine core under `roots`, and of the processes under it (vLLM's
    model-runner worker: where the forward pass and its OpenMP threads run), at SCHED_RR
    `priority`, and reads it back: {"<pid> <title>": "<threads>: <policy as read back>", ...},
    the distinct policies joined when the threads differ. Threads started later (a thread pool
    grown lazily) inherit their process's. No engine core found is {} (the caller decides)."""
    found: dict[str, str] = {}
    for pid in descendants(engine_cores(roots)):
        tids = threads(pid)
        for tid in tids:
            try:
                os.sched_setscheduler(tid, os.SCHED_RR, os.sched_param(priority))
            except ProcessLookupError:  # the thread ended meanwhile
                continue
        read_back = sorted({describe(tid) for tid in threads(pid)})
        found[f"{pid} {_title(pid)}"] = f"{len(tids)} threads: {', '.join(read_back)}"
    return found


@contextmanager
def rr_timeslice(ms: int | None) -> Iterator[str]:
    """For the block, SCHED_RR tasks get `ms` milliseconds before the next runnable task of their
    priority takes the core; the kernel's value is put back after. Yields what the kernel reports
    (it rounds to its tick), for the results. None changes nothing. Raises ValueError with the
    reason when the kernel refuses (not root, or a read-only /proc/sys)."""
    before = int(RR_TIMESLICE.read_text())
    if ms is None:
        yield f"round-robin slice {before} ms (the kernel's)"
        return
    if ms < 1:
        raise ValueError(f"--rr-timeslice-ms must be at least 1, got {ms}")
    try:
        RR_TIMESLICE.write_text(f"{ms}\n")
    except OSError as exc:
        raise ValueError(f"--rr-timeslice-ms needs root and a writable {RR_TIMESLICE}: {exc}") from None
    try:
        yield f"round-robin slice {int(RR_TIMESLICE.read_text())} ms (set; the kernel's was {before})"
    finally:
        RR_TIMESLICE.write_text(f"{before}\n")
