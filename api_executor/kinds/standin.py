"""Calibrated stand-ins for APIs that cannot run here (a human's turn, image and speech models).

A stand-in does no work: it decides how long the real thing would have taken (the call's
`duration_s`, waited exactly; else a draw from the duration distribution measured in the trace,
times CommonSettings.time_scale) and what text it
returns (exactly `return_tokens` whitespace-separated words, saying what it stands for). The task
then schedules the delivery after that wait instead of sleeping, so waits cost no worker process.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from api_executor.errors import ToolError
from common.schemas import ToolCallTask

MAX_DURATION_S = 3600.0
MAX_RETURN_TOKENS = 65536


@dataclass(frozen=True)
class StandInSpec:
    kind: str
    mean_s: float
    std_s: float
    min_s: float
    max_s: float
    default_tokens: int
    header: Callable[[dict[str, Any], float], str]
    """(arguments, duration_s) -> the opening that says what this stands for."""
    filler: tuple[str, ...]
    """Sentences the rest of the words are drawn from."""


@dataclass(frozen=True)
class StandInPlan:
    duration_s: float
    """How long the real API would take (trace seconds, before time_scale)."""
    wait_s: float
    """How long the delivery is held back: an explicit duration_s exactly, a drawn one x time_scale."""
    content: str


def plan(spec: StandInSpec, call: ToolCallTask, time_scale: float) -> StandInPlan:
    # Seeded by call_id: a re-run of the same call (acks_late redelivery) plans the same thing.
    rng = random.Random(f"{spec.kind}:{call.call_id}")
    duration = _requested_duration(call)
    if duration is not None:
        wait = duration  # an explicit duration (a replayed trace, a scripted plan) is waited exactly
    else:
        duration = min(spec.max_s, max(spec.min_s, rng.gauss(spec.mean_s, spec.std_s)))
        wait = duration * time_scale
    n_words = spec.default_tokens if call.return_tokens is None else call.return_tokens
    if not 0 <= n_words <= MAX_RETURN_TOKENS:
        raise ToolError(f"return_tokens must be from 0 to {MAX_RETURN_TOKENS}")
    content = exact_words(spec.header(call.arguments, duration), spec.filler, n_words, rng)
    return StandInPlan(duration_s=duration, wait_s=wait, content=content)


def _requested_duration(call: ToolCallTask) -> float | None:
    """Only the call's own field, which only a scripted plan sets (an operator's: the gateway
    refuses plans from other keys). A `duration_s` among the arguments is the model's writing,
    and the model writes what the client's prompt asks: never a wait, nor an estimator sample."""
    value = call.duration_s
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ToolError("duration_s must be a number of seconds")
    if not 0 <= value <= MAX_DURATION_S:
        raise ToolError(f"duration_s must be from 0 to {MAX_DURATION_S:g} seconds")
    return float(value)


def exact_words(header: str, filler: tuple[str, ...], n: int, rng: random.Random) -> str:
    """The header, then filler sentences, cut to exactly n whitespace-separated words."""
    words = header.split()
    while len(words) < n:
        words += rng.choice(filler).split()
    return " ".join(words[:n])


def prompt_words(arguments: dict[str, Any], *names: str, limit: int = 16) -> str:
    """The first string argument among `names`, flattened to at most `limit` words."""
    for name in names:
        value = arguments.get(name)
        if isinstance(value, str) and value.strip():
            words = value.split()
            return " ".join(words[:limit]) + (" ..." if len(words) > limit else "")
    return ""
