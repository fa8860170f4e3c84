"""The executor's settings: CommonSettings plus limits and knobs (env AUGSERVE_EXECUTOR_*)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from common.settings import CommonSettings


class ExecutorSettings(CommonSettings):
    executor_soft_time_limit_s: Annotated[float, Field(gt=0, le=3600)] = 60.0
    """A call still running after this long ends with a "timed out" error result."""
    executor_time_limit_s: Annotated[float, Field(gt=0, le=3600)] = 75.0
    """Hard limit: the pool process is killed; the worker still delivers a timeout error result."""
    executor_visibility_timeout_s: Annotated[float, Field(ge=60, le=86400)] = 3600.0
    """Redis broker: an unacked message is handed out again after this long (acks_late). Only the
    backstop: a dead worker's messages are reclaimed after executor_liveness_ttl_s."""
    executor_max_countdown_s: Annotated[float, Field(gt=0, le=3600)] = 600.0
    """Longest single countdown of a stand-in's delivery; longer waits are chained in hops."""
    executor_idempotency_ttl_s: Annotated[int, Field(ge=60, le=30 * 86400)] = 86400
    """How long a call_id's "delivered" marker lives (must outlast any re-delivery)."""
    executor_heartbeat_s: Annotated[float, Field(gt=0, le=60)] = 1.0
    """How often a worker refreshes its liveness key and looks for messages of dead workers."""
    executor_liveness_ttl_s: Annotated[float, Field(gt=0, le=600)] = 5.0
    """A worker whose liveness key is this old is dead: the messages it held (running calls,
    stand-in deliveries waiting for their due time) go back on the queue (api_executor.reclaim)."""
    executor_http_max_retries: Annotated[int, Field(ge=0, le=10)] = 3
    executor_http_retry_backoff_s: Annotated[float, Field(ge=0, le=60)] = 1.0
    """First retry waits this long, doubling each time (capped at 30 s)."""
    executor_http_max_chars: Annotated[int, Field(ge=100, le=1_000_000)] = 4000
    """HTTP response text longer than this is cut (the model reads it as context)."""
    executor_ve_episode_ttl_s: Annotated[int, Field(ge=10, le=7 * 86400)] = 3600
    """Text-environment episode state expires this long after its last action."""
    executor_metrics_port: Annotated[int, Field(ge=0, le=65535)] = 0
    """AUGSERVE_EXECUTOR_METRICS_PORT: Prometheus /metrics of the worker; 0 = not served."""

    @model_validator(mode="after")
    def _limits_are_ordered(self) -> ExecutorSettings:
        if self.executor_soft_time_limit_s >= self.executor_time_limit_s:
            raise ValueError("executor_soft_time_limit_s must be below executor_time_limit_s")
        if self.executor_soft_time_limit_s >= self.api_call_timeout_s:
            raise ValueError("executor_soft_time_limit_s must be below api_call_timeout_s, "
                             "or timeout results arrive after the request gave up")
        if self.executor_visibility_timeout_s <= self.executor_time_limit_s + self.executor_max_countdown_s:
            raise ValueError("executor_visibility_timeout_s must exceed executor_time_limit_s + "
                             "executor_max_countdown_s, or waiting messages are handed out twice")
        if self.executor_liveness_ttl_s < 2 * self.executor_heartbeat_s:
            raise ValueError("executor_liveness_ttl_s must be at least twice executor_heartbeat_s, "
                             "or a live worker looks dead between two refreshes")
        if self.executor_liveness_ttl_s + self.executor_heartbeat_s >= self.api_call_timeout_s:
            raise ValueError("executor_liveness_ttl_s + executor_heartbeat_s must be below api_call_timeout_s, "
                             "or a dead executor's calls are reclaimed after their requests gave up")
        if self.executor_idempotency_ttl_s <= self.executor_visibility_timeout_s:
            raise ValueError("executor_idempotency_ttl_s must exceed executor_visibility_timeout_s")
        return self
