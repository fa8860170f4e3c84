"""Faults: what the stack rode out (engine-worker failovers, calls reclaimed from dead executors,
Redis reconnects per service, duplicate results suppressed). Every series starts at 0 when its
service starts, so a quiet stack shows flat zeros, not "No data"."""

from __future__ import annotations

from dashboards.panels import POLICY_VARIABLE, RATE, WORKER_VARIABLE, Dashboard, Panel, Row, q

W = 'worker=~"$worker"'
WINDOW = "5m"
"""The window of the "in the last 5 minutes" panels: faults are rare events, a rate hides them."""


def build() -> Dashboard:
    takeover = Row("Takeovers", (
        Panel("Engine worker failovers", "Requests a live worker took over from a dead one in the last 5 minutes "
              "(augserve_engine_failovers_total), by the surviving worker and what the request's output showed: "
              "generating, paused at a call, answered already (only the ack was missing) or restarted (nothing "
              "emitted yet). The survivor prefills prompt + every token emitted and generates on.",
              (q(f"sum by (worker, state) (increase(augserve_engine_failovers_total{{{W}}}[{WINDOW}]))",
                 "{{worker}} {{state}}"),)),
        Panel("Calls reclaimed from dead executors", "Broker messages (running calls, stand-in deliveries) of an "
              "executor that died, put back on the queue by a live or restarted one in the last 5 minutes "
              "(augserve_executor_reclaimed_messages_total): each is run again under its call id.",
              (q(f"sum(increase(augserve_executor_reclaimed_messages_total[{WINDOW}]))", "reclaimed"),)),
        Panel("Duplicate results suppressed", "Results not delivered because their call id already was (a re-run "
              "of a reclaimed or redelivered call), per second by API kind: the request still gets one result.",
              (q(f"sum by (api) (rate(augserve_executor_duplicate_deliveries_total[{RATE}]))", "{{api}}"),),
              unit="ops"),
        Panel("Executor broker reconnects", "Times the Celery consumer connected to Redis again after losing it, "
              "in the last 5 minutes (augserve_executor_broker_reconnects_total).",
              (q(f"sum(increase(augserve_executor_broker_reconnects_total[{WINDOW}]))", "reconnects"),)),
    ))
    redis = Row("Redis outages", (
        Panel("Redis reconnects by service", "Operations and read loops that lost Redis and retried with backoff, "
              "per second, by service and outcome: recovered once Redis answered again, or gave_up (the request "
              "then failed with a clear 503). Counted per operation: one restart shows as many recoveries.",
              (q(f"sum by (outcome) (rate(augserve_gateway_redis_reconnects_total[{RATE}]))", "gateway {{outcome}}"),
               q(f"sum by (worker, outcome) (rate(augserve_engine_redis_reconnects_total{{{W}}}[{RATE}]))",
                 "{{worker}} {{outcome}}"),
               q(f"sum by (outcome) (rate(augserve_executor_redis_reconnects_total[{RATE}]))", "executor {{outcome}}")),
              unit="ops"),
        Panel("Estimator reading Redis", "1 while the estimator's duration store is readable, 0 during an outage "
              "(it then answers with its stated defaults).",
              (q("min(augserve_estimator_redis_up)", "redis up"),)),
    ))
    return Dashboard(
        uid="augserve-faults", title="augserve / Faults",
        description="Failovers, reclaimed calls, Redis reconnects and suppressed duplicates: the faults the stack "
                    "survived.",
        rows=(takeover, redis),
        variables=(POLICY_VARIABLE, WORKER_VARIABLE),
    )
