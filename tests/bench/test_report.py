"""The printed table, the results file and the plots, from a hand-made results object."""

from __future__ import annotations

import json

from bench.__main__ import main
from bench.metrics import system_metrics
from bench.plots import plot
from bench.report import rate_table, refused_comparisons, summary_table, table, write_json
from bench.summary import SPREAD, annotate

RECORDS = [
    {"arrival_s": 0.0, "sent_s": 0.0, "end_s": 3.0, "first_token_s": 0.4, "ok": True, "completion_tokens": 20,
     "prompt_tokens": 10,
     "interceptions": [{"api": "tts", "duration_s": 1.0, "strategy": "discard", "recomputed_tokens": 90}]},
    {"arrival_s": 1.0, "sent_s": 1.0, "end_s": 2.0, "first_token_s": 1.1, "ok": True, "completion_tokens": 10,
     "prompt_tokens": 10, "interceptions": []},
]


def _results() -> dict:
    run = lambda rate: {"rate": rate, "concurrency": None, "ok": True, "error": None, "wall_s": 5.0,  # noqa: E731
                        "worker_idle_after": True, "metrics": system_metrics(RECORDS, 5.0), "requests": RECORDS}
    zero = {**run(None), "concurrency": 8}
    return annotate({
        "schema_version": 2, "profile": "quick", "parameters": {"model": "tiny", "slo_s": 0.3, "slo_statistic": "mean"},
        "systems": [
            {"policy": "infercept", "ok": True, "error": None, "runs": [run(0.5), run(1.0)], "zero_interception": zero},
            {"policy": "vllm", "ok": False, "runs": [],
             "error": "RuntimeError: engine-0 exited | policy | Input should be 'preserve'"},
        ],
    })


def test_table_has_a_row_per_run_and_a_clear_failure_row():
    lines = table(_results()).splitlines()
    assert lines[0].split()[:3] == ["system", "load", "done/sent"]
    assert lines[1].split()[:4] == ["infercept", "0.5/s", "2/2", "0.40"]
    assert "0/1/0" in lines[1] and lines[1].split()[-3:] == ["90", "64.3%", "-"]  # mix, recomputed, share, held KV
    assert lines[3].split()[:3] == ["infercept", "8", "cl"] and "no calls" in lines[3]  # the zero-interception run
    assert lines[4].startswith("vllm") and "FAILED: RuntimeError: engine-0 exited" in lines[4]


def test_summary_table_and_comparison():
    results = _results()
    (infercept, _), c = results["systems"], results["comparison"]
    # normalized latency 0.1 mean at both rates (<= 0.3 SLO): sustained up to the highest rate measured
    assert infercept["summary"]["sustainable_rate"]["rate"] == 1.0
    assert infercept["summary"]["sustainable_rate"]["bound"] == "highest-measured"
    assert c == {"system": "infercept", "baseline": "stock-vllm", "refused": None, "completed_per_s_ratio": None,
                 "sustainable_rate_ratio": None, "sustainable_rate_bounds": ["highest-measured", None],
                 "zero_interception_tokens_per_s_ratio": None, "ratio_spread": {k: None for k in SPREAD},
                 "past_knee": None}
    lines = summary_table(results).splitlines()
    assert lines[1].split()[:3] == ["infercept", ">=", "1.00"] and "FAILED" in lines[2]


def test_results_file_latest_copy_and_plots(tmp_path):
    results = _results()
    path = write_json(results, tmp_path, "quick-x")
    assert json.loads(path.read_text()) == json.loads((tmp_path / "latest.json").read_text())
    written = plot(results, tmp_path, "quick-x")
    names = {p.name for p in written}
    assert names == {"quick-x-normalized-latency.png", "quick-x-strategy-mix.png", "quick-x-waste.png"}
    for name in names | {"latest-normalized-latency.png", "latest-strategy-mix.png", "latest-waste.png"}:
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _engine(**changes) -> dict:
    return {"dtype": "float32", "max_model_len": 384, "block_size": 128, "kv_pool_blocks": 7,
            "enable_prefix_caching": True, "enable_chunked_prefill": True, "max_num_batched_tokens": 2048,
            "max_num_seqs": 64, "async_scheduling": False, "enforce_eager": True, "kv_cache_dtype": "auto",
            "scheduling_policy": "fcfs", "cpu_core_ids": [[0, 1]], "reserved_cpus": []} | changes


