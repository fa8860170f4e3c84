"""Reading docker-compose.yml and stack/services.py side by side (shared by the deploy tests)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import yaml

from stack import services
from stack.processes import REPO_ROOT, Service

COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
ENV_EXAMPLE = REPO_ROOT / ".env.example"
PROMETHEUS_CONFIG = REPO_ROOT / "deploy" / "prometheus" / "prometheus.yml"

PER_DEPLOYMENT_OPTIONS = frozenset({"--concurrency", "--hostname"})
"""Command options whose values are the deployment's own (pool size, Celery node name)."""

REQUIRED_VAR = re.compile(r"\$\{(\w+):\?")
ANY_VAR = re.compile(r"\$\{(\w+)")


def load_compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def local_services() -> dict[str, Service]:
    """Compose service name -> the process stack/services.py runs for it (default ports)."""
    cfg = services.StackConfig(model_path="/models/model", state_dir=Path("/nonexistent"))
    return {
        "gateway": services.gateway_service(cfg),
        "engine-worker": services.engine_service(cfg),
        "engine-worker-cpu": services.engine_service(cfg),
        "estimator": services.estimator_service(cfg),
        "api-executor": services.executor_service(cfg),
    }


def normalized_command(argv: list[str]) -> list[str]:
    """argv with the interpreter spelled `python` and per-deployment option values masked."""
    out = ["python" if i == 0 and arg == sys.executable else arg for i, arg in enumerate(argv)]
    for i, arg in enumerate(out[:-1]):
        if arg in PER_DEPLOYMENT_OPTIONS:
            out[i + 1] = "<deployment>"
    return out


def container_ports(service: dict) -> set[int]:
    ports = {int(str(p)) for p in service.get("expose", [])}
    for mapping in service.get("ports", []):
        ports.add(int(str(mapping).rsplit(":", 1)[-1].split("/")[0]))
    return ports


def port_settings(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k.startswith("AUGSERVE_") and k.endswith("_PORT")}
