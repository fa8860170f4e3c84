"""Every message that crosses a process, as pydantic models (JSON on the wire, never pickle).

gateway --EngineRequest--> engine worker --ToolCallTask--> executor
gateway <--OutputEvent---- engine worker <--ToolResult---- executor

A request's output events are also its checkpoint: they say every token it emitted and every
call it made, in order, so a live worker continues a dead worker's request from them
(engine_worker/checkpoint.py). Hence the invariant the worker keeps when it publishes them: a
segment's last tokens are published in one transaction with the event saying how the segment
ended (a CallEvent, or the FinalEvent).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

ApiKind = Literal["calculator", "qa", "ve", "chatbot", "image", "tts", "http"]
API_KINDS: tuple[str, ...] = ApiKind.__args__  # type: ignore[attr-defined]

FinishReason = Literal["stop", "length", "tool_calls", "error", "abort"]


class Strategy(StrEnum):
    """What a paused request's KV cache gets (the handling policies, engine_worker/policies/handling.py,
    choose): kept in the pool, dropped (recomputed on resume), or copied to the host buffer and
    loaded back. A str: its value is what JSON, logs, metric labels and span attributes carry."""

    PRESERVE = "preserve"
    DISCARD = "discard"
    SWAP = "swap"


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PlanSegment(Frozen):
    """One stretch of scripted generation, optionally ended by an API call.

    The benchmark replays traces with it: the model generates exactly `generate_tokens` tokens
    (end-of-sequence ignored), then the call `api` runs with `arguments` (or, for the timed
    stand-ins, for `duration_s` seconds) and its output, cut or padded to exactly `return_tokens`
    tokens, is appended before the next segment.
    """

    generate_tokens: Annotated[int, Field(ge=1, le=65536)]
    api: ApiKind | None = None
    arguments: dict[str, Any] = Field(default_factory=dict)
    duration_s: Annotated[float, Field(ge=0, le=3600)] | None = None
    return_tokens: Annotated[int, Field(ge=0, le=65536)] | None = None

    @model_validator(mode="after")
    def _call_fields_need_a_call(self) -> PlanSegment:
        if self.api is None and (self.arguments or self.duration_s is not None or self.return_tokens is not None):
            raise ValueError("arguments, duration_s and return_tokens need an api")
        return self


class Plan(Frozen):
    """The `plan` extension field of a completion request (see README, "Scripted requests")."""

    segments: Annotated[list[PlanSegment], Field(min_length=1, max_length=256)]

    @model_validator(mode="after")
    def _only_the_last_segment_ends_the_request(self) -> Plan:
        for i, seg in enumerate(self.segments[:-1]):
            if seg.api is None:
                raise ValueError(f"segments[{i}] needs an api: only the last segment may end without a call")
        if self.segments[-1].api is not None:
            raise ValueError("the last segment must not call an api: generation ends there")
        return self

    @property
    def generated_tokens(self) -> int:
        return sum(s.generate_tokens for s in self.segments)

    @property
    def returned_tokens(self) -> int:
        return sum(s.return_tokens or 0 for s in self.segments)


class StructuredOutput(Frozen):
    """A constraint on generated text, applied by vLLM's structured-output backend (exactly one
    field set, as vLLM's StructuredOutputsParams wants)."""

    json_schema: dict[str, Any] | None = None
    json_object: bool | None = None
    regex: str | None = None
    choice: list[str] | None = None
    grammar: str | None = None
    compact: bool = False
    """No free whitespace between JSON tokens (small models otherwise pad with newlines)."""

    @model_validator(mode="after")
    def _exactly_one(self) -> StructuredOutput:
        set_ = [n for n in ("json_schema", "json_object", "regex", "choice", "grammar") if getattr(self, n) is not None]
        if len(set_) != 1:
            raise ValueError(f"exactly one constraint must be set (got {set_ or 'none'})")
        return self


class SamplingConfig(Frozen):
    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    min_p: float = 0.0
    seed: int | None = None
    stop_token_ids: list[int] = Field(default_factory=list)
    ignore_eos: bool = False
    """Generate past end-of-sequence (vLLM's ignore_eos: its own EOS check stops a request
    whatever stop_token_ids says). Not during a forced call, which its end must close."""
    stop: list[str] = Field(default_factory=list)
    """Stop strings, matched by the worker on the text the client sees, over every segment
    (vLLM refuses them in sessions)."""
    include_stop_str_in_output: bool = False
    logprobs: int | None = None
    """None: no logprobs; k >= 0: the sampled token's logprob and the k most likely tokens'."""
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    repetition_penalty: float = 1.0
    logit_bias: dict[int, float] = Field(default_factory=dict)
    structured: StructuredOutput | None = None
    """Constrains the answer (response_format, structured_outputs): never a forced call's arguments."""


