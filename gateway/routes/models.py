"""GET /v1/models and /v1/models/{id}: the one served model, with the engine workers' status.

Extension fields of the model object: `max_model_len`, and `workers` — the engine worker registry
(WORKERS_HASH: worker id -> the status object that worker last wrote, e.g. its active policy),
passed through as is; null when Redis cannot be read; and `routing`, how this gateway places
requests on the workers (AUGSERVE_ROUTING, its margin and the heartbeat age that counts as dead).
"""

from __future__ import annotations

import json
import logging
from typing import Any, cast

from fastapi import APIRouter, Request
from redis.exceptions import RedisError

from common.names import WORKERS_HASH
from gateway.deps import RedisDep, SettingsDep
from gateway.errors import ApiError

log = logging.getLogger(__name__)
router = APIRouter(tags=["models"])


def _decoded(value: str) -> Any:
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


async def _model_card(request: Request, settings: SettingsDep, redis: RedisDep) -> dict[str, Any]:
    try:
        registry = cast(dict[str, str], await redis.hgetall(WORKERS_HASH))  # decode_responses
        workers: dict[str, Any] | None = {k: _decoded(v) for k, v in registry.items()}
    except RedisError as exc:
        log.warning("worker registry unreadable: %s", exc)
        workers = None
    return {"id": settings.model_id, "object": "model", "created": request.app.state.created,
            "owned_by": "augserve", "max_model_len": settings.max_model_len, "workers": workers,
            "routing": request.app.state.engine.router.describe()}


@router.get("/models")
async def list_models(request: Request, settings: SettingsDep, redis: RedisDep) -> dict[str, Any]:
    return {"object": "list", "data": [await _model_card(request, settings, redis)]}


@router.get("/models/{model_id:path}")
async def retrieve_model(model_id: str, request: Request, settings: SettingsDep, redis: RedisDep) -> dict[str, Any]:
    if model_id != settings.model_id:
        raise ApiError(404, f"the model {model_id!r} does not exist: this server serves {settings.model_id!r}",
                       code="model_not_found", param="model")
    return await _model_card(request, settings, redis)
