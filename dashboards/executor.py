"""Executor: the Celery workers that run intercepted API calls (per-kind rates, durations, failures)."""

from __future__ import annotations

from dashboards.panels import RATE, Dashboard, Panel, Row, Variable, q, quantiles

A = 'api=~"$api"'


def build() -> Dashboard:
    calls = Row("Calls", (
        Panel("Calls by API", "API calls whose result was delivered per second, by kind "
              "(augserve_executor_calls_total).",
              (q(f"sum by (api) (rate(augserve_executor_calls_total{{{A}}}[{RATE}]))", "{{api}}"),),
              unit="ops", stack=True),
        Panel("Failures by API and outcome", "Calls per second that ended in an error or a timeout result.",
              (q(f'sum by (api, outcome) (rate(augserve_executor_calls_total{{{A}, outcome!="ok"}}[{RATE}]))',
                 "{{api}} {{outcome}}"),),
              unit="ops"),
        Panel("Failure ratio by API", "Share of each kind's calls that did not end ok (0 when none failed).",
              (q(f'(sum by (api) (rate(augserve_executor_calls_total{{{A}, outcome!="ok"}}[{RATE}])) '
                 f'or 0 * sum by (api) (rate(augserve_executor_calls_total{{{A}}}[{RATE}]))) '
                 f'/ sum by (api) (rate(augserve_executor_calls_total{{{A}}}[{RATE}]))', "{{api}}"),),
              unit="percentunit"),
        Panel("Retries by API", "Retries per second after transient errors (HTTP APIs: network errors, "
              "timeouts, 429 and 5xx).",
              (q(f"sum by (api) (rate(augserve_executor_retries_total{{{A}}}[{RATE}]))", "{{api}}"),),
              unit="ops"),
    ))
    durations = Row("Durations", (
        Panel("Call duration p90 by API", "90th percentile of a call's duration, first start to result "
              "(retries included).",
              quantiles("augserve_executor_call_duration_seconds", "api", A, (0.9,)), unit="s"),
        Panel("Mean call duration by API", "Mean duration of delivered calls per kind.",
              (q(f"sum by (api) (rate(augserve_executor_call_duration_seconds_sum{{{A}}}[{RATE}])) "
                 f"/ sum by (api) (rate(augserve_executor_call_duration_seconds_count{{{A}}}[{RATE}]))", "{{api}}"),),
              unit="s"),
    ))
    return Dashboard(
        uid="augserve-executor", title="augserve / Executor",
        description="Celery API executor: calls per kind, failures, retries and durations.",
        rows=(calls, durations),
        variables=(Variable("api", "api", "augserve_executor_calls_total", "API kind"),),
    )
