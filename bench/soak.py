"""`python -m bench --profile soak` (or `python -m bench.soak`): the stack under load while its
services are SIGKILLed on a schedule, then every request reconciled.

The real stack as processes (stack.services, configured as the benchmark's systems are:
bench.systems.stack_config), with two engine workers so one can fail over to the other, kept up
by stack.supervisor exactly as `make run` keeps it (a killed service is restarted after its
backoff). Closed-loop clients, streaming and not, send the benchmark's scripted requests (the
InferCept trace's plans: calculator, qa and ve calls, stand-in waits for chatbot/image/tts) for
`duration_s`, while bench.faults kills Redis, the Celery executor and an engine worker in turn.
Then bench.soak_report reconciles: sent = succeeded + failed with a clear error, nothing hung,
no duplicated tool result, and the resident memory of each service before and after.

`--workload short --faults none --clients 1000 --requests-per-client 1` is the load figure: a
thousand concurrent streaming clients against one stack, every one terminal.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import secrets
import signal
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import httpx

from bench.client import Progress
from bench.config import DEFAULT_SYSTEM, engine_settings, kv_bytes_per_token, profile, resolve_dtype, size_pool
from bench.faults import FAULT_KINDS, FaultInjector, FaultRecord, PlannedFault, schedule
from bench.process_memory import group_rss_bytes
from bench.prompts import PromptBuilder
from bench.runner import resolve_model
from bench.soak_client import SoakRecord, send
from bench.soak_report import reconcile, table
from bench.systems import stack_config
from bench.trace import DEFAULT_TRACE, load_trace
from bench.workload import ConversionConfig, select, to_plan
from stack.services import Stack, StackConfig
from stack.supervisor import Supervisor

MODEL_NAME = "SmolLM2-135M-Instruct"


@dataclass(frozen=True)
class SoakConfig:
    duration_s: float = 300.0
    """Clients send new requests for this long; what is in flight then may finish (hang_after_s)."""
    clients: int = 16
    stream_share: float = 0.5
    """Share of the clients that stream (SSE); the others get one JSON response."""
    workload: Literal["trace", "short"] = "trace"
    """trace: the benchmark's scripted requests (calls included); short: `short_tokens` tokens, no calls."""
    short_tokens: int = 16
    requests_per_client: int | None = None
    """Stop each client after this many requests (None: until duration_s)."""
    faults: tuple[str, ...] = FAULT_KINDS
    first_fault_s: float = 30.0
    fault_every_s: float = 45.0
    quiet_tail_s: float = 45.0
    """No fault is injected in the last this many seconds of duration_s."""
    restart_after_s: float = 3.0
    """The supervisor's first backoff: a killed service is started again this long after it died."""
    hang_after_s: float = 180.0
    """A request not over this long after it was sent counts as hung."""
    call_timeout_s: float = 30.0
    """The engine worker's deadline per API call (AUGSERVE_API_CALL_TIMEOUT_S)."""
    engine_workers: int = 2
    model: str = "default"
    policy: str = DEFAULT_SYSTEM
    time_scale: float = 0.05
    token_scale: float = 0.1
    context_cap: int = 256
    kv_cache_tokens: int = 8192
    executor_concurrency: int = 4
    seed: int = 0
    out_dir: Path = Path("bench-results")


def soak_stack_config(cfg: SoakConfig, state_dir: Path) -> StackConfig:
    """The benchmark's stack for our default policy (equal-engine settings, float32 where bf16
    is emulated), plus the fault settings: more engine workers, 1 s heartbeats (a dead worker is
    noticed in 5 s) and the per-call deadline."""
    bench = profile("quick", model=cfg.model, time_scale=cfg.time_scale, token_scale=cfg.token_scale,
                    context_cap=cfg.context_cap, kv_cache_tokens=cfg.kv_cache_tokens,
                    executor_concurrency=cfg.executor_concurrency)
    model_path = resolve_model(cfg.model)
    dtype = resolve_dtype(bench.dtype)
    sizing = size_pool(bench, kv_bytes_per_token(model_path, dtype), dtype)
    # Keyed as a deployment is (bench.systems): the clients send the operator key plans need.
    base = stack_config(bench, cfg.policy, model_path, engine_settings(bench, sizing), state_dir,
                        secrets.token_urlsafe(24))
    return replace(
        base, extra_engine_workers=tuple(f"engine-{i}" for i in range(1, cfg.engine_workers)),
        worker_env={**base.worker_env, "AUGSERVE_HEARTBEAT_S": "1",
                    "AUGSERVE_API_CALL_TIMEOUT_S": f"{cfg.call_timeout_s:g}"},
        gateway_env={**base.gateway_env, "AUGSERVE_WORKER_STALE_S": "5"},
    )


