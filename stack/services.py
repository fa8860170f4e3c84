"""The stack's services as processes, in start order: the single definition `make run`, the
tests and the benchmark use (docker-compose.yml runs the same commands in containers)."""

from __future__ import annotations

import secrets
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import redis

from common.names import WORKERS_HASH
from common.schemas import WorkerStatus
from stack.processes import Service, port_open, python_module
from stack.redis_server import redis_url, start_redis

# The port map (README "Ports"): gateway 8000, engine worker metrics 8001, estimator 8002,
# executor metrics 8003, Redis 6379.
GATEWAY_PORT, ENGINE_METRICS_PORT, ESTIMATOR_PORT, EXECUTOR_METRICS_PORT, REDIS_PORT = 8000, 8001, 8002, 8003, 6379


@dataclass
class StackConfig:
    model_path: str
    state_dir: Path
    gateway_port: int = GATEWAY_PORT
    engine_metrics_port: int = ENGINE_METRICS_PORT
    estimator_port: int = ESTIMATOR_PORT
    executor_metrics_port: int = EXECUTOR_METRICS_PORT
    redis_port: int = REDIS_PORT
    time_scale: float = 1.0
    executor_concurrency: int = 2
    worker_env: dict[str, str] = field(default_factory=dict)
    """Extra AUGSERVE_* settings of the engine worker (KV pool size, policy, ...)."""
    gateway_env: dict[str, str] = field(default_factory=dict)
    extra_engine_workers: tuple[str, ...] = ()
    """Worker ids of more engine workers beside engine-0 (same settings, no metrics port), started
    alongside it so their start-ups overlap."""
    otlp_endpoint: str | None = None
    """OTLP/HTTP collector every service sends its spans to (AUGSERVE_OTLP_ENDPOINT); None: the
    environment's, if any (children inherit it)."""
    redis_dir: Path | None = None
    """Where Redis keeps its append-only file and snapshot; None: `state_dir`/redis."""
    redis_password: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    """New for every run (URL-safe: it goes into every service's redis:// URL): another local
    user or process, or a web page reaching 127.0.0.1, cannot talk to this stack's Redis."""

    @property
    def redis_url(self) -> str:
        return redis_url(self.redis_port, self.redis_password)

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    def common_env(self) -> dict[str, str]:
        env = {
            "AUGSERVE_REDIS_URL": self.redis_url, "AUGSERVE_TIME_SCALE": str(self.time_scale),
            "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
        }
        if self.otlp_endpoint:
            env["AUGSERVE_OTLP_ENDPOINT"] = self.otlp_endpoint
        return env


def http_ok(url: str) -> bool:
    """Whether a GET of `url` answers 200 within a second (a service's /health)."""
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


def executor_service(cfg: StackConfig) -> Service:
    return python_module(
        "api-executor", "celery", "-A", "api_executor.celery_app", "worker", "-Q", "api",
        "--pool", "prefork", "--concurrency", str(cfg.executor_concurrency), "--loglevel", "INFO",
        "--hostname", f"executor-{cfg.gateway_port}@%h",
        env={**cfg.common_env(), "AUGSERVE_EXECUTOR_METRICS_PORT": str(cfg.executor_metrics_port)},
    )


def estimator_service(cfg: StackConfig) -> Service:
    return python_module("estimator", "estimator",
                         env={**cfg.common_env(), "AUGSERVE_ESTIMATOR_PORT": str(cfg.estimator_port)})


def engine_service(cfg: StackConfig, worker_id: str = "engine-0", metrics_port: int | None = None) -> Service:
    env = {
        **cfg.common_env(), "AUGSERVE_MODEL_PATH": cfg.model_path, "AUGSERVE_WORKER_ID": worker_id,
        "AUGSERVE_METRICS_PORT": str(cfg.engine_metrics_port if metrics_port is None else metrics_port),
        **cfg.worker_env,
    }
    return python_module(worker_id, "engine_worker", env=env)


def gateway_service(cfg: StackConfig) -> Service:
    env = {**cfg.common_env(), "AUGSERVE_MODEL_PATH": cfg.model_path, "AUGSERVE_PORT": str(cfg.gateway_port),
           **cfg.gateway_env}
    return python_module("gateway", "gateway", env=env)


def _fresh_heartbeat(client: redis.Redis, worker_id: str, since: float) -> bool:
    """A heartbeat written after `since`: Redis persists, so an entry of an earlier run (killed
    before it could remove it) may be there already."""
    raw = client.hget(WORKERS_HASH, worker_id)
    try:
        return raw is not None and WorkerStatus.model_validate_json(raw).heartbeat_at >= since
    except ValueError:
        return False


class Stack:
    """Starts every service (each waited on until it answers) and stops them in reverse.

    A Stack does not restart what dies: `dead()` lists it. `make run` adds that on top
    (stack/supervisor.py, polled by stack/run.py); the tests and the benchmark do not, on purpose:
    a service dying under a test or a measured run is a failure to see, not to paper over (and a
    restart would skew the numbers). Tests that exercise restarts build a Supervisor themselves.
    """

    def __init__(self, cfg: StackConfig, progress=print):
        self.cfg = cfg
        self.services: list[Service] = []
        self._progress = progress

    def _step(self, service: Service, ready, timeout_s: float, what: str) -> Service:
        started = time.monotonic()
        self._progress(f"  starting {service.name} ...")
        service.start(self.cfg.state_dir / "logs")
        self.services.append(service)
        service.wait_until(ready, timeout_s, what)
        self._progress(f"  {service.name} ready ({time.monotonic() - started:.1f}s, log: {service.log_path})")
        return service

    def start(self) -> Stack:
        cfg = self.cfg
        try:
            self._progress(f"  starting redis on 127.0.0.1:{cfg.redis_port} ...")
            self.services.append(start_redis(cfg.redis_port, cfg.redis_dir or cfg.state_dir / "redis",
                                             cfg.state_dir / "logs",
                                             password=cfg.redis_password))
            self._step(executor_service(cfg), lambda: port_open(cfg.executor_metrics_port), 60, "metrics port")
            self._step(estimator_service(cfg), lambda: http_ok(f"http://127.0.0.1:{cfg.estimator_port}/health"), 60,
                       "/health")
            client = redis.Redis.from_url(cfg.redis_url)
            extra = [engine_service(cfg, worker_id, metrics_port=0) for worker_id in cfg.extra_engine_workers]
            for service in extra:
                service.start(cfg.state_dir / "logs")
                self.services.append(service)
            since = time.time()
            self._step(engine_service(cfg), lambda: _fresh_heartbeat(client, "engine-0", since), 300, "heartbeat")
            for service in extra:
                service.wait_until(lambda name=service.name: _fresh_heartbeat(client, name, since),  # type: ignore[misc]
                                   300, "heartbeat")
                self._progress(f"  {service.name} ready (log: {service.log_path})")
            self._step(gateway_service(cfg), lambda: http_ok(f"{cfg.gateway_url}/health"), 120, "/health")
        except BaseException:
            self.stop()
            raise
        return self

    def dead(self) -> list[Service]:
        return [s for s in self.services if not s.alive()]

    def stop(self) -> None:
        for service in reversed(self.services):
            service.stop()
        self.services.clear()

    def worker_status(self) -> dict:
        raw = redis.Redis.from_url(self.cfg.redis_url).hget(WORKERS_HASH, "engine-0")
        return WorkerStatus.model_validate_json(raw).model_dump() if raw else {}
