"""Reconciling a soak (bench.soak): every request sent is accounted for, and the figures.

The invariant a soak checks: sent = succeeded + failed with a clear error, with nothing hung,
nothing unclear and no answer that claims success but is not whole (a duplicated tool result
above all). Latency is split by whether a request's lifetime overlapped a fault (from the kill
until the service served again, plus FAULT_TAIL_S for what the recovery leaves behind: a dead
worker's requests are taken over ~5-10 s after the kill).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

from bench.faults import FaultRecord
from bench.soak_client import OUTCOMES, SoakRecord

FAULT_TAIL_S = 15.0


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def _latency(records: Sequence[SoakRecord]) -> dict[str, Any]:
    values = [r.latency_s for r in records if r.latency_s is not None]
    ttft = [r.first_token_s - r.sent_s for r in records if r.first_token_s is not None]
    rnd = lambda v: None if v is None else round(v, 3)  # noqa: E731
    return {"n": len(values), "p50_s": rnd(percentile(values, 50)), "p99_s": rnd(percentile(values, 99)),
            "max_s": rnd(max(values, default=None)), "ttft_p50_s": rnd(percentile(ttft, 50)),
            "ttft_p99_s": rnd(percentile(ttft, 99))}


def fault_windows(faults: Sequence[FaultRecord], end_s: float) -> list[tuple[float, float]]:
    return [(f.killed_s, (f.ready_s if f.ready_s is not None else end_s) + FAULT_TAIL_S)
            for f in faults if f.killed_s is not None]


def overlaps(rec: SoakRecord, windows: Sequence[tuple[float, float]], end_s: float) -> bool:
    finished = rec.end_s if rec.end_s is not None else end_s
    return any(rec.sent_s < stop and finished > start for start, stop in windows)


def reconcile(records: Sequence[SoakRecord], faults: Sequence[FaultRecord], end_s: float) -> dict[str, Any]:
    counts = Counter(r.outcome for r in records)
    windows = fault_windows(faults, end_s)
    during = [r for r in records if overlaps(r, windows, end_s)]
    calm = [r for r in records if not overlaps(r, windows, end_s)]
    duplicated = sum(1 for r in records if any(p.startswith("duplicated") for p in r.problems))
    injected = [f for f in faults if f.killed_s is not None]
    per_fault = []
    for fault, window in zip(injected, windows):
        hit = [r for r in records if overlaps(r, [window], end_s)]
        per_fault.append({
            "service": fault.service, "killed_s": fault.killed_s, "down_s": fault.down_s,
            "survived": fault.survived, "in_flight": fault.in_flight, "requests_overlapping": len(hit),
            "outcomes": dict(Counter(r.outcome for r in hit)),
        })
    return {
        "sent": len(records),
        **{outcome: counts.get(outcome, 0) for outcome in OUTCOMES},
        "duplicated_tool_results": duplicated,
        "reconciled": len(records) == counts["ok"] + counts["error"] and not (
            counts["hung"] or counts["unclear"] or counts["wrong"]),
        "streaming": sum(1 for r in records if r.stream),
        "calls": sum(len(r.call_ids) for r in records),
        "call_error_results": sum(len(r.call_errors) for r in records),
        "faults_planned": len(faults), "faults_injected": len(injected),
        "faults_survived": sum(1 for f in injected if f.survived),
        "faults_skipped": [{"service": f.service, "planned_s": f.planned_s, "why": f.skipped}
                           for f in faults if f.skipped],
        "latency": {"all": _latency([r for r in records if r.outcome == "ok"]),
                    "during_faults": _latency([r for r in during if r.outcome == "ok"]),
                    "outside_faults": _latency([r for r in calm if r.outcome == "ok"])},
        "during_faults": {"requests": len(during), "outcomes": dict(Counter(r.outcome for r in during))},
        "per_fault": per_fault,
        "errors": dict(Counter(f"{r.outcome}: {r.error_code or ''} {r.error}" for r in records
                               if r.outcome in ("error", "unclear", "hung")).most_common(10)),
        "problems": dict(Counter(p for r in records for p in r.problems).most_common(10)),
        "call_errors": dict(Counter(e for r in records for e in r.call_errors).most_common(10)),
    }


def _fmt(value: Any, unit: str = "") -> str:
    return "-" if value is None else f"{value:.2f}{unit}" if isinstance(value, float) else f"{value}{unit}"


def table(summary: dict[str, Any], memory: dict[str, dict[str, Any]]) -> str:
    """The soak's tables as text: requests, latency, faults, memory."""
    lines = [
        "requests: sent {sent} = ok {ok} + clear error {error}; wrong {wrong}, unclear {unclear}, hung {hung}; "
        "duplicated tool results {duplicated_tool_results}; streaming {streaming}; calls {calls} "
        "({call_error_results} error results)".format(**summary),
        f"reconciled: {'YES' if summary['reconciled'] else 'NO'}",
        f"faults: {summary['faults_injected']} injected of {summary['faults_planned']} planned, "
        f"{summary['faults_survived']} survived (the service served again)",
        "",
        "| requests | n | p50 (s) | p99 (s) | max (s) | TTFT p50 (s) | TTFT p99 (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, lat in summary["latency"].items():
        lines.append(f"| {name.replace('_', ' ')} | {lat['n']} | {_fmt(lat['p50_s'])} | {_fmt(lat['p99_s'])} | "
                     f"{_fmt(lat['max_s'])} | {_fmt(lat['ttft_p50_s'])} | {_fmt(lat['ttft_p99_s'])} |")
    if summary["per_fault"]:
        lines += ["", "| fault | killed at (s) | serving again after (s) | requests overlapping | their outcomes |",
                  "|---|---|---|---|---|"]
        for f in summary["per_fault"]:
            outcomes = ", ".join(f"{k} {v}" for k, v in sorted(f["outcomes"].items()))
            lines.append(f"| SIGKILL {f['service']} | {f['killed_s']:.1f} | {_fmt(f['down_s'])} | "
                         f"{f['requests_overlapping']} | {outcomes} |")
    lines += ["", "| service | RSS before (MB) | RSS after (MB) | restarts |", "|---|---|---|---|"]
    for name, m in memory.items():
        lines.append(f"| {name} | {_fmt(m['before_mb'])} | {_fmt(m['after_mb'])} | {m['restarts']} |")
    for title in ("errors", "problems", "call_errors"):
        if summary[title]:
            lines += ["", f"{title.replace('_', ' ')}:"] + [f"  {n} x {text}" for text, n in summary[title].items()]
    return "\n".join(lines)
