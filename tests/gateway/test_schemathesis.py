"""Schemathesis over the real gateway process's own OpenAPI document (gateway/openapi.py): valid
and invalid requests generated from the published request schemas, sent over HTTP with a plain
key. None gets a 5xx; every refusal is in OpenAI's error shape. A thread plays the engine worker
and answers every request that gets through (a final event, after a delta for streams)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from tests.gateway.conftest import KEY, MODEL, OPERATOR_KEY, Engine, delta, final

EXAMPLES_PER_OPERATION = 40
"""Per operation and mode (valid, invalid): 640 requests in all."""


@pytest.fixture
def answering_engine(redis_server) -> Iterator[list[str]]:
    engine, stop, answered = Engine(redis_server), threading.Event(), []

    def answer() -> None:
        while not stop.is_set():
            reply = engine.redis.xread({"augserve:engine:requests": engine.last_id}, count=16, block=200)
            for _, entries in reply or []:
                for entry_id, fields in entries:
                    engine.last_id = entry_id
                    request_id = engine.parse(fields).request_id
                    engine.emit(request_id, delta("Hi"), final("Hi"))
                    answered.append(request_id)

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    yield answered
    stop.set()
    thread.join(timeout=5)


@pytest.fixture(scope="module")
def api_schema(server):
    # The document itself is an operator page; the cases go out with a plain key.
    return schemathesis.openapi.from_url(f"{server}/openapi.json", headers={"Authorization": f"Bearer {OPERATOR_KEY}"})


OPERATIONS = [("POST", "/v1/chat/completions"), ("POST", "/v1/completions"), ("GET", "/v1/models"),
              ("GET", "/v1/models/{model_id}"), ("POST", "/tokenize"), ("POST", "/detokenize"), ("GET", "/health"),
              ("GET", "/metrics")]


def test_the_document_lists_every_route(api_schema):
    listed = {(op.method.upper(), op.path) for op in (r.ok() for r in api_schema.get_all_operations())}
    assert listed == set(OPERATIONS)


CASES = [(*op, GenerationMode.POSITIVE) for op in OPERATIONS] + [
    (*op, GenerationMode.NEGATIVE) for op in OPERATIONS if op[0] == "POST"]  # the GETs take nothing to break


# Driven through Hypothesis directly (the operation's strategy): schemathesis's pytest loader does
# not run under this pytest.
@pytest.mark.parametrize(("method", "path", "mode"), CASES, ids=[f"{m} {p} {g.value}" for m, p, g in CASES])
def test_no_request_gets_a_server_error(api_schema, server, answering_engine, method, path, mode):
    operation = api_schema[path][method]

    @settings(max_examples=EXAMPLES_PER_OPERATION, suppress_health_check=list(HealthCheck), database=None)
    @given(case=operation.as_strategy(generation_mode=mode))
    def check(case) -> None:
        if mode is GenerationMode.POSITIVE and isinstance(case.body, dict) and "model" in case.body:
            # The one served model: any other name stops at its 404 before the rest is looked at.
            case.body["model"] = MODEL
        response = case.call(base_url=server, headers={"Authorization": f"Bearer {KEY}"}, timeout=60)
        assert response.status_code < 500, (case.as_curl_command(), response.text)
        if response.status_code >= 400:
            error = response.json()["error"]
            assert set(error) == {"message", "type", "param", "code"} and error["message"], response.text

    check()
