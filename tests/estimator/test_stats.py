"""Duration statistics: summaries, conditional remaining time and their stated fallbacks (pure)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from estimator.stats import TAIL_FRACTION, DurationSnapshot, expected_remaining, percentile, summarize


def snap(*durations: float, default_mean: float = 10.0, default_std: float = 0.0) -> DurationSnapshot:
    return DurationSnapshot(api="qa", durations=tuple(sorted(durations)), default_mean_s=default_mean,
                            default_std_s=default_std)


def test_summary_of_history() -> None:
    stats = summarize(snap(4.0, 1.0, 3.0, 2.0))
    assert (stats.count, stats.source, stats.mean_s) == (4, "history", 2.5)
    assert stats.std_s == pytest.approx(math.sqrt(1.25))
    assert (stats.p50_s, stats.p90_s, stats.p99_s) == pytest.approx((2.5, 3.7, 3.97))


def test_summary_of_defaults() -> None:
    stats = summarize(snap(default_mean=28.2, default_std=18.4))
    assert (stats.count, stats.source, stats.mean_s, stats.std_s, stats.p50_s) == (0, "default", 28.2, 18.4, 28.2)
    assert stats.p90_s == pytest.approx(28.2 + 1.2816 * 18.4, abs=1e-3)
    assert stats.p99_s == pytest.approx(28.2 + 2.3263 * 18.4, abs=1e-3)


@pytest.mark.parametrize(("durations", "elapsed", "expected"), [
    ((1.0, 2.0, 3.0, 10.0), 0.0, 4.0),        # nothing elapsed: the mean
    ((1.0, 2.0, 3.0, 10.0), 0.5, 3.5),
    ((1.0, 2.0, 3.0, 10.0), 2.5, 4.0),        # mean of (3, 10) - 2.5: survivors are the slow ones
    ((1.0, 2.0, 3.0, 10.0), 9.0, 1.0),
    ((1.0, 2.0, 3.0, 10.0), 10.0, TAIL_FRACTION * 4.0),   # outlived every sample: tail fallback
    ((1.0, 2.0, 3.0, 10.0), 99.0, TAIL_FRACTION * 4.0),
    ((1.0, 2.0, 3.0, 10.0), -5.0, 4.0),       # negative elapsed reads as 0
    ((), 3.0, 7.0),                           # defaults (mean 10): mean - elapsed
    ((), 9.5, TAIL_FRACTION * 10.0),          # ... but never below the tail fallback
    ((), 50.0, TAIL_FRACTION * 10.0),
])
def test_expected_remaining(durations: tuple[float, ...], elapsed: float, expected: float) -> None:
    assert expected_remaining(snap(*durations), elapsed) == pytest.approx(expected)


def test_percentile_edges() -> None:
    assert percentile((5.0,), 0.99) == 5.0
    assert percentile((1.0, 2.0), 0.0) == 1.0 and percentile((1.0, 2.0), 1.0) == 2.0
    with pytest.raises(ValueError):
        percentile((), 0.5)


durations_st = st.lists(st.floats(0.001, 1000.0), min_size=1, max_size=200)


@given(durations_st, st.floats(0.0, 2000.0))
def test_remaining_is_positive_and_conditional(durations: list[float], elapsed: float) -> None:
    s = snap(*durations)
    remaining = expected_remaining(s, elapsed)
    assert remaining > 0
    survivors = [d for d in durations if d > elapsed]
    if survivors:
        # The call ends, in expectation, within the surviving samples' range.
        assert min(survivors) - elapsed - 1e-9 <= remaining <= max(survivors) - elapsed + 1e-9


@given(durations_st)
def test_quantiles_are_ordered_and_bounded(durations: list[float]) -> None:
    stats = summarize(snap(*durations))
    assert min(durations) <= stats.p50_s <= stats.p90_s <= stats.p99_s <= max(durations)
    assert min(durations) - 1e-9 <= stats.mean_s <= max(durations) + 1e-9
