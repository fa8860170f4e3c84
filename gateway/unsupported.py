"""Request fields of vLLM's and OpenAI's APIs that this server does not honour.

Unknown fields are ignored (gateway/protocol.py), but these are known: each changes what a vLLM
or OpenAI server would answer, so dropping it silently would hand back a different answer than
the client asked for. Each is accepted at its default (clients such as `vllm bench serve` and
the openai library send some of them as defaults) and refused otherwise, with a 400 naming it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, create_model, field_validator

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


TOKENIZE_CHAT_UNSUPPORTED_DEFAULTS: dict[str, tuple[Any, ...]] = {field: CHAT_UNSUPPORTED_DEFAULTS[field] for field in (
    "add_generation_prompt", "continue_final_message", "add_special_tokens", "chat_template", "chat_template_kwargs",
    "mm_processor_kwargs", "media_io_kwargs")}
"""vLLM's TokenizeChatRequest template controls, at the values the chat route takes: /tokenize
answers with the ids of a prompt the engine could be given."""

TOKENIZE_COMPLETION_UNSUPPORTED_DEFAULTS: dict[str, tuple[Any, ...]] = {
    "add_special_tokens": COMPLETION_UNSUPPORTED_DEFAULTS["add_special_tokens"],
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
    model_config = ConfigDict(extra="ignore", strict=True)


def refused_fields(name: str, table: dict[str, tuple[Any, ...]]) -> type[BaseModel]:
    """A model declaring the table's fields (`Any = None`, so a 400 can name them) and refusing
    any value but the table's defaults: the table is the one list of them."""
    fields: dict[str, Any] = {field: (Any, None) for field in table}
    return create_model(name, __base__=_Unsupported, __validators__={"_refused": refuse_unless_default(table)},
                        **fields)


if TYPE_CHECKING:  # a type checker cannot follow create_model's bases; nothing reads these fields statically
    class CompletionUnsupported(_Unsupported): ...

    class ChatUnsupported(_Unsupported): ...

    class TokenizeCompletionUnsupported(_Unsupported): ...

    class TokenizeChatUnsupported(_Unsupported): ...
else:
    CompletionUnsupported = refused_fields("CompletionUnsupported", COMPLETION_UNSUPPORTED_DEFAULTS)
    ChatUnsupported = refused_fields("ChatUnsupported", CHAT_UNSUPPORTED_DEFAULTS)
    TokenizeCompletionUnsupported = refused_fields("TokenizeCompletionUnsupported",
                                                   TOKENIZE_COMPLETION_UNSUPPORTED_DEFAULTS)
    TokenizeChatUnsupported = refused_fields("TokenizeChatUnsupported", TOKENIZE_CHAT_UNSUPPORTED_DEFAULTS)
