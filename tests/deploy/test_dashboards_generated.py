"""dashboards/*.json: exactly what the generator writes, well-formed, and querying only declared metrics."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from dashboards.catalog import BUILDERS, panel_queries, path_of, rendered, to_text
from stack.processes import REPO_ROOT

METRIC = re.compile(r"\b(augserve_\w+|vllm:[\w:]+|flower_\w+)")
SUFFIXES = ("_bucket", "_sum", "_count", "_total", "_created")
METRICS_MODULES = ("gateway/metrics.py", "engine_worker/metrics.py", "api_executor/metrics.py", "estimator/metrics.py")


def _family(name: str) -> str:
    """The name without sample suffixes (a histogram may itself end in _total: strip repeatedly)."""
    stripped = True
    while stripped:
        stripped = False
        for suffix in SUFFIXES:
            if name.endswith(suffix):
                name, stripped = name[: -len(suffix)], True
    return name


def declared_families() -> set[str]:
    """Metric families the services declare (their metrics modules) and vLLM's own."""
    names: set[str] = set()
    for module in METRICS_MODULES:
        source = (REPO_ROOT / module).read_text()
        prefix = re.search(r'^PREFIX\s*=\s*"(\w+)"', source, re.M)
        if prefix:
            source = source.replace("{PREFIX}", prefix.group(1))
        names |= set(re.findall(r'"(augserve_\w+)"', source))
    # vLLM's names, read from its source (importing vllm costs seconds).
    vllm_root = Path(importlib.util.find_spec("vllm").origin).parent
    names |= set(re.findall(r'name="(vllm:\w+)"', (vllm_root / "v1" / "metrics" / "loggers.py").read_text()))
    return {_family(n) for n in names}


@pytest.mark.parametrize("stem", sorted(BUILDERS))
def test_json_file_is_what_the_generator_writes(stem):
    path = path_of(stem)
    assert path.exists(), f"{path} missing: run python -m dashboards generate"
    assert path.read_text() == to_text(rendered()[stem]), f"{path} is stale: run python -m dashboards generate"


def test_check_command_reports_a_stale_file(tmp_path, monkeypatch):
    import dashboards.catalog as catalog

    monkeypatch.setattr(catalog, "FOLDER", tmp_path)
    assert len(catalog.stale()) == len(BUILDERS)
    catalog.write_all()
    assert catalog.stale() == []
    (tmp_path / "engine.json").write_text("{}\n")
    assert catalog.stale() == [tmp_path / "engine.json"]


def test_cli_check_passes_on_the_committed_files():
    run = subprocess.run([sys.executable, "-m", "dashboards", "check"], cwd=REPO_ROOT, capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 0, run.stderr


@pytest.mark.parametrize("stem", sorted(BUILDERS))
def test_dashboard_is_well_formed_for_file_provisioning(stem):
    body = json.loads(path_of(stem).read_text())
    text = path_of(stem).read_text()
    assert "${DS_" not in text and "__inputs" not in body, "file provisioning does not resolve import inputs"
    assert body["uid"].startswith("augserve-") and body["id"] is None
    ids = [p["id"] for p in body["panels"]]
    assert len(ids) == len(set(ids))
    for panel in body["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "prometheus"}
        assert panel["title"] and panel["description"], panel
        assert panel["targets"] and all(t["datasource"]["uid"] == "prometheus" for t in panel["targets"])
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24
    used = {v for _, expr in panel_queries(body) for v in re.findall(r"\$(\w+)", expr)} - {"__rate_interval"}
    defined = {v["name"] for v in body["templating"]["list"]}
    assert used <= defined, f"undefined variables {used - defined}"


def test_dashboard_uids_and_titles_are_unique():
    bodies = list(rendered().values())
    assert len({b["uid"] for b in bodies}) == len(bodies)
    assert len({b["title"] for b in bodies}) == len(bodies)


@pytest.mark.parametrize("stem", sorted(BUILDERS))
def test_every_query_names_only_declared_metrics(stem):
    declared = declared_families()
    body = rendered()[stem]
    for title, expr in panel_queries(body):
        for name in METRIC.findall(expr):
            assert _family(name) in declared, f"{stem} / {title}: {name} is declared by no metrics module"
    for variable in body["templating"]["list"]:
        for name in METRIC.findall(variable["definition"]):
            assert _family(name) in declared, f"{stem} variable {variable['name']}: {name}"
