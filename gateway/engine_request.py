"""Admission checks and the EngineRequest a validated, tokenized request becomes."""

from __future__ import annotations

import time

from common.schemas import EngineRequest, SamplingConfig
from gateway.errors import ApiError
from gateway.prompts import Prompt, check_vocabulary
from gateway.protocol import INT64, GenerationFields


def _too_long(message: str, param: str) -> ApiError:
    return ApiError(400, message, code="context_length_exceeded", param=param)


def admitted_max_tokens(body: GenerationFields, prompt_tokens: int, *, max_model_len: int,
                        default_max_tokens: int, prompt_param: str) -> int:
    """The token budget of a request, or a 400 saying which limit it breaks and by how much."""
    if prompt_tokens >= max_model_len:
        raise _too_long(f"the prompt has {prompt_tokens} tokens, which leaves no room to generate within "
                        f"max_model_len {max_model_len}", prompt_param)
    if body.plan is not None:
        plan = body.plan
        total = prompt_tokens + plan.generated_tokens + plan.returned_tokens
        if total > max_model_len:
            raise _too_long(f"the plan needs {total} tokens (prompt {prompt_tokens} + generated "
                            f"{plan.generated_tokens} + returned {plan.returned_tokens}), over max_model_len "
                            f"{max_model_len}", "plan")
        return plan.generated_tokens
    requested = body.requested_max_tokens  # type: ignore[attr-defined]
    if requested is None:
        return min(default_max_tokens, max_model_len - prompt_tokens)
    if prompt_tokens + requested > max_model_len:
        raise _too_long(f"prompt tokens ({prompt_tokens}) + max_tokens ({requested}) = {prompt_tokens + requested}, "
                        f"over max_model_len {max_model_len}", "max_tokens")
    return requested


def logit_bias(body: GenerationFields, vocab_size: int) -> dict[int, float]:
    """The bias per token id, or a 400 naming the ids outside the vocabulary."""
    bias = {int(k): v for k, v in (body.logit_bias or {}).items()}
    check_vocabulary(list(bias), vocab_size, "logit_bias")
    return bias


def choice_seed(seed: int | None, index: int) -> int | None:
    """Choice i of n samples with seed + i (as vLLM's parallel sampling does), so the choices differ
    and a request with a seed is repeatable."""
    if seed is None:
        return None
    return seed + index if seed + index <= INT64[1] else seed - index


def build_engine_request(*, request_id: str, body: GenerationFields, prompt: Prompt, max_tokens: int,
                         eos_token_ids: list[int], program_id: str | None, traceparent: str | None,
                         vocab_size: int, choice_index: int = 0) -> EngineRequest:
    # A plan scripts its token counts, so end-of-sequence must not cut it short.
    stop_ids = [] if body.ignore_eos or body.plan is not None else list(eos_token_ids)
    return EngineRequest(
        request_id=request_id,
        model=body.model,
        prompt_token_ids=prompt.token_ids,
        sampling=SamplingConfig(
            max_tokens=max_tokens,
            temperature=1.0 if body.temperature is None else body.temperature,
            top_p=1.0 if body.top_p is None else body.top_p,
            top_k=body.top_k or 0,
            min_p=body.min_p or 0.0,
            seed=choice_seed(body.seed, choice_index),
            stop_token_ids=stop_ids,
            ignore_eos=body.ignore_eos,
            stop=list(body.stop or []),
            include_stop_str_in_output=body.include_stop_str_in_output,
            logprobs=body.requested_logprobs,  # type: ignore[attr-defined]
            presence_penalty=body.presence_penalty or 0.0,
            frequency_penalty=body.frequency_penalty or 0.0,
            repetition_penalty=body.repetition_penalty or 1.0,
            logit_bias=logit_bias(body, vocab_size),
            structured=body.output_constraint(),
        ),
        server_tools=prompt.server_tools,
        client_tools=prompt.client_tools,
        forced_tool=prompt.forced_tool,
        forced_call_schema=prompt.forced_call_schema,
        parallel_tool_calls=getattr(body, "parallel_tool_calls", None) is not False,
        plan=body.plan,
        arrival_time=time.time(),
        program_id=program_id,
        traceparent=traceparent,
    )
