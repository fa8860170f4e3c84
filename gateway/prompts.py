"""Requests -> prompt token ids: the chat template, tool declarations, forced tool calls.

Tokenization runs on one dedicated thread: off the event loop (a 1 MiB prompt takes a while) and
never concurrent on the shared tokenizer (fast tokenizers are not safe to drive from two threads).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar, cast

from jinja2 import TemplateError

from common.schemas import API_KINDS
from common.tool_format import CALL_CLOSE, CALL_OPEN, forced_call_prefix, tools_system_text
from gateway import guarded_template
from gateway.errors import ApiError
from gateway.protocol import (
    MAX_JSON_DEPTH,
    ChatMessage,
    ChatPromptFields,
    CompletionRequest,
    NamedToolChoice,
    ToolSpec,
    json_depth,
)
from gateway.tokenization import TokenizeCompletionRequest

SERVER_API_KINDS = frozenset(k for k in API_KINDS if k != "http")
Arg = TypeVar("Arg")
Result = TypeVar("Result")


@dataclass(frozen=True)
class Prompt:
    token_ids: list[int]
    text: str | None = None
    server_tools: list[str] = field(default_factory=list)
    client_tools: list[str] = field(default_factory=list)
    forced_tool: str | None = None
    forced_call_schema: dict[str, Any] | None = None


@dataclass(frozen=True)
class ForcedCall:
    """How the assistant turn is made to call a tool: the text the server starts it with, the
    tool (None: any of the declared ones) and the schema the rest is generated under (None:
    unconstrained)."""

    prefix: str
    tool: str | None
    schema: dict[str, Any] | None


def arguments_schema(tool: ToolSpec) -> dict[str, Any]:
    """The JSON schema of a tool's arguments (an object, whatever the tool declared)."""
    return tool.function.parameters or {"type": "object"}


def any_call_schema(tools: list[ToolSpec]) -> dict[str, Any]:
    """A whole call object naming one of `tools`, with that tool's arguments."""
    return {"anyOf": [{"type": "object", "properties": {"name": {"const": t.function.name},
                                                        "arguments": arguments_schema(t)},
                       "required": ["name", "arguments"], "additionalProperties": False} for t in tools]}


def calls_schema(tools: list[ToolSpec], parallel: bool) -> dict[str, Any]:
    """tool_choice "required": a JSON array of whole calls, at least one, at most one unless
    parallel (vLLM's grammar for "required", tool_parsers/utils.py, with our "arguments" key)."""
    schema: dict[str, Any] = {"type": "array", "minItems": 1, "items": any_call_schema(tools)}
    if not parallel:
        schema["maxItems"] = 1
    return schema


