"""bench.vllm_serve's pure parts: the `vllm bench serve` arguments, the summary over rounds."""

from __future__ import annotations

from pathlib import Path

from bench.vllm_serve import bench_args, summarize, table, unequal_work


def test_bench_args_are_greedy_fixed_length_and_saved():
    args = bench_args("completions", base_url="http://h:1", model="m", tokenizer="/t", num_prompts=8, input_len=32,
                      output_len=16, max_concurrency=4, seed=3, result_dir=Path("/r"), result_file="x.json")
    pairs = dict(zip(args[::2], args[1::2]))
    assert pairs["--backend"] == "openai" and pairs["--endpoint"] == "/v1/completions"
    assert pairs["--temperature"] == "0" and "--ignore-eos" in args and pairs["--seed"] == "3"
    assert args[-4:] == ["--result-dir", "/r", "--result-filename", "x.json"]
    chat = bench_args("chat", base_url="u", model="m", tokenizer="t", num_prompts=1, input_len=1, output_len=1,
                      max_concurrency=1, seed=0, result_dir=Path("/r"), result_file="y.json")
    assert chat[:4] == ["--backend", "openai-chat", "--endpoint", "/v1/chat/completions"]


def run(system: str, throughput: float, ttft: float) -> dict:
    figures = {"failed": 0, "request_throughput": throughput, "output_throughput": throughput * 16,
               "mean_ttft_ms": ttft, "median_ttft_ms": ttft, "mean_tpot_ms": 100.0, "median_tpot_ms": 100.0}
    return {"system": system, "endpoint": "chat", "figures": figures}


def test_summary_gives_mean_and_range_per_system():
    summary = summarize([run("a", 1.0, 200.0), run("b", 2.0, 100.0), run("a", 3.0, 400.0)])
    assert summary["chat"]["a"]["request_throughput"] == {"mean": 2.0, "min": 1.0, "max": 3.0}
    assert summary["chat"]["b"]["mean_ttft_ms"] == {"mean": 100.0, "min": 100.0, "max": 100.0}
    assert "| chat | a | 0 | 2.000 (1.000-3.000) |" in table(summary)


def test_unequal_work_names_the_token_totals_that_differ():
    def tokens(system: str, out: int) -> dict:
        return {"system": system, "endpoint": "chat",
                "figures": {"total_input_tokens": 1128, "total_output_tokens": out}}

    assert unequal_work([tokens("a", 288), tokens("b", 288)]) == {}
    assert unequal_work([tokens("a", 277), tokens("b", 288)]) == {"chat": {"total_output_tokens": [277, 288]}}
