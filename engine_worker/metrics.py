"""The engine worker's own Prometheus metrics, declared once. vLLM's `vllm:*` families register
on the same default registry, so one /metrics port serves both."""

from __future__ import annotations

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from common import redis_retry
from engine_worker import engine_stats

PREFIX = "augserve_engine_"

worker_info = Gauge(
    f"{PREFIX}info", "1 per engine worker, naming its intercept policy, queue-order scheduler and model: join on "
    "`worker` to group any augserve_engine_* or vllm:* series by policy", ["worker", "policy", "scheduler", "model"],
)
"""An info metric rather than a `policy` label on every family: one series per worker, and a
restarted worker with another policy under the same id still splits cleanly in time."""
inflight_requests = Gauge(f"{PREFIX}inflight_requests", "Requests held by this worker", ["worker"])
paused_requests = Gauge(f"{PREFIX}paused_requests", "Requests paused at an API call", ["worker", "strategy"])
interceptions_total = Counter(
    f"{PREFIX}interceptions_total", "API calls intercepted mid-generation", ["worker", "api", "strategy", "outcome"],
)
interception_seconds = Histogram(
    f"{PREFIX}interception_duration_seconds", "Time a request spent paused at an API call", ["worker", "api"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
paused_kv_byte_seconds_total = Counter(
    f"{PREFIX}paused_kv_byte_seconds_total", "KV memory x time held by paused requests (the waste)",
    ["worker", "strategy"],
)
recomputed_tokens_total = Counter(
    f"{PREFIX}recomputed_tokens_total", "Context tokens recomputed when discarded requests resumed", ["worker"],
)
duration_error_seconds = Histogram(
    f"{PREFIX}duration_prediction_abs_error_seconds", "|actual - predicted| call duration the policy weighed, "
    "by API kind (the duration estimator's error)", ["worker", "api"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
recompute_seconds = Histogram(
    f"{PREFIX}recompute_duration_seconds", "Re-submitting a discarded or swapped context to its first output token",
    ["worker", "strategy"], buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
swapped_bytes_total = Counter(
    f"{PREFIX}swapped_bytes_total", "KV bytes copied between the pool and the host buffer, per direction",
    ["worker", "direction"])
swap_seconds_total = Counter(
    f"{PREFIX}swap_seconds_total", "Time spent copying swapped KV, per direction", ["worker", "direction"])
requests_total = Counter(f"{PREFIX}requests_total", "Requests finished, by finish reason", ["worker", "finish_reason"])
failovers_total = Counter(
    f"{PREFIX}failovers_total", "Requests taken over from a dead worker, by what their output said: none yet "
    "(restarted), generating, paused at a call, or answered already (only the ack was missing)", ["worker", "state"],
)
FAILOVER_STATES = ("restarted", "generating", "paused", "answered")
generated_tokens_total = Counter(f"{PREFIX}generated_tokens_total", "Tokens generated", ["worker"])
event_loop_lag_seconds = Histogram(
    f"{PREFIX}event_loop_lag_seconds", "How late the worker's event loop woke a 0.25 s sleeper (blocked or "
    "starved of CPU): added to every output, close and Redis call of its requests", ["worker"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
redis_reconnects_total = Counter(
    f"{PREFIX}redis_reconnects_total", "Redis operations and read loops (intake, reply stream, output events) "
    "that lost the connection and retried with backoff: recovered once Redis answered again, or gave_up",
    ["worker", "outcome"],
)
_counting_faults: str | None = None


class _EngineSnapshotCollector:
    """The engine's per-step figures (engine_stats.LATEST), read at scrape time: vLLM's stat
    logger updates them from its output handler, which must not do Prometheus work per step."""

    def __init__(self, worker: str) -> None:
        self._worker = worker

    def collect(self):
        snap = engine_stats.LATEST
        deferred = GaugeMetricFamily(
            f"{PREFIX}deferred_requests", "Waiting requests the engine skipped at its last step (vLLM's "
            "Deferred): sessions paused between two chunks of input, each holding a running slot", labels=["worker"])
        deferred.add_metric([self._worker], snap.num_deferred)
        yield deferred
        steps = CounterMetricFamily(
            f"{PREFIX}deferred_request_steps", "Deferred requests summed over the engine's steps: slot-steps "
            "held by sessions that could not run (paused at a call, or ended but not yet closed)", labels=["worker"])
        steps.add_metric([self._worker], snap.deferred_request_steps)
        yield steps


_collecting_engine: str | None = None


def collect_engine_snapshot(worker: str) -> None:
    """Exports engine_stats.LATEST under this worker's id. Once per process."""
    global _collecting_engine
    if _collecting_engine is None:
        _collecting_engine = worker
        REGISTRY.register(_EngineSnapshotCollector(worker))


def count_faults(worker: str) -> None:
    """Starts every failover and Redis-outage series of this worker at 0 (a dashboard then shows
    0, not no data, before the first fault) and counts the outages common.redis_retry rides out.
    Once per process."""
    global _counting_faults
    if _counting_faults is not None:
        return
    _counting_faults = worker
    for state in FAILOVER_STATES:
        failovers_total.labels(worker, state)
    for outcome in redis_retry.OUTAGE_OUTCOMES:
        redis_reconnects_total.labels(worker, outcome)
    redis_retry.on_outage_end(lambda outcome: redis_reconnects_total.labels(worker, outcome).inc())


def serve(port: int, host: str = "127.0.0.1") -> None:
    if port:
        start_http_server(port, addr=host)
