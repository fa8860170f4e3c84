"""A rate sweep of one system and its sustainable rate (bench.sustainable's rule, unchanged)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bench.sustainable import RatePoint, SustainableRate, sustainable_rate
from sim.hardware import Deployment
from sim.run import simulate
from sim.workload import SimRequest

WorkloadAt = Callable[[float, int], list[SimRequest]]
"""(rate, seed) -> the requests of that run."""


@dataclass(frozen=True)
class SweepPoint:
    rate: float
    completed_per_s: float
    completed_share: float
    normalized_latency_s: float | None
    """Mean over completed requests, averaged over seeds."""
    e2e_s: float | None
    ttft_s: float | None
    simulated_s: float

    def rate_point(self) -> RatePoint:
        return RatePoint(self.rate, self.normalized_latency_s, self.completed_share)


def _mean(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return sum(vals) / len(vals) if vals else None


def sweep(deployment: Deployment, system: str, rates: Sequence[float], workload_at: WorkloadAt, *,
          window_s: float, drain_s: float, seeds: Sequence[int] = (0,), **options: Any) -> list[SweepPoint]:
    points = []
    for rate in rates:
        runs = [simulate(deployment, workload_at(rate, seed), system, window_s=window_s, drain_s=drain_s, **options)
                for seed in seeds]
        ms = [r.metrics for r in runs]
        points.append(SweepPoint(
            rate, sum(m["completed_per_s"] for m in ms) / len(ms),
            sum(m["requests"]["completed"] for m in ms) / max(1, sum(m["requests"]["sent"] for m in ms)),
            _mean([m["normalized_latency_s"]["mean"] for m in ms]), _mean([m["e2e_latency_s"]["mean"] for m in ms]),
            _mean([m["ttft_s"]["mean"] for m in ms]), sum(r.simulated_s for r in runs)))
    return points


def sustainable(points: Sequence[SweepPoint], slo_s: float) -> SustainableRate:
    return sustainable_rate([p.rate_point() for p in points], slo_s)


def latency_at(points: Sequence[SweepPoint], rate: float) -> float | None:
    return next((p.normalized_latency_s for p in points if abs(p.rate - rate) < 1e-9), None)
