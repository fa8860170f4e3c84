"""The per-kind output-length predictor, alone and on the InferCept trace."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine_worker.policies.output_length import DEFAULT_TOKENS, OutputLengthHistory, evaluate, main, trace_samples


def test_median_per_kind_with_global_then_default_fallback():
    history = OutputLengthHistory()
    assert history.predict("qa") == DEFAULT_TOKENS
    for n in (10, 20, 1000):
        history.record("calculator", n)
    assert history.predict("calculator") == 20  # the median ignores the one long answer
    assert history.predict("qa") == 20  # no qa history yet: all kinds
    history.record("qa", 300)
    assert history.predict("qa") == 300


def test_even_sample_counts_round_the_median_up():
    history = OutputLengthHistory()
    for n in (10, 21):
        history.record("k", n)
    assert history.predict("k") == 16


def test_remaining_conditions_on_what_was_generated():
    history = OutputLengthHistory()
    for n in (10, 20, 30, 200, 400):
        history.record("k", n)
    assert history.predict_remaining("k", 0) == 30
    assert history.predict_remaining("k", 25) == 200 - 25  # median of 30, 200, 400
    assert history.predict_remaining("k", 500) == 250  # longer than anything seen: half as much again


def test_without_history_the_default_counts_down_then_the_tail_rule_applies():
    history = OutputLengthHistory(default_tokens=64)
    assert [history.predict_remaining("k", g) for g in (0, 10, 64, 100)] == [64, 54, 32, 50]


def test_the_window_forgets_the_oldest():
    history = OutputLengthHistory(window=2)
    for n in (1000, 5, 7):
        history.record("k", n)
    assert history.samples("k") == 2 and history.predict("k") == 6


@given(st.lists(st.tuples(st.sampled_from(["a", "b", None]), st.integers(0, 5000)), max_size=200),
       st.integers(1, 50))
def test_window_bounds_memory_and_predictions_stay_in_range(records, window):
    history = OutputLengthHistory(window=window)
    for kind, n in records:
        history.record(kind, n)
        assert history.samples(kind) <= window and history.samples("*") <= window
    seen = [n for _, n in records[-window:]]
    if records:
        assert min(seen) <= history.predict("*") <= max(seen)


def test_evaluate_predicts_before_recording():
    rows = {r.kind: r for r in evaluate([("k", 100), ("k", 100), ("k", 40)], OutputLengthHistory(default_tokens=0))}
    # predictions: 0 (the default) -> error 100; then 100 -> 0; then 100 -> 60.
    assert rows["k"].mae_tokens == pytest.approx(160 / 3)
    assert rows["*"].samples == 3


def test_error_on_the_infercept_trace_beats_a_global_median():
    samples = trace_samples()
    assert len(samples) == 1841  # every segment that ends in a call
    per_kind = {r.kind: r for r in evaluate(samples)}
    global_only = {r.kind: r for r in evaluate([("any", n) for _, n in samples])}
    # Measured: 24.5 tokens MAE per kind vs 44.5 with one global median (mean length 59.7).
    assert per_kind["*"].mae_tokens < 0.6 * global_only["*"].mae_tokens
    assert per_kind["*"].relative_mae < 0.5


def test_the_command_prints_the_table(capsys):
    main([])
    out = capsys.readouterr().out
    assert "per-kind median" in out and "calculator" in out and "global median only" in out
