"""Drives one request through a resumable vLLM session, pausing at every API call.

The request is ONE vLLM streaming-input session: its first chunk is the prompt; when a segment
stops (max_tokens or end of turn) the session waits in WAITING_FOR_STREAMING_REQ still holding
its KV blocks, the API call runs in the executor, and the next chunk (the call's result) is
appended, so only the returned tokens are prefilled on resume. A segment that can only end the
request (a plan's last, a chat turn without server-side tools) has the input closed with it, so
vLLM finishes the request itself when it stops instead of pausing it (`_last_segment`).

Invariant kept for greedy determinism: the model's context is always prompt + every generated
token + every appended token, in order. vLLM drops a chunk's last sampled token from the context
(it was never fed back), so each continuation starts by re-sending it.

Failover: a session built from a Checkpoint (the output events of a request whose worker died)
continues it where its events end: a new vLLM request over the context so far, the open
segment's remaining tokens, the call it was paused at awaited again (engine_worker/checkpoint.py).
Its output events keep the checkpoint whole: a segment's last delta is held back and published
with the event saying how the segment ended (CallEvent here, FinalEvent by the worker).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from common.recompute import recomputed_tokens
from common.redis_retry import OUTAGE_ERRORS, retry_async
from common.schemas import (
    CallEvent,
    DeltaEvent,
    EngineRequest,
    FinalEvent,
    InterceptionEvent,
    InterceptionRecord,
    OutputEvent,
    SchedulingFacts,
    Strategy,
    TokenLogprob,
    Usage,
)
from common.tool_format import CALL_CLOSE, CALL_OPEN, tool_result_parts, visible_text
from engine_worker.checkpoint import Checkpoint
from engine_worker.engine_params import REQUEST_INFO, SWAP_ID, SWAP_KEY
from engine_worker.pause import Pauses
from engine_worker.policies.output_length import OutputLengthHistory
from engine_worker.segments import (
    CallApi,
    Finish,
    calls_outcome,
    chat_outcome,
    cut_call_outcome,
    new_call_id,
    plan_outcome,
    unconstrained_call_cut,
    whole_calls,
    whole_json_object,
)
from engine_worker.spans import SessionSpans
from engine_worker.stop_strings import StopScan
from engine_worker.swap_channel import SwapChannel, SwapTimes
from engine_worker.tokens import TokenCodec
from engine_worker.vllm_params import logprobs_of, structured_params

log = logging.getLogger(__name__)

FORCED_CALL_MAX_TOKENS = 96
"""A forced call's arguments get at most this many tokens; the rest of the budget is the answer's.
One cut here or at the client's max_tokens before its end (segments.unconstrained_call_cut) ends
the request as a cut constrained call does, below."""
CONSTRAINED_CALL_MAX_TOKENS = 256
"""The same, for a call generated under its schema (the JSON is whole, so it may be longer). A
call cut before its JSON is whole, here or at the client's max_tokens, ends the request with
finish_reason "length" and the call as written (segments.cut_call_outcome)."""

PRIORITY_EPOCH = 1.7e9
"""Subtracted from arrival times so vLLM priorities (milliseconds) stay small integers."""

Emit = Callable[..., Awaitable[None]]
"""Publishes one or more output events, in one transaction."""


@dataclass
class _Progress:
    generated: list[int] = field(default_factory=list)
    visible: list[str] = field(default_factory=list)
    interceptions: list[InterceptionRecord] = field(default_factory=list)
    logprobs: list[TokenLogprob] = field(default_factory=list)


@dataclass
class _Segment:
    """The open segment: its index in the request (a plan's segment, or the chat's turn after as
    many calls) and what it has generated so far."""

    index: int = 0
    tokens: list[int] = field(default_factory=list)
    text: str = ""


class RequestSession:
    def __init__(self, request: EngineRequest, engine, codec: TokenCodec, pauses: Pauses,
                 emit: Emit, max_model_len: int, requeue_at_back: bool = False, swap: SwapChannel | None = None,
                 lengths: OutputLengthHistory | None = None, reply_to: str = "",
                 checkpoint: Checkpoint | None = None):
        self.request = request
        self._engine = engine
        self._codec = codec
        self._pauses = pauses
        self._emit = emit
        self._max_model_len = max_model_len
        self._requeue_at_back = requeue_at_back
        self._swap = swap
        self._lengths = lengths
        """Segment lengths per next-call kind, shared by the worker's sessions (LAMPS' predictor)."""
        self._inputs: asyncio.Queue = asyncio.Queue()
        self._input_closed = False
        """None was put on `_inputs`: the open vLLM request takes no further chunk."""
        self._progress = _Progress()
        self._context: list[int] = list(request.prompt_token_ids)
        """The model's context: prompt + generated + appended tokens, in order."""
        self._stream: AsyncGenerator[Any, None] | None = None
        """vLLM's output stream of the current vLLM request (None before the first)."""
        self._attempt = 0
        self._released: Strategy | None = None
        """How the current pause gave up its blocks: DISCARD or SWAP (None: preserved)."""
        self._requeued_at: float | None = None
        self._segment_start = 0
        """Generated tokens before the current segment."""
        self._swap_key: str | None = None
        """The vLLM id whose swapped-out KV the next submission loads."""
        self._forced_prefix = self._find_forced_prefix()
        self._spans = SessionSpans()
        self._reply_to = reply_to
        """This worker's reply stream: where the results of the calls it sends come."""
        self._held: list[OutputEvent] = []
        """Events to publish together with the next one (a segment's last delta, with its end)."""
        self._stops = StopScan(request.sampling.stop, request.sampling.include_stop_str_in_output)
        self._shown = 0
        """Characters of the request's visible text streamed so far (over every segment)."""
        self._checkpoint = checkpoint
        if checkpoint is not None:
            self._progress = _Progress(list(checkpoint.generated), list(checkpoint.visible),
                                       list(checkpoint.interceptions), list(checkpoint.logprobs))
            self._shown = checkpoint.streamed
            self._context += checkpoint.context_tail
            self._segment_start = len(checkpoint.generated)

    # -- sizes --------------------------------------------------------------------------
    def context_len(self) -> int:
        return len(self._context)

    def _budget_left(self) -> int:
        if self.request.plan is not None:
            return self.request.plan.generated_tokens - len(self._progress.generated)
        return self.request.sampling.max_tokens - len(self._progress.generated)

    def _find_forced_prefix(self) -> str:
        """The forced-call text the gateway put at the end of the prompt (see tool_format)."""
        if self.request.forced_tool is None and self.request.forced_call_schema is None:
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
    def _params(self, segment_index: int, context_len: int, generated: int = 0):
        """`generated`: tokens of this segment generated already (a segment continued on another
        worker), which count against its limits and are in its context."""
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        s = self.request.sampling
        room = self._max_model_len - context_len - generated
        structured = None
        if self.request.plan is not None:
            max_tokens, ignore_eos, stops = self.request.plan.segments[segment_index].generate_tokens, True, []
        else:
            max_tokens, ignore_eos, stops = self._budget_left(), s.ignore_eos, list(s.stop_token_ids)
            forced_call = self._in_forced_call(segment_index)
            if forced_call:
                ignore_eos = False  # the call ends at its end-of-turn
            if forced_call and self.request.forced_call_schema is not None:
                # The grammar ends the call (only end-of-turn is allowed once its JSON is whole).
                max_tokens = min(max_tokens, CONSTRAINED_CALL_MAX_TOKENS)
                structured = structured_params(json_schema=self.request.forced_call_schema, compact=True)
            elif forced_call:
                max_tokens = min(max_tokens, FORCED_CALL_MAX_TOKENS)
                stops += sorted(self._forced_call_stops())
            elif s.structured is not None:
                structured = structured_params(**s.structured.model_dump())
        max_tokens -= generated  # _budget_left counts the ended segments only
        return SamplingParams(
            max_tokens=max(1, min(max_tokens, room)), temperature=s.temperature, top_p=s.top_p,
            top_k=s.top_k, min_p=s.min_p, seed=s.seed, ignore_eos=ignore_eos, stop_token_ids=stops,
            presence_penalty=s.presence_penalty, frequency_penalty=s.frequency_penalty,
            repetition_penalty=s.repetition_penalty, logit_bias=dict(s.logit_bias) or None,
            logprobs=s.logprobs, structured_outputs=structured,
            output_kind=RequestOutputKind.DELTA,
            extra_args={"kv_transfer_params": self._kv_transfer_params(),
                        REQUEST_INFO: self._scheduling_info(segment_index).model_dump()},
        )

    def _in_forced_call(self, segment_index: int) -> bool:
        return segment_index == 0 and bool(self._forced_prefix)

    def _scheduling_info(self, segment_index: int) -> SchedulingFacts:
        """What the queue-order policy knows about this request beyond what vLLM tracks
        (engine_worker/engine_core/queue_scheduler.py): who it is across resubmissions, its ORIGINAL arrival,
        its program, its calls so far and, for a plan, its next call."""
        req = self.request
        api, call_s = None, None
        if req.plan is not None and segment_index < len(req.plan.segments):
            segment = req.plan.segments[segment_index]
            api, call_s = segment.api, segment.duration_s
        return SchedulingFacts(
            id=req.request_id, arrival=self._arrival(), program=req.program_id,
            calls_done=len(self._progress.interceptions), generated=len(self._progress.generated),
            api=api, call_s=call_s, expect_tokens=self._lengths.predict(api) if self._lengths is not None else None)

    def _kv_transfer_params(self) -> dict:
        """For the swap connector: this request may be swapped out; and after a swap, what to load."""
        params: dict = {SWAP_ID: self._vllm_id()} if self._swap is not None else {}
        if self._swap_key is not None:
            params[SWAP_KEY] = self._swap_key
        return params

    def _chunk(self, token_ids: list[int], params):
        from vllm.engine.protocol import StreamingInput
        from vllm.inputs import TokensPrompt

        # vLLM extends the prompt list in place: always hand it a copy.
        return StreamingInput(prompt=TokensPrompt(prompt_token_ids=list(token_ids)), sampling_params=params)

    async def _chunks(self, first) -> AsyncIterator:
        yield first
        while (chunk := await self._inputs.get()) is not None:
            yield chunk

    def _last_segment(self, segment_index: int) -> bool:
        """Whether this segment certainly ends the request whatever it generates: a plan's
        segment without a call, or a chat turn with no server-side tool to call (a client-side
        call or none ends the request). Such a segment's input is closed as it is sent, so vLLM
        ends the request itself at the step the segment stops. Left open, the ended session
        waits in WAITING_FOR_STREAMING_REQ, holding its running slot (max_num_seqs counts it)
        and its KV blocks, until the close has come back through this process's event loop and
        the engine core's input queue: at least one more step, as long as the loop is late."""
        if self.request.plan is not None:
            return self.request.plan.segments[segment_index].api is None
        return not self.request.server_tools

    async def _send(self, chunk, segment_index: int) -> None:
        """The next chunk of the open session, closing its input after it if it is the last."""
        await self._inputs.put(chunk)
        if self._last_segment(segment_index):
            await self._close_input()

    async def _close_input(self) -> None:
        """Ends the session's input (once): vLLM finishes the request when its segment stops."""
        if not self._input_closed:
            self._input_closed = True
            await self._inputs.put(None)

    # -- the request -------------------------------------------------------------------------
    async def run(self) -> FinalEvent:
        """One vLLM request while the KV is kept; a new one over the whole context after a discard.
        Cancelled (the client went away), it aborts the vLLM request at once, even while paused at
        a call: closing the output stream is what makes vLLM abort it."""
        try:
            return await self._run()
        except asyncio.CancelledError:
            if self._stream is not None:
                await self._stream.aclose()
            raise

    async def _run(self) -> FinalEvent:
        """The request's phases: where it starts (its prompt, or its checkpoint), then one vLLM
        request after another until one ends the request. A vLLM request goes on through every
        call whose KV stays in the pool; one whose KV left it (discard, swap), or whose next
        segment needs a grammar, ends, and the next one is submitted over the whole context."""
        segment, chunk_tokens, final = await self._starting_point()
        while final is None:
            segment, final = await self._vllm_request(segment, chunk_tokens)
            if final is None:
                chunk_tokens = list(self._context)
                self._released, self._requeued_at = None, None
                self._attempt += 1
        self._spans.close()
        return final

    async def _starting_point(self) -> tuple[_Segment, list[int], FinalEvent | None]:
        """The first segment and the tokens of the first chunk; the final event already when the
        checkpoint's pending call leaves no room to go on."""
        if self._checkpoint is None:
            return _Segment(), list(self.request.prompt_token_ids), None
        segment, final = await self._restore(self._checkpoint)
        return segment, self._context + segment.tokens, final

    async def _vllm_request(self, segment: _Segment, chunk_tokens: list[int]) -> tuple[_Segment, FinalEvent | None]:
        """One vLLM streaming-input request over `chunk_tokens`, from `segment` on. Returns the
        request's final event, or (None) the segment a new vLLM request continues with."""
        params = self._params(segment.index, self.context_len(), len(segment.tokens))
        # A grammar binds to a vLLM request for its whole life: the segment after one runs
        # as a new request over the context (prefix caching keeps that cheap).
        grammar_bound = params.structured_outputs is not None
        await self._open_input(segment.index)
        resubmitted_at = time.perf_counter()
        self._spans.segment_started(segment.index, len(chunk_tokens))
        self._stream = self._engine.generate(
            self._chunks(self._chunk(chunk_tokens, params)), params, request_id=self._vllm_id(),
            priority=self._priority())
        first_output = True
        final: FinalEvent | None = None
        async for out in self._stream:
            if first_output and self._attempt:
                await self._note_resume(len(chunk_tokens), out.num_cached_tokens or 0,
                                        time.perf_counter() - resubmitted_at)
            first_output = False
            if final is not None:  # the session is closing: nothing more belongs to the request
                if out.finished:
                    break
                continue
            completion = out.outputs[0]
            if not await self._take_output(segment, completion):
                continue  # the segment goes on
            if self._stops.end is not None:  # a stop string: the request ends here, vLLM's is aborted
                self._progress.visible.append(self._segment_visible(segment.index, segment.text))
                final = self._final(Finish("stop"))
                if not out.finished:
                    await self._stream.aclose()
                break
            outcome = self._outcome(segment.index, segment.text, completion.finish_reason)
            if isinstance(outcome, CallApi):
                appended = await self._intercept(outcome, segment.index, segment.text)
                if appended is not None:
                    continuation = [segment.tokens[-1], *appended]
                    self._progress.visible.append(self._segment_visible(segment.index, segment.text))
                    segment = _Segment(segment.index + 1)
                    if self._released:  # its blocks left the pool: a new vLLM request over the context
                        return segment, None
                    params = self._params(segment.index, self.context_len())
                    if grammar_bound or params.structured_outputs is not None:
                        await self._stream.aclose()
                        return segment, None
                    await self._send(self._chunk(continuation, params), segment.index)
                    self._spans.segment_started(segment.index, len(continuation))
                    continue
                outcome = Finish("length")
            self._progress.visible.append(self._segment_visible(segment.index, segment.text))
            final = self._final(outcome)
            await self._close_input()  # unless closed already: vLLM frees its blocks
            if out.finished:
                break
        else:
            if final is None:  # the engine ended the request on its own (e.g. aborted)
                final = self._final(Finish("abort"))
        return segment, final

    async def _take_output(self, segment: _Segment, completion: Any) -> bool:
        """Adds one output's tokens to the segment and streams their delta (a segment's last delta
        is held, to be published with the event that says how it ended). True when the segment
        ended here (the engine finished it, or a stop string matched): its tokens join the context."""
        ends = completion.finish_reason is not None
        if completion.token_ids:
            segment.tokens.extend(completion.token_ids)
            segment.text += completion.text
            delta = self._delta(segment.index, segment.text, completion.token_ids,
                                logprobs_of(completion, self.request.sampling.logprobs))
            if ends or self._stops.end is not None:
                self._held.append(delta)
            else:
                await self._emit(delta)
        stopped = self._stops.end is not None
        if not (ends or stopped):
            return False
        self._progress.generated.extend(segment.tokens)
        self._context.extend(segment.tokens)
        self._spans.segment_ended(len(segment.tokens), "stop" if stopped else completion.finish_reason)
        return True

    async def _open_input(self, segment_index: int) -> None:
        """A new vLLM request's input queue; closed at once when its first segment is the last."""
        self._inputs, self._input_closed = asyncio.Queue(), False
        if self._last_segment(segment_index):
            await self._close_input()  # read by _chunks after the first chunk

    async def _restore(self, cp: Checkpoint) -> tuple[_Segment, FinalEvent | None]:
        """Where a request continued from its checkpoint starts: its segment with the open
        segment's tokens and text, or its final event if the call it was paused at leaves no
        room to go on. A call without a result is awaited again (same call id), its KV counted as
        discarded: this worker never had it."""
        if cp.pending is not None:
            if await self._await_call(cp.pending, adopted=True) is None:
                return _Segment(cp.segment_index), self._final(Finish("length"))
            return _Segment(cp.segment_index + 1), None
        # A plan's text is what was streamed; a chat turn's may hide a tool call, so it is decoded.
        text = cp.open_text if self.request.plan is not None else self._codec.decode_text(cp.open_tokens)
        return _Segment(cp.segment_index, list(cp.open_tokens), text), None

    def take_held(self) -> list[OutputEvent]:
        """The events to publish with the final event (the last segment's last delta)."""
        held, self._held = self._held, []
        return held

    def _arrival(self) -> float:
        """The ORIGINAL arrival across interceptions, except under the `vllm` baseline, which
        re-queues a resumed request at the back like a new one."""
        if self._attempt and self._requeue_at_back:
            if self._requeued_at is None:
                self._requeued_at = time.time()
            return self._requeued_at
        return self.request.arrival_time

    def _priority(self) -> int:
        """vLLM runs lower values first: the arrival, until the queue scheduler ranks it."""
        return int((self._arrival() - PRIORITY_EPOCH) * 1000)

    def _vllm_id(self) -> str:
        return self.request.request_id if self._attempt == 0 else f"{self.request.request_id}~{self._attempt}"

    async def _release_kv(self, strategy: Strategy) -> None:
        """Ends the vLLM request now, while the call runs. Discard: its blocks return to the pool.
        Swap: the connector first copies them to the host buffer, and the resumed request loads
        them back instead of recomputing."""
        vllm_id = self._vllm_id()
        self._swap_key = None
        if strategy == Strategy.SWAP and self._swap is not None:
            try:
                await retry_async(lambda: self._swap.mark(vllm_id),  # type: ignore[union-attr]  # checked above
                                  f"swap mark of {vllm_id}", log, give_up_s=5)
                self._swap_key = vllm_id
            except OUTAGE_ERRORS as exc:  # unmarked, the connector frees the blocks: a discard
                log.warning("request %s: swap mark failed (%s), discarding its KV instead", vllm_id, exc)
                strategy = Strategy.DISCARD
        self._released = strategy
        with self._spans.kv_release(strategy, self.context_len()):
            await self._stream.aclose()  # type: ignore[union-attr]  # released only while a request streams

    async def _note_resume(self, prompt_tokens: int, cached_tokens: int, seconds: float) -> None:
        """What the resume after a discard or swap cost: tokens recomputed (prefix-cache and
        swapped-in tokens excluded) and, for a swap, the copy times the connector reported."""
        last = self._progress.interceptions[-1]
        recomputed = recomputed_tokens(prompt_tokens, cached_tokens, last.returned_tokens)
        update = {"recomputed_tokens": recomputed, "recompute_s": seconds}
        if self._swap_key is not None and self._swap is not None:
            try:
                key = self._swap_key
                times = await retry_async(lambda: self._swap.times(key),  # type: ignore[union-attr]  # checked above
                                          f"swap times of {key}", log, give_up_s=5)
            except OUTAGE_ERRORS as exc:  # only the record's copy times are missing
                log.warning("request %s: swap times unreadable (%s)", self._swap_key, exc)
                times = SwapTimes()
            update |= {"swap_out_s": times.out_s, "swap_in_s": times.in_s}
            self._spans.swapped(times.out_s, times.in_s, last.swapped_bytes)
            self._swap_key = None
        self._spans.recomputed(prompt_tokens, cached_tokens, recomputed, seconds)
        self._progress.interceptions[-1] = last.model_copy(update=update)

    def _outcome(self, segment_index: int, seg_text: str, engine_finish: str) -> CallApi | Finish:
        if self.request.plan is not None:
            return plan_outcome(self.request, segment_index)
        budget_left, calls_done = self._budget_left(), len(self._progress.interceptions)
        if segment_index == 0 and self._forced_prefix:
            if self.request.forced_call_schema is not None and self.request.forced_tool is None:
                # "required": the array of whole calls its grammar generates
                if (calls := whole_calls(seg_text)) is None:
                    return cut_call_outcome(self.request, seg_text)
                return calls_outcome(self.request, [(c["name"], c.get("arguments", {})) for c in calls], engine_finish,
                                     budget_left, calls_done)
            if self.request.forced_call_schema is not None:  # a named tool's arguments, under its schema
                if not whole_json_object(seg_text):
                    return cut_call_outcome(self.request, seg_text)
            elif (written := unconstrained_call_cut(self._forced_prefix, seg_text, engine_finish)) is not None:
                return cut_call_outcome(self.request, written)
        turn = self._forced_turn(seg_text) if segment_index == 0 and self._forced_prefix else seg_text
        return chat_outcome(self.request, turn, engine_finish, budget_left, calls_done)

    def _forced_turn(self, seg_text: str) -> str:
        """The forced call as written: the server's prefix, then the model's text up to where it
        stopped (the string's closing quote, or the line's end), closed properly. Generated under
        a named tool's schema, the text is its whole arguments object."""
        if self.request.forced_call_schema is not None:
            return f"{self._forced_prefix}{seg_text.strip()}}}\n{CALL_CLOSE}"
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

    def _visible_so_far(self, segment_index: int, seg_text: str) -> str:
        """The request's visible text: the ended segments' shares, then the open segment's."""
        return "".join(self._progress.visible) + self._segment_visible(segment_index, seg_text)

    def _delta(self, segment_index: int, seg_text: str, token_ids: list[int],
               logprobs: list[TokenLogprob] | None) -> DeltaEvent:
        """The new tokens, with the visible text they add: none inside a tool call, and none
        that may be the start of a stop string (held back until the next text tells)."""
        if logprobs is not None:
            self._progress.logprobs.extend(logprobs)
        visible = self._visible_so_far(segment_index, seg_text)
        upto = self._stops.release(visible)
        text = visible[self._shown:upto]
        self._shown = max(self._shown, upto)
        return DeltaEvent(text=text, token_ids=list(token_ids), logprobs=logprobs)

    async def _intercept(self, call: CallApi, segment_index: int, seg_text: str) -> list[int] | None:
        """Runs one API call while paused; returns the tokens appended (or None: no room left).

        While the call runs the handling policy may release the request's KV (`_release_kv`).
        """
        self._record_segment_length(call.api)
        event = CallEvent(call_id=new_call_id(), api=call.api, arguments=call.arguments, duration_s=call.duration_s,
                          return_tokens=call.return_tokens, started_at=time.time(), context_tokens=self.context_len(),
                          segment_text=self._segment_visible(segment_index, seg_text), reply_to=self._reply_to)
        await self._emit(*self.take_held(), event)
        return await self._await_call(event)

    async def _await_call(self, event: CallEvent, adopted: bool = False) -> list[int] | None:
        """The call's result, appended to the context; None when there is no room to go on.
        While it runs, the policy may release the KV: the session ends its vLLM request then.
        A call `adopted` from a dead worker is sent again under its call id: its result comes
        here, or on that worker's reply stream if the first run delivered it there; no vLLM
        request holds its context on this worker, so there is no KV to release."""
        call = CallApi(api=event.api, arguments=dict(event.arguments), duration_s=event.duration_s,
                       return_tokens=event.return_tokens)
        context_len = event.context_tokens
        self._spans.interception_started(call.api)
        watch = event.reply_to if adopted and event.reply_to != self._reply_to else None
        async with self._pauses.hold(self.request, call, context_len, call_id=event.call_id,
                                     also_watch=watch) as paused:
            released = await paused.release_or_result()
            if released is not None:
                if not adopted:  # an adopted call's context is in no vLLM request of this worker
                    await self._release_kv(released)
                paused.kv_released()
            result = await paused.result()
        pause = paused.report()
        if self.request.plan is not None:
            appended = self._codec.exact_length(result.content, call.return_tokens)
        else:
            appended = self._codec.encode_tool_turn(*tool_result_parts(result.content))
        ended = time.time()
        strategy = Strategy.DISCARD if adopted else self._released or Strategy.PRESERVE
        record = InterceptionRecord(
            call_id=result.call_id, api=call.api, arguments=call.arguments,
            started_at=event.started_at, ended_at=ended, duration_s=ended - event.started_at,
            api_s=max(0.0, result.ended_at - result.started_at),
            context_tokens=context_len, returned_tokens=len(appended), result=result.content, ok=result.ok,
            error=result.error, strategy=strategy,
            predicted_duration_s=pause.predicted_s, waste_preserve=pause.waste_preserve,
            waste_discard=pause.waste_discard, waste_swap=pause.waste_swap,
            held_kv_byte_seconds=0.0 if adopted else pause.held_kv_byte_seconds,
            swapped_bytes=pause.swapped_bytes if strategy == Strategy.SWAP else 0,
        )
        self._progress.interceptions.append(record)
        self._spans.interception_ended(record)
        # Room for the appended tokens and at least one generated token.
        if context_len + len(appended) + 1 > self._max_model_len or self._budget_left() <= 0:
            self._held.append(InterceptionEvent(record=record))  # published with the final event
            return None
        await self._emit(InterceptionEvent(record=record, appended_token_ids=appended))
        self._context.extend(appended)
        return appended

    def _record_segment_length(self, next_call: str | None) -> None:
        """Feeds the length predictor: this segment's tokens, by the kind of call that ended it."""
        if self._lengths is not None:
            self._lengths.record(next_call, len(self._progress.generated) - self._segment_start)
        self._segment_start = len(self._progress.generated)

    def _final(self, outcome: Finish) -> FinalEvent:
        self._record_segment_length(None)
        p = self._progress
        # The client's prompt plus every token the server appended: the context less what was generated.
        prompt_tokens = len(self._context) - len(p.generated)
        text = self._stops.final("".join(p.visible))
        if len(text) > self._shown:  # held back as a possible stop string's start: it was not one
            self._held.append(DeltaEvent(text=text[self._shown:], token_ids=[]))
            self._shown = len(text)
        return FinalEvent(
            finish_reason=outcome.reason, text=text, token_ids=list(p.generated),
            logprobs=list(p.logprobs) if self.request.sampling.logprobs is not None else None,
            usage=Usage(prompt_tokens=prompt_tokens, completion_tokens=len(p.generated),
                        total_tokens=prompt_tokens + len(p.generated)),
            interceptions=list(p.interceptions), tool_calls=list(outcome.tool_calls),
        )
