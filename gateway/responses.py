"""OpenAI response bodies and stream chunks, built from the engine's events (pure functions).

Extension fields, in a non-streaming response and in the stream chunk that carries finish_reason:
`interceptions` (list of InterceptionRecord dicts, top level) and, when the request asked for
`return_token_ids`, `prompt_token_ids` (top level) and `token_ids` (in the choice). The standard
`system_fingerprint` there names the engine worker that served the request. With n choices,
`interceptions` lists every choice's, in choice order, and each choice gets its `token_ids`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from common.schemas import DeltaEvent, FinalEvent, TokenLogprob, ToolCall
from common.tool_format import CALL_OPEN


@dataclass(frozen=True)
class Exchange:
    """What every body of one response repeats."""

    request_id: str
    model: str
    created: int
    prompt_token_ids: list[int] | None = None
    """Set when the request asked for return_token_ids."""
    prompt_tokens: int = 0
    """The client's prompt, counted once in the usage of n choices."""


def finished(ex: Exchange, finals: list[FinalEvent], body: dict[str, Any]) -> dict[str, Any]:
    """Adds the extension fields to the body that carries finish_reason (the choices' `finals`)."""
    body["interceptions"] = [r.model_dump(mode="json") for final in finals for r in final.interceptions]
    if finals and finals[0].worker_id is not None:
        # OpenAI's field for "the backend configuration that served this": here, the worker.
        body["system_fingerprint"] = finals[0].worker_id
    if ex.prompt_token_ids is not None:
        body["prompt_token_ids"] = ex.prompt_token_ids
        for choice, final in zip(body["choices"], finals):
            choice["token_ids"] = final.token_ids
    return body


def usage_dict(ex: Exchange, finals: list[FinalEvent]) -> dict[str, int]:
    """One choice's usage; for n choices the prompt counts once, and what the server appended to
    each choice's context (tool results) counts per choice."""
    if len(finals) == 1:
        return finals[0].usage.model_dump()
    prompt = ex.prompt_tokens + sum(f.usage.prompt_tokens - ex.prompt_tokens for f in finals)
    completion = sum(f.usage.completion_tokens for f in finals)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def tool_call_dict(call: ToolCall) -> dict[str, Any]:
    return {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}


def assistant_content(final: FinalEvent) -> str | None:
    """The text a user sees: with client tool calls, what precedes the first call (or null)."""
    if not final.tool_calls:
        return final.text
    cut = final.text.find(CALL_OPEN)
    content = (final.text if cut < 0 else final.text[:cut]).rstrip()
    return content or None


def _bytes(token: str) -> list[int]:
    return list(token.encode("utf-8"))


def chat_logprobs(logprobs: list[TokenLogprob] | None) -> dict[str, Any] | None:
    """OpenAI's chat shape: {"content": [{token, logprob, bytes, top_logprobs: [...]}]}."""
    if logprobs is None:
        return None
    return {"content": [{"token": lp.token, "logprob": lp.logprob, "bytes": _bytes(lp.token),
                         "top_logprobs": [{"token": t.token, "logprob": t.logprob, "bytes": _bytes(t.token)}
                                          for t in lp.top_logprobs]} for lp in logprobs]}


def completion_logprobs(logprobs: list[TokenLogprob] | None, offset: int = 0) -> dict[str, Any] | None:
    """OpenAI's legacy shape: parallel lists, `text_offset` counted from `offset` (the text
    already sent, when streaming)."""
    if logprobs is None:
        return None
    offsets, at = [], offset
    for lp in logprobs:
        offsets.append(at)
        at += len(lp.token)
    return {"tokens": [lp.token for lp in logprobs], "token_logprobs": [lp.logprob for lp in logprobs],
            "top_logprobs": [{t.token: t.logprob for t in lp.top_logprobs} for lp in logprobs],
            "text_offset": offsets}