@lru_cache(maxsize=4)
def load_tokenizer(model_path: str) -> Any:
    """Loaded once per folder and process (it takes seconds)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_path)


def render_tool_call(name: str, arguments: str | dict[str, Any]) -> str:
    """A past call, written the way the model writes one (see common.tool_format)."""
    if isinstance(arguments, str):
        try:
            parsed = json.loads(arguments)
        except (ValueError, RecursionError):
            parsed = arguments  # the model's own broken call, echoed back: keep it as it was
        # Too deep to write back (json recurses): echo the text as it came.
        arguments = parsed if json_depth(parsed, MAX_JSON_DEPTH) <= MAX_JSON_DEPTH else arguments
    return f"{CALL_OPEN}\n{json.dumps({'name': name, 'arguments': arguments})}\n{CALL_CLOSE}"


def _turn(message: ChatMessage) -> dict[str, str]:
    role = "system" if message.role == "developer" else message.role
    content = message.content or ""
    if message.tool_calls:
        calls = [render_tool_call(c.function.name, c.function.arguments) for c in message.tool_calls]
        content = "\n".join(([content] if content else []) + calls)
    return {"role": role, "content": content}


def _forced_call(req: ChatPromptFields, tools: list[ToolSpec]) -> ForcedCall | None:
    """Constrained (the default), the call's JSON follows the tool's schema, so even a small
    model writes a valid call; unconstrained, the prefix opens a lone string argument, which
    small models fill far more reliably than whole objects."""
    choice = req.tool_choice
    names = [t.function.name for t in tools]
    constrained = req.constrain_tool_calls
    if isinstance(choice, NamedToolChoice):
        for tool in tools:
            if tool.function.name == choice.function.name:
                return _call_of(tool, constrained)
        raise ApiError(400, f"tool_choice names function {choice.function.name!r}, which is not among the "
                            f"declared tools {names}", code="invalid_tool_choice", param="tool_choice")
    if choice == "required":
        if not tools:
            raise ApiError(400, 'tool_choice "required" needs declared tools', code="invalid_tool_choice",
                           param="tool_choice")
        parallel = req.parallel_tool_calls is not False
        if constrained and (parallel or len(tools) > 1):  # the model writes each call's name
            return ForcedCall(prefix=CALL_OPEN + "\n", tool=None, schema=calls_schema(tools, parallel))
        if len(tools) == 1:
            return _call_of(tools[0], constrained)
        raise ApiError(400, f'tool_choice "required" needs exactly one declared tool (got {len(tools)}) '
                            "when constrain_tool_calls is false; name the function to call instead",
                       code="invalid_tool_choice", param="tool_choice")
    return None


def _call_of(tool: ToolSpec, constrained: bool) -> ForcedCall:
    name = tool.function.name
    if constrained:
        return ForcedCall(prefix=forced_call_prefix(name, None), tool=name, schema=arguments_schema(tool))
    return ForcedCall(prefix=forced_call_prefix(name, tool.function.parameters), tool=name, schema=None)


class PromptRenderer:
    def __init__(self, model_path: Path, *, default_system: str, http_apis: set[str]) -> None:
        self.tokenizer = load_tokenizer(str(model_path))
        self.default_system = default_system
        self.server_tool_names = SERVER_API_KINDS | http_apis
        self.vocab_size = len(self.tokenizer)
        eos = self.tokenizer.eos_token_id
        self.eos_token_ids: list[int] = [] if eos is None else [eos]
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tokenizer")

    def close(self) -> None:
        self._thread.shutdown(wait=False, cancel_futures=True)

    async def _on_thread(self, fn: Callable[[Arg], Result], arg: Arg) -> Result:
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, arg)

    async def chat(self, req: ChatPromptFields) -> Prompt:
        return await self._on_thread(self.render_chat, req)

    async def completion(self, req: CompletionRequest | TokenizeCompletionRequest) -> Prompt:
        return await self._on_thread(self.render_completion, req)

    async def decode(self, token_ids: list[int]) -> str:
        """The text of token ids as vLLM's /detokenize gives it (special tokens kept)."""
        return await self._on_thread(self.tokenizer.decode, token_ids)

    async def token_strings(self, token_ids: list[int]) -> list[str]:
        """Each id's token as the vocabulary spells it (vLLM's `token_strs`: "Ġworld", not " world")."""
        return await self._on_thread(self.tokenizer.convert_ids_to_tokens, token_ids)

    def render_chat(self, req: ChatPromptFields) -> Prompt:
        tools = req.declared_tools()
        forced = _forced_call(req, tools)
        turns = [_turn(m) for m in req.messages]
        if tools:
            listed = tools_system_text([t.model_dump(exclude_none=True) for t in tools])
            if turns[0]["role"] == "system":
                turns[0]["content"] += listed
            else:
                turns.insert(0, {"role": "system", "content": self.default_system + listed})
        try:
            # Control tokens come from the template only: client text is tokenized as plain text.
            text, token_ids = guarded_template.render(self.tokenizer, turns, add_generation_prompt=True)
        except TemplateError as exc:
            raise ApiError(400, f"the chat template rejected the messages: {exc}", param="messages") from exc
        if forced is not None:
            text += forced.prefix
            token_ids += self.tokenizer.encode(forced.prefix, add_special_tokens=False)
        names = [t.function.name for t in tools]
        return Prompt(
            token_ids=token_ids,
            text=text,
            server_tools=[n for n in names if n in self.server_tool_names],
            client_tools=[n for n in names if n not in self.server_tool_names],
            forced_tool=forced.tool if forced else None,
            forced_call_schema=forced.schema if forced else None,
        )

    def render_completion(self, req: CompletionRequest | TokenizeCompletionRequest) -> Prompt:
        if isinstance(req.prompt, str):
            return Prompt(token_ids=self.tokenizer.encode(req.prompt, add_special_tokens=False), text=req.prompt)
        token_ids = cast(list[int], req.prompt)  # CompletionRequest leaves one prompt: a str or its token ids
        check_vocabulary(token_ids, self.vocab_size, "prompt")
        return Prompt(token_ids=list(token_ids))


def check_vocabulary(token_ids: list[int], vocab_size: int, param: str) -> None:
    """A 400 naming the ids (the first five) outside [0, vocab_size)."""
    bad = [t for t in token_ids if not 0 <= t < vocab_size]
    if bad:
        raise ApiError(400, f"{param}: token ids {bad[:5]} are outside the vocabulary [0, {vocab_size})",
                       code="invalid_token_ids", param=param)
