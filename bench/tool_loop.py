"""The tool loop stock vLLM needs, as pure request construction: vLLM's own OpenAI server cannot
pause a request at an API call, so the CLIENT runs the loop (what apps do today):

    context = the templated prompt's token ids
    for each plan segment:
        POST /v1/completions {prompt: context, max_tokens: N, ignore_eos, temperature 0,
                              return_token_ids}          -> the segment's N generated token ids
        the request ENDS here; if the segment has a call: run it in the client, then
        context = context + generated + the call's M returned tokens     (re-submitted whole)

The re-submitted context equals what our engine worker holds at the same point (prompt, every
generated token, every call's returned tokens), so both systems compute the same tokens; stock
vLLM only gets back what its prefix cache still holds (full 128-token blocks not yet evicted).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from common.recompute import recomputed_tokens

STOCK_SYSTEM = "stock-vllm"
"""The system's name in the table and the results."""
RESUBMIT = "resubmit"
"""The `strategy` of a stock interception: the request ended and its context was sent again."""


def segment_request(model: str, context: list[int], generate_tokens: int, *, stream: bool) -> dict[str, Any]:
    """One segment: exactly `generate_tokens` tokens (ignore_eos), greedy, token ids returned
    (vLLM 0.32's `return_token_ids`: `choices[0].token_ids`, per chunk when streaming)."""
    body: dict[str, Any] = {
        "model": model, "prompt": list(context), "max_tokens": generate_tokens, "ignore_eos": True,
        "temperature": 0, "return_token_ids": True, "stream": stream,
    }
    if stream:
        body["stream_options"] = {"include_usage": True}
    return body


def resumed_context(context: list[int], generated: list[int], returned: list[int]) -> list[int]:
    """What the next segment's request sends: everything so far, re-submitted whole."""
    return [*context, *generated, *returned]


@dataclass
class SegmentResult:
    """What one /v1/completions response (streamed or not) said."""

    token_ids: list[int] = field(default_factory=list)
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    cached_tokens: int | None = None
    """Prompt tokens served from the prefix cache (usage.prompt_tokens_details; the server runs
    with --enable-prompt-tokens-details)."""
    first_token_s: float | None = None
    error: str | None = None
    status: int | None = None

    @property
    def computed_prompt_tokens(self) -> int | None:
        """Prompt tokens the engine had to compute (not in the prefix cache)."""
        if self.prompt_tokens is None:
            return None
        return self.prompt_tokens - (self.cached_tokens or 0)


def read_payload(payload: dict[str, Any], result: SegmentResult, now: float) -> None:
    """Folds one response body or stream chunk into `result`; `now` stamps the first token."""
    if "error" in payload:
        error = payload["error"]
        result.error = str(error.get("message", error)) if isinstance(error, dict) else str(error)
        return
    for choice in payload.get("choices") or []:
        ids = choice.get("token_ids") or []
        if ids and result.first_token_s is None:
            result.first_token_s = now
        result.token_ids.extend(ids)
        if choice.get("finish_reason"):
            result.finish_reason = choice["finish_reason"]
    usage = payload.get("usage")
    if usage:
        result.prompt_tokens = usage.get("prompt_tokens")
        result.cached_tokens = (usage.get("prompt_tokens_details") or {}).get("cached_tokens")


def check_segment(result: SegmentResult, generate_tokens: int) -> str | None:
    """Why a segment's response cannot continue the loop (None: it can)."""
    if result.error is not None:
        return result.error
    if len(result.token_ids) != generate_tokens:
        return (f"segment generated {len(result.token_ids)} tokens, {generate_tokens} asked "
                f"(finish_reason {result.finish_reason!r}; is return_token_ids supported?)")
    return None


def interception_record(segment: dict[str, Any], *, duration_s: float, api_s: float, context_tokens: int,
                        returned_tokens: int, ok: bool, error: str | None) -> dict[str, Any]:
    """An interception record shaped like our worker's (bench.metrics reads both alike): `api_s`
    the call's own run time, as our executor measures it around the API. The request holds no
    KV while its call runs: it has ended."""
    return {"api": segment["api"], "duration_s": duration_s, "api_s": api_s, "strategy": RESUBMIT,
            "context_tokens": context_tokens, "returned_tokens": returned_tokens, "ok": ok, "error": error,
            "held_kv_byte_seconds": 0.0}


def note_resubmit(record: dict[str, Any], result: SegmentResult, submitted_s: float) -> None:
    """After a call, the re-submitted context's cost: the tokens it computed again (as our worker
    counts `recomputed_tokens`, common.recompute: not served by the prefix cache, and not the
    returned tokens or the last generated one, which every system computes) and the time to its
    first token."""
    if result.prompt_tokens is not None:
        record["recomputed_tokens"] = recomputed_tokens(result.prompt_tokens, result.cached_tokens or 0,
                                                        record["returned_tokens"])
    if result.first_token_s is not None:
        record["recompute_s"] = result.first_token_s - submitted_s
