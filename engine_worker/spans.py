"""The engine worker's spans (OpenTelemetry API only; common.tracing installs the SDK).

    <gateway span>                            from EngineRequest.traceparent
      queue wait                              gateway's arrival -> a worker takes it off the stream
      text_completion {model}                 the request on this worker
        segment                               one stretch of generation, prefill included
        interception {api}                    one paused API call (+ its resume after a discard or swap)
          kv discard | kv swap                the policy released the KV blocks (swap: copied to host first)
          kv swap-out, kv swap-in             the connector's copies, with bytes and seconds (a swap)
          kv recompute                        the context re-submitted after a discard or swap
          execute_tool {api}                  the call itself, in the executor (api_executor.runner)

Names follow the OpenTelemetry GenAI conventions where they have one (gen_ai.*); ours are
augserve.*. The session and the worker call these at span boundaries only: mechanism, no policy.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import Token
from dataclasses import dataclass

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from common import tracing
from common.schemas import EngineRequest, FinalEvent, InterceptionRecord, Strategy

tracer = trace.get_tracer("augserve.engine_worker")


@dataclass
class _Worker:
    worker_id: str = ""
    policy: str = ""
    kv_bytes_per_token: float = 0.0


WORKER = _Worker()
"""One worker per process (as engine_stats.LATEST): set once by configure()."""


def configure(worker_id: str, policy: str, kv_bytes_per_token: float) -> None:
    WORKER.worker_id, WORKER.policy, WORKER.kv_bytes_per_token = worker_id, policy, kv_bytes_per_token


class RequestTrace:
    """The span of one request on this worker. `begin` makes it current in the calling task (the
    task serving the request), so the session's spans and the tasks it creates (the API calls,
    which copy the context) are its children; `end` restores the task's context."""

    def __init__(self, span: Span, token: Token[Context]):
        self.span = span
        self._token = token

    @classmethod
    def begin(cls, request: EngineRequest) -> RequestTrace:
        parent = tracing.context_of(request.traceparent)
        tracer.start_span("queue wait", context=parent, start_time=tracing.ns(request.arrival_time),
                          attributes={"augserve.worker": WORKER.worker_id}).end()
        s = request.sampling
        attributes: dict[str, AttributeValue] = {
            "gen_ai.operation.name": "text_completion", "gen_ai.request.model": request.model,
            "gen_ai.response.id": request.request_id, "gen_ai.request.max_tokens": s.max_tokens,
            "gen_ai.request.temperature": s.temperature, "gen_ai.request.top_p": s.top_p,
            "augserve.request_id": request.request_id, "augserve.worker": WORKER.worker_id,
            "augserve.policy": WORKER.policy, "augserve.prompt_tokens": len(request.prompt_token_ids),
            "augserve.scripted": request.plan is not None,
        }
        if s.seed is not None:
            attributes["gen_ai.request.seed"] = s.seed
        if request.program_id:
            attributes["augserve.program_id"] = request.program_id
        span = tracer.start_span(f"text_completion {request.model}", context=parent, attributes=attributes)
        return cls(span, otel_context.attach(trace.set_span_in_context(span)))

    def finish(self, final: FinalEvent) -> None:
        self.span.set_attributes({
            "gen_ai.response.finish_reasons": [final.finish_reason],
            "gen_ai.usage.input_tokens": final.usage.prompt_tokens,
            "gen_ai.usage.output_tokens": final.usage.completion_tokens,
            "augserve.interceptions": len(final.interceptions),
        })

    def fail(self, exc: BaseException) -> None:
        self.span.record_exception(exc)
        self.span.set_status(Status(StatusCode.ERROR, str(exc)))

    def end(self) -> None:
        otel_context.detach(self._token)
        self.span.end()


