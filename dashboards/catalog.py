"""The dashboards, their files and the datasources they query (one place for all of them)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from dashboards import engine, executor, faults, interceptions, overview
from dashboards.panels import DATASOURCE, Dashboard, render

FOLDER = Path(__file__).resolve().parent
BUILDERS = {"overview": overview.build, "interceptions": interceptions.build, "engine": engine.build,
            "executor": executor.build, "faults": faults.build}
"""File stem -> builder; each writes dashboards/<stem>.json."""

PROMETHEUS_UID = DATASOURCE["uid"]
TRACES_UID = "jaeger"


def datasources(prometheus_url: str, jaeger_url: str | None = None) -> list[dict]:
    """The datasources as Grafana's HTTP API takes them (the same uids as the provisioning YAML)."""
    sources = [{
        "uid": PROMETHEUS_UID, "name": "Prometheus", "type": "prometheus", "access": "proxy",
        "url": prometheus_url, "isDefault": True,
        # Grafana's $__rate_interval is derived from this: keep it equal to the scrape interval.
        "jsonData": {"timeInterval": "5s", "httpMethod": "POST"},
    }]
    if jaeger_url:
        sources.append({"uid": TRACES_UID, "name": "Jaeger", "type": "jaeger", "access": "proxy", "url": jaeger_url})
    return sources


def dashboards() -> dict[str, Dashboard]:
    return {stem: build() for stem, build in BUILDERS.items()}


def rendered() -> dict[str, dict]:
    return {stem: render(d) for stem, d in dashboards().items()}


def to_text(dashboard_json: dict) -> str:
    return json.dumps(dashboard_json, indent=2) + "\n"


def path_of(stem: str) -> Path:
    return FOLDER / f"{stem}.json"


def write_all() -> list[Path]:
    paths = []
    for stem, body in rendered().items():
        path = path_of(stem)
        path.write_text(to_text(body))
        paths.append(path)
    return paths


def stale() -> list[Path]:
    """Files that differ from what the code generates (or are missing)."""
    return [path_of(stem) for stem, body in rendered().items()
            if not path_of(stem).exists() or path_of(stem).read_text() != to_text(body)]


def panel_queries(dashboard_json: dict) -> Iterator[tuple[str, str]]:
    """(panel title, PromQL) of every query of every panel of a rendered dashboard."""
    for panel in dashboard_json["panels"]:
        for target in panel.get("targets", []):
            yield panel["title"], target["expr"]
