"""Recorded API call durations in Redis: one capped list per kind (common.names.duration_history).

Writers (executor workers) LPUSH each finished call's duration and LTRIM to the cap, so the list is
the most recent `history_cap` calls and Redis memory stays bounded. Readers get a snapshot and do
the arithmetic in estimator.stats. A Redis outage never reaches the caller: reads fall back to the
per-kind defaults (estimator.defaults) and writes are dropped, both logged once per outage.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable

import redis

from common.names import duration_history
from common.schemas import API_KINDS
from common.settings import CommonSettings
from estimator.defaults import check_api, default_mean_s, default_std_s
from estimator.stats import ApiDurationStats, DurationSnapshot, expected_remaining, summarize

log = logging.getLogger(__name__)

HISTORY_CAP = 2000


class DurationStore:
    def __init__(
        self, client: redis.Redis, time_scale: float | None = None, history_cap: int = HISTORY_CAP,
    ) -> None:
        if history_cap < 1:
            raise ValueError("history_cap must be >= 1")
        self._redis = client
        self.time_scale = CommonSettings().time_scale if time_scale is None else time_scale
        self.history_cap = history_cap
        self._down = False

    @classmethod
    def from_url(cls, url: str, time_scale: float | None = None, history_cap: int = HISTORY_CAP) -> DurationStore:
        """Short socket timeouts: a dead Redis must cost the hot path milliseconds, not seconds."""
        client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=1.0)
        return cls(client, time_scale=time_scale, history_cap=history_cap)

    def record(self, api: str, duration_s: float) -> bool:
        """Adds one duration; False (and a log line) if it could not be stored."""
        check_api(api)
        if not math.isfinite(duration_s) or duration_s < 0:
            raise ValueError(f"duration must be finite and >= 0, got {duration_s!r}")
        key = duration_history(api)
        try:
            pipe = self._redis.pipeline(transaction=True)
            pipe.lpush(key, repr(float(duration_s)))
            pipe.ltrim(key, 0, self.history_cap - 1)
            pipe.execute()
        except redis.RedisError as exc:
            self._outage(exc)
            return False
        self._recovered()
        return True

    def snapshot(self, api: str) -> DurationSnapshot:
        return self.snapshots([api])[api]

    def snapshots(self, apis: Iterable[str] = API_KINDS) -> dict[str, DurationSnapshot]:
        """One round trip for all the kinds asked for."""
        apis = [check_api(a) for a in apis]
        try:
            pipe = self._redis.pipeline(transaction=False)
            for api in apis:
                pipe.lrange(duration_history(api), 0, self.history_cap - 1)
            raw_lists = pipe.execute()
            ok = True
        except redis.RedisError as exc:
            self._outage(exc)
            raw_lists, ok = [[] for _ in apis], False
        if ok:
            self._recovered()
        return {
            api: DurationSnapshot(
                api=api, durations=_parse(raw), redis_ok=ok,
                default_mean_s=default_mean_s(api, self.time_scale),
                default_std_s=default_std_s(api, self.time_scale),
            )
            for api, raw in zip(apis, raw_lists)
        }

    def stats(self, api: str) -> ApiDurationStats:
        return summarize(self.snapshot(api))

    def expected_remaining(self, api: str, elapsed_s: float) -> float:
        """See estimator.stats.expected_remaining for the conditional mean and its fallbacks."""
        return expected_remaining(self.snapshot(api), elapsed_s)

    def _outage(self, exc: Exception) -> None:
        if not self._down:
            log.warning("estimator store: Redis unavailable, using default durations: %s", exc)
        self._down = True

    def _recovered(self) -> None:
        if self._down:
            log.info("estimator store: Redis reachable again")
        self._down = False


def _parse(raw: list[bytes | str]) -> tuple[float, ...]:
    """Sorted durations; entries that are not finite non-negative numbers are skipped."""
    out = []
    for item in raw:
        try:
            value = float(item)
        except (TypeError, ValueError):
            continue
        if math.isfinite(value) and value >= 0:
            out.append(value)
    return tuple(sorted(out))
