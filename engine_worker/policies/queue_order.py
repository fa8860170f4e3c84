"""What a queue-ordering policy sees and answers: the request snapshot and the protocol (FCFS, the
simplest order, is policies/fcfs.py).

The engine's scheduler subclass, every k iterations, snapshots every request it holds (waiting,
running, and paused at an API call) into `QueuedRequest` values and asks the policy for a total
order (`order`, highest priority first). After each iteration it reports which requests ran and
for how long (`observe`), so stateful policies can track attained service.

Contract for the caller:
- `order` gets EVERY request the scheduler holds. A request whose KV was discarded or swapped is
  missing while it is away at its call: stateful policies keep what they must carry across the
  call (FastServe's level) for a bounded time and forget the rest of the ids missing from a call
  (finished or aborted); program-level state outlives them.
- A policy whose order should also take running slots away (MLFQ) has `preemptive = True` and
  `preemptible(computed_tokens, running_for_s)`, which says whether a running request has run long
  enough to be displaced; the scheduler then hands slots over by rank (preemption.py). Otherwise
  ranks decide admission only.
- `observe` is called once per engine iteration, even when nothing ran (`ran` empty): policies
  count iterations with it (LAMPS' re-sort cadence and starvation counters).
- Both take `now` from the caller, on the same clock as the snapshots' times: wall-clock seconds
  (time.time()), because a request's original arrival is stamped by the gateway, another process
  on possibly another host, where a monotonic clock would mean nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

RequestState = Literal["waiting", "running", "paused"]


@dataclass(frozen=True)
class QueuedRequest:
    request_id: str
    arrival_s: float
    """ORIGINAL arrival time, kept across all its API calls (InferCept's fairness rule)."""
    state: RequestState
    context_tokens: int
    """Tokens in its context now: prompt, generated text and call results appended so far."""
    generated_tokens: int = 0
    """Tokens it has generated so far, over all its segments."""
    program_id: str | None = None
    """The agent program/session it belongs to; None: it is a program of its own."""
    attained_s: float = 0.0
    """Compute time it has received so far, as the scheduler measured it."""
    last_scheduled_s: float | None = None
    """When it last ran or was (re-)enqueued, whichever is later; None: use arrival_s."""
    calls_done: int = 0
    """API calls it has completed: a new segment begins after each (LAMPS re-scores per segment)."""
    predicted_output_tokens: int | None = None
    """Tokens it is predicted to generate before its next call, or before finishing if no call is
    expected (output_length.OutputLengthHistory)."""
    api_kind: str | None = None
    """Kind of its next call (of the current one while paused), where known or predicted."""
    predicted_call_s: float | None = None
    """Predicted duration of that call (the estimator's), where known."""

    @property
    def program(self) -> str:
        """The scheduling unit for program-level policies: its program, else itself."""
        return self.program_id if self.program_id is not None else f"request:{self.request_id}"

    @property
    def waiting_since_s(self) -> float:
        return self.arrival_s if self.last_scheduled_s is None else max(self.arrival_s, self.last_scheduled_s)


class QueueOrder(Protocol):
    def order(self, snapshots: Sequence[QueuedRequest], now: float) -> list[str]:
        """Every snapshot's request_id exactly once, highest priority first. Deterministic: the
        same state and the same snapshots (in any input order) give the same answer."""
        ...

    def observe(self, ran: Mapping[str, float], now: float) -> None:
        """One engine iteration ended at `now`; `ran` maps the requests that ran in it to the
        compute seconds each received (its share of the step time)."""
        ...


def ranks(order: Sequence[str]) -> dict[str, int]:
    """An order as a sort key per request (lower runs first), for schedulers that sort their own
    queues: `queue.sort(key=lambda r: rank[r.request_id])`."""
    return {request_id: i for i, request_id in enumerate(order)}


def fcfs_key(s: QueuedRequest) -> tuple[float, str]:
    """Original arrival, ties by id: the tie-break every policy ends with, so orders are total."""
    return (s.arrival_s, s.request_id)


def check_unique(snapshots: Sequence[QueuedRequest]) -> None:
    """A duplicated id would make the order ambiguous: a caller bug, so fail loudly."""
    ids = [s.request_id for s in snapshots]
    if len(set(ids)) != len(ids):
        raise ValueError("snapshots hold a request_id more than once")
