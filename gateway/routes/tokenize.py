"""POST /tokenize and POST /detokenize: vLLM's tokenizer endpoints (gateway/tokenization.py).

At the root, as vLLM serves them, behind the same API key check as /v1 (vLLM leaves them open
even with --api-key; here a 1 MiB prompt costs the tokenizer thread every route shares). Any
key's scope may use them, and they count against no per-key limit: nothing reaches the engine.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends

from gateway.deps import DetokenizeBody, RendererDep, SettingsDep, TokenizeBody, require_api_key
from gateway.openapi import request_body
from gateway.prompts import check_vocabulary
from gateway.tokenization import (
    DetokenizeRequest,
    DetokenizeResponse,
    TokenizeChatRequest,
    TokenizeCompletionRequest,
    TokenizeResponse,
)

router = APIRouter(tags=["tokenization"], dependencies=[Depends(require_api_key)])


@router.post("/tokenize", openapi_extra=request_body(TokenizeCompletionRequest, TokenizeChatRequest),
             summary="vLLM's /tokenize: the prompt token ids /v1/completions or /v1/chat/completions would send")
async def tokenize(body: TokenizeBody, renderer: RendererDep, settings: SettingsDep) -> TokenizeResponse:
    # The generation routes' own rendering: the same ids the engine gets for the same input.
    prompt = await (renderer.chat(body) if isinstance(body, TokenizeChatRequest) else renderer.completion(body))
    token_ids = prompt.token_ids
    token_strs = await renderer.token_strings(token_ids) if body.return_token_strs else None
    return TokenizeResponse(count=len(token_ids), max_model_len=settings.max_model_len, tokens=token_ids,
                            token_strs=token_strs)


@router.post("/detokenize", openapi_extra=request_body(DetokenizeRequest),
             summary="vLLM's /detokenize: the text of token ids (special tokens kept)")
async def detokenize(body: DetokenizeBody, renderer: RendererDep) -> DetokenizeResponse:
    check_vocabulary(body.tokens, renderer.vocab_size, "tokens")
    return DetokenizeResponse(prompt=await renderer.decode(body.tokens))
