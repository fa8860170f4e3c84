"""`python -m bench --quick` end to end on the tiny model: real processes, real HTTP.

The quick profile's systems (stock vLLM's own server with the client-side tool loop, and our stack
with policy infercept), each rate twice (interleaved), a short zero-interception run for both, and
one system the engine worker refuses (a bogus policy name), which must be reported as failed while
the run goes on. No speed assertions: only that every metric is there for every system that ran,
and that both engines reported the same effective settings, read back from the running engines
(stock vLLM's /server_info and log, our worker's status and log).
"""

from __future__ import annotations

import json
import subprocess
import sys

from stack.processes import REPO_ROOT

METRIC_KEYS = {"requests", "completed_per_s", "served_per_s", "output_tokens_per_s", "generated_tokens",
               "normalized_latency_s", "e2e_latency_s", "ttft_s", "tpot_s", "recompute_share", "api_time_s",
               "interceptions",
               "recomputed_tokens", "recompute_s", "held_kv_byte_seconds", "duration_estimate_abs_error_s",
               "waste", "waste_chosen", "errors"}
SUMMARY_KEYS = {"reference_rate", "completed_per_s", "output_tokens_per_s", "recompute_share", "normalized_latency_s",
                "e2e_latency_s", "ttft_s", "tpot_s", "waste_per_request", "sustainable_rate",
                "zero_interception_tokens_per_s", "spread", "repeats"}
STATS = ("mean", "p50", "p90", "p99")


def _check_run(run: dict, *, interceptions: bool) -> None:
    m = run["metrics"]
    assert set(m) == METRIC_KEYS
    assert m["requests"]["sent"] >= 2 and m["requests"]["completed"] == m["requests"]["sent"], m["errors"]
    for name in ("normalized_latency_s", "e2e_latency_s", "ttft_s", "tpot_s", "api_time_s"):
        assert all(m[name][k] is not None for k in STATS), name
    assert m["completed_per_s"] > 0 and m["output_tokens_per_s"] > 0 and m["recompute_share"] is not None
    assert (m["interceptions"]["total"] > 0) == interceptions
    assert all(r["completion_tokens"] == r["planned_tokens"] for r in run["requests"])  # plans ran exactly


def test_quick_profile_on_the_tiny_model(tmp_path):
    out = tmp_path / "results"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--model", "tiny",
         "--systems", "stock-vllm,infercept,no-such-policy", "--window", "12", "--drain", "30",
         "--overhead-window", "6", "--repeats", "2", "--max-num-batched-tokens", "1024", "--out", str(out)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]  # 1: a system failed
    assert "failed systems: no-such-policy" in proc.stderr

    results = json.loads((out / "latest.json").read_text())
    assert results["schema_version"] == 3 and results["profile"] == "quick"
    assert results["parameters"]["model"] == "tiny" and results["parameters"]["window_s"] == 12.0
    stock, ours, bogus = results["systems"]
    assert stock["policy"] == "stock-vllm" and stock["ok"] and stock["reported_policy"] == "stock-vllm"
    assert stock["vllm_version"].startswith("0.32")
    assert ours["policy"] == "infercept" and ours["ok"] and ours["reported_policy"] == "infercept"
    assert not bogus["ok"] and "no-such-policy" in bogus["error_detail"] and bogus["runs"] == []

    # The effective engines, read back from each: the settings given, the same cores for both.
    assert results["engine_check"] == {"equal": True, "differences": {}}
    cores = [int(c) for c in results["parameters"]["engine_settings"]["cpu_cores"].split("-")]
    for system in (stock, ours):
        engine = system["engine"]
        assert engine["max_num_batched_tokens"] == 1024 and engine["block_size"] == 128
        assert engine["enable_prefix_caching"] and engine["enable_chunked_prefill"] and not engine["async_scheduling"]
        assert engine["max_model_len"] == results["parameters"]["max_model_len"] and engine["kv_pool_blocks"] > 1
        assert engine["cpu_core_ids"] == [list(range(cores[0], cores[-1] + 1))]
    assert (stock["engine"]["scheduling_policy"], ours["engine"]["scheduling_policy"]) == ("fcfs", "priority")

    for system in (stock, ours):
        assert [run["repeat"] for run in system["runs"]] == [0, 1]  # the rate twice, other requests each time
        assert system["runs"][0]["requests"][0]["arrival_s"] != system["runs"][1]["requests"][0]["arrival_s"] or \
            system["runs"][0]["requests"][0]["key"] != system["runs"][1]["requests"][0]["key"]
        for run in system["runs"]:
            _check_run(run, interceptions=True)
        (point,) = system["by_rate"]
        assert point["repeats"] == 2 and len(point["spread"]["completed_per_s"]) == 2
        assert point["metrics"]["requests"]["sent"] == sum(len(run["requests"]) for run in system["runs"]) >= 8
        _check_run(system["zero_interception"], interceptions=False)
        assert set(system["summary"]) == SUMMARY_KEYS
        assert system["summary"]["sustainable_rate"]["bound"] in ("highest-measured", "below-lowest")
        assert system["summary"]["zero_interception_tokens_per_s"] > 0
    for system in (stock, ours):  # API time measured around the call where it ran, on both
        calls = [i for r in system["runs"][0]["requests"] for i in r["interceptions"]]
        assert calls and all(0 <= i["api_s"] <= i["duration_s"] for i in calls)
    strategies = stock["runs"][0]["metrics"]["interceptions"]["by_strategy"]
    assert set(strategies) == {"resubmit"}  # every call ended the request and re-submitted its context
    assert set(ours["runs"][0]["metrics"]["interceptions"]["by_strategy"]) <= {"preserve", "discard", "swap"}
    assert results["comparison"]["refused"] is None
    assert all(results["comparison"][k] > 0 for k in ("completed_per_s_ratio", "zero_interception_tokens_per_s_ratio"))

    assert "stock-vllm" in proc.stdout and "infercept" in proc.stdout and "FAILED" in proc.stdout  # the tables
    assert "infercept / stock-vllm" in proc.stdout and "engines equal (read back" in proc.stdout
    assert {p.name for p in out.glob("latest-*.png")} == {
        "latest-normalized-latency.png", "latest-strategy-mix.png", "latest-waste.png"}
