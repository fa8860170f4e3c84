"""The estimator's HTTP API in-process (TestClient), and `python -m estimator` as a real process."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import redis
from fastapi.testclient import TestClient

from common.schemas import API_KINDS
from estimator.service import create_app
from estimator.settings import EstimatorSettings
from estimator.store import DurationStore
from stack.processes import free_port, python_module


@pytest.fixture
def api(redis_server: str, redis_client: redis.Redis) -> Iterator[TestClient]:
    settings = EstimatorSettings(redis_url=redis_server, time_scale=1.0, estimator_cache_ttl_s=0)
    with TestClient(create_app(settings)) as client:
        yield client


def test_health(api: TestClient) -> None:
    assert api.get("/health").json() == {"status": "ok", "redis": True}


def test_all_estimates(api: TestClient, redis_client: redis.Redis) -> None:
    DurationStore(redis_client).record("qa", 0.5)
    body = api.get("/v1/estimates").json()
    assert [e["api"] for e in body["estimates"]] == list(API_KINDS)
    qa = next(e for e in body["estimates"] if e["api"] == "qa")
    assert (qa["count"], qa["mean_s"], qa["source"]) == (1, 0.5, "history")


def test_one_estimate_with_elapsed(api: TestClient, redis_client: redis.Redis) -> None:
    store = DurationStore(redis_client)
    for d in (1.0, 2.0, 3.0, 10.0):
        store.record("image", d)
    body = api.get("/v1/estimates/image", params={"elapsed_s": 2.5}).json()
    assert (body["api"], body["count"], body["elapsed_s"], body["expected_remaining_s"]) == ("image", 4, 2.5, 4.0)


def test_unknown_api_is_404(api: TestClient) -> None:
    response = api.get("/v1/estimates/fax")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "unknown_api"
    assert "unknown api kind 'fax'" in response.json()["error"]["message"]


def test_negative_elapsed_is_422(api: TestClient) -> None:
    assert api.get("/v1/estimates/qa", params={"elapsed_s": -1}).status_code == 422


def test_metrics(api: TestClient, redis_client: redis.Redis) -> None:
    store = DurationStore(redis_client)
    for d in (1.0, 3.0):
        store.record("tts", d)
    text = api.get("/metrics").text
    assert 'augserve_estimator_history_samples{api="tts"} 2.0' in text
    assert 'augserve_estimator_mean_seconds{api="tts"} 2.0' in text
    assert 'augserve_estimator_using_default{api="qa"} 1.0' in text
    assert "augserve_estimator_redis_up 1.0" in text


def test_redis_down_serves_defaults() -> None:
    settings = EstimatorSettings(redis_url=f"redis://127.0.0.1:{free_port()}/0", time_scale=0.5)
    with TestClient(create_app(settings)) as client:
        assert client.get("/health").json() == {"status": "ok", "redis": False}
        body = client.get("/v1/estimates/chatbot").json()
        assert (body["source"], body["mean_s"], body["redis"]) == ("default", 14.1, False)
        assert "augserve_estimator_redis_up 0.0" in client.get("/metrics").text


def test_python_m_estimator(redis_server: str, tmp_path) -> None:
    port = free_port()
    service = python_module("estimator", "estimator", env={
        "AUGSERVE_REDIS_URL": redis_server, "AUGSERVE_ESTIMATOR_PORT": str(port)}).start(tmp_path)
    base = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        try:
            return httpx.get(f"{base}/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        service.wait_until(healthy, 30, "/health")
        assert httpx.get(f"{base}/v1/estimates/calculator").json()["api"] == "calculator"
    finally:
        service.stop()
