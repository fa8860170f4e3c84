"""Request dependencies as typed `Annotated` aliases (FastAPI full-stack template style).

Order matters and is the order of a route's parameters: the API key is checked (router level)
before the body is read, the body's size before it is parsed, its shape before its model name.
"""

from __future__ import annotations

import hmac
import time
import uuid
from dataclasses import dataclass
from typing import Annotated, TypeVar

from fastapi import Depends, Header, Request
from pydantic import ValidationError
from redis.asyncio import Redis

from gateway.engine import EngineClient
from gateway.errors import ApiError, validation_error
from gateway.prompts import PromptRenderer
from gateway.protocol import ChatCompletionRequest, CompletionRequest, GenerationFields
from gateway.settings import GatewaySettings


async def get_settings(request: Request) -> GatewaySettings:
    return request.app.state.settings


async def get_redis(request: Request) -> Redis:
    return request.app.state.redis


async def get_engine(request: Request) -> EngineClient:
    return request.app.state.engine


async def get_renderer(request: Request) -> PromptRenderer:
    return request.app.state.renderer


SettingsDep = Annotated[GatewaySettings, Depends(get_settings)]
RedisDep = Annotated[Redis, Depends(get_redis)]
EngineDep = Annotated[EngineClient, Depends(get_engine)]
RendererDep = Annotated[PromptRenderer, Depends(get_renderer)]
ProgramIdHeader = Annotated[str | None, Header(alias="X-Program-Id", max_length=256)]
TraceparentHeader = Annotated[str | None, Header(max_length=256)]


async def require_api_key(request: Request, settings: SettingsDep) -> None:
    """Bearer keys, as the openai client sends them. No keys configured: authentication is off."""
    if not settings.api_keys:
        return
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    challenge = {"WWW-Authenticate": "Bearer"}
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "missing API key: send it as the header 'Authorization: Bearer <key>'",
                       code="missing_api_key", headers=challenge)
    given = token.strip().encode()
    # compare_digest against every key: no early exit that would time which key prefix matched.
    if not sum(hmac.compare_digest(given, key.encode()) for key in settings.api_keys):
        raise ApiError(401, "invalid API key", code="invalid_api_key", headers=challenge)


@dataclass(frozen=True)
class Ticket:
    """One generation request's identity, fixed before anything can fail (X-Request-Id)."""

    request_id: str
    started: float
    """perf_counter() at arrival: time to first token counts from here."""
    created: int


def _ticket(prefix: str):
    async def make(request: Request) -> Ticket:
        ticket = Ticket(f"{prefix}-{uuid.uuid4().hex}", time.perf_counter(), int(time.time()))
        request.state.request_id = ticket.request_id
        return ticket

    return make


ChatTicket = Annotated[Ticket, Depends(_ticket("chatcmpl"))]
CompletionTicket = Annotated[Ticket, Depends(_ticket("cmpl"))]


async def read_body(request: Request, settings: SettingsDep) -> bytes:
    """The raw body, refused (413) past max_body_bytes by Content-Length and by bytes read."""
    limit = settings.max_body_bytes
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise ApiError(400, f"Content-Length {declared!r} is not a byte count", code="invalid_request")
        if int(declared) > limit:
            raise ApiError(413, f"request body of {declared} bytes is over the limit of {limit} bytes",
                           code="request_too_large")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"request body is over the limit of {limit} bytes", code="request_too_large")
        chunks.append(chunk)
    return b"".join(chunks)


RawBody = Annotated[bytes, Depends(read_body)]
Body = TypeVar("Body", bound=GenerationFields)


def parse_body(schema: type[Body], raw: bytes, settings: GatewaySettings) -> Body:
    try:
        body = schema.model_validate_json(raw)
    except ValidationError as exc:
        raise validation_error(list(exc.errors())) from None
    if body.model != settings.model_id:
        raise ApiError(404, f"the model {body.model!r} does not exist: this server serves {settings.model_id!r}",
                       code="model_not_found", param="model")
    return body


# Sync on purpose: FastAPI runs these on its thread pool, so parsing a large body never stalls
# the event loop that streams other requests' output.
def chat_body(raw: RawBody, settings: SettingsDep) -> ChatCompletionRequest:
    return parse_body(ChatCompletionRequest, raw, settings)


def completion_body(raw: RawBody, settings: SettingsDep) -> CompletionRequest:
    return parse_body(CompletionRequest, raw, settings)


ChatBody = Annotated[ChatCompletionRequest, Depends(chat_body)]
CompletionBody = Annotated[CompletionRequest, Depends(completion_body)]
