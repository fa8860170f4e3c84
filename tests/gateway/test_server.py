"""`python -m gateway` as a real process on a free port: uvicorn, real HTTP and SSE, the sync
openai client, and streaming that really streams (chunk by chunk, not buffered)."""

from __future__ import annotations

import json
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest

from common.names import cancelled_request
from common.schemas import ToolCall
from gateway.auth import key_id
from tests.gateway.conftest import KEY, MODEL, SLOW_CLIENT_TIMEOUT_S, Engine, delta, final

WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


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


def _exchange(server: str, raw: bytes) -> tuple[bytes, float]:
    """Sends raw bytes, then reads until the server closes; (what it answered, seconds it took)."""
    host, port = server.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        started = time.monotonic()
        sock.sendall(raw)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        return answer, time.monotonic() - started


@pytest.mark.parametrize("raw", [
    b"",  # a connection that never says anything
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Ty",  # headers that never end
], ids=["idle", "partial-headers"])
def test_slow_headers_are_cut_off(server, raw):
    answer, took = _exchange(server, raw)
    assert answer.startswith(b"HTTP/1.1 408 ") and b'"code":"request_timeout"' in answer, answer
    assert SLOW_CLIENT_TIMEOUT_S * 0.9 <= took < SLOW_CLIENT_TIMEOUT_S + 5


def test_a_body_that_never_comes_is_cut_off(server):
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {KEY}\r\n"
            "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"model\"")
    answer, took = _exchange(server, head.encode())
    assert answer.startswith(b"HTTP/1.1 408 ") and b"request body was not received within 1s" in answer, answer
    assert took < SLOW_CLIENT_TIMEOUT_S + 5  # and the connection is closed (the read above ended)


def test_an_idle_keep_alive_connection_is_closed(server):
    request = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    answer, took = _exchange(server, request)
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert took < 5 + 5  # uvicorn's keep-alive timeout (AUGSERVE_KEEPALIVE_TIMEOUT_S, 5 s) closed it


@pytest.mark.parametrize("stream", [False, True], ids=["non-streaming", "stream-before-its-first-event"])
def test_a_client_leaving_before_the_response_cancels_its_request(server, redis_server, stream):
    """Nothing has been sent back yet: only the disconnect tells the gateway, which marks the
    request cancelled for its engine worker (tests/e2e/test_cancellation.py: the engine frees it)."""
    engine = Engine(redis_server)
    body = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "stream": stream}).encode()
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {KEY}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    host, port = server.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(head + body)
        req = engine.next_request()
        assert not engine.redis.exists(cancelled_request(req.request_id))
    deadline = time.monotonic() + 10
    while not engine.redis.exists(cancelled_request(req.request_id)):
        assert time.monotonic() < deadline, "the request of a client that left was never cancelled"
        time.sleep(0.05)
