"""GET /health: up when Redis (the way to the engine workers) answers."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError

from gateway.deps import RedisDep
from gateway.errors import error_body

router = APIRouter(tags=["health"])
PING_TIMEOUT_S = 2.0


@router.get("/health")
async def health(redis: RedisDep) -> JSONResponse:
    try:
        await asyncio.wait_for(redis.ping(), PING_TIMEOUT_S)
    except (RedisError, OSError, TimeoutError) as exc:
        reason = str(exc) or type(exc).__name__
        body = {"status": "unavailable", "redis": reason,
                **error_body(503, f"redis is unreachable: {reason}", code="redis_unavailable")}
        return JSONResponse(body, status_code=503)
    return JSONResponse({"status": "ok", "redis": "ok"})
