"""`python -m bench [--quick] [options]`: see bench/README.md. Exit status 0 when every system
ran, 1 when one failed (the others' results are still written)."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path

from bench import report, summary
from bench.config import PROFILES, profile
from bench.runner import run_benchmark
from bench.trace import REQUEST_TYPES


def _floats(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    if not values or any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError("rates must be positive")
    return values


def _names(text: str) -> tuple[str, ...]:
    names = tuple(v.strip() for v in text.split(",") if v.strip())
    if not names:
        raise argparse.ArgumentTypeError("expected a comma-separated list")
    return names


def _types(text: str) -> tuple[str, ...] | None:
    if text == "all":
        return None
    names = _names(text)
    unknown = [n for n in names if n not in REQUEST_TYPES]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown types {unknown}: choose from {', '.join(REQUEST_TYPES)} or all")
    return names


def _env(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name.startswith("AUGSERVE_"):
        raise argparse.ArgumentTypeError(f"expected AUGSERVE_NAME=value, got {text!r}")
    return name, value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench", description="Benchmark intercept policies on the whole stack.")
    p.add_argument("--quick", action="store_true",
                   help="the quick profile (< 3 min on 2 cores); default: full (~25 min)")
    p.add_argument("--profile", choices=sorted([*PROFILES, "soak"]),
                   help="a named profile: full, quick, schedulers (the "
                   "queue-order schedulers beside infercept and stock vLLM), fastserve (FCFS vs MLFQ on heavy-tailed "
                   "lengths), or soak (faults under load: its own options, `--profile soak --help`)")
    p.add_argument("--systems", "--policies", dest="policies", type=_names,
                   help="comma-separated systems: stock-vllm and/or engine policies (one fresh stack each)")
    p.add_argument("--rates", type=_floats, help="request rates (req/s) to sweep, e.g. 0.5,1,2")
    p.add_argument("--window", dest="window_s", type=float, help="seconds of arrivals per rate")
    p.add_argument("--drain", dest="drain_s", type=float, help="seconds after the window before cutting requests")
    p.add_argument("--seed", type=int)
    p.add_argument("--trace", type=Path,
                   help="workload trace file (default: bench/data/infercept_mixture.json; format in bench/trace.py)")
    p.add_argument("--types", type=_types, help=f"request types: all, or some of {','.join(REQUEST_TYPES)}")
    p.add_argument("--time-scale", type=float, help="stand-in call durations = trace api_time x this")
    p.add_argument("--token-scale", type=float, help="multiplies every token count of the trace")
    p.add_argument("--output-lengths", choices=("trace", "pareto"),
                   help="trace: the trace's segments and calls; pareto: no calls, heavy-tailed output lengths")
    p.add_argument("--pareto-alpha", type=float, help="tail index of the pareto output lengths (near 1: heavier)")
    p.add_argument("--pareto-min-tokens", type=int, help="scale (smallest length) of the pareto output lengths")
    p.add_argument("--context-cap", type=int, help="prompt + generated + returned tokens per request")
    p.add_argument("--kv-cache-mb", type=float, help="the engine's KV pool in MB (default: the profile's)")
    p.add_argument("--kv-cache-tokens", type=int, help="the KV pool in tokens of the served model (instead of MB)")
    p.add_argument("--model", help="default, tiny, or a local Hugging Face model folder")
    p.add_argument("--dtype", choices=("auto", "bfloat16", "float16", "float32"),
                   help="the engine's dtype (auto: float32 on CPUs without native bf16)")
    p.add_argument("--mode", choices=("open", "closed"), help="open loop (Poisson arrivals) or closed loop")
    p.add_argument("--concurrency", type=int, help="closed loop: concurrent clients")
    p.add_argument("--no-stream", dest="stream", action="store_const", const=False,
                   help="non-streaming requests (no time to first token)")
    p.add_argument("--worker-env", type=_env, action="append", metavar="AUGSERVE_X=VALUE",
                   help="an extra engine worker setting for every system (repeatable), e.g. "
                        "AUGSERVE_DURATION_ESTIMATE=oracle")
    p.add_argument("--slo", dest="slo_s", type=float, help="normalized latency SLO in s/token for the sustainable rate")
    p.add_argument("--slo-statistic", choices=("mean", "p90"), help="which normalized latency the SLO bounds")
    p.add_argument("--overhead-window", dest="overhead_window_s", type=float,
                   help="seconds of the zero-interception closed-loop run (0: skip it)")
    p.add_argument("--overhead-concurrency", type=int, help="clients of the zero-interception run")
    p.add_argument("--overhead-systems", type=_names, help="systems that run the zero-interception workload")
    p.add_argument("--compare",
                   help="the system set against stock-vllm and vllm (default: the worker's default policy)")
    p.add_argument("--repeats", type=int, help="runs of each rate per system, interleaved across systems (default 2)")
    p.add_argument("--max-num-batched-tokens", type=int, help="every engine's step token budget (default 2048)")
    p.add_argument("--chunked-prefill", dest="enable_chunked_prefill", action=argparse.BooleanOptionalAction,
                   help="chunked prefill in every engine (default on)")
    p.add_argument("--async-scheduling", action=argparse.BooleanOptionalAction,
                   help="vLLM's async scheduling in every engine (default off)")
    p.add_argument("--cpu-cores", help="cores every engine's threads are bound to, e.g. 0-1 (default: all allowed)")
    p.add_argument("--realtime", action="store_const", const=True,
                   help="run the bench and its systems under SCHED_RR (a machine shared with other jobs; needs root)")
    p.add_argument("--engine-core-below", action="store_const", const=True,
                   help="under --realtime, every engine core one priority below the rest (default: one priority)")
    p.add_argument("--rr-timeslice-ms", type=int,
                   help="under --realtime, the kernel's round-robin slice for the run, put back after (default: "
                        "the kernel's, 100 ms)")
    p.add_argument("--out", dest="out_dir", type=Path, help="results folder (default bench-results)")
    p.add_argument("--report", dest="report_file", type=Path, metavar="RESULTS_JSON",
                   help="run nothing: recompute the metrics and tables of a saved results file with this code")
    return p


def _interrupt(*_) -> None:
    raise KeyboardInterrupt


def _print_tables(results: dict) -> None:
    print(report.table(results))
    print()
    print(report.rate_table(results))
    print()
    print(report.summary_table(results))


def _report_only(path: Path) -> int:
    """A saved run re-analysed: the per-run metrics recomputed from its request records, then the
    per-rate pooling, summaries and comparisons (so a figure added since the run is there too)."""
    results = summary.reanalysed(json.loads(path.read_text()))
    _print_tables(results)
    out = report.write_json(results, path.parent, path.stem + "-reanalysed", latest=False)
    print(f"\nre-analysed results: {out}")
    return 1 if report.failed_systems(results) or report.refused_comparisons(results) else 0


def _soak_args(argv: list[str]) -> list[str] | None:
    """The arguments after `--profile soak`, which is its own command (bench.soak); None otherwise."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--profile")
    known, rest = pre.parse_known_args(argv)
    return rest if known.profile == "soak" else None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    soak_args = _soak_args(argv)
    if soak_args is not None:
        from bench import soak

        return soak.main(soak_args)
    args = vars(parser().parse_args(argv))
    report_file = args.pop("report_file")
    if report_file is not None:
        return _report_only(report_file)
    named = args.pop("profile")
    name = "quick" if args.pop("quick") else (named or "full")
    args["worker_env"] = dict(args["worker_env"]) if args["worker_env"] else None
    cfg = profile(name, **args)
    # Stop like Ctrl-C on SIGTERM too, so the running stack's processes are stopped (finally).
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)  # even where a background launch ignored it
    try:
        results, path = run_benchmark(cfg)
    except KeyboardInterrupt:
        print("bench: interrupted, stacks stopped", file=sys.stderr)
        return 130
    except ValueError as exc:  # bad parameters (pool too small for the cap, no requests of a type, ...)
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    print()
    _print_tables(results)
    print(f"\nresults: {path} (and {cfg.out_dir / 'latest.json'}), plots: {cfg.out_dir}/latest-*.png, "
          f"wall time {results['wall_s']:.0f}s")
    failed = report.failed_systems(results)
    if failed:
        print(f"failed systems: {', '.join(failed)} (see 'error' in the results file)", file=sys.stderr)
    refused = report.refused_comparisons(results)
    for line in refused:
        print(f"comparison refused, {line}", file=sys.stderr)
    return 1 if failed or refused else 0


if __name__ == "__main__":
    sys.exit(main())
