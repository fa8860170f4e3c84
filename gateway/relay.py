"""Relays one request's engine events to the client: a JSON body, or Server-Sent Events.

A streaming request still gets a real HTTP status for what goes wrong before its first event
(engine error, timeout): the response starts only once that first event is in. Later failures
arrive as an SSE `data: {"error": ...}` line, which the openai client raises as APIError.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncGenerator, AsyncIterator
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


async def _final_of(events: AsyncIterator[OutputEvent]) -> FinalEvent:
    async for event in events:
        if isinstance(event, FinalEvent):
            return event
        if isinstance(event, ErrorEvent):
            _raise(event)
    raise ApiError(502, "the engine's output ended without a final event", code="bad_engine_event")


async def _merged(choices: list[AsyncIterator[OutputEvent]]) -> AsyncGenerator[tuple[int, OutputEvent | None], None]:
    """The choices' events as they come, tagged with the choice index; (i, None) when choice i's
    events end. One choice alone is read directly; n are read by one task each."""
    if len(choices) == 1:
        async for event in choices[0]:
            yield 0, event
        yield 0, None
        return
    queue: asyncio.Queue[tuple[int, OutputEvent | None | BaseException]] = asyncio.Queue()

    async def pump(index: int, events: AsyncIterator[OutputEvent]) -> None:
        try:
            async for event in events:
                await queue.put((index, event))
            await queue.put((index, None))
        except Exception as exc:  # an ApiError (timeout, Redis) reaches the client through the queue
            await queue.put((index, exc))

    tasks = [asyncio.create_task(pump(i, events)) for i, events in enumerate(choices)]
    try:
        for _ in range(len(choices)):
            while True:
                index, item = await queue.get()
                if isinstance(item, BaseException):
                    raise item
                yield index, item
                if item is None:
                    break
    finally:
        for task in tasks:
            task.cancel()


async def respond(choices: list[AsyncIterator[OutputEvent]], fmt: ResponseFormat, ex: Exchange, *, stream: bool,
                  include_usage: bool, started: float) -> JSONResponse | StreamingResponse:
    """`choices`: the events of each choice's engine request (n of them for n choices)."""
    choices = [_timed(choices[0], started), *choices[1:]]  # the metrics time the first choice
    if not stream:
        if len(choices) == 1:
            return JSONResponse(fmt.response(ex, [await _final_of(choices[0])]))
        try:
            async with asyncio.TaskGroup() as group:  # one failing choice fails the request, the rest cancelled
                tasks = [group.create_task(_final_of(events)) for events in choices]
        except ExceptionGroup as failed:
            raise failed.exceptions[0] from None
        return JSONResponse(fmt.response(ex, [t.result() for t in tasks]))
    merged = _merged(choices)
    first = await anext(merged)
    if first[1] is None:
        raise ApiError(502, "the engine's output ended without a final event", code="bad_engine_event")
    if isinstance(first[1], ErrorEvent):
        _raise(first[1])
    return StreamingResponse(_stream(first, merged, fmt, ex, len(choices), include_usage),
                             media_type="text/event-stream", headers=SSE_HEADERS)


async def _stream(first: tuple[int, OutputEvent | None], rest: AsyncGenerator[tuple[int, OutputEvent | None], None],
                  fmt: ResponseFormat, ex: Exchange, n: int, include_usage: bool) -> AsyncIterator[str]:
    for index in range(n):
        opening = fmt.first_chunk(ex, index)
        if opening is not None:
            yield _sse(opening)
    finals: dict[int, FinalEvent] = {}
    sent = [0] * n
    """Text sent per choice (the completions logprobs' text_offset)."""
    item: tuple[int, OutputEvent | None] | None = first
    try:
        while item is not None:
            index, event = item
            if isinstance(event, DeltaEvent) and (event.text or event.logprobs):
                yield _sse(fmt.delta_chunk(ex, index, event, sent[index]))
                sent[index] += len(event.text)
            elif isinstance(event, FinalEvent):
                finals[index] = event
                yield _sse(fmt.finish_chunk(ex, index, event))
                if len(finals) == n:
                    if include_usage:
                        yield _sse(fmt.usage_chunk(ex, [finals[i] for i in range(n)]))
                    break
            elif isinstance(event, ErrorEvent):
                yield _sse(error_body(event.status, event.message, code=event.code))
                break
            elif event is None and index not in finals:
                yield _sse(error_body(502, "the engine's output ended without a final event", code="bad_engine_event"))
                break
            # InterceptionEvents need no chunk: the finish chunk lists every interception.
            item = await anext(rest, None)
        else:
            yield _sse(error_body(502, "the engine's output ended without a final event", code="bad_engine_event"))
    except ApiError as exc:
        yield _sse(exc.body())
    finally:
        await rest.aclose()
    yield _sse("[DONE]")
