"""A client that leaves mid-stream gets its request aborted in the engine (gateway cancel key ->
engine worker's CancelWatch -> the session's vLLM output stream closed -> vLLM aborts it): the
worker stops holding it long before its planned tokens could have been generated."""

from __future__ import annotations

import json
import socket
import time
import urllib.request

import httpx

from tests.e2e.conftest import TIME_SCALE
from tests.e2e.test_scripted_requests import MODEL

PLANNED_TOKENS = 1500
"""Over a minute of generation for the default model on this CPU."""
BOUND_S = 15.0
"""Cancel poll (0.5 s) + abort + the in-flight heartbeat (2 s), with room for a loaded machine."""


def _cancelled_count(metrics_port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as response:
        text = response.read().decode()
    prefix = 'augserve_engine_requests_total{finish_reason="cancelled",worker="engine-0"} '
    return sum(float(line[len(prefix):]) for line in text.splitlines() if line.startswith(prefix))


def _leave_and_wait_until_freed(stack, body: dict, leave_when) -> float:
    """Streams `body`, closes the connection once `leave_when(chunks_seen)` holds, and returns how
    long the engine then took to drop the request (cancelled count up, nothing in flight)."""
    before = _cancelled_count(stack.cfg.engine_metrics_port)
    chunks = 0
    with httpx.stream("POST", f"{stack.cfg.gateway_url}/v1/chat/completions", json=body, timeout=60) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            chunks += '"content"' in line
            if leave_when(chunks):
                break  # leaving the block closes the connection mid-stream
    left_at = time.monotonic()
    while _cancelled_count(stack.cfg.engine_metrics_port) < before + 1 or stack.worker_status().get("inflight"):
        assert time.monotonic() - left_at < BOUND_S, ("the engine still serves the abandoned request",
                                                      stack.worker_status())
        time.sleep(0.2)
    return time.monotonic() - left_at


def test_a_client_leaving_a_stream_frees_the_engine(stack):
    body = {"model": MODEL, "messages": [{"role": "user", "content": "Count slowly."}], "stream": True,
            "temperature": 0, "plan": {"segments": [{"generate_tokens": PLANNED_TOKENS}]}}
    freed_after = _leave_and_wait_until_freed(stack, body, lambda chunks: chunks >= 3)
    assert freed_after < PLANNED_TOKENS / 100  # far sooner than generating it all would take


def test_a_request_paused_at_a_call_is_dropped_without_waiting_for_the_call(stack):
    # The stand-in waits duration x the stack's time scale; it keeps one executor slot that long
    # (a Celery task is not revoked), so not longer than needed to tell the two apart.
    call_s = 10.0
    body = {"model": MODEL, "messages": [{"role": "user", "content": "Ask the chatbot."}], "stream": True,
            "temperature": 0, "plan": {"segments": [
                {"generate_tokens": 4, "api": "chatbot", "duration_s": call_s / TIME_SCALE, "return_tokens": 4},
                {"generate_tokens": 4}]}}

    def paused(chunks: int) -> bool:
        if chunks == 0:
            return False
        deadline = time.monotonic() + 10
        while not stack.worker_status().get("paused"):  # the heartbeat reports it within 2 s
            assert time.monotonic() < deadline, "the request never paused at its call"
            time.sleep(0.1)
        return True

    assert _leave_and_wait_until_freed(stack, body, paused) < call_s


def test_a_client_leaving_a_non_streaming_request_frees_the_engine(stack):
    """No byte has gone back to the client yet: the gateway learns it left only from the
    disconnect (gateway/disconnect.py), and the engine's in-flight count returns to its value
    from before the request."""
    inflight_before = stack.worker_status().get("inflight", 0)
    before = _cancelled_count(stack.cfg.engine_metrics_port)
    body = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "Count slowly."}], "temperature": 0,
                       "plan": {"segments": [{"generate_tokens": PLANNED_TOKENS}]}}).encode()
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", stack.cfg.gateway_port), timeout=30) as sock:
        sock.sendall(head + body)
        deadline = time.monotonic() + 30
        while stack.worker_status().get("inflight", 0) <= inflight_before:  # the heartbeat shows it running
            assert time.monotonic() < deadline, "the request never reached the engine"
            time.sleep(0.1)
    left_at = time.monotonic()
    while (_cancelled_count(stack.cfg.engine_metrics_port) < before + 1
           or stack.worker_status().get("inflight", 0) != inflight_before):
        assert time.monotonic() - left_at < BOUND_S, ("the engine still serves the abandoned request",
                                                      stack.worker_status())
        time.sleep(0.2)
    assert time.monotonic() - left_at < PLANNED_TOKENS / 100
