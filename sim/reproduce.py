"""Validation (b): the papers' headline results, on their hardware constants, beside ours.

Each reproduction runs the worker's policy objects on the paper's setting and returns rows of
(claim, the paper's number, ours, whether ours is within the stated tolerance):
- InferCept (arXiv 2402.01869), GPT-J-6B on an A100: sustainable request rate of `infercept`
  over vLLM at equal normalized latency, 1.6x (+-20%). vLLM as the paper ran it (v0): a resumed
  request is discarded and re-queued at the back (`vllm`), whole prefills in iterations of their
  own, no prefix cache. InferCept on the same engine with chunked prefill at S = 384 tokens per
  iteration. Workload: the InferCept trace at its real token counts and call durations (context
  cap 2048), Poisson arrivals.
- InferCept's ablation (Vicuna-13B, 2 req/s): the order vLLM > improved discard > min-waste
  discard/preserve > + swap in normalized latency (each step better).
- LAMPS (arXiv 2410.18248), GPT-J-6B: end-to-end latency (and TTFT) of `infercept+lamps`
  against `infercept` (FCFS), the paper: 27%-85% (TTFT 4%-96%) lower; at loads where InferCept
  keeps a waiting queue, with the code's starvation guard and without it.
- FastServe (arXiv 2305.05920): mean job completion time of its skip-join MLFQ against FCFS
  (Orca-style iteration scheduling, run to completion), up to 5.1x in the paper, on heavy-tailed
  output lengths without calls (bench.workload.heavy_tailed_outputs), a preempted job's KV
  swapped to host as FastServe does (Deployment.preemption = "swap").
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, replace
from typing import Literal

from bench.workload import ConversionConfig
from sim.hardware import PRESETS, Deployment
from sim.run import simulate
from sim.sweep import SweepPoint, sustainable, sweep
from sim.workload import from_trace

PAPER_TRACE = ConversionConfig(time_scale=1.0, token_scale=1.0, context_cap=2048)


@dataclass(frozen=True)
class Row:
    paper: str
    claim: str
    theirs: str
    ours: str
    ok: bool
    detail: str = ""


@dataclass(frozen=True)
class Scale:
    """How much to simulate: the CLI's defaults, or the tests' shorter runs."""
    window_s: float = 300.0
    drain_s: float = 400.0
    seeds: tuple[int, ...] = (0, 1)


QUICK = Scale(window_s=120.0, drain_s=400.0, seeds=(0,))
"""The drain outlasts the trace's longest requests (p95 of a request's total call time 224 s,
max 344 s): a rate is not "fallen behind" for calls still running."""


def vllm_v0(d: Deployment) -> Deployment:
    """The engine InferCept compared against: vLLM 0.2 (no chunked prefill, no prefix cache)."""
    return replace(d, name=f"{d.name}/vllm-v0", chunked_prefill=False, prefix_caching=False,
                   max_num_batched_tokens=max(2048, PAPER_TRACE.context_cap))


def infercept_engine(d: Deployment) -> Deployment:
    """InferCept's engine: vLLM 0.2 plus chunked prefill/recompute at S tokens per iteration."""
    return replace(d, name=f"{d.name}/infercept", prefix_caching=False,
                   max_num_batched_tokens=d.cost_model.saturation_tokens)


def infercept_on_vllm_engine(d: Deployment) -> Deployment:
    """vLLM 0.2's engine as it is (whole prefills), for InferCept's policy apart from its chunking."""
    return replace(vllm_v0(d), name=f"{d.name}/infercept-whole-prefill")


def _trace_workload(rate: float, seed: int, window_s: float):
    return from_trace(rate, window_s, seed, PAPER_TRACE, real_call_s="trace")


SWAP_BUDGET_BASIS = "step-tokens"
"""The papers' swap budget (engine.SimConfig.swap_budget_basis): what one iteration hides."""


def paper_sweep(d: Deployment, system: str, rates: tuple[float, ...], scale: Scale) -> list[SweepPoint]:
    return sweep(d, system, rates, lambda rate, seed: _trace_workload(rate, seed, scale.window_s),
                 window_s=scale.window_s, drain_s=scale.drain_s, seeds=scale.seeds, swap_budget_basis=SWAP_BUDGET_BASIS)


INFERCEPT_RATES = (2.0, 4.0, 6.0, 8.0, 12.0, 16.0)
INFERCEPT_SLO_S = 0.05
"""Normalized latency (s/token) at which the sustainable rates are compared: ~3x the lightly
loaded 0.017 s/token of GPT-J-6B here (the paper compares at equal latency on its curves)."""


