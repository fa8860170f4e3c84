"""An OTLP/HTTP trace receiver for tests: what an OpenTelemetry Collector's `otlp` receiver does
with `POST /v1/traces` (a protobuf ExportTraceServiceRequest, opentelemetry-proto's own message),
keeping the spans in memory. No collector binary installs here; the services' real OTLP exporters
send to this over real HTTP, exactly as they would to the collector of docker-compose.yml.
"""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    """"" for a root span."""
    kind: int
    start_ns: int
    end_ns: int
    status: int
    """opentelemetry.proto Status.StatusCode: 0 unset, 1 ok, 2 error."""
    attributes: dict[str, Any] = field(default_factory=dict)


def _value(value: AnyValue) -> Any:
    which = value.WhichOneof("value")
    if which == "array_value":
        return [_value(v) for v in value.array_value.values]
    if which == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, which) if which else None


def decode(body: bytes) -> list[ReceivedSpan]:
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    spans = []
    for resource_spans in request.resource_spans:
        resource = {kv.key: _value(kv.value) for kv in resource_spans.resource.attributes}
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(ReceivedSpan(
                    service=resource.get("service.name", ""), name=span.name, trace_id=span.trace_id.hex(),
                    span_id=span.span_id.hex(), parent_id=span.parent_span_id.hex(), kind=span.kind,
                    start_ns=span.start_time_unix_nano, end_ns=span.end_time_unix_nano, status=span.status.code,
                    attributes={kv.key: _value(kv.value) for kv in span.attributes}))
    return spans


class OtlpReceiver:
    """`endpoint` is the base URL to give the services (AUGSERVE_OTLP_ENDPOINT)."""

    def __init__(self) -> None:
        self._spans: list[ReceivedSpan] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                if self.path != "/v1/traces":
                    self._answer(404, b"")
                    return
                try:
                    spans = decode(body)
                except Exception:  # noqa: BLE001 - a malformed export is the sender's bug: say so
                    self._answer(400, b"")
                    return
                with receiver._lock:
                    receiver._spans.extend(spans)
                self._answer(200, ExportTraceServiceResponse().SerializeToString())

            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        # Bound at once (port 0 is safe here: nothing else can take it between choice and bind).
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> OtlpReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def spans(self, trace_id: str | None = None) -> list[ReceivedSpan]:
        with self._lock:
            return [s for s in self._spans if trace_id is None or s.trace_id == trace_id]

    def wait_for(self, done: Callable[[list[ReceivedSpan]], bool], timeout_s: float, what: str,
                 trace_id: str | None = None) -> list[ReceivedSpan]:
        """The spans (of one trace) once `done` holds for them; fails after `timeout_s`. Services
        export in batches (every 5 s by default), so spans arrive some seconds after the fact."""
        deadline = time.monotonic() + timeout_s
        while True:
            spans = self.spans(trace_id)
            if done(spans):
                return spans
            if time.monotonic() > deadline:
                names = sorted(f"{s.service}: {s.name}" for s in spans)
                raise AssertionError(f"no {what} within {timeout_s:g}s; received: {names}")
            time.sleep(0.1)
