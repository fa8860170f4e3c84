"""Relays one request's engine events to the client: a JSON body, or Server-Sent Events.

A streaming request still gets a real HTTP status for what goes wrong before its first event
(engine error, timeout): the response starts only once that first event is in. Later failures
arrive as an SSE `data: {"error": ...}` line, which the openai client raises as APIError.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi.responses import JSONResponse, StreamingResponse

from common.schemas import DeltaEvent, ErrorEvent, FinalEvent, OutputEvent
from gateway import metrics
from gateway.errors import ApiError, error_body
from gateway.responses import Exchange, ResponseFormat

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def _sse(payload: dict[str, Any] | str) -> str:
    data = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    return f"data: {data}\n\n"


async def _timed(events: AsyncIterator[OutputEvent], started: float) -> AsyncIterator[OutputEvent]:
    """Records time to first token (the first event carrying generated tokens) and, at the final
    event, the latencies per generated token with the time paused at API calls taken out."""
    first_at = None
    async for event in events:
        if first_at is None and (isinstance(event, DeltaEvent) or (isinstance(event, FinalEvent) and event.token_ids)):
            first_at = time.perf_counter()
            metrics.TTFT.observe(first_at - started)
        if isinstance(event, FinalEvent):
            _observe_per_token(event, started, first_at)
        yield event


def _observe_per_token(final: FinalEvent, started: float, first_at: float | None) -> None:
    tokens = final.usage.completion_tokens
    api_s = sum(r.duration_s for r in final.interceptions)
    now = time.perf_counter()
    if tokens > 0:
        metrics.NORMALIZED_LATENCY.observe(max(0.0, now - started - api_s) / tokens)
    if tokens > 1 and first_at is not None:
        # Calls made before the first token are in TTFT, not here.
        after_first = sum(r.duration_s for r in final.interceptions if r.started_at >= time.time() - (now - first_at))
        metrics.TPOT.observe(max(0.0, now - first_at - after_first) / (tokens - 1))


def _raise(event: ErrorEvent) -> None:
    status = event.status if 400 <= event.status <= 599 else 502
    raise ApiError(status, event.message, code=event.code)


async def respond(events: AsyncIterator[OutputEvent], fmt: ResponseFormat, ex: Exchange, *, stream: bool,
                  include_usage: bool, started: float) -> JSONResponse | StreamingResponse:
    events = _timed(events, started)
    if not stream:
        async for event in events:
            if isinstance(event, FinalEvent):
                return JSONResponse(fmt.response(ex, event))
            if isinstance(event, ErrorEvent):
                _raise(event)
        raise ApiError(502, "the engine's output ended without a final event", code="bad_engine_event")
    first = await anext(events, None)
    if first is None:
        raise ApiError(502, "the engine's output ended without a final event", code="bad_engine_event")
    if isinstance(first, ErrorEvent):
        _raise(first)
    return StreamingResponse(_stream(first, events, fmt, ex, include_usage), media_type="text/event-stream",
                             headers=SSE_HEADERS)


async def _stream(first: OutputEvent, rest: AsyncIterator[OutputEvent], fmt: ResponseFormat, ex: Exchange,
                  include_usage: bool) -> AsyncIterator[str]:
    opening = fmt.first_chunk(ex)
    if opening is not None:
        yield _sse(opening)
    event: OutputEvent | None = first
    try:
        while event is not None:
            if isinstance(event, DeltaEvent) and event.text:
                yield _sse(fmt.delta_chunk(ex, event.text))
            elif isinstance(event, FinalEvent):
                yield _sse(fmt.finish_chunk(ex, event))
                if include_usage:
                    yield _sse(fmt.usage_chunk(ex, event))
                break
            elif isinstance(event, ErrorEvent):
                yield _sse(error_body(event.status, event.message, code=event.code))
                break
            # InterceptionEvents need no chunk: the finish chunk lists every interception.
            event = await anext(rest, None)
        else:
            yield _sse(error_body(502, "the engine's output ended without a final event", code="bad_engine_event"))
    except ApiError as exc:
        yield _sse(exc.body())
    yield _sse("[DONE]")