def _requests(cfg: SoakConfig, prompts: PromptBuilder) -> Iterator[tuple[str, int, dict]]:
    """(kind, prompt tokens, plan) of each next request, seeded: the same run gets the same ones."""
    rng = random.Random(f"{cfg.seed}:soak")
    if cfg.workload == "short":
        while True:
            yield "short", prompts.min_tokens + 8, {"segments": [{"generate_tokens": cfg.short_tokens}]}
    pool = select(load_trace(DEFAULT_TRACE), None)
    conv = ConversionConfig(time_scale=cfg.time_scale, token_scale=cfg.token_scale, context_cap=cfg.context_cap,
                            min_prompt_tokens=prompts.min_tokens)
    index = 0
    while True:
        trace_request = rng.choice(pool)
        tokens, plan = to_plan(trace_request, conv, random.Random(f"{cfg.seed}:{index}"), episode=f"soak-{index}")
        index += 1
        yield trace_request.type, tokens, plan


def _body(text: str, plan: dict, stream: bool) -> dict[str, Any]:
    body = {"model": MODEL_NAME, "messages": [{"role": "user", "content": text}], "temperature": 0,
            "plan": plan, "stream": stream, "return_token_ids": True}
    if stream:
        body["stream_options"] = {"include_usage": True}
    return body


def _streams(i: int, share: float) -> bool:
    """Spreads the streaming clients evenly over the client indices."""
    return int((i + 1) * share) > int(i * share)


class _Watch(threading.Thread):
    """Polls the supervisor (a killed service is restarted) and notes every pid each service had."""

    def __init__(self, supervisor: Supervisor) -> None:
        super().__init__(name="soak-supervisor", daemon=True)
        self.supervisor = supervisor
        self.pids: dict[str, set[int]] = defaultdict(set)
        self.stopping = threading.Event()

    def _note(self) -> None:
        for service in self.supervisor.services:
            if service.process is not None:
                self.pids[service.name].add(service.process.pid)

    def run(self) -> None:
        while not self.stopping.is_set():
            self.supervisor.poll()
            self._note()
            self.stopping.wait(0.5)

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=10)


def _memory(stack: Stack) -> dict[str, int]:
    return {s.name: group_rss_bytes(s.process.pid) for s in stack.services if s.process is not None and s.alive()}


def fault_plan(cfg: SoakConfig) -> list[PlannedFault]:
    """The soak's faults (bench.faults.schedule); raises ValueError on a schedule it cannot run."""
    engines = ("engine-0", *(f"engine-{i}" for i in range(1, cfg.engine_workers)))
    return schedule(cfg.faults, engines, first_s=cfg.first_fault_s, every_s=cfg.fault_every_s,
                    until_s=cfg.duration_s - cfg.quiet_tail_s)


async def _drive(cfg: SoakConfig, stack: Stack, prompts: PromptBuilder, plan: list[PlannedFault],
                 log) -> tuple[list[SoakRecord], list[FaultRecord], float]:
    loop = asyncio.get_running_loop()
    start = loop.time()
    clock = lambda: loop.time() - start  # noqa: E731
    url = f"{stack.cfg.gateway_url}/v1/chat/completions"
    records: list[SoakRecord] = []
    requests = _requests(cfg, prompts)
    injector = FaultInjector(stack, clock, log)
    progress = Progress("soak", None)
    # The client gives up at hang_after_s itself (bench.soak_client): httpx must not cut first.
    timeout = httpx.Timeout(cfg.hang_after_s + 60, connect=cfg.hang_after_s)
    limits = httpx.Limits(max_connections=cfg.clients + 8, max_keepalive_connections=cfg.clients + 8)

    async with httpx.AsyncClient(timeout=timeout, limits=limits, headers=_auth(stack)) as http:
        async def client(i: int) -> None:
            stream, sent = _streams(i, cfg.stream_share), 0
            while clock() < cfg.duration_s and (cfg.requests_per_client is None or sent < cfg.requests_per_client):
                kind, tokens, request_plan = next(requests)
                text = prompts.build(tokens, random.Random(f"{cfg.seed}:prompt:{len(records)}"))
                segments = request_plan["segments"]
                rec = SoakRecord(index=len(records), client=i, kind=kind, stream=stream,
                                 planned_tokens=sum(s["generate_tokens"] for s in segments),
                                 planned_calls=sum(1 for s in segments if "api" in s), sent_s=clock())
                records.append(rec)
                progress.sent += 1
                await send(http, url, _body(text, request_plan, stream), rec, clock, cfg.hang_after_s)
                sent += 1
                if rec.outcome in ("ok", "error"):
                    progress.done += 1
                else:
                    progress.failed += 1
                progress.update(clock())

        faults = asyncio.create_task(injector.run(plan, latest_s=cfg.duration_s))
        await asyncio.gather(*(client(i) for i in range(cfg.clients)))
        end_s = clock()
        progress.update(end_s, force=True)
        if not faults.done():  # the last fault's service still coming back: wait for it, bounded
            log("  load over; waiting for the last fault's service to serve again")
            try:
                await asyncio.wait_for(faults, 330)
            except TimeoutError:
                pass
    return records, injector.records, end_s