class ToolCall(Frozen):
    """A tool call the model made, in OpenAI's shape (arguments is a JSON string)."""

    id: str
    name: str
    arguments: str


class EngineRequest(Frozen):
    """gateway -> engine worker: one request, already templated and tokenized by the gateway."""

    request_id: str
    model: str
    prompt_token_ids: list[int]
    sampling: SamplingConfig
    server_tools: list[str] = Field(default_factory=list)
    """Declared tools the server executes itself (registered API kinds)."""
    client_tools: list[str] = Field(default_factory=list)
    """Declared tools the client executes: calls to them end the request with `tool_calls`."""
    forced_tool: str | None = None
    """tool_choice naming one tool: the first assistant turn is made to call it."""
    forced_call_schema: dict[str, Any] | None = None
    """The JSON schema the forced call's text after the server's prefix is generated under
    (constrained decoding): the named tool's parameters, or for tool_choice "required" over
    several tools, any one of the {"name", "arguments"} objects. None: unconstrained."""
    parallel_tool_calls: bool = True
    """Several client-side calls in one turn are all returned (False: only the first)."""
    plan: Plan | None = None
    arrival_time: float
    program_id: str | None = None
    traceparent: str | None = None


class InterceptionRecord(Frozen):
    """What happened to one API call made in the middle of generation (returned to the client)."""

    call_id: str
    api: str
    arguments: dict[str, Any] | str
    started_at: float
    ended_at: float
    duration_s: float
    """How long the request was paused at the call (the worker's clock: dispatch, queueing in
    the executor, the call itself, the reply)."""
    api_s: float | None = None
    """The call's own run time, as the executor measured it around the API (its result's ended_at
    less started_at): what a benchmark subtracts as API time, measured as a client-side tool loop
    measures its calls. None where no executor ran it."""
    context_tokens: int
    """Tokens in the request's context when it paused."""
    returned_tokens: int
    result: str
    """What the call returned, as the model read it (cut/padded to returned_tokens for plans)."""
    ok: bool
    error: str | None = None
    strategy: Strategy = Strategy.PRESERVE
    """What its KV cache got while paused (the handling policy's final choice)."""
    predicted_duration_s: float = 0.0
    """The call duration the policy used at its last decision."""
    waste_preserve: float = 0.0
    waste_discard: float = 0.0
    waste_swap: float = 0.0
    """The waste figures (KV bytes x seconds) behind that decision."""
    held_kv_byte_seconds: float = 0.0
    """Memory x time its KV stayed in the pool while paused: the waste it really caused."""
    recomputed_tokens: int = 0
    """Context tokens computed AGAIN on resume after a discard or swap: the re-submitted context
    less its prefix-cache (or swapped-in) hits, less the tokens every system computes on resume
    anyway (the returned tokens and the last generated token, whose KV was never computed)."""
    recompute_s: float = 0.0
    """Time from re-submitting the context to its first output token."""
    swapped_bytes: int = 0
    """KV bytes copied to the host buffer and back (a swap)."""
    swap_out_s: float = 0.0
    swap_in_s: float = 0.0
    """Copy time of a swap in each direction, as the KV connector measured it."""


class Usage(Frozen):
    prompt_tokens: int
    """The client's prompt plus every token the server appended (tool results, turn markers)."""
    completion_tokens: int
    """Tokens the model generated, over every segment."""
    total_tokens: int


class TopLogprob(Frozen):
    token: str
    logprob: float


class TokenLogprob(Frozen):
    """One generated token's logprob, with the most likely alternatives at its position."""

    token: str
    logprob: float
    top_logprobs: list[TopLogprob] = Field(default_factory=list)


class DeltaEvent(Frozen):
    type: Literal["delta"] = "delta"
    text: str
    """Text the client sees next (may be empty: tokens of a tool call are not shown, and text
    that may be the start of a stop string is held back)."""
    token_ids: list[int]
    """The tokens generated since the previous delta."""
    logprobs: list[TokenLogprob] | None = None
    """One per token of `token_ids`, when the request asked for logprobs."""


class CallEvent(Frozen):
    """The current segment ended at a server-side call: the request pauses while it runs.

    Published before the call is sent, with the segment's last tokens; the InterceptionEvent
    follows when its result is in. A worker continuing the request finds the result on
    `reply_to` (it came while nobody was there to read it) or runs the call again, same call_id
    (the executor delivers one result per call_id; stand-ins plan the same from it).
    """

    type: Literal["call"] = "call"
    call_id: str
    api: str
    arguments: dict[str, Any]
    duration_s: float | None = None
    return_tokens: int | None = None
    started_at: float
    context_tokens: int
    """Tokens in the request's context when it paused."""
    segment_text: str
    """The ended segment's share of the final text (what the client sees of it)."""
    reply_to: str
    """The reply stream of the worker that sends the call."""


