"""Settings every service shares, read from the environment (prefix AUGSERVE_) in one place."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field, HttpUrl
from pydantic_settings import BaseSettings, SettingsConfigDict


class HttpApiSpec(BaseModel):
    """An operator-registered HTTP endpoint the model may call as a tool (allow-list entry)."""

    url: HttpUrl
    method: Literal["GET", "POST"] = "GET"
    timeout_s: Annotated[float, Field(gt=0, le=600)] = 10.0
    description: str = ""


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AUGSERVE_", extra="ignore")

    redis_url: str = "redis://127.0.0.1:6379/0"
    """Broker, streams and estimator store."""
    time_scale: Annotated[float, Field(gt=0, le=1000)] = 1.0
    """Multiplies the durations of the timed stand-in APIs (chatbot, image, tts); 0.1 = 10x faster."""
    otlp_endpoint: str | None = None
    """OTLP/HTTP traces endpoint (e.g. http://127.0.0.1:4318); tracing is off when unset."""
    http_apis: dict[str, HttpApiSpec] = Field(default_factory=dict)
    """AUGSERVE_HTTP_APIS as JSON: tool name -> endpoint. Only these URLs are ever called."""
    api_call_timeout_s: Annotated[float, Field(gt=0, le=3600)] = 120.0
    """An API call with no result after this long resumes its request with an error result."""
