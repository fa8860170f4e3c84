"""What one client may do to the gateway and to the others: hosts, media types, key scopes,
per-key limits and program namespaces (gateway/host_guard.py, auth.py, permissions.py,
key_limits.py), on the in-process app over a real Redis."""

from __future__ import annotations

import asyncio

from gateway.auth import key_id
from gateway.key_limits import inflight_key
from tests.gateway.conftest import MODEL, assert_openai_error, final

PLAIN, OTHER, OPERATOR = "sk-plain-key-0001", "sk-plain-key-0002", "sk-operator-key-01"
BODY = {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 8}
PLAN = {"segments": [{"generate_tokens": 2, "api": "chatbot", "duration_s": 3600, "return_tokens": 2},
                     {"generate_tokens": 2}]}


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def _answered(gw, request_coro):
    """Runs a request that reaches the engine stream, answers it, returns (response, EngineRequest)."""
    task = asyncio.create_task(request_coro)
    req = await gw.engine.next_request()
    await gw.engine.emit(req.request_id, final())
    return await task, req


async def test_unknown_host_headers_are_refused(start_gateway):
    gw = await start_gateway(allowed_hosts=[])  # only the loopback names
    error = assert_openai_error(await gw.http.get("/health"), 400, "Host 'gateway' is not served here")
    assert error["code"] == "invalid_host" and error["param"] == "Host"
    for host in ("localhost:8000", "127.0.0.1", "[::1]:8000"):
        assert (await gw.http.get("/health", headers={"Host": host})).status_code == 200, host
    # DNS rebinding: the attacker's name resolving to 127.0.0.1.
    assert_openai_error(await gw.http.get("/health", headers={"Host": "evil.example:8000"}), 400, "evil.example")
    assert (await (await start_gateway(allowed_hosts=["*"])).http.get(
        "/health", headers={"Host": "any.example"})).status_code == 200


async def test_bodies_must_be_json(gw):
    # A cross-site form post sends text/plain or a form: no preflight, so never accepted.
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None):
        headers = {"Content-Type": content_type} if content_type else {}
        response = await gw.http.post("/v1/chat/completions", content=b'{"model": "x"}', headers=headers)
        error = assert_openai_error(response, 415, "Content-Type must be application/json")
        assert error["param"] == "Content-Type"
    response, _ = await _answered(gw, gw.http.post("/v1/chat/completions", json=BODY,
                                                   headers={"Content-Type": "application/json; charset=utf-8"}))
    assert response.status_code == 200
    assert await gw.engine.queued() == 1


async def test_plans_need_an_operator_key(start_gateway):
    gw = await start_gateway(api_keys=[PLAIN], operator_api_keys=[OPERATOR])
    refused = await gw.http.post("/v1/chat/completions", json={**BODY, "plan": PLAN}, headers=auth(PLAIN))
    error = assert_openai_error(refused, 403, "plan", "operator key")
    assert (error["code"], error["param"]) == ("insufficient_scope", "plan")
    refused = await gw.http.post("/v1/completions", json={"model": MODEL, "prompt": "x", "plan": PLAN},
                                 headers=auth(PLAIN))
    assert_openai_error(refused, 403, "operator key")
    assert await gw.engine.queued() == 0
    response, req = await _answered(gw, gw.http.post("/v1/chat/completions", json={**BODY, "plan": PLAN},
                                                     headers=auth(OPERATOR)))
    assert response.status_code == 200 and req.plan is not None
    assert req.plan.segments[0].duration_s == 3600


async def test_program_ids_are_namespaced_per_key(start_gateway):
    gw = await start_gateway(api_keys=[PLAIN, OTHER], routing="program-affinity")
    programs = []
    for key in (PLAIN, OTHER):
        response, req = await _answered(gw, gw.http.post("/v1/chat/completions", json={**BODY, "program_id": "victim"},
                                                         headers=auth(key)))
        assert response.status_code == 200
        programs.append(req.program_id)
    assert programs == [f"{key_id(PLAIN)}/victim", f"{key_id(OTHER)}/victim"]
    assert PLAIN not in programs[0]  # the key itself never travels


