"""A real Prometheus (Debian's package) for tests: its own config, data dir and loopback port."""

from __future__ import annotations

import copy
import json
import shutil
import time
import urllib.parse
import urllib.request
from pathlib import Path

import yaml

from stack.processes import Service, free_port
from tests.deploy.compose_model import PROMETHEUS_CONFIG

SCRAPE_INTERVAL_S = 1
LOCAL_JOBS = ("gateway", "engine-worker", "estimator", "api-executor")
"""The jobs of deploy/prometheus/prometheus.yml whose processes stack.services runs."""


def local_config(ports: dict[str, int], worker_id: str) -> dict:
    """deploy/prometheus/prometheus.yml with its targets pointed at the local stack.

    Everything else of the deployed jobs (honor_labels, target labels) is kept, so the dashboards
    are checked against the labels the deployed Prometheus really produces.
    """
    deployed = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    jobs = []
    for job in deployed["scrape_configs"]:
        if job["job_name"] not in LOCAL_JOBS:
            continue
        job = copy.deepcopy(job)
        labels = {}
        for static in job.pop("static_configs", [])[:1]:
            labels = static.get("labels", {})
        job.pop("dns_sd_configs", None)
        # The deployed gateway job sends the operator key from a compose secret; the local stack
        # runs without keys, so its /metrics is open (tests/deploy/test_compose.py checks the key).
        job.pop("authorization", None)
        if "worker" in labels:
            labels = {**labels, "worker": worker_id}
        job["static_configs"] = [{"targets": [f"127.0.0.1:{ports[job['job_name']]}"], "labels": labels}]
        jobs.append(job)
    interval = f"{SCRAPE_INTERVAL_S}s"
    return {"global": {"scrape_interval": interval, "scrape_timeout": interval, "evaluation_interval": interval},
            "scrape_configs": jobs}


class Prometheus:
    def __init__(self, root: Path, config: dict) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            raise RuntimeError("prometheus is not on PATH: install Debian's prometheus package "
                               "(scripts/setup.sh does, as root: apt-get install prometheus)")
        root.mkdir(parents=True, exist_ok=True)
        (root / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.service = Service("prometheus", [
            binary, f"--config.file={root / 'prometheus.yml'}", f"--storage.tsdb.path={root / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn",
        ])
        self._log_dir = root

    def start(self) -> Prometheus:
        self.service.start(self._log_dir)
        self.service.wait_until(self._ready, 30, "/-/ready")
        return self

    def stop(self) -> None:
        self.service.stop()

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as response:
                return response.status == 200
        except OSError:
            return False

    def api(self, path: str, **params) -> dict:
        """GET /api/v1/<path>; returns the parsed body, error answers included (status "error")."""
        query = urllib.parse.urlencode(params, doseq=True)
        try:
            with urllib.request.urlopen(f"{self.url}/api/v1/{path}?{query}", timeout=10) as response:
                return json.load(response)
        except urllib.error.HTTPError as exc:  # 400/422: bad_data, parse errors
            return json.load(exc)

    def wait_for(self, condition, timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.service.alive():
                raise RuntimeError(f"prometheus exited:\n{self.service.log_tail()}")
            if condition():
                return
            time.sleep(0.25)
        raise TimeoutError(f"prometheus: {what} not reached in {timeout_s:.0f}s")

    def scalar(self, expr: str) -> float | None:
        body = self.api("query", query=expr)
        result = body.get("data", {}).get("result", [])
        return float(result[0]["value"][1]) if result else None