A100_40GB_POOL_TOKENS = int((40 * 0.9 - 12.1 - 3) * 1e9 / (2 * 28 * 4096 * 2))
"""A sensitivity check, not the default: GPT-J's pool on a 40 GB A100 (the preset's rule, sim/hardware.py,
on 40 GB). The paper says "A100" without the memory size; its Llama-3-70B runs on 4 of them,
which 141 GB of weights rule out at 40 GB each, so the preset keeps 80 GB."""


def infercept_headline(scale: Scale = Scale(), rates: tuple[float, ...] = INFERCEPT_RATES,
                       slo_s: float = INFERCEPT_SLO_S, pool_tokens: int | None = None,
                       chunked: bool = True) -> tuple[Row, dict[str, list[SweepPoint]]]:
    """`chunked` False runs InferCept's policy on vLLM's own engine (whole prefills): what the
    handling policy and queue order are worth apart from InferCept's chunked prefill at S."""
    d = PRESETS["a100-gptj-6b"]
    if pool_tokens is not None:
        d = replace(d, kv_pool_tokens=pool_tokens)
    engine = infercept_engine(d) if chunked else infercept_on_vllm_engine(d)
    curves = {"vllm": paper_sweep(vllm_v0(d), "vllm:ttft_budget_s=null", rates, scale),
              "infercept": paper_sweep(engine, "infercept:ttft_budget_s=null", rates, scale)}
    base, ours = (sustainable(curves[k], slo_s) for k in ("vllm", "infercept"))
    ratio = ours.rate / base.rate if ours.rate and base.rate else float("nan")
    on = "" if chunked else ", InferCept's policy on vLLM's whole-prefill engine"
    return Row("InferCept", f"sustainable rate vs vLLM at {slo_s} s/token, GPT-J-6B A100{on}", "1.6x",
               f"{ratio:.2f}x", 1.6 * 0.8 <= ratio <= 1.6 * 1.2,
               f"vLLM {_rate(base.rate)} req/s ({base.bound}), "
               f"InferCept {_rate(ours.rate)} req/s ({ours.bound})"), curves


def _rate(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.2f}"


ABLATION = (("vllm", "vllm:ttft_budget_s=null", True),
            ("improved discard", "improved-discard:ttft_budget_s=null", True),
            ("+ min-waste discard/preserve", "infercept:ttft_budget_s=null", False),
            ("+ swap", "infercept:ttft_budget_s=null", True))
"""(step, system, swap allowed). InferCept's own steps: improved discard 24.5%, + min-waste
discard 7.8%, + min-waste swap 12.7%, + preserve 46.1%; our policies join discard and preserve in
one rule, so the middle two of theirs are one step here and swap comes last."""


def infercept_ablation(scale: Scale = Scale(), rate: float = 2.0) -> tuple[Row, list[tuple[str, float]]]:
    d = PRESETS["a100-vicuna-13b"]
    steps = []
    for name, system, swap in ABLATION:
        # Improved discard changes only the queue order: on vLLM's engine, as in the paper's ablation.
        engine = vllm_v0(d) if name in ("vllm", "improved discard") else infercept_engine(d)
        if not swap:
            engine = replace(engine, host_swap_tokens=0)
        nl = paper_sweep(engine, system, (rate,), scale)[0].normalized_latency_s or float("inf")
        steps.append((name, nl))
    ordered = all(a[1] > b[1] for a, b in zip(steps, steps[1:]))
    gains = ", ".join(f"{b[0]} {1 - b[1] / a[1]:.0%}" for a, b in zip(steps, steps[1:]))
    return Row("InferCept ablation", f"each step lowers normalized latency, Vicuna-13B {rate:g} req/s",
               "24.5% / 7.8% / 12.7% / 46.1%", gains, ordered,
               "; ".join(f"{n} {v:.3f} s/token" for n, v in steps)), steps


LAMPS_RATES = (10.0, 12.0)
"""LAMPS ranks the waiting queue, so its gain needs one: on this deployment InferCept's mean TTFT
is 0.11 s at 6 req/s and 0.34 s at 8 (nothing waits; e2e cut 0% there, measured), 8.0 s at 10 and
23.5 s at 12 req/s."""
LAMPS_SYSTEMS = {"LAMPS": "infercept+lamps",
                 "LAMPS without starvation promotion": "infercept+lamps:starvation_threshold=100000000"}
"""The code's guard (100 iterations, ~4 s of these steps, then FCFS at the front for 100,000) is
kept in "LAMPS"; the second row is the ranking alone: under a queue longer than ~4 s every waiting
request is promoted and the order is FCFS again (sim/README.md)."""


