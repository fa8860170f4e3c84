"""The systems a benchmark compares, behind one small interface the runner drives:

- ours, one per engine-worker policy: a fresh stack (stack.services.Stack, as `make run` starts
  it) with AUGSERVE_POLICY, the KV pool, max_model_len and dtype set; requests go through the
  gateway and pause inside the server. `POLICY+SCHEDULER` (e.g. `infercept+lamps`) also sets the
  queue-order scheduler (AUGSERVE_SCHEDULER; fcfs otherwise), and `POLICY+SCHEDULER:key=value...`
  its options (AUGSERVE_SCHEDULER_OPTIONS), e.g. `infercept+fastserve:starvation_s=0.3:preempt=false`;
- `stock-vllm`: vLLM's own OpenAI server (bench.stock) with the same engine settings; the client
  runs the tool loop (bench.stock_client).
"""

from __future__ import annotations

import json
import secrets
import shutil
import time
import urllib.request
from pathlib import Path
from typing import Protocol

from bench import client_calls
from bench.client import LoadClient
from bench.config import BenchConfig
from bench.engine_settings import EngineSettings
from bench.prompts import PromptBuilder
from bench.stock import StockServer
from bench.stock_client import StockClient
from bench.system_names import split_system, system_name
from bench.tool_loop import STOCK_SYSTEM
from common.engine_facts import EngineFacts, facts
from engine_worker.tokens import TokenCodec
from stack.processes import Service, free_port
from stack.services import Stack, StackConfig

TMPFS = Path("/dev/shm")
"""Linux's RAM-backed tmpfs."""


class System(Protocol):
    name: str

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def dead(self) -> list[Service]: ...
    def reported(self) -> str | None:
        """What the running system says it is: the worker's policy; stock-vllm once vLLM's own
        server answers /version."""
    def details(self) -> dict[str, str | None]:
        """Extra facts for the results (stock: the server's vLLM version)."""
    def engine_facts(self) -> EngineFacts | None:
        """The settings the running engine really uses (common.engine_facts); None: unreadable."""
    def client(self, prompts: PromptBuilder, cfg: BenchConfig) -> LoadClient: ...
    def wait_idle(self, timeout_s: float) -> bool:
        """True once no request is left in flight (requests cut at a drain end may still run)."""
    def pids(self) -> list[int]:
        """The system's own processes (their children, the engine core among them, not listed)."""


def redis_dir(cfg: BenchConfig, state_dir: Path) -> Path | None:
    """Under `realtime`, Redis's files go to RAM (tmpfs), where fsync returns at once. Redis runs
    `appendfsync always`: every write waits for an fsync, which on a disk waits for the kernel's
    journal and writeback threads; those are not real-time, and while the engines' OpenMP threads
    spin at SCHED_RR they run only in the 5% of each second the kernel keeps from real-time tasks
    (sched_rt_runtime_us): measured, every hop through Redis then waited up to ~1 s (the quick
    profile's first token 0.96 s against stock vLLM's 0.15 s; 0.23 s with Redis on tmpfs). Without
    `realtime` the kernel's own scheduling runs those threads, and Redis stays beside the logs."""
    if not cfg.realtime:
        return None
    if not TMPFS.is_dir():
        raise ValueError(f"--realtime keeps each stack's Redis files in {TMPFS} (tmpfs), which this machine lacks")
    return TMPFS / f"augserve-bench-redis-{state_dir.parent.name}-{state_dir.name}"


