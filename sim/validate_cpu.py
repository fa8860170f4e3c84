"""Validation (a): with the CPU profile, the simulator predicts the full-scale bench on this machine.

The bench's figures are extracted once from its results file into sim/data/ (`extract`), with
the per-iteration overheads measured from the same runs' engine logs: vLLM's stats line every
10 s gives generation tokens/s with R requests running, so one step lasts R / (tokens/s); less
the profile's T_fwd of the tokens it processed, that is the stack's own per-step cost (Python
scheduling, sampling, output, and the other processes on the 2 shared cores). Its median per R,
fitted as step_overhead + seq_overhead x R, is the calibration; it is measured from the engine,
not fitted to the figures predicted (completed req/s, normalized latency).

`compare` replays the same workloads (bench.workload, same seeds, rates, window and drain) for
each system and reports the simulated beside the measured figure, per rate, averaged over repeats.
"""

from __future__ import annotations

import json
import re
import statistics
from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bench.workload import ConversionConfig
from engine_worker import profile_store
from engine_worker.policies.cost_model import CostModel
from sim.hardware import Deployment, cpu_profile
from sim.run import simulate
from sim.workload import from_trace

DATA = Path(__file__).resolve().parent / "data"
CPU_PROFILE = DATA / "cpu-smollm2-135m-float32.json"
"""The worker's measured profile on this machine (a copy of its cache file, so tests need no cache)."""
BENCH_FULL2 = DATA / "bench-full2.json"
BENCH_FULL3 = DATA / "bench-full3.json"
BENCH_VAL9 = DATA / "bench-val9.json"
"""The default policy and stock vLLM in bfloat16 on an Intel Xeon with AMX, 0.15 and 0.3 req/s
(profile: cpu-smollm2-135m-bfloat16-xeon.json)."""
BENCH_VAL10 = DATA / "bench-val10.json"
"""The same at 0.45 req/s, run after the simulator had predicted it from BENCH_VAL9's overheads."""
STATS_LINE = re.compile(r"prompt throughput: ([\d.]+) tokens/s, Avg generation throughput: ([\d.]+) tokens/s, "
                        r"Running: (\d+) reqs")
LEGACY_NAMES = {"vllm": "vllm:ttft_budget_s=null", "infercept": "infercept:ttft_budget_s=null"}
"""full2 ran before the FCFS TTFT budget became the default: its bare names had none."""


def step_overheads(log_paths: list[Path], cm: CostModel) -> dict[int, list[float]]:
    """Per running count R: measured step time less T_fwd of the tokens of that step."""
    out: dict[int, list[float]] = defaultdict(list)
    for path in log_paths:
        for line in path.read_text(errors="replace").splitlines():
            m = STATS_LINE.search(line)
            if not m:
                continue
            prompt, gen, running = float(m[1]), float(m[2]), int(m[3])
            if running < 1 or gen <= 0:
                continue
            step = running / gen
            out[running].append(step - cm.fwd_s((prompt + gen) * step))
    return out


def fit_overheads(by_running: dict[int, list[float]], min_samples: int = 5) -> tuple[float, float]:
    """(step_overhead_s, seq_overhead_s): least squares over the per-R medians, weighted by samples."""
    pts = [(r, statistics.median(v), len(v)) for r, v in by_running.items() if len(v) >= min_samples]
    if len(pts) < 2:
        raise ValueError("too few engine stats lines to fit the overheads")
    sw = sum(w for *_, w in pts)
    mx = sum(r * w for r, _, w in pts) / sw
    my = sum(y * w for _, y, w in pts) / sw
    slope = sum(w * (r - mx) * (y - my) for r, y, w in pts) / sum(w * (r - mx) ** 2 for r, _, w in pts)
    return max(0.0, my - slope * mx), max(0.0, slope)


ENGINE_LOGS = ("logs/*/*/logs/engine-0.log", "logs/*/*/logs/stock-vllm.log")
"""The engines' logs in a bench results folder: our worker's and stock vLLM's server (the same vLLM
engine on the same settings, read back equal by the bench, so the same per-step costs)."""


