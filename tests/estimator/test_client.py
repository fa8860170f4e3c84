"""The engine's cached client: Redis is read at most once per TTL, outage included."""

from __future__ import annotations

import redis

from common.schemas import API_KINDS
from estimator.client import EstimatorClient
from estimator.store import DurationStore
from stack.processes import free_port


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_cached_for_ttl(redis_client: redis.Redis) -> None:
    store, clock = DurationStore(redis_client, time_scale=1.0), FakeClock()
    client = EstimatorClient(store, ttl_s=2.0, clock=clock)
    store.record("qa", 1.0)
    assert client.stats("qa").count == 1
    store.record("qa", 3.0)
    clock.now += 1.9
    assert client.stats("qa").count == 1          # still cached
    assert client.expected_remaining("qa", 0.0) == 1.0
    clock.now += 0.2
    assert client.stats("qa").count == 2          # refreshed after the TTL
    assert client.expected_remaining("qa", 2.0) == 1.0


def test_all_stats_covers_every_kind(redis_client: redis.Redis) -> None:
    DurationStore(redis_client).record("ve", 0.1)
    stats = EstimatorClient(DurationStore(redis_client)).all_stats()
    assert list(stats) == list(API_KINDS)
    assert stats["ve"].source == "history" and stats["qa"].source == "default"


def test_outage_is_cached_too() -> None:
    client = EstimatorClient.from_url(f"redis://127.0.0.1:{free_port()}/0", ttl_s=60, time_scale=1.0)
    first = client.snapshot("chatbot")
    assert not first.redis_ok and client.stats("chatbot").mean_s == 28.2
    assert client.snapshot("chatbot") is first    # no second connection attempt within the TTL
