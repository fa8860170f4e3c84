"""/v1/models, /health, /metrics and API keys."""

from __future__ import annotations

import asyncio
import json

import pytest
from prometheus_client import REGISTRY

from common.names import WORKERS_HASH
from stack.processes import free_port
from tests.gateway.conftest import MODEL, assert_openai_error, delta, final

pytestmark = pytest.mark.asyncio

KEY = "sk-test-0123456789"


async def test_models_lists_the_served_model_with_the_worker_registry(gw):
    status = {"worker_id": "engine-0", "policy": "infercept", "running": 3}
    await gw.engine.redis.hset(WORKERS_HASH, mapping={"engine-0": json.dumps(status), "engine-1": "not json"})
    page = await gw.openai().models.list()
    assert [m.id for m in page.data] == [MODEL]
    card = page.data[0]
    assert card.object == "model" and card.owned_by == "augserve"
    assert card.model_extra["workers"] == {"engine-0": status, "engine-1": "not json"}
    assert card.model_extra["max_model_len"] == gw.settings.max_model_len
    assert (await gw.openai().models.retrieve(MODEL)).id == MODEL
    response = await gw.http.get("/v1/models/gpt-4o")
    assert assert_openai_error(response, 404, "'gpt-4o'")["code"] == "model_not_found"


async def test_models_without_any_worker(gw):
    body = (await gw.http.get("/v1/models")).json()
    assert body["object"] == "list" and body["data"][0]["workers"] == {}


async def test_health_checks_redis(gw, start_gateway):
    response = await gw.http.get("/health")
    assert response.status_code == 200 and response.json() == {"status": "ok", "redis": "ok"}
    down = await start_gateway(redis_url=f"redis://127.0.0.1:{free_port()}/0", redis_submit_retry_s=0.5)
    response = await down.http.get("/health")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable" and "redis is unreachable" in body["error"]["message"]
    # Redis down at submit time: a clean 503, not a hang.
    response = await down.http.post("/v1/chat/completions", json={"model": MODEL, "messages": [
        {"role": "user", "content": "x"}]})
    assert_openai_error(response, 503, "engine queue is unavailable")


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_metrics_count_requests_durations_ttft_and_inflight(gw):
    route = "/v1/chat/completions"
    ok_before = _sample("augserve_gateway_requests_total", route=route, status="200")
    bad_before = _sample("augserve_gateway_requests_total", route=route, status="400")
    ttft_before = _sample("augserve_gateway_time_to_first_token_seconds_count")
    inflight_before = _sample("augserve_gateway_inflight_requests")
    task = asyncio.create_task(gw.http.post(route, json={"model": MODEL,
                                                         "messages": [{"role": "user", "content": "x"}]}))
    req = await gw.engine.next_request()
    assert _sample("augserve_gateway_inflight_requests") == inflight_before + 1
    await gw.engine.emit(req.request_id, delta("a"), final("a"))
    assert (await task).status_code == 200
    await gw.http.post(route, json={"model": MODEL})
    assert _sample("augserve_gateway_requests_total", route=route, status="200") == ok_before + 1
    assert _sample("augserve_gateway_requests_total", route=route, status="400") == bad_before + 1
    assert _sample("augserve_gateway_time_to_first_token_seconds_count") == ttft_before + 1
    assert _sample("augserve_gateway_inflight_requests") == inflight_before
    text = (await gw.http.get("/metrics")).text
    assert 'augserve_gateway_request_duration_seconds_count{route="/v1/chat/completions"}' in text
    assert "augserve_gateway_inflight_requests" in text
    # Unknown paths share one label: no cardinality from scanners.
    await gw.http.get("/wp-admin/x")
    assert _sample("augserve_gateway_requests_total", route="unmatched", status="404") >= 1


OPERATOR_KEY = "sk-operator-key-789"


async def test_api_keys(start_gateway):
    gw = await start_gateway(api_keys=[KEY, "sk-other-key-456"], operator_api_keys=[OPERATOR_KEY])
    body = {"model": MODEL, "messages": [{"role": "user", "content": "x"}]}
    missing = await gw.http.post("/v1/chat/completions", json=body)
    error = assert_openai_error(missing, 401, "missing API key", "Authorization: Bearer")
    assert error["type"] == "authentication_error" and missing.headers["www-authenticate"] == "Bearer"
    wrong = await gw.http.post("/v1/chat/completions", json=body, headers={"Authorization": "Bearer sk-nope-000000"})
    assert assert_openai_error(wrong, 401, "invalid API key")["code"] == "invalid_api_key"
    assert_openai_error(await gw.http.get("/v1/models"), 401, "missing API key")
    # Auth comes first: a bad body without a key is still a 401.
    assert_openai_error(await gw.http.post("/v1/chat/completions", content=b"{"), 401, "missing API key")
    assert await gw.engine.queued() == 0
    # /health stays open for probes; /metrics and the API docs need an operator key.
    assert (await gw.http.get("/health")).status_code == 200
    for page in ("/metrics", "/openapi.json", "/docs"):
        assert_openai_error(await gw.http.get(page), 401, "missing API key")
        plain = await gw.http.get(page, headers={"Authorization": f"Bearer {KEY}"})
        assert assert_openai_error(plain, 403, "operator key")["code"] == "insufficient_scope"
        assert (await gw.http.get(page, headers={"Authorization": f"Bearer {OPERATOR_KEY}"})).status_code == 200
    # The openai client's api_key works, each configured key does.
    assert [m.id for m in (await gw.openai(api_key=KEY).models.list()).data] == [MODEL]
    task = asyncio.create_task(gw.http.post("/v1/chat/completions", json=body,
                                            headers={"Authorization": "Bearer sk-other-key-456"}))
    req = await gw.engine.next_request()
    await gw.engine.emit(req.request_id, final())
    assert (await task).status_code == 200
