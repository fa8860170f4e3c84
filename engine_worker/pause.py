"""A request paused at an API call: the call sent, the pause registered with the policy.

The session owns its pause from start to end and reads it top to bottom (session._await_call):

    async with pauses.hold(request, call, context_tokens) as pause:
        strategy = await pause.release_or_result()   # the policy's release, if it comes first
        if strategy is not None:
            ...end the vLLM request (discard, or swap)...
            pause.kv_released()
        result = await pause.result()
    pause.report()                                   # what the policy weighed, for the record

`Pauses` is the mechanism beside it: it sends the call to the executor (tool_client), puts the
request among the InterceptController's paused ones for the time of the call (the one list of
them: the batch's running context leaves them out), and keeps their Prometheus gauges. The
controller only decides; the session alone touches its vLLM request.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from common.schemas import EngineRequest, Strategy, ToolResult
from engine_worker import metrics
from engine_worker.intercept_controller import InterceptController, Paused
from engine_worker.segments import CallApi
from engine_worker.tool_client import ToolClient


@dataclass(frozen=True)
class PauseReport:
    """What the handling policy predicted and weighed for one pause (byte-seconds)."""

    predicted_s: float = 0.0
    waste_preserve: float = 0.0
    waste_discard: float = 0.0
    waste_swap: float = 0.0
    held_kv_byte_seconds: float = 0.0
    swapped_bytes: int = 0


class CallPause:
    """One pause: the call running in the executor, and the policy's entry for the request."""

    def __init__(self, entry: Paused, call_task: asyncio.Task[ToolResult], kv_bytes_per_token: int,
                 published: Pauses):
        self._entry = entry
        self._call_task = call_task
        self._kv_bytes_per_token = kv_bytes_per_token
        self._pauses = published
        self._paused_at = time.monotonic()
        self._held_s: float | None = None
        """Seconds the KV stayed in the pool: until its release, else the whole pause."""

    async def release_or_result(self) -> Strategy | None:
        """Waits for the first of the call's result and the policy's release of the KV: the
        strategy (DISCARD or SWAP) when the release comes while the call still runs, else None."""
        released = asyncio.create_task(self._entry.release.wait())
        try:
            done, _ = await asyncio.wait({self._call_task, released}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            released.cancel()
        if released in done and not self._call_task.done():
            return self._entry.released_as
        return None

    def kv_released(self) -> None:
        """The session has ended its vLLM request: the KV left the pool now."""
        self._held_s = time.monotonic() - self._paused_at
        self._pauses.publish()

    async def result(self) -> ToolResult:
        return await self._call_task

    def report(self) -> PauseReport:
        held_s = time.monotonic() - self._paused_at if self._held_s is None else self._held_s
        context_bytes = self._entry.context_tokens * self._kv_bytes_per_token
        d = self._entry.decision
        return PauseReport(self._entry.predicted_s, d.waste_preserve if d else 0.0, d.waste_discard if d else 0.0,
                           d.waste_swap if d else 0.0, held_s * context_bytes, swapped_bytes=context_bytes)


class Pauses:
    """The worker's paused requests: each one's call sent and its entry with the controller."""

    def __init__(self, controller: InterceptController, tools: ToolClient, kv_bytes_per_token: int, worker_id: str):
        self._controller = controller
        self._tools = tools
        self._kv_bytes_per_token = kv_bytes_per_token
        self._worker_id = worker_id

    def __len__(self) -> int:
        return self._controller.paused_count()

    def __contains__(self, request_id: str) -> bool:
        return self._controller.is_paused(request_id)

    @asynccontextmanager
    async def hold(self, request: EngineRequest, call: CallApi, context_tokens: int, *, call_id: str | None = None,
                   also_watch: str | None = None) -> AsyncIterator[CallPause]:
        """Pauses the request for the call: sent at once, the policy deciding on its KV meanwhile.
        `also_watch`: the dead worker's reply stream, for a call adopted from it. On leaving,
        however the pause ended (a cancelled session's call runs on to its result or deadline),
        the request is no longer paused."""
        rid = request.request_id
        entry = self._controller.pause(rid, call.api, context_tokens, call.duration_s)
        self.publish()
        call_task = asyncio.create_task(self._tools.call(
            request_id=rid, api=call.api, arguments=call.arguments, duration_s=call.duration_s,
            return_tokens=call.return_tokens, traceparent=request.traceparent, call_id=call_id,
            also_watch=also_watch))
        try:
            yield CallPause(entry, call_task, self._kv_bytes_per_token, self)
        finally:
            self._controller.resume(entry)
            self.publish()

    def publish(self) -> None:
        """The paused-request gauges, by how each holds its KV."""
        for strategy, count in self._controller.counts().items():
            metrics.paused_requests.labels(self._worker_id, strategy).set(count)
