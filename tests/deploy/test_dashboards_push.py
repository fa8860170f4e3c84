"""`python -m dashboards push` through grafana-client, against a local STAND-IN for Grafana's
HTTP API (tests/deploy/grafana_standin.py; a real Grafana cannot be installed here)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from dashboards.catalog import BUILDERS, rendered
from dashboards.push import FOLDER_UID, push
from stack.processes import REPO_ROOT
from tests.deploy.grafana_standin import GrafanaStandIn

TOKEN = "glsa_standin_token_0123456789"


def test_cli_push_posts_datasources_folder_and_every_dashboard():
    with GrafanaStandIn(TOKEN) as grafana:
        run = subprocess.run(
            [sys.executable, "-m", "dashboards", "push", "--url", grafana.url, "--token", TOKEN,
             "--prometheus-url", "http://prometheus.internal:9090", "--jaeger-url", "http://jaeger.internal:16686"],
            cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, run.stdout + run.stderr
        state = grafana.state
    assert all(c.authorization == f"Bearer {TOKEN}" for c in state.calls)
    posted = [(c.method, c.path) for c in state.calls]
    assert posted.count(("POST", "/api/datasources")) == 2
    assert posted.count(("POST", "/api/dashboards/db")) == len(BUILDERS)
    assert ("POST", "/api/folders") in posted
    assert state.datasources["prometheus"]["url"] == "http://prometheus.internal:9090"
    assert state.datasources["prometheus"]["type"] == "prometheus"
    assert state.datasources["jaeger"]["url"] == "http://jaeger.internal:16686"
    expected = {body["uid"]: body for body in rendered().values()}
    assert set(state.dashboards) == set(expected)
    for uid, request in state.dashboards.items():
        assert request["dashboard"] == expected[uid]
        assert request["overwrite"] is True and request["folderUid"] == FOLDER_UID
    assert "dashboard overview" in run.stdout


def test_second_push_updates_instead_of_duplicating():
    with GrafanaStandIn(TOKEN) as grafana:
        push(grafana.url, TOKEN, "http://prometheus:9090", log=lambda _m: None)
        first = len(grafana.state.calls)
        push(grafana.url, TOKEN, "http://prometheus:9091", log=lambda _m: None)
        second = [(c.method, c.path) for c in grafana.state.calls[first:]]
        state = grafana.state
    assert ("PUT", "/api/datasources/uid/prometheus") in second
    assert ("POST", "/api/datasources") not in second and ("POST", "/api/folders") not in second
    assert second.count(("POST", "/api/dashboards/db")) == len(BUILDERS)
    assert state.datasources["prometheus"]["url"] == "http://prometheus:9091"
    assert "jaeger" not in state.datasources


def test_a_wrong_token_fails_the_push():
    from grafana_client.client import GrafanaUnauthorizedError

    with GrafanaStandIn(TOKEN) as grafana, pytest.raises(GrafanaUnauthorizedError):
        push(grafana.url, "wrong-token", "http://prometheus:9090", log=lambda _m: None)