class InterceptionEvent(Frozen):
    type: Literal["interception"] = "interception"
    record: InterceptionRecord
    appended_token_ids: list[int] = Field(default_factory=list)
    """The tokens appended to the context after the call (its result as the model reads it, turn
    markers); empty when the request ends there (no room left)."""


class FinalEvent(Frozen):
    type: Literal["final"] = "final"
    finish_reason: FinishReason
    text: str
    token_ids: list[int]
    """Every token the model generated, in order, over all segments."""
    usage: Usage
    interceptions: list[InterceptionRecord]
    tool_calls: list[ToolCall] = Field(default_factory=list)
    """Calls to client-side tools (finish_reason "tool_calls")."""
    worker_id: str | None = None
    """The engine worker that served the request (the response's `system_fingerprint`)."""
    logprobs: list[TokenLogprob] | None = None
    """One per token of `token_ids`, when the request asked for logprobs."""


class ErrorEvent(Frozen):
    type: Literal["error"] = "error"
    status: int
    code: str
    message: str


OutputEvent = Annotated[DeltaEvent | CallEvent | InterceptionEvent | FinalEvent | ErrorEvent,
                        Field(discriminator="type")]


class OutputEnvelope(BaseModel):
    event: OutputEvent


class ToolCallTask(Frozen):
    """engine worker -> executor (Celery task kwargs): run one API call, reply on `reply_to`."""

    call_id: str
    request_id: str
    api: str
    arguments: dict[str, Any]
    duration_s: float | None = None
    return_tokens: int | None = None
    reply_to: str
    """Redis stream the result goes to (the owning engine worker's)."""
    traceparent: str | None = None


class StandInDelivery(Frozen):
    """executor -> executor (the api.deliver task's kwargs): a stand-in call's planned result,
    delivered at `due_at` (a long wait hops through several countdowns, each re-sending this)."""

    kind: ApiKind
    call: ToolCallTask
    content: str
    started_at: float
    due_at: float
    """Wall-clock time the result is due: absolute, so a re-run message does not wait twice."""


class SchedulingFacts(Frozen):
    """engine worker -> its vLLM engine-core process, in each chunk's sampling params as
    `extra_args["augserve"]` (engine_worker/engine_params.REQUEST_INFO; a plain dict there, as
    vLLM's msgpack wire wants: model_dump() on send, validated on receipt): what the queue-order
    policy knows about a request beyond what vLLM tracks (engine_worker/engine_core/queue_scheduler.py).
    Every field is required: the worker and its engine core are one version."""

    id: str
    """The worker's request id, the same across resubmissions (vLLM's own id changes)."""
    arrival: float
    """The ORIGINAL arrival (or, under a policy that re-queues at the back, the re-queueing)."""
    program: str | None
    calls_done: int
    generated: int
    """Tokens generated before this chunk (in earlier segments)."""
    api: ApiKind | None
    """A plan's next call (None: not a plan, or its last segment)."""
    call_s: float | None
    """The plan's stated duration of that call."""
    expect_tokens: int | None
    """The predicted length of this segment (None: no output-length history kept)."""


class ToolResult(Frozen):
    """executor -> engine worker: the outcome of one call, success or error; never lost."""

    call_id: str
    api: str
    ok: bool
    content: str
    """What the model sees: the result text, or an error message."""
    error: str | None = None
    started_at: float
    ended_at: float


HEARTBEAT_S = 2.0
"""The engine workers' default heartbeat period (WorkerSettings.heartbeat_s)."""
MISSED_HEARTBEATS_DEAD = 5
"""A worker whose status is older than this many heartbeats is dead: its peers adopt its
requests and the gateway stops routing to it (one rule, both sides)."""


def stale_after_s(heartbeat_s: float = HEARTBEAT_S) -> float:
    return MISSED_HEARTBEATS_DEAD * heartbeat_s


class WorkerStatus(BaseModel):
    """engine worker -> gateway, peers, stack (WORKERS_HASH): what a worker serves and how loaded it
    is, rewritten every heartbeat_s. Readers ignore fields they do not know (a newer worker's)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    worker_id: str
    inflight: int
    """Requests this worker holds: running, queued in vLLM, or paused at a call."""
    heartbeat_at: float
    """Wall-clock time of this write; a status older than stale_after_s() is a dead worker's."""
    backlog: int = 0
    """Requests taken off the stream but not yet started (waiting for room)."""
    paused: int = 0
    model: str | None = None
    policy: str | None = None
    scheduler: str | None = None
    scheduler_options: dict[str, Any] = Field(default_factory=dict)
    duration_estimate: str | None = None
    max_model_len: int | None = None
    kv_cache_bytes: int | None = None
    kv_pool_blocks: int | None = None
    offload_reserve_blocks: int | None = None
    engine_config: dict[str, Any] | None = None
    """vLLM's effective configuration, as its /server_info dumps it (common/engine_facts.py)."""
