"""The operator's question: on this hardware, model, KV pool and workload, which policy x scheduler
combination sustains the highest request rate, at what latency? Ranks them and says which to deploy.

Sustainable rate: bench.sustainable's rule (normalized latency mean under the SLO and >= 95% of
requests completed). Ranking: sustainable rate, highest first; within 5% of each other, the lower
normalized latency at the highest rate both sustained decides.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.sustainable import SustainableRate
from sim.hardware import Deployment
from sim.sweep import SweepPoint, WorkloadAt, sustainable, sweep

DEFAULT_SYSTEMS = ("vllm:ttft_budget_s=null", "improved-discard", "preserve", "swap", "infercept",
                   "infercept-on-demand", "infercept+lamps", "infercept+autellix", "infercept+fastserve",
                   "continuum+continuum",
                   "fastserve+fastserve")
"""The handling policies (FCFS with the worker's default TTFT budget) and the queue orders beside
InferCept's rule; `--systems` takes any POLICY[+SCHEDULER][:key=value] of bench.systems."""
TIE_SHARE = 0.05


@dataclass(frozen=True)
class Ranked:
    system: str
    points: list[SweepPoint]
    sustained: SustainableRate
    latency_s: float | None
    """Normalized latency at the comparison rate (the highest rate every top system sustained)."""


@dataclass(frozen=True)
class Ranking:
    ranked: list[Ranked]
    slo_s: float
    cpu_s: float
    simulated_s: float

    @property
    def best(self) -> Ranked:
        return self.ranked[0]

    @property
    def cpu_s_per_simulated_hour(self) -> float:
        return self.cpu_s / (self.simulated_s / 3600) if self.simulated_s else float("nan")


def ranking_key(rate: float | None, top: float, latency_s: float | None) -> tuple[int, float, float]:
    """Best first: systems within TIE_SHARE of the top sustainable rate tie and are ordered by
    latency at the common rate; the rest follow by sustainable rate, highest first."""
    rate = rate or 0.0
    tied = bool(top) and rate >= top * (1 - TIE_SHARE)
    return (0 if tied else 1, 0.0 if tied else -rate, latency_s if latency_s is not None else float("inf"))


def rank(deployment: Deployment, systems: Sequence[str], rates: Sequence[float], workload_at: WorkloadAt, *,
         window_s: float, drain_s: float, slo_s: float, seeds: Sequence[int] = (0,)) -> Ranking:
    start = time.process_time()
    curves = {s: sweep(deployment, s, rates, workload_at, window_s=window_s, drain_s=drain_s, seeds=seeds)
              for s in systems}
    cpu = time.process_time() - start
    sustained = {s: sustainable(pts, slo_s) for s, pts in curves.items()}
    held = [r for s in systems if (r := sustained[s].rate) is not None]
    compare_at = max((p.rate for p in curves[systems[0]] if held and p.rate <= min(held)), default=min(rates))

    def latency(system: str) -> float | None:
        return next((p.normalized_latency_s for p in curves[system] if p.rate == compare_at), None)

    top = max(held, default=0.0)
    ordered = sorted(systems, key=lambda s: ranking_key(sustained[s].rate, top, latency(s)))
    ranked = [Ranked(s, curves[s], sustained[s], latency(s)) for s in ordered]
    simulated = sum(p.simulated_s for pts in curves.values() for p in pts)
    return Ranking(ranked, slo_s, cpu, simulated)


def table(r: Ranking) -> str:
    lines = [f"| rank | system | sustainable req/s (SLO {r.slo_s} s/token) | bound "
             "| norm. latency s/token | completed/s by rate |",
             "|---|---|---|---|---|---|"]
    for i, x in enumerate(r.ranked, 1):
        rate = f"{x.sustained.rate:.3g}" if x.sustained.rate is not None else "< lowest"
        lat = f"{x.latency_s:.4f}" if x.latency_s is not None else "-"
        by_rate = " ".join(f"{p.rate:g}:{p.completed_per_s:.3g}" for p in x.points)
        lines.append(f"| {i} | {x.system} | {rate} | {x.sustained.bound} | {lat} | {by_rate} |")
    return "\n".join(lines)


def recommendation(r: Ranking) -> str:
    b = r.best
    rate = f"{b.sustained.rate:.3g} req/s" if b.sustained.rate is not None else "no rate of the sweep"
    return (f"Deploy {b.system}: it sustains {rate} at a mean normalized latency under {r.slo_s} s/token "
            f"({b.sustained.bound}).")


def plot(r: Ranking, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for x in r.ranked:
        pts = [p for p in x.points if p.normalized_latency_s is not None]
        ax.plot([p.rate for p in pts], [p.normalized_latency_s for p in pts],  # type: ignore[arg-type]  # not None
                marker="o", label=x.system)
    ax.axhline(r.slo_s, color="grey", linestyle="--", label=f"SLO {r.slo_s} s/token")
    ax.set_xlabel("request rate (req/s)")
    ax.set_ylabel("normalized latency (s/token, mean)")
    ax.set_yscale("log")
    ax.set_title(title)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
