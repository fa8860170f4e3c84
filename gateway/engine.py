"""The gateway's side of the engine protocol: submit an EngineRequest, read its output events.

Requests go onto ENGINE_REQUEST_STREAM (engine workers pull them through a consumer group, so load
balances by pull), or, with program-affinity routing, onto the own stream of the worker holding the
request's program (gateway/routing.py). A request's events come back on output_stream(request_id), one field `event`
holding an OutputEnvelope; the stream is read from its start, so events written before the gateway
starts reading are never missed, and deleted once the request is over. A request whose client
goes away before its end (disconnect, timeout) is marked cancelled, and its worker aborts it.

A Redis restart is ridden out (common.redis_retry, logged): a submit retries for `submit_retry_s`,
a reader resumes from the last event it saw (Redis persists the stream, and the worker retries
its writes) for up to `outage_s`, then fails the request with a 503; never past its own deadline
(GatewaySettings.redis_submit_retry_s, redis_outage_s).

A request whose engine worker dies is continued by another (engine_worker/checkpoint.py), on the
same output stream: the reader notices nothing. Only when no worker is alive for
`no_worker_grace_s` does it fail, with a 503 saying so.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import cast

from pydantic import ValidationError
from redis.asyncio import Redis
from redis.exceptions import MaxConnectionsError, RedisError

from common.names import OUTPUT_STREAM_TTL_S, WORKER_STREAMS_SET, cancelled_request, output_stream
from common.redis_replies import StreamsReply
from common.redis_retry import OUTAGE_ERRORS, Backoff, retry_async
from common.schemas import EngineRequest, ErrorEvent, FinalEvent, OutputEnvelope, OutputEvent
from gateway.errors import ApiError
from gateway.metrics import ROUTED
from gateway.routing import Router

log = logging.getLogger(__name__)

READ_BATCH = 256
MAX_BLOCK_S = 1.0


class EngineClient:
    def __init__(self, redis: Redis, router: Router, submit_retry_s: float = 10.0, outage_s: float = 30.0,
                 no_worker_grace_s: float = 5.0) -> None:
        self.redis = redis
        self.router = router
        self.submit_retry_s = submit_retry_s
        self.outage_s = outage_s
        self.no_worker_grace_s = no_worker_grace_s
        self._cleanups: set[asyncio.Task] = set()

    async def submit(self, request: EngineRequest) -> None:
        try:
            await retry_async(lambda: self._submit(request), f"submitting {request.request_id}", log,
                              give_up_s=self.submit_retry_s)
        except RedisError as exc:
            raise ApiError(503, f"the engine queue is unavailable: {exc}", code="engine_unavailable") from exc

    async def _submit(self, request: EngineRequest) -> None:
        """One try: a retry places again, then adds (an xadd that failed added nothing, bar a reply lost
        after the write: common.redis_retry)."""
        placement = await self.router.place(request.program_id)
        if placement.decision and placement.decision.worker_id:
            # Registered with the entry, atomically: should the worker die before reading its
            # stream, the others find the stream in the registry and adopt the entry.
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.sadd(WORKER_STREAMS_SET, placement.decision.worker_id)
                pipe.xadd(placement.stream, {"request": request.model_dump_json()})
                await pipe.execute()
        else:
            await self.redis.xadd(placement.stream, {"request": request.model_dump_json()})
        ROUTED.labels(route=placement.route, reason=placement.reason).inc()

    async def events(self, request_id: str, timeout_s: float) -> AsyncIterator[OutputEvent]:
        """Yields the request's events up to and including its FinalEvent or ErrorEvent.

        Raises ApiError 504 when that last event has not come within `timeout_s` of the call.
        """
        key = output_stream(request_id)
        deadline = time.monotonic() + timeout_s
        last_id = "0-0"
        finished = False
        backoff = Backoff(first_s=0.2, cap_s=2.0)
        outage_since: float | None = None
        alive_at = time.monotonic()
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ApiError(504, f"no response from the engine within {timeout_s:g}s (request {request_id})",
                                   code="timeout")
                try:
                    # Short blocks in a loop: redis-py's socket timeout must never cut a read.
                    reply = cast(StreamsReply, await self.redis.xread(
                        {key: last_id}, count=READ_BATCH, block=max(1, int(min(remaining, MAX_BLOCK_S) * 1000))))
                except MaxConnectionsError as exc:
                    raise ApiError(503, "the gateway is at its limit of concurrent requests "
                                        "(AUGSERVE_REDIS_MAX_CONNECTIONS)", code="gateway_overloaded") from exc
                except OUTAGE_ERRORS as exc:
                    outage_since = time.monotonic() if outage_since is None else outage_since
                    if time.monotonic() - outage_since >= self.outage_s:
                        backoff.give_up()
                        raise ApiError(503, "lost the engine's output stream: "
                                            f"Redis unavailable for {self.outage_s:g}s ({exc})",
                                       code="engine_unavailable") from exc
                    delay = min(backoff.next_delay(), max(0.0, deadline - time.monotonic()))
                    log.warning("request %s: output stream unreadable (%s), retry %d in %.1fs",
                                request_id, exc, backoff.failures, delay)
                    await asyncio.sleep(delay)
                    continue
                except RedisError as exc:
                    raise ApiError(503, f"lost the engine's output stream: {exc}", code="engine_unavailable") from exc
                if outage_since is not None:
                    log.info("request %s: output stream readable again", request_id)
                    outage_since = None
                    backoff.reset()
                if not reply:
                    alive_at = await self._check_workers(request_id, alive_at)
                for _stream, entries in reply or []:
                    for entry_id, fields in entries:
                        last_id = entry_id
                        event = _parse(request_id, entry_id, fields)
                        if isinstance(event, (FinalEvent, ErrorEvent)):
                            finished = True
                            await self._delete(key)
                            yield event
                            return
                        yield event
        finally:
            if not finished:
                # Timed out, failed or abandoned by the client: tell the worker to stop, and drop
                # the stream. In the background: a cancelled task may not await here.
                task = asyncio.get_running_loop().create_task(self._abandon(request_id))
                self._cleanups.add(task)
                task.add_done_callback(self._cleanups.discard)

    async def _check_workers(self, request_id: str, alive_at: float) -> float:
        """When some worker was last seen alive; a 503 once none has been for no_worker_grace_s."""
        try:
            if await self.router.any_worker_alive():
                return time.monotonic()
        except RedisError:
            return alive_at  # the read above will tell an outage
        if time.monotonic() - alive_at >= self.no_worker_grace_s:
            raise ApiError(503, f"no engine worker is alive to serve request {request_id}", code="no_engine_worker")
        return alive_at

    async def _abandon(self, request_id: str) -> None:
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.set(cancelled_request(request_id), 1, ex=OUTPUT_STREAM_TTL_S)
                pipe.delete(output_stream(request_id))
                await pipe.execute()
        except RedisError:
            log.warning("could not cancel request %s (its worker finishes it for no one)", request_id)

    async def _delete(self, key: str) -> None:
        try:
            await self.redis.delete(key)
        except RedisError:
            log.warning("could not delete %s (it expires on its own)", key)


def _parse(request_id: str, entry_id: str, fields: dict[str, str]) -> OutputEvent:
    try:
        return OutputEnvelope.model_validate_json(fields["event"]).event
    except (KeyError, ValidationError) as exc:
        log.error("malformed output event %s of %s: %s", entry_id, request_id, exc)
        raise ApiError(502, f"the engine sent a malformed event for request {request_id}",
                       code="bad_engine_event") from exc
