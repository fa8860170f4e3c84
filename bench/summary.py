"""Per-system headline figures and the infercept vs stock-vllm comparison, from the runs' metrics
(pure: works on a saved results file too).

Each system gets `by_rate`: one entry per rate, its repeats pooled: {rate, repeats, metrics (over
the requests of every repeat; completed_per_s, served_per_s and output_tokens_per_s the mean of the
repeats'),
spread ({figure: [one value per repeat]} for the headline figures)}. The summary and the sustainable
rate are computed from these pooled points.

Each system gets `summary`:
    reference_rate        the sweep's highest rate (the most loaded: where systems differ)
    completed_per_s, output_tokens_per_s, recompute_share     at the reference rate
    normalized_latency_s, e2e_latency_s, ttft_s, tpot_s        {mean, p50, p90, p99} there
    waste_per_request     {held_kv_byte_seconds, recomputed_tokens, recompute_s, chosen_estimate_kv_byte_seconds}:
                          totals over completed requests / completed requests (a request without
                          calls counts as 0); null where no record carries the field
    sustainable_rate      {rate, bound, below, above, slo_s, statistic} (bench.sustainable)
    zero_interception_tokens_per_s   the closed-loop run without calls (null if not run)
The results get `engine_check` ({equal, differences: {field: {system: value}}}: the compared
engine settings each running engine reported, common.engine_facts) and `comparisons`, one per
baseline (stock vLLM, and our own `vllm` policy: the same engine, discard and re-queue):
{system, baseline, refused (why the two cannot be compared: their engines differ, or null),
completed_per_s_ratio, sustainable_rate_ratio, sustainable_rate_bounds ([system's bound,
baseline's bound]: a "highest-measured" system side makes the ratio a lower bound),
zero_interception_tokens_per_s_ratio, ratio_spread ({figure: [min, max]} over the pairs of
repeats at the reference rate), past_knee (both systems at the lowest measured rate at or above
KNEE_FACTOR x the baseline's sustainable rate: {baseline_knee, rate, completed_per_s_ratio,
served_per_s_ratio, completed: [system's, baseline's], sent: [...]}, null when the baseline has no
sustainable rate or no such rate was measured)}, each system / baseline (null where either side is missing or the
comparison is refused). `comparison` is the first of them (the stock one).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from bench.config import DEFAULT_SYSTEM
from bench.metrics import system_metrics
from bench.sustainable import RatePoint, sustainable_rate
from bench.tool_loop import STOCK_SYSTEM
from common.engine_facts import EngineFacts, differences

COMPARED = (DEFAULT_SYSTEM, STOCK_SYSTEM)
"""Our engine worker's default system (what a deployment runs) against stock vLLM."""
BASELINES = (STOCK_SYSTEM, "vllm")
"""Stock vLLM's server, and our stack with the `vllm` policy (today's engines' discard and re-queue
on the same engine as ours)."""
SPREAD = {"completed_per_s": ("completed_per_s",), "normalized_latency_mean_s": ("normalized_latency_s", "mean"),
          "normalized_latency_p90_s": ("normalized_latency_s", "p90"), "e2e_mean_s": ("e2e_latency_s", "mean"),
          "ttft_mean_s": ("ttft_s", "mean")}
STATS = ("mean", "p50", "p90", "p99")
KNEE_FACTOR = 1.5
"""The load, relative to the baseline's sustainable rate (its knee), where throughput is compared."""
WASTE = {"held_kv_byte_seconds": "held_kv_byte_seconds", "recomputed_tokens": "recomputed_tokens",
         "recompute_s": "recompute_s", "chosen_estimate_kv_byte_seconds": "waste_chosen"}


def _runs(system: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in system.get("runs") or [] if r.get("metrics") and r.get("rate") is not None]


