"""The soak's client side: one chat completion (streaming or not) sent through the gateway, and
what came back classified, so the soak can reconcile every request it sent (bench.soak_report).

Outcomes, one per request:
- ok: HTTP 200, a finish reason, and the answer is whole: exactly the plan's generated tokens,
  one result per planned call (distinct call ids), a stream with one finish chunk, its usage chunk
  and `[DONE]`;
- wrong: it said it succeeded but is not whole (a duplicated or missing tool result, tokens
  missing or repeated, a broken stream): the fault leaked into an answer;
- error: a clear error: an HTTP 4xx/5xx or an SSE error chunk in OpenAI's error shape, with a
  message;
- unclear: anything else (a connection reset, a stream cut without an error, a body that is not
  OpenAI's error shape);
- hung: not over `hang_after_s` after it was sent (the client gives up on it).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench.client import OK_FINISH

OUTCOMES = ("ok", "wrong", "error", "unclear", "hung")


@dataclass
class SoakRecord:
    index: int
    client: int
    kind: str
    """The request's type: a trace type (chatbot, image, ...), or `short`."""
    stream: bool
    planned_tokens: int
    planned_calls: int
    sent_s: float
    end_s: float | None = None
    first_token_s: float | None = None
    status: int | None = None
    outcome: str = "hung"
    error: str | None = None
    error_code: str | None = None
    finish_reason: str | None = None
    generated_tokens: int | None = None
    call_ids: list[str] = field(default_factory=list)
    call_errors: list[str] = field(default_factory=list)
    """Error results of calls (the model read them): a call that timed out says so here."""
    worker: str | None = None
    problems: list[str] = field(default_factory=list)
    """Why a 200 answer is not whole (outcome `wrong`)."""

    @property
    def latency_s(self) -> float | None:
        return None if self.end_s is None else self.end_s - self.sent_s


def _clear_error(body: Any) -> tuple[str, str | None] | None:
    """(message, code) when `body` is OpenAI's error shape with a message, else None."""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str) and error["message"]:
        return error["message"], error.get("code")
    return None


def _set_error(rec: SoakRecord, body: Any, fallback: str) -> None:
    clear = _clear_error(body)
    if clear is None:
        rec.outcome, rec.error = "unclear", fallback[:300]
    else:
        rec.outcome, (rec.error, rec.error_code) = "error", clear


def _read_final(rec: SoakRecord, finish: dict) -> None:
    """The finish chunk's (or response's) extension fields: calls, tokens, worker."""
    calls = finish.get("interceptions") or []
    rec.call_ids = [c.get("call_id", "") for c in calls]
    rec.call_errors = [str(c.get("error") or c.get("result", ""))[:200] for c in calls if not c.get("ok")]
    rec.worker = finish.get("system_fingerprint")
    choice = (finish.get("choices") or [{}])[0]
    rec.finish_reason = choice.get("finish_reason")
    if choice.get("token_ids") is not None:
        rec.generated_tokens = len(choice["token_ids"])


def _check_whole(rec: SoakRecord, usage: dict | None) -> None:
    if rec.finish_reason not in OK_FINISH:
        rec.problems.append(f"finish_reason {rec.finish_reason!r}")
    if len(rec.call_ids) > rec.planned_calls or len(set(rec.call_ids)) < len(rec.call_ids):
        rec.problems.append(f"duplicated tool results: {len(rec.call_ids)} results for {rec.planned_calls} calls")
    elif len(rec.call_ids) < rec.planned_calls:
        rec.problems.append(f"missing tool results: {len(rec.call_ids)} of {rec.planned_calls}")
    if rec.generated_tokens != rec.planned_tokens:
        rec.problems.append(f"{rec.generated_tokens} tokens generated, planned {rec.planned_tokens}")
    if usage is None:
        rec.problems.append("no usage")
    elif usage.get("completion_tokens") != rec.generated_tokens:
        rec.problems.append(f"usage says {usage.get('completion_tokens')} tokens, got {rec.generated_tokens}")
    rec.outcome = "wrong" if rec.problems else "ok"


async def _plain(client: httpx.AsyncClient, url: str, body: dict, rec: SoakRecord) -> None:
    response = await client.post(url, json=body)
    rec.status = response.status_code
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if response.status_code != 200:
        _set_error(rec, payload, f"HTTP {response.status_code}: {response.text}")
        return
    if not isinstance(payload, dict) or not payload.get("choices"):
        rec.outcome, rec.error = "unclear", f"HTTP 200 without choices: {response.text[:300]}"
        return
    _read_final(rec, payload)
    _check_whole(rec, payload.get("usage"))


async def _streamed(client: httpx.AsyncClient, url: str, body: dict, rec: SoakRecord,
                    clock: Callable[[], float]) -> None:
    async with client.stream("POST", url, json=body) as response:
        rec.status = response.status_code
        if response.status_code != 200:
            raw = await response.aread()
            try:
                payload = json.loads(raw)
            except ValueError:
                payload = None
            _set_error(rec, payload, f"HTTP {response.status_code}: {raw[:300]!r}")
            return
        finishes, usage, done = [], None, False
        async for line in response.aiter_lines():
            if not line:
                continue
            if not line.startswith("data: ") or done:
                rec.problems.append(f"unexpected line {line[:80]!r}" + (" after [DONE]" if done else ""))
                continue
            data = line[6:]
            if data == "[DONE]":
                done = True
                continue
            chunk = json.loads(data)
            if "error" in chunk:
                _set_error(rec, chunk, f"stream error chunk: {data[:300]}")
                return
            if not chunk.get("choices"):
                usage = chunk.get("usage")
                continue
            choice = chunk["choices"][0]
            if rec.first_token_s is None and (choice.get("delta") or {}).get("content"):
                rec.first_token_s = clock()
            if choice.get("finish_reason"):
                finishes.append(chunk)
    if not done:
        rec.outcome, rec.error = "unclear", "the stream ended without [DONE] or an error"
        return
    if len(finishes) != 1:
        rec.problems.append(f"{len(finishes)} finish chunks")
    if finishes:
        _read_final(rec, finishes[-1])
    _check_whole(rec, usage)


async def send(client: httpx.AsyncClient, url: str, body: dict, rec: SoakRecord, clock: Callable[[], float],
               hang_after_s: float) -> SoakRecord:
    """Sends one request and fills `rec`; never raises for what the server or network did."""
    try:
        exchange = _streamed(client, url, body, rec, clock) if rec.stream else _plain(client, url, body, rec)
        await asyncio.wait_for(exchange, hang_after_s)
    except TimeoutError:
        rec.outcome, rec.error = "hung", f"not over {hang_after_s:g}s after it was sent"
        return rec
    except (httpx.HTTPError, ValueError) as exc:  # ValueError: a chunk that is not JSON
        rec.outcome, rec.error = "unclear", f"{type(exc).__name__}: {exc}"[:300]
    rec.end_s = clock()
    return rec
