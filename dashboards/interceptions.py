"""Interceptions: API calls that paused generation, what each paused request's KV cache got,
how long the pauses took, and the estimator's predictions of them."""

from __future__ import annotations

from dashboards.panels import RATE, Dashboard, Panel, Row, Variable, q, quantiles

SEL = 'worker=~"$worker", strategy=~"$strategy"'


def build() -> Dashboard:
    calls = Row("Interceptions", (
        Panel("Interceptions by API", "API calls intercepted mid-generation per second, by API kind "
              "(augserve_engine_interceptions_total, counted when the call's result is back).",
              (q(f"sum by (api) (rate(augserve_engine_interceptions_total{{{SEL}}}[{RATE}]))", "{{api}}"),),
              unit="ops", stack=True),
        Panel("Interceptions by strategy", "The same calls by what happened to the paused request's KV cache "
              "(preserve, discard and recompute, swap to host).",
              (q(f"sum by (strategy) (rate(augserve_engine_interceptions_total{{{SEL}}}[{RATE}]))", "{{strategy}}"),),
              unit="ops", stack=True),
        Panel("Paused requests by strategy", "Requests paused at an API call right now, by KV strategy.",
              (q(f"sum by (strategy) (augserve_engine_paused_requests{{{SEL}}})", "{{strategy}}"),),
              stack=True),
        Panel("Interception outcomes", "Intercepted calls per second by API and outcome (ok, error): an error "
              "result still resumes the request, the model reads the error.",
              (q(f"sum by (api, outcome) (rate(augserve_engine_interceptions_total{{{SEL}}}[{RATE}]))",
                 "{{api}} {{outcome}}"),),
              unit="ops"),
    ))
    durations = Row("Pause durations", (
        Panel("Interception duration p90 by API", "90th percentile of the time a request spent paused at an API "
              "call, by API kind, next to the estimator's p90 for the kind.",
              (*quantiles("augserve_engine_interception_duration_seconds", "api", 'worker=~"$worker"', (0.9,)),
               q("max by (api) (augserve_estimator_p90_seconds)", "estimated p90 {{api}}")),
              unit="s"),
        Panel("Interception duration p50/p99", "Median and 99th percentile of the pause time over all API kinds.",
              quantiles("augserve_engine_interception_duration_seconds", "", 'worker=~"$worker"', (0.5, 0.99)),
              unit="s"),
        Panel("Observed vs estimated mean duration", "Mean pause per API kind as observed by the engine, next "
              "to the estimator's mean (what the policy plans with).",
              (q(f'sum by (api) (rate(augserve_engine_interception_duration_seconds_sum{{worker=~"$worker"}}[{RATE}])) '
                 f'/ sum by (api) (rate(augserve_engine_interception_duration_seconds_count{{worker=~"$worker"}}[{RATE}]))',
                 "observed {{api}}"),
               q("max by (api) (augserve_estimator_mean_seconds)", "estimated {{api}}")),
              unit="s"),
        Panel("Estimator history", "Recorded durations per API kind in the estimator's Redis history; kinds "
              "still on the stated default are 1 in the lower series.",
              (q("max by (api) (augserve_estimator_history_samples)", "samples {{api}}"),
               q("max by (api) (augserve_estimator_using_default)", "on default {{api}}"))),
    ))
    return Dashboard(
        uid="augserve-interceptions", title="augserve / Interceptions and waste",
        description="API calls that paused generation, the KV strategy of each, pause durations, estimates.",
        rows=(calls, durations),
        variables=(
            Variable("worker", "worker", "augserve_engine_interceptions_total", "Engine worker id"),
            Variable("strategy", "strategy", "augserve_engine_interceptions_total",
                     "KV strategy of a paused request (the intercept policy's choice)"),
        ),
    )
