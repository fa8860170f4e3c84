"""PNG plots of a results object, each written as <stem>-<name>.png plus a latest-<name>.png copy:

- normalized-latency: normalized latency vs request rate, one line per system (mean solid, p90
  dashed), the SLO as a horizontal line (the paper's main figure; lower and further right is better);
- strategy-mix: interceptions by strategy per system and rate (stock-vllm's are all `resubmit`);
- waste: per completed request, the KV memory x time paused requests held (MB*s) and the tokens
  re-submissions recomputed, per system and rate: the two kinds of waste the policies trade.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from bench.report import STRATEGIES, label

NAMES = ("normalized-latency", "strategy-mix", "waste")


def _ok_runs(results: dict[str, Any]) -> list[tuple[str, list[dict]]]:
    """Per system, one point per rate: its repeats pooled (bench.summary `by_rate`) where the
    results have them, else each run."""
    return [(s["policy"], [r for r in (s.get("by_rate") or s["runs"]) if r.get("metrics")])
            for s in results["systems"] if s["runs"]]


def _x(run: dict[str, Any]) -> float:
    """Open loop: the offered rate; closed loop: the completed rate it reached."""
    return run["rate"] if run.get("rate") is not None else run["metrics"]["completed_per_s"]


def plot(results: dict[str, Any], out_dir: Path, stem: str) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    try:
        return [_latency(plt, results, out_dir, stem), _strategy_mix(plt, results, out_dir, stem),
                _waste(plt, results, out_dir, stem)]
    finally:
        plt.close("all")


def _latency(plt, results: dict[str, Any], out_dir: Path, stem: str) -> Path:
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for policy, runs in _ok_runs(results):
        points = sorted(((_x(r), r["metrics"]["normalized_latency_s"]) for r in runs
                         if r["metrics"]["normalized_latency_s"]["mean"] is not None), key=lambda p: p[0])
        if points:
            line, = ax.plot([p[0] for p in points], [p[1]["mean"] for p in points], marker="o", label=f"{policy} mean")
            ax.plot([p[0] for p in points], [p[1]["p90"] for p in points], linestyle="--", marker="x",
                    color=line.get_color(), alpha=0.6, label=f"{policy} p90")
    params = results["parameters"]
    if params.get("slo_s") and ax.lines:
        ax.axhline(params["slo_s"], color="grey", linestyle=":", label=f"SLO ({params.get('slo_statistic', 'mean')})")
    ax.set_xlabel("request rate (req/s)")
    ax.set_ylabel("normalized latency (s/token)")
    ax.set_title(f"normalized latency vs rate ({results['profile']}, {params['model']})")
    ax.grid(alpha=0.3)
    if ax.lines:
        ax.legend(fontsize=7)
    return _save(fig, out_dir, stem, "normalized-latency")


def _bars(results: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(f"{policy}\n{label(r)}", r["metrics"]) for policy, runs in _ok_runs(results) for r in runs]


def _strategy_mix(plt, results: dict[str, Any], out_dir: Path, stem: str) -> Path:
    bars = [(name, m["interceptions"]["by_strategy"]) for name, m in _bars(results)]
    fig, ax = plt.subplots(figsize=(max(4.8, 1.1 * len(bars) + 2), 4.2))
    names = sorted({s for _, by in bars for s in by}, key=lambda s: (STRATEGIES + (s,)).index(s))
    bottoms = [0] * len(bars)
    for strategy in names:
        counts = [by.get(strategy, 0) for _, by in bars]
        ax.bar(range(len(bars)), counts, bottom=bottoms, label=strategy)
        bottoms = [b + c for b, c in zip(bottoms, counts)]
    ax.set_xticks(range(len(bars)), [b[0] for b in bars], fontsize=7)
    ax.set_ylabel("interceptions")
    ax.set_title("what each system did with paused requests")
    if names:
        ax.legend(fontsize=8)
    return _save(fig, out_dir, stem, "strategy-mix")


def _per_request(m: dict[str, Any], name: str) -> float:
    completed = m["requests"]["completed"]
    return (m[name]["total"] or 0.0) / completed if completed else 0.0


def _waste(plt, results: dict[str, Any], out_dir: Path, stem: str) -> Path:
    bars = _bars(results)
    fig, (held_ax, recomp_ax) = plt.subplots(2, 1, figsize=(max(4.8, 1.1 * len(bars) + 2), 6.0), sharex=True)
    xs = range(len(bars))
    held_ax.bar(xs, [_per_request(m, "held_kv_byte_seconds") / (1 << 20) for _, m in bars], color="tab:blue")
    held_ax.set_ylabel("held KV per request (MB*s)")
    held_ax.set_title("waste per completed request", fontsize=10)
    recomp_ax.bar(xs, [_per_request(m, "recomputed_tokens") for _, m in bars], color="tab:orange")
    recomp_ax.set_ylabel("recomputed tokens per request")
    recomp_ax.set_xticks(list(xs), [b[0] for b in bars], fontsize=7)
    for ax in (held_ax, recomp_ax):
        ax.grid(alpha=0.3, axis="y")
    return _save(fig, out_dir, stem, "waste")


def _save(fig, out_dir: Path, stem: str, name: str) -> Path:
    path = out_dir / f"{stem}-{name}.png"
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    shutil.copyfile(path, out_dir / f"latest-{name}.png")
    return path
