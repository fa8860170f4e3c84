"""Validation (b): one reproduction per paper, on the paper's constants, with its tolerance.
What does not reproduce is asserted as it stands and said so (sim/README.md's table)."""

from sim import reproduce as R
from sim.hardware import PRESETS


def test_infercept_sustains_at_least_its_published_gain_over_vllm():
    """InferCept 1.6x (+-20%): vLLM's SLO crossing lies between 4 and 6 req/s, InferCept still
    holds the SLO at 8 req/s, so the ratio is at least 8 / vLLM's rate: the lower bound holds.
    The upper bound does NOT: on the longer sweep of sim/README.md ours is ~2.9x (not run here,
    to keep the test short)."""
    d = PRESETS["a100-gptj-6b"]
    base = R.sustainable(R.paper_sweep(R.vllm_v0(d), "vllm:ttft_budget_s=null", (4.0, 6.0), R.QUICK), R.INFERCEPT_SLO_S)
    ours = R.paper_sweep(R.infercept_engine(d), "infercept:ttft_budget_s=null", (8.0,), R.QUICK)[0]
    assert base.bound == "interpolated" and 4.0 < base.rate < 6.0
    assert ours.rate_point().kept_up and ours.normalized_latency_s <= R.INFERCEPT_SLO_S
    assert 8.0 / base.rate >= 1.6 * 0.8


def test_the_ablation_steps_lower_latency_in_infercept_order():
    """Min-waste discard/preserve, then swap, each lower normalized latency (the paper's order).
    Improved discard (the paper: -24.5%) is within 5% of vLLM here: not reproduced."""
    _, steps = R.infercept_ablation(R.QUICK)
    nl = dict(steps)
    assert nl["+ min-waste discard/preserve"] < nl["improved discard"] * 0.8
    assert nl["+ swap"] < nl["+ min-waste discard/preserve"]
    assert abs(nl["improved discard"] / nl["vllm"] - 1) < 0.05


def test_lamps_against_infercept():
    """LAMPS: 27%-85% lower e2e in the paper. Here its ranking only reorders a waiting queue, and on
    the A100 GPT-J deployment InferCept keeps none below saturation: e2e within 2% (not reproduced)."""
    _, cuts = R.lamps(R.QUICK, rates=(6.0,))
    assert all(abs(c) < 0.02 for _, c in cuts)


def test_fastserve_against_fcfs():
    """FastServe: 5.1x mean JCT over Orca in the paper. Here, with 4 slots and recompute on
    preemption: admission-only MLFQ within 5% of FCFS, preemptive MLFQ slower (not reproduced)."""
    _, gains = R.fastserve(R.QUICK, rates=(4.0,))
    by = {label: g for _, label, g in gains}
    assert 0.95 <= by["MLFQ admission only"] <= 1.05
    assert by["MLFQ"] < 1.0