def _raise_fd_limit() -> int:
    """A thousand clients and the gateway's sockets: the soft limit up to the hard one (children
    inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _auth(stack: Stack) -> dict[str, str]:
    """The operator key soak_stack_config gave the gateway."""
    return {"Authorization": f"Bearer {stack.cfg.gateway_env['AUGSERVE_OPERATOR_API_KEYS']}"}


def _warm(stack: Stack, prompts: PromptBuilder) -> None:
    """One request through the whole path before the clock starts."""
    body = _body(prompts.build(prompts.min_tokens + 4, random.Random(0)), {"segments": [{"generate_tokens": 4}]},
                 False)
    response = httpx.post(f"{stack.cfg.gateway_url}/v1/chat/completions", json=body, timeout=300,
                          headers=_auth(stack))
    if response.status_code != 200:
        raise RuntimeError(f"the warm-up request failed: {response.status_code} {response.text[:300]}")


def run_soak(cfg: SoakConfig, log=print) -> tuple[dict[str, Any], Path]:
    """Starts the stack, runs the soak, stops the stack; returns the results and their file."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    state_dir = (cfg.out_dir / "logs" / f"soak-{stamp}").resolve()
    plan = fault_plan(cfg)
    fd_limit = _raise_fd_limit()
    stack_cfg = soak_stack_config(cfg, state_dir)
    prompts = PromptBuilder(stack_cfg.model_path)
    stack = Stack(stack_cfg, progress=lambda m: log(f"[soak]{m}"))
    began = time.monotonic()
    stack.start()
    watch: _Watch | None = None
    try:
        startup_s = time.monotonic() - began
        _warm(stack, prompts)
        before = _memory(stack)
        supervisor = Supervisor(stack.services, stack_cfg.state_dir / "logs",
                                progress=lambda m: log(f"[supervisor]{m}"), first_s=cfg.restart_after_s,
                                cap_s=max(30.0, cfg.restart_after_s), healthy_after_s=10.0)
        watch = _Watch(supervisor)
        watch.start()
        load_before = os.getloadavg()[0]
        records, faults, end_s = asyncio.run(_drive(cfg, stack, prompts, plan, log))
        after = _memory(stack)
        pids = {name: len(p) for name, p in watch.pids.items()}
    finally:
        if watch is not None:
            watch.stop()
        stack.stop()
    summary = reconcile(records, faults, end_s)
    injected: defaultdict[str, int] = defaultdict(int)
    for f in faults:
        if f.killed_s is not None:
            injected[f.service] += 1
    mb = lambda n: round(n / 2**20, 1)  # noqa: E731
    memory = {name: {"before_mb": mb(before.get(name, 0)), "after_mb": mb(after.get(name, 0)),
                     "restarts": pids.get(name, 1) - 1, "unexpected_restarts": pids.get(name, 1) - 1 - injected[name]}
              for name in before}
    results = {
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()},
        "stack": {"model_path": stack_cfg.model_path, "worker_env": stack_cfg.worker_env,
                  "gateway_env": stack_cfg.gateway_env, "engine_workers": cfg.engine_workers},
        "started_at": stamp, "startup_s": round(startup_s, 1), "load_s": round(end_s, 1),
        "wall_s": round(time.monotonic() - began, 1), "fd_limit": fd_limit,
        "load_avg_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "summary": summary, "memory": memory,
        "faults": [{**asdict(f), "down_s": f.down_s, "survived": f.survived} for f in faults],
        "requests": [asdict(r) for r in records],
        "logs": str(stack_cfg.state_dir / "logs"),
    }
    cfg.out_dir.mkdir(parents=True, exist_ok=True)
    path = cfg.out_dir / f"soak-{stamp}.json"
    text = json.dumps(results, indent=1)
    path.write_text(text)
    (cfg.out_dir / "soak-latest.json").write_text(text)
    return results, path


