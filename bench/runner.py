"""Runs the benchmark: for each system (bench.systems: our stack per policy, or stock vLLM) a
fresh start, the same workloads (same seed) through it, then it is stopped. Per system: one run
per rate of the sweep, then (for cfg.overhead_systems) the zero-interception run. A system that
fails to start or dies is reported as failed; the others run.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, fields, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bench import plots, report, summary
from bench.client import LoadClient
from bench.config import BenchConfig, PoolSizing, engine_settings, kv_bytes_per_token, resolve_dtype, size_pool
from bench.engine_settings import EngineSettings
from bench.metrics import system_metrics
from bench.prompts import PromptBuilder
from bench.realtime import ENGINE_CORE_PRIORITY, current_scheduling, enter_realtime, lower_engine_cores, rr_timeslice
from bench.system_names import split_system, system_name
from bench.systems import TMPFS, System, make_system
from bench.trace import load_trace
from bench.workload import (
    BenchRequest,
    ConversionConfig,
    closed_loop,
    heavy_tailed_outputs,
    open_loop,
    select,
    without_calls,
)
from engine_worker import cost_profile, profile_store

IDLE_TIMEOUT_S = 60.0
"""After a run, how long the system may take to report no request in flight."""
_NOISE = ("File ", "^", "~", "For further information", "warnings.warn", "Traceback", "return ", "raise ")


def resolve_model(name: str) -> Path:
    from stack.models import build_default, build_tiny

    return {"default": build_default, "tiny": build_tiny}.get(name, lambda: Path(name))()


def headline(exc: BaseException) -> str:
    """One line for a failed start: what failed, then the last meaningful lines of its log."""
    lines = str(exc).splitlines() or [type(exc).__name__]
    meaningful = [line.strip() for line in lines[1:] if line.strip() and not line.strip().startswith(_NOISE)]
    tail = " | ".join(meaningful[-3:])
    return f"{type(exc).__name__}: {lines[0]}" + (f" {tail}" if tail else "")


class Steps:
    """The whole benchmark's progress: '[3/17]' in front of each run's status line."""

    def __init__(self, total: int):
        self.total, self.done = total, 0

    def label(self, text: str) -> str:
        self.done += 1
        return f"[{self.done}/{self.total}] {text}"


def _one_run(client: LoadClient, requests: list[BenchRequest], label: str, *, closed: bool, window_s: float,
             drain_s: float, concurrency: int) -> list:
    if closed:
        return asyncio.run(client.run_closed(requests, concurrency=concurrency, window_s=window_s, drain_s=drain_s,
                                             label=label))
    return asyncio.run(client.run_open(requests, window_s=window_s, drain_s=drain_s, label=label))


def _run_entry(system: System, client: LoadClient, requests: list[BenchRequest], label: str, *, rate: float | None,
               concurrency: int | None, window_s: float, drain_s: float, wait: bool) -> dict[str, Any]:
    began, load_before = time.monotonic(), os.getloadavg()[0]
    records = _one_run(client, requests, label, closed=rate is None, window_s=window_s, drain_s=drain_s,
                       concurrency=concurrency or 1)
    dead = [s.name for s in system.dead()]
    # Requests cut at the drain end may still run in the engine: the next run waits for them to
    # leave; after the last one the system is stopped anyway.
    idle = system.wait_idle(min(IDLE_TIMEOUT_S, drain_s)) if wait and not dead else None
    return {
        "rate": rate, "concurrency": concurrency, "ok": not dead,
        "error": f"services died during the run: {dead}" if dead else None,
        "wall_s": round(time.monotonic() - began, 1), "worker_idle_after": idle,
        # The machine's 1-min load average around the run: other users' work skews timings.
        "load_avg_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "metrics": system_metrics([asdict(r) for r in records], window_s),
        "requests": [asdict(r) for r in records],
    }


def _new_result(name: str) -> dict[str, Any]:
    return {"policy": name, "ok": False, "error": None, "error_detail": None, "startup_s": None,
            "reported_policy": None, "engine": None, "runs": [], "zero_interception": None}


def start_system(system: System, result: dict[str, Any], log=print) -> bool:
    """Starts one system; a failure is recorded in `result` (the next system still runs)."""
    started = time.monotonic()
    try:
        system.start()
    except Exception as exc:  # noqa: BLE001 - a failed system is a result, the next one still runs
        result["error"], result["error_detail"] = headline(exc), str(exc)[-6000:]
        log(f"[{system.name}] FAILED to start: {result['error']}")
        return False
    result["startup_s"] = round(time.monotonic() - started, 1)
    return True


def check_system(system: System, result: dict[str, Any], log=print) -> bool:
    """A started system says what it is, and what its engine really runs with (result["engine"])."""
    name = system.name
    result["reported_policy"] = system.reported()
    result.update(system.details())
    facts = system.engine_facts()
    result["engine"] = facts.model_dump() if facts is not None else None
    if result["reported_policy"] != system_name(*split_system(name)):  # options in any order
        result["error"] = f"the system reports {result['reported_policy']!r}, not {name!r}"
    elif facts is None:
        result["error"] = "its engine's effective settings could not be read back"
    else:
        return True
    log(f"[{name}] FAILED: {result['error']}")
    return False


def _engine_core_lowered(system: System, result: dict[str, Any], log=print) -> bool:
    """Puts the system's engine core below its front-ends (bench.realtime) and records what its
    threads read back (result["engine_core_scheduling"]); a system whose engine core is not found
    is failed rather than compared under another rule."""
    lowered = lower_engine_cores(system.pids())
    result["engine_core_scheduling"] = lowered
    if lowered:
        log(f"[{system.name}] engine core {lowered}")
        return True
    result["error"] = "its vLLM engine core process was not found, so it could not be put below its front-ends"
    log(f"[{system.name}] FAILED: {result['error']}")
    return False


@dataclass(frozen=True)
class Run:
    """One measured run: a workload (a rate's open loop, or a closed loop) for every system."""

    label: str
    requests: list[BenchRequest]
    rate: float | None
    concurrency: int | None
    window_s: float
    drain_s: float
    repeat: int = 0
    zero_interception: bool = False


def planned_runs(cfg: BenchConfig, workloads: dict[tuple[int, float], list[BenchRequest]],
                 overhead: list[BenchRequest] | None) -> list[Run]:
    closed = cfg.mode == "closed"
    runs = [Run(f"{cfg.concurrency} clients" if closed else f"rate {rate:g}/s", requests,
                None if closed else rate, cfg.concurrency if closed else None, cfg.window_s, cfg.drain_s, repeat)
            for (repeat, rate), requests in workloads.items()]
    if overhead is not None:
        runs.append(Run(f"zero-interception {cfg.overhead_concurrency} clients", overhead, None,
                        cfg.overhead_concurrency, cfg.overhead_window_s, cfg.drain_s, zero_interception=True))
    return runs


def rotated(items: list, n: int) -> list:
    """items starting at position n (mod len): who goes first changes from run to run, so no
    system always runs right after the same other one."""
    k = n % len(items) if items else 0
    return items[k:] + items[:k]


def run_systems(cfg: BenchConfig, systems: list[System], runs: list[Run], prompts: PromptBuilder, steps: Steps,
                log=print, began: float = 0.0) -> list[dict[str, Any]]:
    """Every system starts at once (start-up is mostly single-threaded imports, so they overlap
    on 2 cores) and stays up until the end: each is driven while all the others sit loaded and
    idle beside it, the same for every system. Runs are interleaved: each workload goes to every
    system in turn (order rotated per run), before the next workload."""
    results = [_new_result(s.name) for s in systems]
    try:
        log(f"==> starting {len(systems)} systems together")
        with ThreadPoolExecutor(len(systems)) as pool:  # exits only when every start has ended
            started = list(pool.map(lambda pair: start_system(*pair, log=log),  # type: ignore[misc]  # pairs
                                    zip(systems, results)))
        live = [i for i, ok in enumerate(started) if ok and check_system(systems[i], results[i], log)]
        if cfg.realtime and cfg.engine_core_below:
            live = [i for i in live if _engine_core_lowered(systems[i], results[i], log)]
        clients = {i: systems[i].client(prompts, cfg) for i in live}
        log(f"==> {len(live)} systems up (bench time so far {time.monotonic() - began:.0f}s)")
        for n, run in enumerate(runs):
            for i in rotated(live, n):
                system, result = systems[i], results[i]
                if result["error"] is not None or (run.zero_interception and system.name not in cfg.overhead_systems):
                    continue
                if cfg.realtime and cfg.engine_core_below:  # threads started since inherit; re-read
                    lower_engine_cores(system.pids())
                entry = _run_entry(system, clients[i], run.requests, steps.label(f"{system.name} {run.label}"),
                                   rate=run.rate, concurrency=run.concurrency, window_s=run.window_s,
                                   drain_s=run.drain_s, wait=True)
                entry["repeat"] = run.repeat
                if run.zero_interception:
                    result["zero_interception"] = entry
                else:
                    result["runs"].append(entry)
                if not entry["ok"]:
                    result["error"] = entry["error"]
                    result["error_detail"] = "\n\n".join(f"{s.name}:\n{s.log_tail()}" for s in system.dead())
                    log(f"[{system.name}] FAILED: {result['error']}")
        for i in live:
            results[i]["ok"] = results[i]["error"] is None
    finally:
        for system in systems:  # idempotent
            system.stop()
    return results


def parameters(cfg: BenchConfig, model_path: Path, sizing: PoolSizing, engine: EngineSettings,
               workloads: dict[tuple[int, float], list[BenchRequest]]) -> dict[str, Any]:
    params = {f.name: getattr(cfg, f.name) for f in fields(cfg)}
    params.update(trace=str(cfg.trace), out_dir=str(cfg.out_dir), model_path=str(model_path),
                  kv_cache_bytes=sizing.kv_cache_bytes, pool_tokens=sizing.pool_tokens,
                  max_model_len=sizing.max_model_len, kv_bytes_per_token=sizing.bytes_per_token,
                  engine_dtype=engine.dtype, engine_settings=asdict(engine))
    params["workload"] = {f"repeat {k[0]} rate {k[1]:g}": {"requests": len(v),
                                                           "by_type": dict(sorted(Counter(r.type for r in v).items())),
                                                           "generate_tokens": sum(r.generate_tokens for r in v)}
                          for k, v in workloads.items()}
    return params


def build_workloads(cfg: BenchConfig, prompts: PromptBuilder) -> dict[tuple[int, float], list[BenchRequest]]:
    """The workload of each (repeat, rate), in run order: repeat r uses seed cfg.seed + r (other
    requests, arrivals and prompts), every system the same."""
    pool = select(load_trace(cfg.trace), cfg.types)
    conv = ConversionConfig(time_scale=cfg.time_scale, token_scale=cfg.token_scale, context_cap=cfg.context_cap,
                            min_prompt_tokens=prompts.min_tokens)
    workloads: dict[tuple[int, float], list[BenchRequest]] = {}
    for repeat in range(max(1, cfg.repeats)):
        seed = cfg.seed + repeat
        for rate in ((0.0,) if cfg.mode == "closed" else cfg.rates):
            if cfg.mode == "closed":
                requests = closed_loop(pool, count=max(256, 100 * cfg.concurrency), seed=seed, cfg=conv)
            else:
                requests = open_loop(pool, rate=rate, window_s=cfg.window_s, seed=seed, cfg=conv)
            if cfg.output_lengths == "pareto":
                requests = heavy_tailed_outputs(requests, alpha=cfg.pareto_alpha, min_tokens=cfg.pareto_min_tokens,
                                                context_cap=cfg.context_cap, seed=seed)
            workloads[(repeat, rate)] = [replace(r, run_key=f"{repeat}:{rate:g}") for r in requests]
    return workloads


def build_overhead_workload(cfg: BenchConfig, prompts: PromptBuilder) -> list[BenchRequest] | None:
    """The zero-interception workload: closed-loop requests of the same mixture with their calls
    removed (same prompts, same total generated tokens, no pauses); None when it is off."""
    if cfg.overhead_window_s <= 0:
        return None
    pool = select(load_trace(cfg.trace), cfg.types)
    conv = ConversionConfig(time_scale=cfg.time_scale, token_scale=cfg.token_scale, context_cap=cfg.context_cap,
                            min_prompt_tokens=prompts.min_tokens)
    requests = without_calls(closed_loop(pool, count=max(256, 100 * cfg.overhead_concurrency), seed=cfg.seed, cfg=conv))
    return [replace(r, run_key="zero-interception") for r in requests]


def ensure_cost_profile(model_path: Path, engine: EngineSettings, log=print) -> str:
    """Our workers read their cost model from a profile cached per model, dtype and machine, and
    profile quickly at start-up when there is none. Started together, they would profile on
    cores busy with each other's start-ups (forward base costs of 200+ ms measured that way,
    against ~25 ms idle). So the bench runs the full profile first, alone, when the cache holds
    none or only a quick one; every worker then loads the same one. Returns its description."""
    import subprocess
    import sys

    path = profile_store.cache_path(str(model_path), engine.dtype)
    cached = profile_store.load(path)
    if cached is None or len(cached.forward_samples) < len(cost_profile.PREFILL_SIZES):
        log(f"==> profiling the cost model of {model_path.name} ({engine.dtype}) alone first: {path}")
        subprocess.run([sys.executable, "-m", "engine_worker.cost_profile", "--model", str(model_path),
                        "--dtype", engine.dtype, "--force"], check=True,
                       env={**os.environ, **engine.cpu_env(), "HF_HUB_OFFLINE": "1"})
        cached = profile_store.load(path)
    return cost_profile.describe(cached)  # type: ignore[arg-type]  # just written (check=True)


def run_benchmark(cfg: BenchConfig, log=print) -> tuple[dict[str, Any], Path]:
    """Runs every system; returns the results and the path of the JSON written."""
    if cfg.rr_timeslice_ms is not None and not cfg.realtime:
        raise ValueError("--rr-timeslice-ms sets the slice of SCHED_RR tasks: it needs --realtime")
    if cfg.realtime:
        log(f"==> running under {enter_realtime()} (every system inherits it)")
    scheduling = current_scheduling()
    if not cfg.realtime:
        return _run_systems_and_report(cfg, scheduling, log)
    scheduling += (f"; engine cores SCHED_RR priority {ENGINE_CORE_PRIORITY}" if cfg.engine_core_below
                   else "; engine cores alike") + f"; our stacks' Redis files in {TMPFS} (bench.systems.redis_dir)"
    with rr_timeslice(cfg.rr_timeslice_ms) as slice_text:
        log(f"==> {slice_text}")
        return _run_systems_and_report(cfg, f"{scheduling}; {slice_text}", log)


def _run_systems_and_report(cfg: BenchConfig, scheduling: str, log) -> tuple[dict[str, Any], Path]:
    began, started_at = time.monotonic(), datetime.now(timezone.utc)
    stem = f"{cfg.profile}-{started_at.strftime('%Y%m%d-%H%M%S')}"
    model_path = resolve_model(cfg.model)
    dtype = resolve_dtype(cfg.dtype)
    sizing = size_pool(cfg, kv_bytes_per_token(model_path, dtype), dtype)
    prompts = PromptBuilder(str(model_path))
    workloads = build_workloads(cfg, prompts)
    overhead = build_overhead_workload(cfg, prompts)
    engine = engine_settings(cfg, sizing)
    profile_text = ensure_cost_profile(model_path, engine, log)
    loads = "; ".join(f"{f'{k[1]:g} req/s' if cfg.mode == 'open' else f'{cfg.concurrency} clients'} "
                      f"(repeat {k[0]}): {len(v)} requests" for k, v in workloads.items())
    with_overhead = [s for s in cfg.policies if overhead is not None and s in cfg.overhead_systems]
    log(f"==> bench {cfg.profile}: {len(cfg.policies)} systems {', '.join(cfg.policies)}; model {model_path.name}; "
        f"engine {engine}; KV pool {sizing.kv_cache_bytes / (1 << 20):.1f} MB = "
        f"{sizing.pool_tokens} tokens, max_model_len {sizing.max_model_len}; {loads}"
        + (f"; zero-interception run ({cfg.overhead_window_s:g}s, {cfg.overhead_concurrency} clients) for "
           f"{', '.join(with_overhead)}" if with_overhead else ""))
    steps = Steps(len(cfg.policies) * len(workloads) + len(with_overhead))
    state_dir = lambda i, name: cfg.out_dir / "logs" / stem / f"{i}-{re.sub(r'[^A-Za-z0-9_.-]', '_', name)}"  # noqa: E731
    systems = run_systems(cfg, [make_system(cfg, name, model_path, engine, state_dir(i, name), log)
                                for i, name in enumerate(cfg.policies)],
                          planned_runs(cfg, workloads, overhead), prompts, steps, log=log, began=began)
    results = {
        "schema_version": report.SCHEMA_VERSION, "profile": cfg.profile, "started_at": started_at.isoformat(),
        "finished_at": datetime.now(timezone.utc).isoformat(), "wall_s": round(time.monotonic() - began, 1),
        "parameters": {**parameters(cfg, model_path, sizing, engine, workloads), "cost_profile": profile_text,
                       "scheduling": scheduling},
        "systems": systems,
    }
    summary.annotate(results)
    path = report.write_json(results, cfg.out_dir, stem)
    plots.plot(results, cfg.out_dir, stem)
    return results, path
