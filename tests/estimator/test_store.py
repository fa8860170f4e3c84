"""DurationStore against a real Redis server, and against none (a closed port)."""

from __future__ import annotations

import time

import pytest
import redis

from common.names import duration_history
from common.schemas import API_KINDS
from estimator.defaults import DEFAULT_MEAN_S, UnknownApi
from estimator.stats import TAIL_FRACTION
from estimator.store import DurationStore
from stack.processes import free_port


def test_record_and_stats(redis_client: redis.Redis) -> None:
    store = DurationStore(redis_client, time_scale=1.0)
    for d in (1.0, 2.0, 3.0, 4.0, 5.0):
        assert store.record("qa", d)
    stats = store.stats("qa")
    assert (stats.api, stats.count, stats.mean_s, stats.p50_s, stats.source) == ("qa", 5, 3.0, 3.0, "history")
    assert store.expected_remaining("qa", 3.5) == pytest.approx(4.5 - 3.5)
    assert store.stats("ve").source == "default"   # kinds are separate


def test_history_is_capped_to_the_most_recent(redis_client: redis.Redis) -> None:
    store = DurationStore(redis_client, time_scale=1.0, history_cap=10)
    for d in range(1, 26):
        store.record("tts", float(d))
    assert redis_client.llen(duration_history("tts")) == 10
    stats = store.stats("tts")
    assert (stats.count, stats.mean_s) == (10, sum(range(16, 26)) / 10)


@pytest.mark.parametrize("api", API_KINDS)
def test_defaults_when_history_is_empty(redis_client: redis.Redis, api: str) -> None:
    stats = DurationStore(redis_client, time_scale=0.1).stats(api)
    scale = 0.1 if api in ("chatbot", "image", "tts") else 1.0
    assert (stats.count, stats.source) == (0, "default")
    assert stats.mean_s == pytest.approx(DEFAULT_MEAN_S[api] * scale)


def test_garbage_entries_are_skipped(redis_client: redis.Redis) -> None:
    redis_client.rpush(duration_history("http"), "2.0", "abc", "-1", "nan", "4.0")
    assert DurationStore(redis_client).stats("http").count == 2


def test_bad_input_is_a_caller_error(redis_client: redis.Redis) -> None:
    store = DurationStore(redis_client)
    with pytest.raises(UnknownApi, match="unknown api kind 'fax'"):
        store.stats("fax")
    with pytest.raises(ValueError, match="finite and >= 0"):
        store.record("qa", -1.0)


def test_redis_down_falls_back_to_defaults() -> None:
    store = DurationStore.from_url(f"redis://127.0.0.1:{free_port()}/0", time_scale=1.0)
    start = time.monotonic()
    stats = store.stats("image")
    assert (stats.source, stats.count, stats.mean_s) == ("default", 0, 11.5)
    assert store.expected_remaining("image", 20.0) == pytest.approx(TAIL_FRACTION * 11.5)
    assert store.record("image", 1.0) is False
    assert all(not s.redis_ok for s in store.snapshots().values())
    assert time.monotonic() - start < 2.0
