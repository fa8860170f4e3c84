"""GET /metrics: Prometheus exposition of the metrics declared in gateway.metrics (operator key)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway.deps import require_operator_key

# Behind an operator key when authentication is on: the counters tell a stranger the load and
# the traffic of every tenant.
router = APIRouter(tags=["metrics"], dependencies=[Depends(require_operator_key)])


@router.get("/metrics")
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
