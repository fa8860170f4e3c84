"""The gateway's one typed config object, read from the environment (prefix AUGSERVE_) once."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import NoDecode

from common.schemas import stale_after_s
from common.settings import CommonSettings
from stack.models import default_model_dir

SMOLLM_DEFAULT_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"


class GatewaySettings(CommonSettings):
    env: Literal["development", "test", "production"] = "development"
    """AUGSERVE_ENV. In production the gateway refuses to start without API keys."""
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 8000
    model_id: Annotated[str, Field(min_length=1, max_length=256)] = "SmolLM2-135M-Instruct"
    """The served model name: requests naming any other model get 404 model_not_found."""
    model_path: Path = Field(default_factory=default_model_dir)
    """Local Hugging Face folder holding the tokenizer and chat template."""
    max_model_len: Annotated[int, Field(ge=16, le=1_048_576)] = 4096
    """Prompt plus generated (plus, with a plan, returned) tokens may not exceed this."""
    api_keys: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """AUGSERVE_API_KEYS: a JSON list or comma-separated keys, each allowed to generate (scope
    `generate`). Empty, with no operator keys either, turns authentication off."""
    operator_api_keys: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """AUGSERVE_OPERATOR_API_KEYS: keys with the `operator` scope (the benchmark's, an operator's):
    besides generating, they may send scripted plans (explicit durations, direct `http` calls,
    which the estimator then learns from), read /metrics and the API docs, and no per-key limit
    applies to them."""
    allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """AUGSERVE_ALLOWED_HOSTS: Host header names served besides localhost, 127.0.0.1, ::1 and
    `host` (when it names one host): anything else gets a 400, so a page whose DNS name was
    rebound to this machine cannot reach it. "*" allows any host."""
    header_timeout_s: Annotated[float, Field(gt=0, le=3600)] = 10.0
    """A connection that has not sent a request's complete headers this long after it opened (or
    after its request began) is closed with a 408: idle connections and partial headers."""
    body_timeout_s: Annotated[float, Field(gt=0, le=3600)] = 30.0
    """A request body not fully received this long after its headers: 408, connection closed."""
    keepalive_timeout_s: Annotated[float, Field(gt=0, le=3600)] = 5.0
    """An idle keep-alive connection is closed this long after its last response (uvicorn's)."""
    max_concurrent_requests_per_key: Annotated[int, Field(ge=0, le=100_000)] = 32
    """Generation requests one `generate` key may have in flight across every gateway replica
    (Redis-held); past it 429 with Retry-After. 0: no limit."""
    tokens_per_minute_per_key: Annotated[int, Field(ge=0, le=1_000_000_000)] = 200_000
    """Tokens (prompt + the admitted max_tokens, counted on admission) one `generate` key may
    spend per minute across every replica (the `limits` package's moving window in Redis); past
    it 429 with Retry-After. 0: no limit."""
    max_body_bytes: Annotated[int, Field(ge=1024, le=1 << 30)] = 1 << 20
    request_timeout_s: Annotated[float, Field(gt=0, le=86_400)] = 600.0
    """No final event from the engine within this long: 504."""
    default_max_tokens: Annotated[int, Field(ge=1, le=1_048_576)] = 256
    """max_tokens when the request sets none (cut to what fits in max_model_len)."""
    default_system_prompt: str = SMOLLM_DEFAULT_SYSTEM
    """The chat template's own default system text, kept when tools add a system turn."""
    redis_max_connections: Annotated[int, Field(ge=8, le=100_000)] = 4096
    """Each in-flight request holds one connection while it waits on its output (XREAD BLOCK), so
    this caps concurrent requests; past it a request gets a 503 (redis-py's default is only 100)."""
    routing: Literal["pull", "program-affinity"] = "pull"
    """How a request reaches an engine worker (gateway/routing.py). `pull`: every request goes to
    the shared stream and the worker with room takes it. `program-affinity` (Autellix): a request
    with a program id goes to the own stream of the worker that holds its program's KV/prefix,
    when that worker is alive and not overloaded; every other request goes to the shared stream."""
    routing_margin: Annotated[float, Field(ge=0, le=100_000)] = 4.0
    """Program affinity yields to balance when the holder has more than this many in-flight
    requests (running, queued or paused, from its heartbeat) above the least-loaded live worker."""
    worker_stale_s: Annotated[float, Field(gt=0, le=3600)] = stale_after_s()
    """A worker whose heartbeat is older than this is dead to routing: by default the rule by which
    workers adopt each other's requests (common.schemas.stale_after_s of the default heartbeat)."""
    no_worker_grace_s: Annotated[float, Field(ge=0, le=3600)] = 5.0
    """A request waiting on its output fails with a 503 once no engine worker has been alive
    (worker_stale_s) for this long: while one is, it continues whatever a dead one held. The grace
    covers a Redis restarted without its data, until the workers' next heartbeats."""
    redis_submit_retry_s: Annotated[float, Field(ge=0, le=600)] = 10.0
    """A request arriving while Redis restarts waits this long for it, then gets a 503."""
    redis_outage_s: Annotated[float, Field(gt=0, le=3600)] = 30.0
    """An in-flight request whose output stream stays unreadable this long fails with a 503 (the
    engine worker gives up its writes after as long: common.redis_retry.GIVE_UP_S)."""
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"

    @field_validator("api_keys", "operator_api_keys", "allowed_hosts", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [k.strip() for k in text.split(",") if k.strip()]
        return value

    @field_validator("api_keys", "operator_api_keys")
    @classmethod
    def _keys_are_not_blank(cls, keys: list[str]) -> list[str]:
        if any(len(k) < 8 for k in keys):
            raise ValueError("every API key needs at least 8 characters")
        return keys

    @model_validator(mode="after")
    def _production_needs_keys(self) -> GatewaySettings:
        if self.env == "production" and not self.auth_on:
            raise ValueError("AUGSERVE_ENV=production needs AUGSERVE_API_KEYS: refusing to serve unauthenticated")
        if self.default_max_tokens >= self.max_model_len:
            raise ValueError("default_max_tokens must be below max_model_len")
        if set(self.api_keys) & set(self.operator_api_keys):
            raise ValueError("a key may not be both in AUGSERVE_API_KEYS and AUGSERVE_OPERATOR_API_KEYS")
        return self

    @property
    def auth_on(self) -> bool:
        return bool(self.api_keys or self.operator_api_keys)

    def served_hosts(self) -> frozenset[str] | None:
        """Host names (lower-case, no port) the gateway answers; None: any."""
        if "*" in self.allowed_hosts:
            return None
        hosts = {"localhost", "127.0.0.1", "::1", *(h.lower() for h in self.allowed_hosts)}
        if self.host not in ("0.0.0.0", "::", ""):
            hosts.add(self.host.lower())
        return frozenset(hosts)
