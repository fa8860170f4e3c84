"""Request dependencies as typed `Annotated` aliases (FastAPI full-stack template style).

Order matters and is the order of a route's parameters: the API key is checked (router level)
before the body is read, the body's size before it is parsed, its shape before its model name.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Protocol, TypeVar

from fastapi import Depends, Header, Request
from pydantic import ValidationError
from redis.asyncio import Redis

from gateway.auth import Caller, authenticate, require_operator
from gateway.engine import EngineClient
from gateway.errors import ApiError, validation_error
from gateway.prompts import PromptRenderer
from gateway.protocol import ChatCompletionRequest, CompletionRequest
from gateway.settings import GatewaySettings
from gateway.tokenization import TOKENIZE_REQUEST, DetokenizeRequest, TokenizeChatRequest, TokenizeCompletionRequest


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


async def require_api_key(request: Request, settings: SettingsDep) -> Caller:
    """The router-level check (gateway/auth.py); a route naming CallerDep gets the same Caller
    (FastAPI runs one dependency once per request)."""
    return authenticate(request, settings)


CallerDep = Annotated[Caller, Depends(require_api_key)]


async def require_operator_key(caller: CallerDep) -> None:
    """Operator pages (/metrics, the API docs): any caller when authentication is off."""
    require_operator(caller, "this page")


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


def _require_json(request: Request) -> None:
    """Only application/json: a browser sends text/plain, form and multipart bodies cross-site
    without a preflight, so accepting them would let any web page post to a local gateway."""
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type != "application/json":
        shown = media_type or "none"
        raise ApiError(415, f"Content-Type must be application/json (got {shown})", code="unsupported_media_type",
                       param="Content-Type")


async def read_body(request: Request, settings: SettingsDep) -> bytes:
    """The raw JSON body: 415 unless application/json, 413 past max_body_bytes (by Content-Length
    and by bytes read), 408 when it is not all in within body_timeout_s (a client that never
    sends the body it announced holds nothing longer)."""
    _require_json(request)
    try:
        async with asyncio.timeout(settings.body_timeout_s):
            return await _read_limited(request, settings.max_body_bytes)
    except TimeoutError:
        raise ApiError(408, f"the request body was not received within {settings.body_timeout_s:g}s",
                       code="request_timeout", headers={"Connection": "close"}) from None


async def _read_limited(request: Request, limit: int) -> bytes:
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


class NamesModel(Protocol):
    @property
    def model(self) -> str | None: ...


Parsed = TypeVar("Parsed", bound=NamesModel)


def parse_body(validate: Callable[[bytes], Parsed], raw: bytes, settings: GatewaySettings) -> Parsed:
    """The body, or a 400 naming every failing field; then a 404 unless it names the served model
    (the tokenizer routes, as vLLM's, also take no model: the served one)."""
    try:
        body = validate(raw)
    except ValidationError as exc:
        raise validation_error(list(exc.errors())) from None
    if body.model is not None and body.model != settings.model_id:
        raise ApiError(404, f"the model {body.model!r} does not exist: this server serves {settings.model_id!r}",
                       code="model_not_found", param="model")
    return body


# Sync on purpose: FastAPI runs these on its thread pool, so parsing a large body never stalls
# the event loop that streams other requests' output.
def chat_body(raw: RawBody, settings: SettingsDep) -> ChatCompletionRequest:
    return parse_body(ChatCompletionRequest.model_validate_json, raw, settings)


def completion_body(raw: RawBody, settings: SettingsDep) -> CompletionRequest:
    return parse_body(CompletionRequest.model_validate_json, raw, settings)


def tokenize_body(raw: RawBody, settings: SettingsDep) -> TokenizeCompletionRequest | TokenizeChatRequest:
    return parse_body(TOKENIZE_REQUEST.validate_json, raw, settings)


def detokenize_body(raw: RawBody, settings: SettingsDep) -> DetokenizeRequest:
    return parse_body(DetokenizeRequest.model_validate_json, raw, settings)


ChatBody = Annotated[ChatCompletionRequest, Depends(chat_body)]
CompletionBody = Annotated[CompletionRequest, Depends(completion_body)]
TokenizeBody = Annotated[TokenizeCompletionRequest | TokenizeChatRequest, Depends(tokenize_body)]
DetokenizeBody = Annotated[DetokenizeRequest, Depends(detokenize_body)]
