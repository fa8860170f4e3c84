"""Plain-dict builders for Grafana dashboard JSON (schema of Grafana 10/11).

Every panel's datasource is the fixed uid `prometheus`: file provisioning does not resolve the
`${DS_...}` inputs of exported dashboards, and a fixed uid is what keeps panels off "No data".
Panels are laid out in rows of two (or of `per_row`), in the order they are given.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DATASOURCE = {"type": "prometheus", "uid": "prometheus"}
GRID_WIDTH = 24
RATE = "$__rate_interval"
"""The rate window Grafana picks from the scrape interval (at least four scrapes)."""


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str = ""


@dataclass(frozen=True)
class Panel:
    title: str
    description: str
    queries: tuple[Query, ...]
    unit: str = "short"
    kind: str = "timeseries"
    """timeseries or stat."""
    stack: bool = False
    height: int = 8


@dataclass(frozen=True)
class Row:
    title: str
    panels: tuple[Panel, ...]
    per_row: int = 2


@dataclass(frozen=True)
class Variable:
    """A query variable over one label of one metric; "All" selects every value (regex `.*`)."""

    name: str
    label: str
    metric: str
    description: str = ""

    @property
    def query(self) -> str:
        return f"label_values({self.metric}, {self.label})"


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    description: str
    rows: tuple[Row, ...]
    variables: tuple[Variable, ...] = ()
    tags: tuple[str, ...] = field(default=("augserve",))

    def panels(self) -> list[Panel]:
        return [p for row in self.rows for p in row.panels]


POLICY_VARIABLE = Variable("policy", "policy", "augserve_engine_info",
                  "Intercept policy of the engine workers (AUGSERVE_POLICY): narrows the worker list")
WORKER_VARIABLE = Variable("worker", "worker", 'augserve_engine_info{policy=~"$policy"}', "Engine worker id")
"""Engine dashboards' variables, in this order: workers of the chosen policies (a chained variable)."""

BY_POLICY = 'on (worker) group_left (policy) augserve_engine_info{policy=~"$policy"}'
"""`<engine series> * BY_POLICY` adds each worker's policy label, and keeps the chosen policies
only, at each point in time (a worker id restarted with another policy splits correctly)."""


def q(expr: str, legend: str = "") -> Query:
    return Query(" ".join(expr.split()), legend)


def quantiles(metric: str, by: str, selector: str = "", qs: tuple[float, ...] = (0.5, 0.9, 0.99)) -> tuple[Query, ...]:
    """histogram_quantile queries of a `_bucket` histogram, one per quantile, grouped `by`."""
    group = f"{by}, le" if by else "le"
    legend_by = "".join(f" {{{{{label.strip()}}}}}" for label in by.split(",") if label.strip())
    matcher = f"{{{selector}}}" if selector else ""
    return tuple(
        q(f"histogram_quantile({x}, sum by ({group}) (rate({metric}_bucket{matcher}[{RATE}])))",
          f"p{round(x * 100):g}{legend_by}")
        for x in qs
    )


def _panel_json(panel: Panel, panel_id: int, x: int, y: int, width: int) -> dict:
    targets = [
        {"datasource": DATASOURCE, "expr": query.expr, "legendFormat": query.legend or "__auto",
         "range": True, "refId": chr(ord("A") + i)}
        for i, query in enumerate(panel.queries)
    ]
    custom = {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10, "showPoints": "never",
              "spanNulls": True, "stacking": {"mode": "normal" if panel.stack else "none", "group": "A"}}
    body: dict[str, Any] = {
        "id": panel_id, "type": panel.kind, "title": panel.title, "description": panel.description,
        "datasource": DATASOURCE, "gridPos": {"h": panel.height, "w": width, "x": x, "y": y},
        "targets": targets,
        "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
    }
    if panel.kind == "timeseries":
        body["fieldConfig"]["defaults"]["custom"] = custom
        body["options"] = {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                           "tooltip": {"mode": "multi", "sort": "desc"}}
    else:
        body["options"] = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                           "colorMode": "value", "graphMode": "area", "textMode": "auto"}
    return body


def _variable_json(var: Variable) -> dict:
    return {
        "name": var.name, "label": var.name, "description": var.description, "type": "query",
        "datasource": DATASOURCE, "definition": var.query,
        "query": {"query": var.query, "refId": f"{var.name}-values", "qryType": 1},
        "refresh": 2, "includeAll": True, "allValue": ".*", "multi": True, "sort": 1,
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]}, "options": [],
    }


def render(dashboard: Dashboard) -> dict:
    """The dashboard as Grafana JSON (the `dashboard` object of the HTTP API, id left null)."""
    panels: list[dict] = []
    panel_id, y = 1, 0
    for row in dashboard.rows:
        panels.append({"id": panel_id, "type": "row", "title": row.title, "collapsed": False,
                       "gridPos": {"h": 1, "w": GRID_WIDTH, "x": 0, "y": y}, "panels": []})
        panel_id, y = panel_id + 1, y + 1
        width = GRID_WIDTH // row.per_row
        for i, panel in enumerate(row.panels):
            column = i % row.per_row
            if i and column == 0:
                y += row.panels[i - 1].height
            panels.append(_panel_json(panel, panel_id, column * width, y, width))
            panel_id += 1
        if row.panels:
            y += row.panels[-1].height
    return {
        "id": None, "uid": dashboard.uid, "title": dashboard.title, "description": dashboard.description,
        "tags": list(dashboard.tags), "timezone": "browser", "editable": True, "graphTooltip": 1,
        "schemaVersion": 39, "version": 1, "refresh": "10s",
        "time": {"from": "now-30m", "to": "now"}, "timepicker": {},
        "templating": {"list": [_variable_json(v) for v in dashboard.variables]},
        "annotations": {"list": []}, "links": [
            {"type": "dashboards", "tags": ["augserve"], "asDropdown": True, "title": "augserve",
             "icon": "external link"},
        ],
        "panels": panels,
    }
