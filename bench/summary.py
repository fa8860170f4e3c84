"""Per-system headline figures and the infercept vs stock-vllm comparison, from the runs' metrics
(pure: works on a saved results file too).

Each system gets `summary`:
    reference_rate        the sweep's highest rate (the most loaded: where systems differ)
    completed_per_s, output_tokens_per_s, recompute_share     at the reference rate
    normalized_latency_s, e2e_latency_s, ttft_s, tpot_s        {mean, p50, p90, p99} there
    waste_per_request     {held_kv_byte_seconds, recomputed_tokens, recompute_s, chosen_estimate_kv_byte_seconds}:
                          totals over completed requests / completed requests (a request without
                          calls counts as 0); null where no record carries the field
    sustainable_rate      {rate, bound, below, above, slo_s, statistic} (bench.sustainable)
    zero_interception_tokens_per_s   the closed-loop run without calls (null if not run)
The results get `comparison`: {system, baseline, completed_per_s_ratio, sustainable_rate_ratio,
sustainable_rate_bounds ([system's bound, baseline's bound]: a "highest-measured" system side makes
the ratio a lower bound), zero_interception_tokens_per_s_ratio}, each system / baseline (null
where either side is missing).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from bench.sustainable import RatePoint, sustainable_rate
from bench.tool_loop import STOCK_SYSTEM

COMPARED = ("infercept", STOCK_SYSTEM)
STATS = ("mean", "p50", "p90", "p99")
WASTE = {"held_kv_byte_seconds": "held_kv_byte_seconds", "recomputed_tokens": "recomputed_tokens",
         "recompute_s": "recompute_s", "chosen_estimate_kv_byte_seconds": "waste_chosen"}


def _runs(system: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in system.get("runs") or [] if r.get("metrics") and r.get("rate") is not None]


def rate_points(system: dict[str, Any], statistic: str) -> list[RatePoint]:
    points = []
    for run in _runs(system):
        m = run["metrics"]
        sent = m["requests"]["sent"]
        points.append(RatePoint(run["rate"], m["normalized_latency_s"][statistic],
                                m["requests"]["completed"] / sent if sent else 0.0))
    return points


def _per_request(metrics: dict[str, Any]) -> dict[str, float | None]:
    completed = metrics["requests"]["completed"]
    out: dict[str, float | None] = {}
    for key, name in WASTE.items():
        total = metrics[name]["total"]
        out[key] = None if total is None or not completed else total / completed
    return out


def system_summary(system: dict[str, Any], slo_s: float, statistic: str) -> dict[str, Any] | None:
    runs = _runs(system)
    zero = system.get("zero_interception")
    zero_tps = zero["metrics"]["output_tokens_per_s"] if zero and zero.get("metrics") else None
    if not runs:
        return None if zero_tps is None else {"zero_interception_tokens_per_s": zero_tps}
    ref = max(runs, key=lambda r: r["rate"])
    m = ref["metrics"]
    sustained = sustainable_rate(rate_points(system, statistic), slo_s)
    return {
        "reference_rate": ref["rate"], "completed_per_s": m["completed_per_s"],
        "output_tokens_per_s": m["output_tokens_per_s"], "recompute_share": m["recompute_share"],
        **{name: {k: m[name][k] for k in STATS} for name in ("normalized_latency_s", "e2e_latency_s", "ttft_s", "tpot_s")},
        "waste_per_request": _per_request(m),
        "sustainable_rate": {**asdict(sustained), "slo_s": slo_s, "statistic": statistic},
        "zero_interception_tokens_per_s": zero_tps,
    }


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def comparison(results: dict[str, Any], system: str = COMPARED[0], baseline: str = COMPARED[1]) -> dict[str, Any]:
    by_name = {s["policy"]: s.get("summary") or {} for s in results["systems"]}
    ours, base = by_name.get(system, {}), by_name.get(baseline, {})
    return {
        "system": system, "baseline": baseline,
        "completed_per_s_ratio": _ratio(ours.get("completed_per_s"), base.get("completed_per_s")),
        "sustainable_rate_ratio": _ratio((ours.get("sustainable_rate") or {}).get("rate"),
                                         (base.get("sustainable_rate") or {}).get("rate")),
        # "highest-measured" makes a side a lower bound (every swept rate held), so the ratio too
        "sustainable_rate_bounds": [(ours.get("sustainable_rate") or {}).get("bound"),
                                    (base.get("sustainable_rate") or {}).get("bound")],
        "zero_interception_tokens_per_s_ratio": _ratio(ours.get("zero_interception_tokens_per_s"),
                                                       base.get("zero_interception_tokens_per_s")),
    }


def annotate(results: dict[str, Any]) -> dict[str, Any]:
    """Adds each system's `summary` and the results' `comparison` in place; returns the results."""
    params = results["parameters"]
    for system in results["systems"]:
        system["summary"] = system_summary(system, params["slo_s"], params["slo_statistic"])
    results["comparison"] = comparison(results)
    return results
