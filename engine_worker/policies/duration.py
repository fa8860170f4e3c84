"""Which call duration the preserve waste uses (the InferCept issue's three estimators)."""

from __future__ import annotations

from typing import Literal

DurationMode = Literal["elapsed", "history", "oracle"]


def expected_duration(mode: DurationMode, elapsed_s: float, history_remaining_s: float | None,
                      oracle_s: float | None) -> float:
    """elapsed: the paper's online rule, time since the call began (long calls drift from preserve
    to discard as it grows); history: elapsed + the estimator's expected remaining time given
    elapsed; oracle: the duration the plan states (comparisons only), else elapsed."""
    if mode == "oracle" and oracle_s is not None:
        return oracle_s
    if mode == "history" and history_remaining_s is not None:
        return elapsed_s + history_remaining_s
    return elapsed_s