def _figure(metrics: dict[str, Any], path: tuple[str, ...]) -> float | None:
    value: Any = metrics
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def pooled(runs: list[dict[str, Any]], window_s: float) -> dict[str, Any]:
    """One rate's repeats as one point (see the module docstring)."""
    if len(runs) == 1:
        metrics = runs[0]["metrics"]
    else:
        metrics = system_metrics([r for run in runs for r in run.get("requests") or []], window_s)
        for key in ("completed_per_s", "served_per_s", "output_tokens_per_s"):
            values = [run["metrics"][key] for run in runs if run["metrics"].get(key) is not None]
            metrics[key] = sum(values) / len(values) if values else None
    spread = {name: [_figure(run["metrics"], path) for run in runs] for name, path in SPREAD.items()}
    return {"rate": runs[0]["rate"], "repeats": len(runs), "metrics": metrics, "spread": spread}


def by_rate(system: dict[str, Any], window_s: float) -> list[dict[str, Any]]:
    rates = sorted({run["rate"] for run in _runs(system)})
    return [pooled([run for run in _runs(system) if run["rate"] == rate], window_s) for rate in rates]


def rate_points(system: dict[str, Any], statistic: str) -> list[RatePoint]:
    points = []
    for point in system.get("by_rate") or []:
        m = point["metrics"]
        sent = m["requests"]["sent"]
        points.append(RatePoint(point["rate"], m["normalized_latency_s"][statistic],
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
    points = system.get("by_rate") or []
    zero = system.get("zero_interception")
    zero_tps = zero["metrics"]["output_tokens_per_s"] if zero and zero.get("metrics") else None
    if not points:
        return None if zero_tps is None else {"zero_interception_tokens_per_s": zero_tps}
    ref = points[-1]
    m = ref["metrics"]
    sustained = sustainable_rate(rate_points(system, statistic), slo_s)
    return {
        "reference_rate": ref["rate"], "completed_per_s": m["completed_per_s"],
        "output_tokens_per_s": m["output_tokens_per_s"], "recompute_share": m["recompute_share"],
        **{name: {k: m[name][k] for k in STATS}
           for name in ("normalized_latency_s", "e2e_latency_s", "ttft_s", "tpot_s")},
        "waste_per_request": _per_request(m),
        "sustainable_rate": {**asdict(sustained), "slo_s": slo_s, "statistic": statistic},
        "zero_interception_tokens_per_s": zero_tps, "spread": ref["spread"], "repeats": ref["repeats"],
    }


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def engine_check(results: dict[str, Any]) -> dict[str, Any]:
    """Whether every system that ran reported the same engine (common.engine_facts.COMPARED)."""
    ran = {s["policy"]: s.get("engine") for s in results["systems"] if s.get("runs") or s.get("engine")}
    diff = differences({name: None if e is None else EngineFacts(**e) for name, e in ran.items()})
    return {"equal": not diff, "differences": diff}


def _ratio_spread(ours: dict[str, Any], base: dict[str, Any]) -> dict[str, list[float] | None]:
    """[min, max] of ours / base over the repeats' values at the reference rate (each repeat
    paired with the baseline's run of the same workload)."""
    out: dict[str, list[float] | None] = {}
    for name in SPREAD:
        pairs = [_ratio(a, b) for a, b in zip((ours.get("spread") or {}).get(name) or [],
                                              (base.get("spread") or {}).get(name) or [])]
        values = [v for v in pairs if v is not None]
        out[name] = [min(values), max(values)] if values else None
    return out


def named(names: list[str], wanted: str) -> str:
    """The system called `wanted`, or else the one whose policy it is (`vllm` finds
    `vllm:ttft_budget_s=null`); `wanted` itself when none is."""
    if wanted in names:
        return wanted
    return next((n for n in names if n.split(":", 1)[0] == wanted), wanted)


def past_knee(ours: dict[str, Any], base: dict[str, Any]) -> dict[str, Any] | None:
    """Both systems at the first measured rate at or above KNEE_FACTOR x the baseline's sustainable
    rate (the issue's "completed req/s at 1.5x stock's knee"); None when there is none."""
    knee = ((base.get("summary") or {}).get("sustainable_rate") or {}).get("rate")
    if knee is None:
        return None
    ours_at = {p["rate"]: p["metrics"] for p in ours.get("by_rate") or []}
    base_at = {p["rate"]: p["metrics"] for p in base.get("by_rate") or []}
    rates = sorted(r for r in set(ours_at) & set(base_at) if r >= KNEE_FACTOR * knee * (1 - 1e-9))
    if not rates:
        return None
    rate = rates[0]
    o, b = ours_at[rate], base_at[rate]
    return {"baseline_knee": knee, "rate": rate,
            "completed_per_s_ratio": _ratio(o["completed_per_s"], b["completed_per_s"]),
            "served_per_s_ratio": _ratio(o.get("served_per_s"), b.get("served_per_s")),
            "completed": [o["requests"]["completed"], b["requests"]["completed"]],
            "sent": [o["requests"]["sent"], b["requests"]["sent"]]}


def comparison(results: dict[str, Any], system: str = COMPARED[0], baseline: str = COMPARED[1]) -> dict[str, Any]:
    systems = {s["policy"]: s for s in results["systems"]}
    by_name = {name: s.get("summary") or {} for name, s in systems.items()}
    baseline = named(list(by_name), baseline)
    check = results.get("engine_check") or engine_check(results)
    ours, base = by_name.get(system, {}), by_name.get(baseline, {})
    differ = {f: {k: v for k, v in values.items() if k in (system, baseline)}
              for f, values in check["differences"].items()
              if len({repr(values.get(system)), repr(values.get(baseline))}) > 1}
    refused = None
    if system in by_name and baseline in by_name and differ:
        refused = "engines differ: " + "; ".join(f"{f} {v}" for f, v in differ.items())
        ours, base = {}, {}
    return {
        "system": system, "baseline": baseline, "refused": refused,
        "completed_per_s_ratio": _ratio(ours.get("completed_per_s"), base.get("completed_per_s")),
        "sustainable_rate_ratio": _ratio((ours.get("sustainable_rate") or {}).get("rate"),
                                         (base.get("sustainable_rate") or {}).get("rate")),
        # "highest-measured" makes a side a lower bound (every swept rate held), so the ratio too
        "sustainable_rate_bounds": [(ours.get("sustainable_rate") or {}).get("bound"),
                                    (base.get("sustainable_rate") or {}).get("bound")],
        "zero_interception_tokens_per_s_ratio": _ratio(ours.get("zero_interception_tokens_per_s"),
                                                       base.get("zero_interception_tokens_per_s")),
        "ratio_spread": _ratio_spread(ours, base),
        "past_knee": past_knee(systems[system], systems[baseline]) if ours and base else None,
    }


def compared_system(results: dict[str, Any]) -> str:
    """The system set against the baselines: the run's `compare` parameter, else our worker's
    default policy when it ran, else the first of ours in run order."""
    names = [s["policy"] for s in results["systems"]]
    given = results["parameters"].get("compare")
    if given:
        return given
    if COMPARED[0] in names:
        return COMPARED[0]
    return next((n for n in names if n.split(":", 1)[0] not in BASELINES), COMPARED[0])


def annotate(results: dict[str, Any]) -> dict[str, Any]:
    """Adds each system's `by_rate` and `summary`, and the results' `engine_check`, `comparisons`
    and `comparison`, in place; returns the results."""
    params = results["parameters"]
    for system in results["systems"]:
        system["by_rate"] = by_rate(system, params.get("window_s", 0.0))
        system["summary"] = system_summary(system, params["slo_s"], params["slo_statistic"])
    results["engine_check"] = engine_check(results)
    ours = compared_system(results)
    results["comparisons"] = [comparison(results, ours, baseline) for baseline in BASELINES]
    results["comparison"] = results["comparisons"][0]
    return results


def reanalysed(results: dict[str, Any]) -> dict[str, Any]:
    """A saved results file with every run's metrics recomputed from its request records, then
    annotated again: what this code makes of an earlier run (in place; returns the results)."""
    params = results["parameters"]
    for system in results["systems"]:
        for run in system.get("runs") or []:
            if run.get("requests") is not None:
                run["metrics"] = system_metrics(run["requests"], params["window_s"])
        zero = system.get("zero_interception")
        if zero and zero.get("requests") is not None:
            zero["metrics"] = system_metrics(zero["requests"], params["overhead_window_s"])
    return annotate(results)
