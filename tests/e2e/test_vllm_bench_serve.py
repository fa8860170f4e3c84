"""vLLM's own load generator, `vllm bench serve`, runs clean against the gateway (chat and
completions, streamed with usage, greedy, ignore_eos), on the suite's shared stack."""

from __future__ import annotations

from bench.vllm_serve import bench_args, figures, run_bench, served_model

RUNS = {"chat": 4, "completions": 4}
OUTPUT_LEN = 4


def test_vllm_bench_serve_runs_clean(gateway_url, model_path, tmp_path):
    model = served_model(gateway_url)
    runs = [bench_args(endpoint, base_url=gateway_url, model=model, tokenizer=model_path, num_prompts=n,
                       input_len=16, output_len=OUTPUT_LEN, max_concurrency=2, seed=0, result_dir=tmp_path,
                       result_file=f"{endpoint}.json") for endpoint, n in RUNS.items()]
    run_bench(runs, timeout_s=240)
    for endpoint, n in RUNS.items():
        result = figures(tmp_path / f"{endpoint}.json")
        assert (result["completed"], result["failed"]) == (n, 0), endpoint
        # ignore_eos holds: every request generated exactly its output length, counted from usage.
        assert result["total_output_tokens"] == n * OUTPUT_LEN, endpoint
