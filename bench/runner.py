"""Runs the benchmark: for each policy, a fresh stack (stack.services, as `make run` starts it)
with the engine worker's policy and KV pool set, the same workloads (same seed) through it, then
the stack is stopped. A system that fails to start or dies is reported as failed; the others run.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import urllib.request
from collections import Counter
from dataclasses import asdict, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bench import report
from bench.client import LoadClient
from bench.config import BenchConfig, PoolSizing, kv_bytes_per_token, resolve_dtype, size_pool
from bench.metrics import system_metrics
from bench.prompts import PromptBuilder
from bench.trace import load_trace
from bench.workload import BenchRequest, ConversionConfig, closed_loop, open_loop, select
from stack.processes import free_port
from stack.services import Stack, StackConfig

IDLE_TIMEOUT_S = 60.0
"""After a run, how long the worker may take to report no request in flight."""
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


def _served_model(gateway_url: str) -> str:
    with urllib.request.urlopen(f"{gateway_url}/v1/models", timeout=10) as response:
        return json.load(response)["data"][0]["id"]


def wait_idle(stack: Stack, timeout_s: float) -> bool:
    """Waits until a heartbeat newer than the call reports no request in flight."""
    since = time.time()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = stack.worker_status()
        if status.get("heartbeat_at", 0) > since and status.get("inflight", 1) == 0:
            return True
        time.sleep(0.5)
    return False


def stack_config(cfg: BenchConfig, policy: str, model_path: Path, sizing: PoolSizing, state_dir: Path) -> StackConfig:
    return StackConfig(
        model_path=str(model_path), state_dir=state_dir, gateway_port=free_port(), engine_metrics_port=free_port(),
        estimator_port=free_port(), executor_metrics_port=free_port(), redis_port=free_port(),
        time_scale=cfg.time_scale, executor_concurrency=cfg.executor_concurrency,
        worker_env={"AUGSERVE_POLICY": policy, "AUGSERVE_KV_CACHE_BYTES": str(sizing.kv_cache_bytes),
                    "AUGSERVE_MAX_MODEL_LEN": str(sizing.max_model_len),
                    **({"AUGSERVE_DTYPE": sizing.dtype} if sizing.dtype else {}), **cfg.worker_env},
        gateway_env={"AUGSERVE_MAX_MODEL_LEN": str(sizing.max_model_len),
                     "AUGSERVE_DEFAULT_MAX_TOKENS": str(min(256, sizing.max_model_len // 2))},
    )


def _one_run(cfg: BenchConfig, client: LoadClient, requests: list[BenchRequest], label: str) -> list:
    if cfg.mode == "closed":
        return asyncio.run(client.run_closed(requests, concurrency=cfg.concurrency, window_s=cfg.window_s,
                                             drain_s=cfg.drain_s, label=label))
    return asyncio.run(client.run_open(requests, window_s=cfg.window_s, drain_s=cfg.drain_s, label=label))


def run_system(cfg: BenchConfig, policy: str, model_path: Path, sizing: PoolSizing,
               workloads: dict[float, list[BenchRequest]], prompts: PromptBuilder, state_dir: Path,
               log=print) -> dict[str, Any]:
    result: dict[str, Any] = {"policy": policy, "ok": False, "error": None, "error_detail": None, "startup_s": None,
                              "reported_policy": None, "runs": []}
    stack = Stack(stack_config(cfg, policy, model_path, sizing, state_dir), progress=lambda m: log(f"[{policy}]{m}"))
    started = time.monotonic()
    try:
        stack.start()
    except Exception as exc:  # noqa: BLE001 - a failed system is a result, the next one still runs
        result["error"], result["error_detail"] = headline(exc), str(exc)[-6000:]
        log(f"[{policy}] FAILED to start: {result['error']}")
        return result
    try:
        result["startup_s"] = round(time.monotonic() - started, 1)
        result["reported_policy"] = stack.worker_status().get("policy")
        if result["reported_policy"] != policy:
            result["error"] = f"the engine worker reports policy {result['reported_policy']!r}, not {policy!r}"
            log(f"[{policy}] FAILED: {result['error']}")
            return result
        client = LoadClient(stack.cfg.gateway_url, _served_model(stack.cfg.gateway_url), prompts, seed=cfg.seed,
                            stream=cfg.stream)
        for n, (key, requests) in enumerate(workloads.items()):
            label = f"{policy} " + (f"rate {key:g}/s" if cfg.mode == "open" else f"{cfg.concurrency} clients")
            began = time.monotonic()
            records = _one_run(cfg, client, requests, label)
            dead = [s.name for s in stack.dead()]
            # Requests cut at the drain end may still run in the engine: the next rate waits for
            # them to leave; after the last one the stack is stopped anyway.
            last = n == len(workloads) - 1
            idle = None if last or dead else wait_idle(stack, min(IDLE_TIMEOUT_S, cfg.drain_s))
            closed = cfg.mode == "closed"
            result["runs"].append({
                "rate": None if closed else key, "concurrency": cfg.concurrency if closed else None,
                "ok": not dead, "error": f"services died during the run: {dead}" if dead else None,
                "wall_s": round(time.monotonic() - began, 1), "worker_idle_after": idle,
                "metrics": system_metrics([asdict(r) for r in records], cfg.window_s),
                "requests": [asdict(r) for r in records],
            })
            if dead:
                result["error"] = result["runs"][-1]["error"]
                result["error_detail"] = "\n\n".join(f"{s.name}:\n{s.log_tail()}" for s in stack.dead())
                log(f"[{policy}] FAILED: {result['error']}")
                return result
        result["ok"] = True
        return result
    finally:
        stack.stop()


def parameters(cfg: BenchConfig, model_path: Path, sizing: PoolSizing,
               workloads: dict[float, list[BenchRequest]]) -> dict[str, Any]:
    params = {f.name: getattr(cfg, f.name) for f in fields(cfg)}
    params.update(trace=str(cfg.trace), out_dir=str(cfg.out_dir), model_path=str(model_path),
                  kv_cache_bytes=sizing.kv_cache_bytes, pool_tokens=sizing.pool_tokens,
                  max_model_len=sizing.max_model_len, kv_bytes_per_token=sizing.bytes_per_token,
                  engine_dtype=sizing.dtype or "worker default")
    params["workload"] = {str(k): {"requests": len(v), "by_type": dict(sorted(Counter(r.type for r in v).items())),
                                   "generate_tokens": sum(r.generate_tokens for r in v)} for k, v in workloads.items()}
    return params


def build_workloads(cfg: BenchConfig, prompts: PromptBuilder) -> dict[float, list[BenchRequest]]:
    pool = select(load_trace(cfg.trace), cfg.types)
    conv = ConversionConfig(time_scale=cfg.time_scale, token_scale=cfg.token_scale, context_cap=cfg.context_cap,
                            min_prompt_tokens=prompts.min_tokens)
    if cfg.mode == "closed":
        return {0.0: closed_loop(pool, count=max(256, 100 * cfg.concurrency), seed=cfg.seed, cfg=conv)}
    return {rate: open_loop(pool, rate=rate, window_s=cfg.window_s, seed=cfg.seed, cfg=conv) for rate in cfg.rates}


def run_benchmark(cfg: BenchConfig, log=print) -> tuple[dict[str, Any], Path]:
    """Runs every system; returns the results and the path of the JSON written."""
    began, started_at = time.monotonic(), datetime.now(timezone.utc)
    stem = f"{cfg.profile}-{started_at.strftime('%Y%m%d-%H%M%S')}"
    model_path = resolve_model(cfg.model)
    dtype = resolve_dtype(cfg.dtype)
    sizing = size_pool(cfg, kv_bytes_per_token(model_path, dtype), dtype)
    prompts = PromptBuilder(str(model_path))
    workloads = build_workloads(cfg, prompts)
    loads = "; ".join(f"{f'{k:g} req/s' if cfg.mode == 'open' else f'{cfg.concurrency} clients'}: {len(v)} requests"
                      for k, v in workloads.items())
    log(f"==> bench {cfg.profile}: {len(cfg.policies)} systems {', '.join(cfg.policies)}; model {model_path.name}; "
        f"dtype {sizing.dtype or 'worker default'}; KV pool {sizing.kv_cache_bytes / (1 << 20):.1f} MB = "
        f"{sizing.pool_tokens} tokens, max_model_len {sizing.max_model_len}; {loads}")
    systems = []
    for i, policy in enumerate(cfg.policies):
        log(f"==> system {policy}")
        state_dir = cfg.out_dir / "logs" / stem / f"{i}-{re.sub(r'[^A-Za-z0-9_.-]', '_', policy)}"
        systems.append(run_system(cfg, policy, model_path, sizing, workloads, prompts, state_dir, log=log))
    results = {
        "schema_version": report.SCHEMA_VERSION, "profile": cfg.profile, "started_at": started_at.isoformat(),
        "finished_at": datetime.now(timezone.utc).isoformat(), "wall_s": round(time.monotonic() - began, 1),
        "parameters": parameters(cfg, model_path, sizing, workloads), "systems": systems,
    }
    path = report.write_json(results, cfg.out_dir, stem)
    report.plot(results, cfg.out_dir, stem)
    return results, path