def lamps(scale: Scale = Scale(), rates: tuple[float, ...] = LAMPS_RATES,
          systems: dict[str, str] = LAMPS_SYSTEMS) -> tuple[Row, list[tuple[float, str, float, float]]]:
    """(rate, system, e2e cut, TTFT cut) against InferCept (FCFS); the paper: e2e 27%-85% and
    TTFT 4%-96% lower."""
    d = infercept_engine(PRESETS["a100-gptj-6b"])
    base = paper_sweep(d, "infercept:ttft_budget_s=null", rates, scale)
    cuts = []
    for label, system in systems.items():
        ours = paper_sweep(d, system, rates, scale)
        cuts += [(b.rate, label, 1 - o.e2e_s / b.e2e_s, 1 - o.ttft_s / b.ttft_s)
                 for b, o in zip(base, ours) if b.e2e_s and o.e2e_s and b.ttft_s and o.ttft_s]
    best = max(c for _, _, c, _ in cuts)
    return Row("LAMPS", "e2e latency (TTFT) vs InferCept, GPT-J-6B A100", "27%-85% (TTFT 4%-96%) lower",
               ", ".join(f"{label} {c:.0%} ({t:.0%}) at {r:g} req/s" for r, label, c, t in cuts), best >= 0.27 * 0.8,
               "ok when the largest e2e cut reaches the paper's lower end (27%, -20%)"), cuts


FASTSERVE_SLOTS = 4
"""Running slots: FastServe's gain is head-of-line blocking, which needs a bounded batch (ours:
the paper's batch limit is not in what we have; Orca reserves a job's KV up to its maximum
length, which bounds its batch)."""
FASTSERVE_RATES = (7.0, 8.0, 9.0)
"""The paper reports its gain as "up to" 5.1x over its loads. Here FCFS's mean JCT is 0.56 s at 3 req/s
and its queue builds from 7 req/s (1.8 s) to 9 req/s (15 s, every request still done in the
drain): the loads where there is a queue to reorder, short of falling behind."""
PARETO = {"alpha": 1.2, "min_tokens": 8}
FASTSERVE_CONTEXT_CAP = 2048
FASTSERVE_PREEMPTION: Literal["recompute", "swap"] = "swap"
"""FastServe (abstract): it "proactively offloads and uploads intermediate states between GPU
memory and host memory": a preempted job keeps its KV on host (Deployment.preemption)."""


FASTSERVE_SYSTEMS = {"MLFQ": "infercept+fastserve",
                     "MLFQ without starvation promotion": "infercept+fastserve:starvation_s=1e9",
                     "MLFQ admission only": "infercept+fastserve:preempt=false"}
"""The code's 3 s promotion is kept in "MLFQ"; the second row is the skip-join MLFQ alone: under
load every job waits past 3 s, is promoted to the top level and is demoted again a quantum later,
so the order becomes round robin with a swap per turn (sim/README.md)."""


def fastserve(scale: Scale = Scale(),
              rates: tuple[float, ...] = FASTSERVE_RATES) -> tuple[Row, list[tuple[float, str, float]]]:
    d = replace(PRESETS["a100-gptj-6b"], max_num_seqs=FASTSERVE_SLOTS, prefix_caching=False,
                preemption=FASTSERVE_PREEMPTION)
    conv = ConversionConfig(time_scale=1.0, token_scale=1.0, context_cap=FASTSERVE_CONTEXT_CAP)

    def jct(system: str, rate: float) -> float:
        return statistics.mean(
            simulate(d, from_trace(rate, scale.window_s, seed, conv, pareto=PARETO), system, window_s=scale.window_s,
                     drain_s=scale.drain_s, swap_budget_basis=SWAP_BUDGET_BASIS).metrics["e2e_latency_s"]["mean"]
            for seed in scale.seeds)

    gains = []
    for rate in rates:
        # Orca's run-to-completion FCFS: FCFS never takes a running slot away (and the pool never runs out here).
        fcfs = jct("infercept:ttft_budget_s=null", rate)
        gains += [(rate, label, fcfs / jct(system, rate)) for label, system in FASTSERVE_SYSTEMS.items()]
    best = max(g for *_, g in gains)
    return Row("FastServe", f"mean JCT vs FCFS (Orca), Pareto outputs, no calls, {FASTSERVE_SLOTS} slots, "
               "swap preemption", "up to 5.1x", ", ".join(f"{label} {g:.2f}x at {r:g} req/s" for r, label, g in gains),
               5.1 * 0.8 <= best <= 5.1 * 1.2, f"best {best:.2f}x; ok when within 5.1x +-20%"), gains


def table(rows: list[Row]) -> str:
    lines = ["| paper | claim | paper's number | ours | within tolerance | detail |", "|---|---|---|---|---|---|"]
    lines += [f"| {r.paper} | {r.claim} | {r.theirs} | {r.ours} | {'yes' if r.ok else 'NO'} | {r.detail} |"
              for r in rows]
    return "\n".join(lines)