def _pair(stock_engine: dict, repeats: int = 2) -> dict:
    runs = [{"rate": 0.5, "repeat": r, "ok": True, "metrics": system_metrics(RECORDS, 5.0), "requests": RECORDS}
            for r in range(repeats)]
    return annotate({
        "schema_version": 3, "profile": "quick",
        "parameters": {"model": "tiny", "slo_s": 0.3, "slo_statistic": "mean", "window_s": 5.0},
        "systems": [
            {"policy": "stock-vllm", "ok": True, "error": None, "runs": runs, "engine": stock_engine},
            {"policy": "infercept", "ok": True, "error": None, "runs": runs,
             "engine": _engine(scheduling_policy="priority")},
        ],
    })


def test_equal_engines_are_compared_with_the_spread_of_the_repeats():
    results = _pair(_engine())
    c = results["comparison"]
    assert results["engine_check"] == {"equal": True, "differences": {}}
    assert c["refused"] is None and c["completed_per_s_ratio"] == 1.0
    assert c["ratio_spread"]["completed_per_s"] == [1.0, 1.0]
    (point,) = results["systems"][0]["by_rate"]
    assert point["repeats"] == 2 and point["metrics"]["requests"]["sent"] == 2 * len(RECORDS)  # pooled
    assert "engines equal (read back" in summary_table(results) and not refused_comparisons(results)
    row = rate_table(results).splitlines()[1].split()
    assert row[:4] == ["stock-vllm", "0.5/s", "2", "4/4"] and row[4:7] == ["0.400", "/", "0.400"]  # each repeat


def test_engines_that_differ_are_not_compared():
    """The CPU binding defect the bench had: stock vLLM's engine on one core, ours on two."""
    results = _pair(_engine(cpu_core_ids=[[0]], reserved_cpus=[1]))
    c = results["comparison"]
    assert results["engine_check"]["differences"] == {"cpu_core_ids": {"stock-vllm": [[0]], "infercept": [[0, 1]]}}
    assert c["refused"].startswith("engines differ: cpu_core_ids")
    assert c["completed_per_s_ratio"] is None and c["sustainable_rate_ratio"] is None
    text = summary_table(results)
    assert "ENGINES DIFFER" in text and "infercept / stock-vllm: NOT COMPARED" in text
    assert refused_comparisons(results) == [f"infercept / stock-vllm: {c['refused']}"]


def test_throughput_is_compared_at_one_and_a_half_times_the_baselines_knee():
    """Stock keeps up at 0.1 req/s and falls behind at 0.2 (one of two requests cut at the drain's
    end), so its sustainable rate is 0.1 and the comparison point is the first rate >= 0.15."""
    cut = [RECORDS[0], {**RECORDS[1], "end_s": None, "ok": False}]
    run = lambda rate, records: {"rate": rate, "repeat": 0, "ok": True,  # noqa: E731
                                 "metrics": system_metrics(records, 5.0), "requests": records}
    results = annotate({
        "schema_version": 3, "profile": "full",
        "parameters": {"model": "tiny", "slo_s": 0.3, "slo_statistic": "mean", "window_s": 5.0},
        "systems": [
            {"policy": "stock-vllm", "ok": True, "runs": [run(0.1, RECORDS), run(0.2, cut)], "engine": _engine()},
            {"policy": "infercept", "ok": True, "runs": [run(0.1, RECORDS), run(0.2, RECORDS)], "engine": _engine()},
        ],
    })
    stock = results["systems"][0]["summary"]["sustainable_rate"]
    assert (stock["rate"], stock["bound"]) == (0.1, "last-sustained")
    assert results["comparison"]["past_knee"] == {
        "baseline_knee": 0.1, "rate": 0.2, "completed_per_s_ratio": 2.0, "served_per_s_ratio": 2.0,
        "completed": [2, 1], "sent": [2, 2]}
    assert "at 0.2 req/s (>= 1.5x 0.1" in summary_table(results)


def test_a_saved_run_is_reanalysed_from_its_request_records(tmp_path):
    """`python -m bench --report FILE`: metrics an older run lacks are recomputed from its records."""
    saved = json.loads(json.dumps(_pair(_engine()), default=str))
    for system in saved["systems"]:
        for run in system["runs"]:
            del run["metrics"]["served_per_s"]
        del system["by_rate"], system["summary"]
    del saved["comparisons"], saved["comparison"]
    path = tmp_path / "full-old.json"
    path.write_text(json.dumps(saved))
    assert main(["--report", str(path)]) == 0
    again = json.loads((tmp_path / "full-old-reanalysed.json").read_text())
    assert again["systems"][0]["runs"][0]["metrics"]["served_per_s"] == 2 / 5.0
    assert again["comparison"]["refused"] is None and "past_knee" in again["comparison"]
    assert not (tmp_path / "latest.json").exists()  # a re-analysis is not the newest run
