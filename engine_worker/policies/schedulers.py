"""Queue-order policies by name (SchedulerName, the type of the worker's `scheduler` setting):
adding one adds an entry and a name.

Every factory takes the cost model (the ones that need no costs ignore it) plus the policy's own
keyword options, e.g. `make_scheduler("fastserve", cm, starvation_s=STARVATION_PAPER_S)`.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Any

from engine_worker.policies.autellix import Plas
from engine_worker.policies.cost_model import CostModel
from engine_worker.policies.fastserve import FastServe
from engine_worker.policies.fcfs import Fcfs
from engine_worker.policies.lamps import Lamps
from engine_worker.policies.program_fcfs import ProgramFcfs
from engine_worker.policies.queue_order import QueueOrder


class SchedulerName(StrEnum):
    """The queue orders by name (the worker's AUGSERVE_SCHEDULER): the keys of SCHEDULERS."""

    FCFS = "fcfs"
    FASTSERVE = "fastserve"
    LAMPS = "lamps"
    CONTINUUM = "continuum"
    AUTELLIX = "autellix"


SCHEDULERS: dict[SchedulerName, Callable[..., QueueOrder]] = {
    SchedulerName.FCFS: lambda cm, **options: Fcfs(**options),
    SchedulerName.FASTSERVE: FastServe,
    SchedulerName.LAMPS: Lamps,
    SchedulerName.CONTINUUM: lambda cm, **options: ProgramFcfs(**options),  # pair with handling policy "continuum"
    SchedulerName.AUTELLIX: lambda cm, **options: Plas(**options),
}


def make_scheduler(name: str, cost_model: CostModel, **options: Any) -> QueueOrder:
    try:
        factory = SCHEDULERS[SchedulerName(name)]
    except ValueError:
        raise ValueError(f"unknown scheduler {name!r}; known: {', '.join(SCHEDULERS)}") from None
    return factory(cost_model, **options)