def extract(results_json: Path, out: Path, profile: Path = CPU_PROFILE, min_samples: int = 5) -> dict[str, Any]:
    """The bench figures and the overheads measured from its engine logs, as sim/data keeps them.
    `profile`: the cost profile the bench's worker measured (a file in sim/data, named in the
    output so `compare` simulates with the same one)."""
    data = json.loads(results_json.read_text())
    params = data["parameters"]
    loaded = profile_store.load(profile)
    if loaded is None:
        raise FileNotFoundError(f"no cost profile at {profile}")
    cm = loaded.cost_model
    logs = sorted(p for pattern in ENGINE_LOGS for p in results_json.parent.glob(pattern))
    step_o, seq_o = fit_overheads(step_overheads(logs, cm), min_samples)
    runs = []
    for system in data["systems"]:
        for run in system["runs"]:
            m = run["metrics"]
            runs.append({"system": system["policy"], "sim_system": LEGACY_NAMES.get(system["policy"], system["policy"]),
                         "rate": run["rate"], "repeat": run["repeat"], "sent": m["requests"]["sent"],
                         "completed": m["requests"]["completed"], "completed_per_s": m["completed_per_s"],
                         "normalized_latency_mean_s": m["normalized_latency_s"]["mean"],
                         "e2e_mean_s": m["e2e_latency_s"]["mean"], "ttft_mean_s": m["ttft_s"]["mean"]})
    keep = ("rates", "window_s", "drain_s", "seed", "time_scale", "token_scale", "context_cap", "repeats",
            "pool_tokens", "engine_settings")
    extracted = {"source": str(results_json), "profile": profile.name, "parameters": {k: params[k] for k in keep},
                 "overheads": {"step_overhead_s": round(step_o, 5), "seq_overhead_s": round(seq_o, 5),
                               "min_samples": min_samples,
                               "from_logs": [str(p.relative_to(results_json.parent)) for p in logs]},
                 "runs": runs}
    out.write_text(json.dumps(extracted, indent=1))
    return extracted


def with_overheads_from(extracted: dict[str, Any], calibration: dict[str, Any]) -> dict[str, Any]:
    """`extracted` to be simulated with another run's measured overheads: a prediction made without
    any of this run's own figures or logs."""
    return {**extracted, "overheads": calibration["overheads"]}


def bench_deployment(extracted: dict[str, Any], calibrated: bool = True) -> Deployment:
    base = cpu_profile(DATA / extracted.get("profile", CPU_PROFILE.name))  # full2/full3 name none: float32
    if not calibrated:
        return base
    o = extracted["overheads"]
    return replace(base, name="cpu-profile+overheads", step_overhead_s=o["step_overhead_s"],
                   seq_overhead_s=o["seq_overhead_s"])


@dataclass(frozen=True)
class Cell:
    system: str
    rate: float
    bench_completed_per_s: float
    sim_completed_per_s: float
    bench_nl_s: float
    sim_nl_s: float

    @property
    def completed_error(self) -> float:
        return (self.sim_completed_per_s - self.bench_completed_per_s) / self.bench_completed_per_s

    @property
    def nl_error(self) -> float:
        return (self.sim_nl_s - self.bench_nl_s) / self.bench_nl_s


def _mean(values: list[float | None]) -> float:
    vals = [v for v in values if v is not None]
    return sum(vals) / len(vals) if vals else float("nan")


def compare(extracted: dict[str, Any], calibrated: bool = True) -> list[Cell]:
    p = extracted["parameters"]
    d = bench_deployment(extracted, calibrated)
    conv = ConversionConfig(time_scale=p["time_scale"], token_scale=p["token_scale"], context_cap=p["context_cap"])
    groups: dict[tuple[str, float], list[dict]] = defaultdict(list)
    for run in extracted["runs"]:
        groups[(run["sim_system"], run["rate"])].append(run)
    cells = []
    for (system, rate), runs in groups.items():
        sims = [simulate(d, from_trace(rate, p["window_s"], p["seed"] + run["repeat"], conv), system,
                         window_s=p["window_s"], drain_s=p["drain_s"]).metrics for run in runs]
        cells.append(Cell(system, rate, _mean([r["completed_per_s"] for r in runs]),
                          _mean([m["completed_per_s"] for m in sims]),
                          _mean([r["normalized_latency_mean_s"] for r in runs]),
                          _mean([m["normalized_latency_s"]["mean"] for m in sims])))
    return cells


def table(cells: list[Cell]) -> str:
    lines = ["| system | rate | completed/s bench | sim | error | norm. latency bench (s/tok) | sim | error |",
             "|---|---|---|---|---|---|---|---|"]
    for c in cells:
        lines.append(f"| {c.system} | {c.rate:g} | {c.bench_completed_per_s:.3f} | {c.sim_completed_per_s:.3f} | "
                     f"{c.completed_error:+.0%} | {c.bench_nl_s:.3f} | {c.sim_nl_s:.3f} | {c.nl_error:+.0%} |")
    mae_c = statistics.mean(abs(c.completed_error) for c in cells)
    mae_n = statistics.mean(abs(c.nl_error) for c in cells)
    lines.append(f"\nmean |error|: completed/s {mae_c:.0%}, normalized latency {mae_n:.0%} over {len(cells)} cells")
    return "\n".join(lines)


def load(path: Path = BENCH_FULL2) -> dict[str, Any]:
    return json.loads(path.read_text())
