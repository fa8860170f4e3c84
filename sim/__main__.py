"""python -m sim: the operator's command and the validations.

  python -m sim rank --hardware a100-gptj-6b --rates 1,2,3,4 [--trace FILE] [--kv-pool-tokens N] [--out DIR]
  python -m sim rank --hardware cpu --profile PATH        # a cost profile the worker measured
  python -m sim validate-cpu                              # (a) against the full-scale bench (sim/data)
  python -m sim reproduce [--quick]                       # (b) the papers' tables
  python -m sim extract-bench bench-results/full2/latest.json   # refresh sim/data from a bench run
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

from bench.workload import ConversionConfig
from sim import rank as ranking
from sim import reproduce, validate_cpu
from sim.hardware import PRESETS, cpu_profile, deployment
from sim.workload import RealCallDurations, from_trace, is_user_trace, load_requests, scaled

CPU_RATES = (0.05, 0.1, 0.2, 0.3)
GPU_RATES = (1.0, 2.0, 3.0, 4.0, 6.0)


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in text.split(",") if x)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _rank(args: argparse.Namespace) -> int:
    if args.calibrate:
        d = validate_cpu.bench_deployment(validate_cpu.load(Path(args.calibrate)))
    elif args.profile:
        d = cpu_profile(args.profile)
    else:
        d = deployment(args.hardware)
    d = replace(d, **{k: v for k, v in {"kv_pool_tokens": args.kv_pool_tokens, "max_num_seqs": args.max_num_seqs,
                                          "max_num_batched_tokens": args.max_num_batched_tokens}.items()
                      if v is not None})
    on_cpu = d.name.startswith("cpu")
    rates = args.rates or (CPU_RATES if on_cpu else GPU_RATES)
    time_scale = args.time_scale if args.time_scale is not None else (0.05 if on_cpu else 1.0)
    conv = ConversionConfig(time_scale=time_scale, token_scale=1.0, context_cap=args.context_cap)
    if args.trace and is_user_trace(args.trace):
        user = load_requests(args.trace)
        span = max(r.arrival_s for r in user) or 1.0
        native = len(user) / span
        # A timed trace is replayed at each rate by compressing or stretching its arrivals.
        workload_at = lambda rate, seed: scaled(user, rate / native)  # noqa: E731
        window = args.window_s or span
    else:
        real: RealCallDurations = "measured-here" if on_cpu else "trace"
        kwargs = {"trace_path": args.trace} if args.trace else {}
        workload_at = lambda rate, seed: from_trace(rate, args.window_s or 300.0, seed, conv, real_call_s=real,  # noqa: E731
                                                    **kwargs)
        window = args.window_s or 300.0
    slo = args.slo_s if args.slo_s is not None else (0.3 if on_cpu else 0.05)
    systems = tuple(args.systems.split(",")) if args.systems else ranking.DEFAULT_SYSTEMS
    started = time.time()
    result = ranking.rank(d, systems, rates, workload_at, window_s=window, drain_s=args.drain_s or window,
                          slo_s=slo, seeds=tuple(range(args.seeds)))
    print(f"{d.name}: {d.source}\nKV pool {d.kv_pool_tokens} tokens, {d.max_num_seqs} slots, "
          f"{d.max_num_batched_tokens} tokens/iteration; rates {rates}; window {window:g} s\n")
    print(ranking.table(result))
    print(f"\n{ranking.recommendation(result)}")
    print(f"\n{result.simulated_s / 3600:.2f} simulated hours in {result.cpu_s:.1f} s of CPU "
          f"({result.cpu_s_per_simulated_hour:.1f} s per simulated hour; {time.time() - started:.0f} s wall)")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ranking.plot(result, out / f"rank-{d.name}.png", f"{d.name}: normalized latency by rate")
    (out / f"rank-{d.name}.json").write_text(json.dumps({
        "deployment": {**asdict(d), "cost_model": asdict(d.cost_model)}, "slo_s": slo, "rates": rates,
        "ranked": [{"system": x.system, "sustainable_rate": x.sustained.rate, "bound": x.sustained.bound,
                    "latency_s": x.latency_s, "points": [asdict(p) for p in x.points]} for x in result.ranked],
        "recommendation": result.best.system, "cpu_s_per_simulated_hour": result.cpu_s_per_simulated_hour}, indent=1))
    print(f"plot and JSON in {out}/")
    return 0


def _validate_cpu(args: argparse.Namespace) -> int:
    extracted = validate_cpu.load(Path(args.data))
    measured_on = "its own engine logs"
    if args.overheads_from:  # a prediction: calibrated on another run, none of this one's figures seen
        extracted = validate_cpu.with_overheads_from(extracted, validate_cpu.load(Path(args.overheads_from)))
        measured_on = args.overheads_from
    o = extracted["overheads"]
    for calibrated in (False, True):
        label = (f"profile + overheads measured on {measured_on} ({o['step_overhead_s'] * 1e3:.1f} ms/step + "
                 f"{o['seq_overhead_s'] * 1e3:.1f} ms/request)") if calibrated else "profile alone"
        print(f"\n{label}, against {extracted['source']}:\n")
        print(validate_cpu.table(validate_cpu.compare(extracted, calibrated)))
    return 0


def _reproduce(args: argparse.Namespace) -> int:
    scale = reproduce.QUICK if args.quick else reproduce.Scale()
    rows = [reproduce.infercept_headline(scale)[0], reproduce.infercept_headline(scale, chunked=False)[0],
            reproduce.infercept_ablation(scale)[0],
            reproduce.lamps(scale)[0], reproduce.fastserve(scale)[0]]
    print(reproduce.table(rows))
    return 0


def _extract(args: argparse.Namespace) -> int:
    out = validate_cpu.extract(Path(args.results), Path(args.out), Path(args.profile), args.min_samples)
    print(f"{len(out['runs'])} runs; overheads {out['overheads']['step_overhead_s']} s/step + "
          f"{out['overheads']['seq_overhead_s']} s/request; written to {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sim", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("rank", help="rank policy x scheduler combinations on a deployment and workload")
    r.add_argument("--hardware", default="a100-gptj-6b", choices=["cpu", *PRESETS])
    r.add_argument("--profile", help="a cost profile JSON (engine_worker/cost_profile.py) instead of a preset")
    r.add_argument("--calibrate", metavar="BENCH_DATA",
                   help="the CPU profile plus the per-step overheads measured from a bench run's engine logs "
                        "(a file `extract-bench` wrote, e.g. sim/data/bench-full3.json)")
    r.add_argument("--kv-pool-tokens", type=int)
    r.add_argument("--max-num-seqs", type=int)
    r.add_argument("--max-num-batched-tokens", type=int)
    r.add_argument("--trace", help="InferCept-format trace (sampled with Poisson arrivals) or a timed trace "
                                   "({\"requests\": [...]}, sim/workload.py); default: the InferCept mixture")
    r.add_argument("--rates", type=_floats)
    r.add_argument("--window-s", type=float)
    r.add_argument("--drain-s", type=float)
    r.add_argument("--seeds", type=int, default=1)
    r.add_argument("--slo-s", type=float, help="normalized latency SLO, s/token (default 0.05 on GPUs, 0.3 on CPU)")
    r.add_argument("--time-scale", type=float, help="stand-in call durations x this (default 1; 0.05 on cpu)")
    r.add_argument("--context-cap", type=int, default=2048)
    r.add_argument("--systems", help="comma-separated POLICY[+SCHEDULER][:key=value] (default: a curated set)")
    r.add_argument("--out", default="sim-results")
    r.set_defaults(run=_rank)
    v = sub.add_parser("validate-cpu", help="simulated vs measured on the full-scale bench")
    v.add_argument("--data", default=str(validate_cpu.BENCH_FULL2))
    v.add_argument("--overheads-from", metavar="BENCH_DATA",
                   help="calibrate with another run's measured overheads (an out-of-sample prediction)")
    v.set_defaults(run=_validate_cpu)
    p = sub.add_parser("reproduce", help="the papers' tables")
    p.add_argument("--quick", action="store_true", help="the tests' shorter runs")
    p.set_defaults(run=_reproduce)
    e = sub.add_parser("extract-bench", help="refresh sim/data from a bench results file and its logs")
    e.add_argument("results")
    e.add_argument("--out", default=str(validate_cpu.BENCH_FULL2))
    e.add_argument("--profile", default=str(validate_cpu.CPU_PROFILE),
                   help="the cost profile the bench's worker used, copied into sim/data (default: the float32 one)")
    e.add_argument("--min-samples", type=int, default=5,
                   help="engine stats lines a running count needs to enter the overhead fit")
    e.set_defaults(run=_extract)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
