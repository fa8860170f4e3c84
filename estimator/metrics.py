"""The estimator's Prometheus metrics, all declared here (prefix augserve_estimator_).

They are read from Redis at scrape time by a custom collector (through the service's cached
client), so the numbers are the ones the engine sees, with no background refresh loop.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from estimator.client import EstimatorClient
from estimator.stats import summarize


class EstimatorCollector(Collector):
    def __init__(self, client: EstimatorClient) -> None:
        self._client = client

    def collect(self) -> Iterator[GaugeMetricFamily]:
        snaps = self._client.snapshots()
        samples = GaugeMetricFamily(
            "augserve_estimator_history_samples", "Recorded durations in the history of an API kind", labels=["api"])
        mean = GaugeMetricFamily(
            "augserve_estimator_mean_seconds", "Estimated mean duration of an API kind", labels=["api"])
        p90 = GaugeMetricFamily(
            "augserve_estimator_p90_seconds", "Estimated 90th percentile duration of an API kind", labels=["api"])
        default = GaugeMetricFamily(
            "augserve_estimator_using_default", "1 when an API kind's estimate is the stated default", labels=["api"])
        redis_up = GaugeMetricFamily("augserve_estimator_redis_up", "1 when the duration store was readable")
        for api, snap in snaps.items():
            stats = summarize(snap)
            samples.add_metric([api], stats.count)
            mean.add_metric([api], stats.mean_s)
            p90.add_metric([api], stats.p90_s)
            default.add_metric([api], 1.0 if stats.source == "default" else 0.0)
        redis_up.add_metric([], 1.0 if all(s.redis_ok for s in snaps.values()) else 0.0)
        yield from (samples, mean, p90, default, redis_up)


def make_registry(client: EstimatorClient) -> CollectorRegistry:
    """A registry per app (not the global one), so tests can build several apps in one process."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(EstimatorCollector(client))
    return registry
