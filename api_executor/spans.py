"""The executor's span of one API call: `execute_tool {tool}` (OpenTelemetry GenAI conventions).

Its parent is the engine worker's interception span, named by the call's own traceparent
(ToolCallTask.traceparent), not by the Celery message that happens to finish the call: a call
can span several messages (a retried http call, a stand-in's scheduled deliveries), and the span
covers all of it, from the first start to the delivered result. Celery's own spans (run/api.*,
from CeleryInstrumentor, set up in celery_app) hang off the message headers beside it.
"""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from common import tracing
from common.schemas import ToolCallTask

tracer = trace.get_tracer("augserve.api_executor")

TOOL_TYPES = {"qa": "datastore"}
"""gen_ai.tool.type per API kind; the others call an API on the server's side: "extension"."""


def tool_name(kind: str, call: ToolCallTask) -> str:
    """The tool the model called: an operator-registered HTTP endpoint's own name, else the kind."""
    endpoint = call.arguments.get("endpoint") if kind == "http" else None
    return endpoint if isinstance(endpoint, str) and endpoint else kind


def record_call(kind: str, call: ToolCallTask, outcome: str, content: str, started_at: float, ended_at: float) -> None:
    """One finished call (delivered result) as a span, after the fact: its times are the call's."""
    name = tool_name(kind, call)
    span = tracer.start_span(
        f"execute_tool {name}", context=tracing.context_of(call.traceparent), start_time=tracing.ns(started_at),
        attributes={
            "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": name, "gen_ai.tool.call.id": call.call_id,
            "gen_ai.tool.type": TOOL_TYPES.get(kind, "extension"), "augserve.api": kind,
            "augserve.request_id": call.request_id, "augserve.outcome": outcome,
            "augserve.duration_s": max(0.0, ended_at - started_at),
        })
    if outcome != "ok":
        span.set_attribute("error.type", outcome)
        span.set_status(Status(StatusCode.ERROR, content[:200]))
    span.end(end_time=tracing.ns(max(ended_at, started_at)))
