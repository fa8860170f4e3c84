"""The OpenAI request bodies the gateway accepts, plus its extension fields.

Extension fields (send them with the openai client's `extra_body`):
- `plan` (common.schemas.Plan): scripted segments for benchmarks; max_tokens is then derived from
  the plan (its generated tokens) and end-of-sequence is ignored.
- `program_id` (str): groups the requests of one agent program/session for program-aware routing
  and scheduling; the `X-Program-Id` header is used when the body has none.
- `ignore_eos` (bool): keep generating past end-of-sequence (vLLM's ignore_eos, and no stop token ids).
- `return_token_ids` (bool): the response also carries `prompt_token_ids` (top level: the prompt as
  the engine got it) and `choices[0].token_ids` (every generated token, over all segments).

- `include_stop_str_in_output`, `top_k`, `min_p`, `repetition_penalty` (vLLM's sampling extras).
- `structured_outputs` (vLLM's: one of json, json_object, regex, choice, grammar) and its older
  `guided_json`/`guided_regex`/`guided_choice`/`guided_grammar` (gateway/structured.py).
- `constrain_tool_calls` (bool, default true): a forced call (tool_choice "required" or a named
  function) is generated under its tool's JSON schema; false writes it unconstrained.

Unknown top-level fields are ignored (clients send many optional OpenAI fields); the known ones the
engine cannot honour are refused with a 400 naming the field, never dropped silently (those of
vLLM's and OpenAI's APIs are listed in gateway/unsupported.py: accepted at their defaults only).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from common.schemas import Plan
from gateway.structured import StructuredFields
from gateway.unsupported import ChatUnsupported, CompletionUnsupported

TOOL_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
INT64 = (-(2**63), 2**63 - 1)
"""vLLM's seed range (a torch.long)."""
MAX_N = 16
"""Choices one request may ask for (each is its own engine request)."""
MAX_STOP_STRINGS = 16
MAX_TOP_LOGPROBS = 20
MAX_JSON_DEPTH = 64
"""Nesting allowed in a tool call's arguments: deeper is no real call, and Python's json recurses."""


def json_depth(value: Any, limit: int) -> int:
    """Nesting depth of a parsed JSON value, counted without recursion and stopping past `limit`."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, (dict, list)):
            deepest = max(deepest, depth)
            if deepest > limit:
                return deepest
            stack.extend((child, depth + 1) for child in (node.values() if isinstance(node, dict) else node))
    return deepest


class Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)


def _text_of_parts(value: Any) -> Any:
    """Content given as [{"type": "text", "text": ...}, ...] is joined into one string."""
    if not isinstance(value, list):
        return value
    texts = []
    for i, part in enumerate(value):
        if not (isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)):
            kind = part.get("type") if isinstance(part, dict) else type(part).__name__
            raise ValueError(f'content part {i} must be {{"type": "text", "text": <string>}} '
                             f"(got {kind!r}; only text parts are supported)")
        texts.append(part["text"])
    return "\n".join(texts)


class FunctionCall(Wire):
    name: str
    arguments: str | dict[str, Any] = "{}"

    @field_validator("arguments")
    @classmethod
    def _bounded_nesting(cls, arguments: str | dict[str, Any]) -> str | dict[str, Any]:
        if isinstance(arguments, dict) and json_depth(arguments, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
            raise ValueError(f"arguments nest deeper than {MAX_JSON_DEPTH} levels")
        return arguments


class MessageToolCall(Wire):
    id: str = ""
    type: Literal["function"] = "function"
    function: FunctionCall


class ChatMessage(Wire):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | None = None
    name: str | None = None
    tool_calls: list[MessageToolCall] | None = None
    tool_call_id: str | None = None

    _parts = field_validator("content", mode="before")(_text_of_parts)

    @model_validator(mode="after")
    def _content_needed(self) -> ChatMessage:
        if self.tool_calls and self.role != "assistant":
            raise ValueError("only assistant messages may carry tool_calls")
        if self.content is None and not (self.role == "assistant" and self.tool_calls):
            raise ValueError(f"a {self.role} message needs content")
        return self


class FunctionSpec(Wire):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None

    @field_validator("name")
    @classmethod
    def _name_shape(cls, name: str) -> str:
        if not TOOL_NAME.match(name):
            raise ValueError(f"tool name {name!r} must be 1-64 letters, digits, '_', '.' or '-'")
        return name

    @field_validator("parameters")
    @classmethod
    def _parameters_object(cls, parameters: dict[str, Any] | None) -> dict[str, Any] | None:
        if parameters is None:
            return None
        if parameters.get("type", "object") != "object":
            raise ValueError('parameters must be a JSON Schema of type "object"')
        properties, required = parameters.get("properties", {}), parameters.get("required", [])
        if not isinstance(properties, dict) or not all(isinstance(v, dict) for v in properties.values()):
            raise ValueError("parameters.properties must be an object mapping each property to its schema")
        if not isinstance(required, list) or not all(isinstance(name, str) for name in required):
            raise ValueError("parameters.required must be a list of property names")
        if json_depth(parameters, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
            raise ValueError(f"parameters nest deeper than {MAX_JSON_DEPTH} levels")
        return parameters


class ToolSpec(Wire):
    type: Literal["function"]
    function: FunctionSpec


class NamedFunction(Wire):
    name: str


class NamedToolChoice(Wire):
    type: Literal["function"]
    function: NamedFunction


ToolChoice = Literal["none", "auto", "required"] | NamedToolChoice


class StreamOptions(Wire):
    include_usage: bool = False
    continuous_usage_stats: bool = False
    """vLLM's usage in every chunk: not supported (refused when true)."""

    @field_validator("continuous_usage_stats")
    @classmethod
    def _per_chunk_usage(cls, value: bool) -> bool:
        if value:
            raise ValueError("continuous_usage_stats is not supported by this server: "
                             "include_usage gives the usage once, in the last chunk")
        return value


