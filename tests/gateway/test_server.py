"""`python -m gateway` as a real process on a free port: uvicorn, real HTTP and SSE, the sync
openai client, and streaming that really streams (chunk by chunk, not buffered)."""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest
import redis

from common.names import ENGINE_REQUEST_STREAM, output_stream
from common.schemas import EngineRequest, OutputEnvelope, ToolCall
from gateway.auth import key_id
from stack.processes import Service, free_port, python_module
from tests.gateway.conftest import MODEL, delta, final

KEY = "sk-server-test-key"
WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.fixture(scope="module")
def server(redis_server, tiny_model, tmp_path_factory) -> Iterator[str]:
    port = free_port()
    service: Service = python_module("gateway", "gateway", env={
        "AUGSERVE_REDIS_URL": redis_server, "AUGSERVE_MODEL_PATH": str(tiny_model), "AUGSERVE_PORT": str(port),
        "AUGSERVE_API_KEYS": KEY, "AUGSERVE_ENV": "production", "HF_HUB_OFFLINE": "1"})
    service.start(tmp_path_factory.mktemp("gateway-logs"))
    url = f"http://127.0.0.1:{port}"
    try:
        service.wait_until(lambda: _healthy(url), 60, "/health")
        yield url
    finally:
        service.stop()


class Engine:
    def __init__(self, url: str) -> None:
        self.redis = redis.Redis.from_url(url, decode_responses=True)
        self.last_id = self.redis.xinfo_stream(ENGINE_REQUEST_STREAM)["last-generated-id"] \
            if self.redis.exists(ENGINE_REQUEST_STREAM) else "0-0"

    def next_request(self, timeout_s: float = 10) -> EngineRequest:
        reply = self.redis.xread({ENGINE_REQUEST_STREAM: self.last_id}, count=1, block=int(timeout_s * 1000))
        assert reply, "no request reached the engine stream"
        self.last_id, fields = reply[0][1][0]
        return EngineRequest.model_validate_json(fields["request"])

    def emit(self, request_id: str, *events) -> None:
        for event in events:
            self.redis.xadd(output_stream(request_id), {"event": OutputEnvelope(event=event).model_dump_json()})


def test_openai_client_streams_chunk_by_chunk(server, redis_server):
    engine = Engine(redis_server)
    client = openai.OpenAI(base_url=f"{server}/v1", api_key=KEY, max_retries=0, timeout=30)
    first_chunk_seen = threading.Event()

    def consume():
        stream = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hi"}],
                                                stream=True, stream_options={"include_usage": True})
        chunks = []
        for chunk in stream:
            chunks.append(chunk)
            if chunk.choices and chunk.choices[0].delta.content:
                first_chunk_seen.set()
        return chunks

    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(consume)
        req = engine.next_request()
        engine.emit(req.request_id, delta("Hel"))
        # The rest is only written once the client holds the first piece: the stream is live.
        assert first_chunk_seen.wait(10), "the first delta did not reach the client on its own"
        engine.emit(req.request_id, delta("lo"), final("Hello", completion_tokens=2))
        chunks = future.result(timeout=10)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello"
    assert chunks[-1].usage.completion_tokens == 2


def test_client_tool_call_and_auth_over_http(server, redis_server):
    engine = Engine(redis_server)
    client = openai.OpenAI(base_url=f"{server}/v1", api_key=KEY, max_retries=0, timeout=30)
    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(client.chat.completions.create, model=MODEL, tools=[WEATHER],
                             messages=[{"role": "user", "content": "Weather in Rome?"}],
                             tool_choice={"type": "function", "function": {"name": "get_weather"}},
                             extra_body={"program_id": "session-9"}, extra_headers={"traceparent": "00-abc-def-01"})
        req = engine.next_request()
        assert req.forced_tool == "get_weather" and req.client_tools == ["get_weather"]
        assert req.program_id == f"{key_id(KEY)}/session-9" and req.traceparent == "00-abc-def-01"
        call = ToolCall(id="call_9", name="get_weather", arguments=json.dumps({"city": "Rome"}))
        engine.emit(req.request_id, final("", finish_reason="tool_calls", tool_calls=[call]))
        response = future.result(timeout=10)
    assert response.choices[0].message.tool_calls[0].function.name == "get_weather"
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{server}/v1", api_key="sk-wrong-key-000", max_retries=0).models.list()


def test_body_limit_on_a_real_socket(server):
    import httpx

    response = httpx.post(f"{server}/v1/chat/completions", content=b"x" * (2 << 20),
                          headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"})
    assert response.status_code == 413 and "limit of 1048576 bytes" in response.json()["error"]["message"]
