"""A request's progress, read back from its own output events: what a live worker continues from
when the worker serving the request died.

The output stream is the checkpoint: the gateway relays exactly these events, so continuing from
them can neither repeat nor skip anything the client saw. They hold every emitted token (deltas),
every segment's end (CallEvent, published with the segment's last tokens) and every call's
result as appended to the context (InterceptionEvent). Pure: no Redis, no vLLM.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from common.schemas import (
    CallEvent,
    DeltaEvent,
    ErrorEvent,
    FinalEvent,
    InterceptionEvent,
    InterceptionRecord,
    OutputEvent,
    TokenLogprob,
)


@dataclass
class Checkpoint:
    """Invariant: the model's context is prompt + `context_tail` + `open_tokens`, and the tokens
    generated so far are `generated` + `open_tokens`."""

    generated: list[int] = field(default_factory=list)
    """Tokens of the segments that ended."""
    context_tail: list[int] = field(default_factory=list)
    """What followed the prompt in those segments: generated and appended tokens, in order."""
    visible: list[str] = field(default_factory=list)
    """Each ended segment's share of the final text."""
    interceptions: list[InterceptionRecord] = field(default_factory=list)
    segment_index: int = 0
    """The segment in progress (or paused at `pending`'s call)."""
    open_tokens: list[int] = field(default_factory=list)
    """Tokens of the segment in progress emitted so far."""
    open_text: str = ""
    """The text streamed for them."""
    streamed: int = 0
    """Characters of text the deltas carried, over every segment (the visible text less what is
    held back as the possible start of a stop string)."""
    logprobs: list[TokenLogprob] = field(default_factory=list)
    """The logprobs the deltas carried, one per token emitted, when the request asked for them."""
    pending: CallEvent | None = None
    """The call the request is paused at, whose result is not in the stream yet."""
    ended: bool = False
    """A final or error event is out already: nothing is left to do."""
    events: int = 0

    @property
    def empty(self) -> bool:
        return self.events == 0


def replay(events: Iterable[OutputEvent]) -> Checkpoint:
    """Folds a request's output events, in stream order, into its progress."""
    cp = Checkpoint()
    for event in events:
        cp.events += 1
        if isinstance(event, (FinalEvent, ErrorEvent)):
            cp.ended = True
        elif isinstance(event, DeltaEvent):
            cp.open_tokens += event.token_ids
            cp.open_text += event.text
            cp.streamed += len(event.text)
            cp.logprobs += event.logprobs or []
        elif isinstance(event, CallEvent):
            cp.generated += cp.open_tokens
            cp.context_tail += cp.open_tokens
            cp.visible.append(event.segment_text)
            cp.open_tokens, cp.open_text, cp.pending = [], "", event
        elif isinstance(event, InterceptionEvent):
            cp.interceptions.append(event.record)
            cp.context_tail += event.appended_token_ids
            cp.pending = None
            cp.segment_index += 1
    return cp