def passed(results: dict[str, Any]) -> bool:
    """Reconciled, every injected fault survived, and nothing died that was not killed on purpose."""
    summary = results["summary"]
    return (summary["reconciled"] and summary["faults_survived"] == summary["faults_injected"]
            and not any(m["unexpected_restarts"] for m in results["memory"].values()))


def _kinds(text: str) -> tuple[str, ...]:
    if text == "none":
        return ()
    kinds = tuple(k.strip() for k in text.split(",") if k.strip())
    unknown = [k for k in kinds if k not in FAULT_KINDS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown faults {unknown}: choose from {', '.join(FAULT_KINDS)} or none")
    return kinds


def parser() -> argparse.ArgumentParser:
    d = SoakConfig()
    p = argparse.ArgumentParser(prog="python -m bench --profile soak", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--duration", dest="duration_s", type=float, default=d.duration_s, help="seconds of load")
    p.add_argument("--clients", type=int, default=d.clients, help="concurrent closed-loop clients")
    p.add_argument("--stream-share", type=float, default=d.stream_share, help="share of the clients that stream")
    p.add_argument("--workload", choices=("trace", "short"), default=d.workload,
                   help="trace: the bench's scripted requests with calls; short: short-tokens tokens, no calls")
    p.add_argument("--short-tokens", type=int, default=d.short_tokens)
    p.add_argument("--requests-per-client", type=int, default=d.requests_per_client)
    p.add_argument("--faults", type=_kinds, default=d.faults, help="comma-separated: redis, executor, engine; or none")
    p.add_argument("--first-fault", dest="first_fault_s", type=float, default=d.first_fault_s)
    p.add_argument("--fault-every", dest="fault_every_s", type=float, default=d.fault_every_s)
    p.add_argument("--quiet-tail", dest="quiet_tail_s", type=float, default=d.quiet_tail_s,
                   help="no fault in the last this many seconds")
    p.add_argument("--restart-after", dest="restart_after_s", type=float, default=d.restart_after_s,
                   help="the supervisor restarts a killed service after this long")
    p.add_argument("--hang-after", dest="hang_after_s", type=float, default=d.hang_after_s,
                   help="a request not over this long after it was sent counts as hung")
    p.add_argument("--call-timeout", dest="call_timeout_s", type=float, default=d.call_timeout_s)
    p.add_argument("--engine-workers", type=int, default=d.engine_workers)
    p.add_argument("--model", default=d.model, help="default, tiny, or a local Hugging Face model folder")
    p.add_argument("--policy", default=d.policy)
    p.add_argument("--time-scale", type=float, default=d.time_scale, help="stand-in call durations = trace x this")
    p.add_argument("--token-scale", type=float, default=d.token_scale)
    p.add_argument("--context-cap", type=int, default=d.context_cap)
    p.add_argument("--kv-cache-tokens", type=int, default=d.kv_cache_tokens, help="each engine worker's KV pool")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--out", dest="out_dir", type=Path, default=d.out_dir)
    return p


def _interrupt(*_) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.clients < 1 or not 0 <= args.stream_share <= 1 or args.duration_s <= 0:
        print("soak: need --clients >= 1, 0 <= --stream-share <= 1 and --duration > 0", file=sys.stderr)
        return 2
    cfg = SoakConfig(**vars(args))
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    try:
        results, path = run_soak(cfg)
    except KeyboardInterrupt:
        print("soak: interrupted, stack stopped", file=sys.stderr)
        return 130
    except ValueError as exc:
        print(f"soak: {exc}", file=sys.stderr)
        return 2
    print()
    print(table(results["summary"], results["memory"]))
    print(f"\nresults: {path} (and {cfg.out_dir / 'soak-latest.json'}), load {results['load_s']:.0f}s, "
          f"wall {results['wall_s']:.0f}s, service logs: {results['logs']}")
    ok = passed(results)
    if not ok:
        print("soak: NOT passed (see the tables above)", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
