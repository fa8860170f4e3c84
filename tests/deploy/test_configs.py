"""deploy/: Prometheus, OpenTelemetry Collector and Grafana provisioning agree with the compose
file and the dashboards."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml

from dashboards.catalog import PROMETHEUS_UID, TRACES_UID, datasources, rendered
from stack.processes import REPO_ROOT
from tests.deploy.compose_model import PROMETHEUS_CONFIG, container_ports, load_compose

DEPLOY = REPO_ROOT / "deploy"
PROVISIONING = DEPLOY / "grafana" / "provisioning"


def _jobs() -> dict[str, dict]:
    return {j["job_name"]: j for j in yaml.safe_load(PROMETHEUS_CONFIG.read_text())["scrape_configs"]}


def _targets(job: dict) -> list[tuple[str, int, dict]]:
    out = []
    for static in job.get("static_configs", []):
        for target in static["targets"]:
            host, port = target.rsplit(":", 1)
            out.append((host, int(port), static.get("labels", {})))
    for sd in job.get("dns_sd_configs", []):
        out += [(name, int(sd["port"]), {}) for name in sd["names"]]
    return out


def test_promtool_accepts_the_prometheus_config(tmp_path):
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing: install Debian's prometheus package (scripts/setup.sh does, as root)"
    # promtool checks that the gateway job's bearer token file exists: in the container it is the
    # compose secret; here a stand-in file at a temporary path.
    secret = tmp_path / "operator_key"
    secret.write_text("an-operator-key\n")
    config = tmp_path / "prometheus.yml"
    text = PROMETHEUS_CONFIG.read_text()
    assert "/run/secrets/operator_key" in text
    config.write_text(text.replace("/run/secrets/operator_key", str(secret)))
    run = subprocess.run([promtool, "check", "config", str(config)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr


def test_prometheus_scrapes_every_metrics_port_of_every_compose_service():
    compose = load_compose()["services"]
    scraped = {(host, port) for job in _jobs().values() for host, port, _ in _targets(job)}
    metrics_ports = {"gateway": 8000, "engine-worker": 8001, "engine-worker-cpu": 8001, "estimator": 8002,
                     "api-executor": 8003, "flower": 5555, "otel-collector": 8888}
    for name, port in metrics_ports.items():
        assert name in compose, name
        assert port in container_ports(compose[name]), f"{name}: {port} not exposed"
        assert (name, port) in scraped, f"no scrape job for {name}:{port}"
    for host, _port in scraped - {("localhost", 9090)}:
        assert host in compose, f"scrape target {host} is no compose service"


def test_engine_worker_targets_are_labelled_with_their_worker_ids():
    compose = load_compose()["services"]
    job = _jobs()["engine-worker"]
    assert job.get("honor_labels") is True, "the workers' own `worker` label must win"
    for host, _port, labels in _targets(job):
        assert labels.get("worker") == compose[host]["environment"]["AUGSERVE_WORKER_ID"], host


def test_grafana_interval_matches_the_scrape_interval():
    interval = yaml.safe_load(PROMETHEUS_CONFIG.read_text())["global"]["scrape_interval"]
    provisioned = yaml.safe_load((PROVISIONING / "datasources" / "datasources.yaml").read_text())["datasources"]
    prometheus = next(d for d in provisioned if d["uid"] == PROMETHEUS_UID)
    assert prometheus["jsonData"]["timeInterval"] == interval
    assert datasources("http://x")[0]["jsonData"]["timeInterval"] == interval


def test_provisioned_datasources_have_the_uids_the_dashboards_use():
    provisioned = yaml.safe_load((PROVISIONING / "datasources" / "datasources.yaml").read_text())["datasources"]
    by_uid = {d["uid"]: d for d in provisioned}
    assert by_uid[PROMETHEUS_UID]["type"] == "prometheus" and by_uid[PROMETHEUS_UID]["url"] == "http://prometheus:9090"
    assert by_uid[TRACES_UID]["type"] == "jaeger" and by_uid[TRACES_UID]["url"].startswith("http://jaeger:")
    for source in datasources("http://prometheus:9090", "http://jaeger:16686"):
        assert by_uid[source["uid"]]["type"] == source["type"]
    used = {t["datasource"]["uid"] for d in rendered().values() for p in d["panels"] for t in p.get("targets", [])}
    assert used == {PROMETHEUS_UID}


def test_dashboard_provider_points_at_the_mounted_dashboards():
    provider = yaml.safe_load((PROVISIONING / "dashboards" / "dashboards.yaml").read_text())["providers"][0]
    grafana = load_compose()["services"]["grafana"]
    mounts = dict(v.rsplit(":", 1)[0].split(":", 1) for v in grafana["volumes"] if v.startswith("./"))
    assert mounts["./dashboards"] == provider["options"]["path"]
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (home.startswith(provider["options"]["path"] + "/")
            and (REPO_ROOT / "dashboards" / home.rsplit("/", 1)[1]).exists())


def test_collector_pipeline_sends_otlp_traces_to_the_trace_store():
    config = yaml.safe_load((DEPLOY / "otel" / "collector.yaml").read_text())
    compose = load_compose()["services"]
    traces = config["service"]["pipelines"]["traces"]
    for kind in ("receivers", "processors", "exporters"):
        for name in traces[kind]:
            assert name in config[kind], f"pipeline uses undefined {kind[:-1]} {name}"
    assert traces["receivers"] == ["otlp"]
    endpoint = config["exporters"][traces["exporters"][0]]["endpoint"]
    host, port = endpoint.rsplit(":", 1)
    assert host in compose and int(port) in container_ports(compose[host]), endpoint
    for name in ("gateway", "engine-worker", "api-executor", "estimator"):
        assert compose[name]["environment"]["AUGSERVE_OTLP_ENDPOINT"] == "http://otel-collector:4318"
    assert 4318 in container_ports(compose["otel-collector"])


@pytest.mark.parametrize("dockerfile", ["Dockerfile.app", "Dockerfile.engine"])
def test_dockerfiles_copy_every_package_a_service_imports(dockerfile):
    text = (DEPLOY / dockerfile).read_text()
    ignore = (DEPLOY / f"{dockerfile}.dockerignore").read_text()
    for package in ("common", "stack", "engine_worker", "estimator", "api_executor"):
        assert f"COPY {package} ./{package}" in text, package
        assert f"!{package}/" in ignore, package
