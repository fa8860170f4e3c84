"""The gateway's FastAPI application: create_app(settings) wires settings, resources and routes."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from redis.asyncio import Redis

from gateway import errors
from gateway.deps import require_api_key
from gateway.engine import EngineClient
from gateway.host_guard import HostGuard
from gateway.key_limits import KeyLimits
from gateway.metrics import MetricsMiddleware
from gateway.openapi import operator_pages
from gateway.prompts import PromptRenderer
from gateway.protocol import ChatCompletionRequest, CompletionRequest
from gateway.routes import health, metrics, tokenize, v1
from gateway.routing import Router
from gateway.settings import GatewaySettings
from gateway.tokenization import DetokenizeRequest, TokenizeChatRequest, TokenizeCompletionRequest


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    settings = settings or GatewaySettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The tokenizer loads here, once: a missing or broken model folder stops the start.
        renderer = PromptRenderer(settings.model_path, default_system=settings.default_system_prompt,
                                  http_apis=set(settings.http_apis))
        redis = Redis.from_url(settings.redis_url, decode_responses=True,
                               max_connections=settings.redis_max_connections)
        app.state.renderer = renderer
        app.state.redis = redis
        app.state.engine = EngineClient(redis, Router(redis, settings.routing, settings.routing_margin,
                                                       settings.worker_stale_s),
                                        submit_retry_s=settings.redis_submit_retry_s, outage_s=settings.redis_outage_s,
                                        no_worker_grace_s=settings.no_worker_grace_s)
        app.state.key_limits = KeyLimits(redis, settings.redis_url,
                                         max_concurrent=settings.max_concurrent_requests_per_key,
                                         tokens_per_minute=settings.tokens_per_minute_per_key,
                                         lease_s=settings.request_timeout_s)
        app.state.created = int(time.time())
        try:
            yield
        finally:
            await redis.aclose()
            renderer.close()

    # FastAPI's own /docs, /redoc and /openapi.json are off: gateway/openapi.py serves the
    # document (with the request schemas) behind an operator key.
    app = FastAPI(title="augserve gateway", summary="OpenAI-compatible gateway of the augserve stack",
                  lifespan=lifespan, openapi_url=None, docs_url=None, redoc_url=None)
    app.state.settings = settings
    errors.install(app)
    app.add_middleware(MetricsMiddleware)
    app.add_middleware(HostGuard, hosts=settings.served_hosts())  # outermost: before anything runs
    app.include_router(v1, prefix="/v1", dependencies=[Depends(require_api_key)])
    app.include_router(tokenize.router)  # vLLM's paths: /tokenize, /detokenize (API key checked)
    app.include_router(health.router)
    app.include_router(metrics.router)
    app.include_router(operator_pages([ChatCompletionRequest, CompletionRequest, TokenizeCompletionRequest,
                                       TokenizeChatRequest, DetokenizeRequest]))
    if settings.otlp_endpoint:
        _trace(app)
    return app


def _trace(app: FastAPI) -> None:
    """A server span per API request (the root of the request's trace, or a child of the client's
    traceparent). Not for /health and /metrics (probes and scrapes), and no span per ASGI
    send/receive: a stream would get one per chunk."""
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(app, excluded_urls="/health$,/metrics$", exclude_spans=["receive", "send"])
