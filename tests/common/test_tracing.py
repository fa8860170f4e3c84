"""common.tracing without an SDK installed (the default: no AUGSERVE_OTLP_ENDPOINT). With one,
the e2e tests (tests/e2e/test_traces.py) check what the services export."""

from __future__ import annotations

import time

from opentelemetry import trace

from common import tracing

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_traces_url_is_the_otlp_http_path_under_the_collector():
    assert tracing.traces_url("http://collector:4318") == "http://collector:4318/v1/traces"
    assert tracing.traces_url("http://collector:4318/") == "http://collector:4318/v1/traces"
    assert tracing.traces_url("http://collector:4318/v1/traces") == "http://collector:4318/v1/traces"


def test_no_endpoint_installs_nothing():
    before = trace.get_tracer_provider()
    assert tracing.setup("test", None) is False and tracing.setup("test", "") is False
    assert trace.get_tracer_provider() is before


def test_a_message_traceparent_round_trips_through_the_current_context():
    assert tracing.current_traceparent() is None
    assert tracing.context_of(None) is None and tracing.context_of("") is None
    # Without an SDK spans do not record, but they carry their parent's context: with tracing
    # off a client's traceparent is passed on unchanged.
    with trace.get_tracer("test").start_as_current_span("child", context=tracing.context_of(TRACEPARENT)):
        assert tracing.current_traceparent() == TRACEPARENT
        assert tracing.inject_headers({"other": "x"}) == {"other": "x", "traceparent": TRACEPARENT}


def test_timestamps_are_nanoseconds_since_the_epoch():
    assert tracing.ns(1.5) == 1_500_000_000
    assert abs(tracing.ago_ns(1.0) - (time.time_ns() - 1_000_000_000)) < 50_000_000
