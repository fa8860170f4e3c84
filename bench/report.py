"""The results: a printed table, a JSON file (plots: bench.plots). Results file keys
(schema_version 3):

    schema_version, profile, started_at, finished_at (ISO 8601 UTC), wall_s,
    parameters: every BenchConfig field (slo_s, slo_statistic, overhead_* included), plus
                model_path, kv_cache_bytes, pool_tokens, max_model_len, kv_bytes_per_token,
                engine_dtype, engine_settings (what every engine was given: bench.engine_settings),
                workload (requests per repeat and rate, by type)
    systems: [ one object per system (stock-vllm or one of our policies):
        policy (the system's name), ok, error (one line or null), error_detail (log tail or null),
        startup_s, reported_policy (what the running system says: the worker's policy, or
        "stock-vllm" once vLLM's server answers /version), vllm_version (stock-vllm only),
        engine (the effective settings its running engine reported: common.engine_facts),
        runs: [ one per rate and repeat: rate (closed loop: null, and concurrency), repeat, ok, error, wall_s,
                worker_idle_after (before the next run; null after the last),
                load_avg_1m ([before, after]: the machine's load; other users skew timings),
                metrics (bench.metrics.system_metrics), requests (RequestRecord dicts) ],
        zero_interception: a run like those (closed loop, calls removed) or null,
        by_rate: the repeats of each rate pooled, with their spread (bench.summary),
        summary: headline figures (bench.summary) or null ]
    engine_check: whether every engine reported the same compared settings (bench.summary)
    comparisons: infercept / stock-vllm and infercept / vllm ratios, or why they were refused;
    comparison: the first of them

`latest.json` is a copy of the newest results file.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from common.engine_facts import COMPARED as COMPARED_FACTS
from common.schemas import Strategy

SCHEMA_VERSION = 3
STRATEGIES: tuple[str, ...] = tuple(Strategy)


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v * 1000:.0f}"


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v * 100:.1f}%"


def _s(v: float | None, digits: int = 1) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def label(run: dict[str, Any]) -> str:
    """A run's load: its arrival rate (open loop) or its client count (closed loop)."""
    return f"{run['rate']:g}/s" if run.get("rate") is not None else f"{run.get('concurrency')} cl"


def table(results: dict[str, Any]) -> str:
    """One row per system and rate (one per system with a single rate)."""
    head = ("system", "load", "done/sent", "req/s", "norm.lat ms/tok mean", "p50", "p90", "p99",
            "e2e p50 s", "ttft p50 s", "tpot p50 ms", "tok/s", "interceptions (pres/disc/swap)", "recomputed tok",
            "recomp share", "held KV MB*s")
    rows: list[tuple[str, ...]] = []
    for system in results["systems"]:
        if not system["ok"] and not system["runs"]:
            rows.append((system["policy"], "-", f"FAILED: {system['error']}"))
            continue
        zero = system.get("zero_interception")
        for run in [*system["runs"], *([zero] if zero else [])]:
            m = run.get("metrics")
            load = label(run) + (" no calls" if run is zero else "")
            if m is None:
                rows.append((system["policy"], load, f"FAILED: {run['error']}"))
                continue
            nl, req, by = m["normalized_latency_s"], m["requests"], m["interceptions"]["by_strategy"]
            mix = "/".join(str(by.get(s, 0)) for s in STRATEGIES)
            other = sum(n for s, n in by.items() if s not in STRATEGIES)
            rows.append((
                system["policy"], load, f"{req['completed']}/{req['sent']}", _s(m["completed_per_s"], 2),
                _ms(nl["mean"]), _ms(nl["p50"]), _ms(nl["p90"]), _ms(nl["p99"]),
                _s(m["e2e_latency_s"]["p50"]), _s(m["ttft_s"]["p50"], 2), _ms(m["tpot_s"]["p50"]),
                _s(m["output_tokens_per_s"]), mix + (f" +{other}" if other else ""),
                _s(m["recomputed_tokens"]["total"], 0), _pct(m["recompute_share"]),
                _s(None if (held := m["held_kv_byte_seconds"]["total"]) is None else held / (1 << 20)),
            ))
        if not system["ok"]:
            rows.append((system["policy"], "-", f"FAILED: {system['error']}"))
    return _columns(head, rows)


def _each(values: list[float | None] | None, fmt) -> str:
    """One figure per repeat, e.g. '120 / 131'."""
    return " / ".join(fmt(v) for v in values or []) or "-"


def rate_table(results: dict[str, Any]) -> str:
    """One row per system and rate with its repeats pooled (bench.summary `by_rate`), and each
    repeat's own value beside the pooled one, so the spread is in view."""
    head = ("system", "rate", "repeats", "done/sent", "req/s each", "norm.lat mean ms/tok (each)", "p90 pooled",
            "e2e mean s (each)", "ttft mean s (each)", "recomp share", "pres/disc/swap")
    rows: list[tuple[str, ...]] = []
    for system in results["systems"]:
        for point in system.get("by_rate") or []:
            m, spread = point["metrics"], point["spread"]
            by = m["interceptions"]["by_strategy"]
            other = sum(n for s, n in by.items() if s not in STRATEGIES)
            rows.append((
                system["policy"], f"{point['rate']:g}/s", str(point["repeats"]),
                f"{m['requests']['completed']}/{m['requests']['sent']}",
                _each(spread["completed_per_s"], lambda v: _s(v, 3)),
                f"{_ms(m['normalized_latency_s']['mean'])} ({_each(spread['normalized_latency_mean_s'], _ms)})",
                _ms(m["normalized_latency_s"]["p90"]),
                f"{_s(m['e2e_latency_s']['mean'])} ({_each(spread['e2e_mean_s'], _s)})",
                f"{_s(m['ttft_s']['mean'], 2)} ({_each(spread['ttft_mean_s'], lambda v: _s(v, 2))})",
                _pct(m["recompute_share"]),
                "/".join(str(by.get(s, 0)) for s in STRATEGIES) + (f" +{other}" if other else ""),
            ))
    return _columns(head, rows) if rows else "no rate runs"