class GenerationFields(StructuredFields):
    """Fields /v1/chat/completions and /v1/completions share."""

    model: str
    max_tokens: Annotated[int, Field(ge=1)] | None = None
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    top_p: Annotated[float, Field(gt=0, le=1)] | None = None
    seed: Annotated[int, Field(ge=INT64[0], le=INT64[1])] | None = None
    n: Annotated[int, Field(ge=1, le=MAX_N)] | None = None
    best_of: int | None = None
    stop: str | Annotated[list[Annotated[str, Field(max_length=256)]], Field(max_length=MAX_STOP_STRINGS)] | None = None
    include_stop_str_in_output: bool = False
    stream: bool = False
    stream_options: StreamOptions | None = None
    presence_penalty: Annotated[float, Field(ge=-2, le=2)] | None = None
    frequency_penalty: Annotated[float, Field(ge=-2, le=2)] | None = None
    logit_bias: dict[str, Annotated[float, Field(ge=-100, le=100)]] | None = None
    # vLLM's sampling extras.
    top_k: Annotated[int, Field(ge=-1)] | None = None
    min_p: Annotated[float, Field(ge=0, le=1)] | None = None
    repetition_penalty: Annotated[float, Field(gt=0, le=2)] | None = None
    # Accepted, no effect on the output.
    user: str | None = None
    # Extensions.
    plan: Plan | None = None
    program_id: Annotated[str, Field(min_length=1, max_length=256)] | None = None
    ignore_eos: bool = False
    return_token_ids: bool = False

    @field_validator("stop")
    @classmethod
    def _stop_list(cls, stop: str | list[str] | None) -> list[str]:
        stops = [stop] if isinstance(stop, str) else list(stop or [])
        return [s for s in stops if s]  # OpenAI's clients send "" for none

    @field_validator("best_of")
    @classmethod
    def _best_of(cls, best_of: int | None) -> int | None:
        if best_of not in (None, 1):
            raise ValueError("best_of > 1 is not supported by this server: ask for n choices instead")
        return best_of

    @field_validator("logit_bias")
    @classmethod
    def _token_id_keys(cls, bias: dict[str, float] | None) -> dict[str, float] | None:
        for key in bias or {}:
            if not key.lstrip("-").isdigit():
                raise ValueError(f"logit_bias keys are token ids (got {key!r})")
        return bias

    def conflict(self) -> tuple[str, str] | None:
        """(field, message) for fields that are each valid but not together; None when all fit.
        Checked by the route, so the 400 names the field (a model validator's error has none)."""
        given = self.constraints_given()
        if len(given) > 1:
            return given[1], f"only one output constraint may be given (got {', '.join(given)})"
        if self.plan is not None:
            clashing = (["stop"] if self.stop else []) + (["n"] if self.choices > 1 else []) + given
            if clashing:
                return clashing[0], f"{clashing[0]} cannot be combined with plan: a plan scripts its tokens"
        return None

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)

    @property
    def choices(self) -> int:
        return self.n or 1


