"""How tools appear in the model's context, and how a tool call is read back out of its turn.

The format is the Hermes/Qwen one many open chat models were trained on (SmolLM2's own template
has no tool format): the system turn lists the tools as JSON inside <tools></tools>, the model
calls one by writing <tool_call>{"name": ..., "arguments": {...}}</tool_call> and ending its turn,
and the result comes back as a `tool` turn. The gateway renders; the engine worker parses.
"""

from __future__ import annotations

import json
from typing import Any

CALL_OPEN = "<tool_call>"
CALL_CLOSE = "</tool_call>"
TURN_START = "<|im_start|>"
TURN_END = "<|im_end|>"


def tools_system_text(tools: list[dict[str, Any]]) -> str:
    """The paragraph appended to the system turn when a request declares tools."""
    listed = "\n".join(json.dumps(t, separators=(", ", ": ")) for t in tools)
    return (
        "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n"
        "You are provided with function signatures within <tools></tools> XML tags:\n"
        f"<tools>\n{listed}\n</tools>\n\n"
        "For each function call, return a json object with function name and arguments within "
        f"{CALL_OPEN}{CALL_CLOSE} XML tags:\n{CALL_OPEN}\n"
        '{"name": <function-name>, "arguments": <args-json-object>}\n'
        f"{CALL_CLOSE}"
    )


FORCED_ARGUMENTS_KEY = '"arguments": '
"""Where a forced call's prefix ends its name and starts the arguments."""


def forced_call_prefix(name: str, parameters: dict[str, Any] | None) -> str:
    """Text the server writes at the start of the assistant turn to force a call to `name`.

    When the schema has exactly one required string property, the prefix opens it too: small
    models then only write the value, which they do far more reliably than whole JSON objects.
    """
    prefix = f'{CALL_OPEN}\n{{"name": {json.dumps(name)}, {FORCED_ARGUMENTS_KEY}'
    props = (parameters or {}).get("properties") or {}
    required = (parameters or {}).get("required") or []
    if len(required) == 1 and (props.get(required[0]) or {}).get("type") == "string":
        prefix += "{" + json.dumps(required[0]) + ': "'
    return prefix


def tool_result_parts(content: str) -> tuple[str, str, str]:
    """Continuation after the model's turn-end token: the tool turn, then a new assistant turn,
    as (markers before, the result, markers after), so the result can be tokenized as plain text."""
    return f"\n{TURN_START}tool\n", content, f"{TURN_END}\n{TURN_START}assistant\n"


def visible_text(turn_text: str) -> str:
    """The part of a turn a user should see: everything before a tool call starts.

    While streaming, a trailing partial "<tool_call" is held back too, since it may be one.
    """
    cut = turn_text.find(CALL_OPEN)
    if cut >= 0:
        return turn_text[:cut]
    for n in range(len(CALL_OPEN) - 1, 0, -1):
        if turn_text.endswith(CALL_OPEN[:n]):
            return turn_text[:-n]
    return turn_text


NOT_JSON = (ValueError, RecursionError)
"""What reading a model's JSON may raise: JSONDecodeError (a ValueError), ValueError for an integer
over Python's 4300-digit limit, RecursionError for deep nesting. The model writes what a prompt
asks, so each is only text that is not a call."""


def _first_json_object(text: str) -> Any:
    decoder = json.JSONDecoder()
    start = text.find("{")
    while start >= 0:
        try:
            value, _ = decoder.raw_decode(text, start)
            return value
        except NOT_JSON:
            start = text.find("{", start + 1)
    return None


def _closed_json_object(text: str) -> Any:
    """A call the model did not finish or finished sloppily (common with small models): try
    each place the JSON could have ended, latest first, closing what is still open."""
    text = text.rstrip()
    ends = [len(text) - 1] + [i for i, ch in enumerate(text) if ch in '}"'][::-1][:64]
    for end in ends:
        for closer in ("", "}", "}}", '"}}'):
            try:
                value = json.loads(text[: end + 1] + closer)
            except NOT_JSON:
                continue
            if isinstance(value, dict):
                return value
    return None


def parse_tool_call(turn_text: str) -> tuple[str, dict[str, Any] | str] | None:
    """(name, arguments) of the first tool call in a turn, or None when the turn calls nothing.

    Arguments that are not a JSON object come back as the raw string, so the API can answer
    with an error the model sees instead of the call silently vanishing.
    """
    start = turn_text.find(CALL_OPEN)
    if start < 0:
        return None
    body = turn_text[start + len(CALL_OPEN):]
    end = body.find(CALL_CLOSE)
    if end >= 0:
        body = body[:end]
    call = _first_json_object(body)
    if not (isinstance(call, dict) and "name" in call):
        call = _closed_json_object(body)
    if isinstance(call, dict) and isinstance(call.get("name"), str):
        args = call.get("arguments", {})
        if isinstance(args, str):
            try:
                args = json.loads(args)
            except NOT_JSON:
                return call["name"], args
        return call["name"], args if isinstance(args, dict) else json.dumps(args)
    # A call whose JSON is broken: recover the name if it is there, keep the raw text.
    marker = '"name":'
    at = body.find(marker)
    if at >= 0:
        rest = body[at + len(marker):].strip()
        if rest.startswith('"'):
            name = rest[1:].split('"', 1)[0]
            return name, body.strip()
    return None


def parse_tool_calls(turn_text: str) -> list[tuple[str, dict[str, Any] | str]]:
    """Every tool call in a turn, in order (parallel calls: one <tool_call> block each)."""
    calls = []
    at = turn_text.find(CALL_OPEN)
    while at >= 0:
        following = turn_text.find(CALL_OPEN, at + len(CALL_OPEN))
        call = parse_tool_call(turn_text[at:] if following < 0 else turn_text[at:following])
        if call is not None:
            calls.append(call)
        at = following
    return calls
