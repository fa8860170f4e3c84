"""Per-key limits, shared by every gateway replica through Redis: requests in flight, and tokens
per minute. Past either: 429 with Retry-After. Operator keys are not limited (gateway/auth.py).

Tokens per minute is the `limits` package's sliding-window counter (two counters per key and
window in Redis, one atomic script per hit); a request costs its prompt tokens plus the max_tokens
it was admitted with, counted on admission (what it may consume, known before it runs). Requests
in flight are not a rate, and `limits` has no such counter: they are leases in one sorted set
per key (member the request id, score when the lease expires), taken in one MULTI, so a gateway
that dies holding leases frees them at their expiry (the request timeout) instead of never.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

from limits import RateLimitItemPerMinute
from limits.aio.storage import RedisStorage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from redis.asyncio import Redis
from redis.exceptions import RedisError

from common.names import PREFIX
from gateway.auth import Caller
from gateway.errors import ApiError

log = logging.getLogger(__name__)

LEASE_MARGIN_S = 30.0
"""A lease outlives its request's timeout by this much (the gateway gives up on it before)."""


def inflight_key(key_id: str) -> str:
    return f"{PREFIX}:limits:inflight:{key_id}"


@dataclass(frozen=True)
class Lease:
    key_id: str
    request_id: str


class KeyLimits:
    def __init__(self, redis: Redis, redis_url: str, *, max_concurrent: int, tokens_per_minute: int,
                 lease_s: float) -> None:
        self.redis = redis
        self.max_concurrent = max_concurrent
        self.lease_s = lease_s + LEASE_MARGIN_S
        self._tokens = RateLimitItemPerMinute(tokens_per_minute, namespace=f"{PREFIX}:limits:tpm")
        self._limiter = SlidingWindowCounterRateLimiter(
            RedisStorage(f"async+{redis_url}", implementation="redispy")) if tokens_per_minute else None

    async def acquire(self, caller: Caller, request_id: str) -> Lease | None:
        """A lease on one of the caller's concurrent requests, or a 429. None: not limited."""
        if caller.is_operator or not self.max_concurrent:
            return None
        key, now = inflight_key(caller.key_id), time.time()
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.zremrangebyscore(key, "-inf", now)
                pipe.zadd(key, {request_id: now + self.lease_s})
                pipe.zcard(key)
                pipe.expire(key, math.ceil(self.lease_s))
                held = (await pipe.execute())[2]
        except RedisError as exc:
            raise ApiError(503, f"the request limits are unavailable: {exc}", code="redis_unavailable") from exc
        lease = Lease(caller.key_id, request_id)
        if held > self.max_concurrent:
            await self.release(lease)
            raise ApiError(429, f"this key has {self.max_concurrent} requests in flight, its limit "
                                "(AUGSERVE_MAX_CONCURRENT_REQUESTS_PER_KEY)", code="concurrency_limit_exceeded",
                           headers={"Retry-After": "1"})
        return lease

    async def release(self, lease: Lease | None) -> None:
        if lease is None:
            return
        try:
            await self.redis.zrem(inflight_key(lease.key_id), lease.request_id)
        except RedisError:
            log.warning("could not release %s's lease (it expires on its own)", lease.request_id)

    async def spend_tokens(self, caller: Caller, tokens: int) -> None:
        """Counts a request's tokens against the caller's minute, or a 429 (or a 400 for a request
        that alone needs more than a minute's tokens: it would never fit)."""
        if caller.is_operator or self._limiter is None:
            return
        limit = self._tokens.amount
        if tokens > limit:
            raise ApiError(400, f"the request needs {tokens} tokens (prompt + max_tokens), over this key's "
                                f"limit of {limit} tokens per minute", code="tokens_per_minute_exceeded",
                           param="max_tokens")
        try:
            if await self._limiter.hit(self._tokens, caller.key_id, cost=tokens):
                return
            stats = await self._limiter.get_window_stats(self._tokens, caller.key_id)
        except RedisError as exc:
            raise ApiError(503, f"the request limits are unavailable: {exc}", code="redis_unavailable") from exc
        retry_after = max(1, math.ceil(stats.reset_time - time.time()))
        raise ApiError(429, f"this key has used its {limit} tokens per minute (AUGSERVE_TOKENS_PER_MINUTE_PER_KEY); "
                            f"{stats.remaining} remain, this request needs {tokens}",
                       code="tokens_per_minute_exceeded", headers={"Retry-After": str(retry_after)})
