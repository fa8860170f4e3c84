"""What happens when a segment of generation ends: call an API, hand calls to the client, or stop.

Pure decisions over the segment's tokens and text; the session driver carries them out.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from common.schemas import API_KINDS, EngineRequest, FinishReason, ToolCall
from common.tool_format import parse_tool_calls

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


def chat_outcome(
    request: EngineRequest, turn_text: str, engine_finish: str | None, budget_left: int,
    interceptions_so_far: int,
) -> SegmentOutcome:
    """Reads the model's finished turn. `turn_text` includes any server-written forced prefix."""
    calls = parse_tool_calls(turn_text) if (request.server_tools or request.client_tools) else []
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
