"""HTTP face of the estimator: estimates for operators, dashboards and non-Python clients.

The engine worker itself uses estimator.client directly (no HTTP hop on its hot path).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from common.schemas import API_KINDS
from estimator.client import EstimatorClient
from estimator.defaults import UnknownApi
from estimator.metrics import make_registry
from estimator.settings import EstimatorSettings
from estimator.store import DurationStore


def create_app(settings: EstimatorSettings | None = None, client: EstimatorClient | None = None) -> FastAPI:
    settings = settings or EstimatorSettings()
    if client is None:
        store = DurationStore.from_url(settings.redis_url, time_scale=settings.time_scale)
        client = EstimatorClient(store, ttl_s=settings.estimator_cache_ttl_s)
    registry = make_registry(client)
    app = FastAPI(title="augserve estimator", version="1")

    @app.exception_handler(UnknownApi)
    async def _unknown_api(_: Request, exc: UnknownApi) -> JSONResponse:
        return JSONResponse(status_code=404, content={"error": {"code": "unknown_api", "message": str(exc)}})

    @app.get("/health")
    def health() -> dict[str, Any]:
        redis_ok = all(s.redis_ok for s in client.snapshots().values())
        # Healthy even when Redis is down: the service still answers, with stated defaults.
        return {"status": "ok", "redis": redis_ok}

    @app.get("/v1/estimates")
    def all_estimates() -> dict[str, Any]:
        stats = client.all_stats()
        return {"time_scale": client.store.time_scale, "estimates": [stats[a].model_dump() for a in API_KINDS]}

    @app.get("/v1/estimates/{api}")
    def one_estimate(api: str, elapsed_s: Annotated[float, Query(ge=0, le=86400)] = 0.0) -> dict[str, Any]:
        snap = client.snapshot(api)
        return {
            **client.stats(api).model_dump(),
            "elapsed_s": elapsed_s,
            "expected_remaining_s": client.expected_remaining(api, elapsed_s),
            "redis": snap.redis_ok,
        }

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app
