"""The estimator service's settings: CommonSettings plus where it listens (env AUGSERVE_ESTIMATOR_*)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from common.settings import CommonSettings


class EstimatorSettings(CommonSettings):
    estimator_host: str = "127.0.0.1"
    """AUGSERVE_ESTIMATOR_HOST: bind address of `python -m estimator`."""
    estimator_port: Annotated[int, Field(ge=1, le=65535)] = 8002
    """AUGSERVE_ESTIMATOR_PORT."""
    estimator_cache_ttl_s: Annotated[float, Field(ge=0, le=60)] = 1.0
    """AUGSERVE_ESTIMATOR_CACHE_TTL_S: how long the service reuses a Redis read (scrapes included)."""
