"""Per-process singletons of the worker: settings, the Redis client, the duration store.

Created lazily, so pool processes create their own after the fork (redis-py also resets an
inherited connection pool when it sees a new pid).
"""

from __future__ import annotations

from functools import lru_cache

import redis

from api_executor.settings import ExecutorSettings
from estimator.store import DurationStore


@lru_cache(maxsize=1)
def settings() -> ExecutorSettings:
    return ExecutorSettings()


@lru_cache(maxsize=1)
def redis_client() -> redis.Redis:
    return redis.Redis.from_url(
        settings().redis_url, socket_connect_timeout=2.0, socket_timeout=5.0, health_check_interval=30)


@lru_cache(maxsize=1)
def duration_store() -> DurationStore:
    return DurationStore(redis_client(), time_scale=settings().time_scale)
