"""Riding out a Redis outage (a restart, a blip): bounded exponential backoff, logged.

redis-py reconnects by itself on the next command once the server is back; what it does not do is
wait for that. These helpers retry one operation on connection-level errors only (ConnectionError,
TimeoutError: the server went away or did not answer) for at most `give_up_s`, then re-raise, so
a caller always ends: a request fails with a clear error rather than hang. Command errors
(ResponseError: NOGROUP, WRONGTYPE, ...) are never retried here; callers that can repair them
(recreate a consumer group) do so themselves.

Every outage a retry rides out ends as `recovered` or `gave_up`; each service counts those in its
own metrics module (`*_redis_reconnects_total`) through `on_outage_end`: this shared module
imports no Prometheus.

A retried write may be applied twice if the server applied it and died before answering; the
callers accept that (an output event delivered twice is rarer than one lost in every outage).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Literal, TypeVar

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

T = TypeVar("T")

OUTAGE_ERRORS: tuple[type[Exception], ...] = (RedisConnectionError, RedisTimeoutError, ConnectionError)
"""What a Redis server that is down or restarting looks like to a client (redis-py wraps socket
errors in its own; the builtin ConnectionError covers a reset it did not wrap)."""

GIVE_UP_S = 30.0
"""Default bound on one operation's retries: a restart takes seconds; past this it is an outage
the caller must report, not wait out."""


OutageOutcome = Literal["recovered", "gave_up"]
OUTAGE_OUTCOMES: tuple[OutageOutcome, ...] = ("recovered", "gave_up")
_outage_observers: list[Callable[[OutageOutcome], None]] = []


def on_outage_end(observer: Callable[[OutageOutcome], None]) -> None:
    """Calls observer(outcome) each time an operation or read loop that lost Redis gets through
    (`recovered`) or stops retrying (`gave_up`). Observers must be quick and must not raise."""
    _outage_observers.append(observer)


def _outage_ended(outcome: OutageOutcome) -> None:
    for observer in _outage_observers:
        observer(outcome)


class Backoff:
    """Delays of first_s, 2*first_s, ... capped at cap_s. reset() after a success (which reports
    an outage ridden out, if there was one), give_up() when the caller stops retrying."""

    def __init__(self, first_s: float = 0.1, cap_s: float = 2.0) -> None:
        if not 0 < first_s <= cap_s:
            raise ValueError("need 0 < first_s <= cap_s")
        self.first_s, self.cap_s = first_s, cap_s
        self._next = first_s
        self.failures = 0

    def next_delay(self) -> float:
        delay = self._next
        self._next = min(self.cap_s, self._next * 2)
        self.failures += 1
        return delay

    def reset(self) -> None:
        if self.failures:
            _outage_ended("recovered")
        self._next = self.first_s
        self.failures = 0

    def give_up(self) -> None:
        _outage_ended("gave_up")
        self._next = self.first_s
        self.failures = 0


def _delay_or_give_up(backoff: Backoff, deadline: float, exc: Exception, what: str, log: logging.Logger,
                      give_up_s: float) -> float:
    """The wait before the next try, or the outage error raised again once past the deadline."""
    delay = backoff.next_delay()
    if time.monotonic() + delay > deadline:
        log.error("%s: Redis still unavailable after %.0fs, giving up: %s", what, give_up_s, exc)
        backoff.give_up()
        raise exc
    log.warning("%s: Redis unavailable (%s), retry %d in %.1fs", what, exc, backoff.failures, delay)
    return delay


async def retry_async(op: Callable[[], Awaitable[T]], what: str, log: logging.Logger,
                      give_up_s: float = GIVE_UP_S) -> T:
    """await op() until it succeeds, retrying outage errors with backoff for up to give_up_s."""
    backoff = Backoff()
    deadline = time.monotonic() + give_up_s
    while True:
        try:
            result = await op()
        except OUTAGE_ERRORS as exc:
            await asyncio.sleep(_delay_or_give_up(backoff, deadline, exc, what, log, give_up_s))
            continue
        if backoff.failures:
            log.info("%s: Redis reachable again after %d retries", what, backoff.failures)
            backoff.reset()
        return result


def retry_sync(op: Callable[[], T], what: str, log: logging.Logger, give_up_s: float = GIVE_UP_S) -> T:
    """The blocking twin of retry_async (Celery tasks)."""
    backoff = Backoff()
    deadline = time.monotonic() + give_up_s
    while True:
        try:
            result = op()
        except OUTAGE_ERRORS as exc:
            time.sleep(_delay_or_give_up(backoff, deadline, exc, what, log, give_up_s))
            continue
        if backoff.failures:
            log.info("%s: Redis reachable again after %d retries", what, backoff.failures)
            backoff.reset()
        return result
