"""Validation (a): with this machine's profile and the overheads measured from the bench's own
engine logs, the simulator predicts the full-scale bench (bench-results/full2, extracted to
sim/data) per system and rate; the stated error bounds are the README's."""

import statistics

import pytest

from sim import validate_cpu

COMPLETED_MAE = 0.25
LATENCY_MAE = 0.40


@pytest.mark.parametrize("data", [validate_cpu.BENCH_FULL2, validate_cpu.BENCH_FULL3], ids=["full2", "full3"])
def test_the_simulator_predicts_the_full_scale_bench_within_the_stated_error(data):
    cells = validate_cpu.compare(validate_cpu.load(data))
    assert len(cells) == 8  # full2: 4 systems x 2 rates; full3: 2 systems x 4 rates; 2 repeats each
    assert statistics.mean(abs(c.completed_error) for c in cells) <= COMPLETED_MAE
    assert statistics.mean(abs(c.nl_error) for c in cells) <= LATENCY_MAE


def test_the_overheads_come_from_the_engine_logs_not_from_the_figures():
    extracted = validate_cpu.load()
    o = extracted["overheads"]
    assert o["from_logs"] and 0 < o["step_overhead_s"] < 0.05 and 0 < o["seq_overhead_s"] < 0.05
    by_running = {1: [0.010, 0.012, 0.011, 0.009, 0.010], 4: [0.040, 0.041, 0.039, 0.042, 0.040]}
    step, seq = validate_cpu.fit_overheads(by_running)
    assert abs(seq - 0.01) < 1e-3 and abs(step - 0.0) < 2e-3
