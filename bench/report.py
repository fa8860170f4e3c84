"""The results: a printed table, a JSON file, PNG plots. Results file keys (schema_version 1):

    schema_version, profile, started_at, finished_at (ISO 8601 UTC), wall_s,
    parameters: every BenchConfig field, plus model_path, model_id, kv_cache_bytes, pool_tokens,
                max_model_len, kv_bytes_per_token, workload (requests per rate, by type)
    systems: [ one object per policy:
        policy, ok, error (one line or null), error_detail (log tail or null), startup_s,
        reported_policy (what the engine worker says it runs),
        runs: [ one per rate: rate (closed loop: null, and concurrency), ok, error, wall_s,
                worker_idle_after (before the next rate; null after the last),
                metrics (bench.metrics.system_metrics), requests (RequestRecord dicts) ] ]

`latest.json` is a copy of the newest results file.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
STRATEGIES = ("preserve", "discard", "swap")


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v * 1000:.0f}"


def _s(v: float | None, digits: int = 1) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def _label(run: dict[str, Any]) -> str:
    """A run's load: its arrival rate (open loop) or its client count (closed loop)."""
    return f"{run['rate']:g}/s" if run.get("rate") is not None else f"{run.get('concurrency')} cl"


def _x(run: dict[str, Any]) -> float:
    """Open loop: the offered rate; closed loop: the completed rate it reached."""
    return run["rate"] if run.get("rate") is not None else run["metrics"]["completed_per_s"]


def table(results: dict[str, Any]) -> str:
    """One row per system and rate (one per system with a single rate)."""
    head = ("system", "load", "done/sent", "req/s", "norm.lat ms/tok mean", "p50", "p90", "p99",
            "e2e p50 s", "ttft p50 s", "tok/s", "interceptions (pres/disc/swap)", "recomputed tok", "held KV MB*s")
    rows: list[tuple[str, ...]] = []
    for system in results["systems"]:
        if not system["ok"]:
            rows.append((system["policy"], "-", f"FAILED: {system['error']}"))
            continue
        for run in system["runs"]:
            m = run.get("metrics")
            if m is None:
                rows.append((system["policy"], _label(run), f"FAILED: {run['error']}"))
                continue
            nl, req, by = m["normalized_latency_s"], m["requests"], m["interceptions"]["by_strategy"]
            mix = "/".join(str(by.get(s, 0)) for s in STRATEGIES)
            other = sum(n for s, n in by.items() if s not in STRATEGIES)
            rows.append((
                system["policy"], _label(run), f"{req['completed']}/{req['sent']}", _s(m["completed_per_s"], 2),
                _ms(nl["mean"]), _ms(nl["p50"]), _ms(nl["p90"]), _ms(nl["p99"]),
                _s(m["e2e_latency_s"]["p50"]), _s(m["ttft_s"]["p50"], 2), _s(m["output_tokens_per_s"]),
                mix + (f" +{other}" if other else ""), _s(m["recomputed_tokens"]["total"], 0),
                _s(None if (held := m["held_kv_byte_seconds"]["total"]) is None else held / (1 << 20)),
            ))
    widths = [max(len(r[i]) for r in [head, *rows] if len(r) == len(head)) for i in range(len(head))]
    lines = []
    for r in [head, *rows]:
        if len(r) < len(head):  # a failure row: its message runs on
            lines.append("  ".join(c.ljust(w) for c, w in zip(r[:-1], widths)) + "  " + r[-1])
        else:
            lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    return "\n".join(lines)


def write_json(results: dict[str, Any], out_dir: Path, stem: str) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{stem}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=1, default=str))
    tmp.rename(path)
    shutil.copyfile(path, out_dir / "latest.json")
    return path


def _ok_runs(results: dict[str, Any]) -> list[tuple[str, list[dict]]]:
    return [(s["policy"], [r for r in s["runs"] if r.get("metrics")]) for s in results["systems"] if s["ok"]]


def plot(results: dict[str, Any], out_dir: Path, stem: str) -> list[Path]:
    """normalized latency vs rate (one line per system) and the strategy mix; latest-*.png copies."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for policy, runs in _ok_runs(results):
        points = sorted(((_x(r), r["metrics"]["normalized_latency_s"]) for r in runs
                         if r["metrics"]["normalized_latency_s"]["mean"] is not None), key=lambda p: p[0])
        if points:
            line, = ax.plot([p[0] for p in points], [p[1]["mean"] for p in points], marker="o", label=f"{policy} mean")
            ax.plot([p[0] for p in points], [p[1]["p90"] for p in points], linestyle="--", marker="x", color=line.get_color(),
                    alpha=0.6, label=f"{policy} p90")
    ax.set_xlabel("request rate (req/s)")
    ax.set_ylabel("normalized latency (s/token)")
    ax.set_title(f"normalized latency vs rate ({results['profile']}, {results['parameters']['model']})")
    ax.grid(alpha=0.3)
    if ax.lines:
        ax.legend(fontsize=8)
    written.append(_save(fig, out_dir, stem, "normalized-latency"))

    bars = [(f"{policy}\n{_label(r)}", r["metrics"]["interceptions"]["by_strategy"])
            for policy, runs in _ok_runs(results) for r in runs]
    fig, ax = plt.subplots(figsize=(max(4.8, 1.1 * len(bars) + 2), 4.2))
    names = sorted({s for _, by in bars for s in by}, key=lambda s: (STRATEGIES + (s,)).index(s))
    bottoms = [0] * len(bars)
    for strategy in names:
        counts = [by.get(strategy, 0) for _, by in bars]
        ax.bar(range(len(bars)), counts, bottom=bottoms, label=strategy)
        bottoms = [b + c for b, c in zip(bottoms, counts)]
    ax.set_xticks(range(len(bars)), [b[0] for b in bars], fontsize=8)
    ax.set_ylabel("interceptions")
    ax.set_title("what each policy did with paused requests")
    if names:
        ax.legend(fontsize=8)
    written.append(_save(fig, out_dir, stem, "strategy-mix"))
    plt.close("all")
    return written


def _save(fig, out_dir: Path, stem: str, name: str) -> Path:
    path = out_dir / f"{stem}-{name}.png"
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    shutil.copyfile(path, out_dir / f"latest-{name}.png")
    return path


def failed_systems(results: dict[str, Any]) -> Sequence[str]:
    return [s["policy"] for s in results["systems"] if not s["ok"]]
