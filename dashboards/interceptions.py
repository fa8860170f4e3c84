"""Interceptions: API calls that paused generation, what each paused request's KV cache got,
the waste and recompute that caused per policy, how long the pauses took, and the estimator's
predictions of them."""

from __future__ import annotations

from dashboards.panels import (
    BY_POLICY,
    POLICY_VARIABLE,
    RATE,
    WORKER_VARIABLE,
    Dashboard,
    Panel,
    Row,
    Variable,
    q,
    quantiles,
)

SEL = 'worker=~"$worker", strategy=~"$strategy"'
W = 'worker=~"$worker"'


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
    waste = Row("Waste and recompute by policy", (
        Panel("KV memory held by paused requests", "KV bytes held by requests paused at an API call, averaged over "
              "the rate window (byte-seconds of waste per second, augserve_engine_paused_kv_byte_seconds_total), by "
              "policy and strategy: the memory the intercept policy leaves idle.",
              (q(f"sum by (policy, strategy) (rate(augserve_engine_paused_kv_byte_seconds_total{{{SEL}}}[{RATE}]) "
                 f"* {BY_POLICY})", "{{policy}} {{strategy}}"),),
              unit="bytes", stack=True),
        Panel("Waste per finished request", "KV byte-seconds held while paused, per request finished in the same "
              "window, by policy: lower is better at the same load.",
              (q(f"sum by (policy) (rate(augserve_engine_paused_kv_byte_seconds_total{{{SEL}}}[{RATE}]) * {BY_POLICY}) "
                 f"/ sum by (policy) (rate(augserve_engine_requests_total{{{W}}}[{RATE}]) * {BY_POLICY})",
                 "{{policy}}"),),
              unit="suffix:B·s"),
        Panel("Total waste", "KV byte-seconds held by paused requests since each worker started, by policy "
              "(the counter itself: it restarts at 0 with its worker).",
              (q(f"sum by (policy) (augserve_engine_paused_kv_byte_seconds_total{{{SEL}}} * {BY_POLICY})",
                 "{{policy}}"),),
              unit="suffix:B·s"),
        Panel("Recomputed tokens", "Context tokens prefilled again per second when discarded requests resumed "
              "(augserve_engine_recomputed_tokens_total, prefix-cache hits excluded), by policy: the compute "
              "that discarding costs.",
              (q(f"sum by (policy) (rate(augserve_engine_recomputed_tokens_total{{{W}}}[{RATE}]) * {BY_POLICY})",
                 "{{policy}}"),),
              unit="suffix:tok/s"),
        Panel("Swap traffic", "KV bytes per second copied out to the host buffer and back in by swapped "
              "requests (augserve_engine_swapped_bytes_total), by policy and direction.",
              (q(f"sum by (policy, direction) (rate(augserve_engine_swapped_bytes_total{{{W}}}[{RATE}]) * {BY_POLICY})",
                 "{{policy}} {{direction}}"),),
              unit="Bps"),
        Panel("Swap copy time", "Share of wall time the KV connector spent copying swapped KV "
              "(augserve_engine_swap_seconds_total), by policy and direction: what swapping costs the engine.",
              (q(f"sum by (policy, direction) (rate(augserve_engine_swap_seconds_total{{{W}}}[{RATE}]) * {BY_POLICY})",
                 "{{policy}} {{direction}}"),),
              unit="percentunit"),
        Panel("Strategy mix", "Share of each policy's interceptions by the KV strategy they got (preserve, discard, "
              "swap), over the rate window.",
              (q(f"sum by (policy, strategy) "
                 f"(rate(augserve_engine_interceptions_total{{{SEL}}}[{RATE}]) * {BY_POLICY}) "
                 f"/ on (policy) group_left sum by (policy) "
                 f"(rate(augserve_engine_interceptions_total{{{W}}}[{RATE}]) * {BY_POLICY})",
                 "{{policy}} {{strategy}}"),),
              unit="percentunit"),
    ))
    durations = Row("Pause durations", (
        Panel("Interception duration p90 by API", "90th percentile of the time a request spent paused at an API "
              "call, by API kind, next to the estimator's p90 for the kind.",
              (*quantiles("augserve_engine_interception_duration_seconds", "api", 'worker=~"$worker"', (0.9,)),
               q("max by (api) (augserve_estimator_p90_seconds)", "estimated p90 {{api}}")),
              unit="s"),
        Panel("Duration prediction error", "p50/p90 of |actual - predicted| call duration the intercept policy "
              "weighed, by API kind (augserve_engine_duration_prediction_abs_error_seconds): how far off the "
              "duration estimator (AUGSERVE_DURATION_ESTIMATE) was.",
              quantiles("augserve_engine_duration_prediction_abs_error_seconds", "api", 'worker=~"$worker"',
                        (0.5, 0.9)),
              unit="s"),
        Panel("Recompute time", "p50/p90 of the time from re-submitting a discarded or swapped context to its "
              "first output token, by strategy (augserve_engine_recompute_duration_seconds).",
              quantiles("augserve_engine_recompute_duration_seconds", "strategy", 'worker=~"$worker"', (0.5, 0.9)),
              unit="s"),
        Panel("Interception duration p50/p99", "Median and 99th percentile of the pause time over all API kinds.",
              quantiles("augserve_engine_interception_duration_seconds", "", 'worker=~"$worker"', (0.5, 0.99)),
              unit="s"),
        Panel("Observed vs estimated mean duration", "Mean pause per API kind as observed by the engine, next "
              "to the estimator's mean (what the policy plans with).",
              (q(f'sum by (api) '
                 f'(rate(augserve_engine_interception_duration_seconds_sum{{worker=~"$worker"}}[{RATE}])) '
                 f'/ sum by (api) '
                 f'(rate(augserve_engine_interception_duration_seconds_count{{worker=~"$worker"}}[{RATE}]))',
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
        rows=(calls, waste, durations),
        variables=(
            POLICY_VARIABLE, WORKER_VARIABLE,
            Variable("strategy", "strategy", "augserve_engine_interceptions_total",
                     "KV strategy of a paused request (the intercept policy's choice)"),
        ),
    )
