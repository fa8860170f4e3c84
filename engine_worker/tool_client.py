"""Sends API calls to the executor (Celery, by task name) and awaits their results by message.

Results never come through a Celery result backend: each task XADDs its ToolResult to this
worker's reply stream, and one reader task resolves the waiting futures. A call with no result
by its deadline resolves to an error result, so a lost or crashed call never hangs a request.
A call whose executor dies is run again by another one (api_executor.reclaim); of the results
that may then arrive for one call_id, only the first is taken.

A call adopted from a dead worker (same call_id, sent again) may also be answered on that worker's
reply stream, where the first run's result lands: `also_watch` polls it too. A result that comes
while no call awaits it (a worker restarted under its id finds what came while it was down) is
kept for a while, for the call that will ask for it again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, cast

import redis.asyncio as aioredis
from celery import Celery

from common import tracing
from common.names import CELERY_QUEUE, task_name, tool_result_stream
from common.redis_replies import StreamEntries, StreamsReply
from common.redis_retry import Backoff
from common.schemas import ToolCallTask, ToolResult
from engine_worker.segments import new_call_id

log = logging.getLogger(__name__)


ADOPTED_POLL_S = 0.25
"""How often an adopted call's result is looked for on the dead worker's reply stream."""


def _error_result(call_id: str, api: str, started_at: float, message: str) -> ToolResult:
    return ToolResult(
        call_id=call_id, api=api, ok=False, content=f"error: {message}", error=message,
        started_at=started_at, ended_at=time.time(),
    )


class ToolClient:
    def __init__(self, redis: aioredis.Redis, broker_url: str, worker_id: str, timeout_s: float):
        self._redis = redis
        self._reply_to = tool_result_stream(worker_id)
        self._timeout_s = timeout_s
        self._waiting: dict[str, asyncio.Future[ToolResult]] = {}
        self._unclaimed: dict[str, tuple[float, ToolResult]] = {}
        """Results nobody awaited when they came, by call_id, with when they came (kept timeout_s)."""
        self._celery = Celery("augserve-engine-client", broker=broker_url, set_as_current=False)
        self._celery.conf.update(
            task_serializer="json", accept_content=["json"], broker_connection_retry_on_startup=True,
            broker_transport_options={"visibility_timeout": 3600},
            # A call sent while Redis restarts waits for it (~20 s at most) rather than failing.
            task_publish_retry_policy={"max_retries": 15, "interval_start": 0.2, "interval_step": 0.5,
                                       "interval_max": 2.0},
        )

    @property
    def reply_to(self) -> str:
        return self._reply_to

    async def call(
        self, *, request_id: str, api: str, arguments: dict[str, Any], duration_s: float | None = None,
        return_tokens: int | None = None, traceparent: str | None = None, call_id: str | None = None,
        also_watch: str | None = None,
    ) -> ToolResult:
        """Sends the call and awaits its result. `also_watch`: another reply stream where the
        result may come (the dead worker's, for a call adopted from it); it is taken from there."""
        call_id = call_id or new_call_id()
        started_at = time.time()
        # The caller's span (the interception) is the parent of the executor's: in the task's
        # kwargs for its execute_tool span, in the message headers for Celery's own spans. Headers
        # are written here rather than by CeleryInstrumentor, whose publish span never ends for a
        # task sent by name that this process does not register (its after_task_publish handler
        # looks the task up and gives up).
        traceparent = tracing.current_traceparent() or traceparent
        task = ToolCallTask(
            call_id=call_id, request_id=request_id, api=api, arguments=arguments,
            duration_s=duration_s, return_tokens=return_tokens, reply_to=self._reply_to,
            traceparent=traceparent,
        )
        if also_watch and (landed := await self._take(also_watch, call_id)) is not None:
            return landed  # it came while nobody was reading: no need to ask again
        if (kept := self._unclaimed.pop(call_id, None)) is not None:
            return kept[1]
        future: asyncio.Future[ToolResult] = asyncio.get_running_loop().create_future()
        self._waiting[call_id] = future
        watcher = asyncio.create_task(self._watch(also_watch, call_id, future)) if also_watch else None
        try:
            await asyncio.to_thread(
                self._celery.send_task, task_name(api), kwargs=task.model_dump(mode="json"),
                queue=CELERY_QUEUE, headers=tracing.inject_headers({}),
            )
            return await asyncio.wait_for(future, self._timeout_s)
        except asyncio.TimeoutError:
            return _error_result(call_id, api, started_at, f"{api} call timed out after {self._timeout_s:.0f}s")
        except Exception as exc:  # broker down, serialization: the model sees an error result
            log.exception("sending %s call failed", api)
            return _error_result(call_id, api, started_at, f"{api} call could not be sent: {exc}")
        finally:
            self._waiting.pop(call_id, None)
            if watcher is not None:
                watcher.cancel()

    async def _watch(self, stream: str, call_id: str, future: asyncio.Future[ToolResult]) -> None:
        """Polls `stream` (nobody else reads it) until the result of `call_id` is there."""
        while not future.done():
            try:
                result = await self._take(stream, call_id)
            except (aioredis.ConnectionError, aioredis.TimeoutError) as exc:
                log.warning("could not read %s for call %s: %s", stream, call_id, exc)
                result = None
            if result is not None:
                if not future.done():
                    future.set_result(result)
                return
            await asyncio.sleep(ADOPTED_POLL_S)

    async def _take(self, stream: str, call_id: str) -> ToolResult | None:
        """The result of `call_id` on `stream`, removed from it; None if it is not there."""
        for entry_id, fields in cast(StreamEntries, await self._redis.xrange(stream)):
            result = _parse_result(fields)
            if result is not None and result.call_id == call_id:
                await self._redis.xdel(stream, entry_id)
                return result
        return None

    async def read_results(self) -> None:
        """Runs for the worker's lifetime: delivers every result on the reply stream."""
        last_id = "0"
        backoff = Backoff()
        while True:
            try:
                batches = cast(StreamsReply, await self._redis.xread({self._reply_to: last_id}, block=1000, count=100))
            except (aioredis.ConnectionError, aioredis.TimeoutError) as exc:
                delay = backoff.next_delay()
                log.warning("reply stream read failed (%s); retry %d in %.1fs", exc, backoff.failures, delay)
                await asyncio.sleep(delay)
                continue
            if backoff.failures:
                log.info("reply stream readable again after %d retries", backoff.failures)
                backoff.reset()
            for _stream, entries in batches or []:
                for entry_id, fields in entries:
                    last_id = entry_id
                    self._deliver(fields)
                try:
                    await self._redis.xdel(self._reply_to, *[e for e, _ in entries])
                except (aioredis.ConnectionError, aioredis.TimeoutError):
                    # Read past them already (last_id): left behind, they are only stale entries.
                    log.warning("could not trim the reply stream; continuing")

    def _deliver(self, fields: dict) -> None:
        result = _parse_result(fields)
        if result is None:
            return
        # Exactly one result per call reaches its request: the first. A second one (the same call
        # run again after its executor died, should delivery's own once-per-call_id guard ever be
        # bypassed) or one after the call's deadline finds no waiting future and is dropped.
        future = self._waiting.get(result.call_id)
        if future is not None and not future.done():
            future.set_result(result)
            return
        # Not taken by a waiting call: answered already, past its deadline, or come while this
        # worker was down. Kept a while for a call adopted under the same id that asks again.
        log.info("dropped a result of call %s: no call waits for it (answered already, or past its deadline); "
                 "kept a while only for a call adopted under the same id", result.call_id)
        now = time.monotonic()
        self._unclaimed = {k: v for k, v in self._unclaimed.items() if now - v[0] < self._timeout_s}
        self._unclaimed[result.call_id] = (now, result)


def _parse_result(fields: dict) -> ToolResult | None:
    raw = fields.get(b"result") or fields.get("result")
    try:
        return ToolResult.model_validate_json(raw)  # type: ignore[arg-type]  # None fails as malformed
    except Exception:
        log.exception("malformed tool result dropped: %r", raw)
        return None
