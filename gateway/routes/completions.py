"""POST /v1/completions: a raw prompt (string or token ids), no chat template."""

from __future__ import annotations

from fastapi import APIRouter

from gateway.deps import (CompletionBody, CompletionTicket, EngineDep, ProgramIdHeader, RendererDep, SettingsDep,
                          TraceparentHeader)
from gateway.responses import CompletionFormat
from gateway.routes.generation import generate

router = APIRouter(tags=["completions"])


@router.post("/completions", summary="OpenAI (legacy) completions (plus the plan/program_id/ignore_eos extensions)")
async def create_completion(ticket: CompletionTicket, body: CompletionBody, engine: EngineDep,
                            renderer: RendererDep, settings: SettingsDep, x_program_id: ProgramIdHeader = None,
                            traceparent: TraceparentHeader = None):
    prompt = await renderer.completion(body)
    return await generate(ticket=ticket, body=body, prompt=prompt, prompt_param="prompt", fmt=CompletionFormat(),
                          engine=engine, renderer=renderer, settings=settings, program_id=x_program_id,
                          traceparent=traceparent)
