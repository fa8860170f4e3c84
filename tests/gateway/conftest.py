"""Gateway fixtures: the app in-process (httpx ASGITransport) on a real Redis, and a fake engine
worker that reads EngineRequests from the request stream and writes output events back."""

from __future__ import annotations

import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
import redis
import redis.asyncio as aioredis
from fastapi import FastAPI

from common.names import ENGINE_REQUEST_STREAM, output_stream
from common.schemas import DeltaEvent, EngineRequest, FinalEvent, InterceptionRecord, OutputEnvelope, ToolCall, Usage
from gateway.app import create_app
from gateway.prompts import load_tokenizer
from gateway.settings import GatewaySettings
from stack.models import build_tiny
from stack.processes import Service, free_port, python_module

MODEL = "SmolLM2-135M-Instruct"
KEY = "sk-server-test-key"
OPERATOR_KEY = "sk-server-operator-key"
"""The real gateway process's keys (`server`): a plain one and an operator one."""
SLOW_CLIENT_TIMEOUT_S = 1.0
"""That gateway's header and body deadlines (10 s and 30 s by default)."""
MAX_MODEL_LEN = 512


@pytest.fixture(scope="session")
def tiny_model() -> Path:
    return build_tiny()


@pytest.fixture(scope="session")
def tokenizer(tiny_model) -> Any:
    return load_tokenizer(str(tiny_model))


@pytest.fixture
def make_settings(redis_server, tiny_model) -> Callable[..., GatewaySettings]:
    def make(**overrides: Any) -> GatewaySettings:
        fields = {"redis_url": redis_server, "model_path": tiny_model, "max_model_len": MAX_MODEL_LEN,
                  "default_max_tokens": 32, "request_timeout_s": 30.0,
                  "allowed_hosts": ["gateway"], **overrides}
        return GatewaySettings(_env_file=None, **fields)

    return make


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.fixture(scope="session")
def server(redis_server, tiny_model, tmp_path_factory) -> Iterator[str]:
    """`python -m gateway` as a real process (uvicorn, real sockets) on the session's Redis; no engine
    worker: a test plays its side (tests/gateway/test_server.py Engine)."""
    port = free_port()
    service: Service = python_module("gateway", "gateway", env={
        "AUGSERVE_REDIS_URL": redis_server, "AUGSERVE_MODEL_PATH": str(tiny_model), "AUGSERVE_PORT": str(port),
        "AUGSERVE_API_KEYS": KEY, "AUGSERVE_OPERATOR_API_KEYS": OPERATOR_KEY, "AUGSERVE_ENV": "production",
        "HF_HUB_OFFLINE": "1",
        "AUGSERVE_HEADER_TIMEOUT_S": str(SLOW_CLIENT_TIMEOUT_S), "AUGSERVE_BODY_TIMEOUT_S": str(SLOW_CLIENT_TIMEOUT_S)})
    service.start(tmp_path_factory.mktemp("gateway-logs"))
    url = f"http://127.0.0.1:{port}"
    try:
        service.wait_until(lambda: _healthy(url), 180, "/health")  # a loaded machine: tokenizer load
        yield url
    finally:
        service.stop()


class Engine:
    """The engine worker's side for the real gateway process (`server`), over a blocking client."""

    def __init__(self, url: str) -> None:
        self.redis = redis.Redis.from_url(url, decode_responses=True)
        self.last_id = self.redis.xinfo_stream(ENGINE_REQUEST_STREAM)["last-generated-id"] \
            if self.redis.exists(ENGINE_REQUEST_STREAM) else "0-0"

    def next_request(self, timeout_s: float = 10) -> EngineRequest:
        reply = self.redis.xread({ENGINE_REQUEST_STREAM: self.last_id}, count=1, block=int(timeout_s * 1000))
        assert reply, "no request reached the engine stream"
        self.last_id, fields = reply[0][1][0]
        return self.parse(fields)

    @staticmethod
    def parse(fields: dict[str, str]) -> EngineRequest:
        return EngineRequest.model_validate_json(fields["request"])

    def emit(self, request_id: str, *events) -> None:
        for event in events:
            self.redis.xadd(output_stream(request_id), {"event": OutputEnvelope(event=event).model_dump_json()})


class FakeEngine:
    """Plays the engine worker's side of the Redis protocol, under the test's control."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis
        self._last_id = "0-0"

    async def next_request(self, timeout_s: float = 10.0) -> EngineRequest:
        reply = await self.redis.xread({ENGINE_REQUEST_STREAM: self._last_id}, count=1, block=int(timeout_s * 1000))
        assert reply, f"no request reached {ENGINE_REQUEST_STREAM} within {timeout_s}s"
        entry_id, fields = reply[0][1][0]
        self._last_id = entry_id
        assert set(fields) == {"request"}
        return EngineRequest.model_validate_json(fields["request"])

    async def queued(self) -> int:
        return await self.redis.xlen(ENGINE_REQUEST_STREAM)

    async def emit(self, request_id: str, *events: Any) -> None:
        for event in events:
            await self.redis.xadd(output_stream(request_id), {"event": OutputEnvelope(event=event).model_dump_json()})


def delta(text: str, *token_ids: int) -> DeltaEvent:
    return DeltaEvent(text=text, token_ids=list(token_ids) or [7])


def final(text: str = "Hello there", *, finish_reason: str = "stop", prompt_tokens: int = 20,
          completion_tokens: int = 3, tool_calls: list[ToolCall] | None = None,
          interceptions: list[InterceptionRecord] | None = None) -> FinalEvent:
    return FinalEvent(finish_reason=finish_reason, text=text, token_ids=list(range(completion_tokens)),
                      usage=Usage(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                                  total_tokens=prompt_tokens + completion_tokens),
                      interceptions=interceptions or [], tool_calls=tool_calls or [])


def record(call_id: str = "call-1", api: str = "calculator") -> InterceptionRecord:
    return InterceptionRecord(call_id=call_id, api=api, arguments={"expression": "6*7"}, started_at=100.0,
                              ended_at=100.5, duration_s=0.5, context_tokens=40, returned_tokens=2, result="42",
                              ok=True, strategy="preserve")


@dataclass
class Harness:
    app: FastAPI
    http: httpx.AsyncClient
    engine: FakeEngine
    settings: GatewaySettings

    def openai(self, **kwargs: Any) -> Any:
        from openai import AsyncOpenAI

        return AsyncOpenAI(base_url="http://gateway/v1", api_key=kwargs.pop("api_key", "unused"),
                           http_client=self.http, max_retries=0, **kwargs)


@pytest_asyncio.fixture
async def start_gateway(make_settings, redis_async) -> AsyncIterator[Callable[..., Any]]:
    """Starts the app (lifespan included) with settings overrides; stops it after the test."""
    stacks: list[Any] = []

    async def start(**overrides: Any) -> Harness:
        settings = make_settings(**overrides)
        app = create_app(settings)
        lifespan = app.router.lifespan_context(app)
        await lifespan.__aenter__()
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway", timeout=30)
        stacks.append((lifespan, http))
        return Harness(app, http, FakeEngine(redis_async), settings)

    yield start
    for lifespan, http in reversed(stacks):
        await http.aclose()
        await lifespan.__aexit__(None, None, None)


@pytest_asyncio.fixture
async def gw(start_gateway) -> Harness:
    return await start_gateway()


def assert_openai_error(response: httpx.Response, status: int, *needles: str) -> dict[str, Any]:
    """The status, OpenAI's error shape, and a message naming the problem."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["type"], str) and error["type"]
    for needle in needles:
        assert needle in error["message"], f"{needle!r} not in {error['message']!r}"
    return error
