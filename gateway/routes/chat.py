"""POST /v1/chat/completions."""

from __future__ import annotations

from fastapi import APIRouter, Request

from gateway.deps import (
    CallerDep,
    ChatBody,
    ChatTicket,
    EngineDep,
    ProgramIdHeader,
    RendererDep,
    SettingsDep,
    TraceparentHeader,
)
from gateway.openapi import request_body
from gateway.protocol import ChatCompletionRequest
from gateway.responses import ChatFormat
from gateway.routes.generation import generate

router = APIRouter(tags=["chat"])


@router.post("/chat/completions", openapi_extra=request_body(ChatCompletionRequest),
             summary="OpenAI chat completions (plus the plan/program_id/ignore_eos extensions)")
async def create_chat_completion(request: Request, caller: CallerDep, ticket: ChatTicket, body: ChatBody,
                                 engine: EngineDep, renderer: RendererDep, settings: SettingsDep,
                                 x_program_id: ProgramIdHeader = None, traceparent: TraceparentHeader = None):
    prompt = await renderer.chat(body)
    return await generate(request=request, caller=caller, ticket=ticket, body=body, prompt=prompt,
                          prompt_param="messages", fmt=ChatFormat(), engine=engine, renderer=renderer,
                          settings=settings, program_id=x_program_id, traceparent=traceparent)
