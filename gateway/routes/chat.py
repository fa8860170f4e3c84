"""POST /v1/chat/completions."""

from __future__ import annotations

from fastapi import APIRouter

from gateway.deps import (ChatBody, ChatTicket, EngineDep, ProgramIdHeader, RendererDep, SettingsDep,
                          TraceparentHeader)
from gateway.responses import ChatFormat
from gateway.routes.generation import generate

router = APIRouter(tags=["chat"])


@router.post("/chat/completions", summary="OpenAI chat completions (plus the plan/program_id/ignore_eos extensions)")
async def create_chat_completion(ticket: ChatTicket, body: ChatBody, engine: EngineDep, renderer: RendererDep,
                                 settings: SettingsDep, x_program_id: ProgramIdHeader = None,
                                 traceparent: TraceparentHeader = None):
    prompt = await renderer.chat(body)
    return await generate(ticket=ticket, body=body, prompt=prompt, prompt_param="messages", fmt=ChatFormat(),
                          engine=engine, renderer=renderer, settings=settings, program_id=x_program_id,
                          traceparent=traceparent)