def stack_config(cfg: BenchConfig, system: str, model_path: Path, engine: EngineSettings, state_dir: Path,
                 operator_key: str) -> StackConfig:
    """`operator_key`: the stack's one API key, of the operator scope its scripted requests need."""
    policy, scheduler, options = split_system(system)
    return StackConfig(
        model_path=str(model_path), state_dir=state_dir, redis_dir=redis_dir(cfg, state_dir),
        gateway_port=free_port(), engine_metrics_port=free_port(),
        estimator_port=free_port(), executor_metrics_port=free_port(), redis_port=free_port(),
        time_scale=cfg.time_scale, executor_concurrency=cfg.executor_concurrency,
        worker_env={"AUGSERVE_POLICY": policy, "AUGSERVE_SCHEDULER": scheduler,
                    "AUGSERVE_SCHEDULER_OPTIONS": json.dumps(options), **engine.worker_env(), **cfg.worker_env},
        gateway_env={"AUGSERVE_MAX_MODEL_LEN": str(engine.max_model_len),
                     "AUGSERVE_DEFAULT_MAX_TOKENS": str(min(256, engine.max_model_len // 2)),
                     "AUGSERVE_OPERATOR_API_KEYS": operator_key},
    )


def stack_engine_facts(stack: Stack) -> EngineFacts | None:
    """A running stack's engine settings: the worker's config as its status reports it, its core
    binding from its engine's log (None while either is not there yet)."""
    config = stack.worker_status().get("engine_config")
    engine = next((s for s in stack.services if s.name == "engine-0"), None)
    if not config or engine is None or engine.log_path is None:
        return None
    return facts(config, engine.log_path.read_text(errors="replace"))


class OurStack:
    def __init__(self, cfg: BenchConfig, policy: str, model_path: Path, engine: EngineSettings, state_dir: Path,
                 log=print):
        self.name = policy
        # Keyed as a deployment is: the client sends an operator key (plans need that scope).
        self.operator_key = secrets.token_urlsafe(24)
        self.stack = Stack(stack_config(cfg, policy, model_path, engine, state_dir, self.operator_key),
                           progress=lambda m: log(f"[{policy}]{m}"))

    def start(self) -> None:
        self.stack.start()

    def stop(self) -> None:
        self.stack.stop()
        if self.stack.cfg.redis_dir is not None:  # in RAM: what it held is not kept
            shutil.rmtree(self.stack.cfg.redis_dir, ignore_errors=True)

    def dead(self) -> list[Service]:
        return self.stack.dead()

    def pids(self) -> list[int]:
        return [s.process.pid for s in self.stack.services if s.process is not None]

    def reported(self) -> str | None:
        status = self.stack.worker_status()
        if not status:
            return None
        return system_name(status.get("policy", "?"), status.get("scheduler", "fcfs"),
                           status.get("scheduler_options", {}))

    def details(self) -> dict[str, str | None]:
        return {}

    def engine_facts(self) -> EngineFacts | None:
        return stack_engine_facts(self.stack)

    def client(self, prompts: PromptBuilder, cfg: BenchConfig) -> LoadClient:
        url = self.stack.cfg.gateway_url
        models = urllib.request.Request(f"{url}/v1/models", headers={"Authorization": f"Bearer {self.operator_key}"})
        with urllib.request.urlopen(models, timeout=10) as response:
            model = json.load(response)["data"][0]["id"]
        return LoadClient(url, model, prompts, seed=cfg.seed, stream=cfg.stream, api_key=self.operator_key)

    def wait_idle(self, timeout_s: float) -> bool:
        """Waits until a worker heartbeat newer than the call reports no request in flight."""
        since = time.time()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            status = self.stack.worker_status()
            if status.get("heartbeat_at", 0) > since and status.get("inflight", 1) == 0:
                return True
            time.sleep(0.5)
        return False


class StockVllm:
    def __init__(self, cfg: BenchConfig, model_path: Path, engine: EngineSettings, state_dir: Path, log=print):
        self.name = STOCK_SYSTEM
        self.model_path = model_path
        self.server = StockServer(model_path, state_dir, engine, progress=lambda m: log(f"[{STOCK_SYSTEM}]{m}"))

    def start(self) -> None:
        self.server.start()

    def stop(self) -> None:
        self.server.stop()

    def dead(self) -> list[Service]:
        return self.server.dead()

    def pids(self) -> list[int]:
        process = self.server.service.process
        return [process.pid] if process is not None else []

    def reported(self) -> str | None:
        return STOCK_SYSTEM if self.server.version() else None

    def details(self) -> dict[str, str | None]:
        return {"vllm_version": self.server.version()}

    def engine_facts(self) -> EngineFacts | None:
        return self.server.engine_facts()

    def client(self, prompts: PromptBuilder, cfg: BenchConfig) -> LoadClient:
        client_calls.warm()
        return StockClient(self.server.url, self.server.served_name, prompts, TokenCodec(str(self.model_path)),
                           seed=cfg.seed, stream=cfg.stream)

    def wait_idle(self, timeout_s: float) -> bool:
        return self.server.wait_idle(timeout_s)


def make_system(cfg: BenchConfig, name: str, model_path: Path, engine: EngineSettings, state_dir: Path,
                log=print) -> System:
    if name == STOCK_SYSTEM:
        return StockVllm(cfg, model_path, engine, state_dir, log)
    return OurStack(cfg, name, model_path, engine, state_dir, log)
