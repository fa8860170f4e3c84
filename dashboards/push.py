"""Pushes the generated dashboards (and the datasources they need) to an existing Grafana.

Idempotent: datasources are created or updated by uid, dashboards overwritten by uid, all in one
folder. Uses grafana-client (its HTTP stack is niquests).
"""

from __future__ import annotations

from collections.abc import Callable

from grafana_client import GrafanaApi
from grafana_client.client import GrafanaClientError

from dashboards.catalog import datasources, rendered

FOLDER_UID, FOLDER_TITLE = "augserve", "augserve"


def _not_found(exc: GrafanaClientError) -> bool:
    return getattr(exc, "status_code", None) == 404


def _upsert_datasource(api: GrafanaApi, source: dict) -> str:
    try:
        api.datasource.get_datasource_by_uid(source["uid"])
    except GrafanaClientError as exc:
        if not _not_found(exc):
            raise
        api.datasource.create_datasource(source)
        return "created"
    api.datasource.update_datasource_by_uid(source["uid"], source)
    return "updated"


def _ensure_folder(api: GrafanaApi) -> None:
    try:
        api.folder.get_folder(FOLDER_UID)
    except GrafanaClientError as exc:
        if not _not_found(exc):
            raise
        api.folder.create_folder(FOLDER_TITLE, uid=FOLDER_UID)


def push(url: str, token: str | None, prometheus_url: str, jaeger_url: str | None = None,
         log: Callable[[str], None] = print, timeout_s: float = 10.0) -> None:
    api = GrafanaApi.from_url(url, credential=token, timeout=timeout_s)
    build = api.health.check() or {}
    log(f"Grafana {build.get('version', '?')} at {url}")
    for source in datasources(prometheus_url, jaeger_url):
        log(f"  datasource {source['uid']}: {_upsert_datasource(api, source)}")
    _ensure_folder(api)
    for stem, body in rendered().items():
        result = api.dashboard.update_dashboard({
            "dashboard": body, "folderUid": FOLDER_UID, "overwrite": True,
            "message": "pushed by python -m dashboards push",
        })
        log(f"  dashboard {stem}: {result.get('url', result.get('status', 'ok'))}")
