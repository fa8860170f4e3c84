"""Metrics math, table-driven, on hand-made records."""

from __future__ import annotations

import pytest

from bench.metrics import (
    api_time_s,
    chosen_waste,
    interception_sum,
    normalized_latency_s,
    percentile,
    summary,
    system_metrics,
    ttft_s,
)


@pytest.mark.parametrize(("values", "q", "expected"), [
    ([5.0], 50, 5.0), ([5.0], 99, 5.0),
    ([1.0, 2.0, 3.0, 4.0], 50, 2.5), ([1.0, 2.0, 3.0, 4.0], 90, 3.7),
    ([4.0, 1.0, 3.0, 2.0], 0, 1.0), ([4.0, 1.0, 3.0, 2.0], 100, 4.0),
    (list(range(101)), 99, 99.0), (list(range(11)), 90, 9.0),
])
def test_percentile_interpolates_like_numpy(values, q, expected):
    assert percentile(values, q) == pytest.approx(expected)


def test_summary_of_nothing_has_every_key_as_none():
    assert summary([]) == {"count": 0, "mean": None, "p50": None, "p90": None, "p99": None, "max": None}
    assert summary([1.0, 3.0])["mean"] == 2.0


def _rec(arrival=0.0, end=10.0, tokens=100, calls=(), ok=True, first=None, **extra):
    return {"index": 0, "arrival_s": arrival, "sent_s": arrival, "end_s": end, "ok": ok, "completion_tokens": tokens,
            "first_token_s": first, "interceptions": list(calls), "error": None if ok else "boom", **extra}


def _call(duration, strategy="preserve", **extra):
    return {"api": "image", "duration_s": duration, "strategy": strategy, "ok": True, **extra}


@pytest.mark.parametrize(("record", "api", "normalized"), [
    (_rec(0.0, 10.0, 100), 0.0, 0.1),
    (_rec(2.0, 10.0, 100, [_call(3.0), _call(1.0)]), 4.0, 0.04),  # (10 - 2 - 4) / 100
    (_rec(0.0, 5.0, 0), 0.0, None),                                 # nothing generated: undefined
])
def test_api_time_and_normalized_latency(record, api, normalized):
    assert api_time_s(record) == pytest.approx(api)
    assert normalized_latency_s(record) == (None if normalized is None else pytest.approx(normalized))


def test_ttft_counts_from_arrival():
    assert ttft_s(_rec(arrival=1.0, first=1.25)) == pytest.approx(0.25)
    assert ttft_s(_rec()) is None


def test_policy_fields_are_summed_when_present_and_none_when_absent():
    with_fields = _rec(calls=[_call(1, "discard", recomputed_tokens=300, waste_discard=2.0, waste_preserve=5.0),
                              _call(1, "preserve", recomputed_tokens=0, waste_discard=9.0, waste_preserve=1.0)])
    assert interception_sum(with_fields, "recomputed_tokens") == 300
    assert chosen_waste(with_fields) == pytest.approx(3.0)  # 2.0 (discarded) + 1.0 (preserved)
    bare = _rec(calls=[_call(1)])
    assert interception_sum(bare, "recomputed_tokens") is None and chosen_waste(bare) is None


def test_system_metrics_counts_rates_and_strategies():
    records = [
        _rec(0.0, 4.0, 100, [_call(1.0, "preserve"), _call(1.0, "discard", recomputed_tokens=200)], first=0.5),
        _rec(1.0, 9.0, 50, [_call(2.0, "swap")], first=1.2),
        _rec(2.0, 14.0, 50, first=2.1),                           # completes after the 10 s window
        _rec(3.0, 3.5, 0, ok=False),                              # failed
        {**_rec(4.0, None, 0, ok=False), "error": "cut"},         # unfinished at the drain end
        {**_rec(9.0, None, 0), "sent_s": None},                   # never sent: not counted
    ]
    m = system_metrics(records, window_s=10.0)
    assert m["requests"] == {"sent": 5, "completed": 3, "failed": 1, "unfinished": 1, "completed_in_window": 2}
    assert m["completed_per_s"] == pytest.approx(0.2)
    assert m["generated_tokens"] == 200
    assert m["output_tokens_per_s"] == pytest.approx(200 / 14.0)  # first arrival 0 to last end 14
    # normalized latencies: (4-2)/100, (8-2)/50, 12/50
    assert m["normalized_latency_s"]["mean"] == pytest.approx((0.02 + 0.12 + 0.24) / 3)
    assert m["normalized_latency_s"]["p50"] == pytest.approx(0.12)
    assert m["e2e_latency_s"]["p50"] == pytest.approx(8.0)
    assert m["ttft_s"]["mean"] == pytest.approx((0.5 + 0.2 + 0.1) / 3)
    assert m["interceptions"]["total"] == 3
    assert m["interceptions"]["by_strategy"] == {"discard": 1, "preserve": 1, "swap": 1}
    assert m["interceptions"]["by_api"] == {"image": 3}
    assert m["recomputed_tokens"]["requests_reporting"] == 1 and m["recomputed_tokens"]["total"] == 200
    assert m["recompute_s"]["total"] is None and m["waste"] == {} and m["waste_chosen"]["total"] is None
    assert m["held_kv_byte_seconds"] == {"requests_reporting": 0, "total": None, "per_request": summary([])}
    assert {e["error"] for e in m["errors"]} == {"boom", "cut"}


def test_system_metrics_of_a_run_where_nothing_completed():
    m = system_metrics([_rec(0.0, 1.0, 0, ok=False)], window_s=5.0)
    assert m["requests"]["completed"] == 0 and m["completed_per_s"] == 0.0
    assert m["output_tokens_per_s"] is None and m["normalized_latency_s"]["mean"] is None


def test_duration_estimate_errors_compare_prediction_and_actual():
    from bench.metrics import duration_estimate_errors

    calls = [{"predicted_duration_s": 2.0, "duration_s": 3.5}, {"predicted_duration_s": 1.0, "duration_s": 0.25},
             {"duration_s": 1.0}]
    assert duration_estimate_errors(calls) == [1.5, 0.75]
