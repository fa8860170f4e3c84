"""POST /v1/completions: a raw prompt (string or token ids), no chat template."""

from __future__ import annotations

from fastapi import APIRouter, Request

from gateway.deps import (
    CallerDep,
    CompletionBody,
    CompletionTicket,
    EngineDep,
    ProgramIdHeader,
    RendererDep,
    SettingsDep,
    TraceparentHeader,
)
from gateway.openapi import request_body
from gateway.protocol import CompletionRequest
from gateway.responses import CompletionFormat
from gateway.routes.generation import generate

router = APIRouter(tags=["completions"])


@router.post("/completions", openapi_extra=request_body(CompletionRequest),
             summary="OpenAI (legacy) completions (plus the plan/program_id/ignore_eos extensions)")
async def create_completion(request: Request, caller: CallerDep, ticket: CompletionTicket, body: CompletionBody,
                            engine: EngineDep, renderer: RendererDep, settings: SettingsDep,
                            x_program_id: ProgramIdHeader = None, traceparent: TraceparentHeader = None):
    prompt = await renderer.completion(body)
    return await generate(request=request, caller=caller, ticket=ticket, body=body, prompt=prompt,
                          prompt_param="prompt", fmt=CompletionFormat(), engine=engine, renderer=renderer,
                          settings=settings, program_id=x_program_id, traceparent=traceparent)
