"""OpenAI response bodies and stream chunks, built from the engine's events (pure functions).

Extension fields, in a non-streaming response and in the stream chunk that carries finish_reason:
`interceptions` (list of InterceptionRecord dicts, top level) and, when the request asked for
`return_token_ids`, `prompt_token_ids` (top level) and `token_ids` (in the choice). The standard
`system_fingerprint` there names the engine worker that served the request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from common.schemas import FinalEvent, ToolCall
from common.tool_format import CALL_OPEN


@dataclass(frozen=True)
class Exchange:
    """What every body of one response repeats."""

    request_id: str
    model: str
    created: int
    prompt_token_ids: list[int] | None = None
    """Set when the request asked for return_token_ids."""


def finished(ex: Exchange, final: FinalEvent, body: dict[str, Any]) -> dict[str, Any]:
    """Adds the extension fields to the body that carries finish_reason."""
    body["interceptions"] = [r.model_dump(mode="json") for r in final.interceptions]
    if final.worker_id is not None:
        # OpenAI's field for "the backend configuration that served this": here, the worker.
        body["system_fingerprint"] = final.worker_id
    if ex.prompt_token_ids is not None:
        body["prompt_token_ids"] = ex.prompt_token_ids
        if body["choices"]:
            body["choices"][0]["token_ids"] = final.token_ids
    return body


def usage_dict(final: FinalEvent) -> dict[str, int]:
    return final.usage.model_dump()


def tool_call_dict(call: ToolCall) -> dict[str, Any]:
    return {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}


def assistant_content(final: FinalEvent) -> str | None:
    """The text a user sees: with client tool calls, what precedes the first call (or null)."""
    if not final.tool_calls:
        return final.text
    cut = final.text.find(CALL_OPEN)
    content = (final.text if cut < 0 else final.text[:cut]).rstrip()
    return content or None


class ChatFormat:
    object = "chat.completion"
    chunk_object = "chat.completion.chunk"

    def response(self, ex: Exchange, final: FinalEvent) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": assistant_content(final)}
        if final.tool_calls:
            message["tool_calls"] = [tool_call_dict(c) for c in final.tool_calls]
        choice = {"index": 0, "message": message, "finish_reason": final.finish_reason, "logprobs": None}
        return finished(ex, final, {**self._head(ex, self.object), "choices": [choice], "usage": usage_dict(final)})

    def first_chunk(self, ex: Exchange) -> dict[str, Any]:
        return self._chunk(ex, {"role": "assistant", "content": ""}, None)

    def delta_chunk(self, ex: Exchange, text: str) -> dict[str, Any]:
        return self._chunk(ex, {"content": text}, None)

    def finish_chunk(self, ex: Exchange, final: FinalEvent) -> dict[str, Any]:
        delta: dict[str, Any] = {}
        if final.tool_calls:
            delta["tool_calls"] = [{"index": i, **tool_call_dict(c)} for i, c in enumerate(final.tool_calls)]
        return finished(ex, final, self._chunk(ex, delta, final.finish_reason))

    def usage_chunk(self, ex: Exchange, final: FinalEvent) -> dict[str, Any]:
        return {**self._head(ex, self.chunk_object), "choices": [], "usage": usage_dict(final)}

    def _chunk(self, ex: Exchange, delta: dict[str, Any], finish_reason: str | None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}
        return {**self._head(ex, self.chunk_object), "choices": [choice]}

    @staticmethod
    def _head(ex: Exchange, obj: str) -> dict[str, Any]:
        return {"id": ex.request_id, "object": obj, "created": ex.created, "model": ex.model}


class CompletionFormat:
    object = "text_completion"
    chunk_object = "text_completion"

    def response(self, ex: Exchange, final: FinalEvent) -> dict[str, Any]:
        choice = {"index": 0, "text": final.text, "finish_reason": final.finish_reason, "logprobs": None}
        return finished(ex, final, {**self._head(ex), "choices": [choice], "usage": usage_dict(final)})

    def first_chunk(self, ex: Exchange) -> None:
        return None  # completions streams start with text, there is no role to announce

    def delta_chunk(self, ex: Exchange, text: str) -> dict[str, Any]:
        return self._chunk(ex, text, None)

    def finish_chunk(self, ex: Exchange, final: FinalEvent) -> dict[str, Any]:
        return finished(ex, final, self._chunk(ex, "", final.finish_reason))

    def usage_chunk(self, ex: Exchange, final: FinalEvent) -> dict[str, Any]:
        return {**self._head(ex), "choices": [], "usage": usage_dict(final)}

    def _chunk(self, ex: Exchange, text: str, finish_reason: str | None) -> dict[str, Any]:
        choice = {"index": 0, "text": text, "finish_reason": finish_reason, "logprobs": None}
        return {**self._head(ex), "choices": [choice]}

    def _head(self, ex: Exchange) -> dict[str, Any]:
        return {"id": ex.request_id, "object": self.object, "created": ex.created, "model": ex.model}


ResponseFormat = ChatFormat | CompletionFormat
