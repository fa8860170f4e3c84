"""The executor's Prometheus metrics, all declared here (prefix augserve_executor_).

Calls run in prefork pool processes while /metrics is served by the worker's main process, so the
values must be shared: prometheus_client's multiprocess mode, which reads PROMETHEUS_MULTIPROC_DIR
when it is first imported. If the metrics port is set and that variable is not, this module makes
a fresh temporary directory for it, before importing prometheus_client; so import this module
before anything else that imports prometheus_client (celery_app.py does). An operator-provided
directory must be emptied before the worker starts (prometheus_client's rule).
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import sys
import tempfile

from api_executor.settings import ExecutorSettings

log = logging.getLogger(__name__)


def _prepare_multiprocess_dir() -> None:
    if not ExecutorSettings().executor_metrics_port or os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return
    if "prometheus_client" in sys.modules:
        log.warning("prometheus_client was imported before api_executor.metrics: metrics of pool "
                    "processes will not be visible; set PROMETHEUS_MULTIPROC_DIR")
        return
    path = tempfile.mkdtemp(prefix="augserve-executor-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
    owner = os.getpid()
    # Only the process that made it removes it: forked pool processes inherit atexit handlers.
    atexit.register(lambda: os.getpid() == owner and shutil.rmtree(path, ignore_errors=True))  # type: ignore[func-returns-value]


_prepare_multiprocess_dir()

from prometheus_client import (  # noqa: E402
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    multiprocess,  # noqa: E402
    start_http_server,
)

from common import redis_retry  # noqa: E402
from common.schemas import API_KINDS  # noqa: E402

CALLS = Counter(
    "augserve_executor_calls_total", "API calls whose result was delivered, by outcome (ok, error, timeout)",
    ["api", "outcome"])
DUPLICATES = Counter(
    "augserve_executor_duplicate_deliveries_total", "Results not delivered because their call_id already was",
    ["api"])
RETRIES = Counter("augserve_executor_retries_total", "Retries of calls after a transient error", ["api"])
RECLAIMED = Counter(
    "augserve_executor_reclaimed_messages_total",
    "Broker messages of a dead executor put back on the queue by this one (api_executor.reclaim)")
REDIS_RECONNECTS = Counter(
    "augserve_executor_redis_reconnects_total", "Redis operations of calls (result delivery, the delivered-once "
    "check) that lost the connection and retried with backoff: recovered once Redis answered again, or gave_up",
    ["outcome"])
BROKER_RECONNECTS = Counter(
    "augserve_executor_broker_reconnects_total", "Times the Celery consumer connected to the broker again after "
    "losing it (a Redis restart)")
CALL_DURATION = Histogram(
    "augserve_executor_call_duration_seconds", "Duration of delivered API calls, first start to result",
    ["api"], buckets=(0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 20, 30, 45, 60, 120))


def observe_call(api: str, outcome: str, duration_s: float) -> None:
    CALLS.labels(api=api, outcome=outcome).inc()
    CALL_DURATION.labels(api=api).observe(duration_s)


def count_duplicate(api: str) -> None:
    DUPLICATES.labels(api=api).inc()


def count_retry(api: str) -> None:
    RETRIES.labels(api=api).inc()


def count_reclaimed(n: int) -> None:
    RECLAIMED.inc(n)


def count_broker_reconnect() -> None:
    BROKER_RECONNECTS.inc()


def count_faults() -> None:
    """Starts the fault series at 0 (duplicates per API kind, both Redis outcomes: a dashboard then
    shows 0, not no data, before the first fault) and counts the outages common.redis_retry rides
    out, in this process and the pool processes forked from it: call it in the main process
    before the pool starts."""
    for api in API_KINDS:
        DUPLICATES.labels(api=api)
    for outcome in redis_retry.OUTAGE_OUTCOMES:
        REDIS_RECONNECTS.labels(outcome=outcome)
    redis_retry.on_outage_end(lambda outcome: REDIS_RECONNECTS.labels(outcome=outcome).inc())


def serve(port: int, host: str = "0.0.0.0") -> None:
    """Serves /metrics from this (the worker's main) process, aggregating all pool processes."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    start_http_server(port, addr=host, registry=registry)
    log.info("executor metrics on http://%s:%d/metrics", host, port)
