"""A request whose client has gone is not worth finishing: race the work against the disconnect.

Starlette cancels a streaming body once its client leaves, but nothing watches a request before
its response starts: a non-streaming one, or a stream still waiting for its first event, would
hold its engine slot until it ended or timed out. `unless_disconnected` cancels the work when
the ASGI server reports `http.disconnect`; the engine reader's cleanup (gateway/engine.py) then
marks the request cancelled, and its worker aborts it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import TypeVar

from fastapi import Request

from gateway.errors import ApiError

T = TypeVar("T")


async def disconnected(request: Request) -> None:
    """Returns once the client has gone. Only after the body has been read: until then receive()
    hands out body chunks."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def unless_disconnected(request: Request, work: Awaitable[T]) -> T:
    task = asyncio.ensure_future(work)
    watch = asyncio.ensure_future(disconnected(request))
    try:
        await asyncio.wait({task, watch}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for pending in (task, watch):
            if not pending.done():
                pending.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await pending
    if task.cancelled():
        # nginx's 499: no one reads it, but the access log and the metrics say what happened.
        raise ApiError(499, "the client closed the connection before the response", code="client_disconnected")
    return task.result()
