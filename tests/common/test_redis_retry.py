"""common.redis_retry: bounded backoff, retrying outage errors only, giving up in time."""

from __future__ import annotations

import logging
import time

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from common.redis_retry import Backoff, retry_async, retry_sync

log = logging.getLogger(__name__)


def test_backoff_doubles_up_to_its_cap_and_resets():
    backoff = Backoff(first_s=0.1, cap_s=0.5)
    assert [backoff.next_delay() for _ in range(5)] == [0.1, 0.2, 0.4, 0.5, 0.5]
    assert backoff.failures == 5
    backoff.reset()
    assert (backoff.next_delay(), backoff.failures) == (0.1, 1)


def _flaky(failures: int, exc: Exception):
    calls = []

    def op():
        calls.append(1)
        if len(calls) <= failures:
            raise exc
        return "ok"

    return op, calls


def test_an_outage_is_waited_out(caplog):
    op, calls = _flaky(2, RedisConnectionError("refused"))
    with caplog.at_level(logging.INFO):
        assert retry_sync(op, "thing", log) == "ok"
    assert len(calls) == 3 and "reachable again after 2 retries" in caplog.text


def test_command_errors_are_not_retried():
    op, calls = _flaky(1, ResponseError("NOGROUP"))
    with pytest.raises(ResponseError):
        retry_sync(op, "thing", log)
    assert len(calls) == 1


async def test_an_outage_past_the_bound_is_raised_in_time():
    async def down():
        raise RedisConnectionError("refused")

    started = time.monotonic()
    with pytest.raises(RedisConnectionError):
        await retry_async(down, "thing", log, give_up_s=0.5)
    assert time.monotonic() - started < 0.5


def test_outage_outcomes_reach_the_observers(monkeypatch):
    import common.redis_retry as redis_retry

    seen: list[str] = []
    monkeypatch.setattr(redis_retry, "_outage_observers", [seen.append])
    assert retry_sync(lambda: "ok", "no outage", log) == "ok"
    assert seen == []  # nothing lost, nothing reported
    op, _ = _flaky(2, RedisConnectionError("refused"))
    assert retry_sync(op, "thing", log) == "ok"
    assert seen == ["recovered"]  # one operation rode out one outage
    op, _ = _flaky(1000, RedisConnectionError("refused"))
    with pytest.raises(RedisConnectionError):
        retry_sync(op, "thing", log, give_up_s=0.3)
    assert seen == ["recovered", "gave_up"]
    backoff = Backoff()
    backoff.reset()  # no failures: no outage
    backoff.next_delay()
    backoff.reset()
    assert seen == ["recovered", "gave_up", "recovered"]
