"""Drives one request through a resumable vLLM session, pausing at every API call.

The request is ONE vLLM streaming-input session: its first chunk is the prompt; when a segment
stops (max_tokens or end of turn) the session waits in WAITING_FOR_STREAMING_REQ still holding
its KV blocks, the API call runs in the executor, and the next chunk (the call's result) is
appended, so only the returned tokens are prefilled on resume.

Invariant kept for greedy determinism: the model's context is always prompt + every generated
token + every appended token, in order. vLLM drops a chunk's last sampled token from the context
(it was never fed back), so each continuation starts by re-sending it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from common.schemas import (
    DeltaEvent, EngineRequest, FinalEvent, InterceptionEvent, InterceptionRecord, OutputEvent,
    ToolResult, Usage,
)
from common.tool_format import CALL_CLOSE, CALL_OPEN, tool_result_text, visible_text
from engine_worker.segments import CallApi, Finish, chat_outcome, plan_outcome
from engine_worker.tokens import TokenCodec

log = logging.getLogger(__name__)

FORCED_CALL_MAX_TOKENS = 96
"""A forced call's arguments get at most this many tokens; the rest of the budget is the answer's."""

Emit = Callable[[OutputEvent], Awaitable[None]]
CallTool = Callable[..., Awaitable[ToolResult]]


@dataclass
class _Progress:
    generated: list[int] = field(default_factory=list)
    appended: int = 0
    """Tokens the server added to the context (tool results, turn markers); not re-sent ones."""
    visible: list[str] = field(default_factory=list)
    interceptions: list[InterceptionRecord] = field(default_factory=list)


class RequestSession:
    def __init__(self, request: EngineRequest, engine, codec: TokenCodec, call_tool: CallTool,
                 emit: Emit, max_model_len: int):
        self.request = request
        self._engine = engine
        self._codec = codec
        self._call_tool = call_tool
        self._emit = emit
        self._max_model_len = max_model_len
        self._inputs: asyncio.Queue = asyncio.Queue()
        self._progress = _Progress()
        self._forced_prefix = self._find_forced_prefix()

    # -- sizes --------------------------------------------------------------------------
    def _context_len(self) -> int:
        p = self._progress
        return len(self.request.prompt_token_ids) + p.appended + len(p.generated)

    def _budget_left(self) -> int:
        if self.request.plan is not None:
            return self.request.plan.generated_tokens - len(self._progress.generated)
        return self.request.sampling.max_tokens - len(self._progress.generated)

    def _find_forced_prefix(self) -> str:
        """The forced-call text the gateway put at the end of the prompt (see tool_format)."""
        if self.request.forced_tool is None:
            return ""
        tail = self._codec.decode(self.request.prompt_token_ids[-96:])
        at = tail.rfind(CALL_OPEN)
        return tail[at:] if at >= 0 else ""

    def _forced_call_stops(self) -> frozenset[int]:
        """Where a forced call's arguments end, since sessions take no stop strings: at the
        closing quote when the prefix opened the one string argument, else at the line's end."""
        if self._forced_prefix.endswith('"'):
            return self._codec.ids_containing('"')
        return self._codec.ids_containing("\n")

    # -- vLLM plumbing ---------------------------------------------------------------------
    def _params(self, segment_index: int, context_len: int):
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        s = self.request.sampling
        room = self._max_model_len - context_len
        if self.request.plan is not None:
            max_tokens, ignore_eos, stops = self.request.plan.segments[segment_index].generate_tokens, True, []
        else:
            max_tokens, ignore_eos, stops = self._budget_left(), False, list(s.stop_token_ids)
            if segment_index == 0 and self._forced_prefix:
                max_tokens = min(max_tokens, FORCED_CALL_MAX_TOKENS)
                stops += sorted(self._forced_call_stops())
        return SamplingParams(
            max_tokens=max(1, min(max_tokens, room)), temperature=s.temperature, top_p=s.top_p,
            seed=s.seed, ignore_eos=ignore_eos, stop_token_ids=stops,
            output_kind=RequestOutputKind.DELTA,
        )

    def _chunk(self, token_ids: list[int], params):
        from vllm.engine.protocol import StreamingInput
        from vllm.inputs import TokensPrompt

        # vLLM extends the prompt list in place: always hand it a copy.
        return StreamingInput(prompt=TokensPrompt(prompt_token_ids=list(token_ids)), sampling_params=params)

    async def _chunks(self, first) -> AsyncIterator:
        yield first
        while (chunk := await self._inputs.get()) is not None:
            yield chunk

    # -- the request -------------------------------------------------------------------------
    async def run(self) -> FinalEvent:
        req = self.request
        first_params = self._params(0, len(req.prompt_token_ids))
        first = self._chunk(req.prompt_token_ids, first_params)
        segment_index, seg_tokens, seg_text, shown = 0, [], "", 0
        final: FinalEvent | None = None
        async for out in self._engine.generate(self._chunks(first), first_params, request_id=req.request_id):
            completion = out.outputs[0]
            if completion.token_ids:
                seg_tokens.extend(completion.token_ids)
                seg_text += completion.text
                shown = await self._stream_visible(segment_index, seg_text, shown)
            if completion.finish_reason is None or final is not None:
                continue
            self._progress.generated.extend(seg_tokens)
            outcome = self._outcome(segment_index, seg_text, completion.finish_reason)
            if isinstance(outcome, CallApi):
                continuation = await self._intercept(outcome, seg_tokens[-1])
                if continuation is not None:
                    segment_index += 1
                    await self._inputs.put(self._chunk(continuation, self._params(segment_index, self._context_len())))
                    self._progress.visible.append(self._segment_visible(segment_index - 1, seg_text))
                    seg_tokens, seg_text, shown = [], "", 0
                    continue
                outcome = Finish("length")
            self._progress.visible.append(self._segment_visible(segment_index, seg_text))
            final = self._final(outcome)
            await self._inputs.put(None)  # closes the session: vLLM frees its blocks
            if out.finished:
                break
        if final is None:  # the engine ended the session on its own (e.g. aborted)
            final = self._final(Finish("abort"))
        return final

    def _outcome(self, segment_index: int, seg_text: str, engine_finish: str) -> CallApi | Finish:
        if self.request.plan is not None:
            return plan_outcome(self.request, segment_index)
        turn = self._forced_turn(seg_text) if segment_index == 0 and self._forced_prefix else seg_text
        return chat_outcome(self.request, turn, engine_finish, self._budget_left(), len(self._progress.interceptions))

    def _forced_turn(self, seg_text: str) -> str:
        """The forced call as written: the server's prefix, then the model's text up to where it
        stopped (the string's closing quote, or the line's end), closed properly."""
        if self._forced_prefix.endswith('"'):
            value = seg_text.split('"', 1)[0]
            return f'{self._forced_prefix}{value}"}}}}\n{CALL_CLOSE}'
        return self._forced_prefix + seg_text.split("\n", 1)[0]

    def _segment_visible(self, segment_index: int, seg_text: str) -> str:
        if self.request.plan is not None:
            return seg_text
        if segment_index == 0 and self._forced_prefix:
            return ""
        return visible_text(seg_text)

    async def _stream_visible(self, segment_index: int, seg_text: str, shown: int) -> int:
        text = self._segment_visible(segment_index, seg_text)
        if len(text) > shown:
            await self._emit(DeltaEvent(text=text[shown:], token_ids=[]))
        return max(shown, len(text))

    async def _intercept(self, call: CallApi, last_token: int) -> list[int] | None:
        """Runs one API call while the session holds its KV; returns the next chunk's tokens."""
        context_len = self._context_len()
        started = time.time()
        result = await self._call_tool(
            request_id=self.request.request_id, api=call.api, arguments=call.arguments,
            duration_s=call.duration_s, return_tokens=call.return_tokens,
            traceparent=self.request.traceparent,
        )
        if self.request.plan is not None:
            appended = self._codec.exact_length(result.content, call.return_tokens)
        else:
            appended = self._codec.encode(tool_result_text(result.content))
        record = InterceptionRecord(
            call_id=result.call_id, api=call.api, arguments=call.arguments,
            started_at=started, ended_at=time.time(), duration_s=time.time() - started,
            context_tokens=context_len, returned_tokens=len(appended), result=result.content, ok=result.ok, error=result.error,
        )
        self._progress.interceptions.append(record)
        await self._emit(InterceptionEvent(record=record))
        # Room for the appended tokens and at least one generated token.
        if context_len + len(appended) + 1 > self._max_model_len or self._budget_left() <= 0:
            return None
        self._progress.appended += len(appended)
        return [last_token, *appended]

    def _final(self, outcome: Finish) -> FinalEvent:
        p = self._progress
        prompt_tokens = len(self.request.prompt_token_ids) + p.appended
        return FinalEvent(
            finish_reason=outcome.reason, text="".join(p.visible), token_ids=list(p.generated),
            usage=Usage(prompt_tokens=prompt_tokens, completion_tokens=len(p.generated),
                        total_tokens=prompt_tokens + len(p.generated)),
            interceptions=list(p.interceptions), tool_calls=list(outcome.tool_calls),
        )
