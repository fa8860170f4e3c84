"""Validation (b): one reproduction per paper, on the paper's constants, with its tolerance.
What does not reproduce is asserted as it stands and said so (sim/README.md's table)."""

from sim import reproduce as R
from sim.hardware import PRESETS


def test_infercept_sustains_at_least_its_published_gain_over_vllm():
    """InferCept 1.6x (+-20%): vLLM's SLO crossing lies between 2 and 4 req/s, InferCept still
    holds the SLO at 8 req/s, so the ratio is at least 8 / vLLM's rate: the lower bound holds.
    The upper bound does NOT: on the longer sweep of sim/README.md ours is 2.18x on the preset's
    80 GB pool (2.11x on a 40 GB A100's, seeds 0 and 1; not run here, to keep the test short)."""
    d = PRESETS["a100-gptj-6b"]
    base = R.sustainable(R.paper_sweep(R.vllm_v0(d), "vllm:ttft_budget_s=null", (2.0, 4.0), R.QUICK), R.INFERCEPT_SLO_S)
    ours = R.paper_sweep(R.infercept_engine(d), "infercept:ttft_budget_s=null", (8.0,), R.QUICK)[0]
    assert base.bound == "interpolated" and 2.0 < base.rate < 4.0
    assert ours.rate_point().kept_up and ours.normalized_latency_s <= R.INFERCEPT_SLO_S
    assert 8.0 / base.rate >= 1.6 * 0.8


def test_infercept_s_policy_on_vllm_s_own_engine_is_within_the_published_gain():
    """The policy apart from the engine: InferCept's handling and queue order on vLLM's
    whole-prefill engine sustain 1.6x (+-20%) vLLM's rate (1.75x with seeds 0 and 1, sim/README.md);
    InferCept's chunked prefill at S = 384 is what takes the headline above the band."""
    d = PRESETS["a100-gptj-6b"]
    base = R.sustainable(R.paper_sweep(R.vllm_v0(d), "vllm:ttft_budget_s=null", (2.0, 4.0), R.QUICK), R.INFERCEPT_SLO_S)
    on_vllm = R.paper_sweep(R.infercept_on_vllm_engine(d), "infercept:ttft_budget_s=null", (6.0, 8.0), R.QUICK)
    whole = R.sustainable(on_vllm, R.INFERCEPT_SLO_S)
    assert base.bound == whole.bound == "interpolated"
    assert 1.6 * 0.8 <= whole.rate / base.rate <= 1.6 * 1.2


def test_the_ablation_steps_lower_latency_in_infercept_order():
    """Min-waste discard/preserve, then swap, each lower normalized latency (the paper's order).
    Improved discard (the paper: -24.5%) is within 5% of vLLM here: not reproduced."""
    _, steps = R.infercept_ablation(R.QUICK)
    nl = dict(steps)
    assert nl["+ min-waste discard/preserve"] < nl["improved discard"] * 0.8
    assert nl["+ swap"] < nl["+ min-waste discard/preserve"]
    assert abs(nl["improved discard"] / nl["vllm"] - 1) < 0.05


LAMPS_TEST = R.Scale(window_s=60.0, drain_s=400.0, seeds=(0,))
"""Half the CLI's window, to keep the suite short: a queue still builds at 12 req/s."""


def test_lamps_against_infercept():
    """LAMPS: e2e 27%-85% and TTFT 4%-96% lower than InferCept in the paper. Here, at 12 req/s where
    InferCept keeps a queue, its ranking alone (starvation promotion off) cuts TTFT by more than
    half, but mean e2e stays within 10% of InferCept's: e2e is dominated by the calls' own time
    (~47 s a request in the trace), not by the queue. Not reproduced."""
    ranking_alone = R.LAMPS_SYSTEMS["LAMPS without starvation promotion"]
    _, cuts = R.lamps(LAMPS_TEST, rates=(12.0,), systems={"rank": ranking_alone})
    (_, _, e2e_cut, ttft_cut), = cuts
    assert ttft_cut > 0.5
    assert abs(e2e_cut) < 0.1


def test_fastserve_against_fcfs():
    """FastServe: up to 5.1x mean JCT over Orca in the paper. Here, with 4 slots and preempted jobs
    swapped to host: the skip-join MLFQ without starvation promotion ~2.7x at 8 req/s; with the
    code's 3 s promotion it is slower than FCFS (every waiting job is promoted, then demoted a
    quantum later: round robin with a swap per turn); admission only is no better than FCFS."""
    _, gains = R.fastserve(R.QUICK, rates=(8.0,))
    by = {label: g for _, label, g in gains}
    assert 2.2 <= by["MLFQ without starvation promotion"] <= 3.2
    assert by["MLFQ"] < 1.0
    assert by["MLFQ admission only"] < 1.05
