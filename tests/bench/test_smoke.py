"""`python -m bench --quick` end to end on the tiny model: a real stack per system, real HTTP.

One system that runs (preserve) and one the engine worker refuses (a bogus policy name), which
must be reported as failed while the run goes on. No speed assertions: only that every metric is
there for the system that ran.
"""

from __future__ import annotations

import json
import subprocess
import sys

from stack.processes import REPO_ROOT

METRIC_KEYS = {"requests", "completed_per_s", "output_tokens_per_s", "generated_tokens", "normalized_latency_s",
               "e2e_latency_s", "ttft_s", "api_time_s", "interceptions", "recomputed_tokens", "recompute_s", "held_kv_byte_seconds",
               "duration_estimate_abs_error_s",
               "waste", "waste_chosen", "errors"}


def test_quick_profile_on_the_tiny_model(tmp_path):
    out = tmp_path / "results"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--model", "tiny", "--policies", "preserve,no-such-policy",
         "--window", "15", "--drain", "30", "--out", str(out)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]  # 1: a system failed
    assert "failed systems: no-such-policy" in proc.stderr

    results = json.loads((out / "latest.json").read_text())
    assert results["schema_version"] == 1 and results["profile"] == "quick"
    assert results["parameters"]["model"] == "tiny" and results["parameters"]["window_s"] == 15.0
    preserve, bogus = results["systems"]
    assert preserve["policy"] == "preserve" and preserve["ok"] and preserve["reported_policy"] == "preserve"
    assert not bogus["ok"] and "no-such-policy" in bogus["error_detail"] and bogus["runs"] == []

    (run,) = preserve["runs"]
    m = run["metrics"]
    assert set(m) == METRIC_KEYS
    assert m["requests"]["sent"] >= 15 and m["requests"]["completed"] == m["requests"]["sent"]
    for name in ("normalized_latency_s", "e2e_latency_s", "ttft_s", "api_time_s"):
        assert all(m[name][k] is not None for k in ("mean", "p50", "p90", "p99")), name
    assert m["completed_per_s"] > 0 and m["output_tokens_per_s"] > 0
    assert m["interceptions"]["total"] > 0 and set(m["interceptions"]["by_strategy"]) <= {"preserve", "discard", "swap"}
    assert all(r["completion_tokens"] == r["planned_tokens"] for r in run["requests"])  # plans ran exactly

    assert "preserve" in proc.stdout and "FAILED" in proc.stdout  # the table
    assert {p.name for p in out.glob("latest-*.png")} == {"latest-normalized-latency.png", "latest-strategy-mix.png"}
