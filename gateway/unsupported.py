"""Request fields of vLLM's and OpenAI's APIs that this server does not honour.

Unknown fields are ignored (gateway/protocol.py), but these are known: each changes what a vLLM
or OpenAI server would answer, so dropping it silently would hand back a different answer than
the client asked for. Each is accepted at its default (clients such as `vllm bench serve` and
the openai library send some of them as defaults) and refused otherwise, with a 400 naming it.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

UNSUPPORTED_DEFAULTS: dict[str, tuple[Any, ...]] = {
    # vLLM's sampling and output extras, both endpoints.
    "use_beam_search": (False,), "length_penalty": (1.0,), "min_tokens": (0,), "stop_token_ids": ([],),
    "bad_words": ([],), "allowed_token_ids": (), "skip_special_tokens": (True,),
    "spaces_between_special_tokens": (True,), "truncate_prompt_tokens": (), "truncation_side": (),
    "prompt_logprobs": (), "logprob_token_ids": (), "return_tokens_as_token_ids": (False,),
    "return_token_offsets": (False,), "priority": (0,), "cache_salt": (), "kv_transfer_params": (),
    "vllm_xargs": (), "repetition_detection": (), "watermarking": (False,),
}
"""Field -> the values accepted besides null (its default): anything else is a 400."""

CHAT_UNSUPPORTED_DEFAULTS: dict[str, tuple[Any, ...]] = {
    **UNSUPPORTED_DEFAULTS,
    # vLLM's chat template controls.
    "echo": (False,), "add_generation_prompt": (True,), "continue_final_message": (False,),
    "add_special_tokens": (False,), "chat_template": (), "chat_template_kwargs": ({},), "documents": (),
    "mm_processor_kwargs": (), "media_io_kwargs": (), "thinking_token_budget": (),
    # OpenAI's: the legacy function calling (use tools), audio, predicted outputs.
    "functions": (), "function_call": (), "audio": (), "modalities": (["text"],), "prediction": (),
}

COMPLETION_UNSUPPORTED_DEFAULTS: dict[str, tuple[Any, ...]] = {
    **UNSUPPORTED_DEFAULTS, "add_special_tokens": (True,), "prompt_embeds": (),
}


def refuse_unless_default(table: dict[str, tuple[Any, ...]]):
    """A pydantic `before` validator over the table's fields (declared `Any = None`)."""

    def check(cls: type, value: Any, info: Any) -> Any:
        # True == 1 in Python: a bool and a number are never the same default.
        if value is not None and not any(value == ok and isinstance(value, bool) == isinstance(ok, bool)
                                         for ok in table[info.field_name]):
            raise ValueError(f"{info.field_name} is not supported by this server (only its default is accepted)")
        return None

    return field_validator(*table, mode="before")(check)


class _Unsupported(BaseModel):
    """Declares the refused fields both endpoints share (so a 400 can name them)."""

    model_config = ConfigDict(extra="ignore", strict=True)

    use_beam_search: Any = None
    length_penalty: Any = None
    min_tokens: Any = None
    stop_token_ids: Any = None
    bad_words: Any = None
    allowed_token_ids: Any = None
    skip_special_tokens: Any = None
    spaces_between_special_tokens: Any = None
    truncate_prompt_tokens: Any = None
    truncation_side: Any = None
    prompt_logprobs: Any = None
    logprob_token_ids: Any = None
    return_tokens_as_token_ids: Any = None
    return_token_offsets: Any = None
    priority: Any = None
    cache_salt: Any = None
    kv_transfer_params: Any = None
    vllm_xargs: Any = None
    repetition_detection: Any = None
    watermarking: Any = None


class CompletionUnsupported(_Unsupported):
    add_special_tokens: Any = None
    prompt_embeds: Any = None

    _refused = refuse_unless_default(COMPLETION_UNSUPPORTED_DEFAULTS)


class ChatUnsupported(_Unsupported):
    echo: Any = None
    add_generation_prompt: Any = None
    continue_final_message: Any = None
    add_special_tokens: Any = None
    chat_template: Any = None
    chat_template_kwargs: Any = None
    documents: Any = None
    mm_processor_kwargs: Any = None
    media_io_kwargs: Any = None
    thinking_token_budget: Any = None
    functions: Any = None
    function_call: Any = None
    audio: Any = None
    modalities: Any = None
    prediction: Any = None

    _refused = refuse_unless_default(CHAT_UNSUPPORTED_DEFAULTS)
