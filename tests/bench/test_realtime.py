"""bench.realtime: the engine core found by vLLM's process title among a system's descendants and
put one SCHED_RR priority below the rest, with its own children (vLLM's model-runner worker),
every thread of them, read back from the kernel."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap

import pytest

from stack.processes import REPO_ROOT

# A stand-in system: a root process (under --realtime's policy when privileged) with two children,
# one titled as vLLM titles its engine core, with threads of its own and a child (the model
# runner) with its own; the other not. The root lowers the engine cores under itself and prints
# what came back, then the threads of each.
SYSTEM = textwrap.dedent("""
    import os, subprocess, sys, time
    from bench import realtime
    privileged = os.geteuid() == 0
    if privileged:
        realtime.enter_realtime()
    core = subprocess.Popen([sys.executable, "-c", (
        "import setproctitle, subprocess, sys, threading, time\\n"
        "setproctitle.setproctitle('VLLM::EngineCore')\\n"
        "runner = subprocess.Popen([sys.executable, '-c', 'import threading, time; "
        "threading.Thread(target=time.sleep, args=(60,), daemon=True).start(); print(1, flush=True); "
        "time.sleep(60)'], stdout=subprocess.PIPE)\\n"
        "runner.stdout.readline()\\n"
        "for _ in range(3): threading.Thread(target=time.sleep, args=(60,), daemon=True).start()\\n"
        "print('up', flush=True); time.sleep(60)")], stdout=subprocess.PIPE, text=True)
    other = subprocess.Popen([sys.executable, "-c", "import time; print('up', flush=True); time.sleep(60)"],
                             stdout=subprocess.PIPE, text=True)
    core.stdout.readline(); other.stdout.readline()
    try:
        print(realtime.engine_cores([os.getpid()]) == [core.pid])
        if privileged:
            print(realtime.lower_engine_cores([os.getpid()]))
            print(sorted({realtime.describe(t) for p in realtime.descendants([core.pid]) for t in realtime.threads(p)}))
            print(len(realtime.descendants([core.pid])))
            print(sorted({realtime.describe(t) for t in realtime.threads(other.pid)}))
            print(realtime.describe(0))
    finally:
        for p in realtime.descendants([core.pid, other.pid]):
            os.kill(p, 9)
""")


def test_engine_core_threads_go_one_priority_below_and_nothing_else_moves():
    out = subprocess.run([sys.executable, "-c", SYSTEM], capture_output=True, text=True, check=True, timeout=60,
                         cwd=REPO_ROOT, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}).stdout.splitlines()
    assert out[0] == "True"  # found by its title, and only it
    if os.geteuid() != 0:
        assert len(out) == 1  # without the privilege --realtime is refused before any of this
        return
    lowered = ast.literal_eval(out[1])
    assert isinstance(lowered, dict)
    assert len(lowered) == 2  # the engine core and its model runner
    core, runner = sorted(lowered, key=lambda k: "VLLM::EngineCore" not in k)
    assert "VLLM::EngineCore" in core
    assert lowered[core].endswith("threads: SCHED_RR priority 9") and int(lowered[core].split()[0]) >= 4
    assert lowered[runner].endswith("threads: SCHED_RR priority 9") and int(lowered[runner].split()[0]) >= 2
    assert out[2] == "['SCHED_RR priority 9']"  # every thread of both, read back
    assert out[3] == "2"
    assert out[4] == "['SCHED_RR priority 10']"  # the other process keeps the bench's
    assert out[5] == "SCHED_RR priority 10"



def test_the_round_robin_slice_is_set_for_the_block_and_put_back_even_when_it_raises():
    from bench import realtime

    before = int(realtime.RR_TIMESLICE.read_text())
    with realtime.rr_timeslice(None) as text:
        assert text == f"round-robin slice {before} ms (the kernel's)"
    if os.geteuid() != 0:
        with pytest.raises(ValueError, match="needs root"):
            with realtime.rr_timeslice(7):
                pass
        return
    wanted = 7 if before != 7 else 8
    try:
        with realtime.rr_timeslice(wanted) as text:
            inside = int(realtime.RR_TIMESLICE.read_text())
            assert text == f"round-robin slice {inside} ms (set; the kernel's was {before})"
            raise RuntimeError("the run failed")
    except RuntimeError:
        pass
    # The kernel rounds to its tick: within one tick of what was asked (a 1000 Hz tick keeps it exact).
    assert inside != before and abs(inside - wanted) <= 4
    assert int(realtime.RR_TIMESLICE.read_text()) == before
    with pytest.raises(ValueError, match="at least 1"):
        with realtime.rr_timeslice(0):
            pass
    assert int(realtime.RR_TIMESLICE.read_text()) == before
