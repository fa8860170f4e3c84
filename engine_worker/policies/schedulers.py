"""Queue-order policies by name: a `Literal` config field selects one, adding one adds an entry.

Every factory takes the cost model (the ones that need no costs ignore it) plus the policy's own
keyword options, e.g. `make_scheduler("fastserve", cm, starvation_s=STARVATION_PAPER_S)`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from engine_worker.policies.autellix import Plas
from engine_worker.policies.continuum import ProgramFcfs
from engine_worker.policies.cost_model import CostModel
from engine_worker.policies.fastserve import FastServe
from engine_worker.policies.lamps import Lamps
from engine_worker.policies.queue_order import Fcfs, QueueOrder

SchedulerName = Literal["fcfs", "fastserve", "lamps", "continuum", "autellix"]

SCHEDULERS: dict[str, Callable[..., QueueOrder]] = {
    "fcfs": lambda cm, **options: Fcfs(**options),
    "fastserve": FastServe,
    "lamps": Lamps,
    "continuum": lambda cm, **options: ProgramFcfs(**options),  # pair with handling policy "continuum"
    "autellix": lambda cm, **options: Plas(**options),
}


def make_scheduler(name: str, cost_model: CostModel, **options: Any) -> QueueOrder:
    try:
        factory = SCHEDULERS[name]
    except KeyError:
        raise ValueError(f"unknown scheduler {name!r}; known: {', '.join(SCHEDULERS)}") from None
    return factory(cost_model, **options)
