"""What happens when a segment of generation ends: call an API, hand calls to the client, or stop.

Pure decisions over the segment's tokens and text; the session driver carries them out.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from typing import Any

from common.schemas import API_KINDS, EngineRequest, FinishReason, ToolCall
from common.tool_format import FORCED_ARGUMENTS_KEY, parse_tool_calls

MAX_INTERCEPTIONS = 64
"""A request whose model keeps calling tools ends with finish_reason "length" past this."""


def new_call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


@dataclass(frozen=True)
class CallApi:
    """Pause and run a server-side API call, then resume with its result."""

    api: str
    arguments: dict[str, Any]
    duration_s: float | None = None
    return_tokens: int | None = None


@dataclass(frozen=True)
class Finish:
    reason: FinishReason
    tool_calls: tuple[ToolCall, ...] = ()


SegmentOutcome = CallApi | Finish


def api_for_tool(name: str, arguments: dict[str, Any] | str) -> CallApi:
    """A server-side tool name maps to its API kind; other registered names are HTTP endpoints."""
    args = arguments if isinstance(arguments, dict) else {"raw": arguments}
    if name in API_KINDS and name != "http":
        return CallApi(api=name, arguments=args)
    return CallApi(api="http", arguments={"endpoint": name, "arguments": args})


def plan_outcome(request: EngineRequest, segment_index: int) -> SegmentOutcome:
    assert request.plan is not None
    segment = request.plan.segments[segment_index]
    if segment.api is None:
        return Finish("stop")
    return CallApi(
        api=segment.api, arguments=dict(segment.arguments), duration_s=segment.duration_s,
        return_tokens=segment.return_tokens,
    )


_CALL_HEAD = re.compile(r'\s*\{\s*"name"\s*:\s*"([^"\\]*)"\s*,\s*"arguments"\s*:\s*(.*)', re.DOTALL)
"""The start of a whole call object as the "required" schema has it generated (name first)."""


def whole_json_object(text: str) -> bool:
    """Whether `text` is one complete JSON object (a call generated under its schema that ended
    with its JSON, not before it)."""
    try:
        return isinstance(json.loads(text), dict)
    except (ValueError, RecursionError):
        return False


def whole_calls(text: str) -> list[dict[str, Any]] | None:
    """The calls of a "required" turn generated under its grammar, a JSON array of whole call
    objects (gateway/prompts.py calls_schema), or None while that JSON is not whole (or, past
    the grammar, names no tool)."""
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None
    calls = value if isinstance(value, list) else [value]
    whole = calls and all(isinstance(c, dict) and isinstance(c.get("name"), str) for c in calls)
    return calls if whole else None


def _written_calls(text: str) -> list[tuple[str, str]]:
    """(name, arguments as written) of a "required" turn cut before its JSON was whole: every
    call the array completed, then the cut one if its name was written."""
    body = text.strip().removeprefix("[")
    calls: list[tuple[str, str]] = []
    decoder = json.JSONDecoder()
    while True:
        body = body.lstrip().removeprefix(",").lstrip()
        try:
            value, end = decoder.raw_decode(body)
        except (ValueError, RecursionError):
            break
        if not (isinstance(value, dict) and isinstance(value.get("name"), str)):
            break
        calls.append((value["name"], json.dumps(value.get("arguments", {}))))
        body = body[end:]
    if head := _CALL_HEAD.match(body):
        calls.append((head.group(1), head.group(2).strip()))
    return calls


def unconstrained_call_cut(forced_prefix: str, seg_text: str, engine_finish: str) -> str | None:
    """A forced call written without its schema (constrain_tool_calls false) that the token cap
    cut before its end, the lone string's closing quote or the line's end: its arguments as far
    as they were written (for cut_call_outcome), rather than closed for the model, which would
    run a value it never finished. None when the call ended."""
    if engine_finish != "length":
        return None
    arguments_so_far = forced_prefix.split(FORCED_ARGUMENTS_KEY, 1)[1] + seg_text
    if forced_prefix.endswith('"'):  # the prefix opened the lone string argument
        return None if '"' in seg_text else arguments_so_far
    return None if "\n" in seg_text or _starts_with_json_object(seg_text) else arguments_so_far


def _starts_with_json_object(text: str) -> bool:
    try:
        value, _end = json.JSONDecoder().raw_decode(text.lstrip())
    except (ValueError, RecursionError):
        return False
    return isinstance(value, dict)


def cut_call_outcome(request: EngineRequest, call_text: str) -> Finish:
    """A call generated under its schema that stopped before its JSON was whole (the token cap,
    or a stop token): finish_reason "length", as vLLM and OpenAI answer, with the call as far as
    the model wrote it, unrepaired (closing it would invent a value and drop required keys), when
    it is the client's to run. A cut server-side call is not run. `call_text`: the arguments
    object for a named tool, the array of whole call objects for "required"."""
    if request.forced_tool is not None:
        written = [(request.forced_tool, call_text.strip())]
    else:
        written = _written_calls(call_text)
    if not written or any(name not in request.client_tools for name, _ in written):
        return Finish("length")  # cut inside the first name, or a server-side call among them
    return Finish("length", tuple(ToolCall(id=new_call_id(), name=n, arguments=a) for n, a in written))


def chat_outcome(
    request: EngineRequest, turn_text: str, engine_finish: str | None, budget_left: int,
    interceptions_so_far: int,
) -> SegmentOutcome:
    """Reads the model's finished turn. `turn_text` includes any server-written forced prefix."""
    calls = parse_tool_calls(turn_text) if (request.server_tools or request.client_tools) else []
    return calls_outcome(request, calls, engine_finish, budget_left, interceptions_so_far)


def calls_outcome(
    request: EngineRequest, calls: list[tuple[str, dict[str, Any] | str]], engine_finish: str | None,
    budget_left: int, interceptions_so_far: int,
) -> SegmentOutcome:
    """What a finished turn's calls (name, arguments), in order, make of it."""
    if calls:
        name, arguments = calls[0]
        if name in request.server_tools:
            if interceptions_so_far >= MAX_INTERCEPTIONS or budget_left <= 0:
                return Finish("length")
            return api_for_tool(name, arguments)
        if name in request.client_tools:
            # Parallel calls: the client runs every client-side call the turn makes, up to the
            # first one that is not (a server-side call would need the server, later).
            client = []
            for name, arguments in calls if request.parallel_tool_calls else calls[:1]:
                if name not in request.client_tools:
                    break
                client.append(ToolCall(id=new_call_id(), name=name,
                                       arguments=arguments if isinstance(arguments, str) else json.dumps(arguments)))
            return Finish("tool_calls", tuple(client))
    if engine_finish == "length" or budget_left <= 0:
        return Finish("length")
    return Finish("stop")
