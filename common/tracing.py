"""Traces: the OpenTelemetry SDK set-up of a service, and W3C trace context in our messages.

One request is one trace across the gateway, the engine worker and the executor. Each process's
entry point calls `setup(service, settings.otlp_endpoint)` once; everything else uses only the
OpenTelemetry API, whose spans are no-ops until a provider is installed, so tracing costs nothing
where no collector is configured (AUGSERVE_OTLP_ENDPOINT unset, the default).

Context crosses Redis inside the messages themselves (EngineRequest.traceparent,
ToolCallTask.traceparent), written and read with OpenTelemetry's W3C propagator: Redis has no
headers of its own, and a field of the message survives re-delivery (a reclaimed request, a
retried or re-scheduled call). `tracestate` is not carried: nothing in this stack sets one.
"""

from __future__ import annotations

import logging
import time

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace

log = logging.getLogger(__name__)

TRACES_PATH = "/v1/traces"
"""OTLP/HTTP's path for traces under the collector's base URL."""

_provider = None


def traces_url(endpoint: str) -> str:
    """The OTLP/HTTP traces URL of a collector's base URL (a full .../v1/traces URL is kept)."""
    endpoint = endpoint.rstrip("/")
    return endpoint if endpoint.endswith(TRACES_PATH) else endpoint + TRACES_PATH


def setup(service_name: str, endpoint: str | None) -> bool:
    """Installs a TracerProvider exporting this process's spans over OTLP/HTTP (protobuf) to
    `endpoint`; returns whether tracing is on. No endpoint: nothing is installed (spans stay
    no-ops). Call it in the process that makes the spans, after any fork (Celery's prefork pool
    calls it from worker_process_init): the batch exporter's thread does not survive a fork."""
    global _provider
    if not endpoint:
        return False
    if _provider is not None:
        return True
    # The SDK only here: libraries and tests that never set up tracing never import it.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": service_name, "service.namespace": "augserve"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=traces_url(endpoint))))
    trace.set_tracer_provider(provider)
    _provider = provider
    log.info("traces of %s go to %s", service_name, traces_url(endpoint))
    return True


def shutdown() -> None:
    """Exports what is still buffered (a process about to exit); tracing is off afterwards."""
    global _provider
    if _provider is not None:
        _provider.shutdown()
        _provider = None


def current_traceparent() -> str | None:
    """The W3C traceparent of the current span, for a message; None when no span is recording."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get("traceparent")


def inject_headers(headers: dict[str, str]) -> dict[str, str]:
    """Writes the current context into transport headers (e.g. a Celery message's)."""
    propagate.inject(headers)
    return headers


def context_of(traceparent: str | None) -> otel_context.Context | None:
    """The context whose parent is the span a message's traceparent names (None: none named)."""
    if not traceparent:
        return None
    return propagate.extract({"traceparent": traceparent})


def ns(unix_seconds: float) -> int:
    """A time.time() value as an OpenTelemetry timestamp (nanoseconds since the epoch)."""
    return int(unix_seconds * 1e9)


def ago_ns(seconds: float) -> int:
    """The OpenTelemetry timestamp of `seconds` before now."""
    return time.time_ns() - int(seconds * 1e9)
