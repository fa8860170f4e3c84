"""The sustainable request rate of one system from its rate sweep: pure, so a saved results file
can be re-analysed with another SLO.

A rate is sustained when the latency statistic (normalized latency mean or p90, s/token) is at or
under the SLO AND the system kept up: at least MIN_COMPLETED_SHARE of the requests sent finished
before the drain ended. The second condition matters because requests cut at the drain end are not
in the latencies: an overloaded system that finishes only its easy requests would otherwise look
fast.

Walking up from the lowest rate, the sustainable rate is the last sustained rate; when the next
rate missed the SLO on latency alone (it kept up), the SLO crossing is interpolated linearly
between the two points (latency is close to linear between neighbouring rates below saturation;
beyond it the interpolation is conservative because latency grows faster than linearly). Rates
after the first miss are not considered: a recovery there is noise, not capacity.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

MIN_COMPLETED_SHARE = 0.95
Statistic = Literal["mean", "p90"]


@dataclass(frozen=True)
class RatePoint:
    rate: float
    latency_s: float | None
    """The statistic over completed requests; None when none completed."""
    completed_share: float
    """Completed / sent."""

    @property
    def kept_up(self) -> bool:
        return self.latency_s is not None and self.completed_share >= MIN_COMPLETED_SHARE


@dataclass(frozen=True)
class SustainableRate:
    rate: float | None
    """req/s; None when even the lowest rate missed the SLO (the capacity is below it)."""
    bound: Literal["interpolated", "last-sustained", "highest-measured", "below-lowest"]
    """interpolated: between `below` and `above` on latency; last-sustained: `above` fell behind
    (cut requests), so no interpolation; highest-measured: every rate held, so this is a lower
    bound; below-lowest: no rate held."""
    below: float | None = None
    above: float | None = None


def sustainable_rate(points: list[RatePoint], slo_s: float) -> SustainableRate:
    if slo_s <= 0:
        raise ValueError("the SLO must be positive")
    ordered = sorted(points, key=lambda p: p.rate)
    if not ordered:
        return SustainableRate(None, "below-lowest")
    last: RatePoint | None = None
    for point in ordered:
        if point.kept_up and point.latency_s <= slo_s:  # type: ignore[operator]
            last = point
            continue
        if last is None:
            return SustainableRate(None, "below-lowest", above=point.rate)
        if not point.kept_up:
            return SustainableRate(last.rate, "last-sustained", below=last.rate, above=point.rate)
        fraction = (slo_s - last.latency_s) / (point.latency_s - last.latency_s)  # type: ignore[operator]
        rate = last.rate + fraction * (point.rate - last.rate)
        return SustainableRate(rate, "interpolated", below=last.rate, above=point.rate)
    assert last is not None
    return SustainableRate(last.rate, "highest-measured", below=last.rate)
