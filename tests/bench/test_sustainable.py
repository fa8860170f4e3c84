"""The sustainable rate from a sweep, table-driven."""

from __future__ import annotations

import pytest

from bench.sustainable import RatePoint, SustainableRate, sustainable_rate

SLO = 0.3


def _p(rate, latency, share=1.0):
    return RatePoint(rate, latency, share)


@pytest.mark.parametrize(("points", "expected"), [
    # crosses the SLO between 0.4 (0.2) and 0.6 (0.4): halfway, 0.5
    ([_p(0.2, 0.1), _p(0.4, 0.2), _p(0.6, 0.4)], SustainableRate(0.5, "interpolated", 0.4, 0.6)),
    # order of the points does not matter
    ([_p(0.6, 0.4), _p(0.2, 0.1), _p(0.4, 0.2)], SustainableRate(0.5, "interpolated", 0.4, 0.6)),
    # exactly at the SLO holds
    ([_p(0.2, 0.1), _p(0.4, 0.3), _p(0.6, 0.9)], SustainableRate(0.4, "interpolated", 0.4, 0.6)),
    # every rate held: the highest is a lower bound
    ([_p(0.2, 0.1), _p(0.4, 0.2)], SustainableRate(0.4, "highest-measured", 0.4, None)),
    # the next rate fell behind (cut requests): no interpolation on its biased latency
    ([_p(0.2, 0.1), _p(0.4, 0.2, share=0.8), _p(0.6, 0.25)], SustainableRate(0.2, "last-sustained", 0.2, 0.4)),
    # nothing completed at the next rate
    ([_p(0.2, 0.1), _p(0.4, None, share=0.0)], SustainableRate(0.2, "last-sustained", 0.2, 0.4)),
    # a recovery after the first miss is noise
    ([_p(0.2, 0.1), _p(0.4, 0.5), _p(0.6, 0.2)], SustainableRate(0.3, "interpolated", 0.2, 0.4)),
    # even the lowest rate missed
    ([_p(0.2, 0.4), _p(0.4, 0.9)], SustainableRate(None, "below-lowest", None, 0.2)),
    ([], SustainableRate(None, "below-lowest")),
])
def test_sustainable_rate(points, expected):
    got = sustainable_rate(points, SLO)
    assert got.bound == expected.bound and (got.below, got.above) == (expected.below, expected.above)
    assert got.rate == (None if expected.rate is None else pytest.approx(expected.rate))


def test_a_nonsense_slo_is_refused():
    with pytest.raises(ValueError, match="SLO must be positive"):
        sustainable_rate([_p(1.0, 0.1)], 0.0)
