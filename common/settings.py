"""Settings every service shares, read from the environment (prefix AUGSERVE_) in one place."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AUGSERVE_", extra="ignore")

    redis_url: str = "redis://127.0.0.1:6379/0"
    """Broker, streams and estimator store."""
    time_scale: Annotated[float, Field(gt=0, le=1000)] = 1.0
    """Multiplies the durations of the timed stand-in APIs (chatbot, image, tts); 0.1 = 10x faster."""
    otlp_endpoint: str | None = None
    """OTLP/HTTP traces endpoint (e.g. http://127.0.0.1:4318); tracing is off when unset."""
