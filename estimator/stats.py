"""Duration statistics as pure functions over a frozen snapshot (no Redis, no clock).

The store and the engine's cached client both reduce to these, so what the HTTP service reports
and what the engine's policies use are the same numbers.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict

Source = Literal["history", "default"]

# Standard normal quantiles, for the default (trace-measured) distributions.
_Z = {0.5: 0.0, 0.9: 1.2815515655446004, 0.99: 2.3263478740408408}

TAIL_FRACTION = 0.1
"""Fallback for expected_remaining when the call has outlived everything we know of: assume it is
about to finish, and predict TAIL_FRACTION x the mean duration. Never zero, so a policy weighing
the cost of keeping a paused request's KV cache still sees one; never the full mean, because a call
that outlived every sample is most likely a slow one finishing late, not a fresh one."""


class ApiDurationStats(BaseModel):
    """Summary of one API kind's recent durations (seconds). source says where it came from."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    api: str
    count: int
    mean_s: float
    std_s: float
    p50_s: float
    p90_s: float
    p99_s: float
    source: Source


@dataclass(frozen=True)
class DurationSnapshot:
    """What the store read for one kind: its durations, sorted ascending, or none (defaults)."""

    api: str
    durations: tuple[float, ...]
    default_mean_s: float
    default_std_s: float
    redis_ok: bool = True

    @property
    def source(self) -> Source:
        return "history" if self.durations else "default"


def percentile(sorted_values: tuple[float, ...], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), for 0 <= q <= 1."""
    if not sorted_values:
        raise ValueError("percentile of no values")
    pos = q * (len(sorted_values) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def summarize(snap: DurationSnapshot) -> ApiDurationStats:
    d = snap.durations
    if not d:
        mean, std = snap.default_mean_s, snap.default_std_s
        q = {p: max(0.0, mean + z * std) for p, z in _Z.items()}
        return ApiDurationStats(
            api=snap.api, count=0, mean_s=mean, std_s=std,
            p50_s=q[0.5], p90_s=q[0.9], p99_s=q[0.99], source="default",
        )
    mean = math.fsum(d) / len(d)
    var = math.fsum((x - mean) ** 2 for x in d) / len(d)
    return ApiDurationStats(
        api=snap.api, count=len(d), mean_s=mean, std_s=math.sqrt(var),
        p50_s=percentile(d, 0.5), p90_s=percentile(d, 0.9), p99_s=percentile(d, 0.99),
        source="history",
    )


def expected_remaining(snap: DurationSnapshot, elapsed_s: float) -> float:
    """E[D - t | D > t] over the recorded durations D, for a call that has run t = elapsed_s.

    No history: max(default mean - t, TAIL_FRACTION x default mean).
    History, but no recorded duration exceeds t: TAIL_FRACTION x the recorded mean.
    """
    t = max(0.0, elapsed_s)
    d = snap.durations
    if not d:
        return max(snap.default_mean_s - t, TAIL_FRACTION * snap.default_mean_s)
    above = d[bisect.bisect_right(d, t):]
    if above:
        return math.fsum(above) / len(above) - t
    return TAIL_FRACTION * (math.fsum(d) / len(d))
