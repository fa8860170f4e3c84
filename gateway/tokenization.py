"""Wire types of vLLM's tokenizer endpoints, POST /tokenize and POST /detokenize.

As vLLM has them (vllm/entrypoints/serve/tokenize/protocol.py): `model` is optional (the served
one), /tokenize takes a completion prompt (TokenizeCompletionRequest) or a chat
(TokenizeChatRequest), and answers `{count, max_model_len, tokens, token_strs}`, `token_strs`
null unless `return_token_strs`. The ids are the ones the generation routes give the engine:
the prompt and the chat go through the renderer /v1/completions and /v1/chat/completions use
(gateway/prompts.py), so a chat's tools (and, an extension, its `tool_choice` and
`constrain_tool_calls`, which change this server's prompt) count as they would there.

vLLM's template controls are accepted at the values the generation routes take and refused
otherwise (gateway/unsupported.py), so every answer is the prompt of a request this server
serves. Unlike vLLM, giving both `prompt` and `messages`, or neither, is a 400 (vLLM's union
picks one), and so are token ids outside the vocabulary on /detokenize.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Discriminator, Field, Tag, TypeAdapter

from gateway.protocol import INT64, ChatPromptFields, Wire
from gateway.unsupported import TokenizeChatUnsupported, TokenizeCompletionUnsupported


class TokenizeCompletionRequest(Wire, TokenizeCompletionUnsupported):
    model: str | None = None
    prompt: str
    return_token_strs: bool | None = False


class TokenizeChatRequest(ChatPromptFields, TokenizeChatUnsupported):
    model: str | None = None
    return_token_strs: bool | None = False


COMPLETION_FORM, CHAT_FORM = TokenizeCompletionRequest.__name__, TokenizeChatRequest.__name__
"""Union tags: class names, which error locations leave out (gateway/errors.py location)."""


def _form(body: Any) -> str | None:
    """Which request a body is: None (a 400) when it has both prompt and messages, or neither."""
    if not isinstance(body, dict):
        return COMPLETION_FORM  # whose error says the body must be an object
    if ("prompt" in body) == ("messages" in body):
        return None
    return COMPLETION_FORM if "prompt" in body else CHAT_FORM


TokenizeRequest = Annotated[
    Annotated[TokenizeCompletionRequest, Tag(COMPLETION_FORM)] | Annotated[TokenizeChatRequest, Tag(CHAT_FORM)],
    Discriminator(_form, custom_error_type="prompt_or_messages", custom_error_message=(
        "exactly one of prompt (a text, tokenized as /v1/completions does) or messages (a chat, rendered as "
        "/v1/chat/completions does) must be given")),
]
TOKENIZE_REQUEST: TypeAdapter[TokenizeCompletionRequest | TokenizeChatRequest] = TypeAdapter(TokenizeRequest)


class DetokenizeRequest(Wire):
    model: str | None = None
    tokens: list[Annotated[int, Field(ge=0, le=INT64[1])]]
    """vLLM's bounds; ids at or past the vocabulary size are refused by the route."""


class TokenizeResponse(BaseModel):
    count: int
    max_model_len: int
    tokens: list[int]
    token_strs: list[str] | None = None


class DetokenizeResponse(BaseModel):
    prompt: str