async def test_concurrent_requests_per_key_are_limited_across_replicas(start_gateway, redis_async):
    # Two gateways on one Redis: the limit is the key's, not one replica's.
    first = await start_gateway(api_keys=[PLAIN, OTHER], operator_api_keys=[OPERATOR],
                                max_concurrent_requests_per_key=2)
    second = await start_gateway(api_keys=[PLAIN, OTHER], operator_api_keys=[OPERATOR],
                                 max_concurrent_requests_per_key=2)
    held = [asyncio.create_task(gw.http.post("/v1/chat/completions", json=BODY, headers=auth(PLAIN)))
            for gw in (first, second)]
    reqs = [await first.engine.next_request(), await first.engine.next_request()]
    assert await redis_async.zcard(inflight_key(key_id(PLAIN))) == 2
    over = await second.http.post("/v1/chat/completions", json=BODY, headers=auth(PLAIN))
    error = assert_openai_error(over, 429, "2 requests in flight")
    assert error["code"] == "concurrency_limit_exceeded" and over.headers["retry-after"] == "1"
    # Other keys, and operator keys, are not held back by it.
    for key in (OTHER, OPERATOR):
        response, _ = await _answered(first, first.http.post("/v1/chat/completions", json=BODY, headers=auth(key)))
        assert response.status_code == 200
    for req in reqs:
        await first.engine.emit(req.request_id, final())
    assert [r.status_code for r in await asyncio.gather(*held)] == [200, 200]
    assert await redis_async.zcard(inflight_key(key_id(PLAIN))) == 0  # released at the end
    response, _ = await _answered(first, second.http.post("/v1/chat/completions", json=BODY, headers=auth(PLAIN)))
    assert response.status_code == 200


async def test_a_stream_holds_its_lease_until_it_ends(start_gateway, redis_async):
    gw = await start_gateway(api_keys=[PLAIN], max_concurrent_requests_per_key=1)
    task = asyncio.create_task(gw.http.post("/v1/chat/completions", json={**BODY, "stream": True},
                                            headers=auth(PLAIN)))
    req = await gw.engine.next_request()
    await gw.engine.emit(req.request_id, final())
    assert (await task).status_code == 200
    assert await redis_async.zcard(inflight_key(key_id(PLAIN))) == 0


async def test_tokens_per_minute_per_key(start_gateway):
    gw = await start_gateway(api_keys=[PLAIN, OTHER], tokens_per_minute_per_key=100)
    sent = {**BODY, "max_tokens": 40}  # ~20 prompt tokens + 40: one fits in 100, two do not
    response, _ = await _answered(gw, gw.http.post("/v1/chat/completions", json=sent, headers=auth(PLAIN)))
    assert response.status_code == 200
    over = await gw.http.post("/v1/chat/completions", json=sent, headers=auth(PLAIN))
    error = assert_openai_error(over, 429, "100 tokens per minute")
    assert error["code"] == "tokens_per_minute_exceeded" and 1 <= int(over.headers["retry-after"]) <= 60
    response, _ = await _answered(gw, gw.http.post("/v1/chat/completions", json=sent, headers=auth(OTHER)))
    assert response.status_code == 200
    # One request that alone needs more than a minute's tokens could never run: a 400, not a 429.
    huge = await gw.http.post("/v1/chat/completions", json={**BODY, "max_tokens": 200}, headers=auth(OTHER))
    assert assert_openai_error(huge, 400, "over this key's limit")["param"] == "max_tokens"


async def test_the_openapi_document_publishes_the_request_schemas(gw):
    doc = (await gw.http.get("/openapi.json")).json()
    for path, model in (("/v1/chat/completions", "ChatCompletionRequest"), ("/v1/completions", "CompletionRequest")):
        body = doc["paths"][path]["post"]["requestBody"]
        assert body["content"]["application/json"]["schema"] == {"$ref": f"#/components/schemas/{model}"}
        assert "model" in doc["components"]["schemas"][model]["properties"]
    assert {"Plan", "PlanSegment", "ChatMessage"} <= set(doc["components"]["schemas"])
    assert (await gw.http.get("/docs")).status_code == 200
