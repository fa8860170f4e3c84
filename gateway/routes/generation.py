"""The flow both completion routes share: admit, submit to the engine, relay its events."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import JSONResponse, StreamingResponse
from opentelemetry import trace
from starlette.background import BackgroundTask

from common import tracing
from gateway.auth import Caller, program_of
from gateway.deps import Ticket
from gateway.disconnect import unless_disconnected
from gateway.engine import EngineClient
from gateway.engine_request import admitted_max_tokens, build_engine_request
from gateway.errors import ApiError
from gateway.key_limits import KeyLimits
from gateway.permissions import check_scope
from gateway.prompts import Prompt, PromptRenderer
from gateway.protocol import GenerationFields
from gateway.relay import respond
from gateway.responses import Exchange, ResponseFormat
from gateway.settings import GatewaySettings


async def generate(*, request: Request, caller: Caller, ticket: Ticket, body: GenerationFields, prompt: Prompt,
                   prompt_param: str, fmt: ResponseFormat, engine: EngineClient, renderer: PromptRenderer,
                   settings: GatewaySettings, program_id: str | None,
                   traceparent: str | None) -> JSONResponse | StreamingResponse:
    check_scope(body, caller)
    conflict = body.conflict()
    if conflict is not None:
        raise ApiError(400, conflict[1], code="invalid_request", param=conflict[0])
    max_tokens = admitted_max_tokens(body, len(prompt.token_ids), max_model_len=settings.max_model_len,
                                     default_max_tokens=settings.default_max_tokens, prompt_param=prompt_param)
    limits: KeyLimits = request.app.state.key_limits
    # n choices are n engine requests, each up to max_tokens over the same prompt.
    await limits.spend_tokens(caller, body.choices * (len(prompt.token_ids) + max_tokens))
    trace.get_current_span().set_attributes({
        "gen_ai.operation.name": "chat" if fmt.object.startswith("chat") else "text_completion",
        "gen_ai.request.model": body.model, "gen_ai.request.max_tokens": max_tokens,
        "gen_ai.request.stream": bool(body.stream), "augserve.request_id": ticket.request_id,
        "augserve.prompt_tokens": len(prompt.token_ids)})
    # The engine's spans are children of this request's span (FastAPI's, when traces are on);
    # with traces off the client's own traceparent, if any, is passed on unchanged.
    parent = tracing.current_traceparent() or traceparent
    program = program_of(caller, body.program_id or program_id)
    # n choices are n engine requests: each its own session, pausing and resuming on its own.
    requests = [build_engine_request(request_id=choice_request_id(ticket.request_id, i), body=body, prompt=prompt,
                                     max_tokens=max_tokens, eos_token_ids=renderer.eos_token_ids,
                                     program_id=program, traceparent=parent, vocab_size=renderer.vocab_size,
                                     choice_index=i)
                for i in range(body.choices)]
    lease = await limits.acquire(caller, ticket.request_id)
    try:
        for engine_request in requests:
            await engine.submit(engine_request)
        response = await unless_disconnected(request, respond(
            [engine.events(r.request_id, settings.request_timeout_s) for r in requests], fmt,
            Exchange(request_id=ticket.request_id, model=settings.model_id, created=ticket.created,
                     prompt_token_ids=prompt.token_ids if body.return_token_ids else None,
                     prompt_tokens=len(prompt.token_ids)),
            stream=body.stream, include_usage=body.include_usage, started=ticket.started,
        ))
    except BaseException:
        await limits.release(lease)
        raise
    if isinstance(response, StreamingResponse):
        # Starlette runs it once the stream has ended, the client's leaving included.
        response.background = BackgroundTask(limits.release, lease)
    else:
        await limits.release(lease)
    return response


def choice_request_id(request_id: str, index: int) -> str:
    """Choice 0 runs under the request's own id (X-Request-Id); choice i under `<id>-<i>`."""
    return request_id if index == 0 else f"{request_id}-{index}"