class ChatFormat:
    object = "chat.completion"
    chunk_object = "chat.completion.chunk"

    def response(self, ex: Exchange, finals: list[FinalEvent]) -> dict[str, Any]:
        choices = []
        for index, final in enumerate(finals):
            message: dict[str, Any] = {"role": "assistant", "content": assistant_content(final)}
            if final.tool_calls:
                message["tool_calls"] = [tool_call_dict(c) for c in final.tool_calls]
            choices.append({"index": index, "message": message, "finish_reason": final.finish_reason,
                            "logprobs": chat_logprobs(final.logprobs)})
        return finished(ex, finals, {**self._head(ex, self.object), "choices": choices,
                                     "usage": usage_dict(ex, finals)})

    def first_chunk(self, ex: Exchange, index: int) -> dict[str, Any]:
        return self._chunk(ex, index, {"role": "assistant", "content": ""}, None)

    def delta_chunk(self, ex: Exchange, index: int, delta: DeltaEvent, offset: int) -> dict[str, Any]:
        return self._chunk(ex, index, {"content": delta.text}, None, chat_logprobs(delta.logprobs))

    def finish_chunk(self, ex: Exchange, index: int, final: FinalEvent) -> dict[str, Any]:
        delta: dict[str, Any] = {}
        if final.tool_calls:
            delta["tool_calls"] = [{"index": i, **tool_call_dict(c)} for i, c in enumerate(final.tool_calls)]
        return finished(ex, [final], self._chunk(ex, index, delta, final.finish_reason))

    def usage_chunk(self, ex: Exchange, finals: list[FinalEvent]) -> dict[str, Any]:
        return {**self._head(ex, self.chunk_object), "choices": [], "usage": usage_dict(ex, finals)}

    def _chunk(self, ex: Exchange, index: int, delta: dict[str, Any], finish_reason: str | None,
               logprobs: dict[str, Any] | None = None) -> dict[str, Any]:
        choice = {"index": index, "delta": delta, "finish_reason": finish_reason, "logprobs": logprobs}
        return {**self._head(ex, self.chunk_object), "choices": [choice]}

    @staticmethod
    def _head(ex: Exchange, obj: str) -> dict[str, Any]:
        return {"id": ex.request_id, "object": obj, "created": ex.created, "model": ex.model}


class CompletionFormat:
    object = "text_completion"
    chunk_object = "text_completion"

    def response(self, ex: Exchange, finals: list[FinalEvent]) -> dict[str, Any]:
        choices = [{"index": index, "text": final.text, "finish_reason": final.finish_reason,
                    "logprobs": completion_logprobs(final.logprobs)} for index, final in enumerate(finals)]
        return finished(ex, finals, {**self._head(ex), "choices": choices, "usage": usage_dict(ex, finals)})

    def first_chunk(self, ex: Exchange, index: int) -> None:
        return None  # completions streams start with text, there is no role to announce

    def delta_chunk(self, ex: Exchange, index: int, delta: DeltaEvent, offset: int) -> dict[str, Any]:
        return self._chunk(ex, index, delta.text, None, completion_logprobs(delta.logprobs, offset))

    def finish_chunk(self, ex: Exchange, index: int, final: FinalEvent) -> dict[str, Any]:
        return finished(ex, [final], self._chunk(ex, index, "", final.finish_reason))

    def usage_chunk(self, ex: Exchange, finals: list[FinalEvent]) -> dict[str, Any]:
        return {**self._head(ex), "choices": [], "usage": usage_dict(ex, finals)}

    def _chunk(self, ex: Exchange, index: int, text: str, finish_reason: str | None,
               logprobs: dict[str, Any] | None = None) -> dict[str, Any]:
        choice = {"index": index, "text": text, "finish_reason": finish_reason, "logprobs": logprobs}
        return {**self._head(ex), "choices": [choice]}

    def _head(self, ex: Exchange) -> dict[str, Any]:
        return {"id": ex.request_id, "object": self.object, "created": ex.created, "model": ex.model}


ResponseFormat = ChatFormat | CompletionFormat