class SessionSpans:
    """Segment and interception spans of one RequestSession (children of the current span)."""

    def __init__(self) -> None:
        self._segment: Span | None = None
        self._interception: Span | None = None
        self._token: Token[Context] | None = None
        self._awaiting_recompute: Span | None = None
        """A discarded interception's span stays open until its context is recomputed."""

    def segment_started(self, index: int, prefill_tokens: int) -> None:
        self._end_segment()
        self._segment = tracer.start_span("segment", attributes={
            "augserve.segment.index": index, "augserve.segment.prefill_tokens": prefill_tokens})

    def segment_ended(self, generated_tokens: int, finish_reason: str) -> None:
        if self._segment is not None:
            self._segment.set_attributes({"gen_ai.usage.output_tokens": generated_tokens,
                                          "augserve.segment.finish_reason": str(finish_reason)})
        self._end_segment()

    def _end_segment(self) -> None:
        if self._segment is not None:
            self._segment.end()
            self._segment = None

    def interception_started(self, api: str) -> None:
        """Current until interception_ended: the API call's task inherits it as its parent."""
        self._end_awaiting_recompute()
        self._interception = tracer.start_span(f"interception {api}", attributes={
            "gen_ai.tool.name": api, "augserve.api": api})
        self._token = otel_context.attach(trace.set_span_in_context(self._interception))

    def interception_ended(self, record: InterceptionRecord) -> None:
        span = self._interception
        if span is None:
            return
        span.set_attributes({
            "gen_ai.tool.call.id": record.call_id, "augserve.strategy": record.strategy,
            "augserve.waste.preserve": record.waste_preserve, "augserve.waste.discard": record.waste_discard,
            "augserve.waste.swap": record.waste_swap, "augserve.predicted_duration_s": record.predicted_duration_s,
            "augserve.duration_s": record.duration_s, "augserve.held_kv_byte_seconds": record.held_kv_byte_seconds,
            "augserve.context_tokens": record.context_tokens, "augserve.returned_tokens": record.returned_tokens,
            "augserve.ok": record.ok,
        })
        if record.error:
            span.set_attribute("error.type", "tool_error")
        otel_context.detach(self._token)  # type: ignore[arg-type]  # set with the interception span
        self._interception, self._token = None, None
        if record.strategy in (Strategy.DISCARD, Strategy.SWAP):
            self._awaiting_recompute = span
        else:
            span.end()

    @contextmanager
    def kv_release(self, strategy: Strategy, context_tokens: int) -> Iterator[None]:
        """The policy released a paused request's KV blocks (a child of its interception)."""
        with tracer.start_as_current_span(f"kv {strategy}", attributes={
                "augserve.kv.tokens": context_tokens,
                "augserve.kv.bytes": int(context_tokens * WORKER.kv_bytes_per_token)}):
            yield

    def swapped(self, out_s: float, in_s: float, nbytes: int) -> None:
        """The connector's copies of a swapped context, as it measured them (spans placed just
        before now: their exact times are in the engine-core process)."""
        span = self._awaiting_recompute
        if span is None:
            return
        parent = trace.set_span_in_context(span)
        for name, seconds in (("kv swap-out", out_s), ("kv swap-in", in_s)):
            tracer.start_span(name, context=parent, start_time=tracing.ago_ns(seconds), attributes={
                "augserve.kv.bytes": nbytes, "augserve.swap_s": seconds}).end()
        span.set_attributes({"augserve.swapped_bytes": nbytes, "augserve.swap_out_s": out_s,
                             "augserve.swap_in_s": in_s})

    def recomputed(self, prompt_tokens: int, cached_tokens: int, recomputed: int, seconds: float) -> None:
        """The discarded context was prefilled again: `seconds` from re-submitting it to its first
        output token; `recomputed` of its tokens computed again (common.recompute: prefix-cache
        hits and the tokens every resume computes excluded)."""
        span = self._awaiting_recompute
        if span is None:
            return
        attributes = {"augserve.recomputed_tokens": recomputed, "augserve.recompute_s": seconds}
        tracer.start_span("kv recompute", context=trace.set_span_in_context(span), start_time=tracing.ago_ns(seconds),
                          attributes={**attributes, "augserve.kv.tokens": prompt_tokens,
                                      "gen_ai.usage.cache_read.input_tokens": cached_tokens,
                                      "augserve.kv.bytes": int(recomputed * WORKER.kv_bytes_per_token)}).end()
        span.set_attributes(attributes)
        self._end_awaiting_recompute()

    def _end_awaiting_recompute(self) -> None:
        if self._awaiting_recompute is not None:
            self._awaiting_recompute.end()
            self._awaiting_recompute = None

    def close(self) -> None:
        """The request is over: ends whatever is still open."""
        self._end_segment()
        self._end_awaiting_recompute()