def _columns(head: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in [head, *rows] if len(r) == len(head)) for i in range(len(head))]
    lines = []
    for r in [head, *rows]:
        if len(r) < len(head):  # a failure row: its message runs on
            lines.append("  ".join(c.ljust(w) for c, w in zip(r[:-1], widths)) + "  " + r[-1])
        else:
            lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    return "\n".join(lines)


def summary_table(results: dict[str, Any]) -> str:
    """One row per system: sustainable rate, headline figures at the reference rate, zero-interception
    throughput; then the infercept / stock-vllm ratios."""
    params = results["parameters"]
    head = ("system", f"sustainable req/s ({params['slo_statistic']} norm.lat <= {params['slo_s'] * 1000:g} ms/tok)",
            "at rate", "req/s", "norm.lat mean ms/tok", "tok/s", "recomp share", "held KV MB*s/req",
            "recomputed tok/req", "zero-interception tok/s")
    rows: list[tuple[str, ...]] = []
    for system in results["systems"]:
        s = system.get("summary")
        if not s:
            rows.append((system["policy"], "-", f"FAILED: {system['error']}" if not system["ok"] else "no runs"))
            continue
        sus, waste = s.get("sustainable_rate") or {}, s.get("waste_per_request") or {}
        held = waste.get("held_kv_byte_seconds")
        rows.append((
            system["policy"], _sustained(sus), _s(s.get("reference_rate"), 2), _s(s.get("completed_per_s"), 2),
            _ms((s.get("normalized_latency_s") or {}).get("mean")), _s(s.get("output_tokens_per_s")),
            _pct(s.get("recompute_share")), _s(None if held is None else held / (1 << 20)),
            _s(waste.get("recomputed_tokens"), 0), _s(s.get("zero_interception_tokens_per_s")),
        ))
    lines = [_columns(head, rows), "", engine_line(results)]
    ran = {s["policy"] for s in results["systems"] if s.get("summary")}
    for c in results.get("comparisons") or []:
        if not {c["system"], c["baseline"]} <= ran:
            continue
        if c.get("refused"):
            lines.append(f"{c['system']} / {c['baseline']}: NOT COMPARED, {c['refused']}")
            continue
        at_least = ">=" if (c.get("sustainable_rate_bounds") or [None])[0] == "highest-measured" else ""
        spread = (c.get("ratio_spread") or {}).get("completed_per_s")
        lines.append(f"{c['system']} / {c['baseline']}: completed req/s x{_s(c['completed_per_s_ratio'], 2)}"
                     + (f" (repeats x{spread[0]:.2f}-x{spread[1]:.2f})" if spread else "")
                     + f", sustainable rate {at_least}x{_s(c['sustainable_rate_ratio'], 2)}, "
                     f"zero-interception tokens/s x{_s(c['zero_interception_tokens_per_s_ratio'], 3)} (goal >= 0.97)"
                     + _past_knee(c.get("past_knee")))
    return "\n".join(lines)


def _past_knee(k: dict[str, Any] | None) -> str:
    if not k:
        return ""
    return (f"; at {k['rate']:g} req/s (>= 1.5x {k['baseline_knee']:.3g}, the baseline's sustainable rate): "
            f"completed in window x{_s(k['completed_per_s_ratio'], 2)}, served by the drain's end "
            f"x{_s(k['served_per_s_ratio'], 2)} ({k['completed'][0]} vs {k['completed'][1]} of "
            f"{k['sent'][0]} / {k['sent'][1]} sent)")


def engine_line(results: dict[str, Any]) -> str:
    """What every engine reported, or which settings differ between them."""
    check = results.get("engine_check") or {}
    if not check:
        return "engines: not checked"
    if not check["equal"]:
        return "ENGINES DIFFER: " + "; ".join(f"{f} {v}" for f, v in check["differences"].items())
    engine = next((s["engine"] for s in results["systems"] if s.get("engine")), None)
    if engine is None:
        return "engines: none reported"
    shown = ", ".join(f"{k}={engine[k]}" for k in COMPARED_FACTS)
    return f"engines equal (read back from each running engine): {shown}"


def _sustained(sus: dict[str, Any]) -> str:
    rate, bound = sus.get("rate"), sus.get("bound")
    if bound is None:
        return "-"
    if rate is None:
        return f"< {sus['above']:g}" if sus.get("above") is not None else "-"
    return {"interpolated": f"{rate:.2f} (interp.)", "last-sustained": f"{rate:.2f}",
            "highest-measured": f">= {rate:.2f}"}.get(bound, f"{rate:.2f}")


def write_json(results: dict[str, Any], out_dir: Path, stem: str, latest: bool = True) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{stem}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=1, default=str))
    tmp.rename(path)
    if latest:
        shutil.copyfile(path, out_dir / "latest.json")
    return path


def failed_systems(results: dict[str, Any]) -> Sequence[str]:
    return [s["policy"] for s in results["systems"] if not s["ok"]]


def refused_comparisons(results: dict[str, Any]) -> Sequence[str]:
    return [f"{c['system']} / {c['baseline']}: {c['refused']}" for c in results.get("comparisons") or []
            if c.get("refused")]
