"""Time slicing: which running requests give their slot to better-ranked waiting ones.

vLLM's priority scheduler preempts only when a RUNNING request cannot get a block, never to
admit a waiting one of higher priority: a job that started first keeps its slot however far its
priority has fallen. A preemptive policy (FastServe's MLFQ demotes a job that used its quantum so
a newer, shorter one runs) needs the slots themselves handed over. Pairing is strict: the best
waiting request takes a free slot if there is one, else the worst running request's slot when
it ranks strictly better; the first waiting request that cannot win ends the pass, so a lower
one never jumps ahead. Ranks are the policy's order (lower runs first).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def time_slice_victims(running: Mapping[str, int], waiting: Sequence[tuple[str, int]], free_slots: int) -> list[str]:
    """Running request ids to preempt, worst first.

    `running` maps each running request to its rank; `waiting` lists the requests that could be
    admitted now with their ranks (in any order); `free_slots` is how many more may run.
    """
    if free_slots < 0:
        raise ValueError("free_slots must be non-negative")
    victims: list[str] = []
    # Worst (highest rank) last, so pop() takes it; ties cannot occur in a total order.
    held = sorted(running.items(), key=lambda item: (item[1], item[0]))
    for _request_id, rank in sorted(waiting, key=lambda item: (item[1], item[0])):
        if free_slots > 0:
            free_slots -= 1
            continue
        if not held or held[-1][1] <= rank:
            break
        victims.append(held.pop()[0])
    return victims
