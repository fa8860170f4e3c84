"""The engine worker's view of the estimator: snapshots cached locally for a short TTL.

The engine asks for estimates on every interception (and policies may ask per scheduling step);
caching keeps Redis off that hot path: at most one LRANGE per kind per `ttl_s`, outage included
(a failed read is cached too, so a dead Redis is not retried on every call).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable

from common.schemas import API_KINDS
from estimator.defaults import check_api
from estimator.stats import ApiDurationStats, DurationSnapshot, expected_remaining, summarize
from estimator.store import DurationStore


class EstimatorClient:
    def __init__(
        self, store: DurationStore, ttl_s: float = 2.0, clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl_s < 0:
            raise ValueError("ttl_s must be >= 0")
        self.store = store
        self.ttl_s = ttl_s
        self._clock = clock
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, DurationSnapshot]] = {}

    @classmethod
    def from_url(cls, url: str, ttl_s: float = 2.0, time_scale: float | None = None) -> EstimatorClient:
        return cls(DurationStore.from_url(url, time_scale=time_scale), ttl_s=ttl_s)

    def snapshot(self, api: str) -> DurationSnapshot:
        return self.snapshots([api])[api]

    def snapshots(self, apis: Iterable[str] = API_KINDS) -> dict[str, DurationSnapshot]:
        """Cached snapshots; the expired ones are refreshed together in one Redis round trip."""
        apis = [check_api(a) for a in apis]
        now = self._clock()
        with self._lock:
            fresh = {a: hit[1] for a in apis if (hit := self._cache.get(a)) and now - hit[0] < self.ttl_s}
        stale = [a for a in apis if a not in fresh]
        if stale:
            loaded = self.store.snapshots(stale)
            with self._lock:
                self._cache.update({a: (now, snap) for a, snap in loaded.items()})
            fresh.update(loaded)
        return {a: fresh[a] for a in apis}

    def stats(self, api: str) -> ApiDurationStats:
        return summarize(self.snapshot(api))

    def all_stats(self) -> dict[str, ApiDurationStats]:
        return {api: summarize(snap) for api, snap in self.snapshots().items()}

    def expected_remaining(self, api: str, elapsed_s: float) -> float:
        return expected_remaining(self.snapshot(api), elapsed_s)

    def invalidate(self) -> None:
        with self._lock:
            self._cache.clear()