class ChatPromptFields(Wire):
    """What shapes a chat prompt (gateway/prompts.py renders these): /v1/chat/completions and the
    chat form of /tokenize share them, so both render the same token ids."""

    messages: Annotated[list[ChatMessage], Field(min_length=1)]
    tools: list[ToolSpec] | None = None
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    """Unset means true (OpenAI's default). Under tool_choice "required" it decides the forced
    call's grammar, several calls or one, and so its prefix."""
    constrain_tool_calls: bool = True

    @field_validator("tools")
    @classmethod
    def _unique_names(cls, tools: list[ToolSpec] | None) -> list[ToolSpec] | None:
        seen: set[str] = set()
        for tool in tools or []:
            if tool.function.name in seen:
                raise ValueError(f"duplicate tool name {tool.function.name!r}: tool names must be unique")
            seen.add(tool.function.name)
        return tools

    def declared_tools(self) -> list[ToolSpec]:
        """The tools the model is told about: none at all under tool_choice "none"."""
        return [] if self.tool_choice == "none" else list(self.tools or [])


class ChatCompletionRequest(GenerationFields, ChatPromptFields, ChatUnsupported):
    max_completion_tokens: Annotated[int, Field(ge=1)] | None = None
    logprobs: bool = False
    top_logprobs: Annotated[int, Field(ge=0, le=MAX_TOP_LOGPROBS)] | None = None

    def conflict(self) -> tuple[str, str] | None:
        if self.top_logprobs is not None and not self.logprobs:
            return "top_logprobs", "top_logprobs needs logprobs: true"
        given = self.constraints_given()
        if self.declared_tools() and given:
            return given[0], (f"{given[0]} cannot be combined with tools (the answer could not call them): "
                              'send tool_choice "none", or no tools')
        return super().conflict()

    @property
    def requested_max_tokens(self) -> int | None:
        return self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens

    @property
    def requested_logprobs(self) -> int | None:
        return (self.top_logprobs or 0) if self.logprobs else None


class CompletionRequest(GenerationFields, CompletionUnsupported):
    prompt: str | list[int] | list[str] | list[list[int]]
    echo: bool = False
    suffix: str | None = None
    logprobs: Annotated[int, Field(ge=0, le=MAX_TOP_LOGPROBS)] | None = None

    @field_validator("prompt")
    @classmethod
    def _one_prompt(cls, prompt: Any) -> str | list[int]:
        if isinstance(prompt, list) and prompt and isinstance(prompt[0], (str, list)):
            if len(prompt) != 1:
                raise ValueError(f"batched prompts are not supported: send one prompt per request (got {len(prompt)})")
            prompt = prompt[0]
        if not prompt:
            raise ValueError("prompt is empty")
        return prompt

    @field_validator("echo", "suffix")
    @classmethod
    def _unsupported(cls, value: Any, info: Any) -> Any:
        if value:
            raise ValueError(f"{info.field_name} is not supported by this server")
        return value

    @property
    def requested_max_tokens(self) -> int | None:
        return self.max_tokens

    @property
    def requested_logprobs(self) -> int | None:
        return self.logprobs
