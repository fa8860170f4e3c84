"""The gateway's Prometheus metrics, declared once (single-process: run one uvicorn worker)."""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from common import redis_retry

PREFIX = "augserve_gateway_"
GENERATION_ROUTES = frozenset({"/v1/chat/completions", "/v1/completions"})

REQUESTS = Counter(f"{PREFIX}requests_total", "HTTP requests by route and status", ["route", "status"])
DURATION = Histogram(
    f"{PREFIX}request_duration_seconds", "HTTP request duration until the last byte (streams included)",
    ["route"], buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
)
TTFT = Histogram(
    f"{PREFIX}time_to_first_token_seconds", "Arrival at the gateway to the first generated text",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
NORMALIZED_LATENCY = Histogram(
    f"{PREFIX}normalized_latency_seconds", "End-to-end latency minus the time paused at API calls, per "
    "generated token (InferCept's normalized latency)", buckets=LATENCY_BUCKETS,
)
TPOT = Histogram(
    f"{PREFIX}time_per_output_token_seconds", "Time per output token after the first, API calls excluded",
    buckets=LATENCY_BUCKETS,
)
ROUTED = Counter(
    f"{PREFIX}routed_requests_total", "Routing decisions: route=affinity (the program holder's own stream) or "
    "shared (the pull-balanced stream), reason=holder|pull|no_program|no_holder|holder_dead|holder_overloaded",
    ["route", "reason"],
)
INFLIGHT = Gauge(f"{PREFIX}inflight_requests", "Completion requests being served (streams included)")
REDIS_RECONNECTS = Counter(
    f"{PREFIX}redis_reconnects_total", "Redis operations and output-stream reads that lost the connection and "
    "retried with backoff: recovered once Redis answered again, or gave_up (the request then failed with a 503)",
    ["outcome"],
)


_counting_outages = False


def count_redis_outages() -> None:
    """Counts the outages common.redis_retry rides out (once per process, however often called);
    both outcomes start at 0, so a dashboard shows 0 rather than no data before the first one."""
    global _counting_outages
    if _counting_outages:
        return
    _counting_outages = True
    for outcome in redis_retry.OUTAGE_OUTCOMES:
        REDIS_RECONNECTS.labels(outcome=outcome)
    redis_retry.on_outage_end(lambda outcome: REDIS_RECONNECTS.labels(outcome=outcome).inc())


class MetricsMiddleware:
    """Pure ASGI (not BaseHTTPMiddleware): it must not buffer or break streaming responses.

    The route label is the matched route's template, never the raw path (bounded cardinality).
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        counted = scope["path"] in GENERATION_ROUTES
        if counted:
            INFLIGHT.inc()

        async def send_wrapper(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                request_id = scope.get("state", {}).get("request_id")
                if request_id:
                    message.setdefault("headers", [])
                    message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            if counted:
                INFLIGHT.dec()
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            REQUESTS.labels(route=route, status=str(status)).inc()
            DURATION.labels(route=route).observe(time.perf_counter() - started)
